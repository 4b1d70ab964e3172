"""Per-level work on the leading block-diagonal block and its coupling to the rest."""

from __future__ import annotations

import numba
import numpy as np

from ._jit import kernel, parallel_kernel
from .prefetch import prefetch

PREFETCH_AHEAD = 4
"""How many visits ahead the scatter kernels hint where a level's entries start
(:mod:`interlace.kernels.prefetch`): 4 to 16 measured alike at 10^7 rows."""


@kernel
def small_cholesky(a, out):
    """Lower Cholesky factor of the SPD matrix ``a`` into ``out`` (may be ``a`` itself:
    only the lower triangle is read, the upper one is zeroed); False if not PD."""
    k = a.shape[0]
    for j in range(k):
        s = a[j, j]
        for t in range(j):
            s -= out[j, t] * out[j, t]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        out[j, j] = d
        for i in range(j + 1, k):
            s = a[i, j]
            for t in range(j):
                s -= out[i, t] * out[j, t]
            out[i, j] = s / d
        for i in range(j):
            out[i, j] = 0.0
    return True


@kernel
def lower_inverse(L, out, size):
    """out[:size, :size] = the inverse of the lower-triangular L[:size, :size] (lower)."""
    for j in range(size):
        for i in range(j):
            out[i, j] = 0.0
        out[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, size):
            s = 0.0
            for t in range(j, i):
                s -= L[i, t] * out[t, j]
            out[i, j] = s / L[i, i]


@kernel
def _product(a, b, out, transpose_a, transpose_b):
    """out = op(a) @ op(b) for small square matrices, op = transpose when asked."""
    k = out.shape[0]
    for i in range(k):
        for j in range(k):
            s = 0.0
            for r in range(k):
                left = a[r, i] if transpose_a else a[i, r]
                right = b[j, r] if transpose_b else b[r, j]
                s += left * right
            out[i, j] = s


@kernel
def factor_leading_block(crossprod, relative_cov_factor):
    """Factor T'A_l T + I for every level l of the leading term.

    Parameters are ``crossprod`` (n_levels, k, k), the per-level Z_l'Z_l, and
    ``relative_cov_factor`` T (k, k, lower triangular).

    Returns ``chol`` (n_levels, k, k), the lower factors L_l, ``shrink``
    (n_levels, k, k) = T (T'A_l T + I)^{-1} T', the log-determinant sum
    2 * sum log diag(L_l), and a status (True when every block was PD).
    """
    n_levels, k, _ = crossprod.shape
    chol = np.zeros((n_levels, k, k))
    shrink = np.zeros((n_levels, k, k))
    logdet = 0.0
    work = np.empty((k, k))
    tmp = np.empty((k, k))
    inv = np.empty((k, k))
    for l in range(n_levels):
        # work = T' A_l T + I
        _product(crossprod[l], relative_cov_factor, tmp, False, False)
        _product(relative_cov_factor, tmp, work, True, False)
        for i in range(k):
            work[i, i] += 1.0
        if not small_cholesky(work, chol[l]):
            return chol, shrink, np.inf, False
        L = chol[l]
        for i in range(k):
            logdet += 2.0 * np.log(L[i, i])
        # shrink = (T L^{-T}) (T L^{-T})'
        lower_inverse(L, inv, k)
        _product(relative_cov_factor, inv, tmp, False, True)
        _product(tmp, tmp, shrink[l], False, True)
    return chol, shrink, logdet, True


@kernel
def transpose_coupling(ptr, idx, size):
    """For every rest index a, the positions in ``idx`` where it occurs, as a CSR
    (``row_ptr``, ``positions``) over a; positions are in increasing level order."""
    n_levels = ptr.shape[0] - 1
    row_ptr = np.zeros(size + 1, dtype=np.int64)
    for pos in range(idx.shape[0]):
        row_ptr[idx[pos] + 1] += 1
    for a in range(size):
        row_ptr[a + 1] += row_ptr[a]
    fill = row_ptr[:-1].copy()
    positions = np.empty(idx.shape[0], dtype=np.int64)
    levels = np.empty(idx.shape[0], dtype=np.int64)
    for l in range(n_levels):
        for pos in range(ptr[l], ptr[l + 1]):
            a = idx[pos]
            positions[fill[a]] = pos
            levels[fill[a]] = l
            fill[a] += 1
    return row_ptr, positions, levels


