"""An lme4 formula in formulaic's spelling, and formulaic's names back in R's.

lme4 reads a formula as R does; formulaic reads the code inside a call as Python
(``I(day^2)`` would be a bitwise XOR). :func:`translate` parses the formula as R
(:mod:`.rexpr`), keeps its structure (``+``, ``-``, ``*``, ``/``, ``:``, ``^``,
parentheses, ``0``/``1``; formulaic gives these R's meaning: ``(a + b)^2`` is
``a + b + a:b`` and ``x^2`` is ``x``), and writes every call as one Python call
``_r_('<the call as R deparses it>', <the columns it reads>)`` that formulaic
evaluates with the transform of :func:`interlace.formula.fixed.r_context`, so each R
term stays one formulaic term (one term for ``poly(x, 2)`` and its two columns).
``offset(...)`` terms are taken out of the formula and returned apart. Calls to
``C(...)`` and to ``np.``/``numpy.`` functions stay Python, as written.

:func:`r_names` turns formulaic's names back into R's: ``_r_('I(day^2)', day)`` is
``I(day^2)``, its multi-column ``...[1]`` is ``poly(x, 2)1``; factor columns keep
interlace's (formulaic's) ``[T.level]``.

Anything R would read differently from formulaic is a :class:`FormulaError` naming
the term: ``%in%``, ``.``, unknown functions, splines, numbers other than 0 and 1,
an operator that is not a formula operator outside ``I()``.

Examples
--------
>>> t = translate("pixel ~ day + I(day^2) + offset(log(day))")
>>> t.lhs, t.rhs, t.offsets
('pixel', "day + _r_('I(day^2)', day)", ('log(day)',))
>>> r_names("_r_('poly(x, 2)', x)[1]:g[T.b]")
'poly(x, 2)1:g[T.b]'
"""

from __future__ import annotations

import keyword
import re
from ast import literal_eval
from collections.abc import Collection
from dataclasses import dataclass

from ..errors import FormulaError
from . import rexpr
from .rexpr import Binary, Call, Logical, Name, Num, Paren, Raw, Unary

R_CALL = "_r_"
"""The name of the transform formulaic calls for every R call of a formula."""

_FORMULA_OPERATORS = {"+", "-", "*", "/", ":", "^"}
_RAW_IDENTIFIER = re.compile(r"`([^`]+)`|((?:[^\W\d]|\.)[\w.]*)(\s*\()?")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


@dataclass(frozen=True)
class Translation:
    """A formula in formulaic's spelling.

    Attributes
    ----------
    lhs : str or None
        The response (None for a right-hand side alone, such as a random term's).
    rhs : str
        The terms, ``offset()`` terms removed.
    offsets : tuple of str
        Each ``offset()``'s argument as R deparses it, in formula order.
    response_name : str or None
        The response as R names it (``log(Reaction)``).
    """

    lhs: str | None
    rhs: str
    offsets: tuple[str, ...]
    response_name: str | None

    @property
    def formula(self) -> str:
        """``lhs ~ rhs`` (or the rhs alone)."""
        return self.rhs if self.lhs is None else f"{self.lhs} ~ {self.rhs}"


def python_name(name: str) -> str:
    """A column name as formulaic reads it: backticks unless a Python identifier."""
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"`{name}`"


def _split(text: str):
    """(lhs node or None, rhs node) of ``lhs ~ rhs`` or of a right-hand side."""
    node = rexpr.parse(text)
    if isinstance(node, Binary) and node.op == "~":
        return node.left, node.right
    if isinstance(node, Unary) and node.op == "~":
        return None, node.operand
    return None, node


def _names(node, out: list[Name]) -> list[Name]:
    if isinstance(node, Name):
        out.append(node)
    elif isinstance(node, Unary):
        _names(node.operand, out)
    elif isinstance(node, Binary):
        _names(node.left, out)
        _names(node.right, out)
    elif isinstance(node, Paren):
        _names(node.inner, out)
    elif isinstance(node, Call):
        for a in node.args:
            _names(a.value, out)
    return out


def _check_constants(node, columns: Collection[str] | None) -> None:
    """Refuse an R constant (``pi``, ``T``) inside a call that is also a column's name."""
    if columns is None:
        return
    shadowed = sorted({n.name for n in _names(node, []) if not n.quoted and n.name in rexpr.CONSTANTS
                       and n.name in columns})
    if shadowed:
        raise FormulaError(
            f"term {rexpr.deparse(node)!r}: {', '.join(map(repr, shadowed))} is both a column and R's "
            "constant; write the column in backticks (`pi`) or rename it"
        )


