"""The analytic gradient of the profiled deviance on the dense path.

With S = Lambda~' A Lambda~ + diag(I_q, 0) for A = [Z X y]'[Z X y] and its Cholesky
factor, M = the leading (q + p) block, W = M^{-1}, (u, beta) the PLS solution and
Z'e = Z'y - Z'Z Lambda u - Z'X beta:

    d log|M| / d theta_i = 2 sum_(a,b) [W Lambda~' A_M]_(b,a)    (REML's log-determinants)
    d log|P| / d theta_i = the same with the random-effects block only (ML)
    d r^2 / d theta_i    = -2 sum_(a,b) (Z'e)_a u_b

where (a, b) runs over the positions of theta_i in Lambda (one per level). Then
REML: d = dlog|M| + (n - p) dr^2 / r^2; ML: d = dlog|P| + n dr^2 / r^2.
"""

from __future__ import annotations

from functools import cached_property
from types import SimpleNamespace

import numpy as np
from scipy.linalg import lapack

from ..kernels._jit import is_loaded
from ..kernels.dense_deviance import (
    dense_block_deviance,
    dense_scalar_deviance,
    differenced_hessian,
    minimize_deviance,
)
from ..linalg.dispatch import supports_blocked_derivatives
from ..linalg.system import PenalizedSystem
from .objective import LOG_2PI, Objective, profiled_deviance
from .optimize import same_point


def deviance_functions(system: PenalizedSystem, reml: bool):
    """(deviance, deviance-and-gradient or None) of a system, for :func:`optimize_theta`."""
    if supports_blocked_derivatives(system):
        from .blocked_gradient import BlockedDeviance

        blocked = BlockedDeviance(system, reml)
        return blocked.value, blocked
    if system.n_leading:
        return Objective(system, reml), None
    if system.size <= COMPILED_MAX_SIZE:
        compiled = CompiledDeviance(system, reml)
        return compiled.value, compiled
    return Objective(system, reml), DenseDeviance(system, reml)


COMPILE_AFTER_FITS = 100
"""Fresh fits of small dense models that a process runs on LAPACK (:class:`DenseDeviance`
with L-BFGS-B) while the compiled optimiser is in no cache, before it compiles it. The
compile costs about 6 s of numba's time (about 11 s with random slopes: the block kernel's
level-by-level elimination is more code); a small fit on LAPACK a few milliseconds more
than a compiled one. So a script or a test suite of up to this many fits never waits
for the compile, and a longer loop pays at most about a second before it (the
ski-rental rule, with the rent well below the price)."""

_uncompiled_fits = [0]  # fresh fits this process ran on LAPACK for want of the compiled kernels


def fit_deviance_functions(system: PenalizedSystem, reml: bool):
    """:func:`deviance_functions` for a fresh fit: a small dense system whose compiled
    optimiser (and Hessian) are neither in memory nor in numba's on-disk cache runs on
    LAPACK instead, for the first :data:`COMPILE_AFTER_FITS` such fits of the process
    (a process's very first fit compiles nothing it can do without). Refits, bootstraps,
    profiles and deletions (loops) call :func:`deviance_functions` and compile at once.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> type(fit_deviance_functions(m._system, True)[1]).__name__  # compiled by now: loaded
    'CompiledDeviance'
    """
    fun, with_gradient = deviance_functions(system, reml)
    if not isinstance(with_gradient, CompiledDeviance) or with_gradient.is_loaded():
        return fun, with_gradient
    if _uncompiled_fits[0] >= COMPILE_AFTER_FITS:
        return fun, with_gradient
    _uncompiled_fits[0] += 1
    return Objective(system, reml), DenseDeviance(system, reml)


