"""Oracle tests for the sparse Cholesky factor against dense numpy.

Every quantity of :class:`interlace.linalg.sparse_cholesky.SparseCholesky` (the factor,
log-determinant, solves, selected inverse, trailing block) is compared with the same
quantity from ``numpy.linalg`` on the dense matrix, for several patterns: a band with
wrap-around, random sparse, block-arrow with dense trailing columns, the Schur complement
of a small crossed design (the use the factor was written for), a 2-D grid, a diagonal
and a 1 x 1 matrix. The kernels' symbolic results (elimination tree, column counts) are
checked against the pattern of a dense Cholesky factor, and the minimum degree ordering
for being a permutation that reduces fill like SuperLU's. Sizes are small so that the file
also runs with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse.linalg import splu

from interlace.errors import InterlaceError
from interlace.kernels.amd import approximate_minimum_degree
from interlace.kernels.sparse_cholesky import (
    column_counts,
    elimination_tree,
    factor_pattern,
    leading_adjacency,
    permuted_upper_pattern,
    relaxed_supernodes,
)
from interlace.linalg.sparse_cholesky import SparseCholesky

RTOL = 1e-10
"""Relative tolerance of every comparison with dense numpy: both compute the same
quantity by the same algebra, so they differ by rounding only."""

ORDERINGS = ("auto", "amd", "rcm", "natural")


# --- matrices ------------------------------------------------------------------------
def dominant_on(pattern, seed):
    """A symmetric, strictly diagonally dominant (so SPD) matrix with this pattern."""
    rng = np.random.default_rng(seed)
    lower = sp.tril(sp.csc_matrix(pattern), k=-1).tocoo()
    values = rng.uniform(-1.0, 1.0, lower.nnz)
    off = sp.coo_matrix((values, (lower.row, lower.col)), shape=pattern.shape)
    off = off + off.T
    diagonal = np.asarray(abs(off).sum(axis=1)).ravel() + rng.uniform(0.5, 2.0, pattern.shape[0])
    return sp.csc_matrix(off + sp.diags(diagonal))


def band_with_wraparound(n, half_width, seed=0):
    """i and j are neighbours when their circular distance is at most ``half_width``."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    distance = np.minimum(np.abs(i - j), n - np.abs(i - j))
    return dominant_on(sp.csc_matrix(distance <= half_width), seed)


def random_sparse(n, density, seed=0):
    pattern = sp.random(n, n, density=density, random_state=seed) + sp.eye(n)
    return dominant_on(pattern + pattern.T, seed)


def block_arrow(n_blocks, block, n_dense, seed=0):
    """Dense diagonal blocks and ``n_dense`` dense trailing rows and columns."""
    n = n_blocks * block + n_dense
    pattern = sp.lil_matrix((n, n))
    for b in range(n_blocks):
        pattern[b * block : (b + 1) * block, b * block : (b + 1) * block] = 1.0
    pattern[n - n_dense :, :] = 1.0
    pattern[:, n - n_dense :] = 1.0
    return dominant_on(sp.csc_matrix(pattern), seed)


