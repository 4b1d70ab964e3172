"""interlace: linear and generalized linear mixed models with crossed random effects.

lme4's numbers (and lmerTest's inference), from any data frame, fast.

Examples
--------
>>> import interlace
>>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
>>> m.fe_params.round(3).tolist()
[251.405, 10.467]
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"  # the only place the version is written: pyproject.toml reads it

_EXPORTS = {
    "fit": "interlace.api",
    "isSingular": "interlace.api",
    "anova": "interlace.api",
    "drop1": "interlace.api",
    "ranova": "interlace.api",
    "predict": "interlace.api",
    "simulate": "interlace.api",
    "bootMer": "interlace.api",
    "BootstrapResult": "interlace.inference.bootstrap",
    "RefitWarning": "interlace.inference.anova",
    "CrossedLMEResult": "interlace.result",
    "CrossedGLMMResult": "interlace.glmm_result",
    "binomial": "interlace.families",
    "poisson": "interlace.families",
    "Family": "interlace.families",
    "Link": "interlace.families",
    "ModelInfo": "interlace.result",
    "load_dataset": "interlace.datasets",
    "InterlaceError": "interlace.errors",
    "FormulaError": "interlace.errors",
    "DataError": "interlace.errors",
    "ConvergenceWarning": "interlace.errors",
    "SingularFitWarning": "interlace.errors",
    "RankDeficiencyWarning": "interlace.errors",
    "MissingValuesWarning": "interlace.errors",
    "DegenerateFitWarning": "interlace.errors",
    "hlm_resid": "interlace.diagnostics",
    "hlm_influence": "interlace.diagnostics",
    "hlm_leverage": "interlace.diagnostics",
    "hlm_augment": "interlace.diagnostics",
    "emmeans": "interlace.marginal_means",
    "EMMeans": "interlace.marginal_means",
    "EMMContrasts": "interlace.marginal_means",
}

__all__ = sorted(_EXPORTS)


_SUBMODULES = ("plots",)
"""Submodules reached as attributes (``interlace.plots.caterpillar``), imported on first use."""


def __getattr__(name: str) -> Any:
    """Import public names on first use, keeping ``import interlace`` light."""
    if name in _SUBMODULES:
        return import_module(f"interlace.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'interlace' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
