"""Bootstraps: lme4's parametric ``bootMer`` and a nonparametric ``bootstrap_se``.

``bootMer`` simulates B responses from the fit and refits the same design to each
(the refit engine: codes and cross-products are shared). Every replicate draws from
its own child of ``numpy.random.SeedSequence(seed)``, so the replicates are the
same whatever ``n_jobs`` is. With ``n_jobs != 1`` the work goes through joblib
(an optional dependency), in chunks, so ``joblib.parallel_config(backend="dask")``
runs it on a Dask cluster unchanged.

``bootstrap_se`` is the seed API's nonparametric bootstrap of a scalar statistic of
the response (its median by default): the standard error ``std(replicates, ddof=1)``
over resamples of whole grouping levels with all their rows (R's ``boot`` cluster
convention) or of rows; no refit.

``fe_bootstrap_se`` resamples the data the same way, refits from the fitted theta,
and summarises the spread of the fixed effects by a robust (``"median"``: 1.4826 x
median absolute deviation) or the ordinary (``"sd"``) standard deviation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning, InterlaceError, SingularFitWarning
from ..progress import ProgressBar

MAD_TO_SD = 1.4826
"""Scale of the median absolute deviation to a normal SD."""


@dataclass(frozen=True)
class BootstrapResult:
    """Replicates of a statistic (lme4's ``bootMer`` result).

    Attributes
    ----------
    original : pandas.Series
        The statistic on the fit itself (lme4's ``t0``).
    replicates : pandas.DataFrame
        One row per replicate (lme4's ``t``); a failed refit is a row of NaN.
    seed : Any
        The seed the replicates were drawn from.
    failed : tuple of int
        The replicates (row positions) whose refit or statistic raised: rows of NaN
        (lme4's ``bootFail`` counts them).
    not_converged : tuple of int
        The replicates whose refit did not pass the convergence check
        (``converged=False``); their statistic is kept, as lme4 keeps it.
    """

    original: pd.Series
    replicates: pd.DataFrame
    seed: Any
    failed: tuple[int, ...] = ()
    not_converged: tuple[int, ...] = ()

    @property
    def n_failed(self) -> int:
        """Replicates whose refit failed (rows of NaN)."""
        return len(self.failed)

    @property
    def n_not_converged(self) -> int:
        """Replicates whose refit did not converge."""
        return len(self.not_converged)

    @property
    def se(self) -> pd.Series:
        """Standard deviation of the replicates."""
        return self.replicates.std(ddof=1)

    @property
    def bias(self) -> pd.Series:
        """Mean of the replicates minus the original statistic."""
        return self.replicates.mean() - self.original

    def confidence_interval(self, level: float = 0.95) -> pd.DataFrame:
        """Percentile intervals (columns ``lower``, ``upper``)."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level: expected a number between 0 and 1, found {level!r}")
        alpha = (1.0 - level) / 2.0
        q = self.replicates.quantile([alpha, 1.0 - alpha])
        return pd.DataFrame({"lower": q.iloc[0], "upper": q.iloc[1]})


def _as_series(value: Any) -> pd.Series:
    if isinstance(value, pd.Series):
        return value.astype(float)
    array = np.atleast_1d(np.asarray(value, dtype=float))
    if array.size == 1:
        return pd.Series(array, index=["statistic"])
    return pd.Series(array)


def _default_statistic(result) -> pd.Series:
    return result.fe_params


def _values(value: Any, index: pd.Index) -> np.ndarray:
    """A replicate's statistic as an array in the order of the original's ``index``."""
    if isinstance(value, pd.Series):
        if not value.index.equals(index):
            value = value.reindex(index)
        return value.to_numpy(dtype=float)
    array = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
    if array.size != len(index):
        raise InterlaceError(f"statistic: expected {len(index)} values on every replicate (as on the fit), "
                             f"found {array.size}")
    return array


def _replicates(result, statistic, seeds, use_re, index: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(len(seeds), len(index)) replicates of the statistic, and per replicate whether
    its refit failed (a row of NaN) and whether it did not converge (counted by
    :func:`boot_mer`, which warns once for all of them)."""
    out = np.full((len(seeds), len(index)), np.nan)
    failed = np.zeros(len(seeds), dtype=bool)
    not_converged = np.zeros(len(seeds), dtype=bool)
    for row, seed in enumerate(seeds):
        y = result.simulate(1, seed=seed, use_re=use_re)[:, 0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SingularFitWarning)
                warnings.simplefilter("ignore", ConvergenceWarning)
                refit = result.refit(y)
                value = statistic(refit)
        except (InterlaceError, np.linalg.LinAlgError, FloatingPointError):
            failed[row] = True
            continue
        not_converged[row] = not refit.converged
        out[row] = _values(value, index)
    return out, failed, not_converged


def boot_mer(result, statistic: Callable | None = None, B: int = 500, seed=None, show_progress: bool = False,
             n_jobs: int = 1, use_re: bool = False) -> BootstrapResult:
    """Parametric bootstrap of ``statistic`` (default: the fixed effects)."""
    if not isinstance(B, (int, np.integer)) or B < 1:
        raise InterlaceError(f"B: expected a positive integer, found {B!r}")
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise InterlaceError(f"n_jobs: expected a non-zero integer (joblib's convention), found {n_jobs!r}")
    statistic = _default_statistic if statistic is None else statistic
    if not callable(statistic):
        raise InterlaceError(f"statistic: expected a function of a fitted model, found {type(statistic).__name__}")
    seeds = np.random.SeedSequence(seed).spawn(int(B))
    original = _as_series(statistic(result))
    index = original.index
    progress = ProgressBar(int(B), "bootMer", show_progress)
    parts: list[np.ndarray] = []
    if n_jobs == 1:
        for seed_i in seeds:
            parts.append(_replicates(result, statistic, [seed_i], use_re, index))
            progress.advance(1)
    else:
        try:
            from joblib import Parallel, delayed
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise InterlaceError("n_jobs: parallel bootstrap needs joblib (pip install 'interlace[parallel]')") from exc
        getattr(result, "_refit_curvature", None)  # computed once here, shipped to the workers with the result
        chunk = max(1, int(np.ceil(B / (4 * max(abs(n_jobs), 1)))))
        chunks = [seeds[i : i + chunk] for i in range(0, len(seeds), chunk)]
        tasks = (delayed(_replicates)(result, statistic, c, use_re, index) for c in chunks)
        for part in Parallel(n_jobs=n_jobs, return_as="generator")(tasks):
            parts.append(part)
            progress.advance(len(part[0]))
    progress.close()
    table = pd.DataFrame(np.vstack([part[0] for part in parts]), columns=index)
    failed = tuple(int(i) for i in np.flatnonzero(np.concatenate([part[1] for part in parts])))
    not_converged = tuple(int(i) for i in np.flatnonzero(np.concatenate([part[2] for part in parts])))
    if failed:  # lme4's words
        warnings.warn(f"some bootstrap runs failed ({len(failed)}/{int(B)}): their rows are NaN "
                      "(BootstrapResult.failed)", ConvergenceWarning, stacklevel=3)
    if not_converged:
        warnings.warn(f"some bootstrap refits did not converge ({len(not_converged)}/{int(B)}): their "
                      "statistics are kept (BootstrapResult.not_converged)", ConvergenceWarning, stacklevel=3)
    return BootstrapResult(original, table, seed, failed, not_converged)


def _resampled_design(design, rng: np.random.Generator, level: str):
    """The design on resampled rows: whole primary-factor levels (each drawn copy a
    new level) or single rows."""
    n = design.n_obs
    primary = design.primary_factors
    if level == "observation":
        rows = rng.integers(0, n, n)
        copy_of_row = np.zeros(n, dtype=np.int64)
    else:
        if len(primary) != 1:
            raise InterlaceError(
                f"resample_level='group': the primary grouping factor {':'.join(primary)!r} is an "
                "interaction; resample by observation, or put a single grouping column first"
            )
        term = next(t for t in design.terms if t.factors == primary)
        by_level = pd.Series(np.arange(n)).groupby(term.group_codes).indices
        chosen = rng.integers(0, term.n_levels, term.n_levels)
        rows = np.concatenate([by_level[g] for g in chosen if g in by_level])
        copy_of_row = np.concatenate([np.full(len(by_level[g]), k) for k, g in enumerate(chosen) if g in by_level])
    terms = []
    for term in design.terms:
        codes = term.group_codes[rows].astype(np.int64)
        if level == "group" and primary[0] in term.factors:
            pairs, codes = np.unique(np.column_stack([copy_of_row, codes]), axis=0, return_inverse=True)
            levels = pd.Index([f"{term.levels[c]}#{k}" for k, c in pairs])
        else:
            levels = term.levels
        terms.append(replace(term, group_codes=np.ascontiguousarray(codes.ravel(), dtype=np.int32),
                             design=np.ascontiguousarray(term.design[rows]), levels=levels))
    return replace(design, fixed=design.fixed.take(rows), terms=tuple(terms), table=design.table.iloc[rows].reset_index(drop=True))


def fe_bootstrap_se(result, statistic: str = "median", n_bootstrap: int = 1000, resample_level: str = "group",
                    seed=None, show_progress=None) -> pd.Series:
    """Nonparametric bootstrap standard errors of the fixed effects (refits)."""
    from ..fitting.gradient import deviance_functions
    from ..fitting.optimize import optimize_theta
    from ..linalg.dispatch import build_system

    if statistic not in ("median", "sd"):
        raise InterlaceError(f"statistic: expected 'median' or 'sd', found {statistic!r}")
    if resample_level not in ("group", "observation"):
        raise InterlaceError(f"resample_level: expected 'group' or 'observation', found {resample_level!r}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 2:
        raise InterlaceError(f"n_bootstrap: expected an integer of at least 2, found {n_bootstrap!r}")
    rng = np.random.default_rng(seed)
    design = result._system.design  # working: resampled rows keep the fit's affine map
    reml = result.method == "REML"
    solver = result.fit_options.get("solver", "auto")
    draws = np.full((int(n_bootstrap), design.n_fixed), np.nan)
    not_converged = 0
    progress = ProgressBar(int(n_bootstrap), "fe_bootstrap_se", show_progress)
    for b in range(int(n_bootstrap)):
        progress.advance()
        resampled = _resampled_design(design, rng, resample_level)
        system = build_system(resampled, solver)
        fun, with_gradient = deviance_functions(system, reml)
        record = optimize_theta(fun, result.theta, resampled.theta_lower,
                                result.fit_options.get("optimizer", "auto"), fun_and_grad=with_gradient)
        not_converged += not record.converged
        factor = system.factorize(record.theta)
        if factor.ok:  # the working design's rows: beta' to the caller's beta
            draws[b] = result._conditioning.beta(system.solve(factor, record.theta)[1])
    progress.close()
    finite = np.all(np.isfinite(draws), axis=1)
    if not finite.all():  # lme4's words
        warnings.warn(f"some bootstrap runs failed ({int(np.sum(~finite))}/{int(n_bootstrap)}): left out of "
                      "the standard errors", ConvergenceWarning, stacklevel=3)
    if not_converged:
        warnings.warn(f"some bootstrap refits did not converge ({not_converged}/{int(n_bootstrap)})",
                      ConvergenceWarning, stacklevel=3)
    draws = draws[finite]
    if statistic == "sd":
        values = draws.std(axis=0, ddof=1)
    else:
        values = MAD_TO_SD * np.median(np.abs(draws - np.median(draws, axis=0)), axis=0)
    return pd.Series(values, index=result.fe_params.index, name="bootstrap SE")


STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "median": np.median, "mean": np.mean, "sd": lambda y: np.std(y, ddof=1), "var": lambda y: np.var(y, ddof=1),
    "min": np.min, "max": np.max,
}
"""The statistics ``bootstrap_se`` takes by name (or any function of the response)."""


def bootstrap_se(result, statistic="median", n_bootstrap: int = 1000, resample_level: str = "group",
                 seed=None) -> float:
    """The bootstrap standard error of a scalar statistic of the response.

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
    statistic : str or callable, default "median"
        One of :data:`STATISTICS` or a function of the response (a 1-d array of the
        resampled rows' responses) returning a number.
    n_bootstrap : int, default 1000
        Resamples (at least 2).
    resample_level : str, default "group"
        ``"group"``: the levels of the first grouping factor (lme4's order) drawn with
        replacement, each with all its rows (R's ``boot`` cluster convention);
        a grouping factor's name: its levels; ``"observation"``: rows.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    float
        ``std(replicates, ddof=1)``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> se = bootstrap_se(m, n_bootstrap=200, seed=1)
    >>> isinstance(se, float), 5.0 < se < 40.0
    (True, True)
    """
    if callable(statistic):
        function, name = statistic, getattr(statistic, "__name__", "statistic")
    elif isinstance(statistic, str) and statistic in STATISTICS:
        function, name = STATISTICS[statistic], statistic
    else:
        raise InterlaceError(f"statistic: expected one of {', '.join(map(repr, STATISTICS))} or a function of the "
                             f"response, found {statistic!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 2:
        raise InterlaceError(f"n_bootstrap: expected an integer of at least 2, found {n_bootstrap!r}")
    y = np.asarray(result.model.endog, dtype=np.float64)
    groups = result.model.groups
    order = starts = sizes = None  # rows by level: order[starts[k]: starts[k] + sizes[k]]
    if resample_level != "observation":
        factor = next(iter(groups)) if resample_level == "group" else resample_level
        if not isinstance(factor, str) or factor not in groups:
            raise InterlaceError(f"resample_level: expected 'group', 'observation' or a grouping factor "
                                 f"({', '.join(groups)}), found {resample_level!r}")
        codes = np.asarray(groups[factor].codes, dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=len(groups[factor].categories))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    replicates = np.empty(int(n_bootstrap))
    for b in range(int(n_bootstrap)):
        if order is None:
            rows = rng.integers(0, y.size, y.size)
        else:  # every row of each drawn level
            drawn = rng.integers(0, sizes.size, sizes.size)
            counts = sizes[drawn]
            first = np.repeat(starts[drawn] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
            rows = order[first + np.arange(int(counts.sum()))]
        value = function(y[rows])
        try:
            replicates[b] = float(value)
        except (TypeError, ValueError) as exc:
            raise InterlaceError(f"statistic: expected a function returning one number, {name} returned "
                                 f"{type(value).__name__}") from exc
    return float(np.std(replicates, ddof=1))
