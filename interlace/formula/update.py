"""lme4's (R's) ``update`` of a formula with dot notation.

``.`` on the left stands for the old response (``log(.) ~ .``); on the right for
the old terms, random terms included; ``+ t`` adds a term, ``- t`` removes one
written the same way (or, for a fixed term that is not listed, leaves the removal
to the formula, as ``y ~ a*b - a:b``).
"""

from __future__ import annotations

import re

from ..errors import FormulaError
from .random import _split_top_level

_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


def _signed_terms(rhs: str) -> list[tuple[str, str]]:
    """Top-level terms of a right-hand side with their signs."""
    out: list[tuple[str, str]] = []
    for i, chunk in enumerate(_split_top_level(rhs, "+")):
        pieces = _split_top_level(chunk, "-")
        for j, piece in enumerate(pieces):
            text = " ".join(piece.split())
            if not text:
                if j == 0 and i == 0:
                    continue
                if j == 0:
                    raise FormulaError(f"formula right-hand side {rhs!r}: empty term")
                continue
            out.append(("-" if j > 0 else "+", text))
    return out


def _normal(term: str) -> str:
    return re.sub(r"\s+", "", term)


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with ``.`` standing for the parts of ``old``.

    Examples
    --------
    >>> update_formula("y ~ x + (1 | g)", ". ~ . + z")
    'y ~ x + (1 | g) + z'
    >>> update_formula("y ~ x + z + (1 | g)", "log(.) ~ . - z")
    'log(y) ~ x + (1 | g)'
    """
    try:
        old_lhs, old_rhs = (s.strip() for s in old.split("~", 1))
    except ValueError as exc:
        raise FormulaError(f"formula {old!r}: expected 'response ~ terms'") from exc
    if "~" not in new:
        raise FormulaError(f"formula {new!r}: expected 'response ~ terms' (use '. ~ . + x')")
    new_lhs, new_rhs = (s.strip() for s in new.split("~", 1))
    lhs = _DOT.sub(lambda _: old_lhs, new_lhs) if new_lhs else old_lhs
    terms: list[tuple[str, str]] = []
    for sign, term in _signed_terms(new_rhs):
        if term == ".":
            terms.extend(_signed_terms(old_rhs))
            continue
        present = [k for k, (s, t) in enumerate(terms) if s == "+" and _normal(t) == _normal(term)]
        if sign == "+":
            if not present:
                terms.append(("+", term))
        elif present:
            for k in reversed(present):
                del terms[k]
        elif "|" in term:
            raise FormulaError(f"formula {new!r}: cannot remove {term!r}: it is not a term of {old!r}")
        else:
            terms.append(("-", term))
    if not terms:
        raise FormulaError(f"formula {new!r}: no terms left")
    rhs = " ".join(f"{s} {t}" for s, t in terms)
    rhs = rhs[2:] if rhs.startswith("+ ") else rhs
    return f"{lhs} ~ {rhs}"
