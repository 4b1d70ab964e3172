"""A sparse Cholesky factor: ordering and symbolic analysis once, numeric refactorisation
many times.

:class:`SparseCholesky` factors a symmetric positive definite matrix A as
P A P' = L L', with P a fill-reducing permutation of the leading (sparse) columns that
leaves the ``n_trailing_dense`` last columns (the fixed effects and the response in a
mixed model) last and in their original order. :meth:`SparseCholesky.analyse` does
everything that depends only on the pattern: the ordering, the elimination tree and its
postorder, the pattern of L, its (relaxed) supernodes and their block updates, and the
map from the input's values to their places in L. :meth:`SparseCholesky.refactor` then
only scatters new values and runs the supernodal numeric kernel
(:mod:`interlace.kernels.sparse_cholesky`): no allocation per call.

Input layout
------------
Values are passed in one fixed layout, the *input layout*: the lower triangle of the
analysed pattern, in CSC order with sorted row indices (:attr:`SparseCholesky.input_indptr`,
:attr:`SparseCholesky.input_indices`; the same arrays are the CSR of the upper triangle).
:meth:`SparseCholesky.values_of` reads a scipy sparse matrix into that layout.

Ordering
--------
``ordering="auto"`` (the default) tries three orders of the leading block: an
approximate minimum degree (AMD,
:func:`~interlace.kernels.amd.approximate_minimum_degree`, in numba), scipy's
reverse Cuthill-McKee (RCM) and the given order. For each it runs the symbolic phase
(O(nnz(L)), tens of milliseconds at n = 50,000) and it keeps the one whose numeric phase
does the fewest multiply-adds (sum of squared column counts, padding included), because
that phase runs hundreds of times. AMD wins on general patterns by a factor of 2 to 6 in
nnz(L); on band-like patterns all three are within 20% of each other. Leading rows with
more than ``max(16, DENSE_ROW_FACTOR * sqrt(n))`` neighbours are ordered after the other
leading columns, as AMD does.

Measured on one core (nnz(L) exact / stored with the supernode padding, time to order
the leading block, CPU time of one refactor; scipy's SuperLU minimum degree
``splu(..., permc_spec="MMD_AT_PLUS_A")``, whose ``perm_c`` is the inverse order, shown
for comparison):

================================ ====================== ====================== ====================== ======================
pattern                          AMD (numba)            RCM (scipy)            given order            MMD (SuperLU)
================================ ====================== ====================== ====================== ======================
W11 Schur block, n = 50,003      2.05M/2.20M .08s .039s 1.95M/2.31M .02s .040s 2.05M/2.40M  -   .032s 2.07M/2.20M .49s .034s
2-D grid 150 x 150               0.53M/0.62M .02s .012s 2.28M/2.54M .01s .048s 3.38M/3.74M  -   .084s 0.50M/0.59M .10s .010s
3-D grid 20^3                    0.86M/0.91M .01s .044s 1.80M/1.97M .00s .068s 3.06M/3.23M  -   .163s 0.86M/0.92M .21s .047s
crossed 5000 x 3000 Schur block  1.19M/1.28M .01s .163s 2.43M/2.50M .00s .374s 3.20M/3.26M  -   .632s 1.18M/1.27M .37s .156s
================================ ====================== ====================== ====================== ======================

SuperLU's minimum degree matches AMD's fill but needs a full LU factorisation to get
it (5 to 30 times AMD's time, and some 350 MB at the W11 size), so it is not used.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from ..errors import InterlaceError, SparseTooLargeError
from ..kernels.amd import approximate_minimum_degree
from ..kernels.sparse_cholesky import (
    column_counts,
    elimination_tree,
    factor_numeric,
    factor_pattern,
    gather_entries,
    is_lower_pattern,
    leading_adjacency,
    locate_entries,
    log_diagonal_sum,
    permuted_positions,
    permuted_upper_pattern,
    postorder,
    relaxed_supernodes,
    scatter_values,
    selected_inverse,
    solve_lower,
    solve_lower_transpose,
    supernode_updates,
)

Ordering = Literal["auto", "amd", "rcm", "natural"]

DENSE_ROW_FACTOR = 10.0
"""A leading row with more than ``max(16, DENSE_ROW_FACTOR * sqrt(n))`` off-diagonal
entries is ordered after the other leading columns, as in AMD."""

SUPERNODE_MAX_WIDTH = 64
"""Widest supernode (run of columns with aligned patterns) the numeric phase forms; it
bounds the update buffer at this many times the tallest column."""

BYTES_PER_ENTRY = 32
"""Bytes a stored entry of L costs a fit at its peak: its row index, its value, the
value's copy in the factor an optimiser keeps, and the selected inverse's value."""

SOLVE_BATCH = 32
"""Unit vectors solved at once when an entry of A^{-1} lies outside the pattern of L
(each batch holds an n x SOLVE_BATCH dense array)."""


def _as_square(matrix, name: str) -> sp.coo_matrix:
    """``matrix`` as COO, after checking that it is a square scipy sparse matrix."""
    if not sp.issparse(matrix):
        raise InterlaceError(
            f"{name}: expected a scipy sparse matrix, found {type(matrix).__name__}"
        )
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InterlaceError(f"{name}: expected a square matrix, found shape {matrix.shape}")
    return sp.coo_matrix(matrix)


def _canonical(coo: sp.coo_matrix) -> sp.csc_matrix:
    """CSC with sorted rows and duplicates summed."""
    out = coo.tocsc()
    out.sum_duplicates()
    out.sort_indices()
    return out


class _Pattern(NamedTuple):
    """A lower-triangular pattern: CSC arrays (int64, sorted rows, no duplicates)."""

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def n(self) -> int:
        return self.indptr.shape[0] - 1


def _lower_pattern(pattern) -> _Pattern:
    """The lower triangle of the symmetrised pattern: where A or A' has an entry."""
    coo = _as_square(pattern, "pattern")
    rows, columns = np.maximum(coo.row, coo.col), np.minimum(coo.row, coo.col)
    ones = np.ones(rows.shape[0])
    lower = _canonical(sp.coo_matrix((ones, (rows, columns)), shape=coo.shape))
    return _Pattern(lower.indptr.astype(np.int64), lower.indices.astype(np.int64))


