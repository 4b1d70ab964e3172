"""Newton's method with the average information (the blocked path of scalar terms).

Its gradient and average information against dense computations from an explicit Z,
its moment start against the moment equations solved densely, and its optimum against
COBYQA's and lme4's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import interlace
from interlace.design import build_design
from interlace.fitting.blocked_gradient import BlockedDeviance
from interlace.fitting.start import moment_start, start_theta
from interlace.formula.random import split_formula
from interlace.linalg.dispatch import build_system, supports_blocked_derivatives
from interlace.linalg.system import PenalizedSystem

from .reference import case_data, case_design, case_id, index, load, prior_arguments
from .strategies import crossed_frames

FORMULA = "y ~ x + (1 | g1) + (1 | g2) + (0 + x | g3)"

ORACLE_RTOL = 1e-8
"""Blocked computations against dense ones: the same quantities up to rounding."""


def _frame(n=400, n1=30, n2=12, n3=4, seed=7):
    rng = np.random.default_rng(seed)
    g1, g2, g3 = rng.integers(0, n1, n), rng.integers(0, n2, n), rng.integers(0, n3, n)
    x = rng.standard_normal(n)
    y = (1 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.7 * rng.standard_normal(n2)[g2]
         + 0.4 * rng.standard_normal(n3)[g3] * x + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "g1": [f"a{i}" for i in g1], "g2": [f"b{i}" for i in g2],
                         "g3": [f"c{i}" for i in g3]})


@pytest.fixture(scope="module")
def system():
    design = build_design(*split_formula(FORMULA), _frame())
    return PenalizedSystem(design, 1)


def _dense(system):
    """Z (factorisation order, one column per effect), X, y and each term's theta index."""
    design = system.design
    n = design.n_obs
    blocks, which = [], []
    for term in design.terms:
        z = np.zeros((n, term.n_levels))
        z[np.arange(n), term.group_codes] = term.design[:, 0]
        blocks.append(z)
        which.append(int(term.theta_index[0, 0]))
    return blocks, design.X, design.y, which


def _dense_derivatives(system, theta, reml):
    """The criterion's gradient and average information from H = I + Z Lambda^2 Z'."""
    blocks, X, y, which = _dense(system)
    n, p = X.shape
    H = np.eye(n) + sum(theta[w] ** 2 * (z @ z.T) for z, w in zip(blocks, which, strict=True))
    Hinv = np.linalg.inv(H)
    HX = Hinv @ X
    P = Hinv - HX @ np.linalg.solve(X.T @ HX, HX.T)
    nu = n - p if reml else n
    r = P @ y
    r2 = float(y @ r)
    derivs = [2.0 * theta[w] * (z @ z.T) for z, w in zip(blocks, which, strict=True)]
    Pd = P if reml else Hinv
    w_vecs = np.column_stack([D @ r for D in derivs])
    q = w_vecs.T @ r
    grad = np.zeros(system.design.n_theta)
    info = np.zeros((system.design.n_theta,) * 2)
    for t, (D, wt) in enumerate(zip(derivs, which, strict=True)):
        grad[wt] += np.trace(Pd @ D) - nu * q[t] / r2
    ai = (nu / r2) * (w_vecs.T @ P @ w_vecs - np.outer(q, q) / r2)
    for s, ws in enumerate(which):
        for t, wt in enumerate(which):
            info[ws, wt] += ai[s, t]
    return grad, info


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("theta", [[0.9, 0.6, 0.3], [0.2, 1.4, 0.05], [0.7, 0.0, 0.5]])
def test_gradient_and_information_equal_dense_computations(system, reml, theta):
    theta = np.array(theta)
    value, grad, info = BlockedDeviance(system, reml).derivatives(theta)
    expected_grad, expected_info = _dense_derivatives(system, theta, reml)
    scale = np.max(np.abs(expected_grad))
    np.testing.assert_allclose(grad, expected_grad, rtol=ORACLE_RTOL, atol=ORACLE_RTOL * scale)
    live = theta > 0  # at theta_t = 0 the information of t is 0 in both
    np.testing.assert_allclose(info[np.ix_(live, live)], expected_info[np.ix_(live, live)], rtol=ORACLE_RTOL,
                               atol=ORACLE_RTOL * np.max(np.abs(expected_info)))
    assert np.all(np.linalg.eigvalsh(info) > -1e-8 * np.max(np.abs(info)))


