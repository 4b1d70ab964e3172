"""The user-facing entry points: validate the arguments, run the fitting pipeline.

Pipeline: parse the formula -> read the used columns from any frame -> drop rows
with missing values -> build the design (codes, X, y) -> build the penalised
system on the path the dispatch picks -> optimise theta -> estimates -> result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from .arguments import DF_METHODS, check_max_evaluations, check_start, choice
from .errors import InterlaceError
from .families import Family, family_of
from .fitting.estimates import boundary_flags
from .fitting.linear import fit_linear
from .fitting.model_frame import attach_groups, prepare
from .fitting.optimize import OPTIMIZERS
from .glmm_result import CrossedGLMMResult
from .result import CrossedLMEResult

Method = Literal["REML", "ML"]
NaAction = Literal["drop", "raise"]
DfMethod = Literal["satterthwaite", "kenward-roger"]


def fit(
    formula: str,
    data: Any,
    groups: str | Sequence[str] | None = None,
    random: str | Sequence[str] | None = None,
    method: Method | None = None,
    *,
    family: str | Family | None = None,
    nAGQ: int = 1,  # noqa: N803 (lme4's name)
    start: Sequence[float] | None = None,
    optimizer: str = "auto",
    max_evaluations: int = 100_000,
    solver: str = "auto",
    na_action: NaAction = "drop",
    df_method: DfMethod = "satterthwaite",
    max_dense_gib: float | None = None,
    weights: str | Sequence[float] | None = None,
    offset: str | Sequence[float] | None = None,
    reml: bool | None = None,
    REML: bool | None = None,  # noqa: N803 (lme4's name)
) -> CrossedLMEResult | CrossedGLMMResult:
    """Fit a linear mixed model (lme4's ``lmer``) or, with ``family=``, a generalized
    linear mixed model (lme4's ``glmer``), with crossed (or nested) random effects.

    Parameters
    ----------
    formula : str
        ``"y ~ x + (1 + x | g) + (1 | h)"`` in lme4's syntax, or the fixed part
        only (``"y ~ x"``) with ``groups=``/``random=`` naming the random part.
    data : DataFrame
        Any eager frame narwhals reads: pandas, polars, a pyarrow Table. Not modified.
        Or a Dask DataFrame (``pip install "interlace[dask]"``): a linear model is then
        fitted from cross-products summed over its partitions on the Dask cluster, no
        row collected to this process; per-row outputs (``fittedvalues``, ``resid``,
        ``predict``) are lazy Dask series (see :mod:`interlace.partitioned`).
    groups : str, list of str, or Series / array, optional
        Columns that each get a random intercept, ``(1 | g)``. Or, as statsmodels'
        ``MixedLM``, the rows' groups themselves (a pandas or polars Series, a pyarrow or
        numpy array, in row order): a grouping factor named after the Series, else
        ``"group"``, added as a column to a copy of ``data`` (``result.model.data``).
    random : str or list of str, optional
        Random terms in lme4's syntax, e.g. ``"(1 + x | g)"``.
    method : {"REML", "ML"}, optional
        Restricted (the default for a linear model, as lme4) or full maximum
        likelihood. A generalized model is fitted by maximum likelihood (``"ML"``).
    family : str or Family, optional
        A generalized linear mixed model of this family: ``"binomial"``, ``"poisson"``
        (their canonical links) or a family object with its link,
        ``interlace.binomial(link="probit")``. The response may be a 0/1 number, a
        logical, a factor (every level but the first is a success), a proportion with
        ``weights=`` the trials, or ``cbind(successes, failures)``. See
        :mod:`interlace.fitting.generalized`.
    nAGQ : int
        Generalized models: 1 (default) the Laplace approximation; 0 the faster fit
        with beta inside PIRLS (lme4's ``nAGQ = 0``); 2 to 25 adaptive Gauss-Hermite
        quadrature with that many points (a single scalar random-effects term only).
    start : sequence of float, optional
        Start values of theta (lme4's order). By default lme4's start, or moment
        estimates where the Newton optimiser runs (see :mod:`interlace.fitting.start`).
    optimizer : str
        ``"auto"`` (default: a compiled BFGS or L-BFGS-B with the analytic gradient on
        the dense path; Newton's method with the average information on the blocked
        path when every term is scalar; COBYQA otherwise), ``"newton"``, ``"cobyqa"``,
        ``"l-bfgs-b"``, ``"powell"`` or ``"nelder-mead"``.
    max_evaluations : int
        Budget of objective evaluations (lme4's ``maxfun``); a fit that runs out
        warns and reports ``converged=False``.
    solver : {"auto", "dense", "sparse"}
        Forces the Cholesky path; ``"auto"`` decides by size (see
        :mod:`interlace.linalg.dispatch`).
    na_action : {"drop", "raise"}
        Drop rows with a missing value in a used column (lme4's ``na.omit``) or raise.
    df_method : {"satterthwaite", "kenward-roger"}
        Denominator df of the t and F tests: Satterthwaite's (lmerTest's default) or
        Kenward-Roger's (pbkrtest; REML fits only, and then ``fe_bse`` are the
        adjusted standard errors).
    max_dense_gib : float, optional
        Memory in GiB the fit's dense matrices may take at their peak (about five
        copies of the dense system, or of the rest the blocked path keeps dense). A
        model that needs more is refused before anything large is allocated, with an
        error naming both sizes (unless its rest can be held sparse instead). By
        default half of the machine's memory (or of its container's limit); see
        :mod:`interlace.linalg.dispatch`.
    weights : str or sequence of float, optional
        Prior weights, as lmer's ``weights``: a column of ``data`` or one number per
        row, positive. They are precision weights: row i's residual variance is
        sigma^2 / w_i, and the log-likelihood is lme4's (with its 0.5 sum log w_i).
        Rows whose weight is missing are dropped.
    offset : str or sequence of float, optional
        A known part of the linear predictor, as lmer's ``offset``: a column of
        ``data`` or one number per row, added to any ``offset()`` terms of the formula.
        The fit is that of y - offset; fitted values and predictions include it (a
        column is read from ``newdata`` by :meth:`~CrossedLMEResult.predict`).
    reml, REML : bool, optional
        ``method=`` as statsmodels spells it (``reml=True``) and as lme4 does
        (``REML=FALSE``): True for "REML", False for "ML". Give one of ``method``,
        ``reml`` and ``REML``, or several that agree.

    Returns
    -------
    CrossedLMEResult

    Examples
    --------
    >>> import interlace
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    >>> m.fe_params.round(2).to_dict()
    {'Intercept': 251.41, 'Days': 10.47}
    >>> m2 = interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    >>> bool(np.allclose(m.theta, m2.theta))
    True
    """
    method = _method_of(method, reml, REML)
    from .partitioned import is_dask_frame

    dask_frame = is_dask_frame(data)
    if dask_frame and family is not None:
        raise InterlaceError("family: a generalized fit reads its rows at every iteration; from a Dask frame "
                             "interlace fits linear models only: fit ddf.compute() in memory")
    if family is None and not (isinstance(nAGQ, (int, np.integer)) and not isinstance(nAGQ, bool) and nAGQ == 1):
        raise InterlaceError(f"nAGQ: the approximation of a generalized fit (family=); a linear fit takes none, "
                             f"found nAGQ={nAGQ!r}")
    if family is not None:
        return _fit_generalized(formula, data, groups, random, method, family, nAGQ, start, optimizer,
                                max_evaluations, solver, na_action, df_method, weights, offset)
    method = choice("method", "REML" if method is None else method, ("REML", "ML"))
    df_method = choice("df_method", df_method, DF_METHODS)
    if df_method == "kenward-roger" and method != "REML":
        raise InterlaceError(
            "df_method='kenward-roger': Kenward-Roger is defined for REML fits (as pbkrtest), "
            "found method='ML'"
        )
    start = check_start(start)
    check_max_evaluations(max_evaluations)
    if not isinstance(solver, str):
        raise InterlaceError(f"solver: expected 'auto', 'dense' or 'sparse', found {solver!r}")
    if not isinstance(optimizer, str):
        raise InterlaceError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, found {optimizer!r}")
    options = {"method": method, "solver": solver, "optimizer": optimizer,
               "max_evaluations": int(max_evaluations), "na_action": na_action, "df_method": df_method,
               "max_dense_gib": max_dense_gib, "weights": weights, "offset": offset}
    if dask_frame:
        from .partitioned.fit import fit_partitioned

        return fit_partitioned(formula, data, groups, random, method=method, start=start, optimizer=optimizer,
                               max_evaluations=int(max_evaluations), solver=solver,
                               na_action=choice("na_action", na_action, ("drop", "raise")), df_method=df_method,
                               max_dense_gib=max_dense_gib, weights=weights, offset=offset, options=options)
    data, groups = attach_groups(data, groups)
    design, full_formula, table, dropped_rows = prepare(formula, data, groups, random, na_action, weights, offset)
    return fit_linear(design, full_formula, data, dropped_rows, method=method, start=start, optimizer=optimizer,
                      max_evaluations=int(max_evaluations), solver=solver, df_method=df_method,
                      max_dense_gib=max_dense_gib, options=options)


def _method_of(method, reml, REML) -> str | None:  # noqa: N803
    """``method`` from ``method=``, statsmodels' ``reml=`` and lme4's ``REML=`` (which
    must agree when several are given)."""
    chosen = {} if method is None else {"method": method}
    for name, flag in (("reml", reml), ("REML", REML)):
        if flag is None:
            continue
        if not isinstance(flag, (bool, np.bool_)):
            raise InterlaceError(f"{name}: expected True (REML) or False (ML), found {flag!r}")
        chosen[name] = "REML" if flag else "ML"
    values = {str(v).upper() if isinstance(v, str) else v for v in chosen.values()}
    if len(values) > 1:
        given = ", ".join(f"{k}={v!r}" for k, v in (("method", method), ("reml", reml), ("REML", REML))
                          if v is not None)
        raise InterlaceError(f"method: expected one choice of REML or ML, found {given}")
    if not chosen:
        return None
    return method if method is not None else next(iter(chosen.values()))


def _fit_generalized(formula, data, groups, random, method, family, nagq, start, optimizer, max_evaluations, solver,
                     na_action, df_method, weights, offset) -> CrossedGLMMResult:
    """``fit`` with ``family=``: the arguments checked, the generalized fit run (an error
    names the response as the caller wrote it, not its working columns)."""
    from .fitting.generalized import fit_generalized
    from .fitting.response import public_names

    family = family_of(family)
    if method is not None and choice("method", method, ("REML", "ML")) == "REML":
        raise InterlaceError("method: a generalized linear mixed model is fitted by maximum likelihood "
                             "(glmer has no REML), found method='REML'")
    if choice("df_method", df_method, DF_METHODS) != "satterthwaite":
        raise InterlaceError(f"df_method: a generalized fit's tests are Wald z tests (as glmer's summary), "
                             f"found df_method={df_method!r}")
    start = check_start(start)
    check_max_evaluations(max_evaluations)
    if not isinstance(optimizer, str) or optimizer.lower() not in ("auto", "cobyqa", "nelder-mead", "powell"):
        raise InterlaceError(f"optimizer: a generalized fit takes 'auto', 'cobyqa', 'nelder-mead' or 'powell', "
                             f"found {optimizer!r}")
    if not isinstance(solver, str):
        raise InterlaceError(f"solver: expected 'auto', 'dense' or 'sparse', found {solver!r}")
    data, groups = attach_groups(data, groups)
    options = {"method": "ML", "family": family, "nAGQ": nagq, "solver": solver, "optimizer": optimizer,
               "max_evaluations": int(max_evaluations), "na_action": na_action, "weights": weights,
               "offset": offset}
    try:
        return fit_generalized(formula, data, family, groups=groups, random=random, nagq=nagq, weights=weights,
                               offset=offset, start=start, optimizer=optimizer,
                               max_evaluations=int(max_evaluations), solver=solver, na_action=na_action,
                               options=options)
    except InterlaceError as exc:
        if len(exc.args) == 1 and isinstance(exc.args[0], str):
            exc.args = (public_names(exc.args[0], formula),)
        raise


def _check_result(result: Any) -> None:
    if not isinstance(result, (CrossedLMEResult, CrossedGLMMResult)):
        raise InterlaceError(f"result: expected a fitted model (CrossedLMEResult or CrossedGLMMResult), found "
                             f"{type(result).__name__}")


def predict(result: CrossedLMEResult, newdata: Any = None, include_re: bool | list[str] = True) -> np.ndarray:
    """Predictions of a fitted model; see :meth:`CrossedLMEResult.predict`.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> bool(np.allclose(interlace.predict(m), m.fittedvalues))
    True
    """
    _check_result(result)
    return result.predict(newdata, include_re=include_re)


def simulate(result: CrossedLMEResult, nsim: int = 1, seed=None, use_re: bool = False) -> np.ndarray:
    """Responses simulated from a fitted model; see :meth:`CrossedLMEResult.simulate`."""
    _check_result(result)
    return result.simulate(nsim, seed, use_re)


def bootMer(result: CrossedLMEResult, statistic=None, B: int = 500, seed=None,  # noqa: N802
            show_progress: bool = False, n_jobs: int = 1, use_re: bool = False):
    """Parametric bootstrap of a fitted model; see :meth:`CrossedLMEResult.bootMer`."""
    _check_result(result)
    return result.bootMer(statistic, B, seed, show_progress, n_jobs, use_re)


def isSingular(result: CrossedLMEResult, tol: float = 1e-4) -> bool:  # noqa: N802 (lme4's name)
    """lme4's ``isSingular``: whether a diagonal entry of a relative covariance factor
    (a theta entry with lower bound 0) is below ``tol``.

    Examples
    --------
    >>> import interlace, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff2"))
    >>> interlace.isSingular(m), interlace.isSingular(m, tol=0.0)
    (True, False)
    """
    _check_result(result)
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not tol >= 0:
        raise InterlaceError(f"tol: expected a non-negative number, found {tol!r}")
    design = result._fit.design if isinstance(result, CrossedGLMMResult) else result._system.design
    return any(boundary_flags(design, result.theta, tol).values())


def anova(*results: CrossedLMEResult, names: Sequence[str] | None = None,
          type: int | str = 3) -> pd.DataFrame:
    """Analysis of variance: lmerTest's F table of type I, II or III for one model,
    lme4's likelihood-ratio table for several.

    With one result: one row per fixed-effect term, lmerTest's ``anova(m, type =
    type)``: F tests of the type I (sequential), II or III hypotheses, with
    Satterthwaite's or Kenward-Roger's denominator df as the result's ``df_method``
    says. With several: the models in order of their number of parameters, each
    compared with the one before by a likelihood-ratio test; REML fits are refitted by
    ML first (a :class:`~interlace.inference.anova.RefitWarning` says so), as lme4's
    ``anova``.

    Parameters
    ----------
    *results : CrossedLMEResult
        One linear mixed model, or several fitted to the same rows of the same response.
    names : sequence of str, optional
        Row labels of the likelihood-ratio table (several models only).
    type : {3, 2, 1, "III", "II", "I"}
        The type of the F tests (one model; not used with several, as lmerTest).

    Returns
    -------
    DataFrame
        Columns ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``
        for one model; ``npar``, ``AIC``, ``BIC``, ``logLik``, ``deviance``, ``Chisq``,
        ``Df``, ``Pr(>Chisq)`` for several. The title is in ``table.attrs["title"]``.

    Examples
    --------
    >>> import interlace, warnings
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> m1 = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    >>> interlace.anova(m1)[["NumDF", "DenDF", "F value"]].round(2)
          NumDF  DenDF  F value
    Days      1   17.0    45.85
    >>> bw = interlace.fit("weight ~ Time * Diet + (Time | Rat)", interlace.load_dataset("BodyWeight"))
    >>> interlace.anova(bw, type="I")["F value"].round(2).tolist()
    [82.59, 88.07, 7.57]
    >>> m0 = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     table = interlace.anova(m0, m1, names=["m0", "m1"])
    >>> table[["npar", "Chisq", "Df"]].round(2)
        npar  Chisq   Df
    m0     4    NaN  NaN
    m1     6  42.14  2.0
    """
    from .inference.anova import anova_type, likelihood_ratio_table, type_table

    if not results:
        raise InterlaceError("anova: expected at least one fitted model, found none")
    for r in results:
        if not isinstance(r, (CrossedLMEResult, CrossedGLMMResult)):
            raise InterlaceError(f"anova: expected fitted models (CrossedLMEResult), found {r.__class__.__name__}")
    kinds = {isinstance(r, CrossedGLMMResult) for r in results}
    if len(kinds) > 1:
        raise InterlaceError("anova: expected models of one kind, found linear and generalized fits together")
    if len(results) == 1:
        if isinstance(results[0], CrossedGLMMResult):
            raise InterlaceError("anova: a generalized fit's tests are the Wald z tests of its summary; compare "
                                 "nested generalized fits by likelihood ratio with anova(m0, m1)")
        return type_table(results[0], anova_type(type))
    return likelihood_ratio_table(list(results), None if names is None else list(names))


def _check_linear(result: Any, function: str) -> None:
    """``result`` is a linear mixed model fit, else an error naming ``function``."""
    if isinstance(result, CrossedGLMMResult):
        raise InterlaceError(f"{function}: expected a linear mixed model (CrossedLMEResult), found a generalized "
                             "fit (CrossedGLMMResult); compare nested generalized fits with anova(m0, m1)")
    if not isinstance(result, CrossedLMEResult):
        raise InterlaceError(f"{function}: expected a fitted linear mixed model (CrossedLMEResult), found "
                             f"{type(result).__name__}")


def drop1(result: CrossedLMEResult, scope: Sequence[str] | None = None) -> pd.DataFrame:
    """lmerTest's ``drop1(m)``: an F test for each fixed-effect term that can be dropped.

    The terms are those contained in no other term (R's ``drop.scope``: ``a:b`` but not
    ``a`` in ``a * b``), or those named in ``scope``; each is tested by the F test that
    its coefficients are zero, with Satterthwaite's or Kenward-Roger's denominator df as
    the result's ``df_method`` says.

    Parameters
    ----------
    result : CrossedLMEResult
    scope : sequence of str, optional
        Term labels (``"recipe:temperature"``) to test; all the droppable terms by default.

    Returns
    -------
    DataFrame
        Columns ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``;
        the title in ``table.attrs["title"]``, the formula in ``table.attrs["formula"]``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("angle ~ recipe * temperature + (1 | recipe:replicate)",
    ...                   interlace.load_dataset("cake"))
    >>> interlace.drop1(m)[["NumDF", "DenDF", "F value"]].round(3)
                        NumDF  DenDF  F value
    recipe:temperature     10  210.0    1.006
    """
    from .inference.anova import drop1_table

    _check_linear(result, "drop1")
    return drop1_table(result, scope)


def ranova(result: CrossedLMEResult, reduce_terms: bool = True) -> pd.DataFrame:
    """lmerTest's ``ranova(m)``: a likelihood-ratio test for each random-effects term.

    Each random term is removed in turn, or, when it has slopes and ``reduce_terms`` is
    true, reduced by one slope at a time as lmerTest reduces it (``(1 + x | g)`` to
    ``(1 | g)``); the reduced model is refitted with the same method (a REML fit is
    compared by its REML log-likelihood, as lmerTest does) on the same rows.

    Parameters
    ----------
    result : CrossedLMEResult
    reduce_terms : bool
        Reduce a term with slopes rather than remove it (lmerTest's ``reduce.terms``).

    Returns
    -------
    DataFrame
        Columns ``npar``, ``logLik``, ``AIC``, ``LRT``, ``Df``, ``Pr(>Chisq)``; the first
        row ``<none>`` is the model, the others are named as lmerTest names them
        (``(1 | Subject)``, ``Days in (Days | Subject)``).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> interlace.ranova(m)[["npar", "LRT", "Df"]].round(3)
                              npar     LRT   Df
    <none>                       6     NaN  NaN
    Days in (Days | Subject)     4  42.837  2.0
    """
    from .inference.ranova import ranova_table

    _check_linear(result, "ranova")
    return ranova_table(result, reduce_terms)
