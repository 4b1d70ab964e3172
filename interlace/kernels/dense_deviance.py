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

LOG_2PI = float(np.log(2.0 * np.pi))


@kernel
def _cholesky_in_place(S):
    """Lower Cholesky factor of S in place (upper part left as is); False if not PD."""
    n = S.shape[0]
    for j in range(n):
        s = S[j, j]
        for k in range(j):
            s -= S[j, k] * S[j, k]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        S[j, j] = d
        for i in range(j + 1, n):
            t = S[i, j]
            for k in range(j):
                t -= S[i, k] * S[j, k]
            S[i, j] = t / d
    return True


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
    if not _cholesky_in_place(S):
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
    Linv = np.zeros((mm, mm))
    for j in range(mm):
        Linv[j, j] = 1.0 / S[j, j]
        for i in range(j + 1, mm):
            t = 0.0
            for k in range(j, i):
                t -= S[i, k] * Linv[k, j]
            Linv[i, j] = t / S[i, i]
    for i in range(q):
        # W[i, j] = sum_r Linv[r, i] Linv[r, j];  trace_i = sum_j W[i, j] scale_j A[j, i]
        t = 0.0
        for j in range(mm):
            w = 0.0
            for r in range(max(i, j), mm):
                w += Linv[r, i] * Linv[r, j]
            t += w * scale[j] * A[j, i]
        dlogdet[term_of[i]] += 2.0 * t
    return True, logdet_random, logdet_fixed, pwrss, dlogdet, dr2
