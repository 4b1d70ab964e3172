"""Error and warning classes raised by interlace."""

from __future__ import annotations


class InterlaceError(ValueError):
    """Base class of interlace's errors about a user's input."""


class FormulaError(InterlaceError):
    """A formula could not be parsed; the message points at the offending term."""


class DataError(InterlaceError):
    """The data do not fit the model: a missing column, a wrong type, too few levels."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before meeting its convergence criteria."""


class SingularFitWarning(UserWarning):
    """The fit ends on the boundary: a variance component is (near) zero, as lme4's
    ``boundary (singular) fit`` message."""


class RankDeficiencyWarning(UserWarning):
    """The fixed-effects model matrix is rank deficient; redundant columns were dropped."""


class MissingValuesWarning(UserWarning):
    """Rows with missing values in a used column were dropped (lme4's ``na.omit``)."""


class DegenerateFitWarning(UserWarning):
    """A quantity is undefined on this fit (zero or infinite residual variance, a
    non-finite optimum) and is returned as NaN."""


class SparseTooLargeError(InterlaceError):
    """A sparse factor would need more memory than allowed (``max_bytes`` of
    :meth:`interlace.linalg.sparse_cholesky.SparseCholesky.analyse`); raised before L is allocated."""

    def __init__(self, bytes_needed: float, max_bytes: float, n: int, entries: int):
        self.bytes_needed = bytes_needed
        super().__init__(
            f"max_dense_gib: the sparse factor of this {n:,} x {n:,} matrix has at least {entries:,} "
            f"entries in every fill-reducing order tried; a fit needs about {bytes_needed / 2**30:,.1f} GiB "
            f"for it, more than the limit of {max_bytes / 2**30:.3g} GiB"
        )
