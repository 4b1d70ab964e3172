"""The penalised system of a fit from a Dask frame whose leading coupling stays on the
workers (:mod:`interlace.partitioned.coupling`).

:class:`WorkerCouplingSystem` is the blocked path's
:class:`~interlace.linalg.system.PenalizedSystem` for scalar terms with a dense rest,
the leading term's coupling held by a :class:`~interlace.partitioned.coupling.WorkerCoupling`
and the rest's own cross-products as a sparse matrix (:class:`SymmetricCrossprod`).
The driver then holds one rest-sized dense matrix at a time: the buffer each
factorisation writes the workers' summed downdate into, factors and, for the gradient,
inverts in place. Whatever reads the coupling's arrays themselves (Kenward-Roger's
df, a profile of a fixed effect, the diagnostics) gets them gathered once to the
driver (:meth:`WorkerCouplingSystem.gathered`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ..kernels.blockdiag import factor_leading_block, transpose_coupling
from ..linalg.mirrored import MirroredMatrix
from ..linalg.system import Factor, PenalizedSystem, stack_terms
from .coupling import WorkerCoupling

WORKER_COUPLING_MIN_BYTES = 2**28
"""Bytes of the leading coupling (its entries, with the by-row index the downdate
reads: 32 a pair of a leading level and a rest effect met in a row) from which a fit
from a Dask frame keeps it on the workers (at most the rows times the rest's terms)."""

DENSE_SLICE_MAX_ENTRIES = 2**22
"""Largest slice of a :class:`SymmetricCrossprod` returned dense; larger ones stay sparse."""


class SymmetricCrossprod:
    """A symmetric cross-product matrix held sparse (both triangles), read as the dense
    rest is: ``A[rows, columns]`` gives a numpy array (a sparse array beyond
    :data:`DENSE_SLICE_MAX_ENTRIES` entries, a float for two integers), ``diagonal()``,
    ``shape``, and ``numpy.asarray(A)`` the dense matrix.

    Examples
    --------
    >>> A = SymmetricCrossprod(sp.csr_array(np.array([[2.0, 1.0], [1.0, 3.0]])))
    >>> A[0, 1], A[:, -1].tolist(), A.diagonal().tolist()
    (1.0, [1.0, 3.0], [2.0, 3.0])
    """

    def __init__(self, matrix):
        self.matrix = sp.csr_array(matrix)
        self.shape = self.matrix.shape

    def diagonal(self) -> np.ndarray:
        """The diagonal entries."""
        return self.matrix.diagonal()

    def __getitem__(self, key):
        rows, columns = key
        part = self.matrix[rows, columns]
        if not sp.issparse(part):
            return float(part) if np.ndim(part) == 0 else np.asarray(part)
        if part.ndim == 2 and part.shape[0] * part.shape[1] > DENSE_SLICE_MAX_ENTRIES:
            return part
        return part.toarray()

    def __array__(self, dtype=None, copy=None):
        dense = self.matrix.toarray()
        return dense if dtype is None else dense.astype(dtype)

    def copy(self) -> np.ndarray:
        """The dense matrix (a new array)."""
        return self.matrix.toarray()


class WorkerCouplingSystem(PenalizedSystem):
    """The blocked path's system with the leading coupling on the Dask workers.

    Parameters
    ----------
    design : interlace.partitioned.design.RowlessDesign
        The working design (terms in factorisation order, all scalar).
    rest : scipy.sparse array
        The rest's [Z_r X y]'[Z_r X y], symmetric.
    lead_crossprod : numpy.ndarray
        (n_levels, 1, 1) Z_1'Z_1 by level.
    coupling : WorkerCoupling
        The leading term's coupling with the rest, on the workers.
    """

    inverts_in_place = True
    """The gradient's inverse overwrites the factor's buffer (no second rest-sized matrix)."""

    def __init__(self, design, rest, lead_crossprod: np.ndarray, coupling: WorkerCoupling):
        if not all(t.n_columns == 1 for t in design.terms) or len(design.terms) < 2:
            raise ValueError("WorkerCouplingSystem: expected two or more scalar random terms")
        self.design = design
        self.n_leading = 1
        self.lead_term = design.terms[0]
        self.rest_terms = design.terms[1:]
        _, _, _, index_offset, ks, levels = stack_terms(self.rest_terms, 0)
        self.n_rest_random = int(sum(t.n_effects for t in self.rest_terms))
        self.size = self.n_rest_random + design.n_fixed + 1
        if coupling.size != self.size or rest.shape != (self.size, self.size):
            raise ValueError(f"coupling, rest: expected a rest of size {self.size}, found {coupling.size} and "
                             f"{rest.shape}")
        self._block_offset, self._block_k, self._block_levels = index_offset, ks, levels
        self.rest_crossprod = SymmetricCrossprod(rest)
        upper = sp.triu(sp.coo_array(rest))
        self._rest_upper = (upper.row.astype(np.int64), upper.col.astype(np.int64), upper.data)
        self.lead_crossprod = lead_crossprod
        self.worker_coupling = coupling
        self.downdate = "scatter"
        self._dense_coupling = None

    # ----- what reads the coupling's arrays: gathered once ------------------------------------

    def gathered(self) -> PenalizedSystem:
        """The same system with the coupling gathered to the driver and the rest dense (a
        plain :class:`~interlace.linalg.system.PenalizedSystem`), built on first use."""
        cached = self.__dict__.get("_gathered")
        if cached is None:
            cached = object.__new__(PenalizedSystem)
            state = {k: v for k, v in self.__dict__.items()
                     if k not in ("worker_coupling", "_rest_upper", "_gathered")}
            cached.__dict__.update(state)
            cached.rest_crossprod = np.asarray(self.rest_crossprod)
            ptr, idx, val = self.worker_coupling.gather()
            cached.coupling = (ptr, idx, val)
            cached.coupling_by_row = transpose_coupling(ptr, idx, self.size)
            self.__dict__["_gathered"] = cached
        return cached

    @property
    def coupling(self):
        """The coupling's (ptr, idx, val), gathered to the driver (see :meth:`gathered`)."""
        return self.gathered().coupling

    @property
    def coupling_by_row(self):
        """Where each rest index occurs in the gathered coupling."""
        return self.gathered().coupling_by_row

    def with_fixed_tail(self, tail: np.ndarray) -> PenalizedSystem:
        """:meth:`PenalizedSystem.with_fixed_tail` of the gathered system."""
        return self.gathered().with_fixed_tail(tail)

    def with_response(self, y: np.ndarray) -> PenalizedSystem:
        """Refused: a new response's cross-products need the rows, which stayed in the
        partitions (:class:`~interlace.partitioned.design.RowsNotInMemoryError`)."""
        from .design import ROWS_MESSAGE, RowsNotInMemoryError

        raise RowsNotInMemoryError(ROWS_MESSAGE.format(what="a new response (refit, simulate, bootMer)"))

    def with_syrk_downdate(self) -> PenalizedSystem:
        """This system: its downdate runs on the workers by the scatter."""
        return self

    @property
    def downdate_work(self) -> float:
        """The leading term's downdate's inner steps (sum of squared level sizes)."""
        return float(np.sum(self.worker_coupling.counts.astype(np.float64) ** 2))

    # ----- products with the coupling, on the workers -----------------------------------------

    def lead_times(self, vectors: np.ndarray) -> np.ndarray:
        """As :meth:`PenalizedSystem.lead_times`, summed by the workers."""
        return self.worker_coupling.times(vectors)

    def lead_transpose_times(self, weights: np.ndarray) -> np.ndarray:
        """As :meth:`PenalizedSystem.lead_transpose_times`, summed by the workers."""
        out = self.worker_coupling.transpose_times(weights)
        return out[:, 0] if np.ndim(weights) == 1 else out

    def lead_column_squares(self) -> np.ndarray:
        """As :meth:`PenalizedSystem.lead_column_squares`, summed by the workers."""
        return self.worker_coupling.column_squares()

    def lead_tails(self) -> np.ndarray:
        """As :meth:`PenalizedSystem.lead_tails` (kept on the driver: p + 1 numbers a level)."""
        return self.worker_coupling.tails

    # ----- the factor -------------------------------------------------------------------------

    def _factorize(self, theta: np.ndarray, out: np.ndarray | None, weigh_lead: bool = False) -> Factor:
        # always weighed: an exact gradient without it would read the coupling's arrays on the
        # driver; the workers form it in the downdate's own pass
        weigh_lead = True
        q = self.n_rest_random
        T1 = np.ascontiguousarray(self.lead_term.relative_cov_factor(theta), dtype=np.float64)
        lead_chol, lead_shrink, lead_logdet, ok = factor_leading_block(self.lead_crossprod, T1)
        if not ok:
            return Factor(lead_chol, lead_shrink, np.inf, np.zeros((self.size, 0), order="F"), q, False)
        if out is not None and (out.shape != self.rest_crossprod.shape or not out.flags.c_contiguous):
            raise ValueError(f"out: expected a C-ordered {self.rest_crossprod.shape} array, found {out.shape}")
        work = np.empty((self.size, self.size)) if out is None else out
        scale = self._scalar_scale(theta)
        shrink = lead_shrink[:, 0, 0]
        second = shrink / (T1[0, 0] ** 2 * self.lead_crossprod[:, 0, 0] + 1.0) if weigh_lead else None
        weighted = MirroredMatrix(work, np.empty(self.size)) if weigh_lead else None
        self.worker_coupling.downdate_into(work, None if weighted is None else weighted.diagonal, shrink, second,
                                           scale, q)
        rows, columns, values = self._rest_upper
        work[rows, columns] += values * scale[rows] * scale[columns]
        work[np.arange(q), np.arange(q)] += 1.0
        tail = self.worker_coupling.tails
        tail_shrunk = tail * np.sqrt(shrink)[:, None]
        tail_rows, tail_columns = np.triu_indices(self.size - q)
        work[q + tail_rows, q + tail_columns] -= (tail_shrunk.T @ tail_shrunk)[tail_rows, tail_columns]
        if weighted is not None:
            tail_second = tail * np.sqrt(second)[:, None]
            weighted.store_upper(q, tail_second.T @ tail_second)
        chol, info = lapack.dpotrf(work.T, lower=1, clean=0, overwrite_a=1)
        return Factor(lead_chol, lead_shrink, float(lead_logdet), chol, q, info == 0, weighted)

    def _inverse_blocks(self, factor: Factor, theta: np.ndarray) -> list[np.ndarray]:
        """As :meth:`PenalizedSystem._inverse_blocks`, the inverse of the rest's random
        block formed on a worker and read there by the shards' quadratic forms."""
        q = self.n_rest_random
        inverse, diagonal = self.worker_coupling.leading_inverse(factor.rest_chol, q)
        theta_lead = float(self.lead_term.relative_cov_factor(theta)[0, 0])
        chol = factor.lead_chol
        pinv = 1.0 / (chol[:, 0, 0] ** 2)
        quad = theta_lead**2 * self.worker_coupling.quadratic_forms(inverse, self._scalar_scale(theta), q)
        out = [(pinv + pinv**2 * quad).reshape(-1, 1, 1)]
        rest_diagonal = diagonal.result()
        pos = 0
        for t in self.rest_terms:
            out.append(rest_diagonal[pos : pos + t.n_effects].reshape(-1, 1, 1))
            pos += t.n_effects
        return out


def coupling_client(design, solver: str):
    """The distributed client whose workers are to hold the leading coupling of a fit
    of ``design`` from a Dask frame, or None to sum it to the driver: a client is
    running, the blocked path is taken, every term is scalar with more than one, and
    the coupling may reach :data:`WORKER_COUPLING_MIN_BYTES`."""
    from ..linalg.dispatch import choose_path

    terms = design.terms
    if len(terms) < 2 or any(t.n_columns != 1 for t in terms) or choose_path(design, solver) != 1:
        return None
    rest = sum(t.n_effects for t in terms[1:])
    pairs = min(float(design.n_obs) * (len(terms) - 1), float(terms[0].n_levels) * rest)
    if 32.0 * pairs < WORKER_COUPLING_MIN_BYTES:
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def system_with_worker_coupling(design, crossproducts, coupling: WorkerCoupling, solver: str,
                                max_dense_gib: float | None) -> PenalizedSystem:
    """The system of a fit whose leading coupling the workers hold: a
    :class:`WorkerCouplingSystem` where the rest is dense and two rest-sized matrices
    fit the memory limit; else the coupling gathered to the driver and the system
    :func:`~interlace.linalg.dispatch.build_system` picks (a sparse rest)."""
    from ..linalg.dispatch import build_system, choose_rest
    from ..linalg.memory import dense_limit_bytes
    from ..linalg.system import LeadBlocks

    lead_crossprod = crossproducts.lead_diagonal()
    ptr = np.concatenate([[0], np.cumsum(coupling.counts)]).astype(np.int64)
    counted = LeadBlocks(lead_crossprod, (ptr, None, None), None)  # what choose_rest reads: entries per level
    size = coupling.size
    if choose_rest(design, counted) == "dense" and 2.0 * size * size * 8 <= dense_limit_bytes(max_dense_gib):
        return WorkerCouplingSystem(design, crossproducts.rest_sparse(), lead_crossprod, coupling)
    ptr, idx, val = coupling.gather()
    crossproducts.lead = LeadBlocks(lead_crossprod, (ptr, idx, val), transpose_coupling(ptr, idx, size))
    return build_system(design, solver, max_dense_gib, crossproducts=crossproducts)