def crossed_schur(n_levels=40, n_rows=800, spread=4, scale=1.0, seed=1):
    """The W11 pattern at small size: the Schur complement of factor 1 in
    [Z2 X y]'(I - Z1 D Z1')[Z2 X y] + diag(I, 0), with X = [1, x] and y trailing."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n_levels, n_rows)
    g2 = (g1 + rng.integers(-spread, spread, n_rows)) % n_levels
    rows = np.arange(n_rows)
    Z1 = sp.csr_matrix((np.ones(n_rows), (rows, g1)), shape=(n_rows, n_levels))
    Z2 = sp.csr_matrix((scale * np.ones(n_rows), (rows, g2)), shape=(n_rows, n_levels))
    B = sp.hstack(
        [Z2, sp.csr_matrix(np.column_stack([np.ones(n_rows), rng.standard_normal((n_rows, 2))]))]
    ).tocsc()
    D = sp.diags(1.0 / (np.bincount(g1, minlength=n_levels) + 1.0))
    Z1B = (Z1.T @ B).tocsc()
    A = B.T @ B - Z1B.T @ D @ Z1B + sp.diags(np.r_[np.ones(n_levels), np.zeros(3)])
    return sp.csc_matrix(A)


def grid(m, seed=0):
    """The 5-point Laplacian pattern of an m x m grid."""
    path = sp.diags([np.ones(m - 1), np.ones(m - 1)], [-1, 1])
    return dominant_on(sp.kronsum(path, path) + sp.eye(m * m), seed)


CASES = {
    "band": (lambda: band_with_wraparound(60, 4), 0),
    "random": (lambda: random_sparse(70, 0.04), 0),
    "block_arrow": (lambda: block_arrow(12, 3, 3), 3),
    "crossed_schur": (lambda: crossed_schur(), 3),
    "grid": (lambda: grid(8), 0),
    "dense": (lambda: dominant_on(sp.csc_matrix(np.ones((80, 80))), 0), 3),
    "dense_rows_only": (lambda: dominant_on(sp.csc_matrix(np.ones((20, 20))), 1), 2),
    "diagonal": (lambda: sp.diags(np.arange(1.0, 11.0), format="csc"), 2),
    "one_by_one": (lambda: sp.csc_matrix(np.array([[3.0]])), 1),
}


def factored(name, ordering="auto"):
    """(A dense, the analysed and factored SparseCholesky) for a case."""
    make, n_dense = CASES[name]
    A = make()
    chol = SparseCholesky.analyse(A, n_dense, ordering=ordering)
    assert chol.refactor(A)
    return A.toarray(), chol


def assert_close(actual, expected, rtol=RTOL):
    """Entrywise relative to the largest magnitude of ``expected``."""
    scale = max(float(np.max(np.abs(expected))), 1e-300) if np.size(expected) else 1.0
    assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


# --- the factor and what is read off it ------------------------------------------------
@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_factor_is_the_dense_cholesky_of_the_permuted_matrix(name, ordering):
    A, chol = factored(name, ordering)
    p = chol.permutation
    assert_array_equal(np.sort(p), np.arange(A.shape[0]))
    assert_close(chol.factor_matrix().toarray(), np.linalg.cholesky(A[np.ix_(p, p)]))
    assert chol.ordering in ("amd", "rcm", "natural")


@pytest.mark.parametrize("name", sorted(CASES))
def test_logdet_and_solves_match_numpy(name):
    A, chol = factored(name)
    n = A.shape[0]
    assert_allclose(chol.logdet(), np.linalg.slogdet(A)[1], rtol=RTOL, atol=RTOL)
    rng = np.random.default_rng(2)
    b = rng.standard_normal(n)
    B = rng.standard_normal((n, 3))
    assert_close(chol.solve(b), np.linalg.solve(A, b))
    assert_close(chol.solve(B), np.linalg.solve(A, B))
    # L^{-1} P b in the factor's order, then back with P' L^{-T}
    p = chol.permutation
    L = np.linalg.cholesky(A[np.ix_(p, p)])
    assert_close(chol.solve_lower(B), np.linalg.solve(L, B[p]))
    c = rng.standard_normal(n)
    expected = np.empty(n)
    expected[p] = np.linalg.solve(L.T, c)
    assert_close(chol.solve_lower_transpose(c), expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_selected_inverse_matches_the_dense_inverse(name):
    A, chol = factored(name)
    inverse = np.linalg.inv(A)
    assert_close(chol.selected_inverse_diagonal(), np.diag(inverse))
    # every entry of the pattern of L, in original indices
    L = chol.factor_matrix().tocoo()
    rows, columns = chol.permutation[L.row], chol.permutation[L.col]
    assert_close(chol.inverse_entries(rows, columns), inverse[rows, columns])


def test_inverse_entries_off_the_pattern_are_solved_for():
    A, chol = factored("random")
    inverse = np.linalg.inv(A)
    rows, columns = np.meshgrid(np.arange(A.shape[0]), np.arange(A.shape[0]), indexing="ij")
    assert_close(chol.inverse_entries(rows.ravel(), columns.ravel()), inverse.ravel())


@pytest.mark.parametrize(
    ("name", "block_size"),
    [
        ("block_arrow", 3),
        ("band", 2),
        ("band", 5),
        ("random", 7),
        ("diagonal", 2),
        ("crossed_schur", 4),
    ],
)
def test_inverse_diagonal_blocks_match_the_dense_inverse(name, block_size):
    A, chol = factored(name)
    inverse = np.linalg.inv(A)
    stop = chol.n - chol.n_trailing_dense
    stop -= stop % block_size
    blocks = chol.inverse_diagonal_blocks(block_size, 0, stop)
    assert blocks.shape == (stop // block_size, block_size, block_size)
    for b, block in enumerate(blocks):
        s = slice(b * block_size, (b + 1) * block_size)
        assert_close(block, inverse[s, s])
    # the trailing block on its own
    d = chol.n_trailing_dense
    if d:
        tail = chol.inverse_diagonal_blocks(d, chol.n - d, chol.n)[0]
        assert_close(tail, inverse[-d:, -d:])


@pytest.mark.parametrize("name", ["block_arrow", "crossed_schur", "diagonal", "one_by_one"])
def test_trailing_factor_is_the_cholesky_of_the_schur_complement(name):
    A, chol = factored(name)
    d = chol.n_trailing_dense
    m = A.shape[0] - d
    schur = A[m:, m:] - A[m:, :m] @ np.linalg.solve(A[:m, :m], A[:m, m:]) if m else A
    expected = np.linalg.cholesky(schur)
    assert_close(chol.trailing_factor(), expected)
    assert_close(chol.diagonal_of_L()[m:], np.diag(expected))


def test_diagonal_of_L_is_in_the_original_order():
    A, chol = factored("random")
    p = chol.permutation
    pivots = np.diag(np.linalg.cholesky(A[np.ix_(p, p)]))
    expected = np.empty_like(pivots)
    expected[p] = pivots
    assert_close(chol.diagonal_of_L(), expected)


def test_refactor_with_new_values_on_the_same_pattern():
    first = crossed_schur(scale=1.0)
    chol = SparseCholesky.analyse(first, 3)
    for scale in (1.0, 0.3, 2.5, 1.0):
        A = crossed_schur(scale=scale)
        assert chol.refactor(chol.values_of(A))
        dense = A.toarray()
        assert_allclose(chol.logdet(), np.linalg.slogdet(dense)[1], rtol=RTOL)
        assert_close(chol.selected_inverse_diagonal(), np.diag(np.linalg.inv(dense)))
        # the trailing block of L factors the Schur complement, whatever the leading order
        assert_close(chol.trailing_factor(), np.linalg.cholesky(dense)[-3:, -3:])


def test_refactor_reports_a_matrix_that_is_not_positive_definite():
    A = band_with_wraparound(30, 3)
    chol = SparseCholesky.analyse(A)
    values = chol.values_of(A)
    bad = values.copy()
    diagonal = chol.input_indices == np.repeat(np.arange(30), np.diff(chol.input_indptr))
    bad[np.flatnonzero(diagonal)[17]] = -1.0
    assert not chol.refactor(bad)
    assert not chol.ok
    with pytest.raises(InterlaceError, match="refactor"):
        chol.logdet()
    with pytest.raises(InterlaceError, match="refactor"):
        chol.solve(np.ones(30))
    # indefinite without any negative diagonal entry
    indefinite = values.copy()
    indefinite[~diagonal] *= 50.0
    assert np.all(indefinite[diagonal] > 0)
    assert not chol.refactor(indefinite)
    assert not chol.refactor(np.full_like(values, np.nan))
    assert chol.refactor(values)
    assert_allclose(chol.logdet(), np.linalg.slogdet(A.toarray())[1], rtol=RTOL)


def test_selected_inverse_is_recomputed_after_refactor():
    A = random_sparse(40, 0.1)
    chol = SparseCholesky.analyse(A)
    chol.refactor(A)
    before = chol.selected_inverse_diagonal()
    chol.refactor(A * 2.0)
    assert_close(chol.selected_inverse_diagonal(), before / 2.0)


# --- the ordering ----------------------------------------------------------------------
@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("name", ["block_arrow", "crossed_schur", "diagonal", "band"])
def test_ordering_keeps_the_trailing_columns_last_and_in_order(name, ordering):
    make, _ = CASES[name]
    A = make()
    for n_dense in (0, 1, 3):
        chol = SparseCholesky.analyse(A, n_dense, ordering=ordering)
        n = A.shape[0]
        assert_array_equal(chol.permutation[n - n_dense :], np.arange(n - n_dense, n))
        assert_array_equal(chol.inverse_permutation[chol.permutation], np.arange(n))


def test_a_dense_leading_row_is_ordered_after_the_other_leading_columns():
    n = 400
    pattern = sp.lil_matrix(band_with_wraparound(n, 1))
    pattern[5, :] = 1.0
    pattern[:, 5] = 1.0
    A = dominant_on(sp.csc_matrix(pattern), 0)
    for ordering in ("amd", "rcm"):
        chol = SparseCholesky.analyse(A, 2, ordering=ordering)
        assert chol.permutation[n - 3] == 5
        assert chol.refactor(A)
        assert_allclose(chol.logdet(), np.linalg.slogdet(A.toarray())[1], rtol=RTOL)


def test_auto_keeps_the_cheapest_order():
    def flops(chol):
        return float(np.sum(np.diff(chol.L_indptr).astype(float) ** 2))

    for A in (band_with_wraparound(200, 6), grid(15), random_sparse(150, 0.02)):
        auto = SparseCholesky.analyse(A, ordering="auto")
        candidates = [SparseCholesky.analyse(A, ordering=o) for o in ("amd", "rcm", "natural")]
        assert flops(auto) == min(flops(c) for c in candidates)
        # the winner is the analysis of its own order, built again when not tried last
        chosen = candidates[("amd", "rcm", "natural").index(auto.ordering)]
        assert_array_equal(auto.permutation, chosen.permutation)
        assert_array_equal(auto.L_indices, chosen.L_indices)
        assert_array_equal(auto.L_indptr, chosen.L_indptr)
    orderings = {SparseCholesky.analyse(A).ordering for A in (band_with_wraparound(200, 6), grid(15),
                                                              random_sparse(150, 0.02), crossed_schur())}
    assert orderings - {"amd"}, "no case here has a winner other than AMD (the rebuilt winner is untested)"


def nnz_of_factor(A, order):
    """nnz(L) of A in the given order, from the symbolic kernels."""
    lower = sp.tril(sp.csc_matrix(A), format="csc")
    lower.sort_indices()
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.shape[0])
    indptr, indices = permuted_upper_pattern(
        lower.indptr.astype(np.int64), lower.indices.astype(np.int64), inverse
    )
    return int(column_counts(indptr, indices, elimination_tree(indptr, indices)).sum())


def amd_order(A):
    full = sp.csr_matrix(A)
    full.sort_indices()
    return approximate_minimum_degree(full.indptr.astype(np.int64), full.indices.astype(np.int64))


def test_amd_reduces_fill_like_superlu_minimum_degree():
    A = grid(24)
    n = A.shape[0]
    lu = splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    mmd = np.empty(n, dtype=np.int64)
    mmd[lu.perm_c] = np.arange(n)
    amd = amd_order(A)
    assert_array_equal(np.sort(amd), np.arange(n))
    assert nnz_of_factor(A, amd) < 0.5 * nnz_of_factor(A, np.arange(n))
    assert nnz_of_factor(A, amd) < 1.15 * nnz_of_factor(A, mmd)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), density=st.floats(0.0, 0.5), seed=st.integers(0, 2**31))
def test_amd_returns_a_permutation_of_any_pattern(n, density, seed):
    rng = np.random.default_rng(seed)
    pattern = sp.random(n, n, density=density, random_state=rng)
    isolated = rng.random(n) < 0.2  # empty rows and columns as well
    keep = sp.diags((~isolated).astype(float))
    pattern = keep @ (pattern + pattern.T) @ keep
    assert_array_equal(np.sort(amd_order(pattern)), np.arange(n))


# --- the symbolic kernels --------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), density=st.floats(0.0, 0.3), seed=st.integers(0, 2**31))
def test_elimination_tree_and_column_counts_match_a_dense_factor(n, density, seed):
    A = random_sparse(n, density, seed).toarray()
    L = np.linalg.cholesky(A)
    nonzero = np.abs(L) > 0
    upper = sp.triu(sp.csc_matrix(A), k=1, format="csc")
    upper.sort_indices()
    indptr, indices = upper.indptr.astype(np.int64), upper.indices.astype(np.int64)
    parent = elimination_tree(indptr, indices)
    for j in range(n):
        below = np.flatnonzero(nonzero[j + 1 :, j])
        assert parent[j] == (j + 1 + below[0] if below.size else -1)
    assert_array_equal(column_counts(indptr, indices, parent), nonzero.sum(axis=0))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), density=st.floats(0.0, 0.4), seed=st.integers(0, 2**31))
def test_random_patterns_factor_like_numpy(n, density, seed):
    A = random_sparse(n, density, seed)
    n_dense = seed % (n + 1)
    chol = SparseCholesky.analyse(A, n_dense)
    assert chol.refactor(A)
    dense = A.toarray()
    assert_allclose(chol.logdet(), np.linalg.slogdet(dense)[1], rtol=RTOL, atol=RTOL)
    assert_close(chol.selected_inverse_diagonal(), np.diag(np.linalg.inv(dense)))
    assert_array_equal(chol.permutation[n - n_dense :], np.arange(n - n_dense, n))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    density=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**31),
    max_width=st.integers(1, 8),
)
def test_relaxed_supernodes_pad_the_pattern_into_trapezoids(n, density, seed, max_width):
    A = random_sparse(n, density, seed)
    upper = sp.triu(A, k=1, format="csc")
    upper.sort_indices()
    indptr, indices = upper.indptr.astype(np.int64), upper.indices.astype(np.int64)
    parent = elimination_tree(indptr, indices)
    L_indptr = np.concatenate([[0], np.cumsum(column_counts(indptr, indices, parent))])
    L_indices = factor_pattern(indptr, indices, parent, L_indptr)
    starts, padded_indptr, padded_indices = relaxed_supernodes(L_indptr, L_indices, max_width)
    assert starts[0] == 0 and starts[-1] == n and np.all(np.diff(starts) >= 1)
    assert np.all(np.diff(starts) <= max_width)
    exact = {(i, j) for j in range(n) for i in L_indices[L_indptr[j] : L_indptr[j + 1]]}
    rows = [padded_indices[padded_indptr[j] : padded_indptr[j + 1]] for j in range(n)]
    padded = {(i, j) for j in range(n) for i in rows[j]}
    assert exact <= padded
    for first, stop in zip(starts[:-1], starts[1:], strict=True):
        for j in range(first, stop):  # column j: rows j..last of the supernode, then the rest
            assert_array_equal(rows[j], np.r_[np.arange(j, stop), rows[stop - 1][1:]])
    for j in range(n):  # the rows of a column form a clique: a Cholesky pattern
        below = rows[j][1:]
        assert all((i, k) in padded for a, k in enumerate(below) for i in below[a + 1 :])


# --- input layouts and errors ----------------------------------------------------------
def test_every_input_layout_gives_the_same_values():
    A = random_sparse(25, 0.15)
    chol = SparseCholesky.analyse(A)
    expected = chol.values_of(A)
    coo = sp.tril(A).tocoo()
    halves = sp.coo_matrix(  # the lower triangle with every entry split in two halves
        (np.r_[coo.data / 2, coo.data / 2], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])),
        shape=A.shape,
    )
    for matrix in (A.tocsr(), sp.tril(A), sp.triu(A).tocsr(), halves):
        assert_allclose(chol.values_of(matrix), expected, rtol=0, atol=1e-15)
        assert SparseCholesky.analyse(matrix).nnz_L == chol.nnz_L
    assert chol.refactor(sp.triu(A))
    assert_allclose(chol.logdet(), np.linalg.slogdet(A.toarray())[1], rtol=RTOL)


def test_an_asymmetric_pattern_is_symmetrised():
    A = random_sparse(30, 0.1)
    lower, upper = sp.tril(A, format="csc"), sp.triu(A, k=1, format="csc")
    upper.data[::2] = 0.0
    upper.eliminate_zeros()  # some entries above the diagonal lose their mirror
    chol = SparseCholesky.analyse(lower + upper)
    assert_array_equal(chol.input_indices, SparseCholesky.analyse(A).input_indices)
    assert chol.refactor(lower)
    assert_allclose(chol.logdet(), np.linalg.slogdet(A.toarray())[1], rtol=RTOL)


def test_bad_input_names_the_argument():
    A = random_sparse(10, 0.2)
    with pytest.raises(InterlaceError, match="pattern: expected a scipy sparse matrix"):
        SparseCholesky.analyse(A.toarray())
    with pytest.raises(InterlaceError, match="pattern: expected a square"):
        SparseCholesky.analyse(sp.csc_matrix((3, 4)))
    with pytest.raises(InterlaceError, match="n_trailing_dense"):
        SparseCholesky.analyse(A, 11)
    with pytest.raises(InterlaceError, match="n_trailing_dense"):
        SparseCholesky.analyse(A, 1.0)
    with pytest.raises(InterlaceError, match="ordering"):
        SparseCholesky.analyse(A, ordering="metis")
    chol = SparseCholesky.analyse(sp.diags(np.ones(10), format="csc"))
    with pytest.raises(InterlaceError, match="refactor"):
        chol.logdet()
    with pytest.raises(InterlaceError, match="values: expected shape"):
        chol.refactor(np.ones(3))
    with pytest.raises(InterlaceError, match="matrix: expected entries only on the analysed"):
        chol.values_of(A)
    with pytest.raises(InterlaceError, match="matrix: expected a square"):
        chol.values_of(sp.csc_matrix((10, 9)))
    assert chol.refactor(np.ones(10))
    with pytest.raises(InterlaceError, match="b: expected shape"):
        chol.solve(np.ones(9))
    with pytest.raises(InterlaceError, match="block_size"):
        chol.inverse_diagonal_blocks(3)
    with pytest.raises(InterlaceError, match="rows: expected indices"):
        chol.inverse_entries([10], [0])


# --- a pattern given as the arrays of its lower triangle ---------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_analyse_lower_equals_analyse_and_keeps_the_arrays(name):
    make, n_dense = CASES[name]
    A = make()
    expected = SparseCholesky.analyse(A, n_dense)
    lower = sp.tril(A, format="csc")
    lower.sort_indices()
    indptr, indices = lower.indptr.astype(np.int64), lower.indices.astype(np.int64)
    chol = SparseCholesky.analyse_lower(indptr, indices, n_dense)
    assert chol.input_indices is indices and chol.input_indptr is indptr  # not copied
    assert chol.ordering == expected.ordering
    assert_array_equal(chol.permutation, expected.permutation)
    assert_array_equal(chol.L_indices, expected.L_indices)
    assert chol.refactor(A)
    assert_allclose(chol.logdet(), np.linalg.slogdet(A.toarray())[1], rtol=RTOL)


def test_analyse_lower_refuses_what_is_not_a_sorted_lower_pattern():
    good = (np.array([0, 2, 3]), np.array([0, 1, 1]))
    assert SparseCholesky.analyse_lower(*good).nnz_L == 3
    for indptr, indices in (
        (np.array([0, 2, 3]), np.array([1, 0, 1])),  # unsorted rows
        (np.array([0, 2, 3]), np.array([0, 0, 1])),  # a repeated row
        (np.array([0, 1, 3]), np.array([0, 0, 1])),  # above the diagonal
        (np.array([0, 2, 3]), np.array([0, 2, 1])),  # a row out of range
        (np.array([0, 2, 4]), np.array([0, 1, 1])),  # a pointer past the end
    ):
        with pytest.raises(InterlaceError, match="indptr, indices: expected a lower-triangular"):
            SparseCholesky.analyse_lower(indptr, indices)
    with pytest.raises(InterlaceError, match="indices: expected a 1-d integer array"):
        SparseCholesky.analyse_lower(np.array([0, 1]), np.array([0.0]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_leading_adjacency_is_the_symmetrised_leading_block(name):
    make, n_dense = CASES[name]
    A = make()
    lower = sp.tril(A, format="csc")
    lower.sort_indices()
    n_leading = A.shape[0] - n_dense
    indptr, indices = leading_adjacency(lower.indptr.astype(np.int64), lower.indices.astype(np.int64), n_leading)
    block = sp.csr_matrix(A[:n_leading, :n_leading] != 0)
    block.setdiag(False)
    block.eliminate_zeros()
    block.sort_indices()
    assert_array_equal(indptr, block.indptr)
    assert_array_equal(indices, block.indices)
