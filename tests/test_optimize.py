"""The optimiser's convergence check (lme4's ``checkConv``), its boundary handling and
what it reports: the record, the warning, the summary's lines, bootMer's counts."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.fitting.blocked_gradient import BlockedDeviance
from interlace.fitting.optimize import (
    GRADIENT_TOL,
    HESSIAN_TOL,
    check_convergence,
    optimize_theta,
    same_point,
)
from interlace.summary import convergence_lines

CURVATURE_REL = 1e-6
"""The curvature at zero from the gradient at the probe against the exact one: the
probe's truncation error is probe^2, its rounding about 1e-7 of the curvature."""


def quiet_fit(*args, **kwargs) -> interlace.CrossedLMEResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return interlace.fit(*args, **kwargs)


def _crossed(n=6_000, n1=700, n2=600, sd2=0.5, seed=3):
    """Crossed intercepts large enough for the blocked path (a rest of 600 rows); ``sd2=0``
    gives g2 no effect (its estimate is 0 for this seed)."""
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(0, n1, n), rng.integers(0, n2, n)
    x = rng.standard_normal(n)
    y = 1 + 0.5 * x + rng.standard_normal(n1)[g1] + sd2 * rng.standard_normal(n2)[g2] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})


# ----- the check itself ------------------------------------------------------------------

def _lme4_max_grad(gradient, hessian):
    """lme4's checkConv: max(pmin(|solve(chol(H), g)|, |g|)), chol the upper factor."""
    upper = np.linalg.cholesky(hessian).T
    return float(np.max(np.minimum(np.abs(np.linalg.solve(upper, gradient)), np.abs(gradient))))


def test_max_grad_is_lme4s_scaled_gradient():
    hessian = np.array([[4.0e4, 30.0], [30.0, 9.0]])
    gradient = np.array([0.3, 3e-3])  # large in absolute terms, small once scaled
    check = check_convergence(np.array([1.0, 0.5]), np.zeros(2), gradient, hessian, "exact")
    assert check.max_grad == pytest.approx(_lme4_max_grad(gradient, hessian), rel=1e-12)
    assert check.passed and check.hessian_status == "positive definite"
    failing = check_convergence(np.array([1.0, 0.5]), np.zeros(2), np.array([0.5, 0.05]), hessian, "exact")
    assert not failing.passed and failing.component == 1
    assert failing.messages == (f"Model failed to converge with max|grad| = {failing.max_grad:g} "
                                f"(tol = {GRADIENT_TOL:g}, component 2)",)


@pytest.mark.parametrize(("hessian", "message", "status"), [
    (np.array([[2.0, 0.0], [0.0, -1.0]]), "degenerate Hessian with 1 negative eigenvalues", "1 negative eigenvalue"),
    (np.array([[2.0, 0.0], [0.0, 0.1 * HESSIAN_TOL]]), "Hessian is numerically singular", "numerically singular"),
    (np.array([[np.nan, 0.0], [0.0, 1.0]]), "Problem with Hessian check", "not finite"),
])
def test_a_hessian_that_is_not_positive_definite_fails(hessian, message, status):
    check = check_convergence(np.array([1.0, 1.0]), np.zeros(2), np.zeros(2), hessian, "exact")
    assert not check.passed and check.hessian_status == status
    assert any(message in m for m in check.messages)


def test_a_zero_variance_passes_on_its_curvature_and_fails_without_it():
    theta, lower = np.array([1.0, 0.0]), np.zeros(2)
    proven = check_convergence(theta, lower, np.zeros(2), np.array([[3.0, 0.0], [0.0, 5.0]]), "exact")
    assert proven.passed and proven.on_boundary == (1,)
    falling = check_convergence(theta, lower, np.zeros(2), np.array([[3.0, 0.0], [0.0, -5.0]]), "exact")
    assert falling.messages == ("Model failed to converge: the deviance falls off the boundary in theta component 2",)
    # a diagonal entry at zero: flipping the rest of its column flips its gradient, so a
    # gradient of either sign has a descent
    for sign in (1.0, -1.0):
        check = check_convergence(theta, lower, np.array([0.0, 4.0 * sign]), np.diag([3.0, 5.0]), "exact")
        assert not check.passed and check.max_grad == 4.0 and check.component == 1


