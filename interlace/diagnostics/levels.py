"""The ``level`` argument of the diagnostics, and the grouping structure they read.

``level=1`` means the observations; otherwise ``level`` names a grouping factor as
lme4 writes it in ``flist`` (``"Subject"``, ``"cask:batch"``), i.e. a key of the
result's ``random_effects``. Terms are listed in lme4's order, innermost first for a
nested model (HLMdiag's "first grouping factor" is the first of them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..design import RandomTerm
from ..errors import InterlaceError

OBSERVATIONS = 1
"""The value of ``level`` that selects the observations (HLMdiag's ``level = 1``)."""


def factor_names(result) -> list[str]:
    """The grouping factors' names in lme4's order (the keys of ``random_effects``)."""
    return [t.name for t in result._system.design.lme4_terms]


def resolve_level(result, level: Any) -> RandomTerm | None:
    """None for ``level=1``, else the random term of the named grouping factor.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("strength ~ 1 + (1 | batch/cask)", interlace.load_dataset("Pastes"))
    >>> resolve_level(m, 1) is None, resolve_level(m, "cask:batch").n_levels
    (True, 30)
    """
    names = factor_names(result)
    if (
        isinstance(level, (int, np.integer))
        and not isinstance(level, bool)
        and level == OBSERVATIONS
    ):
        return None
    if isinstance(level, str):
        for term in result._system.design.lme4_terms:
            if term.name == level:
                return term
    raise InterlaceError(
        f"level: expected 1 (the observations) or the name of a grouping factor "
        f"({', '.join(map(repr, names))}), found {level!r}"
    )


def is_nested_in(inner: RandomTerm, outer: RandomTerm) -> bool:
    """lme4's ``isNested``: every level of ``inner`` occurs with one level of ``outer``."""
    pairs = np.unique(np.column_stack([inner.group_codes, outer.group_codes]), axis=0)
    return len(pairs) == len(np.unique(inner.group_codes))


def is_nested_model(result) -> bool:
    """HLMdiag's ``isNestedModel``: each factor is nested in the next one (lme4's order)."""
    terms = result._system.design.lme4_terms
    return all(is_nested_in(terms[i - 1], terms[i]) for i in range(1, len(terms)))


def enclosing_term(result, term: RandomTerm) -> RandomTerm | None:
    """For a nested model, the factor ``term`` is nested in (the next in lme4's order);
    None for the outermost factor or a model that is not nested."""
    terms = result._system.design.lme4_terms
    position = [t.name for t in terms].index(term.name)
    if position + 1 >= len(terms) or not is_nested_model(result):
        return None
    return terms[position + 1]


def rows_by_level(term: RandomTerm) -> list[np.ndarray]:
    """For each level of ``term`` (level order), the positions of its rows."""
    order = np.argsort(term.group_codes, kind="stable")
    bounds = np.searchsorted(term.group_codes[order], np.arange(term.n_levels + 1))
    return [order[bounds[l] : bounds[l + 1]] for l in range(term.n_levels)]
