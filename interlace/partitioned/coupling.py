"""The leading term's coupling kept on the Dask workers.

Z_1'[Z_rest X y] has one entry per distinct pair of a leading level and a rest effect
that occur in one row: as many as the rows in a large crossed design (9.5e7 at 1e8
rows of 100,000 x 10,000 levels). On the blocked path every use of it is a sum over
the leading levels, so it is split by ranges of leading levels into shards
(:class:`LeadShard`), one a worker, that never leave their worker; the driver
(:class:`WorkerCoupling`) sends them theta's small vectors and receives

* the downdate of the rest, sum_l m_l c_l c_l' (and the gradient's weighted matrix in
  the same pass, :func:`~interlace.kernels.blockdiag.downdate_and_weigh_rest_scalar`),
  summed on the workers and read in row blocks into the driver's buffer: a dense
  rest-sized matrix a factorisation, whatever the number of rows;
* products of the coupling with rest-sized or level-sized vectors;
* per-level quadratic forms with an inverse sent to the workers once.

Scalar leading terms only (one effect a level, which the by-row scatter needs).
"""

from __future__ import annotations

import numpy as np

from ..kernels._jit import for_work, thread_count
from ..kernels.blockdiag import (
    coupling_times,
    coupling_transpose_times,
    downdate_and_weigh_rest_scalar,
    downdate_rest_scalar,
    lead_quadratic_forms,
    transpose_coupling,
)
from ..kernels.crossprod import coupling_from_rows
from .crossproducts import LeadRows

ROW_BLOCK_BYTES = 64 * 2**20
"""Bytes of a block of rows of a summed downdate read by the driver at once: its
memory beyond its own buffer while it reads one."""


