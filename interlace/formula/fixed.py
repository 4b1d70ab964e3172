"""The fixed-effects part through formulaic: the only module that imports formulaic
(on first use: a formula of numeric columns, or of factors and their interactions
under treatment contrasts, is built without it).

R's treatment contrasts, first level (or first pandas category) as reference.
The :class:`formulaic.ModelSpec` is kept so that new data give the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError


@dataclass(frozen=True)
class FixedDesign:
    """The response and fixed-effects matrix of a model.

    Attributes
    ----------
    response : numpy.ndarray
        y, float64, one per row.
    response_name : str
        The response as written in the formula (``"Reaction"``).
    matrix : numpy.ndarray
        X, float64, n x p (C-contiguous).
    column_names : tuple of str
        formulaic's names (``"Intercept"``, ``"Days"``, ``"g[T.b]"``).
    model_spec : Any
        formulaic's ModelSpec of the right-hand side, to build X for new data.
    """

    response: np.ndarray
    response_name: str
    matrix: np.ndarray
    column_names: tuple[str, ...]
    model_spec: Any


def _wrap(exc: Exception, what: str) -> FormulaError:
    return FormulaError(f"{what}: {exc}")


def fixed_design(formula: str, table: pd.DataFrame) -> FixedDesign:
    """Build y and X from ``response ~ terms`` on a frame without missing values.

    Examples
    --------
    >>> import pandas as pd
    >>> d = fixed_design("y ~ x", pd.DataFrame({"y": [1.0, 2.0, 4.0], "x": [0.0, 1.0, 2.0]}))
    >>> d.column_names, d.matrix.shape
    (('Intercept', 'x'), (3, 2))
    """
    plain = _plain_fixed_design(formula, table)
    if plain is not None:
        return plain
    from formulaic import model_matrix  # deferred: plain formulas never need it
    from formulaic.errors import FormulaicError

    try:
        matrices = model_matrix(formula, table, na_action="raise")
    except FormulaicError as exc:
        raise _wrap(exc, f"fixed-effects formula {formula!r}") from exc
    except (ValueError, TypeError, NameError) as exc:
        raise _wrap(exc, f"fixed-effects formula {formula!r}") from exc
    lhs, rhs = matrices.lhs, matrices.rhs
    if lhs.shape[1] != 1:
        raise FormulaError(
            f"formula {formula!r}: expected one numeric response on the left of '~', "
            f"found {lhs.shape[1]} columns {list(lhs.columns)}"
        )
    response = np.ascontiguousarray(lhs.iloc[:, 0].to_numpy(dtype=np.float64))
    X = np.ascontiguousarray(rhs.to_numpy(dtype=np.float64))
    return FixedDesign(
        response=response,
        response_name=str(lhs.columns[0]),
        matrix=X,
        column_names=tuple(str(c) for c in rhs.columns),
        model_spec=rhs.model_spec,
    )


class LazyModelSpec:
    """formulaic's ModelSpec of a right-hand side, built on first use.

    A fit whose fixed part is plain numeric columns builds X without formulaic; the
    ModelSpec (for predictions on new data, contrasts, ANOVA tables) is made from
    the same formula and rows only when one of those asks for it. Attributes are
    those of the ModelSpec.

    Examples
    --------
    >>> import pandas as pd
    >>> spec = LazyModelSpec("x", pd.DataFrame({"x": [1.0, 2.0]}))
    >>> spec.column_names
    ('Intercept', 'x')
    """

    def __init__(self, rhs: str, table: pd.DataFrame):
        self._rhs, self._table, self._spec = rhs, table, None

    def _materialize(self) -> Any:
        if self._spec is None:
            from formulaic import model_matrix

            self._spec = model_matrix(self._rhs, self._table, na_action="raise").model_spec
        return self._spec

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._materialize(), name)

    def __getstate__(self) -> dict:
        return {"_rhs": self._rhs, "_table": self._table, "_spec": self._spec}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _plain_fixed_design(formula: str, table: pd.DataFrame) -> FixedDesign | None:
    """``response ~ [1 +] a + b`` with numeric columns, or factors and their
    interactions under treatment contrasts (:mod:`interlace.formula.treatment`), built
    without formulaic (None when the formula needs formulaic: transforms, ...)."""
    if formula.count("~") != 1:
        return None
    lhs, rhs = (part.strip() for part in formula.split("~"))
    if not (lhs.isidentifier() and lhs in table.columns and _plain_numeric(table[lhs])):
        return None
    plain = PlainColumns.parse(rhs, table, allow_intercept_only=True)
    if plain is None:
        from .treatment import TreatmentColumns

        plain = TreatmentColumns.parse(rhs, table)
    if plain is None:
        return None
    return FixedDesign(
        response=np.ascontiguousarray(table[lhs].to_numpy(dtype=np.float64)),
        response_name=lhs,
        matrix=plain.matrix(table),
        column_names=plain.column_names,
        model_spec=LazyModelSpec(rhs, table),
    )


def _plain_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def term_design(expr: str, table: pd.DataFrame, source: str) -> tuple[np.ndarray, tuple[str, ...], Any]:
    """The per-row design (n x k) of a random term's left-hand side, its column names,
    and the ModelSpec that rebuilds it for new data (None for an intercept).

    Examples
    --------
    >>> import pandas as pd
    >>> m, names, spec = term_design("1 + x", pd.DataFrame({"x": [1.0, 2.0]}), "(x | g)")
    >>> names
    ('Intercept', 'x')
    """
    if expr.strip() == "1":
        return np.ones((len(table), 1)), ("Intercept",), None
    plain = PlainColumns.parse(expr, table)
    if plain is not None:
        return plain.matrix(table), plain.column_names, plain
    from formulaic import model_matrix
    from formulaic.errors import FormulaicError

    try:
        mm = model_matrix(expr, table, na_action="raise")
    except (FormulaicError, ValueError, TypeError, NameError) as exc:
        raise FormulaError(f"random term {source!r}: {exc}") from exc
    return (np.ascontiguousarray(mm.to_numpy(dtype=np.float64)), tuple(str(c) for c in mm.columns),
            mm.model_spec)


@dataclass(frozen=True)
class PlainColumns:
    """A random term's left-hand side that is an optional intercept plus numeric
    columns by name (``Days``, ``1 + x``, ``0 + x``): its columns are the data's, with
    formulaic's names, built without formulaic (the common case, and the cost of a
    small fit).

    Examples
    --------
    >>> import pandas as pd
    >>> PlainColumns.parse("1 + x", pd.DataFrame({"x": [1, 2]})).column_names
    ('Intercept', 'x')
    >>> PlainColumns.parse("log(x)", pd.DataFrame({"x": [1, 2]})) is None
    True
    """

    intercept: bool
    names: tuple[str, ...]

    @classmethod
    def parse(cls, expr: str, table: pd.DataFrame, allow_intercept_only: bool = False) -> PlainColumns | None:
        """The plain form of ``expr`` on ``table``, or None when formulaic is needed."""
        intercept = True
        names: list[str] = []
        for token in (t.strip() for t in expr.split("+")):
            if token == "1":
                continue
            if token in ("0", "-1"):
                intercept = False
            elif (token.isidentifier() and token in table.columns and token not in names
                  and _plain_numeric(table[token])):
                names.append(token)
            else:
                return None
        if not names and not (allow_intercept_only and intercept):
            return None
        return cls(intercept, tuple(names))

    @property
    def column_names(self) -> tuple[str, ...]:
        """formulaic's names of the columns."""
        return (("Intercept",) if self.intercept else ()) + self.names

    @property
    def required_variables(self) -> set[str]:
        """The data columns read."""
        return set(self.names)

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """The n x k columns for the rows of ``table``."""
        columns = [table[name].to_numpy(dtype=np.float64) for name in self.names]
        if self.intercept:
            columns.insert(0, np.ones(len(table)))
        return np.ascontiguousarray(np.column_stack(columns))


