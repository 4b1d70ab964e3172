"""The optimiser of theta, and a record of what it did.

``optimizer="auto"`` (the default) picks by what the criterion offers:

- small dense systems: a projected BFGS in compiled code (:mod:`interlace.gradient`);
- larger dense systems: L-BFGS-B with the analytic gradient;
- blocked systems of scalar terms with a dense rest: Newton's method with the average
  information (:mod:`interlace.newton`, :mod:`interlace.blocked_gradient`), from
  moment estimates (:mod:`interlace.start`);
- everything else: scipy's COBYQA, a derivative-free trust-region method with bounds
  (a successor of the BOBYQA that lme4 uses through nloptwrap).

Every run is followed by lme4's two boundary checks: ``restart_edge`` (restart when
moving a zero variance off the boundary lowers the deviance) and ``check.boundary``
(snap near-zero values to zero when that does not raise the deviance).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InterlaceError

OPTIMIZERS = ("auto", "newton", "cobyqa", "l-bfgs-b", "powell", "nelder-mead")

GRADIENT_METHODS = ("auto-compiled", "l-bfgs-b", "newton")

NEAR_BOUNDARY = 1e-4
"""A gradient run ending with a variance parameter this close to zero (lme4's
singularity tolerance) is checked by a derivative-free run from the start."""
"""Names accepted by ``optimizer=``."""

BOUNDARY_TOL = 1e-4
"""Values this close to a bound are tried at the bound and kept there when the criterion
is not higher (lme4's ``check.boundary`` with its ``boundary.tol`` of 1e-5; wider here,
lme4's singularity tolerance: a gradient method approaches a zero variance slowly, the
criterion being even in it, and stops 1e-5 off where lme4's BOBYQA lands on the bound)."""

RESTART_STEP = 1e-5
"""Step off the boundary used by the ``restart_edge`` check (lme4's ``btol``)."""

RESTART_FROM = 1e-3
"""Where a boundary coordinate restarts from when the check says the deviance falls
off the boundary. At zero a diagonal entry of a relative factor is a stationary
point (the deviance is even in it), where a gradient method would stay; just off
it the gradient points away from the boundary."""

MAX_EVALUATIONS = 100_000
"""Evaluation budget of one optimisation (lme4's nloptwrap ``maxeval``)."""

GRADIENT_TOL = 1e-3
"""An L-BFGS-B run that stops on its line search still counts as converged when the
projected gradient is below this (lme4 warns at 2e-3 on its scaled gradient)."""


@dataclass(frozen=True)
class OptimizationRecord:
    """What the optimiser did.

    Attributes
    ----------
    optimizer : str
        Its name.
    theta : numpy.ndarray
        The optimum found.
    objective : float
        The deviance (or REML criterion) there.
    n_evaluations : int
        Objective evaluations, checks included.
    converged : bool
        Whether the optimiser met its convergence criteria.
    message : str
        The optimiser's own message.
    """

    optimizer: str
    theta: np.ndarray
    objective: float
    n_evaluations: int
    converged: bool
    message: str


def _has_average_information(fun_and_grad) -> bool:
    """Whether Newton's method can run on ``fun_and_grad``: it gives the average
    information (:class:`interlace.blocked_gradient.BlockedDeviance`)."""
    return bool(getattr(fun_and_grad, "has_average_information", False))


def _projected_gradient(grad: np.ndarray, theta: np.ndarray, lower: np.ndarray) -> np.ndarray:
    return np.where((theta <= lower) & (grad > 0), 0.0, grad)


def _run(name: str, fun: Callable, start: np.ndarray, lower: np.ndarray, max_evaluations: int,
         fun_and_grad: Callable | None = None, inverse_hessian: np.ndarray | None = None, polish: bool = False):
    if name == "auto-compiled":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fun_and_grad.minimize(start, lower, max_evaluations, inverse_hessian, polish)
    if name == "newton":
        from .newton import minimize_average_information

        return minimize_average_information(fun_and_grad, start, max_evaluations)
    from scipy.optimize import Bounds, minimize  # not needed by the compiled optimiser

    bounds = Bounds(lower, np.full_like(lower, np.inf))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == "l-bfgs-b" and fun_and_grad is not None:
            result = minimize(fun_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"ftol": 1e-14, "gtol": 1e-8, "maxfun": max_evaluations,
                                       "maxiter": max_evaluations})
            if not result.success and result.nfev < max_evaluations:
                grad = fun_and_grad(result.x)[1]
                result.success = bool(np.max(np.abs(_projected_gradient(grad, result.x, lower))) < GRADIENT_TOL)
            return result
        if name == "cobyqa":
            return minimize(
                fun, start, method="COBYQA", bounds=bounds,
                options={"initial_tr_radius": 1.0, "final_tr_radius": 1e-6,
                         "maxfev": max_evaluations},
            )
        if name == "l-bfgs-b":
            return minimize(fun, start, method="L-BFGS-B", bounds=bounds,
                            options={"ftol": 1e-12, "gtol": 1e-9, "maxfun": max_evaluations})
        if name == "powell":
            return minimize(fun, start, method="Powell", bounds=bounds,
                            options={"xtol": 1e-8, "ftol": 1e-12, "maxfev": max_evaluations})
        return minimize(fun, start, method="Nelder-Mead", bounds=bounds,
                        options={"xatol": 1e-8, "fatol": 1e-10, "maxfev": max_evaluations})


