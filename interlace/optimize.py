"""The optimiser of theta, and a record of what it did.

The default is scipy's COBYQA, a derivative-free trust-region method with bounds
(a successor of the BOBYQA that lme4 uses through nloptwrap), started from lme4's
start and followed by lme4's two boundary checks: ``restart_edge`` (restart when
moving a zero variance off the boundary lowers the deviance) and
``check.boundary`` (snap near-zero values to zero when that does not raise the
deviance).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, minimize

from .errors import InterlaceError

OPTIMIZERS = ("cobyqa", "l-bfgs-b", "powell", "nelder-mead")
"""Names accepted by ``optimizer=``."""

BOUNDARY_TOL = 1e-5
"""lme4's ``boundary.tol``: values this close to a bound are tried at the bound."""

RESTART_STEP = 1e-5
"""Step off the boundary used by the ``restart_edge`` check (lme4's ``btol``)."""

MAX_EVALUATIONS = 100_000
"""Evaluation budget of one optimisation (lme4's nloptwrap ``maxeval``)."""


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


def _run(name: str, fun: Callable, start: np.ndarray, lower: np.ndarray, max_evaluations: int):
    bounds = Bounds(lower, np.full_like(lower, np.inf))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
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
                   optimizer: str = "cobyqa", max_evaluations: int = MAX_EVALUATIONS) -> OptimizationRecord:
    """Minimise ``fun`` over theta >= lower from ``start``, with lme4's boundary checks.

    ``max_evaluations`` bounds one optimiser run (lme4's ``maxfun``/``maxeval``).

    Examples
    --------
    >>> rec = optimize_theta(lambda t: float((t[0] - 2.0) ** 2), np.array([1.0]), np.array([0.0]))
    >>> round(float(rec.theta[0]), 4), rec.converged
    (2.0, True)
    """
    name = str(optimizer).lower()
    if name not in OPTIMIZERS:
        raise InterlaceError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, found {optimizer!r}")
    count = 0

    def counted(theta: np.ndarray) -> float:
        nonlocal count
        count += 1
        return fun(np.maximum(np.asarray(theta, dtype=np.float64), lower))

    start = np.maximum(np.asarray(start, dtype=np.float64), lower)
    result = _run(name, counted, start, lower, max_evaluations)
    theta, value = np.maximum(result.x, lower), float(result.fun)
    converged, message = bool(result.success), str(result.message)
    # lme4's restart_edge: a zero variance whose deviance falls when moved off the bound
    on_bound = np.flatnonzero(np.isfinite(lower) & (theta == lower))
    if on_bound.size:
        for i in on_bound:
            trial = theta.copy()
            trial[i] = lower[i] + RESTART_STEP
            if counted(trial) < value:
                again = _run(name, counted, theta, lower, max_evaluations)
                if again.fun < value:
                    theta, value = np.maximum(again.x, lower), float(again.fun)
                    converged, message = bool(again.success), str(again.message)
                break
    # lme4's check.boundary: snap values within BOUNDARY_TOL of a bound when not worse
    near = np.flatnonzero(np.isfinite(lower) & (theta > lower) & (theta - lower < BOUNDARY_TOL))
    for i in near:
        trial = theta.copy()
        trial[i] = lower[i]
        trial_value = counted(trial)
        if trial_value <= value:
            theta, value = trial, trial_value
    return OptimizationRecord(name, theta, value, count, converged, message)
