"""Least-squares fits per group: HLMdiag's ``LSresids`` (level 1) and ``lmList`` (groups).

Level 1: the rows are split by the first grouping factor (lme4's order: the
innermost of a nested model), and each group gets its own ``lm(y ~ .)`` on the
columns of X without the intercept column and without the columns that are constant
within the group (``lm`` adds its own intercept). Residuals, fitted values, hat values
(``lm.influence``), ``rstandard`` and the semi-standardised e / sqrt(1 - h) come from
those fits; +-Inf becomes NaN (R's NA), and groups of different ranks raise a
:class:`~interlace.errors.RankDeficiencyWarning`, as HLMdiag warns.

Group level: ``lmList(y ~ fixed | g)`` fits the whole X per level; the LS "random
effects" are each coefficient minus its mean over the levels (lme4's ``ranef`` of an
``lmList``), divided by their standard deviation when standardised. For an inner
factor of a nested model the levels are compared within each level of the factor they
are nested in, as HLMdiag does. Aliased coefficients are NaN, as R's NA.

Column dropping follows R's ``lm``: a column is aliased when its norm after projection
on the columns kept before it falls below :data:`LM_TOLERANCE` times its own norm
(LINPACK ``dqrdc2``'s limited pivoting), its norm once centred after an intercept (so
that a predictor shifted far from 0 is not aliased, as in the fit's own rank test in
:mod:`interlace.design`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..design import CONSTANT_TOLERANCE
from ..errors import RankDeficiencyWarning
from .levels import enclosing_term, rows_by_level

LM_TOLERANCE = 1e-7
"""``lm``'s ``qr`` tolerance: the relative norm below which a column is aliased."""

EPSILON = float(np.finfo(np.float64).eps)

ROUNDING_NOISE = 100.0 * EPSILON
"""Residuals below this fraction of max|y| of their group are rounding noise of an exact
fit and are set to 0 (so that ``rstandard`` of an exact fit is 0/0 = NaN, not the ratio
of two rounding errors)."""


