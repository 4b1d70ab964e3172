"""A fit as tidy frames, with broom.mixed's columns: ``tidy`` (one row per estimate)
and ``glance`` (one row per model).

``tidy`` gives the fixed effects (``effect="fixed"``: estimate, standard error, t or z
statistic, and for a linear model lmerTest's df and p value) and the random-effects
parameters (``effect="ran_pars"``: ``sd__<term>`` and ``cor__<term>.<term>`` per group,
``sd__Observation`` of the residual), as ``broom.mixed::tidy`` of an lmerTest or glmer
fit. Fixed-effect terms carry interlace's names (those of ``fe_params``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import InterlaceError

EFFECTS = ("fixed", "ran_pars")


def tidy(result, effects=EFFECTS, conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
    """broom.mixed's ``tidy(m, effects, conf.int, conf.level)``.

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
    effects : str or sequence of str, default ("fixed", "ran_pars")
    conf_int : bool, default False
        Add ``conf.low`` and ``conf.high`` of the fixed effects (their t intervals with
        the fit's df for a linear model, Wald for a generalized one).
    conf_level : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        Columns ``effect``, ``group``, ``term``, ``estimate``, ``std.error``,
        ``statistic``, ``df`` (linear models), ``p.value`` (and the interval's).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> tidy(m)[["effect", "group", "term", "estimate"]].round(3)
         effect     group                   term  estimate
    0     fixed      None              Intercept   251.405
    1     fixed      None                   Days    10.467
    2  ran_pars   Subject        sd__(Intercept)    24.740
    3  ran_pars   Subject  cor__(Intercept).Days     0.066
    4  ran_pars   Subject               sd__Days     5.922
    5  ran_pars  Residual        sd__Observation    25.592
    """
    effects = (effects,) if isinstance(effects, str) else tuple(effects)
    if not effects or any(e not in EFFECTS for e in effects):
        raise InterlaceError(f"effects: expected 'fixed', 'ran_pars' or both, found {effects!r}")
    if not 0.0 < conf_level < 1.0:
        raise InterlaceError(f"conf_level: expected a number between 0 and 1, found {conf_level!r}")
    linear = getattr(result, "family", None) is None
    parts = []
    if "fixed" in effects:
        fixed = pd.DataFrame({
            "effect": "fixed", "group": None, "term": list(result.fe_params.index),
            "estimate": result.fe_params.to_numpy(), "std.error": result.fe_bse.to_numpy(),
            "statistic": (result.fe_params / result.fe_bse).to_numpy(),
        })
        if linear:
            fixed["df"] = result.fe_df.to_numpy()
        fixed["p.value"] = result.fe_pvalues.to_numpy()
        if conf_int:
            interval = result.fe_confidence_interval(conf_level)
            fixed["conf.low"], fixed["conf.high"] = interval["lower"].to_numpy(), interval["upper"].to_numpy()
        parts.append(fixed)
    if "ran_pars" in effects:
        parts.append(_ran_pars(result))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)


def _ran_pars(result) -> pd.DataFrame:
    """The standard deviations and correlations, per group (named as
    ``as.data.frame(VarCorr(m))`` names them) in broom.mixed's order: each term's sd,
    then its correlations with the later terms."""
    table = result.varcorr().table
    rows = []
    for group in dict.fromkeys(table["grp"]):
        block = table[table["grp"] == group]
        names = list(block.loc[block["var2"].isna(), "var1"])
        if group == "Residual":
            rows.append((group, "sd__Observation", float(block["sdcor"].iloc[0])))
            continue
        for i, name in enumerate(names):
            sd = block[(block["var1"] == name) & block["var2"].isna()]["sdcor"].iloc[0]
            rows.append((group, f"sd__{name}", float(sd)))
            for other in names[i + 1:]:
                corr = block[(block["var1"] == name) & (block["var2"] == other)]["sdcor"].iloc[0]
                rows.append((group, f"cor__{name}.{other}", float(corr)))
    out = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    out.insert(0, "effect", "ran_pars")
    return out


def glance(result) -> pd.DataFrame:
    """broom.mixed's ``glance(m)``: one row with ``nobs``, ``sigma``, ``logLik``, ``AIC``,
    ``BIC``, ``REMLcrit`` (a REML fit) or ``deviance`` (an ML or a generalized fit) and
    ``df.residual`` (nobs minus the parameters).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> glance(m).round(2).to_dict("records")
    [{'nobs': 180, 'sigma': 25.59, 'logLik': -871.81, 'AIC': 1755.63, 'BIC': 1774.79, 'REMLcrit': 1743.63, 'df.residual': 174}]
    """
    linear = getattr(result, "family", None) is None
    row = {"nobs": int(result.nobs), "sigma": float(np.sqrt(result.scale)) if linear else 1.0,
           "logLik": float(result.llf), "AIC": float(result.aic), "BIC": float(result.bic)}
    if linear and result.method == "REML":
        row["REMLcrit"] = float(result.reml_criterion)
    else:
        row["deviance"] = float(result.deviance)
    row["df.residual"] = int(result.nobs - result.nparams)
    return pd.DataFrame([row])
