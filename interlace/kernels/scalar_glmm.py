"""Kernels of PIRLS for scalar random-effects terms with a canonical link, beta fixed.

The penalised system M = Lambda'Z'WZ Lambda + I is held in three parts: the leading
term's diagonal ``lead_diagonal`` (one entry per level), its ``coupling`` with the rest
(the entries a leading level meets, in the compressed rows ``ptr``/``idx``; ``slots``
says where each row's entries sit) and the rest's dense block, here already the Schur
complement S = M_rest - C'D^{-1}C. Without a leading term (``n_lead`` 0) the dense block
is all of M. Terms are in factorisation order: term 0 the leading one when there is one;
``rest_offsets`` gives each term's first index in the rest (0 for the leading term).
Distributions by the codes of :mod:`interlace.families` (binomial 0 with logit, Poisson 1
with log). The means and the log-likelihood, whose exp and log dominate a pass over the
rows, are numpy's (vectorised) business: :mod:`interlace.fitting.scalar_pirls`.
"""

from __future__ import annotations

import math

from ._jit import kernel
from .glm import DBL_EPSILON, LOGIT_THRESHOLD


@kernel
def newton_system(mu, y, weights, family, codes, designs, lam, rest_offsets, n_lead, ptr, idx, slots, u,
                  lead_diagonal, coupling, schur, rhs, downdate, pattern_rows, pattern_columns):
    """Fill the system at the means ``mu``'s working weights and the Newton step's right
    side (canonical links: the score a = w (y - mu), the weight W = w V(mu)).

    ``lead_diagonal`` (leading levels), ``coupling`` (its entries) and ``schur`` (the rest's
    dense block, then its Schur complement: in full before the downdate, which keeps only
    the upper triangle) are overwritten; ``rhs`` receives
    Lambda'Z'a - u, its rest part reduced by the leading block (the right side of
    S delta_rest = rhs_rest - C'D^{-1} rhs_lead). Returns False when a working weight
    or score is not finite. With ``downdate`` False the rest's block and right side are
    left before the leading block's elimination (the caller eliminates a dense coupling
    with BLAS). With a sparse rest, ``pattern_rows``/``pattern_columns`` list the entries
    of S that are read (its pattern's lower triangle, the diagonal included): only those
    (and their mirror images) are cleared, not the whole block.
    """
    n_terms, n = codes.shape
    r = schur.shape[0]
    for j in range(rhs.size):
        rhs[j] = -u[j]
    for j in range(lead_diagonal.size):
        lead_diagonal[j] = 1.0
    for p in range(coupling.size):
        coupling[p] = 0.0
    if pattern_rows.size:
        for p in range(pattern_rows.size):
            schur[pattern_rows[p], pattern_columns[p]] = 0.0
            schur[pattern_columns[p], pattern_rows[p]] = 0.0
    else:
        for a in range(r):
            for b in range(r):
                schur[a, b] = 0.0
    for a in range(r):
        schur[a, a] = 1.0
    first = 1 if n_lead > 0 else 0
    finite = True
    for i in range(n):
        m = mu[i]
        s = weights[i] * (y[i] - m)
        w = weights[i] * (m * (1.0 - m) if family == 0 else m)
        finite &= math.isfinite(s) and math.isfinite(w)
        if n_lead > 0:
            l = codes[0, i]
            c0 = lam[0] * designs[i, 0]
            lead_diagonal[l] += w * c0 * c0
            rhs[l] += c0 * s
            for t in range(1, n_terms):
                coupling[slots[i, t - 1]] += w * c0 * lam[t] * designs[i, t]
        for t in range(first, n_terms):
            jt = rest_offsets[t] + codes[t, i]
            ct = lam[t] * designs[i, t]
            rhs[n_lead + jt] += ct * s
            wct = w * ct
            for s_term in range(first, n_terms):
                schur[jt, rest_offsets[s_term] + codes[s_term, i]] += wct * lam[s_term] * designs[i, s_term]
    if not finite:
        return False
    # the downdate on the upper triangle only (the factorisation reads the Schur
    # complement's transpose's lower triangle); a level's rest indices are increasing
    for l in range(n_lead if downdate else 0):
        inverse = 1.0 / lead_diagonal[l]
        lead_rhs = rhs[l] * inverse
        end = ptr[l + 1]
        for p in range(ptr[l], end):
            scaled = coupling[p] * inverse
            row = idx[p]
            rhs[n_lead + row] -= coupling[p] * lead_rhs
            for s in range(p, end):
                schur[row, idx[s]] -= scaled * coupling[s]
    return True


@kernel
def random_part(codes, designs, lam, offsets, u, out):
    """out = Z Lambda u per row (``offsets``: each term's first index in u)."""
    n_terms, n = codes.shape
    for i in range(n):
        total = 0.0
        for t in range(n_terms):
            total += lam[t] * designs[i, t] * u[offsets[t] + codes[t, i]]
        out[i] = total


@kernel
def newton_direction(n_lead, ptr, idx, lead_diagonal, coupling, rhs, rest_step, step):
    """The Newton step in u: its rest part ``rest_step`` (solved with the Schur
    complement) and its leading part (D^{-1}(rhs_lead - C rest_step)) into ``step``."""
    for j in range(rest_step.size):
        step[n_lead + j] = rest_step[j]
    for l in range(n_lead):
        acc = rhs[l]
        for p in range(ptr[l], ptr[l + 1]):
            acc -= coupling[p] * rest_step[idx[p]]
        step[l] = acc / lead_diagonal[l]


@kernel
def loglik_and_means(eta, loglik_a, loglik_b, family, mu):
    """sum_i a_i log(mu_i) + b_i log(1 - mu_i) (binomial, logit) or a_i log(mu_i) - b_i mu_i
    (Poisson, log) at eta, the means into ``mu`` (R's guards, as
    :func:`~interlace.kernels.glm.inverse_link`); a zero coefficient adds nothing."""
    total = 0.0
    for i in range(eta.size):
        if family == 0:
            if eta[i] < -LOGIT_THRESHOLD:
                t = DBL_EPSILON
            elif eta[i] > LOGIT_THRESHOLD:
                t = 1.0 / DBL_EPSILON
            else:
                t = math.exp(eta[i])
            m = t / (1.0 + t)
            mu[i] = m
            if loglik_a[i] != 0.0:
                total += loglik_a[i] * math.log(m)
            if loglik_b[i] != 0.0:
                total += loglik_b[i] * math.log(1.0 - m)
        else:
            m = max(math.exp(eta[i]), DBL_EPSILON)
            mu[i] = m
            if loglik_a[i] != 0.0:
                total += loglik_a[i] * math.log(m)
            total -= loglik_b[i] * m
    return total
