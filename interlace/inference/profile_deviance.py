"""The ML deviance D(theta, sigma) of a profile's variance parameters, with its
gradient, on the chart of :mod:`.profile_scale` (lme4's ``devfun2``).

    D = log|L_theta|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2),
    dD/dtheta = d log|L|^2 / d theta + (d r^2 / d theta) / sigma^2,

and the chart's Jacobian d theta / d phi by the chain rule. The pieces in theta come
from one compiled call on small dense systems (the kernels behind
:class:`interlace.fitting.gradient.CompiledDeviance`), from LAPACK and
:meth:`interlace.fitting.gradient.DenseDeviance.parts` on larger ones, and the gradient from
central differences on the blocked path.
"""

from __future__ import annotations

import numpy as np

from ..fitting.gradient import DenseDeviance, theta_positions
from ..fitting.objective import LOG_2PI, deviance_at_sigma
from ..kernels.dense_deviance import dense_block_deviance, dense_scalar_deviance
from ..linalg.system import PenalizedSystem
from .profile_scale import ProfileScale

DIFFERENCE_STEP = 1e-4
"""Step (scaled units) of the central differences of a Hessian; gradients without an
analytic form use 1e-3 of it."""


def central_gradient(fun, x: np.ndarray, unit: np.ndarray) -> tuple[float, np.ndarray]:
    """(fun(x), its gradient by central differences of step 1e-3 DIFFERENCE_STEP unit)."""
    value = fun(x)
    grad = np.empty_like(x)
    for i in range(x.size):
        h = np.zeros_like(x)
        h[i] = 1e-3 * DIFFERENCE_STEP * unit[i]
        grad[i] = (fun(x + h) - fun(x - h)) / (2.0 * h[i])
    return value, grad


COMPILED_PARTS_MAX_SIZE = 100
"""Largest dense system (q + p + 1 rows) whose deviance parts come from one compiled
call, the kernels behind :class:`interlace.fitting.gradient.CompiledDeviance`; larger ones are
factored by LAPACK for :meth:`interlace.fitting.gradient.DenseDeviance.parts` (measured:
sleepstudy's 39 rows 30 us against 90 us, Exam's 134 rows 0.77 ms against 0.51 ms)."""


class DevianceParts:
    """(ok, log|L_theta|^2, r^2, d log|L_theta|^2 / d theta, d r^2 / d theta) of a
    dense-path system at theta, the pieces of the ML deviance at any sigma.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> ok, logdet, pwrss, dlogdet, dr2 = DevianceParts(m._system)(m.theta)
    >>> factor = m._system.factorize(m.theta)
    >>> ok, bool(np.isclose(logdet, factor.logdet_random)), bool(np.isclose(pwrss, factor.pwrss))
    (True, True, True)
    """

    def __init__(self, system: PenalizedSystem):
        if system.n_leading or system.rest_layout != "dense":
            raise ValueError("DevianceParts: expected a dense-path system (n_leading = 0)")
        self.system = system
        self.n_theta = system.design.n_theta
        self.q = system.n_rest_random
        terms = system.rest_terms
        self.compiled = system.size <= COMPILED_PARTS_MAX_SIZE
        self.general = not all(t.n_columns == 1 for t in terms)
        if not self.compiled:
            self._dense = DenseDeviance(system, reml=False)
        elif self.general:  # the layout of dense_block_deviance (as CompiledDeviance's)
            sizes = np.array([t.n_columns**2 for t in terms], dtype=np.int64)
            effects = np.array([t.n_effects for t in terms], dtype=np.int64)
            self._layout = (
                np.concatenate([t.theta_index.ravel() for t in terms]).astype(np.int64),
                np.concatenate([[0], np.cumsum(effects)[:-1]]).astype(np.int64),
                np.array([t.n_columns for t in terms], dtype=np.int64),
                np.array([t.n_levels for t in terms], dtype=np.int64),
                np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
                *theta_positions(terms),
            )
        else:  # scalar terms: the first term's Z'Z is diagonal
            self._term_of = np.concatenate([np.full(t.n_levels, int(t.theta_index[0, 0]))
                                            for t in terms]).astype(np.int64)
            self._scale = np.ones(system.size)

    def __call__(self, theta: np.ndarray):
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        A = self.system.rest_crossprod
        if not self.compiled:
            factor = self.system.factorize(theta)
            if not factor.ok:
                return False, np.inf, np.inf, None, None
            return (True, factor.logdet_random, factor.pwrss, *self._dense.parts(theta, factor))
        if self.general:
            ok, logdet, _, pwrss, dlogdet, dr2 = dense_block_deviance(A, theta, *self._layout, self.n_theta, self.q,
                                                                      False)
        else:
            self._scale[: self.q] = theta[self._term_of]
            ok, logdet, _, pwrss, dlogdet, dr2 = dense_scalar_deviance(
                A, self._scale, self._term_of, self.n_theta, self.q, False, self.system.rest_terms[0].n_levels)
        return bool(ok), logdet, pwrss, dlogdet, dr2


class VarianceDeviance:
    """The ML deviance D(theta, sigma) = ldL2 + r^2 / sigma^2 + n log(2 pi sigma^2)
    (lme4's ``devfun2``) at a point phi of :class:`~.profile_scale.ProfileScale`,
    with its gradient in phi: the analytic one in theta
    (:meth:`interlace.fitting.gradient.DenseDeviance.parts`) by the chain rule on the dense
    path, central differences on the others.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"), method="ML")
    >>> dev = VarianceDeviance(m._system, ProfileScale(m._system.design))  # the working scale
    >>> c = m._conditioning
    >>> value, grad = dev(dev.scale.from_theta(m.theta, float(np.sqrt(m.scale)) / c.unit))
    >>> round(c.deviance(value, reml=False), 4) == round(-2 * m.llf, 4), bool(np.max(np.abs(grad)) < 1e-3)
    (True, True)
    """

    def __init__(self, system: PenalizedSystem, scale: ProfileScale):
        self.system = system
        self.scale = scale
        self.n_obs = system.design.n_obs
        dense = system.n_leading == 0 and system.rest_layout == "dense"
        self._parts = DevianceParts(system) if dense else None

    def value(self, phi: np.ndarray) -> float:
        if not phi[-1] > 0:
            return np.inf
        factor = self.system.factorize(self.scale.to_theta(phi))
        return deviance_at_sigma(factor, float(phi[-1]), self.n_obs, 0, reml=False)

    def __call__(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        phi = np.asarray(phi, dtype=np.float64)
        if not phi[-1] > 0:
            return np.inf, np.zeros_like(phi)
        if self._parts is None:
            return central_gradient(self.value, phi, np.maximum(np.abs(phi), 1e-2))
        theta, jac = self.scale.jacobian(phi)
        sigma = float(phi[-1])
        ok, logdet, pwrss, dlogdet, dr2 = self._parts(theta)
        if not ok or not pwrss > 0:
            return np.inf, np.zeros_like(phi)
        value = logdet + pwrss / sigma**2 + self.n_obs * (LOG_2PI + 2.0 * np.log(sigma))
        grad = jac.T @ (dlogdet + dr2 / sigma**2)
        grad[-1] += -2.0 * pwrss / sigma**3 + 2.0 * self.n_obs / sigma
        return float(value), grad
