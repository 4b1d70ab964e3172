"""One partition's rows as the fit reads them: the used columns, the rows with a
missing value dropped, the predictors' categories and the grouping factors' levels
those of the whole frame (:mod:`~interlace.partitioned.levels`), then y, X, the prior
weights, the offset and every random term's codes and columns, built by the same
code as in memory (:func:`interlace.formula.fixed.fixed_design`,
:func:`~interlace.formula.fixed.design_for_new_data`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..design import _check_finite, _check_finite_columns, with_prior
from ..errors import DataError
from ..formula.fixed import design_for_new_data, fixed_design
from ..formula.random import RandomTermSpec
from ..frames import missing_rows, model_columns


@dataclass(frozen=True)
class FactorLevels:
    """A grouping factor's levels over the whole frame (an interaction ``a:b``: its
    factors' levels and the observed combinations).

    Attributes
    ----------
    factors : tuple of str
        The grouping columns.
    values : tuple of pandas.Index
        Each column's used values, in level order.
    combinations : numpy.ndarray or None
        An interaction's observed combinations as sorted keys ``code_a * n_b + code_b``
        (several columns: folded left to right); None for one column.
    labels : pandas.Index
        The level labels (as :func:`interlace.design.grouping_factor` makes them).
    """

    factors: tuple[str, ...]
    values: tuple[pd.Index, ...]
    combinations: np.ndarray | None
    labels: pd.Index

    def codes(self, table: pd.DataFrame) -> np.ndarray:
        """The rows' level codes (int32) in the whole frame's levels."""
        codes = _value_codes(table[self.factors[0]], self.values[0])
        for name, values in zip(self.factors[1:], self.values[1:], strict=True):
            codes = codes.astype(np.int64) * len(values) + _value_codes(table[name], values)
        if self.combinations is not None:
            codes = np.searchsorted(self.combinations, codes)
        return np.ascontiguousarray(codes, dtype=np.int32)


def _value_codes(column: pd.Series, values: pd.Index) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    codes = values.get_indexer(np.asarray(column, dtype=object) if values.dtype == object else np.asarray(column))
    if (codes < 0).any():  # pragma: no cover - the levels come from the same rows
        raise DataError(f"grouping column {column.name!r}: a value not among the levels found in the first pass")
    return codes


@dataclass(frozen=True)
class RowPlan:
    """What a partition's rows are read into: the model's columns and, from the first
    pass, the levels of the whole frame; from the template design, the terms' layout.

    Attributes
    ----------
    fixed_formula : str
        The fixed part of the formula.
    used : tuple of str
        The columns read (the formula's, the weights' and the offset's).
    predictors : frozenset of str
        The columns read as predictors (the others are grouping factors only).
    weights, offset : str or None
        The columns of the prior weights and of the ``offset=`` argument.
    predictor_levels : dict
        Categorical predictors: column -> its categories over the whole frame.
    factor_levels : dict
        Grouping columns (a tuple) -> :class:`FactorLevels`.
    column_names : tuple of str
        X's columns (before redundant ones are dropped), from the template.
    terms : tuple
        Per random term of the design (factorisation order): its grouping columns
        and the specs that rebuild its columns (:attr:`interlace.design.RandomTerm.part_specs`).
    fixed_terms : tuple
        The fixed part's terms (:func:`interlace.formula.terms.fixed_terms`), whose
        full designs (every level) the type III contrasts compare X with.
    """

    fixed_formula: str
    used: tuple[str, ...]
    predictors: frozenset[str]
    weights: str | None
    offset: str | None
    predictor_levels: dict[str, pd.Index] = field(default_factory=dict)
    factor_levels: dict[tuple[str, ...], FactorLevels] = field(default_factory=dict)
    column_names: tuple[str, ...] = ()
    terms: tuple[tuple[tuple[str, ...], tuple[Any, ...], tuple[str, ...]], ...] = ()
    fixed_terms: tuple = ()


@dataclass(frozen=True)
class PartitionRows:
    """A partition's rows used by the fit.

    Attributes
    ----------
    index : pandas.Index
        The rows' labels in the partition (the rows without missing values).
    X : numpy.ndarray
        (n, p) every column of X (none dropped yet).
    y : numpy.ndarray
        The response less the offset.
    weights, offset : numpy.ndarray or None
    codes : list of numpy.ndarray
        Per random term (factorisation order), the rows' level codes.
    designs : list of numpy.ndarray
        Per random term, its (n, k) columns.
    table : pandas.DataFrame
        The used columns of these rows, as the design reads them.
    """

    index: pd.Index
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None
    codes: list[np.ndarray]
    designs: list[np.ndarray]
    table: pd.DataFrame

    @property
    def n_rows(self) -> int:
        """Rows used."""
        return len(self.y)


def used_table(part: pd.DataFrame, plan: RowPlan) -> tuple[pd.DataFrame, pd.Index, int]:
    """The used columns of a partition's complete rows, as the design reads them (the
    categorical predictors with the whole frame's categories), their labels, and the
    number of rows dropped for a missing value."""
    table = part[list(plan.used)]
    missing = missing_rows(table)
    index = part.index[~missing]
    table = model_columns(table.loc[~missing].reset_index(drop=True), plan.predictors)
    for name, categories in plan.predictor_levels.items():
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        table[name] = pd.Categorical(column, categories=categories)
    return table, index, int(missing.sum())


def partition_rows(part: pd.DataFrame, plan: RowPlan) -> PartitionRows | None:
    """The rows of one partition the fit uses (None when it has none)."""
    table, index, _ = used_table(part, plan)
    if not len(table):
        return None
    fixed = fixed_design(plan.fixed_formula, table)
    if fixed.column_names != plan.column_names:
        raise DataError(
            f"formula {plan.fixed_formula!r}: a partition of data gives the fixed-effects columns "
            f"{list(fixed.column_names)}, the whole frame {list(plan.column_names)}; a factor made in "
            "the formula (factor(x), C(x)) sees only the partition's values: make the column a "
            "categorical first (ddf.astype({'x': 'category'}).categorize())"
        )
    numbers = {name: None if column is None else np.ascontiguousarray(table[column].to_numpy(dtype=np.float64))
               for name, column in (("weights", plan.weights), ("offset", plan.offset))}
    fixed = with_prior(fixed, numbers["weights"], numbers["offset"], plan.offset)
    _check_finite(fixed)
    codes, designs = [], []
    for factors, part_specs, names in plan.terms:
        codes.append(plan.factor_levels[factors].codes(table))
        columns = np.ascontiguousarray(np.hstack([design_for_new_data(spec, table) for spec in part_specs]))
        _check_finite_columns(columns, names, f"random term ({' + '.join(names)} | {':'.join(factors)}): column")
        designs.append(columns)
    return PartitionRows(index, fixed.matrix, fixed.response, fixed.weights, fixed.offset, codes, designs, table)


def grouping_specs(specs: tuple[RandomTermSpec, ...]) -> list[tuple[str, ...]]:
    """The distinct grouping columns (tuples) of the random terms, in formula order."""
    return list(dict.fromkeys(spec.factors for spec in specs))
