"""Quadratic forms of a dense inverse over each leading level's coupling entries: the
part of the conditional variances of the leading term's effects that the rest adds.

For level ``l`` of the leading term, with entries ``idx[starts[l]:starts[l+1]]`` (rest
indices, sorted) and their values ``val`` (one k1-vector each),

    out[l] = sum_(i, j) inverse[idx_i, idx_j] val_i val_j'    (k1 x k1)

``inverse`` is a symmetric matrix of which only the lower triangle is read (LAPACK's
``potri`` fills only that). The cost is the sum over levels of the squared number of
entries, not the rest's size times the levels'.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def level_quadratic_forms(starts, idx, val, inverse):
    n_levels = starts.shape[0] - 1
    k1 = val.shape[1]
    out = np.zeros((n_levels, k1, k1))
    for level in range(n_levels):
        for i in range(starts[level], starts[level + 1]):
            a = idx[i]
            for j in range(starts[level], i + 1):
                b = idx[j]
                entry = inverse[a, b] if a >= b else inverse[b, a]
                for r in range(k1):
                    vr = val[i, r] * entry
                    for c in range(k1):
                        out[level, r, c] += vr * val[j, c]
                        if j < i:
                            out[level, c, r] += vr * val[j, c]
    return out
