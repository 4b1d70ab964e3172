"""The profiled deviance and its gradient for a small dense system of scalar terms,
in one compiled call (the refit and bootstrap hot loop).

Inputs: the cross-products A = [Z X y]'[Z X y] (size x size, the [X y] columns
last), ``scale`` (the relative SD of each random effect's term, 1 for the [X y]
columns), ``term_of`` (the theta index of each random effect), the number of
random effects q, ``reml`` (True: the log-determinant of the whole (q + p) block,
else of the random-effects block). Returns (ok, log|L_theta|^2, log|R_X|^2, r^2,
d log-determinant / d theta, d r^2 / d theta); ok is False when the system is not
positive definite.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .blockdiag import lower_inverse, small_cholesky

LOG_2PI = float(np.log(2.0 * np.pi))

FIRST_STEP = 0.1
"""Length (largest coordinate) of the compiled optimiser's first step in theta; a
long first step can jump past the optimum to a zero variance."""


@kernel
def dense_scalar_deviance(A, scale, term_of, n_theta, q, reml):
    size = A.shape[0]
    S = np.empty((size, size))
    for i in range(size):
        for j in range(i + 1):
            S[i, j] = A[i, j] * scale[i] * scale[j]
        if i < q:
            S[i, i] += 1.0
    dr2 = np.zeros(n_theta)
    dlogdet = np.zeros(n_theta)
    if not small_cholesky(S, S):  # in place: reads the lower triangle, zeroes the upper
        return False, np.inf, np.inf, np.inf, dlogdet, dr2
    m = size - 1
    logdet_random = 0.0
    for i in range(q):
        logdet_random += 2.0 * np.log(S[i, i])
    logdet_fixed = 0.0
    for i in range(q, m):
        logdet_fixed += 2.0 * np.log(S[i, i])
    pwrss = S[m, m] * S[m, m]
    # solution of L_M' x = l (l = last row of L)
    x = np.empty(m)
    for i in range(m - 1, -1, -1):
        t = S[m, i]
        for k in range(i + 1, m):
            t -= S[k, i] * x[k]
        x[i] = t / S[i, i]
    # Z'e = Z'y - Z'Z b - Z'X beta, b = scale * u
    for i in range(q):
        ze = A[m, i]
        for j in range(q):
            ze -= A[i, j] * scale[j] * x[j]
        for j in range(q, m):
            ze -= A[i, j] * x[j]
        dr2[term_of[i]] += -2.0 * ze * x[i]
    # inverse of the leading block (M for REML, P for ML) through L^{-1}
    mm = m if reml else q
    Linv = np.empty((mm, mm))
    lower_inverse(S, Linv, mm)
    # trace_i = [W Lambda~' A]_ii, W = (leading block)^{-1}. As Lambda~' A Lambda~ =
    # block - diag(I, 0): trace_i = (1 - W_ii) / scale_i, and 0 where scale_i = 0
    # (W's row i is then e_i). Only diag(W) = column norms of L^{-1} is needed.
    for i in range(q):
        if scale[i] == 0.0:
            continue
        w = 0.0
        for r in range(i, mm):
            w += Linv[r, i] * Linv[r, i]
        dlogdet[term_of[i]] += 2.0 * (1.0 - w) / scale[i]
    return True, logdet_random, logdet_fixed, pwrss, dlogdet, dr2


@kernel
def _profiled(A, scale, term_of, theta, n_theta, q, reml, n_obs, n_fixed):
    """(deviance, gradient, ok) at theta: the kernel above plus lme4's profiling."""
    for i in range(q):
        scale[i] = theta[term_of[i]]
    ok, ld_random, ld_fixed, pwrss, dlogdet, dr2 = dense_scalar_deviance(A, scale, term_of, n_theta, q, reml)
    if not ok or not pwrss > 0.0:
        return np.inf, np.zeros(n_theta), False
    nu = n_obs - n_fixed if reml else n_obs
    value = ld_random + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
    if reml:
        value += ld_fixed
    return value, dlogdet + nu * dr2 / pwrss, True


@kernel
def minimize_scalar_deviance(A, term_of, n_theta, q, reml, n_obs, n_fixed, start, lower,
                             max_evaluations, gtol, ftol):
    """Projected BFGS with an Armijo line search on theta >= lower, all compiled.

    Returns (theta, deviance, evaluations, status): status 1 converged (projected
    gradient below ``gtol`` or relative decrease below ``ftol``), 0 out of
    evaluations, -1 no descent possible (at a point where the line search fails).
    """
    size = A.shape[0]
    scale = np.ones(size)
    x = np.maximum(start, lower)
    f, g, ok = _profiled(A, scale, term_of, x, n_theta, q, reml, n_obs, n_fixed)
    evaluations = 1
    if not ok:
        return x, f, evaluations, -1
    H = np.eye(n_theta)
    first = True
    for _ in range(10 * max_evaluations):
        free = np.ones(n_theta, dtype=np.bool_)
        pg = g.copy()
        for i in range(n_theta):
            if x[i] <= lower[i] and g[i] > 0.0:
                free[i] = False
                pg[i] = 0.0
        if np.max(np.abs(pg)) < gtol:
            return x, f, evaluations, 1
        d = np.zeros(n_theta)
        for i in range(n_theta):
            if free[i]:
                s = 0.0
                for j in range(n_theta):
                    if free[j]:
                        s -= H[i, j] * g[j]
                d[i] = s
        slope = 0.0
        for i in range(n_theta):
            slope += g[i] * d[i]
        if slope >= 0.0:
            H = np.eye(n_theta)
            d = -pg
            slope = -np.sum(pg * pg)
        step = 1.0
        if first:  # no curvature yet: a first step of FIRST_STEP in theta (MixedModels.jl's initial step)
            step = FIRST_STEP / max(FIRST_STEP, np.max(np.abs(d)))
        accepted = False
        for _ls in range(40):
            trial = np.maximum(x + step * d, lower)
            f_new, g_new, ok = _profiled(A, scale, term_of, trial, n_theta, q, reml, n_obs, n_fixed)
            evaluations += 1
            decrease = 0.0
            for i in range(n_theta):
                decrease += g[i] * (trial[i] - x[i])
            if ok and f_new <= f + 1e-4 * decrease:
                accepted = True
                break
            if evaluations >= max_evaluations:
                return x, f, evaluations, 0
            step *= 0.5
        if not accepted:
            return x, f, evaluations, -1
        s_vec = trial - x
        y_vec = g_new - g
        sy = np.sum(s_vec * y_vec)
        small_change = abs(f - f_new) <= ftol * (1.0 + abs(f))
        x, f, g = trial, f_new, g_new
        if small_change and np.max(np.abs(s_vec)) < 1e-7 * (1.0 + np.max(np.abs(x))):
            return x, f, evaluations, 1
        if sy > 1e-14:
            if first:  # scale the initial inverse Hessian (Shanno and Phua)
                H = H * (sy / np.sum(y_vec * y_vec))
                first = False
            Hy = H @ y_vec
            yHy = np.sum(y_vec * Hy)
            rho = 1.0 / sy
            H = H + (rho * rho * yHy + rho) * np.outer(s_vec, s_vec) - rho * (np.outer(Hy, s_vec) + np.outer(s_vec, Hy))
        if evaluations >= max_evaluations:
            return x, f, evaluations, 0
    return x, f, evaluations, 0
