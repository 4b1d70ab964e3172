"""R expressions as lme4 reads them: tokenize, parse, deparse (R's spelling) and
evaluate with numpy.

The subset of R that model formulas use: numbers (``2``, ``1e-3``, ``2L``),
``TRUE``/``FALSE`` (and ``T``, ``F``, ``pi``, ``Inf``), names (backtick-quoted
too), parentheses, calls with positional or named arguments, and R's operators
with R's precedence: ``^`` (and its synonym ``**``, right-associative, above unary
minus: ``-x^2`` is ``-(x^2)``), unary ``-``/``+``, ``:``, ``%any%`` (``%%``,
``%/%``, ``%in%``), ``*``/``/``, ``+``/``-``, comparisons, ``!``, ``&``, ``|``,
``~``. A call to ``C(...)`` or to a namespaced Python function (``np.log(...)``)
is kept as raw text (:class:`Raw`) for formulaic.

:func:`deparse` writes a node as R's term labels do (R's ``deparse``, integer
constants without their ``L``), which is how ``model.matrix`` names columns (``I(x * 2)``, ``I(x/2)``, ``I(x^2)``,
``log(x + 1)``, ``I(x%%3)``, ``I(x * 1e+05)``).

:func:`evaluate` computes a node on data columns with R's semantics (every number
a double; ``%%`` the remainder with the divisor's sign; ``%/%`` floor division)
and the transforms of :mod:`interlace.formula.rtransforms`.

Examples
--------
>>> deparse(parse("I(x*2) + log(x+1)"))
'I(x * 2) + log(x + 1)'
>>> import numpy as np
>>> evaluate(parse("I(x^2)"), {"x": np.array([1.0, 2.0, 3.0])}, {}, "I(x^2)").tolist()
[1.0, 4.0, 9.0]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import rtransforms

# ----- nodes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A number; ``integer`` for R's ``2L``."""

    value: float
    integer: bool = False


@dataclass(frozen=True)
class Logical:
    """``TRUE`` or ``FALSE``."""

    value: bool


@dataclass(frozen=True)
class Name:
    """A name (a data column, or one of R's constants); ``quoted`` when written in backticks."""

    name: str
    quoted: bool = False


@dataclass(frozen=True)
class Unary:
    """``-e``, ``+e``, ``!e``, ``~e``."""

    op: str
    operand: Any


@dataclass(frozen=True)
class Binary:
    """``left op right``; ``**`` is stored as ``^``."""

    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Paren:
    """``(e)``: kept, as R keeps it (``I((x - 1)^2)``)."""

    inner: Any


@dataclass(frozen=True)
class Arg:
    """An argument of a call: ``value`` or ``name = value``."""

    name: str | None
    value: Any


@dataclass(frozen=True)
class Call:
    """``fn(args)``."""

    fn: str
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Raw:
    """Python code passed through unread: ``C(x)``, ``np.log(x)``."""

    text: str


CONSTANTS = {"pi": np.pi, "T": True, "F": False, "Inf": np.inf, "NaN": np.nan}
"""R's constants that a name may stand for inside a call (``I(x * pi)``, ``raw = T``)."""

RAW_NAMESPACES = ("np.", "numpy.", "math.", "scipy.")
"""Calls ``<namespace>.f(...)`` are Python code passed to formulaic unread."""

RAW_CALLS = ("C",)
"""Calls passed to formulaic unread (formulaic's ``C()`` contrasts)."""

# ----- tokens -----------------------------------------------------------------------------

_DIGITS = "0123456789"
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(L|i)?")
_NAME = re.compile(r"(?:[^\W\d]|\.)[\w.]*")  # R's names: letters (any script), digits, '.', '_'
_OPERATORS = ("**", "<=", ">=", "==", "!=", "&&", "||", "<-", "^", "-", "+", "*", "/", ":", "<", ">",
              "!", "&", "|", "~", "=", "(", ")", ",")
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "in", "TRUE", "FALSE",
             "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_"}
