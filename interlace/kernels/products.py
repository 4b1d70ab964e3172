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
