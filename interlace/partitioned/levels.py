"""The first pass: the levels of every grouping factor and categorical predictor over
the whole frame, the rows, and the rows with a missing value (per column, for the
error of ``na_action="raise"``), each partition scanned and the scans combined by a
tree reduction (:func:`~interlace.partitioned.reduction.tree_sum`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design import _level_labels
from ..frames import missing_rows, model_columns
from .rows import FactorLevels, RowPlan

SAMPLE_ROWS = 5
"""Complete rows the first pass keeps as the design's template."""


@dataclass
class LevelScan:
    """What the first pass finds in some partitions (added with ``+``).

    Attributes
    ----------
    n_rows : int
        Rows, missing values included.
    missing_by_column : dict
        Column -> rows where it is missing.
    n_missing : int
        Rows with a missing value in a used column.
    factor_values : dict
        Grouping columns (tuple) -> a frame of their distinct complete combinations.
    predictor_values : dict
        Text or categorical predictor -> its distinct values (object array).
    sample : pandas.DataFrame
        A few complete rows of the used columns (the first partition's that has
        some): the template the design's names and specs are built from.
    """

    n_rows: int
    missing_by_column: dict[str, int]
    n_missing: int
    factor_values: dict[tuple[str, ...], pd.DataFrame]
    predictor_values: dict[str, np.ndarray]
    sample: pd.DataFrame

    def __add__(self, other: LevelScan) -> LevelScan:
        return LevelScan(
            self.n_rows + other.n_rows,
            {k: v + other.missing_by_column.get(k, 0) for k, v in self.missing_by_column.items()},
            self.n_missing + other.n_missing,
            {k: pd.concat([v, other.factor_values[k]], ignore_index=True).drop_duplicates(ignore_index=True)
             for k, v in self.factor_values.items()},
            {k: pd.unique(np.concatenate([v, other.predictor_values[k]])) for k, v in self.predictor_values.items()},
            self.sample if len(self.sample) else other.sample,
        )


def categorical_predictors(meta: pd.DataFrame, plan: RowPlan) -> list[str]:
    """The predictors read as factors: text and categorical columns (the frame's
    ``meta``, its dtypes, after :func:`interlace.frames.model_columns`)."""
    table = model_columns(meta[list(plan.used)], plan.predictors)
    return [name for name in table.columns if name in plan.predictors
            and (isinstance(table[name].dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(table[name].dtype)
                 or table[name].dtype == object)]


def scan_partition(part: pd.DataFrame, plan: RowPlan, factors: list[tuple[str, ...]],
                   predictors: list[str]) -> LevelScan:
    """One partition's :class:`LevelScan`."""
    table = part[list(plan.used)]
    missing = missing_rows(table)
    by_column = {name: int(table[name].isna().sum()) for name in plan.used}
    complete = model_columns(table.loc[~missing].reset_index(drop=True), plan.predictors)
    factor_values = {}
    for names in factors:
        frame = complete[list(names)]
        frame = frame.astype({n: object for n in names if isinstance(frame[n].dtype, pd.CategoricalDtype)})
        factor_values[names] = frame.drop_duplicates(ignore_index=True)
    predictor_values = {name: pd.unique(np.asarray(complete[name].astype(object))) for name in predictors}
    sample = table.loc[~missing].head(SAMPLE_ROWS)
    return LevelScan(len(table), by_column, int(missing.sum()), factor_values, predictor_values, sample)


def known_categories(dtype) -> bool:
    """Whether ``dtype`` is a categorical whose categories Dask knows (not the
    placeholder of a frame read without them: ``ddf.categorize()`` finds them)."""
    return (isinstance(dtype, pd.CategoricalDtype) and dtype.categories is not None and len(dtype.categories) > 0
            and "__UNKNOWN_CATEGORIES__" not in set(map(str, dtype.categories)))


def _ordered(values: np.ndarray, dtype) -> pd.Index:
    """Used values in level order: a categorical's category order, else sorted."""
    if known_categories(dtype):
        used = set(values.tolist())
        return pd.Index([c for c in dtype.categories if c in used])
    return pd.Index(np.sort(np.asarray(values, dtype=object)).tolist())  # the values' own dtype: fast lookups


def factor_levels(names: tuple[str, ...], combinations: pd.DataFrame, meta: pd.DataFrame) -> FactorLevels:
    """A grouping factor's :class:`FactorLevels` from its distinct combinations over
    the whole frame (``meta``: the frame's dtypes), ordered as in memory
    (:func:`interlace.design.grouping_factor`)."""
    values = tuple(_ordered(pd.unique(combinations[n].to_numpy(dtype=object)), meta[n].dtype) for n in names)
    labels = _level_labels(values[0])
    if len(names) == 1:
        return FactorLevels(names, values, None, labels)
    keys = values[0].get_indexer(combinations[names[0]].to_numpy(dtype=object)).astype(np.int64)
    for name, index in zip(names[1:], values[1:], strict=True):
        keys = keys * len(index) + index.get_indexer(combinations[name].to_numpy(dtype=object))
    keys = np.unique(keys)
    label_parts = [_level_labels(v) for v in values]
    rest = keys.copy()
    parts = []
    for labels_of in reversed(label_parts):  # the last column varies fastest
        parts.append(np.asarray(labels_of, dtype=object)[rest % len(labels_of)])
        rest //= len(labels_of)
    parts.reverse()
    combined = [":".join(str(p) for p in row) for row in zip(*parts, strict=True)]
    return FactorLevels(names, values, keys, pd.Index(combined))


def predictor_categories(name: str, values: np.ndarray, meta: pd.DataFrame) -> pd.Index:
    """A categorical predictor's categories over the whole frame: a categorical's own
    (all of them, as in memory), else the distinct values sorted."""
    if known_categories(meta[name].dtype):
        return pd.Index(list(meta[name].dtype.categories), dtype=object)
    return pd.Index(np.sort(np.asarray(values, dtype=object)), dtype=object)
