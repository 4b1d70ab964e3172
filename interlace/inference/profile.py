"""Profile-likelihood intervals, as lme4's ``confint(m, method = "profile")``.

As lme4 (``profile.merMod``, ``devfun2``), the profile is of the ML deviance (a REML
fit is refitted by ML first), on lme4's scale: the standard deviations and
correlations of each random-effects term, sigma, then the fixed effects. For a
parameter fixed at a value, the others are re-optimised and

    zeta = sign(value - estimate) * sqrt(deviance - deviance at the optimum);

an interval's ends are where zeta = -/+ qnorm((1 + level) / 2). lme4 interpolates
zeta on a grid with splines; here each end is found by root finding on zeta
itself. A standard deviation whose profile stays below the cut-off down to zero
has 0 as its lower end (a correlation: -1 or 1), as lme4 reports.

What is re-optimised reuses the fitted structure: variance parameters move theta
and sigma on the fitted system; a fixed effect held at a value changes only the
[X y] columns of the cross-products (y - x_j b, without x_j), not the data pass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..gradient import DenseDeviance, deviance_functions
from ..linalg.system import PenalizedSystem
from ..objective import LOG_2PI
from ..optimize import optimize_theta
from ..summary import r_name


def ml_refit(result) -> tuple[np.ndarray, float]:
    """(theta, ML deviance) at the ML optimum: the fit itself for an ML fit, else
    re-optimised by ML from the REML theta (lme4's ``refitML``)."""
    if result.method == "ML":
        return result.theta, -2.0 * result.llf
    system = result._system
    fun, with_gradient = deviance_functions(system, reml=False)
    record = optimize_theta(fun, result.theta, system.design.theta_lower,
                            result.fit_options.get("optimizer", "auto"), fun_and_grad=with_gradient)
    return record.theta, record.objective


@dataclass(frozen=True)
class _Entry:
    """Where theta entry i sits: random term (block) and position (row, col)."""

    block: int
    row: int
    col: int


class _SdCorScale:
    """Conversions between theta (relative Cholesky factors) and lme4's sd/cor scale."""

    def __init__(self, system: PenalizedSystem):
        design = system.design
        self.terms = design.terms
        entries: dict[int, _Entry] = {}
        for b, term in enumerate(self.terms):
            for r in range(term.n_columns):
                for c in range(r + 1):
                    i = term.theta_index[r, c]
                    if i >= 0:
                        entries[int(i)] = _Entry(b, r, c)
        self.entries = [entries[i] for i in range(design.n_theta)]
        self.is_sd = np.array([e.row == e.col for e in self.entries])

    def names(self) -> list[str]:
        out = []
        for e in self.entries:
            term = self.terms[e.block]
            if e.row == e.col:
                out.append(f"sd_{r_name(term.column_names[e.row])}|{term.name}")
            else:
                out.append(f"cor_{r_name(term.column_names[e.row])}.{r_name(term.column_names[e.col])}|{term.name}")
        return out

    def to_sdcor(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        out = np.empty(len(self.entries))
        covs = [sigma**2 * (t.relative_cov_factor(theta) @ t.relative_cov_factor(theta).T) for t in self.terms]
        for i, e in enumerate(self.entries):
            cov = covs[e.block]
            if e.row == e.col:
                out[i] = np.sqrt(max(cov[e.row, e.row], 0.0))
            else:
                d = np.sqrt(cov[e.row, e.row] * cov[e.col, e.col])
                out[i] = cov[e.row, e.col] / d if d > 0 else 0.0
        return out

    def to_theta(self, sdcor: np.ndarray, sigma: float) -> np.ndarray:
        theta = np.zeros(len(self.entries))
        for b, term in enumerate(self.terms):
            k = term.n_columns
            sd = np.zeros(k)
            corr = np.eye(k)
            for i, e in enumerate(self.entries):
                if e.block != b:
                    continue
                if e.row == e.col:
                    sd[e.row] = sdcor[i]
                else:
                    corr[e.row, e.col] = corr[e.col, e.row] = sdcor[i]
            T = _psd_cholesky(corr * np.outer(sd, sd)) / sigma
            for i, e in enumerate(self.entries):
                if e.block == b:
                    theta[i] = T[e.row, e.col]
        return theta


def _psd_cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix (zero columns where a
    pivot vanishes)."""
    k = cov.shape[0]
    L = np.zeros((k, k))
    for j in range(k):
        s = cov[j, j] - L[j, :j] @ L[j, :j]
        if s <= 1e-14 * max(cov[j, j], 1e-300):
            continue
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, k):
            L[i, j] = (cov[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
    return L


def _ml_deviance_at_sigma(system: PenalizedSystem, theta: np.ndarray, sigma: float) -> float:
    factor = system.factorize(theta)
    if not factor.ok or sigma <= 0:
        return np.inf
    n = system.design.n_obs
    return factor.logdet_random + factor.pwrss / sigma**2 + n * (LOG_2PI + 2.0 * np.log(sigma))


def _minimize(fun, start: np.ndarray, lower: np.ndarray, upper: np.ndarray, jac: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return optimize.minimize(fun, start, method="L-BFGS-B", jac=jac, bounds=list(zip(lower, upper, strict=True)),
                                 options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500})


class Profiler:
    """zeta functions of one fit's parameters, on lme4's scale."""

    def __init__(self, result):
        self.result = result
        self.system = result._system
        self.theta_ml, self.base_deviance = ml_refit(result)
        factor = self.system.factorize(self.theta_ml)
        n = self.system.design.n_obs
        self.sigma_ml = float(np.sqrt(factor.pwrss / n))
        self.scale = _SdCorScale(self.system)
        self.sdcor_ml = self.scale.to_sdcor(self.theta_ml, self.sigma_ml)
        from ..estimates import compute_estimates

        est = compute_estimates(self.system, factor, self.theta_ml, False, self.base_deviance)
        self.beta_ml = est.beta
        self.se_ml = np.sqrt(np.diag(est.fe_cov))
        self._dense = DenseDeviance(self.system, reml=False) if self.system.n_leading == 0 else None

    # ----- variance parameters: sd/cor of the random effects, then sigma ----------------
    def variance_estimates(self) -> np.ndarray:
        return np.concatenate([self.sdcor_ml, [self.sigma_ml]])

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lower = np.where(self.scale.is_sd, 0.0, -1.0)
        upper = np.where(self.scale.is_sd, np.inf, 1.0)
        return np.concatenate([lower, [1e-10 * self.sigma_ml]]), np.concatenate([upper, [np.inf]])

    def _variance_deviance(self, params: np.ndarray) -> float:
        sigma = params[-1]
        theta = self.scale.to_theta(params[:-1], sigma)
        return _ml_deviance_at_sigma(self.system, theta, sigma)

    def _variance_deviance_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """For scalar random terms (theta_i = sd_i / sigma) on the dense path: the
        deviance at (sd, sigma) and its gradient by the chain rule."""
        sigma, sd = params[-1], params[:-1]
        theta = sd / sigma
        factor = self.system.factorize(theta)
        n = self.system.design.n_obs
        if not factor.ok or sigma <= 0:
            return np.inf, np.zeros_like(params)
        value = factor.logdet_random + factor.pwrss / sigma**2 + n * (LOG_2PI + 2.0 * np.log(sigma))
        dlogdet, dr2 = self._dense.parts(theta, factor)
        d_theta = dlogdet + dr2 / sigma**2
        grad = np.empty_like(params)
        grad[:-1] = d_theta / sigma
        grad[-1] = -np.sum(d_theta * sd) / sigma**2 - 2.0 * factor.pwrss / sigma**3 + 2.0 * n / sigma
        return float(value), grad

    @property
    def _analytic(self) -> bool:
        return self.system.n_leading == 0 and all(t.n_columns == 1 for t in self.system.design.terms)

    def variance_zeta(self, index: int):
        """zeta(value) for variance parameter ``index`` (sd/cor entries, then sigma)."""
        estimate = self.variance_estimates()
        lower, upper = self._bounds()
        free = np.array([i for i in range(len(estimate)) if i != index])
        unit = np.where(np.isfinite(upper[free]) & (upper[free] <= 1.0), 1.0,
                        np.maximum(np.abs(estimate[free]), 1e-3 * self.sigma_ml))
        state = {"x": estimate[free] / unit}

        def zeta(value: float) -> float:
            def objective(x):
                params = np.empty_like(estimate)
                params[free] = x * unit
                params[index] = value
                return self._variance_deviance(params)

            def objective_and_gradient(x):
                params = np.empty_like(estimate)
                params[free] = x * unit
                params[index] = value
                f, g = self._variance_deviance_and_gradient(params)
                return f, g[free] * unit

            res = _minimize(objective_and_gradient if self._analytic else objective, state["x"],
                            lower[free] / unit, upper[free] / unit, jac=self._analytic)
            state["x"] = res.x
            drop = max(res.fun - self.base_deviance, 0.0)
            return float(np.sign(value - estimate[index]) * np.sqrt(drop))

        return zeta

    # ----- fixed effects -----------------------------------------------------------------
    def fixed_zeta(self, j: int):
        """zeta(value) for fixed effect ``j``: the model refitted with beta_j held at value."""
        p = self.system.design.n_fixed
        lower = self.system.design.theta_lower
        state = {"theta": self.theta_ml.copy()}

        def zeta(value: float) -> float:
            # new [X y] columns in terms of the old ones: X without x_j, then y - value x_j
            tail = np.zeros((p + 1, p))
            for new, old in enumerate(c for c in range(p) if c != j):
                tail[old, new] = 1.0
            tail[p, p - 1] = 1.0
            tail[j, p - 1] = -value
            system = self.system.with_fixed_tail(tail)
            fun, with_gradient = deviance_functions(system, reml=False)
            record = optimize_theta(fun, state["theta"], lower, "auto", fun_and_grad=with_gradient)
            state["theta"] = record.theta
            drop = max(record.objective - self.base_deviance, 0.0)
            return float(np.sign(value - self.beta_ml[j]) * np.sqrt(drop))

        return zeta


ROOT_TOL = 1e-7
"""Relative accuracy of an interval's end (lme4's spline interpolation is ~1e-5)."""


def _interval_end(zeta, estimate: float, target: float, step: float, bound: float) -> float:
    """The value where zeta crosses ``target``, searching from ``estimate`` towards
    ``bound``; ``bound`` itself when zeta never gets there.

    zeta is close to linear, (value - estimate) / step for a well-chosen step, so the
    first trial is at ``estimate + target * step``, then secant steps; a bracket,
    when found, is finished by Brent's method.
    """
    direction = np.sign(target)
    previous, value = estimate, estimate + target * step
    z_prev = 0.0
    for _ in range(8):
        if (direction > 0 and value >= bound) or (direction < 0 and value <= bound):
            break
        z = zeta(value)
        if abs(z - target) <= ROOT_TOL * abs(target):
            return float(value)
        if (z - target) * direction > 0:  # past the target: bracketed
            return float(optimize.brentq(lambda v: zeta(v) - target, min(previous, value), max(previous, value),
                                         xtol=ROOT_TOL * max(step, abs(estimate)), rtol=ROOT_TOL))
        slope = (z - z_prev) / (value - previous) if value != previous else 0.0
        previous, z_prev = value, z
        if slope * direction <= 0:
            break
        value = value + 1.05 * (target - z) / slope  # aim slightly past the root
    previous, value = estimate, estimate + direction * step
    for _ in range(60):
        if (direction > 0 and value >= bound) or (direction < 0 and value <= bound):
            value = bound
            z = zeta(value)
            if abs(z) < abs(target):
                return float(bound)
            break
        z = zeta(value)
        if abs(z) >= abs(target):
            break
        previous, value = value, estimate + direction * (2.0 * abs(value - estimate))
    return float(optimize.brentq(lambda v: zeta(v) - target, min(previous, value), max(previous, value),
                                 xtol=ROOT_TOL * max(step, abs(estimate)), rtol=ROOT_TOL))


def profile_intervals(result, level: float = 0.95) -> pd.DataFrame:
    """Profile intervals of every variance parameter, sigma and fixed effect."""
    profiler = Profiler(result)
    cut = float(stats.norm.ppf(0.5 + level / 2.0))
    rows: dict[str, tuple[float, float]] = {}
    estimates = profiler.variance_estimates()
    names = profiler.scale.names() + ["sigma"]
    is_sd = np.concatenate([profiler.scale.is_sd, [True]])
    for i, name in enumerate(names):
        est = estimates[i]
        if is_sd[i]:
            step, low_bound, high_bound = max(0.25 * est, 1e-2 * profiler.sigma_ml), 0.0, np.inf
        else:
            step, low_bound, high_bound = 0.1, -1.0, 1.0
        ends = []
        for target, bound in ((-cut, low_bound), (cut, high_bound)):
            ends.append(_interval_end(profiler.variance_zeta(i), est, target, step, bound))
        rows[name] = (ends[0], ends[1])
    for j, name in enumerate(result.fe_params.index):
        est, step = profiler.beta_ml[j], profiler.se_ml[j]
        ends = [_interval_end(profiler.fixed_zeta(j), est, target, step, bound)
                for target, bound in ((-cut, -np.inf), (cut, np.inf))]
        rows[name] = (ends[0], ends[1])
    return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])


def wald_intervals(result, level: float = 0.95) -> pd.DataFrame:
    """lme4's Wald intervals of the fixed effects: estimate -/+ qnorm * SE."""
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    est, se = result.fe_params.to_numpy(), np.sqrt(np.diag(result.fe_cov))
    return pd.DataFrame({"lower": est - z * se, "upper": est + z * se}, index=result.fe_params.index)
