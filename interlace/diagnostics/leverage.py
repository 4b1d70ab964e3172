"""HLMdiag's ``leverage``: the diagonals of the fixed- and random-effect hat matrices.

Demidenko and Stukel's H1 = X (X'V^{-1}X)^{-1} X'V^{-1} and H2 = ZDZ'V^{-1}(I - H1),
with ZDZ' = V - sigma^2 I, give H1 + H2 = I - sigma^2 P (P = V^{-1} - V^{-1}X
(X'V^{-1}X)^{-1}X'V^{-1}), so per row

    fixef_i   = x_i (X'V^{-1}X)^{-1} (V^{-1}X)_i',
    overall_i = 1 - sigma^2 P_ii,        ranef_i = overall_i - fixef_i,
    ranef.uc_i = (ZDZ')_ii / sigma^2 = ||a_i||^2    (Nobre and Singer's unconfounded),

all from diag(V^{-1}) through the fitted factor. At a grouping factor's level each is
the mean over the level's rows.
"""

from __future__ import annotations

import numpy as np

from .gls import GlsPieces, gls_pieces
from .levels import resolve_level
from .output import to_caller_frame
from .residuals import require_linear

LEVERAGE_TYPES = ("overall", "fixef", "ranef", "ranef.uc")
"""The leverage columns, in HLMdiag's order."""


def observation_leverage(pieces: GlsPieces) -> dict[str, np.ndarray]:
    """The four leverages of every row (HLMdiag's column names)."""
    fixef = np.einsum("ij,jk,ik->i", pieces.X, pieces.xvx_inv, pieces.precision_X)
    overall = 1.0 - pieces.precision.sigma2 * pieces.projection_diagonal
    return {
        "overall": overall,
        "fixef": fixef,
        "ranef": overall - fixef,
        "ranef.uc": pieces.precision.random_covariance_diagonal(),
    }


def level_means(values: np.ndarray, term) -> np.ndarray:
    """The mean of ``values`` over the rows of each level of ``term`` (level order)."""
    counts = np.bincount(term.group_codes, minlength=term.n_levels)
    sums = np.bincount(term.group_codes, weights=values, minlength=term.n_levels)
    with np.errstate(invalid="ignore"):
        return sums / counts


def leverage_columns(result, level, pieces: GlsPieces | None = None) -> dict[str, np.ndarray]:
    """The leverage columns at ``level`` (rows, or levels of a grouping factor)."""
    term = resolve_level(result, level)
    pieces = gls_pieces(result) if pieces is None else pieces
    rows = observation_leverage(pieces)
    if term is None:
        return rows
    fixef = level_means(rows["fixef"], term)
    ranef = level_means(rows["ranef"], term)
    return {
        "overall": fixef + ranef,
        "fixef": fixef,
        "ranef": ranef,
        "ranef.uc": level_means(rows["ranef.uc"], term),
    }


def hlm_leverage(result, level: int | str = 1):
    """Leverage of the observations or of the levels of a grouping factor, as R's
    ``HLMdiag::leverage``.

    Parameters
    ----------
    result : CrossedLMEResult
        A fitted model (nested or crossed).
    level : 1 or str
        ``1`` for the observations, or the name of a grouping factor (a key of
        ``result.random_effects``): then each column is the mean over the level's rows.

    Returns
    -------
    DataFrame
        In the caller's frame type, columns ``overall`` (= fixef + ranef), ``fixef``
        (diag of H1 = X (X'V^{-1}X)^{-1} X'V^{-1}), ``ranef`` (diag of
        H2 = ZDZ'V^{-1}(I - H1)) and ``ranef.uc`` (diag(ZDZ') / sigma^2); one row per row
        used in the fit, or per level in level order.

    Raises
    ------
    InterlaceError
        For an unknown ``level``.

    Notes
    -----
    HLMdiag refuses crossed models. Here V^{-1} is read through the fitted Cholesky
    factor, so the cost is a few small products per row (InstEval's 73,421 rows take
    about a second).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> interlace.hlm_leverage(m, level="Batch").round(4).head(2)
       overall  fixef   ranef  ranef.uc
    0   0.1638 0.0333  0.1304    0.7197
    1   0.1638 0.0333  0.1304    0.7197
    """
    require_linear(result, "hlm_leverage")
    return to_caller_frame(result, leverage_columns(result, level))
