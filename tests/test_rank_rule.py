"""The rank rule's Gram matrix of the comparable columns (centred after an intercept,
scaled), from one product of the centred columns: the matrix of the scaled columns to
rounding, and the same columns kept."""

import numpy as np
import pytest

from interlace import design as module
from interlace.design import (
    _comparable_columns,
    _comparable_gram,
    _full_rank_columns,
    sequential_rank,
)


def _designs():
    rng = np.random.default_rng(11)
    n = 500
    x = rng.standard_normal(n)
    z = rng.standard_normal(n)
    dummy = (rng.integers(0, 3, n)[:, None] == np.arange(3)).astype(float)
    one = np.ones(n)
    yield "intercept", np.column_stack([one, x, z, dummy[:, 1:]])
    yield "dummies summing to the intercept", np.column_stack([one, dummy, x])
    yield "a multiple", np.column_stack([one, x, 3.0 * x, z])
    yield "shifted by 1e8 sd", np.column_stack([one, x + 1e8, z])
    yield "constant to rounding", np.column_stack([one, 1e3 + 1e-12 * x, z])
    yield "no intercept", np.column_stack([x, z, x + z])
    yield "intercept not first", np.column_stack([x, 2.0 * one, z, x - 2 * z])
    yield "a zero column", np.column_stack([one, np.zeros(n), x])
    yield "huge scale", np.column_stack([one, 1e160 * x, z])
    yield "tiny scale", np.column_stack([one, 1e-140 * x, z])
    yield "one row", np.array([[1.0, 2.0, 3.0]])
    yield "no columns", np.zeros((n, 0))


@pytest.mark.parametrize("name, X", list(_designs()), ids=[name for name, _ in _designs()])
def test_equals_the_gram_of_the_scaled_columns(name, X):
    Xc = _comparable_columns(X)
    expected = Xc.T @ Xc
    gram = _comparable_gram(X)
    assert gram.shape == expected.shape
    np.testing.assert_allclose(gram, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(_full_rank_columns(X), sequential_rank(expected))


def test_the_kept_columns():
    n = 200
    rng = np.random.default_rng(2)
    x, z, w = rng.standard_normal((3, n))
    # 3x a multiple; z + 1e8 kept (centred, it is z); 1e3 + 1e-12 w constant to rounding
    X = np.column_stack([np.ones(n), x, 3.0 * x, z + 1e8, 1e3 + 1e-12 * w])
    assert _full_rank_columns(X).tolist() == [0, 1, 3]


def test_out_of_range_norms_scale_the_columns_first(monkeypatch):
    # a squared norm past the range is not read off the unscaled product (it
    # overflowed): the Gram matrix is the scaled columns' product, as before
    n = 100
    x = np.random.default_rng(3).standard_normal(n)
    X = np.column_stack([np.ones(n), 1e200 * x, x])
    calls = []
    original = module._comparable_columns
    monkeypatch.setattr(module, "_comparable_columns", lambda X: calls.append(1) or original(X))
    gram = _comparable_gram(X)
    assert calls == [1]
    Xc = original(X)
    np.testing.assert_array_equal(gram, Xc.T @ Xc)
    calls.clear()
    _comparable_gram(np.column_stack([np.ones(n), x]))
    assert calls == []
