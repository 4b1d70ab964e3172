"""Where the optimiser starts: lme4's start, or moment estimates near the optimum.

lme4 starts every relative SD at 1. Newton's method with the average information
(:mod:`interlace.fitting.newton`) converges in three or four iterations from a start near the
optimum, so for the systems it serves (blocked, scalar terms, dense rest) the start
is a method-of-moments estimate read off the cross-products, never off the rows.

With r = (I - H) y the ordinary least-squares residuals (H the hat matrix of X) and
the model's covariance sigma^2 I + sum_s sigma_s^2 Z_s Z_s', each quadratic form has
an expectation linear in the variances:

    E ||Z_t' r||^2 = sum_s sigma_s^2 ||Z_t'(I - H) Z_s||_F^2 + sigma^2 tr(Z_t'(I - H) Z_t)
    E  r'r         = sum_s sigma_s^2 tr(Z_s'(I - H) Z_s)     + sigma^2 (n - p).

Equating them to their observed values is K + 1 linear equations for the K variances
and sigma^2 (Henderson's method I with the fixed effects swept out; for crossed
intercepts see Gao and Owen 2017). Every term is a cross-product block: the leading
term's diagonal and coupling, the rest's dense blocks, their [X y] columns. A
variance estimated at or below zero starts at :data:`MIN_RATIO` of sigma^2.

References
----------
Gao, K. and Owen, A. B. (2017). Efficient moment calculations for variance components
in large unbalanced crossed random effects models. Electronic Journal of Statistics 11,
1235-1296.
"""

from __future__ import annotations

import numpy as np

MIN_RATIO = 1e-2
"""The variance ratio sigma_t^2 / sigma^2 a term starts at when its moment estimate
is not positive."""


def _frobenius_projected(square_sum: float, cross_trace: float, left: np.ndarray,
                         right: np.ndarray) -> float:
    """||A - U V'||_F^2 from ||A||_F^2, tr(U' A V), U and V (V = Z_s'X (X'X)^{-1})."""
    return square_sum - 2.0 * cross_trace + float(np.sum((left.T @ left) * (right.T @ right)))


def _square_sum(block) -> float:
    """The sum of squares of a dense or a scipy sparse block's entries."""
    if hasattr(block, "multiply"):
        return float(block.multiply(block).sum())
    return float(np.einsum("ij,ij->", block, block))


def moment_start(system) -> np.ndarray:
    """theta from the method of moments, for a blocked system of scalar terms.

    Examples
    --------
    >>> import interlace
    >>> inst = interlace.load_dataset("InstEval")
    >>> m = interlace.fit("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", inst)
    >>> np.round(moment_start(m._system), 2).tolist(), np.round(m.theta, 2).tolist()
    ([0.28, 0.48, 0.06], [0.28, 0.44, 0.07])
    """
    design = system.design
    q, p = system.n_rest_random, system.n_fixed
    A = system.rest_crossprod
    xtx = A[q : q + p, q : q + p]
    xty = A[q : q + p, -1]
    xtx_inv = np.linalg.inv(xtx) if p else np.zeros((0, 0))
    beta = xtx_inv @ xty
    lead = system.lead_term
    lead_tail = system.lead_tails()
    slices, pos = [], 0
    for term in system.rest_terms:
        slices.append(slice(pos, pos + term.n_levels))
        pos += term.n_levels
    zx = [lead_tail[:, :p]] + [A[s, q : q + p] for s in slices]  # Z_t'X
    zy = [lead_tail[:, p]] + [A[s, -1] for s in slices]  # Z_t'y
    diag = [system.lead_crossprod[:, 0, 0]] + [A[s, s].diagonal() for s in slices]
    right = [z @ xtx_inv for z in zx]  # Z_t'X (X'X)^{-1}
    K = len(zx)
    F = np.empty((K, K))
    F[0, 0] = _frobenius_projected(float(diag[0] @ diag[0]), float(np.sum(zx[0] * diag[0][:, None] * right[0])),
                                   zx[0], right[0])
    column_squares = system.lead_column_squares()
    for s, sl in enumerate(slices, start=1):
        placed = np.zeros((system.size, p))
        placed[sl] = right[s]
        cross = float(np.sum(zx[0] * system.lead_times(placed))) if p else 0.0  # tr(U' C_s V)
        F[0, s] = F[s, 0] = _frobenius_projected(float(np.sum(column_squares[sl])), cross, zx[0], right[s])
    for t, tl in enumerate(slices, start=1):
        for s in range(t, K):
            block = A[tl, slices[s - 1]]
            cross = float(np.sum((zx[t].T @ block) * right[s].T))
            F[t, s] = F[s, t] = _frobenius_projected(_square_sum(block), cross, zx[t], right[s])
    traces = np.array([float(np.sum(diag[t]) - np.sum(zx[t] * right[t])) for t in range(K)])
    equations = np.zeros((K + 1, K + 1))
    observed = np.zeros(K + 1)
    equations[:K, :K] = F
    equations[:K, K] = traces
    equations[K, :K] = traces
    equations[K, K] = design.n_obs - p
    residual = [zy[t] - zx[t] @ beta for t in range(K)]
    observed[:K] = [float(r @ r) for r in residual]
    observed[K] = float(A[-1, -1] - xty @ beta)
    theta = design.start_theta()
    try:
        variances = np.linalg.solve(equations, observed)
    except np.linalg.LinAlgError:
        return theta
    sigma2 = variances[K]
    if not (np.all(np.isfinite(variances)) and sigma2 > 0):
        return theta
    terms = (lead, *system.rest_terms)
    for t, term in enumerate(terms):
        ratio = variances[t] / sigma2
        theta[int(term.theta_index[0, 0])] = np.sqrt(ratio if ratio > 0 else MIN_RATIO)
    return theta


def start_theta(system) -> np.ndarray:
    """The optimiser's default start for ``system``: moment estimates where Newton's
    method with the average information runs (see
    :func:`interlace.linalg.dispatch.supports_blocked_derivatives`), lme4's start
    (1 on every diagonal entry of the relative factors, 0 elsewhere) otherwise."""
    from ..linalg.dispatch import supports_blocked_derivatives

    if supports_blocked_derivatives(system):
        return moment_start(system)
    return system.design.start_theta()
