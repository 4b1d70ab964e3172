"""The profiled deviance and its gradient for a small dense system of scalar terms,
in one compiled call (the refit and bootstrap hot loop).

Inputs: the cross-products A = [Z X y]'[Z X y] (size x size, the [X y] columns
last), ``scale`` (the relative SD of each random effect's term, 1 for the [X y]
columns), ``term_of`` (the theta index of each random effect), the number of
random effects q, ``reml`` (True: the log-determinant of the whole (q + p) block,
else of the random-effects block), ``n_diagonal`` (the leading rows whose block of A
is diagonal: the levels of the first scalar term, whose Z'Z is diagonal; they are
eliminated one pivot at a time, so a 30 x 20 crossed design costs a 22 x 22 dense
Cholesky, not a 52 x 52 one). Returns (ok, log|L_theta|^2, log|R_X|^2, r^2,
d log-determinant / d theta, d r^2 / d theta); ok is False when the system is not
positive definite.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

LOG_2PI = float(np.log(2.0 * np.pi))

FIRST_STEP = 0.1
"""Length (largest coordinate) of the compiled optimiser's first step in theta; a
long first step can jump past the optimum to a zero variance."""


@kernel
def dense_scalar_deviance(A, scale, term_of, n_theta, q, reml, n_diagonal):
    size = A.shape[0]
    nd = n_diagonal
    r = size - nd
    dr2 = np.zeros(n_theta)
    dlogdet = np.zeros(n_theta)
    # L = [D 0; B C]: D the diagonal pivots of the leading block, B = S_r1 D^{-1},
    # C the Cholesky factor of S_rr - B B' (row-major loops throughout)
    d = np.empty(nd)
    for j in range(nd):
        v = A[j, j] * scale[j] * scale[j] + 1.0
        if not v > 0.0:
            return False, np.inf, np.inf, np.inf, dlogdet, dr2
        d[j] = np.sqrt(v)
    B = np.empty((r, nd))
    for i in range(r):
        si = scale[nd + i]
        for j in range(nd):
            B[i, j] = A[nd + i, j] * si * scale[j] / d[j]
    C = np.zeros((r, r))
    for i in range(r):
        si = scale[nd + i]
        for c in range(i + 1):
            s = A[nd + i, nd + c] * si * scale[nd + c]
            for j in range(nd):
                s -= B[i, j] * B[c, j]
            C[i, c] = s
        if nd + i < q:
            C[i, i] += 1.0
    for j in range(r):
        s = C[j, j]
        for t in range(j):
            s -= C[j, t] * C[j, t]
        if not s > 0.0:
            return False, np.inf, np.inf, np.inf, dlogdet, dr2
        diag = np.sqrt(s)
        C[j, j] = diag
        for i in range(j + 1, r):
            s = C[i, j]
            for t in range(j):
                s -= C[i, t] * C[j, t]
            C[i, j] = s / diag
    m = size - 1
    logdet_random = 0.0
    for j in range(nd):
        logdet_random += 2.0 * np.log(d[j])
    for i in range(q - nd):
        logdet_random += 2.0 * np.log(C[i, i])
    logdet_fixed = 0.0
    for i in range(q - nd, r - 1):
        logdet_fixed += 2.0 * np.log(C[i, i])
    pwrss = C[r - 1, r - 1] * C[r - 1, r - 1]
    # solution x of L_M' x = l (l = last row of L): the rest first, then the pivots
    x = np.empty(m)
    for i in range(r - 2, -1, -1):
        t = C[r - 1, i]
        for k in range(i + 1, r - 1):
            t -= C[k, i] * x[nd + k]
        x[nd + i] = t / C[i, i]
    acc = np.zeros(nd)
    for k in range(r - 1):
        xk = x[nd + k]
        for j in range(nd):
            acc[j] += B[k, j] * xk
    for j in range(nd):
        x[j] = (B[r - 1, j] - acc[j]) / d[j]
    # Z'e = Z'y - Z'Z b - Z'X beta, b = scale * u (the leading block of A is diagonal)
    for i in range(q):
        ze = A[m, i]
        if i < nd:
            ze -= A[i, i] * scale[i] * x[i]
        for j in range(nd if i < nd else 0, q):
            ze -= A[i, j] * scale[j] * x[j]
        for j in range(q, m):
            ze -= A[i, j] * x[j]
        dr2[term_of[i]] += -2.0 * ze * x[i]
    # diag(W), W = (leading block)^{-1} (M for REML, P for ML): the column norms of
    # L^{-1} = [D^{-1} 0; -C^{-1} B D^{-1}  C^{-1}], from Y = C^{-1} [B I] by rows
    rr = (m if reml else q) - nd
    Y = np.zeros((rr, nd + rr))
    for i in range(rr):
        for j in range(nd):
            Y[i, j] = B[i, j]
        Y[i, nd + i] = 1.0
        for t in range(i):
            c = C[i, t]
            for j in range(nd + t + 1):
                Y[i, j] -= c * Y[t, j]
        for j in range(nd + i + 1):
            Y[i, j] /= C[i, i]
    w = np.zeros(q)
    for j in range(nd):
        w[j] = 1.0
    for i in range(rr):
        for j in range(min(nd + i + 1, q)):
            w[j] += Y[i, j] * Y[i, j]
    for j in range(nd):
        w[j] /= d[j] * d[j]
    # trace_i = [W Lambda~' A]_ii. As Lambda~' A Lambda~ = block - diag(I, 0):
    # trace_i = (1 - W_ii) / scale_i, and 0 where scale_i = 0 (W's row i is then e_i)
    for i in range(q):
        if scale[i] != 0.0:
            dlogdet[term_of[i]] += 2.0 * (1.0 - w[i]) / scale[i]
    return True, logdet_random, logdet_fixed, pwrss, dlogdet, dr2


@kernel
def _profiled(A, scale, term_of, theta, n_theta, q, reml, n_obs, n_fixed, n_diagonal):
    """(deviance, gradient, ok) at theta: the kernel above plus lme4's profiling."""
    for i in range(q):
        scale[i] = theta[term_of[i]]
    ok, ld_random, ld_fixed, pwrss, dlogdet, dr2 = dense_scalar_deviance(A, scale, term_of, n_theta, q, reml,
                                                                         n_diagonal)
    if not ok or not pwrss > 0.0:
        return np.inf, np.zeros(n_theta), False
    nu = n_obs - n_fixed if reml else n_obs
    value = ld_random + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
    if reml:
        value += ld_fixed
    return value, dlogdet + nu * dr2 / pwrss, True