def _checked_lower(indptr, indices) -> _Pattern:
    """``indptr``/``indices`` as a :class:`_Pattern` (int64, not copied when already),
    after checking that they are a lower-triangular CSC pattern with sorted rows."""
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    for name, array in (("indptr", indptr), ("indices", indices)):
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise InterlaceError(
                f"{name}: expected a 1-d integer array, found {array.dtype} of shape {array.shape}"
            )
    indptr = indptr.astype(np.int64, copy=False)
    indices = indices.astype(np.int64, copy=False)
    if not is_lower_pattern(indptr, indices):
        raise InterlaceError(
            "indptr, indices: expected a lower-triangular CSC pattern (indptr from 0 to "
            f"len(indices) = {indices.shape[0]}, non-decreasing; each column's rows sorted, "
            "distinct, from the column to n - 1), found otherwise"
        )
    return _Pattern(indptr, indices)


def _lower_values(matrix) -> sp.csc_matrix:
    """The lower triangle of a symmetric matrix, or the transpose of an upper one."""
    coo = _as_square(matrix, "matrix")
    if not np.any(coo.row > coo.col):
        coo = coo.T
    return _canonical(sp.tril(coo, format="coo"))


def _inverse(permutation: np.ndarray) -> np.ndarray:
    """The inverse permutation: ``out[permutation[t]] = t``."""
    out = np.empty(permutation.shape[0], dtype=np.int64)
    out[permutation] = np.arange(permutation.shape[0], dtype=np.int64)
    return out


def _upper(lower: _Pattern, permutation: np.ndarray):
    """Strictly upper pattern of P A P' as int64 CSC arrays."""
    return permuted_upper_pattern(lower.indptr, lower.indices, _inverse(permutation))



class _Symbolic(NamedTuple):
    """What the numeric phase needs from the pattern, for one order."""

    permutation: np.ndarray  # postordered, original index of each column of L
    L_indptr: np.ndarray  # padded pattern of L (relaxed supernodes)
    L_indices: np.ndarray
    starts: np.ndarray  # first column of each supernode, then n
    nnz_exact: int  # nnz of L without the padding

    @property
    def flops(self) -> float:
        """Multiply-adds of the numeric phase, up to a constant: sum of squared counts."""
        return float(np.sum(np.diff(self.L_indptr).astype(np.float64) ** 2))


