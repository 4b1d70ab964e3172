"""The optimiser of theta, and a record of what it did.

``optimizer="auto"`` (the default) picks by what the criterion offers:

- small dense systems: a projected BFGS in compiled code (:mod:`interlace.fitting.gradient`);
- larger dense systems: L-BFGS-B with the analytic gradient;
- blocked systems of scalar terms with a dense rest: Newton's method with the average
  information (:mod:`interlace.fitting.newton`, :mod:`interlace.fitting.blocked_gradient`), from
  moment estimates (:mod:`interlace.fitting.start`);
- everything else: scipy's COBYQA, a derivative-free trust-region method with bounds
  (a successor of the BOBYQA that lme4 uses through nloptwrap).

Every run is followed by lme4's two boundary checks, ``restart_edge`` (restart when
moving a zero variance off the boundary lowers the deviance) and ``check.boundary``
(snap near-zero values to zero when that does not raise the deviance), and by lme4's
convergence check (:class:`ConvergenceCheck`): a fit has converged when the gradient
at the optimum is small on lme4's scaled criterion and the Hessian is positive
definite there, a variance at zero having a curvature that is not negative. The
gradient is the analytic one where there is one; the Hessian its forward differences
(dense path), exact or Newton's average information (blocked path), or differences
of the deviance (no gradient: lme4's own way). On Newton's path a boundary optimum
that the check proves is final: no derivative-free rerun.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ..errors import InterlaceError
from .newton import THETA_FLOOR

OPTIMIZERS = ("auto", "newton", "cobyqa", "l-bfgs-b", "powell", "nelder-mead")
"""Names accepted by ``optimizer=``."""

GRADIENT_METHODS = ("auto-compiled", "l-bfgs-b", "newton")

NEAR_BOUNDARY = 1e-4
"""A gradient run ending with a variance parameter this close to zero (lme4's
singularity tolerance) is compared with a derivative-free run from the start: on the
dense path always, on Newton's when its convergence check fails."""

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

DERIVATIVE_FREE_RESTART = 0.1
"""Where a derivative-free search restarts a bound coordinate from when the convergence
check finds a descent off the boundary (COBYQA's first trust region, of radius 1, would
pass by a descent that starts 1e-3 off the bound)."""

MAX_EVALUATIONS = 100_000
"""Evaluation budget of one optimisation (lme4's nloptwrap ``maxeval``)."""

GRADIENT_TOL = 2e-3
"""lme4's ``check.conv.grad`` tolerance: the fit has not converged when, for some theta
component, both the gradient and the scaled gradient exceed it in absolute value."""

HESSIAN_TOL = 1e-6
"""lme4's ``check.conv.hess`` tolerance: an eigenvalue of the Hessian below -tol is
negative, one within tol of zero makes the Hessian numerically singular."""

BOUNDARY_FLATNESS = 1e-3
"""At a boundary optimum, eigenvalues of the free parameters' Hessian within this share
of its largest of zero count as zero (flat directions of a covariance factor whose
diagonal entry is zero), not as negative: a differenced Hessian is accurate to about
1e-4 of its scale."""

ZERO_PROBE = THETA_FLOOR
"""Where the blocked path's gradient is taken for a variance at zero (the floor of
Newton's method): the criterion is even in theta_t, so gradient / ZERO_PROBE is its
curvature at zero up to ZERO_PROBE^2."""

EXACT_HESSIAN_MAX_CELLS = 100_000
"""Largest rest rows x leading levels whose convergence check on the blocked path takes
the exact Hessian (:func:`interlace.inference.deviance_hessian.scalar_blocked_derivatives`,
dense products of the rest and of the coupling: a few milliseconds here). Beyond, it
costs 40% to 100% of the whole fit (and more than the fit on InstEval), and the check
takes the average information at the optimum, which Newton's method computed there
with its last gradient (the average of the observed and the expected information;
within a few per cent of the Hessian near the optimum, positive semi-definite by
construction)."""


