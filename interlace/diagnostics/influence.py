"""HLMdiag's ``hlm_influence``: influence of observations or groups on the fixed effects.

For a deletion set I, with vcov = (X'V^{-1}X)^{-1}, P = V^{-1} - V^{-1}X vcov X'V^{-1},
e = y - X beta-hat and M_I the covariance of beta_(I):

    cooksd   = (beta - beta_(I))' vcov^{-1} (beta - beta_(I)) / p
    mdffits  = (beta - beta_(I))' M_I^{-1} (beta - beta_(I)) / p
    covtrace = | tr(vcov^{-1} M_I) - p |
    covratio = det(M_I) / det(vcov)

One step (``approx=True``), at the fit's theta and sigma (Christensen, Pearson and
Johnson): beta - beta_(I) = vcov X'V^{-1}_{:,I} P_II^{-1} V^{-1}_{I,:} e and
M_I = vcov + vcov X'V^{-1}_{:,I} P_II^{-1} V^{-1}_{I,:} X vcov. For single rows these
reduce to scalars read off diag(V^{-1}) (see :func:`observation_influence`). For a set
of rows either P_II is formed through the Woodbury form (few rows) or, equivalently,
the GLS fit is recomputed on the downdated system at the same theta and sigma (many
rows, when forming the m x m P_II would cost more than one factorisation).

Exact (``approx=False``): every deletion refits the model (theta, sigma, beta) on the
downdated system from the fitted theta; M_I is then the refit's vcov, and ``rvc.<name>``
= component_(I) / component - 1 for HLMdiag's variance components (``sigma2``, ``D11``,
``D21``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..design import level_label
from ..errors import InterlaceError
from ..progress import ProgressBar
from .deletion import (
    DeletedFit,
    gls_without,
    refit_without,
    variance_component_names,
    variance_component_table,
    warn_unidentified,
)
from .gls import GlsPieces, check_finite_fit, gls_pieces
from .levels import resolve_level, rows_by_level
from .leverage import LEVERAGE_TYPES, leverage_columns
from .output import level_labels, model_frame_columns, observation_ids, to_caller_frame
from .residuals import require_linear

MEASURES = ("cooksd", "mdffits", "covtrace", "covratio")
"""The influence columns, in HLMdiag's order."""


def observation_influence(pieces: GlsPieces) -> dict[str, np.ndarray]:
    """One-step deletion of each row alone.

    With r_i = (V^{-1}e)_i, g_i = (V^{-1}X)_i vcov (V^{-1}X)_i' and P_ii = V^{-1}_ii - g_i:
    cooksd = r^2 g / (p P^2), mdffits = r^2 g / (p P V^{-1}_ii), covtrace = |g / P| and
    covratio = 1 + g / P (Sherman-Morrison on HLMdiag's formulas).
    """
    p = pieces.n_fixed
    r = pieces.precision_resid
    g = pieces.fixed_quadratic
    P = pieces.projection_diagonal
    d = pieces.precision_diagonal
    return {
        "cooksd": r * r * g / (p * P * P),
        "mdffits": r * r * g / (p * P * d),
        "covtrace": np.abs(g / P),
        "covratio": 1.0 + g / P,
    }


def _measures(
    delta: np.ndarray, deleted_cov: np.ndarray, original_xvx: np.ndarray, original_cov: np.ndarray
) -> dict[str, float]:
    """cooksd, mdffits, covtrace, covratio from beta - beta_(I), vcov_(I), vcov^{-1}, vcov."""
    p = len(delta)
    M_inverse = np.linalg.inv(deleted_cov)
    return {
        "cooksd": float(delta @ original_xvx @ delta) / p,
        "mdffits": float(delta @ M_inverse @ delta) / p,
        "covtrace": abs(float(np.trace(original_xvx @ deleted_cov)) - p),
        "covratio": float(np.linalg.det(deleted_cov) / np.linalg.det(original_cov)),
    }


def _nan_measures() -> dict[str, float]:
    return dict.fromkeys(MEASURES, np.nan)


def set_influence_woodbury(pieces: GlsPieces, rows: np.ndarray) -> dict[str, float]:
    """One-step deletion of the rows I through P_II (formed for those rows only)."""
    rows = np.asarray(rows, dtype=np.int64)
    F = pieces.precision_X[rows]
    P_block = pieces.precision.block(rows) - F @ pieces.xvx_inv @ F.T
    try:
        K = np.linalg.solve(P_block, np.column_stack([F, pieces.precision_resid[rows]]))
    except np.linalg.LinAlgError:
        return _nan_measures()
    B = F.T @ K[:, :-1]
    b = F.T @ K[:, -1]
    vcov = pieces.xvx_inv
    delta = vcov @ b
    deleted_cov = vcov + vcov @ B @ vcov
    return _measures(delta, deleted_cov, pieces.xvx, vcov)


