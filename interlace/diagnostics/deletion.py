"""Case deletion through the fitted penalised system: downdates, not new designs.

Deleting the rows I removes their contributions from the cross-products of
[Z X y]; :func:`downdated_system` subtracts them (computed from those rows only) from
the fitted :class:`~interlace.linalg.system.PenalizedSystem`. A level left without
rows keeps a zero column of Z, whose block of Lambda'Z'Z Lambda + I is the identity:
it adds nothing to the log-determinant nor to the penalised residual sum of squares,
so the likelihood is that of the model without the level, as lme4 refits it.

On the downdated system,

- :func:`gls_without` factors at the fit's theta and sigma: the GLS estimate without
  the rows and X_(I)'V_(I)^{-1}X_(I), i.e. HLMdiag's one-step beta_(I) and vcov;
- :func:`refit_without` optimises theta again from the fitted theta, as HLMdiag's
  ``case_delete`` refits ``lmer`` on the remaining rows (but with the fit's method,
  REML or ML, where HLMdiag always refits by REML).

The system is the fit's working one (:mod:`interlace.fitting.conditioning`): a deleted fit's
beta, X'V^{-1}X and sigma^2 are on the working scale, as the influence measures read
them (they are unchanged by the map).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from ..design import RANK_TOLERANCE
from ..errors import InterlaceError, RankDeficiencyWarning
from ..fitting.gradient import deviance_functions
from ..fitting.objective import residual_dof
from ..fitting.optimize import optimize_theta
from ..kernels.crossprod import block_diagonal_crossprod, coupling_crossprod
from ..kernels.diagnostics import subtract_coupling
from ..linalg.system import PenalizedSystem, dense_crossprod, stack_terms


def _rows_of(term, rows: np.ndarray):
    return replace(
        term,
        group_codes=np.ascontiguousarray(term.group_codes[rows]),
        design=np.ascontiguousarray(term.design[rows]),
    )


def downdated_system(system: PenalizedSystem, rows: np.ndarray) -> PenalizedSystem:
    """The system of the same model without the given rows (positions in the fit).

    Only the removed rows are passed over: their cross-products are subtracted from the
    fitted ones (the leading block, its coupling and the dense rest), and the design
    keeps the other rows for the residual degrees of freedom.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> smaller = downdated_system(m._system, np.arange(5))
    >>> removed = smaller.rest_crossprod[-1, -1] - m._system.rest_crossprod[-1, -1]  # y'y less 5 rows' y'^2
    >>> smaller.design.n_obs, bool(np.isclose(removed, -np.sum(m._system.design.y[:5] ** 2)))
    (25, True)
    """
    if system.rest_layout != "dense":
        raise InterlaceError(
            "approx: exact deletion downdates the dense rest; this fit factored its rest as a "
            "sparse matrix (a design whose dense rest would not fit); use approx=True"
        )
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    design = system.design
    n = design.n_obs
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    removed_xy = np.ascontiguousarray(np.column_stack([design.X[rows], design.y[rows]]))
    removed_rest = tuple(_rows_of(t, rows) for t in system.rest_terms)
    codes, designs, design_start, index_offset, _, _ = stack_terms(removed_rest, len(rows))
    new = object.__new__(PenalizedSystem)
    new.__dict__.update(system.__dict__)
    new.rest_crossprod = system.rest_crossprod - dense_crossprod(
        codes, designs, design_start, index_offset, removed_xy, system.size
    )
    if system.lead_term is not None:
        lead = _rows_of(system.lead_term, rows)
        new.lead_crossprod = system.lead_crossprod - block_diagonal_crossprod(
            lead.group_codes, lead.design, lead.n_levels
        )
        removed = coupling_crossprod(
            lead.group_codes,
            lead.design,
            lead.n_levels,
            codes,
            designs,
            design_start,
            index_offset,
            removed_xy,
            system.size,
        )
        ptr, idx, val = system.coupling
        val = val.copy()
        missing = subtract_coupling(ptr, idx, val, *removed)
        if missing:  # pragma: no cover - the removed rows' pattern is part of the full one
            raise RuntimeError(f"downdated_system: {missing} coupling entries without a match")
        new.coupling = (ptr, idx, val)  # a new tuple: derived copies of it are rebuilt
    kept_terms = tuple(_rows_of(t, np.flatnonzero(keep)) for t in design.terms)
    new.design = replace(design, fixed=design.fixed.take(keep), terms=kept_terms)
    by_name = {t.name: t for t in kept_terms}
    new.lead_term = by_name[system.lead_term.name] if system.lead_term is not None else None
    new.rest_terms = tuple(by_name[t.name] for t in system.rest_terms)
    return new


def fixed_effects_full_rank(system: PenalizedSystem) -> bool:
    """Whether X of the system has full column rank (R's sequential test on X'X)."""
    q, p = system.n_rest_random, system.n_fixed
    gram = system.rest_crossprod[q : q + p, q : q + p]
    for j in range(p):
        norm2 = gram[j, j]
        if norm2 <= 0:
            return False
        if j:
            coefficients = np.linalg.lstsq(gram[:j, :j], gram[:j, j], rcond=None)[0]
            residual2 = norm2 - gram[:j, j] @ coefficients
        else:
            residual2 = norm2
        if residual2 <= (RANK_TOLERANCE**2) * norm2:
            return False
    return True


@dataclass(frozen=True)
class DeletedFit:
    """Fixed effects of a model fitted without some rows, on the working scale.

    Attributes
    ----------
    beta : numpy.ndarray
        The (working) fixed effects.
    xvx : numpy.ndarray
        X_(I)'V_(I)^{-1}X_(I) at the variance parameters used (the inverse of vcov).
    scale : float
        sigma^2 used (the fit's for :func:`gls_without`, re-estimated by a refit).
    theta : numpy.ndarray
        theta used.
    """

    beta: np.ndarray
    xvx: np.ndarray
    scale: float
    theta: np.ndarray


def _estimates_at(
    system: PenalizedSystem, theta: np.ndarray, scale: float | None, reml: bool
) -> DeletedFit | None:
    factor = system.factorize(theta)
    if not factor.ok:
        return None
    _, beta = system.solve(factor, theta)
    if scale is None:
        scale = factor.pwrss / residual_dof(system.design.n_obs, system.n_fixed, reml)
    Lx = factor.fixed_chol
    return DeletedFit(beta, (Lx @ Lx.T) / scale, float(scale), np.asarray(theta, dtype=np.float64))


def gls_without(result, rows: np.ndarray) -> DeletedFit | None:
    """beta and X'V^{-1}X without the rows, at the fit's theta and sigma (one step).

    None when the remaining rows do not identify the fixed effects.
    """
    system = downdated_system(result._system, rows)
    if not fixed_effects_full_rank(system):
        return None
    return _estimates_at(
        system,
        np.asarray(result.theta, dtype=np.float64),
        float(result.scale) / result._conditioning.unit**2,
        result.method == "REML",
    )


def refit_without(result, rows: np.ndarray) -> DeletedFit | None:
    """The model refitted without the rows (theta, sigma and beta re-estimated),
    starting from the fitted theta; None when the rest does not identify beta."""
    system = downdated_system(result._system, rows)
    if not fixed_effects_full_rank(system):
        return None
    reml = result.method == "REML"
    fun, with_gradient = deviance_functions(system, reml)
    record = optimize_theta(
        fun,
        np.asarray(result.theta, dtype=np.float64),
        system.design.theta_lower,
        result.fit_options.get("optimizer", "auto"),
        fun_and_grad=with_gradient,
    )
    return _estimates_at(system, record.theta, None, reml)


def warn_unidentified(descriptions: list[str]) -> None:
    """Warn that some deletions leave the fixed effects unidentified (their rows are NaN)."""
    if descriptions:
        shown = ", ".join(descriptions[:5]) + (", ..." if len(descriptions) > 5 else "")
        warnings.warn(
            f"deleting {shown} leaves a rank-deficient fixed-effects matrix; "
            "the diagnostics of those deletions are NaN",
            RankDeficiencyWarning,
            stacklevel=4,
        )


# ----- variance components (HLMdiag's varcomp.mer) ---------------------------------------------
def variance_component_table(design, theta: np.ndarray, scale: float) -> dict[str, float]:
    """sigma2 and every lower-triangle entry D<i><j> of bdiag(VarCorr) (1-based, lme4's
    term order), zeros included."""
    blocks = [scale * (T @ T.T) for T in (t.relative_cov_factor(theta) for t in design.lme4_terms)]
    size = sum(b.shape[0] for b in blocks)
    D = np.zeros((size, size))
    start = 0
    for block in blocks:
        k = block.shape[0]
        D[start : start + k, start : start + k] = block
        start += k
    table = {"sigma2": float(scale)}
    for j in range(size):
        for i in range(j, size):
            table[f"D{i + 1}{j + 1}"] = float(D[i, j])
    return table


def variance_component_names(design, theta: np.ndarray, scale: float) -> list[str]:
    """HLMdiag's ``varcomp.mer`` names: sigma2, then D11, D22, ... when bdiag(VarCorr) is
    diagonal, else its lower triangle column by column; zero components dropped."""
    table = variance_component_table(design, theta, scale)
    size = int(round((np.sqrt(8 * (len(table) - 1) + 1) - 1) / 2))
    off_diagonal = [table[f"D{i + 1}{j + 1}"] for j in range(size) for i in range(j + 1, size)]
    diagonal = all(abs(v) < 1e-10 for v in off_diagonal)
    names = ["sigma2"]
    for j in range(size):
        for i in range(j, size):
            if i == j or not diagonal:
                names.append(f"D{i + 1}{j + 1}")
    return [name for name in names if table[name] != 0.0]
