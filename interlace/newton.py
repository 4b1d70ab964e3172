"""Newton's method with the average information, for the variance ratios of scalar terms.

Minimises the profiled criterion over gamma = theta^2 (each scalar term's variance
relative to sigma^2; gamma >= 0), the parametrisation of average-information REML
(Gilmour, Thompson and Cullis 1995). Each iteration takes the gradient and the average
information (:class:`interlace.blocked_gradient.BlockedDeviance`), solves for the
Newton step, damped as Levenberg and Marquardt when the criterion does not fall as
the quadratic model predicts, and projected onto the bound: a ratio at its floor whose
gradient points outwards stays there. It stops when the Newton decrement g' H^{-1} g
(twice the predicted distance to the minimum) falls below :data:`DECREMENT_TOL`.

The first gradient, at a start that is far from the optimum by construction (moment
estimates, or a previous fit's theta for a new response), may estimate its traces
(``derivatives(theta, exact=False)``): their error moves the first step negligibly,
and every later gradient, the convergence test included, is exact.

Near the optimum the decrement shrinks by at least a constant factor per iteration.
When the last two decrements predict that the next one is below
:data:`PREDICTED_DECREMENT_TOL` and an accepted step fell as predicted (give or take
the criterion's rounding), the iteration ends at that step without another gradient:
on InstEval and the simulated benchmarks this saves one inverse of the rest in three.

From a start near the optimum (:func:`interlace.start.start_theta`) this takes two to
four gradients and three or four factorisations, where a derivative-free method takes
50 to 80 factorisations.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

DECREMENT_TOL = 1e-8
"""Converged when the Newton decrement g' H^{-1} g (about twice the criterion's distance
to its minimum) is below this."""

THETA_FLOOR = 1e-6
"""The smallest theta the iteration visits: at theta_t = 0 the gradient in gamma_t
is 0/0. lme4's boundary checks afterwards move a ratio left here to zero."""

ACCEPT_RATIO = 0.1
"""A step is taken when the criterion falls by at least this share of the fall the
quadratic model predicts."""

PREDICTED_DECREMENT_TOL = 1e-7
"""The early stop: an accepted step ends the iteration when the decrement predicted
at its end (the last decrement times the last ratio of decrements, a linear rate,
pessimistic where the convergence is superlinear) is below this, the criterion then
within about 5e-8 of its minimum."""

MODEL_AGREEMENT = 0.01
"""The early stop needs the accepted step's actual fall within this relative
distance of the predicted one (give or take the criterion's rounding)."""

ROUNDING = 1e-13
"""Relative rounding error of a criterion value (sums of 10^4-10^6 logarithms and
squares): differences below ROUNDING * |criterion| are noise."""

MAX_DAMPING = 1e12
"""Damping beyond which no step is found (the iteration stops, not converged)."""


def _in_gamma(value: float, grad: np.ndarray, info: np.ndarray, theta: np.ndarray):
    """Value, gradient and average information in gamma = theta^2."""
    jac = 0.5 / theta  # d theta / d gamma
    return value, grad * jac, info * np.outer(jac, jac)


def minimize_average_information(objective, start: np.ndarray, max_evaluations: int) -> SimpleNamespace:
    """Minimise ``objective`` over theta >= 0 by average-information Newton in gamma.

    Parameters
    ----------
    objective
        Has ``value(theta)`` and ``derivatives(theta, exact)`` -> (value, gradient,
        average information), as :class:`interlace.blocked_gradient.BlockedDeviance`.
    start : numpy.ndarray
        Start theta (every entry the relative SD of a scalar term).
    max_evaluations : int
        Budget of criterion evaluations (factorisations).

    Returns
    -------
    types.SimpleNamespace
        ``x`` (theta), ``fun``, ``success``, ``message``, ``nfev`` (criterion
        evaluations) and ``njev`` (gradients), as scipy's results.

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
    theta = np.maximum(np.asarray(start, dtype=np.float64), THETA_FLOOR)
    gamma = theta**2
    value, grad, info = _in_gamma(*objective.derivatives(theta, exact=False), theta)
    evaluations, gradients = 1, 1
    damping = 0.0
    previous_decrement = np.inf
    message = "evaluation budget used up"
    success = False
    while True:
        if not np.isfinite(value):
            message = "the start is not a positive-definite point"
            break
        free = ~((gamma <= gamma_floor) & (grad > 0))
        scaling = np.maximum(np.diag(info), 1e-12 * max(float(np.max(np.abs(np.diag(info)))), 1e-300))
        step = np.zeros_like(gamma)
        if np.any(free):
            system = info[np.ix_(free, free)] + damping * np.diag(scaling[free])
            try:
                step[free] = -np.linalg.solve(system, grad[free])
            except np.linalg.LinAlgError:
                damping = max(4.0 * damping, 1e-3)
                if damping > MAX_DAMPING:
                    message = "no descent direction"
                    break
                continue
        decrement = float(-grad @ step)
        if decrement < DECREMENT_TOL and damping == 0.0:
            success, message = True, "converged (Newton decrement below tolerance)"
            break
        if evaluations >= max_evaluations:
            break
        trial = np.maximum(gamma + step, gamma_floor)
        delta = trial - gamma
        predicted = -float(grad @ delta + 0.5 * delta @ info @ delta)
        trial_value = objective.value(np.sqrt(trial))
        evaluations += 1
        ratio = (value - trial_value) / predicted if predicted > 0 else -np.inf
        if not (np.isfinite(trial_value) and trial_value < value and ratio > ACCEPT_RATIO):
            if predicted <= ROUNDING * abs(value):
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
        rate = decrement / previous_decrement if np.isfinite(previous_decrement) else np.inf
        agrees = abs((value - trial_value) - predicted) <= MODEL_AGREEMENT * predicted + ROUNDING * abs(value)
        gamma, value = trial, trial_value
        if rate * decrement < PREDICTED_DECREMENT_TOL and agrees and damping == 0.0:
            success, message = True, "converged (the last step's predicted successor decrement below tolerance)"
            break
        previous_decrement = decrement
        theta = np.sqrt(gamma)
        value, grad, info = _in_gamma(*objective.derivatives(theta), theta)
        gradients += 1
    return SimpleNamespace(x=np.sqrt(gamma), fun=float(value), success=success, message=message,
                           nfev=evaluations, njev=gradients)
