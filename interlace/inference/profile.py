"""Profile-likelihood intervals, as lme4's ``confint(m, method = "profile")``.

As lme4 (``profile.merMod``, ``devfun2``), the profile is of the ML deviance (a REML
fit is refitted by ML first), on lme4's scale: the standard deviations and
correlations of each random-effects term, sigma, then the fixed effects. For a
parameter held at a value, the others (the nuisance) are re-optimised and

    zeta = sign(value - estimate) * sqrt(deviance - deviance at the optimum);

an interval's ends are where zeta = -/+ qnorm((1 + level) / 2).

- Variance parameters move on the chart of :mod:`.profile_scale` (sds, angles of the
  correlations, sigma), where the deviance D(theta, sigma) is smooth up to the
  boundary (a correlation of +-1 is an angle of 0 or pi); its gradient is the
  analytic one in theta by the chain rule (:mod:`.profile_curves`), central
  differences on the blocked path. A correlation between a term's second and later
  effects is profiled on the same model with the term's columns reordered, where it
  is an angle of the chart.
- A fixed effect held at a value changes only the [X y] columns of the
  cross-products (y - x_j b, without x_j: ``with_fixed_tail``); the nuisance is theta,
  sigma and the other fixed effects profiled out as in the fit.
- Each point's nuisance optimisation (:mod:`.profile_optimize`) starts from the
  neighbouring point's optimum, extrapolated, with its inverse Hessian, and confirms
  a boundary optimum; each end is found in a few points by Newton steps on zeta
  (:mod:`.profile_search`), whose slope the envelope theorem gives for free, and is
  confirmed from other starts before it is accepted.
- An sd whose profile stays below the cut-off down to 0 has 0 as its lower end, a
  correlation -1 or 1, as lme4 reports; an sd or sigma whose profile never reaches
  the cut-off upwards has ``inf`` (lme4's ``Inf``).
- A profile point below the deviance of the fit's optimum shows that the fit stopped
  at a local optimum: the ML optimum is re-optimised from there, every interval is
  profiled again from it, and a :class:`~interlace.errors.ConvergenceWarning` says so
  (where lme4 stops with "profiling detected new, lower deviance").

lme4 interpolates zeta on a grid of points with splines and reads the ends off the
interpolation; interlace finds them on the profile itself. Where lme4's grid followed
a failed nuisance optimisation (a correlation stuck at -1, an sd at 0) or its spline
misreads a profile that is not monotone, the two differ by more than lme4's
interpolation error; the test data keep the evidence of which is right
(``tests/data/make_profile_evidence.R``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning
from ..fitting.conditioning import Conditioning
from ..fitting.estimates import EstimatesAtOptimum
from ..fitting.gradient import deviance_functions
from ..fitting.optimize import optimize_theta
from ..linalg.dispatch import build_system
from ..linalg.system import PenalizedSystem
from ..progress import ProgressBar
from .profile_curves import LOWER_TOL, FixedCurve, VarianceCurve
from .profile_deviance import DIFFERENCE_STEP, VarianceDeviance
from .profile_scale import ProfileScale, psd_cholesky
from .profile_search import interval_end


def ml_refit(result) -> tuple[np.ndarray, float]:
    """(theta, ML deviance on the working scale) at the ML optimum: the fit itself for
    an ML fit, else re-optimised by ML from the REML theta (lme4's ``refitML``)."""
    if result.method == "ML":
        return result.theta, result._conditioning.working_deviance(-2.0 * result.llf, reml=False)
    system = result._system
    fun, with_gradient = deviance_functions(system, reml=False)
    record = optimize_theta(fun, result.theta, system.design.theta_lower,
                            result.fit_options.get("optimizer", "auto"), fun_and_grad=with_gradient)
    return record.theta, record.objective


def _hessian(fun_and_grad, x: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """The Hessian in scaled units (x / unit) by central differences of the gradient."""
    n = x.size
    out = np.empty((n, n))
    for i in range(n):
        h = np.zeros(n)
        h[i] = DIFFERENCE_STEP * unit[i]
        out[i] = (fun_and_grad(x + h)[1] - fun_and_grad(x - h)[1]) * unit / (2.0 * DIFFERENCE_STEP)
    return 0.5 * (out + out.T)


CONDITION_MAX = 1e8
"""Largest condition number of a Hessian (scaled units) whose inverse starts BFGS; a
flatter direction (a correlation whose sd is 0) would get a step of no meaning."""


def _inverse_if_positive(matrix: np.ndarray) -> np.ndarray | None:
    """The inverse of a symmetric matrix when it is positive definite and not near
    singular (condition number below :data:`CONDITION_MAX`), else None."""
    if matrix.size == 0 or not np.all(np.isfinite(matrix)):
        return None
    values, vectors = np.linalg.eigh(matrix)
    if not values[0] > values[-1] / CONDITION_MAX:
        return None
    return (vectors / values) @ vectors.T


class Profiler:
    """The ML optimum of a model and the profiles of its parameters on lme4's scale.

    The profiles run on the working scale (:mod:`interlace.fitting.conditioning`); the
    intervals are the caller's: sds and sigma times |s|, fixed effects through the map.

    Parameters
    ----------
    system : PenalizedSystem
        The model's (working) system.
    theta_hat : numpy.ndarray
        theta at the ML optimum.
    base_deviance : float
        The working ML deviance there.
    conditioning : Conditioning, optional
        The map to the caller's scale (None: the system's scale is the caller's).
    """

    def __init__(self, system: PenalizedSystem, theta_hat: np.ndarray, base_deviance: float,
                 conditioning: Conditioning | None = None):
        self.system = system
        design = system.design
        self.conditioning = conditioning or Conditioning.identity(design)
        self.theta_hat, self.base_deviance = np.asarray(theta_hat, dtype=np.float64), float(base_deviance)
        self.lowest: tuple[float, np.ndarray] | None = None
        """The lowest deviance a profile point found below the optimum's, and its theta."""
        self._forward = None
        factor = system.factorize(self.theta_hat)
        self.sigma_hat = float(np.sqrt(factor.pwrss / design.n_obs))
        est = EstimatesAtOptimum(system, factor, self.theta_hat, False, self.base_deviance)  # beta and vcov only
        self.working_beta_hat = est.beta
        self.beta_hat = self.conditioning.beta(est.beta)
        self.se_hat = np.sqrt(np.diag(self.conditioning.cov(est.fe_cov)))
        # variance parameters: the chart phi, its box and scale, the Hessian at the optimum
        self.scale = ProfileScale(design)
        self.phi_hat = self.scale.from_theta(self.theta_hat, self.sigma_hat)
        self.phi_lower = self.scale.lower.copy()
        self.phi_lower[-1] = 1e-6 * self.sigma_hat
        self.phi_upper = self.scale.upper
        self.phi_unit = np.where(self.scale.is_sd, np.maximum(self.phi_hat, 0.1 * self.sigma_hat), 1.0)
        self.phi_unit[-1] = self.sigma_hat
        self.variance_deviance = VarianceDeviance(system, self.scale)
        self.phi_hessian = _hessian(self.variance_deviance, self.phi_hat, self.phi_unit)
        # fixed effects: theta of the profiled deviance
        self.theta_unit = np.maximum(np.abs(self.theta_hat), 0.1)
        self.theta_inverse_hessian = None
        _, fun_and_grad = deviance_functions(system, reml=False)
        if fun_and_grad is not None and system.n_leading == 0:
            self.theta_inverse_hessian = _inverse_if_positive(_hessian(fun_and_grad, self.theta_hat, self.theta_unit))

    @classmethod
    def of_fit(cls, result) -> Profiler:
        """The profiler of a fitted model (refitted by ML when REML)."""
        return cls(result._system, *ml_refit(result), result._conditioning)

    def note_lower(self, value: float, theta: np.ndarray) -> None:
        """A profile point's deviance below the optimum's: keep the lowest."""
        if self._forward is not None:
            self._forward(value, theta)
        elif self.lowest is None or value < self.lowest[0]:
            self.lowest = (float(value), np.array(theta, dtype=np.float64))

    def refitted(self) -> Profiler | None:
        """The profiler of the ML optimum re-optimised from the lowest point a profile
        found below the optimum (the fit had stopped at a local optimum), or None."""
        if self.lowest is None:
            return None
        fun, fun_and_grad = deviance_functions(self.system, reml=False)
        record = optimize_theta(fun, self.lowest[1], self.system.design.theta_lower, fun_and_grad=fun_and_grad)
        if not record.objective < self.base_deviance - LOWER_TOL:
            return None
        return Profiler(self.system, record.theta, record.objective, self.conditioning)

    def variance_step(self, index: int) -> float:
        """The standard error of phi_index from the Hessian (in phi's units), or a
        fallback where the optimum is on a bound or the Hessian is not positive."""
        inv = _inverse_if_positive(self.phi_hessian)
        fallback = 0.25 if not self.scale.is_sd[index] else 0.25 * self.phi_unit[index]
        if inv is None:
            return float(fallback)
        step = float(np.sqrt(2.0 * inv[index, index])) * self.phi_unit[index]
        return step if np.isfinite(step) and step > 0 else float(fallback)

    def variance_interval(self, index: int, cut: float) -> tuple[float, float]:
        """The ends of the interval of theta entry ``index`` (or sigma, ``n_theta``) on
        lme4's scale, in the caller's units."""
        entry = self.scale.entries[index] if index < self.scale.n_theta else None
        if entry is not None and not entry.is_sd and not entry.is_first_cor:
            return self._permuted(entry).variance_interval(self._permuted_index(entry), cut)
        free = np.array([i for i in range(self.scale.n_phi) if i != index])
        curve = VarianceCurve(self, index, _inverse_if_positive(self.phi_hessian[np.ix_(free, free)]))
        estimate = float(self.phi_hat[index])
        step = self.variance_step(index)
        lower = self.phi_lower[index] if index < self.scale.n_theta else 0.0
        ends = [interval_end(curve, estimate, direction, cut, step, bound)
                for direction, bound in ((-1.0, lower), (1.0, self.phi_upper[index]))]
        if self.scale.is_sd[index]:
            return ends[0] * self.conditioning.unit, ends[1] * self.conditioning.unit
        # a correlation's angle: cor = cos(angle) falls as the angle grows
        return float(np.cos(ends[1])), float(np.cos(ends[0]))

    def _order(self, entry) -> list[int]:
        """The term's columns with the entry's (col, row) first in its block."""
        term = self.system.design.terms[entry.term]
        block = [c for c in range(term.n_columns)
                 if self.scale.entries[int(term.theta_index[c, c])].block_start == entry.block_start]
        inner = [entry.col, entry.row] + [c for c in block if c not in (entry.col, entry.row)]
        return list(range(block[0])) + inner + list(range(block[-1] + 1, term.n_columns))

    def _permuted_index(self, entry) -> int:
        term = self.system.design.terms[entry.term]
        return int(term.theta_index[entry.block_start + 1, entry.block_start])

    def _permuted(self, entry) -> Profiler:
        """The same model with the columns of the entry's term reordered so that its
        correlation is one of the chart's angles (cor_r0 of the second column): the
        deviance depends on the covariance only, which the reordering carries over."""
        design = self.system.design
        term = design.terms[entry.term]
        order = self._order(entry)
        terms = list(design.terms)
        terms[entry.term] = replace(term, design=np.ascontiguousarray(term.design[:, order]),
                                    column_names=tuple(term.column_names[c] for c in order))
        system = build_system(replace(design, terms=tuple(terms)), "sparse" if self.system.n_leading else "dense")
        factor = term.relative_cov_factor(self.theta_hat)
        cov = (factor @ factor.T)[np.ix_(order, order)]
        theta = self.theta_hat.copy()
        positions = term.theta_index >= 0
        theta[term.theta_index[positions]] = psd_cholesky(cov)[positions]
        permuted = Profiler(system, theta, self.base_deviance, self.conditioning)
        back = np.argsort(order)

        def forward(value: float, permuted_theta: np.ndarray) -> None:  # theta in the fit's order
            f = terms[entry.term].relative_cov_factor(permuted_theta)
            original = permuted_theta.copy()
            original[term.theta_index[positions]] = psd_cholesky((f @ f.T)[np.ix_(back, back)])[positions]
            self.note_lower(value, original)

        permuted._forward = forward
        return permuted

    def fixed_interval(self, j: int, cut: float) -> tuple[float, float]:
        """The ends of the interval of the caller's fixed effect ``j``, profiled in units
        of its standard error."""
        curve = FixedCurve(self, j)
        lower = interval_end(curve, 0.0, -1.0, cut, 1.0, -np.inf)
        upper = interval_end(curve, 0.0, 1.0, cut, 1.0, np.inf)
        estimate, step = float(self.beta_hat[j]), float(self.se_hat[j])
        return estimate + step * lower, estimate + step * upper


def profile_intervals(result, level: float = 0.95, show_progress=None) -> pd.DataFrame:
    """Profile intervals of every variance parameter, sigma and fixed effect, rows
    named as lme4's ``confint(m, method = "profile", oldNames = FALSE)``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> profile_intervals(m).round(2)
                          estimate    lower    upper
    sd_(Intercept)|Batch     42.00    12.20    84.06
    sigma                    49.51    38.23    67.66
    Intercept              1527.50  1486.45  1568.55
    """
    profiler = Profiler.of_fit(result)
    cut = float(stats.norm.ppf(0.5 + level / 2.0))
    n_params = len(result.fe_params) + len(profiler.scale.names())
    for _ in range(MAX_REFITS + 1):
        with ProgressBar(n_params, "profile", show_progress) as progress:
            # the fixed effects first: a system without them (the sparse rest) stops here
            fixed = {}
            for j, name in enumerate(result.fe_params.index):
                fixed[name] = profiler.fixed_interval(j, cut)
                progress.advance()
            rows = {}
            for i, name in enumerate(profiler.scale.names()):
                rows[name] = profiler.variance_interval(i, cut)
                progress.advance()
        rows.update(fixed)
        better = profiler.refitted()
        if better is None:
            break
        warnings.warn(
            f"confint: the profile found an ML deviance of {better.base_deviance:.6f}, below the "
            f"{profiler.base_deviance:.6f} of the fit's optimum (refitted by ML); the intervals are "
            "profiled from the lower optimum",
            ConvergenceWarning, stacklevel=3)
        profiler = better
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])
    scale = ProfileScale(result._system.design)
    fitted = dict(zip(scale.names(), scale.sdcor(scale.from_theta(result.theta, float(np.sqrt(result.scale)))),
                      strict=True))
    fitted.update(result.fe_params.items())
    table.insert(0, "estimate", [float(fitted[name]) for name in table.index])
    return table


MAX_REFITS = 2
"""Times the profile restarts from a lower optimum it found."""


def wald_intervals(result, level: float = 0.95) -> pd.DataFrame:
    """lme4's Wald intervals of the fixed effects: estimate -/+ qnorm * SE (columns
    ``estimate``, ``lower``, ``upper``)."""
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    est, se = result.fe_params.to_numpy(), np.sqrt(np.diag(result.fe_cov))
    return pd.DataFrame({"estimate": est, "lower": est - z * se, "upper": est + z * se}, index=result.fe_params.index)
