"""Satterthwaite's df: the exact Hessian and Jacobian against differences of the analytic
gradient, the exact df of balanced designs, invariance, degenerate fits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import interlace
from interlace.fitting.gradient import DenseDeviance
from interlace.inference.deviance_hessian import (
    finite_difference_derivatives,
    general_derivatives,
    scalar_blocked_derivatives,
)
from interlace.inference.satterthwaite import varpar_derivatives

from .strategies import crossed_frames

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ORACLE_REL = 1e-6  # exact Hessian against central differences (step 1e-5) of the exact gradient
PATHS_REL = 1e-9  # the scalar formula and the general one compute the same numbers
EXACT_DF_REL = 1e-6  # balanced designs: Satterthwaite's df are known in closed form (the rest is
# the optimum's own accuracy: theta to about 1e-7)

MODELS = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("Dialyzer", "rate ~ pressure + QB + (pressure | Subject)"),
    ("BodyWeight", "weight ~ Time * Diet + (Time | Rat)"),
]


def quiet_fit(*args, **kwargs) -> interlace.CrossedLMEResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        warnings.simplefilter("ignore", interlace.ConvergenceWarning)
        return interlace.fit(*args, **kwargs)


def _gradient_differences(system, theta: np.ndarray, sigma: float, reml: bool) -> np.ndarray:
    """Central differences of the analytic gradient of D(theta, sigma) in theta."""
    parts = DenseDeviance(system, reml)

    def gradient(t):
        dlogdet, dr2 = parts.parts(t, system.factorize(t))
        return dlogdet + dr2 / sigma**2

    k = len(theta)
    out = np.empty((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = 1e-5 * max(1.0, abs(theta[i]))
        out[i] = (gradient(theta + step) - gradient(theta - step)) / (2 * step[i])
    return 0.5 * (out + out.T)


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize(("dataset", "formula"), MODELS)
def test_exact_hessian_against_the_gradients_differences(dataset, formula, method):
    m = quiet_fit(formula, interlace.load_dataset(dataset), method=method, solver="dense")
    theta = m.theta * 1.05 + 0.02  # away from the optimum and off any boundary
    sigma = 1.1 * float(np.sqrt(m.scale))
    exact = general_derivatives(m._system, theta, sigma, method == "REML")
    k = len(theta)
    oracle = _gradient_differences(m._system, theta, sigma, method == "REML")
    scale = np.max(np.abs(oracle))
    assert np.max(np.abs(exact.hessian[:k, :k] - oracle)) <= ORACLE_REL * scale
    # the vcov Jacobian and the sigma entries against plain central differences
    rough = finite_difference_derivatives(m._system, theta, sigma, method == "REML")
    np.testing.assert_allclose(exact.vcov_jacobian, rough.vcov_jacobian, rtol=1e-5,
                               atol=1e-5 * np.max(np.abs(rough.vcov_jacobian)))
    np.testing.assert_allclose(exact.hessian[k], rough.hessian[k], rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize(("dataset", "formula"), [
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("TVbo", "Coloursaturation ~ TVset * Picture + (1 | Assessor) + (1 | Assessor:TVset)"),
])
def test_scalar_blocked_formula_equals_the_general_one(dataset, formula, method):
    m = quiet_fit(formula, interlace.load_dataset(dataset), method=method, solver="sparse")
    theta = m.theta * 1.1 + 0.01
    sigma = float(np.sqrt(m.scale))
    general = general_derivatives(m._system, theta, sigma, method == "REML")
    scalar = scalar_blocked_derivatives(m._system, theta, sigma, method == "REML")
    assert scalar is not None and scalar.method == "scalar"
    np.testing.assert_allclose(scalar.hessian, general.hessian, rtol=0,
                               atol=PATHS_REL * np.max(np.abs(general.hessian)))
    np.testing.assert_allclose(scalar.vcov_jacobian, general.vcov_jacobian, rtol=0,
                               atol=PATHS_REL * np.max(np.abs(general.vcov_jacobian)))


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("zero", [0, 1])
def test_scalar_blocked_formula_at_a_zero_variance(zero, method):
    # a term at theta = 0 is decoupled: its own curvature from the model without it
    m = quiet_fit("Coloursaturation ~ TVset * Picture + (1 | Assessor) + (1 | Assessor:TVset)",
                  interlace.load_dataset("TVbo"), method=method, solver="sparse")
    theta = m.theta.copy()
    theta[zero] = 0.0
    general = general_derivatives(m._system, theta, 0.9, method == "REML")
    scalar = scalar_blocked_derivatives(m._system, theta, 0.9, method == "REML")
    np.testing.assert_allclose(scalar.hessian, general.hessian, rtol=0,
                               atol=PATHS_REL * np.max(np.abs(general.hessian)))
    np.testing.assert_allclose(scalar.vcov_jacobian, general.vcov_jacobian, rtol=0,
                               atol=PATHS_REL * np.max(np.abs(general.vcov_jacobian)))


def test_singular_fit_df_on_both_paths():
    data = interlace.load_dataset("Dyestuff2")
    dense = quiet_fit("Yield ~ 1 + (1 | Batch)", data, solver="dense")
    blocked = quiet_fit("Yield ~ 1 + (1 | Batch)", data, solver="sparse")
    assert dense.theta[0] == blocked.theta[0] == 0.0
    sigma = float(np.sqrt(blocked.scale))
    scalar = scalar_blocked_derivatives(blocked._system, blocked.theta, sigma, True)
    general = general_derivatives(dense._system, dense.theta, sigma, True)
    np.testing.assert_allclose(scalar.hessian, general.hessian, rtol=1e-12)
    assert float(blocked.fe_df.iloc[0]) == pytest.approx(float(dense.fe_df.iloc[0]), rel=1e-10)
    assert float(dense.fe_df.iloc[0]) == pytest.approx(29.0, rel=1e-10)  # lmerTest: n - 1 at a zero variance


def _one_way(draw_groups: int, per_group: int, seed: int, slope: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(draw_groups), per_group)
    x = np.tile(np.arange(per_group, dtype=float), draw_groups)
    y = rng.standard_normal(draw_groups)[g] * 2.0 + rng.standard_normal(g.size) + (0.3 * x if slope else 0.0)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i}" for i in g])})


@SETTINGS
@given(st.integers(3, 10), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_balanced_one_way_intercept_has_groups_minus_one_df(n_groups, per_group, seed):
    data = _one_way(n_groups, per_group, seed)
    means = data.groupby("g", observed=True)["y"].mean().to_numpy()
    between = per_group * np.var(means, ddof=1)
    within = float(np.sum((data["y"] - np.repeat(means, per_group)) ** 2)) / (n_groups * (per_group - 1))
    assume(between > 1.05 * within)  # else the REML estimate of the group variance is zero
    m = quiet_fit("y ~ 1 + (1 | g)", data)
    assert abs(float(m.fe_df.iloc[0]) - (n_groups - 1)) <= EXACT_DF_REL * (n_groups - 1)


@SETTINGS
@given(st.integers(3, 8), st.integers(3, 6), st.integers(0, 2**32 - 1))
def test_balanced_one_way_within_slope_has_the_within_df(n_groups, per_group, seed):
    # x takes the same values in every group: its coefficient is a within-group contrast
    # whose variance involves sigma^2 only, with N - groups - 1 degrees of freedom
    data = _one_way(n_groups, per_group, seed, slope=True)
    m = quiet_fit("y ~ x + (1 | g)", data)
    assume(not m.is_singular)
    within = n_groups * (per_group - 1) - 1
    assert abs(float(m.fe_df["x"]) - within) <= EXACT_DF_REL * within


@SETTINGS
@given(st.integers(3, 9), st.integers(3, 6), st.integers(0, 2**32 - 1))
def test_balanced_crossed_intercept_has_the_classical_df(a, b, seed):
    # y_ij = mu + a_i + b_j + e_ij, one observation per cell: Var(mean) =
    # (E MS_A + E MS_B - E MS_E) / (ab), and Satterthwaite's df of that combination
    rng = np.random.default_rng(seed)
    Y = 3.0 + rng.standard_normal(a)[:, None] * 1.5 + rng.standard_normal(b)[None, :] + rng.standard_normal((a, b))
    data = pd.DataFrame({"y": Y.ravel(), "r": pd.Categorical(np.repeat([f"r{i}" for i in range(a)], b)),
                         "c": pd.Categorical(np.tile([f"c{j}" for j in range(b)], a))})
    grand, rows, cols = Y.mean(), Y.mean(axis=1), Y.mean(axis=0)
    ms_a = b * np.sum((rows - grand) ** 2) / (a - 1)
    ms_b = a * np.sum((cols - grand) ** 2) / (b - 1)
    ms_e = np.sum((Y - rows[:, None] - cols[None, :] + grand) ** 2) / ((a - 1) * (b - 1))
    assume(min(ms_a, ms_b) > 1.05 * ms_e)  # else a variance estimate is zero: no closed form
    expected = (ms_a + ms_b - ms_e) ** 2 / (ms_a**2 / (a - 1) + ms_b**2 / (b - 1) + ms_e**2 / ((a - 1) * (b - 1)))
    for solver in ("dense", "sparse"):
        m = quiet_fit("y ~ 1 + (1 | r) + (1 | c)", data, solver=solver)
        assert abs(float(m.fe_df.iloc[0]) - expected) <= EXACT_DF_REL * expected


@SETTINGS
@given(crossed_frames(), st.sampled_from([1e-3, 7.0, 1e4]), st.sampled_from([-3.0, 0.0, 25.0]))
def test_df_do_not_change_when_the_response_is_scaled(frame, factor, shift):
    # shifts of the response's own size (shifts of 1e6 standard deviations are a matter
    # of the fit's conditioning, not of the df)
    m = quiet_fit("y ~ x + (1 | g1) + (1 | g2)", frame)
    scaled = quiet_fit("y ~ x + (1 | g1) + (1 | g2)", frame.assign(y=factor * (frame["y"] + shift)))
    assume(not (m.is_singular or scaled.is_singular))
    np.testing.assert_allclose(scaled.fe_df.to_numpy(), m.fe_df.to_numpy(), rtol=1e-5)


def test_the_reference_cases_use_an_exact_method(fits):
    for name in ("InstEval__y_1_service_1_s_1_d_1_dept__REML.json", "sleepstudy__Reaction_Days_Days_Subject__REML.json",
                 "Dialyzer__rate_pressure_QB_pressure_Subject__REML.json"):
        m = fits.get(name)
        assert m._varpar.method in ("general", "scalar"), name


@pytest.mark.parametrize("sigma", [0.0, np.inf, np.nan])
def test_degenerate_residual_variance_gives_nan_df_with_a_warning(sigma):
    m = quiet_fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    with pytest.warns(interlace.DegenerateFitWarning, match="Satterthwaite's df are undefined"):
        derivatives = varpar_derivatives(m._system, m.theta, sigma, True)
    from interlace.inference.satterthwaite import satterthwaite_df

    assert np.isnan(satterthwaite_df(np.array([1.0]), m.fe_cov, derivatives))


def test_a_perfect_fit_has_no_df():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    frame = pd.DataFrame({"y": 2 * x + 1, "x": x, "g": pd.Categorical(np.repeat(np.arange(6), 5))})
    with pytest.warns(interlace.DegenerateFitWarning, match="fitted exactly by the fixed effects"):
        m = quiet_fit("y ~ x + (1 | g)", frame)
    with pytest.warns(interlace.DegenerateFitWarning, match="zero to rounding|is 0.0"):
        assert np.all(np.isnan(m.fe_df.to_numpy()))
