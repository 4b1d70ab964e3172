"""Plots of fitted models, drawn with matplotlib (an optional dependency:
``pip install "interlace[plot]"``).

Each function takes a fitted model (or a bootstrap's result) and draws on a matplotlib
``Axes`` (``ax=``; a new figure when omitted), or, for one panel per parameter, on a
``Figure`` (``fig=``), and returns it. matplotlib is imported inside the functions:
``import interlace`` and ``import interlace.plots`` do not load it.

- :func:`caterpillar`: the BLUPs of a grouping factor with their intervals, lme4's
  ``dotplot(ranef(m, condVar = TRUE))``.
- :func:`residuals_vs_fitted`: lme4's ``plot(m)``.
- :func:`qq`: a normal QQ plot of the residuals or of a term's BLUPs, R's
  ``qqnorm`` and ``qqline``.
- :func:`profile_zeta`: lme4's ``xyplot(profile(m))``.
- :func:`influence`: HLMdiag's ``dotplot_diag`` of :func:`interlace.hlm_influence`.
- :func:`bootstrap_distribution`: histograms of ``bootMer``'s replicates.

The numbers drawn are the results' own (``random_effects``, ``random_effects_se``,
``resid``, ``hlm_influence``, ``bootMer``, the profile behind ``confint``); each artist
carries a ``gid`` naming what it shows (``"blup"``, ``"interval"``, ``"cutoff"``, ...).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConvergenceWarning, InterlaceError
from .glmm_result import CrossedGLMMResult
from .inference.bootstrap import BootstrapResult
from .result import CrossedLMEResult

PROFILE_POINTS = 12
"""Profile points drawn on each side of the estimate (lme4's profile has about as many)."""

PROFILE_REACH_LEVEL = 0.99
"""The profile curves run out to |zeta| = qnorm((1 + this) / 2), as lme4's ``profile``
(``alphamax = 0.01``), or to the parameter's bound."""

INTERNAL_IQR = 3.0
"""HLMdiag's internal cut-off: the 3rd quartile plus this many interquartile ranges."""

TIE_TOLERANCE = 1e-9
"""A point is beyond a cut-off by more than this times the largest |value|: equal values
(a balanced design's covratio or leverage, where the IQR is 0 and the cut-off is their
common value) are not marked for their last bits."""

TWO_SIDED = ("covratio", "rvc.")
"""Diagnostics with a cut-off on both sides (HLMdiag: covratio and the rvc's)."""


# ----- shared helpers -------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("interlace.plots needs matplotlib: pip install 'interlace[plot]'") from exc
    return plt


def _axes(ax):
    """``ax``, checked, or the Axes of a new figure."""
    plt = _pyplot()
    if ax is None:
        return plt.subplots()[1]
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise InterlaceError(f"ax: expected a matplotlib Axes, found {ax.__class__.__name__}")
    return ax


def _panels(fig, n: int, ncols: int = 3):
    """(figure, n Axes) in a grid of at most ``ncols`` columns, on ``fig`` or a new figure."""
    plt = _pyplot()
    from matplotlib.figure import FigureBase

    ncols = max(1, min(n, ncols))
    nrows = -(-n // ncols)
    if fig is None:
        fig = plt.figure(figsize=(3.4 * ncols, 2.9 * nrows), layout="constrained")
    elif not isinstance(fig, FigureBase):
        raise InterlaceError(f"fig: expected a matplotlib Figure, found {fig.__class__.__name__}")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for extra in axes[n:]:
        extra.remove()
    return fig, list(axes[:n])


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)) \
            or not 0.0 < level < 1.0:
        raise InterlaceError(f"level: expected a number between 0 and 1, found {level!r}")
    return float(level)


def _normal_quantile(p):
    from scipy import stats

    return stats.norm.ppf(p)