def test_a_slope_term_at_zero_is_left_when_its_column_has_a_descent(monkeypatch):
    # (x | g1) on 4 levels: the search ends on the face where the intercept's sd is 0, its
    # gradient pointing out of the region; the same covariance with the rest of the
    # column flipped has a descent, which leads to the lower optimum
    rng = np.random.default_rng(105)
    g1 = np.repeat(np.arange(4), 8)
    g2 = np.tile(np.repeat(np.arange(4), 2), 4)
    x = rng.standard_normal(32)
    y = 1 + 0.5 * x + 0.3 * rng.standard_normal(4)[g1] * x + rng.standard_normal(32)
    frame = pd.DataFrame({"y": y - pd.Series(y).groupby(g2).transform("mean"), "x": x,
                          "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})
    fit = quiet_fit("y ~ x + (x | g1) + (1 | g2)", frame)
    assert fit.converged
    assert all(abs(fit.optimization.check.gradient[i]) <= GRADIENT_TOL for i in fit.optimization.check.on_boundary)
    monkeypatch.setattr(interlace.fitting.optimize, "_column_flipped", lambda system, theta, diagonal: theta.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.ConvergenceWarning)
        unflipped = quiet_fit("y ~ x + (x | g1) + (1 | g2)", frame)
    assert not unflipped.converged and unflipped.llf < fit.llf - 1e-3


def test_a_gradient_that_is_not_finite_fails():
    check = check_convergence(np.ones(2), np.zeros(2), np.array([np.nan, 0.0]), np.eye(2), "exact")
    assert check.messages == ("Gradient contains NAs",) and np.isnan(check.max_grad)


# ----- what the optimiser reports --------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "method"), [
    ({}, "gradient differences"),  # the compiled BFGS
    ({"optimizer": "l-bfgs-b"}, "gradient differences"),
    ({"optimizer": "cobyqa"}, "gradient differences"),
    ({"solver": "sparse"}, "deviance differences"),  # random slopes on the blocked path: COBYQA
])
def test_converged_fits_record_the_check(kwargs, method):
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"), **kwargs)
    check = m.optimization.check
    assert m.converged and check.passed
    assert check.hessian_method == method and check.hessian_status == "positive definite"
    assert check.max_grad < GRADIENT_TOL and check.on_boundary == ()


