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
from .sorting import sort_integers


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
def random_crossprod(codes, designs, design_start, index_offset, xy, size):
    """[Z X y]'[Z X y] for the given terms as a dense symmetric (size x size) array,
    except its [X y]'[X y] block, left zero (one BLAS product for the caller:
    :func:`interlace.linalg.system.dense_crossprod`).

    The [X y] columns occupy the last ``xy.shape[1]`` indices. Each term's own block
    is block-diagonal and its [X y] block has one row per effect: both accumulate in
    small arrays read in row order, so only the blocks between two terms are written
    at scattered places.
    """
    n = xy.shape[0]
    n_tail = xy.shape[1]
    n_random = size - n_tail
    n_terms = codes.shape[0]
    max_k = 1
    for t in range(n_terms):
        max_k = max(max_k, design_start[t + 1] - design_start[t])
    own = np.zeros((n_random, max_k))  # effect e: its row of the level's k x k block
    by_tail = np.zeros((n_random, n_tail))
    out = np.zeros((size, size))
    for i in range(n):
        for t in range(n_terms):
            k = design_start[t + 1] - design_start[t]
            d0 = design_start[t]
            base = index_offset[t] + codes[t, i] * k
            for a in range(k):
                va = designs[i, d0 + a]
                for b in range(k):
                    own[base + a, b] += va * designs[i, d0 + b]
                for c in range(n_tail):
                    by_tail[base + a, c] += va * xy[i, c]
            for s in range(t + 1, n_terms):
                ks = design_start[s + 1] - design_start[s]
                base_s = index_offset[s] + codes[s, i] * ks
                for a in range(k):
                    va = designs[i, d0 + a]
                    for b in range(ks):
                        product = va * designs[i, design_start[s] + b]
                        out[base + a, base_s + b] += product
                        out[base_s + b, base + a] += product
    for t in range(n_terms):
        k = design_start[t + 1] - design_start[t]
        stop = index_offset[t + 1] if t + 1 < n_terms else n_random
        for e in range(index_offset[t], stop):
            first = e - (e - index_offset[t]) % k  # the first effect of e's level
            for b in range(k):
                out[e, first + b] = own[e, b]
    for e in range(n_random):
        for c in range(n_tail):
            out[e, n_random + c] = by_tail[e, c]
            out[n_random + c, e] = by_tail[e, c]
    return out


@kernel
def coupling_crossprod(lead_codes, lead_design, n_lead_levels, codes, designs, design_start,
                       index_offset, xy, size):
    """Z_1'[Z_rest X y], stored by level of the leading term (a CSR over its levels).

    Returns ``ptr`` (n_lead_levels + 1), ``idx`` (nnz, sorted within each level) and
    ``val`` (nnz x k1): level ``l`` of the leading term touches the rest indices
    ``idx[ptr[l]:ptr[l+1]]`` with the k1-vectors ``val[ptr[l]:ptr[l+1]]``. Every level
    with rows lists all the [X y] indices, last.

    The rows are read once in their own order (the [X y] part is accumulated there)
    and once in level order, their random-effect entries gathered into contiguous
    arrays; the two passes over the levels then read memory in sequence.
    """
    n = xy.shape[0]
    k1 = lead_design.shape[1]
    n_tail = xy.shape[1]
    tail_offset = size - n_tail
    n_terms = codes.shape[0]
    width = designs.shape[1]
    # rows per leading level, and each level's [X y] entries, in row order
    counts = np.zeros(n_lead_levels + 1, dtype=np.int64)
    tail = np.zeros((n_lead_levels, n_tail, k1))
    for i in range(n):
        g = lead_codes[i]
        counts[g + 1] += 1
        for k in range(k1):  # the level's [X y] sums: a contiguous run per k when k1 = 1
            w = lead_design[i, k]
            for c in range(n_tail):
                tail[g, c, k] += w * xy[i, c]
    for l in range(n_lead_levels):
        counts[l + 1] += counts[l]
    # the rows' random-effect entries in level order (counting sort)
    fill = np.empty(n_lead_levels, dtype=np.int64)
    for l in range(n_lead_levels):
        fill[l] = counts[l]
    sorted_idx = np.empty((n, width), dtype=np.int64)
    sorted_val = np.empty((n, width, k1))
    for i in range(n):
        g = lead_codes[i]
        r = fill[g]
        fill[g] += 1
        count = 0
        for t in range(n_terms):
            k = design_start[t + 1] - design_start[t]
            base = index_offset[t] + codes[t, i] * k
            for c in range(k):
                sorted_idx[r, count] = base + c
                v = designs[i, design_start[t] + c]
                for j in range(k1):
                    sorted_val[r, count, j] = lead_design[i, j] * v
                count += 1
    marker = np.empty(size, dtype=np.int64)
    for j in range(size):
        marker[j] = -1
    # pass 1: number of distinct indices per level
    ptr = np.zeros(n_lead_levels + 1, dtype=np.int64)
    for l in range(n_lead_levels):
        nnz = n_tail if counts[l + 1] > counts[l] else 0
        for r in range(counts[l], counts[l + 1]):
            for a in range(width):
                j = sorted_idx[r, a]
                if marker[j] != l:
                    marker[j] = l
                    nnz += 1
        ptr[l + 1] = ptr[l] + nnz
    # pass 2: each level's distinct random indices, sorted, then their sums (in row
    # order), then the [X y] part
    idx = np.empty(ptr[-1], dtype=np.int64)
    val = np.zeros((ptr[-1], k1))
    position = np.empty(size, dtype=np.int64)
    for j in range(size):
        marker[j] = -1
    for l in range(n_lead_levels):
        start = ptr[l]
        nnz = 0
        for r in range(counts[l], counts[l + 1]):
            for a in range(width):
                j = sorted_idx[r, a]
                if marker[j] != l:
                    marker[j] = l
                    idx[start + nnz] = j
                    nnz += 1
        sort_integers(idx, start, start + nnz)
        for p in range(start, start + nnz):
            position[idx[p]] = p
        for r in range(counts[l], counts[l + 1]):
            for a in range(width):
                pos = position[sorted_idx[r, a]]
                for c in range(k1):
                    val[pos, c] += sorted_val[r, a, c]
        if counts[l + 1] == counts[l]:
            continue
        for c in range(n_tail):
            idx[start + nnz + c] = tail_offset + c
            for k in range(k1):
                val[start + nnz + c, k] = tail[l, c, k]
    return ptr, idx, val


