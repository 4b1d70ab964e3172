"""The compiled PIRLS of small scalar-term GLMMs (interlace.fitting.scalar_pirls) against
the general PIRLS on the same design: the same conditional mode, Laplace deviance,
gradient and conditional variances, on every layout of its system (a dense coupling, a
sparse rest, no rest, no leading term) and at R's guards on the means."""

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.fitting.laplace_gradient import (
    FactorParts,
    laplace_gradient,
    variances_from_parts,
)
from interlace.fitting.scalar_pirls import ScalarPirls


def _fit(formula, data, family, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.fit(formula, data, family=family, **options)


def _verbagg():
    return interlace.load_dataset("VerbAgg").iloc[:2400]


def _crossed_poisson():
    rng = np.random.default_rng(4)
    n, n1, n2 = 1500, 60, 90  # a rest of 90 levels met sparsely: the sparse factor
    g1, g2 = rng.integers(0, n1, n), rng.integers(0, n2, n)
    x = rng.standard_normal(n)
    eta = 0.3 + 0.4 * x + rng.normal(0, 0.7, n1)[g1] + rng.normal(0, 0.5, n2)[g2]
    exposure = rng.uniform(0.5, 2.0, n)
    return pd.DataFrame({"y": rng.poisson(exposure * np.exp(eta)).astype(float), "x": x, "g1": g1.astype(str),
                         "g2": g2.astype(str), "log_exposure": np.log(exposure), "w": rng.uniform(0.5, 2.0, n)})


CASES = {
    "dense coupling": (lambda: _fit("r2 ~ Anger + Gender + btype + (1 | id) + (1 | item)", _verbagg(), "binomial"),
                       "dense"),
    "sparse rest": (lambda: _fit("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                                 interlace.load_dataset("grouseticks"), "poisson"), "sparse"),
    "no rest": (lambda: _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                             interlace.load_dataset("cbpp"), "binomial"), "none"),
    "no leading term": (lambda: _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                     interlace.load_dataset("cbpp"), "binomial", solver="dense"), "all"),
    "offset and weights": (lambda: _fit("y ~ x + (1 | g1) + (1 | g2)", _crossed_poisson(), "poisson",
                                        offset="log_exposure", weights="w"), "any"),
}


def _layout(compiled: ScalarPirls) -> str:
    if not compiled.n_lead:
        return "all"
    if not compiled.n_rest:
        return "none"
    return "dense" if compiled.dense else "sparse" if compiled.sparse is not None else "dense rest"


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_mode_is_the_general_one(case):
    build, layout = CASES[case]
    m = build()
    pirls = m._fit.pirls
    assert ScalarPirls.applies(pirls)
    compiled = ScalarPirls(pirls)
    if layout != "any":
        assert _layout(compiled) == layout
    n_theta = len(m.theta)
    for shift in (0.0, 0.3):  # at the optimum and away from it
        x = m._fit.x + shift
        theta, beta = x[:n_theta], x[n_theta:]
        general = pirls.mode(theta, beta)
        fast = compiled.mode(theta, beta)
        assert fast.converged and general.converged
        np.testing.assert_allclose(fast.laplace_deviance, general.laplace_deviance, rtol=1e-10)
        np.testing.assert_allclose(fast.u, general.u, rtol=0, atol=1e-7 * max(1.0, np.abs(general.u).max()))
        np.testing.assert_allclose(fast.mu, general.mu, rtol=1e-7)
        expected = laplace_gradient(pirls, general, theta)
        np.testing.assert_allclose(compiled.gradient(fast, theta), expected, rtol=0,
                                   atol=1e-6 * np.abs(expected).max())
        np.testing.assert_allclose(variances_from_parts(fast.parts),
                                   variances_from_parts(FactorParts.of_mode(pirls, general)), rtol=1e-8)


def test_warm_start_reaches_the_same_mode():
    m = CASES["sparse rest"][0]()
    compiled = ScalarPirls(m._fit.pirls)
    theta, beta = m._fit.x[:3], m._fit.x[3:]
    cold = compiled.mode(theta, beta)
    warm = compiled.mode(theta * 1.1, beta, cold.u)
    again = compiled.mode(theta * 1.1, beta)
    np.testing.assert_allclose(warm.laplace_deviance, again.laplace_deviance, rtol=1e-11)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_loglik_at_the_guards_is_the_responses(family):
    """Linear predictors past R's guards (|eta| > 30 logit, eta < log(eps) log): the
    vectorised log-likelihood is the general one."""
    m = CASES["no rest"][0]() if family == "binomial" else CASES["sparse rest"][0]()
    compiled = ScalarPirls(m._fit.pirls)
    n = compiled.y.size
    eta = np.linspace(-45.0, 45.0, n) if family == "binomial" else np.linspace(-50.0, 3.0, n)
    value, mu = compiled.loglik_and_means(eta)
    response = m._fit.pirls.response
    np.testing.assert_allclose(mu, response.family.link.inverse(eta) if family == "poisson"
                               else m._fit.pirls._means(eta), rtol=1e-14)
    np.testing.assert_allclose(-2.0 * value + compiled.constant, response.minus_twice_loglik(mu), rtol=1e-12)


def test_applies_only_where_it_is_exact_and_small():
    verbagg = _verbagg()
    probit = _fit("r2 ~ Anger + (1 | id) + (1 | item)", verbagg, interlace.binomial("probit"))
    slopes = _fit("r2 ~ Anger + (1 + Anger | item)", verbagg, "binomial")
    assert not ScalarPirls.applies(probit._fit.pirls)  # the exact gradient needs a canonical link
    assert not ScalarPirls.applies(slopes._fit.pirls)  # and scalar terms
    assert ScalarPirls.applies(CASES["dense coupling"][0]()._fit.pirls)