def check_levels(model_spec: Any, table: pd.DataFrame) -> None:
    """Refuse a level of a categorical variable that the fit did not see."""
    for variable, (kind, state) in model_spec.encoder_state.items():
        if kind.value != "categorical" or variable not in table.columns:
            continue
        known = {str(c) for c in state.get("categories", [])}
        values = pd.Series(table[variable]).dropna()
        unseen = sorted({str(v) for v in values.unique()} - known)
        if unseen:
            raise DataError(
                f"newdata: column {variable!r} has level(s) {', '.join(map(repr, unseen))} not seen "
                f"in the fit (levels: {', '.join(sorted(known))})"
            )


def design_for_new_data(model_spec: Any, table: pd.DataFrame) -> np.ndarray:
    """The fitted columns (same contrasts) for new rows; None spec means an intercept."""
    if model_spec is None:
        return np.ones((len(table), 1))
    if isinstance(model_spec, PlainColumns):
        try:
            return model_spec.matrix(table)
        except (ValueError, TypeError) as exc:
            raise DataError(f"newdata: {exc}") from exc
    check_levels(model_spec, table)
    from formulaic.errors import FormulaicError

    try:
        return np.asarray(model_spec.get_model_matrix(table, na_action="ignore"), dtype=np.float64)
    except (FormulaicError, ValueError, TypeError, KeyError, NameError) as exc:
        raise DataError(f"newdata: {exc}") from exc


def variables(model_spec: Any) -> set[str]:
    """The data columns a ModelSpec reads (None spec: none)."""
    if model_spec is None:
        return set()
    return set(model_spec.required_variables)
