"""One end of a profile interval: where zeta first reaches the cut-off going outward
from the estimate, or the parameter's bound when it never does.

The search runs on the distance t >= 0 from the estimate towards the end, on
w(t) = |zeta| = sqrt(deviance - minimum), which a good scale makes nearly linear.
Each profile point also gives dw/dt (the partial derivative of the deviance in the
parameter at the nuisance optimum, by the envelope theorem, over 2w), so the march
outward takes Newton steps towards the cut-off: a few points per end. Once a point
reaches the cut-off, the crossing is bracketed and found by Newton's method
safeguarded by the bracket (bisection when a step leaves it).

A failed nuisance optimisation can only give too high a deviance, so the point that
ends the search is first re-optimised from other starts (:meth:`Curve.confirm`);
when that lowers it, the path had followed a worse local optimum of the nuisance,
and every point is confirmed from then on. A point lower than one nearer the
estimate (the profile is continuous, so it should not fall going outward) has the
nearer point confirmed. When the profile really is not monotone, the first crossing going
outward is the end, as lme4's profile reads it. When w stays below the cut-off up to
the parameter's bound (0 for an sd, +-1 for a correlation), the bound is the end; an
sd or sigma whose profile has not reached the cut-off :data:`HUGE` step lengths out
has no finite end (lme4's ``upper``, Inf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

ZETA_TOL = 1e-6
"""|w - cut-off| at which an end is accepted (the end is then good to ~1e-6 of the
parameter's standard error)."""

MAX_POINTS = 60
"""Profile points one end may use; the best bracketed value is returned after them."""

HUGE = 1e4
"""Step lengths (``first_step``) after which an unbounded end is taken as infinite."""

MONOTONE_TOL = 1e-6
"""A fall of w going outward larger than this has the nearer point confirmed."""


class Curve(Protocol):
    """A profile along one parameter u: w and dw/du at u (nuisance re-optimised)."""

    def __call__(self, u: float) -> tuple[float, float]:
        """(w, dw/du) at u, warm started from the points evaluated before."""

    def confirm(self, u: float) -> tuple[float, float]:
        """(w, dw/du) at u, re-optimised from other starts, the lowest kept."""


@dataclass
class _Walk:
    """The points of one end's search, in the distance t from the estimate."""

    curve: Curve
    estimate: float
    direction: float
    points: dict[float, tuple[float, float]] = field(default_factory=dict)
    confirmed: set[float] = field(default_factory=set)
    suspicious: bool = False
    """Set once a confirmation lowered a point: the path had followed a worse local
    optimum of the nuisance, so every point is confirmed from then on."""

    def u(self, t: float) -> float:
        return self.estimate + self.direction * t

    def evaluate(self, t: float, confirm: bool = False) -> tuple[float, float]:
        """(w, dw/dt) at t; ``confirm``: re-optimised from other starts as well."""
        if t not in self.points:
            w, slope = self.curve(self.u(t))
            self.points[t] = (w, self.direction * slope)
        if (confirm or self.suspicious) and t not in self.confirmed:
            self.confirmed.add(t)
            w_first = self.points[t][0]
            w, slope = self.curve.confirm(self.u(t))
            self.points[t] = (w, self.direction * slope)
            if w < w_first - MONOTONE_TOL and not self.suspicious:
                self.suspicious = True
                for other in sorted(self.points):  # they may lie on the same worse optimum
                    self.evaluate(other, confirm=True)
        return self.points[t]

    def check_monotone(self, t: float) -> None:
        """Confirm the points nearer the estimate that lie above w(t): the profile is
        continuous and should not fall going outward."""
        w = self.points[t][0]
        for inner in sorted(p for p in self.points if 0 < p < t):
            if inner not in self.confirmed and self.points[inner][0] > w + MONOTONE_TOL:
                self.evaluate(inner, confirm=True)

    def crossing(self, cut: float) -> tuple[float, float] | None:
        """(a, b): b the nearest point at or above the cut-off, a the farthest point
        before it below; None when no point reaches the cut-off."""
        above = [t for t, (w, _) in self.points.items() if w >= cut]
        if not above:
            return None
        b = min(above)
        return max(t for t, (w, _) in self.points.items() if t < b and w < cut), b


def _newton_step(t: float, w: float, slope: float, cut: float) -> float | None:
    if np.isfinite(slope) and slope > 0:
        return t + (cut - w) / slope
    return None


def _secant_step(walk: _Walk, t: float, cut: float) -> float | None:
    inner = [p for p in walk.points if p < t]
    if not inner:
        return None
    p = max(inner)
    w0, w1 = walk.points[p][0], walk.points[t][0]
    if w1 > w0:
        return t + (cut - w1) * (t - p) / (w1 - w0)
    return None


def _inside(walk: _Walk, a: float, b: float, last: float, cut: float) -> float:
    """The next point in the bracket (a, b): Newton's step from the last point when
    it stays well inside, else the secant through the ends, else the middle."""
    trial = _newton_step(last, *walk.points[last], cut) if a < last < b or last in (a, b) else None
    if trial is None or not a < trial < b:
        wa, wb = walk.points[a][0], walk.points[b][0]
        trial = a + (cut - wa) * (b - a) / (wb - wa) if np.isfinite(wb) and wb > wa else 0.5 * (a + b)
    if not a < trial < b or min(trial - a, b - trial) < 0.01 * (b - a):
        trial = 0.5 * (a + b)
    return trial


def _outward(walk: _Walk, first_step: float, cut: float, t_max: float) -> float:
    """The next point beyond the farthest one: Newton's step towards the cut-off,
    else the secant, else twice as far; at most 4 times as far."""
    t = max(walk.points)
    w, slope = walk.points[t]
    trial = _newton_step(t, w, slope, cut)
    if trial is None:
        trial = _secant_step(walk, t, cut)
    if trial is None or trial <= t:
        trial = 2.0 * t
    return min(max(trial, t * (1.0 + 1e-9) + 1e-12), t + max(3.0 * t, first_step), t_max)


def interval_end(curve: Curve, estimate: float, direction: float, cut: float, first_step: float,
                 bound: float) -> float:
    """Where |zeta| first reaches ``cut`` from ``estimate`` going in ``direction`` (+-1).

    Parameters
    ----------
    curve : Curve
        The profile: w and dw/du at a value u of the parameter.
    estimate : float
        The parameter at the optimum (w = 0).
    direction : float
        +1 for the upper end, -1 for the lower.
    cut : float
        The cut-off, qnorm((1 + level) / 2).
    first_step : float
        The parameter's standard error (w is about distance / first_step near the
        estimate); the first point is ``cut * first_step`` out.
    bound : float
        The parameter's bound in that direction (+-inf when none).

    Returns
    -------
    float
        The end; ``bound`` when w stays below ``cut`` up to it; +-inf when an
        unbounded profile does not reach ``cut`` within :data:`HUGE` steps.

    Examples
    --------
    >>> class Line:
    ...     def __call__(self, u): return abs(u - 1.0) / 2.0, np.sign(u - 1.0) / 2.0
    ...     confirm = __call__
    >>> round(float(interval_end(Line(), 1.0, 1.0, 1.96, 1.0, np.inf)), 8)
    4.92
    >>> interval_end(Line(), 1.0, -1.0, 1.96, 1.0, 0.0)
    0.0
    """
    walk = _Walk(curve, estimate, direction)
    walk.points[0.0] = (0.0, np.nan)
    walk.confirmed.add(0.0)
    t_max = abs(bound - estimate)
    if t_max == 0:
        return float(bound)
    t = min(cut * first_step, t_max)
    for _ in range(MAX_POINTS):
        w, _slope = walk.evaluate(t)
        walk.check_monotone(t)
        if abs(w - cut) <= ZETA_TOL:  # the end, once confirmed
            w, _slope = walk.evaluate(t, confirm=True)
            walk.check_monotone(t)
            if abs(w - cut) <= ZETA_TOL:
                return walk.u(t)
        bracket = walk.crossing(cut)
        if bracket is not None:
            a, b = bracket
            if b - a <= 1e-12 * max(1.0, abs(walk.estimate) + b):
                if b in walk.confirmed:
                    return walk.u(b)
                walk.evaluate(b, confirm=True)
                continue
            t = _inside(walk, a, b, t, cut)
            continue
        farthest = max(walk.points)
        if farthest >= t_max:
            return float(bound)
        if farthest > HUGE * first_step:
            return float(direction * np.inf)
        t = _outward(walk, first_step, cut, t_max)
    bracket = walk.crossing(cut)  # out of points: the best estimate there is
    return walk.u(bracket[1] if bracket is not None else max(walk.points))
