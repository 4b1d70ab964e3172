"""Every bad input of api.md gets a clear error (or the documented warning), and the
caller's frame is never modified."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
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


# ----- issue 13: wrong without a word, internal errors ----------------------------------


@pytest.mark.parametrize(("column", "pattern"), [
    ("Reaction", r"response 'Reaction': 2 rows of 180 are infinite; expected finite values"),
    ("Days", r"fixed-effects column 'Days': 2 rows of 180 are infinite; expected finite values"),
])
def test_infinite_values_name_the_column_and_rows(sleep, column, pattern):
    data = sleep.astype({column: float})
    data.loc[[4, 9], column] = [np.inf, -np.inf]
    with pytest.raises(DataError, match=pattern):
        interlace.fit("Reaction ~ Days + (1 | Subject)", data)


def test_infinite_random_slope_names_the_term(sleep):
    data = sleep.assign(x=np.where(np.arange(180) == 3, np.inf, 1.0 * np.arange(180)))
    with pytest.raises(DataError, match=r"random term '\(x \| Subject\)': column 'x': 1 row of 180"):
        interlace.fit("Reaction ~ Days + (x | Subject)", data)


def test_constant_response(sleep):
    with pytest.raises(DataError, match=r"response 'Reaction': all 180 values are equal \(3\)"):
        interlace.fit("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=3.0))
    with pytest.raises(DataError, match=r"response 'y': all 3 values are equal"):
        interlace.fit("y ~ 1 + (1 | g)", pd.DataFrame({"y": [1.0, 1.0, 1.0], "g": ["a", "b", "a"]}),
                      df_method="kenward-roger")


def test_perfect_fit_warns_and_keeps_the_exact_coefficients(sleep):
    data = sleep.assign(Reaction=2.0 * sleep["Days"] + 1.0)
    with pytest.warns(interlace.DegenerateFitWarning, match=r"response 'Reaction' is fitted exactly .*lme4 returns sigma 0"):
        m = interlace.fit("Reaction ~ Days + (1 | Subject)", data)
    np.testing.assert_allclose(m.fe_params.to_numpy(), [1.0, 2.0], rtol=1e-12)
    assert m.scale < 1e-20
    with pytest.warns(interlace.DegenerateFitWarning, match=r"Kenward-Roger's adjustment is undefined"):
        kr = m.with_df_method("kenward-roger")
    assert np.isnan(kr.fe_df).all()


def test_not_an_exact_fit_is_quiet(sleep):
    """The exact-fit check does not fire on an ordinary (or a shifted) response."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
        interlace.fit("Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=sleep["Reaction"] + 1e6))


@pytest.mark.parametrize(("start", "pattern"), [
    ([np.nan, 1.0, 1.0], r"start: expected finite numbers, found \[nan, 1.0, 1.0\]"),
    ("ab", r"start: expected a sequence of theta values, found str 'ab'"),
    ([[1.0, 0.0, 1.0]], r"start: expected a 1-d sequence of theta values, found shape \(1, 3\)"),
    (["a", 1, 2], r"start: expected numbers"),
    (3.0, r"start: expected a sequence of theta values, found float"),
])
def test_bad_start(sleep, start, pattern):
    with pytest.raises(InterlaceError, match=pattern):
        interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, start=start)


@pytest.mark.parametrize(("value", "pattern"), [
    (10**20, r"max_evaluations: expected at most 2147483647, found 100000000000000000000"),
    (True, r"max_evaluations: expected a positive integer, found True"),
    (1e5, r"max_evaluations: expected a positive integer, found 100000.0"),
])
def test_bad_max_evaluations(sleep, value, pattern):
    with pytest.raises(InterlaceError, match=pattern):
        interlace.fit("Reaction ~ Days + (1 | Subject)", sleep, max_evaluations=value)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"groups": 3}, r"groups: expected a column name, a list of column names, or the rows' groups"),
    ({"random": 3}, r"random: expected a term like"),
    ({"random": "Days | "}, r"random: random term"),
    ({"solver": 1}, r"solver: expected 'auto', 'dense' or 'sparse', found 1"),
    ({"optimizer": None}, r"optimizer: expected one of .* found None"),
])
def test_bad_argument_types(sleep, kwargs, pattern):
    with pytest.raises(InterlaceError, match=pattern):
        interlace.fit("Reaction ~ Days", sleep, **({"groups": "Subject"} | kwargs if "groups" not in kwargs
                                                    and "random" not in kwargs else kwargs))


