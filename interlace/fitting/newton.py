"""Newton's method with the average information, for the variance ratios of scalar terms.

Minimises the profiled criterion over gamma = theta^2 (each scalar term's variance
relative to sigma^2; gamma >= 0), as average-information REML does (Gilmour, Thompson
and Cullis 1995), with steps taken in the shrinkage weights w = 1 / (1 + c gamma)
(:class:`ShrinkageCoordinates`), in which the criterion is closer to quadratic. Each
iteration takes the gradient and the average information
(:class:`interlace.fitting.blocked_gradient.BlockedDeviance`), solves for the
Newton step, damped as Levenberg and Marquardt when the criterion does not fall as
the quadratic model predicts, and projected onto the bound: a ratio at its floor whose
gradient points outwards stays there. It stops when the Newton decrement g' H^{-1} g
(twice the predicted distance to the minimum) falls below :data:`DECREMENT_TOL`.

The first gradient, at a start that is far from the optimum by construction (moment
estimates, or a previous fit's theta for a new response), may estimate its traces
(``derivatives(theta, exact=False)``): their error moves the first step negligibly,
and every later gradient, the convergence test included, is exact.

Every iteration ends with the exact gradient and the average information at the
point it returns (``grad``, ``information`` and ``at`` of the result): the convergence
check of :mod:`interlace.fitting.optimize` reads them there, and a ratio the iteration left on
its floor gets its curvature at zero from them (the criterion is even in theta_t, so
the gradient at the floor divided by the floor is d2/dtheta_t^2 at zero up to the
floor squared). On systems of at least :data:`LARGE_SYSTEM_SIZE` rows the decrement
tolerance is :data:`LARGE_DECREMENT_TOL` (the criterion within about 5e-8 of its
minimum, far inside lme4's gradient check), which saves one iteration in three there.

From a start near the optimum (:func:`interlace.fitting.start.start_theta`) this takes two to
four gradients and three or four factorisations, where a derivative-free method takes
50 to 80 factorisations.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

DECREMENT_TOL = 1e-8
"""Converged when the Newton decrement g' H^{-1} g (about twice the criterion's distance
to its minimum) is below this."""

THETA_FLOOR = 1e-5
"""The smallest theta the iteration visits: at theta_t = 0 the gradient in gamma_t
is 0/0. lme4's boundary checks afterwards move a ratio left here to zero, and the
convergence check reads the curvature at zero off the gradient here (gradient /
floor, the criterion being even in theta_t): the gradient's bracket is then
curvature x 5e-11, far above its rounding, and the criterion within curvature x 5e-11
of its value at zero."""

ACCEPT_RATIO = 0.1
"""A step is taken when the criterion falls by at least this share of the fall the
quadratic model predicts."""

LARGE_DECREMENT_TOL = 1e-7
"""Converged, on systems of at least :data:`LARGE_SYSTEM_SIZE` rows, when the decrement
at an accepted step (exact gradient) is below this: the criterion within about 5e-8 of
its minimum."""

LARGE_SYSTEM_SIZE = 500
"""Systems of at least this many rows (q_rest + p + 1) take :data:`LARGE_DECREMENT_TOL`:
below, an iteration is cheap, and the average information, which is not the Hessian,
can misjudge the last step of a small crossed design enough to leave the criterion
1e-6 above its minimum."""

ROUNDING = 1e-13
"""Relative rounding error of a criterion value (sums of 10^4-10^6 logarithms and
squares): differences below ROUNDING * |criterion| are noise."""

MAX_DAMPING = 1e12
"""Damping beyond which no step is found (the iteration stops, not converged)."""


class ShrinkageCoordinates:
    """The working coordinates of the iteration: per variance ratio gamma_t = theta_t^2,
    the shrinkage weight w_t = 1 / (1 + c_t gamma_t), c_t the term's mean Z_t'Z_t
    diagonal (observations per level for an intercept).

    A level's BLUP is its mean residual shrunk by about w_t, and the criterion is
    much closer to quadratic in w_t than in gamma_t where c_t gamma_t is large: on
    InstEval a Newton step from the moment start lands within 0.05% of the optimum in
    w, 1% in gamma. w_t is finite at gamma_t = 0 (w_t = 1, the bound) and tends to 0
    as gamma_t grows. With every c_t = 0 (no level sizes known) the coordinates are
    -gamma.
    """

    def __init__(self, level_sizes: np.ndarray):
        self.c = np.asarray(level_sizes, dtype=np.float64)
        self._plain = self.c <= 0

    def from_gamma(self, gamma: np.ndarray) -> np.ndarray:
        return np.where(self._plain, -gamma, 1.0 / (1.0 + self.c * gamma))

    def to_gamma(self, w: np.ndarray) -> np.ndarray:
        """gamma of ``w`` (w in (0, 1]; -gamma for the plain coordinates)."""
        with np.errstate(divide="ignore"):
            return np.where(self._plain, -w, (1.0 / w - 1.0) / np.where(self._plain, 1.0, self.c))

    def valid(self, w: np.ndarray) -> bool:
        """Whether ``w`` maps to a finite gamma."""
        return bool(np.all(self._plain | (w > 0)))

    def derivatives(self, value: float, grad: np.ndarray, info: np.ndarray, theta: np.ndarray):
        """Value, gradient and average information in w, from those in theta."""
        gamma = theta**2
        w = self.from_gamma(gamma)
        dw_dgamma = np.where(self._plain, -1.0, -self.c * w**2)
        jac = 1.0 / (dw_dgamma * 2.0 * theta)  # d theta / d w
        return value, grad * jac, info * np.outer(jac, jac)


def minimize_average_information(objective, start: np.ndarray, max_evaluations: int) -> SimpleNamespace:
    """Minimise ``objective`` over theta >= 0 by average-information Newton steps in the
    shrinkage weights.

    Parameters
    ----------
    objective
        Has ``value(theta)`` and ``derivatives(theta, exact)`` -> (value, gradient,
        average information), as :class:`interlace.fitting.blocked_gradient.BlockedDeviance`,
        and optionally ``level_sizes`` (per theta, the c of
        :class:`ShrinkageCoordinates`; without it the steps are taken in gamma).
    start : numpy.ndarray
        Start theta (every entry the relative SD of a scalar term).
    max_evaluations : int
        Budget of criterion evaluations (factorisations).

    Returns
    -------
    types.SimpleNamespace
        ``x`` (theta), ``fun``, ``success``, ``message``, ``nfev`` (criterion
        evaluations) and ``njev`` (gradients), as scipy's results; ``at``, ``grad``
        and ``information``: the point of the last gradient (``x``, unless the start
        was not a positive-definite point), the exact gradient and the average
        information in theta there.

    Examples
    --------
    >>> class Quadratic:  # criterion (gamma - 0.25)' A (gamma - 0.25), exact information
    ...     A = np.array([[2.0, 0.5], [0.5, 1.0]])
    ...     def value(self, theta):
    ...         e = theta**2 - 0.25
    ...         return float(e @ self.A @ e)
    ...     def derivatives(self, theta, exact=True):
    ...         e = theta**2 - 0.25
    ...         jac = 2 * theta
    ...         return float(e @ self.A @ e), 2 * self.A @ e * jac, 2 * self.A * np.outer(jac, jac)
    >>> res = minimize_average_information(Quadratic(), np.array([1.0, 1.0]), 100)
    >>> np.round(res.x, 6).tolist(), res.success
    ([0.5, 0.5], True)
    """
    gamma_floor = THETA_FLOOR**2
    system = getattr(objective, "system", None)
    tolerance = LARGE_DECREMENT_TOL if system is not None and system.size >= LARGE_SYSTEM_SIZE else DECREMENT_TOL
    theta = np.maximum(np.asarray(start, dtype=np.float64), THETA_FLOOR)
    gamma = theta**2
    coords = ShrinkageCoordinates(getattr(objective, "level_sizes", np.zeros(len(theta))))
    last = objective.derivatives(theta, exact=False)
    estimated = True  # the gradient in ``last`` may have estimated traces
    value, grad, info = coords.derivatives(*last, theta)
    evaluations, gradients = 1, 1
    damping = 0.0
    message = "evaluation budget used up"
    success = False
    while True:
        if not np.isfinite(value):
            message = "the start is not a positive-definite point"
            break
        free = ~((gamma <= gamma_floor) & (grad < 0))  # w falls as gamma grows
        scaling = np.maximum(np.diag(info), 1e-12 * max(float(np.max(np.abs(np.diag(info)))), 1e-300))
        w = coords.from_gamma(gamma)
        w_floor = coords.from_gamma(np.full_like(gamma, gamma_floor))
        step = np.zeros_like(gamma)
        try:
            if np.any(free):
                system = info[np.ix_(free, free)] + damping * np.diag(scaling[free])
                step[free] = -np.linalg.solve(system, grad[free])
            decrement = float(-grad @ step)
            # ratios the step takes past their floor (w falls as gamma grows) stop on it,
            # and the others take the model's best step with them there
            crossing = free & (w + step >= w_floor)
            keep = free & ~crossing
            if np.any(crossing) and np.any(keep):
                step[crossing] = w_floor[crossing] - w[crossing]
                system = info[np.ix_(keep, keep)] + damping * np.diag(scaling[keep])
                step[keep] = -np.linalg.solve(system, grad[keep] + info[np.ix_(keep, crossing)] @ step[crossing])
        except np.linalg.LinAlgError:
            damping = max(4.0 * damping, 1e-3)
            if damping > MAX_DAMPING:
                message = "no descent direction"
                break
            continue
        if decrement < tolerance and damping == 0.0:
            if estimated:  # confirm with the exact gradient
                last, estimated = objective.derivatives(theta), False
                value, grad, info = coords.derivatives(*last, theta)
                gradients += 1
                continue
            success, message = True, "converged (Newton decrement below tolerance)"
            break
        if evaluations >= max_evaluations:
            break
        if not coords.valid(w + step):  # the step would take a variance to infinity
            damping = max(4.0 * damping, 1e-3)
            if damping > MAX_DAMPING:
                message = "no descent direction"
                break
            continue
        # a ratio on its floor lands on it exactly: w near 1 maps back to gamma with an
        # absolute error of about 1e-16 / c
        trial = np.where(w + step >= w_floor, gamma_floor, np.maximum(coords.to_gamma(w + step), gamma_floor))
        delta = coords.from_gamma(trial) - w
        predicted = -float(grad @ delta + 0.5 * delta @ info @ delta)
        trial_value = objective.value(np.sqrt(trial))
        evaluations += 1
        ratio = (value - trial_value) / predicted if predicted > 0 else -np.inf
        if not (np.isfinite(trial_value) and trial_value < value and ratio > ACCEPT_RATIO):
            if abs(predicted) <= ROUNDING * abs(value):
                if estimated:  # confirm with the exact gradient
                    last, estimated = objective.derivatives(theta), False
                    value, grad, info = coords.derivatives(*last, theta)
                    gradients += 1
                    continue
                # the model promises less than the criterion resolves: this is the optimum
                success, message = True, "converged (the predicted decrease is below the criterion's rounding)"
                break
            damping = max(4.0 * damping, 1e-3)
            if damping > MAX_DAMPING:
                message = "no descent direction"
                break
            continue
        damping = damping / 4.0 if ratio > 0.75 else damping
        if damping < 1e-6:
            damping = 0.0
        gamma = trial
        theta = np.sqrt(gamma)
        last, estimated = objective.derivatives(theta), False
        value, grad, info = coords.derivatives(*last, theta)
        gradients += 1
    if estimated and np.isfinite(value):  # the check reads an exact gradient
        last = objective.derivatives(theta)
        gradients += 1
    return SimpleNamespace(x=np.sqrt(gamma), fun=float(value), success=success, message=message,
                           nfev=evaluations, njev=gradients, at=theta, grad=np.asarray(last[1], dtype=np.float64),
                           information=np.asarray(last[2], dtype=np.float64))
