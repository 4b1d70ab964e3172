"""The thin QR factorisation X = QR of a tall matrix of full column rank.

Where the columns of X, each scaled to unit norm, are well conditioned (the bound
below), it is Cholesky QR applied twice: the Cholesky factor R1 of the scaled
columns' cross-product gives Q1 = X D^-1 R1^-1, and the Cholesky factor R2 of Q1'Q1
gives Q = Q1 R2^-1, R = R2 R1 D (D the columns' norms). That is two cross-products of
the n x p matrix and two products with p x p triangular matrices (level-3 BLAS,
R1^-1 and R2^-1 formed and multiplied in place), against Householder QR's
column-by-column reflections and its forming of Q. Under the bound, Q is orthogonal
and QR equals X to rounding, as with Householder QR (Yamamoto, Nakatsukasa,
Yanagisawa and Fukaya, "Roundoff error analysis of the CholeskyQR2 algorithm",
ETNA 44, 2015). Elsewhere (an ill-conditioned X, where the cross-product's Cholesky
would lose the digits), it is Householder QR (LAPACK's ``geqrf`` and ``orgqr``).

The first step needs only the cross-product X'X: a factorisation from
per-partition sums of X'X (without X) can take :func:`cholesky_r` of it.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas, lapack

from .threads import limited

UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2
"""u, the float64 unit roundoff."""


def cholesky_qr_condition_limit(n_rows: int, n_columns: int) -> float:
    """The largest 2-norm condition number of the unit-norm columns of an n x p matrix
    for which Cholesky QR twice is proven to give Q orthogonal, and QR equal to X, to
    rounding: 1 / (8 sqrt(u (n p + p (p + 1)))) (Yamamoto et al. 2015's condition).

    Examples
    --------
    >>> round(cholesky_qr_condition_limit(73421, 28))
    8272
    """
    return 1.0 / (8.0 * np.sqrt(UNIT_ROUNDOFF * (n_rows * n_columns + n_columns * (n_columns + 1))))


def cholesky_r(cross_product: np.ndarray) -> np.ndarray | None:
    """The upper-triangular Cholesky factor R (positive diagonal) of a p x p
    cross-product X'X, so that X'X = R'R; None where it is not positive definite to
    rounding.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    >>> R = cholesky_r(X.T @ X)
    >>> bool(np.allclose(R.T @ R, X.T @ X)), bool(R[1, 0] == 0)
    (True, True)
    >>> cholesky_r(np.array([[1.0, 1.0], [1.0, 1.0]])) is None
    True
    """
    factor, info = lapack.dpotrf(cross_product, lower=0, clean=1)
    if info != 0 or not np.all(np.diag(factor) > 0):
        return None
    return factor


def _householder_qr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q and R of X by Householder reflections, R's diagonal made positive."""
    p = X.shape[1]
    packed, tau, _, _ = lapack.dgeqrf(X)
    R = np.triu(packed[:p])
    Q = lapack.dorgqr(packed, tau)[0]
    signs = np.sign(R.diagonal())
    R *= signs[:, None]
    return np.ascontiguousarray(Q[:, :p] * signs), R


def _cholesky_qr2(X: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``scale`` Q and R of X by Cholesky QR twice on the unit-norm columns, or None
    where their condition exceeds :func:`cholesky_qr_condition_limit`."""
    n, p = X.shape
    gram = X.T @ X
    norms = np.sqrt(np.diagonal(gram))  # the columns' norms
    if not np.all(norms > 0) or not np.all(np.isfinite(norms)):
        return None
    gram /= norms
    gram /= norms[:, None]
    first = cholesky_r(gram)
    if first is None:
        return None
    singular_values = np.linalg.svd(first, compute_uv=False)
    if not singular_values[0] <= cholesky_qr_condition_limit(n, p) * singular_values[-1]:
        return None
    Q = X.copy()
    _times_upper_in_place(Q, lapack.dtrtri(first, lower=0)[0] / norms[:, None], 1.0)  # X D^-1 R1^-1
    second = cholesky_r(Q.T @ Q)
    if second is None:
        return None
    _times_upper_in_place(Q, lapack.dtrtri(second, lower=0)[0], scale)  # R2 is I to O(u cond^2)
    return Q, (second @ first) * norms


def _times_upper_in_place(Q: np.ndarray, upper: np.ndarray, alpha: float) -> None:
    """Q := alpha Q U for C-order Q (n x p) and upper-triangular U (p x p): BLAS ``trmm``
    on Q' (F order, so no copy), faster here than a product into a new array."""
    out = blas.dtrmm(alpha, upper, Q.T, side=0, lower=0, trans_a=1, overwrite_b=1)
    if not np.shares_memory(out, Q):  # the wrapper copied after all: the result back into Q
        Q[...] = out.T


def thin_qr(X: np.ndarray, scale: float = 1.0, householder: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The thin QR factorisation of a tall ``X`` (n x p, full column rank): Q (n x p,
    C order, orthonormal columns) times ``scale``, and R (p x p, upper triangular with
    a positive diagonal), so that X = QR. ``householder``: by Householder QR whatever
    X's condition (the two differ by rounding only). The BLAS runs on one thread (the
    products are of an n x p matrix with p x p ones, as
    :func:`interlace.linalg.dispatch.build_system`'s).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([np.ones(50), rng.standard_normal(50), rng.standard_normal(50)])
    >>> Q, R = thin_qr(X)
    >>> bool(np.allclose(Q @ R, X)), bool(np.allclose(Q.T @ Q, np.eye(3)))
    (True, True)
    >>> bool(np.all(np.diag(R) > 0)), bool(np.allclose(np.tril(R, -1), 0))
    (True, True)
    >>> bool(np.allclose(thin_qr(X, householder=True)[1], R))
    True
    """
    with limited(0):
        factors = None if householder else _cholesky_qr2(X, scale)
        if factors is not None:
            return factors
        Q, R = _householder_qr(X)
        if scale != 1.0:
            Q *= scale
        return Q, R


__all__ = ["cholesky_qr_condition_limit", "cholesky_r", "thin_qr"]