def set_influence_downdate(pieces: GlsPieces, result, rows: np.ndarray) -> dict[str, float]:
    """One-step deletion of the rows I through the downdated system at the fit's theta."""
    deleted = gls_without(result, rows)
    if deleted is None:
        return _nan_measures()
    return _measures(
        pieces.beta - deleted.beta, np.linalg.inv(deleted.xvx), pieces.xvx, pieces.xvx_inv
    )


def downdate_cost(result) -> float:
    """A rough flop count of one factorisation of the fitted system."""
    system = result._system
    cost = system.size**3 / 3.0 + 2.0 * system.size**2
    if system.lead_term is not None:
        cost += (
            system.lead_term.n_levels * system.lead_term.n_columns**3
            + len(system.coupling[1]) * system.size
        )
    return float(cost)


def set_influence(
    pieces: GlsPieces, result, rows: np.ndarray, path: str = "auto"
) -> dict[str, float]:
    """One-step deletion of a set of rows, by the cheaper of the two exact paths
    (``path="woodbury"`` or ``"downdate"`` forces one)."""
    if path == "auto":
        path = (
            "woodbury"
            if pieces.precision.cost_of_block(rows) <= downdate_cost(result)
            else "downdate"
        )
    if path == "woodbury":
        return set_influence_woodbury(pieces, rows)
    return set_influence_downdate(pieces, result, rows)


def _working_scale(result) -> float:
    """sigma^2 on the fit's working scale, where the deletions refit (the variance
    components' names and relative changes are read there, free of y's units)."""
    return result.scale / result._conditioning.unit**2


def exact_influence(
    result, deleted: DeletedFit | None, component_names: list[str]
) -> dict[str, float]:
    """The measures and ``rvc.*`` of one refit without a deletion set, on the working
    scale as the refit (the measures and relative changes are free of it)."""
    if deleted is None:
        return {**_nan_measures(), **{f"rvc.{name}": np.nan for name in component_names}}
    system = result._system
    theta = np.asarray(result.theta, dtype=np.float64)
    original_cov = result._working_cov
    original_xvx = np.linalg.inv(original_cov)
    out = _measures(
        system.solve(result._factor, theta)[1] - deleted.beta,
        np.linalg.inv(deleted.xvx),
        original_xvx,
        original_cov,
    )
    design = system.design
    original = variance_component_table(design, theta, _working_scale(result))
    after = variance_component_table(design, deleted.theta, deleted.scale)
    for name in component_names:
        out[f"rvc.{name}"] = after[name] / original[name] - 1.0
    return out


def _leverage_option(leverage: Any) -> tuple[str, ...]:
    values = (leverage,) if isinstance(leverage, str) else tuple(leverage)
    for value in values:
        if value not in LEVERAGE_TYPES:
            raise InterlaceError(
                f"leverage: expected a subset of {', '.join(map(repr, LEVERAGE_TYPES))}, found {value!r}"
            )
    return values


def _deletion_rows(result, term, delete: Any) -> tuple[np.ndarray, str]:
    """The fit's row positions of ``delete``: caller row ids at level 1, level labels
    at a grouping factor's level."""
    values = [delete] if np.isscalar(delete) else list(delete)
    if not values:
        raise InterlaceError(
            "delete: expected at least one row id or level, found an empty sequence"
        )
    if term is None:
        ids = observation_ids(result)
        position = {int(v): i for i, v in enumerate(ids)}
        rows = []
        for value in values:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise InterlaceError(
                    f"delete: expected row ids (integers, the 'id' column), found {value!r}"
                )
            if int(value) not in position:
                raise InterlaceError(
                    f"delete: expected ids of rows used in the fit (0 to {len(ids) + len(result.model.dropped_rows) - 1}, "
                    f"rows with missing values excluded), found {value!r}"
                )
            rows.append(position[int(value)])
        return np.array(sorted(set(rows)), dtype=np.int64), f"rows {values}"
    labels = {label: code for code, label in enumerate(term.levels)}
    codes = []
    for value in values:
        label = value if isinstance(value, str) else level_label(value)
        if label not in labels:
            raise InterlaceError(
                f"delete: expected levels of {term.name!r} (e.g. {term.levels[0]!r}), found {value!r}"
            )
        codes.append(labels[label])
    rows = np.flatnonzero(np.isin(term.group_codes, codes))
    return rows, f"levels {values} of {term.name!r}"


