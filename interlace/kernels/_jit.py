"""The one place that decides how kernels are compiled.

Every kernel in :mod:`interlace.kernels` is decorated with :data:`kernel` or, when it
splits its work over threads with ``numba.prange``, :data:`parallel_kernel`, so the
compile options (on-disk cache, no GIL, no Python objects) are set here once. A
parallel kernel takes the number of chunks it splits its work into from its caller,
usually a multiple of :func:`thread_count` (a compiled kernel that asks numba for the
thread count cannot be cached).
"""

from __future__ import annotations

import numba

kernel = numba.njit(cache=True, nogil=True)
"""Decorator for compiled kernels: ``numba.njit(cache=True, nogil=True)``."""

parallel_kernel = numba.njit(cache=True, nogil=True, parallel=True)
"""Decorator for compiled kernels whose outer loop is a ``numba.prange``."""


def thread_count() -> int:
    """The threads a parallel kernel runs on: ``NUMBA_NUM_THREADS``, by default the
    machine's cores (``numba.get_num_threads()``)."""
    return numba.get_num_threads()
