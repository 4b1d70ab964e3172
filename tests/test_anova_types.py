"""anova of types I, II and III, drop1 and ranova against lmerTest 3.1-3
(tests/data/anova/, made by tests/data/make_anova_reference.R)."""

from __future__ import annotations

import json
import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.fitting.linear import assemble
from interlace.fitting.objective import Objective
from interlace.fitting.optimize import OptimizationRecord
from interlace.inference.ranova import random_bars, reduced_models

from .reference import DATA_DIR, case_data

ANOVA_DIR = DATA_DIR / "anova"
TABLE_REL = 1e-4
"""Every number of every table, relative to lmerTest's."""
P_ABS = 1e-10
"""p-values: within TABLE_REL relative or this absolute."""


def _index() -> list[dict]:
    return json.loads((ANOVA_DIR / "index.json").read_text())["cases"]


@cache
def _load(name: str) -> dict:
    return json.loads((ANOVA_DIR / f"{name}.json").read_text())


CASES = [c["name"] for c in _index()]
ANOVA_CASES = [n for n in CASES if "anova" in _load(n)]
RANOVA_CASES = [(n, key) for n in CASES for key in ("ranova", "ranova_complete") if key in _load(n)]


def _data(ref: dict) -> pd.DataFrame:
    data = case_data({"dataset": ref["dataset"]})
    dropped = np.asarray(ref["dropped_rows"], dtype=int) - 1
    return data.drop(index=data.index[dropped]).reset_index(drop=True) if dropped.size else data


@cache
def _fit(name: str) -> interlace.CrossedLMEResult:
    ref = _load(name)
    prior = {k: ref[k] for k in ("weights", "offset") if ref.get(k)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.RankDeficiencyWarning)
        return interlace.fit(ref["formula"], _data(ref), method="REML" if ref["REML"] else "ML", **prior)


@cache
def _at_r_theta(name: str) -> interlace.CrossedLMEResult:
    """The fit's model at lme4's theta: the F tests' df move with theta, and the
    optimum is flat to ~1e-6 in theta (BodyWeight), so this compares the algorithms."""
    fitted = _fit(name)
    theta = np.asarray(_load(name)["theta"], dtype=float)
    reml = fitted.method == "REML"
    record = OptimizationRecord("lme4 theta", theta, Objective(fitted._system, reml)(theta), 0, True, "reference")
    return assemble(fitted._conditioning, fitted._system, record, reml, fitted.method, fitted.df_method,
                    fitted.model.formula, fitted.model.data, fitted.model.dropped_rows, fitted.fit_options)


def _reference_table(table: dict) -> pd.DataFrame:
    values = {c: [np.nan if v == "NA" else v for v in table["values"][c]] for c in table["columns"]}
    return pd.DataFrame(values, index=table["rows"], dtype=float)


def _assert_table(got: pd.DataFrame, table: dict, p_column: str) -> None:
    ref = _reference_table(table)
    assert got.index.tolist() == ref.index.tolist()
    assert got.columns.tolist() == ref.columns.tolist()
    if "title" in table:
        assert got.attrs["title"] == table["title"]
    for column in ref.columns:
        a, b = got[column].to_numpy(dtype=float), ref[column].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), column
        atol = P_ABS if column == p_column else 0.0
        np.testing.assert_allclose(a, b, rtol=TABLE_REL, atol=atol, err_msg=column)


def _anova_keys(name: str) -> list[str]:
    return list(_load(name)["anova"])


def _with_ddf(result, key: str):
    return result.with_df_method("kenward-roger") if key.endswith("Kenward-Roger") else result


ANOVA_TABLES = [(n, key) for n in ANOVA_CASES for key in _anova_keys(n)]


@pytest.mark.parametrize(("name", "key"), ANOVA_TABLES, ids=[f"{n}-{k}" for n, k in ANOVA_TABLES])
def test_type_tables_match_lmertest_at_lme4_theta(name, key):
    kind = key.split("_")[0].removeprefix("type")  # "I", "II", "III": lmerTest's spelling
    table = interlace.anova(_with_ddf(_at_r_theta(name), key), type=kind)
    _assert_table(table, _load(name)["anova"][key], "Pr(>F)")


@pytest.mark.parametrize(("name", "key"), ANOVA_TABLES, ids=[f"{n}-{k}" for n, k in ANOVA_TABLES])
def test_type_tables_match_lmertest_at_own_optimum(name, key):
    kind = {"I": 1, "II": 2, "III": 3}[key.split("_")[0].removeprefix("type")]
    table = interlace.anova(_with_ddf(_fit(name), key), type=kind)
    _assert_table(table, _load(name)["anova"][key], "Pr(>F)")


DROP1_CASES = [n for n in ANOVA_CASES if n != "cake_rank_deficient"]