@dataclass(frozen=True)
class ConvergenceCheck:
    """lme4's convergence check (``checkConv``) at the optimum, with the boundary handled.

    On the coordinates off their bounds: lme4's ``max|grad|``, per component the
    smaller of |gradient| and |scaled gradient| (``solve(chol(H), g)``: R^{-1} g
    with H = R'R), at most :data:`GRADIENT_TOL`; and the Hessian positive definite
    (lme4's ``checkHess`` at :data:`HESSIAN_TOL`). On a coordinate at its bound, a
    diagonal entry of a relative factor at zero (lme4 skips its checks on singular
    fits): the gradient must vanish too, |gradient| at most :data:`GRADIENT_TOL`
    (flipping the sign of the rest of its column gives the same covariance and the
    opposite gradient: a gradient of either sign has a descent), and the curvature
    must not be negative; this proves the boundary optimum. The free coordinates'
    Hessian may then be singular (see :data:`BOUNDARY_FLATNESS`), and the gradient is
    not scaled where it is.

    Attributes
    ----------
    max_grad : float
        lme4's max|grad| (NaN when the gradient is not finite).
    component : int or None
        The theta index (0-based) where it is reached.
    gradient : numpy.ndarray
        The gradient at the optimum.
    hessian : numpy.ndarray or None
        The Hessian used (on a coordinate at zero: its curvature on the diagonal).
    hessian_method : str
        ``"gradient differences"`` (forward differences of the analytic gradient),
        ``"exact"``, ``"average information"`` (Newton's, at the optimum, on the
        largest blocked systems), ``"deviance differences"`` (no analytic gradient)
        or ``"previous fit"`` (a refit, at an interior optimum: the fit's Hessian).
    hessian_status : str
        ``"positive definite"``, ``"k negative eigenvalues"``, ``"numerically
        singular"``, ``"not finite"``, ``"no free parameters"`` or, on the boundary,
        ``"positive semi-definite (flat along the boundary)"``; lme4's
        near-unidentifiability notes follow after a semicolon (not failures).
    on_boundary : tuple of int
        Theta indices at their bound.
    messages : tuple of str
        The failures, in lme4's words; empty when the check passed.
    """

    max_grad: float
    component: int | None
    gradient: np.ndarray
    hessian: np.ndarray | None
    hessian_method: str
    hessian_status: str
    on_boundary: tuple[int, ...]
    messages: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Whether the optimum passed every check."""
        return not self.messages


def check_convergence(theta: np.ndarray, lower: np.ndarray, gradient: np.ndarray, hessian: np.ndarray | None,
                      hessian_method: str, scaling: np.ndarray | None = None) -> ConvergenceCheck:
    """lme4's convergence check at ``theta`` (see :class:`ConvergenceCheck`).

    ``scaling``, when given, is R^{-1} for the Cholesky factor R'R of a ``hessian``
    known to be positive definite (a refit's: the fit's), which skips its checks.

    Examples
    --------
    >>> check = check_convergence(np.array([1.0, 0.0]), np.zeros(2), np.array([1e-4, 0.0]),
    ...                           np.array([[4.0, 0.0], [0.0, 3.0]]), "exact")
    >>> check.passed, check.hessian_status, check.on_boundary
    (True, 'positive definite', (1,))
    >>> check_convergence(np.array([1.0]), np.zeros(1), np.array([0.5]), np.array([[-2.0]]), "exact").messages
    ('Model failed to converge with max|grad| = 0.5 (tol = 0.002, component 1)', 'Model failed to converge: degenerate Hessian with 1 negative eigenvalues')
    """
    theta = np.asarray(theta, dtype=np.float64)
    gradient = np.asarray(gradient, dtype=np.float64)
    active = theta <= lower  # never where the bound is -inf
    any_active = np.count_nonzero(active) > 0
    if scaling is not None and not any_active and all(map(math.isfinite, gradient.tolist())):
        size = np.minimum(np.abs(scaling @ gradient), np.abs(gradient))
        component = int(size.argmax())
        max_grad = float(size[component])
        messages = () if max_grad <= GRADIENT_TOL else (
            f"Model failed to converge with max|grad| = {max_grad:g} (tol = {GRADIENT_TOL:g}, component {component + 1})",)
        return ConvergenceCheck(max_grad, component, gradient, hessian, hessian_method, "positive definite", (),
                                messages)
    on_boundary = tuple(int(i) for i in np.flatnonzero(active)) if any_active else ()
    if not np.isfinite(gradient).all():
        return ConvergenceCheck(np.nan, None, gradient, hessian, hessian_method, "not finite", on_boundary,
                                ("Gradient contains NAs",))
    messages: list[str] = []
    hessian_messages: list[str] = []
    free = np.flatnonzero(~active) if any_active else slice(None)
    g_free = gradient[free]
    size = np.zeros(len(theta))  # lme4's min(|scaled gradient|, |gradient|) per component
    if any_active:
        # a diagonal entry at zero: flipping the sign of the rest of its column gives the
        # same covariance and flips this gradient, so either sign has a descent
        size[active] = np.abs(gradient[active])
    block = None
    if hessian is not None:
        block = hessian[np.ix_(free, free)] if any_active else hessian
    upper = None
    if g_free.size == 0:
        status = "no free parameters"
    elif block is None or not np.isfinite(block).all():
        status = "not finite"
        hessian_messages.append("Problem with Hessian check (infinite or missing values?)")
    else:
        eigenvalues = np.linalg.eigvalsh(block)
        # on the boundary a random-slope term whose diagonal entry is zero leaves the rest
        # of its column free to rotate: flat directions there are the parametrisation's
        noise = max(HESSIAN_TOL, BOUNDARY_FLATNESS * float(np.max(np.abs(eigenvalues)))) if any_active else HESSIAN_TOL
        negative = int(np.sum(eigenvalues < -noise))
        if negative:
            status = f"{negative} negative eigenvalue{'s' if negative > 1 else ''}"
            hessian_messages.append(f"Model failed to converge: degenerate Hessian with {negative} negative eigenvalues")
        elif eigenvalues[0] < noise and any_active:
            status = "positive semi-definite (flat along the boundary)"
        elif eigenvalues[0] < HESSIAN_TOL:
            status = "numerically singular"
            hessian_messages.append("Hessian is numerically singular: parameters are not uniquely determined")
        else:
            try:
                upper = np.linalg.cholesky(block).T
                status = "positive definite"
            except np.linalg.LinAlgError:
                status = "numerically singular"
                hessian_messages.append("Hessian is numerically singular: parameters are not uniquely determined")
            largest = float(eigenvalues[-1])
            if largest * HESSIAN_TOL > 1:
                status += "; nearly unidentifiable: very large eigenvalue"
            if float(eigenvalues[0]) / largest < HESSIAN_TOL:
                status += "; nearly unidentifiable: large eigenvalue ratio"
    if upper is not None:  # lme4's solve(chol(H), g): R^{-1} g with H = R'R
        size[free] = np.minimum(np.abs(np.linalg.solve(upper, g_free)), np.abs(g_free))
    else:
        size[free] = np.abs(g_free)
    if any_active:
        diagonal = np.diag(hessian) if hessian is not None else np.full(len(theta), np.nan)
        flat = active & (np.abs(gradient) <= GRADIENT_TOL)  # a variance at zero: its curvature decides
        if not np.isfinite(diagonal[flat]).all():
            hessian_messages.append("Problem with Hessian check (infinite or missing values?)")
        falling = np.flatnonzero(flat & (diagonal < -_curvature_noise(hessian)))
        if falling.size:
            messages.append("Model failed to converge: the deviance falls off the boundary in theta component"
                            f"{'s' if falling.size > 1 else ''} {', '.join(str(i + 1) for i in falling)}")
    component = int(np.argmax(size))
    max_grad = float(size[component])
    if max_grad > GRADIENT_TOL:
        messages.insert(0, f"Model failed to converge with max|grad| = {max_grad:g} (tol = {GRADIENT_TOL:g}, "
                           f"component {component + 1})")
    return ConvergenceCheck(max_grad, component, gradient, hessian, hessian_method, status, on_boundary,
                            tuple(messages + list(dict.fromkeys(hessian_messages))))


def _curvature_noise(hessian: np.ndarray | None) -> float:
    """Curvatures at a zero variance below minus this are negative (:data:`BOUNDARY_FLATNESS`
    of the Hessian's scale, at least :data:`HESSIAN_TOL`)."""
    if hessian is None or not np.isfinite(hessian).all():
        return HESSIAN_TOL
    return max(HESSIAN_TOL, BOUNDARY_FLATNESS * float(np.max(np.abs(np.diag(hessian)), initial=0.0)))


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
        Whether the optimum passed the convergence check (``check``) within the
        evaluation budget.
    message : str
        The optimiser's own message; when the check failed, the failures in lme4's
        words after it.
    check : ConvergenceCheck or None
        The convergence check at ``theta``: lme4's max|grad|, the Hessian's status.
    optimizer_code : int
        0 when the optimiser's own stopping rule was met, 1 otherwise (a stalled line
        search, the evaluation budget): lme4's "convergence code".
    optimizer_message : str
        The optimiser's own message alone.
    """

    optimizer: str
    theta: np.ndarray
    objective: float
    n_evaluations: int
    converged: bool
    message: str
    check: ConvergenceCheck | None = None
    optimizer_code: int = 0
    optimizer_message: str = ""


def _has_average_information(fun_and_grad) -> bool:
    """Whether Newton's method can run on ``fun_and_grad``: it gives the average
    information (:class:`interlace.fitting.blocked_gradient.BlockedDeviance`)."""
    return bool(getattr(fun_and_grad, "has_average_information", False))


def same_point(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two points of theta are equal entry by entry, as ``np.array_equal``
    (NaN equal to nothing), compared as Python floats: a few times faster than numpy on
    the few entries of theta, on every refit's path.

    Examples
    --------
    >>> same_point(np.array([1.0, 0.0]), np.array([1.0, -0.0])), same_point(np.array([np.nan]), np.array([np.nan]))
    (True, False)
    """
    return a.shape == b.shape and a.tolist() == b.tolist()