@dataclass(frozen=True)
class LinearFit:
    """One ``lm`` fit: coefficients (NaN where aliased), fitted values, residuals, hat
    values (``lm.influence``, 1 where within 10 eps of 1) and the rank."""

    coefficients: np.ndarray
    fitted: np.ndarray
    residuals: np.ndarray
    hat: np.ndarray
    rank: int

    @property
    def df_residual(self) -> int:
        """n - rank."""
        return len(self.residuals) - self.rank

    def standardized_residuals(self) -> np.ndarray:
        """R's ``rstandard``: e / (s sqrt(1 - h)), s^2 = RSS / df; Inf -> NaN."""
        e = self.residuals.copy()
        median = np.median(np.abs(e)) if len(e) else 0.0
        e[np.abs(e) < 100.0 * EPSILON * median] = 0.0  # lm.influence's zeroing
        with np.errstate(divide="ignore", invalid="ignore"):
            sd = (
                np.sqrt(np.sum(self.residuals**2) / self.df_residual)
                if self.df_residual
                else np.nan
            )
            out = e / (sd * np.sqrt(1.0 - self.hat))
        out[np.isinf(out)] = np.nan
        return out

    def semi_standardized_residuals(self) -> np.ndarray:
        """e / sqrt(1 - h) (HLMdiag's semi-standardised LS residual); Inf -> NaN."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.residuals / np.sqrt(1.0 - self.hat)
        out[np.isinf(out)] = np.nan
        return out


def lm_fit(X: np.ndarray, y: np.ndarray) -> LinearFit:
    """Least squares as R's ``lm.fit``, aliased columns dropped in order.

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]])
    >>> fit = lm_fit(X, np.array([1.0, 3.0, 2.0, 5.0]))
    >>> fit.rank, np.isnan(fit.coefficients).tolist()
    (2, [False, False, True])
    """
    n, p = X.shape
    kept: list[int] = []
    basis = np.zeros((n, 0))
    intercept = False  # a constant column kept: later columns are compared centred
    for j in range(p):
        if len(kept) >= n:
            break
        column = X[:, j]
        norm = float(np.linalg.norm(column))
        reference = norm if norm > 0 else 1.0
        if intercept:  # free of shifts, as the fit's rank test (x + 1e8 sd(x) is x)
            centred = float(np.linalg.norm(column - column.mean()))
            if not centred > CONSTANT_TOLERANCE * norm:
                continue  # constant to rounding: aliased with the intercept
            reference = centred
        residual = column - basis @ (basis.T @ column)
        residual = residual - basis @ (basis.T @ residual)
        residual_norm = float(np.linalg.norm(residual))
        if residual_norm >= LM_TOLERANCE * reference:
            kept.append(j)
            basis = np.column_stack([basis, residual / residual_norm])
            intercept = intercept or bool(n > 1 and column[0] != 0 and np.all(column == column[0]))
    coefficients = np.full(p, np.nan)
    if kept:
        Q, R = np.linalg.qr(X[:, kept])
        coefficients[kept] = np.linalg.solve(R, Q.T @ y)
        fitted = X[:, kept] @ coefficients[kept]
        hat = np.sum(Q * Q, axis=1)
    else:
        fitted = np.zeros(n)
        hat = np.zeros(n)
    hat = np.where(hat > 1.0 - 10.0 * EPSILON, 1.0, hat)
    residuals = y - fitted
    # an exact fit leaves rounding noise, not residuals: make it exactly zero
    residuals[np.abs(residuals) <= ROUNDING_NOISE * np.max(np.abs(y), initial=0.0)] = 0.0
    return LinearFit(coefficients, fitted, residuals, hat, len(kept))


def _without_intercept(result) -> tuple[np.ndarray, np.ndarray]:
    """X without its intercept column, and y (the caller's)."""
    design = result._conditioning.design
    X = design.X
    if design.fixed_names and design.fixed_names[0] == "Intercept":
        X = X[:, 1:]
    return X, design.y


def observation_least_squares(result) -> tuple[list[np.ndarray], list[LinearFit]]:
    """Per level of the first grouping factor, its rows and its ``lm`` fit."""
    term = result._conditioning.design.lme4_terms[0]
    X, y = _without_intercept(result)
    groups = rows_by_level(term)
    fits: list[LinearFit] = []
    used_groups: list[np.ndarray] = []
    for rows in groups:
        if not len(rows):
            continue
        block = X[rows]
        varying = ~np.all(block == block[:1], axis=0)
        design = np.column_stack([np.ones(len(rows)), block[:, varying]])
        fits.append(lm_fit(design, y[rows]))
        used_groups.append(rows)
    ranks = np.array([f.rank for f in fits])
    if len(ranks) and np.any(ranks != ranks.max()):
        warnings.warn(
            f"LS residuals might be inaccurate: {int(np.sum(ranks != ranks.max()))} of {len(ranks)} "
            f"groups of {term.name!r} are rank deficient (rank below {int(ranks.max())}); "
            "use include_ls=False to get the EB residuals only",
            RankDeficiencyWarning,
            stacklevel=6,
        )
    return used_groups, fits


def observation_ls_columns(result, standardize) -> tuple[np.ndarray, np.ndarray]:
    """The level-1 LS residual column (raw, ``rstandard`` or semi) and the fitted values."""
    n = result.nobs
    resid = np.full(n, np.nan)
    fitted = np.full(n, np.nan)
    groups, fits = observation_least_squares(result)
    for rows, fit in zip(groups, fits, strict=True):
        fitted[rows] = fit.fitted
        if standardize is True:
            resid[rows] = fit.standardized_residuals()
        elif standardize == "semi":
            resid[rows] = fit.semi_standardized_residuals()
        else:
            resid[rows] = fit.residuals
    return resid, fitted


def group_coefficients(result, term) -> np.ndarray:
    """``coef(lmList(y ~ fixed | g))``: one row per level of ``term`` (NaN where aliased)."""
    design = result._conditioning.design
    X, y = design.X, design.y
    out = np.full((term.n_levels, X.shape[1]), np.nan)
    for level, rows in enumerate(rows_by_level(term)):
        if len(rows):
            out[level] = lm_fit(X[rows], y[rows]).coefficients
    return out


def _centre(values: np.ndarray, standardize: bool) -> np.ndarray:
    """Each column minus its mean (NaN ignored); over its SD too when standardising."""
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        column = values[:, j]
        present = column[~np.isnan(column)]
        if not len(present):
            continue
        centred = column - present.mean()
        if standardize:
            sd = float(np.std(present, ddof=1)) if len(present) > 1 else np.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                centred = centred / sd
        out[:, j] = centred
    return out


def group_ls_effects(
    result, term, standardize: bool, coefficients: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """The LS random effects of ``term``'s columns that have a fixed effect: their names
    and an (n_levels, k') array (lme4's ``ranef`` of the ``lmList``); ``coefficients``
    are :func:`group_coefficients` when already computed."""
    names = list(result._conditioning.design.fixed_names)
    wanted = [(c, names.index(c)) for c in term.column_names if c in names]
    missing = [c for c in term.column_names if c not in names]
    if missing:
        warnings.warn(
            f"level {term.name!r}: the random effect(s) {', '.join(missing)} have no fixed effect, "
            "so their LS group-level residuals cannot be calculated",
            UserWarning,
            stacklevel=5,
        )
    if coefficients is None:
        coefficients = group_coefficients(result, term)
    coefficients = coefficients[:, [j for _, j in wanted]]
    enclosing = enclosing_term(result, term)
    if enclosing is None:
        effects = _centre(coefficients, standardize)
    else:
        effects = np.full(coefficients.shape, np.nan)
        outer_of_level = np.zeros(term.n_levels, dtype=np.int64)
        outer_of_level[term.group_codes] = enclosing.group_codes
        for outer in range(enclosing.n_levels):
            inner = np.flatnonzero(outer_of_level == outer)
            if len(inner):
                effects[inner] = _centre(coefficients[inner], standardize)
    return [c for c, _ in wanted], effects