def _symbolic(lower: _Pattern, permutation: np.ndarray, n_leading: int,
              max_entries: float = np.inf) -> _Symbolic | int:
    """Postorder ``permutation`` (leading part), then the pattern of L and its supernodes;
    only nnz(L) when it exceeds ``max_entries`` (the pattern is then not built)."""
    n = lower.n
    upper_indptr, upper_indices = _upper(lower, permutation)
    # a postorder of the leading forest is an equivalent order with better locality
    lead_parent = elimination_tree(
        upper_indptr[: n_leading + 1], upper_indices[: upper_indptr[n_leading]]
    )
    permutation = permutation[np.concatenate([postorder(lead_parent), np.arange(n_leading, n)])]
    del upper_indptr, upper_indices  # before the postordered pattern is built
    upper_indptr, upper_indices = _upper(lower, permutation)
    parent = elimination_tree(upper_indptr, upper_indices)
    counts = column_counts(upper_indptr, upper_indices, parent)
    if float(np.sum(counts, dtype=np.float64)) > max_entries:
        return int(np.sum(counts, dtype=np.int64))
    L_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    L_indices = factor_pattern(upper_indptr, upper_indices, parent, L_indptr)
    del upper_indptr, upper_indices
    starts, padded_indptr, padded_indices = relaxed_supernodes(
        L_indptr, L_indices, SUPERNODE_MAX_WIDTH
    )
    return _Symbolic(permutation, padded_indptr, padded_indices, starts, int(L_indptr[n]))


def _leading_graph(lower: _Pattern, n_leading: int) -> _Pattern:
    """Adjacency (both triangles, no diagonal) of the leading block: CSR arrays, sorted."""
    return _Pattern(*leading_adjacency(lower.indptr, lower.indices, n_leading))


def _as_csr(graph: _Pattern) -> sp.csr_matrix:
    """The graph as a scipy CSR matrix (one byte per entry: only its pattern is read)."""
    n = graph.n
    return sp.csr_matrix(
        (np.ones(graph.indices.shape[0], dtype=np.int8), graph.indices, graph.indptr), shape=(n, n)
    )


def _leading_order(graph: _Pattern, method: str) -> np.ndarray:
    """Fill-reducing order of the leading block by ``method``; dense rows go last."""
    n = graph.n
    if method == "natural" or n == 0:
        return np.arange(n, dtype=np.int64)
    dense = np.diff(graph.indptr) > max(16.0, DENSE_ROW_FACTOR * np.sqrt(n))
    sparse_rows = np.flatnonzero(~dense)
    if dense.any():
        kept = _as_csr(graph)[sparse_rows][:, sparse_rows]
        kept.sort_indices()
        graph = _Pattern(kept.indptr.astype(np.int64), kept.indices.astype(np.int64))
    if sparse_rows.size == 0:
        local = np.zeros(0, dtype=np.int64)
    elif method == "amd":
        local = approximate_minimum_degree(graph.indptr, graph.indices)
    else:
        local = reverse_cuthill_mckee(_as_csr(graph), symmetric_mode=True).astype(np.int64)
    return np.concatenate([sparse_rows[local], np.flatnonzero(dense)]).astype(np.int64)


