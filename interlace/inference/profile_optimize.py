"""The nuisance optimisation at one profile point: a projected BFGS on a box, warm
started, that confirms a boundary optimum.

A profile point is a short optimisation from a good start: the optimum of the
neighbouring point (extrapolated along the profile) and that point's inverse
Hessian, so that the first steps are almost Newton's. The box is the one of lme4's
profile (an sd >= 0, a correlation's angle in [0, pi], theta's diagonal >= 0).

On a bound the deviance is often even in the coordinate (the sign of a relative
factor's column, the angle of a correlation at +-1): its derivative there is 0, a
stationary point a gradient method does not leave. Every coordinate that ends on
(or within :data:`EDGE_STEP` of) a bound without a gradient holding it there is
therefore tried :data:`EDGE_STEP` inside, and the optimisation restarts from there
when that is lower (lme4's ``restart_edge`` for the main fit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GRADIENT_TOL = 1e-7
"""Projected gradient (deviance units per scaled unit) at which the optimum is reached."""

DECREMENT_TOL = 1e-13
"""Relative decrease left by the quasi-Newton model -g'Hg / 2 at which to stop: 1e-13
of a deviance of 10^3 changes zeta at 1.96 by ~3e-11."""

NOISE_TOL = 1e-10
"""Relative decrease, predicted along the search direction, below which a failed line
search counts as converged: the deviance's rounding (ill-conditioned fixed effects
make it ~1e-11 relative)."""

LINE_SEARCH_STEPS = 30
"""Halvings of the step before the line search gives up."""

EDGE_STEP = 1e-3
"""Inward step (scaled units) that tests a coordinate on a bound."""

EDGE_HOLD = 1e-3
"""A coordinate on a bound whose gradient pushes into the bound by more than this is
held there by it (a Karush-Kuhn-Tucker point), and is not tested."""

KNOWN_RADIUS = 1e-1
"""Distance (scaled units) to a known optimum at which a run from another start stops:
it is on its way to the same optimum."""

MAX_ITERATIONS = 300
"""Quasi-Newton iterations of one optimisation."""


@dataclass(frozen=True)
class BoxOptimum:
    """The result of :func:`minimize_box`.

    Attributes
    ----------
    x : numpy.ndarray
        The optimum.
    value : float
        The function there (inf when no finite value was found).
    inverse_hessian : numpy.ndarray or None
        The BFGS inverse Hessian in scaled units (x / unit), to warm start a neighbour.
    n_evaluations : int
        Function evaluations.
    converged : bool
        Whether the projected gradient or the decrement met its tolerance.
    """

    x: np.ndarray
    value: float
    inverse_hessian: np.ndarray | None
    n_evaluations: int
    converged: bool


def _reduced_inverse(H: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The inverse Hessian of the free coordinates with the held ones fixed: the Schur
    complement H_ff - H_fh H_hh^-1 H_hf (the free block of H alone is the inverse
    Hessian with the held coordinates free to move)."""
    if free.all():
        return H
    held = ~free
    H_ff, H_fh, H_hh = H[np.ix_(free, free)], H[np.ix_(free, held)], H[np.ix_(held, held)]
    try:
        return H_ff - H_fh @ np.linalg.solve(H_hh, H_fh.T)
    except np.linalg.LinAlgError:
        return H_ff


def _bfgs(fun: Callable, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, H: np.ndarray | None,
          max_iterations: int, known: np.ndarray | None = None):
    """Projected BFGS in scaled coordinates: (y, f, g, H, evaluations, converged);
    stopped, not converged, on coming within :data:`KNOWN_RADIUS` of ``known``."""
    f, g = fun(y)
    evaluations = 1
    if not np.isfinite(f):
        return y, f, g, None, evaluations, False
    n = y.size
    for _ in range(max_iterations):
        held = ((y <= lo) & (g > 0)) | ((y >= hi) & (g < 0))
        pg = np.where(held, 0.0, g)
        if np.max(np.abs(pg), initial=0.0) < GRADIENT_TOL:
            return y, f, g, H, evaluations, True
        free = ~held
        if H is None:
            d = -pg
            step = min(1.0, 0.1 / np.max(np.abs(d)))
        else:
            d = np.zeros(n)
            d[free] = -_reduced_inverse(H, free) @ g[free]
            step = 1.0
        slope = float(g @ d)
        if not slope < 0:
            H, d, slope = None, -pg, -float(pg @ pg)
            step = min(1.0, 0.1 / np.max(np.abs(d)))
        elif H is not None and -0.5 * slope <= DECREMENT_TOL * (1.0 + abs(f)):
            return y, f, g, H, evaluations, True
        accepted = False
        for _ls in range(LINE_SEARCH_STEPS):
            trial = np.clip(y + step * d, lo, hi)
            f_new, g_new = fun(trial)
            evaluations += 1
            if np.isfinite(f_new) and f_new <= f + 1e-4 * float(g @ (trial - y)):
                accepted = True
                break
            step *= 0.5
        if not accepted:  # converged when what is left to gain is rounding
            return y, f, g, H, evaluations, bool(-slope <= NOISE_TOL * (1.0 + abs(f)))
        s, yv = trial - y, g_new - g
        sy = float(s @ yv)
        small = abs(f - f_new) <= DECREMENT_TOL * (1.0 + abs(f)) and np.max(np.abs(s)) < 1e-9
        y, f, g = trial, f_new, g_new
        if small:
            return y, f, g, H, evaluations, True
        if known is not None and np.max(np.abs(y - known)) < KNOWN_RADIUS:
            return y, f, g, H, evaluations, False
        if H is not None and step < 1e-3:
            H = None  # a poor model (the warm start's, or one gone stale on the box): start afresh
        elif sy > 1e-16 * max(1.0, float(yv @ yv)):
            if H is None:
                H = np.eye(n) * (sy / float(yv @ yv))
            Hy = H @ yv
            rho = 1.0 / sy
            H = H + (rho * rho * float(yv @ Hy) + rho) * np.outer(s, s) - rho * (np.outer(Hy, s) + np.outer(s, Hy))
    return y, f, g, H, evaluations, False