@kernel
def downdate_rest(rest, ptr, idx, val, shrink, row_ptr, positions, levels, scale):
    """rest[a, b] -= s_a s_b sum_l (V_l S_l V_l')[a, b] for b >= a (upper triangle, by row).

    V_l = val[ptr[l]:ptr[l+1]] sits at the sorted rest indices idx[ptr[l]:ptr[l+1]];
    ``row_ptr``/``positions``/``levels`` (from :func:`transpose_coupling`) list, for
    every rest index a, where it occurs, so each output row is written while it is
    in cache. ``scale`` (s) is Lambda_r for scalar rest terms, or ones.
    """
    size = rest.shape[0]
    k = val.shape[1]
    w = np.empty(k)
    for a in range(size):
        sa = scale[a]
        for t in range(row_ptr[a], row_ptr[a + 1]):
            pos = positions[t]
            l = levels[t]
            for c in range(k):
                s = 0.0
                for r in range(k):
                    s += val[pos, r] * shrink[l, r, c]
                w[c] = s * sa
            for b in range(pos, ptr[l + 1]):
                s = 0.0
                for c in range(k):
                    s += w[c] * val[b, c]
                j = idx[b]
                rest[a, j] -= s * scale[j]


@kernel
def assemble_scaled_upper(crossprod, scale, n_random, out):
    """out[a, b] = crossprod[a, b] * scale[a] * scale[b] for b >= a, plus 1 on the first
    ``n_random`` diagonal entries: Lambda' A Lambda + diag(I, 0) for scalar terms, upper
    triangle only (the C-order triangle LAPACK reads as lower of the transpose)."""
    size = crossprod.shape[0]
    for a in range(size):
        sa = scale[a]
        for b in range(a, size):
            out[a, b] = crossprod[a, b] * sa * scale[b]
        if a < n_random:
            out[a, a] += 1.0


@kernel
def _prefetch_visit(idx, scaled, start):
    """Hint where a later visit to a level's entries starts: two cache lines of each of
    ``idx`` and ``scaled`` from ``start`` (see :mod:`interlace.kernels.prefetch`)."""
    prefetch(idx, start)
    prefetch(idx, start + 8)
    prefetch(scaled, start)
    prefetch(scaled, start + 8)


@parallel_kernel
def downdate_rest_scalar(rest, ptr, idx, val, shrink, row_ptr, positions, levels, scale, n_head, n_chunks):
    """:func:`downdate_rest` for a scalar leading term (k1 = 1), with the rest already
    scaled by Lambda_r: rest[a, b] -= s_a s_b sum_l v_la m_l v_lb for b >= a, on the
    rows a < ``n_head`` (the random effects) only. Each level lists the [X y] tail last
    (rest indices n_head, n_head + 1, ...), so a row's tail part is a contiguous loop;
    the tail x tail block is left to the caller (one small dense product). The rows
    are dealt to ``n_chunks`` chunks in turn (the upper triangle's rows shorten), the
    chunks to the threads."""
    size = rest.shape[0]
    n_tail = size - n_head
    scaled = np.empty(idx.shape[0])  # v_la s_a, once per entry instead of once per pair
    for t in numba.prange(idx.shape[0]):
        scaled[t] = val[t, 0] * scale[idx[t]]
    for chunk in numba.prange(n_chunks):
        for a in range(chunk, n_head, n_chunks):
            row = rest[a]
            end = row_ptr[a + 1]
            for t in range(row_ptr[a], end):
                if t + PREFETCH_AHEAD < end:
                    _prefetch_visit(idx, scaled, positions[t + PREFETCH_AHEAD])
                pos = positions[t]
                l = levels[t]
                w = scaled[pos] * shrink[l, 0, 0]
                tail_start = ptr[l + 1] - n_tail
                for b in range(pos, tail_start):
                    row[idx[b]] -= w * scaled[b]
                for j in range(n_tail):
                    row[n_head + j] -= w * scaled[tail_start + j]


