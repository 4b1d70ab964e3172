"""The glmer reference data are complete and consistent: every case's JSON and data load, the
data are the rows glmer fitted, and the level orders are R's. (No fits: see spec/glmm.md.)"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, ndtr

from .glmm_reference import (
    COMPUTED_COLUMNS,
    HOLDOUT_DIR,
    REFERENCE_DIR,
    all_cases,
    case_id,
    computed_columns,
    dataset,
    load,
    schema,
    used_columns,
)

CASES = all_cases()
IDS = [case_id(c) for c in CASES]

FIELDS = (
    "dataset formula family link nAGQ weights offset factor_levels versions nobs ngroups fixef vcov se z p "
    "theta theta_lower varcorr logLik logLik_df AIC BIC deviance minus2logLik isSingular ranef "
    "fitted_response linear_predictor residuals_deviance residuals_pearson confint_wald optimizer feval "
    "conv_messages fit_warnings glmer_seconds"
).split()

INVERSE_LINK = {
    "logit": expit,
    "probit": ndtr,
    "cloglog": lambda eta: -np.expm1(-np.exp(eta)),
    "log": np.exp,
}


def test_both_sets_are_there_and_every_json_is_listed_once():
    sets = {c["set"] for c in CASES}
    assert sets == {"shared", "holdout"}
    assert len({c["json"] for c in CASES}) == len(CASES)
    for set_name, directory in (("shared", REFERENCE_DIR), ("holdout", HOLDOUT_DIR / "reference")):
        on_disk = {p.name for p in directory.glob("*.json")} - {"index.json"}
        assert on_disk == {c["json"] for c in CASES if c["set"] == set_name}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_json_matches_its_index_entry(case):
    ref = load(case)
    assert set(FIELDS) <= set(ref)
    for key in ("dataset", "formula", "family", "link", "nAGQ"):
        assert ref[key] == case[key]
    assert ref["weights"] == case.get("weights")
    assert ref["offset"] == case.get("offset")
    assert ref["family"] in ("binomial", "poisson")
    assert ref["versions"]["lme4"] == "1.1.31"
    assert list(ref["se"]) == list(ref["fixef"]) == ref["vcov"]["rownames"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_data_are_the_rows_glmer_fitted(case):
    ref = load(case)
    frame = dataset(case)
    used = used_columns(case, frame)
    assert used, case["formula"]
    n = len(frame.dropna(subset=used))
    assert ref["nobs"] == n
    for vector in (
        "fitted_response",
        "linear_predictor",
        "residuals_deviance",
        "residuals_pearson",
    ):
        assert len(ref[vector]) == n, vector
    # every name in the formula is a column or one of the functions the formulas may use
    names = set(re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", case["formula"]))
    assert names - set(frame.columns) <= {"cbind", "I", "log", "factor"}, case["formula"]
    for column in (case.get("weights"), case.get("offset")):
        if column:
            assert column in frame.columns
            assert pd.api.types.is_float_dtype(frame[column]) or pd.api.types.is_integer_dtype(
                frame[column]
            )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_factor_levels_are_rs(case):
    ref = load(case)
    frame = dataset(case)
    assert ref["factor_levels"], "every case has a factor"
    for column, levels in ref["factor_levels"].items():
        assert isinstance(frame[column].dtype, pd.CategoricalDtype), column
        assert list(frame[column].cat.categories) == levels, column
        assert not frame[column].isna().any(), f"{column}: a value outside R's levels"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_column_classes_follow_the_schema(case):
    frame = dataset(case)
    spec = schema(case)
    assert set(spec) <= set(frame.columns)
    assert set(frame.columns) - set(spec) == set(computed_columns(case))
    for column, s in spec.items():
        if s["class"] == "factor":
            assert list(frame[column].cat.categories) == s["levels"], column
        else:
            assert pd.api.types.is_numeric_dtype(frame[column]), column


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grouping_factors_and_their_levels(case):
    """Random effects of a plain grouping factor are listed in R's level order of the levels that occur."""
    ref = load(case)
    frame = dataset(case)
    for group, blups in ref["ranef"].items():
        assert ref["ngroups"][group] == len(blups["levels"]), group
        if group in frame.columns:
            occurring = frame[group].cat.remove_unused_categories().cat.categories
            assert blups["levels"] == list(occurring), group
        for term in blups["terms"]:
            assert len(blups["values"][term]) == len(blups["cond_sd"][term]) == len(blups["levels"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fitted_values_are_the_inverse_link_of_the_linear_predictor(case):
    ref = load(case)
    eta = np.array(ref["linear_predictor"], dtype=float)
    mu = np.array(ref["fitted_response"], dtype=float)
    np.testing.assert_allclose(INVERSE_LINK[ref["link"]](eta), mu, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", [c for c in CASES if c.get("weights")], ids=lambda c: case_id(c))
def test_proportion_responses_times_weights_are_counts(case):
    frame = dataset(case)
    response = case["formula"].split("~")[0].strip()
    counts = frame[response] * frame[case["weights"]]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)


def test_computed_columns_are_the_notes():
    cases = [c for c in CASES if computed_columns(c)]
    assert {c["dataset"] for c in cases} == {"Mmmec.csv"}
    assert {c["set"] for c in cases} == {"shared", "holdout"}
    for case in cases:
        frame = dataset(case)
        for column in computed_columns(case):
            assert COMPUTED_COLUMNS[column][0] in load(case)["note"]
            np.testing.assert_array_equal(frame[column], np.log(frame["expected"]))


def test_holdout_schema_lists_every_holdout_csv():
    spec = json.loads((HOLDOUT_DIR / "data" / "schema.json").read_text())
    assert set(spec) == {p.stem for p in (HOLDOUT_DIR / "data").glob("*.csv")}
    assert {c["dataset"].removesuffix(".csv") for c in CASES if c["set"] == "holdout"} == set(spec)
