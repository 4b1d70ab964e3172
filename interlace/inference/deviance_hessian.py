"""Exact second derivatives for Satterthwaite's df: the Hessian of lmerTest's deviance
in varpar = (theta, sigma) and the Jacobian of vcov(beta), from the cross-products.

lmerTest differentiates numerically (Richardson extrapolation); here every derivative
is analytic, so the df depend on no step. With A = [Z X]'[Z X], a = [Z X]'y,
T = blockdiag(Lambda, I_p), J = diag(I_q, 0) and F_i = dT/dtheta_i (Lambda is linear in
theta: F_i has a one at each position of theta_i, one per level),

    Omega = T'AT + J,  s = Omega^{-1} T'a = (u, beta),  h = a - A T s = [Z X]'e,
    r^2 = y'y - a'T s,  vcov(beta) = sigma^2 [Omega^{-1}]_(beta, beta),

the deviance D(theta, sigma) = ld(theta) + r^2 / sigma^2 + nu log(2 pi sigma^2), with
ld = log|Omega| for REML (nu = n - p) and log|M| for ML (M the random-effects block of
Omega, nu = n), has, for S = Omega or M and its blocks of A and T,

    d2 ld / dtheta_i dtheta_j = 2 tr(S^{-1} F_i'A F_j) - 2 tr(F_i'B F_j'B) - 2 tr(F_i'Q F_j S^{-1}),
        B = A T S^{-1},  Q = B T'A                                       (Jacobi's formula, twice)
    d r^2 / dtheta_i           = -2 (F_i s)'h
    d2 r^2 / dtheta_i dtheta_j = -2 g_i' Omega^{-1} g_j + 2 (F_i s)'A (F_j s),  g_i = F_i'h - T'A F_i s
    d vcov / dtheta_i          = -sigma^2 [Omega^{-1} (F_i'A T + T'A F_i) Omega^{-1}]_(beta, beta),

and the sigma derivatives in closed form. These need the dense (q + p)-square inverse:
:func:`general_derivatives` is used up to :data:`GENERAL_MAX_SIZE`.

For systems whose terms are all scalar (Lambda_t = theta_t I: crossed random
intercepts) everything reduces to the variances phi_t = theta_t^2, in which V = I +
sum_t phi_t Z_t Z_t' is linear: with P the (REML) projection, K_st = Z_s'P Z_t and, for
theta_s, theta_t > 0, K_st = (delta_st I - S^{-1}_st) / (theta_s theta_t),

    d2 ld / dtheta_s dtheta_t   = (delta_st (6 tau_s - 2 q_s) - 4 ||S^{-1}_st||_F^2) / (theta_s theta_t)
    d2 r^2 / dtheta_s dtheta_t  = (6 delta_st ||u_s||^2 - 8 u_s'[Omega^{-1} u_t]_s) / (theta_s theta_t)
    d r^2 / dtheta_t            = -2 ||u_t||^2 / theta_t
    d vcov / dtheta_t           = 2 sigma^2 Y_t'Y_t / theta_t,   Y = Omega^{-1} E_beta,

tau_s = tr(S^{-1}_ss), q_s the term's number of levels: the blocks of the inverse of a
blocked factor (the leading term eliminated by level) without forming the leading
term's own (q_1 x q_1) block. A term at theta_s = 0 is decoupled from the others; D is
even in theta_s and

    d2 D / dtheta_s^2 = 2 tr(Z_s'P Z_s) - 2 ||Z_s'e||^2 / sigma^2,

its other derivatives zero (P of the model without the term, e the residual).
:func:`scalar_blocked_derivatives` does this for blocked systems with a dense rest, up
to :data:`SCALAR_MAX_BYTES` of dense coupling. Other systems (a sparse rest, the
largest models) fall back on central differences of the deviance
(:func:`finite_difference_derivatives`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..fitting.gradient import theta_positions
from ..fitting.objective import LOG_2PI, residual_dof
from ..linalg.system import Factor, PenalizedSystem
from ..linalg.threads import limited

GENERAL_MAX_SIZE = 1200
"""Largest q + p for the general formula (dense (q + p)-square products, ~5 of them)."""

SCALAR_MAX_BYTES = 2**29
"""Largest dense coupling (rest x leading levels, float64) the scalar formula builds."""

RELATIVE_STEP = 1e-4
"""Step of the finite-difference fallback, relative to max(|theta_i|, 1) (lmerTest's)."""


@dataclass(frozen=True)
class DevianceDerivatives:
    """The Hessian of D(theta, sigma) and the Jacobian of vcov(beta) at one point.

    Attributes
    ----------
    hessian : numpy.ndarray
        (m + 1, m + 1): theta entries in lme4's order, then sigma.
    vcov_jacobian : numpy.ndarray
        (m + 1, p, p): d vcov(beta) / d varpar_i.
    method : str
        ``"general"``, ``"scalar"`` (both exact) or ``"finite-difference"``.
    """

    hessian: np.ndarray
    vcov_jacobian: np.ndarray
    method: str


def _full_crossprod(system: PenalizedSystem) -> np.ndarray:
    """[Z X y]'[Z X y] as one dense symmetric matrix, the terms in factorisation order."""
    if system.n_leading == 0:
        return system.rest_crossprod
    lead = system.lead_term
    k = lead.n_columns
    n1 = lead.n_effects
    size = n1 + system.size
    full = np.zeros((size, size))
    blocks = system.lead_crossprod
    for c in range(k):
        for d in range(k):
            full[np.arange(lead.n_levels) * k + c, np.arange(lead.n_levels) * k + d] = blocks[:, c, d]
    ptr, idx, val = system.coupling
    level = np.repeat(np.arange(lead.n_levels), np.diff(ptr))
    for c in range(k):
        full[level * k + c, n1 + idx] = val[:, c]
        full[n1 + idx, level * k + c] = val[:, c]
    full[n1:, n1:] = system.rest_crossprod
    return full


def _spd_inverse(matrix: np.ndarray) -> np.ndarray | None:
    """The inverse of a symmetric positive definite matrix (None when it is not)."""
    if matrix.shape[0] == 0:
        return matrix.copy()
    chol, info = lapack.dpotrf(matrix, lower=1, clean=1)
    if info != 0:
        return None
    inverse, info = lapack.dpotri(chol, lower=1)
    if info != 0:
        return None
    return np.tril(inverse) + np.tril(inverse, -1).T


def _sigma_entries(hessian: np.ndarray, jacobian: np.ndarray, dr2: np.ndarray, r2: float, sigma: float,
                   nu: float, vcov_unscaled: np.ndarray) -> None:
    """Fill the sigma row and column: D depends on sigma in closed form."""
    m = len(dr2)
    hessian[:m, m] = hessian[m, :m] = -2.0 * dr2 / sigma**3
    hessian[m, m] = 6.0 * r2 / sigma**4 - 2.0 * nu / sigma**2
    jacobian[m] = 2.0 * sigma * vcov_unscaled


def general_derivatives(system: PenalizedSystem, theta: np.ndarray, sigma: float,
                        reml: bool) -> DevianceDerivatives | None:
    """The exact derivatives for any random-effects structure (dense algebra on
    q + p; None when the system is not positive definite at theta).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> d = general_derivatives(m._system, m.theta, float(np.sqrt(m.scale)), True)
    >>> d.hessian.shape, d.vcov_jacobian.shape
    ((4, 4), (4, 2, 2))
    """
    design = system.design
    terms = design.terms
    q, p, n_theta = design.n_random, design.n_fixed, design.n_theta
    n = q + p
    full = _full_crossprod(system)
    A, a, yy = full[:n, :n], full[:n, n], float(full[n, n])
    rows, cols, which = theta_positions(terms)
    T = np.eye(n)
    T[rows, cols] = theta[which]  # Lambda is lower block-triangular per level
    AT = A @ T
    omega = T.T @ AT
    omega[np.arange(q), np.arange(q)] += 1.0
    G = _spd_inverse(omega)
    if G is None:
        return None
    s = G @ (T.T @ a)
    r2 = yy - float(a @ (T @ s))
    h = a - AT @ s
    # the log-determinant's matrix S: Omega (REML) or its random-effects block M (ML)
    if reml:
        GS, AS, ATS = G, A, AT
    else:
        GS = _spd_inverse(omega[:q, :q])
        if GS is None:
            return None
        AS, ATS = A[:q, :q], AT[:q, :q]
    B = ATS @ GS
    Q = B @ ATS.T
    positions = [(rows[which == i], cols[which == i]) for i in range(n_theta)]
    Fs = np.zeros((n_theta, n))
    Fh = np.zeros((n_theta, n))
    for i, (r, c) in enumerate(positions):
        np.add.at(Fs[i], r, s[c])
        np.add.at(Fh[i], c, h[r])
    AFs = A @ Fs.T
    g = Fh - (T.T @ AFs).T
    hess_r2 = -2.0 * g @ G @ g.T + 2.0 * Fs @ AFs
    hess_ld = np.empty((n_theta, n_theta))
    for i, (ri, ci) in enumerate(positions):
        for j in range(i + 1):
            rj, cj = positions[j]
            value = 2.0 * np.sum(GS[np.ix_(ci, cj)] * AS[np.ix_(ri, rj)])
            value -= 2.0 * np.sum(B[np.ix_(ri, cj)] * B[np.ix_(rj, ci)].T)
            value -= 2.0 * np.sum(Q[np.ix_(ri, rj)] * GS[np.ix_(ci, cj)])
            hess_ld[i, j] = hess_ld[j, i] = value
    dr2 = -2.0 * (Fs @ h)
    nu = residual_dof(design.n_obs, p, reml)
    hessian = np.empty((n_theta + 1, n_theta + 1))
    hessian[:n_theta, :n_theta] = hess_ld + hess_r2 / sigma**2
    jacobian = np.empty((n_theta + 1, p, p))
    Y = G[:, q:]
    ATY = AT @ Y
    for i, (r, c) in enumerate(positions):
        V = Y[c].T @ ATY[r]
        jacobian[i] = -sigma**2 * (V + V.T)
    _sigma_entries(hessian, jacobian, dr2, r2, sigma, nu, G[q:, q:])
    return DevianceDerivatives(hessian, jacobian, "general")


def _term_quantities(G: np.ndarray, E: np.ndarray, rest_slices: list[slice], lead_weights: np.ndarray,
                     lead_quadratic: np.ndarray, theta_lead: float) -> tuple[np.ndarray, np.ndarray]:
    """Per term (the leading one first): tau_t = tr(S^{-1}_tt) and the matrix of
    ||S^{-1}_st||_F^2, from the rest's inverse G and E = C D^{-2} C' (C the scaled
    coupling, D the leading levels' pivots): S^{-1}_11 = D^{-1} + D^{-1}C'GCD^{-1},
    S^{-1}_r1 = -GCD^{-1}."""
    n_terms = len(rest_slices) + 1
    tau = np.empty(n_terms)
    frob = np.empty((n_terms, n_terms))
    F = G @ E
    tau[0] = float(np.sum(lead_weights)) + float(np.sum(G * E))
    frob[0, 0] = (float(np.sum(lead_weights**2)) + 2.0 * theta_lead**2 * float(np.sum(lead_weights**3 * lead_quadratic))
                  + float(np.sum(F * F.T)))
    cross = np.sum(F * G, axis=1)  # diag(G E G)
    for t, sl in enumerate(rest_slices, start=1):
        tau[t] = float(np.trace(G[sl, sl]))
        frob[0, t] = frob[t, 0] = float(np.sum(cross[sl]))
        for u, sl2 in enumerate(rest_slices[:t], start=1):
            frob[t, u] = frob[u, t] = float(np.sum(G[sl, sl2] ** 2))
    return tau, frob


def _zero_term_curvature(system: PenalizedSystem, factor: Factor, theta: np.ndarray, terms, zero: np.ndarray,
                         G: np.ndarray, m: int, scaled, weights: np.ndarray, quad: np.ndarray,
                         counts: np.ndarray, sigma: float) -> np.ndarray:
    """d2 D / dtheta_s^2 = 2 tr(Z_s'P Z_s) - 2 ||Z_s'e||^2 / sigma^2 for terms at zero.

    tr(Z_s'P Z_s) sums, over the term's levels, z'z - x'S^{-1}x with x = [Z Lambda X]'z
    (X only for REML: the first ``m`` rows of the rest): the leading term's x are the
    levels' scaled couplings (``quad`` holds x'S^{-1}x); a rest term's by the blocked
    inverse, x'S^{-1}x = x_1'D^{-1}x_1 + y'G y with y = x_r - C D^{-1} x_1."""
    from ..kernels.products import z_times, z_transpose_times

    design = system.design
    u, beta = system.solve(factor, theta)
    b = PenalizedSystem.spherical_to_effects(u, theta, terms)
    residual = design.y - design.X @ beta
    pos = 0
    for term in terms:
        block = np.ascontiguousarray(b[pos : pos + term.n_effects].reshape(term.n_levels, 1))
        residual = residual - z_times(term.group_codes, term.design, block)
        pos += term.n_effects
    theta_lead = theta[int(terms[0].theta_index[0, 0])]
    scale = system._scalar_scale(theta)[:m]
    ptr, idx, val = system.coupling
    out = np.empty(len(zero))
    starts = np.concatenate([[0], np.cumsum([t.n_levels for t in terms[1:]])])
    for k, t in enumerate(zero):
        term = terms[t]
        cross = z_transpose_times(term.group_codes, term.design, residual, term.n_levels)[:, 0]
        if t == 0:
            trace = float(np.sum(counts - quad))
        else:
            cols = np.arange(starts[t - 1], starts[t])
            from scipy import sparse

            coupling = sparse.csr_matrix((val[:, 0], idx, ptr), shape=(len(ptr) - 1, system.size))
            x_lead = theta_lead * np.asarray(coupling[:, cols].todense())  # (n1, q_t)
            x_rest = scale[:, None] * system.rest_crossprod[:m, cols]
            y = x_rest - theta_lead * (scaled.T[:m] @ (weights[:, None] * x_lead))
            forms = np.sum(x_lead * (weights[:, None] * x_lead), axis=0) + np.sum(y * (G @ y), axis=0)
            trace = float(np.sum(system.rest_crossprod[cols, cols] - forms))
        out[k] = 2.0 * trace - 2.0 * float(cross @ cross) / sigma**2
    return out


def scalar_blocked_derivatives(system: PenalizedSystem, theta: np.ndarray, sigma: float, reml: bool,
                               factor: Factor | None = None) -> DevianceDerivatives | None:
    """The exact derivatives of a blocked system of scalar terms with a dense rest (None
    for other systems), from the blocked factor: two inverses of the rest (one for REML),
    never the leading term's own block of the inverse.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)",
    ...                   interlace.load_dataset("Penicillin"), solver="sparse")
    >>> d = scalar_blocked_derivatives(m._system, m.theta, float(np.sqrt(m.scale)), True)
    >>> d.method, d.hessian.shape
    ('scalar', (3, 3))
    """
    from scipy import sparse

    from ..linalg.dispatch import supports_blocked_derivatives

    if not supports_blocked_derivatives(system):
        return None
    design = system.design
    terms = (system.lead_term, *system.rest_terms)
    thetas = np.array([theta[int(t.theta_index[0, 0])] for t in terms])
    if np.any(thetas < 0):
        return None
    if system.size * system.lead_term.n_levels * 8 > SCALAR_MAX_BYTES:
        return None
    factor = factor if factor is not None else system.factorize(theta)
    if not factor.ok:
        return None
    q_rest, p = system.n_rest_random, design.n_fixed
    m_full = q_rest + p
    theta_lead = thetas[0]
    counts = system.lead_crossprod[:, 0, 0]
    weights = 1.0 / (theta_lead**2 * counts + 1.0)  # D^{-1}
    scale = system._scalar_scale(theta)[:m_full]
    ptr, idx, val = system.coupling
    coupling = sparse.csr_matrix((val[:, 0], idx, ptr), shape=(len(ptr) - 1, system.size))[:, :m_full]
    scaled = coupling @ sparse.diags(scale)  # rows: levels; C' of the factorisation / theta_1
    E_full = theta_lead**2 * np.asarray((scaled.T @ sparse.diags(weights**2) @ scaled).todense())
    bounds = np.concatenate([[0], np.cumsum([t.n_levels for t in system.rest_terms])])
    rest_slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    sizes = np.array([t.n_levels for t in terms], dtype=np.float64)

    def inverse(m: int) -> np.ndarray | None:
        chol = np.asfortranarray(factor.rest_chol[:m, :m])
        inv, info = lapack.dpotri(chol, lower=1)
        if info != 0:
            return None
        return np.tril(inv) + np.tril(inv, -1).T

    G_full = inverse(m_full)
    if G_full is None:
        return None
    m_ld = m_full if reml else q_rest
    G_ld = G_full if reml else inverse(q_rest)
    if G_ld is None:
        return None
    head = scaled[:, :m_ld]
    quad = np.asarray(head.multiply(head @ G_ld).sum(axis=1)).ravel()  # v_l' G v_l per level
    tau, frob = _term_quantities(G_ld, E_full[:m_ld, :m_ld], rest_slices, weights, quad, theta_lead)
    positive = thetas > 0
    outer_theta = np.where(np.outer(positive, positive), np.outer(thetas, thetas), 1.0)
    hess_ld = (np.diag(6.0 * tau - 2.0 * sizes) - 4.0 * frob) / outer_theta
    # r^2: u_s' [Omega^{-1} u_t]_s for every pair of terms
    u, _ = system.solve(factor, theta)
    n1 = len(weights)
    u_terms = [u[:n1]] + [u[n1:][sl] for sl in rest_slices]

    def lead_from_rest(g: np.ndarray) -> np.ndarray:  # D^{-1} C' g
        return theta_lead * weights * (scaled @ g)

    products = np.empty((len(terms), len(terms)))
    for t, ut in enumerate(u_terms):
        if t == 0:
            g = G_full @ (theta_lead * (scaled.T @ (weights * ut)))
            w_lead = weights * ut + lead_from_rest(g)
            w_rest = -g
        else:
            x = np.zeros(m_full)
            x[rest_slices[t - 1]] = ut
            w_rest = G_full @ x
            w_lead = -lead_from_rest(w_rest)
        products[0, t] = u_terms[0] @ w_lead
        for s, sl in enumerate(rest_slices, start=1):
            products[s, t] = u_terms[s] @ w_rest[sl]
    squares = np.array([ut @ ut for ut in u_terms])
    hess_r2 = (np.diag(6.0 * squares) - 4.0 * (products + products.T)) / outer_theta
    dr2_terms = np.where(positive, -2.0 * squares / np.where(positive, thetas, 1.0), 0.0)
    hess = hess_ld + hess_r2 / sigma**2
    if not np.all(positive):  # terms at zero: decoupled, their own curvature only
        zero = np.flatnonzero(~positive)
        hess[zero, :] = 0.0
        hess[:, zero] = 0.0
        hess[zero, zero] = _zero_term_curvature(system, factor, theta, terms, zero, G_ld, m_ld, scaled,
                                                weights, quad, counts, sigma)
    # vcov: Y = Omega^{-1} E_beta by blocks
    Y_rest = G_full[:, q_rest:]
    Y_lead = -theta_lead * weights[:, None] * (scaled @ Y_rest)
    Y_terms = [Y_lead] + [Y_rest[sl] for sl in rest_slices]
    n_theta = design.n_theta
    index = np.array([int(t.theta_index[0, 0]) for t in terms])
    nu = residual_dof(design.n_obs, p, reml)
    hessian = np.zeros((n_theta + 1, n_theta + 1))
    hessian[np.ix_(index, index)] = hess
    jacobian = np.zeros((n_theta + 1, p, p))
    dr2 = np.zeros(n_theta)
    for t, Yt in enumerate(Y_terms):
        if positive[t]:
            jacobian[index[t]] = 2.0 * sigma**2 * (Yt.T @ Yt) / thetas[t]
        dr2[index[t]] = dr2_terms[t]
    _sigma_entries(hessian, jacobian, dr2, factor.pwrss, sigma, nu, G_full[q_rest:, q_rest:])
    return DevianceDerivatives(hessian, jacobian, "scalar")


def finite_difference_derivatives(system: PenalizedSystem, theta: np.ndarray, sigma: float,
                                  reml: bool) -> DevianceDerivatives:
    """Central differences of D and vcov in theta (exact in sigma), for the systems
    the exact formulas do not cover: 2 m^2 + 1 factorisations."""
    design = system.design
    n, p = design.n_obs, design.n_fixed
    nu = residual_dof(n, p, reml)
    m = len(theta)

    def evaluate(th: np.ndarray) -> tuple[float, float, np.ndarray]:
        factor = system.factorize(th)
        logdet = factor.logdet_random + (factor.logdet_fixed if reml else 0.0)
        Lx = factor.fixed_chol
        inv = np.linalg.solve(Lx, np.eye(p))
        return logdet, factor.pwrss, inv.T @ inv

    def deviance(logdet: float, pwrss: float) -> float:
        return logdet + pwrss / sigma**2 + nu * (LOG_2PI + 2.0 * np.log(sigma))

    h = RELATIVE_STEP * np.maximum(np.abs(theta), 1.0)
    e = np.eye(m)
    base = evaluate(theta)
    plus = [evaluate(theta + h[i] * e[i]) for i in range(m)]
    minus = [evaluate(theta - h[i] * e[i]) for i in range(m)]
    hessian = np.zeros((m + 1, m + 1))
    d0 = deviance(*base[:2])
    for i in range(m):
        hessian[i, i] = (deviance(*plus[i][:2]) - 2 * d0 + deviance(*minus[i][:2])) / h[i] ** 2
        for j in range(i):
            corners = [evaluate(theta + a * h[i] * e[i] + b * h[j] * e[j]) for a, b in
                       ((1, 1), (1, -1), (-1, 1), (-1, -1))]
            pp, pm, mp, mm = (deviance(*c[:2]) for c in corners)
            hessian[i, j] = hessian[j, i] = (pp - pm - mp + mm) / (4 * h[i] * h[j])
    dr2 = np.array([(plus[i][1] - minus[i][1]) / (2 * h[i]) for i in range(m)])
    jacobian = np.empty((m + 1, p, p))
    for i in range(m):
        jacobian[i] = sigma**2 * (plus[i][2] - minus[i][2]) / (2 * h[i])
    _sigma_entries(hessian, jacobian, dr2, base[1], sigma, nu, base[2])
    return DevianceDerivatives(hessian, jacobian, "finite-difference")


def deviance_derivatives(system: PenalizedSystem, theta: np.ndarray, sigma: float, reml: bool,
                         factor: Factor | None = None) -> DevianceDerivatives:
    """The Hessian and Jacobian at (theta, sigma): exact where the system allows
    (see the module docstring), else by central differences."""
    theta = np.asarray(theta, dtype=np.float64)
    design = system.design
    size = design.n_random + design.n_fixed
    exact = None
    with limited(system.size):  # the BLAS threads of this module's inverses, by their order
        if system.rest_layout == "dense" and size <= GENERAL_MAX_SIZE:
            exact = general_derivatives(system, theta, sigma, reml)
        elif system.rest_layout == "dense":
            exact = scalar_blocked_derivatives(system, theta, sigma, reml, factor)
        return exact if exact is not None else finite_difference_derivatives(system, theta, sigma, reml)
