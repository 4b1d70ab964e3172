"""The fitted model: :class:`CrossedLMEResult`, a frozen record of data.

Values computed at the fit are fields (the labelled ones, ``fe_params`` to ``model``,
built from the fit's arrays on first read: :mod:`interlace.deferred`); values
derived from them (Satterthwaite df, p-values, conditional SDs) are cached
properties, computed on first use from the fitted system; anything that takes a
level is a method.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .deferred import DeferredField, accept_deferred, resolved_state
from .errors import InterlaceError
from .fitted import FittedModel
from .fitting.conditioning import Conditioning
from .fitting.estimates import conditional_sd, fixed_cov, random_effects_frames
from .fitting.optimize import OptimizationRecord
from .linalg.system import Factor, PenalizedSystem

if TYPE_CHECKING:  # the inference modules (and scipy.stats) load on first use
    from .inference.kenward_roger import KenwardRoger
    from .inference.satterthwaite import VarparDerivatives


@dataclass(frozen=True)
class ModelInfo:
    """The model's data, as statsmodels' ``result.model`` exposes it.

    Attributes
    ----------
    exog : numpy.ndarray
        X, n x p (full-rank columns).
    endog : numpy.ndarray
        y.
    exog_names : list of str
        Names of X's columns.
    endog_names : str
        The response's name.
    groups : dict of str to pandas.Categorical
        Each grouping factor's level per row.
    formula : str
        The full formula, random terms included.
    data : Any
        The caller's frame, as given (never modified).
    dropped_rows : numpy.ndarray
        0-based positions in ``data`` of the rows dropped for missing values (lme4's
        ``na.action``); the per-row results follow the other rows in order.
    """

    exog: np.ndarray
    endog: np.ndarray
    exog_names: list[str]
    endog_names: str
    groups: dict[str, pd.Categorical]
    formula: str
    data: Any = field(repr=False)
    dropped_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class CrossedLMEResult(FittedModel):
    """A fitted linear mixed model; the names mirror statsmodels' ``MixedLMResults``
    and lme4.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> m.nobs, m.ngroups, m.nparams
    (180, {'Subject': 18}, 6)
    >>> round(m.llf, 3), round(float(np.sqrt(m.scale)), 3)
    (-871.814, 25.592)
    >>> m.random_effects["Subject"].columns.tolist()
    ['Intercept', 'Days']
    """

    fe_params: pd.Series = DeferredField()
    fe_bse: pd.Series = DeferredField()
    fe_cov: np.ndarray = DeferredField()
    random_effects: dict[str, pd.Series | pd.DataFrame] = DeferredField()
    variance_components: dict[str, float | pd.DataFrame] = DeferredField()
    correlation_params: dict[str, float] = DeferredField()
    theta: np.ndarray
    theta_names: tuple[str, ...]
    scale: float
    llf: float
    nparams: int
    resid: np.ndarray = DeferredField()
    fittedvalues: np.ndarray = DeferredField()
    nobs: int
    ngroups: dict[str, int]
    method: str
    converged: bool
    df_method: str
    model: ModelInfo = DeferredField()
    is_singular: bool
    boundary_flags: dict[str, bool]
    n_dropped: int
    optimization: OptimizationRecord = field(repr=False)
    solver_path: str = "dense"
    fit_options: dict = field(default_factory=dict, repr=False)
    _system: PenalizedSystem = field(repr=False, default=None, compare=False)
    _factor: Factor = field(repr=False, default=None, compare=False)
    _conditioning: Conditioning = field(repr=False, default=None, compare=False)
    _kenward_roger: KenwardRoger | None = field(repr=False, default=None, compare=False)

    def __getstate__(self) -> dict:
        """The state pickles and copies hold: every deferred field computed."""
        return resolved_state(self)

    # ----- likelihood ---------------------------------------------------------------------
    @property
    def deviance(self) -> float:
        """-2 llf: the ML deviance, or the REML criterion for a REML fit."""
        return -2.0 * self.llf

    @property
    def llf_restricted(self) -> float | None:
        """The restricted (REML) log-likelihood: ``llf`` of a REML fit, None for ML.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> m.llf_restricted == m.llf, round(m.reml_criterion, 4)
        (True, 319.6543)
        """
        return self.llf if self.method == "REML" else None

    @property
    def reml_criterion(self) -> float | None:
        """lme4's ``REMLcrit(m)``: -2 times the restricted log-likelihood of a REML fit
        (the "REML criterion at convergence" of the summary); None for ML."""
        return -2.0 * self.llf if self.method == "REML" else None

    # ----- fixed effects ------------------------------------------------------------------
    @property
    def fe_tvalues(self) -> pd.Series:
        """Estimate / standard error."""
        return self.fe_params / self.fe_bse

    @cached_property
    def _varpar(self) -> VarparDerivatives:
        """Satterthwaite's derivatives, on the working scale of ``_system``."""
        from .inference.satterthwaite import varpar_derivatives

        conditioning = self._conditioning
        sigma = float(np.sqrt(self.scale)) / conditioning.unit
        return varpar_derivatives(self._system, self.theta, sigma, self.method == "REML", conditioning.response_size)

    @cached_property
    def _working_cov(self) -> np.ndarray:
        """vcov of the working fixed effects (see :mod:`interlace.fitting.conditioning`)."""
        return fixed_cov(self._factor, self.scale / self._conditioning.unit**2)

    @cached_property
    def kenward_roger(self) -> KenwardRoger:
        """pbkrtest's Kenward-Roger adjustment at this fit (REML fits only): the
        adjusted covariance ``vcov_adjusted`` and ``ddf(contrast)``."""
        if self._kenward_roger is not None:
            return self._kenward_roger
        if self.method != "REML":
            raise InterlaceError(
                f"df_method='kenward-roger': Kenward-Roger is defined for REML fits (as pbkrtest), "
                f"found method={self.method!r}; refit with method='REML'"
            )
        from .inference.kenward_roger import kenward_roger

        return kenward_roger(self._system.design, self.theta, self.scale, self._conditioning,
                             max_dense_gib=self.fit_options.get("max_dense_gib"), system=self._system)

    def with_df_method(self, df_method: str) -> CrossedLMEResult:
        """The same fit with another df method (``"satterthwaite"`` or
        ``"kenward-roger"``), without refitting.

        With Kenward-Roger, ``fe_bse`` are the adjusted standard errors and
        ``fe_df``, ``fe_pvalues`` and ``fe_conf_int`` use the KR df, as lmerTest's
        ``summary(m, ddf = "Kenward-Roger")``; ``fe_cov`` stays lme4's ``vcov``.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)",
        ...                   interlace.load_dataset("Penicillin"))
        >>> kr = m.with_df_method("kenward-roger")
        >>> round(float(kr.fe_df.iloc[0]), 3), kr.df_method
        (5.487, 'kenward-roger')
        """
        from .arguments import DF_METHODS, choice

        df_method = choice("df_method", df_method, DF_METHODS)
        if df_method == "kenward-roger":
            kr = self.kenward_roger
            se = pd.Series(np.sqrt(np.diag(kr.vcov_adjusted)), index=self.fe_params.index, name="Std. Error")
            return replace(self, df_method=df_method, fe_bse=se, _kenward_roger=kr)
        se = pd.Series(np.sqrt(np.diag(self.fe_cov)), index=self.fe_params.index, name="Std. Error")
        return replace(self, df_method=df_method, fe_bse=se, _kenward_roger=None)

    @cached_property
    def fe_df(self) -> pd.Series:
        """Denominator df of each fixed effect: Satterthwaite's (lmerTest's default) or
        Kenward-Roger's, as ``df_method`` says."""
        p = len(self.fe_params)
        eye = np.eye(p)
        if self.df_method == "kenward-roger":
            values = [self.kenward_roger.ddf(eye[j]) for j in range(p)]
        else:
            from .inference.satterthwaite import satterthwaite_df

            directions = [self._conditioning.direction(eye[j]) for j in range(p)]
            values = [satterthwaite_df(d, self._working_cov, self._varpar) for d in directions]
        return pd.Series(values, index=self.fe_params.index, name="df")

    @cached_property
    def fe_pvalues(self) -> pd.Series:
        """Two-sided p-values, t distribution with :attr:`fe_df` (lmerTest's ``Pr(>|t|)``)."""
        t = self.fe_tvalues.to_numpy()
        from scipy import stats

        return pd.Series(2.0 * stats.t.sf(np.abs(t), self.fe_df.to_numpy()),
                         index=self.fe_params.index, name="Pr(>|t|)")

    def fe_confidence_interval(self, level: float = 0.95) -> pd.DataFrame:
        """t-based intervals for the fixed effects with :attr:`fe_df` and :attr:`fe_bse`.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> m.fe_confidence_interval(0.9).columns.tolist()
        ['lower', 'upper']
        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"level: expected a number between 0 and 1, found {level!r}")
        from scipy import stats

        q = stats.t.ppf(0.5 + level / 2.0, self.fe_df.to_numpy())
        half = q * self.fe_bse.to_numpy()
        est = self.fe_params.to_numpy()
        return pd.DataFrame({"lower": est - half, "upper": est + half}, index=self.fe_params.index)

    @property
    def fe_conf_int(self) -> pd.DataFrame:
        """95 % t intervals of the fixed effects (columns ``lower``, ``upper``)."""
        return self.fe_confidence_interval(0.95)

    def confint(self, method: str = "profile", level: float = 0.95, show_progress: bool | None = None) -> pd.DataFrame:
        """Confidence intervals as lme4's ``confint``.

        ``method="profile"``: profile-likelihood intervals of every random-effect SD
        and correlation, sigma and every fixed effect (ML profile, as lme4), rows
        named as lme4's ``oldNames = FALSE`` (``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``) then the fixed effects.
        ``method="wald"``: estimate -/+ qnorm * SE for the fixed effects. Columns
        ``estimate`` (the fit's own: for a REML fit its REML estimates, the centre of
        the ML profile aside), ``lower`` and ``upper``. ``show_progress``: a bar over
        the profiled parameters (None: in interactive sessions only,
        :mod:`interlace.progress`).

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> m.confint().round(2)
                              estimate    lower    upper
        sd_(Intercept)|Batch     42.00    12.20    84.06
        sigma                    49.51    38.23    67.66
        Intercept              1527.50  1486.45  1568.55
        """
        from .inference.profile import profile_intervals, wald_intervals

        if not 0.0 < level < 1.0:
            raise ValueError(f"level: expected a number between 0 and 1, found {level!r}")
        name = str(method).lower()
        if name == "profile":
            return profile_intervals(self, level, show_progress)
        if name == "wald":
            return wald_intervals(self, level)
        raise InterlaceError(f"method: expected 'profile' or 'wald', found {method!r}")

    def predict(self, newdata: Any = None, include_re: bool | list[str] = True) -> np.ndarray:
        """Predictions, as lme4's ``predict(m, newdata, allow.new.levels = TRUE)``.

        Parameters
        ----------
        newdata : DataFrame, optional
            Any frame narwhals reads; the fitting rows when omitted. Levels of a
            grouping factor the fit did not see get zero random effects; a level of a
            fixed-effect factor it did not see is an error. Rows with a missing value
            predict NaN.
        include_re : bool or list of str
            Conditional on the BLUPs (default), the population prediction X beta
            (``False``: lme4's ``re.form = NA``), or conditional on the random effects
            of the grouping factors named only (lme4's ``re.form`` with a subset of the
            terms, e.g. ``["Subject"]``).

        Examples
        --------
        >>> import interlace
        >>> sleep = interlace.load_dataset("sleepstudy")
        >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
        >>> new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "unseen"]})
        >>> m.predict(new).round(2).tolist()
        [253.66, 303.74]
        """
        from .partitioned import is_dask_frame
        from .prediction import predict

        if is_dask_frame(newdata):
            from .partitioned.outputs import predict_partitions

            return predict_partitions(self, newdata, include_re)
        return predict(self, newdata, include_re)

    def simulate(self, nsim: int = 1, seed=None, use_re: bool = False) -> np.ndarray:
        """Responses simulated from the fitted model, shape (nobs, nsim).

        New random effects for every draw (lme4's default), or the BLUPs with
        ``use_re=True`` (lme4's ``use.u = TRUE``); reproducible with ``seed``.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> m.simulate(3, seed=1).shape
        (30, 3)
        """
        from .simulation import simulate_responses

        return simulate_responses(self, nsim, seed, use_re)

    def refit(self, y) -> CrossedLMEResult:
        """The same model refitted to a new response (lme4's ``refit``), reusing the
        design's codes and cross-products and starting from this fit's theta.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> again = m.refit(m.model.endog)
        >>> bool(abs(again.llf - m.llf) < 1e-8)
        True
        """
        from .simulation import refit_response

        return refit_response(self, y)

    @cached_property
    def _refit_curvature(self) -> np.ndarray | None:
        """The inverse Hessian of the criterion at theta that starts every refit (or None)."""
        from .simulation import refit_curvature

        return refit_curvature(self)

    def bootMer(self, statistic=None, B: int = 500, seed=None, show_progress: bool = False,  # noqa: N802
                n_jobs: int = 1, use_re: bool = False):
        """Parametric bootstrap, as lme4's ``bootMer``: B responses simulated from the
        fit, the same design refitted to each, ``statistic`` (a function of a fitted
        model; the fixed effects by default) on every refit.

        Reproducible for a ``seed`` whatever ``n_jobs`` (parallel through joblib, so
        ``joblib.parallel_config(backend="dask")`` sends it to a Dask cluster).
        Returns a :class:`~interlace.inference.bootstrap.BootstrapResult` with the
        replicates and percentile intervals.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> boot = m.bootMer(B=20, seed=1)
        >>> boot.replicates.shape, list(boot.confidence_interval().columns)
        ((20, 1), ['lower', 'upper'])
        """
        from .inference.bootstrap import boot_mer

        return boot_mer(self, statistic, B, seed, show_progress, n_jobs, use_re)

    def fe_bootstrap_se(self, statistic: str = "median", n_bootstrap: int = 1000,
                        resample_level: str = "group", seed=None, show_progress: bool | None = None) -> pd.Series:
        """Nonparametric bootstrap standard errors of the fixed effects.

        Resamples whole levels of the primary grouping factor (``"group"``, the
        first random term's factor; each drawn copy a new level) or rows
        (``"observation"``), refits each sample from this fit's theta, and
        summarises the spread of each fixed effect by 1.4826 x its median absolute
        deviation (``statistic="median"``, robust) or its standard deviation
        (``"sd"``). (:meth:`bootstrap_se` is the seed API's bootstrap of a statistic
        of the response.)

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
        >>> m.fe_bootstrap_se(n_bootstrap=30, seed=1).index.tolist()
        ['Intercept', 'Days']
        """
        from .inference.bootstrap import fe_bootstrap_se

        return fe_bootstrap_se(self, statistic, n_bootstrap, resample_level, seed, show_progress)

    # ----- random effects -----------------------------------------------------------------
    @cached_property
    def random_effects_se(self) -> dict[str, pd.Series | pd.DataFrame]:
        """Conditional SDs of the BLUPs (lme4's ``condVar``), shaped like :attr:`random_effects`."""
        sds = conditional_sd(self._system, self._factor, self.theta, self.scale)
        return random_effects_frames(self._system.design, sds)

    # ----- presentation -------------------------------------------------------------------
    def summary(self):
        """lme4/lmerTest-style summary; ``print()`` it, or use its tables.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
        >>> print(m.summary())  # doctest: +ELLIPSIS
        Linear mixed model fit by REML. t-tests use Satterthwaite's method
        ...
        """
        from .summary import Summary

        return Summary.from_result(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return (f"<CrossedLMEResult {self.method}: {self.model.formula!r}, nobs={self.nobs}, "
                f"llf={self.llf:.4f}>")


accept_deferred(CrossedLMEResult, "_factor")  # a refit factors its system when first asked
