"""R's reading of formula terms (interlace/formula/rexpr.py, rtransforms.py, rformula.py)
against R: the columns and names of every transform, on the fitting data and on new
data (R's predict: poly's coefficients, scale's centre and scale), lme4 fits with
transforms and an offset, lmerTest's anova of a poly term, and a clear error for
every form R would read differently from formulaic.

The R values are tests/data/reference/formula_transforms.json, written by
tests/data/make_formula_reference.R.
"""

from __future__ import annotations

import json
import re
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import interlace
from interlace.formula.fixed import design_for_new_data, fixed_design
from interlace.formula.rexpr import deparse, parse
from interlace.formula.rformula import formula_variables, r_names, translate

from .reference import r_fixef_name

REFERENCE = Path(__file__).parent / "data" / "reference" / "formula_transforms.json"

COLUMN_ABS = 1e-10  # a transformed column against R's (poly included)
FIXEF_IN_SE = 1e-3  # |beta - beta_lme4| <= FIXEF_IN_SE * SE
THETA_ABS = 1e-3  # flat optima (Pixel): lme4's stopping point is not unique to 2e-4
DEVIANCE_ABOVE = 1e-6  # -2 llf may be at most this much above lme4's
FITTED_IN_SIGMA = 1e-3  # fitted values and predictions, relative to sigma
ANOVA_F_REL = 1e-3
DENDF_REL = 1e-2


@cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def _as_list(value) -> list:
    """jsonlite writes a vector of one as a scalar."""
    return value if isinstance(value, list) else [value]


def _frame(columns: dict) -> pd.DataFrame:
    out = pd.DataFrame(columns)
    out["f"] = pd.Categorical(out["f"], categories=reference()["f_levels"])
    return out


def _r_name(name: str) -> str:
    """interlace's column name as R writes it, full dummy coding too (``g[a]`` -> ``ga``)."""
    return re.sub(r"(?<=[\w.)])\[([^\]]+)\]", r"\1", r_fixef_name(name))


def _number(value) -> float:
    """A JSON number, or R's NA/NaN/Inf/-Inf written as a string."""
    return float(value.replace("NA", "nan")) if isinstance(value, str) else float(value)


def _values(columns: list) -> np.ndarray:
    return np.array([[_number(v) for v in _as_list(c)] for c in columns], dtype=float).T


TERMS = [t["rhs"] for t in reference()["terms"]]


@pytest.mark.parametrize("rhs", TERMS)
def test_term_columns_and_names_match_r(rhs):
    case = next(t for t in reference()["terms"] if t["rhs"] == rhs)
    data, new = _frame(reference()["data"]), _frame(reference()["newdata"])
    design = fixed_design(f"y ~ {rhs}", data)
    # R's names in R's order: an interaction's variables as they first appear in the formula
    assert [_r_name(n) for n in design.column_names] == case["columns"]
    np.testing.assert_allclose(design.matrix, _values(case["values"]), rtol=0, atol=COLUMN_ABS)
    if case["new_values"] is not None:
        X = design_for_new_data(design.model_spec, new)
        np.testing.assert_allclose(X, _values(case["new_values"]), rtol=0, atol=COLUMN_ABS, equal_nan=True)


@pytest.mark.parametrize("item", reference()["deparse"], ids=lambda item: item["text"])
def test_deparse_spells_names_as_r_term_labels(item):
    assert deparse(parse(item["text"])) == item["term_label"]


def test_poly_predicts_new_data_with_the_fit_coefficients():
    data = _frame(reference()["data"])
    case = next(t for t in reference()["terms"] if t["rhs"] == "poly(x, 3)")
    design = fixed_design("y ~ poly(x, 3)", data)
    state = next(iter(design.model_spec.transform_state.values()))
    alpha = state["poly#1"]["alpha"]
    assert len(alpha) == 3
    # the recurrence with the stored coefficients on the fitting rows gives the QR columns again
    again = design_for_new_data(design.model_spec, data)
    np.testing.assert_allclose(again, _values(case["values"]), rtol=0, atol=COLUMN_ABS)
    # and rows far from the data follow R's predict, not a new orthogonalisation
    np.testing.assert_allclose(design_for_new_data(design.model_spec, _frame(reference()["newdata"])),
                               _values(case["new_values"]), rtol=0, atol=COLUMN_ABS)