def _run(name: str, fun: Callable, start: np.ndarray, lower: np.ndarray, max_evaluations: int,
         fun_and_grad: Callable | None = None, inverse_hessian: np.ndarray | None = None, polish: bool = False,
         tolerances: dict | None = None):
    # No warning is silenced here: the criterion returns inf off the positive-definite
    # set without a RuntimeWarning, and the optimisers handle inf as "too far".
    if name == "auto-compiled":
        return fun_and_grad.minimize(start, lower, max_evaluations, inverse_hessian, polish)
    if name == "newton":
        from .newton import minimize_average_information

        return minimize_average_information(fun_and_grad, start, max_evaluations)
    from scipy.optimize import Bounds, minimize  # not needed by the compiled optimiser

    bounds = Bounds(lower, np.full_like(lower, np.inf))
    if name == "l-bfgs-b" and fun_and_grad is not None:
        # a run that stops on its line search is judged by the convergence check
        return minimize(fun_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"ftol": 1e-14, "gtol": 1e-8, "maxfun": max_evaluations,
                                 "maxiter": max_evaluations, **(tolerances or {})})
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


def _deviance_differences(fun: Callable, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_deviance_differences_unguarded` without floating-point warnings: a stencil
    point where the criterion is infinite (off the positive-definite set, or a GLMM's
    means out of range) gives NaN entries, which the check reports as such."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _deviance_differences_unguarded(fun, theta)


def _deviance_differences_unguarded(fun: Callable, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(gradient, Hessian, evaluations) of ``fun`` at ``theta`` by differences of its
    values, as lme4's ``deriv12`` (step 1e-4, here relative to max(1, |theta_i|)):
    central for the gradient and the diagonal, forward for the off-diagonal entries
    (1 + 2 m + m (m - 1) / 2 evaluations). The steps may cross a bound: the
    criterion is smooth through theta_i = 0."""
    from .gradient import difference_steps

    theta = np.asarray(theta, dtype=np.float64)
    m = len(theta)
    h = difference_steps(theta)
    f0 = fun(theta)
    plus, minus = np.empty(m), np.empty(m)
    for i in range(m):
        trial = theta.copy()
        trial[i] += h[i]
        plus[i] = fun(trial)
        trial[i] = theta[i] - h[i]
        minus[i] = fun(trial)
    gradient = (plus - minus) / (2.0 * h)
    hessian = np.diag((plus - 2.0 * f0 + minus) / h**2)
    for i in range(m):
        for j in range(i):
            trial = theta.copy()
            trial[i] += h[i]
            trial[j] += h[j]
            hessian[i, j] = hessian[j, i] = (fun(trial) - plus[i] - plus[j] + f0) / (h[i] * h[j])
    return gradient, hessian, 1 + 2 * m + m * (m - 1) // 2


def _blocked_derivatives(objective, theta: np.ndarray, lower: np.ndarray, active: np.ndarray,
                         last) -> tuple[np.ndarray, np.ndarray, str, int]:
    """(gradient, Hessian, method, evaluations) at ``theta`` on the blocked path of
    scalar terms (:class:`~interlace.fitting.blocked_gradient.BlockedDeviance`).

    The gradient is the analytic one, taken with a variance at zero at
    :data:`ZERO_PROBE` (0/0 at zero itself): Newton's method ends with it there, so
    ``last`` (its final gradient) usually serves; the curvature at zero is the
    gradient there over the probe, and the gradient itself is 0 (the criterion is
    even in theta_t). The Hessian is exact on systems up to :data:`EXACT_HESSIAN_MAX_CELLS`,
    the average information at the optimum beyond."""
    free = ~active
    evaluations = 0
    reusable = (last is not None and getattr(last, "grad", None) is not None
                and np.array_equal(last.at[free], theta[free])
                and np.all(last.at[active] > lower[active])
                and np.all(last.at[active] - lower[active] <= BOUNDARY_TOL))
    if reusable:
        at, grad, info = last.at, np.array(last.grad), np.array(last.information)
    else:
        at = theta.copy()
        at[active] = lower[active] + ZERO_PROBE
        _, grad, info = objective.derivatives(at)
        grad, info = np.array(grad), np.array(info)
        evaluations = 1
    curvature = grad[active] / (at[active] - lower[active])
    grad[active] = 0.0
    near = free & np.isfinite(lower) & (theta - lower < BOUNDARY_TOL)  # tiny theta: the exact formula cancels
    system = objective.system
    # (an ML criterion whose rest has no random effects has an empty log-determinant block there)
    exact_applies = objective.reml or system.n_rest_random > 0
    if system.size * system.lead_term.n_levels <= EXACT_HESSIAN_MAX_CELLS and exact_applies and not near.any():
        from ..inference.deviance_hessian import scalar_blocked_derivatives

        factor = objective.factor(theta)
        evaluations += 1
        nu = objective.nu
        exact = None
        if factor.ok and factor.pwrss > 0:
            exact = scalar_blocked_derivatives(system, theta, float(np.sqrt(factor.pwrss / nu)), objective.reml,
                                               factor)
        if exact is not None:
            h = exact.hessian
            k = len(theta)
            profiled = h[:k, :k] - np.outer(h[:k, k], h[k, :k]) / h[k, k]  # sigma profiled out
            return grad, profiled, "exact", evaluations
    hessian = info
    hessian[active, :] = 0.0
    hessian[:, active] = 0.0
    hessian[active, active] = curvature
    return grad, hessian, "average information", evaluations


def _derivatives_at(theta: np.ndarray, lower: np.ndarray, fun: Callable, fun_and_grad, last,
                    inverse_hessian: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, str, int]:
    """(gradient, Hessian, method, evaluations) at the optimum for the convergence check:
    the analytic gradient where there is one, with the cheapest Hessian that is exact
    or a difference of it (see :class:`ConvergenceCheck`)."""
    active = theta <= lower
    if fun_and_grad is None:
        grad, hessian, evaluations = _deviance_differences(fun, theta)
        return grad, hessian, "deviance differences", evaluations
    if _has_average_information(fun_and_grad):
        return _blocked_derivatives(fun_and_grad, theta, lower, active, last)
    at_last = last is not None and getattr(last, "grad", None) is not None and same_point(last.at, theta)
    gradient = np.asarray(last.grad, dtype=np.float64) if at_last else None
    if inverse_hessian is not None and at_last and not np.count_nonzero(active):
        # a refit at an interior optimum: the fit's Hessian scales the gradient
        return gradient, _previous_fit(inverse_hessian)[0], "previous fit", 0
    if hasattr(fun_and_grad, "hessian"):
        grad, hessian, evaluations = fun_and_grad.hessian(theta, gradient)
        return grad, hessian, "gradient differences", evaluations
    from .gradient import gradient_differences

    grad, hessian, evaluations = gradient_differences(fun_and_grad, theta, gradient)
    return grad, hessian, "gradient differences", evaluations


_PREVIOUS_FIT: tuple = (None, None, None)
"""(inverse Hessian, Hessian, R^{-1} with H = R'R) of the last refit's start: refits of
one fit share the array, so this is computed once (one entry, replaced as a whole)."""


def _previous_fit(inverse_hessian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian whose inverse starts a refit (the fit's, at its optimum: positive
    definite, it came from a Cholesky factor) and R^{-1}, which scales a gradient as lme4."""
    global _PREVIOUS_FIT
    cached = _PREVIOUS_FIT
    if cached[0] is not inverse_hessian:
        hessian = np.linalg.inv(inverse_hessian)
        hessian = 0.5 * (hessian + hessian.T)
        cached = (inverse_hessian, hessian, np.linalg.inv(np.linalg.cholesky(hessian).T))
        _PREVIOUS_FIT = cached
    return cached[1], cached[2]


def _system_of(fun: Callable, fun_and_grad) -> object | None:
    """The penalised system behind the criterion (its terms' layout of theta), if it says."""
    for criterion in (fun_and_grad, fun):
        owner = getattr(criterion, "__self__", criterion)  # a bound ``value`` method
        system = getattr(owner, "system", None)
        if system is not None:
            return system
    return None


def _column_flipped(system, theta: np.ndarray, diagonal: list[int]) -> np.ndarray:
    """``theta`` with the entries below each of the ``diagonal`` entries (at zero) in
    their column of a relative factor negated: the same covariance, the opposite
    gradient in those diagonal entries."""
    theta = theta.copy()
    if system is None or not diagonal:
        return theta
    for term in system.design.terms:
        index = term.theta_index
        for c in range(index.shape[1]):
            if index[c, c] in diagonal:
                below = index[c + 1 :, c]
                below = below[below >= 0]
                theta[below] = -theta[below]
    return theta


def optimize_theta(fun: Callable[[np.ndarray], float], start: np.ndarray, lower: np.ndarray,
                   optimizer: str = "auto", max_evaluations: int = MAX_EVALUATIONS,
                   fun_and_grad: Callable | None = None,
                   inverse_hessian: np.ndarray | None = None, polish: bool = False,
                   tolerances: dict | None = None, proven_boundary: bool = False) -> OptimizationRecord:
    """Minimise ``fun`` over theta >= lower from ``start``, with lme4's boundary checks
    and its convergence check.

    ``max_evaluations`` bounds one optimiser run (lme4's ``maxfun``/``maxeval``);
    ``fun_and_grad``, when given, returns (value, gradient) for L-BFGS-B;
    ``inverse_hessian`` (the compiled optimiser only) starts its first run with known
    curvature, as refits of one design do (their convergence check then scales the
    gradient by it at an interior optimum); ``polish`` (the compiled optimiser only)
    ends it at the gradient's accuracy rather than the deviance's, as ``fit`` asks;
    ``tolerances``: L-BFGS-B's ``ftol``/``gtol`` instead of the defaults (for a criterion
    that is itself the end of an iteration, as a GLMM's Laplace deviance);
    ``proven_boundary``: every bound coordinate is a scalar term's standard deviation
    (one face of the boundary), so that a gradient run's boundary optimum that the check
    proves is final, as on Newton's path (no restart, no derivative-free comparison).

    After the run, lme4's ``restart_edge`` (derivative-free runs: a bound coordinate
    whose deviance falls just off the bound restarts there) and ``check.boundary``
    (values within :data:`BOUNDARY_TOL` of a bound snap to it when the deviance is
    not higher); then the convergence check (:class:`ConvergenceCheck`). A bound
    coordinate whose curvature the check finds negative restarts off the bound. A
    gradient run on the dense path ending on the boundary restarts with the bound
    coordinates at lme4's start, and near the boundary is compared with a
    derivative-free run from the start (faces of local minima, random slopes); on
    Newton's path (scalar terms) a boundary optimum the check proves is final.

    Examples
    --------
    >>> rec = optimize_theta(lambda t: float((t[0] - 2.0) ** 2), np.array([1.0]), np.array([0.0]))
    >>> round(float(rec.theta[0]), 4), rec.converged, rec.check.hessian_status
    (2.0, True, 'positive definite')
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

    def run(method: str, origin: np.ndarray, inverse_hessian: np.ndarray | None = None) -> SimpleNamespace:
        """One optimiser run, lme4's ``check.boundary`` and the convergence check."""
        nonlocal count
        before = count
        result = _run(method, counted, origin, lower, max_evaluations,
                      counted_grad if method != "cobyqa" else None, inverse_hessian, polish, tolerances)
        if method in ("auto-compiled", "newton"):
            count += result.nfev
        exhausted = count - before >= max_evaluations
        theta, value = np.maximum(result.x, lower), float(result.fun)
        last = result if method in ("auto-compiled", "newton") else None
        if method == "l-bfgs-b" and fun_and_grad is not None:
            last = SimpleNamespace(at=np.asarray(result.x, dtype=np.float64), grad=result.jac)
        # the gap is inf where the bound is -inf
        near = [i for i, gap in enumerate((theta - lower).tolist()) if 0.0 < gap < BOUNDARY_TOL]
        for i in near:
            trial = theta.copy()
            trial[i] = lower[i]
            trial_value = counted(trial)
            if trial_value <= value:
                theta, value = trial, trial_value
        grad, hessian, hessian_method, extra = _derivatives_at(theta, lower, fun, fun_and_grad, last, inverse_hessian)
        count += extra
        scaling = _previous_fit(inverse_hessian)[1] if hessian_method == "previous fit" else None
        check = check_convergence(theta, lower, grad, hessian, hessian_method, scaling)
        return SimpleNamespace(theta=theta, value=value, success=bool(result.success), exhausted=exhausted,
                               message=str(result.message), check=check)

    start = np.maximum(np.asarray(start, dtype=np.float64), lower)
    best = run(name, start, inverse_hessian if name == "auto-compiled" else None)
    if not math.isfinite(best.value):
        lme4_start = np.where(np.isfinite(lower), 1.0, 0.0)  # 1 on the factors' diagonals, 0 elsewhere
        if not same_point(start, lme4_start):
            # a start where the criterion is not finite (moment estimates of a term confounded
            # with the fixed effects can be absurd): lme4's start instead
            again = run(name, lme4_start)
            if math.isfinite(again.value):
                best, start = again, lme4_start
    dense = name in GRADIENT_METHODS and name != "newton"
    if proven_boundary and best.check.passed:
        dense = False  # a proven boundary optimum of scalar terms: one face, nothing to compare
    if name not in GRADIENT_METHODS:
        # lme4's restart_edge: a zero variance whose deviance falls when moved off the bound
        on_bound = np.flatnonzero(np.isfinite(lower) & (best.theta == lower))
        falling = []
        for i in on_bound:
            trial = best.theta.copy()
            trial[i] = lower[i] + RESTART_STEP
            if counted(trial) < best.value:
                falling.append(i)
        if falling:
            restart = best.theta.copy()
            restart[falling] = lower[falling] + RESTART_FROM
            again = run(name, restart)
            if again.value < best.value:
                best = again
    elif dense and best.check.on_boundary:
        # a random-slope term at zero has more than one face of local minima: a
        # gradient method can stop on one that a search from lme4's start passes by
        on_bound = np.array(best.check.on_boundary)
        restart = best.theta.copy()
        restart[on_bound] = np.maximum(start[on_bound], lower[on_bound] + 0.1)
        again = run(name, restart)
        if again.value < best.value:
            best = again
    edge = (best.theta > lower) & (best.theta - lower < NEAR_BOUNDARY) if not best.check.passed else None
    if not best.check.passed and (best.check.on_boundary or edge.any()):
        # a bound coordinate with a descent: the deviance falls off the boundary (the
        # curvature), or the gradient does not vanish (off the boundary, after flipping
        # the rest of the column where it points out of the region); and coordinates
        # left just off the bound where the check fails (a saddle the search stalled at)
        hessian, gradient = best.check.hessian, best.check.gradient
        falling = [i for i in best.check.on_boundary
                   if abs(gradient[i]) > GRADIENT_TOL
                   or (hessian is not None and hessian[i, i] < -_curvature_noise(hessian))]
        falling += [int(i) for i in np.flatnonzero(edge)]
        if falling:
            restart = _column_flipped(_system_of(fun, fun_and_grad), best.theta,
                                      [i for i in falling if gradient[i] > GRADIENT_TOL])
            # a gradient method moves off from just off the bound; a derivative-free one,
            # whose first steps are long, from where its trust region sees the descent
            restart[falling] = lower[falling] + (RESTART_FROM if name in GRADIENT_METHODS else DERIVATIVE_FREE_RESTART)
            again = run(name, restart)
            if again.value < best.value:
                best = again
    if (name in GRADIENT_METHODS and (dense or not best.check.passed)
            and any(gap < NEAR_BOUNDARY for gap in (best.theta - lower).tolist())):
        # near the boundary, compare with the derivative-free search from the start:
        # on the dense path (small systems) always, as faces of local minima abound
        # there; on Newton's (scalar terms, large systems) only when the check did
        # not prove the boundary optimum
        again = run("cobyqa", start)
        if again.value < best.value:
            best = again
    converged = best.check.passed and not best.exhausted and math.isfinite(best.value)
    message = best.message
    if not best.check.passed:
        message = "; ".join(([] if best.success else [best.message]) + list(best.check.messages))
    return OptimizationRecord(name, best.theta, best.value, count, converged, message, best.check,
                              0 if best.success else 1, best.message)