@parallel_kernel
def downdate_and_weigh_rest_scalar(rest, weighted_diagonal, ptr, idx, val, shrink, second, row_ptr, positions,
                                   levels, scale, n_head, n_chunks):
    """:func:`downdate_rest_scalar`, and in the same pass over the coupling the symmetric
    matrix W = sum_l second_l s v_l v_l' s (s = ``scale``) on the rows a < ``n_head``,
    kept in the strictly lower triangle of ``rest`` itself, which the downdate and the
    Cholesky factorisation never touch (:mod:`interlace.linalg.mirrored`): W[a, b] for
    b > a at ``rest[size - 1 - a, b - a - 1]``, W[a, a] at ``weighted_diagonal[a]``,
    overwritten there; the tail rows are left to the caller as in the downdate.

    With second_l = m_l / d_l (m_l the level's shrinkage theta_1^2 / d_l) this is the
    matrix whose inner product with the rest's inverse is the leading term's share of
    the gradient's trace (:func:`lead_quadratic_forms` summed over the levels): the
    scatter is bound by fetching each level's entries, which the two sums share, so the
    second sum costs little beside the first. A row's W part is a contiguous stretch of
    another row (row a's mirror, ``size - 1 - a``), written while row a is."""
    size = rest.shape[0]
    n_tail = size - n_head
    scaled = np.empty(idx.shape[0])  # v_la s_a, once per entry instead of once per pair
    for t in numba.prange(idx.shape[0]):
        scaled[t] = val[t, 0] * scale[idx[t]]
    for chunk in numba.prange(n_chunks):
        for a in range(chunk, n_head, n_chunks):
            row = rest[a]
            mirror = rest[size - 1 - a]  # W[a, b] at mirror[b - a - 1], b > a
            for b in range(size - 1 - a):
                mirror[b] = 0.0
            shift = a + 1
            diagonal = 0.0
            end = row_ptr[a + 1]
            for t in range(row_ptr[a], end):
                if t + PREFETCH_AHEAD < end:
                    _prefetch_visit(idx, scaled, positions[t + PREFETCH_AHEAD])
                pos = positions[t]  # idx[pos] == a: the level's entries after it lie right of the diagonal
                l = levels[t]
                w = scaled[pos] * shrink[l, 0, 0]
                w2 = scaled[pos] * second[l]
                row[a] -= w * scaled[pos]
                diagonal += w2 * scaled[pos]
                tail_start = ptr[l + 1] - n_tail
                for b in range(pos + 1, tail_start):
                    j = idx[b]
                    row[j] -= w * scaled[b]
                    mirror[j - shift] += w2 * scaled[b]
                for j in range(n_tail):
                    row[n_head + j] -= w * scaled[tail_start + j]
                    mirror[n_head + j - shift] += w2 * scaled[tail_start + j]
            weighted_diagonal[a] = diagonal


@parallel_kernel
def mirrored_inner_product(a, mirrored, diagonal, m, n_chunks):
    """sum_(i, j < m) A_ij W_ij for symmetric A, of which only the upper triangle (j >= i)
    is read, and symmetric W kept mirrored (:mod:`interlace.linalg.mirrored`): W[i, j]
    for j > i at ``mirrored[size - 1 - i, j - i - 1]`` (size = ``mirrored.shape[0]``),
    W[i, i] at ``diagonal[i]``; the diagonal once, the rest twice. The rows are dealt to
    ``n_chunks`` chunks in turn, each summing on its own."""
    size = mirrored.shape[0]
    partial = np.zeros(n_chunks)
    for chunk in numba.prange(n_chunks):
        total = 0.0
        for i in range(chunk, m, n_chunks):
            ra = a[i]
            rw = mirrored[size - 1 - i]
            shift = i + 1
            s = 0.0
            for j in range(i + 1, m):
                s += ra[j] * rw[j - shift]
            total += ra[i] * diagonal[i] + 2.0 * s
        partial[chunk] = total
    out = 0.0
    for chunk in range(n_chunks):
        out += partial[chunk]
    return out


@kernel
def coupling_times(ptr, idx, val, vector):
    """(n_levels, k1) array of Z_1'[Z_rest X y] @ vector, per level of the leading term."""
    n_levels = ptr.shape[0] - 1
    k = val.shape[1]
    out = np.zeros((n_levels, k))
    for l in range(n_levels):
        for a in range(ptr[l], ptr[l + 1]):
            v = vector[idx[a]]
            for c in range(k):
                out[l, c] += val[a, c] * v
    return out