_R_SYNTACTIC = re.compile(r"^(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*$|^\.$")


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "raw", "end"
    text: str
    position: int
    value: Any = None


def call_end(text: str, start: int) -> int:
    """The index after the ``)`` that closes the ``(`` at ``start`` (quotes respected)."""
    depth, i, quote = 0, start, None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise FormulaError(f"{text!r}: unbalanced '(' (a '(' is never closed)")


def tokenize(text: str) -> list[Token]:
    """R tokens of ``text`` (raises :class:`FormulaError` naming the term at fault)."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < len(text) and text[i + 1] in _DIGITS):
            m = _NUMBER.match(text, i)
            literal, suffix = m.group(1), m.group(2)
            if literal.lower().startswith("0x") or suffix == "i":
                raise _syntax(text, i, f"number {m.group(0)!r} is not supported (write a decimal number)")
            tokens.append(Token("num", m.group(0), i, (float(literal), suffix == "L")))
            i = m.end()
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise _syntax(text, i, "a '`' is never closed")
            tokens.append(Token("name", text[i + 1 : end], i, True))
            i = end + 1
            continue
        if ch.isalpha() or ch in "._":
            m = _NAME.match(text, i)
            if m is None:
                raise _syntax(text, i, f"{ch!r} cannot start a name")
            word = m.group(0)
            j = m.end()
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] == "(" and (word in RAW_CALLS or word.startswith(RAW_NAMESPACES)):
                end = call_end(text, j)
                tokens.append(Token("raw", text[i:end], i))
                i = end
                continue
            tokens.append(Token("name", word, i, False))
            i = m.end()
            continue
        if ch == "%":
            end = text.find("%", i + 1)
            if end < 0:
                raise _syntax(text, i, "R has no operator '%' (the remainder is '%%')")
            tokens.append(Token("op", text[i : end + 1], i))
            i = end + 1
            continue
        if ch in "'\"":
            raise _syntax(text, i, "a string constant is not supported here")
        if text.startswith("//", i):
            raise _syntax(text, i, "R has no operator '//' (integer division is '%/%')")
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, i))
                i += len(op)
                break
        else:
            raise _syntax(text, i, f"{ch!r} is not R syntax a model formula can use")
    tokens.append(Token("end", "", len(text)))
    return tokens


def term_at(text: str, position: int) -> str:
    """The top-level term of ``text`` (between ``~``, ``+`` at depth 0) around ``position``."""
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in "+~":
            if i >= position:
                return text[start:i].strip() or text.strip()
            start = i + 1
    return text[start:].strip() or text.strip()


def _syntax(text: str, position: int, what: str) -> FormulaError:
    return FormulaError(f"term {term_at(text, position)!r}: {what}")


# ----- parser -----------------------------------------------------------------------------

# binding powers, R's precedence (?Syntax), lowest first
_BINARY = {
    "~": 1, "|": 2, "||": 2, "&": 3, "&&": 3,
    "<": 5, ">": 5, "<=": 5, ">=": 5, "==": 5, "!=": 5,
    "+": 6, "-": 6, "*": 7, "/": 7, ":": 9, "^": 11, "**": 11,
}
_SPECIAL = 8  # %any%
_UNARY = {"-": 10, "+": 10, "!": 4, "~": 1}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, token: Token, what: str | None = None) -> FormulaError:
        found = "end of formula" if token.kind == "end" else repr(token.text)
        return _syntax(self.text, token.position, what or f"unexpected {found}")

    def expect(self, op: str) -> None:
        token = self.next()
        if token.kind != "op" or token.text != op:
            raise self.error(token, f"expected {op!r}, found "
                             + ("the end" if token.kind == "end" else repr(token.text)))

    def binding(self, token: Token) -> int:
        if token.kind != "op":
            return 0
        if token.text.startswith("%"):
            return _SPECIAL
        return _BINARY.get(token.text, 0)

    def expression(self, min_bp: int = 0):
        left = self.prefix()
        while True:
            token = self.peek()
            bp = self.binding(token)
            if bp <= min_bp:
                if token.kind not in ("op", "end") or (token.kind == "op" and token.text not in (")", ",", "=")
                                                       and bp == 0):
                    raise self.error(token)
                return left
            self.next()
            op = "^" if token.text == "**" else token.text
            right = self.expression(bp - 1 if op == "^" else bp)
            left = Binary(op, left, right)

    def prefix(self):
        token = self.next()
        if token.kind == "num":
            value, integer = token.value
            return Num(value, integer)
        if token.kind == "raw":
            return Raw(token.text)
        if token.kind == "name":
            if not token.value and token.text in ("TRUE", "FALSE"):
                return Logical(token.text == "TRUE")
            if self.peek().kind == "op" and self.peek().text == "(":
                self.next()
                return Call(token.text, self.arguments())
            if not token.value and token.text in _RESERVED:
                raise self.error(token, f"{token.text!r} is not supported in a model formula")
            return Name(token.text, bool(token.value))
        if token.kind == "op":
            if token.text == "(":
                inner = self.expression()
                self.expect(")")
                return Paren(inner)
            if token.text in _UNARY:
                return Unary(token.text, self.expression(_UNARY[token.text]))
        raise self.error(token)

    def arguments(self) -> tuple[Arg, ...]:
        args: list[Arg] = []
        if self.peek().kind == "op" and self.peek().text == ")":
            self.next()
            return ()
        while True:
            name = None
            token = self.peek()
            following = self.tokens[self.i + 1]
            if token.kind == "name" and following.kind == "op" and following.text == "=":
                name = token.text
                self.i += 2
            args.append(Arg(name, self.expression()))
            token = self.next()
            if token.kind == "op" and token.text == ")":
                return tuple(args)
            if not (token.kind == "op" and token.text == ","):
                raise self.error(token, "expected ',' or ')', found "
                                 + ("the end" if token.kind == "end" else repr(token.text)))


@lru_cache(maxsize=1024)
def parse(text: str):
    """The R expression ``text`` as a tree of nodes.

    Examples
    --------
    >>> parse("-x^2")
    Unary(op='-', operand=Binary(op='^', left=Name(name='x', quoted=False), right=Num(value=2.0, integer=False)))
    """
    parser = _Parser(text)
    if parser.peek().kind == "end":
        raise FormulaError(f"{text!r}: empty expression")
    node = parser.expression()
    token = parser.next()
    if token.kind != "end":
        raise parser.error(token)
    return node


# ----- deparse ----------------------------------------------------------------------------

_SPACED = {"+", "-", "*", "<", ">", "<=", ">=", "==", "!=", "&", "&&", "|", "||", "~", "<-"}
_TIGHT = {"/", "^", ":", "%%", "%/%"}


def r_number(value: float, integer: bool = False) -> str:
    """A number as R writes it in a term label (``model.matrix``'s column names):
    15 significant digits, fixed or scientific notation whichever is narrower
    (fixed on a tie); an integer constant (``2L``, ``1e5L``) in fixed notation
    without its ``L`` (``deparse`` would keep the ``L``; R's term labels drop it).

    Examples
    --------
    >>> [r_number(v) for v in (2.0, 0.001, 1e-4, 1e5, 123456.0, 1.5)], r_number(1e5, integer=True)
    (['2', '0.001', '1e-04', '1e+05', '123456', '1.5'], '100000')
    """
    if integer:
        return str(int(value))
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, a = ("-" if value < 0 else ""), abs(value)
    target = float(f"{a:.14e}")
    for digits in range(1, 16):
        text = f"{a:.{digits - 1}e}"
        if float(text) == target:
            break
    mantissa, exponent = text.split("e")
    power = int(exponent)
    scientific = f"{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    fixed = f"{a:.{max(0, digits - 1 - power)}f}"
    return sign + (fixed if len(fixed) <= len(scientific) else scientific)


def r_name(name: str, quoted: bool = False) -> str:
    """A name as R deparses it: in backticks unless it is syntactic."""
    if _R_SYNTACTIC.match(name) and name not in _RESERVED:
        return name
    return f"`{name}`"


def deparse(node) -> str:
    """The expression as R writes it in a term label, which is how ``model.matrix``
    (and so lme4) names a column: R's ``deparse``, integer constants without ``L``.

    Examples
    --------
    >>> deparse(parse("I(x/2)+ I(x%%3) + I((x-10)**2) + log(x,base=2)"))
    'I(x/2) + I(x%%3) + I((x - 10)^2) + log(x, base = 2)'
    """
    if isinstance(node, Num):
        return r_number(node.value, node.integer)
    if isinstance(node, Logical):
        return "TRUE" if node.value else "FALSE"
    if isinstance(node, Name):
        return r_name(node.name, node.quoted)
    if isinstance(node, Unary):
        return f"{node.op}{deparse(node.operand)}"
    if isinstance(node, Binary):
        tight = node.op in _TIGHT
        sep = node.op if tight else f" {node.op} "
        return f"{deparse(node.left)}{sep}{deparse(node.right)}"
    if isinstance(node, Paren):
        return f"({deparse(node.inner)})"
    if isinstance(node, Call):
        args = ", ".join(deparse(a.value) if a.name is None else f"{a.name} = {deparse(a.value)}"
                         for a in node.args)
        return f"{node.fn}({args})"
    if isinstance(node, Raw):
        return node.text
    raise TypeError(f"not an R expression node: {node!r}")


def names_read(node, out: list[str] | None = None) -> list[str]:
    """The names an expression reads, in order of first appearance, without R's
    constants (:data:`CONSTANTS`), function names and argument names."""
    out = [] if out is None else out
    if isinstance(node, Name):
        if node.name not in out and (node.quoted or node.name not in CONSTANTS):
            out.append(node.name)
    elif isinstance(node, Unary):
        names_read(node.operand, out)
    elif isinstance(node, Binary):
        names_read(node.left, out)
        names_read(node.right, out)
    elif isinstance(node, Paren):
        names_read(node.inner, out)
    elif isinstance(node, Call):
        for a in node.args:
            names_read(a.value, out)
    return out


# ----- evaluation -------------------------------------------------------------------------

NUMERIC_FUNCTIONS = {
    "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
}
"""One-argument numeric functions (R's name -> numpy's)."""

TRANSFORMS = ("I", "log", *NUMERIC_FUNCTIONS, "scale", "poly", "factor", "as.factor", "as.numeric")
"""The R functions a formula term may call (``offset`` is read by the formula, not here)."""

SPLINES = ("ns", "bs", "s", "te", "pspline", "splines::ns", "splines::bs")

_COMPARE = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "^": np.power,
               "%%": np.mod, "%/%": np.floor_divide}


@dataclass(frozen=True)
class Matrix:
    """Several columns from one term (``poly(x, 2)``): values n x k, labels (``"1"``, ``"2"``)."""

    values: np.ndarray
    labels: tuple[str, ...]


def as_r_value(column: Any) -> Any:
    """A data column as R sees it: a double array, a logical array, a factor
    (``pandas.Categorical``) or a character (object) array."""
    if isinstance(column, (pd.Series, pd.Index)):
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return pd.Categorical(column)
        if pd.api.types.is_bool_dtype(dtype):
            return column.to_numpy(dtype=bool, na_value=False)
        if pd.api.types.is_numeric_dtype(dtype):
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        return column.to_numpy(dtype=object)
    array = np.asarray(column)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.number):
        return array.astype(np.float64)
    return array.astype(object)


def _kind(value: Any) -> str:
    if isinstance(value, Matrix):
        return "matrix"
    if isinstance(value, pd.Categorical):
        return "factor"
    array = np.asarray(value)
    if array.dtype == bool:
        return "logical"
    if np.issubdtype(array.dtype, np.number):
        return "numeric"
    return "character"


def _numeric(value: Any, term: str, what: str) -> np.ndarray | float:
    kind = _kind(value)
    if kind in ("numeric", "logical"):
        out = np.asarray(value, dtype=np.float64)
        return float(out) if out.ndim == 0 else out
    found = {"factor": "a factor (categorical column)", "character": "a character (string) column",
             "matrix": "several columns"}[kind]
    raise FormulaError(f"term {term!r}: {what} needs numbers, found {found}")


def _logical(value: Any, term: str, what: str) -> np.ndarray:
    kind = _kind(value)
    if kind == "logical":
        return np.asarray(value)
    return np.asarray(_numeric(value, term, what)) != 0


def match_arguments(call: Call, params: tuple[str, ...], term: str) -> dict[str, Any]:
    """R's argument matching (exact names, then positions) for ``call``."""
    matched: dict[str, Any] = {}
    for a in call.args:
        if a.name is not None:
            if a.name not in params:
                raise FormulaError(
                    f"term {term!r}: {call.fn}() has no argument {a.name!r} here "
                    f"(expected {', '.join(params)})"
                )
            if a.name in matched:
                raise FormulaError(f"term {term!r}: argument {a.name!r} of {call.fn}() given twice")
            matched[a.name] = a.value
    free = [p for p in params if p not in matched]
    positional = [a.value for a in call.args if a.name is None]
    if len(positional) > len(free):
        raise FormulaError(
            f"term {term!r}: {call.fn}() takes {len(params)} argument(s) ({', '.join(params)}), "
            f"found {len(call.args)}"
        )
    matched.update(zip(free, positional, strict=False))
    if params[0] not in matched:
        raise FormulaError(f"term {term!r}: {call.fn}() needs its argument {params[0]!r}")
    return matched


def constant(node, term: str, what: str) -> Any:
    """The value of an argument that must not read data (``degree``, ``raw``, ``base``)."""
    if names_read(node):
        raise FormulaError(f"term {term!r}: {what} must be a constant, found {deparse(node)!r}")
    value = evaluate(node, {}, None, term)
    array = np.asarray(value)
    if array.ndim != 0:
        raise FormulaError(f"term {term!r}: {what} must be one value, found {deparse(node)!r}")
    return array.item()


class _Evaluation:
    """One evaluation of an expression: the columns, the transforms' state, the term."""

    def __init__(self, env: dict[str, Any], state: dict | None, term: str):
        self.env, self.state, self.term, self.counter = env, state, term, 0

    def substate(self, fn: str) -> dict | None:
        """The state of the next stateful call (numbered in evaluation order)."""
        self.counter += 1
        if self.state is None:
            return None
        return self.state.setdefault(f"{fn}#{self.counter}", {})

    def run(self, node, top: bool = True) -> Any:
        term = self.term
        if isinstance(node, Num):
            return float(node.value)
        if isinstance(node, Logical):
            return np.bool_(node.value)
        if isinstance(node, Name):
            if node.name in self.env:
                return self.env[node.name]
            if not node.quoted and node.name in CONSTANTS:
                value = CONSTANTS[node.name]
                return np.bool_(value) if isinstance(value, bool) else float(value)
            raise DataError(f"term {term!r}: column {node.name!r} not found in data")
        if isinstance(node, Paren):
            return self.run(node.inner, top=False)
        if isinstance(node, Unary):
            value = self.run(node.operand, top=False)
            if node.op == "!":
                return ~_logical(value, term, "'!'")
            if node.op in ("-", "+"):
                number = _numeric(value, term, f"unary '{node.op}'")
                return -number if node.op == "-" else number
            raise FormulaError(f"term {term!r}: operator {node.op!r} cannot be used inside a term")
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node, top)
        if isinstance(node, Raw):
            raise FormulaError(
                f"term {term!r}: Python call {node.text!r} inside an R expression; use R's functions "
                "(log, exp, sqrt, ...) inside I() and the transforms"
            )
        raise TypeError(node)

    def binary(self, node: Binary) -> Any:
        term, op = self.term, node.op
        left, right = self.run(node.left, top=False), self.run(node.right, top=False)
        if op in _ARITHMETIC:
            a = _numeric(left, term, f"operator {op!r}")
            b = _numeric(right, term, f"operator {op!r}")
            return _ARITHMETIC[op](a, b)
        if op in _COMPARE:
            a = _numeric(left, term, f"operator {op!r}")
            b = _numeric(right, term, f"operator {op!r}")
            return np.asarray(_COMPARE[op](a, b))
        if op in ("&", "&&"):
            return np.logical_and(_logical(left, term, "'&'"), _logical(right, term, "'&'"))
        if op in ("|", "||"):
            return np.logical_or(_logical(left, term, "'|'"), _logical(right, term, "'|'"))
        hint = "; write the nesting as g/x or the interaction x:g" if op == "%in%" else ""
        raise FormulaError(f"term {term!r}: operator {op!r} is not supported inside a term{hint}")

    def call(self, node: Call, top: bool) -> Any:
        term, fn = self.term, node.fn
        if fn == "I":
            arg = match_arguments(node, ("x",), term)["x"]
            value = self.run(arg, top=False)
            if isinstance(value, Matrix):
                raise FormulaError(f"term {term!r}: poly() must be a term of its own, not inside I()")
            return value
        if fn == "log":
            args = match_arguments(node, ("x", "base"), term)
            x = _numeric(self.run(args["x"], top=False), term, "log()")
            if "base" not in args:
                return np.log(x)
            base = _numeric(self.run(args["base"], top=False), term, "log()'s base")
            return np.log(x) / np.log(base)
        if fn in NUMERIC_FUNCTIONS:
            arg = match_arguments(node, ("x",), term)["x"]
            return NUMERIC_FUNCTIONS[fn](_numeric(self.run(arg, top=False), term, f"{fn}()"))
        if fn == "as.numeric":
            arg = match_arguments(node, ("x",), term)["x"]
            return rtransforms.as_numeric(self.run(arg, top=False), term)
        if fn == "scale":
            args = match_arguments(node, ("x", "center", "scale"), term)
            x = _numeric(self.run(args["x"], top=False), term, "scale()")
            center = constant(args["center"], term, "scale()'s center") if "center" in args else True
            scale = constant(args["scale"], term, "scale()'s scale") if "scale" in args else True
            # R's makepredictcall keeps the fit's centre and scale only for a scale() that
            # is the whole variable; inside another call (exp(scale(x))) new data are
            # scaled by their own mean and SD, as in R
            state = self.substate(fn) if top else None
            return rtransforms.scale(np.asarray(x, dtype=np.float64), center, scale, state, term)
        if fn in ("poly", "factor", "as.factor") and not top:
            raise FormulaError(f"term {term!r}: {fn}() must be a term of its own (or in an interaction ':')")
        if fn == "poly":
            positional = [a for a in node.args if a.name is None]
            if len(positional) > 2 or (len(positional) == 2 and names_read(positional[1].value)):
                raise FormulaError(f"term {term!r}: poly() of several variables (R's polym) is not supported")
            args = match_arguments(node, ("x", "degree", "raw"), term)
            x = _numeric(self.run(args["x"], top=False), term, "poly()")
            degree = constant(args["degree"], term, "poly()'s degree") if "degree" in args else 1
            raw = constant(args["raw"], term, "poly()'s raw") if "raw" in args else False
            if not isinstance(raw, (bool, np.bool_)):
                raise FormulaError(f"term {term!r}: poly()'s raw must be TRUE or FALSE, found {raw!r}")
            values = rtransforms.poly(np.asarray(x, dtype=np.float64), degree, bool(raw), self.substate(fn), term)
            if values.shape[1] == 1:
                return values[:, 0]
            return Matrix(values, tuple(str(k) for k in range(1, values.shape[1] + 1)))
        if fn in ("factor", "as.factor"):
            arg = match_arguments(node, ("x",), term)["x"]
            return rtransforms.factor(self.run(arg, top=False), fn == "factor", self.substate(fn), term)
        raise unknown_function(fn, term)


def unknown_function(fn: str, term: str) -> FormulaError:
    """The error for a call interlace does not read as R does."""
    if fn == "offset":
        return FormulaError(f"term {term!r}: offset() must be a term of its own in the fixed part")
    if fn in SPLINES:
        return FormulaError(
            f"term {term!r}: splines ({fn}()) are not supported; R's basis would differ from "
            "formulaic's (use poly(x, k), or build the basis columns yourself)"
        )
    return FormulaError(
        f"term {term!r}: function {fn!r} is not supported (R transforms: {', '.join(TRANSFORMS)}, offset; "
        "Python: np.<function>(...), C(...))"
    )


def check_calls(node, term: str) -> None:
    """Raise for a call :func:`evaluate` would not know (before any data are read)."""
    if isinstance(node, Call):
        if node.fn not in TRANSFORMS:
            raise unknown_function(node.fn, term)
        for a in node.args:
            check_calls(a.value, term)
    elif isinstance(node, Unary):
        check_calls(node.operand, term)
    elif isinstance(node, Binary):
        if not (node.op in _ARITHMETIC or node.op in _COMPARE or node.op in ("&", "&&", "|", "||")):
            hint = "; write the nesting as g/x or the interaction x:g" if node.op == "%in%" else ""
            raise FormulaError(f"term {term!r}: operator {node.op!r} is not supported inside a term{hint}")
        check_calls(node.left, term)
        check_calls(node.right, term)
    elif isinstance(node, Paren):
        check_calls(node.inner, term)
    elif isinstance(node, Raw):
        raise FormulaError(
            f"term {term!r}: Python call {node.text!r} inside an R expression; use R's functions "
            "(log, exp, sqrt, ...) inside I() and the transforms"
        )


def evaluate_term(node, env: dict[str, Any], state: dict | None, term: str) -> Any:
    """The columns of a formula term: :func:`evaluate`, with a logical or character
    result read as a factor, as R's ``model.frame`` reads it (``I(x > 3)`` gives a
    column ``I(x > 3)TRUE``).

    Examples
    --------
    >>> import numpy as np
    >>> evaluate_term(parse("I(x > 1)"), {"x": np.array([1.0, 2.0])}, {}, "I(x > 1)").categories.tolist()
    ['FALSE', 'TRUE']
    """
    value = evaluate(node, env, state, term)
    kind = _kind(value)
    if kind in ("logical", "character"):
        substate = None if state is None else state.setdefault(kind, {})
        return rtransforms.factor(np.asarray(value), True, substate, term)
    if kind == "numeric" and np.ndim(value) == 0:
        raise FormulaError(f"term {term!r}: the term is a constant (it reads no column)")
    return value


def evaluate(node, env: dict[str, Any], state: dict | None, term: str) -> Any:
    """The value of ``node`` on the columns ``env`` (name -> column): a double or
    logical array, a factor (``pandas.Categorical``) or a :class:`Matrix`.

    ``state`` holds what the stateful transforms (``poly``, ``factor``, and a
    ``scale`` that is the whole term) learnt from the fitting data; an empty dict is
    filled (the fit), a filled one is used (new data, as R's ``predict`` does through
    ``makepredictcall``); None means no state (every call learns from the data at
    hand). As in R, a ``scale()`` inside another call (``exp(scale(x))``) keeps no
    state: new data are scaled by their own mean and SD. Numeric warnings (log of a
    negative number, 0/0) are silent: the values are NaN or infinite, as in R.

    Examples
    --------
    >>> import numpy as np
    >>> evaluate(parse("log(x, 2) + x%%3"), {"x": np.array([4.0, 8.0])}, None, "t").tolist()
    [3.0, 5.0]
    """
    env = {name: as_r_value(value) for name, value in env.items()}
    with np.errstate(all="ignore"):
        return _Evaluation(env, state, term).run(node)