@pytest.mark.parametrize("reml", [True, False])
def test_leading_trace_from_the_weighted_coupling_equals_the_quadratic_forms(system, reml):
    # the factor BlockedDeviance makes carries the weighted coupling, in the free triangle
    # of its own buffer (no second rest-sized matrix), and the traces read off it (after
    # the factorisation wrote the other triangle) equal those from the per-level
    # quadratic forms of a plain factor
    blocked = BlockedDeviance(system, reml)
    theta = np.array([0.9, 0.6, 0.3])
    weighted_factor = blocked.factor(theta)
    assert weighted_factor.lead_weighted is not None
    assert np.shares_memory(weighted_factor.lead_weighted.buffer, weighted_factor.rest_chol)
    plain_factor = system.factorize(theta)
    assert plain_factor.lead_weighted is None
    np.testing.assert_array_equal(np.tril(weighted_factor.rest_chol), np.tril(plain_factor.rest_chol))
    thetas = theta[blocked.theta_of_term]
    scale = system._scalar_scale(theta)
    from_weighted = blocked._inverse_traces(weighted_factor, thetas, scale)
    from_forms = blocked._inverse_traces(plain_factor, thetas, scale)
    np.testing.assert_allclose(from_weighted, from_forms, rtol=1e-12)


@pytest.mark.parametrize("reml", [True, False])
def test_gradient_is_the_derivative_of_the_value(system, reml):
    blocked = BlockedDeviance(system, reml)
    theta = np.array([0.8, 0.5, 0.3])
    grad = blocked.derivatives(theta)[1]
    step = 1e-6
    numeric = [(blocked.value(theta + step * e) - blocked.value(theta - step * e)) / (2 * step)
               for e in np.eye(theta.size)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5 * np.max(np.abs(grad)))


def _dense_moment_start(system):
    """The moment equations of :mod:`interlace.fitting.start` solved with an explicit Z."""
    blocks, X, y, which = _dense(system)
    n, p = X.shape
    R = np.eye(n) - X @ np.linalg.solve(X.T @ X, X.T)
    r = R @ y
    K = len(blocks)
    equations = np.zeros((K + 1, K + 1))
    observed = np.zeros(K + 1)
    for t, zt in enumerate(blocks):
        for s, zs in enumerate(blocks):
            equations[t, s] = np.sum((zt.T @ R @ zs) ** 2)
        equations[t, K] = equations[K, t] = np.trace(zt.T @ R @ zt)
        observed[t] = np.sum((zt.T @ r) ** 2)
    equations[K, K] = n - p
    observed[K] = r @ r
    variances = np.linalg.solve(equations, observed)
    theta = np.zeros(system.design.n_theta)
    for t, w in enumerate(which):
        theta[w] = np.sqrt(variances[t] / variances[K])
    return theta


def test_moment_start_solves_the_moment_equations(system):
    np.testing.assert_allclose(moment_start(system), _dense_moment_start(system), rtol=1e-8)


def test_moment_start_is_near_the_optimum_on_large_data():
    rng = np.random.default_rng(11)
    n, n1, n2 = 30_000, 600, 150
    g1, g2 = rng.integers(0, n1, n), rng.integers(0, n2, n)
    x = rng.standard_normal(n)
    y = 1 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.5 * rng.standard_normal(n2)[g2] + rng.standard_normal(n)
    frame = pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})
    m = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", frame)
    assert m.optimization.optimizer == "newton"
    start = moment_start(m._system)
    np.testing.assert_allclose(start, m.theta, rtol=0.05)
    assert m.optimization.n_evaluations <= 6


