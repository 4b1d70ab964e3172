"""The one place that decides how kernels are compiled.

Every kernel in :mod:`interlace.kernels` is decorated with :data:`kernel`, so the
compile options (on-disk cache, no GIL, no Python objects) are set here once.
"""

from __future__ import annotations

import numba

kernel = numba.njit(cache=True, nogil=True)
"""Decorator for compiled kernels: ``numba.njit(cache=True, nogil=True)``."""
