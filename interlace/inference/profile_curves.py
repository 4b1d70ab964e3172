"""The profile of one parameter: for a value u, the deviance minimised over the other
parameters (the nuisance), as w = |zeta| = sqrt(deviance - minimum) and dw/du.

- :class:`VarianceCurve`: an sd, sigma or the angle of a correlation on the chart
  of :mod:`.profile_scale`, the nuisance the rest of the chart, with the gradient of
  :class:`~.profile_deviance.VarianceDeviance`.
- :class:`FixedCurve`: a fixed effect of the caller's, in units of its standard error,
  the nuisance theta of the working system whose [X y] columns hold it at its value
  (sigma and the other fixed effects profiled out as in the fit).

Each point starts from the neighbouring points' optima (extrapolated along the
profile) with the nearest one's inverse Hessian. :meth:`Curve.confirm` re-optimises a
point from the optimum, from its own optimum moved off the boundary (correlations 0,
no sd at 0) and moved onto it (one sd at 0 at a time), and keeps the lowest: the
nuisance can have two local optima whose order changes along the profile (a
correlation jumping from +1 to -0.5, or an sd dropping to 0 and taking the
correlation's say with it), and a path followed from the estimate stays on the first.
"""

from __future__ import annotations

import numpy as np

from ..fitting.gradient import CompiledDeviance, DenseDeviance, deviance_functions
from ..linalg.system import PenalizedSystem
from .profile_deviance import COMPILED_PARTS_MAX_SIZE, central_gradient
from .profile_optimize import BoxOptimum, minimize_box

LOWER_TOL = 1e-6
"""A profile point this far below the optimum's deviance shows a lower optimum."""


class Curve:
    """A profile: points (u, nuisance optimum, inverse Hessian, deviance), the
    estimate first. Subclasses set ``profiler``, ``lower``, ``upper``, ``unit`` (the
    nuisance's box and scale), ``base`` (the minimum deviance) and ``at_estimate``,
    and define :meth:`_optimize`, :meth:`_theta`, :meth:`_slope` and :meth:`_neutral`.
    A point below the minimum is passed to ``profiler.note_lower``."""

    lower: np.ndarray
    upper: np.ndarray
    unit: np.ndarray
    base: float
    at_estimate: tuple[np.ndarray, np.ndarray | None]

    def __init__(self, estimate: float, x: np.ndarray, inverse_hessian: np.ndarray | None, value: float):
        self.points = [(estimate, x, inverse_hessian, value)]

    def _optimize(self, u: float, start: np.ndarray, inverse_hessian, known: np.ndarray | None = None) -> BoxOptimum:
        """The nuisance optimum at u from ``start`` (``known``: see :func:`minimize_box`)."""
        raise NotImplementedError

    def _slope(self, u: float, x: np.ndarray, w: float) -> float:
        """dw/du at the optimum x of u (NaN when unknown: secant steps)."""
        return np.nan

    def _neutral(self, x: np.ndarray) -> np.ndarray:
        """x moved away from every boundary (correlations 0, no sd at 0); x itself
        when that changes nothing the edge tests do not."""
        return x

    def _ranked(self, u: float):
        return sorted(self.points, key=lambda item: abs(item[0] - u))

    def _start(self, u: float) -> tuple[np.ndarray, np.ndarray | None]:
        """The nearest point's optimum, extrapolated linearly from the two nearest,
        and its inverse Hessian."""
        ranked = self._ranked(u)
        u1, x1, h1, _ = ranked[0]
        x = x1
        if len(ranked) > 1 and ranked[1][0] != u1:
            u2, x2 = ranked[1][0], ranked[1][1]
            x = x1 + (x1 - x2) * (u - u1) / (u1 - u2)
        return np.clip(x, self.lower, self.upper), h1

    def _theta(self, u: float, x: np.ndarray) -> np.ndarray:
        """theta at the point (u, x)."""
        raise NotImplementedError

    def _result(self, u: float, result: BoxOptimum) -> tuple[float, float]:
        self.points = [item for item in self.points if item[0] != u]
        self.points.append((u, result.x, result.inverse_hessian, result.value))
        if result.value < self.base - LOWER_TOL:  # the fit's optimum is not the minimum
            self.profiler.note_lower(result.value, self._theta(u, result.x))
        w = float(np.sqrt(max(result.value - self.base, 0.0)))
        return w, (self._slope(u, result.x, w) if w > 0 and np.isfinite(w) else np.nan)

    def __call__(self, u: float) -> tuple[float, float]:
        """(w, dw/du) at u, warm started from the points evaluated before."""
        start, inverse_hessian = self._start(u)
        return self._result(u, self._optimize(u, start, inverse_hessian))

    def _zero_rows(self, x: np.ndarray) -> list[np.ndarray]:
        """x with one random effect's sd set to 0, for each one that is not (the
        sub-models on the boundary, whose optimum a path from the interior misses)."""
        return []

    def confirm(self, u: float) -> tuple[float, float]:
        """(w, dw/du) at u, re-optimised from the optimum, from the point's own optimum
        moved away from the boundary (:meth:`_neutral`) and onto it (one sd at 0 at a
        time, :meth:`_zero_rows`); the lowest kept."""
        current = self._ranked(u)[0]
        best = BoxOptimum(current[1], current[3], current[2], 0, True)
        starts = [self.at_estimate]
        neutral = np.clip(self._neutral(current[1]), self.lower, self.upper)
        if not np.array_equal(neutral, current[1]):
            starts.append((neutral, None))
        starts += [(x, None) for x in self._zero_rows(current[1])]
        for start, inverse_hessian in starts:
            result = self._optimize(u, np.clip(start, self.lower, self.upper), inverse_hessian, known=current[1])
            if result.value < best.value:
                best = result
        return self._result(u, best)


