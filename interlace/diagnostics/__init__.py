"""Regression diagnostics of fitted models, as R's HLMdiag, for nested and crossed models.

- :func:`hlm_resid`: observation-level and group-level residuals.
- :func:`hlm_influence`: Cook's distance, MDFFITS, COVTRACE, COVRATIO and leverage, from
  one-step formulas or from exact case deletion (refits, with relative variance changes).
- :func:`hlm_leverage`: fixed-effect, random-effect, overall and unconfounded leverage.
- :func:`hlm_augment`: the residual and influence columns together.

V^{-1} is never formed: its products, diagonal and blocks go through the fitted Cholesky
factor (:mod:`~interlace.diagnostics.woodbury`), so the one-step diagnostics, the
leverage and the residuals cost little more than the fit, also on large crossed designs.
"""

from __future__ import annotations

from .augment import hlm_augment
from .influence import hlm_influence
from .leverage import hlm_leverage
from .residuals import hlm_resid

__all__ = ["hlm_augment", "hlm_influence", "hlm_leverage", "hlm_resid"]