@kernel
def coupling_slots(lead_codes, codes, designs, design_start, index_offset, ptr, idx):
    """Where each row's random-effect entries sit in the coupling of
    :func:`coupling_crossprod` (``ptr``/``idx`` of the same rows' structure): an
    (n, width) array of positions in ``val``, so that new row weights refill the values
    without rebuilding the structure (:func:`refill_coupling`)."""
    n = lead_codes.shape[0]
    n_terms = codes.shape[0]
    width = designs.shape[1]
    out = np.empty((n, width), dtype=np.int64)
    for i in range(n):
        g = lead_codes[i]
        a, b = ptr[g], ptr[g + 1]
        count = 0
        for t in range(n_terms):
            k = design_start[t + 1] - design_start[t]
            base = index_offset[t] + codes[t, i] * k
            for c in range(k):
                target = base + c
                lo, hi = a, b
                while lo < hi:
                    mid = (lo + hi) // 2
                    if idx[mid] < target:
                        lo = mid + 1
                    else:
                        hi = mid
                out[i, count] = lo
                count += 1
    return out


@kernel
def refill_coupling(lead_codes, lead_design, designs, xy, slots, ptr, nnz):
    """The values of :func:`coupling_crossprod` for new rows of the same structure (the
    designs and [X y] already scaled by the rows' weights), from :func:`coupling_slots`."""
    n = lead_codes.shape[0]
    k1 = lead_design.shape[1]
    width = designs.shape[1]
    n_tail = xy.shape[1]
    val = np.zeros((nnz, k1))
    for i in range(n):
        g = lead_codes[i]
        tail = ptr[g + 1] - n_tail
        for j in range(k1):
            lj = lead_design[i, j]
            for a in range(width):
                val[slots[i, a], j] += lj * designs[i, a]
            for c in range(n_tail):
                val[tail + c, j] += lj * xy[i, c]
    return val


@kernel
def _merged_level(indptr, indices, data, k, level, first_column, out_idx, out_val, start):
    """Merge the k sorted CSR rows of one level (rows level*k ... level*k + k - 1),
    their columns from ``first_column`` on: their distinct column indices less
    ``first_column`` into ``out_idx[start:]`` with each row's values in ``out_val[:, c]``
    (when ``out_idx`` has room; else only counted); the count."""
    count = 0
    position = np.empty(k, dtype=np.int64)
    for c in range(k):
        position[c] = indptr[level * k + c]
        while position[c] < indptr[level * k + c + 1] and indices[position[c]] < first_column:
            position[c] += 1
    fill = out_idx.shape[0] > 0
    while True:
        smallest = -1
        for c in range(k):
            if position[c] < indptr[level * k + c + 1]:
                column = indices[position[c]]
                if smallest < 0 or column < smallest:
                    smallest = column
        if smallest < 0:
            return count
        for c in range(k):
            if position[c] < indptr[level * k + c + 1] and indices[position[c]] == smallest:
                if fill:
                    out_val[start + count, c] = data[position[c]]
                position[c] += 1
        if fill:
            out_idx[start + count] = smallest - first_column
        count += 1


@kernel
def coupling_from_rows(indptr, indices, data, k, n_levels, tail, n_rest_random):
    """The leading term's blocks from its cross-products already summed: the CSR rows
    of Z_1'Z (``indptr``, ``indices`` sorted within rows, ``data``: the upper triangle's
    first n_levels k rows, k rows a level, level by level) and Z_1'[X y] (``tail``,
    (n_levels k) x (p + 1), dense). Returns Z_1'Z_1 by level ((n_levels, k, k), from the
    columns before n_levels k) and the coupling in :func:`coupling_crossprod`'s form
    (``ptr``, ``idx``, ``val``: the later columns, less n_levels k), every level listing
    its [X y] entries (indices ``n_rest_random`` on) after its random ones."""
    n_tail = tail.shape[1]
    first = n_levels * k
    own = np.zeros((n_levels, k, k))
    for row in range(first):
        level = row // k
        for pos in range(indptr[row], indptr[row + 1]):
            column = indices[pos]
            if column >= first:
                break
            own[level, row % k, column % k] = data[pos]
            own[level, column % k, row % k] = data[pos]
    ptr = np.zeros(n_levels + 1, dtype=np.int64)
    none_idx = np.empty(0, dtype=np.int64)
    none_val = np.empty((0, k))
    for level in range(n_levels):
        ptr[level + 1] = (ptr[level] + _merged_level(indptr, indices, data, k, level, first, none_idx, none_val, 0)
                          + n_tail)
    idx = np.empty(ptr[n_levels], dtype=np.int64)
    val = np.zeros((ptr[n_levels], k))
    for level in range(n_levels):
        count = _merged_level(indptr, indices, data, k, level, first, idx, val, ptr[level])
        for j in range(n_tail):
            idx[ptr[level] + count + j] = n_rest_random + j
            for c in range(k):
                val[ptr[level] + count + j, c] = tail[level * k + c, j]
    return own, ptr, idx, val
