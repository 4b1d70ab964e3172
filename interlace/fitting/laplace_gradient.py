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
        return variances_from_parts(FactorParts.of_mode(pirls, mode))


def variances_from_parts(parts: FactorParts) -> np.ndarray:
    """diag(M^{-1}) from a factor's parts (see :func:`scalar_conditional_variances`)."""
    Sinv = parts.rest_inverse()
    if not parts.n_lead:
        return np.diag(Sinv).copy()
    D = parts.lead_diagonal
    _, quad = parts.level_products(Sinv)
    return np.concatenate([1.0 / D + quad / D**2, np.diag(Sinv)])


class FactorParts:
    """A factor of M = Lambda'Z'WZ Lambda + I of scalar terms as the gradient reads it:
    the leading term's diagonal D (``n_lead`` levels, none on the dense path), its
    coupling with the rest scaled by the lambdas (compressed rows ``ptr``/``idx``, rest
    indices; entries at or past ``n_rest`` belong to [X y] and are skipped), the rows'
    positions in it (``slots``), and the lower Cholesky factor of the rest's Schur
    complement (all of M on the dense path): a dense lower triangle, or an object with
    ``logdet()``, ``solve(b)`` and ``dense_inverse()`` (a sparse one,
    :class:`~interlace.fitting.scalar_pirls.SparseRestFactor`)."""

    def __init__(self, n_lead, lead_diagonal, ptr, idx, coupling, slots, rest_chol, n_rest, dense=False):
        self.n_lead, self.lead_diagonal = n_lead, lead_diagonal
        self.ptr, self.idx, self.coupling, self.slots = ptr, idx, coupling, slots
        self.rest_chol, self.n_rest, self.dense = rest_chol, n_rest, dense

    def level_products(self, Sinv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per leading level l: S^{-1} B_l on its coupling's entries and B_l'S^{-1}B_l
        (a dense coupling, every level meeting every rest index, by one product)."""
        if self.dense:
            block = self.coupling.reshape(self.n_lead, self.n_rest)
            products = block @ Sinv
            return products.ravel(), np.einsum("ij,ij->i", products, block)
        w_lead, quad = np.empty(self.coupling.size), np.empty(self.n_lead)
        _level_products(self.ptr, self.idx, self.coupling, self.n_rest, Sinv, w_lead, quad)
        return w_lead, quad

    def solve(self, b: np.ndarray) -> np.ndarray:
        """M^{-1} b by the leading block's elimination."""
        n1, q_rest = self.n_lead, self.n_rest
        if not n1:
            return self.rest_solve(b)
        D, b1, br = self.lead_diagonal, b[:n1], b[n1:]
        if self.dense:
            block = self.coupling.reshape(n1, q_rest)
            gr = self.rest_solve(br - (b1 / D) @ block)
            return np.concatenate([(b1 - block @ gr) / D, gr])
        ptr, idx = self.ptr, self.idx
        level = np.repeat(np.arange(n1), np.diff(ptr))
        random = idx < q_rest
        entries = self.coupling[random]
        level_of, cols = level[random], idx[random]
        rhs = br - np.bincount(cols, weights=entries * (b1 / D)[level_of], minlength=q_rest)
        gr = self.rest_solve(rhs)
        g1 = (b1 - np.bincount(level_of, weights=entries * gr[cols], minlength=n1)) / D
        return np.concatenate([g1, gr])

    @classmethod
    def of_mode(cls, pirls: Pirls, mode: ConditionalMode) -> FactorParts:
        """The parts of a mode's blocked or dense factor."""
        system, factor = mode.system, mode.factor
        q_rest = system.n_rest_random
        chol = factor.rest_chol[:q_rest, :q_rest]
        if not system.n_leading:
            return cls(0, np.ones(0), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0),
                       np.zeros((pirls.design.n_obs, 0), np.int64), chol, q_rest)
        terms = pirls.design.terms
        lam = np.array([float(t.relative_cov_factor(mode.theta)[0, 0]) for t in terms])
        ptr, idx, _ = system.coupling
        return cls(terms[0].n_levels, factor.lead_chol[:, 0, 0] ** 2, ptr, idx, _scaled_coupling(system, terms, lam),
                   pirls.coupling_slots_of(system), chol, q_rest)

    def rest_inverse(self) -> np.ndarray:
        """S^{-1} (M^{-1} on the dense path), dense; a sparse rest factor fills only the
        entries where two of a row's effects meet (all the gradient reads)."""
        if isinstance(self.rest_chol, np.ndarray):
            return _inverse_of_factor(self.rest_chol)
        return self.rest_chol.dense_inverse()

    def rest_solve(self, b: np.ndarray) -> np.ndarray:
        """S^{-1} b."""
        if not b.size:
            return b.copy()
        if isinstance(self.rest_chol, np.ndarray):
            return lapack.dpotrs(self.rest_chol, b, lower=1)[0]
        return self.rest_chol.solve(b)

    def logdet(self) -> float:
        """log |M| = sum log D + log |S|."""
        if isinstance(self.rest_chol, np.ndarray):
            rest = 2.0 * float(np.sum(np.log(np.diag(self.rest_chol))))
        else:
            rest = self.rest_chol.logdet()
        return float(np.sum(np.log(self.lead_diagonal))) + rest


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
        return gradient_from_parts(ScalarRows.of(pirls), FactorParts.of_mode(pirls, mode), mode.mu, mode.u, theta)