class VarianceCurve(Curve):
    """The profile of phi entry ``index`` (an sd, sigma or a correlation's angle)."""

    def __init__(self, profiler, index: int, inverse_hessian: np.ndarray | None):
        self.profiler = profiler
        self.scale = profiler.scale
        self.index = index
        self.free = np.array([i for i in range(self.scale.n_phi) if i != index])
        self.lower = profiler.phi_lower[self.free]
        self.upper = profiler.phi_upper[self.free]
        self.unit = profiler.phi_unit[self.free]
        self.base = profiler.base_deviance
        self.at_estimate = (profiler.phi_hat[self.free], inverse_hessian)
        super().__init__(profiler.phi_hat[index], profiler.phi_hat[self.free], inverse_hessian, self.base)

    def phi(self, u: float, x: np.ndarray) -> np.ndarray:
        """The chart's point with the parameter at u and the nuisance at x."""
        phi = np.empty(self.scale.n_phi)
        phi[self.index] = u
        phi[self.free] = x
        return phi

    def _optimize(self, u: float, start: np.ndarray, inverse_hessian, known: np.ndarray | None = None) -> BoxOptimum:
        deviance = self.profiler.variance_deviance

        def fun_and_grad(x):
            value, grad = deviance(self.phi(u, x))
            return value, grad[self.free]

        return minimize_box(fun_and_grad, start, self.lower, self.upper, self.unit, inverse_hessian,
                            alternatives=self._reflections, known=known)

    def _theta(self, u: float, x: np.ndarray) -> np.ndarray:
        return self.scale.to_theta(self.phi(u, x))

    def _slope(self, u: float, x: np.ndarray, w: float) -> float:
        _, grad = self.profiler.variance_deviance(self.phi(u, x))
        return float(grad[self.index]) / (2.0 * w)

    def _neutral(self, x: np.ndarray) -> np.ndarray:
        is_sd = self.scale.is_sd[self.free]
        if is_sd.all():  # no correlations: moving an sd off 0 is the edge test's
            return x
        x = x.copy()
        x[~is_sd] = np.pi / 2
        x[is_sd] = np.maximum(x[is_sd], 0.1 * self.unit[is_sd])
        return x

    def _zero_rows(self, x: np.ndarray) -> list[np.ndarray]:
        out = []
        for k, i in enumerate(self.free):
            if i < self.scale.n_theta and self.scale.is_sd[i] and x[k] > self.lower[k]:
                trial = x.copy()
                trial[k] = self.lower[k]
                out.append(trial)
        return out

    def _reflections(self, x: np.ndarray) -> list[np.ndarray]:
        """Where an sd is 0, the correlations of its block do not move the deviance
        (a flat direction with the sd held at 0 by its gradient, whose sign they
        set): the same point with the sd just above 0 and one of the block's angles
        reflected (cor -> -cor), for each such sd and angle."""
        out = []
        for k, i in enumerate(self.free):
            if not (self.scale.is_sd[i] and i < self.scale.n_theta and x[k] <= self.lower[k]):
                continue
            for m in self.scale.block_angles(i):
                at = np.flatnonzero(self.free == m)
                if at.size:
                    trial = x.copy()
                    trial[k] = self.lower[k] + 2e-3 * self.unit[k]
                    trial[at] = np.pi - trial[at]
                    out.append(trial)
        return out


