"""Kernels of the regression diagnostics: selected quadratic forms and cross-product downdates.

Both work on sparse matrices given as their compressed arrays (``indptr``, ``indices``,
``data``), so that nothing of size n x n is ever formed.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def column_quadratic_forms(indptr, indices, data, matrix):
    """w_j' S w_j for every column w_j of a sparse matrix W (CSC arrays) and a dense S.

    Parameters
    ----------
    indptr, indices, data : numpy.ndarray
        The CSC arrays of W (rows index ``matrix``).
    matrix : numpy.ndarray
        S, dense and symmetric.

    Returns
    -------
    numpy.ndarray
        One value per column of W; a column costs (its non-zeros)^2.
    """
    n_columns = indptr.shape[0] - 1
    out = np.zeros(n_columns)
    for j in range(n_columns):
        start = indptr[j]
        stop = indptr[j + 1]
        total = 0.0
        for a in range(start, stop):
            row = matrix[indices[a]]
            partial = 0.0
            for b in range(start, stop):
                partial += row[indices[b]] * data[b]
            total += data[a] * partial
        out[j] = total
    return out


@kernel
def subtract_coupling(ptr, idx, val, removed_ptr, removed_idx, removed_val):
    """val -= removed_val at matching (level, index) entries, in place.

    Both couplings are CSR over the leading term's levels with sorted indices within
    each level (as :func:`interlace.kernels.crossprod.coupling_crossprod` builds them);
    the removed one's pattern must be contained in the other's.

    Returns
    -------
    int
        The number of removed entries that had no match (0 when all went well).
    """
    n_levels = ptr.shape[0] - 1
    k = val.shape[1]
    missing = 0
    for l in range(n_levels):
        position = ptr[l]
        stop = ptr[l + 1]
        for r in range(removed_ptr[l], removed_ptr[l + 1]):
            target = removed_idx[r]
            while position < stop and idx[position] < target:
                position += 1
            if position == stop or idx[position] != target:
                missing += 1
                continue
            for c in range(k):
                val[position, c] -= removed_val[r, c]
    return missing
