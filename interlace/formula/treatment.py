"""Fixed-effects columns of factors and their interactions, built without formulaic.

A right-hand side made of column names, ``:`` and ``*`` (``service * dept``,
``x + g``, ``a:b + a + b``), with an intercept and every interaction's lower-order
terms present, has formulaic's columns under R's treatment contrasts: an intercept,
then the terms by degree (formula order within a degree); a numeric column is
itself, a factor is one indicator per level after its first (its categories in
order for a pandas Categorical, the sorted distinct values for strings); an
interaction is the products of its factors' columns, the first factor varying
fastest. Names are formulaic's (``dept[T.5]``, ``service[T.1]:dept[T.5]``, ``x:g[T.b]``).
Anything else (transforms, no intercept, an interaction without its margins,
booleans, unused categories) returns None and goes through formulaic.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"x": [0.5, 1.0, 2.0], "g": ["a", "b", "a"]})
>>> columns = TreatmentColumns.parse("x * g", t)
>>> columns.column_names
('Intercept', 'x', 'g[T.b]', 'x:g[T.b]')
>>> columns.matrix(t)[:, 3].tolist()
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import pandas as pd

MAX_FACTORS_PER_TERM = 3
"""Interactions of more variables go through formulaic."""


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def _levels(column: pd.Series) -> list | None:
    """A factor's levels in formulaic's order, or None (not a factor, or unused levels)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        if len(pd.unique(column.cat.codes)) != len(categories) or (column.cat.codes < 0).any():
            return None
        return categories
    if pd.api.types.is_string_dtype(column.dtype) or column.dtype == object:
        values = pd.unique(column.to_numpy(dtype=object))
        if not all(isinstance(v, str) for v in values):
            return None
        return sorted(values)
    return None


def _expand(token: str) -> list[tuple[str, ...]] | None:
    """``a*b`` -> [(a,), (b,), (a, b)]; ``a:b`` -> [(a, b)]; ``a`` -> [(a,)]."""
    if "*" in token:
        names = [n.strip() for n in token.split("*")]
        if not names or any(":" in n for n in names):
            return None
        return [combo for k in range(1, len(names) + 1) for combo in combinations(names, k)]
    return [tuple(n.strip() for n in token.split(":"))]


@dataclass(frozen=True)
class TreatmentColumns:
    """The columns of a right-hand side of factors, numeric columns and interactions.

    Attributes
    ----------
    terms : tuple of tuple of str
        The terms after the intercept, in column order (by degree).
    levels : dict of str to tuple
        Each factor's levels (the first is the reference).
    """

    terms: tuple[tuple[str, ...], ...]
    levels: dict

    @classmethod
    def parse(cls, rhs: str, table: pd.DataFrame) -> TreatmentColumns | None:
        """The columns of ``rhs`` on ``table``, or None when formulaic is needed."""
        terms: list[tuple[str, ...]] = []
        for token in (t.strip() for t in rhs.split("+")):
            if token == "1":
                continue
            expanded = _expand(token)
            if expanded is None:
                return None
            for term in expanded:
                if not term or len(term) > MAX_FACTORS_PER_TERM or len(set(term)) != len(term):
                    return None
                if not all(name.isidentifier() and name in table.columns for name in term):
                    return None
                if not any(set(term) == set(seen) for seen in terms):
                    terms.append(term)
        levels: dict[str, tuple] = {}
        for name in {n for term in terms for n in term}:
            column = table[name]
            if _is_numeric(column):
                continue
            found = _levels(column)
            if found is None or len(found) < 2:
                return None
            levels[name] = tuple(found)
        if not levels:
            return None  # numeric columns only: the plain path's
        present = {frozenset(t) for t in terms}
        for term in terms:  # margins present: every factor in treatment coding
            for k in range(1, len(term)):
                if any(frozenset(sub) not in present for sub in combinations(term, k)):
                    return None
        ordered = tuple(sorted(terms, key=len))  # stable: formula order within a degree
        return cls(ordered, levels)

    def _term_columns(self, term: tuple[str, ...]) -> list[tuple[str, tuple]]:
        """(name, ((variable, level or None), ...)) per column, the first factor fastest."""
        options = [
            [(f"{name}[T.{level}]", (name, level)) for level in self.levels[name][1:]]
            if name in self.levels else [(name, (name, None))]
            for name in term
        ]
        columns = []
        for combo in product(*reversed(options)):  # product varies its last argument fastest
            parts = tuple(reversed(combo))
            columns.append((":".join(label for label, _ in parts), tuple(part for _, part in parts)))
        return columns

    @property
    def column_names(self) -> tuple[str, ...]:
        """formulaic's names of the columns."""
        return ("Intercept", *(name for term in self.terms for name, _ in self._term_columns(term)))

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """The n x p columns for the rows of ``table``: per term, each row's column
        from its factors' codes (the first factor fastest), its value the product of
        the term's numeric columns; rows at a reference level fill no column."""
        n = len(table)
        out = np.zeros((n, len(self.column_names)))
        out[:, 0] = 1.0
        start = 1
        rows = np.arange(n)
        for term in self.terms:
            position = np.zeros(n, dtype=np.int64)
            inside = np.ones(n, dtype=bool)
            value = np.ones(n)
            stride = 1
            for name in term:
                if name in self.levels:
                    levels = self.levels[name]
                    codes = pd.Categorical(table[name], categories=list(levels)).codes.astype(np.int64)
                    inside &= codes > 0
                    position += (codes - 1) * stride
                    stride *= len(levels) - 1
                else:
                    value = value * table[name].to_numpy(dtype=np.float64)
            out[rows[inside], start + position[inside]] = value[inside]
            start += stride
        return out
