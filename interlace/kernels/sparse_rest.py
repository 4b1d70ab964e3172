"""The rest's Schur complement on a sparse pattern: where each level's downdate lands,
and the downdate itself, for :mod:`interlace.linalg.sparse_rest`."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .sparse_cholesky import find_entry


@kernel
def rest_lower_pattern(ptr, idx, row_ptr, positions, levels, size, n_tail):
    """The lower CSC pattern (``indptr``, ``indices``: int64, sorted rows) of the sparse
    rest of order ``size``: the diagonal, every pair of rest indices that some leading
    level's coupling ``idx[ptr[l]:ptr[l+1]]`` (sorted, the [X y] tail last) holds, and
    the last ``n_tail`` rows whole.

    Column a < size - n_tail is built from the levels that meet a (``row_ptr``,
    ``positions``, ``levels`` from
    :func:`~interlace.kernels.blockdiag.transpose_coupling`): the random indices after a
    in each such level, deduplicated with a marker and sorted, then the tail.
    """
    n_head = size - n_tail
    marker = np.full(size, -1, dtype=np.int64)
    indptr = np.zeros(size + 1, dtype=np.int64)
    for a in range(size):
        count = size - a
        if a < n_head:
            count = 1 + n_tail
            marker[a] = a
            for t in range(row_ptr[a], row_ptr[a + 1]):
                l = levels[t]
                for b in range(positions[t] + 1, ptr[l + 1]):
                    j = idx[b]
                    if j >= n_head:
                        break
                    if marker[j] != a:
                        marker[j] = a
                        count += 1
        indptr[a + 1] = indptr[a] + count
    indices = np.empty(indptr[size], dtype=np.int64)
    marker[:] = -1
    for a in range(size):
        start = indptr[a]
        if a >= n_head:
            for j in range(a, size):
                indices[start + j - a] = j
            continue
        indices[start] = a
        marker[a] = a
        count = 1
        for t in range(row_ptr[a], row_ptr[a + 1]):
            l = levels[t]
            for b in range(positions[t] + 1, ptr[l + 1]):
                j = idx[b]
                if j >= n_head:
                    break
                if marker[j] != a:
                    marker[j] = a
                    indices[start + count] = j
                    count += 1
        indices[start + 1 : start + count] = np.sort(indices[start + 1 : start + count])
        for c in range(n_tail):
            indices[start + count + c] = n_head + c
    return indptr, indices


@kernel
def count_level_pairs(ptr, idx, n_head):
    """Number of (a >= b) pairs of random indices (below ``n_head``) within each
    level's coupling, summed."""
    total = 0
    for l in range(ptr.shape[0] - 1):
        m = 0
        for i in range(ptr[l], ptr[l + 1]):
            if idx[i] < n_head:
                m += 1
        total += m * (m + 1) // 2
    return total


@kernel
def level_pair_offsets(ptr, idx, input_indptr, input_indices, n_head, out):
    """For every pair (idx[i], idx[j]), j <= i, of random indices (below ``n_head``) in
    each level's coupling, level by level in the order :func:`downdate_pattern` walks
    them: the entry's offset from the start of its column idx[j] in the lower-CSC input
    layout, written into ``out`` (uint16 when every column is that short). Returns the
    number of pairs the layout lacks (none on a pattern that holds every clique)."""
    missing = 0
    t = 0
    for l in range(ptr.shape[0] - 1):
        for i in range(ptr[l], ptr[l + 1]):
            row = idx[i]
            if row >= n_head:
                break
            for j in range(ptr[l], i + 1):
                position = find_entry(input_indptr, input_indices, row, idx[j])
                if position < 0:
                    missing += 1
                    position = input_indptr[idx[j]]
                out[t] = position - input_indptr[idx[j]]
                t += 1
    return missing


@kernel
def downdate_pattern(values, ptr, idx, val, shrink, scale, input_indptr, pair_offsets, n_head):
    """values[pos(a, b)] -= s_a s_b (V_l S_l V_l')[a, b] for every level l and pair
    a >= b of its coupling (V_l = val[ptr[l]:ptr[l+1]] at rest indices idx, sorted, the
    [X y] indices from ``n_head`` on last; S_l = ``shrink[l]``, s = ``scale``) on the
    lower-CSC input layout.

    The position of a pair of random indices is its column's start plus its offset
    from :func:`level_pair_offsets`; an [X y] row a sits ``size - a`` entries before the
    end of every column (the pattern holds the [X y] rows whole)."""
    k = val.shape[1]
    size = input_indptr.shape[0] - 1
    w = np.empty(k)
    t = 0
    for l in range(ptr.shape[0] - 1):
        for i in range(ptr[l], ptr[l + 1]):
            a = idx[i]
            si = scale[a]
            for c in range(k):
                s = 0.0
                for r in range(k):
                    s += val[i, r] * shrink[l, r, c]
                w[c] = s * si
            for j in range(ptr[l], i + 1):
                b = idx[j]
                if a < n_head:
                    position = input_indptr[b] + pair_offsets[t]
                    t += 1
                else:
                    position = input_indptr[b + 1] - (size - a)
                s = 0.0
                for c in range(k):
                    s += w[c] * val[j, c]
                values[position] -= s * scale[b]


@kernel
def scale_pattern(values, input_indptr, input_indices, scale, n_random, out):
    """out = values * s_row * s_col, plus 1 on the diagonal of the first ``n_random``
    indices: Lambda_r' A Lambda_r + diag(I, 0) on the lower CSC input layout, scalar
    rest terms."""
    for c in range(input_indptr.shape[0] - 1):
        sc = scale[c]
        for t in range(input_indptr[c], input_indptr[c + 1]):
            r = input_indices[t]
            out[t] = values[t] * scale[r] * sc
            if r == c and r < n_random:
                out[t] += 1.0
