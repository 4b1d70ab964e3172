"""The penalised least-squares system [Z X y]'[Z X y], built once, factored per theta.

The random terms are in factorisation order. On the blocked path the first term
is the *leading* block: its Z_1'Z_1 is block-diagonal (one k x k block per level),
so it is eliminated level by level, and its coupling Z_1'[Z_rest X y] is kept
sparse by level. Everything else (the other terms, X and y) forms the dense
*rest*: after the leading block is eliminated, the Schur complement

    S = Lambda_r' (A_rr - A_r1 M A_1r) Lambda_r + diag(I, 0),
    M = blockdiag_l T_1 (T_1' A_11,l T_1 + I)^{-1} T_1',

is factored by one dense Cholesky (LAPACK ``potrf``). On the dense path there is
no leading block and S is the whole system. Both give the same factor entries:
the log-determinants and the penalised residual sum of squares are read off the
diagonals, with nothing passing over the n rows per theta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack

from ..design import ModelDesign, RandomTerm
from ..kernels._jit import for_work, thread_count
from ..kernels.blockdiag import (
    assemble_scaled_upper,
    coupling_times,
    coupling_transpose_times,
    downdate_and_weigh_rest_scalar,
    downdate_rest,
    downdate_rest_scalar,
    factor_leading_block,
    scale_symmetric_blocks,
    transpose_coupling,
)
from ..kernels.conditional import level_quadratic_forms
from ..kernels.crossprod import block_diagonal_crossprod, coupling_crossprod, random_crossprod
from ..kernels.products import stacked_z_transpose_times, z_transpose_times
from ..shallow import with_fields
from .mirrored import MirroredMatrix
from .threads import limited


def stack_terms(terms: tuple[RandomTerm, ...], n: int):
    """Stacked arrays of several terms for the cross-product kernels: codes, designs,
    design_start, index_offset, columns per term, levels per term."""
    if terms:
        codes = np.ascontiguousarray(np.vstack([t.group_codes for t in terms]))
        designs = np.ascontiguousarray(np.hstack([t.design for t in terms]))
    else:
        codes = np.zeros((0, n), dtype=np.int32)
        designs = np.zeros((n, 0))
    ks = np.array([t.n_columns for t in terms], dtype=np.int64)
    design_start = np.concatenate([[0], np.cumsum(ks)]).astype(np.int64)
    sizes = np.array([t.n_effects for t in terms], dtype=np.int64)
    index_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if terms else np.zeros(0, np.int64)
    levels = np.array([t.n_levels for t in terms], dtype=np.int64)
    return codes, designs, design_start, index_offset, ks, levels


def dense_crossprod(codes: np.ndarray, designs: np.ndarray, design_start: np.ndarray, index_offset: np.ndarray,
                    xy: np.ndarray, size: int) -> np.ndarray:
    """[Z X y]'[Z X y] for the given terms (stacked as :func:`stack_terms` gives them) as a
    dense symmetric (size x size) array, the [X y] columns ``xy`` last: the random
    effects' blocks from the codes (:func:`~interlace.kernels.crossprod.random_crossprod`),
    [X y]'[X y] by one matrix product."""
    out = random_crossprod(codes, designs, design_start, index_offset, xy, size)
    tail = size - xy.shape[1]
    out[tail:, tail:] = xy.T @ xy
    return out


class LeadBlocks(NamedTuple):
    """The leading term's blocks of [Z X y]'[Z X y], the same on every blocked path.

    Attributes
    ----------
    crossprod : numpy.ndarray
        (n_levels, k, k) Z_1'Z_1 by level.
    coupling : tuple of numpy.ndarray
        Z_1'[Z_rest X y] by level: ``(ptr, idx, val)`` (:func:`~interlace.kernels.crossprod.coupling_crossprod`).
    coupling_by_row : tuple of numpy.ndarray
        Where each rest index occurs in the coupling (:func:`~interlace.kernels.blockdiag.transpose_coupling`).
    """

    crossprod: np.ndarray
    coupling: tuple[np.ndarray, np.ndarray, np.ndarray]
    coupling_by_row: tuple[np.ndarray, np.ndarray, np.ndarray]


