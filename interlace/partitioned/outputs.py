"""Per-row outputs of a fit from a Dask frame, as lazy Dask series: each partition's
rows are read again (:func:`~interlace.partitioned.rows.partition_rows`) and their
values computed where the partition lives, when the caller computes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..frames import missing_rows
from ..kernels.products import z_times
from ..result import ModelInfo
from .rows import RowPlan, partition_rows, used_table


def _estimates(result) -> tuple[np.ndarray, list[np.ndarray]]:
    """beta and each term's BLUPs ((n_levels, k), factorisation order) on the caller's scale."""
    design = result._conditioning.design
    frames = result.random_effects
    effects = [np.ascontiguousarray(np.asarray(frames[t.name], dtype=np.float64).reshape(t.n_levels, t.n_columns))
               for t in design.terms]
    return result.fe_params.to_numpy(), effects


def _partition_values(part: pd.DataFrame, plan: RowPlan, kept: np.ndarray, beta: np.ndarray,
                      effects: list[np.ndarray], kind: str, name: str) -> pd.Series:
    """One partition's values of :func:`row_series` (``kind``), labelled by its rows."""
    rows = partition_rows(part, plan)
    if rows is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=name)
    if kind == "response":
        values = rows.y if rows.offset is None else rows.y + rows.offset
        return pd.Series(values, index=rows.index, name=name)
    linear = rows.X[:, kept] @ beta
    for codes, design, block in zip(rows.codes, rows.designs, effects, strict=True):
        linear = linear + z_times(codes, design, block)
    if kind == "resid":
        values = rows.y - linear  # y less the offset, less X b + Z u
    else:
        values = linear if rows.offset is None else linear + rows.offset
    return pd.Series(values, index=rows.index, name=name)


def row_series(ddf: Any, plan: RowPlan, result, kind: str) -> Any:
    """A lazy Dask series of a fit's per-row values: ``"fitted"`` (X b + Z u plus the
    offset), ``"resid"`` (y - offset - X b - Z u) or ``"response"`` (y), on the rows
    the fit used (labelled as in ``ddf``)."""
    beta, effects = _estimates(result)
    kept = result._conditioning.design.kept_columns
    name = {"fitted": "fitted", "resid": "resid", "response": result._conditioning.design.fixed.response_name}[kind]
    meta = pd.Series(np.zeros(0), index=ddf._meta.index, name=name)
    return ddf.map_partitions(_partition_values, plan, kept, beta, effects, kind, name, meta=meta)


def _partition_groups(part: pd.DataFrame, plan: RowPlan, factors: tuple[str, ...]) -> pd.Series:
    table, index, _ = used_table(part, plan)
    levels = plan.factor_levels[factors]
    codes = levels.codes(table) if len(table) else np.zeros(0, dtype=np.int32)
    return pd.Series(pd.Categorical.from_codes(codes, categories=levels.labels), index=index)


def model_info(ddf: Any, plan: RowPlan, design, formula: str) -> ModelInfo:
    """``result.model`` of a fit from a Dask frame: ``endog``, each grouping factor's
    levels (``groups``) and the labels of the rows dropped for missing values
    (``dropped_rows``: labels, not positions, which a Dask frame does not know without
    a pass) as lazy Dask series; ``exog`` the lazy Dask frame of X's kept columns."""
    from ..fitting.estimates import lme4_term_order

    groups = {}
    for term in lme4_term_order(design):
        meta = pd.Series(pd.Categorical([], categories=term.levels), index=ddf._meta.index[:0])
        groups[term.name] = ddf.map_partitions(_partition_groups, plan, term.factors, meta=meta)
    kept = design.kept_columns
    exog = ddf.map_partitions(_partition_exog, plan, kept, list(design.fixed_names),
                              meta=pd.DataFrame({c: np.zeros(0) for c in design.fixed_names}))
    endog = ddf.map_partitions(_partition_values, plan, kept, None, [], "response", design.fixed.response_name,
                               meta=pd.Series(np.zeros(0), name=design.fixed.response_name))
    dropped = ddf.map_partitions(_partition_dropped, plan, meta=pd.Series(ddf._meta.index[:0], dtype=ddf._meta.index.dtype))
    return ModelInfo(exog=exog, endog=endog, exog_names=list(design.fixed_names),
                     endog_names=design.fixed.response_name, groups=groups, formula=formula, data=ddf,
                     dropped_rows=dropped)


def _partition_dropped(part: pd.DataFrame, plan: RowPlan) -> pd.Series:
    """The labels of a partition's rows dropped for a missing value."""
    missing = missing_rows(part[list(plan.used)])
    return pd.Series(part.index[missing], dtype=part.index.dtype)


def _partition_exog(part: pd.DataFrame, plan: RowPlan, kept: np.ndarray, names: list[str]) -> pd.DataFrame:
    rows = partition_rows(part, plan)
    if rows is None:
        return pd.DataFrame({c: np.zeros(0) for c in names}, index=part.index[:0])
    return pd.DataFrame(rows.X[:, kept], index=rows.index, columns=names)


def _partition_prediction(part: pd.DataFrame, result, include_re) -> pd.Series:
    from ..prediction import linear_predictor

    design = result._conditioning.design
    values = linear_predictor(design, result.fe_params, result.random_effects, part, include_re)
    return pd.Series(values, index=part.index, name="prediction")


def predict_partitions(result, newdata: Any, include_re=True) -> Any:
    """Predictions for the rows of a Dask frame ``newdata``, a lazy Dask series
    (:meth:`~interlace.result.CrossedLMEResult.predict` per partition)."""
    meta = pd.Series(np.zeros(0), index=newdata._meta.index, name="prediction")
    return newdata.map_partitions(_partition_prediction, result, include_re, meta=meta)
