"""The generalized linear mixed model's fit, as lme4's ``glmer``.

Stage 1 (lme4's ``nAGQ = 0``): theta is optimised with beta inside PIRLS, the
criterion the Laplace deviance at the joint conditional mode of (u, beta). Stage 2
(``nAGQ >= 1``): from stage 1's optimum, (theta, beta) are optimised together, the
criterion the Laplace deviance (``nAGQ = 1``) or, for a single scalar random-effects
term, the adaptive Gauss-Hermite approximation with ``nAGQ`` points per level
(:func:`agq_deviance`). PIRLS (:mod:`interlace.fitting.pirls`) runs on the linear
model's penalised system; X is on a working scale (X' = X T, orthogonal columns of unit
root mean square, beta = T beta') so the optimiser sees comparable coordinates.

vcov(beta) is lme4's: the inverse of half the Hessian of the deviance in (theta, beta)
by central differences (lme4's ``deriv12``), its beta block; where that Hessian is not
positive definite, or with ``nAGQ = 0``, (R_X' R_X)^{-1} of the joint PIRLS system
(lme4's fallback, with a warning in the first case).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import lapack

from ..errors import (
    ConvergenceWarning,
    DataError,
    InterlaceError,
    MissingValuesWarning,
    SingularFitWarning,
)
from ..families import Family
from ..linalg.system import PenalizedSystem
from .estimates import (
    boundary_flags,
    conditional_sd,
    lme4_term_order,
    random_effects_frames,
    variance_components,
)
from .laplace_gradient import supports_gradient
from .model_frame import prepare
from .optimize import optimize_theta
from .pirls import ConditionalMode, Pirls
from .response import RESPONSE_COLUMN, TRIALS_COLUMN, WEIGHTS_COLUMN, GlmResponse, read_response
from .scalar_pirls import ScalarMode, ScalarPirls

MAX_AGQ = 25

MAX_MAGNITUDE = 1e100
"""Largest offset and prior weight a generalized fit takes (their products with the data
must stay finite in the cross-products)."""
"""The most quadrature points per level (lme4's limit)."""

HESSIAN_STEP = 1e-4

LBFGS_TOLERANCES = {"ftol": 1e-13, "gtol": 1e-6}
"""L-BFGS-B's stopping rule on the Laplace deviance: its value comes from PIRLS, accurate
to about 1e-10 of itself, so a relative decrease below 1e-13 or a projected gradient below
1e-6 is as close as it gets (lme4's check asks for a scaled gradient of 2e-3)."""

RECENT_MODES = 3
"""Conditional modes (and gradients) a criterion keeps, newest first."""
"""lme4's ``deriv12`` step for the Hessian behind vcov(beta)."""


def _valid_rows(pirls: Pirls, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Per row: the mean inside the family's range and eta inside the link's domain."""
    ok = (mu > 0.0) & (mu < 1.0) if pirls.family_code == 0 else mu > 0.0
    name = pirls.response.family.link.name
    if name == "sqrt":
        ok &= eta > 0.0
    elif name == "inverse":
        ok &= eta != 0.0
    return ok


def _level_sums(codes: np.ndarray, values: np.ndarray, n_levels: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n_levels)


def agq_deviance(pirls: Pirls, mode: ConditionalMode, theta: np.ndarray, n_points: int) -> float:
    """The adaptive Gauss-Hermite deviance of a single scalar random-effects term at the
    conditional mode (lme4's ``glmerAGQ``): per level j, the integral over u_j by
    ``n_points`` knots u*_j + z_k / L_jj, plus the family's saturated -2 log-likelihood
    (which lme4's value leaves out: its ``logLik`` differs from this by that constant)."""
    from ..kernels.glm import inverse_link, unit_deviance

    term = pirls.design.terms[0]
    response = pirls.response
    codes, n_levels = term.group_codes, term.n_levels
    lam = float(term.relative_cov_factor(theta)[0, 0])
    x = term.design[:, 0]
    _, root_weights, _ = pirls._working(mode.eta)
    precision = 1.0 + lam * lam * _level_sums(codes, root_weights**2 * x * x, n_levels)
    sd = 1.0 / np.sqrt(precision)
    u0 = mode.u
    base = mode.eta - lam * u0[codes] * x  # eta without the random effect

    def per_level(u: np.ndarray) -> np.ndarray:
        eta = base + lam * u[codes] * x
        mu = inverse_link(eta, pirls.link_code)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            d = unit_deviance(response.y, mu, response.weights, response.family.code)
        # a knot whose means leave the family's range adds nothing to its level's integral
        invalid = ~(np.isfinite(d) & _valid_rows(pirls, eta, mu))
        d = np.where(invalid, np.inf, d)
        return _level_sums(codes, d, n_levels) + u * u

    devc0 = per_level(u0)
    if not np.all(np.isfinite(devc0)):
        return np.inf
    knots, weights = np.polynomial.hermite_e.hermegauss(n_points)
    weights = weights / np.sqrt(2.0 * np.pi)  # lme4's GHrule: weights of the standard normal
    mult = np.zeros(n_levels)
    for z, w in zip(knots, weights, strict=True):
        # each knot's weight over the normal density there, sqrt(2 pi) aside (lme4's glmerAGQ)
        if z == 0.0:
            mult += w
        else:
            with np.errstate(over="ignore"):
                mult += w * np.exp(0.5 * z * z - 0.5 * (per_level(u0 + z * sd) - devc0))
    ldl2 = float(np.sum(np.log(precision)))
    return float(devc0.sum() + ldl2 - 2.0 * np.sum(np.log(mult)) + response.saturated_minus_twice_loglik())


def _working_basis(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X', T): X' = X T with orthogonal columns of unit root mean square (beta = T beta')."""
    n, p = X.shape
    if p == 0:
        return X, np.eye(0)
    packed, tau, _, _ = lapack.dgeqrf(X)
    R = np.triu(packed[:p])
    Q = lapack.dorgqr(packed, tau)[0][:, :p]
    signs = np.sign(R.diagonal())
    root_n = float(np.sqrt(n))
    R *= signs[:, None]
    return np.ascontiguousarray(Q * (signs * root_n)), lapack.dtrtri(R, lower=0)[0] * root_n


class LaplaceCriterion:
    """The deviance as the optimiser sees it, warm-starting each PIRLS from the last mode.

    ``stage=0``: a function of theta, beta inside PIRLS (lme4's nAGQ = 0 criterion).
    ``stage=1``: a function of (theta, beta'), the Laplace deviance (``n_points`` 1) or
    the adaptive Gauss-Hermite one.
    """

    def __init__(self, pirls: Pirls, n_theta: int, stage: int, n_points: int = 1):
        self.pirls = pirls
        self.n_theta = n_theta
        self.stage = stage
        self.n_points = n_points
        self.last: ConditionalMode | None = None
        self.kept_hessian: tuple[np.ndarray, np.ndarray] | None = None
        self._recent: list[tuple[bytes, ConditionalMode]] = []
        self._gradients: list[tuple[bytes, float, np.ndarray]] = []
        self.compiled = ScalarPirls(pirls) if stage == 1 and n_points == 1 and ScalarPirls.applies(pirls) else None
        self._compiled_u: np.ndarray | None = None

    def mode(self, x: np.ndarray) -> ConditionalMode:
        """The conditional mode at x (theta, or theta and beta'); the last few are kept,
        so the optimum's is not computed again after the checks around it."""
        x = np.asarray(x, dtype=np.float64)
        key = x.tobytes()
        for known, mode in self._recent:
            if known == key:
                return mode
        mode = self._mode(x)
        self._recent = [(key, mode), *self._recent[: RECENT_MODES - 1]]
        return mode

    def _mode(self, x: np.ndarray) -> ConditionalMode:
        theta = x[: self.n_theta]
        last = self.last
        u0 = last.u if last is not None and np.all(np.isfinite(last.u)) else self._compiled_u
        if self.stage == 0:
            beta0 = last.beta if last is not None else self.pirls.start_beta()
            mode = self.pirls.mode(theta, None, u0, beta0)
        else:
            mode = self.pirls.mode(theta, x[self.n_theta:], u0)
        if np.all(np.isfinite(mode.u)) and mode.factor.ok:
            self.last = mode
        return mode

    def value(self, mode: ConditionalMode | ScalarMode, x: np.ndarray) -> float:
        if self.n_points > 1:
            return agq_deviance(self.pirls, mode, np.asarray(x[: self.n_theta]), self.n_points)
        return mode.laplace_deviance

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace deviance and its exact gradient in (theta, beta')
        (:mod:`interlace.fitting.laplace_gradient`; stage 2, ``n_points`` 1)."""
        from .laplace_gradient import laplace_gradient

        x = np.asarray(x, dtype=np.float64)
        key = x.tobytes()
        for known, value, gradient in self._gradients:
            if known == key:
                return value, gradient.copy()
        if self.compiled is not None:
            value, gradient = self._compiled_value_and_gradient(x)
        else:
            mode = self.mode(x)
            value = self.value(mode, x)
            gradient = laplace_gradient(self.pirls, mode, x[: self.n_theta]) if np.isfinite(value) else None
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        self._gradients = [(key, value, gradient), *self._gradients[: RECENT_MODES - 1]]
        return value, gradient.copy()

    def compiled_mode(self, x: np.ndarray) -> ScalarMode:
        """The compiled path's mode at x, warm-started from the last finite one."""
        x = np.asarray(x, dtype=np.float64)
        self.pirls.n_evaluations += 1
        mode = self.compiled.mode(x[: self.n_theta], x[self.n_theta:], self._compiled_u)
        if mode.parts is not None and np.all(np.isfinite(mode.u)):
            self._compiled_u = mode.u
        return mode

    def _compiled_value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray | None]:
        mode = self.compiled_mode(x)
        value = mode.laplace_deviance
        if not np.isfinite(value):
            return np.inf, None
        return value, self.compiled.gradient(mode, x[: self.n_theta])

    def hessian(self, x: np.ndarray, gradient: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(gradient, Hessian, gradients taken) at x for the convergence check: forward
        differences of the exact gradient, kept for vcov(beta) (:func:`_fixed_cov`)."""
        x = np.asarray(x, dtype=np.float64)
        lower = np.concatenate([self.pirls.design.theta_lower, np.full(x.size - self.n_theta, -np.inf)])
        H = gradient_hessian(self.value_and_gradient, x, lower)
        if gradient is None:
            gradient = self.value_and_gradient(x)[1]
        self.kept_hessian = (x.copy(), H)
        return np.asarray(gradient, dtype=np.float64), H, x.size + 1

    def __call__(self, x: np.ndarray) -> float:
        if self.compiled is not None:
            return self.compiled_mode(x).laplace_deviance
        mode = self.mode(x)
        value = self.value(mode, x)
        return value if np.isfinite(value) else np.inf


class _ValueAndGradient:
    """The criterion's (value, gradient) for the optimiser, with the Hessian its
    convergence check asks for (:meth:`LaplaceCriterion.hessian`)."""

    def __init__(self, criterion: LaplaceCriterion):
        self.criterion = criterion

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return self.criterion.value_and_gradient(x)

    def hessian(self, x: np.ndarray, gradient: np.ndarray | None = None):
        return self.criterion.hessian(x, gradient)


def gradient_hessian(value_and_gradient, x: np.ndarray, lower: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
    """The Hessian by forward differences of the exact gradient (symmetrised): one
    gradient per coordinate, each step into the feasible side of the bounds. The exact
    gradient makes a forward difference accurate to about the step times the third
    derivative, 1e-4 of the curvature: far inside what the SEs need (1e-2)."""
    x = np.asarray(x, dtype=np.float64)
    base = value_and_gradient(x)[1]
    columns = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = step * max(1.0, abs(x[i]))
        columns.append((value_and_gradient(x + e)[1] - base) / e[i])
    with np.errstate(invalid="ignore", over="ignore"):
        H = np.column_stack(columns)
        return 0.5 * (H + H.T)


def central_hessian(fun, x: np.ndarray, lower: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
    """lme4's ``deriv12`` Hessian: central differences with step ``step`` (forward
    and backward steps kept inside the bounds by shifting the stencil)."""
    with np.errstate(invalid="ignore", over="ignore"):  # an infinite stencil point gives NaN entries
        return _central_hessian(fun, x, lower, step)


def _central_hessian(fun, x: np.ndarray, lower: np.ndarray, step: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    d = x.size
    centre = np.maximum(x, lower + step)  # a bound coordinate: the stencil just inside
    f0 = fun(centre)
    H = np.empty((d, d))
    eye = np.eye(d) * step
    plus = np.array([fun(centre + eye[i]) for i in range(d)])
    minus = np.array([fun(centre - eye[i]) for i in range(d)])
    for i in range(d):
        H[i, i] = (plus[i] - 2.0 * f0 + minus[i]) / step**2
        for j in range(i):
            value = (fun(centre + eye[i] + eye[j]) - fun(centre + eye[i] - eye[j])
                     - fun(centre - eye[i] + eye[j]) + fun(centre - eye[i] - eye[j])) / (4.0 * step**2)
            H[i, j] = H[j, i] = value
    return H


class GeneralizedFit:
    """What a generalized fit keeps beyond its result's data: the PIRLS on its design,
    the working basis T of X (beta = T beta'), the conditional mode at the optimum and
    the caller's design (for predictions and refits)."""

    def __init__(self, design, pirls: Pirls, basis: np.ndarray, mode: ConditionalMode, x: np.ndarray):
        self.design = design
        self.pirls = pirls
        self.basis = basis
        self.mode = mode
        self.x = x


def _check_nagq(nagq: Any, design) -> int:
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or not 0 <= nagq <= MAX_AGQ:
        raise InterlaceError(f"nAGQ: expected an integer from 0 to {MAX_AGQ}, found {nagq!r}")
    if nagq > 1 and not (len(design.terms) == 1 and design.terms[0].n_columns == 1):
        raise InterlaceError(
            f"nAGQ: adaptive Gauss-Hermite quadrature (nAGQ > 1) needs a single scalar random-effects term, "
            f"as lme4; found {', '.join(design.term_labels)} (use nAGQ=1, the Laplace approximation)")
    return int(nagq)


def fit_generalized(formula: str, data: Any, family: Family, *, groups=None, random=None, nagq: int = 1,
                    weights=None, offset=None, start=None, optimizer: str = "auto",
                    max_evaluations: int = 100_000, solver: str = "auto", na_action: str = "drop",
                    options: dict | None = None):
    """The fit of a generalized linear mixed model (see the module docstring)."""
    from ..glmm_result import CrossedGLMMResult  # noqa: F401 (the result type)

    read, working_formula, lhs = read_response(formula, data, family, weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingValuesWarning)  # said once below, as the linear fit
        design, full_formula, table, dropped = prepare(working_formula, read, groups, random, na_action, None,
                                                       offset, extra_columns=[TRIALS_COLUMN, WEIGHTS_COLUMN],
                                                       generalized=True)
    full_formula = full_formula.replace(f"`{RESPONSE_COLUMN}`", lhs, 1)
    nagq = _check_nagq(nagq, design)
    if nagq > 1 and family.name == "binomial" and family.link.name == "log":
        raise InterlaceError(
            "nAGQ: adaptive Gauss-Hermite quadrature with binomial(link='log') puts knots where the means "
            "exceed 1 (outside the family), so its integral is not the likelihood's; use nAGQ=1 (Laplace) or "
            f"another link, found nAGQ={nagq}")
    response = GlmResponse.build(table[RESPONSE_COLUMN].to_numpy(np.float64),
                                 table[WEIGHTS_COLUMN].to_numpy(np.float64),
                                 table[TRIALS_COLUMN].to_numpy(np.float64), lhs, family)
    design = replace(design, fixed=replace(design.fixed, response=response.y, response_name=lhs))
    off = design.fixed.offset if design.fixed.offset is not None else np.zeros(design.n_obs)
    if np.max(np.abs(off), initial=0.0) > MAX_MAGNITUDE:
        raise DataError(f"offset: expected values of magnitude below {MAX_MAGNITUDE:g} (a linear predictor beyond it "
                        f"makes every mean 0 or infinite), found {np.max(np.abs(off)):g}")
    working_X, basis = _working_basis(design.X)
    working = replace(design, fixed=replace(design.fixed, matrix=working_X))
    working.__dict__["lme4_terms"] = design.lme4_terms
    pirls = Pirls(working, response, off, solver)
    theta0 = design.start_theta() if start is None else _start_theta(start, design)
    estimate = _estimate(pirls, design, nagq, theta0, optimizer, max_evaluations)
    return _assemble_generalized(design, pirls, basis, estimate, nagq, full_formula, data, dropped, family,
                                 response, options or {})


class _Estimate:
    """The optimum of a generalized fit: x = (theta, beta') (theta alone with nAGQ = 0),
    the conditional mode there, the criterion, vcov of beta', the optimiser's record."""

    def __init__(self, x, theta, beta_working, mode, deviance, fe_cov_working, record, evaluations):
        self.x, self.theta, self.beta_working, self.mode = x, theta, beta_working, mode
        self.deviance, self.fe_cov_working = deviance, fe_cov_working
        self.record, self.evaluations = record, evaluations


def _estimate(pirls: Pirls, design, nagq: int, theta0: np.ndarray, optimizer: str, max_evaluations: int,
              beta0: np.ndarray | None = None) -> _Estimate:
    """Stage 1 from ``theta0`` (skipped when ``beta0``, a start of beta', is given with
    nAGQ >= 1, as refits from a fit's estimates), then stage 2; inside the PIRLS's thread
    limits (entered once: the compiled path's evaluations take a fraction of a millisecond)."""
    with pirls.threads:
        return _optimum(pirls, design, nagq, theta0, optimizer, max_evaluations, beta0)


def _optimum(pirls: Pirls, design, nagq: int, theta0: np.ndarray, optimizer: str, max_evaluations: int,
             beta0: np.ndarray | None) -> _Estimate:
    n_theta = design.n_theta
    name = "cobyqa" if str(optimizer).lower() == "auto" else optimizer
    evaluations = 0
    stage1 = LaplaceCriterion(pirls, n_theta, stage=0)
    gradient = nagq == 1 and supports_gradient(pirls) and str(optimizer).lower() == "auto"
    if nagq == 0 or (beta0 is None and not gradient):
        # lme4's stage 1; with the exact gradient, stage 2 starts from theta0 and the joint
        # mode's beta there instead
        record = optimize_theta(stage1, theta0, design.theta_lower, name, int(max_evaluations))
        evaluations += record.n_evaluations
        theta0 = record.theta
    if nagq == 0:
        x = record.theta
        mode = stage1.mode(x)
        beta_working, criterion = mode.beta, stage1
    else:
        if beta0 is None:
            beta0 = pirls.start_beta()
        criterion = LaplaceCriterion(pirls, n_theta, stage=1, n_points=nagq)
        criterion.last = stage1.last
        lower = np.concatenate([design.theta_lower, np.full(design.n_fixed, -np.inf)])
        with_gradient = None
        if gradient:
            name, with_gradient = "l-bfgs-b", _ValueAndGradient(criterion)
        record = optimize_theta(criterion, np.concatenate([theta0, beta0]), lower, name, int(max_evaluations),
                                fun_and_grad=with_gradient, tolerances=LBFGS_TOLERANCES if gradient else None,
                                proven_boundary=gradient)
        evaluations += record.n_evaluations
        x = record.theta
        mode = criterion.compiled_mode(x) if criterion.compiled is not None else criterion.mode(x)
        beta_working = x[n_theta:]
    theta = np.asarray(x[:n_theta], dtype=np.float64)
    deviance = criterion.value(mode, x)
    fe_cov_working, _ = _fixed_cov(criterion, pirls, x, theta, mode, nagq, design)
    return _Estimate(np.asarray(x, dtype=np.float64), theta, np.asarray(beta_working, dtype=np.float64), mode,
                     deviance, fe_cov_working, record, evaluations)


def _start_theta(start, design) -> np.ndarray:
    theta0 = np.asarray(start, dtype=np.float64).ravel()
    if theta0.shape != (design.n_theta,):
        raise InterlaceError(f"start: expected {design.n_theta} values for theta "
                             f"({', '.join(design.theta_names)}), found {theta0.size}")
    return theta0


def _fixed_cov(criterion: LaplaceCriterion, pirls: Pirls, x: np.ndarray, theta: np.ndarray,
               mode: ConditionalMode, nagq: int, design) -> tuple[np.ndarray, str]:  # noqa: PLR0913
    """vcov of the working beta': from the Hessian in (theta, beta') (lme4's default), or
    from R_X of the joint PIRLS system (nAGQ = 0, or the Hessian not positive definite)."""
    n_theta, p = design.n_theta, design.n_fixed
    if p == 0:
        return np.zeros((0, 0)), ""
    if nagq > 0:
        lower = np.concatenate([design.theta_lower, np.full(p, -np.inf)])
        kept = criterion.kept_hessian
        if kept is not None and np.array_equal(kept[0], x):
            H = kept[1]  # the convergence check's
        elif nagq == 1 and supports_gradient(pirls):
            H = gradient_hessian(criterion.value_and_gradient, x, lower)
        else:
            H = central_hessian(criterion, x, lower)
        try:
            inverse = np.linalg.inv(0.5 * H)
            block = inverse[n_theta:, n_theta:]
            block = 0.5 * (block + block.T)
            if np.all(np.isfinite(block)) and np.all(np.linalg.eigvalsh(0.5 * H) > 0):
                return block, ""
        except np.linalg.LinAlgError:
            pass
        note = ("variance-covariance matrix computed from finite-difference Hessian is not positive definite or "
                "contains NA values: falling back to var-cov estimated from RX")
        warnings.warn(note, ConvergenceWarning, stacklevel=6)
    else:
        note = ""
    joint = pirls.mode(theta, None, mode.u, mode.beta if mode.beta.size else None)
    L = joint.factor.fixed_chol
    inverse_L = lapack.dtrtri(L, lower=1)[0]
    return inverse_L.T @ inverse_L, note


def _assemble_generalized(design, pirls: Pirls, basis, estimate: _Estimate, nagq, formula, data, dropped,
                          family: Family, response: GlmResponse, options: dict, model=None):
    from ..glmm_result import CrossedGLMMResult
    from ..kernels.glm import mu_eta as mu_eta_kernel
    from ..kernels.glm import unit_deviance
    from ..result import ModelInfo

    mode, theta, record = estimate.mode, estimate.theta, estimate.record
    names = design.fixed_index
    beta = basis @ estimate.beta_working
    fe_cov = basis @ estimate.fe_cov_working @ basis.T
    fe_params = pd.Series(beta, index=names, name="Estimate")
    fe_bse = pd.Series(np.sqrt(np.diag(fe_cov)), index=names, name="Std. Error")
    b = PenalizedSystem.spherical_to_effects(mode.u, theta, design.terms)
    effects, pos = {}, 0
    for term in design.terms:
        effects[term.name] = b[pos : pos + term.n_effects].reshape(term.n_levels, term.n_columns)
        pos += term.n_effects
    if supports_gradient(pirls) or all(t.n_columns == 1 for t in design.terms) and not pirls.sparse_rest:
        # every term scalar: diag(M^{-1}) from the rest's inverse (the general route loops over levels)
        from .laplace_gradient import FactorParts, variances_from_parts

        with pirls.threads:
            parts = mode.parts if isinstance(mode, ScalarMode) else FactorParts.of_mode(pirls, mode)
            variances = variances_from_parts(parts)
        lam = np.concatenate([np.full(t.n_levels, float(t.relative_cov_factor(theta)[0, 0])) for t in design.terms])
        sd_all, sds, pos = lam * np.sqrt(np.maximum(variances, 0.0)), {}, 0
        for term in design.terms:
            sds[term.name] = sd_all[pos : pos + term.n_levels].reshape(term.n_levels, 1)
            pos += term.n_levels
    else:
        sds = conditional_sd(mode.system, mode.factor, theta, 1.0)
    components, correlations = variance_components(design, theta, 1.0)
    flags = boundary_flags(design, theta)
    singular = any(flags.values())
    if singular:
        warnings.warn("boundary (singular) fit: see interlace.isSingular", SingularFitWarning, stacklevel=5)
    if not record.converged:
        warnings.warn(f"the optimizer ({record.optimizer}) did not converge: {record.message}", ConvergenceWarning,
                      stacklevel=5)
    if not mode.converged:
        warnings.warn("PIRLS did not converge at the optimum", ConvergenceWarning, stacklevel=5)
    n_dropped = len(dropped)
    if n_dropped:
        warnings.warn(f"{n_dropped} row{'s' if n_dropped > 1 else ''} with missing values "
                      f"{'were' if n_dropped > 1 else 'was'} dropped", MissingValuesWarning, stacklevel=5)
    y, w, mu, eta = response.y, response.weights, mode.mu, mode.eta
    unit = unit_deviance(y, mu, w, family.code)
    d_mu = mu_eta_kernel(eta, family.link.code)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # a failed fit's means: NaN, warned
        variance = family.variance(mu)
        pearson = (y - mu) * np.sqrt(w) / np.sqrt(variance)
        working = (y - mu) / d_mu
    ordered = lme4_term_order(design)
    model = model or ModelInfo(
        exog=design.X, endog=y, exog_names=list(design.fixed_names), endog_names=response.name,
        groups={t.name: pd.Categorical.from_codes(t.group_codes, categories=t.levels) for t in ordered},
        formula=formula, data=data, dropped_rows=dropped)
    fit = GeneralizedFit(design, pirls, basis, mode, estimate.x)
    return CrossedGLMMResult(
        fe_params=fe_params,
        fe_bse=fe_bse,
        fe_cov=fe_cov,
        random_effects=random_effects_frames(design, effects),
        random_effects_se=random_effects_frames(design, sds),
        variance_components=components,
        correlation_params=correlations,
        theta=theta.copy(),
        theta_names=design.theta_names,
        llf=-0.5 * float(estimate.deviance),
        nparams=design.n_fixed + design.n_theta,
        nobs=design.n_obs,
        ngroups={t.name: t.n_levels for t in ordered},
        family=family,
        nAGQ=nagq,
        fittedvalues=mu.copy(),
        linear_predictor=eta.copy(),
        resid_response=y - mu,
        resid_deviance=np.sign(y - mu) * np.sqrt(np.maximum(unit, 0.0)),
        resid_pearson=pearson,
        resid_working=working,
        deviance=float(unit.sum()),
        converged=bool(record.converged and mode.converged),
        is_singular=singular,
        boundary_flags=flags,
        n_dropped=n_dropped,
        model=model,
        optimization=replace(record, n_evaluations=int(estimate.evaluations), objective=float(estimate.deviance)),
        solver_path="sparse" if pirls.n_leading else "dense",
        fit_options=dict(options),
        _fit=fit,
    )


# ----- predictions, simulation, refits --------------------------------------------------------

def predict_generalized(result, newdata, type: str, include_re) -> np.ndarray:  # noqa: A002
    """Predictions of a generalized fit on the link or the response scale."""
    from ..prediction import fitted_random_part, included_terms, linear_predictor

    kind = str(type).lower()
    if kind not in ("link", "response"):
        raise InterlaceError(f"type: expected 'link' or 'response', found {type!r}")
    design = result._fit.design
    if newdata is None:
        terms = included_terms(design, include_re)
        if terms and len(terms) == len(design.terms):
            eta = result.linear_predictor.copy()
        else:
            eta = design.fixed.with_offset_added(design.X @ result.fe_params.to_numpy())
            eta = eta + fitted_random_part(terms, result.random_effects)
    else:
        eta = linear_predictor(design, result.fe_params, result.random_effects, newdata, include_re)
    return eta if kind == "link" else result.family.link.inverse(eta)


def simulate_generalized(result, nsim: int, seed, use_re: bool) -> np.ndarray:
    """(nobs, nsim) responses drawn from a generalized fit (lme4's ``simulate``)."""
    from ..simulation import check_nsim, random_part

    check_nsim(nsim)
    rng = np.random.default_rng(seed)
    fit = result._fit
    design, response = fit.design, fit.pirls.response
    mean = fit.pirls.offset + design.X @ result.fe_params.to_numpy()
    out = np.empty((design.n_obs, nsim))
    for draw in range(nsim):
        eta = mean + random_part(design.terms, result.theta, result.random_effects, rng, use_re)
        out[:, draw] = result.family.simulate(result.family.link.inverse(eta), response.weights, rng)
    return out


def refit_generalized(result, y):
    """The fit's model refitted to the response ``y`` (a proportion for a binomial
    response of several trials), from the fit's estimates."""
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.shape != (result.nobs,):
        raise InterlaceError(f"y: expected {result.nobs} values (the rows used in the fit), found {y.size}")
    if not np.all(np.isfinite(y)):
        raise InterlaceError("y: expected finite values, found NaN or infinity")
    fit = result._fit
    old = fit.pirls
    response = old.response.with_values(y)
    pirls = Pirls(old.design, response, old.offset, result.fit_options.get("solver", "auto"))
    nagq = result.nAGQ
    options = result.fit_options
    n_theta = len(result.theta)
    estimate = _estimate(pirls, fit.design, nagq, result.theta, options.get("optimizer", "auto"),
                         options.get("max_evaluations", 100_000), None if nagq == 0 else fit.x[n_theta:])
    model = replace(result.model, endog=y)
    return _assemble_generalized(fit.design, pirls, fit.basis, estimate, nagq, result.model.formula,
                                 result.model.data, result.model.dropped_rows, result.family, response, options,
                                 model)