@pytest.mark.parametrize("as_groups", [
    lambda d: d["Subject"],
    lambda d: pl.Series("Subject", d["Subject"].astype(str).tolist()),
    lambda d: d["Subject"].to_numpy(),
    lambda d: pd.Series(d["Subject"].to_numpy()),
    lambda d: d["Subject"].rename("subject"),
], ids=["pandas Series", "polars Series", "numpy array", "unnamed Series", "renamed Series"])
def test_groups_as_the_rows_groups(sleep, as_groups):
    """statsmodels' habit: groups=df["g"] or an array, one group per row."""
    reference = interlace.fit("Reaction ~ Days", sleep, groups="Subject")
    before = sleep.copy()
    groups = as_groups(sleep)
    m = interlace.fit("Reaction ~ Days", sleep, groups=groups)
    pd.testing.assert_frame_equal(sleep, before)
    np.testing.assert_allclose(m.theta, reference.theta, rtol=1e-8)
    np.testing.assert_allclose(m.fe_params.to_numpy(), reference.fe_params.to_numpy(), rtol=1e-10)
    name = getattr(groups, "name", None)
    expected = name if isinstance(name, str) and name else "group"
    assert list(m.random_effects) == [expected]
    assert m.model.formula == f"Reaction ~ Days + (1 | {expected})"
    np.testing.assert_allclose(m.update().theta, m.theta, rtol=1e-8)  # the data the fit keeps has the column


def test_groups_series_of_the_wrong_length_or_a_clashing_name(sleep):
    with pytest.raises(DataError, match=r"groups: expected one group per row of data \(180 rows\), found 3"):
        interlace.fit("Reaction ~ Days", sleep, groups=np.array(["a", "b", "a"]))
    with pytest.raises(DataError, match=r"groups: the rows' groups are named 'Days' like a column"):
        interlace.fit("Reaction ~ Days", sleep, groups=sleep["Subject"].rename("Days"))


def test_groups_with_an_odd_column_name(sleep):
    data = sleep.rename(columns={"Subject": "my subject"})
    m = interlace.fit("Reaction ~ Days", data, groups="my subject")
    assert m.model.formula == "Reaction ~ Days + (1 | `my subject`)"
    assert list(m.random_effects) == ["my subject"]


def test_a_column_named_intercept_is_refused(sleep):
    data = sleep.assign(Intercept=np.arange(180.0) % 7)
    for formula in ("Reaction ~ Intercept + (1 | Subject)", "Reaction ~ log(Days + 1) + Intercept + (1 | Subject)",
                    "Reaction ~ Days + (Intercept | Subject)"):
        with pytest.raises(DataError, match=r"column 'Intercept': a predictor of this name would share"):
            interlace.fit(formula, data)
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", data)  # unused: no harm
    assert list(m.fe_params.index) == ["Intercept", "Days"]
    assert np.allclose(m.predict(data), m.fittedvalues)


@pytest.mark.parametrize(("column", "pattern"), [
    ([f"s{i}" for i in range(180)], r"fixed effects: 180 columns for 180 observations .*'x' is a factor"),
    (pd.date_range("2020-01-01", periods=180), r"column 'x': a predictor or response cannot have dtype datetime64"),
    (np.array([object()] * 180), r"column 'x': a predictor or response cannot have dtype object"),
])
def test_as_many_fixed_effects_as_rows_or_an_unusable_predictor(sleep, column, pattern):
    with pytest.raises(DataError, match=pattern):
        interlace.fit("Reaction ~ x + (1 | Subject)", sleep.assign(x=column))


