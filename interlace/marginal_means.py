"""Estimated marginal means and their contrasts, as R's emmeans 1.8.4 computes them.

The reference grid is emmeans' ``ref_grid``: every variable of the fixed part at
every level of a factor (a string, boolean or ``factor(x)`` column too), a numeric
covariate at its mean over the rows used, or at its sorted distinct values when it
has at most two (emmeans' ``cov.keep = "2"``), or at the values ``at`` gives. Its rows
(first variable fastest, as ``expand.grid``) become rows x of the fixed-effects
matrix through the fit's own model spec; an EMM of a cell of ``specs`` (and ``by``)
is the average of its grid rows with equal weights, L = mean(x), estimate L beta
(plus the formula's ``offset()`` terms at the grid), SE sqrt(L V L'). A linear
model's df are Satterthwaite's or Kenward-Roger's for L (V then pbkrtest's adjusted
covariance, as emmeans' ``lmer.df``); a generalized model's are infinite (z), on the
link scale, or back-transformed to the response with the delta method
(``type="response"``: SE |dmu/deta| SE, intervals the link's ends back-transformed).

Pairwise contrasts are differences of EMMs within each ``by`` group, with emmeans'
labels (a factor whose levels are numbers is named: ``period1 - period2``) and its
p value adjustments: Tukey's studentized range for the family of EMMs, Holm,
Bonferroni, Sidak or none, per ``by`` group.

Examples
--------
>>> import interlace
>>> cake = interlace.load_dataset("cake")
>>> m = interlace.fit("angle ~ recipe * temperature + (1 | recipe:replicate)", cake)
>>> emm = interlace.emmeans(m, "recipe")
>>> emm.table.round(3)
  recipe  emmean     SE    df  lower.CL  upper.CL
0      A  33.122  1.737  42.0    29.617    36.627
1      B  31.644  1.737  42.0    28.139    35.150
2      C  31.600  1.737  42.0    28.095    35.105
>>> emm.pairs().table.round(4)
  contrast  estimate      SE    df  t.ratio  p.value
0    A - B    1.4778  2.4563  42.0   0.6016   0.8200
1    A - C    1.5222  2.4563  42.0   0.6197   0.8102
2    B - C    0.0444  2.4563  42.0   0.0181   0.9998
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import pandas as pd

from .errors import InterlaceError

ADJUSTMENTS = ("tukey", "holm", "bonferroni", "sidak", "none")
"""Names accepted by ``adjust=``."""

DF_METHODS = ("satterthwaite", "kenward-roger", "asymptotic")
"""Names accepted by ``df_method=`` (emmeans' ``lmer.df``)."""

COV_KEEP = 2
"""A numeric covariate with at most this many distinct values enters the grid at each
of them, not at its mean (emmeans' default ``cov.keep = "2"``)."""

ESTIMABLE_TOL = 1e-8
"""A row x of a rank-deficient model is estimable when |N'x|^2 < tol |x|^2, N a basis of
X's null space (emmeans' ``estble.tol``, the estimability package's test)."""

ZAP_DIGITS = 7
"""Digits R's ``zapsmall`` keeps of the df before Tukey's p values (as emmeans)."""

PARENS = re.compile(r"-|\+|/|\*")
"""Contrast labels of levels matching this are parenthesised (emmeans' ``parens``)."""

_R_NUMBER = re.compile(r"^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|Inf|inf)\s*$")
_FACTOR_CALL = re.compile(r"(?<![\w.])(?:as\.)?factor\(\s*`?([A-Za-z_.][\w.]*)`?\s*\)")


@dataclass(frozen=True)
class _Basis:
    """What every row's estimate, SE and df need: beta and V over the model spec's
    full columns (zero where the fit dropped a redundant column), the null space of
    rank-deficient X, the df rule and the link."""

    beta: np.ndarray
    vcov: np.ndarray
    kept: np.ndarray
    null_basis: np.ndarray | None
    df_method: str
    df_of: Callable[[np.ndarray], float] = field(repr=False)
    link: Any = None
    response_label: str | None = None

    def estimates(self, L: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(estimate, SE, df) of the rows of L (full columns); NaN where not estimable."""
        est = L @ self.beta + offset
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", L, self.vcov, L), 0.0))
        df = np.array([self.df_of(row[self.kept]) for row in L]) if len(L) else np.zeros(0)
        if self.null_basis is not None:
            check = L @ self.null_basis
            ssq = np.sum(L * L, axis=1)
            ok = np.sum(check * check, axis=1) < ESTIMABLE_TOL * np.where(ssq < ESTIMABLE_TOL, 1.0, ssq)
            est, se, df = (np.where(ok, v, np.nan) for v in (est, se, df))
        return est, se, df


@dataclass(frozen=True)
class EMMeans:
    """Estimated marginal means (emmeans' ``emmGrid`` of ``emmeans()``).

    Attributes
    ----------
    table : pandas.DataFrame
        emmeans' ``summary``: the ``specs`` and ``by`` columns, ``emmean`` (or the
        response-scale mean: ``prob``, ``rate`` or ``response``), ``SE``, ``df`` and the
        interval (``lower.CL``/``upper.CL``, or ``asymp.LCL``/``asymp.UCL`` when every
        df is infinite).
    linfct : pandas.DataFrame
        L, one row per EMM, over the fixed effects (``fe_params``' names).
    grid : pandas.DataFrame
        The reference grid: one row per combination of the variables' values.
    specs, by : tuple of str
        The variables the means are for, and those that group them.
    level : float
        The intervals' confidence level.
    type : str
        ``"link"`` or ``"response"``.
    notes : tuple of str
        emmeans' annotations (averaging, df method, scale).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("angle ~ recipe * temperature + (1 | recipe:replicate)",
    ...                   interlace.load_dataset("cake"))
    >>> emm = interlace.emmeans(m, "~ temperature | recipe", df_method="kenward-roger")
    >>> emm.specs, emm.by, emm.table.shape, emm.linfct.shape
    (('temperature',), ('recipe',), (18, 7), (18, 18))
    >>> emm.notes[0]
    'Degrees-of-freedom method: kenward-roger'
    """

    table: pd.DataFrame
    linfct: pd.DataFrame
    grid: pd.DataFrame
    specs: tuple[str, ...]
    by: tuple[str, ...]
    level: float
    type: str
    notes: tuple[str, ...]
    _levels: pd.DataFrame = field(repr=False)
    _L: np.ndarray = field(repr=False)
    _offset: np.ndarray = field(repr=False)
    _basis: _Basis = field(repr=False)

    def pairs(self, adjust: str = "tukey", reverse: bool = False) -> EMMContrasts:
        """Pairwise differences within each ``by`` group (emmeans' ``pairs``):
        ``"a - b"`` for every a before b (``reverse=True``: ``"b - a"``, emmeans'
        ``revpairwise``).

        Examples
        --------
        >>> import interlace
        >>> g = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                   interlace.load_dataset("cbpp"), family="binomial")
        >>> interlace.emmeans(g, "period").pairs(adjust="holm").table.iloc[:2].round(4)
                   contrast  estimate      SE   df  z.ratio  p.value
        0  period1 - period2    0.9923  0.3066  inf   3.2362   0.0048
        1  period1 - period3    1.1287  0.3266  inf   3.4555   0.0027
        """
        return self.contrast("revpairwise" if reverse else "pairwise", adjust)

    def contrast(self, method: str | Mapping[str, Sequence[float]] = "pairwise",
                 adjust: str | None = None) -> EMMContrasts:
        """Contrasts of the EMMs within each ``by`` group (emmeans' ``contrast``).

        Parameters
        ----------
        method : str or dict
            ``"pairwise"``, ``"revpairwise"``, or named coefficient vectors, one
            coefficient per EMM of a ``by`` group (emmeans' list of contrasts).
        adjust : str, optional
            One of :data:`ADJUSTMENTS`; by default ``"tukey"`` for pairwise methods and
            ``"none"`` for named coefficients (as emmeans). Tukey's method for other
            than pairwise differences becomes Sidak's, as emmeans.

        Examples
        --------
        >>> import interlace
        >>> m = interlace.fit("angle ~ recipe + (1 | recipe:replicate)", interlace.load_dataset("cake"))
        >>> emm = interlace.emmeans(m, "recipe")
        >>> emm.contrast({"A vs B, C": [1, -0.5, -0.5]}).table.round(3)
            contrast  estimate     SE    df  t.ratio  p.value
        0  A vs B, C     1.5  2.127  42.0    0.705    0.485
        """
        return _contrast(self, method, adjust)

    def __str__(self) -> str:
        return "\n".join([self.table.to_string(index=False), "", *self.notes])


@dataclass(frozen=True)
class EMMContrasts:
    """Contrasts of estimated marginal means (emmeans' ``contrast``/``pairs`` summary).

    Attributes
    ----------
    table : pandas.DataFrame
        ``contrast``, the ``by`` columns, ``estimate`` (``ratio`` or ``odds.ratio``
        back-transformed from a log or logit link with ``type="response"``, then with
        ``null``), ``SE``, ``df``, ``t.ratio`` (``z.ratio`` with infinite df) and
        ``p.value``.
    linfct : pandas.DataFrame
        One row per contrast over the fixed effects.
    adjust : str
        The p value adjustment applied.
    notes : tuple of str
        emmeans' annotations.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> pairs = interlace.emmeans(m, "Days", at={"Days": [0, 4.5, 9]}).pairs(adjust="holm")
    >>> pairs.table["contrast"].tolist(), pairs.adjust
    (['Days0 - Days4.5', 'Days0 - Days9', 'Days4.5 - Days9'], 'holm')
    """

    table: pd.DataFrame
    linfct: pd.DataFrame
    adjust: str
    notes: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join([self.table.to_string(index=False), "", *self.notes])


# ----- arguments ------------------------------------------------------------------------

def _names(value: Any, argument: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InterlaceError(f"{argument}: expected a variable name or a list of names, found {value!r}")


def parse_specs(specs: Any, by: Any = None) -> tuple[list[str], list[str]]:
    """``specs`` and ``by`` as lists of names: a name, a list of names, or emmeans'
    one-sided formula ``"~ a * b | c"`` (the variables of its right-hand side; after
    ``|`` those that group them, less any before it). As emmeans, a ``by`` name may also
    be among names given as a list: it then groups the others.

    Examples
    --------
    >>> parse_specs("~ temperature | recipe")
    (['temperature'], ['recipe'])
    >>> parse_specs(["a", "b"], by="c")
    (['a', 'b'], ['c'])
    """
    by_names = _names(by, "by")
    if isinstance(specs, str) and "~" in specs:
        lhs, _, rhs = specs.partition("~")
        if lhs.strip():
            raise InterlaceError(
                f"specs: expected a one-sided formula such as '~ recipe' (contrasts are a separate "
                f"step: emmeans(...).pairs()), found {specs!r}")
        main, _, grouping = rhs.partition("|")
        split = re.compile(r"[+*:]")
        names = [n.strip().strip("`") for n in split.split(main) if n.strip()]
        extra = [n.strip().strip("`") for n in split.split(grouping) if n.strip()]
        if not names:
            raise InterlaceError(f"specs: expected variable names after '~', found {specs!r}")
        return names, [n for n in dict.fromkeys(extra + by_names) if n not in names]
    names = _names(specs, "specs")
    if not names:
        raise InterlaceError("specs: expected at least one variable name, found none")
    return names, by_names


def _design_of(result: Any) -> tuple[Any, Any]:
    """The fit's caller-scale design and the fitted model kind."""
    from .glmm_result import CrossedGLMMResult
    from .result import CrossedLMEResult

    if isinstance(result, CrossedLMEResult):
        return result._conditioning.design, "linear"
    if isinstance(result, CrossedGLMMResult):
        return result._fit.design, "generalized"
    raise InterlaceError(
        f"result: expected a fit of interlace.fit (CrossedLMEResult or CrossedGLMMResult), "
        f"found {type(result).__name__}")


# ----- the reference grid ----------------------------------------------------------------

def _formula_offsets(design: Any, result: Any) -> tuple[str, ...]:
    """The formula's ``offset()`` terms (emmeans reads those; an ``offset=`` argument of
    the fit, which lme4 keeps apart from the formula, it leaves out)."""
    terms = design.fixed.offset_terms
    return terms[:-1] if isinstance(result.fit_options.get("offset"), str) and terms else terms


def _variables(design: Any, offsets: tuple[str, ...]) -> list[str]:
    from .formula import rexpr
    from .formula.fixed import variables

    used = set(variables(design.fixed.model_spec, design.table.columns))
    for source in offsets:
        used |= set(rexpr.names_read(rexpr.parse(source)))
    return [c for c in design.table.columns if c in used]


def _r_number(x: float) -> str:
    """``as.character(x)`` of an R double: 15 significant digits, fixed unless the
    scientific form is shorter."""
    if not np.isfinite(x):
        return "NaN" if np.isnan(x) else ("Inf" if x > 0 else "-Inf")
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.14e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    e = int(exponent)
    digits = len(mantissa.lstrip("-").replace(".", ""))
    scientific = f"{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    fixed = f"{x:.{max(0, digits - 1 - e)}f}"
    return fixed if len(fixed) <= len(scientific) else scientific


def _label(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _r_number(float(value))
    return str(value)


def _grid_values(name: str, column: pd.Series, at: Mapping[str, Any], coerced: set[str]) -> list:
    """A variable's values in the reference grid: a factor's levels (those ``at`` names),
    a covariate's mean, its at most :data:`COV_KEEP` distinct values, or ``at``'s values."""
    numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().unique())
        levels = [c for c in column.cat.categories if c in present]
    elif numeric and name in coerced:
        levels = sorted(pd.unique(column.dropna()).tolist())
    elif not numeric:
        levels = sorted(pd.unique(column.dropna()).tolist())
    else:
        if name in at:
            values = np.atleast_1d(np.asarray(at[name]))
            try:
                values = values.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InterlaceError(f"at: {name!r} is a numeric covariate; expected numbers, found "
                                     f"{list(values)!r}") from exc
            return values.tolist()
        distinct = np.unique(column.to_numpy(dtype=np.float64))
        if len(distinct) <= COV_KEEP:
            return distinct.tolist()
        return [float(np.mean(column.to_numpy(dtype=np.float64)))]
    if name in at:
        wanted = list(np.atleast_1d(np.asarray(at[name], dtype=object)))
        by_label = {_label(v): v for v in levels}
        unknown = [w for w in wanted if _label(w) not in by_label]
        if unknown:
            raise InterlaceError(f"at: {name!r} takes its levels in the fit ({', '.join(map(_label, levels))}), "
                                 f"found {', '.join(map(_label, unknown))}")
        levels = [by_label[_label(w)] for w in wanted]
    return levels


def _reference_grid(result: Any, design: Any, at: Mapping[str, Any] | None,
                    offsets: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, list]]:
    """The grid (one row per combination, the first variable fastest) and each variable's values."""
    from .formula.random import split_formula

    if at is not None and not isinstance(at, Mapping):
        raise InterlaceError(f"at: expected a dict of variable name to values, found {type(at).__name__}")
    at = dict(at or {})
    names = _variables(design, offsets)
    unknown = [a for a in at if a not in names]
    if unknown:
        raise InterlaceError(f"at: {', '.join(map(repr, unknown))} not among the fixed part's variables "
                             f"({', '.join(names) or 'none'})")
    fixed_formula = split_formula(result.model.formula)[0]
    coerced = set(_FACTOR_CALL.findall(fixed_formula))
    table = design.table
    values = {name: _grid_values(name, table[name], at, coerced) for name in names}
    rows = [tuple(reversed(combo)) for combo in product(*(values[n] for n in reversed(names)))]
    grid = pd.DataFrame(rows, columns=names) if names else pd.DataFrame(index=range(1))
    for name in names:
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            grid[name] = pd.Categorical(grid[name], categories=column.cat.categories)
        elif pd.api.types.is_bool_dtype(column.dtype):
            grid[name] = grid[name].astype(bool)
    return grid, values


def _null_basis(design: Any, n_full: int) -> np.ndarray | None:
    """An orthonormal basis of the null space of the fit's full X (None: full rank)."""
    from .formula.fixed import design_for_new_data

    rank = len(design.kept_columns)
    if rank == n_full:
        return None
    X = design_for_new_data(design.fixed.model_spec, design.table)
    _, _, vt = np.linalg.svd(X, full_matrices=True)
    return vt[rank:].T


# ----- inference ------------------------------------------------------------------------

def _basis(result: Any, kind: str, design: Any, n_full: int, df_method: str | None, type: str) -> _Basis:  # noqa: A002
    from .arguments import choice

    kept = np.asarray(design.kept_columns)
    if kind == "generalized":
        method = choice("df_method", df_method or "asymptotic", ("asymptotic",))
        vcov_kept = np.asarray(result.fe_cov)
        link = result.family.link
        label = None
        if link.name != "identity":
            label = {"binomial": "prob", "poisson": "rate"}.get(result.family.name, "response")

        def df_of(L):
            return np.inf
    else:
        method = choice("df_method", df_method or result.df_method, DF_METHODS)
        link = label = None
        if type == "response" and not design.fixed.response_name.isidentifier():
            raise InterlaceError(
                f"type: 'response' back-transforms a generalized model's link; this linear model's response "
                f"{design.fixed.response_name!r} is transformed in the formula (emmeans would undo it), which "
                "interlace does not: use type='link'")
        vcov_kept = np.asarray(result.fe_cov)
        if method == "kenward-roger":
            kr = result.kenward_roger
            vcov_kept = np.asarray(kr.vcov_adjusted)

            def df_of(L):
                return float(kr.ddf(L))
        elif method == "satterthwaite":
            from .inference.satterthwaite import satterthwaite_df

            conditioning, working_cov, varpar = result._conditioning, result._working_cov, result._varpar

            def df_of(L):
                return float(satterthwaite_df(conditioning.direction(L), working_cov, varpar))
        else:
            def df_of(L):
                return np.inf
    beta = np.zeros(n_full)
    beta[kept] = result.fe_params.to_numpy()
    vcov = np.zeros((n_full, n_full))
    vcov[np.ix_(kept, kept)] = vcov_kept
    return _Basis(beta, vcov, kept, _null_basis(design, n_full), method, df_of, link, label)


def _asymptotic(df: np.ndarray, basis: _Basis) -> bool:
    """Whether every df is infinite (emmeans' z statistics and ``asymp.`` intervals)."""
    if not len(df):
        return basis.df_method == "asymptotic"
    return bool(np.all(np.isnan(df) | np.isinf(df)))


def _quantile(level: float, df: np.ndarray) -> np.ndarray:
    from scipy import stats

    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(df), stats.norm.ppf(0.5 + level / 2.0),
                        stats.t.ppf(0.5 + level / 2.0, np.where(np.isinf(df), 1.0, df)))


def _two_sided(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    from scipy import stats

    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(df), 2.0 * stats.norm.sf(np.abs(t)),
                        2.0 * stats.t.sf(np.abs(t), np.where(np.isinf(df), 1.0, df)))


def _zapsmall(x: np.ndarray, digits: int = ZAP_DIGITS) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest |x|."""
    finite = x[~np.isnan(x)]
    if not finite.size:
        return x
    largest = float(np.max(np.abs(finite)))
    if largest > 0:
        keep = max(0, digits - math.ceil(math.log10(largest))) if np.isfinite(largest) else 0
    else:
        keep = digits
    return np.round(x, keep)


def _holm(p: np.ndarray, n: int) -> np.ndarray:
    """R's ``p.adjust(p, "holm", n)`` (NaN entries stay NaN)."""
    out = np.full(len(p), np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    ranked = (n - np.arange(len(order))) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(ranked)) if len(order) else ranked
    return out


def _adjusted(t: np.ndarray, df: np.ndarray, adjust: str, family: int, groups: list[np.ndarray],
              per_group: int) -> np.ndarray:
    """emmeans' ``.adj.p.value`` for two-sided tests (``family``: Tukey's number of means)."""
    from scipy import stats

    p = _two_sided(t, df)
    if adjust == "none":
        return p
    if adjust == "tukey":
        zapped = _zapsmall(df)
        with np.errstate(invalid="ignore"):
            return np.asarray(stats.studentized_range.sf(np.sqrt(2.0) * np.abs(t), family, zapped), dtype=float)
    if adjust == "sidak":
        return 1.0 - (1.0 - p) ** per_group
    out = np.empty(len(p))
    for rows in groups:
        if adjust == "holm":
            out[rows] = _holm(p[rows], len(rows))
        else:  # bonferroni
            out[rows] = np.minimum(1.0, len(rows) * p[rows])
    return out


def _cell_means(grid: pd.DataFrame, values: dict[str, list], facs: list[str], X: np.ndarray,
                grid_offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """L and the offset of each combination of ``facs`` (first fastest): the equal-weight
    means of its grid rows; and the combinations' values."""
    position, stride = {}, 1
    for name in values:  # each grid row's position in each variable's values
        position[name] = (np.arange(len(grid)) // stride) % len(values[name])
        stride *= len(values[name])
    cell, stride = np.zeros(len(grid), dtype=np.int64), 1
    for name in facs:
        cell += position[name] * stride
        stride *= len(values[name])
    counts = np.bincount(cell, minlength=stride).astype(float)
    L = np.zeros((stride, X.shape[1]))
    np.add.at(L, cell, X)
    offset = np.bincount(cell, weights=grid_offset, minlength=stride) / counts
    combos = [tuple(reversed(c)) for c in product(*(values[n] for n in reversed(facs)))]
    levels = pd.DataFrame(combos, columns=facs)
    for name in facs:
        if name in grid and isinstance(grid[name].dtype, pd.CategoricalDtype):
            kept = set(values[name])
            levels[name] = pd.Categorical(levels[name], [c for c in grid[name].cat.categories if c in kept])
    return L / counts[:, None], offset, levels


# ----- emmeans -----------------------------------------------------------------------------

def emmeans(result: Any, specs: Any, by: Any = None, at: Mapping[str, Any] | None = None,
            level: float = 0.95, type: str = "link", df_method: str | None = None) -> EMMeans:  # noqa: A002
    """Estimated marginal means of a fit, as R's ``emmeans(m, specs, by, at = at)``.

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
        A fit of :func:`interlace.fit`.
    specs : str or list of str
        The variables the means are for: a name, a list of names, or emmeans' formula
        ``"~ temperature | recipe"`` (after ``|``: the ``by`` variables).
    by : str or list of str, optional
        Variables that group the means (and their contrasts).
    at : dict, optional
        Values of grid variables: numbers for a covariate (the grid takes each), a
        subset of a factor's levels.
    level : float
        Confidence level of the intervals.
    type : {"link", "response"}
        The scale of a generalized model's means (``"response"``: back-transformed,
        delta-method SE); a linear model's are the same on both.
    df_method : {"satterthwaite", "kenward-roger", "asymptotic"}, optional
        A linear model's df (emmeans' ``lmer.df``); the fit's ``df_method`` by default.
        A generalized model's are ``"asymptotic"``.

    Returns
    -------
    EMMeans
        Its ``table`` is emmeans' summary; ``pairs()`` and ``contrast()`` compare the means.

    Examples
    --------
    >>> import interlace
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    >>> interlace.emmeans(m, "Days", at={"Days": [0, 9]}).table.round(3)
       Days   emmean      SE    df  lower.CL  upper.CL
    0   0.0  251.405   6.825  17.0   237.007   265.804
    1   9.0  345.611  14.629  17.0   314.747   376.475
    """
    from .arguments import choice
    from .formula.fixed import design_for_new_data, offset_values

    design, kind = _design_of(result)
    spec_names, by_names = parse_specs(specs, by)
    type = choice("type", type, ("link", "response"))  # noqa: A001
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise InterlaceError(f"level: expected a number between 0 and 1, found {level!r}")
    offsets = _formula_offsets(design, result)
    grid, values = _reference_grid(result, design, at, offsets)
    if "1" in spec_names + by_names:  # emmeans' grand mean: one level, "overall"
        values = {"1": ["overall"], **values}
    facs = list(dict.fromkeys(spec_names + by_names))
    missing = [n for n in facs if n not in values]
    if missing:
        argument = "specs" if any(n in spec_names for n in missing) else "by"
        raise InterlaceError(
            f"{argument}: {', '.join(map(repr, missing))} is not a variable of the fixed part "
            f"(the reference grid has {', '.join(map(repr, values)) or 'no variables'})")
    if not [n for n in facs if n not in by_names]:
        raise InterlaceError(f"by: {by_names!r} takes every variable of specs {spec_names!r}; expected "
                             "at least one variable of specs outside by")
    X = design_for_new_data(design.fixed.model_spec, grid)
    grid_offset = offset_values(offsets, grid) if offsets else np.zeros(len(grid))
    L, offset, levels = _cell_means(grid, values, facs, X, grid_offset)
    basis = _basis(result, kind, design, X.shape[1], df_method, type)
    est, se, df = basis.estimates(L, offset)
    table = levels.copy()
    notes = []
    averaged = [n for n in values if n not in facs and len(values[n]) > 1]
    if averaged:
        notes.append(f"Results are averaged over the levels of: {', '.join(averaged)}")
    if kind == "linear":
        notes.append(f"Degrees-of-freedom method: {basis.df_method}")
    q = _quantile(level, df)
    lower, upper = est - q * se, est + q * se
    inverse = type == "response" and basis.response_label is not None
    asymptotic = _asymptotic(df, basis)
    if basis.response_label is not None and not inverse:
        notes.append(f"Results are given on the {basis.link.name} (not the response) scale.")
    notes.append(f"Confidence level used: {level:g}")
    if inverse:
        link = basis.link
        table[basis.response_label] = link.inverse(est)
        table["SE"] = np.abs(link.mu_eta(est)) * se
        lower, upper = link.inverse(lower), link.inverse(upper)
        notes.append(f"Intervals are back-transformed from the {link.name} scale")
    else:
        table["emmean"] = est
        table["SE"] = se
    table["df"] = df
    ends = ("asymp.LCL", "asymp.UCL") if asymptotic else ("lower.CL", "upper.CL")
    table[ends[0]], table[ends[1]] = np.minimum(lower, upper), np.maximum(lower, upper)
    fe_names = list(result.fe_params.index)
    linfct = pd.DataFrame(L[:, basis.kept], columns=fe_names)
    return EMMeans(table, linfct, grid, tuple(n for n in facs if n not in by_names), tuple(by_names),
                   float(level), type, tuple(notes), levels, L, offset, basis)


# ----- contrasts ----------------------------------------------------------------------------

def _numeric_levels(values: pd.Series) -> bool:
    """emmeans' ``.is.num``: every level reads as a number."""
    return all(_R_NUMBER.match(_label(v)) for v in values)


def _contrast(emm: EMMeans, method: Any, adjust: str | None) -> EMMContrasts:
    from .arguments import choice

    levels = emm._levels
    by = list(emm.by)
    primary = [c for c in levels.columns if c not in by]
    labels = pd.DataFrame({c: [_label(v) for v in levels[c]] for c in primary})
    for c in primary:
        if c != "1" and _numeric_levels(levels[c]):
            labels[c] = c + labels[c]
    text = labels.apply(lambda row: " ".join(row), axis=1).tolist()
    text = [f"({t})" if PARENS.search(t) else t for t in text]
    if by:
        keys = levels[by].astype(str).apply(lambda row: "\x00".join(row), axis=1)
        groups = [np.flatnonzero(keys.to_numpy() == k) for k in dict.fromkeys(keys)]
    else:
        groups = [np.arange(len(levels))]
    size = len(groups[0])
    if isinstance(method, str):
        method = choice("method", method, ("pairwise", "revpairwise"))
        pairs = ([(i, j) for i in range(size) for j in range(i + 1, size)] if method == "pairwise"
                 else [(i, j) for i in range(1, size) for j in range(i)])

        def coefficients(names):
            out = {}
            for i, j in pairs:
                row = np.zeros(size)
                row[i], row[j] = 1.0, -1.0
                out[f"{names[i]} - {names[j]}"] = row
            return out
        kind, default = "pairs", "tukey"
    elif isinstance(method, Mapping) and method:
        custom = {}
        for name, coef in method.items():
            row = np.asarray(coef, dtype=np.float64).ravel()
            if row.shape != (size,):
                raise InterlaceError(f"method: contrast {name!r} needs {size} coefficients (one per mean"
                                     f"{' of a by group' if by else ''}), found {row.size}")
            custom[str(name)] = row
        sums = [abs(r.sum()) / (1e-6 + np.max(np.abs(r))) for r in custom.values()]
        kind = "contrast" if all(s < 1e-6 for s in sums) else "prediction"

        def coefficients(names):
            return custom
        default = "none"
    else:
        raise InterlaceError(f"method: expected 'pairwise', 'revpairwise' or a dict of named coefficient "
                             f"vectors, found {method!r}")
    adjust = choice("adjust", default if adjust is None else adjust, ADJUSTMENTS)
    rows, names, by_rows, members = [], [], [], []
    for group in groups:
        for name, coef in coefficients([text[i] for i in group]).items():
            rows.append((group, coef))
            names.append(name)
            by_rows.append(group[0])
    C = np.zeros((len(rows), len(levels)))
    for r, (group, coef) in enumerate(rows):
        C[r, group] = coef
    L = C @ emm._L
    offset = C @ emm._offset
    basis = emm._basis
    est, se, df = basis.estimates(L, offset)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = est / se
    per_group = len(rows) // len(groups) if groups else 0
    notes = []
    if per_group == 1:
        adjust = "none"
    if adjust == "tukey" and kind != "pairs":
        notes.append("Note: adjust = \"tukey\" was changed to \"sidak\" because \"tukey\" is only "
                     "appropriate for one set of pairwise comparisons")
        adjust = "sidak"
    start = 0
    for _ in groups:
        members.append(np.arange(start, start + per_group))
        start += per_group
    p = _adjusted(t, df, adjust, size, members, per_group)
    table = pd.DataFrame({"contrast": names})
    for b in by:
        table[b] = levels[b].iloc[by_rows].to_numpy()
    link = basis.link
    transformed = basis.response_label is not None  # a generalized model's link other than identity
    logs = transformed and link.name in ("log", "logit") and kind in ("pairs", "contrast")
    ratio = logs and emm.type == "response"
    scale = "log odds ratio" if transformed and link.name == "logit" else "log"
    asymptotic = _asymptotic(df, basis)
    statistic = "z.ratio" if asymptotic else "t.ratio"
    if ratio:  # emmeans' ratios = TRUE: differences of logs are log ratios
        label = "odds.ratio" if link.name == "logit" else "ratio"
        table["contrast"] = [n.replace(" - ", " / ") for n in names]
        table[label] = np.exp(est)
        table["SE"] = np.exp(est) * se
        table["df"] = df
        table["null"] = 1.0
        notes.append(f"Tests are performed on the {scale} scale")
    else:
        table["estimate"] = est
        table["SE"] = se
        table["df"] = df
        if logs:
            notes.append(f"Results are given on the {scale} (not the response) scale.")
        elif transformed:
            notes.append(f"Note: contrasts are still on the {link.name} scale")
    table[statistic] = t
    table["p.value"] = p
    if basis.link is None:
        notes.insert(0, f"Degrees-of-freedom method: {basis.df_method}")
    if adjust == "tukey" and size >= 3:
        notes.append(f"P value adjustment: tukey method for comparing a family of {size} estimates")
    elif adjust not in ("none", "tukey"):
        notes.append(f"P value adjustment: {adjust} method for {per_group} tests")
    linfct = pd.DataFrame(L[:, basis.kept], columns=list(emm.linfct.columns))
    return EMMContrasts(table, linfct, adjust, tuple(notes))