def theta_positions(terms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each theta entry sits in Lambda: (row a, column b, theta index) per
    level and entry of T, over consecutive terms starting at index 0."""
    a_idx, b_idx, which = [], [], []
    offset = 0
    for term in terms:
        k = term.n_columns
        base = offset + np.arange(term.n_levels) * k
        for r in range(k):
            for c in range(r + 1):
                i = term.theta_index[r, c]
                if i >= 0:
                    a_idx.append(base + r)
                    b_idx.append(base + c)
                    which.append(np.full(term.n_levels, i))
        offset += term.n_effects
    return (np.concatenate(a_idx).astype(np.int64), np.concatenate(b_idx).astype(np.int64),
            np.concatenate(which).astype(np.int64))


COMPILED_GTOL = 1e-6
"""Projected-gradient tolerance of the compiled optimiser (deviance units per theta unit)."""

COMPILED_FTOL = 1e-14
"""Relative decrease of the deviance (made, or predicted by the quasi-Newton model)
below which the compiled optimiser stops: 1e-14 of a deviance of 10^3 is 10^-11,
about where rounding makes deviance differences meaningless."""

POLISH_STEPS = 3
"""Quasi-Newton steps past convergence when a fit asks for a polished optimum: the
stopping rules leave theta about 1e-7 from the optimum, where the deviance no longer
changes; statistics that move with theta (Satterthwaite's df) want it at the gradient's
accuracy. Refits (simulations) skip them."""

CURVATURE_STEP = 1e-4
"""Step of the differences of the analytic gradient behind :meth:`CompiledDeviance.hessian`,
:meth:`CompiledDeviance.inverse_hessian` and :func:`gradient_differences`, relative to
max(1, |theta_i|) (lme4's ``deriv12`` steps 1e-4 on the deviance itself)."""


def difference_steps(theta: np.ndarray) -> np.ndarray:
    """The steps of the differences at ``theta`` (:data:`CURVATURE_STEP`)."""
    return CURVATURE_STEP * np.maximum(1.0, np.abs(theta))


def gradient_differences(fun_and_grad, theta: np.ndarray, gradient: np.ndarray | None = None,
                         central: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """(gradient, Hessian, gradients taken) at ``theta``: ``fun_and_grad``'s analytic
    gradient and its differences, symmetrised: forward (n_theta gradients, and one at
    theta unless ``gradient`` holds it; they stay on the feasible side of a bound, and
    at a zero variance of a scalar term, where the gradient is odd, the forward
    difference is the curvature up to the step squared) or ``central`` (2 n_theta + 1,
    accurate to the step squared). NaN where a point is off the positive-definite set.

    Examples
    --------
    >>> f = lambda t: (float(t[0] ** 2 * t[1] ** 2 + t[1] ** 2), np.array([2 * t[0] * t[1] ** 2, 2 * t[0] ** 2 * t[1] + 2 * t[1]]))
    >>> grad, hess, taken = gradient_differences(f, np.array([1.0, 0.5]), central=True)
    >>> np.round(hess, 6).tolist(), taken
    ([[0.5, 2.0], [2.0, 4.0]], 5)
    """
    theta = np.asarray(theta, dtype=np.float64)
    taken = 0
    if gradient is None or central:
        value, gradient = fun_and_grad(theta)
        taken += 1
    gradient = np.asarray(gradient, dtype=np.float64)
    steps = difference_steps(theta)
    hessian = np.empty((len(theta), len(theta)))
    for i, h in enumerate(steps):
        trial = theta.copy()
        trial[i] = theta[i] + h
        v_plus, g_plus = fun_and_grad(trial)
        taken += 1
        if central:
            trial[i] = theta[i] - h
            v_minus, g_minus = fun_and_grad(trial)
            taken += 1
            step = 2.0 * h
        else:
            v_minus, g_minus, step = 0.0, gradient, h
        if not (np.isfinite(v_plus) and np.isfinite(v_minus)):
            g_plus = np.full(len(theta), np.nan)
        hessian[i] = (np.asarray(g_plus) - np.asarray(g_minus)) / step
    return gradient, 0.5 * (hessian + hessian.T), taken


COMPILED_MAX_SIZE = 200
"""Largest dense system evaluated by the compiled kernels (their loops beat LAPACK's
call overhead on small systems only)."""


def _compiled_layout(system: PenalizedSystem):
    """(general, term_of, n_diagonal, layout) of the compiled kernels' arguments
    (``layout``: None for scalar terms, so that numba compiles the scalar kernel only;
    else the tuple of :func:`~interlace.kernels.dense_block.dense_block_deviance`'s
    layout arrays): they depend on the terms only, so they are kept on the system, whose copies for new
    responses (``with_response``: every refit) share them."""
    cached = system.__dict__.get("_compiled_layout")
    if cached is not None:
        return cached
    terms = system.rest_terms
    general = not all(t.n_columns == 1 for t in terms)
    none = np.zeros(0, dtype=np.int64)
    if general:
        sizes = np.array([t.n_columns**2 for t in terms], dtype=np.int64)
        layout = (
            np.concatenate([t.theta_index.ravel() for t in terms]).astype(np.int64),
            system._block_offset.astype(np.int64),
            system._block_k.astype(np.int64),
            system._block_levels.astype(np.int64),
            np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
            *theta_positions(terms),
        )
        cached = (True, none, 0, layout)
    else:
        term_of = np.concatenate([np.full(t.n_levels, int(t.theta_index[0, 0])) for t in terms]).astype(np.int64)
        cached = (False, term_of, terms[0].n_levels, None)  # a scalar term's Z'Z is diagonal
    system.__dict__["_compiled_layout"] = cached
    return cached


class CompiledDeviance:
    """:class:`DenseDeviance` in one compiled call per theta, for small dense systems.

    Scalar terms use :func:`~interlace.kernels.dense_deviance.dense_scalar_deviance`
    (the first term's diagonal block eliminated pivot by pivot); terms with random
    slopes use :func:`~interlace.kernels.dense_block.dense_block_deviance`.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> value, grad = CompiledDeviance(m._system, reml=True)(m.theta)  # the working scale's
    >>> round(m._conditioning.deviance(value, reml=True), 3), bool(np.max(np.abs(grad)) < 1e-2)
    (1743.628, True)
    """

    def __init__(self, system: PenalizedSystem, reml: bool):
        if system.n_leading:
            raise ValueError("CompiledDeviance: expected a dense-path system (n_leading = 0)")
        self.system = system
        self.reml = reml
        self.n_obs, self.n_fixed = system.design.n_obs, system.n_fixed
        self.q = system.n_rest_random
        self.n_theta = system.design.n_theta
        self.general, self.term_of, self.n_diagonal, self.layout = _compiled_layout(system)
        self.n_evaluations = 0

    @cached_property
    def scale(self) -> np.ndarray:
        """The relative SD of each row's term (1 on the [X y] rows), which :meth:`_evaluate`
        fills per theta: made on its first call (a refit's :meth:`minimize` never needs it)."""
        return np.ones(self.system.size)

    def _minimize_arguments(self, start, lower, inverse_hessian, max_evaluations: int, polish: bool) -> tuple:
        return (self.system.rest_crossprod, self.n_theta, self.q, self.reml, self.n_obs, self.n_fixed,
                self.term_of, self.n_diagonal, self.layout, np.asarray(start, dtype=np.float64),
                np.maximum(lower, -1e300), np.ascontiguousarray(inverse_hessian, dtype=np.float64),  # -inf: -1e300
                int(max_evaluations), COMPILED_GTOL, COMPILED_FTOL, POLISH_STEPS if polish else 0)

    def _hessian_arguments(self, theta: np.ndarray, base: np.ndarray, central: bool) -> tuple:
        return (self.system.rest_crossprod, theta, difference_steps(theta), base, central, self.n_theta, self.q,
                self.reml, self.n_obs, self.n_fixed, self.term_of, self.n_diagonal, self.layout)

    _loaded: dict = {}  # noqa: RUF012 - per process: the kinds (scalar, block) found loaded

    def is_loaded(self) -> bool:
        """Whether the compiled optimiser and Hessian of this system's kind (scalar terms
        or not: their argument types) run without compiling (in memory, or loaded from
        numba's on-disk cache); once True for a kind, known without asking numba."""
        kind = self.layout is None
        if CompiledDeviance._loaded.get(kind):
            return True
        theta = np.ones(self.n_theta)
        loaded = (is_loaded(minimize_deviance, *self._minimize_arguments(theta, theta, np.zeros((0, 0)), 1, False))
                  and is_loaded(differenced_hessian, *self._hessian_arguments(theta, np.zeros(0), False)))
        CompiledDeviance._loaded[kind] = loaded
        return loaded

    def _evaluate(self, theta: np.ndarray):
        self.n_evaluations += 1
        theta = np.asarray(theta, dtype=np.float64)
        A = self.system.rest_crossprod
        if self.general:
            return dense_block_deviance(A, theta, *self.layout, self.n_theta, self.q, self.reml)
        self.scale[: self.q] = theta[self.term_of]
        return dense_scalar_deviance(A, self.scale, self.term_of, self.n_theta, self.q, self.reml,
                                     self.n_diagonal)

    def _deviance(self, logdet_random: float, logdet_fixed: float, pwrss: float) -> tuple[float, int]:
        nu = self.n_obs - self.n_fixed if self.reml else self.n_obs
        if nu <= 0:  # no residual df (p >= n): the criterion is undefined, never a division by zero
            return np.inf, nu
        value = logdet_random + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
        return (value + logdet_fixed if self.reml else value), nu

    def minimize(self, start: np.ndarray, lower: np.ndarray, max_evaluations: int,
                 inverse_hessian: np.ndarray | None = None, polish: bool = False):
        """The whole optimisation in compiled code (projected BFGS): a result with
        scipy's ``x``, ``fun``, ``success``, ``message`` and ``nfev``.

        ``inverse_hessian`` starts BFGS with known curvature (see :meth:`inverse_hessian`);
        ``polish`` ends with up to :data:`POLISH_STEPS` quasi-Newton steps past the
        stopping rules (see :func:`~interlace.kernels.dense_deviance.minimize_deviance`).
        """
        if inverse_hessian is None:
            inverse_hessian = np.zeros((0, 0))
        x, f, evaluations, status, grad, pwrss = minimize_deviance(
            *self._minimize_arguments(start, lower, inverse_hessian, max_evaluations, polish))
        self.n_evaluations += int(evaluations)
        self._minimum = (x, float(pwrss))
        messages = {1: "converged", 0: "evaluation budget used up", -1: "line search found no descent"}
        # a line search that stalls is judged by the convergence check (its gradient and Hessian)
        return SimpleNamespace(x=x, fun=float(f), success=status == 1, message=messages[int(status)],
                               nfev=int(evaluations), at=x, grad=grad)

    def last_pwrss(self, theta: np.ndarray) -> float | None:
        """The penalised residual sum of squares at ``theta`` when :meth:`minimize` last
        returned that theta (the optimiser computed it there), else None: sigma^2 at
        the optimum without a factorisation (see :func:`interlace.fitting.linear.assemble`)."""
        minimum = self.__dict__.get("_minimum")
        if minimum is None or not same_point(minimum[0], theta):
            return None
        return minimum[1]

    def hessian(self, theta: np.ndarray, gradient: np.ndarray | None = None,
                central: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        """(gradient, Hessian, evaluations) at ``theta`` in one compiled call: the analytic
        gradient and its differences (:func:`gradient_differences`): forward, n_theta
        evaluations when ``gradient`` holds the gradient at theta and one more
        otherwise, or ``central``, 2 n_theta + 1; NaN where a point is not positive
        definite."""
        theta = np.asarray(theta, dtype=np.float64)
        base = np.zeros(0) if gradient is None else np.ascontiguousarray(gradient, dtype=np.float64)
        g, H, ok = differenced_hessian(*self._hessian_arguments(theta, base, central))
        evaluations = 2 * self.n_theta + 1 if central else self.n_theta + (gradient is None)
        self.n_evaluations += evaluations
        if not ok:
            H = np.full_like(H, np.nan)
        return g, H, evaluations

    def inverse_hessian(self, theta: np.ndarray, lower: np.ndarray) -> np.ndarray | None:
        """The inverse of the deviance's Hessian at ``theta`` (central differences of the
        analytic gradient), or None when theta is on a bound or the Hessian is not
        positive definite there. Refits of the same design to new responses start BFGS
        from it: their optima lie close by, so the first steps are almost Newton's.
        """
        theta = np.asarray(theta, dtype=np.float64)
        if np.any(theta - lower < CURVATURE_STEP * 10):
            return None
        hessian = self.hessian(theta, central=True)[1]
        if not np.all(np.isfinite(hessian)):
            return None
        try:
            chol = np.linalg.cholesky(hessian)
        except np.linalg.LinAlgError:
            return None
        inv = np.linalg.inv(chol)
        return inv.T @ inv

    def value(self, theta: np.ndarray) -> float:
        ok, ld_random, ld_fixed, pwrss, _, _ = self._evaluate(theta)
        if not ok or not pwrss > 0:
            return np.inf
        return float(self._deviance(ld_random, ld_fixed, pwrss)[0])

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        ok, ld_random, ld_fixed, pwrss, dlogdet, dr2 = self._evaluate(theta)
        if not ok or not pwrss > 0:
            return np.inf, np.zeros(self.n_theta)
        value, nu = self._deviance(ld_random, ld_fixed, pwrss)
        return float(value), dlogdet + nu * dr2 / pwrss


class DenseDeviance:
    """The profiled deviance and its gradient in theta for a dense-path system.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> value, grad = DenseDeviance(m._system, reml=True)(m.theta)
    >>> bool(np.max(np.abs(grad)) < 1e-2)
    True
    """

    def __init__(self, system: PenalizedSystem, reml: bool):
        if system.n_leading:
            raise ValueError("DenseDeviance: expected a dense-path system (n_leading = 0)")
        self.system = system
        self.reml = reml
        design = system.design
        self.n_obs, self.n_fixed = design.n_obs, system.n_fixed
        self.q = system.n_rest_random
        self.a_idx, self.b_idx, self.which = theta_positions(system.rest_terms)
        self.n_theta = design.n_theta
        self.n_evaluations = 0

    def _lambda_blocks(self, theta: np.ndarray) -> list[tuple[int, int, int, np.ndarray]]:
        out, offset = [], 0
        for term in self.system.rest_terms:
            out.append((offset, term.n_levels, term.n_columns, term.relative_cov_factor(theta)))
            offset += term.n_effects
        return out

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evaluations += 1
        theta = np.asarray(theta, dtype=np.float64)
        factor = self.system.factorize(theta)
        value = profiled_deviance(factor, self.n_obs, self.n_fixed, self.reml)
        if not np.isfinite(value):
            return value, np.zeros_like(theta)
        dlogdet, dr2 = self.parts(theta, factor)
        nu = self.n_obs - self.n_fixed if self.reml else self.n_obs
        return value, dlogdet + nu * dr2 / factor.pwrss

    def parts(self, theta: np.ndarray, factor) -> tuple[np.ndarray, np.ndarray]:
        """(d log-determinant, d r^2) in theta at a factor: log|M| for REML, log|P| for ML."""
        q, p = self.q, self.n_fixed
        size = q + p
        L = factor.rest_chol
        ell = np.array(L[size, :size])
        solution = lapack.dtrtrs(L[:size, :size], ell, lower=1, trans=1)[0]
        u, beta = solution[:q], solution[q:]
        A = self.system.rest_crossprod
        # Lambda u (b), Lambda~' A_M (rows scaled by T' per level)
        b = np.empty(q)
        LtA = np.array(A[:size, :size])
        for offset, n_levels, k, T in self._lambda_blocks(theta):
            block = slice(offset, offset + n_levels * k)
            b[block] = (u[block].reshape(n_levels, k) @ T.T).ravel()
            rows = LtA[block].reshape(n_levels, k, size)
            LtA[block] = np.einsum("rc,lrj->lcj", T, rows).reshape(n_levels * k, size)
        ze = A[:q, -1] - A[:q, :q] @ b - A[:q, q:size] @ beta
        dr2 = np.zeros(self.n_theta)
        np.add.at(dr2, self.which, -2.0 * ze[self.a_idx] * u[self.b_idx])
        m = size if self.reml else q
        inv = lapack.dpotri(np.asfortranarray(L[:m, :m]), lower=1)[0]
        inv = np.tril(inv) + np.tril(inv, -1).T
        traces = np.einsum("pj,jp->p", inv[self.b_idx, :m], LtA[:m, self.a_idx])
        dlogdet = np.zeros(self.n_theta)
        np.add.at(dlogdet, self.which, 2.0 * traces)
        return dlogdet, dr2
