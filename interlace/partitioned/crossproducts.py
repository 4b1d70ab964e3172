"""The third pass: the working design's cross-products [Z X y]'[Z X y], summed over
partitions, and the blocks of the penalised system read from their sum.

Each partition's rows are put on the working scale of the whole frame
(:class:`~interlace.fitting.conditioning.Conditioning`: X T, (y - X gamma) / s, every
row times sqrt(w)) exactly as in memory, then give

* Z'Z, upper triangle, sparse (scipy CSR; the random effects in the system's order:
  terms in factorisation order, level by level, a level's k effects together);
* Z'[X y], dense (q x (p + 1)), and [X y]'[X y];
* the third moment of the working response (its sign is the working scale's).

:class:`SummedCrossProducts` gives the system (:func:`interlace.linalg.dispatch.build_system`)
the leading term's blocks and the rest, dense or as sparse entries, as
:class:`~interlace.linalg.system.PenalizedSystem` builds them from rows in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..kernels.blockdiag import transpose_coupling
from ..kernels.crossprod import coupling_from_rows
from ..linalg.system import LeadBlocks
from .rows import PartitionRows, RowPlan, partition_rows


@dataclass(frozen=True)
class WorkingScale:
    """The working scale's map for the partitions: the columns of X kept, T, gamma and
    |s| (the sign is found by the third pass)."""

    kept: np.ndarray
    basis: np.ndarray
    shift: np.ndarray
    unit: float


def random_matrix(codes: list[np.ndarray], designs: list[np.ndarray], n_effects: list[int],
                  n_rows: int) -> sp.csr_matrix:
    """Z (n x q, CSR) from the terms' codes and columns: term t's level l, column c is
    random effect ``offset_t + l k_t + c``.

    Examples
    --------
    >>> Z = random_matrix([np.array([0, 1, 1], dtype=np.int32)], [np.ones((3, 1))], [2], 3)
    >>> Z.toarray().tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """
    ks = [d.shape[1] for d in designs]
    width = sum(ks)
    indices = np.empty((n_rows, width), dtype=np.int64)
    values = np.empty((n_rows, width))
    column, offset = 0, 0
    for code, design, k, size in zip(codes, designs, ks, n_effects, strict=True):
        base = offset + code.astype(np.int64) * k
        for c in range(k):
            indices[:, column + c] = base + c
            values[:, column + c] = design[:, c]
        column += k
        offset += size
    indptr = np.arange(0, n_rows * width + 1, width, dtype=np.int64)
    return sp.csr_matrix((values.ravel(), indices.ravel(), indptr), shape=(n_rows, offset))


@dataclass
class CrossProducts:
    """One or more partitions' working cross-products (added with ``+``).

    Attributes
    ----------
    random : scipy.sparse.csr_matrix
        Z'Z, upper triangle (q x q).
    random_tail : numpy.ndarray
        Z'[X y] (q x (p + 1)).
    tail : numpy.ndarray
        [X y]'[X y].
    cubes : float
        The sum of the working response's cubes.
    extreme : float
        The working response's entry of largest magnitude.
    """

    random: sp.csr_matrix
    random_tail: np.ndarray
    tail: np.ndarray
    cubes: float
    extreme: float

    @classmethod
    def of_rows(cls, rows: PartitionRows, scale: WorkingScale, n_effects: list[int]) -> CrossProducts:
        """The working cross-products of one partition's rows."""
        X = rows.X[:, scale.kept]
        y = (rows.y - X @ scale.shift) / scale.unit
        X = X @ scale.basis
        designs = rows.designs
        if rows.weights is not None:
            root = np.sqrt(rows.weights)
            X, y = X * root[:, None], y * root
            designs = [d * root[:, None] for d in designs]
        Z = random_matrix(rows.codes, designs, n_effects, rows.n_rows)
        xy = np.column_stack([X, y])
        random = sp.triu(Z.T @ Z, format="csr")
        big = int(np.argmax(np.abs(y)))
        return cls(random, np.asarray(Z.T @ xy), xy.T @ xy, float(y @ (y * y)), float(y[big]))

    def __add__(self, other: CrossProducts) -> CrossProducts:
        extreme = self.extreme if abs(self.extreme) >= abs(other.extreme) else other.extreme
        return CrossProducts(self.random + other.random, self.random_tail + other.random_tail, self.tail + other.tail,
                             self.cubes + other.cubes, extreme)

    @property
    def nbytes(self) -> int:
        """Bytes of the statistics (what a partition sends)."""
        r = self.random
        return int(r.data.nbytes + r.indices.nbytes + r.indptr.nbytes + self.random_tail.nbytes + self.tail.nbytes)


