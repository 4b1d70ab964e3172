"""Predictions for new data: fixed part through the fit's ModelSpec (with the fit's
``poly`` and ``scale`` state), plus the formula's offset evaluated on the new rows,
random part by level label, with zero random effects for levels the fit did not see
(lme4's ``allow.new.levels = TRUE``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .design import level_labels_of_rows
from .errors import DataError, InterlaceError
from .formula.fixed import design_for_new_data, offset_values, offset_variables, variables
from .frames import ingest, missing_rows, select_as_pandas


def included_terms(design, include_re) -> tuple:
    """The random-effects terms a prediction adds: all (``True``), none (``False``), or
    those of the grouping factors named (lme4's ``re.form`` subset: a list of names, or
    one name)."""
    if isinstance(include_re, (bool, np.bool_)):
        return tuple(design.terms) if include_re else ()
    names = [include_re] if isinstance(include_re, str) else include_re
    known = list(dict.fromkeys(t.name for t in design.terms))
    try:
        names = list(names)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) and n in known for n in names):
        raise InterlaceError(f"include_re: expected True, False or a list of grouping factors among "
                             f"{', '.join(map(repr, known))}, found {include_re!r}")
    return tuple(t for t in design.terms if t.name in names)


def _needed_columns(design, terms, columns) -> list[str]:
    needed = variables(design.fixed.model_spec, columns) | offset_variables(design.fixed)
    for term in terms:
        needed.update(term.factors)
        for spec in term.part_specs:
            needed.update(variables(spec, columns))
    return sorted(needed)


def predict(result, newdata: Any = None, include_re=True) -> np.ndarray:
    """Predictions of a fit (see :meth:`CrossedLMEResult.predict`), from the caller's
    design (its X, ``model_spec``, kept columns and terms) and estimates."""
    design = result._conditioning.design
    terms = included_terms(design, include_re)
    if newdata is None:
        if len(terms) == len(design.terms) and terms:
            return result.fittedvalues.copy()
        fixed = design.fixed.with_offset_added(design.X @ result.fe_params.to_numpy())
        return fixed + fitted_random_part(terms, result.random_effects)
    return linear_predictor(design, result.fe_params, result.random_effects, newdata, include_re)


def fitted_random_part(terms, random_effects: dict) -> np.ndarray | float:
    """Z b of the fitting rows over ``terms`` (0 without any)."""
    total = 0.0
    for term in terms:
        effects = random_effects[term.name]
        block = (effects.to_frame() if isinstance(effects, pd.Series) else effects).to_numpy()
        total = total + np.einsum("ik,ik->i", term.design, block[term.group_codes])
    return total


def linear_predictor(design, fe_params: pd.Series, random_effects: dict, newdata: Any,
                     include_re=True) -> np.ndarray:
    """X beta (+ Z b) + offset of the rows of ``newdata`` for a fit's ``design`` and
    estimates (NaN for rows with a missing value; zero random effects for new levels);
    ``include_re`` as :func:`included_terms`."""
    terms = included_terms(design, include_re)
    if design.fixed.unnamed_offset:
        raise DataError(
            "newdata: the fit's offset= was given as numbers, which new rows cannot supply; fit with "
            "offset= a column name (or offset(column) in the formula) to predict new data"
        )
    frame, info = ingest(newdata, "newdata")
    needed = _needed_columns(design, terms, info.columns)
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
    if terms:
        for term in terms:
            effects = random_effects[term.name]
            block = (effects.to_frame() if isinstance(effects, pd.Series) else effects).to_numpy()
            codes = pd.Index(term.levels).get_indexer(level_labels_of_rows(table, term.factors))
            columns = np.hstack([design_for_new_data(spec, table) for spec in term.part_specs])
            seen = codes >= 0
            values[seen] += np.einsum("ik,ik->i", columns[seen], block[codes[seen]])
    out[complete] = values
    return out