@pytest.mark.parametrize("name", DROP1_CASES)
def test_drop1_matches_lmertest(name):
    _assert_table(interlace.drop1(_fit(name)), _load(name)["drop1"], "Pr(>F)")
    _assert_table(interlace.drop1(_at_r_theta(name)), _load(name)["drop1"], "Pr(>F)")


@pytest.mark.parametrize(("name", "key"), RANOVA_CASES, ids=[f"{n}-{k}" for n, k in RANOVA_CASES])
def test_ranova_matches_lmertest(name, key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)  # lme4 says "boundary (singular) fit" too
        table = interlace.ranova(_fit(name), reduce_terms=key == "ranova")
    _assert_table(table, _load(name)[key], "Pr(>Chisq)")
    assert table["npar"].dtype.kind == "i"


def test_rank_deficient_drop1_tests_the_dimensions_the_term_adds():
    # lme4 drops temp's column (it is temperature's value); lmerTest's drop1 then tests
    # temperature on 5 rows of rank 5 (one of them with intercept and recipe entries),
    # but the design has 4 dimensions beyond recipe + temp: interlace tests those 4
    name = "cake_rank_deficient"
    ref = _load(name)
    assert ref["drop1_hypotheses"]["temperature"]["rank"] == 5
    assert ref["drop1_dimensions_beyond"] == {"recipe": 2, "temperature": 4, "temp": 0}
    table = interlace.drop1(_fit(name))
    r_table = _reference_table(ref["drop1"])
    np.testing.assert_allclose(table.loc["recipe"].to_numpy(float), r_table.loc["recipe"].to_numpy(),
                               rtol=TABLE_REL)
    assert table.loc["temp"].isna().all() and r_table.loc["temp"].isna().all()
    assert table.loc["temperature", "NumDF"] == 4
    # the same hypothesis, the mean in the span of recipe and temp: temperature's
    # sequential test after them (its 4 columns left beside temp's)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.RankDeficiencyWarning)
        reordered = interlace.fit("angle ~ recipe + temp + temperature + (1 | recipe:replicate)",
                                  interlace.load_dataset("cake"))
    last = interlace.anova(reordered, type=1).loc["temperature"]
    assert last["NumDF"] == 4
    assert table.loc["temperature", "F value"] == pytest.approx(last["F value"], rel=1e-8)


# ----- properties that hold whatever lmerTest says ------------------------------------------


@pytest.mark.parametrize("formula", ["diameter ~ sample + (1 | plate)",
                                     "Coloursaturation ~ TVset + Picture + (1 | Assessor)"])
def test_types_agree_for_a_balanced_design(formula):
    data = interlace.load_dataset("Penicillin" if formula.startswith("diameter") else "TVbo")
    m = interlace.fit(formula, data)
    tables = [interlace.anova(m, type=kind) for kind in (1, 2, 3)]
    for other in tables[1:]:
        assert other.index.tolist() == tables[0].index.tolist()
        np.testing.assert_allclose(other.to_numpy(float), tables[0].to_numpy(float), rtol=1e-8)


def test_types_differ_for_an_unbalanced_design():
    # the balanced check above is not vacuous: here the three types test different hypotheses
    m = _fit("BodyWeight_slopes")
    f = {kind: interlace.anova(m, type=kind)["F value"] for kind in (1, 2, 3)}
    assert f[1]["Diet"] != pytest.approx(f[2]["Diet"], rel=1e-3)
    assert f[2]["Time"] != pytest.approx(f[3]["Time"], rel=1e-3)


def test_type1_depends_on_term_order_and_type3_does_not():
    first, second = _fit("Exam_main_effects"), _fit("Exam_main_effects_reordered")
    one, other = interlace.anova(first, type="I"), interlace.anova(second, type="I")
    assert one.loc["sex", "F value"] != pytest.approx(other.loc["sex", "F value"], rel=1e-2)
    # the last term of a sequential table is its type III test
    three = interlace.anova(first, type="III")
    assert one.loc["schavg", "F value"] == pytest.approx(three.loc["schavg", "F value"], rel=1e-8)
    reordered = interlace.anova(second, type=3).loc[three.index]
    np.testing.assert_allclose(reordered.to_numpy(float), three.to_numpy(float), rtol=1e-8)


def test_drop1_without_interactions_is_the_type3_table():
    m = _fit("Exam_main_effects")
    drop1, type3 = interlace.drop1(m), interlace.anova(m, type=3)
    assert drop1.index.tolist() == type3.index.tolist() == ["standLRT", "sex", "schavg"]
    np.testing.assert_allclose(drop1.to_numpy(float), type3.to_numpy(float), rtol=1e-10)
    assert drop1.attrs["title"] == "Single term deletions using Satterthwaite's method:"


