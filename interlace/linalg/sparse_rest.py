"""The blocked path with a *sparse* rest: for designs whose Schur complement is sparse.

After the leading term is eliminated level by level (:mod:`interlace.linalg.system`),
the rest S = Lambda_r' (A_rr - A_r1 M A_1r) Lambda_r + diag(I, 0) has non-zeros only
where two rest effects meet in the data or through a common leading level. When the
leading levels each meet a few neighbouring levels of the other factor (1e6 rows
on 50,000 x 50,000 levels, each meeting ~20), S is sparse although its dense form
would need 20 GB. It is then factored by :class:`~interlace.linalg.sparse_cholesky.SparseCholesky`:
a fill-reducing ordering and the symbolic factor once, when the system is built, and
one numeric refactorisation per theta, with [X y] kept last so that log|R_X| and
r^2 are read off the trailing dense block of L. With scalar rest terms Lambda_r is a
diagonal scaling of the pattern's values, applied with the downdate in one pass; a rest
term with random slopes (k effects per level) makes Lambda_r block-diagonal: the
pattern then holds every pair of levels that meets as a whole k x k block, the
downdate runs unscaled, and Lambda_r' . Lambda_r is a fixed sum over each entry's
blocks (a plan built with the pattern, about (k+1)^2/4 products per entry).

The rule that picks this path is in :mod:`interlace.linalg.dispatch`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..design import ModelDesign
from ..errors import InterlaceError
from ..kernels.blockdiag import factor_leading_block
from ..kernels.crossprod import block_diagonal_crossprod, coupling_crossprod
from ..kernels.sparse_cholesky import locate_entries
from ..kernels.sparse_rest import (
    count_level_pairs,
    downdate_pattern,
    level_pair_offsets,
    rest_lower_pattern,
    scale_pattern,
)
from .sparse_cholesky import SparseCholesky
from .system import LeadBlocks, PenalizedSystem, lead_blocks, stack_terms

_CLAIM = threading.Lock()


def rest_crossprod_entries(terms, index_offset: np.ndarray, xy: np.ndarray, n_random: int):
    """The lower triangle of A_rr = [Z_r X y]'[Z_r X y] as COO (rows, columns, values,
    one entry per place), from the terms' group codes: each term's own block-diagonal
    block, its coupling to the later terms and to [X y], and [X y]'[X y].

    Parameters
    ----------
    terms : sequence of RandomTerm
        The rest's terms; term t's effects start at ``index_offset[t]``, level l's k
        effects at ``index_offset[t] + l k``.
    index_offset : numpy.ndarray
        First index of each term.
    xy : numpy.ndarray
        The [X y] columns (n x (p + 1)), at indices ``n_random`` on.
    n_random : int
        Number of random effects (the terms' indices end there).

    Returns
    -------
    rows, columns : numpy.ndarray
        int64, rows >= columns.
    values : numpy.ndarray

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", interlace.load_dataset("Penicillin"))
    >>> d = m._system.design
    >>> xy = np.column_stack([d.X, d.y])
    >>> rows, cols, values = rest_crossprod_entries(d.terms[1:], np.array([0]), xy, 6)
    >>> Z = np.eye(6)[d.terms[1].group_codes]
    >>> full = np.column_stack([Z, xy])
    >>> A = np.zeros((8, 8)); A[rows, cols] = values
    >>> np.allclose(A, np.tril(full.T @ full))
    True
    """
    n, n_tail = xy.shape
    rows, cols, values = [], [], []
    for t, term in enumerate(terms):
        k, first = term.n_columns, int(index_offset[t])
        own = block_diagonal_crossprod(term.group_codes, term.design, term.n_levels)
        a, b = np.tril_indices(k)
        base = first + k * np.arange(term.n_levels, dtype=np.int64)[:, None]
        rows.append((base + a).ravel())
        cols.append((base + b).ravel())
        values.append(own[:, a, b].ravel())
        later = first + term.n_effects  # the later terms' and [X y]'s indices start here
        codes, designs, design_start, offsets, _, _ = stack_terms(terms[t + 1 :], n)
        ptr, idx, val = coupling_crossprod(term.group_codes, term.design, term.n_levels, codes, designs,
                                           design_start, offsets, xy, n_random + n_tail - later)
        level_first = first + k * np.repeat(np.arange(term.n_levels, dtype=np.int64), np.diff(ptr))
        for c in range(k):
            rows.append(later + idx)
            cols.append(level_first + c)
            values.append(val[:, c])
    xx_rows, xx_cols = np.tril_indices(n_tail)
    rows.append(n_random + xx_rows.astype(np.int64))
    cols.append(n_random + xx_cols.astype(np.int64))
    values.append((xy.T @ xy)[xx_rows, xx_cols])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


def offset_dtype(longest_column: int) -> type:
    """uint16 for offsets within columns of at most ``longest_column`` entries when they
    fit (a quarter of the bytes of a position as int64), else int32.

    Examples
    --------
    >>> offset_dtype(30).__name__, offset_dtype(70_000).__name__
    ('uint16', 'int32')
    """
    return np.uint16 if longest_column <= np.iinfo(np.uint16).max + 1 else np.int32


@dataclass(frozen=True)
class SparseFactor:
    """The factor of a sparse-rest system at one theta (the fields
    :class:`~interlace.linalg.system.Factor` computes, stored).

    Attributes
    ----------
    lead_chol, lead_shrink : numpy.ndarray
        As :class:`~interlace.linalg.system.Factor`.
    lead_logdet : float
        2 sum log diag of the leading factors.
    L_values : numpy.ndarray
        The numeric sparse factor of the rest (a copy, on the system's symbolic factor).
    logdet_random, logdet_fixed, pwrss : float
        log|L_theta|^2, log|R_X|^2 and r^2.
    fixed_chol : numpy.ndarray
        L_X (p x p, lower).
    n_rest_random : int
        Number of random effects in the rest.
    ok : bool
        False when the system was not positive definite.
    """

    lead_chol: np.ndarray
    lead_shrink: np.ndarray
    lead_logdet: float
    L_values: np.ndarray | None
    logdet_random: float
    logdet_fixed: float
    pwrss: float
    fixed_chol: np.ndarray
    n_rest_random: int
    ok: bool


class SparseRestSystem(PenalizedSystem):
    """A blocked system whose rest is held and factored as a sparse matrix.

    Parameters
    ----------
    design : ModelDesign
        The model's data; its first term is eliminated by level, the other terms
        must be scalar (one effect per level).
    lead : LeadBlocks, optional
        The leading term's blocks when already built.
    max_bytes : float, optional
        Refuse a sparse factor costing more (see
        :meth:`~interlace.linalg.sparse_cholesky.SparseCholesky.analyse`).
    crossproducts : optional
        Cross-products summed elsewhere (see :class:`~interlace.linalg.system.PenalizedSystem`):
        their ``lead_blocks()`` and ``rest_lower_entries()`` replace the design's rows.
    xy : numpy.ndarray, optional
        The design's [X y] columns (n x (p + 1), C order) when already stacked.

    Examples
    --------
    >>> import interlace
    >>> from interlace.fitting.objective import profiled_deviance
    >>> m = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", interlace.load_dataset("Penicillin"))
    >>> system = SparseRestSystem(m._system.design)
    >>> factor = system.factorize(m.theta)
    >>> dense = m._system.factorize(m.theta)  # the fit's own system
    >>> round(profiled_deviance(factor, m.nobs, 1, True), 8) == round(profiled_deviance(dense, m.nobs, 1, True), 8)
    True
    """

    def __init__(self, design: ModelDesign, lead: LeadBlocks | None = None, max_bytes: float | None = None,
                 crossproducts=None, xy: np.ndarray | None = None):
        terms = design.terms
        if len(terms) < 2:
            raise InterlaceError(
                "solver: the sparse rest needs a leading term and at least one other term, found "
                + ", ".join(f"{t.name} ({t.n_columns} columns)" for t in terms)
            )
        self.design = design
        self.n_leading = 1
        self.lead_term = terms[0]
        self.rest_terms = terms[1:]
        n, p = design.n_obs, design.n_fixed
        codes, designs, design_start, index_offset, ks, levels = stack_terms(self.rest_terms, n)
        self.n_rest_random = q = int(sum(t.n_effects for t in self.rest_terms))
        self.size = size = q + p + 1
        self._block_offset, self._block_k, self._block_levels = index_offset, ks, levels
        if crossproducts is None:
            if xy is None:
                xy = np.ascontiguousarray(np.column_stack([design.X, design.y]))
            self.lead_crossprod, self.coupling, self.coupling_by_row = lead or lead_blocks(design, xy)
            self._a_rows, self._a_cols, self._a_values = rest_crossprod_entries(self.rest_terms, index_offset, xy, q)
        else:
            self.lead_crossprod, self.coupling, self.coupling_by_row = lead or crossproducts.lead_blocks()
            self._a_rows, self._a_cols, self._a_values = crossproducts.rest_lower_entries()
        self.downdate = "sparse"
        self._dense_coupling = None
        self._scalar = bool(np.all(ks == 1))
        # the pattern: every level's coupling clique (it holds A_rr's entries: two rest
        # effects of one row meet in that row's leading level), the diagonal, the [X y] rows
        ptr, idx, _ = self.coupling
        indptr, indices = rest_lower_pattern(ptr, idx, *self.coupling_by_row, size, p + 1)
        self.coupling_by_row = None  # only the dense rest's downdate reads it
        if self._scalar:
            self.chol = SparseCholesky.analyse_lower(indptr, indices, p + 1, max_bytes=max_bytes)
        else:
            pattern = sp.csc_matrix((np.ones(indices.size), indices, indptr), shape=(size, size))
            pattern = self._closed_under_blocks(pattern)
            self.chol = SparseCholesky.analyse(sp.tril(pattern).tocsc(), n_trailing_dense=p + 1,
                                               max_bytes=max_bytes)
        del indptr, indices
        self._a_positions = self._locate(self._a_rows, self._a_cols)
        self._pair_offsets = self._level_pair_offsets(ptr, idx)
        if not self._scalar:
            self._scaling = self._scaling_plan()
        self._random_chol = None
        self._numbers = threading.local()

    # ----- random slopes in the rest: Lambda_r is block-diagonal, not a diagonal scaling --

    def _blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per index of the rest: (first index of its block, block size k, position in the
        block, offset of its term's T in the flat coefficients of :meth:`_coefficients`,
        0 for the [X y] tail whose coefficient is 1)."""
        size, q = self.size, self.n_rest_random
        start = np.arange(size, dtype=np.int64)
        k = np.ones(size, dtype=np.int64)
        local = np.zeros(size, dtype=np.int64)
        coef = np.zeros(size, dtype=np.int64)
        flat = 1
        for t, term in enumerate(self.rest_terms):
            kt = int(self._block_k[t])
            span = slice(int(self._block_offset[t]), int(self._block_offset[t]) + term.n_effects)
            within = np.arange(term.n_effects, dtype=np.int64)
            start[span] = self._block_offset[t] + within // kt * kt
            k[span] = kt
            local[span] = within % kt
            coef[span] = flat
            flat += kt * kt
        assert int(np.sum(k[:q] == 0)) == 0
        return start, k, local, coef

    def _closed_under_blocks(self, pattern) -> sp.csr_matrix:
        """The pattern with every pair of blocks (a level's k effects) that meets anywhere
        filled in whole: Lambda_r' S Lambda_r mixes the entries within such a pair."""
        start, _, _, _ = self._blocks()
        block_ids, block_of = np.unique(start, return_inverse=True)
        B = sp.csr_matrix((np.ones(self.size), (np.arange(self.size), block_of)), shape=(self.size, block_ids.size))
        meets = (B.T @ (abs(pattern) > 0).astype(np.float64) @ B) > 0
        return (B @ meets.astype(np.float64) @ B.T).tocsr()

    def _scaling_plan(self) -> tuple[np.ndarray, ...]:
        """For S = Lambda_r' D Lambda_r + diag(I, 0) on the input layout: per product term
        (entry e, position of D's entry, left and right coefficient), e = (r, c) summing
        T[a, r] D[a, b] T[b, c] over a, b in the blocks of r and c (T lower triangular:
        a, b at or after r, c in their block)."""
        start, k, local, coef = self._blocks()
        rows = self.chol.input_indices
        cols = np.repeat(np.arange(self.size, dtype=np.int64), np.diff(self.chol.input_indptr))
        entry = np.arange(rows.size, dtype=np.int64)
        out = ([], [], [], [])
        kmax = int(k.max())
        for da in range(kmax):
            a_local = local[rows] + da
            ok_a = a_local < k[rows]
            for db in range(kmax):
                b_local = local[cols] + db
                ok = ok_a & (b_local < k[cols])
                if not ok.any():
                    continue
                a = start[rows[ok]] + a_local[ok]
                b = start[cols[ok]] + b_local[ok]
                position = self._locate(np.maximum(a, b), np.minimum(a, b))
                if np.any(position < 0):  # pragma: no cover - the pattern is closed under blocks
                    raise AssertionError("the sparse rest's pattern misses an entry of a block")
                left = np.where(coef[rows[ok]] > 0, coef[rows[ok]] + a_local[ok] * k[rows[ok]] + local[rows[ok]], 0)
                right = np.where(coef[cols[ok]] > 0, coef[cols[ok]] + b_local[ok] * k[cols[ok]] + local[cols[ok]], 0)
                for part, values in zip(out, (entry[ok], position, left, right), strict=True):
                    part.append(values)
        diagonal = np.flatnonzero((rows == cols) & (rows < self.n_rest_random))
        return (*(np.concatenate(part) for part in out), diagonal)

    def _coefficients(self, theta: np.ndarray) -> np.ndarray:
        """1, then each rest term's T (k x k, row-major): the coefficients of the scaling plan."""
        return np.concatenate([[1.0]] + [np.asarray(t.relative_cov_factor(theta), dtype=np.float64).ravel()
                                         for t in self.rest_terms])

    # the analyses (self.chol, self._random_chol) are shared by the copies with_response
    # makes and by the threads that use them; the numbers live in per-thread workspaces
    def _workspace(self, analysis: SparseCholesky) -> SparseCholesky:
        """This thread's factor on ``analysis`` (its own values and scratch)."""
        spaces = self._numbers.__dict__.setdefault("spaces", {})
        space = spaces.get(id(analysis))
        if space is None or space.L_indices is not analysis.L_indices:
            with _CLAIM:  # the first thread works in the analysis' own arrays
                first = not getattr(analysis, "_claimed", False)
                analysis._claimed = True
            space = spaces[id(analysis)] = analysis if first else analysis.workspace()
        return space

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_numbers", None)  # per thread: a new process starts afresh
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._numbers = threading.local()

    def _level_pair_offsets(self, ptr: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Where the downdate of each pair of random indices a level meets lands: its
        offset in its column of the input layout (:func:`level_pair_offsets`), after
        checking that the layout ends every random column with the [X y] rows, whole
        (the downdate finds their entries from the column's end)."""
        indptr, indices = self.chol.input_indptr, self.chol.input_indices
        q, size = self.n_rest_random, self.size
        tail = np.arange(q, size, dtype=np.int64)
        ends = indptr[1 : q + 1]
        if q and (np.any(ends - indptr[:q] < tail.size)
                  or np.any(indices[ends[:, None] - (size - tail)[None, :]] != tail)):
            raise AssertionError("the sparse rest's pattern lacks part of an [X y] row")  # pragma: no cover
        lengths = np.diff(indptr[: q + 1])
        out = np.empty(count_level_pairs(ptr, idx, q), dtype=offset_dtype(int(lengths.max()) if q else 0))
        if level_pair_offsets(ptr, idx, indptr, indices, q, out):
            raise AssertionError("the sparse rest's pattern lacks a pair a level meets")  # pragma: no cover
        return out

    def _locate(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Positions of lower-triangle entries (rows >= cols) in the input layout."""
        return locate_entries(self.chol.input_indptr, self.chol.input_indices, rows, cols)

    @property
    def path(self) -> str:
        """``"sparse"``: the blocked path (here with a sparse rest)."""
        return "sparse"

    @property
    def rest_layout(self) -> str:
        """``"sparse"``: the rest is a sparse matrix (``"dense"`` on the other systems)."""
        return "sparse"

    def _rest_values(self, theta: np.ndarray, lead_shrink: np.ndarray) -> np.ndarray:
        """The rest S at theta in the sparse factor's input layout."""
        values = np.zeros(self.chol.input_indices.size)
        np.add.at(values, self._a_positions, self._a_values)
        ptr, idx, val = self.coupling
        if not self._scalar:  # downdate unscaled, then Lambda_r' . Lambda_r by the plan
            downdate_pattern(values, ptr, idx, val, lead_shrink, np.ones(self.size), self.chol.input_indptr,
                             self._pair_offsets, self.n_rest_random)
            entry, position, left, right, diagonal = self._scaling
            coefficients = self._coefficients(theta)
            out = np.bincount(entry, weights=coefficients[left] * coefficients[right] * values[position],
                              minlength=values.size)
            out[diagonal] += 1.0
            return out
        scale = self._scalar_scale(theta)
        out = np.empty_like(values)
        scale_pattern(values, self.chol.input_indptr, self.chol.input_indices, scale, self.n_rest_random, out)
        downdate_pattern(out, ptr, idx, val, lead_shrink, scale, self.chol.input_indptr, self._pair_offsets,
                         self.n_rest_random)
        return out

    def factorize(self, theta: np.ndarray) -> SparseFactor:
        """Factor the system at ``theta`` (lme4's order)."""
        q, p = self.n_rest_random, self.n_fixed
        T1 = np.ascontiguousarray(self.lead_term.relative_cov_factor(theta), dtype=np.float64)
        lead_chol, lead_shrink, lead_logdet, ok = factor_leading_block(self.lead_crossprod, T1)
        failed = SparseFactor(lead_chol, lead_shrink, np.inf, None, np.inf, np.inf, np.inf, np.zeros((p, p)), q,
                              False)
        chol = self._workspace(self.chol)
        if not ok or not chol.refactor(self._rest_values(theta, lead_shrink)):
            return failed
        diagonal = chol.diagonal_of_L()
        trailing = chol.trailing_factor()
        return SparseFactor(
            lead_chol, lead_shrink, float(lead_logdet), chol.L_values.copy(),
            float(lead_logdet) + 2.0 * float(np.sum(np.log(diagonal[:q]))),
            2.0 * float(np.sum(np.log(np.diagonal(trailing)[:p]))),
            float(trailing[-1, -1]) ** 2, np.tril(trailing[:p, :p]), q, True,
        )

    def _load(self, factor: SparseFactor) -> SparseCholesky:
        """This thread's sparse factor holding ``factor``'s numbers."""
        if not factor.ok:
            raise InterlaceError("factor: expected a positive definite factor, found a failed one")
        chol = self._workspace(self.chol)
        if chol.L_values is not factor.L_values:
            chol.L_values[:] = factor.L_values
            chol._inverse_values = None
            chol.ok = True
        return chol

    def solve(self, factor: SparseFactor, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spherical random effects u (factorisation order) and beta at the optimum."""
        chol = self._load(factor)
        unit = np.zeros(self.size)
        unit[-1] = 1.0
        x = chol.solve(unit)  # S^{-1} e_y = [-M^{-1} s; 1] / r^2
        z = -x[:-1] / x[-1]
        return self._with_lead_effects(factor, theta, z[: self.n_rest_random], z[self.n_rest_random :])

    def conditional_precision_inverse_blocks(self, factor: SparseFactor, theta: np.ndarray) -> list[np.ndarray]:
        """Per term, the (n_levels, k, k) diagonal blocks of (Lambda'Z'Z Lambda + I)^{-1},
        from the selected inverse of the rest's random block (factored on its own)."""
        q = self.n_rest_random
        values = self._rest_values(theta, factor.lead_shrink)
        if self._random_chol is None:
            pattern = sp.csc_matrix((np.ones(values.size), self.chol.input_indices, self.chol.input_indptr),
                                    shape=(self.size, self.size))[:q, :q]
            self._random_chol = SparseCholesky.analyse(pattern, n_trailing_dense=0)
        random_chol = self._workspace(self._random_chol)
        full = sp.csc_matrix((values, self.chol.input_indices, self.chol.input_indptr),
                             shape=(self.size, self.size))[:q, :q]
        if not random_chol.refactor(random_chol.values_of(full)):
            raise InterlaceError("theta: expected a positive definite random-effects block, found none")
        diagonal = random_chol.selected_inverse_diagonal()
        lead = self.lead_term
        k1 = lead.n_columns
        pinv = np.linalg.inv(factor.lead_chol @ np.swapaxes(factor.lead_chol, 1, 2))
        starts, entries_idx, entries_val = self.lead_coupling_entries(theta)
        pair_rows, pair_cols, pair_level, pair_i, pair_j = [], [], [], [], []
        for l in range(lead.n_levels):  # all pairs within a level: its quadratic form
            a, b = starts[l], starts[l + 1]
            if b == a:
                continue
            ii, jj = np.meshgrid(np.arange(a, b), np.arange(a, b), indexing="ij")
            pair_rows.append(entries_idx[ii.ravel()])
            pair_cols.append(entries_idx[jj.ravel()])
            pair_level.append(np.full(ii.size, l))
            pair_i.append(ii.ravel())
            pair_j.append(jj.ravel())
        blocks = pinv.copy()
        if pair_rows:
            rows, cols = np.concatenate(pair_rows), np.concatenate(pair_cols)
            inverse = random_chol.inverse_entries(rows, cols)
            li, lj = np.concatenate(pair_i), np.concatenate(pair_j)
            level = np.concatenate(pair_level)
            # C_l' S^{-1} C_l, summed entry pair by entry pair
            quad = np.zeros((lead.n_levels, k1, k1))
            np.add.at(quad, level, inverse[:, None, None] * entries_val[li][:, :, None] * entries_val[lj][:, None, :])
            blocks = blocks + np.einsum("lab,lbc,lcd->lad", pinv, quad, pinv)
        out = [blocks]
        pos = 0
        for t in self.rest_terms:
            if t.n_columns == 1:
                out.append(diagonal[pos : pos + t.n_effects].reshape(t.n_levels, 1, 1))
            else:
                out.append(random_chol.inverse_diagonal_blocks(t.n_columns, pos, pos + t.n_effects))
            pos += t.n_effects
        return out

    def with_response(self, y: np.ndarray) -> SparseRestSystem:
        """The same design with a new response: only Z'y, X'y and y'y change."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        new = self._copy_with_response(y)  # shares the symbolic factor; numbers live in each SparseFactor
        cross = self._response_cross(y)
        on_y = self._a_rows == self.size - 1
        values = self._a_values.copy()
        values[on_y] = cross[self._a_cols[on_y]]
        new._a_values = values
        return new

    def with_fixed_tail(self, tail: np.ndarray) -> PenalizedSystem:
        """Not available with a sparse rest: profile intervals need the dense rest."""
        raise InterlaceError(
            "solver: profile intervals hold fixed effects through the dense rest; this fit used the "
            "sparse rest (the design's Schur complement is too large to be dense). Use "
            "confint(method='wald')"
        )
