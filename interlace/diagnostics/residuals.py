"""HLMdiag's ``hlm_resid``: observation-level and group-level residuals.

Observation level (``level=1``), columns in HLMdiag's order:

- ``standardize=False``: ``.resid`` (conditional, y - X beta - Z b), ``.fitted``,
  ``.ls.resid``, ``.ls.fitted`` (per-group least squares, see
  :mod:`~interlace.diagnostics.least_squares`), ``.mar.resid`` (y - X beta),
  ``.mar.fitted`` (X beta);
- ``standardize=True``: ``.std.resid`` (resid / sigma), ``.fitted``, ``.std.ls.resid``
  (``rstandard`` of each group's ``lm``), ``.ls.fitted``, ``.chol.mar.resid``
  (L^{-1}(y - X beta), L the lower Cholesky factor of V), ``.mar.fitted``;
- ``standardize="semi"``: as ``False`` with ``.semi.ls.resid`` = e / sqrt(1 - h).

Group level (``level`` a grouping factor): per level, ``.ranef.<name>`` (the BLUPs) or
``.std.ranef.<name>`` (BLUP / conditional SD), and ``.ls.<name>`` / ``.std.ls.<name>``
(the ``lmList`` effects), names snake-cased as janitor's ``clean_names``
(``(Intercept)`` -> ``intercept``).

The Cholesky marginal residuals need L, which is dense over every set of rows that
the random effects link together: for a nested model that is each level of the
outermost factor, and it is computed block by block; a crossed model usually links
all rows, and then L is computed only up to :data:`CHOLESKY_MAX_ROWS` rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.linalg import cholesky, solve_triangular
from scipy.sparse.csgraph import connected_components

from ..errors import InterlaceError
from .least_squares import group_coefficients, group_ls_effects, observation_ls_columns
from .levels import enclosing_term, factor_names, resolve_level, rows_by_level
from .output import (
    clean_name,
    level_labels,
    model_frame_columns,
    observation_ids,
    r_coefficient_name,
    to_caller_frame,
)
from .woodbury import MarginalPrecision

CHOLESKY_MAX_ROWS = 5000
"""Largest set of rows linked by the random effects for which ``standardize=True``
forms the dense Cholesky factor of V (m x m doubles: 200 MB at 5000)."""


def standardize_option(value: Any) -> bool | str:
    """``False``, ``True`` or ``"semi"``; anything else is an error naming the argument."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value == "semi":
        return "semi"
    raise InterlaceError(f"standardize: expected False, True or 'semi', found {value!r}")


def linked_row_sets(precision: MarginalPrecision) -> list[np.ndarray]:
    """The sets of rows that the random effects link (V is block diagonal over them)."""
    A = precision.A.copy()
    A.eliminate_zeros()
    n, q = A.shape[1], A.shape[0]
    pattern = sparse.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=(n, q))
    graph = sparse.bmat([[None, pattern], [pattern.T, None]], format="csr")
    _, labels = connected_components(graph, directed=False)
    row_labels = labels[:n]
    order = np.argsort(row_labels, kind="stable")
    _, starts = np.unique(row_labels[order], return_index=True)
    return np.split(order, starts[1:])


def cholesky_marginal_residuals(precision: MarginalPrecision, marginal: np.ndarray) -> np.ndarray:
    """L^{-1} e with V = L L' (lower), computed over each set of linked rows.

    Raises
    ------
    InterlaceError
        When a set of linked rows exceeds :data:`CHOLESKY_MAX_ROWS`.
    """
    row_sets = linked_row_sets(precision)
    largest = max(len(rows) for rows in row_sets)
    if largest > CHOLESKY_MAX_ROWS:
        raise InterlaceError(
            f"standardize=True: the Cholesky marginal residuals need the dense Cholesky factor of V "
            f"over each set of rows linked by the random effects; this model links {largest} rows "
            f"(at most {CHOLESKY_MAX_ROWS} are supported, as a crossed design links all of them). "
            "Use standardize=False or standardize='semi'"
        )
    out = np.empty_like(marginal)
    for rows in row_sets:
        factor = cholesky(precision.covariance_block(rows), lower=True)
        out[rows] = solve_triangular(factor, marginal[rows], lower=True)
    return out