def optimize_theta(fun: Callable[[np.ndarray], float], start: np.ndarray, lower: np.ndarray,
                   optimizer: str = "auto", max_evaluations: int = MAX_EVALUATIONS,
                   fun_and_grad: Callable | None = None,
                   inverse_hessian: np.ndarray | None = None, polish: bool = False) -> OptimizationRecord:
    """Minimise ``fun`` over theta >= lower from ``start``, with lme4's boundary checks.

    ``max_evaluations`` bounds one optimiser run (lme4's ``maxfun``/``maxeval``);
    ``fun_and_grad``, when given, returns (value, gradient) for L-BFGS-B;
    ``inverse_hessian`` (the compiled optimiser only) starts its first run with known
    curvature, as refits of one design do; ``polish`` (the compiled optimiser only) ends
    it at the gradient's accuracy rather than the deviance's, as ``fit`` asks.

    Examples
    --------
    >>> rec = optimize_theta(lambda t: float((t[0] - 2.0) ** 2), np.array([1.0]), np.array([0.0]))
    >>> round(float(rec.theta[0]), 4), rec.converged
    (2.0, True)
    """
    name = str(optimizer).lower()
    if name not in OPTIMIZERS:
        raise InterlaceError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, found {optimizer!r}")
    if name == "newton" and not _has_average_information(fun_and_grad):
        raise InterlaceError(
            "optimizer='newton': needs a blocked system of scalar terms with a dense rest "
            "(crossed random intercepts on a large model); use 'auto' or 'cobyqa'"
        )
    if name == "auto":
        if fun_and_grad is None:
            name = "cobyqa"
        elif _has_average_information(fun_and_grad):
            name = "newton"
        else:
            name = "auto-compiled" if hasattr(fun_and_grad, "minimize") else "l-bfgs-b"
    count = 0

    def counted(theta: np.ndarray) -> float:
        nonlocal count
        count += 1
        return fun(np.maximum(np.asarray(theta, dtype=np.float64), lower))

    counted_grad = None
    if name in ("auto-compiled", "newton"):
        counted_grad = fun_and_grad  # it counts its own evaluations
    elif fun_and_grad is not None:
        def counted_grad(theta: np.ndarray):
            nonlocal count
            count += 1
            return fun_and_grad(np.maximum(np.asarray(theta, dtype=np.float64), lower))

    start = np.maximum(np.asarray(start, dtype=np.float64), lower)
    result = _run(name, counted, start, lower, max_evaluations, counted_grad,
                  inverse_hessian if name == "auto-compiled" else None, polish)
    if name in ("auto-compiled", "newton"):
        count += result.nfev
    theta, value = np.maximum(result.x, lower), float(result.fun)
    converged, message = bool(result.success), str(result.message)
    # lme4's restart_edge: a zero variance whose deviance falls when moved off the bound
    on_bound = np.flatnonzero(np.isfinite(lower) & (theta == lower))
    falling = []
    for i in on_bound:
        trial = theta.copy()
        trial[i] = lower[i] + RESTART_STEP
        if counted(trial) < value:
            falling.append(i)
    restarts = []
    if falling:
        restart = theta.copy()
        restart[falling] = lower[falling] + RESTART_FROM
        restarts.append(restart)
    if on_bound.size and name in GRADIENT_METHODS:
        # a gradient method can stop in a local minimum on the boundary that a
        # derivative-free search from lme4's start passes by: try again from there
        restart = theta.copy()
        restart[on_bound] = np.maximum(start[on_bound], lower[on_bound] + 0.1)
        restarts.append(restart)
    for restart in restarts:
        again = _run(name, counted, restart, lower, max_evaluations, counted_grad, polish=polish)
        if name in ("auto-compiled", "newton"):
            count += again.nfev
        if again.fun < value:
            theta, value = np.maximum(again.x, lower), float(again.fun)
            converged, message = bool(again.success), str(again.message)
    if name in GRADIENT_METHODS and np.any(np.isfinite(lower) & (theta - lower < NEAR_BOUNDARY)):
        # zero is a stationary point of every variance (the deviance is even in it):
        # near the boundary, confirm with the derivative-free search from the start
        again = _run("cobyqa", counted, start, lower, max_evaluations)
        if again.fun < value:
            theta, value = np.maximum(again.x, lower), float(again.fun)
            converged, message = bool(again.success), str(again.message)
    # lme4's check.boundary: snap values within BOUNDARY_TOL of a bound when not worse
    near = np.flatnonzero(np.isfinite(lower) & (theta > lower) & (theta - lower < BOUNDARY_TOL))
    for i in near:
        trial = theta.copy()
        trial[i] = lower[i]
        trial_value = counted(trial)
        if trial_value <= value:
            theta, value = trial, trial_value
    return OptimizationRecord(name, theta, value, count, converged, message)
