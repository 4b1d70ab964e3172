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
positive definite. Every pivot is tested before it divides (the kernel is compiled with
numpy's error model, :func:`~interlace.kernels._jit.reassociating_kernel`).
"""

from __future__ import annotations

import numpy as np
from numba.core import types
from numba.extending import overload

from ._jit import kernel, reassociating_kernel
from .dense_block import dense_block_deviance, rest_factor_parts

LOG_2PI = float(np.log(2.0 * np.pi))

FIRST_STEP = 0.1
"""Length (largest coordinate) of the compiled optimiser's first step in theta; a
long first step can jump past the optimum to a zero variance."""


@reassociating_kernel
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
    # solution x of L_M' x = l (l = last row of L): the rest first, then the pivots
    x = np.empty(m)
    rest_logdet, logdet_fixed, pwrss = rest_factor_parts(C, q, nd, r, x)
    logdet_random += rest_logdet
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
def _profile(ok, ld_random, ld_fixed, pwrss, dlogdet, dr2, n_theta, n_obs, n_fixed, reml):
    """(deviance, gradient, ok, pwrss) from a deviance kernel's results: lme4's profiling
    (pwrss passed through: sigma^2 at an optimum follows from it)."""
    if not ok or not pwrss > 0.0:
        return np.inf, np.zeros(n_theta), False, np.inf
    nu = n_obs - n_fixed if reml else n_obs
    value = ld_random + nu * (1.0 + LOG_2PI + np.log(pwrss / nu))
    if reml:
        value += ld_fixed
    for i in range(n_theta):
        dlogdet[i] = dlogdet[i] + nu * dr2[i] / pwrss
    return value, dlogdet, True, pwrss


def profiled_deviance(A, theta, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout):
    """(deviance, gradient, ok, pwrss) at theta: the deviance kernel of the model's terms plus
    lme4's profiling. ``layout`` is None for scalar terms (:func:`dense_scalar_deviance`,
    with ``scale``, ``term_of`` and ``n_diagonal``), else the tuple of
    :func:`dense_block_deviance`'s layout arrays (``factor_theta`` to ``pos_which``).

    In compiled code the kernel is chosen when compiling (the overload below, on
    ``layout``'s type), so a model compiles the one it uses, and the choice is no
    function of its own (each compiled function in a chain is optimised again by LLVM
    in every function that calls it).
    """
    if layout is None:
        for i in range(q):
            scale[i] = theta[term_of[i]]
        out = dense_scalar_deviance(A, scale, term_of, n_theta, q, reml, n_diagonal)
    else:
        out = dense_block_deviance(A, theta, *layout, n_theta, q, reml)
    return _profile(*out, n_theta, n_obs, n_fixed, reml)


@overload(profiled_deviance, jit_options={"nogil": True})
def _profiled_deviance_compiled(A, theta, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout):
    if isinstance(layout, (types.NoneType, types.Omitted)):
        def scalar(A, theta, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout):
            for i in range(q):
                scale[i] = theta[term_of[i]]
            ok, ld_random, ld_fixed, pwrss, dlogdet, dr2 = dense_scalar_deviance(A, scale, term_of, n_theta, q,
                                                                                 reml, n_diagonal)
            return _profile(ok, ld_random, ld_fixed, pwrss, dlogdet, dr2, n_theta, n_obs, n_fixed, reml)
        return scalar

    def block(A, theta, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout):
        ok, ld_random, ld_fixed, pwrss, dlogdet, dr2 = dense_block_deviance(
            A, theta, layout[0], layout[1], layout[2], layout[3], layout[4], layout[5], layout[6], layout[7],
            n_theta, q, reml)
        return _profile(ok, ld_random, ld_fixed, pwrss, dlogdet, dr2, n_theta, n_obs, n_fixed, reml)
    return block


# The optimiser below is written with loops over small vectors, not numpy array
# expressions, np.outer or matmul: each of those costs numba a compile of its own
# implementation (seconds in all) in the first process, for no speed on n_theta <= 10.


@kernel
def _largest_magnitude(v):
    """max |v_i| (0 for an empty v)."""
    out = 0.0
    for i in range(v.shape[0]):
        a = abs(v[i])
        if a > out:
            out = a
    return out


@kernel
def _dot(a, b):
    """sum_i a_i b_i, in order."""
    out = 0.0
    for i in range(a.shape[0]):
        out += a[i] * b[i]
    return out


@kernel
def _projected(point, lower):
    """max(point, lower) elementwise, as a new array (NaN kept)."""
    out = np.empty(point.shape[0])
    for i in range(point.shape[0]):
        out[i] = lower[i] if point[i] < lower[i] else point[i]
    return out


@kernel
def _set_identity(H):
    """H = I (square, in place)."""
    n = H.shape[0]
    for i in range(n):
        for j in range(n):
            H[i, j] = 0.0
        H[i, i] = 1.0


@kernel
def _bfgs_update(H, s_vec, y_vec, sy):
    """The BFGS update of the inverse Hessian H (in place) by the step s and gradient
    change y, sy = s'y > 0: H + (rho^2 y'Hy + rho) s s' - rho (Hy s' + s (Hy)')."""
    n = H.shape[0]
    Hy = np.empty(n)
    for i in range(n):
        t = 0.0
        for j in range(n):
            t += H[i, j] * y_vec[j]
        Hy[i] = t
    yHy = _dot(y_vec, Hy)
    rho = 1.0 / sy
    c = rho * rho * yHy + rho
    for i in range(n):
        for j in range(n):
            H[i, j] = H[i, j] + c * (s_vec[i] * s_vec[j]) - rho * (Hy[i] * s_vec[j] + s_vec[i] * Hy[j])