def leaf(node, columns: Collection[str] | None) -> str:
    """One R call (or expression) as formulaic's Python: ``_r_('log(x + 1)', x)``."""
    term = rexpr.deparse(node)
    rexpr.check_calls(node, term)
    _check_constants(node, columns)
    variables = rexpr.names_read(node)
    if not variables:
        raise FormulaError(f"term {term!r}: the term is a constant (it reads no column)")
    for name in variables:
        if keyword.iskeyword(name):  # formulaic's Python code cannot name it, even in backticks
            raise FormulaError(
                f"term {term!r}: column {name!r} is named like a Python keyword, which formulaic cannot "
                "read inside a function call; rename the column"
            )
    return f"{R_CALL}({term!r}, {', '.join(python_name(v) for v in variables)})"


class _Writer:
    """The right-hand side in formulaic's spelling, offsets collected."""

    def __init__(self, text: str, columns: Collection[str] | None):
        self.text, self.columns, self.offsets = text, columns, []

    def error(self, node, what: str) -> FormulaError:
        return FormulaError(f"term {rexpr.deparse(node)!r}: {what}")

    def write(self, node) -> str | None:
        """formulaic's text of ``node``, None for an offset (taken out)."""
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Unary):
            if node.op not in ("-", "+"):
                raise self.error(node, f"operator {node.op!r} is not a formula operator; "
                                       "write arithmetic and comparisons inside I()")
            inner = self.write(node.operand)
            if inner is None:
                raise self.error(node, "offset() cannot be negated or removed")
            return f"-{inner}" if node.op == "-" else inner
        if isinstance(node, Paren):
            inner = self.write(node.inner)
            if inner is None:
                raise self.error(node, "offset() must be a term of its own")
            return f"({inner})"
        if isinstance(node, Num):
            if node.value in (0.0, 1.0):
                return str(int(node.value))
            raise self.error(node, "a number in a formula is 0 or 1 (the intercept); write "
                                   "arithmetic inside I()")
        if isinstance(node, Logical):
            raise self.error(node, "TRUE/FALSE is not a term")
        if isinstance(node, Name):
            if node.name == "." and not node.quoted:
                raise self.error(node, "'.' (every other column) is not supported; list the columns")
            return python_name(node.name)
        if isinstance(node, Raw):
            for name, _, _ in _RAW_IDENTIFIER.findall(_STRING.sub("''", node.text)):
                if keyword.iskeyword(name):  # formulaic's Python code cannot name `if`, even in backticks
                    raise self.error(node, f"column {name!r} is named like a Python keyword, which "
                                           "formulaic cannot read inside a function call; rename the column")
            return node.text
        if isinstance(node, Call):
            if node.fn == "offset":
                args = rexpr.match_arguments(node, ("object",), rexpr.deparse(node))
                rexpr.check_calls(args["object"], rexpr.deparse(node))
                self.offsets.append(rexpr.deparse(args["object"]))
                return None
            return leaf(node, self.columns)
        raise self.error(node, "is not a formula term")

    def binary(self, node: Binary) -> str | None:
        op = node.op
        if op == "%in%":
            raise self.error(node, "%in% is not supported; write the nesting as g/x or the "
                                   "interaction x:g")
        if op not in _FORMULA_OPERATORS:
            raise self.error(node, f"operator {op!r} is not a formula operator; write arithmetic "
                                   "and comparisons inside I() (I(x^2), I(x > 3))")
        if op == "^":
            power = node.right
            if not (isinstance(power, Num) and float(power.value).is_integer() and power.value >= 1):
                raise self.error(node, "the power of a formula term is a whole number (R's (a + b)^2: "
                                       "interactions up to order 2); for arithmetic write I(x^2)")
            base = self.write(node.left)
            if base is None:
                raise self.error(node, "offset() must be a term of its own")
            return f"{base}**{int(power.value)}"
        left, right = self.write(node.left), self.write(node.right)
        if op in ("+", "-"):
            if right is None:
                if op == "-":
                    raise self.error(node, "offset() cannot be removed with '-'")
                return left
            if left is None:
                return right if op == "+" else f"-{right}"
            return f"{left} {op} {right}"
        if left is None or right is None:
            raise self.error(node, "offset() must be a term of its own")
        return f"{left}{op}{right}" if op == ":" else f"{left} {op} {right}"


