"""An in-place sort of a run of integers, for kernels that sort many short runs.

Written out rather than ``np.sort``/``np.argsort`` in the kernels: numba compiles its
quicksort (and, for ``a[perm]`` and slice assignment, its fancy indexing and their
error messages) in every kernel that uses them, seconds in the first process with an
empty cache; this one compiles in a fraction of that.
"""

from __future__ import annotations

from ._jit import kernel

INSERTION_MAX = 16
"""Longest run sorted by insertion (quadratic, fastest on short runs); longer ones are
heap-sorted (n log n whatever the order)."""


@kernel
def sort_integers(keys, start, stop):
    """Sort ``keys[start:stop]`` in place, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> keys = np.array([9, 3, 1, 2, 7])
    >>> sort_integers(keys, 1, 4)
    >>> keys.tolist()
    [9, 1, 2, 3, 7]
    """
    n = stop - start
    if n <= INSERTION_MAX:
        for i in range(start + 1, stop):
            key = keys[i]
            j = i - 1
            while j >= start and keys[j] > key:
                keys[j + 1] = keys[j]
                j -= 1
            keys[j + 1] = key
        return
    # heapsort: a max-heap on keys[start:stop] (children of i at 2i+1, 2i+2, offsets
    # from start), then the largest moved to the end one at a time
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(keys, start, root, n)
    for end in range(n - 1, 0, -1):
        top = keys[start]
        keys[start] = keys[start + end]
        keys[start + end] = top
        _sift_down(keys, start, 0, end)


@kernel
def _sift_down(keys, start, root, size):
    """Restore the max-heap below ``root`` in the heap keys[start:start+size]."""
    key = keys[start + root]
    while True:
        child = 2 * root + 1
        if child >= size:
            break
        if child + 1 < size and keys[start + child + 1] > keys[start + child]:
            child += 1
        if keys[start + child] <= key:
            break
        keys[start + root] = keys[start + child]
        root = child
    keys[start + root] = key