@kernel
def minimize_deviance(A, n_theta, q, reml, n_obs, n_fixed, term_of, n_diagonal, layout, start, lower,
                      inverse_hessian, max_evaluations, gtol, ftol, polish_steps):
    """Projected BFGS with an Armijo line search on theta >= lower, all compiled, on
    the deviance of :func:`profiled_deviance` (whose arguments pass through).

    ``inverse_hessian`` (n_theta x n_theta) starts the BFGS approximation, e.g. from
    the curvature at a previous fit of the same design; an empty (0 x 0) array
    starts from the identity with a first step of ``FIRST_STEP``.

    Returns (theta, deviance, evaluations, status, gradient, pwrss): status 1 converged
    (projected gradient below ``gtol``, or relative decrease, or the decrease predicted
    by the quasi-Newton model -g'Hg/2 once it has curvature, below ``ftol``), 0 out of
    evaluations, -1 no descent possible (at a point where the line search fails); the
    gradient is the analytic one at the theta returned (what the convergence check of
    :mod:`interlace.fitting.optimize` reads), pwrss the penalised residual sum of squares
    there (sigma^2 at the optimum follows from it without a factorisation).

    Once converged with curvature, up to ``polish_steps`` full quasi-Newton steps follow,
    each kept when it lowers the projected gradient without raising the deviance beyond
    its rounding: the stopping rules leave theta where the deviance stops changing
    (about 1e-7 from the optimum), these steps take it to the gradient's own accuracy.
    """
    size = A.shape[0]
    scale = np.ones(size)
    x = _projected(start, lower)
    f, g, ok, pwrss = profiled_deviance(A, x, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout)
    evaluations = 1
    if not ok:
        return x, f, evaluations, -1, g, pwrss
    first = inverse_hessian.shape[0] != n_theta
    H = np.empty((n_theta, n_theta))
    if first:
        _set_identity(H)
    else:
        for i in range(n_theta):
            for j in range(n_theta):
                H[i, j] = inverse_hessian[i, j]
    pg = np.empty(n_theta)
    d = np.empty(n_theta)
    s_vec = np.empty(n_theta)
    y_vec = np.empty(n_theta)
    for _ in range(10 * max_evaluations):
        for i in range(n_theta):  # the projected gradient: 0 where theta is held at its bound
            pg[i] = 0.0 if x[i] <= lower[i] and g[i] > 0.0 else g[i]
        for i in range(n_theta):
            s = 0.0
            if not (x[i] <= lower[i] and g[i] > 0.0):
                for j in range(n_theta):
                    if not (x[j] <= lower[j] and g[j] > 0.0):
                        s -= H[i, j] * g[j]
            d[i] = s
        slope = _dot(g, d)
        # converged: the projected gradient, or the quasi-Newton decrement (nothing left to gain)
        largest_pg = _largest_magnitude(pg)
        converged = largest_pg < gtol or (slope < 0.0 and not first and -0.5 * slope <= ftol * (1.0 + abs(f)))
        if converged:
            if polish_steps <= 0 or first or slope >= 0.0:
                return x, f, evaluations, 1, g, pwrss
            polish_steps -= 1
            for i in range(n_theta):
                s_vec[i] = x[i] + d[i]
            trial = _projected(s_vec, lower)
            f_new, g_new, ok, pwrss_new = profiled_deviance(A, trial, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal,
                                         layout)
            evaluations += 1
            if not ok or f_new > f + 1e-12 * (1.0 + abs(f)):
                return x, f, evaluations, 1, g, pwrss
            largest = 0.0
            for i in range(n_theta):
                if not (trial[i] <= lower[i] and g_new[i] > 0.0):
                    largest = max(largest, abs(g_new[i]))
            if largest >= largest_pg:
                return x, f, evaluations, 1, g, pwrss
            for i in range(n_theta):
                s_vec[i] = trial[i] - x[i]
                y_vec[i] = g_new[i] - g[i]
            x, f, g, pwrss = trial, f_new, g_new, pwrss_new
            sy = _dot(s_vec, y_vec)
            if sy > 1e-14 * np.sqrt(_dot(s_vec, s_vec) * _dot(y_vec, y_vec)):
                _bfgs_update(H, s_vec, y_vec, sy)
            continue
        if slope >= 0.0:
            _set_identity(H)
            for i in range(n_theta):
                d[i] = -pg[i]
            slope = -_dot(pg, pg)
        step = 1.0
        if first:  # no curvature yet: a first step of FIRST_STEP in theta (MixedModels.jl's initial step)
            step = FIRST_STEP / max(FIRST_STEP, _largest_magnitude(d))
        accepted = False
        for _ls in range(40):
            for i in range(n_theta):
                s_vec[i] = x[i] + step * d[i]
            trial = _projected(s_vec, lower)
            f_new, g_new, ok, pwrss_new = profiled_deviance(A, trial, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal,
                                         layout)
            evaluations += 1
            decrease = 0.0
            for i in range(n_theta):
                decrease += g[i] * (trial[i] - x[i])
            if ok and f_new <= f + 1e-4 * decrease:
                accepted = True
                break
            if evaluations >= max_evaluations:
                return x, f, evaluations, 0, g, pwrss
            step *= 0.5
        if not accepted:
            return x, f, evaluations, -1, g, pwrss
        for i in range(n_theta):
            s_vec[i] = trial[i] - x[i]
            y_vec[i] = g_new[i] - g[i]
        sy = _dot(s_vec, y_vec)
        small_change = abs(f - f_new) <= ftol * (1.0 + abs(f))
        x, f, g, pwrss = trial, f_new, g_new, pwrss_new
        if small_change and _largest_magnitude(s_vec) < 1e-7 * (1.0 + _largest_magnitude(x)):
            return x, f, evaluations, 1, g, pwrss
        if sy > 1e-14:
            if first:  # scale the initial inverse Hessian (Shanno and Phua)
                factor = sy / _dot(y_vec, y_vec)
                for i in range(n_theta):
                    for j in range(n_theta):
                        H[i, j] = H[i, j] * factor
                first = False
            _bfgs_update(H, s_vec, y_vec, sy)
        if evaluations >= max_evaluations:
            return x, f, evaluations, 0, g, pwrss
    return x, f, evaluations, 0, g, pwrss


