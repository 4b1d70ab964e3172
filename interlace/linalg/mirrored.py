"""A symmetric matrix kept in the free triangle of another matrix's buffer.

The blocked path's rest S is formed and factored in one C-ordered (size x size) buffer
of which only the upper triangle is used (LAPACK ``potrf`` reads and writes the lower
triangle of its Fortran-ordered transpose, and leaves the other alone). The strictly
lower triangle has room for the strictly upper triangle of a second symmetric matrix
W, row for row, with W's diagonal in a vector beside it:

    W[a, b] (b > a)  at  buffer[size - 1 - a, b - a - 1],    W[a, a]  at  diagonal[a],

row a's size - 1 - a entries right of the diagonal filling the size - 1 - a entries
left of the diagonal of row size - 1 - a (its *mirror*), a contiguous stretch each
way, so a kernel writing or reading W by rows streams through memory as it would
through a matrix of its own. The leading term's weighted coupling (the gradient's
trace, :mod:`interlace.fitting.blocked_gradient`) lives there: at W8 (a rest of 10,011
rows) it needs no second 800 MB matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class MirroredMatrix(NamedTuple):
    """A symmetric matrix W in the strictly lower triangle of ``buffer`` (C order, the
    upper triangle another matrix's) and ``diagonal``, laid out as the module says.

    Attributes
    ----------
    buffer : numpy.ndarray
        (size, size) C-ordered; W's off-diagonal entries in its strictly lower triangle.
    diagonal : numpy.ndarray
        (size,) W's diagonal.

    Examples
    --------
    >>> w = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]])
    >>> m = MirroredMatrix(np.zeros((3, 3)), np.zeros(3))
    >>> m.store_upper(0, w)
    >>> m.buffer  # W's row 0 in row 2, row 1 in row 1, left of the diagonal
    array([[0., 0., 0.],
           [5., 0., 0.],
           [2., 3., 0.]])
    >>> bool(np.array_equal(m.dense(), w))
    True
    """

    buffer: np.ndarray
    diagonal: np.ndarray

    def store_upper(self, start: int, block: np.ndarray) -> None:
        """Write W[start + i, start + j] = block[i, j] for j >= i, every row of the block
        reaching the last column (``start + len(block) == size``), as the [X y] tail
        does; only the block's upper triangle is read."""
        size = self.buffer.shape[0]
        n = block.shape[0]
        if block.shape != (n, n) or start + n != size:
            raise ValueError(f"block: expected a square block ending at column {size}, "
                             f"found shape {block.shape} from {start}")
        for i in range(n):
            a = start + i
            self.diagonal[a] = block[i, i]
            self.buffer[size - 1 - a, : size - 1 - a] = block[i, i + 1 :]

    def dense(self) -> np.ndarray:
        """W as a full (size, size) symmetric array (a copy)."""
        size = self.buffer.shape[0]
        out = np.diag(self.diagonal).astype(np.float64)
        for a in range(size - 1):
            out[a, a + 1 :] = self.buffer[size - 1 - a, : size - 1 - a]
        upper = np.triu_indices(size, 1)
        out[upper[1], upper[0]] = out[upper]
        return out
