"""The rest's Schur complement on a sparse pattern: where each level's downdate lands,
and the downdate itself, for :mod:`interlace.linalg.sparse_rest`."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .sparse_cholesky import find_entry


@kernel
def count_level_pairs(ptr):
    """Number of (a >= b) pairs within each level's coupling, summed."""
    total = 0
    for l in range(ptr.shape[0] - 1):
        m = ptr[l + 1] - ptr[l]
        total += m * (m + 1) // 2
    return total


@kernel
def level_pair_positions(ptr, idx, input_indptr, input_indices, out):
    """Position in the lower-CSC input layout of every pair (idx[i], idx[j]), j <= i,
    of each level's coupling, level by level in the order :func:`downdate_pattern`
    walks them; -1 if the pattern lacks the entry."""
    t = 0
    for l in range(ptr.shape[0] - 1):
        for i in range(ptr[l], ptr[l + 1]):
            row = idx[i]
            for j in range(ptr[l], i + 1):
                out[t] = find_entry(input_indptr, input_indices, row, idx[j])
                t += 1


@kernel
def downdate_pattern(values, ptr, idx, val, shrink, scale, pair_positions):
    """values[pos(a, b)] -= s_a s_b (V_l S_l V_l')[a, b] for every level l and pair
    a >= b of its coupling (V_l = val[ptr[l]:ptr[l+1]] at rest indices idx, S_l =
    ``shrink[l]``, s = ``scale``)."""
    k = val.shape[1]
    w = np.empty(k)
    t = 0
    for l in range(ptr.shape[0] - 1):
        for i in range(ptr[l], ptr[l + 1]):
            si = scale[idx[i]]
            for c in range(k):
                s = 0.0
                for r in range(k):
                    s += val[i, r] * shrink[l, r, c]
                w[c] = s * si
            for j in range(ptr[l], i + 1):
                s = 0.0
                for c in range(k):
                    s += w[c] * val[j, c]
                values[pair_positions[t]] -= s * scale[idx[j]]
                t += 1


@kernel
def scale_pattern(values, rows, columns, scale, n_random, out):
    """out = values * s_row * s_col, plus 1 on the diagonal of the first ``n_random``
    indices: Lambda_r' A Lambda_r + diag(I, 0) on the pattern, scalar rest terms."""
    for t in range(values.shape[0]):
        r = rows[t]
        c = columns[t]
        out[t] = values[t] * scale[r] * scale[c]
        if r == c and r < n_random:
            out[t] += 1.0
