"""anova tables: lmerTest's F tables of types I, II and III and its ``drop1`` for one
model, lme4's likelihood-ratio table for several.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InterlaceError
from .contrasts import (
    drop1_contrasts,
    drop_scope,
    term_columns,
    type1_contrasts,
    type2_contrasts,
    type3_contrasts,
)
from .ftest import satterthwaite_f_test
from .profile import ml_refit


class RefitWarning(UserWarning):
    """REML fits were refitted by ML before a likelihood-ratio comparison (as lme4 says)."""


ANOVA_TYPES = {1: 1, 2: 2, 3: 3, "1": 1, "2": 2, "3": 3, "I": 1, "II": 2, "III": 3}
"""The ``type=`` values lmerTest's ``anova`` accepts, and the type each one means."""

F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
"""The columns of lmerTest's F tables (its ``contestMD``)."""

_ROMAN = {1: "I", 2: "II", 3: "III"}
_CONTRASTS = {1: type1_contrasts, 2: type2_contrasts, 3: type3_contrasts}


def anova_type(value) -> int:
    """The ANOVA type (1, 2 or 3) that ``value`` names: 1, 2, 3, their strings, or
    "I", "II", "III" as lmerTest writes them.

    Examples
    --------
    >>> anova_type("II"), anova_type(3)
    (2, 3)
    """
    if isinstance(value, (bool, float)) or not isinstance(value, Hashable) or value not in ANOVA_TYPES:
        raise InterlaceError(f"type: expected 1, 2 or 3 (or 'I', 'II', 'III', as lmerTest), found {value!r}")
    return ANOVA_TYPES[value]


def _method(result) -> str:
    return "Kenward-Roger's" if result.df_method == "kenward-roger" else "Satterthwaite's"


def _kenward_roger_row(result, contrast: np.ndarray, beta: np.ndarray) -> tuple:
    """pbkrtest's F test as lmerTest reports it: ``Mean Sq`` from the unscaled F
    (``FtestU``), ``F value`` and the p-value from the scaled one."""
    kr = result.kenward_roger
    F, num_df, den_df, p_value = kr.f_test(contrast, beta)
    estimate = contrast @ beta
    unscaled = float(estimate @ np.linalg.solve(contrast @ kr.vcov_adjusted @ contrast.T, estimate)) / num_df
    mean_sq = unscaled * result.scale
    return mean_sq * num_df, mean_sq, num_df, den_df, F, p_value


def f_test_row(result, contrast: np.ndarray) -> tuple:
    """One row of lmerTest's F tables (``contestMD``) for the hypothesis L beta = 0:
    ``Sum Sq``, ``Mean Sq`` (F sigma^2), ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``,
    with the result's df method; NaN where L has no rows or tests nothing.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> sum_sq, mean_sq, num_df, den_df, F, p = f_test_row(m, np.array([[0.0, 1.0]]))
    >>> num_df, round(den_df, 3), round(F, 3), f"{p:.3g}"
    (1, 17.0, 45.853, '3.26e-06')
    """
    contrast = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
    if contrast.shape[0] == 0 or not np.any(contrast):
        return (np.nan,) * len(F_COLUMNS)
    beta = result.fe_params.to_numpy()
    if result.df_method == "kenward-roger":
        return _kenward_roger_row(result, contrast, beta)
    working, value = result._conditioning.hypothesis(contrast, beta)
    test = satterthwaite_f_test(working, None, result._working_cov, result._varpar, value=value)
    mean_sq = test.F * result.scale
    return mean_sq * test.num_df, mean_sq, test.num_df, test.den_df, test.F, test.p_value


def f_table(result, contrasts: dict[str, np.ndarray], untestable_last: bool = True) -> pd.DataFrame:
    """One F test per term (:func:`f_test_row`), in the order of ``contrasts``; the
    terms with nothing to test get NaN rows, after the others when ``untestable_last``
    (as lmerTest's ``anova``) or in place (as its ``drop1``). ``NumDF`` is an integer
    column when no row is NaN."""
    rows = {term: f_test_row(result, L) for term, L in contrasts.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=F_COLUMNS)
    if untestable_last:
        missing = table["F value"].isna()
        table = pd.concat([table[~missing], table[missing]])
    if not table["NumDF"].isna().any():
        table["NumDF"] = table["NumDF"].astype(int)
    return table


