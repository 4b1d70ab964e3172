"""The one place that decides how the system is factored: dense or blocked.

Rule
----
``solver="auto"`` takes the **dense** path (the whole [Z X y] system in one dense
Cholesky) when the system has at most :data:`DENSE_MAX_SIZE` rows (q + p + 1);
there one LAPACK call beats the per-level bookkeeping. Otherwise the **sparse** (blocked)
path eliminates the term with the most random effects level by level (its block
is block-diagonal, so this costs O(levels) and creates fill-in only where its
levels meet the other terms) and factors the rest densely. ``solver="dense"`` or ``"sparse"`` (the blocked path) forces either;
both give the same estimates.
"""

from __future__ import annotations

from typing import Literal

from ..design import ModelDesign
from ..errors import InterlaceError
from .system import PenalizedSystem

Solver = Literal["auto", "dense", "sparse"]

DENSE_MAX_SIZE = 400
"""Largest q + p + 1 factored as one dense matrix by ``solver="auto"``."""


def choose_path(design: ModelDesign, solver: str = "auto") -> int:
    """Number of leading terms eliminated by level: 0 (dense) or 1 (blocked).

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("y ~ 1 + service + (1 | s) + (1 | d)"),
    ...                  interlace.load_dataset("InstEval"))
    >>> choose_path(d), choose_path(d, "dense")
    (1, 0)
    """
    if solver not in ("auto", "dense", "sparse"):
        raise InterlaceError(f"solver: expected 'auto', 'dense' or 'sparse', found {solver!r}")
    if solver == "dense":
        return 0
    if solver == "sparse":
        return 1
    size = design.n_random + design.n_fixed + 1
    return 0 if size <= DENSE_MAX_SIZE else 1


def build_system(design: ModelDesign, solver: str = "auto") -> PenalizedSystem:
    """The penalised system on the path :func:`choose_path` picks."""
    return PenalizedSystem(design, choose_path(design, solver))
