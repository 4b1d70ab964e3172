"""Properties every fit must have, on generated crossed designs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlace
from interlace.design import build_design
from interlace.fitting.objective import profiled_deviance
from interlace.formula.random import split_formula
from interlace.linalg.system import PenalizedSystem

from .strategies import crossed_frames

FORMULA = "y ~ x + (1 | g1) + (1 | g2)"
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Two fits of the same model reach the same optimum up to the optimiser's tolerance; the
# deviance is flat there, so compare it tightly and estimates in units of their SE.
DEVIANCE_ABS = 1e-6
FIXEF_IN_SE = 1e-3
THETA_ABS = 1e-3
PATH_REL = 1e-10  # dense and blocked factor the same matrix: rounding only


def quiet_fit(*args, **kwargs) -> interlace.CrossedLMEResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return interlace.fit(*args, **kwargs)


def assert_same_fit(a, b) -> None:
    assert abs(a.llf - b.llf) <= DEVIANCE_ABS
    assert np.all(np.abs(a.fe_params.to_numpy() - b.fe_params.to_numpy()) <= FIXEF_IN_SE * a.fe_bse.to_numpy())
    np.testing.assert_allclose(a.theta, b.theta, atol=THETA_ABS)


@SETTINGS
@given(crossed_frames(), st.sampled_from(["REML", "ML"]))
def test_likelihood_identities(frame, method):
    m = quiet_fit(FORMULA, frame, method=method)
    assert m.nparams == len(m.fe_params) + len(m.theta) + 1
    assert m.aic == pytest.approx(-2 * m.llf + 2 * m.nparams)
    assert m.bic == pytest.approx(-2 * m.llf + m.nparams * np.log(m.nobs))
    assert (m.llf_restricted is None) == (method == "ML")
    np.testing.assert_allclose(m.resid + m.fittedvalues, frame["y"].to_numpy())


@SETTINGS
@given(crossed_frames(slope=True))
def test_blup_shapes_and_keys(frame):
    m = quiet_fit("y ~ x + (x | g1) + (1 | g2)", frame)
    assert set(m.random_effects) == {"g1", "g2"}
    # lme4's order: grouping factors by decreasing number of levels
    counts = [m.ngroups[name] for name in m.random_effects]
    assert counts == sorted(counts, reverse=True)
    assert m.random_effects["g1"].shape == (frame["g1"].nunique(), 2)
    assert list(m.random_effects["g1"].columns) == ["Intercept", "x"]
    assert isinstance(m.random_effects["g2"], pd.Series)
    assert m.random_effects["g2"].index.tolist() == sorted(frame["g2"].unique().tolist())
    for name, est in m.random_effects.items():
        assert m.random_effects_se[name].shape == est.shape
        assert m.ngroups[name] == len(est)
    assert set(m.variance_components) == {"g1", "g2"}
    assert list(m.correlation_params) == ["g1:Intercept,x"]


@SETTINGS
@given(crossed_frames(), st.integers(0, 2**32 - 1))
def test_invariant_to_row_order(frame, seed):
    order = np.random.default_rng(seed).permutation(len(frame))
    a = quiet_fit(FORMULA, frame)
    b = quiet_fit(FORMULA, frame.iloc[order].reset_index(drop=True))
    assert_same_fit(a, b)
    np.testing.assert_allclose(a.fittedvalues[order], b.fittedvalues, atol=1e-3 * np.sqrt(a.scale))


@SETTINGS
@given(crossed_frames())
def test_invariant_to_relabelling_levels(frame):
    relabelled = frame.copy()
    codes = relabelled["g1"].cat.codes.to_numpy()
    relabelled["g1"] = pd.Categorical([f"zz{9 - c}" for c in codes])
    a = quiet_fit(FORMULA, frame)
    b = quiet_fit(FORMULA, relabelled)
    assert_same_fit(a, b)
    mapping = dict(zip(frame["g1"], relabelled["g1"], strict=False))
    blup_a = a.random_effects["g1"].rename(index=mapping).sort_index()
    blup_b = b.random_effects["g1"].sort_index()
    np.testing.assert_allclose(blup_a.to_numpy(), blup_b.to_numpy(), atol=1e-3 * np.sqrt(a.scale))


@SETTINGS
@given(crossed_frames(), st.floats(0.1, 10.0), st.floats(-50.0, 50.0), st.sampled_from([1.0, -1.0]))
def test_affine_response(frame, a, b, sign):
    a = a * sign
    base = quiet_fit(FORMULA, frame, method="ML")
    moved = quiet_fit(FORMULA, frame.assign(y=a * frame["y"] + b), method="ML")
    np.testing.assert_allclose(moved.theta, base.theta, atol=THETA_ABS)
    expected = base.fe_params.to_numpy() * a + np.array([b, 0.0])
    assert np.all(np.abs(moved.fe_params.to_numpy() - expected) <= FIXEF_IN_SE * moved.fe_bse.to_numpy())
    assert np.sqrt(moved.scale) == pytest.approx(abs(a) * np.sqrt(base.scale), rel=1e-3)
    assert moved.llf == pytest.approx(base.llf - base.nobs * np.log(abs(a)), abs=DEVIANCE_ABS * abs(a) + 1e-6)
    for name in base.random_effects:
        np.testing.assert_allclose(moved.random_effects[name].to_numpy(), a * base.random_effects[name].to_numpy(),
                                   atol=1e-3 * np.sqrt(moved.scale))


@SETTINGS
@given(crossed_frames(slope=True), st.lists(st.floats(0.0, 3.0), min_size=4, max_size=4))
def test_dense_and_blocked_paths_agree(frame, values):
    design = build_design(*split_formula("y ~ x + (x | g1) + (1 | g2)"), frame)
    theta = np.array([values[0], values[1] - 1.5, values[2], values[3]])
    dense, blocked = PenalizedSystem(design, 0), PenalizedSystem(design, 1)
    for reml in (True, False):
        d0 = profiled_deviance(dense.factorize(theta), design.n_obs, design.n_fixed, reml)
        d1 = profiled_deviance(blocked.factorize(theta), design.n_obs, design.n_fixed, reml)
        assert d0 == pytest.approx(d1, rel=PATH_REL)


@settings(max_examples=6, deadline=None)
@given(crossed_frames())
def test_pandas_polars_pyarrow_agree(frame):
    as_polars = pl.DataFrame({
        "y": frame["y"].to_numpy(), "x": frame["x"].to_numpy(),
        "g1": pl.Series(frame["g1"].astype(str).tolist(), dtype=pl.Categorical),
        "g2": pl.Series(frame["g2"].astype(str).tolist()),
    })
    as_arrow = pa.table({
        "y": frame["y"].to_numpy(), "x": frame["x"].to_numpy(),
        "g1": pa.array(frame["g1"].astype(str).tolist()).dictionary_encode(),
        "g2": pa.array(frame["g2"].astype(str).tolist()),
    })
    fits = [quiet_fit(FORMULA, data) for data in (frame, as_polars, as_arrow)]
    for other in fits[1:]:
        np.testing.assert_allclose(other.theta, fits[0].theta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(other.fe_params, fits[0].fe_params, rtol=1e-12)
        assert other.llf == fits[0].llf
        for name in fits[0].random_effects:
            pd.testing.assert_series_equal(other.random_effects[name], fits[0].random_effects[name],
                                           check_exact=False, rtol=1e-12)


@settings(max_examples=10, deadline=None)
@given(crossed_frames(), st.floats(0.0, 0.2))
def test_is_singular_exactly_when_a_boundary_flag_is(frame, shrink):
    # shrink g2's effects towards nothing so that some fits end on the boundary
    data = frame.assign(y=frame["y"] - (1 - shrink) * frame.groupby("g2", observed=True)["y"].transform("mean"))
    m = quiet_fit(FORMULA, data)
    assert m.is_singular == any(m.boundary_flags.values())
    assert interlace.isSingular(m) == m.is_singular
    assert interlace.isSingular(m, tol=0.0) is False  # diagonal entries are never below zero


@settings(max_examples=30, deadline=None)
@given(crossed_frames(slope=True), st.sampled_from(["REML", "ML"]),
       st.sampled_from(["y ~ x + (x | g1) + (1 | g2)", FORMULA]))
def test_default_optimizer_reaches_cobyqas_optimum(frame, method, formula):
    # the gradient paths (scipy's L-BFGS-B, the compiled BFGS) must not stop where the
    # deviance is stationary on the boundary (zero variances)
    default = quiet_fit(formula, frame, method=method)
    with warnings.catch_warnings():  # the yardstick: whether COBYQA itself converged is not under test
        warnings.simplefilter("ignore", interlace.ConvergenceWarning)
        derivative_free = quiet_fit(formula, frame, method=method, optimizer="cobyqa")
    assert default.llf >= derivative_free.llf - DEVIANCE_ABS


def _derivative_free(formula, frame, method, solver, start) -> float:
    """The criterion (-2 llf) COBYQA reaches from ``start``, whether it says it converged or not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        warnings.simplefilter("ignore", interlace.ConvergenceWarning)
        return -2.0 * interlace.fit(formula, frame, method=method, solver=solver, optimizer="cobyqa", start=start).llf


