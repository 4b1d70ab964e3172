"""interlace.linalg.lapack_inplace: LAPACK's inverse of a factor's leading block, where it lies."""

import numpy as np
import pytest

from interlace.linalg.lapack_inplace import leading_inverse


@pytest.mark.parametrize("m", [0, 1, 17, 40])
def test_the_leading_block_is_inverted_and_the_rest_left(m):
    rng = np.random.default_rng(m)
    a = rng.normal(size=(40, 40))
    matrix = a @ a.T + 40 * np.eye(40)
    chol = np.asfortranarray(np.linalg.cholesky(matrix))
    chol[np.triu_indices(40, 1)] = 7.0  # the strict upper triangle (Fortran order) is never read or written
    before = chol.copy()
    assert leading_inverse(chol, m) == 0
    if m:
        inverse = np.tril(chol[:m, :m]) + np.tril(chol[:m, :m], -1).T
        np.testing.assert_allclose(inverse, np.linalg.inv(matrix[:m, :m]), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(chol[m:], before[m:])
    np.testing.assert_array_equal(chol[np.triu_indices(40, 1)], 7.0)


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="chol: expected a square Fortran-ordered float64 array"):
        leading_inverse(np.ones((3, 4), order="F"), 2)
    with pytest.raises(ValueError, match="chol: expected a square Fortran-ordered"):
        leading_inverse(np.ascontiguousarray(np.arange(9.0).reshape(3, 3)), 2)
    with pytest.raises(ValueError, match="m: expected 0 to 3, found 4"):
        leading_inverse(np.asfortranarray(np.eye(3)), 4)
    frozen = np.asfortranarray(np.eye(3))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="chol: expected a writeable array"):
        leading_inverse(frozen, 2)


def test_a_singular_factor_is_reported():
    chol = np.asfortranarray(np.diag([1.0, 0.0, 2.0]))
    assert leading_inverse(chol, 3) > 0