@kernel
def coupling_transpose_times(ptr, idx, val, weights, size):
    """(size,) array of [Z_rest X y]'Z_1 @ weights for a scalar leading term: the sum
    over the levels l of weights[l] times the level's coupling (first column of ``val``),
    placed at its rest indices; in the order of the entries (as ``numpy.bincount``)."""
    n_levels = ptr.shape[0] - 1
    out = np.zeros(size)
    for l in range(n_levels):
        w = weights[l]
        for a in range(ptr[l], ptr[l + 1]):
            out[idx[a]] += val[a, 0] * w
    return out


@kernel
def scale_symmetric_blocks(matrix, block_offset, block_k, block_levels, factors, factor_start):
    """matrix <- Lambda' matrix Lambda in place, Lambda block-diagonal over the random terms.

    Term t covers indices ``block_offset[t] + l*k + c`` for levels ``l`` and columns
    ``c < k = block_k[t]``, and its relative covariance factor T (k x k, lower
    triangular) is stored row-major in ``factors[factor_start[t]:factor_start[t] + k*k]``.
    Indices not covered by any term (the [X y] tail) are left unscaled.
    """
    size = matrix.shape[0]
    n_terms = block_offset.shape[0]
    max_k = 1
    for t in range(n_terms):
        max_k = max(max_k, block_k[t])
    tmp = np.empty(max_k)
    # columns: matrix[:, block] = matrix[:, block] @ T, row by row (contiguous)
    for i in range(size):
        for t in range(n_terms):
            k = block_k[t]
            f0 = factor_start[t]
            for l in range(block_levels[t]):
                base = block_offset[t] + l * k
                for c in range(k):
                    s = 0.0
                    for r in range(c, k):
                        s += matrix[i, base + r] * factors[f0 + r * k + c]
                    tmp[c] = s
                for c in range(k):
                    matrix[i, base + c] = tmp[c]
    # rows: matrix[block, :] = T' @ matrix[block, :]
    for t in range(n_terms):
        k = block_k[t]
        f0 = factor_start[t]
        for l in range(block_levels[t]):
            base = block_offset[t] + l * k
            for c in range(k):
                for r in range(c, k):
                    f = factors[f0 + r * k + c]
                    if r == c:
                        for j in range(size):
                            matrix[base + c, j] *= f
                    else:
                        for j in range(size):
                            matrix[base + c, j] += f * matrix[base + r, j]


@parallel_kernel
def lead_quadratic_forms(ptr, idx, val, scale, row_ptr, positions, levels, inverse, n_head, n_chunks):
    """Per level l of a scalar leading term, v_l' W v_l over the rest indices below
    ``n_head``, where v_l = val[ptr[l]:ptr[l+1], 0] * scale[idx] (the level's coupling,
    scaled by Lambda_r) and W = ``inverse`` (symmetric; only its upper triangle,
    W[a, b] with b >= a, is read).

    W is read row by row (``row_ptr``/``positions``/``levels`` from
    :func:`transpose_coupling` list where each rest index occurs), so a row stays in
    cache while every level that meets it adds v_la (W_aa v_la + 2 sum_(b > a) W_ab
    v_lb); the rows are dealt to ``n_chunks`` chunks in turn, each chunk summing into
    its own copy of the result.
    """
    n_levels = ptr.shape[0] - 1
    scaled = np.empty(idx.shape[0])
    for t in numba.prange(idx.shape[0]):
        scaled[t] = val[t, 0] * scale[idx[t]]
    partial = np.zeros((n_chunks, n_levels))
    for chunk in numba.prange(n_chunks):
        out = partial[chunk]
        for a in range(chunk, n_head, n_chunks):
            row = inverse[a]
            end = row_ptr[a + 1]
            for t in range(row_ptr[a], end):
                if t + PREFETCH_AHEAD < end:
                    _prefetch_visit(idx, scaled, positions[t + PREFETCH_AHEAD])
                pos = positions[t]
                l = levels[t]
                cross = 0.0
                for r in range(pos + 1, ptr[l + 1]):
                    b = idx[r]
                    if b >= n_head:
                        break
                    cross += scaled[r] * row[b]
                va = scaled[pos]
                out[l] += va * (2.0 * cross + va * row[a])
    total = np.zeros(n_levels)
    for chunk in range(n_chunks):
        for l in range(n_levels):
            total[l] += partial[chunk, l]
    return total