def type_table(result, kind: int = 3) -> pd.DataFrame:
    """lmerTest's ``anova(m, type = ...)``: one F test per fixed-effect term, of type
    ``kind`` I (sequential), II (each term after all terms but those that contain it)
    or III.

    The contrasts are built on the caller's design (:mod:`.contrasts`) and tested on
    the working scale (:mod:`interlace.fitting.conditioning`), with the result's df
    method (Satterthwaite, or Kenward-Roger with pbkrtest's scaled F); ``Mean Sq`` is
    F (pbkrtest's unscaled F with Kenward-Roger) times sigma^2. The title is in
    ``table.attrs["title"]``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("weight ~ Time * Diet + (Time | Rat)", interlace.load_dataset("BodyWeight"))
    >>> table = type_table(m, 1)
    >>> table.attrs["title"]
    "Type I Analysis of Variance Table with Satterthwaite's method"
    >>> table["NumDF"].tolist()
    [1, 2, 2]
    """
    design = result._conditioning.design
    contrasts = _CONTRASTS[kind](design)
    empty = np.zeros((0, design.n_fixed))  # a term whose columns were all dropped as redundant
    table = f_table(result, {t.label: contrasts.get(t.label, empty) for t in term_columns(design)[0]})
    table.attrs["title"] = f"Type {_ROMAN[kind]} Analysis of Variance Table with {_method(result)} method"
    return table


def _checked_scope(scope, marginal: list[str]) -> list[str]:
    """``scope`` as a list of term labels, each one of the droppable ``marginal`` terms."""
    terms = list(scope) if isinstance(scope, Iterable) and not isinstance(scope, str) else None
    if not terms or not all(isinstance(t, str) for t in terms):
        raise InterlaceError(f"scope: expected a list of term labels to drop, found {scope!r}")
    others = [t for t in terms if t not in marginal]
    if others:
        raise InterlaceError(f"scope: only terms contained in no other term can be dropped ({marginal}), "
                             f"found {others}")
    return terms


def drop1_table(result, scope: Sequence[str] | None = None) -> pd.DataFrame:
    """lmerTest's ``drop1(m)``: an F test for each term that can be dropped (contained
    in no other term, R's ``drop.scope``), or for the terms named in ``scope``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("weight ~ Time * Diet + (Time | Rat)", interlace.load_dataset("BodyWeight"))
    >>> drop1_table(m).index.tolist()
    ['Time:Diet']
    """
    design = result._conditioning.design
    marginal = [t.label for t in drop_scope(term_columns(design)[0])]
    scope = marginal if scope is None else _checked_scope(scope, marginal)
    table = f_table(result, drop1_contrasts(design, scope), untestable_last=False)
    table.attrs["title"] = f"Single term deletions using {_method(result)} method:"
    table.attrs["formula"] = result.model.formula
    return table


def ml_loglik(result) -> float:
    """The maximised ML log-likelihood of a fit (re-optimised from its theta if REML),
    on the caller's scale: models of the same y compare whatever their working scales."""
    if getattr(result, "family", None) is not None:  # a generalized fit: already maximum likelihood
        return float(result.llf)
    return -0.5 * result._conditioning.deviance(ml_refit(result)[1], reml=False)


def likelihood_ratio_table(results, names=None) -> pd.DataFrame:
    """lme4's ``anova(m0, m1, ...)``: models by number of parameters, each tested
    against the one before."""
    if names is None:
        names = [r.model.formula for r in results]
        if len(set(names)) != len(names):
            names = [f"model{i + 1}" for i in range(len(results))]
    if len(names) != len(results) or len(set(names)) != len(names):
        raise InterlaceError(f"names: expected {len(results)} distinct names, found {names!r}")
    first = results[0]
    for name, r in zip(names[1:], results[1:], strict=True):
        if r.nobs != first.nobs or not np.array_equal(r.model.endog, first.model.endog):
            raise InterlaceError(
                f"anova: models were not all fitted to the same data ({name!r} has {r.nobs} "
                f"observations of {r.model.endog_names!r}; {names[0]!r} has {first.nobs} of "
                f"{first.model.endog_names!r})"
            )
    refitted = [n for n, r in zip(names, results, strict=True) if r.method == "REML"]
    if refitted:
        warnings.warn(f"refitting model(s) with ML (instead of REML): {', '.join(refitted)}",
                      RefitWarning, stacklevel=3)
    llf = np.array([ml_loglik(r) for r in results])
    npar = np.array([r.nparams for r in results])
    order = np.argsort(npar, kind="stable")
    llf, npar = llf[order], npar[order]
    n = first.nobs
    chisq = np.concatenate([[np.nan], 2.0 * np.maximum(0.0, np.diff(llf))])
    df = np.concatenate([[np.nan], np.diff(npar)]).astype(float)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    p[0] = np.nan
    table = pd.DataFrame(
        {
            "npar": npar,
            "AIC": -2 * llf + 2 * npar,
            "BIC": -2 * llf + np.log(n) * npar,
            "logLik": llf,
            "deviance": -2 * llf,
            "Chisq": chisq,
            "Df": df,
            "Pr(>Chisq)": p,
        },
        index=[names[i] for i in order],
    )
    table.attrs["title"] = "Data: same for all models; models refitted with ML" if refitted else ""
    return table
