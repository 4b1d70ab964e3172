"""Predictions for new data: fixed part through the fit's ModelSpec (with the fit's
``poly`` and ``scale`` state), plus the formula's offset evaluated on the new rows,
random part by level label, with zero random effects for levels the fit did not see
(lme4's ``allow.new.levels = TRUE``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .design import level_labels_of_rows
from .errors import DataError
from .formula.fixed import design_for_new_data, offset_values, offset_variables, variables
from .frames import ingest, missing_rows, select_as_pandas


def _needed_columns(design, include_re: bool, columns) -> list[str]:
    needed = variables(design.fixed.model_spec, columns) | offset_variables(design.fixed)
    if include_re:
        for term in design.terms:
            needed.update(term.factors)
            for spec in term.part_specs:
                needed.update(variables(spec, columns))
    return sorted(needed)


def predict(result, newdata: Any = None, include_re: bool = True) -> np.ndarray:
    """Predictions of a fit (see :meth:`CrossedLMEResult.predict`), from the caller's
    design (its X, ``model_spec``, kept columns and terms) and estimates."""
    design = result._conditioning.design
    if newdata is None:
        if include_re:
            return result.fittedvalues.copy()
        return design.fixed.with_offset_added(design.X @ result.fe_params.to_numpy())
    return linear_predictor(design, result.fe_params, result.random_effects, newdata, include_re)


def linear_predictor(design, fe_params: pd.Series, random_effects: dict, newdata: Any,
                     include_re: bool = True) -> np.ndarray:
    """X beta (+ Z b) + offset of the rows of ``newdata`` for a fit's ``design`` and
    estimates (NaN for rows with a missing value; zero random effects for new levels)."""
    if design.fixed.unnamed_offset:
        raise DataError(
            "newdata: the fit's offset= was given as numbers, which new rows cannot supply; fit with "
            "offset= a column name (or offset(column) in the formula) to predict new data"
        )
    frame, info = ingest(newdata, "newdata")
    needed = _needed_columns(design, include_re, info.columns)
    absent = [c for c in needed if c not in info.columns]
    if absent:
        raise DataError(
            f"newdata: column(s) {', '.join(map(repr, absent))} not found (columns: "
            f"{', '.join(map(str, info.columns))})"
        )
    table = select_as_pandas(frame, needed)
    out = np.full(len(table), np.nan)
    complete = ~missing_rows(table)
    table = table.loc[complete].reset_index(drop=True)
    X = design_for_new_data(design.fixed.model_spec, table)[:, design.kept_columns]
    values = X @ fe_params.to_numpy()
    if design.fixed.offset_terms:
        values = values + offset_values(design.fixed.offset_terms, table)
    if include_re:
        for term in design.terms:
            effects = random_effects[term.name]
            block = (effects.to_frame() if isinstance(effects, pd.Series) else effects).to_numpy()
            codes = pd.Index(term.levels).get_indexer(level_labels_of_rows(table, term.factors))
            columns = np.hstack([design_for_new_data(spec, table) for spec in term.part_specs])
            seen = codes >= 0
            values[seen] += np.einsum("ik,ik->i", columns[seen], block[codes[seen]])
    out[complete] = values
    return out