class LeadShard:
    """The coupling of the leading levels ``start`` to ``start + n_levels - 1``, built on
    a worker from their summed rows of Z'Z and Z'[X y] (:class:`LeadRows`), in the
    form of :func:`~interlace.kernels.crossprod.coupling_from_rows` (every level its
    rest entries, then its [X y] entries) with the by-row index the scatter reads.

    Parameters
    ----------
    rows : LeadRows
        The levels' rows (CSR over every random effect; the leading term's own
        diagonal entry first in each row).
    start : int
        The first level.
    n_lead : int
        The leading term's levels in all (its effects come first in Z).
    n_rest_random : int
        Random effects of the rest.
    y_sign : float
        The working response's sign (-1: y's entries flipped, as the driver's sums are).
    """

    def __init__(self, rows: LeadRows, start: int, n_lead: int, n_rest_random: int, y_sign: float = 1.0):
        random = rows.random.tocsr()
        random.sort_indices()
        n_levels = random.shape[0]
        indices = random.indices.astype(np.int64)
        # the level's own column becomes its local row, the rest's columns follow the levels
        local = np.where(indices < n_lead, indices - start, indices - n_lead + n_levels)
        tail = np.array(rows.random_tail, dtype=np.float64, order="C")
        tail[:, -1] *= y_sign  # the working response's sign, found after the sums
        _, self.ptr, self.idx, self.val = coupling_from_rows(random.indptr.astype(np.int64), local, random.data, 1,
                                                            n_levels, tail, n_rest_random)
        self.start = start
        self.n_levels = n_levels
        self.n_rest_random = n_rest_random
        self.size = n_rest_random + tail.shape[1]
        self.by_row = transpose_coupling(self.ptr, self.idx, self.size)
        self.work = float(np.sum(np.diff(self.ptr).astype(np.float64) ** 2))

    def counts(self) -> np.ndarray:
        """Entries per level ([X y] included)."""
        return np.diff(self.ptr)

    def tails(self) -> np.ndarray:
        """(n_levels, p + 1) the levels' [X y] entries (each level lists them last)."""
        n_tail = self.size - self.n_rest_random
        return self.val[(self.ptr[1:, None] - n_tail) + np.arange(n_tail), 0]

    def downdate(self, shrink: np.ndarray, second: np.ndarray | None, scale: np.ndarray, n_head: int):
        """(matrix, diagonal): minus the levels' downdate of the scaled rest in the upper
        triangle's rows below ``n_head``, and with ``second`` their weighted matrix
        mirrored in the strict lower triangle and ``diagonal``
        (:func:`~interlace.kernels.blockdiag.downdate_and_weigh_rest_scalar` on zeros)."""
        work = np.zeros((self.size, self.size))
        diagonal = np.zeros(self.size)
        shrink = np.ascontiguousarray(shrink, dtype=np.float64).reshape(-1, 1, 1)
        scale = np.ascontiguousarray(scale, dtype=np.float64)
        if second is None:
            kernel, chunks = for_work(downdate_rest_scalar, self.work, 4 * thread_count())
            kernel(work, self.ptr, self.idx, self.val, shrink, *self.by_row, scale, n_head, chunks)
        else:
            kernel, chunks = for_work(downdate_and_weigh_rest_scalar, self.work, 4 * thread_count())
            kernel(work, diagonal, self.ptr, self.idx, self.val, shrink, np.ascontiguousarray(second), *self.by_row,
                   scale, n_head, chunks)
        return work, diagonal

    def times(self, vectors: np.ndarray) -> np.ndarray:
        """(n_levels, n): the levels' coupling times each column of ``vectors`` (size x n)."""
        out = np.empty((self.n_levels, vectors.shape[1]))
        for column in range(vectors.shape[1]):
            out[:, column] = coupling_times(self.ptr, self.idx, self.val,
                                            np.ascontiguousarray(vectors[:, column]))[:, 0]
        return out

    def transpose_times(self, weights: np.ndarray) -> np.ndarray:
        """(size, n): the coupling's transpose times each column of ``weights`` (n_levels x n)."""
        out = np.empty((self.size, weights.shape[1]))
        for column in range(weights.shape[1]):
            out[:, column] = coupling_transpose_times(self.ptr, self.idx, self.val,
                                                      np.ascontiguousarray(weights[:, column]), self.size)
        return out

    def column_squares(self) -> np.ndarray:
        """(size,) the sum of squares of each rest index's coupling entries."""
        return np.bincount(self.idx, weights=self.val[:, 0] ** 2, minlength=self.size)

    def quadratic_forms(self, inverse: np.ndarray, scale: np.ndarray, n_head: int) -> np.ndarray:
        """(n_levels,) v_l' W v_l over the rest indices below ``n_head``, v_l the level's
        coupling scaled by ``scale``, W ``inverse``'s upper triangle (C order)
        (:func:`~interlace.kernels.blockdiag.lead_quadratic_forms`)."""
        kernel, chunks = for_work(lead_quadratic_forms, self.work, thread_count())
        return kernel(self.ptr, self.idx, self.val, np.ascontiguousarray(scale, dtype=np.float64), *self.by_row,
                      inverse, n_head, chunks)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ptr, idx, val) of the shard's levels."""
        return self.ptr, self.idx, self.val


def shard_bounds(n_levels: int, n_shards: int) -> np.ndarray:
    """The first level of each of ``n_shards`` ranges of about equal size, then ``n_levels``.

    Examples
    --------
    >>> shard_bounds(10, 3).tolist()
    [0, 3, 6, 10]
    """
    n_shards = max(1, min(int(n_shards), int(n_levels)))
    return (np.arange(n_shards + 1) * int(n_levels)) // n_shards


def _shard_call(shard: LeadShard, method: str, *arguments):
    """A task: ``shard.method(*arguments)`` on the shard's worker."""
    return getattr(shard, method)(*arguments)


def _add_into(first: tuple, second: tuple) -> tuple:
    """A task: the sum of two partial downdates, written into the first."""
    for a, b in zip(first, second, strict=True):
        np.add(a, b, out=a)
    return first


def _row_block(total: tuple, start: int, stop: int) -> np.ndarray:
    """A task: rows ``start:stop`` of a summed downdate's matrix."""
    return total[0][start:stop]


def _second(total: tuple) -> np.ndarray:
    """A task: a summed downdate's weighted diagonal."""
    return total[1]


