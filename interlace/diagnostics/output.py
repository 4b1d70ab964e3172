"""Diagnostic frames back in the caller's frame type, rows aligned with the fit.

A diagnostic frame is built as a dict of equal-length columns and handed to
:func:`interlace.frames.to_native_like`, so pandas in gives pandas out, polars in
polars out and a pyarrow Table in a pyarrow Table out. Factor columns stay pandas
Categoricals on pandas; on the other backends they come back as strings.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..frames import ingest, to_native_like


def to_caller_frame(result, columns: dict[str, Any]) -> Any:
    """A frame of the type the model was fitted on, with these columns in order."""
    _, info = ingest(result.model.data)
    if not info.is_pandas:
        columns = {
            name: (
                np.asarray(values.astype(object)) if isinstance(values, pd.Categorical) else values
            )
            for name, values in columns.items()
        }
    return to_native_like(columns, info)


def observation_ids(result) -> np.ndarray:
    """0-based positions, in the caller's data, of the rows used in the fit."""
    n_rows = result.nobs + len(result.model.dropped_rows)
    return np.delete(np.arange(n_rows, dtype=np.int64), result.model.dropped_rows)


def model_frame_columns(result) -> dict[str, Any]:
    """The used columns of the rows used (lme4's model frame), in the model's order."""
    table = result._conditioning.design.table
    out: dict[str, Any] = {}
    for name in table.columns:
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            out[str(name)] = pd.Categorical(column)
        else:
            out[str(name)] = column.to_numpy()
    return out


def level_labels(term) -> pd.Categorical:
    """The levels of a grouping factor as a Categorical in level order."""
    return pd.Categorical(list(term.levels), categories=list(term.levels))


_FORMULAIC_LEVEL = re.compile(r"([A-Za-z0-9_.]+)\[T\.([^\]]+)\]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def r_coefficient_name(name: str) -> str:
    """A coefficient's name as R writes it: ``Intercept`` -> ``(Intercept)``,
    ``g[T.b]`` -> ``gb``."""
    if name == "Intercept":
        return "(Intercept)"
    return _FORMULAIC_LEVEL.sub(r"\1\2", name)


def clean_name(name: str) -> str:
    """janitor's ``make_clean_names`` for a coefficient name: snake case, ASCII
    letters, digits and underscores (``(Intercept)`` -> ``intercept``, ``Days`` ->
    ``days``, ``logDose`` -> ``log_dose``).

    Examples
    --------
    >>> [clean_name(n) for n in ["Intercept", "Days", "recipe[T.B]:temp", "logDose"]]
    ['intercept', 'days', 'recipe_b_temp', 'log_dose']
    """
    text = r_coefficient_name(name)
    text = _CAMEL.sub("_", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return text or "x"
