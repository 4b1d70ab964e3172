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
meet ~20 neighbours each go sparse (a dense rest would need 20 GB). Rest terms with
random slopes too (their levels' k x k blocks kept whole).

Memory
------
Before a dense matrix of the system is allocated (the whole system on the dense path,
the rest on the blocked path) its fit's peak is checked: :data:`DENSE_PEAK_ARRAYS`
dense size x size float64 arrays must fit in ``max_dense_gib`` (an option of
:func:`interlace.fit`; by default half of the machine's memory or of its container's
limit, :func:`interlace.linalg.memory.default_max_dense_gib`). A rest that cannot be dense is held sparse
whatever its share of non-zeros; its sparse factor is checked the same way
(:data:`~interlace.linalg.sparse_cholesky.BYTES_PER_ENTRY` per entry of L, counted by
the symbolic analysis before L is allocated), and a fit that fits neither way is
refused with an error naming the sizes and the limit (a random slope on a factor of
30,000 levels crossed at random with another of 50,000 makes a 60,000-row rest, 26.8
GiB per dense array, whose sparse factor fills in almost completely).

The optimiser follows the path (:func:`supports_blocked_derivatives`): a blocked
system with a dense rest whose terms are all scalar (crossed random intercepts) has
the analytic gradient and average information of :mod:`interlace.fitting.blocked_gradient`
and is optimised by Newton's method from moment estimates (:mod:`interlace.fitting.newton`,
:mod:`interlace.fitting.start`); the dense path has its own gradient (:mod:`interlace.fitting.gradient`);
random slopes on the blocked path and the sparse rest use COBYQA.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..design import ModelDesign
from ..errors import InterlaceError, SparseTooLargeError
from .memory import GIB, check_dense_size, dense_limit_bytes, format_bytes, machine_memory_bytes
from .system import LeadBlocks, PenalizedSystem, lead_blocks
from .threads import limited

Solver = Literal["auto", "dense", "sparse"]

DENSE_MAX_SIZE = 400
"""Largest q + p + 1 factored as one dense matrix by ``solver="auto"``."""


