"""anova: lmerTest's type III tables and lme4's likelihood-ratio table."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import interlace
from interlace.inference.contrasts import type3_contrasts

from .reference import case_id, index, load

TYPE3_REL = 1e-4
LRT_ABS = 1e-6

TYPE3_CASES = [c for c in index() if load(c["json"]).get("anova_type3_satterthwaite")]


@pytest.mark.parametrize("case", TYPE3_CASES, ids=case_id)
def test_type3_table_matches_lmertest(case, fits):
    # at lme4's theta: the F tests and their df are sensitive to theta, and lme4's optimum
    # is a few 1e-6 off the true one on some cases (interlace's deviance is lower there)
    ref = load(case["json"])["anova_type3_satterthwaite"]
    table = interlace.anova(fits.at_reference_theta(case["json"]))
    assert list(table.index) == ref["terms"]
    assert table["NumDF"].tolist() == ref["NumDF"]
    for column, key in [("Sum Sq", "SumSq"), ("Mean Sq", "MeanSq"), ("F value", "F"), ("DenDF", "DenDF")]:
        np.testing.assert_allclose(table[column].to_numpy(), ref[key], rtol=TYPE3_REL, err_msg=column)
    np.testing.assert_allclose(table["Pr(>F)"].to_numpy(), ref["p"], rtol=TYPE3_REL, atol=1e-12)


OWN_OPTIMUM_REL = 1e-3


@pytest.mark.parametrize("case", TYPE3_CASES, ids=case_id)
def test_type3_table_at_own_optimum(case, fits):
    # at interlace's own optimum the df move with theta: InstEval's ML fit, where
    # interlace's deviance is 5e-7 below lme4's, has service's DenDF 2e-4 from lmerTest's
    ref = load(case["json"])["anova_type3_satterthwaite"]
    table = interlace.anova(fits.get(case["json"]))
    for column, key in [("Sum Sq", "SumSq"), ("F value", "F"), ("DenDF", "DenDF")]:
        np.testing.assert_allclose(table[column].to_numpy(), ref[key], rtol=OWN_OPTIMUM_REL, err_msg=column)
    # p below 1e-12 (Exam's standLRT: 9e-35) moves by more than 1e-3 of itself with F at 1e-4:
    # the same absolute floor as at lme4's theta
    np.testing.assert_allclose(table["Pr(>F)"].to_numpy(), ref["p"], rtol=OWN_OPTIMUM_REL, atol=1e-12)


def test_type3_single_df_terms_are_squared_t_tests(fits):
    m = fits.get("sleepstudy__Reaction_Days_Days_Subject__REML.json")
    table = interlace.anova(m)
    assert table.loc["Days", "F value"] == pytest.approx(m.fe_tvalues["Days"] ** 2, rel=1e-12)
    assert table.loc["Days", "DenDF"] == pytest.approx(m.fe_df["Days"], rel=1e-12)


def test_type3_contrasts_have_full_row_rank(fits):
    m = fits.get("cake__angle_recipe_temperature_1_recipe_replicate__REML.json")
    for term, L in type3_contrasts(m._conditioning.design).items():
        assert np.linalg.matrix_rank(L) == L.shape[0], term


def test_likelihood_ratio_table_matches_lme4():
    ref = load("anova__sleepstudy.json")
    sleep = interlace.load_dataset("sleepstudy")
    m0 = interlace.fit(ref["models"][0], sleep)
    m1 = interlace.fit(ref["models"][1], sleep)
    with pytest.warns(interlace.RefitWarning, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        table = interlace.anova(m1, m0)  # ordered by npar whatever the argument order
    assert table.index.tolist() == ref["models"]
    assert table["npar"].tolist() == ref["npar"]
    for column in ("AIC", "BIC", "logLik", "deviance"):
        np.testing.assert_allclose(table[column].to_numpy(), ref[column], atol=LRT_ABS, rtol=0)
    assert np.isnan(table["Chisq"].iloc[0]) and np.isnan(table["Pr(>Chisq)"].iloc[0])
    assert table["Chisq"].iloc[1] == pytest.approx(ref["Chisq"][1], abs=LRT_ABS)
    assert table["Df"].iloc[1] == ref["Df"][1]
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p"][1], rel=1e-6)


def test_model_against_itself_gives_zero_chisq():
    sleep = interlace.load_dataset("sleepstudy")
    a = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, method="ML")
    b = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, method="ML")
    table = interlace.anova(a, b, names=["a", "b"])
    assert table["Chisq"].iloc[1] == 0.0 and table["Df"].iloc[1] == 0


def test_models_on_different_data_are_refused():
    sleep = interlace.load_dataset("sleepstudy")
    a = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep, method="ML")
    b = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep.iloc[:150], method="ML")
    with pytest.raises(interlace.InterlaceError, match=r"not all fitted to the same data"):
        interlace.anova(a, b)


def test_anova_needs_fitted_models():
    with pytest.raises(interlace.InterlaceError, match=r"expected at least one fitted model"):
        interlace.anova()
    with pytest.raises(interlace.InterlaceError, match=r"expected fitted models"):
        interlace.anova("m0")


def test_ml_refit_reaches_the_ml_fit():
    sleep = interlace.load_dataset("sleepstudy")
    reml = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    ml = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, method="ML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.RefitWarning)
        table = interlace.anova(reml, ml, names=["reml", "ml"])
    assert table.loc["reml", "logLik"] == pytest.approx(ml.llf, abs=LRT_ABS)
