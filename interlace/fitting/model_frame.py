"""R's model frame: the formula and the arguments read on the caller's data, the rows
with missing values dropped, the design built (:func:`prepare`). Shared by the linear
and the generalized fits."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..arguments import choice
from ..design import ModelDesign, build_design
from ..errors import DataError, FormulaError, InterlaceError
from ..formula.random import RandomTermSpec, parse_random_term, quote_name, split_formula
from ..formula.rformula import formula_variables
from ..frames import (
    ingest,
    missing_rows,
    model_columns,
    numeric_values,
    row_values,
    same_values,
    select_as_pandas,
    with_column,
)

GROUPS_NAME = "group"
"""The grouping factor's name when ``groups=`` is an unnamed array of the rows' groups."""


def attach_groups(data: Any, groups: Any) -> tuple[Any, Any]:
    """``groups`` given as the rows' groups (a pandas/polars Series, a pyarrow or numpy
    array: statsmodels' habit) becomes a column of a new frame of the caller's type,
    named after the Series, else ``"group"``; column names pass through unchanged."""
    found = row_values(groups, "groups")
    if found is None:
        return data, groups
    name, values = found
    frame, info = ingest(data)
    if len(values) != info.n_rows:
        raise DataError(f"groups: expected one group per row of data ({info.n_rows} rows), "
                        f"found {len(values)} values")
    name = name or GROUPS_NAME
    if name in info.columns:
        if same_values(select_as_pandas(frame, [name])[name], values):
            return data, name
        raise DataError(
            f"groups: the rows' groups are named {name!r} like a column of data that holds other "
            "values; give them another name (pandas: Series.rename, polars: Series.alias)"
        )
    return with_column(frame if isinstance(frame, pd.DataFrame) else data, name, values), name


def _argument_term(argument: str, text: str) -> list[RandomTermSpec]:
    try:
        return parse_random_term(text)
    except FormulaError as exc:
        raise FormulaError(f"{argument}: {exc}") from exc


def _random_specs(groups: str | Sequence[str] | None, random: str | Sequence[str] | None) -> list[RandomTermSpec]:
    specs: list[RandomTermSpec] = []
    if groups is not None:
        if not isinstance(groups, (str, list, tuple)):
            raise InterlaceError(
                "groups: expected a column name, a list of column names, or the rows' groups as a "
                f"Series or 1-d array, found {type(groups).__name__}"
            )
        names = [groups] if isinstance(groups, str) else list(groups)
        for name in names:
            if not isinstance(name, str) or not name:
                raise InterlaceError(f"groups: expected column names, found {name!r}")
            specs.extend(_argument_term("groups", f"(1 | {quote_name(name)})"))
    if random is not None:
        if not isinstance(random, (str, list, tuple)):
            raise InterlaceError(
                f"random: expected a term like '(1 + x | g)' or a list of them, found {type(random).__name__}"
            )
        terms = [random] if isinstance(random, str) else list(random)
        for term in terms:
            if not isinstance(term, str):
                raise InterlaceError(f"random: expected terms like '(1 + x | g)', found {term!r}")
            text = term.strip()
            specs.extend(_argument_term("random", text if text.startswith("(") else f"({text})"))
    return specs


def _used_columns(text: str, columns: Sequence[str], where: str) -> list[str]:
    """Columns named in ``text`` (read as R reads a formula: function and argument
    names and R's constants are not columns); any other name is an unknown column."""
    present = set(columns)
    used: list[str] = []
    for token in formula_variables(text, present):
        if token not in present:
            raise DataError(
                f"{where}: column {token!r} not found in data (columns: {', '.join(map(str, columns))})"
            )
        used.append(token)
    return used


def _check_response(formula: str, table: pd.DataFrame) -> None:
    lhs = formula.split("~", 1)[0].strip().strip("`")
    if lhs in table.columns:
        column = table[lhs]
        numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
        if column.dtype == object:  # numbers or decimals held as Python objects
            numeric = pd.api.types.infer_dtype(column, skipna=True) in (
                "integer", "floating", "mixed-integer-float", "decimal")
        if not numeric:
            raise DataError(f"response {lhs!r}: expected a numeric column, found dtype {column.dtype}")


def _check_intercept_column(fixed_formula: str, specs: list[RandomTermSpec], columns: Sequence[str]) -> None:
    """A predictor column named ``Intercept`` would share its coefficient's name with
    the intercept (R names that ``(Intercept)``): refused, naming the column."""
    if "Intercept" not in columns:
        return
    rhs = fixed_formula.split("~", 1)[1]
    read = set(formula_variables(rhs, set(columns)))
    for spec in specs:
        read.update(formula_variables(spec.expr, set(columns)))
    if "Intercept" in read:
        raise DataError(
            "column 'Intercept': a predictor of this name would share its coefficient's name with "
            "the intercept's; rename the column (pandas: data.rename(columns={'Intercept': ...}))"
        )


def _row_argument(argument: str, value: Any, columns: Sequence[str], n_rows: int) -> str | np.ndarray | None:
    """``weights=`` or ``offset=``: a column name (checked to exist), or its numbers per
    row as a float array (NaN where missing), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in columns:
            raise DataError(f"{argument}: column {value!r} not found in data (columns: {', '.join(map(str, columns))})")
        return value
    values = numeric_values(value, argument)
    if len(values) != n_rows:
        raise DataError(f"{argument}: expected one number per row of data ({n_rows} rows), found {len(values)}")
    return values


def _row_numbers(argument: str, given: str | np.ndarray | None, table: pd.DataFrame,
                 kept: np.ndarray) -> np.ndarray | None:
    """The numbers of a ``weights=``/``offset=`` argument for the rows of ``table`` (a
    column of it, or the given numbers of the rows ``kept``)."""
    if given is None:
        return None
    if isinstance(given, str):
        column = table[given]
        if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            raise DataError(f"{argument}: expected a numeric column, found column {given!r} of dtype {column.dtype}")
        return np.ascontiguousarray(column.to_numpy(dtype=np.float64))
    return np.ascontiguousarray(given[kept])


PLAN_CACHE_SIZE = 128
"""How many formulas (and column-name lists) the parsing caches of :func:`prepare` keep."""


def _formula_terms(formula: str, groups, random) -> tuple[str, tuple[RandomTermSpec, ...], str]:
    """The fixed part, the random terms (the formula's, then ``groups=``'s and
    ``random=``'s) and the full formula."""
    fixed_formula, specs = split_formula(formula)
    specs = specs + _random_specs(groups, random)
    if not specs:
        raise FormulaError(
            f"formula {formula!r}: no random-effects term; write one like '(1 | g)' in the "
            "formula or pass groups= / random="
        )
    full_formula = formula if not (groups or random) else (
        fixed_formula + "".join(f" + ({s.expr} | {':'.join(map(quote_name, s.factors))})" for s in specs)
    )
    return fixed_formula, tuple(specs), full_formula


def _columns_read(fixed_formula: str, specs: tuple[RandomTermSpec, ...],
                  columns: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The columns the model reads from a frame of these ``columns`` (in order: the
    fixed part's, then each random term's slopes and grouping columns) and those read
    as predictors (the others are grouping factors only); an error names a missing one."""
    columns = list(columns)
    used = _used_columns(fixed_formula, columns, f"formula {fixed_formula!r}")
    predictors = set(used)
    for spec in specs:
        for name in spec.factors:
            if name not in columns:
                raise DataError(
                    f"random term {spec.source!r}: grouping column {name!r} not found in data "
                    f"(columns: {', '.join(map(str, columns))})"
                )
        slopes = _used_columns(spec.expr, columns, f"random term {spec.source!r}")
        predictors.update(slopes)
        for name in slopes + list(spec.factors):
            if name not in used:
                used.append(name)
    _check_intercept_column(fixed_formula, list(specs), columns)
    return tuple(used), frozenset(predictors)


_cached_functions = {function: lru_cache(maxsize=PLAN_CACHE_SIZE)(function)
                     for function in (_formula_terms, _columns_read)}


def _cached(function, *arguments):
    """``function(*arguments)``, from a bounded cache when the arguments are hashable
    (strings, tuples of them; a list becomes a tuple). They are a formula's text and
    a frame's column names only, so a result depends on nothing else; a call that
    raises is not kept, and raises again the next time."""
    key = tuple(tuple(a) if isinstance(a, list) else a for a in arguments)
    try:
        hash(key)
    except TypeError:  # e.g. groups= given as something else: the uncached call names it
        return function(*arguments)
    return _cached_functions[function](*key)  # the functions read a list and a tuple alike


def prepare(formula: str, data: Any, groups=None, random=None, na_action: str = "drop", weights: Any = None,
            offset: Any = None, extra_columns: Sequence[str] = (), generalized: bool = False,
            ) -> tuple[ModelDesign, str, pd.DataFrame, np.ndarray]:
    """Parse and read the data: the design, the full formula, the used rows, and the
    positions of the rows dropped for missing values (in a used column, the weights,
    the offset or one of ``extra_columns``, which the returned rows also hold;
    ``generalized``: see :func:`interlace.design.build_design`)."""
    na_action = choice("na_action", na_action, ("drop", "raise"))
    data, groups = attach_groups(data, groups)
    fixed_formula, specs, full_formula = _cached(_formula_terms, formula, groups, random)
    frame, info = ingest(data)
    columns = list(info.columns)
    used, predictors = _cached(_columns_read, fixed_formula, specs, info.columns)
    used, predictors = list(used), set(predictors)
    used.extend(c for c in extra_columns if c not in used)
    given = {argument: _row_argument(argument, value, columns, info.n_rows)
             for argument, value in (("weights", weights), ("offset", offset))}
    for value in given.values():
        if isinstance(value, str) and value not in used:
            used.append(value)
    table = select_as_pandas(frame, used)
    if not generalized:
        _check_response(fixed_formula, table)
    missing = missing_rows(table)
    for value in given.values():
        if isinstance(value, np.ndarray):
            missing = missing | np.isnan(value)
    n_dropped = int(missing.sum())
    if n_dropped:
        if na_action == "raise":
            bad = [c for c in used if table[c].isna().any()]
            bad += [a for a, v in given.items() if isinstance(v, np.ndarray) and np.isnan(v).any()]
            raise DataError(
                f"data: {n_dropped} row(s) have missing values in {', '.join(bad)} and "
                "na_action='raise'"
            )
        table = table.loc[~missing].reset_index(drop=True)
    if info.n_rows == 0:
        raise DataError(f"data: expected rows, found an empty frame (columns: {', '.join(map(str, columns))})")
    if len(table) == 0:
        raise DataError(
            f"data: no rows left after dropping missing values ({n_dropped} of {info.n_rows} "
            f"rows had a missing value in {', '.join(used)})"
        )
    kept = np.flatnonzero(~missing)
    numbers = {argument: _row_numbers(argument, value, table, kept) for argument, value in given.items()}
    table = model_columns(table, predictors)
    design = build_design(fixed_formula, specs, table, numbers["weights"], numbers["offset"],
                          given["offset"] if isinstance(given["offset"], str) else None, generalized)
    return design, full_formula, table, np.flatnonzero(missing)
