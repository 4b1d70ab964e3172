"""Fits in a loop: what depends only on the formula and the frame's column names is
parsed once (:func:`interlace.fitting.model_frame.prepare`'s caches); a fit with
the caches warm is the fit with them cold, errors and warnings included, and a
different schema never reuses another's parse."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import DataError, FormulaError
from interlace.fitting import model_frame

FORMULA = "y ~ x + (1 | subj) + (1 | item)"


def _frame(seed: int, n_subj: int = 12, n_item: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, n_subj, 200)
    item = rng.integers(0, n_item, 200)
    x = rng.standard_normal(200)
    y = 1 + 0.5 * x + rng.standard_normal(n_subj)[subj] + 0.5 * rng.standard_normal(n_item)[item] \
        + rng.standard_normal(200)
    return pd.DataFrame({"y": y, "x": x, "subj": pd.Categorical(subj.astype(str)),
                         "item": pd.Categorical(item.astype(str))})


def _clear():
    for cached in model_frame._cached_functions.values():
        cached.cache_clear()


def _same_fit(a, b):
    np.testing.assert_array_equal(a.theta, b.theta)
    pd.testing.assert_series_equal(a.fe_params, b.fe_params)
    pd.testing.assert_series_equal(a.fe_bse, b.fe_bse)
    assert a.llf == b.llf and a.model.formula == b.model.formula
    for name in a.random_effects:
        pd.testing.assert_series_equal(a.random_effects[name], b.random_effects[name])


def test_a_warm_fit_is_the_cold_fit():
    frames = [_frame(seed) for seed in range(3)]
    warm = [interlace.fit(FORMULA, f) for f in frames]
    for frame, fit in zip(frames, warm, strict=True):
        _clear()
        _same_fit(interlace.fit(FORMULA, frame), fit)
    info = model_frame._cached_functions[model_frame._formula_terms].cache_info()
    assert info.maxsize == model_frame.PLAN_CACHE_SIZE and info.currsize >= 1


def test_the_parse_is_reused_for_the_same_formula_and_columns():
    cached = model_frame._cached_functions[model_frame._columns_read]
    _clear()
    interlace.fit(FORMULA, _frame(1))
    interlace.fit(FORMULA, _frame(2))
    assert cached.cache_info().hits == 1 and cached.cache_info().misses == 1
    interlace.fit(FORMULA, _frame(3)[["item", "y", "subj", "x"]])  # other column order: another entry
    assert cached.cache_info().misses == 2


def test_errors_are_raised_every_time_and_never_cached():
    good = _frame(4)
    renamed = good.rename(columns={"x": "z"})
    for _ in range(2):
        with pytest.raises(DataError, match=r"formula 'y ~ x': column 'x' not found in data \(columns: y, z, subj"):
            interlace.fit(FORMULA, renamed)
        interlace.fit(FORMULA, good)
    for _ in range(2):
        with pytest.raises(FormulaError, match="no random-effects term"):
            interlace.fit("y ~ x", good)
    with pytest.raises(interlace.InterlaceError, match=r"groups: expected column names, found 3"):
        interlace.fit("y ~ x", good, groups=["subj", 3])


def test_a_changed_schema_is_parsed_and_built_anew():
    frame = _frame(5)
    interlace.fit(FORMULA, frame)
    as_factor = frame.assign(x=np.where(frame["x"] > 0, "hi", "lo"))  # same names, x now a factor
    fit = interlace.fit(FORMULA, as_factor)
    assert list(fit.fe_params.index) == ["Intercept", "x[T.lo]"]
    more_levels = frame.assign(subj=pd.Categorical(frame["subj"].astype(str),
                                                   categories=[*frame["subj"].cat.categories, "unused"]))
    fit = interlace.fit(FORMULA, more_levels)  # a new category (unused: dropped, as before)
    assert fit.ngroups["subj"] == frame["subj"].nunique()
    _clear()
    _same_fit(fit, interlace.fit(FORMULA, more_levels))


def test_groups_as_a_list_or_a_tuple_and_warnings_every_time():
    frame = _frame(6)
    a = interlace.fit("y ~ x", frame, groups=["subj", "item"])
    b = interlace.fit("y ~ x", frame, groups=("subj", "item"))
    _same_fit(a, b)
    assert a.model.formula == "y ~ x + (1 | subj) + (1 | item)"
    missing = frame.copy()
    missing.loc[0, "y"] = np.nan
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            interlace.fit(FORMULA, missing)
        assert any("1 row with missing values was dropped" in str(w.message) for w in caught)
