"""What every fitted mixed model offers the same way, linear or generalized: lme4's
``update``, statsmodels' aliases, and normal intervals of the random effects.
:class:`~interlace.result.CrossedLMEResult` and
:class:`~interlace.glmm_result.CrossedGLMMResult` hold the data these read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class FittedModel:
    """Methods shared by the fitted models (a mixin of their frozen dataclasses)."""

    @property
    def aic(self) -> float:
        """-2 llf + 2 nparams (lme4's ``AIC``)."""
        return -2.0 * self.llf + 2.0 * self.nparams

    @property
    def bic(self) -> float:
        """-2 llf + nparams log(nobs) (lme4's ``BIC``)."""
        return -2.0 * self.llf + self.nparams * np.log(self.nobs)

    def update(self, formula: str | None = None, data: Any = None, **kwargs) -> Any:
        """Refit with a changed formula, data or fit arguments, as lme4's ``update``.

        ``formula`` may use lme4's dot notation: ``". ~ . + x2"``, ``". ~ . - x"``,
        ``"log(.) ~ ."``. Other keyword arguments override those of the fit.

        Examples
        --------
        >>> import interlace
        >>> sleep = interlace.load_dataset("sleepstudy")
        >>> m = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep)
        >>> m.update(". ~ . + (0 + Days | Subject)").model.formula
        'Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)'
        >>> m.update(method="ML").method
        'ML'
        """
        from .api import fit
        from .formula.update import update_formula

        new_formula = self.model.formula if formula is None else update_formula(self.model.formula, formula)
        options = dict(self.fit_options)
        options.update(kwargs)
        return fit(new_formula, self.model.data if data is None else data, **options)

    # statsmodels aliases
    @property
    def params(self) -> pd.Series:
        """Alias of :attr:`fe_params`."""
        return self.fe_params

    @property
    def bse(self) -> pd.Series:
        """Alias of :attr:`fe_bse`."""
        return self.fe_bse

    @property
    def tvalues(self) -> pd.Series:
        """Alias of :attr:`fe_tvalues`."""
        return self.fe_tvalues

    @property
    def pvalues(self) -> pd.Series:
        """Alias of :attr:`fe_pvalues`."""
        return self.fe_pvalues

    def cov_params(self) -> pd.DataFrame:
        """vcov of the fixed effects as a labelled DataFrame (statsmodels' name)."""
        names = self.fe_params.index
        return pd.DataFrame(self.fe_cov, index=names, columns=names)

    def random_effects_ci(self, level: float = 0.95) -> dict[str, pd.DataFrame]:
        """Normal-approximation intervals BLUP -/+ z * conditional SD, per grouping factor.

        Returns, per factor, a DataFrame indexed by level with columns ``lower``
        and ``upper`` (intercept-only factors) or ``<term> lower``/``<term> upper``.
        """
        if not 0.0 < level < 1.0:
            from .errors import InterlaceError

            raise InterlaceError(f"level: expected a number between 0 and 1, found {level!r}")
        from scipy import stats

        z = stats.norm.ppf(0.5 + level / 2.0)
        out: dict[str, pd.DataFrame] = {}
        for name, est in self.random_effects.items():
            se = self.random_effects_se[name]
            if isinstance(est, pd.Series):
                out[name] = pd.DataFrame({"lower": est - z * se, "upper": est + z * se})
            else:
                cols = {}
                for c in est.columns:
                    cols[f"{c} lower"] = est[c] - z * se[c]
                    cols[f"{c} upper"] = est[c] + z * se[c]
                out[name] = pd.DataFrame(cols)
        return out
