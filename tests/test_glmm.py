"""Generalized linear mixed models against lme4's glmer (shared and held-out cases), at the
tolerances of the GLMM spec, and the properties that tie them to simpler models.

Each case is compared with glmer run to convergence (``load_converged``: lme4's default PIRLS
tolerance leaves its factor an iteration behind, see tests/glmm_reference.py) and, for the
criterion, with glmer's default fit (interlace's -2 log-likelihood never more than 1e-4 above).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.fitting.generalized import agq_deviance

from . import glmm_reference as G
from .reference import r_fixef_name

CASES = G.all_cases()


@cache
def _fit(json_name: str, set_name: str) -> interlace.CrossedGLMMResult:
    case = next(c for c in CASES if c["json"] == json_name and c["set"] == set_name)
    family = interlace.binomial(case["link"]) if case["family"] == "binomial" else interlace.poisson(case["link"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return interlace.fit(case["formula"], G.dataset(case), family=family, nAGQ=case["nAGQ"],
                             weights=case.get("weights"), offset=case.get("offset"))


def fitted(case) -> interlace.CrossedGLMMResult:
    return _fit(case["json"], case["set"])


def _saturated(m) -> float:
    """-2 log-likelihood at mu = y: what glmer's logLik leaves out with nAGQ > 1."""
    return m._fit.pirls.response.saturated_minus_twice_loglik() if m.nAGQ > 1 else 0.0


def _glmer_minus2ll(ref: dict, m) -> float:
    return ref["minus2logLik"] + _saturated(m)


@pytest.mark.parametrize("case", CASES, ids=G.case_id)
def test_criterion_not_above_glmers(case):
    m = fitted(case)
    assert -2 * m.llf <= _glmer_minus2ll(G.load(case), m) + 1e-4
    assert -2 * m.llf <= _glmer_minus2ll(G.load_converged(case), m) + 1e-4


@pytest.mark.parametrize("case", CASES, ids=G.case_id)
def test_estimates_match_glmer(case):
    ref = G.load_converged(case)
    m = fitted(case)
    fe = m.fe_params.rename(index=r_fixef_name)
    names = list(ref["fixef"])
    assert sorted(fe.index) == sorted(names)
    se = np.array([ref["se"][k] for k in names])
    np.testing.assert_allclose(fe[names].to_numpy(), [ref["fixef"][k] for k in names], rtol=0, atol=1e-2 * se.min())
    np.testing.assert_allclose(m.fe_bse.rename(index=r_fixef_name)[names].to_numpy(), se, rtol=1e-2)
    np.testing.assert_allclose(m.theta, list(ref["theta"].values()), rtol=0, atol=1e-3)
    mu = np.asarray(ref["fitted_response"])
    np.testing.assert_allclose(m.fittedvalues, mu, rtol=0, atol=1e-3 * np.maximum(1.0, np.abs(mu)).max())


@pytest.mark.parametrize("case", CASES, ids=G.case_id)
def test_conditional_modes_match_glmer(case):
    ref = G.load_converged(case)
    m = fitted(case)
    for group, part in ref["ranef"].items():
        blup, sd = m.random_effects[group], m.random_effects_se[group]
        levels = [str(v) for v in part["levels"]]
        if isinstance(blup, pd.DataFrame):  # columns as R names them (urbanY for urban[T.Y])
            blup, sd = blup.rename(columns=r_fixef_name), sd.rename(columns=r_fixef_name)
        for term in part["terms"]:
            mine = (blup if isinstance(blup, pd.Series) else blup[term]).loc[levels].to_numpy()
            mine_sd = (sd if isinstance(sd, pd.Series) else sd[term]).loc[levels].to_numpy()
            theirs_sd = np.asarray(part["cond_sd"][term])
            np.testing.assert_allclose(mine, part["values"][term], rtol=0, atol=2e-2 * theirs_sd.max())
            np.testing.assert_allclose(mine_sd, theirs_sd, rtol=1e-2)