def test_type_names_as_lmertest():
    m = _fit("BodyWeight_slopes")
    for kind, same in [(1, ("I", "1")), (2, ("II", "2")), (3, ("III", "3"))]:
        expected = interlace.anova(m, type=kind)
        for value in same:
            pd.testing.assert_frame_equal(interlace.anova(m, type=value), expected)
    assert interlace.anova(m).attrs["title"] == "Type III Analysis of Variance Table with Satterthwaite's method"


@pytest.mark.parametrize("value", [4, 0, "IV", "iii", 2.0, True, None, [1]])
def test_bad_type_is_an_error_naming_type(value):
    with pytest.raises(interlace.InterlaceError, match=r"^type: expected 1, 2 or 3 .*found"):
        interlace.anova(_fit("sleepstudy_slopes_REML"), type=value)


def test_several_models_keep_the_likelihood_ratio_table():
    sleep = interlace.load_dataset("sleepstudy")
    m0 = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep, method="ML")
    m1 = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, method="ML")
    table = interlace.anova(m0, m1, type=2)
    assert table.columns.tolist()[-1] == "Pr(>Chisq)"


def test_drop1_scope():
    m = _fit("BodyWeight_slopes")
    pd.testing.assert_frame_equal(interlace.drop1(m, scope=["Time:Diet"]), interlace.drop1(m))
    with pytest.raises(interlace.InterlaceError, match=r"^scope: only terms contained in no other term"):
        interlace.drop1(m, scope=["Time"])
    with pytest.raises(interlace.InterlaceError, match=r"^scope: expected a list of term labels"):
        interlace.drop1(m, scope="Time:Diet")


@pytest.fixture(scope="module")
def glmm():
    cbpp = interlace.load_dataset("cbpp")
    return interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")


def test_generalized_fits_are_refused(glmm):
    with pytest.raises(interlace.InterlaceError, match=r"^anova: a generalized fit"):
        interlace.anova(glmm, type=2)
    for function in (interlace.drop1, interlace.ranova):
        with pytest.raises(interlace.InterlaceError, match=rf"^{function.__name__}: expected a linear mixed model"):
            function(glmm)
    with pytest.raises(interlace.InterlaceError, match=r"^drop1: expected a fitted linear mixed model"):
        interlace.drop1("not a model")


def test_ranova_refuses_a_refit_on_other_rows():
    # a grouping column missing on some rows: the model without its term would use them
    sleep = interlace.load_dataset("sleepstudy")
    sleep["half"] = pd.Categorical(np.where(sleep.index % 2 == 0, "a", "b"))
    sleep.loc[:9, "half"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.MissingValuesWarning)
        warnings.simplefilter("ignore", interlace.SingularFitWarning)  # half's variance is 0
        m = interlace.fit("Reaction ~ Days + (1 | Subject) + (1 | half)", sleep)
        with pytest.raises(interlace.InterlaceError, match=r"^ranova: the model without \(1 \| half\) uses 180 rows"):
            interlace.ranova(m)


def test_ranova_reduce_terms_must_be_a_bool():
    with pytest.raises(interlace.InterlaceError, match=r"^reduce_terms: expected True or False"):
        interlace.ranova(_fit("sleepstudy_slopes_REML"), reduce_terms="yes")


@pytest.mark.parametrize(("formula", "names"), [
    # lmerTest 3.1-3's row names for these formulas (printed by its ranova)
    ("Reaction ~ Days + (Days + x | Subject)", ["Days in (Days + x | Subject)", "x in (Days + x | Subject)"]),
    ("Reaction ~ Days + (0 + Days + x | Subject)",
     ["Days in (0 + Days + x | Subject)", "x in (0 + Days + x | Subject)"]),
    ("Reaction ~ Days + (0 + Days | Subject) + (1 | Subject)", ["Days in (0 + Days | Subject)", "(1 | Subject)"]),
    ("y ~ (1 | a/b/c)", ["(1 | c:(b:a))", "(1 | b:a)", "(1 | a)"]),
])
def test_ranova_names_as_lmertest(formula, names):
    assert list(reduced_models(random_bars(formula))) == names


def test_ranova_reductions_as_lmertest():
    # lmerTest: (0 + Days + x | g) loses Days as (x - 1 | g); (0 + Days | g) becomes (1 | g),
    # which R's formula keeps once beside another (1 | g)
    reduced = reduced_models(random_bars("y ~ Days + (0 + Days + x | g) + (1 | g) + (0 + Days | g)"))
    assert [b.label for b in reduced["Days in (0 + Days + x | g)"]] == ["1 | g", "0 + Days | g", "x - 1 | g"]
    assert [b.label for b in reduced["Days in (0 + Days | g)"]] == ["0 + Days + x | g", "1 | g"]
    complete = reduced_models(random_bars("y ~ Days + (Days | g)"), reduce_terms=False)
    assert complete == {"(Days | g)": []}
