"""The exact gradient of the Laplace deviance in (theta, beta), for canonical links and
scalar random-effects terms.

With u* the conditional mode, a the score of the log-likelihood in eta, W its working
weights (for a canonical link the observed information), M = Lambda'Z'WZ Lambda + I and
h_i = z_i' Lambda M^{-1} Lambda' z_i, the deviance D = -2 l(u*) + ||u*||^2 + log|M|
has (the mode's own derivative vanishing in the first two terms, entering log|M|
through W by the implicit function theorem, du*/dx = M^{-1} times the mixed derivative)

    dD/dbeta    = X'(-2 a + e),
    dD/dtheta_t = sum_i d_it [-2 a_i u_j + e_i u_j + a_i g_j] + 2 tr(M^{-1} Lambda'Z'WZ E_t),

where j = j_t(i) is row i's level of term t and d_it its design value, v_i = h_i dW_i/deta_i,
g = M^{-1} Lambda'Z' v and e = v - W (Z Lambda g). The trace and h need M^{-1} only where
a row's effects meet: on the dense path from M^{-1}; on the blocked path from the rest's
S^{-1} and, per level of the leading term, S^{-1} times its coupling (the pairs the
downdate already visits). One solve with M and passes over the rows complete it.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg import lapack

from ..kernels._jit import kernel, parallel_kernel
from ..kernels.glm import canonical_derivatives
from .pirls import ConditionalMode, Pirls

CANONICAL = {"binomial": "logit", "poisson": "log"}


def supports_gradient(pirls: Pirls) -> bool:
    """Whether the exact gradient is available: a canonical link, every random-effects
    term scalar, and the system dense or blocked with a dense rest."""
    family = pirls.response.family
    return (CANONICAL.get(family.name) == family.link.name
            and all(t.n_columns == 1 for t in pirls.design.terms)
            and not pirls.sparse_rest)


@parallel_kernel
def _level_products(ptr, idx, scaled, n_rest, Sinv, w_out, quad_out):
    """Per leading level l: w = S^{-1} B_l on its coupling's random entries (aligned with
    ``idx``) and B_l' S^{-1} B_l, B_l the level's scaled coupling (levels over threads).
    A level's random entries come first and sorted, its [X y] entries (index >= n_rest)
    last: the loops stop at the first of those."""
    for l in numba.prange(ptr.size - 1):
        a, b = ptr[l], ptr[l + 1]
        end = a
        while end < b and idx[end] < n_rest:
            end += 1
        for p in range(end, b):
            w_out[p] = 0.0
        total = 0.0
        for p in range(a, end):
            row = Sinv[idx[p]]
            acc = 0.0
            for s in range(a, end):
                acc += row[idx[s]] * scaled[s]
            w_out[p] = acc
            total += acc * scaled[p]
        quad_out[l] = total


@kernel
def _row_terms_slots(codes, designs, lam, offsets, ptr, slots, w_lead, D, quad, Sinv, m_out):
    """Per row and term t: m_t = sum_s c_s M^{-1}[j_t, j_s] with c_s = lambda_s d_is, on
    the blocked path (term 0 the leading one; rest indices relative to the rest), each
    row's coupling positions given (``slots``: rows x rest terms, from
    :func:`interlace.kernels.crossprod.coupling_slots`)."""
    n_terms, n = codes.shape
    for i in range(n):
        l = codes[0, i]
        inv_d = 1.0 / D[l]
        c0 = lam[0] * designs[i, 0]
        m0 = c0 * (inv_d + quad[l] * inv_d * inv_d)
        for t in range(1, n_terms):
            r = offsets[t] + codes[t, i]
            ct = lam[t] * designs[i, t]
            cross = -w_lead[slots[i, t - 1]] * inv_d
            m0 += ct * cross
            mt = c0 * cross
            for s in range(1, n_terms):
                mt += lam[s] * designs[i, s] * Sinv[r, offsets[s] + codes[s, i]]
            m_out[t, i] = mt
        m_out[0, i] = m0


@kernel
def _row_gradient_parts(codes, designs, lam, offsets, w, dw, m, n_random):
    """Per row h = sum_t c_t m_t and v = h dW/deta; b = Lambda'Z'v over the effects; per
    term the trace sum_i W_i d_it m_t."""
    n_terms, n = codes.shape
    v = np.empty(n)
    b = np.zeros(n_random)
    trace = np.zeros(n_terms)
    for i in range(n):
        h = 0.0
        for t in range(n_terms):
            h += lam[t] * designs[i, t] * m[t, i]
            trace[t] += w[i] * designs[i, t] * m[t, i]
        v[i] = h * dw[i]
        for t in range(n_terms):
            b[offsets[t] + codes[t, i]] += lam[t] * designs[i, t] * v[i]
    return v, b, trace


@kernel
def _row_gradient_finish(codes, designs, lam, offsets, u, g, a, w, v):
    """e = v - W (Z Lambda g) per row, and per term sum_i d_it [u_j (e_i - 2 a_i) + g_j a_i]."""
    n_terms, n = codes.shape
    e = np.empty(n)
    parts = np.zeros(n_terms)
    for i in range(n):
        zg = 0.0
        for t in range(n_terms):
            zg += lam[t] * designs[i, t] * g[offsets[t] + codes[t, i]]
        e[i] = v[i] - w[i] * zg
        for t in range(n_terms):
            j = offsets[t] + codes[t, i]
            parts[t] += designs[i, t] * (u[j] * (e[i] - 2.0 * a[i]) + g[j] * a[i])
    return e, parts


@kernel
def _row_terms_dense(codes, designs, lam, offsets, Minv, m_out):
    """Per row and term t: m_t = sum_s c_s M^{-1}[j_t, j_s] on the dense path."""
    n_terms, n = codes.shape
    for i in range(n):
        for t in range(n_terms):
            jt = offsets[t] + codes[t, i]
            acc = 0.0
            for s in range(n_terms):
                acc += lam[s] * designs[i, s] * Minv[jt, offsets[s] + codes[s, i]]
            m_out[t, i] = acc


def _inverse_of_factor(L: np.ndarray) -> np.ndarray:
    """(L L')^{-1} from a lower Cholesky factor (LAPACK ``potri``: the triangle, then
    mirrored)."""
    if L.shape[0] == 0:
        return np.zeros((0, 0))
    inverse, info = lapack.dpotri(np.asfortranarray(L), lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri: the factor is singular (info {info})")
    lower = np.tril(inverse)
    return lower + np.tril(lower, -1).T


def scalar_conditional_variances(pirls: Pirls, mode: ConditionalMode) -> np.ndarray:
    """diag(M^{-1}) in the order of u (every term scalar, the system dense or blocked
    with a dense rest): lme4's conditional variances of u, from the rest's inverse and,
    per leading level, 1/D + B'S^{-1}B / D^2."""
    with pirls.threads:
        system, factor = mode.system, mode.factor
        if not system.n_leading:
            q = system.n_rest_random
            return np.diag(_inverse_of_factor(factor.rest_chol[:q, :q])).copy()
        terms = pirls.design.terms
        theta = mode.theta
        lam = np.array([float(t.relative_cov_factor(theta)[0, 0]) for t in terms])
        n1, q_rest = terms[0].n_levels, system.n_rest_random
        D = factor.lead_chol[:, 0, 0] ** 2
        Sinv = _inverse_of_factor(factor.rest_chol[:q_rest, :q_rest])
        scaled = _scaled_coupling(system, terms, lam)
        w_lead, quad = np.empty(scaled.size), np.empty(n1)
        _level_products(system.coupling[0], system.coupling[1], scaled, q_rest, Sinv, w_lead, quad)
        return np.concatenate([1.0 / D + quad / D**2, np.diag(Sinv)])