def lead_blocks(design: ModelDesign, xy: np.ndarray | None = None) -> LeadBlocks:
    """The blocks of the design's first term, eliminated by level on the blocked path
    (``xy``: the [X y] columns, when already stacked)."""
    if xy is None:
        xy = np.ascontiguousarray(np.column_stack([design.X, design.y]))
    lead, rest = design.terms[0], design.terms[1:]
    codes, designs, design_start, index_offset, _, _ = stack_terms(rest, design.n_obs)
    size = int(sum(t.n_effects for t in rest)) + xy.shape[1]
    coupling = coupling_crossprod(lead.group_codes, lead.design, lead.n_levels, codes, designs, design_start,
                                  index_offset, xy, size)
    return LeadBlocks(block_diagonal_crossprod(lead.group_codes, lead.design, lead.n_levels), coupling,
                      transpose_coupling(coupling[0], coupling[1], size))


def _copy_into(source: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """A copy of ``source``, written into ``out`` when given."""
    if out is None:
        return source.copy()
    np.copyto(out, source)
    return out


@dataclass(frozen=True)
class Factor:
    """The Cholesky factor of the system at one theta.

    Attributes
    ----------
    lead_chol : numpy.ndarray or None
        (n_levels, k, k) lower factors of the leading block, or None on the dense path.
    lead_shrink : numpy.ndarray or None
        (n_levels, k, k) T (T'A_l T + I)^{-1} T' per level.
    lead_logdet : float
        2 sum log diag of the leading factors.
    rest_chol : numpy.ndarray
        (m, m) lower Cholesky factor of the rest (Fortran order); the last row is y's.
    n_rest_random : int
        Number of random effects in the rest.
    ok : bool
        False when the system was not positive definite.
    lead_weighted : MirroredMatrix or None
        When the factorisation was asked for it (``weigh_lead`` of
        :meth:`PenalizedSystem.factorize`) and could form it: the (size, size) matrix
        sum_l theta_1^2 / d_l^2 v_l v_l' (v_l = Lambda_r C_l, d_l = theta_1^2 n_l + 1)
        over the leading term's levels, whose inner product with the rest's inverse is
        the leading term's share of the gradient's trace; kept in the triangle of
        ``rest_chol``'s buffer that the factor leaves free (its ``buffer`` is
        ``rest_chol.T``), so valid as long as the factor is; else None.
    """

    lead_chol: np.ndarray | None
    lead_shrink: np.ndarray | None
    lead_logdet: float
    rest_chol: np.ndarray
    n_rest_random: int
    ok: bool
    lead_weighted: MirroredMatrix | None = None

    @property
    def logdet_random(self) -> float:
        """log |L_theta|^2 (lme4's ``ldL2``)."""
        d = np.diagonal(self.rest_chol)[: self.n_rest_random]
        return self.lead_logdet + 2.0 * float(np.sum(np.log(d)))

    @property
    def logdet_fixed(self) -> float:
        """log |R_X|^2 (lme4's ``ldRX2``)."""
        d = np.diagonal(self.rest_chol)[self.n_rest_random : -1]
        return 2.0 * float(np.sum(np.log(d)))

    @property
    def pwrss(self) -> float:
        """The penalised weighted residual sum of squares r^2(theta)."""
        return float(self.rest_chol[-1, -1]) ** 2

    @property
    def fixed_chol(self) -> np.ndarray:
        """L_X (p x p, lower): R_X = L_X', vcov(beta) = sigma^2 (L_X L_X')^{-1}."""
        q = self.n_rest_random
        return np.tril(self.rest_chol[q:-1, q:-1])


class PenalizedSystem:
    """Cross-products of [Z X y] split into a leading block and a dense rest.

    Parameters
    ----------
    design : ModelDesign
        The model's data; its terms are in factorisation order.
    n_leading : int
        0 (dense path) or 1 (blocked path: the first term is eliminated by level).
    lead : LeadBlocks, optional
        The leading term's blocks when already built (:func:`lead_blocks`).
    crossproducts : optional
        The cross-products summed elsewhere (from data partitions:
        :class:`interlace.partitioned.crossproducts.SummedCrossProducts`), whose
        ``lead_blocks()`` and ``rest_dense(n_leading)`` replace the design's rows (a
        design without rows in memory); None builds them from the design.
    xy : numpy.ndarray, optional
        The design's [X y] columns (n x (p + 1), C order) when already stacked (for
        :func:`lead_blocks`), so that they are not stacked again.
    """

    def __init__(self, design: ModelDesign, n_leading: int, lead: LeadBlocks | None = None, crossproducts=None,
                 xy: np.ndarray | None = None):
        if n_leading not in (0, 1):
            raise ValueError(f"n_leading: expected 0 or 1, found {n_leading}")
        self.design = design
        self.n_leading = n_leading
        terms = design.terms
        self.lead_term = terms[0] if n_leading else None
        self.rest_terms = terms[n_leading:]
        n, p = design.n_obs, design.n_fixed
        codes, designs, design_start, index_offset, ks, levels = stack_terms(self.rest_terms, n)
        self.n_rest_random = int(sum(t.n_effects for t in self.rest_terms))
        self.size = self.n_rest_random + p + 1
        self._block_offset = index_offset
        self._block_k = ks
        self._block_levels = levels
        if crossproducts is None:
            if xy is None:
                xy = np.ascontiguousarray(np.column_stack([design.X, design.y]))
            self.rest_crossprod = dense_crossprod(codes, designs, design_start, index_offset, xy, self.size)
        else:
            xy = None
            self.rest_crossprod = crossproducts.rest_dense(n_leading)
        if self.lead_term is not None:
            lead = lead or (lead_blocks(design, xy) if crossproducts is None else crossproducts.lead_blocks())
            self.lead_crossprod, self.coupling, self.coupling_by_row = lead
        else:
            self.lead_crossprod = None
            self.coupling = None
            self.coupling_by_row = None
        self.downdate = "scatter"
        self._dense_coupling = None

    def __getstate__(self) -> dict:
        """What is pickled (to bootMer's and joblib's worker processes): the response
        products' stacked codes, a copy of the rest terms' codes made at the first refit
        and rebuilt on first use, stay behind."""
        return {k: v for k, v in self.__dict__.items() if k != "_response_layout"}

    def with_syrk_downdate(self) -> PenalizedSystem:
        """The same system downdating its rest with one BLAS ``syrk`` on the coupling as a
        dense (n_levels x size) matrix instead of a scatter per level: faster when the
        levels of the leading term meet a large share of the rest (the rule is in
        :mod:`interlace.linalg.dispatch`). Scalar leading and rest terms only."""
        if self.lead_term is None or self.lead_term.n_columns != 1 or not all(self._block_k == 1):
            raise ValueError("with_syrk_downdate: expected a blocked system of scalar terms")
        new = object.__new__(PenalizedSystem)
        new.__dict__.update(self.__dict__)
        new.downdate = "syrk"
        return new

    def dense_coupling(self) -> np.ndarray:
        """The coupling Z_1'[Z_rest X y] as a dense (n_levels x size) matrix, built on
        first use and again whenever the coupling is replaced (new response, new tail).
        Thread-safe: it is never changed once built; threads that build it at once each
        build the same and keep one (the copies ``with_response`` makes build their own)."""
        cached = self._dense_coupling
        if cached is None or cached[0] is not self.coupling:
            ptr, idx, val = self.coupling
            dense = np.zeros((len(ptr) - 1, self.size))
            dense[np.repeat(np.arange(len(ptr) - 1), np.diff(ptr)), idx] = val[:, 0]
            self._dense_coupling = cached = (self.coupling, dense)
        return cached[1]

    @property
    def n_fixed(self) -> int:
        """p, the number of [X] columns in the system."""
        return self.size - self.n_rest_random - 1

    def with_fixed_tail(self, tail: np.ndarray) -> PenalizedSystem:
        """The same system with new [X y] columns ``[X y] @ tail`` ((p+1) x p' + 1 matrix,
        its last column giving the new y): only the cross-products with the tail change,
        no pass over the rows. Used to hold fixed effects at given values (y - x_j b).
        """
        tail = np.asarray(tail, dtype=np.float64)
        q = self.n_rest_random
        old_tail = self.size - q
        if tail.shape[0] != old_tail:
            raise ValueError(f"tail: expected {old_tail} rows, found {tail.shape[0]}")
        new = object.__new__(PenalizedSystem)
        new.__dict__.update(self.__dict__)
        new.size = q + tail.shape[1]
        full = np.zeros((self.size, new.size))
        full[:q, :q] = np.eye(q)
        full[q:, q:] = tail
        new.rest_crossprod = np.ascontiguousarray(full.T @ self.rest_crossprod @ full)
        if self.coupling is not None:
            ptr, idx, val = self.coupling
            n_levels = len(ptr) - 1
            counts = np.diff(ptr)
            # every level lists the whole tail last (the kernel adds [X y] for every row)
            is_tail = idx >= q
            new_counts = counts - old_tail + tail.shape[1]
            new_ptr = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int64)
            head_idx = idx[~is_tail]
            head_val = val[~is_tail]
            tail_val = val[is_tail].reshape(n_levels, old_tail, -1)
            new_tail_val = np.einsum("to,lok->ltk", tail.T, tail_val)
            new_idx = np.empty(new_ptr[-1], dtype=np.int64)
            new_val = np.empty((new_ptr[-1], val.shape[1]))
            head_ptr = np.concatenate([[0], np.cumsum(counts - old_tail)])
            for level in range(n_levels):
                a, b = head_ptr[level], head_ptr[level + 1]
                start = new_ptr[level]
                h = b - a
                new_idx[start : start + h] = head_idx[a:b]
                new_val[start : start + h] = head_val[a:b]
                new_idx[start + h : new_ptr[level + 1]] = q + np.arange(tail.shape[1])
                new_val[start + h : new_ptr[level + 1]] = new_tail_val[level]
            new.coupling = (new_ptr, new_idx, new_val)
            new.coupling_by_row = transpose_coupling(new_ptr, new_idx, new.size)
        return new

    def with_response(self, y: np.ndarray) -> PenalizedSystem:
        """The same design with a new response: only Z'y, X'y and y'y change (one pass
        over the rows); codes, Z'Z, Z'X and the block structure are shared."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        new = self._copy_with_response(y)
        cross = self._response_cross(y)
        rest = self.rest_crossprod.copy()
        rest[-1, :] = cross
        rest[:, -1] = cross
        new.rest_crossprod = rest
        return new

    def _copy_with_response(self, y: np.ndarray):
        """A shallow copy with response y: the design (its y-free caches kept) and the
        coupling's y column replaced; the caller replaces the rest's y row."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        design = self.design  # its caches (names, term order) do not depend on y
        new.design = with_fields(design, fixed=with_fields(design.fixed, response=y))
        if self.coupling is not None:
            ptr, idx, val = self.coupling
            lead = self.lead_term
            val = val.copy()
            val[ptr[1:] - 1] = z_transpose_times(lead.group_codes, lead.design, y, lead.n_levels)
            new.coupling = (ptr, idx, val)
        return new

    def _response_cross(self, y: np.ndarray) -> np.ndarray:
        """[Z_rest X y]'y, the rest's y row for the response y: Z_rest'y for every rest
        term in one kernel call (their stacked codes and designs kept on the system,
        whose copies for new responses share them), X'y and y'y by BLAS."""
        layout = self.__dict__.get("_response_layout")
        if layout is None:
            codes, designs, design_start, index_offset, _, _ = stack_terms(self.rest_terms, self.design.n_obs)
            layout = self.__dict__["_response_layout"] = (codes, designs, design_start, index_offset)
        cross = stacked_z_transpose_times(*layout, y, self.size)
        cross[self.n_rest_random : -1] = self.design.X.T @ y
        cross[-1] = y @ y
        return cross

    @property
    def rest_layout(self) -> str:
        """``"dense"``: the rest is one dense matrix (see :mod:`interlace.linalg.sparse_rest`)."""
        return "dense"

    @property
    def path(self) -> str:
        """``"dense"`` or ``"sparse"`` (the blocked path: sparse by-level elimination of
        the leading term), the names ``solver=`` takes."""
        return "sparse" if self.n_leading else "dense"

    def _rest_factors(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mats = [t.relative_cov_factor(theta) for t in self.rest_terms]
        flat = np.concatenate([m.ravel() for m in mats]) if mats else np.zeros(0)
        start = np.concatenate([[0], np.cumsum([m.size for m in mats])[:-1]]).astype(np.int64) if mats else np.zeros(0, np.int64)
        return np.ascontiguousarray(flat, dtype=np.float64), start

    def _scalar_scale(self, theta: np.ndarray) -> np.ndarray | None:
        """Lambda_r as a vector when every rest term is scalar (else None)."""
        if not all(self._block_k == 1):
            return None
        scale = np.ones(self.size)
        pos = 0
        for t, lev in zip(self.rest_terms, self._block_levels, strict=False):
            scale[pos : pos + lev] = t.relative_cov_factor(theta)[0, 0]
            pos += lev
        return scale

    def factorize(self, theta: np.ndarray, out: np.ndarray | None = None, weigh_lead: bool = False) -> Factor:
        """Factor the system at ``theta`` (lme4's order).

        ``out``, a C-ordered (size, size) float64 array, receives the rest's factor
        instead of a new array (a fresh gigabyte costs more to map than to fill); the
        returned factor then lives in ``out`` and the next call with it overwrites it.
        With ``weigh_lead``, the factor's ``lead_weighted`` is formed where the downdate
        can form it in its own pass (a scalar leading term, scalar rest terms, the
        scatter downdate), in the triangle of the factor's buffer that the factor leaves
        free (:mod:`interlace.linalg.mirrored`); elsewhere ``lead_weighted`` is None.
        The BLAS and the parallel kernels run on the threads :mod:`interlace.linalg.threads`
        gives a rest of this size.
        """
        with limited(self.size, kernels=self.lead_term is not None):
            return self._factorize(theta, out, weigh_lead)

    def _factorize(self, theta: np.ndarray, out: np.ndarray | None, weigh_lead: bool = False) -> Factor:
        q = self.n_rest_random
        lead_chol = lead_shrink = None
        lead_logdet = 0.0
        if self.lead_term is not None:
            T1 = np.ascontiguousarray(self.lead_term.relative_cov_factor(theta), dtype=np.float64)
            lead_chol, lead_shrink, lead_logdet, ok = factor_leading_block(self.lead_crossprod, T1)
            if not ok:
                return Factor(lead_chol, lead_shrink, np.inf, self.rest_crossprod.copy(), q, False)
        scale = self._scalar_scale(theta)
        if out is not None and (out.shape != self.rest_crossprod.shape or not out.flags.c_contiguous):
            order = "C" if out.flags.c_contiguous else "not C"
            raise ValueError(f"out: expected a C-ordered {self.rest_crossprod.shape} array, "
                             f"found a {out.shape} array ({order}-ordered)")
        weighted = None
        if self.downdate == "syrk":
            # A_rr - C' M C by one syrk on sqrt(M) C, then Lambda_r' . Lambda_r + diag(I, 0)
            work = _copy_into(self.rest_crossprod, out)
            shrunk = self.dense_coupling() * np.sqrt(lead_shrink[:, 0, 0])[:, None]
            blas.dsyrk(-1.0, shrunk.T, beta=1.0, c=work.T, trans=0, lower=1, overwrite_c=1)
            assemble_scaled_upper(work, scale, q, work)
        elif scale is not None:
            # scalar rest terms: scale while copying, downdate the scaled matrix (upper triangle)
            work = np.empty_like(self.rest_crossprod) if out is None else out
            assemble_scaled_upper(self.rest_crossprod, scale, q, work)
            if self.lead_term is not None:
                ptr, idx, val = self.coupling
                if self.lead_term.n_columns == 1:
                    # the [X y] x [X y] blocks: small products over the levels' tails
                    tail = val[(ptr[1:, None] - (self.size - q)) + np.arange(self.size - q), 0]
                    shrink = lead_shrink[:, 0, 0]
                    if not weigh_lead:
                        downdate, chunks = for_work(downdate_rest_scalar, self.downdate_work, 4 * thread_count())
                        downdate(work, ptr, idx, val, lead_shrink, *self.coupling_by_row, scale, q, chunks)
                    else:
                        second = shrink / (T1[0, 0] ** 2 * self.lead_crossprod[:, 0, 0] + 1.0)  # theta^2 / d^2
                        weighted = MirroredMatrix(work, np.empty(self.size))  # in work's free triangle
                        downdate, chunks = for_work(downdate_and_weigh_rest_scalar, self.downdate_work,
                                                    4 * thread_count())
                        downdate(work, weighted.diagonal, ptr, idx, val, lead_shrink, second, *self.coupling_by_row,
                                 scale, q, chunks)
                        tail_second = tail * np.sqrt(second)[:, None]
                        weighted.store_upper(q, tail_second.T @ tail_second)
                    tail_shrunk = tail * np.sqrt(shrink)[:, None]
                    # the tail block's upper triangle only: the lower one may hold lead_weighted
                    tail_rows, tail_columns = np.triu_indices(self.size - q)
                    work[q + tail_rows, q + tail_columns] -= (tail_shrunk.T @ tail_shrunk)[tail_rows, tail_columns]
                else:
                    downdate_rest(work, ptr, idx, val, lead_shrink, *self.coupling_by_row, scale)
        else:
            # vector rest terms: downdate unscaled, then Lambda_r' . Lambda_r block by block
            work = _copy_into(self.rest_crossprod, out)
            if self.lead_term is not None:
                ptr, idx, val = self.coupling
                downdate_rest(work, ptr, idx, val, lead_shrink, *self.coupling_by_row, np.ones(self.size))
                # the downdate wrote the upper triangle; the block scaling reads both
                upper = np.triu_indices(self.size, 1)
                work[upper[1], upper[0]] = work[upper]
            flat, start = self._rest_factors(theta)
            scale_symmetric_blocks(work, self._block_offset, self._block_k, self._block_levels, flat, start)
            work[np.arange(q), np.arange(q)] += 1.0
        chol, info = lapack.dpotrf(work.T, lower=1, clean=0, overwrite_a=1)
        return Factor(lead_chol, lead_shrink, float(lead_logdet), chol, q, info == 0, weighted)

    # ----- solutions at a factor (post-fit) -------------------------------------------------

    def solve(self, factor: Factor, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spherical random effects u (factorisation order) and beta at the optimum."""
        with limited(self.size):
            return self._solve(factor, theta)

    def _solve(self, factor: Factor, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.size
        q = self.n_rest_random
        L = factor.rest_chol
        # L_M' z = l_y with the whole factor (no copy of its leading block): y's entry is 0
        rhs = np.zeros(m)
        rhs[: m - 1] = L[m - 1, : m - 1]
        z = lapack.dtrtrs(L, rhs, lower=1, trans=1)[0][: m - 1] if m > 1 else rhs[:0]
        u_rest, beta = z[:q], z[q:]
        if self.lead_term is None:
            return u_rest, beta
        return self._with_lead_effects(factor, theta, u_rest, beta)

    def _with_lead_effects(self, factor, theta: np.ndarray, u_rest: np.ndarray,
                           beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, beta) with the leading term's u_1 back-solved level by level from the rest's."""
        b_rest = self.spherical_to_effects(u_rest, theta, self.rest_terms)
        w = np.concatenate([b_rest, beta, [-1.0]])
        resid_cross = self.lead_times(w)  # Z1'(Z_r b_r + X beta - y)
        T1 = self.lead_term.relative_cov_factor(theta)
        rhs1 = -(resid_cross @ T1)  # rows: T1' v per level
        chol = factor.lead_chol  # (L_l L_l') u_l = rhs_l, all levels in two batched solves
        y1 = np.linalg.solve(chol, rhs1[:, :, None])
        u1 = np.linalg.solve(np.swapaxes(chol, 1, 2), y1)[:, :, 0]
        return np.concatenate([u1.ravel(), u_rest]), beta

    def lead_times(self, vectors: np.ndarray) -> np.ndarray:
        """The coupling Z_1'[Z_rest X y] times ``vectors``: for one (size,) vector the
        (n_levels, k1) products by level; for a scalar leading term and (size, n)
        columns, (n_levels, n)."""
        if vectors.ndim == 1:
            ptr, idx, val = self.coupling
            return coupling_times(ptr, idx, val, np.ascontiguousarray(vectors, dtype=np.float64))
        return np.asarray(self._coupling_csr() @ vectors)

    def lead_transpose_times(self, weights: np.ndarray) -> np.ndarray:
        """The coupling's transpose times ``weights`` for a scalar leading term: (size,)
        for (n_levels,) weights, (size, n) for (n_levels, n)."""
        if weights.ndim == 1:
            ptr, idx, val = self.coupling
            return coupling_transpose_times(ptr, idx, val, np.ascontiguousarray(weights, dtype=np.float64), self.size)
        return np.asarray(self._coupling_csr().T @ weights)

    def _coupling_csr(self) -> sp.csr_matrix:
        """The coupling's first column as a scipy CSR matrix (n_levels x size), for products
        with many vectors at once (one pass over its entries); built on first use and again
        whenever the coupling is replaced, as :meth:`dense_coupling`."""
        cached = self.__dict__.get("_csr_coupling")
        if cached is None or cached[0] is not self.coupling:
            ptr, idx, val = self.coupling
            matrix = sp.csr_matrix((val[:, 0], idx, ptr), shape=(len(ptr) - 1, self.size))
            self.__dict__["_csr_coupling"] = cached = (self.coupling, matrix)
        return cached[1]

    def lead_column_squares(self) -> np.ndarray:
        """(size,) the sum of squares of each rest index's coupling entries (scalar
        leading term)."""
        _, idx, val = self.coupling
        return np.bincount(idx, weights=val[:, 0] ** 2, minlength=self.size)

    def lead_tails(self) -> np.ndarray:
        """(n_levels, p + 1) the leading levels' [X y] cross-products (scalar leading
        term; every level lists them last in the coupling)."""
        ptr, _, val = self.coupling
        n_tail = self.size - self.n_rest_random
        return val[(ptr[1:, None] - n_tail) + np.arange(n_tail), 0]

    @staticmethod
    def spherical_to_effects(u: np.ndarray, theta: np.ndarray, terms) -> np.ndarray:
        """b = Lambda u over the given terms (each level's k-vector times T)."""
        out = np.empty_like(u)
        pos = 0
        for t in terms:
            T = t.relative_cov_factor(theta)
            block = u[pos : pos + t.n_effects].reshape(t.n_levels, t.n_columns)
            out[pos : pos + t.n_effects] = (block @ T.T).ravel()
            pos += t.n_effects
        return out

    def conditional_precision_inverse_blocks(self, factor: Factor, theta: np.ndarray) -> list[np.ndarray]:
        """Per term, the (n_levels, k, k) diagonal blocks of (Lambda'Z'Z Lambda + I)^{-1}."""
        with limited(self.size):
            return self._inverse_blocks(factor, theta)

    def _inverse_blocks(self, factor: Factor, theta: np.ndarray) -> list[np.ndarray]:
        """The rest's blocks from the inverse of its random block, S^{-1} (LAPACK ``potri``
        on its factor, the rest being dense); the leading term's as

            P_l^{-1} + P_l^{-1} C_l' S^{-1} C_l P_l^{-1},    C_l = Lambda_r' Z_r'Z_1,l T_1,

        a quadratic form over each level's coupling entries (their entries of S^{-1}),
        never a product with the whole of S^{-1}."""
        q = self.n_rest_random
        inverse = None
        if q:
            inverse = lapack.dpotri(np.asfortranarray(factor.rest_chol[:q, :q]), lower=1)[0]
        out: list[np.ndarray] = []
        if self.lead_term is not None:
            chol = factor.lead_chol
            pinv = np.linalg.inv(chol @ np.swapaxes(chol, 1, 2))
            blocks = pinv
            if q:
                starts, entries_idx, entries_val = self.lead_coupling_entries(theta)
                quad = level_quadratic_forms(starts, entries_idx, entries_val, inverse)
                blocks = pinv + np.einsum("lab,lbc,lcd->lad", pinv, quad, pinv)
            out.append(blocks)
        pos = 0
        for t in self.rest_terms:
            k = t.n_columns
            index = pos + np.arange(t.n_effects).reshape(t.n_levels, k)
            lower = inverse[index[:, :, None], index[:, None, :]]  # (levels, k, k): the lower triangles hold
            out.append(np.tril(lower) + np.swapaxes(np.tril(lower, -1), 1, 2))
            pos += t.n_effects
        return out

    def _lambda_rest(self, theta: np.ndarray) -> sp.csr_matrix:
        """Lambda_r (q x q, block-diagonal) as a sparse matrix."""
        return sp.block_diag([sp.kron(sp.eye(t.n_levels), t.relative_cov_factor(theta)) for t in self.rest_terms],
                             format="csr")

    @property
    def downdate_work(self) -> float:
        """The leading term's downdate's inner steps: the sum over its levels of their
        squared coupling sizes (what decides whether it runs on threads)."""
        work = self.__dict__.get("_downdate_work")
        if work is None:
            ptr = self.coupling[0]
            work = self.__dict__["_downdate_work"] = float(np.sum(np.diff(ptr).astype(np.float64) ** 2))
        return work

    def lead_coupling_entries(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The coupling C = Lambda_r' Z_r'Z_1 T_1 by leading level: (starts, idx, val), level
        ``l``'s rest random-effect indices ``idx[starts[l]:starts[l+1]]`` (sorted) with their
        k1-vectors ``val``; the [X y] entries left out."""
        q = self.n_rest_random
        lead = self.lead_term
        k1 = lead.n_columns
        T1 = lead.relative_cov_factor(theta)
        ptr, idx, val = self.coupling
        inside = idx < q
        level_of = np.repeat(np.arange(lead.n_levels), np.diff(ptr))
        scale = self._scalar_scale(theta)
        if scale is not None:
            entries_level, entries_idx = level_of[inside], idx[inside]
            entries_val = (val[inside] @ T1) * scale[entries_idx][:, None]
        else:  # Lambda_r' C_l mixes a level's block: C Lambda_r, C's rows (level, column of the lead)
            C = sp.csr_matrix((val[inside].T.ravel(), (np.concatenate([level_of[inside] * k1 + c for c in range(k1)]),
                                                       np.tile(idx[inside], k1))), shape=(lead.n_levels * k1, q))
            G = (C @ self._lambda_rest(theta)).tocoo()
            keys, where = np.unique((G.row // k1).astype(np.int64) * q + G.col, return_inverse=True)
            entries_level, entries_idx = keys // q, keys % q
            rows_of = np.zeros((keys.size, k1))
            np.add.at(rows_of, (where, G.row % k1), G.data)
            entries_val = rows_of @ T1
        starts = np.searchsorted(entries_level, np.arange(lead.n_levels + 1))
        return (starts.astype(np.int64), np.ascontiguousarray(entries_idx, dtype=np.int64),
                np.ascontiguousarray(entries_val, dtype=np.float64))