# ----- fits -------------------------------------------------------------------------------

FITS = [f["formula"] for f in reference()["fits"]]


@cache
def _fit(formula: str):
    case = next(f for f in reference()["fits"] if f["formula"] == formula)
    data = interlace.load_dataset("Pixel" if formula.startswith("pixel") else "sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return interlace.fit(formula, data, method="REML" if case["REML"] else "ML"), case


@pytest.mark.parametrize("formula", FITS)
def test_fit_with_transforms_matches_lme4(formula):
    m, case = _fit(formula)
    assert [r_fixef_name(n) for n in m.fe_params.index] == _as_list(case["fixef_names"])
    assert np.all(np.abs(m.fe_params.to_numpy() - case["fixef"]) <= FIXEF_IN_SE * m.fe_bse.to_numpy())
    assert m.theta_names == tuple(_as_list(case["theta_names"]))
    np.testing.assert_allclose(m.theta, _as_list(case["theta"]), rtol=0, atol=THETA_ABS)
    assert -2 * m.llf <= -2 * case["logLik"] + DEVIANCE_ABOVE
    for name, columns in case["ranef_columns"].items():
        effects = m.random_effects[name]
        ours = list(effects.columns) if isinstance(effects, pd.DataFrame) else [effects.name]
        assert [r_fixef_name(c) for c in ours] == _as_list(columns)
    tolerance = FITTED_IN_SIGMA * case["sigma"]
    np.testing.assert_allclose(m.fittedvalues, case["fitted"], rtol=0, atol=tolerance)
    np.testing.assert_allclose(m.resid, case["residuals"], rtol=0, atol=tolerance)


@pytest.mark.parametrize("formula", FITS)
def test_predict_with_transforms_matches_lme4(formula):
    m, case = _fit(formula)
    new = pd.DataFrame(case["newdata"])
    tolerance = FITTED_IN_SIGMA * case["sigma"]
    np.testing.assert_allclose(m.predict(new), case["predict"], rtol=0, atol=tolerance)
    np.testing.assert_allclose(m.predict(new, include_re=False), case["predict_population"], rtol=0, atol=tolerance)


@pytest.mark.parametrize("formula", FITS)
def test_type3_anova_of_transformed_terms_matches_lmertest(formula):
    m, case = _fit(formula)
    table = interlace.anova(m)
    ref = case["anova"]
    assert list(table.index) == _as_list(ref["terms"])
    assert table["NumDF"].tolist() == _as_list(ref["NumDF"])
    np.testing.assert_allclose(table["F value"], _as_list(ref["F"]), rtol=ANOVA_F_REL)
    np.testing.assert_allclose(table["DenDF"], _as_list(ref["DenDF"]), rtol=DENDF_REL)


def test_prediction_on_fitting_rows_uses_the_fit_state():
    """scale() and poly() of a few rows would differ from the fit's columns; R's (and
    interlace's) predict evaluates them with the fit's centre, scale and coefficients."""
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ poly(Days, 2) + (scale(Days) | Subject)", sleep)
    rows = sleep.iloc[[3, 40, 41, 170]]
    np.testing.assert_allclose(m.predict(rows), m.fittedvalues[[3, 40, 41, 170]], rtol=1e-10)


def test_offset_is_the_model_of_y_minus_offset():
    sleep = interlace.load_dataset("sleepstudy")
    m, _ = _fit("Reaction ~ Days + offset(0.5 * Days) + (1 | Subject)")
    shifted = interlace.fit("I(Reaction - 0.5 * Days) ~ Days + (1 | Subject)", sleep, method="ML")
    offset = 0.5 * sleep["Days"].to_numpy()
    assert m.llf == pytest.approx(shifted.llf, abs=1e-8)
    np.testing.assert_allclose(m.theta, shifted.theta, atol=1e-8)
    np.testing.assert_allclose(m.fittedvalues, shifted.fittedvalues + offset, atol=1e-6)
    np.testing.assert_allclose(m.resid, sleep["Reaction"].to_numpy() - m.fittedvalues, atol=1e-10)
    np.testing.assert_array_equal(m.model.endog, sleep["Reaction"].to_numpy())
    np.testing.assert_allclose(m.predict(include_re=False), shifted.predict(include_re=False) + offset, atol=1e-6)
    np.testing.assert_allclose(m.simulate(2, seed=3) - shifted.simulate(2, seed=3), np.column_stack([offset] * 2),
                               atol=1e-6)
    again = m.refit(m.model.endog)
    assert again.llf == pytest.approx(m.llf, abs=1e-8)
    np.testing.assert_allclose(again.fe_params, m.fe_params, atol=1e-6)
    np.testing.assert_array_equal(again.model.endog, m.model.endog)


def test_pandas_and_polars_give_the_same_fit():
    sleep = interlace.load_dataset("sleepstudy")
    formula = ("Reaction ~ poly(Days, 2) + I(Days > 4) + factor(Days %/% 3) + offset(log(Days + 1)) "
               "+ (scale(Days) | Subject)")
    a = interlace.fit(formula, sleep)
    b = interlace.fit(formula, pl.from_pandas(sleep))
    assert list(a.fe_params.index) == list(b.fe_params.index)
    assert "factor(Days%/%3)[T.1]" in a.fe_params.index
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10)
    new = sleep.head(4)
    np.testing.assert_allclose(a.predict(new), b.predict(pl.from_pandas(new)), rtol=1e-10)


