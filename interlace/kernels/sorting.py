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
    # heapsort: first a max-heap on keys[start:stop] (the children of i at 2i+1 and
    # 2i+2, counted from start), built by sifting down each parent from the last; then
    # the largest key moved to the end of the heap, which shrinks by one, and the new
    # root sifted down. One sift-down loop serves both phases.
    parent = n // 2
    size = n
    while True:
        if parent > 0:
            parent -= 1
            root = parent
        else:
            size -= 1
            if size <= 0:
                return
            top = keys[start]
            keys[start] = keys[start + size]
            keys[start + size] = top
            root = 0
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
