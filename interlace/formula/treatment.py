"""Fixed-effects columns of factors and their interactions, built without formulaic,
coded as R's ``model.matrix`` codes them.

A right-hand side made of column names, ``:`` and ``*`` (``service * dept``,
``x + g``, ``a:b + a + b``, ``0 + g:f``) has R's columns: an intercept (unless ``0`` or
``-1``), then the terms by degree (formula order within a degree), an interaction's
variables in the order they first appear in the formula; a numeric column is itself;
a factor (its categories in order for a pandas Categorical, the sorted distinct
values for strings) is coded, term by term, as R's ``TermCode`` decides: by treatment
contrasts (one indicator per level after its first) when the term without the factor
is empty or contained in an earlier term, else by one indicator per level; without an
intercept, the first factor of the first term with a factor takes indicators. An
interaction is the products of its factors' columns, the first factor varying
fastest. Names are formulaic's spelling of R's (``dept[T.5]`` for R's ``dept5``,
``g[a]`` for an indicator of every level, ``x:g[T.b]``). R's coding of an interaction
without its margins can be rank deficient; the design drops the redundant columns
as lme4 does. Anything else (transforms, booleans, unused categories) returns None
and goes through formulaic.

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
        values = list(pd.unique(column))
        if not all(isinstance(v, str) for v in values):
            return None
        return sorted(values)
    return None


def level_codes(column: pd.Series, levels) -> np.ndarray:
    """Each row's position in ``levels`` (-1 for a missing value or another level), as
    ``pd.Categorical(column, categories=levels).codes`` (without building the categorical:
    the column's distinct values are looked up once)."""
    found, uniques = pd.factorize(column)  # -1 where missing
    if not len(uniques):
        return np.full(len(column), -1, dtype=np.int64)
    position = {level: i for i, level in enumerate(levels)}
    lookup = np.array([position.get(value, -1) for value in uniques], dtype=np.int64)
    return np.where(found < 0, -1, lookup[np.maximum(found, 0)])


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
    """The columns of a right-hand side of factors, numeric columns and interactions,
    and the model's spec for new data (its levels and coding).

    Attributes
    ----------
    terms : tuple of tuple of str
        The terms after the intercept, in column order (by degree), each one's
        variables in R's order.
    levels : dict of str to tuple
        Each factor's levels (the first is the reference).
    contrasts : tuple of tuple of bool
        Per term and variable: True where a factor is coded by treatment contrasts,
        False where by an indicator of every level (numeric variables: True).
    intercept : bool
        Whether the model has an intercept column.
    """

    terms: tuple[tuple[str, ...], ...]
    levels: dict
    contrasts: tuple[tuple[bool, ...], ...] = ()
    intercept: bool = True

    @classmethod
    def parse(cls, rhs: str, table: pd.DataFrame) -> TreatmentColumns | None:
        """The columns of ``rhs`` on ``table``, or None when formulaic is needed."""
        terms: list[tuple[str, ...]] = []
        intercept = True
        for token in (t.strip() for t in rhs.split("+")):
            if token == "1":
                continue
            if token in ("0", "-1"):
                intercept = False
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
        if not terms:
            return None
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
        # an interaction's variables in the order they first appear (R's ``terms``)
        first = {name: i for i, name in reversed(list(enumerate(n for term in terms for n in term)))}
        terms = [tuple(sorted(term, key=first.__getitem__)) for term in terms]
        ordered = tuple(sorted(terms, key=len))  # stable: formula order within a degree
        return cls(ordered, levels, r_coding(ordered, set(levels), intercept, first), intercept)

    def _term_columns(self, t: int) -> list[tuple[str, tuple]]:
        """(name, ((variable, level or None), ...)) per column of term ``t``, the first
        factor fastest."""
        options = []
        for name, contrast in zip(self.terms[t], self.contrasts[t], strict=True):
            if name not in self.levels:
                options.append([(name, (name, None))])
            elif contrast:
                options.append([(f"{name}[T.{level}]", (name, level)) for level in self.levels[name][1:]])
            else:
                options.append([(f"{name}[{level}]", (name, level)) for level in self.levels[name]])
        columns = []
        for combo in product(*reversed(options)):  # product varies its last argument fastest
            parts = tuple(reversed(combo))
            columns.append((":".join(label for label, _ in parts), tuple(part for _, part in parts)))
        return columns

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns' names (formulaic's spelling)."""
        head = ("Intercept",) if self.intercept else ()
        return (*head, *(name for t in range(len(self.terms)) for name, _ in self._term_columns(t)))

    @property
    def required_variables(self) -> set[str]:
        """The data columns read."""
        return {name for term in self.terms for name in term}

    def term_columns(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(variables, column names) per term, in column order."""
        return [(term, tuple(name for name, _ in self._term_columns(t))) for t, term in enumerate(self.terms)]

    def check_levels(self, table: pd.DataFrame) -> None:
        """Refuse a factor level of ``table`` that the fit did not see."""
        from ..errors import DataError

        for name, known in self.levels.items():
            if name not in table.columns:
                continue
            values = pd.Series(table[name]).dropna()
            unseen = sorted({str(v) for v in values.unique()} - {str(k) for k in known})
            if unseen:
                raise DataError(
                    f"newdata: column {name!r} has level(s) {', '.join(map(repr, unseen))} not seen "
                    f"in the fit (levels: {', '.join(map(str, known))})"
                )

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """The n x p columns for the rows of ``table``: per term, each row's column
        from its factors' codes (the first factor fastest), its value the product of
        the term's numeric columns; rows at a contrast's reference level fill no column.
        Each factor's codes are read once, and every term's entries are written into
        the flat (C-order) matrix at once."""
        n = len(table)
        p = len(self.column_names)
        out = np.zeros((n, p))
        flat = out.reshape(-1)  # a view: row i's column j is entry i p + j
        start = 0
        if self.intercept:
            out[:, 0] = 1.0
            start = 1
        codes_of: dict[str, np.ndarray] = {}
        for term, contrasts in zip(self.terms, self.contrasts, strict=True):
            position = np.arange(start, n * p + start, p, dtype=np.int64)  # each row's entry in column `start`
            inside = None
            value = None
            stride = 1
            for name, contrast in zip(term, contrasts, strict=True):
                if name in self.levels:
                    levels = self.levels[name]
                    if name not in codes_of:
                        codes_of[name] = level_codes(table[name], levels)
                    codes = codes_of[name]
                    shift = 1 if contrast else 0
                    at_level = codes >= shift
                    inside = at_level if inside is None else inside & at_level
                    position += (codes - shift) * stride
                    stride *= len(levels) - shift
                else:
                    column = table[name].to_numpy(dtype=np.float64)
                    value = column if value is None else value * column
            if inside is None:
                flat[position] = 1.0 if value is None else value
            else:
                flat[position[inside]] = 1.0 if value is None else value[inside]
            start += stride
        return out