def translate(formula: str, columns: Collection[str] | None = None) -> Translation:
    """``response ~ terms`` (or ``terms`` alone) in formulaic's spelling.

    ``columns`` (the data's), when given, lets a column named like one of R's
    constants (``pi``, ``T``) be refused rather than silently read as the constant.

    Examples
    --------
    >>> translate("log(y) ~ poly(x, 2) + x:g").formula
    "_r_('log(y)', y) ~ _r_('poly(x, 2)', x) + x:g"
    >>> translate("1 + I(x^2)").rhs
    "1 + _r_('I(x^2)', x)"
    """
    lhs_node, rhs_node = _split(formula)
    writer = _Writer(formula, columns)
    rhs = writer.write(rhs_node)
    rhs = "1" if rhs is None else rhs
    lhs = response_name = None
    if lhs_node is not None:
        if isinstance(lhs_node, Name):
            lhs, response_name = python_name(lhs_node.name), lhs_node.name
        elif isinstance(lhs_node, Raw):
            lhs = response_name = lhs_node.text
        elif isinstance(lhs_node, Call) and lhs_node.fn == "offset":
            raise FormulaError(f"response {rexpr.deparse(lhs_node)!r}: offset() belongs on the right of '~'")
        else:
            lhs, response_name = leaf(lhs_node, columns), rexpr.deparse(lhs_node)
    return Translation(lhs, rhs, tuple(writer.offsets), response_name)


def _raw_variables(text: str, out: list[str]) -> None:
    """Identifiers a Python call reads: not calls, not namespaced names, not strings."""
    for quoted, name, call in _RAW_IDENTIFIER.findall(_STRING.sub("''", text)):
        token = quoted or name
        if call or token.startswith(rexpr.RAW_NAMESPACES) or token in ("np", "numpy", "math", "scipy"):
            continue
        if not quoted and keyword.iskeyword(token):  # Python's True, None, and, if ... else
            continue
        if token not in out:
            out.append(token)


def _formula_variables(node, out: list[str], columns: Collection[str] | None) -> None:
    if isinstance(node, Name):
        if node.name == "." and not node.quoted:
            raise FormulaError("term '.': '.' (every other column) is not supported; list the columns")
        if node.name not in out:
            out.append(node.name)
    elif isinstance(node, Raw):
        _raw_variables(node.text, out)
    elif isinstance(node, Call):
        _check_constants(node, columns)
        for name in rexpr.names_read(node):
            if name not in out:
                out.append(name)
    elif isinstance(node, Binary):
        _formula_variables(node.left, out, columns)
        _formula_variables(node.right, out, columns)
    elif isinstance(node, (Unary, Paren)):
        _formula_variables(node.operand if isinstance(node, Unary) else node.inner, out, columns)


def formula_variables(formula: str, columns: Collection[str] | None = None) -> list[str]:
    """The names a formula (or a right-hand side) reads as data columns, in order.

    Function and argument names and R's constants (``pi``, ``TRUE``) are not columns;
    with the data's ``columns``, a constant inside a call that is also a column's name
    is refused.

    Examples
    --------
    >>> formula_variables("y ~ poly(x, 2, raw = TRUE) + log(z, base = 2) + np.log(w)")
    ['y', 'x', 'z', 'w']
    """
    lhs, rhs = _split(formula)
    out: list[str] = []
    for node in (lhs, rhs):
        if node is not None:
            _formula_variables(node, out, columns)
    return out


def _literal_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def r_names(text: str) -> str:
    """formulaic's spelling of a column, term or message in R's: every
    ``_r_('<R>', ...)`` becomes ``<R>``; a multi-column term's ``[k]`` becomes ``k``.

    Examples
    --------
    >>> r_names("_r_('I(x > 3)', x)[T.TRUE]")
    'I(x > 3)[T.TRUE]'
    """
    marker = f"{R_CALL}("
    if marker not in text:
        return text
    out: list[str] = []
    i = 0
    while True:
        start = text.find(marker, i)
        if start < 0 or start + len(marker) >= len(text) or text[start + len(marker)] not in "'\"":
            out.append(text[i:] if start < 0 else text[i : start + len(marker)])
            if start < 0:
                break
            i = start + len(marker)
            continue
        out.append(text[i:start])
        literal_start = start + len(marker)
        literal_stop = _literal_end(text, literal_start)
        source = literal_eval(text[literal_start:literal_stop])
        try:
            stop = rexpr.call_end(text, start + len(R_CALL))
        except FormulaError:
            out.append(text[start:])
            break
        out.append(source)
        suffix = re.match(r"\[(\d+)\]", text[stop:])
        if suffix and source.startswith("poly("):
            out.append(suffix.group(1))
            stop += suffix.end()
        i = stop
    return "".join(out)