class FixedCurve(Curve):
    """The profile of the caller's fixed effect ``j``, along z = (beta_j - estimate) / SE.

    On the working scale (:mod:`interlace.fitting.conditioning`) beta_j = gamma_j + s t'beta'
    (t the j-th row of T): holding it at a value holds t'beta' at v, and the nuisance is
    theta of the system whose [X y] columns are [X'N, y' - v X't / t't] (N an orthonormal
    basis of the complement of t): sigma and the other fixed effects profiled out as in
    the fit. In the caller's own basis (T = I) that is [X without x_j, y - v x_j].
    """

    def __init__(self, profiler, j: int):
        self.profiler = profiler
        self.j = j
        system = profiler.system
        p = system.n_fixed
        direction = profiler.conditioning.basis[j]
        self.norm2 = float(direction @ direction)
        self.direction = direction
        complete = np.linalg.qr(direction[:, None], mode="complete")[0]
        tail = np.zeros((p + 1, p))
        tail[:p, : p - 1] = complete[:, 1:]
        tail[p, p - 1] = 1.0
        self.tail = tail
        # v at z: the working estimate of t'beta' plus z working standard errors (signed by s)
        self.v_hat = float(direction @ profiler.working_beta_hat)
        self.v_step = float(profiler.se_hat[j]) / profiler.conditioning.scale
        self.lower = system.design.theta_lower
        self.upper = np.full_like(self.lower, np.inf)
        self.unit = profiler.theta_unit
        self.base = profiler.base_deviance
        self.at_estimate = (profiler.theta_hat, profiler.theta_inverse_hessian)
        super().__init__(0.0, profiler.theta_hat, profiler.theta_inverse_hessian, self.base)
        self._system_at: tuple[float, PenalizedSystem, object] | None = None

    def _objective(self, z: float):
        if self._system_at is None or self._system_at[0] != z:
            tail = self.tail.copy()
            tail[:-1, -1] = -(self.v_hat + self.v_step * z) / self.norm2 * self.direction
            system = self.profiler.system.with_fixed_tail(tail)
            fun, fun_and_grad = deviance_functions(system, reml=False)
            if system.n_leading == 0 and system.rest_layout == "dense":
                fun_and_grad = (CompiledDeviance(system, reml=False) if system.size <= COMPILED_PARTS_MAX_SIZE
                                else DenseDeviance(system, reml=False))
            elif fun_and_grad is None or system.n_leading:
                # the blocked path's gradient comes with the average information: dearer
                # than central differences on so few parameters
                unit = self.unit
                fun_and_grad = lambda theta: central_gradient(fun, theta, unit)  # noqa: E731
            self._system_at = (z, system, fun_and_grad)
        return self._system_at[1], self._system_at[2]

    def _optimize(self, u: float, start: np.ndarray, inverse_hessian, known: np.ndarray | None = None) -> BoxOptimum:
        _, fun_and_grad = self._objective(u)
        return minimize_box(fun_and_grad, start, self.lower, self.upper, self.unit, inverse_hessian, known=known)

    def _theta(self, u: float, x: np.ndarray) -> np.ndarray:
        return x

    def _slope(self, z: float, theta: np.ndarray, w: float) -> float:
        """The envelope theorem at theta: d deviance / dv = n (d r^2 / dv) / r^2 with
        d r^2 / dv = -2 x'e (x = X't / t't), from the dense cross-products, times dv/dz
        (NaN on other paths)."""
        base = self.profiler.system
        if base.n_leading or base.rest_layout != "dense":
            return np.nan
        system, _ = self._objective(z)
        factor = system.factorize(theta)
        if not factor.ok:
            return np.nan
        u_spherical, beta = system.solve(factor, theta)
        b = PenalizedSystem.spherical_to_effects(u_spherical, theta, system.rest_terms)
        q = base.n_rest_random
        p = base.n_fixed
        row = self.direction @ base.rest_crossprod[q : q + p] / self.norm2
        v = self.v_hat + self.v_step * z
        working_beta = v / self.norm2 * self.direction + self.tail[:p, : p - 1] @ beta
        xe = row[-1] - row[:q] @ b - row[q:-1] @ working_beta
        return float(-2.0 * base.design.n_obs * xe / factor.pwrss) * self.v_step / (2.0 * w)

    def _zero_rows(self, theta: np.ndarray) -> list[np.ndarray]:
        out = []
        for term in self.profiler.system.design.terms:
            for r in range(term.n_columns):
                row = term.theta_index[r][term.theta_index[r] >= 0]
                if np.any(theta[row] != 0):
                    trial = theta.copy()
                    trial[row] = 0.0
                    out.append(trial)
        return out

    def _neutral(self, theta: np.ndarray) -> np.ndarray:
        diagonal = np.isfinite(self.lower)
        if diagonal.all():  # no correlations: moving an sd off 0 is the edge test's
            return theta
        return np.where(diagonal, np.maximum(theta, 0.1 * self.unit), 0.0)
