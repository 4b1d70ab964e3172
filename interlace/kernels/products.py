"""Products with Z from codes: Z b (per row) and Z' r (per level)."""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def z_times(codes, design, effects):
    """Z_t b_t for one term: per row, design[i] . effects[codes[i]] (effects is n_levels x k)."""
    n, k = design.shape
    out = np.zeros(n)
    for i in range(n):
        g = codes[i]
        s = 0.0
        for c in range(k):
            s += design[i, c] * effects[g, c]
        out[i] = s
    return out


@kernel
def z_transpose_times(codes, design, vector, n_levels):
    """Z_t' v for one term as an (n_levels, k) array."""
    n, k = design.shape
    out = np.zeros((n_levels, k))
    for i in range(n):
        g = codes[i]
        for c in range(k):
            out[g, c] += design[i, c] * vector[i]
    return out


@kernel
def stacked_z_transpose_times(codes, designs, design_start, index_offset, vector, size):
    """Z' v for several terms stacked as the cross-product kernels take them
    (:mod:`interlace.kernels.crossprod`), in one pass over the rows: a (size,) vector
    whose first entries are each term's Z_t' v at its ``index_offset`` (level by level,
    k per level; the sums in row order, as :func:`z_transpose_times`'), the rest 0."""
    n = vector.shape[0]
    out = np.zeros(size)
    for t in range(codes.shape[0]):
        d0 = design_start[t]
        k = design_start[t + 1] - d0
        offset = index_offset[t]
        for i in range(n):
            base = offset + codes[t, i] * k
            v = vector[i]
            for a in range(k):
                out[base + a] += designs[i, d0 + a] * v
    return out
