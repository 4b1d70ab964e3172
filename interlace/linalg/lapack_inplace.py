"""LAPACK on the leading block of a larger matrix, in place.

scipy's wrappers take a whole array: the inverse of the leading m x m block of a
factor held in a larger buffer would need that block copied out first, a second
matrix of the rest's size. Here ``dpotri`` is called through scipy's own LAPACK (the
function pointer :mod:`scipy.linalg.cython_lapack` exports, called with ctypes: no
compiler) with the buffer's leading dimension, so the block is inverted where it lies
and the rest of the buffer is left as it was.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

_INT_P = ctypes.POINTER(ctypes.c_int)


@cache
def _dpotri():
    """scipy's ``dpotri(uplo, n, a, lda, info)``, callable from Python."""
    import scipy.linalg.cython_lapack as cython_lapack

    capsule = cython_lapack.__pyx_capi__["dpotri"]
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = pointer(capsule, name(capsule))
    return ctypes.CFUNCTYPE(None, ctypes.c_char_p, _INT_P, ctypes.c_void_p, _INT_P, _INT_P)(address)


def leading_inverse(chol: np.ndarray, m: int) -> int:
    """Overwrite the lower triangle of the leading ``m`` x ``m`` block of ``chol`` (a
    Fortran-ordered square array holding a lower Cholesky factor) with the lower
    triangle of the inverse of that block's matrix (LAPACK ``dpotri``); the rest of
    ``chol`` is untouched. Returns LAPACK's ``info`` (0: done).

    Examples
    --------
    >>> A = np.array([[4.0, 2.0, 1.0], [2.0, 3.0, 0.5], [1.0, 0.5, 2.0]])
    >>> chol = np.asfortranarray(np.linalg.cholesky(A))
    >>> leading_inverse(chol, 2)
    0
    >>> inverse = np.tril(chol[:2, :2]) + np.tril(chol[:2, :2], -1).T
    >>> bool(np.allclose(inverse, np.linalg.inv(A[:2, :2])))
    True
    """
    if chol.ndim != 2 or chol.shape[0] != chol.shape[1] or not chol.flags.f_contiguous or chol.dtype != np.float64:
        raise ValueError(f"chol: expected a square Fortran-ordered float64 array, found shape {chol.shape}, "
                         f"dtype {chol.dtype}, {'F' if chol.flags.f_contiguous else 'not F'}-ordered")
    if not 0 <= m <= chol.shape[0]:
        raise ValueError(f"m: expected 0 to {chol.shape[0]}, found {m}")
    if not chol.flags.writeable:
        raise ValueError("chol: expected a writeable array, found a read-only one")
    if m == 0:
        return 0
    info = ctypes.c_int(0)
    _dpotri()(b"L", ctypes.byref(ctypes.c_int(m)), chol.ctypes.data, ctypes.byref(ctypes.c_int(chol.shape[0])),
              ctypes.byref(info))
    return int(info.value)
