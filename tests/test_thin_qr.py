"""The thin QR of a tall matrix: Cholesky QR twice where its unit-norm columns are well
conditioned, Householder QR elsewhere."""

import numpy as np

from interlace.linalg import thin_qr as module
from interlace.linalg.thin_qr import cholesky_qr_condition_limit, cholesky_r, thin_qr


def _with_condition(n, singular_values, seed=0):
    """An n x p matrix with the given singular values."""
    rng = np.random.default_rng(seed)
    p = len(singular_values)
    U = np.linalg.qr(rng.standard_normal((n, p)))[0]
    V = np.linalg.qr(rng.standard_normal((p, p)))[0]
    return np.ascontiguousarray((U * singular_values) @ V.T)


def _check_factors(X, Q, R, scale=1.0):
    p = X.shape[1]
    assert Q.flags.c_contiguous and Q.shape == X.shape
    np.testing.assert_allclose(Q.T @ Q / scale**2, np.eye(p), atol=1e-13)
    np.testing.assert_allclose(Q @ R / scale, X, atol=1e-13 * np.abs(X).max())
    assert np.all(np.diag(R) > 0) and np.all(np.tril(R, -1) == 0)


def test_a_well_conditioned_matrix_is_cholesky_qr_and_equals_householder():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(2000), rng.standard_normal((2000, 4)), rng.integers(0, 2, (2000, 3))]).astype(float)
    assert module._cholesky_qr2(X, 1.0) is not None  # the fast path is taken
    Q, R = thin_qr(X, 3.0)
    _check_factors(X, Q, R, 3.0)
    Qh, Rh = thin_qr(X, 3.0, householder=True)
    np.testing.assert_allclose(Q, Qh, atol=1e-13)
    np.testing.assert_allclose(R, Rh, rtol=1e-12, atol=1e-12 * np.abs(Rh).max())


def test_an_ill_conditioned_matrix_falls_back_to_householder():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(500)
    X = np.column_stack([np.ones(500), x + 1e8])  # a shifted column: condition ~1e10 once scaled
    assert module._cholesky_qr2(X, 1.0) is None
    Q, R = thin_qr(X)
    _check_factors(X, Q, R)


def test_the_condition_limit_decides_the_path():
    n, p = 4000, 5
    limit = cholesky_qr_condition_limit(n, p)
    below = _with_condition(n, np.geomspace(1.0, limit / 4, p))
    above = _with_condition(n, np.geomspace(1.0, limit * 40, p))
    assert module._cholesky_qr2(below, 1.0) is not None
    assert module._cholesky_qr2(above, 1.0) is None
    for X in (below, above):
        _check_factors(X, *thin_qr(X))


def test_cholesky_r_refuses_what_is_not_positive_definite():
    assert cholesky_r(np.array([[1.0, 2.0], [2.0, 1.0]])) is None
    G = np.array([[4.0, 2.0], [2.0, 3.0]])
    R = cholesky_r(G)
    np.testing.assert_allclose(R.T @ R, G)


def test_columns_on_far_apart_scales_are_the_fast_paths():
    """Columns on very different scales are the fast path's (unit-norm columns)."""
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(300), rng.standard_normal(300) * 1e6, rng.standard_normal(300) * 1e-6])
    assert module._cholesky_qr2(X, 1.0) is not None
    _check_factors(X, *thin_qr(X))