def minimize_box(fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], start: np.ndarray,
                 lower: np.ndarray, upper: np.ndarray, unit: np.ndarray,
                 inverse_hessian: np.ndarray | None = None, max_iterations: int = MAX_ITERATIONS,
                 alternatives: Callable[[np.ndarray], list[np.ndarray]] | None = None,
                 known: np.ndarray | None = None) -> BoxOptimum:
    """Minimise ``fun_and_grad`` (value and gradient) over lower <= x <= upper from ``start``.

    ``unit`` scales the coordinates (the optimiser works in x / unit, where
    ``inverse_hessian``, when given, starts BFGS). Coordinates that end on a bound
    where the gradient does not hold them are tried inside (see the module docstring);
    so are the points ``alternatives(x)`` gives at the optimum x (the caller's
    knowledge of other sides of the box: a correlation reflected where its sd is 0).
    ``known``, an optimum found before, stops the run (not converged) once it comes
    within :data:`KNOWN_RADIUS` of it: a second start looking for another optimum.

    Examples
    --------
    >>> fg = lambda x: (float((x[0] - 1.0) ** 2 + (x[1] + 1.0) ** 2), np.array([2 * (x[0] - 1.0), 2 * (x[1] + 1.0)]))
    >>> res = minimize_box(fg, np.array([0.5, 0.5]), np.zeros(2), np.full(2, np.inf), np.ones(2))
    >>> np.round(res.x, 6).tolist(), res.converged
    ([1.0, 0.0], True)
    """
    unit = np.asarray(unit, dtype=np.float64)
    lo, hi = lower / unit, upper / unit

    def scaled(y: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fun_and_grad(y * unit)
        return float(f), np.asarray(g, dtype=np.float64) * unit

    H = None
    if inverse_hessian is not None and inverse_hessian.shape == (start.size, start.size):
        H = inverse_hessian.copy()
    y = np.clip(np.asarray(start, dtype=np.float64) / unit, lo, hi)
    known_y = None if known is None else np.asarray(known, dtype=np.float64) / unit
    y, f, g, H, evaluations, converged = _bfgs(scaled, y, lo, hi, H, max_iterations, known_y)
    if known_y is not None and np.max(np.abs(y - known_y)) < KNOWN_RADIUS:
        return BoxOptimum(y * unit, float(f), H, evaluations, converged)
    for _ in range(y.size + 1):
        near_lo = (y - lo <= EDGE_STEP) & (g > -EDGE_HOLD) & (g < EDGE_HOLD)
        near_hi = (hi - y <= EDGE_STEP) & (g > -EDGE_HOLD) & (g < EDGE_HOLD)
        best = None
        trials = []
        for i in np.flatnonzero(near_lo | near_hi):
            trial = y.copy()
            trial[i] = lo[i] + 2 * EDGE_STEP if near_lo[i] else hi[i] - 2 * EDGE_STEP
            trials.append(trial)
        if alternatives is not None:
            trials += [np.asarray(x, dtype=np.float64) / unit for x in alternatives(y * unit)]
        for trial in trials:
            trial = np.clip(trial, lo, hi)
            f_trial, _ = scaled(trial)
            evaluations += 1
            if f_trial < f - 1e-12 * (1.0 + abs(f)) and (best is None or f_trial < best[1]):
                best = (trial, f_trial)
        if best is None:
            break
        y2, f2, g2, H2, more, conv2 = _bfgs(scaled, best[0], lo, hi, None, max_iterations, known_y)
        evaluations += more
        if not f2 < f:
            break
        y, f, g, H, converged = y2, f2, g2, H2, conv2
        if known_y is not None and np.max(np.abs(y - known_y)) < KNOWN_RADIUS:
            break
    return BoxOptimum(y * unit, float(f), H, evaluations, converged)