DEFAULT_PATHS = [("y ~ x + (x | g1) + (1 | g2)", "auto"), (FORMULA, "auto"), (FORMULA, "sparse"),
                 ("y ~ x + (x | g1) + (1 | g2)", "sparse")]
"""The default optimiser's paths: the compiled BFGS (random slopes, intercepts), Newton's
method (intercepts on the blocked path) and COBYQA (slopes on the blocked path)."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crossed_frames(slope=True), st.sampled_from(["REML", "ML"]), st.sampled_from(DEFAULT_PATHS),
       st.floats(0.0, 1.0), st.lists(st.floats(-1.0, 3.0), min_size=4, max_size=4))
def test_converged_fits_reach_the_best_derivative_free_optimum(frame, method, path, shrink, values):
    # converged=True is a promise: no derivative-free search, from lme4's start or others,
    # finds a lower criterion. g2's effects are shrunk towards nothing so that some optima
    # lie on the boundary (a variance at zero), where the gradient methods' check rests on
    # the curvature there. The gradient paths must converge (a ConvergenceWarning is an
    # error); COBYQA may stop where the check finds a descent, and then says so.
    formula, solver = path
    data = frame.assign(y=frame["y"] - (1 - shrink) * frame.groupby("g2", observed=True)["y"].transform("mean"))
    derivative_free_path = solver == "sparse" and formula != FORMULA
    with warnings.catch_warnings():
        if derivative_free_path:
            warnings.simplefilter("ignore", interlace.ConvergenceWarning)
        fit = quiet_fit(formula, data, method=method, solver=solver)
    assert fit.converged == fit.optimization.check.passed
    lower = fit._system.design.theta_lower
    k = len(fit.theta)
    drawn = np.where(np.isfinite(lower), np.abs(values[:k]) + 0.05, values[:k])
    small = np.where(np.isfinite(lower), 0.1, 0.0)
    best = min(_derivative_free(formula, data, method, solver, start) for start in (None, drawn, small))
    if fit.converged:
        assert -2.0 * fit.llf <= best + DEVIANCE_ABS
    else:
        assert derivative_free_path