class SparseCholesky:
    """Sparse Cholesky factor P A P' = L L' with a fixed pattern and changing values.

    Build it with :meth:`analyse`, then call :meth:`refactor` for each set of values.
    The permutation keeps the ``n_trailing_dense`` last columns last and in order, so
    the trailing block of L (:meth:`trailing_factor`) is the factor of their Schur
    complement.

    Attributes
    ----------
    n : int
        Order of A.
    n_trailing_dense : int
        Trailing columns kept last.
    permutation : numpy.ndarray
        ``permutation[t]`` is the original index of the t-th column of L.
    inverse_permutation : numpy.ndarray
        ``inverse_permutation[i]`` is the column of L holding original index i.
    ordering : str
        The ordering used for the leading block: "amd", "rcm" or "natural".
    input_indptr, input_indices : numpy.ndarray
        The input layout: lower triangle of the analysed pattern, CSC, sorted rows.
    L_indptr, L_indices, L_values : numpy.ndarray
        The factor, CSC with the diagonal first in each column, in permuted order. The
        pattern is padded with explicit zeros so that supernodes are dense trapezoids.
    nnz_exact : int
        Non-zeros of L without that padding (``nnz_L`` counts the stored entries).
    ok : bool
        True when the last :meth:`refactor` succeeded.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.csc_matrix(np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]]))
    >>> chol = SparseCholesky.analyse(A, n_trailing_dense=1)
    >>> chol.refactor(chol.values_of(A))
    True
    >>> bool(np.isclose(chol.logdet(), np.linalg.slogdet(A.toarray())[1]))
    True
    >>> np.allclose(chol.solve(np.ones(3)), np.linalg.solve(A.toarray(), np.ones(3)))
    True
    """

    def __init__(
        self, lower: _Pattern, n_trailing_dense: int, symbolic: _Symbolic, ordering: str
    ) -> None:
        n = lower.n
        self.n = n
        self.n_trailing_dense = n_trailing_dense
        self.ordering = ordering
        self.input_indptr = lower.indptr
        self.input_indices = lower.indices
        self.permutation = symbolic.permutation
        self.inverse_permutation = _inverse(symbolic.permutation)
        self.L_indptr = symbolic.L_indptr
        self.L_indices = symbolic.L_indices
        self.L_values = np.zeros(self.L_indptr[n])
        self.nnz_exact = symbolic.nnz_exact
        self._starts = symbolic.starts
        (
            self._update_indptr,
            self._update_source,
            self._update_position,
            self._update_rows,
            buffer_size,
        ) = supernode_updates(self.L_indptr, self.L_indices, self._starts)
        self._value_positions = permuted_positions(
            self.L_indptr, self.L_indices, self.input_indptr, self.input_indices,
            self.inverse_permutation,
        )
        self._relative = np.zeros(n, dtype=np.int64)
        self._buffer = np.zeros(buffer_size)
        self._inverse_values: np.ndarray | None = None
        self.ok = False

    @classmethod
    def analyse(
        cls, pattern, n_trailing_dense: int = 0, *, ordering: Ordering = "auto",
        max_bytes: float | None = None,
    ) -> SparseCholesky:
        """Order and analyse a symmetric pattern once.

        Parameters
        ----------
        pattern : scipy.sparse matrix
            The symmetric matrix, or its lower or upper triangle; only where its entries
            are stored matters (explicit zeros count), and the pattern is symmetrised.
        n_trailing_dense : int, default 0
            Number of last columns kept last and in their original order.
        ordering : {"auto", "amd", "rcm", "natural"}, default "auto"
            Fill-reducing ordering of the leading columns; "auto" keeps the cheapest of
            AMD, RCM and the given order (see the module docstring).
        max_bytes : float, optional
            Refuse (an :class:`~interlace.errors.InterlaceError` naming the sizes), before
            the pattern of L is built, a factor whose entries would cost more than this
            (:data:`BYTES_PER_ENTRY` each) in every ordering tried.

        Returns
        -------
        SparseCholesky
            The analysed factor, not yet factored (``ok`` is False).

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(4, format="csc"), n_trailing_dense=2)
        >>> chol.permutation.tolist()[2:], chol.nnz_L
        ([2, 3], 4)
        """
        return cls._analyse(_lower_pattern(pattern), n_trailing_dense, ordering, max_bytes)

    @classmethod
    def analyse_lower(
        cls, indptr, indices, n_trailing_dense: int = 0, *, ordering: Ordering = "auto",
        max_bytes: float | None = None,
    ) -> SparseCholesky:
        """:meth:`analyse` for a pattern given as the arrays of its lower triangle.

        The arrays become the input layout as they are (int64 arrays are not copied),
        so a caller that builds a large pattern need not build a scipy matrix, its
        values or a second copy.

        Parameters
        ----------
        indptr, indices : numpy.ndarray
            The lower triangle of the symmetric pattern, CSC: column j's rows are
            ``indices[indptr[j]:indptr[j+1]]``, sorted, distinct, from j to n - 1
            (with the diagonal: these entries are the input layout).
        n_trailing_dense, ordering, max_bytes
            As :meth:`analyse`.

        Returns
        -------
        SparseCholesky
            The analysed factor, not yet factored (``ok`` is False).

        Examples
        --------
        >>> import numpy as np
        >>> chol = SparseCholesky.analyse_lower(np.array([0, 2, 3]), np.array([0, 1, 1]))
        >>> chol.refactor(np.array([2.0, 1.0, 2.0])), round(chol.logdet(), 6)
        (True, 1.098612)
        """
        return cls._analyse(_checked_lower(indptr, indices), n_trailing_dense, ordering, max_bytes)

    @classmethod
    def _analyse(
        cls, lower: _Pattern, n_trailing_dense, ordering, max_bytes: float | None
    ) -> SparseCholesky:
        n = lower.n
        if isinstance(n_trailing_dense, bool) or not isinstance(
            n_trailing_dense, (int, np.integer)
        ):
            raise InterlaceError(
                f"n_trailing_dense: expected an int, found {type(n_trailing_dense).__name__}"
            )
        if not 0 <= n_trailing_dense <= n:
            raise InterlaceError(
                f"n_trailing_dense: expected an int in [0, {n}], found {n_trailing_dense}"
            )
        if ordering not in ("auto", "amd", "rcm", "natural"):
            raise InterlaceError(
                f"ordering: expected 'auto', 'amd', 'rcm' or 'natural', found {ordering!r}"
            )
        n_leading = n - int(n_trailing_dense)
        graph = _leading_graph(lower, n_leading)
        trailing = np.arange(n_leading, n, dtype=np.int64)
        methods = ("amd", "rcm", "natural") if ordering == "auto" else (ordering,)
        orders = [np.concatenate([_leading_order(graph, method), trailing]) for method in methods]
        del graph
        max_entries = np.inf if max_bytes is None else max_bytes / BYTES_PER_ENTRY
        # one symbolic factor alive at a time: each order's is dropped once its cost is
        # known, unless it is the cheapest and the last one tried (AMD, usually the
        # cheapest, is tried last; another winner's factor is built again)
        tried = sorted(range(len(methods)), key=lambda rank: methods[rank] == "amd")
        best, kept, fewest = None, None, None
        for rank in tried:
            symbolic = _symbolic(lower, orders[rank], n_leading, max_entries)
            if isinstance(symbolic, int):
                fewest = symbolic if fewest is None else min(fewest, symbolic)
            elif best is None or (symbolic.flops, rank) < best:  # ties: the earlier method
                best = (symbolic.flops, rank)
                kept = symbolic if rank == tried[-1] else None
            del symbolic
        if best is None:
            raise SparseTooLargeError(fewest * BYTES_PER_ENTRY, max_bytes, n, fewest)
        rank = best[1]
        if kept is None:
            kept = _symbolic(lower, orders[rank], n_leading)
        return cls(lower, int(n_trailing_dense), kept, methods[rank])

    def workspace(self) -> SparseCholesky:
        """A factor on the same analysis with its own numbers: the ordering, the
        pattern and the update plan are shared (read only), the values and the
        numeric phase's scratch are new. Threads that factor at once each need one.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(2, format="csc"))
        >>> other = chol.workspace()
        >>> chol.refactor(sp.eye(2, format="csc") * 4.0), other.ok
        (True, False)
        >>> other.L_indices is chol.L_indices, other.L_values is chol.L_values
        (True, False)
        """
        new = object.__new__(SparseCholesky)
        new.__dict__.update(self.__dict__)
        new.L_values = np.zeros_like(self.L_values)
        new._relative = np.zeros_like(self._relative)
        new._buffer = np.zeros_like(self._buffer)
        new._inverse_values = None
        new.ok = False
        return new

    @property
    def nnz_L(self) -> int:
        """Number of stored entries of L (diagonal included)."""
        return int(self.L_indptr[-1])

    def values_of(self, matrix) -> np.ndarray:
        """Values of ``matrix`` in the input layout.

        Parameters
        ----------
        matrix : scipy.sparse matrix
            Symmetric (only its lower triangle is read) or its upper triangle, with
            entries only where the analysed pattern has them.

        Returns
        -------
        numpy.ndarray
            One value per entry of the input layout (zero where ``matrix`` has none).

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> A = sp.csc_matrix([[2.0, 1.0], [1.0, 3.0]])
        >>> SparseCholesky.analyse(A).values_of(A).tolist()
        [2.0, 1.0, 3.0]
        """
        lower = _lower_values(matrix)
        if lower.shape != (self.n, self.n):
            raise InterlaceError(f"matrix: expected shape {(self.n, self.n)}, found {lower.shape}")
        columns = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(lower.indptr))
        positions = locate_entries(
            self.input_indptr, self.input_indices, lower.indices.astype(np.int64), columns
        )
        if np.any(positions < 0):
            t = int(np.flatnonzero(positions < 0)[0])
            raise InterlaceError(
                f"matrix: expected entries only on the analysed pattern, found one at "
                f"({lower.indices[t]}, {columns[t]})"
            )
        values = np.zeros(self.input_indices.shape[0])
        values[positions] = lower.data  # positions are distinct: duplicates were summed
        return values

    def refactor(self, values) -> bool:
        """Factor the matrix with these values on the analysed pattern.

        Parameters
        ----------
        values : numpy.ndarray or scipy.sparse matrix
            The values in the input layout, or a matrix read by :meth:`values_of`.

        Returns
        -------
        bool
            True on success; False when a pivot is not positive (A is not positive
            definite), and then the factor must not be used.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.csc_matrix(np.ones((2, 2))))
        >>> chol.refactor(np.array([2.0, 1.0, 2.0])), chol.refactor(np.array([1.0, 2.0, 1.0]))
        (True, False)
        """
        if sp.issparse(values):
            values = self.values_of(values)
        values = np.ascontiguousarray(values, dtype=np.float64)
        expected = self.input_indices.shape[0]
        if values.shape != (expected,):
            raise InterlaceError(
                f"values: expected shape ({expected},) (the input layout), found {values.shape}"
            )
        self._inverse_values = None
        scatter_values(values, self._value_positions, self.L_values)
        failed_column = factor_numeric(
            self.L_indptr,
            self.L_indices,
            self._starts,
            self._update_indptr,
            self._update_source,
            self._update_position,
            self._update_rows,
            self.L_values,
            self._relative,
            self._buffer,
        )
        self.ok = bool(failed_column == -1)
        return self.ok

    def _require_factor(self) -> None:
        if not self.ok:
            raise InterlaceError(
                "refactor: expected a successful factorisation before use, found none "
                "(not called yet, or the matrix was not positive definite)"
            )

    def logdet(self) -> float:
        """log det A = 2 sum log diag(L).

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(3, format="csc") * 2.0)
        >>> chol.refactor(sp.eye(3, format="csc") * 2.0)
        True
        >>> round(chol.logdet(), 6)
        2.079442
        """
        self._require_factor()
        return 2.0 * float(log_diagonal_sum(self.L_indptr, self.L_values))

    def _as_columns(self, b, name: str) -> tuple[np.ndarray, bool]:
        b = np.asarray(b, dtype=np.float64)
        if b.ndim not in (1, 2) or b.shape[0] != self.n:
            raise InterlaceError(
                f"{name}: expected shape ({self.n},) or ({self.n}, m), found {b.shape}"
            )
        return b.reshape(self.n, -1), b.ndim == 1

    def solve_lower(self, b) -> np.ndarray:
        """L^{-1} P b: ``b`` in the original order, the result in the factor's order.

        Parameters
        ----------
        b : numpy.ndarray
            Shape (n,) or (n, m).

        Returns
        -------
        numpy.ndarray
            Same shape as ``b``. Its last ``n_trailing_dense`` rows belong to the
            trailing columns, in their original order.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(2, format="csc"))
        >>> chol.refactor(sp.eye(2, format="csc") * 4.0)
        True
        >>> chol.solve_lower([2.0, 4.0]).tolist()
        [1.0, 2.0]
        """
        self._require_factor()
        columns, vector = self._as_columns(b, "b")
        x = np.ascontiguousarray(columns[self.permutation])
        solve_lower(self.L_indptr, self.L_indices, self.L_values, x)
        return x[:, 0] if vector else x

    def solve_lower_transpose(self, c) -> np.ndarray:
        """P' L^{-T} c: ``c`` in the factor's order, the result in the original order.

        Parameters
        ----------
        c : numpy.ndarray
            Shape (n,) or (n, m).

        Returns
        -------
        numpy.ndarray
            Same shape as ``c``; ``solve_lower_transpose(solve_lower(b))`` is A^{-1} b.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(2, format="csc"))
        >>> chol.refactor(sp.eye(2, format="csc") * 4.0)
        True
        >>> chol.solve_lower_transpose([2.0, 4.0]).tolist()
        [1.0, 2.0]
        """
        self._require_factor()
        columns, vector = self._as_columns(c, "c")
        x = np.array(columns, dtype=np.float64, order="C")
        solve_lower_transpose(self.L_indptr, self.L_indices, self.L_values, x)
        out = np.empty_like(x)
        out[self.permutation] = x
        return out[:, 0] if vector else out

    def solve(self, b) -> np.ndarray:
        """A^{-1} b, in the original order.

        Parameters
        ----------
        b : numpy.ndarray
            Shape (n,) or (n, m).

        Returns
        -------
        numpy.ndarray
            Same shape as ``b``.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(2, format="csc"))
        >>> chol.refactor(sp.eye(2, format="csc") * 4.0)
        True
        >>> chol.solve([4.0, 8.0]).tolist()
        [1.0, 2.0]
        """
        return self.solve_lower_transpose(self.solve_lower(b))

    def diagonal_of_L(self) -> np.ndarray:
        """Diagonal of L in the original order: entry i is L's pivot of original column i.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(2, format="csc"))
        >>> chol.refactor(sp.diags([4.0, 9.0], format="csc"))
        True
        >>> chol.diagonal_of_L().tolist()
        [2.0, 3.0]
        """
        self._require_factor()
        return self.L_values[self.L_indptr[:-1]][self.inverse_permutation]

    def trailing_factor(self) -> np.ndarray:
        """The trailing ``n_trailing_dense`` square block of L, dense lower triangular.

        It is the Cholesky factor of the Schur complement of the leading block in A,
        rows and columns in the original trailing order.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> A = sp.csc_matrix(np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 0.0], [1.0, 0.0, 2.0]]))
        >>> chol = SparseCholesky.analyse(A, n_trailing_dense=2)
        >>> chol.refactor(A)
        True
        >>> S = A.toarray()[1:, 1:] - np.outer(A.toarray()[1:, 0], A.toarray()[0, 1:]) / 2.0
        >>> np.allclose(chol.trailing_factor(), np.linalg.cholesky(S))
        True
        """
        self._require_factor()
        d = self.n_trailing_dense
        first = self.n - d
        out = np.zeros((d, d))
        for c in range(d):
            lo, hi = self.L_indptr[first + c], self.L_indptr[first + c + 1]
            out[self.L_indices[lo:hi] - first, c] = self.L_values[lo:hi]
        return out

    def factor_matrix(self) -> sp.csc_matrix:
        """L as a scipy CSC matrix (the factor of P A P', in the factor's order).

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> chol = SparseCholesky.analyse(sp.eye(2, format="csc"))
        >>> chol.refactor(sp.eye(2, format="csc") * 4.0)
        True
        >>> chol.factor_matrix().toarray().tolist()
        [[2.0, 0.0], [0.0, 2.0]]
        """
        self._require_factor()
        return sp.csc_matrix(
            (self.L_values.copy(), self.L_indices.copy(), self.L_indptr.copy()),
            shape=(self.n, self.n),
        )

    def _selected_inverse(self) -> np.ndarray:
        """A^{-1} on the pattern of L (permuted order), computed once per factor."""
        self._require_factor()
        if self._inverse_values is None:
            inverse_values = np.empty_like(self.L_values)
            selected_inverse(
                self.L_indptr, self.L_indices, self.L_values, self._starts, inverse_values
            )
            self._inverse_values = inverse_values
        return self._inverse_values

    def inverse_on_pattern(self) -> np.ndarray:
        """A^{-1} at the entries of the input layout (the analysed pattern's lower
        triangle, CSC): the selected inverse holds them all.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> A = sp.csc_matrix(np.array([[2.0, 1.0], [1.0, 2.0]]))
        >>> chol = SparseCholesky.analyse(A)
        >>> chol.refactor(A)
        True
        >>> np.round(chol.inverse_on_pattern() * 3.0, 6).tolist()
        [2.0, -1.0, 2.0]
        """
        return self._selected_inverse()[self._value_positions]

    def selected_inverse_diagonal(self) -> np.ndarray:
        """diag(A^{-1}) in the original order, from the selected inverse.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> A = sp.csc_matrix(np.array([[2.0, 1.0], [1.0, 2.0]]))
        >>> chol = SparseCholesky.analyse(A)
        >>> chol.refactor(A)
        True
        >>> np.round(chol.selected_inverse_diagonal(), 6).tolist()
        [0.666667, 0.666667]
        """
        inverse_values = self._selected_inverse()
        return inverse_values[self.L_indptr[:-1]][self.inverse_permutation]

    def inverse_entries(self, rows, columns) -> np.ndarray:
        """Entries A^{-1}[rows[t], columns[t]] (original indices).

        Entries on the pattern of L come from the selected inverse; any other entry is
        computed by solving for its column (:data:`SOLVE_BATCH` columns at a time).

        Parameters
        ----------
        rows, columns : array_like of int
            Same length, indices in [0, n).

        Returns
        -------
        numpy.ndarray
            One value per (row, column) pair.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> A = sp.csc_matrix(np.array([[2.0, 0.0], [0.0, 4.0]]))
        >>> chol = SparseCholesky.analyse(A)
        >>> chol.refactor(A)
        True
        >>> chol.inverse_entries([0, 1, 0], [0, 1, 1]).tolist()
        [0.5, 0.25, 0.0]
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        columns = np.asarray(columns, dtype=np.int64).ravel()
        if rows.shape != columns.shape:
            raise InterlaceError(
                f"columns: expected as many indices as rows ({rows.shape[0]}), "
                f"found {columns.shape[0]}"
            )
        for name, index in (("rows", rows), ("columns", columns)):
            if index.size and (index.min() < 0 or index.max() >= self.n):
                raise InterlaceError(
                    f"{name}: expected indices in [0, {self.n}), found "
                    f"{int(index.min())} to {int(index.max())}"
                )
        inverse_values = self._selected_inverse()
        out = np.empty(rows.shape[0])
        missing = gather_entries(
            self.L_indptr,
            self.L_indices,
            inverse_values,
            self.inverse_permutation[rows],
            self.inverse_permutation[columns],
            out,
        )
        if missing:
            where = np.flatnonzero(np.isnan(out))
            needed = np.unique(columns[where])
            for first in range(0, needed.shape[0], SOLVE_BATCH):
                batch = needed[first : first + SOLVE_BATCH]
                unit = np.zeros((self.n, batch.shape[0]))
                unit[batch, np.arange(batch.shape[0])] = 1.0
                solved = self.solve(unit)
                chosen = where[np.isin(columns[where], batch)]
                out[chosen] = solved[rows[chosen], np.searchsorted(batch, columns[chosen])]
        return out

    def inverse_diagonal_blocks(self, block_size: int, start: int = 0, stop: int | None = None):
        """Diagonal blocks of A^{-1} over consecutive index blocks [start + b k, start + (b+1) k).

        Parameters
        ----------
        block_size : int
            k, the size of each block.
        start, stop : int
            The index range tiled by the blocks, ``stop - start`` a multiple of k;
            ``stop`` defaults to the leading columns' end ``n - n_trailing_dense``.

        Returns
        -------
        numpy.ndarray
            Shape (n_blocks, k, k): block b is A^{-1} restricted to its k indices.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> A = sp.csc_matrix(np.array([[2.0, 1.0], [1.0, 2.0]]))
        >>> chol = SparseCholesky.analyse(A)
        >>> chol.refactor(A)
        True
        >>> np.allclose(chol.inverse_diagonal_blocks(2)[0], np.linalg.inv(A.toarray()))
        True
        """
        stop = self.n - self.n_trailing_dense if stop is None else stop
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise InterlaceError(f"block_size: expected an int, found {type(block_size).__name__}")
        if block_size < 1:
            raise InterlaceError(f"block_size: expected a positive int, found {block_size}")
        if not 0 <= start <= stop <= self.n or (stop - start) % block_size:
            raise InterlaceError(
                f"start, stop: expected 0 <= start <= stop <= {self.n} with stop - start a "
                f"multiple of block_size={block_size}, found start={start}, stop={stop}"
            )
        k = int(block_size)
        n_blocks = (stop - start) // k
        first = start + k * np.arange(n_blocks, dtype=np.int64)
        offsets = np.arange(k, dtype=np.int64)
        rows, columns = np.broadcast_arrays(
            first[:, None, None] + offsets[None, :, None],
            first[:, None, None] + offsets[None, None, :],
        )
        values = self.inverse_entries(rows.ravel(), columns.ravel())
        return values.reshape(n_blocks, k, k)
