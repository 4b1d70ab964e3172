"""The fixed-effects part through formulaic: the only module that imports formulaic
(on first use: a formula of numeric columns, or of factors and their interactions
under treatment contrasts, is built without it), besides :mod:`.terms`.

R's treatment contrasts, first level (or first pandas category) as reference.
The formula is read as R reads it (:mod:`.rformula`): each R call is one formulaic
term evaluated by the transform of :func:`r_context`, and the columns take R's
names (``I(day^2)``, ``poly(x, 2)1``). ``offset()`` terms are evaluated apart and
subtracted from the response. The :class:`formulaic.ModelSpec` is kept so that new
data give the same columns (with the fit's ``poly`` coefficients and ``scale``
centre and scale, as R's ``predict``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import rexpr
from .rformula import R_CALL, Translation, r_names, translate


@dataclass(frozen=True)
class FixedDesign:
    """The response and fixed-effects matrix of a model.

    Attributes
    ----------
    response : numpy.ndarray
        The response the fit uses, float64, one per row: y, minus the offset when the
        model has one (lme4 fits y - offset as a model without one).
    response_name : str
        The response as R names it (``"Reaction"``, ``"log(Reaction)"``).
    matrix : numpy.ndarray
        X, float64, n x p (C-contiguous).
    column_names : tuple of str
        The columns' names: formulaic's for columns and factors (``"Intercept"``,
        ``"Days"``, ``"g[T.b]"``), R's for R's transforms (``"I(day^2)"``,
        ``"poly(x, 2)1"``, ``"factor(x)[T.2]"``).
    model_spec : Any
        formulaic's ModelSpec of the right-hand side, to build X for new data.
    offset : numpy.ndarray or None
        The offset per row (the sum of the formula's ``offset()`` terms), None
        without one.
    offset_terms : tuple of str
        The formula's ``offset()`` arguments as R writes them, evaluated again on new data
        (and the ``offset=`` column of :func:`interlace.fit`, by name).
    weights : numpy.ndarray or None
        The prior weights per row (``weights=`` of :func:`interlace.fit`), None without.
    unnamed_offset : bool
        Whether part of the offset was given as numbers (``offset=`` an array), which
        new data cannot supply.

    Examples
    --------
    >>> import interlace
    >>> d = fixed_design("Reaction ~ Days + offset(0.5 * Days)", interlace.load_dataset("sleepstudy"))
    >>> d.offset_terms, d.offset[:3].tolist(), float(d.observed[2] - d.response[2])
    (('0.5 * Days',), [0.0, 0.5, 1.0], 1.0)
    """

    response: np.ndarray
    response_name: str
    matrix: np.ndarray
    column_names: tuple[str, ...]
    model_spec: Any
    offset: np.ndarray | None = None
    offset_terms: tuple[str, ...] = ()
    weights: np.ndarray | None = None
    unnamed_offset: bool = False

    @property
    def observed(self) -> np.ndarray:
        """y as observed: the response plus the offset."""
        return self.response if self.offset is None else self.response + self.offset

    def with_offset_added(self, values: np.ndarray) -> np.ndarray:
        """``values`` (a linear predictor of the rows) plus the offset, if any."""
        return values if self.offset is None else values + self.offset

    def take(self, rows: np.ndarray) -> FixedDesign:
        """The design of the rows ``rows`` (indices or a boolean mask): response,
        X, offset and weights alike."""
        return replace(
            self,
            response=np.ascontiguousarray(self.response[rows]),
            matrix=np.ascontiguousarray(self.matrix[rows]),
            offset=None if self.offset is None else np.ascontiguousarray(self.offset[rows]),
            weights=None if self.weights is None else np.ascontiguousarray(self.weights[rows]),
        )


def _own_error(exc: BaseException) -> BaseException | None:
    """interlace's error behind a formulaic one (raised by an R transform), if any."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (DataError, FormulaError)):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _wrap(exc: Exception, what: str) -> BaseException:
    """interlace's own error behind ``exc``, or a FormulaError saying ``what`` failed
    (in R's names)."""
    return _own_error(exc) or FormulaError(f"{what}: {r_names(str(exc))}")


@lru_cache(maxsize=1)
def r_context() -> dict[str, Any]:
    """The names formulaic needs for the translated formulas (:mod:`.rformula`): the
    stateful transform that evaluates one R call on the data columns it is given
    (:func:`interlace.formula.rexpr.evaluate_term`)."""
    from formulaic.materializers.types import FactorValues
    from formulaic.utils.stateful_transforms import stateful_transform

    def r_call(source: str, *columns: Any, _state: dict | None = None) -> Any:
        node = rexpr.parse(source)
        value = rexpr.evaluate_term(node, dict(zip(rexpr.names_read(node), columns, strict=True)), _state, source)
        if isinstance(value, rexpr.Matrix):
            return FactorValues(value.values, column_names=value.labels)
        if isinstance(value, pd.Categorical):
            index = getattr(columns[0], "index", None)
            return pd.Series(value, index=index if index is not None and len(index) == len(value) else None)
        return np.asarray(value, dtype=np.float64)

    return {R_CALL: stateful_transform(r_call)}


def _model_matrix(formula: str, table: pd.DataFrame, **options: Any) -> Any:
    from formulaic import model_matrix

    return model_matrix(formula, table, context=r_context(), **options)


def _top_level_parts(name: str) -> list[str]:
    """A column name split at the ``:`` outside brackets, parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(name):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


def check_r_coding(model_spec: Any) -> None:
    """Refuse a formulaic model matrix whose factor coding is not R's: R codes a factor
    of an interaction by contrasts or by an indicator of every level by its own rule
    (:func:`interlace.formula.treatment.r_coding`; R's coding can be rank deficient, and
    lme4 drops the redundant columns), formulaic by a full-rank one of its own that can
    add columns of a lower-order term. The same model either way, but other
    coefficients than lme4's: formulas of plain columns are coded as R's without
    formulaic, others with transforms have to agree."""
    from formulaic.parser.types import Factor

    from .treatment import r_coding

    literal = Factor.EvalMethod.LITERAL
    kinds = model_spec.encoder_state
    terms, columns, intercept = [], [], False
    for structure in model_spec.structure:
        factors = tuple(str(f.expr) for f in structure.term.factors if f.eval_method != literal)
        if not factors:
            intercept = True
            continue
        terms.append(factors)
        columns.append(list(structure.columns))
    categorical = {v for term in terms for v in term if kinds.get(v, ("numerical",))[0].value == "categorical"}
    if not categorical:
        return
    order = {v: i for i, v in reversed(list(enumerate(v for term in terms for v in term)))}
    expected = r_coding(tuple(terms), categorical, intercept, order)
    for term, names, flags in zip(terms, columns, expected, strict=True):
        for name in names:
            parts = _top_level_parts(str(name))
            coded = [("[T." in part) for part in parts]
            agrees = len(parts) == len(term) and all(
                coded[i] == flags[i] for i, variable in enumerate(term) if variable in categorical)
            if not agrees:
                label = r_names(":".join(term))
                raise FormulaError(
                    f"term {label!r}: R codes its factors by its own rule (an interaction without its "
                    "main effects gets an indicator for every level, rank deficient, and lme4 drops the "
                    f"redundant columns), which formulaic does not follow here (column {r_names(str(name))!r}); "
                    "add the interaction's lower-order terms, or write the transformed variable as a "
                    "column of the data so that interlace codes the formula as R does"
                )


def r_term_order(rhs: str) -> str:
    """A right-hand side (formulaic's spelling) written out term by term in R's order:
    the variables of an interaction in the order they first appear in the formula
    (``meanses * cses + sector * cses`` has ``cses:sector``, as R's ``terms``), the
    terms by degree, formula order within a degree. formulaic keeps an interaction's
    variables as written, which names (and orders) its columns differently from R's.

    Examples
    --------
    >>> r_term_order("z:x + x + a * b")
    '1 + x + a + b + z:x + a:b'
    >>> r_term_order("0 + `my x`:g + g")
    '0 + g + `my x`:g'
    """
    from formulaic import Formula
    from formulaic.parser.types import Factor

    literal = Factor.EvalMethod.LITERAL
    terms = list(Formula(rhs, _ordering="none"))
    order: dict[str, int] = {}
    for term in terms:
        for factor in term.factors:
            if factor.eval_method != literal:
                order.setdefault(factor.expr, len(order))
    intercept = False
    written: list[tuple[int, str]] = []
    seen: set[frozenset[str]] = set()
    for term in terms:
        factors = sorted((f for f in term.factors if f.eval_method != literal), key=lambda f: order[f.expr])
        if not factors:
            intercept = True
            continue
        key = frozenset(f.expr for f in factors)
        if key in seen:
            continue
        seen.add(key)
        text = ":".join(f.expr if f.eval_method != Factor.EvalMethod.LOOKUP or f.expr.isidentifier()
                        else f"`{f.expr}`" for f in factors)
        written.append((len(factors), text))
    written.sort(key=lambda item: item[0])  # stable: formula order within a degree
    return " + ".join(["1" if intercept else "0"] + [text for _, text in written])


def _offset(translation: Translation, table: pd.DataFrame) -> np.ndarray | None:
    """The sum of the formula's offset terms on the rows of ``table`` (None without any)."""
    if not translation.offsets:
        return None
    return offset_values(translation.offsets, table)


def offset_values(terms: tuple[str, ...], table: pd.DataFrame) -> np.ndarray:
    """The sum of the ``offset()`` arguments ``terms`` (R expressions) on the rows of ``table``."""
    total = np.zeros(len(table))
    for source in terms:
        node = rexpr.parse(source)
        columns = {name: table[name] for name in rexpr.names_read(node) if name in table.columns}
        value = rexpr.evaluate(node, columns, None, f"offset({source})")
        if isinstance(value, (rexpr.Matrix, pd.Categorical)) or np.asarray(value).dtype.kind not in "fb":
            raise FormulaError(f"term 'offset({source})': expected a numeric offset")
        total = total + np.asarray(value, dtype=np.float64)
    return total


def offset_variables(fixed: FixedDesign) -> set[str]:
    """The data columns the offset terms read."""
    return {name for source in fixed.offset_terms for name in rexpr.names_read(rexpr.parse(source))}


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
    from formulaic.errors import FormulaicError  # deferred: plain formulas never need formulaic

    translation = translate(formula, table.columns)
    if translation.lhs is None:
        raise FormulaError(f"formula {formula!r}: expected 'response ~ terms'")
    try:
        matrices = _model_matrix(f"{translation.lhs} ~ {r_term_order(translation.rhs)}", table, na_action="raise")
    except (FormulaicError, ValueError, TypeError, NameError) as exc:
        raise _wrap(exc, f"fixed-effects formula {formula!r}") from exc
    lhs, rhs = matrices.lhs, matrices.rhs
    check_r_coding(rhs.model_spec)
    if lhs.shape[1] != 1:
        raise FormulaError(
            f"formula {formula!r}: expected one numeric response on the left of '~', "
            f"found {lhs.shape[1]} columns {[r_names(str(c)) for c in lhs.columns[:4]]}"
            + (" ..." if lhs.shape[1] > 4 else "")
        )
    offset = _offset(translation, table)
    if offset is not None and not np.all(np.isfinite(offset)):
        bad = int(np.sum(~np.isfinite(offset)))
        raise DataError(f"offset {', '.join(translation.offsets)!r}: {bad} row(s) are NaN or infinite")
    response = lhs.iloc[:, 0].to_numpy(dtype=np.float64)
    return FixedDesign(
        response=np.ascontiguousarray(response if offset is None else response - offset),
        response_name=translation.response_name,
        matrix=np.ascontiguousarray(rhs.to_numpy(dtype=np.float64)),
        column_names=tuple(r_names(str(c)) for c in rhs.columns),
        model_spec=rhs.model_spec,
        offset=offset,
        offset_terms=translation.offsets,
    )


def _plain_fixed_design(formula: str, table: pd.DataFrame) -> FixedDesign | None:
    """``response ~ [1 +] a + b`` with numeric columns, or factors and their
    interactions coded as R codes them (:mod:`interlace.formula.treatment`), built
    without formulaic (None when the formula needs formulaic: transforms, ...). The
    columns' builder is the model spec: it builds new data's columns the same way."""
    if formula.count("~") != 1:
        return None
    lhs, rhs = (part.strip() for part in formula.split("~"))
    if len(lhs) > 2 and lhs[0] == lhs[-1] == "`" and "`" not in lhs[1:-1]:
        lhs = lhs[1:-1]  # a quoted column name (a generalized fit's working response)
    elif not lhs.isidentifier():
        return None
    if not (lhs in table.columns and _plain_numeric(table[lhs])):
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
        model_spec=plain,
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
    from formulaic.errors import FormulaicError

    try:
        translation = translate(expr, table.columns)
    except FormulaError as exc:
        raise FormulaError(f"random term {source!r}: {exc}") from exc
    if translation.offsets or translation.lhs is not None:
        raise FormulaError(f"random term {source!r}: expected the terms of a random effect before '|' "
                           "(offset() belongs to the fixed part)")
    try:
        mm = _model_matrix(r_term_order(translation.rhs), table, na_action="raise")
    except (FormulaicError, ValueError, TypeError, NameError) as exc:
        raise _wrap(exc, f"random term {source!r}") from exc
    check_r_coding(mm.model_spec)
    return (np.ascontiguousarray(mm.to_numpy(dtype=np.float64)), tuple(r_names(str(c)) for c in mm.columns),
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

    def term_columns(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(variables, column names) per term (one numeric column each)."""
        return [((name,), (name,)) for name in self.names]

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
    from .treatment import TreatmentColumns

    if isinstance(model_spec, (PlainColumns, TreatmentColumns)):
        if isinstance(model_spec, TreatmentColumns):
            model_spec.check_levels(table)
        try:
            return model_spec.matrix(table)
        except (ValueError, TypeError) as exc:
            raise DataError(f"newdata: {exc}") from exc
    check_levels(model_spec, table)
    from formulaic.errors import FormulaicError

    try:
        return np.asarray(model_spec.get_model_matrix(table, na_action="ignore", context=r_context()),
                          dtype=np.float64)
    except (FormulaicError, ValueError, TypeError, KeyError, NameError) as exc:
        raise _own_error(exc) or DataError(f"newdata: {r_names(str(exc))}") from exc


def variables(model_spec: Any, columns: Any = ()) -> set[str]:
    """The data columns a ModelSpec reads (None spec: none). A name with a dot that is
    one of ``columns`` (a backtick-quoted ``d.x``) is that column, not the attribute
    ``x`` of a column ``d``."""
    if model_spec is None:
        return set()
    if hasattr(model_spec, "term_columns"):  # built without formulaic
        return model_spec.required_variables
    present = set(columns)
    by_source = model_spec.variables_by_source
    read = set(by_source.get("data", set())) | set(by_source.get(None, set()))  # None: a `quoted` name
    return {str(v) if str(v) in present else v.root for v in read}