def observation_residual_columns(result, standardize, include_ls: bool) -> dict[str, Any]:
    """The level-1 columns of ``hlm_resid``: ``.id``, the model frame, the residuals."""
    conditioning = result._conditioning
    columns: dict[str, Any] = {".id": observation_ids(result), **model_frame_columns(result)}
    if standardize is True:
        columns[".std.resid"] = conditioning.weighted(result.resid) / np.sqrt(result.scale)  # sqrt(w) e / sigma
    else:
        columns[".resid"] = np.asarray(result.resid, dtype=np.float64)
    columns[".fitted"] = np.asarray(result.fittedvalues, dtype=np.float64)
    if include_ls:
        ls_resid, ls_fitted = observation_ls_columns(result, standardize)
        name = {True: ".std.ls.resid", "semi": ".semi.ls.resid"}.get(standardize, ".ls.resid")
        columns[name] = ls_resid
        columns[".ls.fitted"] = ls_fitted
    # the marginal residual e = s e' / sqrt(w) on the working scale (e' = y' - X'beta'), L^{-1} e
    # = sign(s) L'^{-1} e' (V = s^2 V'); X beta = y - e
    working = result._system
    working_beta = working.solve(result._factor, np.asarray(result.theta, dtype=np.float64))[1]
    working_marginal = working.design.y - working.design.X @ working_beta
    marginal = conditioning.rows(working_marginal)
    if standardize is True:
        columns[".chol.mar.resid"] = conditioning.sign * cholesky_marginal_residuals(
            MarginalPrecision(result), working_marginal
        )
    else:
        columns[".mar.resid"] = marginal
    columns[".mar.fitted"] = conditioning.design.y - marginal
    return columns


def _first_rows(term) -> np.ndarray:
    return np.array([rows[0] for rows in rows_by_level(term)], dtype=np.int64)


def _per_level(series: pd.Series, first: np.ndarray) -> Any:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.iloc[first].array
    return series.to_numpy()[first]


def group_label_columns(result, term, coefficients: np.ndarray | None) -> dict[str, Any]:
    """The leading columns of a group-level frame: the level labels (named after the
    factor, or ``group`` plus its component columns for an inner factor of a nested
    model, as HLMdiag), then the model-frame columns constant within the levels whose
    coefficients the per-level fits could not estimate (HLMdiag's group-level variables)."""
    design = result._conditioning.design
    table = design.table
    first = _first_rows(term)
    enclosing = enclosing_term(result, term)
    columns: dict[str, Any] = {}
    if enclosing is None:
        columns[term.name] = level_labels(term)
    else:
        columns["group"] = level_labels(term)
        flist = set(factor_names(result))
        parts = [f for f in term.factors if f not in flist] + list(enclosing.factors)
        for name in parts:
            if name in table.columns and name not in columns:
                columns[name] = _per_level(table[name], first)
    if coefficients is not None:
        aliased = [
            r_coefficient_name(name)
            for j, name in enumerate(design.fixed_names)
            if np.all(np.isnan(coefficients[:, j])) and ":" not in name
        ]
        response = design.fixed.response_name
        for name in table.columns:
            if name in columns or name == response:
                continue
            if any(str(name) in coefficient for coefficient in aliased):
                columns[str(name)] = _per_level(table[name], first)
    return columns


def group_residual_columns(result, term, standardize, include_ls: bool) -> dict[str, Any]:
    """The group-level columns of ``hlm_resid`` for one grouping factor."""
    standardized = standardize is True
    coefficients = group_coefficients(result, term)
    columns = group_label_columns(result, term, coefficients)
    effects = result.random_effects[term.name]
    eb = np.asarray(effects.to_frame() if effects.ndim == 1 else effects, dtype=np.float64)
    if standardized:
        se = result.random_effects_se[term.name]
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero variance gives 0/0
            eb = eb / np.asarray(se.to_frame() if se.ndim == 1 else se, dtype=np.float64)
    prefix = ".std.ranef." if standardized else ".ranef."
    for j, name in enumerate(term.column_names):
        columns[prefix + clean_name(name)] = eb[:, j]
    if include_ls:
        names, ls = group_ls_effects(result, term, standardized, coefficients)
        prefix = ".std.ls." if standardized else ".ls."
        for j, name in enumerate(names):
            columns[prefix + clean_name(name)] = ls[:, j]
    return columns