@kernel
def differenced_hessian(A, theta, steps, base, central, n_theta, q, reml, n_obs, n_fixed, term_of, n_diagonal,
                        layout):
    """(gradient, Hessian, ok) at theta: the analytic gradient of :func:`profiled_deviance` and its
    differences with ``steps`` (one per theta entry), symmetrised. Forward differences
    take n_theta evaluations, and one more unless ``base`` holds the gradient at theta
    (an empty array otherwise); ``central`` ones 2 n_theta + 1, accurate to the step
    squared.

    Forward differences stay on the feasible side of a bound; at a zero variance of a
    scalar term the gradient is odd in theta_t, so there the forward difference is the
    curvature up to the step squared. Central ones may cross the bound (the deviance is
    smooth through zero). ``ok`` is False when a point is not positive definite."""
    scale = np.ones(A.shape[0])
    if base.shape[0] == n_theta and not central:
        g, ok = base.copy(), True
    else:
        _, g, ok, _ = profiled_deviance(A, theta, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout)
    H = np.zeros((n_theta, n_theta))
    x = theta.copy()
    for i in range(n_theta):
        x[i] = theta[i] + steps[i]
        _, g_plus, ok_plus, _ = profiled_deviance(A, x, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal, layout)
        ok = ok and ok_plus
        if central:
            x[i] = theta[i] - steps[i]
            _, g_minus, ok_minus, _ = profiled_deviance(A, x, n_theta, q, reml, n_obs, n_fixed, scale, term_of, n_diagonal,
                                             layout)
            ok = ok and ok_minus
            for j in range(n_theta):
                H[i, j] = (g_plus[j] - g_minus[j]) / (2.0 * steps[i])
        else:
            for j in range(n_theta):
                H[i, j] = (g_plus[j] - g[j]) / steps[i]
        x[i] = theta[i]
    for i in range(n_theta):
        for j in range(i):
            H[i, j] = H[j, i] = 0.5 * (H[i, j] + H[j, i])
    return g, H, ok