def test_default_start_and_optimizer_by_system():
    sleep = interlace.load_dataset("sleepstudy")
    slope = build_system(build_design(*split_formula("Reaction ~ Days + (Days | Subject)"), sleep), "sparse")
    assert not supports_blocked_derivatives(slope)
    np.testing.assert_array_equal(start_theta(slope), slope.design.start_theta())
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, solver="sparse")
    assert m.optimization.optimizer == "cobyqa"
    with pytest.raises(interlace.InterlaceError, match="optimizer='newton'"):
        interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, optimizer="newton")


SCALAR_CASES = [case for case in index()
                if all(t.n_columns == 1 for t in case_design(case).terms)]


@pytest.mark.parametrize("case", SCALAR_CASES, ids=case_id)
def test_newton_reaches_lme4s_optimum(case):
    ref = load(case["json"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.fit(case["formula"], case_data(case),
                          method="REML" if ref["REML"] else "ML", solver="sparse", **prior_arguments(case))
    assert m.optimization.optimizer == "newton"
    criterion = ref["REMLcrit"] if ref["REML"] else ref["deviance"]
    assert -2 * m.llf <= criterion + 1e-6
    np.testing.assert_allclose(m.theta, list(ref["theta"].values()), atol=2e-4)


@settings(max_examples=25, deadline=None)
@given(crossed_frames(), st.sampled_from(["REML", "ML"]))
def test_newton_reaches_cobyqas_optimum(frame, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        newton = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", frame, method=method, solver="sparse")
        cobyqa = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", frame, method=method, solver="sparse",
                               optimizer="cobyqa")
    assert newton.optimization.optimizer == "newton"
    assert newton.llf >= cobyqa.llf - 1e-6


def test_zero_variance_ends_on_the_boundary():
    frame = _frame()
    # g2's effects replaced by nothing: its variance estimate is zero
    frame["y"] = frame["y"] - frame.groupby("g2")["y"].transform("mean") + frame["y"].mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        newton = interlace.fit(FORMULA, frame, solver="sparse")
        cobyqa = interlace.fit(FORMULA, frame, solver="sparse", optimizer="cobyqa")
    assert newton.optimization.optimizer == "newton"
    assert newton.is_singular
    assert newton.llf >= cobyqa.llf - 1e-6


class _Synthetic:
    """A criterion in gamma = theta^2: f(gamma) = (gamma - c)' A (gamma - c) + b' gamma,
    with its exact gradient in theta and, as "information", the exact Hessian in gamma
    scaled by ``misfit`` (an average information that is off by that factor)."""

    def __init__(self, A, c, b, misfit=1.0):
        self.A, self.c, self.b, self.misfit = np.asarray(A), np.asarray(c), np.asarray(b), misfit
        self.exact_calls = self.estimated_calls = 0

    def value(self, theta):
        e = theta**2 - self.c
        return float(e @ self.A @ e + self.b @ theta**2)

    def derivatives(self, theta, exact=True):
        self.exact_calls += exact
        self.estimated_calls += not exact
        e = theta**2 - self.c
        jac = 2.0 * theta  # d gamma / d theta
        grad_gamma = 2.0 * self.A @ e + self.b
        return self.value(theta), grad_gamma * jac, self.misfit * 2.0 * self.A * np.outer(jac, jac)


def _minimum(problem):
    from scipy.optimize import minimize

    res = minimize(lambda g: float((g - problem.c) @ problem.A @ (g - problem.c) + problem.b @ g),
                   np.full(len(problem.c), 0.5), bounds=[(0, None)] * len(problem.c), method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-12})
    return res.x


@pytest.mark.parametrize("level_sizes", [None, [20.0, 5.0]], ids=["gamma", "shrinkage"])
@pytest.mark.parametrize("misfit", [1.0, 0.7, 1.6])
def test_newton_converges_with_an_inexact_information(misfit, level_sizes):
    from interlace.fitting.newton import minimize_average_information

    problem = _Synthetic([[3.0, 1.0], [1.0, 2.0]], [0.4, 0.9], [0.0, 0.0], misfit)
    if level_sizes is not None:
        problem.level_sizes = np.array(level_sizes)
    res = minimize_average_information(problem, np.array([1.2, 0.3]), 200)
    assert res.success
    best = _minimum(problem)
    # the tolerances are on the criterion: within 5e-8 of its minimum (the early stop's bound)
    assert problem.value(res.x) - problem.value(np.sqrt(best)) < 5e-8
    np.testing.assert_allclose(res.x**2, best, atol=3e-4)
    assert problem.estimated_calls == 1  # the first gradient only
    if misfit == 1.0 and level_sizes is None:
        assert res.njev <= 3  # exact curvature: Newton's method on a quadratic


@pytest.mark.parametrize("level_sizes", [None, [20.0, 5.0]], ids=["gamma", "shrinkage"])
def test_newton_stops_on_the_bound_when_the_gradient_points_out(level_sizes):
    from interlace.fitting.newton import THETA_FLOOR, minimize_average_information

    # the unconstrained minimum has gamma_2 < 0: the constrained one sits on the bound
    problem = _Synthetic([[2.0, 0.3], [0.3, 1.0]], [0.5, -0.4], [0.0, 0.0])
    if level_sizes is not None:
        problem.level_sizes = np.array(level_sizes)
    res = minimize_average_information(problem, np.array([0.8, 0.8]), 200)
    assert res.success
    assert res.x[1] == pytest.approx(THETA_FLOOR)
    best = _minimum(problem)
    if level_sizes is None:  # the criterion is quadratic in these coordinates: Newton is exact
        np.testing.assert_allclose(res.x**2, best, atol=1e-6)
    else:  # not quadratic in w: the early stop's bound on the criterion
        assert problem.value(res.x) - problem.value(np.sqrt(best)) < 5e-8
        np.testing.assert_allclose(res.x**2, best, atol=1e-4)


def test_estimated_traces_are_close_to_the_exact_ones():
    rng = np.random.default_rng(5)
    n, n1, n2 = 8000, 900, 600  # a rest of 600 rows: above the estimated traces' minimum size
    g1, g2 = rng.integers(0, n1, n), rng.integers(0, n2, n)
    y = rng.standard_normal(n1)[g1] + 0.5 * rng.standard_normal(n2)[g2] + rng.standard_normal(n)
    frame = pd.DataFrame({"y": y, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})
    system = build_system(build_design(*split_formula("y ~ 1 + (1 | g1) + (1 | g2)"), frame))
    from interlace.fitting.blocked_gradient import ESTIMATED_MIN_SIZE

    assert system.size >= ESTIMATED_MIN_SIZE
    blocked = BlockedDeviance(system, reml=True)
    theta = np.array([0.9, 0.6])
    _, exact, info = blocked.derivatives(theta)
    _, estimated, info_estimated = blocked.derivatives(theta, exact=False)
    np.testing.assert_array_equal(info, info_estimated)  # only the traces are estimated
    # the gradient's error moves a Newton step by a small fraction of the step
    step = np.linalg.solve(info, exact)
    shift = np.linalg.solve(info, estimated - exact)
    assert np.linalg.norm(shift) < 0.02 * np.linalg.norm(step)
    # and the estimate is reproducible
    np.testing.assert_array_equal(estimated, blocked.derivatives(theta, exact=False)[1])


def test_an_estimated_gradient_factors_without_the_weighted_coupling():
    # the estimated traces read no lead_weighted, so the factorisation for them skips it;
    # an exact gradient at the same theta then reuses that factor (no second one) and
    # reads the leading trace off the per-level quadratic forms: the same derivatives
    rng = np.random.default_rng(6)
    n, n1, n2 = 8000, 900, 600  # a rest above the estimated traces' minimum size
    g1, g2 = rng.integers(0, n1, n), rng.integers(0, n2, n)
    y = rng.standard_normal(n1)[g1] + 0.5 * rng.standard_normal(n2)[g2] + rng.standard_normal(n)
    frame = pd.DataFrame({"y": y, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})
    system = build_system(build_design(*split_formula("y ~ 1 + (1 | g1) + (1 | g2)"), frame))
    theta = np.array([0.9, 0.6])
    first = BlockedDeviance(system, reml=True)
    first.derivatives(theta, exact=False)
    assert first.factor(theta).lead_weighted is None
    value, grad, info = first.derivatives(theta)
    assert first.n_evaluations == 1
    fresh = BlockedDeviance(system, reml=True)
    expected = fresh.derivatives(theta)
    assert fresh.factor(theta).lead_weighted is not None
    assert value == expected[0]
    np.testing.assert_allclose(grad, expected[1], rtol=1e-10, atol=1e-10 * np.max(np.abs(expected[1])))
    np.testing.assert_array_equal(info, expected[2])


def test_shrinkage_coordinates_map_gamma_and_the_derivatives(system):
    from interlace.fitting.newton import ShrinkageCoordinates

    blocked = BlockedDeviance(system, True)
    coords = ShrinkageCoordinates(blocked.level_sizes)
    assert np.all(blocked.level_sizes > 0)
    gamma = np.array([0.8, 0.3, 0.05])
    w = coords.from_gamma(gamma)
    assert np.all((w > 0) & (w < 1))
    np.testing.assert_allclose(coords.to_gamma(w), gamma, rtol=1e-12)
    assert coords.from_gamma(np.zeros(3)).tolist() == [1.0, 1.0, 1.0]
    assert not coords.valid(w - 1.0)
    # the gradient in w is the derivative of the criterion along w
    theta = np.sqrt(gamma)
    _, grad_w, info_w = coords.derivatives(*blocked.derivatives(theta), theta)
    h = 1e-6
    numeric = [(blocked.value(np.sqrt(coords.to_gamma(w + h * e))) - blocked.value(np.sqrt(coords.to_gamma(w - h * e))))
               / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(grad_w, numeric, rtol=1e-5)
    assert np.all(np.linalg.eigvalsh(info_w) > 0)


def test_shrinkage_step_from_the_moment_start_on_insteval():
    # W5 of the benchmark suite: one step from the moment start lands next to the
    # optimum, so one exact gradient (one inverse of the rest) suffices
    m = interlace.fit("y ~ service * dept + (1 | s) + (1 | d)", interlace.load_dataset("InstEval"))
    assert m.optimization.optimizer == "newton"
    assert m.optimization.n_evaluations <= 4


class _Estimated(_Synthetic):
    """:class:`_Synthetic` whose estimated gradient (``exact=False``) is off by a little."""

    def derivatives(self, theta, exact=True):
        value, grad, info = super().derivatives(theta, exact)
        return value, grad if exact else grad + 1e-6, info


@pytest.mark.parametrize("start", [[1.2, 0.3], [np.sqrt(0.4), np.sqrt(0.9)]], ids=["far", "at-the-optimum"])
def test_newton_ends_with_the_exact_gradient_at_its_point(start):
    # the convergence check reads the last gradient: it is exact and taken at the point
    # returned, also when the first (estimated) gradient already looks converged
    from interlace.fitting.newton import minimize_average_information

    problem = _Estimated([[3.0, 1.0], [1.0, 2.0]], [0.4, 0.9], [0.0, 0.0])
    res = minimize_average_information(problem, np.array(start), 200)
    assert res.success
    np.testing.assert_array_equal(res.at, res.x)
    _, grad, info = _Synthetic.derivatives(problem, res.x)
    np.testing.assert_array_equal(res.grad, grad)
    np.testing.assert_array_equal(res.information, info)
    assert problem.exact_calls >= 1 and problem.estimated_calls == 1
