"""The one place that decides how the system is factored (dense or blocked, the rest
dense or sparse, the downdate by scatter or syrk) and so which optimiser runs.

Rule
----
``solver="auto"`` takes the **dense** path (the whole [Z X y] system in one dense
Cholesky) when the system has at most :data:`DENSE_MAX_SIZE` rows (q + p + 1);
there one LAPACK call beats the per-level bookkeeping. Otherwise the **sparse** (blocked)
path eliminates the term with the most random effects level by level (its block
is block-diagonal, so this costs O(levels) and creates fill-in only where its
levels meet the other terms) and factors the rest. ``solver="dense"`` or
``"sparse"`` (the blocked path) forces either; both give the same estimates.

On the blocked path with scalar terms, the rest is downdated by the leading
term's levels either by a **scatter** (each level adds the outer product of its
sparse coupling, sum_l nnz_l^2 / 2 updates) or by one BLAS **syrk** on the coupling
as a dense n_levels x size matrix (n_levels size^2 / 2 multiply-adds, at BLAS speed).
The syrk is chosen when the scatter's updates exceed :data:`SYRK_SHARE` of the
syrk's work, the levels meeting a large share of the rest (1e6 rows on 5,000 x 1,000
levels: each level meets ~180 of the 1,000), and the dense coupling fits in
:data:`DENSE_COUPLING_MAX_BYTES`. Both give the same factor.

The rest itself is factored **densely** (LAPACK) unless it is large and sparse: with
more than :data:`SPARSE_REST_MIN_SIZE` rows, and the entries the data and the
leading levels can create (sum_l nnz_l^2 / 2 plus the rest's own cross-products)
fewer than :data:`SPARSE_REST_SHARE` of its triangle, or whenever the dense rest
would exceed :data:`DENSE_REST_MAX_BYTES`, it is factored by the sparse Cholesky of
:mod:`interlace.linalg.sparse_rest` (fill-reducing ordering and symbolic factor once,
numeric refactorisation per theta). InstEval's rest (1,145 rows, the instructors
meeting through students nearly all pairs) stays dense; 50,000 x 50,000 levels that
meet ~20 neighbours each go sparse (a dense rest would need 20 GB). Scalar rest
terms only.

The optimiser follows the path (:func:`supports_blocked_derivatives`): a blocked
system with a dense rest whose terms are all scalar (crossed random intercepts) has
the analytic gradient and average information of :mod:`interlace.blocked_gradient`
and is optimised by Newton's method from moment estimates (:mod:`interlace.newton`,
:mod:`interlace.start`); the dense path has its own gradient (:mod:`interlace.gradient`);
random slopes on the blocked path and the sparse rest use COBYQA.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..design import ModelDesign
from ..errors import InterlaceError
from .system import LeadBlocks, PenalizedSystem, lead_blocks

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


SYRK_SHARE = 0.015
"""Scatter updates per syrk multiply-add above which the syrk downdate is faster
(measured: a scattered update costs ~70 times a multiply-add inside ``dsyrk``)."""

DENSE_COUPLING_MAX_BYTES = 2**28
"""Largest dense coupling matrix (n_levels x size, float64) the syrk downdate builds."""


def choose_downdate(system: PenalizedSystem) -> str:
    """``"scatter"`` or ``"syrk"``: how a blocked system downdates its rest.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("y ~ 1 + service + (1 | s) + (1 | d)"),
    ...                  interlace.load_dataset("InstEval"))
    >>> choose_downdate(PenalizedSystem(d, 1))
    'scatter'
    """
    if system.lead_term is None or system.lead_term.n_columns != 1 or not all(system._block_k == 1):
        return "scatter"
    counts = np.diff(system.coupling[0]).astype(np.float64)
    n_levels = counts.size
    scatter = float(np.sum(counts * (counts + 1) / 2))
    syrk = n_levels * system.size**2 / 2
    fits = n_levels * system.size * 8 <= DENSE_COUPLING_MAX_BYTES
    return "syrk" if fits and scatter > SYRK_SHARE * syrk else "scatter"


SPARSE_REST_MIN_SIZE = 4000
"""Smallest rest (q_rest + p + 1 rows) that may be factored as a sparse matrix."""

SPARSE_REST_SHARE = 0.05
"""Largest share of the rest's triangle the downdate may fill for the sparse rest."""

DENSE_REST_MAX_BYTES = 4 * 2**30
"""Largest dense rest (float64) ever built; larger ones are factored sparse."""


def choose_rest(design: ModelDesign, lead: LeadBlocks | None = None) -> str:
    """``"dense"`` or ``"sparse"``: how the blocked path holds and factors its rest
    (``lead``: the leading term's blocks when already built; their coupling lists the
    rest effects each leading level meets).

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("y ~ 1 + service + (1 | s) + (1 | d)"),
    ...                  interlace.load_dataset("InstEval"))
    >>> choose_rest(d)
    'dense'
    """
    rest = design.terms[1:]
    size = sum(t.n_effects for t in rest) + design.n_fixed + 1
    if not rest or any(t.n_columns != 1 for t in rest) or size <= SPARSE_REST_MIN_SIZE:
        return "dense"
    if size * size * 8 > DENSE_REST_MAX_BYTES:
        return "sparse"
    ptr = (lead or lead_blocks(design)).coupling[0]
    # rest effects each leading level meets (its [X y] entries aside): its downdate's clique
    clique = np.maximum(np.diff(ptr) - (design.n_fixed + 1), 0).astype(np.float64)
    pairs = float(np.sum(clique * (clique + 1) / 2))
    own = float(design.n_obs) * len(rest) ** 2 / 2  # the rest's own cross-products, at most
    return "sparse" if pairs + own < SPARSE_REST_SHARE * size * size / 2 else "dense"


def supports_blocked_derivatives(system) -> bool:
    """Whether the optimiser can use Newton's method with the average information
    (:mod:`interlace.blocked_gradient`): a blocked system with a dense rest whose terms
    are all scalar. Other systems use the dense path's gradient or COBYQA
    (:mod:`interlace.optimize`)."""
    return (
        getattr(system, "n_leading", 0) == 1
        and system.rest_layout == "dense"
        and all(t.n_columns == 1 for t in system.design.terms)
    )


def build_system(design: ModelDesign, solver: str = "auto") -> PenalizedSystem:
    """The penalised system on the path :func:`choose_path` picks, its rest held as
    :func:`choose_rest` and downdated as :func:`choose_downdate` say."""
    n_leading = choose_path(design, solver)
    lead = lead_blocks(design) if n_leading else None
    if n_leading and choose_rest(design, lead) == "sparse":
        from .sparse_rest import SparseRestSystem

        return SparseRestSystem(design, lead)
    system = PenalizedSystem(design, n_leading, lead)
    if system.n_leading and choose_downdate(system) == "syrk":
        system = system.with_syrk_downdate()
    return system
