"""lme4's random-effects syntax: split a formula into its fixed part and random terms.

Supported: ``(1 | g)``, ``(x | g)`` (intercept and slope, correlated), ``(0 + x | g)``,
``(x || g)`` (uncorrelated: one term per formula term), ``(1 | a/b)`` (nested:
``(1 | a) + (1 | b:a)``, named as lme4 names them) and ``(1 | a:b)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

_NAME = re.compile(r"^(`[^`]+`|(?:[^\W\d]|\.)[\w.]*)$")
_BLANKS_OUTSIDE_BACKTICKS = re.compile(r"\s+(?=(?:[^`]*`[^`]*`)*[^`]*$)")


@dataclass(frozen=True)
class RandomTermSpec:
    """One random-effects term as lme4 reads it.

    Attributes
    ----------
    expr : str
        The left-hand side of the bar, a formula right-hand side (``"1 + Days"``).
    factors : tuple of str
        The grouping column names; several for an interaction grouping ``a:b``.
    source : str
        The term as the user wrote it, for error messages.

    Examples
    --------
    >>> split_formula("y ~ x + (x | g)")[1]
    [RandomTermSpec(expr='1 + x', factors=('g',), source='(x | g)')]
    """

    expr: str
    factors: tuple[str, ...]
    source: str

    @property
    def group_name(self) -> str:
        """The grouping factor's name as lme4 writes it (``"cask:batch"``)."""
        return ":".join(self.factors)


def _split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _check_parentheses(text: str, formula: str) -> None:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise FormulaError(f"formula {formula!r}: unbalanced ')' ")
    if depth:
        raise FormulaError(f"formula {formula!r}: unbalanced '(' (a '(' is never closed)")


_SYNTACTIC = re.compile(r"^(?:[^\W\d]|\.(?!\d))[\w.]*$")


def quote_name(name: str) -> str:
    """A column name as a formula writes it: in backticks unless it is a plain name.

    Examples
    --------
    >>> quote_name("Subject"), quote_name("my subject")
    ('Subject', '`my subject`')
    """
    return name if _SYNTACTIC.match(name) else f"`{name}`"


def _split_outside_backticks(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` where it is not inside a backtick-quoted name."""
    return re.split(rf"{re.escape(sep)}(?=(?:[^`]*`[^`]*`)*[^`]*$)", text)


def _factor_names(group: str, source: str) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``a/b`` -> [(a,), (b, a)], ``a:b`` -> [(a, b)]."""
    group = group.strip()
    if not group:
        raise FormulaError(f"random term {source!r}: nothing after '|' (expected a grouping column)")
    nested = [g.strip() for g in _split_outside_backticks(group, "/")]
    out: list[tuple[str, ...]] = []
    for depth in range(len(nested)):
        names: list[str] = []
        for part in reversed(nested[: depth + 1]):
            for name in _split_outside_backticks(part, ":"):
                name = name.strip()
                if not _NAME.match(name):
                    raise FormulaError(
                        f"random term {source!r}: grouping {name!r} is not a column name "
                        "(expected g, a/b or a:b)"
                    )
                names.append(name.strip("`"))
        out.append(tuple(names))
    return out


def _expr_terms(expr: str) -> tuple[bool, list[str]]:
    """(has_intercept, the other formula terms) of a bar's left-hand side."""
    intercept = True
    others: list[str] = []
    for chunk in _split_top_level(_BLANKS_OUTSIDE_BACKTICKS.sub("", expr), "+"):
        minus = _split_top_level(chunk, "-")
        head, removed = minus[0], minus[1:]
        if head in ("1",):
            intercept = True
        elif head in ("0",):
            intercept = False
        elif head:
            others.append(head)
        for r in removed:
            if r in ("1", "0"):
                intercept = False
            elif r:
                raise FormulaError(f"random term lhs {expr!r}: only '-1' may be removed")
    return intercept, others


def parse_random_term(text: str) -> list[RandomTermSpec]:
    """Parse one parenthesised random term into lme4's expanded terms.

    Examples
    --------
    >>> [t.group_name for t in parse_random_term("(1 | batch/cask)")]
    ['batch', 'cask:batch']
    >>> [t.expr for t in parse_random_term("(Days || Subject)")]
    ['1', '0 + Days']
    """
    source = text.strip()
    inner = source
    if not (inner.startswith("(") and inner.endswith(")")):
        raise FormulaError(f"random term {source!r}: expected '(expr | group)'")
    inner = inner[1:-1]
    double = _split_top_level(inner, "||")
    if len(double) == 2:
        lhs, group, correlated = double[0], double[1], False
    else:
        single = _split_top_level(inner, "|")
        if len(single) != 2:
            raise FormulaError(
                f"random term {source!r}: expected exactly one '|' or '||' "
                f"(found {len(single) - 1})"
            )
        lhs, group, correlated = single[0], single[1], True
    lhs = lhs.strip()
    if not lhs:
        raise FormulaError(f"random term {source!r}: nothing before '|' (expected 1, x, 0 + x, ...)")
    intercept, others = _expr_terms(lhs)
    if not intercept and not others:
        raise FormulaError(f"random term {source!r}: the term has no columns")
    if correlated:
        exprs = [" + ".join((["1"] if intercept else ["0"]) + others)]
    else:
        exprs = (["1"] if intercept else []) + [f"0 + {o}" for o in others]
    return [
        RandomTermSpec(expr=e, factors=factors, source=source)
        for factors in _factor_names(group, source)
        for e in exprs
    ]


def split_formula(formula: str) -> tuple[str, list[RandomTermSpec]]:
    """Split an lme4 formula into the fixed-effects formula and its random terms.

    Examples
    --------
    >>> fixed, terms = split_formula("Reaction ~ Days + (Days | Subject)")
    >>> fixed
    'Reaction ~ Days'
    >>> [(t.expr, t.group_name) for t in terms]
    [('1 + Days', 'Subject')]
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula: expected a string, found {type(formula).__name__}")
    _check_parentheses(formula, formula)
    sides = _split_top_level(formula, "~")
    if len(sides) != 2 or not sides[0].strip():
        raise FormulaError(
            f"formula {formula!r}: expected 'response ~ terms' with one '~'"
        )
    lhs, rhs = sides[0].strip(), sides[1]
    fixed_parts: list[str] = []
    terms: list[RandomTermSpec] = []
    for index, chunk in enumerate(_split_top_level(rhs, "+")):
        pieces = _split_top_level(chunk, "-")
        for j, piece in enumerate(pieces):
            stripped = piece.strip()
            is_random = (
                stripped.startswith("(")
                and stripped.endswith(")")
                and len(_split_top_level(stripped[1:-1], "|")) > 1
            )
            if is_random:
                if j > 0:
                    raise FormulaError(f"formula {formula!r}: a random term cannot be subtracted")
                terms.extend(parse_random_term(stripped))
            elif "|" in stripped:
                raise FormulaError(
                    f"formula {formula!r}: term {stripped!r} has '|' outside parentheses "
                    "(write random terms as '(expr | group)')"
                )
            elif stripped or j > 0 or index > 0:
                fixed_parts.append(("- " if j > 0 else "+ ") + stripped)
    fixed = " ".join(p for p in fixed_parts if p.strip() not in ("+", "-")).strip()
    if fixed.startswith("+ "):
        fixed = fixed[2:]
    if not fixed:
        fixed = "1"
    elif fixed.startswith("- "):
        fixed = "1 " + fixed
    return f"{lhs} ~ {fixed}", terms
