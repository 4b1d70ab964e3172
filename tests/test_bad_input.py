"""Every bad input of api.md gets a clear error (or the documented warning), and the
caller's frame is never modified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

import interlace
from interlace.errors import DataError, FormulaError, InterlaceError


@pytest.fixture
def sleep() -> pd.DataFrame:
    return interlace.load_dataset("sleepstudy")


def test_unknown_column_in_fixed_part(sleep):
    with pytest.raises(DataError, match=r"column 'Dayz' not found in data"):
        interlace.fit("Reaction ~ Dayz + (1 | Subject)", sleep)


def test_unknown_grouping_column(sleep):
    with pytest.raises(DataError, match=r"random term '\(1 \| Subjct\)': grouping column 'Subjct' not found"):
        interlace.fit("Reaction ~ Days + (1 | Subjct)", sleep)


def test_unknown_column_in_random_slope(sleep):
    with pytest.raises(DataError, match=r"random term '\(Dayz \| Subject\)': column 'Dayz' not found"):
        interlace.fit("Reaction ~ Days + (Dayz | Subject)", sleep)


def test_unknown_column_in_groups_argument(sleep):
    with pytest.raises(DataError, match=r"grouping column 'nope' not found"):
        interlace.fit("Reaction ~ Days", sleep, groups="nope")


def test_non_numeric_response(sleep):
    with pytest.raises(DataError, match=r"response 'Subject': expected a numeric column"):
        interlace.fit("Subject ~ Days + (1 | Subject)", sleep)


def test_grouping_factor_with_one_level(sleep):
    data = sleep.assign(one="only")
    with pytest.raises(DataError, match=r"grouping factor 'one' has 1 level; a random effect needs at least 2"):
        interlace.fit("Reaction ~ Days + (1 | one)", data)


def test_as_many_levels_as_rows(sleep):
    data = sleep.assign(row=np.arange(len(sleep)))
    with pytest.raises(DataError, match=r"grouping factor 'row' has 180 levels for 180 observations"):
        interlace.fit("Reaction ~ Days + (1 | row)", data)


def test_empty_after_dropping_missing(sleep):
    data = sleep.assign(Reaction=np.nan)
    with pytest.raises(DataError, match=r"no rows left after dropping missing values \(180 of 180"):
        interlace.fit("Reaction ~ Days + (1 | Subject)", data)


@pytest.mark.parametrize(
    ("formula", "pattern"),
    [
        ("Reaction Days + (1 | Subject)", r"expected 'response ~ terms'"),
        ("Reaction ~ Days + (1 | Subject", r"unbalanced '\('"),
        ("Reaction ~ Days + 1 | Subject", r"term '1 \| Subject' has '\|' outside parentheses"),
        ("Reaction ~ Days + (1 | )", r"random term '\(1 \| \)': nothing after '\|'"),
        ("Reaction ~ Days + ( | Subject)", r"random term '\( \| Subject\)': nothing before '\|'"),
        ("Reaction ~ Days + (1 | a b)", r"grouping 'a b' is not a column name"),
        ("Reaction ~ Days", r"no random-effects term"),
    ],
)
def test_malformed_formula(sleep, formula, pattern):
    with pytest.raises(FormulaError, match=pattern):
        interlace.fit(formula, sleep)


def test_rank_deficient_fixed_effects_dropped_with_warning(sleep):
    data = sleep.assign(Days2=2 * sleep["Days"])
    with pytest.warns(interlace.RankDeficiencyWarning, match=r"dropping 1 column: Days2"):
        m = interlace.fit("Reaction ~ Days + Days2 + (Days | Subject)", data)
    assert list(m.fe_params.index) == ["Intercept", "Days"]
    reference = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    np.testing.assert_allclose(m.fe_params, reference.fe_params, rtol=1e-6)


def test_boundary_fit_warns_like_lme4():
    with pytest.warns(interlace.SingularFitWarning, match=r"boundary \(singular\) fit"):
        m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff2"))
    assert m.is_singular and m.boundary_flags == {"Batch": True}


def test_non_convergence_warns_and_is_reported(sleep):
    with pytest.warns(interlace.ConvergenceWarning, match=r"did not converge"):
        m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, max_evaluations=5)
    assert m.converged is False


def test_missing_values_dropped_and_counted(sleep):
    data = sleep.copy()
    data.loc[[3, 50], "Reaction"] = np.nan
    data.loc[7, "Subject"] = np.nan
    with pytest.warns(interlace.MissingValuesWarning, match=r"3 rows with missing values were dropped"):
        m = interlace.fit("Reaction ~ Days + (Days | Subject)", data)
    assert m.nobs == 177 and m.n_dropped == 3
    assert m.model.dropped_rows.tolist() == [3, 7, 50]
    assert "3 observations deleted due to missingness" in str(m.summary())
    with pytest.raises(DataError, match=r"3 row\(s\) have missing values in Reaction, Subject and na_action='raise'"):
        interlace.fit("Reaction ~ Days + (Days | Subject)", data, na_action="raise")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"method": "REMLX"}, r"method: expected one of 'REML', 'ML', found 'REMLX'"),
        ({"solver": "cholmod"}, r"solver: expected 'auto', 'dense' or 'sparse', found 'cholmod'"),
        ({"optimizer": "bfgs"}, r"optimizer: expected one of .*found 'bfgs'"),
        ({"start": [1.0]}, r"start: expected 3 values for theta .*found 1"),
        ({"na_action": "omit"}, r"na_action: expected one of 'drop', 'raise', found 'omit'"),
        ({"df_method": "wald"}, r"df_method: expected one of 'satterthwaite', 'kenward-roger', found 'wald'"),
        ({"df_method": "kenward-roger", "method": "ML"}, r"Kenward-Roger is defined for REML fits"),
        ({"max_evaluations": 0}, r"max_evaluations: expected a positive integer, found 0"),
    ],
)
def test_bad_arguments(sleep, kwargs, pattern):
    with pytest.raises(InterlaceError, match=pattern):
        interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, **kwargs)


def test_not_a_frame():
    with pytest.raises(DataError, match=r"data: expected a data frame .* found list"):
        interlace.fit("y ~ 1 + (1 | g)", [1, 2, 3])


def test_caller_frame_not_modified(sleep):
    data = sleep.copy()
    data.loc[0, "Reaction"] = np.nan
    before = data.copy()
    with pytest.warns(interlace.MissingValuesWarning):
        interlace.fit("Reaction ~ Days + (Days | Subject)", data)
    pd.testing.assert_frame_equal(data, before)
    polars_frame = pl.from_pandas(sleep.assign(Subject=sleep["Subject"].astype(str)))
    polars_before = polars_frame.clone()
    interlace.fit("Reaction ~ Days + (Days | Subject)", polars_frame)
    assert polars_frame.equals(polars_before)