@pytest.mark.parametrize("case", CASES, ids=G.case_id)
def test_deviance_at_glmers_parameters(case):
    """The objective itself, free of any optimiser: at glmer's converged (theta, beta) the
    Laplace (or AGQ) deviance is glmer's to 1e-6 relative."""
    ref = G.load_converged(case)
    m = fitted(case)
    fit = m._fit
    theta = np.array(list(ref["theta"].values()))
    beta = np.array([ref["fixef"][r_fixef_name(n)] for n in m.fe_params.index])
    beta_working = np.linalg.solve(fit.basis, beta)
    mode = fit.pirls.mode(theta, beta_working)
    value = agq_deviance(fit.pirls, mode, theta, m.nAGQ) if m.nAGQ > 1 else mode.laplace_deviance
    assert value == pytest.approx(_glmer_minus2ll(ref, m), rel=1e-6)


def test_residuals_and_deviance_match_glmer():
    case = next(c for c in CASES if c["json"].startswith("grouseticks"))
    ref = G.load_converged(case)
    m = fitted(case)
    np.testing.assert_allclose(m.resid_deviance, ref["residuals_deviance"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(m.resid_pearson, ref["residuals_pearson"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(m.linear_predictor, ref["linear_predictor"], rtol=1e-4, atol=1e-4)
    assert m.deviance == pytest.approx(ref["deviance"], rel=1e-4)
    assert m.nparams == ref["logLik_df"]
    assert m.aic - (-2 * m.llf) == pytest.approx(ref["AIC"] - ref["minus2logLik"])


# ----- properties ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    data = interlace.load_dataset("cbpp").copy()
    data["prop"] = data["incidence"] / data["size"]
    return data


CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _same(a, b, rtol=1e-6, atol=1e-7):
    np.testing.assert_allclose(a.fe_params.to_numpy(), b.fe_params.to_numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.theta, b.theta, rtol=rtol, atol=atol)
    assert a.llf == pytest.approx(b.llf, rel=1e-9)


def test_proportion_with_weights_is_cbind(cbpp):
    a = interlace.fit(CBPP, cbpp, family="binomial")
    b = interlace.fit("prop ~ period + (1 | herd)", cbpp, family="binomial", weights="size")
    _same(a, b)
    np.testing.assert_allclose(a.fittedvalues, b.fittedvalues, rtol=1e-8)


def test_weights_of_two_are_duplicated_rows():
    data = interlace.load_dataset("VerbAgg").iloc[:1500].copy()
    formula = "r2 ~ Anger + Gender + (1 | id) + (1 | item)"
    doubled = interlace.fit(formula, data, family="binomial", weights=np.full(len(data), 2.0))
    twice = interlace.fit(formula, pd.concat([data, data], ignore_index=True), family="binomial")
    np.testing.assert_allclose(doubled.fe_params, twice.fe_params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(doubled.theta, twice.theta, rtol=1e-5, atol=1e-6)
    assert doubled.nobs == len(data) and twice.nobs == 2 * len(data)


def test_offset_moves_the_linear_predictor(cbpp):
    data = cbpp.assign(x=np.linspace(-1.0, 1.0, len(cbpp)))
    plain = interlace.fit("cbind(incidence, size - incidence) ~ x + (1 | herd)", data, family="binomial")
    moved = interlace.fit("cbind(incidence, size - incidence) ~ x + offset(0.5 * x) + (1 | herd)", data,
                          family="binomial")
    assert moved.fe_params["x"] == pytest.approx(plain.fe_params["x"] - 0.5, abs=1e-6)
    assert moved.llf == pytest.approx(plain.llf, rel=1e-9)
    np.testing.assert_allclose(moved.fittedvalues, plain.fittedvalues, rtol=1e-6)
    argument = interlace.fit("cbind(incidence, size - incidence) ~ x + (1 | herd)", data.assign(o=0.5 * data["x"]),
                             family="binomial", offset="o")
    _same(argument, moved)


def test_row_order_and_level_labels_do_not_matter(cbpp):
    a = interlace.fit(CBPP, cbpp, family="binomial")
    order = np.random.default_rng(1).permutation(len(cbpp))
    shuffled = cbpp.iloc[order].reset_index(drop=True)
    shuffled["herd"] = shuffled["herd"].cat.rename_categories(lambda h: f"herd {h}")
    b = interlace.fit(CBPP, shuffled, family="binomial")
    _same(a, b)
    np.testing.assert_allclose(a.fittedvalues[order], b.fittedvalues, rtol=1e-7)


def test_frames_give_identical_fits(cbpp):
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    a = interlace.fit(CBPP, cbpp, family="binomial")
    for frame in (pl.from_pandas(cbpp), pa.Table.from_pandas(cbpp)):
        # a polars Categorical's levels are sorted ("1", "10", ...), pandas' in R's order: the
        # same model with its levels in another order, equal to rounding
        b = interlace.fit(CBPP, frame, family="binomial")
        np.testing.assert_allclose(a.fe_params.to_numpy(), b.fe_params.to_numpy(), rtol=1e-7)
        assert a.llf == pytest.approx(b.llf, rel=1e-12)
        pd.testing.assert_series_equal(a.random_effects["herd"].sort_index(), b.random_effects["herd"].sort_index(),
                                       rtol=1e-6)


def test_zero_variance_is_the_glm(cbpp):
    """At theta = 0 the Laplace deviance is the GLM's -2 log-likelihood (no random effects)."""
    from scipy import optimize, special, stats

    m = interlace.fit(CBPP, cbpp, family="binomial")
    fit = m._fit
    X = fit.design.X
    successes, trials = cbpp["incidence"].to_numpy(), cbpp["size"].to_numpy()

    def glm(beta):
        return -2.0 * stats.binom.logpmf(successes, trials, special.expit(X @ beta)).sum()

    beta = optimize.minimize(glm, np.zeros(X.shape[1]), method="BFGS", options={"gtol": 1e-9}).x
    mode = fit.pirls.mode(np.zeros(1), np.linalg.solve(fit.basis, beta))
    assert mode.laplace_deviance == pytest.approx(glm(beta), rel=1e-10)
    np.testing.assert_array_equal(mode.u, 0.0)  # Lambda = 0: the penalty keeps u at zero


def test_boolean_and_factor_responses_are_zero_one():
    data = interlace.load_dataset("VerbAgg").iloc[:2000].copy()
    formula = "{} ~ Anger + Gender + (1 | id)"
    as_factor = interlace.fit(formula.format("r2"), data, family="binomial")
    as_bool = interlace.fit(formula.format("yes"), data.assign(yes=data["r2"] == "Y"), family="binomial")
    as_number = interlace.fit(formula.format("yes"), data.assign(yes=(data["r2"] == "Y").astype(float)),
                              family="binomial")
    _same(as_factor, as_bool)
    _same(as_factor, as_number)


def test_predict_simulate_refit(cbpp):
    m = interlace.fit(CBPP, cbpp, family="binomial")
    np.testing.assert_allclose(m.predict(cbpp), m.fittedvalues, rtol=1e-10)
    np.testing.assert_allclose(m.predict(cbpp, type="link"), m.linear_predictor, rtol=1e-10)
    new = cbpp.head(4).assign(herd=["1", "unseen", "2", "unseen"])
    population = m.predict(new, include_re=False)
    assert population[1] == pytest.approx(m.predict(new)[1])  # a new level: no random effect
    draws = m.simulate(3, seed=2)
    assert draws.shape == (len(cbpp), 3)
    assert np.all((draws >= 0) & (draws <= 1))
    np.testing.assert_allclose(draws * cbpp["size"].to_numpy()[:, None],
                               np.round(draws * cbpp["size"].to_numpy()[:, None]), atol=1e-9)
    np.testing.assert_array_equal(draws, m.simulate(3, seed=2))
    again = m.refit(m.model.endog)
    assert again.llf == pytest.approx(m.llf, rel=1e-8)
    boot = m.bootMer(B=4, seed=1)
    assert boot.replicates.shape == (4, 4)


def test_anova_compares_nested_fits(cbpp):
    m1 = interlace.fit(CBPP, cbpp, family="binomial")
    m0 = interlace.fit("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp, family="binomial")
    table = interlace.anova(m0, m1)
    assert table["Df"].iloc[1] == 3
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (m1.llf - m0.llf))
    with pytest.raises(interlace.InterlaceError, match="anova"):
        interlace.anova(m1)


def test_summary_is_glmers_layout(cbpp):
    text = str(interlace.fit(CBPP, cbpp, family="binomial").summary())
    assert "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)" in text
    assert " Family: binomial  ( logit )" in text
    assert "z value" in text and "Pr(>|z|)" in text and "Residual" not in text


# ----- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"family": "gaussian"}, "family: expected"),
    ({"family": "tweedie"}, "family: expected"),
    ({"family": interlace.binomial}, "family: expected"),
    ({"family": "binomial", "nAGQ": 30}, "nAGQ: expected an integer from 0 to 25"),
    ({"family": "binomial", "method": "REML"}, "method: .*maximum likelihood"),
])
def test_bad_arguments_are_named(cbpp, kwargs, message):
    with pytest.raises(interlace.InterlaceError, match=message):
        interlace.fit(CBPP, cbpp, **kwargs)


def test_bad_links_and_responses_are_named(cbpp):
    with pytest.raises(interlace.InterlaceError, match="link: the binomial family takes"):
        interlace.binomial("inverse")
    with pytest.raises(interlace.DataError, match="response 'size': .*outside \\[0, 1\\]"):
        interlace.fit("size ~ period + (1 | herd)", cbpp, family="binomial")
    with pytest.raises(interlace.DataError, match="response 'prop': a Poisson response is a count"):
        interlace.fit("prop ~ period + (1 | herd)", cbpp, family="poisson")
    with pytest.raises(interlace.DataError, match="weights: expected finite non-negative"):
        interlace.fit("prop ~ period + (1 | herd)", cbpp, family="binomial", weights=-cbpp["size"].to_numpy())
    with pytest.raises(interlace.DataError, match="offset: expected one number per row"):
        interlace.fit(CBPP, cbpp, family="binomial", offset=[0.0, 1.0])
    with pytest.raises(interlace.InterlaceError, match="nAGQ: adaptive Gauss-Hermite"):
        interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", cbpp,
                      family="binomial", nAGQ=5)


# ----- the exact gradient -------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["dense", "sparse"])
@pytest.mark.parametrize(("formula", "dataset", "family"), [
    (CBPP, "cbpp", "binomial"),
    ("r2 ~ Anger + Gender + btype + (1 | id) + (1 | item)", "VerbAgg", "binomial"),
    ("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "grouseticks", "poisson"),
])
def test_laplace_gradient_is_the_deviance_derivative(formula, dataset, family, solver):
    from interlace.fitting.laplace_gradient import laplace_gradient, supports_gradient

    data = interlace.load_dataset(dataset)
    data = data.iloc[:2500] if len(data) > 2500 else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        m = interlace.fit(formula, data, family=family, solver=solver)
    pirls = m._fit.pirls
    assert supports_gradient(pirls)
    assert (pirls.n_leading == 1) == (solver == "sparse")
    n_theta = len(m.theta)
    x = m._fit.x + 0.05  # off the optimum, where the gradient is not zero

    def deviance(point):
        return pirls.mode(point[:n_theta], point[n_theta:]).laplace_deviance

    gradient = laplace_gradient(pirls, pirls.mode(x[:n_theta], x[n_theta:]), x[:n_theta])
    step = 1e-5
    differences = np.array([(deviance(x + step * e) - deviance(x - step * e)) / (2 * step) for e in np.eye(x.size)])
    np.testing.assert_allclose(gradient, differences, rtol=0, atol=1e-6 * np.abs(differences).max())


def test_scalar_conditional_variances_are_the_general_ones():
    from interlace.fitting.estimates import conditional_sd
    from interlace.fitting.laplace_gradient import scalar_conditional_variances

    m = interlace.fit("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                      interlace.load_dataset("grouseticks"), family="poisson")
    fit = m._fit
    n_theta = len(m.theta)
    mode = fit.pirls.mode(fit.x[:n_theta], fit.x[n_theta:], fit.mode.u)  # the general PIRLS's mode
    general = conditional_sd(mode.system, mode.factor, m.theta, 1.0)
    fast = scalar_conditional_variances(fit.pirls, mode)
    lam = np.concatenate([np.full(t.n_levels, t.relative_cov_factor(m.theta)[0, 0]) for t in fit.design.terms])
    expected = np.concatenate([general[t.name][:, 0] for t in fit.design.terms])
    np.testing.assert_allclose(lam * np.sqrt(fast), expected, rtol=1e-10)
    # the result's (from the compiled PIRLS's sparse factor) are the same
    reported = np.concatenate([np.asarray(m.random_effects_se[t.name]).reshape(-1) for t in fit.design.terms])
    np.testing.assert_allclose(reported, expected, rtol=1e-8)