@kernel
def minimize_scalar_deviance(A, term_of, n_theta, q, reml, n_obs, n_fixed, n_diagonal, start, lower,
                             inverse_hessian, max_evaluations, gtol, ftol):
    """Projected BFGS with an Armijo line search on theta >= lower, all compiled.

    ``inverse_hessian`` (n_theta x n_theta) starts the BFGS approximation, e.g. from
    the curvature at a previous fit of the same design; an empty (0 x 0) array
    starts from the identity with a first step of ``FIRST_STEP``.

    Returns (theta, deviance, evaluations, status): status 1 converged (projected
    gradient below ``gtol``, or relative decrease, or the decrease predicted by the
    quasi-Newton model -g'Hg/2 once it has curvature, below ``ftol``), 0 out of
    evaluations, -1 no descent possible (at a point where the line search fails).
    """
    size = A.shape[0]
    scale = np.ones(size)
    x = np.maximum(start, lower)
    f, g, ok = _profiled(A, scale, term_of, x, n_theta, q, reml, n_obs, n_fixed, n_diagonal)
    evaluations = 1
    if not ok:
        return x, f, evaluations, -1
    first = inverse_hessian.shape[0] != n_theta
    H = np.eye(n_theta) if first else inverse_hessian.copy()
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
        elif not first and -0.5 * slope <= ftol * (1.0 + abs(f)):
            return x, f, evaluations, 1  # the quasi-Newton decrement: nothing left to gain
        step = 1.0
        if first:  # no curvature yet: a first step of FIRST_STEP in theta (MixedModels.jl's initial step)
            step = FIRST_STEP / max(FIRST_STEP, np.max(np.abs(d)))
        accepted = False
        for _ls in range(40):
            trial = np.maximum(x + step * d, lower)
            f_new, g_new, ok = _profiled(A, scale, term_of, trial, n_theta, q, reml, n_obs, n_fixed, n_diagonal)
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