def _empty_square(size: int) -> np.ndarray:
    """A task: a Fortran-ordered (size, size) array to be written column block by block."""
    return np.empty((size, size), order="F")


def _write_columns(matrix: np.ndarray, block: np.ndarray, start: int) -> None:
    """A task: ``block`` written into ``matrix``'s columns from ``start`` (on its worker)."""
    matrix[:, start : start + block.shape[1]] = block


def _leading_inverse(chol: np.ndarray, m: int, *written) -> np.ndarray:
    """A task, after the column blocks ``written``: the inverse of the leading ``m`` x
    ``m`` block of the matrix whose lower Cholesky factor ``chol`` (Fortran order) is, in
    place (:func:`interlace.linalg.lapack_inplace.leading_inverse`), as the C-ordered view
    whose upper triangle holds it."""
    from ..linalg.lapack_inplace import leading_inverse

    if leading_inverse(chol, m) != 0:
        raise np.linalg.LinAlgError("the rest's factor is singular")
    return chol.T


def _diagonal_of(matrix: np.ndarray, m: int) -> np.ndarray:
    """A task: the first ``m`` diagonal entries."""
    return np.array(np.diagonal(matrix)[:m])


class WorkerCoupling:
    """The driver's handle on the coupling's shards (:class:`LeadShard`), one a worker.

    Parameters
    ----------
    client : distributed.Client
        The client whose workers hold the shards.
    shards : list of distributed.Future
        The shards, in the order of their levels.
    bounds : numpy.ndarray
        The first level of each shard, then the number of levels.
    size : int
        The rest's size (its random effects, X's columns and y).
    counts : numpy.ndarray
        Entries per level (the [X y] entries included), as ``numpy.diff(ptr)``.
    tails : numpy.ndarray
        (n_levels, p + 1) each level's [X y] entries.
    """

    def __init__(self, client, shards: list, bounds: np.ndarray, size: int, counts: np.ndarray, tails: np.ndarray):
        self.client = client
        self.shards = shards
        self.bounds = bounds
        self.size = size
        self.counts = counts
        self.tails = tails

    @classmethod
    def build(cls, client, lead_rows: list, bounds: np.ndarray, n_rest_random: int,
              y_sign: float = 1.0) -> WorkerCoupling:
        """The shards built on the workers from the summed :class:`LeadRows` futures
        ``lead_rows`` (levels ``bounds[i]:bounds[i + 1]``), spread one a worker."""
        workers = sorted(client.scheduler_info()["workers"])
        n_lead = int(bounds[-1])
        shards = [client.submit(LeadShard, rows, int(bounds[i]), n_lead, n_rest_random, y_sign, pure=False,
                                workers=[workers[i % len(workers)]], allow_other_workers=True)
                  for i, rows in enumerate(lead_rows)]
        counts = client.gather([client.submit(_shard_call, s, "counts", pure=False) for s in shards])
        tails = client.gather([client.submit(_shard_call, s, "tails", pure=False) for s in shards])
        size = n_rest_random + tails[0].shape[1]
        return cls(client, shards, np.asarray(bounds, dtype=np.int64), size, np.concatenate(counts),
                   np.vstack(tails))

    @property
    def n_levels(self) -> int:
        """The leading term's levels."""
        return int(self.bounds[-1])

    def _each(self, method: str, arguments: list[tuple] | None = None) -> list:
        """Futures of ``method`` on every shard, the i-th shard's called with the
        i-th tuple of ``arguments`` (none when not given)."""
        arguments = arguments if arguments is not None else [()] * len(self.shards)
        return [self.client.submit(_shard_call, shard, method, *args, pure=False)
                for shard, args in zip(self.shards, arguments, strict=True)]

    def _ranges(self):
        return [(int(a), int(b)) for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]

    def downdate_into(self, out: np.ndarray, diagonal: np.ndarray | None, shrink: np.ndarray,
                      second: np.ndarray | None, scale: np.ndarray, n_head: int) -> None:
        """Write minus the leading levels' downdate of the scaled rest (upper triangle,
        rows below ``n_head``; with ``second``, the weighted matrix mirrored in the strict
        lower triangle and its diagonal in ``diagonal``) into ``out``
        (:meth:`LeadShard.downdate`), summed on the workers and read a block of rows
        at a time."""
        arguments = [(shrink[a:b], None if second is None else second[a:b], scale, n_head)
                     for a, b in self._ranges()]
        parts = self._each("downdate", arguments)
        while len(parts) > 1:
            parts = [self.client.submit(_add_into, parts[i], parts[i + 1], pure=False) if i + 1 < len(parts)
                     else parts[i] for i in range(0, len(parts), 2)]
        (total,) = parts
        step = max(1, ROW_BLOCK_BYTES // (8 * self.size))
        for start in range(0, self.size, step):
            stop = min(self.size, start + step)
            block = self.client.submit(_row_block, total, start, stop, pure=False)
            out[start:stop] = block.result()
            del block
        if diagonal is not None:
            diagonal[:] = self.client.submit(_second, total, pure=False).result()

    def times(self, vectors: np.ndarray) -> np.ndarray:
        """(n_levels, n) the coupling (n_levels x size) times ``vectors`` ((size,) or (size, n))."""
        matrix = np.asarray(vectors, dtype=np.float64).reshape(self.size, -1)
        shared = self.client.scatter(matrix, broadcast=True)
        return np.vstack(self.client.gather(self._each("times", [(shared,)] * len(self.shards))))

    def transpose_times(self, weights: np.ndarray) -> np.ndarray:
        """(size, n) the coupling's transpose times ``weights`` ((n_levels,) or (n_levels, n))."""
        matrix = np.asarray(weights, dtype=np.float64).reshape(self.n_levels, -1)
        parts = self.client.gather(self._each("transpose_times", [(matrix[a:b],) for a, b in self._ranges()]))
        return np.sum(parts, axis=0)

    def column_squares(self) -> np.ndarray:
        """(size,) the sum of squares of each rest index's coupling entries."""
        return np.sum(self.client.gather(self._each("column_squares")), axis=0)

    def quadratic_forms(self, inverse, scale: np.ndarray, n_head: int) -> np.ndarray:
        """(n_levels,) each level's scaled coupling's quadratic form with ``inverse`` (a
        future of a C-ordered matrix whose upper triangle is read), below ``n_head``."""
        return np.concatenate(self.client.gather(self._each("quadratic_forms",
                                                            [(inverse, scale, n_head)] * len(self.shards))))

    def leading_inverse(self, chol: np.ndarray, m: int):
        """A future of the inverse of the leading ``m`` block of the matrix factored by
        ``chol`` (the rest's factor, Fortran order), computed on a worker (its upper
        triangle in C order), and a future of its first ``m`` diagonal entries. The
        factor is sent a block of columns at a time (no copy of it on the driver) into
        a matrix made on that worker, and every task on it runs there."""
        worker = self.client.who_has(self.shards[0]).get(self.shards[0].key) or ()
        worker = list(worker)[:1] or sorted(self.client.scheduler_info()["workers"])[:1]
        pinned = {"workers": worker, "allow_other_workers": False, "pure": False}
        size = chol.shape[0]
        matrix = self.client.submit(_empty_square, size, **pinned)
        step = max(1, ROW_BLOCK_BYTES // (8 * size))
        written = []
        for start in range(0, size, step):
            block = self.client.scatter(chol[:, start : start + step], workers=worker, hash=False)
            written.append(self.client.submit(_write_columns, matrix, block, start, **pinned))
            del block
        inverse = self.client.submit(_leading_inverse, matrix, m, *written, **pinned)
        return inverse, self.client.submit(_diagonal_of, inverse, m, **pinned)

    def gather(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole coupling on the driver, as (ptr, idx, val)."""
        parts = self.client.gather(self._each("arrays"))
        ptr = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        return ptr, np.concatenate([p[1] for p in parts]), np.vstack([p[2] for p in parts])
