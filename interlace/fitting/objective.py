"""theta to the profiled deviance: lme4's REML criterion or -2 log-likelihood.

With r^2 = pwrss, nu = n (ML) or n - p (REML):

    ML:   ldL2 + n (1 + log(2 pi r^2 / n))
    REML: ldL2 + ldRX2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

and, at fixed sigma (for Satterthwaite's df, as lmerTest):

    D(theta, sigma) = ldL2 [+ ldRX2] + r^2 / sigma^2 + nu log(2 pi sigma^2).
"""

from __future__ import annotations

import threading

import numpy as np

from ..linalg.system import Factor, PenalizedSystem

LOG_2PI = float(np.log(2.0 * np.pi))


def residual_dof(n_obs: int, n_fixed: int, reml: bool) -> int:
    """n for ML, n - p for REML."""
    return n_obs - n_fixed if reml else n_obs


def profiled_deviance(factor: Factor, n_obs: int, n_fixed: int, reml: bool) -> float:
    """The objective lme4 minimises, read off a factor (inf when not positive definite)."""
    if not factor.ok:
        return np.inf
    nu = residual_dof(n_obs, n_fixed, reml)
    pwrss = factor.pwrss
    if not pwrss > 0:
        return np.inf
    value = factor.logdet_random + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
    if reml:
        value += factor.logdet_fixed
    return float(value)


def deviance_at_sigma(factor: Factor, sigma: float, n_obs: int, n_fixed: int, reml: bool) -> float:
    """The deviance at a given residual SD, profiled over beta only (lmerTest's devfun)."""
    if not factor.ok or sigma <= 0:
        return np.inf
    nu = residual_dof(n_obs, n_fixed, reml)
    value = factor.logdet_random + factor.pwrss / sigma**2 + nu * (LOG_2PI + 2.0 * np.log(sigma))
    if reml:
        value += factor.logdet_fixed
    return float(value)


class LastFactor:
    """Factorisations at theta, counted, the last one kept: asked again at the same
    theta (the optimum, when the result is assembled) it is not computed twice.

    Needs ``self.system``; sets ``n_evaluations`` and the per-thread state in
    :meth:`_reset_factors`. :meth:`_factorize` makes a new factor (overridden to
    write into a buffer, :meth:`_buffer`).

    Thread-safe: the last factor and the buffers are per thread,
    so one criterion may be evaluated from several threads at once (a thread pool of
    refits sharing one system); a factor a thread got stays valid until that thread's
    next evaluation.
    """

    def _reset_factors(self) -> None:
        self.n_evaluations = 0
        self._threads = threading.local()

    def __getstate__(self) -> dict:  # the per-thread state stays behind (a new process starts afresh)
        return {k: v for k, v in self.__dict__.items() if k != "_threads"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._threads = threading.local()

    def _buffer(self, name: str, shape: tuple[int, ...], order: str = "C") -> np.ndarray:
        """This thread's buffer ``name`` of that shape (float64), made on first use."""
        state = self._threads
        buffer = getattr(state, name, None)
        if buffer is None or buffer.shape != shape:
            buffer = np.empty(shape, order=order)
            setattr(state, name, buffer)
        return buffer

    def _factorize(self, theta: np.ndarray) -> Factor:
        return self.system.factorize(theta)

    def last_factor(self, theta: np.ndarray) -> Factor | None:
        """The factor of this thread's last evaluation when it was at ``theta``, else None."""
        key = np.asarray(theta, dtype=np.float64).tobytes()
        last = getattr(self._threads, "last", None)
        return last[1] if last is not None and last[0] == key else None

    def factor(self, theta: np.ndarray, **options) -> Factor:
        """The factor at ``theta``, the last one computed when it was at the same theta;
        ``options`` go to :meth:`_factorize` when a new one is made."""
        theta = np.asarray(theta, dtype=np.float64)
        cached = self.last_factor(theta)
        if cached is not None:
            return cached
        self.n_evaluations += 1
        self._threads.last = None  # a buffered factor is about to change
        factor = self._factorize(theta, **options)
        self._threads.last = (theta.tobytes(), factor)
        return factor


class Objective(LastFactor):
    """The profiled deviance as a function of theta, counting evaluations.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> round(m.llf * -2, 4)
    319.6543
    """

    def __init__(self, system: PenalizedSystem, reml: bool):
        self.system = system
        self.reml = reml
        self.n_obs = system.design.n_obs
        self.n_fixed = system.n_fixed
        self._reset_factors()

    def __call__(self, theta: np.ndarray) -> float:
        return profiled_deviance(self.factor(theta), self.n_obs, self.n_fixed, self.reml)
