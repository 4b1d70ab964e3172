"""anova tables: lmerTest's type III F table for one model, lme4's likelihood-ratio
table for several.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InterlaceError
from .contrasts import type3_contrasts
from .ftest import satterthwaite_f_test
from .profile import ml_refit


class RefitWarning(UserWarning):
    """REML fits were refitted by ML before a likelihood-ratio comparison (as lme4 says)."""


def type3_table(result) -> pd.DataFrame:
    """lmerTest's ``anova(m)``: one row per fixed-effect term.

    Columns ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``,
    with the result's df method (Satterthwaite, or Kenward-Roger with pbkrtest's
    scaled F); ``Mean Sq`` is F times sigma^2. The contrasts are built on the caller's
    design and tested on the working scale (:mod:`interlace.fitting.conditioning`).
    """
    conditioning = result._conditioning
    beta = result.fe_params.to_numpy()
    rows = {}
    kenward = result.df_method == "kenward-roger"
    for term, contrast in type3_contrasts(conditioning.design).items():
        if contrast.shape[0] == 0:
            continue
        if kenward:
            F, num_df, den_df, p_value = result.kenward_roger.f_test(contrast, beta)
        else:
            working, value = conditioning.hypothesis(contrast, beta)
            test = satterthwaite_f_test(working, None, result._working_cov, result._varpar, value=value)
            F, num_df, den_df, p_value = test.F, test.num_df, test.den_df, test.p_value
        mean_sq = F * result.scale
        rows[term] = (mean_sq * num_df, mean_sq, num_df, den_df, F, p_value)
    table = pd.DataFrame.from_dict(
        rows, orient="index", columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    )
    table["NumDF"] = table["NumDF"].astype(int)
    method = "Kenward-Roger's" if kenward else "Satterthwaite's"
    table.attrs["title"] = f"Type III Analysis of Variance Table with {method} method"
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
