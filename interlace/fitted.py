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
        if {"method", "reml", "REML"} & set(kwargs):
            options.pop("method", None)  # the caller's choice of REML or ML, however spelt, replaces the fit's
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

    def coef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``coef(m)``: per grouping factor, one row per level with every fixed
        effect, each level's conditional mode added to the effects its factor has.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
        >>> m.coef()["Subject"].loc["308"].round(2).tolist()
        [253.66, 19.67]
        """
        out = {}
        for name, effects in self.random_effects.items():
            frame = effects.to_frame("Intercept") if isinstance(effects, pd.Series) else effects
            table = pd.DataFrame(np.tile(self.fe_params.to_numpy(), (len(frame), 1)), index=frame.index,
                                 columns=self.fe_params.index)
            for column in frame.columns:
                if column in table.columns:
                    table[column] = table[column] + frame[column]
                else:  # a random effect without a fixed counterpart, as lme4 adds it
                    table[column] = frame[column]
            out[name] = table
        return out

    def get_me(self, name: str):
        """lme4's ``getME(m, name)``: ``"Z"``, ``"Lambda"``, ``"L"``, ``"X"``, ``"y"``,
        ``"theta"``, ``"b"``, ``"u"``, ... in lme4's order (:func:`interlace.getme.get_me`)."""
        from .getme import get_me

        return get_me(self, name)

    getME = get_me  # noqa: N815 (lme4's name)

    def all_fit(self, optimizers=None, show_progress: bool | None = None) -> pd.DataFrame:
        """The model refitted with every optimiser, one row each (lme4's ``allFit``;
        :func:`interlace.allfit.all_fit`)."""
        from .allfit import all_fit

        return all_fit(self, optimizers, show_progress)

    def varcorr(self, comp=("Std.Dev.",)):
        """The variance components as lme4's ``VarCorr(m)`` prints them (``comp``: the
        columns, ``"Std.Dev."``, ``"Variance"`` or both); its ``table`` is
        ``as.data.frame(VarCorr(m))``. See :class:`interlace.varcorr.VarCorr`."""
        from .varcorr import VarCorr

        return VarCorr.of(self, comp)

    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per estimate, with broom.mixed's columns (:func:`interlace.broom.tidy`)."""
        from .broom import tidy

        return tidy(self, effects, conf_int, conf_level)

    def glance(self) -> pd.DataFrame:
        """One row for the model, with broom.mixed's columns (:func:`interlace.broom.glance`)."""
        from .broom import glance

        return glance(self)

    def bootstrap_se(self, statistic="median", n_bootstrap: int = 1000, resample_level: str = "group",
                     seed=None) -> float:
        """The nonparametric bootstrap standard error of a scalar statistic of the
        response (its median by default), ``std(replicates, ddof=1)``: grouping levels
        resampled with replacement, each with all its rows (``"group"``: the first
        grouping factor; or a factor's name; R's ``boot`` cluster convention), or rows
        (``"observation"``). See :func:`interlace.inference.bootstrap.bootstrap_se`.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> round(m.bootstrap_se(n_bootstrap=500, seed=1), 1) > 0
        True
        """
        from .inference.bootstrap import bootstrap_se

        return bootstrap_se(self, statistic, n_bootstrap, resample_level, seed)

    def random_effects_ci(self, level: float = 0.95) -> dict[str, pd.DataFrame]:
        """Normal-approximation intervals BLUP -/+ z * conditional SD, per grouping factor.

        Returns, per factor, a DataFrame indexed by level: columns ``lower`` and
        ``upper`` for an intercept-only factor, MultiIndex columns (term, bound) with
        bound ``lower``/``upper`` for a factor of several terms.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
        >>> ci = m.random_effects_ci(0.95)["Subject"]
        >>> ci.columns.tolist()[:2], float(ci.loc["308", ("Days", "upper")].round(2))
        ([('Intercept', 'lower'), ('Intercept', 'upper')], 13.72)
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
                columns = {}
                for term in est.columns:
                    columns[(term, "lower")] = est[term] - z * se[term]
                    columns[(term, "upper")] = est[term] + z * se[term]
                frame = pd.DataFrame(columns)
                frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["term", "bound"])
                out[name] = frame
        return out