def _check_fit(result, linear_only: bool = False) -> None:
    kinds = (CrossedLMEResult,) if linear_only else (CrossedLMEResult, CrossedGLMMResult)
    if not isinstance(result, kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise InterlaceError(f"result: expected a fitted model ({expected}), found {result.__class__.__name__}")


def _factor(result, group: Any, argument: str) -> str:
    """The grouping factor named ``group`` (the first in lme4's order when None)."""
    names = list(result.random_effects)
    if group is None:
        return names[0]
    if group not in names:
        raise InterlaceError(f"{argument}: expected a grouping factor of the model "
                             f"({', '.join(map(repr, names))}), found {group!r}")
    return group


def _term_effects(result, group: str, term: Any) -> tuple[str, pd.Series, pd.Series]:
    """(term, BLUPs, conditional SDs) of one term of ``group`` (its first when None)."""
    est, se = result.random_effects[group], result.random_effects_se[group]
    if isinstance(est, pd.Series):
        name = "(Intercept)" if est.name is None else est.name
        if term is not None and term != name:
            raise InterlaceError(f"term: expected the term of {group!r} ({name!r}), found {term!r}")
        return str(name), est, se
    names = list(est.columns)
    if term is None:
        term = names[0]
    elif term not in names:
        raise InterlaceError(f"term: expected a term of {group!r} ({', '.join(map(repr, names))}), found {term!r}")
    return str(term), est[term], se[term]


def _residuals(result, kind: str | None, default: str) -> tuple[np.ndarray, str]:
    """(residuals, axis label): a linear fit's y - fitted, a generalized fit's of ``kind``."""
    _check_fit(result)
    if isinstance(result, CrossedGLMMResult):
        kind = default if kind is None else kind
        return np.asarray(result.residuals(kind), dtype=float), f"{str(kind).capitalize()} residuals"
    if kind not in (None, "response"):
        raise InterlaceError(f"type: a linear fit's residuals are 'response' (y - fitted), found {kind!r}; "
                             "types are for generalized fits")
    return np.asarray(result.resid, dtype=float), "Residuals"


def _ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: (i - a) / (n + 1 - 2a), a = 3/8 for n <= 10, else 1/2."""
    a = 0.375 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


# ----- random effects -------------------------------------------------------------------
def caterpillar(result, group: str | None = None, term: str | None = None, level: float = 0.95, ax=None):
    """The BLUPs of one term of a grouping factor, sorted, with normal intervals
    (lme4's ``dotplot(ranef(m, condVar = TRUE))``).

    Each level is a dot at its BLUP (conditional mode) and a line from
    BLUP - z * SD to BLUP + z * SD, SD its conditional standard deviation
    (``result.random_effects_se``) and z = qnorm((1 + level) / 2); the levels run
    upward from the smallest BLUP, labelled by name.

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
        A fitted model.
    group : str, optional
        A grouping factor (a key of ``result.random_effects``); the first when omitted.
    term : str, optional
        One of the factor's terms (a column of ``result.random_effects[group]``, e.g.
        ``"Intercept"`` or ``"Days"``); the first when omitted.
    level : float
        Coverage of the intervals.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    InterlaceError
        For an unknown ``group`` or ``term``, or a ``level`` outside (0, 1).

    Examples
    --------
    >>> import interlace
    >>> from interlace import plots
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> ax = plots.caterpillar(m, "Subject", term="Days")
    >>> ax.get_yticklabels()[-1].get_text()  # the largest slope
    '308'
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
    """
    _check_fit(result)
    level = _check_level(level)
    group = _factor(result, group, "group")
    term, est, se = _term_effects(result, group, term)
    ax = _axes(ax)
    order = np.argsort(est.to_numpy(dtype=float), kind="stable")
    values = est.to_numpy(dtype=float)[order]
    half = float(_normal_quantile(0.5 + level / 2.0)) * se.to_numpy(dtype=float)[order]
    y = np.arange(len(values))
    ax.axvline(0.0, color="0.8", linewidth=1.0, zorder=0, gid="zero")
    ax.hlines(y, values - half, values + half, color="C0", linewidth=1.2, gid="interval")
    ax.plot(values, y, "o", color="C0", markersize=4, gid="blup")
    ax.set_yticks(y, [str(label) for label in est.index[order]])
    ax.set_ylim(-0.6, len(values) - 0.4)
    ax.set_xlabel(f"{term} (BLUP, {level:.0%} interval)")
    ax.set_ylabel(group)
    ax.set_title(f"{group}: {term}")
    return ax


# ----- residuals ------------------------------------------------------------------------
def residuals_vs_fitted(result, type: str | None = None, ax=None):  # noqa: A002 (R's argument name)
    """Residuals against fitted values, with a line at 0 (lme4's ``plot(m)``).

    A linear fit shows its residuals y - fitted (``result.resid``, conditional on the
    BLUPs; lme4's Pearson residuals of an unweighted fit) against ``fittedvalues``. A
    generalized fit shows its Pearson residuals by default, as lme4's ``plot``
    (``type`` any of ``result.residuals``' types: ``"deviance"``, ``"pearson"``,
    ``"response"``, ``"working"``), against the fitted means.

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
        A fitted model.
    type : str, optional
        A generalized fit's residual type (``"pearson"`` when omitted).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import interlace
    >>> from interlace import plots
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> ax = plots.residuals_vs_fitted(m)
    >>> ax.get_ylabel()
    'Residuals'
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
    """
    resid, label = _residuals(result, type, "pearson")
    ax = _axes(ax)
    ax.axhline(0.0, color="0.5", linewidth=1.0, zorder=0, gid="zero")
    ax.plot(np.asarray(result.fittedvalues, dtype=float), resid, "o", color="C0", markersize=3, alpha=0.7,
            gid="residuals")
    ax.set_xlabel("Fitted values")
    ax.set_ylabel(label)
    return ax


def qq(result, which: str = "residuals", term: str | None = None, type: str | None = None, ax=None):  # noqa: A002
    """A normal QQ plot of the residuals or of one term's BLUPs, with R's reference
    line (``qqnorm`` and ``qqline``).

    The sorted values against the normal quantiles of R's ``ppoints(n)``; the line
    passes through the values' first and third quartiles at the normal's.

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
        A fitted model.
    which : str
        ``"residuals"`` (a linear fit's y - fitted; a generalized fit's deviance
        residuals, R's ``resid(m)``, or those of ``type``), or a grouping factor's name
        for the BLUPs of one of its terms.
    term : str, optional
        The factor's term (its first when omitted).
    type : str, optional
        A generalized fit's residual type, for ``which="residuals"``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    InterlaceError
        When ``which`` is neither ``"residuals"`` nor a grouping factor, for an unknown
        ``term``, or a ``type`` with BLUPs.

    Examples
    --------
    >>> import interlace
    >>> from interlace import plots
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> ax = plots.qq(m, "Batch")
    >>> len(ax.get_lines()[0].get_xdata())  # six batches
    6
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
    """
    _check_fit(result)
    if which == "residuals":
        if term is not None:
            raise InterlaceError(f"term: applies to the BLUPs of a grouping factor (which=<factor>), "
                                 f"found term={term!r} with which='residuals'")
        values, label = _residuals(result, type, "deviance")
        title = "Residuals"
    else:
        group = _factor(result, which, "which")
        if type is not None:
            raise InterlaceError(f"type: applies to which='residuals', found type={type!r} with which={which!r}")
        term, est, _ = _term_effects(result, group, term)
        values, label, title = est.to_numpy(dtype=float), f"{term} (BLUP)", f"{group}: {term}"
    values = np.sort(values[np.isfinite(values)])
    theoretical = _normal_quantile(_ppoints(len(values)))
    q1, q3 = np.quantile(values, [0.25, 0.75])  # R's type 7, as qqline
    z1, z3 = _normal_quantile([0.25, 0.75])
    slope = (q3 - q1) / (z3 - z1)
    ax = _axes(ax)
    ax.plot(theoretical, values, "o", color="C0", markersize=3, gid="points")
    ends = np.array([theoretical[0], theoretical[-1]])
    ax.plot(ends, q1 + slope * (ends - z1), color="C3", linewidth=1.0, gid="reference")
    ax.set_xlabel("Normal quantiles")
    ax.set_ylabel(label)
    ax.set_title(title)
    return ax


# ----- profile --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Trace:
    """One parameter's profile on the caller's scale: values (increasing), zeta at
    each, and the interval's ends at the level."""

    name: str
    values: np.ndarray
    zeta: np.ndarray
    lower: float
    upper: float


def _trace_curve(curve, estimate: float, step: float, bounds: tuple[float, float], cut: float,
                 reach: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(u, zeta along u, [lower end, upper end] in u) of a profile curve: the ends where
    |zeta| = cut, then :data:`PROFILE_POINTS` evenly spaced points on each side out to
    |zeta| = reach (or the bound)."""
    from .inference.profile_search import interval_end

    u_points, zeta, ends = [estimate], [0.0], []
    for direction, bound in zip((-1.0, 1.0), bounds, strict=True):
        end = interval_end(curve, estimate, direction, cut, step, bound)
        far = interval_end(curve, estimate, direction, reach, step, bound)
        if not np.isfinite(far):  # no finite end: as far again as the level's end, or 4 reach steps
            far = estimate + (2.0 * (end - estimate) if np.isfinite(end) else direction * 4.0 * reach * step)
        previous = 0.0
        for t in np.linspace(0.0, abs(far - estimate), PROFILE_POINTS + 1)[1:]:
            u = estimate + direction * t
            w, _ = curve(u)
            if w < previous - 1e-6:  # a profile rises going outward: re-optimise from other starts
                w, _ = curve.confirm(u)
            previous = w
            u_points.append(u)
            zeta.append(direction * w)
        ends.append(end)
    return np.array(u_points), np.array(zeta), ends


def _profile_names(profiler, result, parm) -> list[str]:
    """The parameters asked for, in lme4's order (``"theta_"``: the variance parameters
    and sigma; ``"beta_"``: the fixed effects)."""
    variance = profiler.scale.names()
    fixed = [str(name) for name in result.fe_params.index]
    if parm is None:
        return [name for name in variance + fixed if _profile_drawable(profiler, name)]
    wanted = [parm] if isinstance(parm, str) else list(parm)
    out = []
    for name in wanted:
        group = {"theta_": variance, "beta_": fixed}.get(name, [name])
        for item in group:
            if item not in variance + fixed:
                raise InterlaceError(f"parm: expected names of confint(method='profile')'s rows "
                                     f"({', '.join(map(repr, variance + fixed))}), 'theta_' or 'beta_', found {name!r}")
            if not _profile_drawable(profiler, item):
                raise InterlaceError(f"parm: the profile of {item!r} (a correlation between a term's second and "
                                     "later effects) is not drawn; confint(method='profile') gives its interval")
            if item not in out:
                out.append(item)
    return out


def _profile_drawable(profiler, name: str) -> bool:
    """Every parameter but a correlation between a term's second and later effects (its
    profile runs on a reordered model)."""
    names = profiler.scale.names()
    if name not in names[:-1]:
        return True
    entry = profiler.scale.entries[names.index(name)]
    return entry.is_sd or entry.is_first_cor


def _profile_traces(profiler, result, names: list[str], level: float) -> list[_Trace]:
    """The profile of each named parameter on the caller's scale (a ``Profiler`` of
    :mod:`interlace.inference.profile`, the curves of :mod:`.profile_curves`)."""
    from .inference.profile_curves import FixedCurve, VarianceCurve

    cut = float(_normal_quantile(0.5 + level / 2.0))
    reach = max(cut, float(_normal_quantile(0.5 + PROFILE_REACH_LEVEL / 2.0)))
    variance = profiler.scale.names()
    fixed = [str(name) for name in result.fe_params.index]
    traces = []
    for name in names:
        if name in variance:
            i = variance.index(name)
            curve = VarianceCurve(profiler, i, None)
            lower = profiler.phi_lower[i] if i < profiler.scale.n_theta else 0.0
            u, zeta, ends = _trace_curve(curve, float(profiler.phi_hat[i]), profiler.variance_step(i),
                                         (lower, profiler.phi_upper[i]), cut, reach)
            if profiler.scale.is_sd[i]:  # an sd or sigma, in the caller's units
                unit = profiler.conditioning.unit
                values, ends = u * unit, [ends[0] * unit, ends[1] * unit]
            else:  # a correlation's angle: cor = cos(angle) falls as the angle grows
                values, zeta, ends = np.cos(u), -zeta, [float(np.cos(ends[1])), float(np.cos(ends[0]))]
        else:
            j = fixed.index(name)
            curve = FixedCurve(profiler, j)
            z, zeta, ends = _trace_curve(curve, 0.0, 1.0, (-np.inf, np.inf), cut, reach)
            estimate, se = float(profiler.beta_hat[j]), float(profiler.se_hat[j])
            values, ends = estimate + se * z, [estimate + se * ends[0], estimate + se * ends[1]]
        keep = np.isfinite(values) & np.isfinite(zeta)
        order = np.argsort(values[keep], kind="stable")
        traces.append(_Trace(name, values[keep][order], zeta[keep][order], float(ends[0]), float(ends[1])))
    return traces


def profile_zeta(result, parm: str | Sequence[str] | None = None, level: float = 0.95, fig=None):
    """The profile zeta of each parameter against its value, one panel per parameter
    (lme4's ``xyplot(profile(m))``).

    zeta = sign(value - estimate) * sqrt(deviance(value) - deviance at the optimum), the
    ML deviance with the other parameters re-optimised (a REML fit is refitted by ML, as
    lme4's ``profile``), on lme4's scale: the random effects' standard deviations and
    correlations, sigma and the fixed effects. Each curve runs through
    :data:`PROFILE_POINTS` points per side out to |zeta| = qnorm(0.995) (lme4's reach) or
    the parameter's bound, with dashed lines at zeta = -/+ qnorm((1 + level) / 2) and
    dotted lines at the interval's ends, the ends of ``confint(method="profile")``.

    Parameters
    ----------
    result : CrossedLMEResult
        A fitted linear mixed model.
    parm : str or sequence of str, optional
        Parameters, named as the rows of ``result.confint(method="profile")``
        (``"sd_(Intercept)|Batch"``, ``"sigma"``, ``"Intercept"``), or ``"theta_"`` (the
        variance parameters and sigma) and ``"beta_"`` (the fixed effects); all when
        omitted, but for correlations between a term's second and later effects, whose
        profile is not drawn.
    level : float
        Coverage of the interval marked.
    fig : matplotlib.figure.Figure, optional
        Where to draw the panels; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InterlaceError
        For a generalized fit (no profile), an unknown ``parm`` or a ``level`` outside (0, 1).

    Examples
    --------
    >>> import interlace
    >>> from interlace import plots
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> fig = plots.profile_zeta(m)
    >>> [ax.get_title() for ax in fig.axes]
    ['sd_(Intercept)|Batch', 'sigma', 'Intercept']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    from .inference.profile import MAX_REFITS, Profiler

    _check_fit(result, linear_only=True)
    level = _check_level(level)
    profiler = Profiler.of_fit(result)
    names = _profile_names(profiler, result, parm)
    for _ in range(MAX_REFITS + 1):
        traces = _profile_traces(profiler, result, names, level)
        better = profiler.refitted()
        if better is None:
            break
        warnings.warn(f"profile_zeta: the profile found an ML deviance of {better.base_deviance:.6f}, below the "
                      f"{profiler.base_deviance:.6f} of the fit's optimum (refitted by ML); the curves are "
                      "profiled from the lower optimum", ConvergenceWarning, stacklevel=2)
        profiler = better
    cut = float(_normal_quantile(0.5 + level / 2.0))
    fig, axes = _panels(fig, len(traces))
    for k, (ax, trace) in enumerate(zip(axes, traces, strict=True)):
        ax.axhline(0.0, color="0.85", linewidth=0.8, zorder=0, gid="zero")
        for value in (-cut, cut):
            ax.axhline(value, color="0.5", linestyle="--", linewidth=0.8, gid="cut")
        for end in (trace.lower, trace.upper):
            if np.isfinite(end):
                ax.axvline(end, color="C3", linestyle=":", linewidth=1.0, gid="interval")
        ax.plot(trace.values, trace.zeta, "-", marker=".", color="C0", markersize=4, gid="zeta")
        ax.set_title(trace.name)
        if k % 3 == 0:
            ax.set_ylabel("zeta")
    return fig


# ----- influence ------------------------------------------------------------------------
def _influence_column(diagnostic: Any, approx: bool) -> tuple[str, tuple[str, ...]]:
    """(column of hlm_influence, leverage types to ask for) of a ``diagnostic`` name."""
    from .diagnostics.influence import MEASURES
    from .diagnostics.leverage import LEVERAGE_TYPES

    leverage = tuple(f"leverage.{t}" for t in LEVERAGE_TYPES)
    if diagnostic in MEASURES:
        return diagnostic, ()
    if diagnostic == "leverage":
        return "leverage.overall", ("overall",)
    if diagnostic in leverage:
        return diagnostic, (diagnostic[len("leverage."):],)
    if isinstance(diagnostic, str) and diagnostic.startswith("rvc."):
        if approx:
            raise InterlaceError(f"diagnostic: {diagnostic!r} comes from exact deletion; pass approx=False")
        return diagnostic, ()
    raise InterlaceError(f"diagnostic: expected one of {', '.join(map(repr, MEASURES + ('leverage',) + leverage))} "
                         f"or 'rvc.<component>' (with approx=False), found {diagnostic!r}")


def _internal_cutoff(values: np.ndarray, two_sided: bool) -> tuple[float, ...]:
    """HLMdiag's ``internal_cutoff``: Q3 + 3 IQR, and Q1 - 3 IQR below as well for a
    two-sided diagnostic (R's type 7 quartiles, numpy's default)."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    iqr = q3 - q1
    upper = float(q3 + INTERNAL_IQR * iqr)
    return (float(q1 - INTERNAL_IQR * iqr), upper) if two_sided else (upper,)


def _cutoffs(cutoff: Any, values: np.ndarray, two_sided: bool) -> tuple[float, ...]:
    if cutoff is None:
        return _internal_cutoff(values, two_sided)
    expected = "two numbers (lower, upper)" if two_sided else "a number"
    try:
        cuts = tuple(float(c) for c in np.atleast_1d(np.asarray(cutoff, dtype=float)))
    except (TypeError, ValueError):
        cuts = ()
    if len(cuts) != (2 if two_sided else 1) or not all(np.isfinite(cuts)) or (two_sided and cuts[0] > cuts[1]):
        raise InterlaceError(f"cutoff: expected {expected} for this diagnostic, found {cutoff!r}")
    return cuts


def influence(result, diagnostic: str = "cooksd", level: int | str | None = None,
              cutoff: float | Sequence[float] | None = None, approx: bool = True, n_labels: int = 5,
              ax=None):
    """One dot per observation (or per level of a grouping factor), sorted, with a
    cut-off line; the points beyond it marked and labelled (HLMdiag's ``dotplot_diag``).

    The values are :func:`interlace.hlm_influence`'s. The default cut-off is HLMdiag's
    ``cutoff = "internal"`` (its ``internal_cutoff``): the third quartile plus three
    interquartile ranges, Q3 + 3 IQR; for ``covratio`` and the ``rvc``'s, which are
    unusual on either side, also Q1 - 3 IQR below. A point is beyond the cut-off when it
    is above it (or below the lower one), as HLMdiag marks it, by more than rounding
    (:data:`TIE_TOLERANCE`). Points beyond
    are red triangles; the ``n_labels`` farthest beyond (HLMdiag labels five) are
    labelled with the observation's ``id`` (0-based row of the data passed to ``fit``)
    or the level's name.

    Parameters
    ----------
    result : CrossedLMEResult
        A fitted linear mixed model.
    diagnostic : str
        ``"cooksd"``, ``"mdffits"``, ``"covtrace"``, ``"covratio"``, ``"leverage"`` (the
        overall leverage), ``"leverage.<type>"`` (``fixef``, ``ranef``, ``ranef.uc``) or,
        with ``approx=False``, ``"rvc.<component>"`` (``"rvc.sigma2"``, ``"rvc.D11"``, ...).
    level : str, optional
        A grouping factor whose levels are deleted in turn; the observations when omitted
        (HLMdiag's ``level = 1``).
    cutoff : float or (float, float), optional
        The cut-off (two values, lower and upper, for ``covratio`` and ``rvc``); HLMdiag's
        internal one when omitted.
    approx : bool
        One-step deletion (default) or exact refits, as :func:`interlace.hlm_influence`.
    n_labels : int
        How many of the points beyond the cut-off to label, the farthest first.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    InterlaceError
        For a generalized fit, an unknown ``diagnostic`` or ``level``, or a malformed
        ``cutoff``.

    Examples
    --------
    >>> import interlace
    >>> from interlace import plots
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> import matplotlib.pyplot as plt
    >>> ax = plots.influence(m, "cooksd", level="Subject")
    >>> [round(float(line.get_xdata()[0]), 4) for line in ax.lines if line.get_gid() == "cutoff"]
    [0.3353]
    >>> plt.close(ax.figure)
    >>> ax = plots.influence(m, "cooksd")  # observations: 16 beyond Q3 + 3 IQR, 5 labelled
    >>> len([line for line in ax.lines if line.get_gid() == "beyond"][0].get_xdata()), len(ax.texts)
    (16, 5)
    >>> plt.close(ax.figure)
    """
    from .diagnostics.influence import influence_columns
    from .diagnostics.residuals import require_linear

    require_linear(result, "influence")
    column, leverage = _influence_column(diagnostic, approx)
    columns = influence_columns(result, 1 if level is None else level, approx, leverage=leverage)
    if column not in columns:
        found = [name for name in columns if name.startswith("rvc.")]
        raise InterlaceError(f"diagnostic: expected one of the exact deletion's {', '.join(map(repr, found))}, "
                             f"found {diagnostic!r}")
    labels = np.asarray(next(iter(columns.values())), dtype=object)  # the ids or the level names
    values = np.asarray(columns[column], dtype=float)
    finite = np.isfinite(values)
    labels, values = labels[finite], values[finite]
    two_sided = column.startswith(TWO_SIDED)
    cuts = _cutoffs(cutoff, values, two_sided)
    order = np.argsort(values, kind="stable")
    labels, values = labels[order], values[order]
    tolerance = TIE_TOLERANCE * float(np.max(np.abs(values), initial=0.0))
    beyond = values > cuts[-1] + tolerance
    if two_sided:
        beyond |= values < cuts[0] - tolerance
    y = np.arange(len(values))
    ax = _axes(ax)
    for cut in cuts:
        ax.axvline(cut, color="C3", linewidth=1.0, gid="cutoff")
    ax.plot(values[~beyond], y[~beyond], "o", color="C0", markersize=3, gid="within")
    ax.plot(values[beyond], y[beyond], "^", color="C3", markersize=5, gid="beyond")
    distance = np.maximum(values - cuts[-1], cuts[0] - values if two_sided else -np.inf)
    labelled = np.flatnonzero(beyond)[np.argsort(-distance[beyond], kind="stable")][: max(int(n_labels), 0)]
    for value, at, label in zip(values[labelled], y[labelled], labels[labelled], strict=True):
        ax.annotate(str(label), (value, at), xytext=(-4, 0), textcoords="offset points", ha="right",
                    va="center", fontsize=8, gid="label")
    ax.set_yticks([])
    ax.set_xlabel(column)
    ax.set_ylabel("observations, sorted" if level is None or level == 1 else f"levels of {level}, sorted")
    return ax


# ----- bootstrap ------------------------------------------------------------------------
def bootstrap_distribution(boot, parm: Any = None, level: float = 0.95, bins: Any = "auto", fig=None):
    """Histograms of a parametric bootstrap's replicates, one panel per statistic, with
    the percentile interval (dashed) and the statistic on the fit (solid) marked.

    Failed replicates (rows of NaN, ``boot.failed``) are left out, as
    ``boot.confidence_interval`` leaves them out.

    Parameters
    ----------
    boot : BootstrapResult
        The result of ``result.bootMer(...)``.
    parm : label or sequence of labels, optional
        Statistics to show (columns of ``boot.replicates``); all when omitted.
    level : float
        Coverage of the percentile interval (``boot.confidence_interval(level)``).
    bins : int, sequence or str
        numpy's / matplotlib's ``bins``.
    fig : matplotlib.figure.Figure, optional
        Where to draw the panels; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InterlaceError
        When ``boot`` is not a bootstrap result, for an unknown ``parm``, or a ``level``
        outside (0, 1).

    Examples
    --------
    >>> import interlace
    >>> from interlace import plots
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> fig = plots.bootstrap_distribution(m.bootMer(B=20, seed=1))
    >>> [ax.get_title() for ax in fig.axes]
    ['Intercept']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    if not isinstance(boot, BootstrapResult):
        raise InterlaceError(f"boot: expected a BootstrapResult (from result.bootMer(...)), "
                             f"found {boot.__class__.__name__}")
    level = _check_level(level)
    available = list(boot.replicates.columns)
    if parm is None:
        names = available
    else:
        names = [parm] if isinstance(parm, str) or not isinstance(parm, Sequence) else list(parm)
        for name in names:
            if name not in available:
                raise InterlaceError(f"parm: expected statistics of the bootstrap "
                                     f"({', '.join(map(repr, available))}), found {name!r}")
    interval = boot.confidence_interval(level)
    fig, axes = _panels(fig, len(names))
    for ax, name in zip(axes, names, strict=True):
        values = boot.replicates[name].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        _, _, patches = ax.hist(values, bins=bins, color="C0", alpha=0.75)
        for patch in patches:
            patch.set_gid("replicates")
        for end in interval.loc[name, ["lower", "upper"]]:
            if np.isfinite(end):
                ax.axvline(end, color="C3", linestyle="--", linewidth=1.0, gid="interval")
        original = float(boot.original[name])
        if np.isfinite(original):
            ax.axvline(original, color="k", linewidth=1.0, gid="original")
        ax.set_title(str(name))
        ax.set_xlabel(f"{len(values)} replicates, {level:.0%} percentile interval")
    return fig
