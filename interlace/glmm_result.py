"""The fitted generalized linear mixed model: :class:`CrossedGLMMResult`, a frozen
record of data with the seed's names (as :class:`~interlace.result.CrossedLMEResult`),
glmer's quantities and statsmodels' aliases. The computations that fill it live in
:mod:`interlace.fitting.generalized`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InterlaceError
from .families import Family
from .fitted import FittedModel
from .fitting.optimize import OptimizationRecord
from .result import ModelInfo


@dataclass(frozen=True)
class CrossedGLMMResult(FittedModel):
    """A fitted generalized linear mixed model (lme4's ``glmerMod``).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                   interlace.load_dataset("cbpp"), family="binomial")
    >>> m.nobs, m.ngroups, m.nparams
    (56, {'herd': 15}, 5)
    >>> round(m.llf, 2), m.fe_params.round(2).tolist()
    (-92.03, [-1.4, -0.99, -1.13, -1.58])
    """

    fe_params: pd.Series
    fe_bse: pd.Series
    fe_cov: np.ndarray
    random_effects: dict[str, pd.Series | pd.DataFrame]
    random_effects_se: dict[str, pd.Series | pd.DataFrame]
    variance_components: dict[str, float | pd.DataFrame]
    correlation_params: dict[str, float]
    theta: np.ndarray
    theta_names: tuple[str, ...]
    llf: float
    nparams: int
    nobs: int
    ngroups: dict[str, int]
    family: Family
    nAGQ: int  # noqa: N815 (lme4's name)
    fittedvalues: np.ndarray
    linear_predictor: np.ndarray
    resid_response: np.ndarray
    resid_deviance: np.ndarray
    resid_pearson: np.ndarray
    resid_working: np.ndarray
    deviance: float
    converged: bool
    is_singular: bool
    boundary_flags: dict[str, bool]
    n_dropped: int
    model: ModelInfo
    optimization: OptimizationRecord = field(repr=False)
    solver_path: str = "dense"
    fit_options: dict = field(default_factory=dict, repr=False)
    _fit: Any = field(repr=False, default=None, compare=False)

    method = "Laplace"

    # ----- likelihood ---------------------------------------------------------------------
    @property
    def approximation(self) -> str:
        """How the likelihood was approximated, in lme4's words."""
        if self.nAGQ > 1:
            return f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ}"
        return "Laplace Approximation"

    # ----- fixed effects ------------------------------------------------------------------
    @property
    def fe_zvalues(self) -> pd.Series:
        """Estimate / standard error (glmer's ``z value``)."""
        return (self.fe_params / self.fe_bse).rename("z value")

    fe_tvalues = fe_zvalues

    @property
    def fe_pvalues(self) -> pd.Series:
        """Two-sided Wald p-values from the normal distribution (glmer's ``Pr(>|z|)``)."""
        from scipy import stats

        return pd.Series(2.0 * stats.norm.sf(np.abs(self.fe_zvalues.to_numpy())), index=self.fe_params.index,
                         name="Pr(>|z|)")

    def fe_confidence_interval(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals estimate -/+ z * SE (columns ``lower``, ``upper``)."""
        if not 0.0 < level < 1.0:
            raise InterlaceError(f"level: expected a number between 0 and 1, found {level!r}")
        from scipy import stats

        z = stats.norm.ppf(0.5 + level / 2.0)
        est, se = self.fe_params.to_numpy(), self.fe_bse.to_numpy()
        return pd.DataFrame({"lower": est - z * se, "upper": est + z * se}, index=self.fe_params.index)

    @property
    def fe_conf_int(self) -> pd.DataFrame:
        """95 % Wald intervals of the fixed effects."""
        return self.fe_confidence_interval(0.95)

    def confint(self, method: str = "wald", level: float = 0.95) -> pd.DataFrame:
        """Confidence intervals of the fixed effects, as lme4's ``confint(m, method = "Wald")``:
        columns ``estimate``, ``lower``, ``upper``.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                   interlace.load_dataset("cbpp"), family="binomial")
        >>> m.confint().round(2).loc["period[T.2]"].tolist()
        [-0.99, -1.59, -0.4]
        """
        if str(method).lower() != "wald":
            raise InterlaceError(f"method: a generalized fit has Wald intervals ('wald'), found {method!r}")
        table = self.fe_confidence_interval(level)
        table.insert(0, "estimate", self.fe_params.to_numpy())
        return table

    # ----- residuals ----------------------------------------------------------------------
    @property
    def resid(self) -> np.ndarray:
        """Deviance residuals (glmer's default ``residuals`` type)."""
        return self.resid_deviance

    def residuals(self, type: str = "deviance") -> np.ndarray:  # noqa: A002 (R's argument name)
        """Residuals of a ``type``: ``"deviance"`` (default), ``"pearson"``, ``"response"``
        or ``"working"`` (lme4's ``residuals.merMod``)."""
        name = str(type).lower()
        table = {"deviance": self.resid_deviance, "pearson": self.resid_pearson,
                 "response": self.resid_response, "working": self.resid_working}
        if name not in table:
            raise InterlaceError(f"type: expected one of {', '.join(map(repr, table))}, found {type!r}")
        return table[name].copy()

    # ----- predictions, simulation, refits --------------------------------------------------
    def predict(self, newdata: Any = None, type: str = "response",  # noqa: A002
                include_re: bool | list[str] = True) -> np.ndarray:
        """Predictions, as lme4's ``predict(m, newdata, type, allow.new.levels = TRUE)``:
        ``type="response"`` (the mean) or ``"link"`` (the linear predictor, offset
        included); unseen levels get zero random effects. ``include_re``: all the random
        effects (``True``), none (``False``, lme4's ``re.form = NA``) or those of the
        grouping factors named (a list).

        Examples
        --------
        >>> import interlace
        >>> cbpp = interlace.load_dataset("cbpp")
        >>> m = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
        ...                   family="binomial")
        >>> bool(np.allclose(m.predict(cbpp), m.fittedvalues))
        True
        """
        from .fitting.generalized import predict_generalized

        return predict_generalized(self, newdata, type, include_re)

    def simulate(self, nsim: int = 1, seed=None, use_re: bool = False) -> np.ndarray:
        """Responses drawn from the fit, shape (nobs, nsim): new random effects per draw
        (or the conditional modes with ``use_re=True``), then the family's draw at each
        row's mean (a binomial proportion of the row's trials)."""
        from .fitting.generalized import simulate_generalized

        return simulate_generalized(self, nsim, seed, use_re)

    def refit(self, y) -> CrossedGLMMResult:
        """The same model refitted to a new response (on the same rows), from this fit's
        estimates (lme4's ``refit``)."""
        from .fitting.generalized import refit_generalized

        return refit_generalized(self, y)

    def bootMer(self, statistic=None, B: int = 500, seed=None, show_progress: bool = False,  # noqa: N802
                n_jobs: int = 1, use_re: bool = False):
        """Parametric bootstrap (lme4's ``bootMer``): B responses simulated from the fit,
        each refitted, ``statistic`` (the fixed effects by default) of every refit."""
        from .inference.bootstrap import boot_mer

        return boot_mer(self, statistic, B, seed, show_progress, n_jobs, use_re)

    # ----- presentation -------------------------------------------------------------------
    def summary(self):
        """glmer's summary; ``print()`` it, or use its tables."""
        from .summary import Summary

        return Summary.from_glmm_result(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return (f"<CrossedGLMMResult {self.family!r} ({self.approximation}): {self.model.formula!r}, "
                f"nobs={self.nobs}, llf={self.llf:.4f}>")
