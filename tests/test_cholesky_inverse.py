"""The inverse of a symmetric positive definite matrix from its Cholesky factor, the
factor's inverse formed by halves: LAPACK ``potri``'s result to rounding."""

import numpy as np
import pytest
from scipy.linalg import lapack

from interlace.linalg import cholesky_inverse as module
from interlace.linalg.cholesky_inverse import cholesky_inverse, lower_triangular_inverse


def _spd(n, seed=0, condition=1e4):
    """An n x n symmetric positive definite matrix with eigenvalues from 1 to ``condition``."""
    rng = np.random.default_rng(seed)
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (V * np.geomspace(1.0, condition, n)) @ V.T


@pytest.mark.parametrize("n", [1, 5, module.LEAF_SIZE, module.LEAF_SIZE + 1, 3 * module.LEAF_SIZE + 7, 1157])
def test_equals_potri(n):
    S = _spd(n, seed=n)
    L = np.linalg.cholesky(S)
    factor = L + np.triu(np.full((n, n), np.nan), 1)  # the strictly upper triangle is not read
    out = np.full((n, n), np.nan, order="F")
    result = cholesky_inverse(factor, out)
    assert result is out
    expected = lapack.dpotri(np.asfortranarray(L), lower=1)[0]
    lower = np.tril_indices(n)
    np.testing.assert_allclose(out[lower], expected[lower], rtol=1e-9, atol=1e-12 * np.abs(expected).max())
    np.testing.assert_allclose(np.tril(out) + np.tril(out, -1).T, np.linalg.inv(S), rtol=1e-8,
                               atol=1e-10 * np.abs(expected).max())


def test_the_triangular_inverse_by_halves_inverts_the_factor():
    n = 2 * module.LEAF_SIZE + 3  # two levels of halves
    rng = np.random.default_rng(7)
    L = np.tril(rng.standard_normal((n, n))) + 10.0 * np.eye(n)
    T = np.tril(lower_triangular_inverse(L, np.empty((n, n), order="F")))
    np.testing.assert_allclose(T @ L, np.eye(n), atol=1e-13)
    np.testing.assert_allclose(T, np.tril(lapack.dtrtri(L, lower=1)[0]), rtol=1e-12, atol=1e-15)


def test_a_view_into_a_larger_factor():
    """The blocked path inverts the leading rows of its rest's factor (y's row left out),
    a non-contiguous view of a C-ordered buffer's transpose."""
    n = 300
    S = _spd(n + 1, seed=2)
    buffer = np.ascontiguousarray(np.linalg.cholesky(S).T)  # C order; its transpose is the F-ordered factor
    factor = buffer.T[:n, :n]
    out = cholesky_inverse(factor, np.empty((n, n), order="F"))
    expected = lapack.dpotri(np.asfortranarray(factor), lower=1)[0]
    np.testing.assert_allclose(np.tril(out), np.tril(expected), rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_refuses_an_out_array_in_c_order():
    with pytest.raises(ValueError, match="out"):
        lower_triangular_inverse(np.eye(3), np.empty((3, 3)))


def test_refuses_a_singular_factor():
    L = np.eye(4)
    L[2, 2] = 0.0
    with pytest.raises(np.linalg.LinAlgError, match="row 3"):
        lower_triangular_inverse(L, np.empty((4, 4), order="F"))