def influence_columns(
    result,
    level=1,
    approx: bool = True,
    delete=None,
    leverage: Sequence[str] | str = ("overall",),
    show_progress: bool | None = None,
    pieces: GlsPieces | None = None,
) -> dict[str, Any]:
    """The columns of :func:`hlm_influence` as a dict."""
    check_finite_fit(result)
    term = resolve_level(result, level)
    if not isinstance(approx, (bool, np.bool_)):
        raise InterlaceError(f"approx: expected True or False, found {approx!r}")
    leverage = _leverage_option(leverage)
    if approx:
        pieces = gls_pieces(result) if pieces is None else pieces
    if delete is not None:
        rows, description = _deletion_rows(result, term, delete)
        if approx:
            values = set_influence(pieces, result, rows)
        else:
            names = variance_component_names(result._system.design, result.theta, _working_scale(result))
            fit = refit_without(result, rows)
            if fit is None:
                warn_unidentified([description])
            values = exact_influence(result, fit, names)
        return {name: np.array([value]) for name, value in values.items()}
    if term is None:
        leading: dict[str, Any] = {"id": observation_ids(result), **model_frame_columns(result)}
    else:
        leading = {term.name: level_labels(term)}
    if approx and term is None:
        measures = observation_influence(pieces)
    elif approx:
        per_set = [set_influence(pieces, result, rows) for rows in rows_by_level(term)]
        measures = {name: np.array([v[name] for v in per_set]) for name in MEASURES}
    else:
        if term is None:
            row_sets = [np.array([i]) for i in range(result.nobs)]
            descriptions = [f"row {i}" for i in observation_ids(result)]
        else:
            row_sets = rows_by_level(term)
            descriptions = [f"level {label!r}" for label in term.levels]
        names = variance_component_names(result._system.design, result.theta, _working_scale(result))
        per_set, unidentified = [], []
        with ProgressBar(len(row_sets), "hlm_influence", show_progress) as progress:
            for rows, description in zip(row_sets, descriptions, strict=True):
                fit = refit_without(result, rows)
                if fit is None:
                    unidentified.append(description)
                per_set.append(exact_influence(result, fit, names))
                progress.advance(1)
        warn_unidentified(unidentified)
        measures = {name: np.array([v[name] for v in per_set]) for name in per_set[0]}
    if not leverage:
        return {**leading, **measures}
    levers = leverage_columns(result, level, pieces)
    return {**leading, **measures, **{f"leverage.{name}": levers[name] for name in leverage}}


def hlm_influence(
    result,
    level: int | str = 1,
    approx: bool = True,
    delete=None,
    leverage: Sequence[str] | str = ("overall",),
    show_progress: bool | None = None,
):
    """Influence diagnostics, as R's ``HLMdiag::hlm_influence``.

    Parameters
    ----------
    result : CrossedLMEResult
        A fitted model (nested or crossed).
    level : 1 or str
        ``1`` deletes each observation in turn; the name of a grouping factor (a key of
        ``result.random_effects``) deletes each of its levels (all its rows) in turn.
    approx : bool
        ``True``: one-step formulas at the fit's theta and sigma, no refit. ``False``:
        exact case deletion, refitting theta, sigma and beta without each deletion set
        (from the fitted theta, on the fitted system with the rows' cross-products
        subtracted), and the relative variance changes ``rvc.<component>``.
    delete : sequence, optional
        One deletion set instead of each row or level in turn: row ids (the ``id``
        column: 0-based positions in the data passed to ``fit``) at level 1, level
        labels of the factor otherwise. Gives a single row, without leverage.
    leverage : str or sequence of str
        Leverage columns to add: any of ``"overall"``, ``"fixef"``, ``"ranef"``,
        ``"ranef.uc"`` (see :func:`hlm_leverage`); empty for none.
    show_progress : bool or None
        With ``approx=False``, a progress bar (tqdm's when installed); None (default):
        in interactive sessions only (:mod:`interlace.progress`).

    Returns
    -------
    DataFrame
        In the caller's frame type. Level 1: ``id``, the model frame's columns, then
        ``cooksd``, ``mdffits``, ``covtrace``, ``covratio`` (``rvc.*`` when exact) and
        ``leverage.*``, one row per row used in the fit. Group level: the level labels
        (in level order), then the same columns. With ``delete``: the measures only.

    Raises
    ------
    InterlaceError
        For an unknown ``level``, ``leverage`` type or ``delete`` entry.

    Notes
    -----
    The one-step values read V^{-1} through the fitted Cholesky factor: no n x n matrix
    is formed, and level 1 costs a few small products per row (InstEval's 73,421 rows in
    about a second). HLMdiag refuses leverage and exact refits for crossed models; here
    both are computed. A deletion that leaves the fixed effects unidentified gives NaN
    with a :class:`~interlace.errors.RankDeficiencyWarning`.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> infl = interlace.hlm_influence(m, level="Batch")
    >>> list(infl.columns)
    ['Batch', 'cooksd', 'mdffits', 'covtrace', 'covratio', 'leverage.overall']
    >>> infl["cooksd"].round(4).tolist()
    [0.0539, 0.0, 0.1418, 0.0926, 0.5596, 0.352]
    >>> exact = interlace.hlm_influence(m, level="Batch", approx=False, delete=["E"])
    >>> exact.round(3).to_dict("records")
    [{'cooksd': 0.56, 'mdffits': 0.847, 'covtrace': 0.339, 'covratio': 0.661, 'rvc.sigma2': -0.004, 'rvc.D11': -0.573}]
    """
    require_linear(result, "hlm_influence")
    columns = influence_columns(result, level, approx, delete, leverage, show_progress)
    return to_caller_frame(result, columns)
