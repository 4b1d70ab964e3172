"""HLMdiag's ``hlm_augment``: residuals and one-step influence in one frame."""

from __future__ import annotations

from .influence import MEASURES, influence_columns
from .output import to_caller_frame
from .residuals import require_linear, residual_columns


def hlm_augment(result, level: int | str = 1, include_ls: bool = True):
    """The data with residual and influence columns, as R's ``HLMdiag::hlm_augment``.

    Parameters
    ----------
    result : CrossedLMEResult
        A fitted model (nested or crossed).
    level : 1 or str
        ``1`` for observations, or the name of a grouping factor.
    include_ls : bool
        Include the least-squares residual columns.

    Returns
    -------
    DataFrame
        In the caller's frame type: the columns of :func:`hlm_resid` (raw residuals) at
        ``level``, then ``cooksd``, ``mdffits``, ``covtrace``, ``covratio`` and
        ``leverage.overall`` of :func:`hlm_influence` (one-step), rows aligned.

    Raises
    ------
    InterlaceError
        For an unknown ``level``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("strength ~ 1 + (1 | batch/cask)", interlace.load_dataset("Pastes"))
    >>> aug = interlace.hlm_augment(m)
    >>> list(aug.columns)[-6:]
    ['.mar.fitted', 'cooksd', 'mdffits', 'covtrace', 'covratio', 'leverage.overall']
    >>> aug.shape
    (60, 15)
    """
    require_linear(result, "hlm_augment")
    residuals = residual_columns(result, level, False, include_ls)
    influence = influence_columns(result, level)
    extra = {name: influence[name] for name in (*MEASURES, "leverage.overall")}
    return to_caller_frame(result, {**residuals, **extra})