# ----- formula-level reading --------------------------------------------------------------


def test_formula_operators_keep_r_meaning():
    sleep = interlace.load_dataset("sleepstudy")
    assert fixed_design("Reaction ~ Days^2", sleep).column_names == ("Intercept", "Days")
    crossed = fixed_design("y ~ (a + b)^2", _frame(reference()["data"]).assign(a=lambda d: d.x, b=lambda d: d.z))
    assert crossed.column_names == ("Intercept", "a", "b", "a:b")
    for formula in ("Reaction ~ np.log(Days + 1)", "Reaction ~ C(Days)", "Reaction ~ 0 + Days", "Reaction ~ Days - 1"):
        fixed_design(formula, sleep)  # still read by formulaic as before


def test_translation_and_names():
    t = translate("log(y) ~ x + poly(x, 2):g + offset(z) - 1")
    assert t.lhs == "_r_('log(y)', y)" and t.response_name == "log(y)"
    assert t.rhs == "x + _r_('poly(x, 2)', x):g - 1"
    assert t.offsets == ("z",)
    assert r_names("_r_('poly(x, 2)', x)[2]:g[T.b]") == "poly(x, 2)2:g[T.b]"
    assert r_names("_r_('factor(x)', x)[T.10]") == "factor(x)[T.10]"
    assert formula_variables("y ~ poly(x, 2, raw = TRUE) + I(x * pi) + scale(w, center = FALSE)") == ["y", "x", "w"]


def test_a_column_used_only_inside_a_transform_is_read():
    sleep = interlace.load_dataset("sleepstudy")[["Reaction", "Days", "Subject"]]
    m = interlace.fit("Reaction ~ I(Days^2) + (1 | Subject)", sleep)
    assert list(m.fe_params.index) == ["Intercept", "I(Days^2)"]
    with pytest.raises(interlace.DataError, match=r"column 'q' not found"):
        interlace.fit("Reaction ~ log(q) + (1 | Subject)", sleep)