def test_duplicate_column_names(sleep):
    data = pd.concat([sleep, sleep[["Days"]]], axis=1)
    with pytest.raises(DataError, match=r"data: duplicate column names 'Days' \(2 times\)"):
        interlace.fit("Reaction ~ Days + (1 | Subject)", data)
    m = interlace.fit("Reaction ~ 1 + (1 | Subject)", data)  # an unused duplicate is harmless
    assert m.nobs == 180
    table = pa.Table.from_arrays([pa.array(sleep["Reaction"]), pa.array(sleep["Days"]), pa.array(sleep["Days"]),
                                  pa.array(sleep["Subject"].astype(str))], names=["Reaction", "Days", "Days", "Subject"])
    with pytest.raises(DataError, match=r"data: duplicate column names 'Days' \(2 times\)"):
        interlace.fit("Reaction ~ 1 + (1 | Subject)", table)


def test_unusable_column_types_name_the_column(sleep):
    frame = pl.from_pandas(sleep.assign(Subject=sleep["Subject"].astype(str)))
    with pytest.raises(DataError, match=r"column 'l': dtype List\(Int64\) cannot be used in a model"):
        interlace.fit("Reaction ~ l + (1 | Subject)", frame.with_columns(l=pl.Series([[1, 2]] * 180)))
    with pytest.raises(DataError, match=r"column 's': dtype Struct"):
        interlace.fit("Reaction ~ Days + (1 | s)", frame.with_columns(s=pl.Series([{"a": 1}] * 180)))
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", frame.with_columns(l=pl.Series([[1, 2]] * 180)))
    assert m.nobs == 180  # an unused list column is harmless


def test_frames_that_are_not_eager_frames(sleep):
    with pytest.raises(DataError, match=r"data: expected columns of equal length, found y: 3, g: 2"):
        interlace.fit("y ~ 1 + (1 | g)", {"y": [1.0, 2.0, 3.0], "g": ["a", "b"]})
    with pytest.raises(DataError, match=r"found a lazy polars LazyFrame; collect it first .*\.collect\(\)"):
        interlace.fit("Reaction ~ Days + (1 | Subject)", pl.from_pandas(sleep).lazy())
    with pytest.raises(DataError, match=r"data: expected rows, found an empty frame"):
        interlace.fit("Reaction ~ Days + (1 | Subject)", sleep.iloc[:0])


def test_python_keyword_column_inside_a_transform(sleep):
    data = sleep.rename(columns={"Days": "if"})
    m = interlace.fit("Reaction ~ `if` + (`if` | Subject)", data)  # a plain column: fine
    assert list(m.fe_params.index) == ["Intercept", "if"]
    with pytest.raises(FormulaError, match=r"term 'log\(`if` \+ 1\)': column 'if' is named like a Python keyword"):
        interlace.fit("Reaction ~ log(`if` + 1) + (1 | Subject)", data)


def test_unicode_and_quoted_grouping_names(sleep):
    data = sleep.rename(columns={"Days": "jours_é", "Subject": "g:h"})
    m = interlace.fit("Reaction ~ jours_é + (1 | `g:h`)", data)
    assert list(m.random_effects) == ["g:h"] and list(m.fe_params.index) == ["Intercept", "jours_é"]


def test_degenerate_fits_give_clear_errors_or_nan_downstream(sleep):
    """A fit whose theta is not finite (as after a failed optimisation): Kenward-Roger
    gives NaN with a warning, the diagnostics a clear error naming the result."""
    from dataclasses import replace

    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    bad = replace(m, theta=np.full(3, np.nan), scale=np.nan, converged=False)
    with pytest.warns(interlace.DegenerateFitWarning, match="Kenward-Roger's adjustment is undefined"):
        assert np.isnan(bad.with_df_method("kenward-roger").fe_df).all()
    for diagnostic in (interlace.hlm_influence, interlace.hlm_leverage, interlace.hlm_augment):
        with pytest.raises(InterlaceError, match=r"result: the diagnostics need a fit with finite theta"):
            diagnostic(bad)
