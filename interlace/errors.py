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
