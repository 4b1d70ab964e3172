"""The compiled deviance of small dense systems against the general dense path.

The scalar kernel eliminates the first term's diagonal block one pivot at a time
and reads diag((leading block)^{-1}) off a partitioned inverse; the block kernel
handles random slopes. Their values must equal :class:`interlace.fitting.objective.Objective`
and their gradients :class:`interlace.fitting.gradient.DenseDeviance` (LAPACK) at any theta,
boundary included.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import SingularFitWarning
from interlace.fitting.gradient import CompiledDeviance, DenseDeviance, deviance_functions
from interlace.fitting.objective import Objective
from interlace.fitting.optimize import optimize_theta
from interlace.kernels.dense_deviance import differenced_hessian, profiled_deviance
from interlace.linalg.system import PenalizedSystem


def _crossed(n_subjects=12, n_items=7, seed=3):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), n_items)
    item = np.tile(np.arange(n_items), n_subjects)
    keep = rng.random(subj.size) < 0.85  # unbalanced: some cells missing
    subj, item = subj[keep], item[keep]
    x = rng.standard_normal(subj.size)
    y = 1 + 0.5 * x + rng.standard_normal(n_subjects)[subj] + 0.6 * rng.standard_normal(n_items)[item]
    y = y + rng.standard_normal(subj.size)
    return pd.DataFrame({"y": y, "x": x, "subj": [f"s{i}" for i in subj], "item": [f"i{i}" for i in item]})


MODELS = {
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: interlace.load_dataset("Penicillin")),
    "dyestuff": ("Yield ~ 1 + (1 | Batch)", lambda: interlace.load_dataset("Dyestuff")),
    "crossed": ("y ~ x + (1 | subj) + (1 | item)", _crossed),
    "slope": ("Reaction ~ Days + (Days | Subject)", lambda: interlace.load_dataset("sleepstudy")),
    "uncorrelated": ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
                     lambda: interlace.load_dataset("sleepstudy")),
    "crossed_slope": ("y ~ x + (1 + x | subj) + (1 | item)", _crossed),
    # the block kernel eliminates the first term level by level: a scalar first term, a
    # slope term on both factors, a first term three wide
    "slope_second": ("y ~ x + (1 | subj) + (1 + x | item)", _crossed),
    "two_slopes": ("y ~ x + (1 + x | subj) + (1 + x | item)", _crossed),
    "three_wide": ("y ~ x + (1 + x + z | subj) + (1 | item)",
                   lambda: _crossed().assign(z=lambda d: np.cos(np.arange(len(d))))),
    "three": ("y ~ x + (1 | subj) + (1 | item) + (1 | x_group)",
              lambda: _crossed().assign(x_group=lambda d: np.where(d.x > 0, "hi", "lo"))),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def system(request):
    formula, load = MODELS[request.param]
    with warnings.catch_warnings():  # the system only: a fit at a zero variance serves as well
        warnings.simplefilter("ignore", SingularFitWarning)
        m = interlace.fit(formula, load(), solver="dense")
    return m._system


@pytest.mark.parametrize("reml", [True, False])
def test_compiled_value_and_gradient_equal_the_dense_path(system, reml):
    compiled = CompiledDeviance(system, reml)
    general = DenseDeviance(system, reml)
    objective = Objective(system, reml)
    rng = np.random.default_rng(0)
    n_theta = system.design.n_theta
    lower = system.design.theta_lower
    points = [np.where(np.isfinite(lower), rng.uniform(0.05, 2.0, n_theta), rng.uniform(-0.5, 0.5, n_theta))
              for _ in range(4)]
    points.append(np.where(np.arange(n_theta) == 0, 0.0, np.abs(points[0])))  # a zero variance
    for theta in points:
        value, grad = compiled(theta)
        expected_value, expected_grad = general(theta)
        assert value == pytest.approx(objective(theta), rel=1e-12)
        assert value == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("reml", [True, False])
def test_compiled_deviance_with_each_variance_zero_equals_the_dense_path(system, reml):
    # a zero diagonal entry of a term's factor T makes T singular (a zero variance, or a
    # correlation of +-1 with the entries below it): nothing may divide by it
    compiled = CompiledDeviance(system, reml)
    general = DenseDeviance(system, reml)
    lower = system.design.theta_lower
    base = np.where(np.isfinite(lower), np.linspace(0.4, 1.5, lower.size), 0.7)
    for i in np.flatnonzero(np.isfinite(lower)):
        theta = base.copy()
        theta[i] = 0.0
        value, grad = compiled(theta)
        expected_value, expected_grad = general(theta)
        assert value == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("reml", [True, False])
def test_the_optimiser_evaluates_the_models_own_kernel(system, reml):
    # the compiled optimiser's deviance picks the scalar or the block kernel from the
    # layout's type (None: scalar) when compiling; in Python profiled_deviance picks it
    # at run time: both must be the kernel CompiledDeviance calls
    compiled = CompiledDeviance(system, reml)
    assert (compiled.layout is None) == (not compiled.general)
    theta = np.linspace(0.3, 1.2, compiled.n_theta)
    A = system.rest_crossprod
    counts = (compiled.n_theta, compiled.q, reml, compiled.n_obs, compiled.n_fixed)
    args = (compiled.term_of, compiled.n_diagonal, compiled.layout)
    value, grad = compiled(theta)
    f, g, ok, pwrss = profiled_deviance(A, theta, *counts, np.ones(system.size), *args)
    assert ok
    assert f == pytest.approx(value, rel=1e-13)
    assert pwrss == pytest.approx(system.factorize(theta).pwrss, rel=1e-10)  # sigma^2 at an optimum
    np.testing.assert_allclose(g, grad, rtol=1e-12, atol=1e-12)
    steps = np.full(compiled.n_theta, 1e-4)
    g, _, ok = differenced_hessian(A, theta, steps, np.zeros(0), False, *counts, *args)  # compiled
    assert ok
    np.testing.assert_allclose(g, grad, rtol=1e-12, atol=1e-12)


def test_compiled_gradient_equals_finite_differences(system):
    compiled = CompiledDeviance(system, True)
    theta = np.linspace(0.4, 1.3, system.design.n_theta)
    theta[~np.isfinite(system.design.theta_lower)] *= -0.3  # correlations may be negative
    h = 1e-6
    numeric = [(compiled.value(theta + h * e) - compiled.value(theta - h * e)) / (2 * h)
               for e in np.eye(theta.size)]
    np.testing.assert_allclose(compiled(theta)[1], numeric, rtol=1e-5, atol=1e-5)


def test_not_positive_definite_is_infinite():
    m = interlace.fit(*[MODELS["crossed"][0], _crossed()], solver="dense")
    system = m._system
    broken = object.__new__(PenalizedSystem)
    broken.__dict__.update(system.__dict__)
    broken.rest_crossprod = system.rest_crossprod.copy()
    broken.rest_crossprod[-1, -1] = -1.0  # y'y < 0: no factor
    compiled = CompiledDeviance(broken, True)
    assert compiled.value(m.theta) == np.inf


def test_inverse_hessian_inverts_the_finite_difference_hessian():
    m = interlace.fit(MODELS["crossed"][0], _crossed(), solver="dense")
    compiled = CompiledDeviance(m._system, True)
    lower = m._system.design.theta_lower
    inverse = compiled.inverse_hessian(m.theta, lower)
    h = 1e-4
    hessian = np.array([[(compiled.value(m.theta + h * (a + b)) - compiled.value(m.theta + h * (a - b))
                          - compiled.value(m.theta - h * (a - b)) + compiled.value(m.theta - h * (a + b)))
                         / (4 * h * h) for b in np.eye(2)] for a in np.eye(2)])
    np.testing.assert_allclose(inverse @ hessian, np.eye(2), atol=1e-3)
    on_bound = m.theta.copy()
    on_bound[0] = 0.0
    assert compiled.inverse_hessian(on_bound, lower) is None


def test_optimiser_started_with_curvature_finds_the_same_optimum():
    m = interlace.fit(MODELS["crossed"][0], _crossed(), solver="dense")
    y = m.simulate(1, seed=5)[:, 0]
    system = m._system.with_response(y)
    fun, with_gradient = deviance_functions(system, True)
    lower = system.design.theta_lower
    warm = optimize_theta(fun, m.theta, lower, fun_and_grad=with_gradient, inverse_hessian=m._refit_curvature)
    reference = optimize_theta(fun, m.theta, lower, optimizer="cobyqa")
    assert warm.objective <= reference.objective + 1e-8
    np.testing.assert_allclose(warm.theta, reference.theta, atol=1e-4)


def test_dense_path_above_the_compiled_size_fits_with_lbfgsb():
    # between the compiled kernels' size and the dense path's limit: DenseDeviance's
    # gradient and L-BFGS-B (it has no average information: not Newton's method)
    from interlace.fitting.gradient import COMPILED_MAX_SIZE
    from interlace.linalg.dispatch import DENSE_MAX_SIZE

    frame = _crossed(n_subjects=220, n_items=30, seed=4)
    m = interlace.fit("y ~ x + (1 | subj) + (1 | item)", frame)
    assert COMPILED_MAX_SIZE < m._system.size <= DENSE_MAX_SIZE
    assert m.optimization.optimizer == "l-bfgs-b"
    reference = interlace.fit("y ~ x + (1 | subj) + (1 | item)", frame, optimizer="cobyqa")
    assert -2 * m.llf <= -2 * reference.llf + 1e-8
    np.testing.assert_allclose(m.theta, reference.theta, atol=1e-4)
