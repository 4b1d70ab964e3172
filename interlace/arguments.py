"""Checks of the arguments shared by the entry points (the linear and the generalized
fits, the result's methods): each error names the argument, what was expected and what
was found."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InterlaceError

DF_METHODS = ("satterthwaite", "kenward-roger")
"""Names accepted by ``df_method=``."""


def choice(argument: str, value: Any, allowed: Sequence[str]) -> str:
    for a in allowed:
        if isinstance(value, str) and value.lower() == a.lower():
            return a
    raise InterlaceError(f"{argument}: expected one of {', '.join(map(repr, allowed))}, found {value!r}")


MAX_EVALUATIONS = 2**31 - 1
"""The largest ``max_evaluations`` (lme4's ``maxfun`` is an R integer too)."""


def check_start(start: Any) -> np.ndarray | None:
    """``start`` as a 1-d float array of finite numbers (its length is checked against
    the model's theta once the model is built), or None."""
    if start is None:
        return None
    if isinstance(start, (str, bytes, dict)) or not hasattr(start, "__len__"):
        raise InterlaceError(f"start: expected a sequence of theta values, found {type(start).__name__} {start!r}")
    try:
        values = np.asarray(start, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InterlaceError(f"start: expected numbers, found {start!r}") from exc
    if values.ndim != 1:
        raise InterlaceError(f"start: expected a 1-d sequence of theta values, found shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InterlaceError(f"start: expected finite numbers, found {values.tolist()!r}")
    return values


def check_max_evaluations(max_evaluations: Any) -> None:
    if (isinstance(max_evaluations, bool) or not isinstance(max_evaluations, (int, np.integer))
            or max_evaluations < 1):
        raise InterlaceError(f"max_evaluations: expected a positive integer, found {max_evaluations!r}")
    if max_evaluations > MAX_EVALUATIONS:
        raise InterlaceError(f"max_evaluations: expected at most {MAX_EVALUATIONS}, found {max_evaluations!r}")