def partition_crossproducts(part, plan: RowPlan, scale: WorkingScale, n_effects: list[int]) -> CrossProducts | None:
    """:class:`CrossProducts` of a partition's rows (None without rows)."""
    rows = partition_rows(part, plan)
    return None if rows is None else CrossProducts.of_rows(rows, scale, n_effects)


@dataclass
class LeadRows:
    """The rows of Z'Z (upper triangle, CSR, every column) and of Z'[X y] of a range of
    the leading term's levels: a shard of the leading term's coupling, summed over
    partitions (added with ``+``) and kept on a worker
    (:class:`~interlace.partitioned.coupling.LeadShard`)."""

    random: sp.csr_matrix
    random_tail: np.ndarray

    def __add__(self, other: LeadRows) -> LeadRows:
        return LeadRows(self.random + other.random, self.random_tail + other.random_tail)


def split_leading_rows(statistics: CrossProducts, bounds: np.ndarray) -> tuple:
    """``statistics`` split for a coupling kept on the workers: the cross-products with
    the leading term's rows (levels ``bounds[0]`` to ``bounds[-1]``, scalar) cut to
    their own diagonal entry, then one :class:`LeadRows` per range of levels
    ``bounds[i]:bounds[i + 1]``."""
    q1 = int(bounds[-1])
    random = statistics.random
    lead = random[:q1]
    own = np.asarray(lead[np.arange(q1), np.arange(q1)]).ravel()
    kept = sp.vstack([sp.csr_matrix((own, (np.arange(q1), np.arange(q1))), shape=(q1, random.shape[1])),
                      random[q1:]], format="csr")
    pieces = tuple(LeadRows(lead[int(a):int(b)], statistics.random_tail[int(a):int(b)])
                   for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return (CrossProducts(kept, statistics.random_tail, statistics.tail, statistics.cubes, statistics.extreme),
            *pieces)


def partition_split_crossproducts(part, plan: RowPlan, scale: WorkingScale, n_effects: list[int],
                                  bounds: np.ndarray) -> tuple:
    """:func:`split_leading_rows` of a partition's :class:`CrossProducts` (Nones without rows)."""
    statistics = partition_crossproducts(part, plan, scale, n_effects)
    if statistics is None:
        return (None,) * len(bounds)
    return split_leading_rows(statistics, bounds)


def statistics_bytes(result, partition) -> int:
    """Bytes of the cross-products a partition (a pandas frame of the fit's Dask frame)
    sends in the third pass of ``result``'s fit from a Dask frame (0 without rows).

    Examples
    --------
    >>> import interlace, dask.dataframe as dd
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", dd.from_pandas(sleep, npartitions=2))
    >>> statistics_bytes(m, sleep.iloc[:90]) > 0
    True
    """
    conditioning = result._conditioning
    design = conditioning.design
    scale = WorkingScale(design.kept_columns, conditioning.basis, conditioning.shift, conditioning.unit)
    statistics = partition_crossproducts(partition, design.plan, scale, [t.n_effects for t in design.terms])
    return 0 if statistics is None else statistics.nbytes


class SummedCrossProducts:
    """The system's blocks from the summed cross-products (the interface
    :class:`~interlace.linalg.system.PenalizedSystem` and
    :class:`~interlace.linalg.sparse_rest.SparseRestSystem` read instead of rows).

    Parameters
    ----------
    total : CrossProducts
        The sum over every partition, its response signed as the working scale's.
    n_effects : list of int
        Random effects per term (factorisation order).
    n_columns : list of int
        Effects per level per term.
    lead : LeadBlocks, optional
        The leading term's blocks when summed elsewhere (the coupling gathered from
        the workers, :mod:`interlace.partitioned.coupling`); ``total``'s leading rows
        then hold their own diagonal only.
    """

    def __init__(self, total: CrossProducts, n_effects: list[int], n_columns: list[int],
                 lead: LeadBlocks | None = None):
        self.lead = lead
        self.random = total.random
        self.random.sort_indices()
        self.random_tail = total.random_tail
        self.tail = total.tail
        self.n_effects = n_effects
        self.n_columns = n_columns
        self.q = int(sum(n_effects))

    def rest_dense(self, n_leading: int) -> np.ndarray:
        """The rest's [Z_r X y]'[Z_r X y], dense and symmetric (the whole system when
        ``n_leading`` is 0)."""
        first = self.n_effects[0] if n_leading else 0
        q_rest = self.q - first
        size = q_rest + self.tail.shape[0]
        out = np.zeros((size, size))
        block = self.random[first:, first:].tocoo()
        out[block.row, block.col] = block.data
        out[block.col, block.row] = block.data
        out[:q_rest, q_rest:] = self.random_tail[first:]
        out[q_rest:, :q_rest] = self.random_tail[first:].T
        out[q_rest:, q_rest:] = self.tail
        return out

    def rest_sparse(self) -> sp.csr_array:
        """The rest's [Z_r X y]'[Z_r X y] (the leading term eliminated), symmetric, as a
        sparse array: what the driver holds of it when the coupling stays on the workers."""
        first = self.n_effects[0]
        q_rest = self.q - first
        size = q_rest + self.tail.shape[0]
        upper = sp.bmat([[sp.triu(self.random[first:, first:]), sp.csr_matrix(self.random_tail[first:])],
                         [None, sp.csr_matrix(np.triu(self.tail))]], format="csr")
        return sp.csr_array(upper + sp.triu(upper, 1).T).reshape(size, size)

    def lead_diagonal(self) -> np.ndarray:
        """(n_levels, 1, 1) Z_1'Z_1 of a scalar leading term, by level."""
        q1 = self.n_effects[0]
        return np.asarray(self.random[np.arange(q1), np.arange(q1)]).reshape(q1, 1, 1)

    def rest_lower_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rest's lower triangle (rows >= columns) as entries, the leading term
        eliminated (:func:`~interlace.linalg.sparse_rest.rest_crossprod_entries`)."""
        first = self.n_effects[0]
        q_rest = self.q - first
        block = self.random[first:, first:].tocoo()
        n_tail = self.tail.shape[0]
        tail_rows, tail_cols = np.meshgrid(np.arange(n_tail), np.arange(q_rest), indexing="ij")
        xx_rows, xx_cols = np.tril_indices(n_tail)
        rows = np.concatenate([block.col.astype(np.int64), q_rest + tail_rows.ravel(), q_rest + xx_rows])
        cols = np.concatenate([block.row.astype(np.int64), tail_cols.ravel(), q_rest + xx_cols])
        values = np.concatenate([block.data, self.random_tail[first:].T.ravel(), self.tail[xx_rows, xx_cols]])
        return rows, cols, values

    def lead_blocks(self) -> LeadBlocks:
        """The leading term's blocks (:class:`~interlace.linalg.system.LeadBlocks`):
        Z_1'Z_1 by level and its coupling with the rest, every level with its [X y]
        entries."""
        if self.lead is not None:
            return self.lead
        k = self.n_columns[0]
        q1 = self.n_effects[0]
        n_levels = q1 // k
        q_rest = self.q - q1
        n_tail = self.tail.shape[0]
        size = q_rest + n_tail
        crossprod, ptr, idx, val = coupling_from_rows(self.random.indptr, self.random.indices, self.random.data, k,
                                                      n_levels, np.ascontiguousarray(self.random_tail[:q1]), q_rest)
        return LeadBlocks(crossprod, (ptr, idx, val), transpose_coupling(ptr, idx, size))