class ScalarRows:
    """What the gradient reads of the rows of a design of scalar terms: the terms' codes
    (terms x rows), design columns (rows x terms), first index in u, theta position, X,
    and the response."""

    def __init__(self, design, response):
        terms = design.terms
        self.codes = np.ascontiguousarray(np.vstack([t.group_codes for t in terms]), dtype=np.int64)
        self.designs = np.ascontiguousarray(np.hstack([t.design for t in terms]), dtype=np.float64)
        sizes = np.array([t.n_levels for t in terms], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.theta_positions = [int(t.theta_index[0, 0]) for t in terms]
        self.terms = terms
        self.n_theta = design.n_theta
        self.n_random = design.n_random
        self.X = design.X
        self.response = response

    @classmethod
    def of(cls, pirls: Pirls) -> ScalarRows:
        """The rows of a PIRLS's design (built once per PIRLS)."""
        rows = pirls.__dict__.get("_scalar_rows")
        if rows is None:
            rows = pirls.__dict__["_scalar_rows"] = cls(pirls.design, pirls.response)
        return rows

    def lambdas(self, theta: np.ndarray) -> np.ndarray:
        """Each term's relative standard deviation at theta."""
        return np.array([float(t.relative_cov_factor(theta)[0, 0]) for t in self.terms])


def canonical_parts(mu: np.ndarray, y: np.ndarray, weights: np.ndarray, family: int):
    """For a canonical link (logit with binomial, log with Poisson), per row: the score
    of the log-likelihood in eta, a = w (y - mu); the working weight W = w V(mu) (the
    observed information, equal to the expected one); and dW / d eta = w V'(mu) V(mu)."""
    if family == 0:
        variance = mu * (1.0 - mu)
        return weights * (y - mu), weights * variance, weights * (1.0 - 2.0 * mu) * variance
    weighted = weights * mu
    return weights * (y - mu), weighted, weighted


def gradient_from_parts(rows: ScalarRows, parts: FactorParts, mu: np.ndarray, u: np.ndarray,
                        theta: np.ndarray) -> np.ndarray:
    """The Laplace deviance's gradient in (theta, beta') at a mode (its means, spherical
    effects and factor's parts)."""
    codes, designs, offsets = rows.codes, rows.designs, rows.offsets
    n_terms, n = codes.shape
    response = rows.response
    a, w, dw = canonical_parts(mu, response.y, response.weights, response.family.code)
    lam = rows.lambdas(theta)
    Sinv = parts.rest_inverse()
    m = np.empty((n_terms, n))
    n1 = parts.n_lead
    if n1:
        w_lead, quad = parts.level_products(Sinv)
        rest_offsets = offsets - np.where(np.arange(n_terms) > 0, n1, 0)
        _row_terms_slots(codes, designs, lam, rest_offsets, parts.ptr, parts.slots, w_lead, parts.lead_diagonal, quad,
                         Sinv, m)
    else:
        _row_terms_dense(codes, designs, lam, offsets, Sinv, m)
    v, b, trace = _row_gradient_parts(codes, designs, lam, offsets, w, dw, m, rows.n_random)
    g = parts.solve(b)
    e, term_parts = _row_gradient_finish(codes, designs, lam, offsets, u, np.ascontiguousarray(g), a, w, v)
    grad_beta = rows.X.T @ (e - 2.0 * a)
    grad_theta = np.zeros(rows.n_theta)
    for t, position in enumerate(rows.theta_positions):
        grad_theta[position] = float(term_parts[t] + 2.0 * trace[t])
    return np.concatenate([grad_theta, grad_beta])