UNSUPPORTED = {
    "Reaction ~ Days %in% Subject": "Days %in% Subject",
    "Reaction ~ ns(Days, 3)": "ns(Days, 3)",
    "Reaction ~ bs(Days)": "bs(Days)",
    "Reaction ~ .": "'.'",
    "Reaction ~ foo(Days)": "foo(Days)",
    "Reaction ~ center(Days)": "center(Days)",
    "Reaction ~ I(Days // 2)": "I(Days // 2)",
    "Reaction ~ I(Days % 2)": "I(Days % 2)",
    "Reaction ~ I(Days[0])": "I(Days[0])",
    "Reaction ~ I(Days.mean())": "I(Days.mean())",
    "Reaction ~ I(np.log(Days + 1))": "I(np.log(Days + 1))",
    "Reaction ~ Days + 2": "'2'",
    "Reaction ~ Days > 2": "Days > 2",
    "Reaction ~ offset(Days):Subject": "offset(Days):Subject",
    "Reaction ~ Days - offset(Days)": "Days - offset(Days)",
    "Reaction ~ poly(Days, Days, 2)": "poly(Days, Days, 2)",
    "Reaction ~ poly(Days, Days)": "poly(Days, Days)",
    "Reaction ~ I(poly(Days, 2))": "I(poly(Days, 2))",
    "Reaction ~ log(Subject)": "log(Subject)",
    "Reaction ~ (Days + Subject)^Days": "(Days + Subject)^Days",
    "Reaction ~ poly(Days, 10)": "poly(Days, 10)",
    "Reaction ~ scale(Days, center = Days)": "scale(Days, center = Days)",
    "Reaction ~ log(Days, bse = 2)": "log(Days, bse = 2)",
    "Reaction ~ I('a')": "I('a')",
}


@pytest.mark.parametrize("formula", sorted(UNSUPPORTED))
def test_forms_r_reads_differently_are_errors_naming_the_term(formula):
    sleep = interlace.load_dataset("sleepstudy")
    with pytest.raises((interlace.FormulaError, interlace.DataError)) as error:
        interlace.fit(formula + " + (1 | Subject)", sleep)
    assert UNSUPPORTED[formula] in str(error.value)
    assert "_r_(" not in str(error.value)


def test_random_term_transforms_and_their_errors():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (poly(Days, 2) | Subject)", sleep)
    assert list(m.random_effects["Subject"].columns) == ["Intercept", "poly(Days, 2)1", "poly(Days, 2)2"]
    with pytest.raises(interlace.FormulaError, match=r"offset\(\) belongs to the fixed part"):
        interlace.fit("Reaction ~ Days + (offset(Days) | Subject)", sleep)
    with pytest.raises(interlace.FormulaError, match=r"ns\(Days, 3\)"):
        interlace.fit("Reaction ~ Days + (ns(Days, 3) | Subject)", sleep)


def test_new_level_of_a_factor_transform_is_refused():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ factor(Days %/% 3) + (1 | Subject)", sleep)
    with pytest.raises(interlace.DataError, match=r"factor\(Days%/%3\).*'4'"):
        m.predict(pd.DataFrame({"Days": [12.0], "Subject": ["308"]}))


def test_constants_shadowed_by_columns_are_refused():
    data = interlace.load_dataset("sleepstudy").assign(pi=1.0)
    with pytest.raises(interlace.FormulaError, match="both a column and R's constant"):
        interlace.fit("Reaction ~ I(Days * pi) + (1 | Subject)", data)


def test_quoted_and_dotted_column_names_in_transforms():
    sleep = interlace.load_dataset("sleepstudy")
    data = sleep.rename(columns={"Days": "my days"}).assign(**{"d.x": sleep["Days"]})
    m = interlace.fit("Reaction ~ log(`my days` + 1) + I(d.x^2) + (`my days` | Subject)", data)
    plain = interlace.fit("Reaction ~ log(Days + 1) + I(Days^2) + (Days | Subject)", sleep)
    assert list(m.fe_params.index) == ["Intercept", "log(`my days` + 1)", "I(d.x^2)"]
    assert list(m.random_effects["Subject"].columns) == ["Intercept", "my days"]
    np.testing.assert_allclose(m.fe_params.to_numpy(), plain.fe_params.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(m.predict(data.head(3)), m.fittedvalues[:3], rtol=1e-10)
