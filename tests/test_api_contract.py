"""The seed API's letter (shared/spec/api.md) where the result once departed from it:
``llf_restricted`` and lme4's REMLcrit, ``random_effects_ci``'s MultiIndex columns,
``confint``'s estimate column, and ``predict(include_re=...)`` with a subset of the
grouping factors (lme4's ``re.form``). ``bootstrap_se`` is in test_bootstrap_update.py."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import interlace


@pytest.fixture(scope="module")
def sleep_fit():
    return interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def penicillin_fit():
    return interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", interlace.load_dataset("Penicillin"))


def test_llf_restricted_is_the_restricted_loglik_and_reml_criterion_lme4s(sleep_fit):
    assert sleep_fit.method == "REML"
    assert sleep_fit.llf_restricted == sleep_fit.llf
    assert sleep_fit.reml_criterion == pytest.approx(1743.6283, abs=1e-3)  # lme4's REMLcrit(fm1)
    ml = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"), method="ML")
    assert ml.llf_restricted is None and ml.reml_criterion is None


def test_random_effects_ci_has_term_bound_columns(sleep_fit, penicillin_fit):
    ci = sleep_fit.random_effects_ci(0.9)["Subject"]
    assert isinstance(ci.columns, pd.MultiIndex)
    assert list(ci.columns.names) == ["term", "bound"]
    assert ci.columns.tolist() == [("Intercept", "lower"), ("Intercept", "upper"), ("Days", "lower"), ("Days", "upper")]
    z = stats.norm.ppf(0.95)
    blup, se = sleep_fit.random_effects["Subject"], sleep_fit.random_effects_se["Subject"]
    np.testing.assert_allclose(ci[("Days", "upper")], blup["Days"] + z * se["Days"], rtol=1e-12)
    np.testing.assert_allclose(ci["Intercept"]["lower"], blup["Intercept"] - z * se["Intercept"], rtol=1e-12)
    plate = penicillin_fit.random_effects_ci()["plate"]  # intercept only: flat lower/upper
    assert plate.columns.tolist() == ["lower", "upper"]


def test_confint_has_an_estimate_column_before_the_bounds(sleep_fit):
    wald = sleep_fit.confint("wald")
    assert wald.columns.tolist() == ["estimate", "lower", "upper"]
    pd.testing.assert_series_equal(wald["estimate"], sleep_fit.fe_params, check_names=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profile = sleep_fit.confint("profile")
    assert profile.columns.tolist() == ["estimate", "lower", "upper"]
    assert profile.index.tolist() == ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                                      "sigma", "Intercept", "Days"]  # lme4's rows, oldNames = FALSE
    cov = sleep_fit.variance_components["Subject"]
    expected = [np.sqrt(cov.iloc[0, 0]), cov.iloc[1, 0] / np.sqrt(cov.iloc[0, 0] * cov.iloc[1, 1]),
                np.sqrt(cov.iloc[1, 1]), np.sqrt(sleep_fit.scale), *sleep_fit.fe_params]
    np.testing.assert_allclose(profile["estimate"], expected, rtol=1e-10)
    assert np.all(profile["lower"] <= profile["estimate"]) and np.all(profile["estimate"] <= profile["upper"])
    cbpp = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", interlace.load_dataset("cbpp"),
                         family="binomial")
    glmm = cbpp.confint()
    assert glmm.columns.tolist() == ["estimate", "lower", "upper"]
    np.testing.assert_allclose(glmm["estimate"], cbpp.fe_params, rtol=0)


def test_predict_with_a_subset_of_the_grouping_factors(penicillin_fit):
    m = penicillin_fit
    data = interlace.load_dataset("Penicillin")
    fixed = m.predict(include_re=False)
    plate = m.random_effects["plate"].reindex(data["plate"].astype(str)).to_numpy()
    sample = m.random_effects["sample"].reindex(data["sample"].astype(str)).to_numpy()
    np.testing.assert_allclose(m.predict(include_re=["plate"]), fixed + plate, rtol=1e-12)
    np.testing.assert_allclose(m.predict(include_re="sample"), fixed + sample, rtol=1e-12)
    np.testing.assert_allclose(m.predict(include_re=["plate", "sample"]), m.fittedvalues, rtol=1e-12)
    np.testing.assert_allclose(m.predict(include_re=[]), fixed, rtol=1e-12)
    # new data: the same rows, and a plate the fit never saw (its effect 0)
    np.testing.assert_allclose(m.predict(data, include_re=["plate"]), fixed + plate, rtol=1e-12)
    new = data.iloc[:2].assign(plate=["unseen", data["plate"].iloc[1]])
    np.testing.assert_allclose(m.predict(new, include_re=["plate"]), fixed[:2] + [0.0, plate[1]], rtol=1e-12)
    np.testing.assert_allclose(interlace.predict(m, new, include_re=["sample"]), fixed[:2] + sample[:2], rtol=1e-12)
    with pytest.raises(interlace.InterlaceError, match=r"include_re: expected True, False or a list of grouping "
                                                       r"factors among 'plate', 'sample', found \['Plate'\]"):
        m.predict(include_re=["Plate"])


def test_glmm_predict_with_a_subset_of_the_grouping_factors():
    data = interlace.load_dataset("grouseticks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.fit("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", data, family="poisson")
    fixed = m.predict(type="link", include_re=False)
    brood = m.random_effects["BROOD"].reindex(data["BROOD"].astype(str)).to_numpy()
    np.testing.assert_allclose(m.predict(type="link", include_re=["BROOD"]), fixed + brood, rtol=1e-12)
    np.testing.assert_allclose(m.predict(data, type="link", include_re=["BROOD"]), fixed + brood, rtol=1e-10)
    np.testing.assert_allclose(m.predict(include_re=["BROOD"]), np.exp(fixed + brood), rtol=1e-12)


def test_reml_as_statsmodels_and_lme4_spell_it():
    sleep = interlace.load_dataset("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    ml = interlace.fit(formula, sleep, method="ML")
    for options in ({"reml": False}, {"REML": False}, {"method": "ML", "reml": False}):
        m = interlace.fit(formula, sleep, **options)
        assert m.method == "ML" and m.llf == ml.llf
    assert interlace.fit(formula, sleep, reml=True).method == "REML"
    assert interlace.fit(formula, sleep, REML=True).llf == interlace.fit(formula, sleep).llf
    with pytest.raises(interlace.InterlaceError, match=r"method: expected one choice of REML or ML, found "
                                                       r"method='REML', reml=False"):
        interlace.fit(formula, sleep, method="REML", reml=False)
    with pytest.raises(interlace.InterlaceError, match=r"REML: expected True \(REML\) or False \(ML\), found 1"):
        interlace.fit(formula, sleep, REML=1)


def test_plots_is_an_attribute_that_loads_matplotlib_only_when_drawing():
    import subprocess
    import sys

    code = ("import sys, interlace; p = interlace.plots; "
            "print(callable(p.caterpillar), 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_update_takes_reml_as_lme4_and_statsmodels_spell_it(sleep_fit):
    ml = sleep_fit.update(REML=False)
    assert ml.method == "ML" and ml.llf == pytest.approx(-875.9697, abs=1e-3)  # lme4's logLik, REML = FALSE
    assert sleep_fit.update(reml=False).llf == ml.llf and ml.update(REML=True).method == "REML"


def test_coef_is_lme4s(sleep_fit):
    coef = sleep_fit.coef()["Subject"]
    assert coef.columns.tolist() == ["Intercept", "Days"]
    expected = sleep_fit.random_effects["Subject"] + sleep_fit.fe_params
    pd.testing.assert_frame_equal(coef, expected[coef.columns], check_names=False)
    # lme4 1.1-31: coef(fm1)$Subject["308", ] and ["309", ]
    np.testing.assert_allclose(coef.loc[["308", "309"]].to_numpy(), [[253.6636558, 19.666261725],
                                                                      [211.0063668, 1.847605344]], rtol=1e-4)
    cake = interlace.fit("angle ~ recipe + temp + (1 | recipe:replicate)", interlace.load_dataset("cake"))
    table = cake.coef()["recipe:replicate"]  # lme4: coef(fm)[[1]]["A:1", ] = 12.33375, -1.47778, -1.52222, 0.15803
    np.testing.assert_allclose(table.loc["A:1"].to_numpy(), [12.33375019, -1.477777778, -1.522222222, 0.158031746],
                               rtol=1e-4)