def _scaled_coupling(system, terms, lam: np.ndarray) -> np.ndarray:
    """The leading term's coupling Z_1'W Z_rest scaled by lambda_1 lambda_t (entries of
    the [X y] tail scaled by lambda_1)."""
    ptr, idx, val = system.coupling
    n1 = terms[0].n_levels
    rest_scale = np.ones(system.size)
    offset = 0
    for t in range(1, len(terms)):
        rest_scale[offset : offset + terms[t].n_levels] = lam[t]
        offset += terms[t].n_levels
    return lam[0] * val[:, 0] * rest_scale[idx] if n1 else val[:, 0]


def laplace_gradient(pirls: Pirls, mode: ConditionalMode, theta: np.ndarray) -> np.ndarray:
    """The gradient of :attr:`ConditionalMode.laplace_deviance` in (theta, beta') at the
    mode of a fixed beta (see the module docstring; :func:`supports_gradient` must hold)."""
    with pirls.threads:
        return _laplace_gradient(pirls, mode, theta)


def _laplace_gradient(pirls: Pirls, mode: ConditionalMode, theta: np.ndarray) -> np.ndarray:
    design = pirls.design
    terms = design.terms
    n, n_terms = design.n_obs, len(terms)
    response = pirls.response
    a, w, dw = np.empty(n), np.empty(n), np.empty(n)
    canonical_derivatives(mode.eta, response.y, response.weights, response.family.code, a, w, dw)
    codes = np.ascontiguousarray(np.vstack([t.group_codes for t in terms]))
    designs = np.ascontiguousarray(np.hstack([t.design for t in terms]))
    lam = np.array([float(t.relative_cov_factor(theta)[0, 0]) for t in terms])
    sizes = np.array([t.n_levels for t in terms])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    system, factor = mode.system, mode.factor
    m = np.empty((n_terms, n))
    if system.n_leading:
        n1 = terms[0].n_levels
        q_rest = system.n_rest_random
        D = factor.lead_chol[:, 0, 0] ** 2
        Sinv = _inverse_of_factor(factor.rest_chol[:q_rest, :q_rest])
        ptr, idx, val = system.coupling
        scaled = _scaled_coupling(system, terms, lam)
        w_lead, quad = np.empty(idx.size), np.empty(n1)
        _level_products(ptr, idx, scaled, q_rest, Sinv, w_lead, quad)
        rest_offsets = offsets - np.where(np.arange(n_terms) > 0, n1, 0)
        slots = pirls.coupling_slots_of(system)
        _row_terms_slots(codes, designs, lam, rest_offsets, ptr, slots, w_lead, D, quad, Sinv, m)
    else:
        q = system.n_rest_random
        Minv = _inverse_of_factor(factor.rest_chol[:q, :q])
        _row_terms_dense(codes, designs, lam, offsets, Minv, m)
    v, b, trace = _row_gradient_parts(codes, designs, lam, offsets, w, dw, m, design.n_random)
    # g = M^{-1} b
    if system.n_leading:
        ptr, idx, val = system.coupling
        n1 = terms[0].n_levels
        q_rest = system.n_rest_random
        level = np.repeat(np.arange(n1), np.diff(ptr))
        random = idx < q_rest
        entries = scaled[random]
        rows, cols = level[random], idx[random]
        b1, br = b[:n1], b[n1:]
        rhs = br - np.bincount(cols, weights=entries * (b1 / D)[rows], minlength=q_rest)
        gr = Sinv @ rhs
        g1 = (b1 - np.bincount(rows, weights=entries * gr[cols], minlength=n1)) / D
        g = np.concatenate([g1, gr])
    else:
        g = Minv @ b
    e, parts = _row_gradient_finish(codes, designs, lam, offsets, mode.u, np.ascontiguousarray(g), a, w, v)
    grad_beta = design.X.T @ (e - 2.0 * a)
    grad_theta = np.zeros(design.n_theta)
    for t, term in enumerate(terms):
        grad_theta[int(term.theta_index[0, 0])] = float(parts[t] + 2.0 * trace[t])
    return np.concatenate([grad_theta, grad_beta])