def r_coding(terms: tuple[tuple[str, ...], ...], factors: set[str], intercept: bool,
             order: dict[str, int]) -> tuple[tuple[bool, ...], ...]:
    """R's coding of each factor in each term (``TermCode`` of R's model.c): True
    (contrasts) when the term without the factor is empty or contained in an earlier
    term, False (an indicator per level) otherwise; without an intercept, the first
    factor (in the formula's variable ``order``) of the first term that has one takes
    indicators.

    Examples
    --------
    >>> r_coding((("g",), ("g", "f")), {"g", "f"}, True, {"g": 0, "f": 1})
    ((True,), (False, True))
    >>> r_coding((("x",), ("x", "g")), {"g"}, False, {"x": 0, "g": 1})
    ((True,), (True, False))
    """
    coding: list[list[bool]] = []
    for t, term in enumerate(terms):
        flags = []
        for name in term:
            rest = set(term) - {name}
            flags.append(name not in factors or not rest or any(rest <= set(earlier) for earlier in terms[:t]))
        coding.append(flags)
    if not intercept:
        for t, term in enumerate(terms):
            found = sorted((n for n in term if n in factors), key=order.__getitem__)
            if found:
                coding[t][term.index(found[0])] = False
                break
    return tuple(tuple(flags) for flags in coding)
