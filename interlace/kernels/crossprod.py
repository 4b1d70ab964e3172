"""Cross-products of [Z X y] built from integer group codes, never from a dense Z.

A random-effects term is given by its ``group_codes`` (int32, one per row), its
per-row ``design`` (float64, n x k: the columns multiplying that term's effects)
and its offset in the global index of random effects, where level ``l`` of the
term owns the ``k`` consecutive indices ``offset + l*k ... offset + l*k + k - 1``.

Several terms are passed as stacked arrays: ``codes`` (n_terms x n),
``designs`` (n x sum(k)), ``design_start`` (n_terms + 1: the first design column
of each term) and ``index_offset`` (n_terms: the first global index of each term).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def block_diagonal_crossprod(codes, design, n_levels):
    """Z'Z of one term: an (n_levels, k, k) array of per-level blocks."""
    n, k = design.shape
    out = np.zeros((n_levels, k, k))
    for i in range(n):
        g = codes[i]
        for a in range(k):
            va = design[i, a]
            for b in range(k):
                out[g, a, b] += va * design[i, b]
    return out


@kernel
def _row_entries(i, codes, designs, design_start, index_offset, xy, tail_offset, idx, val):
    """Fill idx/val with the non-zero entries of row i of [Z_rest X y]; return their count."""
    count = 0
    n_terms = codes.shape[0]
    for t in range(n_terms):
        k = design_start[t + 1] - design_start[t]
        base = index_offset[t] + codes[t, i] * k
        for c in range(k):
            idx[count] = base + c
            val[count] = designs[i, design_start[t] + c]
            count += 1
    for c in range(xy.shape[1]):
        idx[count] = tail_offset + c
        val[count] = xy[i, c]
        count += 1
    return count


@kernel
def dense_crossprod(codes, designs, design_start, index_offset, xy, size):
    """[Z X y]'[Z X y] for the given terms as a dense symmetric (size x size) array.

    The [X y] columns occupy the last ``xy.shape[1]`` indices.
    """
    n = xy.shape[0]
    tail_offset = size - xy.shape[1]
    width = designs.shape[1] + xy.shape[1]
    idx = np.empty(width, dtype=np.int64)
    val = np.empty(width)
    out = np.zeros((size, size))
    for i in range(n):
        count = _row_entries(i, codes, designs, design_start, index_offset, xy, tail_offset, idx, val)
        for a in range(count):
            ia = idx[a]
            va = val[a]
            for b in range(count):
                out[ia, idx[b]] += va * val[b]
    return out


@kernel
def coupling_crossprod(lead_codes, lead_design, n_lead_levels, codes, designs, design_start,
                       index_offset, xy, size):
    """Z_1'[Z_rest X y], stored by level of the leading term (a CSR over its levels).

    Returns ``ptr`` (n_lead_levels + 1), ``idx`` (nnz, sorted within each level) and
    ``val`` (nnz x k1): level ``l`` of the leading term touches the rest indices
    ``idx[ptr[l]:ptr[l+1]]`` with the k1-vectors ``val[ptr[l]:ptr[l+1]]``.
    """
    n = xy.shape[0]
    k1 = lead_design.shape[1]
    tail_offset = size - xy.shape[1]
    width = designs.shape[1] + xy.shape[1]
    # rows grouped by leading level (counting sort)
    counts = np.zeros(n_lead_levels + 1, dtype=np.int64)
    for i in range(n):
        counts[lead_codes[i] + 1] += 1
    for l in range(n_lead_levels):
        counts[l + 1] += counts[l]
    order = np.empty(n, dtype=np.int64)
    fill = counts[:-1].copy()
    for i in range(n):
        g = lead_codes[i]
        order[fill[g]] = i
        fill[g] += 1
    row_idx = np.empty(width, dtype=np.int64)
    row_val = np.empty(width)
    marker = np.full(size, -1, dtype=np.int64)
    # pass 1: number of distinct rest indices per level
    ptr = np.zeros(n_lead_levels + 1, dtype=np.int64)
    for l in range(n_lead_levels):
        nnz = 0
        for r in range(counts[l], counts[l + 1]):
            i = order[r]
            count = _row_entries(i, codes, designs, design_start, index_offset, xy, tail_offset,
                                 row_idx, row_val)
            for a in range(count):
                if marker[row_idx[a]] != l:
                    marker[row_idx[a]] = l
                    nnz += 1
        ptr[l + 1] = ptr[l] + nnz
    # pass 2: accumulate
    idx = np.empty(ptr[-1], dtype=np.int64)
    val = np.zeros((ptr[-1], k1))
    position = np.empty(size, dtype=np.int64)
    marker[:] = -1
    for l in range(n_lead_levels):
        nnz = 0
        for r in range(counts[l], counts[l + 1]):
            i = order[r]
            count = _row_entries(i, codes, designs, design_start, index_offset, xy, tail_offset,
                                 row_idx, row_val)
            for a in range(count):
                j = row_idx[a]
                if marker[j] != l:
                    marker[j] = l
                    position[j] = ptr[l] + nnz
                    idx[ptr[l] + nnz] = j
                    nnz += 1
                pos = position[j]
                for c in range(k1):
                    val[pos, c] += lead_design[i, c] * row_val[a]
        # sort this level's entries by index
        start = ptr[l]
        stop = ptr[l + 1]
        perm = np.argsort(idx[start:stop])
        idx[start:stop] = idx[start:stop][perm]
        val[start:stop] = val[start:stop][perm]
    return ptr, idx, val