def test_an_unfinished_fit_warns_with_lme4s_max_grad():
    sleep = interlace.load_dataset("sleepstudy")
    with pytest.warns(interlace.ConvergenceWarning, match=r"max\|grad\| = [0-9.e+-]+ \(tol = 0.002, component \d\)"):
        m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, max_evaluations=5)
    assert not m.converged and m.optimization.optimizer_code == 1
    lines = convergence_lines(m)
    assert lines[0] == "optimizer (auto-compiled) convergence code: 1 (evaluation budget used up)"
    assert any(line.startswith("Model failed to converge with max|grad|") for line in lines[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Satterthwaite's df at a point that is no optimum
        text = str(m.summary())
    assert "Model failed to converge with max|grad|" in text


def test_a_converged_fit_off_the_boundary_adds_no_summary_line():
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    assert convergence_lines(m) == []
    assert "convergence code" not in str(m.summary())


def test_a_stationary_zero_that_is_not_a_minimum_is_left():
    # started with sample's variance at zero, where the deviance is even in it: the
    # gradient there is 0 and BFGS stays, but the curvature is negative
    pen = interlace.load_dataset("Penicillin")
    m = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, start=[1.5, 0.0])
    reference = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    assert m.converged and m.optimization.check.on_boundary == ()
    np.testing.assert_allclose(m.theta, reference.theta, atol=1e-5)


def test_a_failed_line_search_is_judged_by_the_check():
    # f has its minimum at 1 and rounding noise there: whatever the optimiser's own
    # status, converged is what the check at its end says
    def fun_and_grad(t):
        return float((t[0] - 1.0) ** 4), np.array([4.0 * (t[0] - 1.0) ** 3])

    rec = optimize_theta(lambda t: fun_and_grad(t)[0], np.array([3.0]), np.array([0.0]), "l-bfgs-b",
                         fun_and_grad=fun_and_grad)
    assert rec.converged == rec.check.passed
    assert rec.check.hessian_method == "gradient differences"


# ----- the blocked path: Newton's last gradient, a variance at zero ----------------------

def test_newton_is_checked_on_its_exact_final_gradient():
    frame = _crossed()
    m = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", frame)
    record = m.optimization
    assert record.optimizer == "newton" and m.converged
    exact = BlockedDeviance(m._system, reml=True).derivatives(m.theta)[1]
    np.testing.assert_allclose(record.check.gradient, exact, rtol=1e-10, atol=1e-12)
    assert record.check.hessian_method == "average information"
    assert record.check.max_grad < GRADIENT_TOL


def test_a_zero_variance_on_the_newton_path_lands_on_the_boundary_without_a_rerun():
    regular = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", _crossed())
    with pytest.warns(interlace.SingularFitWarning):
        singular = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", _crossed(sd2=0.0))
    record = singular.optimization
    assert record.optimizer == "newton" and singular.converged
    assert singular.theta[1] == 0.0 and record.check.on_boundary == (1,)
    assert record.check.hessian[1, 1] > 0  # the curvature at zero proves the boundary optimum
    # no derivative-free rerun: one evaluation more than the regular fit at most (the value at zero)
    assert record.n_evaluations <= regular.optimization.n_evaluations + 2
    cobyqa = quiet_fit("y ~ x + (1 | g1) + (1 | g2)", _crossed(sd2=0.0), optimizer="cobyqa")
    assert singular.llf >= cobyqa.llf - 1e-6


def test_the_curvature_at_zero_is_the_exact_one():
    # the check's curvature at zero (gradient at the probe over the probe) against the
    # exact second derivative of interlace.inference.deviance_hessian
    from interlace.inference.deviance_hessian import scalar_blocked_derivatives

    frame = _crossed(n=1_500, n1=200, n2=40, sd2=0.0, seed=5)
    m = quiet_fit("y ~ x + (1 | g1) + (1 | g2)", frame, solver="sparse")
    assert m.theta[1] == 0.0
    system = m._system  # the working scale (interlace.fitting.conditioning): sigma from its own factor
    sigma = np.sqrt(system.factorize(m.theta).pwrss / (m.nobs - len(m.fe_params)))
    exact = scalar_blocked_derivatives(system, m.theta, float(sigma), True).hessian[1, 1]
    blocked = BlockedDeviance(m._system, reml=True)
    probe = m.theta.copy()
    probe[1] = interlace.fitting.optimize.ZERO_PROBE
    np.testing.assert_allclose(blocked.derivatives(probe)[1][1] / probe[1], exact, rtol=CURVATURE_REL)
    assert m.optimization.check.hessian[1, 1] == pytest.approx(exact, rel=CURVATURE_REL)


# ----- refits ----------------------------------------------------------------------------

def test_refits_check_cheaply_with_the_fits_hessian():
    crossed = pd.DataFrame({"subj": np.repeat(np.arange(30), 20), "item": np.tile(np.arange(20), 30)})
    rng = np.random.default_rng(1)
    crossed["y"] = rng.standard_normal(30)[crossed["subj"]] + 0.5 * rng.standard_normal(20)[crossed["item"]] \
        + rng.standard_normal(600)
    crossed[["subj", "item"]] = crossed[["subj", "item"]].astype("category")
    m = interlace.fit("y ~ 1 + (1 | subj) + (1 | item)", crossed)
    refit = m.refit(m.simulate(1, seed=2)[:, 0])
    assert refit.converged and refit.optimization.check.hessian_method == "previous fit"


def test_bootmer_counts_failed_and_unconverged_refits(monkeypatch):
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    original = interlace.CrossedLMEResult.refit
    calls = {"n": 0}

    def flaky(self, y):
        calls["n"] += 1
        if calls["n"] in (2, 5):
            raise interlace.InterlaceError("y: a refit that fails")
        fit = original(self, y)
        return replace(fit, converged=False) if calls["n"] == 3 else fit

    monkeypatch.setattr(interlace.CrossedLMEResult, "refit", flaky)
    with pytest.warns(interlace.ConvergenceWarning) as caught:
        boot = m.bootMer(B=6, seed=1)
    texts = [str(w.message) for w in caught]
    assert any(t.startswith("some bootstrap runs failed (2/6)") for t in texts)
    assert any(t.startswith("some bootstrap refits did not converge (1/6)") for t in texts)
    assert boot.failed == (1, 4) and boot.n_failed == 2
    assert boot.not_converged == (2,) and boot.n_not_converged == 1
    assert boot.replicates.iloc[[1, 4]].isna().all().all() and boot.replicates.iloc[2].notna().all()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 2.0], [1.0, 2.0]),
        ([1.0, 2.0], [1.0, 2.0 + 1e-16 * 4]),
        ([0.0], [-0.0]),
        ([np.nan, 1.0], [np.nan, 1.0]),
        ([np.inf, 0.0], [np.inf, 0.0]),
        ([1.0, 2.0], [1.0]),
        ([], []),
    ],
)
def test_same_point_is_array_equal(a, b):
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    assert same_point(a, b) == np.array_equal(a, b)
    assert same_point(a, a) == np.array_equal(a, a)  # NaN unequal to itself in both
