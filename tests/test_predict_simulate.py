"""predict, simulate and refit."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import interlace
from interlace.fitting.linear import assemble as _assemble
from interlace.fitting.objective import Objective
from interlace.fitting.optimize import OptimizationRecord

from .reference import REFERENCE_DIR

HELDOUT = json.loads((REFERENCE_DIR / "predict_heldout.json").read_text())
AT_LME4_REL = 1e-8  # predictions at lme4's own parameters
FITTED_IN_SIGMA = 1e-3  # at interlace's optimum (as the fitted values in test_reference)


def _split(name: str):
    case = HELDOUT[name]
    data = interlace.load_dataset(name)
    train = data.iloc[np.array(case["train_rows_1based"]) - 1].reset_index(drop=True)
    heldout = data.iloc[np.array(case["heldout_rows_1based"]) - 1].reset_index(drop=True)
    return case, train, heldout


def _at_theta(fit, theta):
    system = fit._system
    record = OptimizationRecord("lme4 theta", theta, Objective(system, True)(theta), 0, True, "reference")
    return _assemble(fit._conditioning, system, record, True, "REML", "satterthwaite", fit.model.formula,
                     fit.model.data, fit.model.dropped_rows)


@pytest.mark.parametrize("name", ["sleepstudy", "Penicillin"])
def test_heldout_predictions_match_lme4(name):
    case, train, heldout = _split(name)
    fit = interlace.fit(case["formula"], train)
    at_lme4 = _at_theta(fit, np.array(case["theta"], dtype=float))
    np.testing.assert_allclose(at_lme4.fittedvalues, case["fitted_train"], rtol=AT_LME4_REL)
    np.testing.assert_allclose(at_lme4.predict(heldout), case["predict_conditional"], rtol=AT_LME4_REL)
    np.testing.assert_allclose(at_lme4.predict(heldout, include_re=False), case["predict_population"], rtol=AT_LME4_REL)
    tol = FITTED_IN_SIGMA * case["sigma"]
    assert np.max(np.abs(fit.predict(heldout) - case["predict_conditional"])) <= tol
    assert np.max(np.abs(fit.predict(heldout, include_re=False) - case["predict_population"])) <= tol


def test_predict_on_fitting_data_and_population():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    np.testing.assert_allclose(m.predict(sleep), m.fittedvalues, rtol=1e-12)
    np.testing.assert_allclose(m.predict(), m.fittedvalues, rtol=0)
    np.testing.assert_allclose(m.predict(include_re=False), m.model.exog @ m.fe_params.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(interlace.predict(m, pl.from_pandas(sleep.astype({"Subject": str}))),
                               m.fittedvalues, rtol=1e-12)


def test_predict_refuses_unseen_fixed_level_and_missing_columns():
    cake = interlace.load_dataset("cake")
    m = interlace.fit("angle ~ recipe + temp + (1 | replicate)", cake)
    new = pd.DataFrame({"recipe": ["D"], "temp": [200.0], "replicate": ["1"]})
    with pytest.raises(interlace.DataError, match=r"column 'recipe' has level\(s\) 'D' not seen in the fit"):
        m.predict(new)
    with pytest.raises(interlace.DataError, match=r"newdata: column\(s\) 'temp' not found"):
        m.predict(new.drop(columns="temp"))
    with_missing = pd.DataFrame({"recipe": ["A", None], "temp": [200.0, 200.0], "replicate": ["1", "1"]})
    out = m.predict(with_missing)
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_simulate_is_reproducible_and_has_the_model_moments():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep)
    np.testing.assert_array_equal(m.simulate(2, seed=5), m.simulate(2, seed=5))
    draws = m.simulate(4000, seed=11)
    mean = m.model.exog @ m.fe_params.to_numpy()
    var_subject = m.variance_components["Subject"]
    implied_var = var_subject + m.scale
    # Monte Carlo: the sample mean per row has SD sqrt(var / nsim); allow 5 SD
    assert np.max(np.abs(draws.mean(axis=1) - mean)) <= 5 * np.sqrt(implied_var / 4000)
    np.testing.assert_allclose(draws.var(axis=1).mean(), implied_var, rtol=0.05)
    # within a subject, two rows share the random intercept: covariance = its variance
    cov = np.cov(draws[0], draws[1])[0, 1]
    assert abs(cov - var_subject) <= 0.15 * var_subject
    conditional = m.simulate(4000, seed=3, use_re=True)
    assert np.max(np.abs(conditional.mean(axis=1) - m.fittedvalues)) <= 5 * np.sqrt(m.scale / 4000)


def test_refit_reproduces_the_fit_and_matches_a_direct_fit():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    again = m.refit(m.model.endog)
    assert again.llf == pytest.approx(m.llf, abs=1e-8)
    y = m.simulate(1, seed=2)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        refitted = m.refit(y)
        direct = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=y))
    assert refitted.llf == pytest.approx(direct.llf, abs=1e-6)
    np.testing.assert_allclose(refitted.fe_params, direct.fe_params, rtol=1e-5)
    with pytest.raises(interlace.InterlaceError, match=r"y: expected 180 values"):
        m.refit(y[:10])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_refit_rejects_a_response_that_is_not_finite(bad):
    m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    y = m.model.endog.copy()
    y[3] = bad
    with pytest.raises(interlace.InterlaceError, match=r"y: expected finite values"):
        m.refit(y)


def test_module_functions_stay_callable_after_simulating():
    m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    m.simulate(1, seed=1)
    m.refit(m.model.endog)
    assert interlace.simulate(m, 2, seed=1).shape == (30, 2)
    assert interlace.predict(m).shape == (30,)