def residual_columns(result, level, standardize, include_ls: bool) -> dict[str, Any]:
    """The columns of :func:`hlm_resid` as a dict."""
    term = resolve_level(result, level)
    standardize = standardize_option(standardize)
    if not isinstance(include_ls, (bool, np.bool_)):
        raise InterlaceError(f"include_ls: expected True or False, found {include_ls!r}")
    if term is None:
        return observation_residual_columns(result, standardize, bool(include_ls))
    return group_residual_columns(result, term, standardize, bool(include_ls))


def require_linear(result, function: str) -> None:
    """HLMdiag's diagnostics are defined for linear mixed models: a clear error for any
    other result (a generalized fit's residuals are its ``residuals(type=)``)."""
    from ..result import CrossedLMEResult

    if not isinstance(result, CrossedLMEResult):
        kind = type(result).__name__
        hint = (" (HLMdiag's diagnostics are for linear mixed models; a generalized fit has "
                "residuals(type='deviance' | 'pearson' | 'response' | 'working'))"
                if kind == "CrossedGLMMResult" else "")
        raise InterlaceError(f"{function}: expected a linear mixed model fit (CrossedLMEResult), found {kind}{hint}")


def hlm_resid(
    result, level: int | str = 1, standardize: bool | str = False, include_ls: bool = True
):
    """Residuals of a fitted model, as R's ``HLMdiag::hlm_resid``.

    Parameters
    ----------
    result : CrossedLMEResult
        A fitted model (nested or crossed).
    level : 1 or str
        ``1`` for observation-level residuals, or the name of a grouping factor (a key
        of ``result.random_effects``, e.g. ``"Subject"`` or ``"cask:batch"``) for
        group-level residuals.
    standardize : {False, True, "semi"}
        Level 1: raw residuals; standardised ones (``.std.resid`` = resid / sigma,
        ``.std.ls.resid`` from each group's ``rstandard``, and ``.chol.mar.resid`` =
        L^{-1}(y - X beta) with V = L L'); or ``"semi"``: the LS residuals over
        sqrt(1 - h). Group level: ``True`` divides the BLUPs by their conditional SDs
        and the LS effects by their SD (``"semi"`` is taken as ``False``).
    include_ls : bool
        Include the least-squares columns (per-group fits).

    Returns
    -------
    DataFrame
        In the type of the frame the model was fitted on (pandas, polars or pyarrow).
        Level 1: one row per row used in the fit, in order, with ``.id`` (the row's
        0-based position in the data passed to ``fit``; HLMdiag counts from 1), the
        model frame's columns, then ``.resid``/``.std.resid``, ``.fitted``, the LS pair,
        ``.mar.resid``/``.chol.mar.resid`` and ``.mar.fitted``. Group level: one row per
        level of the factor, in level order (as ``random_effects``): the labels, then
        ``.ranef.<name>`` and ``.ls.<name>`` (``.std.`` variants when standardised).

    Raises
    ------
    InterlaceError
        For an unknown ``level`` or ``standardize``; for ``standardize=True`` at level 1
        when the random effects link more than 5000 rows (crossed designs usually link
        all rows), since the Cholesky factor of V is dense over linked rows.

    Notes
    -----
    HLMdiag refuses models with crossed random effects; here the same definitions are
    computed for them, the LS fits splitting the rows by the first grouping factor in
    lme4's order. Everything but ``.chol.mar.resid`` costs O(n) beyond the fit.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> r = interlace.hlm_resid(m)
    >>> list(r.columns)
    ['.id', 'Reaction', 'Days', 'Subject', '.resid', '.fitted', '.ls.resid', '.ls.fitted', '.mar.resid', '.mar.fitted']
    >>> round(float(r[".mar.resid"].iloc[0]), 4)
    -1.8451
    >>> g = interlace.hlm_resid(m, level="Subject", standardize=True)
    >>> list(g.columns)
    ['Subject', '.std.ranef.intercept', '.std.ranef.days', '.std.ls.intercept', '.std.ls.days']
    """
    require_linear(result, "hlm_resid")
    return to_caller_frame(result, residual_columns(result, level, standardize, include_ls))
