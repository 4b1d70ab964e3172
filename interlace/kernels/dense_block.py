"""The profiled deviance and its gradient for a small dense system whose terms may have
random slopes (width k > 1), the first term's block-diagonal block eliminated level by
level.

Inputs are those of :func:`dense_block_deviance`: the cross-products
A = [Z X y]'[Z X y] (the [X y] columns last) and the layout of Lambda over the terms.
The first term's Z'Z is block-diagonal (each row belongs to one of its levels), so
the factor of S = Lambda' A Lambda + diag(I_q, 0) is

    L = [D 0; B C],   D = diag(D_l) (k x k per level l of the first term),
                      B = S_r1 D^{-T},  C C' = S_rr - B B',

which costs O(levels k^3 + r^2 (levels k) + r^3) for the r rows after the first term,
not the O(size^3) of a dense Cholesky (sleepstudy's (Days | Subject): 36 of 39 rows
are the first term's). The log-determinant's gradient needs only the entries of
W Lambda~' A (W the inverse of the leading block of S) within each level's block,
which the partitioned inverse L^{-1} = [D^{-1} 0; F C^{-1}], F = -C^{-1} B D^{-1},
gives without forming W. Nothing divides by Lambda: a singular T (a zero variance,
a correlation of +-1) is evaluated as any other.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .blockdiag import lower_inverse, small_cholesky


@kernel
def rest_factor_parts(C, q, nd, r, x):
    """What the dense kernels read off the rest's lower factor ``C`` (r x r: the random
    effects after the ``nd`` eliminated first, then X, then y last; q random effects in
    all): its random rows' and X rows' log-determinants and the pwrss, the squared last
    diagonal entry; and x[nd:] solving L' x = the factor's last row (the rest's u and
    beta), written into ``x``."""
    logdet_random = 0.0
    for i in range(q - nd):
        logdet_random += 2.0 * np.log(C[i, i])
    logdet_fixed = 0.0
    for i in range(q - nd, r - 1):
        logdet_fixed += 2.0 * np.log(C[i, i])
    for i in range(r - 2, -1, -1):
        t = C[r - 1, i]
        for j in range(i + 1, r - 1):
            t -= C[j, i] * x[nd + j]
        x[nd + i] = t / C[i, i]
    return logdet_random, logdet_fixed, C[r - 1, r - 1] * C[r - 1, r - 1]


@kernel
def _scale_columns(P, block_offset, block_k, block_levels, factors, factor_start):
    """P <- P Lambda in place (every term's columns; the [X y] columns unscaled)."""
    for i in range(P.shape[0]):
        for t in range(block_offset.shape[0]):
            k = block_k[t]
            f0 = factor_start[t]
            for l in range(block_levels[t]):
                base = block_offset[t] + l * k
                for c in range(k):  # column c reads columns r >= c, not yet overwritten
                    s = 0.0
                    for r in range(c, k):
                        s += P[i, base + r] * factors[f0 + r * k + c]
                    P[i, base + c] = s


@kernel
def _scale_rows(P, row0, n_columns, first_term, block_offset, block_k, block_levels, factors, factor_start):
    """P[:, :n_columns] <- Lambda' P in place on the rows of terms ``first_term`` on,
    row i of P being row ``row0 + i`` of the system."""
    for t in range(first_term, block_offset.shape[0]):
        k = block_k[t]
        f0 = factor_start[t]
        for l in range(block_levels[t]):
            base = block_offset[t] + l * k - row0
            for c in range(k):  # row c reads rows r >= c, not yet overwritten
                for j in range(n_columns):
                    s = 0.0
                    for r in range(c, k):
                        s += factors[f0 + r * k + c] * P[base + r, j]
                    P[base + c, j] = s


@kernel
def _factor_leading_levels(A, factors, f0, k, n_levels, D, D_inverse):
    """Per level l of the first term (width k, factor T at ``factors[f0:]``): rows
    l k to l k + k of D (levels k x k) the lower Cholesky factor of T' A_ll T + I, those
    of D_inverse its inverse; returns (ok, sum of 2 log diag(D))."""
    logdet = 0.0
    G = np.empty((k, k))
    H = np.empty((k, k))
    for l in range(n_levels):
        base = l * k
        for r in range(k):  # H = A_ll T
            for c in range(k):
                s = 0.0
                for r2 in range(c, k):
                    s += A[base + r, base + r2] * factors[f0 + r2 * k + c]
                H[r, c] = s
        for c in range(k):  # G = T' H + I
            for c2 in range(k):
                s = 0.0
                for r in range(c, k):
                    s += factors[f0 + r * k + c] * H[r, c2]
                G[c, c2] = s
            G[c, c] += 1.0
        level = D[base : base + k]
        if not small_cholesky(G, level):
            return False, np.inf
        lower_inverse(level, D_inverse[base : base + k], k)
        for c in range(k):
            logdet += 2.0 * np.log(level[c, c])
    return True, logdet


@kernel
def dense_block_deviance(A, theta, factor_theta, block_offset, block_k, block_levels, factor_start,
                         pos_a, pos_b, pos_which, n_theta, q, reml):
    """(ok, log|L_theta|^2, log|R_X|^2, r^2, d log-determinant / d theta, d r^2 / d theta)
    of a small dense system with terms of any width k (random slopes).

    Lambda is block-diagonal: term t covers indices ``block_offset[t] + l*k + c``
    (the first term from 0), its k x k factor T is row-major at ``factor_start[t]`` in
    the flat factors, entry ``i`` of which is ``theta[factor_theta[i]]`` (0 where -1).
    Position ``p`` of a parameter in Lambda is (``pos_a[p]``, ``pos_b[p]``), in one
    level's block, for theta index ``pos_which[p]``. The gradient is
    :class:`interlace.fitting.gradient.DenseDeviance`'s:
    d log-det_i = 2 sum_p [W Lambda~' A]_(b_p, a_p), d r^2_i = -2 sum_p (Z'e)_(a_p) u_(b_p),
    W the inverse of the leading block of S (the (q + p) one for REML, else the q one).
    ``ok`` is False when S is not positive definite.

    Examples
    --------
    >>> import interlace
    >>> from interlace.fitting.gradient import CompiledDeviance
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> compiled = CompiledDeviance(m._system, reml=True)
    >>> ok, ld_random, ld_fixed, pwrss, dlogdet, dr2 = dense_block_deviance(
    ...     m._system.rest_crossprod, m.theta, *compiled.layout, 3, compiled.q, True)
    >>> bool(ok), bool(np.isclose(pwrss, m._system.factorize(m.theta).pwrss))
    (True, True)
    """
    size = A.shape[0]
    m = size - 1
    dr2 = np.zeros(n_theta)
    dlogdet = np.zeros(n_theta)
    factors = np.zeros(factor_theta.shape[0])
    for i in range(factor_theta.shape[0]):
        if factor_theta[i] >= 0:
            factors[i] = theta[factor_theta[i]]
    k0 = block_k[0]
    n0 = block_levels[0]
    f0 = factor_start[0]
    nd = n0 * k0  # the first term's rows
    r = size - nd  # the rest: later terms, X, y
    D = np.zeros((nd, k0))
    D_inverse = np.zeros((nd, k0))
    ok, logdet_random = _factor_leading_levels(A, factors, f0, k0, n0, D, D_inverse)
    if not ok:
        return False, np.inf, np.inf, np.inf, dlogdet, dr2
    # P = S's rows after the first term: (Lambda' A Lambda)[nd:, :], + I on the random diagonal
    P = np.empty((r, size))
    for i in range(r):
        for j in range(size):
            P[i, j] = A[nd + i, j]
    _scale_columns(P, block_offset, block_k, block_levels, factors, factor_start)
    _scale_rows(P, nd, size, 1, block_offset, block_k, block_levels, factors, factor_start)
    for i in range(q - nd):
        P[i, nd + i] += 1.0
    B = np.empty((r, nd))  # B D_l' = P's leading columns, level by level
    for i in range(r):
        for l in range(n0):
            base = l * k0
            for c in range(k0):
                s = P[i, base + c]
                for c2 in range(c):
                    s -= B[i, base + c2] * D[base + c, c2]
                B[i, base + c] = s / D[base + c, c]
    C = np.zeros((r, r))
    for i in range(r):
        for c in range(i + 1):
            s = P[i, nd + c]
            for j in range(nd):
                s -= B[i, j] * B[c, j]
            C[i, c] = s
    if not small_cholesky(C, C):
        return False, np.inf, np.inf, np.inf, dlogdet, dr2
    # x = (u, beta) solves L_M' x = the last row of L: the rest first, then level by level
    x = np.empty(m)
    rest_logdet, logdet_fixed, pwrss = rest_factor_parts(C, q, nd, r, x)
    logdet_random += rest_logdet
    rhs = np.empty(k0)
    for l in range(n0):
        base = l * k0
        for c in range(k0):
            s = B[r - 1, base + c]
            for j in range(r - 1):
                s -= B[j, base + c] * x[nd + j]
            rhs[c] = s
        for c in range(k0 - 1, -1, -1):
            s = rhs[c]
            for c2 in range(c + 1, k0):
                s -= D[base + c2, c] * x[base + c2]
            x[base + c] = s / D[base + c, c]
    b = np.zeros(q)  # Lambda u, block by block
    for t in range(block_offset.shape[0]):
        k = block_k[t]
        ft = factor_start[t]
        for l in range(block_levels[t]):
            base = block_offset[t] + l * k
            for rr in range(k):
                s = 0.0
                for c in range(rr + 1):
                    s += factors[ft + rr * k + c] * x[base + c]
                b[base + rr] = s
    ze = np.empty(q)  # Z'y - Z'Z b - Z'X beta (the first term's Z'Z is block-diagonal)
    for i in range(q):
        s = A[m, i]
        start = nd
        if i < nd:
            base = (i // k0) * k0
            for j in range(base, base + k0):
                s -= A[i, j] * b[j]
        else:
            start = 0
        for j in range(start, q):
            s -= A[i, j] * b[j]
        for j in range(q, m):
            s -= A[i, j] * x[j]
        ze[i] = s
    for p in range(pos_a.shape[0]):
        dr2[pos_which[p]] += -2.0 * ze[pos_a[p]] * x[pos_b[p]]
    # W = L_mm^{-T} L_mm^{-1}, L_mm^{-1} = [D^{-1} 0; F C~^{-1}] (C~ = C's leading rr rows),
    # and M = Lambda~' A on rows < mm, columns < q: [W M]_(b, a) = sum_s L^{-1}[s, b] (L^{-1} M)[s, a]
    mm = m if reml else q
    rr = mm - nd
    M = np.zeros((mm, q))
    for i in range(nd):  # the first term's rows: their own block and the later terms' columns
        base = (i // k0) * k0
        for j in range(base, base + k0):
            M[i, j] = A[i, j]
        for j in range(nd, q):
            M[i, j] = A[i, j]
    for i in range(nd, mm):
        for j in range(q):
            M[i, j] = A[i, j]
    _scale_rows(M, 0, q, 0, block_offset, block_k, block_levels, factors, factor_start)
    C_inverse = np.empty((rr, rr))
    lower_inverse(C, C_inverse, rr)
    E = np.empty((rr, nd))  # B~ D^{-1}, level by level
    for s_ in range(rr):
        for l in range(n0):
            base = l * k0
            for c in range(k0):
                s = 0.0
                for c2 in range(c, k0):
                    s += B[s_, base + c2] * D_inverse[base + c2, c]
                E[s_, base + c] = s
    F = np.zeros((rr, nd))  # -C~^{-1} B~ D^{-1}
    for s_ in range(rr):
        for t in range(s_ + 1):
            c = C_inverse[s_, t]
            for j in range(nd):
                F[s_, j] -= c * E[t, j]
    Yr = np.zeros((rr, q))  # the rest rows of L^{-1} M
    for s_ in range(rr):
        for a in range(q):
            s = 0.0
            if a < nd:
                base = (a // k0) * k0
                for j in range(base, base + k0):
                    s += F[s_, j] * M[j, a]
            else:
                for j in range(nd):
                    s += F[s_, j] * M[j, a]
            for t in range(s_ + 1):
                s += C_inverse[s_, t] * M[nd + t, a]
            Yr[s_, a] = s
    for p in range(pos_a.shape[0]):
        a = pos_a[p]
        bb = pos_b[p]
        trace = 0.0
        if bb < nd:
            l = bb // k0
            base = l * k0
            cb = bb - base
            for c in range(cb, k0):  # (D_l^{-1} M_ll)[c, a], times D_l^{-1}[c, cb]
                y = 0.0
                for c2 in range(c + 1):
                    y += D_inverse[base + c, c2] * M[base + c2, a]
                trace += D_inverse[base + c, cb] * y
            for s_ in range(rr):
                trace += F[s_, bb] * Yr[s_, a]
        else:
            for s_ in range(bb - nd, rr):
                trace += C_inverse[s_, bb - nd] * Yr[s_, a]
        dlogdet[pos_which[p]] += 2.0 * trace
    return True, logdet_random, logdet_fixed, pwrss, dlogdet, dr2