def choose_path(design: ModelDesign, solver: str = "auto", rebuilt: bool = False) -> int:
    """Number of leading terms eliminated by level: 0 (dense) or 1 (blocked).

    ``rebuilt``: the system is built anew at every iteration (PIRLS reweights it), so
    the dense system's assembly is paid each time too; then the blocked path is taken
    whenever the leading term has at least as many effects as the rest (its elimination
    by level is cheaper than any dense work on them).

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
    if rebuilt and design.terms:
        rest = size - design.terms[0].n_effects
        return 1 if design.terms[0].n_effects >= rest or size > DENSE_MAX_SIZE else 0
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


DENSE_PEAK_ARRAYS = 5
"""Dense size x size float64 arrays a fit holds at once at its peak: the cross-products,
the factor (one per evaluation, or the optimiser's buffer), the inverse behind the
gradient (or the index arrays of the vector terms' scaling) and the conditional
variances' triangular inverse after the fit. Measured with ``tracemalloc`` on a
2,003-row rest, conditional SDs included: 4.2 for crossed intercepts (Newton), 4.6 with
a random slope in the rest (COBYQA)."""

def _rest_size(design: ModelDesign) -> int:
    return sum(t.n_effects for t in design.terms[1:]) + design.n_fixed + 1


def _clique_pairs(design: ModelDesign, lead: LeadBlocks) -> float:
    """Entries (a >= b) the leading levels' downdates create in the rest, pairs of rest
    effects each level meets (its [X y] entries aside)."""
    ptr = lead.coupling[0]
    clique = np.maximum(np.diff(ptr) - (design.n_fixed + 1), 0).astype(np.float64)
    return float(np.sum(clique * (clique + 1) / 2))


def _refuse_rest(design: ModelDesign, size: int, sparse_bytes: float, max_dense_gib: float | None,
                 limit: float) -> None:
    """The error for a rest that fits the memory limit neither dense nor sparse."""
    names = ", ".join(f"{t.name} ({t.n_effects:,} effects)" for t in design.terms[1:])
    dense = DENSE_PEAK_ARRAYS * float(size) * size * 8
    default = "" if max_dense_gib is not None else (
        f" (by default half of this machine's memory, {format_bytes(machine_memory_bytes() or 0)})")
    raise InterlaceError(
        f"max_dense_gib: the rest of the blocked path (the random effects of {names}, the fixed "
        f"effects and the response) has {size:,} rows. Dense it needs about {format_bytes(dense)} "
        f"({DENSE_PEAK_ARRAYS} dense {size:,} x {size:,} arrays of {format_bytes(dense / DENSE_PEAK_ARRAYS)}); "
        f"sparse at least {format_bytes(sparse_bytes)} (its Cholesky factor fills in); both more than the "
        f"limit of max_dense_gib={limit / GIB:.3g}{default}. The levels of {design.terms[0].name} "
        f"(eliminated level by level) make too many of these effects meet: fit fewer levels, or "
        "raise max_dense_gib (an option of interlace.fit) if the machine has the memory."
    )


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
    size = _rest_size(design)
    if not rest or size <= SPARSE_REST_MIN_SIZE:
        return "dense"
    if size * size * 8 > DENSE_REST_MAX_BYTES:
        return "sparse"
    pairs = _clique_pairs(design, lead or lead_blocks(design))  # each leading level's downdate clique
    own = float(design.n_obs) * sum(t.n_columns for t in rest) ** 2 / 2  # the rest's own cross-products, at most
    return "sparse" if pairs + own < SPARSE_REST_SHARE * size * size / 2 else "dense"


def supports_blocked_derivatives(system) -> bool:
    """Whether the optimiser can use Newton's method with the average information
    (:mod:`interlace.fitting.blocked_gradient`): a blocked system with a dense rest whose terms
    are all scalar. Other systems use the dense path's gradient or COBYQA
    (:mod:`interlace.fitting.optimize`)."""
    return (
        getattr(system, "n_leading", 0) == 1
        and system.rest_layout == "dense"
        and all(t.n_columns == 1 for t in system.design.terms)
    )


def build_system(design: ModelDesign, solver: str = "auto", max_dense_gib: float | None = None,
                 crossproducts=None) -> PenalizedSystem:
    """The penalised system on the path :func:`choose_path` picks, its rest held as
    :func:`choose_rest` and downdated as :func:`choose_downdate` say (the cross-products
    built on one BLAS thread: :mod:`interlace.linalg.threads`); refused before
    allocating when its dense part exceeds ``max_dense_gib`` (see Memory above).

    ``crossproducts``: the cross-products summed over data partitions
    (:mod:`interlace.partitioned`) for a design whose rows are not in memory; the same
    rules pick the path."""
    limit = dense_limit_bytes(max_dense_gib)  # checks the argument first
    with limited(0):
        return _build_system(design, solver, max_dense_gib, limit, crossproducts)


def _build_system(design: ModelDesign, solver: str, max_dense_gib: float | None, limit: float,
                  crossproducts=None) -> PenalizedSystem:
    n_leading = choose_path(design, solver)
    if not n_leading:
        check_dense_size(design.n_random + design.n_fixed + 1, "the dense path's system (solver='dense')"
                         if solver == "dense" else "the system", max_dense_gib, arrays=DENSE_PEAK_ARRAYS,
                         why="The blocked path (solver='sparse' or 'auto') holds far less. ")
    # [X y] stacked once, for the leading term's coupling and the rest's cross-products
    xy = np.ascontiguousarray(np.column_stack([design.X, design.y])) if crossproducts is None else None
    if not n_leading:
        lead = None
    else:
        lead = lead_blocks(design, xy) if crossproducts is None else crossproducts.lead_blocks()
    if n_leading and len(design.terms) > 1:
        size = _rest_size(design)
        fits = DENSE_PEAK_ARRAYS * size * size * 8 <= limit
        if not fits or choose_rest(design, lead) == "sparse":
            from .sparse_cholesky import BYTES_PER_ENTRY
            from .sparse_rest import SparseRestSystem

            # the sparse factor holds at least the pairs the leading levels make meet
            least = _clique_pairs(design, lead) * BYTES_PER_ENTRY
            if not fits and least > limit:
                _refuse_rest(design, size, least, max_dense_gib, limit)
            try:
                return SparseRestSystem(design, lead, max_bytes=limit, crossproducts=crossproducts, xy=xy)
            except SparseTooLargeError as error:
                if fits:
                    raise  # pragma: no cover - a factor larger than the dense rest is refused by the share rule
                _refuse_rest(design, size, error.bytes_needed, max_dense_gib, limit)
    elif n_leading:
        check_dense_size(_rest_size(design), "the rest of the blocked path", max_dense_gib, arrays=DENSE_PEAK_ARRAYS)
    system = PenalizedSystem(design, n_leading, lead, crossproducts, xy)
    if system.n_leading and choose_downdate(system) == "syrk":
        system = system.with_syrk_downdate()
    return system
