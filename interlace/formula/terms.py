"""The fixed-effect terms of a fitted formula: which columns of X belong to which
term, which variables are numeric, and the over-parameterised design of each term
(every level of every factor), as lmerTest's type III contrasts need them.

Only this module and :mod:`.fixed` import formulaic. Labels and columns are named as
in the model (R's names for R's transforms: ``poly(x, 2)`` is one term of two
columns, ``poly(x, 2)1`` and ``poly(x, 2)2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.parser.types import Factor

from ..errors import FormulaError
from .fixed import r_context
from .rformula import r_names


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part (``recipe``, ``temp``, ``recipe:temp``).

    Attributes
    ----------
    label : str
        The term as R writes it (``recipe:temp``, ``poly(x, 2)``).
    variables : tuple of str
        Its factors' expressions, as formulaic evaluates them.
    numeric : frozenset of str
        The variables among them that are numeric (not categorical).
    columns : tuple of str
        Its columns in the model's X.
    """

    label: str
    variables: tuple[str, ...]
    numeric: frozenset[str]
    columns: tuple[str, ...]

    @property
    def order(self) -> int:
        """Number of variables in the term (1 for main effects)."""
        return len(self.variables)

    def contained_in(self, other: FixedTerm) -> bool:
        """lmerTest's ``relatives``: other has all of this term's variables and the same
        numeric variables."""
        return (other is not self and set(self.variables) <= set(other.variables)
                and self.numeric == other.numeric)


def fixed_terms(model_spec: Any) -> list[FixedTerm]:
    """The non-intercept terms of a fixed-effects ModelSpec (or of the columns built
    without formulaic), in formula order."""
    if hasattr(model_spec, "term_columns"):
        factors = set(getattr(model_spec, "levels", {}))
        return [FixedTerm(":".join(variables), variables, frozenset(v for v in variables if v not in factors),
                          columns) for variables, columns in model_spec.term_columns()]
    kinds = model_spec.encoder_state
    out: list[FixedTerm] = []
    for structure in model_spec.structure:
        factors = [f for f in structure.term.factors if f.eval_method != Factor.EvalMethod.LITERAL]
        if not factors:
            continue
        variables = tuple(str(f.expr) for f in factors)
        numeric = frozenset(v for v in variables if kinds.get(v, ("numerical",))[0].value == "numerical")
        out.append(FixedTerm(r_names(str(structure.term)), variables, numeric,
                             tuple(r_names(str(c)) for c in structure.columns)))
    return out


def full_term_design(term: FixedTerm, table: pd.DataFrame) -> np.ndarray:
    """The term with every level of each categorical variable (R's ``~ 0 + term``)."""
    block = np.ones((len(table), 1))
    for variable in term.variables:
        try:
            part = model_matrix(f"0 + {variable}", table, ensure_full_rank=False, na_action="ignore",
                                context=r_context())
        except Exception as exc:  # formulaic raises several types for a bad expression
            raise FormulaError(f"term {term.label!r}: cannot evaluate {variable!r}: {exc}") from exc
        values = np.asarray(part, dtype=np.float64)
        block = (block[:, :, None] * values[:, None, :]).reshape(len(table), -1)
    return block
