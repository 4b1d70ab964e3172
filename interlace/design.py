"""The model's data: y, X and the random-effects terms, in lme4's term order.

A grouping factor with several lme4 terms (``(1 | g) + (0 + x | g)``) becomes one
:class:`RandomTerm` whose relative covariance factor has structural zeros; theta
keeps lme4's order (terms by decreasing number of levels, each term's lower
triangle column by column), and each :class:`RandomTerm` records where its
entries come from in :attr:`RandomTerm.theta_index`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, DegenerateFitWarning, FormulaError, RankDeficiencyWarning
from .formula.fixed import FixedDesign, fixed_design, term_design
from .formula.random import RandomTermSpec, quote_name
from .frames import TEXT_DTYPE

RANK_TOLERANCE = 1e-7
"""A column of X is redundant when its norm after projection on the earlier kept
columns is below this fraction of its own norm (R's ``qr`` tolerance, as lme4)."""

EXACT_FIT_TOLERANCE = 1e-12
"""The fixed effects fit the response exactly when the least-squares residuals' root
mean square is below this share of the response's (rounding; as the Satterthwaite
code's zero residual SD)."""

@dataclass(frozen=True)
class RandomTerm:
    """The random effects of one grouping factor.

    Attributes
    ----------
    name : str
        The grouping factor as lme4 names it (``"Subject"``, ``"cask:batch"``).
    column_names : tuple of str
        The per-level effects (``("Intercept", "Days")``).
    levels : pandas.Index
        The level labels, in the factor's level order.
    group_codes : numpy.ndarray
        int32 level code of every row.
    design : numpy.ndarray
        float64 (n, k): the columns multiplying this factor's effects, row by row.
    theta_index : numpy.ndarray
        int (k, k): entry ``[r, c]`` of the relative covariance factor is
        ``theta[theta_index[r, c]]``, or structurally zero where it is -1.
    factors : tuple of str
        The grouping column(s): several for an interaction ``a:b``.
    part_specs : tuple
        Per lme4 term of this factor, the ModelSpec that rebuilds its columns for new
        data (None for an intercept).
    """

    name: str
    column_names: tuple[str, ...]
    levels: pd.Index
    group_codes: np.ndarray
    design: np.ndarray
    theta_index: np.ndarray
    factors: tuple[str, ...] = ()
    part_specs: tuple = ()

    @cached_property
    def n_levels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @cached_property
    def level_index(self) -> pd.Index:
        """The levels as an Index named after the factor (rows of the BLUP tables)."""
        return pd.Index(self.levels, name=self.name)

    @cached_property
    def n_columns(self) -> int:
        """Number of effects per level (k)."""
        return len(self.column_names)

    @cached_property
    def n_effects(self) -> int:
        """Number of random effects of the term, n_levels * k."""
        return self.n_levels * self.n_columns

    @cached_property
    def diagonal_theta(self) -> np.ndarray:
        """Indices in theta of the diagonal of T (the relative standard deviations)."""
        return np.diag(self.theta_index).copy()

    @cached_property
    def _theta_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat positions in T, theta indices) of the entries of T that are parameters."""
        flat = self.theta_index.ravel()
        positions = np.flatnonzero(flat >= 0)
        return positions, flat[positions]

    def relative_cov_factor(self, theta: np.ndarray) -> np.ndarray:
        """The lower-triangular k x k factor T of this term at ``theta``."""
        positions, indices = self._theta_positions
        k = self.theta_index.shape[0]
        out = np.zeros(k * k)
        out[positions] = np.asarray(theta)[indices]
        return out.reshape(k, k)


@dataclass(frozen=True)
class ModelDesign:
    """Everything the fit needs from the data, built once.

    ``terms`` are in factorisation order (most random effects first, as
    MixedModels.jl); ``theta_names``/``theta_lower`` follow lme4's order;
    ``table`` holds the used columns of the rows used (pandas).
    """

    fixed: FixedDesign
    kept_columns: np.ndarray
    terms: tuple[RandomTerm, ...]
    theta_names: tuple[str, ...]
    theta_lower: np.ndarray
    term_labels: tuple[str, ...]
    table: pd.DataFrame
    primary_factors: tuple[str, ...] = ()

    @property
    def y(self) -> np.ndarray:
        """The response."""
        return self.fixed.response

    @cached_property
    def fixed_index(self) -> pd.Index:
        """The fixed effects' names as an Index."""
        return pd.Index(self.fixed.column_names)

    @cached_property
    def lme4_terms(self) -> tuple[RandomTerm, ...]:
        """The random terms in lme4's order (by their first theta entry)."""
        return tuple(sorted(self.terms, key=lambda t: int(t.theta_index[t.theta_index >= 0].min())))

    @property
    def X(self) -> np.ndarray:
        """The full-rank fixed-effects matrix."""
        return self.fixed.matrix

    @property
    def fixed_names(self) -> tuple[str, ...]:
        """Names of the fixed effects."""
        return self.fixed.column_names

    @property
    def n_obs(self) -> int:
        """Rows used."""
        return len(self.fixed.response)

    @property
    def n_fixed(self) -> int:
        """p, the number of fixed effects."""
        return self.fixed.matrix.shape[1]

    @property
    def has_rows(self) -> bool:
        """Whether X, y and the terms' codes hold the rows (not a fit from partitions,
        :class:`interlace.partitioned.design.RowlessDesign`)."""
        return True

    @property
    def n_theta(self) -> int:
        """Length of theta."""
        return len(self.theta_names)

    @property
    def n_random(self) -> int:
        """q, the total number of random effects."""
        return sum(t.n_effects for t in self.terms)

    def start_theta(self) -> np.ndarray:
        """lme4's start: 1 on the diagonal of every factor, 0 elsewhere."""
        return np.where(np.isfinite(self.theta_lower), 1.0, 0.0)


def _r_name(column: str) -> str:
    return "(Intercept)" if column == "Intercept" else column


def level_label(value: Any) -> str:
    """The label of a grouping level: ``str`` of the value, integral floats without ``.0``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factor_codes(column: pd.Series | np.ndarray, name: str) -> tuple[np.ndarray, pd.Index]:
    """Codes and level labels of one grouping column (unused levels dropped)."""
    if isinstance(column, pd.Series):
        column = column.array
    if isinstance(column, pd.Categorical) or isinstance(getattr(column, "dtype", None), pd.CategoricalDtype):
        cat = column if isinstance(column, pd.Categorical) else pd.Categorical(column)  # read, never changed
        codes = np.asarray(cat.codes, dtype=np.int64)
        used = np.bincount(codes[codes >= 0], minlength=len(cat.categories)) > 0
        categories = cat.categories
        if not used.all():  # drop unused levels, keeping the order of the used ones
            codes = np.where(codes >= 0, (np.cumsum(used) - 1)[codes], -1)
            categories = categories[used]
        return codes.astype(np.int32), _level_labels(categories)
    codes, uniques = pd.factorize(np.asarray(column), sort=True)
    return codes.astype(np.int32), _level_labels(uniques)


def _level_labels(values) -> pd.Index:
    """The labels of a factor's levels (:func:`level_label` of each), as an Index."""
    values = pd.Index(values)
    if values.dtype != object and values.dtype == TEXT_DTYPE:
        return values.rename(None)  # strings already, in the dtype the list below would get
    if pd.api.types.is_string_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        if values.dtype == object and not all(isinstance(v, str) for v in values):
            return pd.Index([level_label(v) for v in values])
        return pd.Index(values.astype(str).tolist())
    return pd.Index([level_label(v) for v in values])


def level_labels_of_rows(table: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """Every row's grouping level label (``"la:lb"`` for an interaction)."""
    parts = [np.array([level_label(v) for v in table[name].to_numpy()], dtype=object) for name in factors]
    if len(parts) == 1:
        return parts[0]
    out = parts[0]
    for part in parts[1:]:
        out = np.array([f"{a}:{b}" for a, b in zip(out, part, strict=True)], dtype=object)
    return out


def grouping_factor(table: pd.DataFrame, factors: tuple[str, ...], source: str) -> tuple[np.ndarray, pd.Index]:
    """Codes and labels of a grouping factor, an interaction ``a:b`` when several names.

    Interaction levels are the observed combinations, the first factor varying
    slowest, labelled ``"la:lb"`` as R's ``a:b``.
    """
    for name in factors:
        if name not in table.columns:
            raise DataError(
                f"random term {source!r}: grouping column {name!r} not found in data "
                f"(columns: {', '.join(map(str, table.columns))})"
            )
    codes, labels = _factor_codes(table[factors[0]], factors[0])
    for name in factors[1:]:
        codes_b, labels_b = _factor_codes(table[name], name)
        combined = codes.astype(np.int64) * len(labels_b) + codes_b
        used, compact = np.unique(combined, return_inverse=True)
        labels = pd.Index([f"{labels[u // len(labels_b)]}:{labels_b[u % len(labels_b)]}" for u in used])
        codes = compact.astype(np.int32)
    return np.ascontiguousarray(codes), labels


CONSTANT_TOLERANCE = 1e-11
"""A column after an intercept whose centred norm is below this share of its norm is
constant to rounding, and redundant (a shift by 1e8 of its SD keeps it: 1e-8)."""


def _comparable_columns(X: np.ndarray) -> np.ndarray:
    """X's columns as the rank test compares them: after a constant (intercept) column,
    the later ones centred, so that the test is free of their shifts (R's ``qr`` would
    drop x + 1e8 sd(x) as a multiple of the intercept); then every column at unit norm
    (free of their scales), a column constant to rounding at 0."""
    n, p = X.shape
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    if n < 2 or p == 0:
        return X / np.where(norms > 0, norms, 1.0)
    first = _intercept_column(X)
    if first is None:
        return X / np.where(norms > 0, norms, 1.0)
    later = np.arange(p) > first
    out = X - (X.sum(axis=0) / n) * later
    centred = np.sqrt(np.einsum("ij,ij->j", out, out))
    flat = later & (centred <= CONSTANT_TOLERANCE * norms)
    norms = np.where(later, centred, norms)
    out /= np.where(flat | (norms == 0), np.inf, norms)  # in place: one n x p copy alive
    return out


COMPARABLE_GRAM_RANGE = 1e-250, 1e250
"""The squared column norms for which :func:`_comparable_gram` scales the product of
the unscaled columns; beyond, the columns are scaled first (no overflow, and no
subnormal products losing their digits)."""


def _comparable_gram(X: np.ndarray) -> np.ndarray:
    """Xc'Xc for Xc = :func:`_comparable_columns` (X): the product of the columns
    centred after the intercept, then scaled as Xc's columns are (a p x p matrix,
    instead of two passes over the n x p columns for their norms and one to scale
    them); the same matrix to rounding. Where a squared norm is out of
    :data:`COMPARABLE_GRAM_RANGE`, from Xc itself.

    Examples
    --------
    >>> X = np.column_stack([np.ones(5), [1.0, 2.0, 3.0, 5.0, 8.0], [2.0, 4.0, 6.0, 10.0, 16.5]])
    >>> Xc = _comparable_columns(X)
    >>> bool(np.allclose(_comparable_gram(X), Xc.T @ Xc, rtol=1e-14, atol=1e-15))
    True
    """
    n, p = X.shape
    first = _intercept_column(X) if n >= 2 and p else None
    later = np.arange(p) > (p if first is None else first)
    mean = X.sum(axis=0) / n if first is not None else np.zeros(p)
    centred_X = X - mean * later if first is not None else X
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):  # out of range: checked below
        gram = centred_X.T @ centred_X
    squares = gram.diagonal().copy()  # centred for the later columns, uncentred for the others
    low, high = COMPARABLE_GRAM_RANGE
    positive = squares[squares > 0]
    if not (np.all(np.isfinite(gram)) and np.all((positive >= low) & (positive <= high))):
        Xc = _comparable_columns(X)
        return Xc.T @ Xc
    norms = np.sqrt(np.where(later, squares + n * mean**2, squares))
    centred = np.sqrt(squares)
    flat = later & (centred <= CONSTANT_TOLERANCE * norms)
    scale = np.where(later, centred, norms)
    if first is None:
        scale = np.where(scale > 0, scale, 1.0)
    else:
        scale = np.where(flat | (scale == 0), np.inf, scale)
    return gram / np.outer(scale, scale)


def _intercept_column(X: np.ndarray) -> int | None:
    """The first constant, non-zero column of X (the intercept, where formulas put it
    first), after which :func:`_comparable_columns` centres the columns; None when
    there is none."""
    if X[0, 0] != 0 and (X[:, 0] == X[0, 0]).all():
        return 0
    constant = np.flatnonzero((X == X[0]).all(axis=0) & (X[0] != 0))
    return int(constant[0]) if len(constant) else None


def _full_rank_columns(X: np.ndarray) -> np.ndarray:
    """Indices of the columns of X kept by sequential (R-style) rank detection, on
    the columns centred after an intercept and scaled (:func:`_comparable_columns`,
    their Gram matrix by :func:`_comparable_gram`)."""
    return sequential_rank(_comparable_gram(X))


def comparable_gram(n: int, mean: np.ndarray, centred: np.ndarray, low: np.ndarray,
                    high: np.ndarray) -> np.ndarray:
    """The Gram matrix of :func:`_comparable_columns` from X's column means, centred
    cross-products (X - mean)'(X - mean) and columns' smallest and largest values:
    the same rule, for X summed over partitions (:mod:`interlace.partitioned`).

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [1.0, 2.0, 3.0, 5.0], [2.0, 4.0, 6.0, 10.0]])
    >>> m = X.mean(axis=0)
    >>> G = comparable_gram(4, m, (X - m).T @ (X - m), X.min(axis=0), X.max(axis=0))
    >>> Xc = _comparable_columns(X)
    >>> bool(np.allclose(G, Xc.T @ Xc))
    True
    """
    p = len(mean)
    gram = centred + n * np.outer(mean, mean)
    norms = np.sqrt(np.maximum(np.diagonal(gram), 0.0))
    constant = np.flatnonzero((low == high) & (high != 0))
    if n < 2 or p == 0 or not len(constant):
        scale = np.where(norms > 0, norms, 1.0)
        return gram / np.outer(scale, scale)
    first = int(constant[0])  # the intercept, where formulas put it, else the first constant column
    later = np.arange(p) > first
    uncentred = np.where(later, 0.0, mean)
    gram = centred + n * np.outer(uncentred, uncentred)  # x_i'(x_j - m_j) is centred's entry for j later
    centred_norms = np.sqrt(np.maximum(np.diagonal(centred), 0.0))
    flat = later & (centred_norms <= CONSTANT_TOLERANCE * norms)
    scale = np.where(later, centred_norms, norms)
    scale = np.where(flat | (scale == 0), np.inf, scale)
    return gram / np.outer(scale, scale)


def sequential_rank(gram: np.ndarray) -> np.ndarray:
    """Indices of the columns kept by sequential (R-style) rank detection on their
    Gram matrix: a column is kept when its norm after projection on the kept columns
    before it exceeds :data:`RANK_TOLERANCE` of its norm."""
    p = gram.shape[0]
    kept: list[int] = []
    for j in range(p):
        norm2 = gram[j, j]
        if norm2 <= 0:
            continue
        if kept:
            K = np.array(kept)
            sub = gram[np.ix_(K, K)]
            cross = gram[K, j]
            coef = np.linalg.solve(sub, cross)
            resid2 = norm2 - cross @ coef
        else:
            resid2 = norm2
        if resid2 > (RANK_TOLERANCE**2) * norm2:
            kept.append(j)
    return np.array(kept, dtype=int)


def _drop_redundant(fixed: FixedDesign) -> tuple[FixedDesign, np.ndarray]:
    keep = _full_rank_columns(fixed.matrix)
    if len(keep) == fixed.matrix.shape[1]:
        return fixed, keep
    warn_rank_deficient(fixed.column_names, keep, stacklevel=4)
    return replace(
        fixed,
        matrix=np.ascontiguousarray(fixed.matrix[:, keep]),
        column_names=tuple(fixed.column_names[i] for i in keep),
    ), keep


def warn_rank_deficient(column_names: tuple[str, ...], keep: np.ndarray, stacklevel: int = 2) -> None:
    """lme4's message for the columns of X not in ``keep`` (dropped as redundant)."""
    kept = set(keep.tolist())
    dropped = [c for i, c in enumerate(column_names) if i not in kept]
    warnings.warn(
        f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
        f"column{'s' if len(dropped) > 1 else ''}: {', '.join(dropped)}",
        RankDeficiencyWarning,
        stacklevel=stacklevel + 1,
    )


def _rows(k: int) -> str:
    return f"{k} row{'s' if k != 1 else ''}"


def _check_finite_columns(matrix: np.ndarray, names: tuple[str, ...], what: str) -> None:
    """Infinite values are an error naming the column and the number of rows (NaN is a
    missing value: :func:`interlace.fitting.model_frame.prepare` drops its rows before the design)."""
    bad = np.isinf(matrix)
    if bad.any():
        counts = bad.sum(axis=0)
        j = int(np.argmax(counts > 0))
        raise DataError(
            f"{what} {names[j]!r}: {_rows(int(counts[j]))} of {matrix.shape[0]} "
            f"{'is' if counts[j] == 1 else 'are'} infinite; expected finite values (NaN is a missing "
            "value and its row is dropped; inf is not)"
        )


def _check_finite(fixed: FixedDesign) -> None:
    """No inf in the response and X: an error naming the column (lme4: NA/NaN/Inf in 'y')."""
    _check_finite_columns(fixed.response[:, None], (fixed.response_name,), "response")
    _check_finite_columns(fixed.matrix, fixed.column_names, "fixed-effects column")


def with_prior(fixed: FixedDesign, weights: np.ndarray | None, offset: np.ndarray | None,
               offset_name: str | None = None) -> FixedDesign:
    """``fixed`` with the prior weights and the ``offset=`` argument (added to the
    formula's ``offset()`` terms, subtracted from the response, as lme4). Weights must be
    finite and positive (precision weights: a row's residual variance is sigma^2 / w);
    an offset finite; both one per row.

    Examples
    --------
    >>> import pandas as pd
    >>> from interlace.formula.fixed import fixed_design
    >>> d = fixed_design("y ~ x", pd.DataFrame({"y": [1.0, 2.0, 4.0], "x": [0.0, 1.0, 2.0]}))
    >>> with_prior(d, np.array([1.0, 2.0, 1.0]), np.array([0.5, 0.5, 0.5]), "off").response.tolist()
    [0.5, 1.5, 3.5]
    >>> with_prior(d, np.array([1.0, 0.0, 1.0]), None)
    Traceback (most recent call last):
    ...
    interlace.errors.DataError: weights: expected positive numbers (precision weights: a row's residual variance is sigma^2 / weight), found 1 row of 3 at 0 or below (smallest 0); drop rows that should not count
    """
    n = len(fixed.response)
    changes: dict[str, Any] = {}
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        _check_row_argument(weights, n, "weights")
        bad = ~(weights > 0)
        if bad.any():
            raise DataError(
                "weights: expected positive numbers (precision weights: a row's residual variance is "
                f"sigma^2 / weight), found {_rows(int(bad.sum()))} of {n} at 0 or below (smallest "
                f"{weights.min():g}); drop rows that should not count"
            )
        changes["weights"] = weights
    if offset is not None:
        offset = np.ascontiguousarray(offset, dtype=np.float64)
        _check_row_argument(offset, n, "offset")
        changes["response"] = np.ascontiguousarray(fixed.response - offset)
        changes["offset"] = offset if fixed.offset is None else fixed.offset + offset
        if offset_name is None:
            changes["unnamed_offset"] = True
        else:
            changes["offset_terms"] = (*fixed.offset_terms, quote_name(offset_name))
    return replace(fixed, **changes) if changes else fixed


def _check_row_argument(values: np.ndarray, n: int, argument: str) -> None:
    """One finite number per row, else an error naming the argument."""
    if values.shape != (n,):
        raise DataError(f"{argument}: expected one number per row used ({n}), found shape {values.shape}")
    infinite = ~np.isfinite(values)
    if infinite.any():
        raise DataError(f"{argument}: {_rows(int(infinite.sum()))} of {n} {'is' if infinite.sum() == 1 else 'are'} "
                        "infinite; expected finite numbers")


def _check_varies(fixed: FixedDesign) -> None:
    """A constant response is an error naming it (its residual variance would be zero)."""
    y = fixed.response
    n = len(y)
    if n and np.all(y == y[0]):
        raise DataError(
            f"response {fixed.response_name!r}: all {n} values are equal ({y[0]:g}"
            + (" after subtracting the offset" if fixed.offset is not None else "")
            + "); expected a response that varies (its residual variance would be zero)"
        )


def _check_fixed_size(fixed: FixedDesign, n: int) -> None:
    """Fewer fixed effects than observations (else the residual variance has no df)."""
    p = fixed.matrix.shape[1]
    if p < n:
        return
    sources: dict[str, int] = {}
    for name in fixed.column_names:
        source = name.split("[", 1)[0]
        sources[source] = sources.get(source, 0) + 1
    largest = max(sources, key=sources.get)
    listing = ", ".join(f"{name!r}: {count}" for name, count in sources.items())
    raise DataError(
        f"fixed effects: {p} columns for {n} observations (by term: {listing}); expected fewer columns "
        "than observations" + (f" ({largest!r} is a factor with about as many levels as rows?)"
                               if sources[largest] > 1 else "")
    )


def warn_if_exact(fixed: FixedDesign, residual_ms: float, response_ms: float, stacklevel: int = 2) -> bool:
    """Warn (and return True) when the fixed effects fit the response exactly: the root
    mean square of the least-squares residual of y on X (its mean square ``residual_ms``)
    is at most :data:`EXACT_FIT_TOLERANCE` of the response's (``response_ms``). A linear
    fit computes both in its one factorisation of X
    (:func:`interlace.fitting.conditioning.condition`, prior weights on the rows).

    The residual variance is then zero and the (restricted) likelihood unbounded: lme4
    returns sigma 0 and an infinite log-likelihood with convergence warnings.

    Examples
    --------
    >>> import pandas as pd, warnings
    >>> from interlace.formula.fixed import fixed_design
    >>> d = fixed_design("y ~ x", pd.DataFrame({"y": [1.0, 3.0, 5.0, 7.0], "x": [0.0, 1.0, 2.0, 3.0]}))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_exact(d, 1e-30, 21.0)
    True
    >>> str(caught[0].message)[:60]
    "response 'y' is fitted exactly by the fixed effects (residua"
    >>> warn_if_exact(d, 1e-3, 21.0)
    False
    """
    if not np.sqrt(residual_ms) <= EXACT_FIT_TOLERANCE * np.sqrt(response_ms):
        return False
    warn_exact_fit(fixed.response_name, stacklevel + 1)
    return True


def warn_exact_fit(response_name: str, stacklevel: int = 2) -> None:
    """The warning of a response the fixed effects fit exactly (:func:`warn_if_exact`)."""
    warnings.warn(
        f"response {response_name!r} is fitted exactly by the fixed effects (residuals zero to "
        "rounding): the residual variance is 0 and the likelihood unbounded, so llf, AIC, BIC, "
        "standard errors, df and p-values are not meaningful (lme4 returns sigma 0 and an infinite "
        "log-likelihood with convergence warnings); the fixed effects are the exact coefficients",
        DegenerateFitWarning,
        stacklevel=stacklevel + 1,
    )


def _lme4_order(n_levels: list[int]) -> list[int]:
    """lme4's term order: if the numbers of levels are not already non-increasing,
    ``rev(order(nl))`` (so ties end up in reverse formula order)."""
    if all(a >= b for a, b in zip(n_levels, n_levels[1:], strict=False)):
        return list(range(len(n_levels)))
    ascending = sorted(range(len(n_levels)), key=lambda i: n_levels[i])
    return ascending[::-1]


def check_term_size(spec: RandomTermSpec, n_levels: int, n_columns: int, n: int, generalized: bool) -> None:
    """A random term's grouping factor has at least 2 levels and (a linear model) fewer
    levels, and random effects, than observations; else an error naming the term."""
    if n_levels < 2:
        raise DataError(
            f"random term {spec.source!r}: grouping factor {spec.group_name!r} has "
            f"{n_levels} level; a random effect needs at least 2"
        )
    if n_levels >= n and not generalized:
        raise DataError(
            f"random term {spec.source!r}: grouping factor {spec.group_name!r} has "
            f"{n_levels} levels for {n} observations; the number of levels must be "
            "less than the number of observations"
        )
    if n_levels * n_columns >= n and not generalized:
        raise DataError(
            f"random term {spec.source!r}: {n_levels * n_columns} random effects for "
            f"{n} observations; the number of random effects must be less than the number "
            "of observations"
        )


def assemble_terms(raw: list[dict[str, Any]]) -> tuple[tuple[RandomTerm, ...], tuple[str, ...], np.ndarray]:
    """The random terms in factorisation order, theta's names and lower bounds in lme4's
    order, from one entry per lme4 term in formula order (``spec``, ``codes``,
    ``labels``, ``design``, ``names``, ``part_spec``): terms of one grouping factor
    become one :class:`RandomTerm`."""
    order = _lme4_order([len(r["labels"]) for r in raw])
    # theta layout in lme4 order
    theta_names: list[str] = []
    theta_lower: list[float] = []
    for position in order:
        r = raw[position]
        k = len(r["names"])
        r["theta_start"] = len(theta_names)
        group = r["spec"].group_name
        for c in range(k):
            for row in range(c, k):
                if row == c:
                    theta_names.append(f"{group}.{_r_name(r['names'][c])}")
                    theta_lower.append(0.0)
                else:
                    theta_names.append(f"{group}.{_r_name(r['names'][row])}.{_r_name(r['names'][c])}")
                    theta_lower.append(-np.inf)
    # amalgamate lme4 terms by grouping factor
    blocks: dict[str, list[dict[str, Any]]] = {}
    for position in order:
        blocks.setdefault(raw[position]["spec"].group_name, []).append(raw[position])
    terms: list[RandomTerm] = []
    for group, parts in blocks.items():
        names = [nm for part in parts for nm in part["names"]]
        if len(set(names)) != len(names):
            raise FormulaError(
                f"random terms {', '.join(sorted({p['spec'].source for p in parts}))}: the "
                f"effect(s) {sorted({x for x in names if names.count(x) > 1})} of grouping factor "
                f"{group!r} appear in more than one term"
            )
        k = len(names)
        index = np.full((k, k), -1, dtype=np.int64)
        start = 0
        for part in parts:
            kp = len(part["names"])
            t = part["theta_start"]
            for c in range(kp):
                for row in range(c, kp):
                    index[start + row, start + c] = t
                    t += 1
            start += kp
        design = np.ascontiguousarray(np.hstack([part["design"] for part in parts]))
        terms.append(
            RandomTerm(
                name=group,
                column_names=tuple(names),
                levels=parts[0]["labels"],
                group_codes=parts[0]["codes"],
                design=design,
                theta_index=index,
                factors=parts[0]["spec"].factors,
                part_specs=tuple(part["part_spec"] for part in parts),
            )
        )
    terms.sort(key=lambda t: -t.n_effects)  # stable: factorisation order
    return tuple(terms), tuple(theta_names), np.array(theta_lower)


def build_design(fixed_formula: str, random_terms: list[RandomTermSpec], table: pd.DataFrame,
                 weights: np.ndarray | None = None, offset: np.ndarray | None = None,
                 offset_name: str | None = None, generalized: bool = False) -> ModelDesign:
    """Build the model's design from a frame that has no missing values in used columns
    (``weights``, ``offset``: the rows' prior weights and offset from :func:`interlace.fit`'s
    arguments, ``offset_name`` the offset's column when it is one). A ``generalized``
    model's response is checked by its family instead, and may have a level per row
    (an observation-level random effect, as glmer allows). Whether the fixed effects fit
    the response exactly is found by the linear fit, from its one factorisation of X
    (:func:`interlace.fitting.conditioning.condition`, :func:`warn_if_exact`).

    Examples
    --------
    >>> import interlace
    >>> from interlace.formula.random import split_formula
    >>> fixed, terms = split_formula("Reaction ~ Days + (Days | Subject)")
    >>> d = build_design(fixed, terms, interlace.load_dataset("sleepstudy"))
    >>> d.theta_names
    ('Subject.(Intercept)', 'Subject.Days.(Intercept)', 'Subject.Days')
    """
    fixed = with_prior(fixed_design(fixed_formula, table), weights, offset, offset_name)
    _check_finite(fixed)
    if not generalized:
        _check_varies(fixed)
    fixed, kept = _drop_redundant(fixed)
    n = len(fixed.response)
    _check_fixed_size(fixed, n)
    if not random_terms:
        raise FormulaError(
            f"formula {fixed_formula!r}: no random-effects terms; add one like '(1 | g)' "
            "or pass groups=/random="
        )
    # one entry per lme4 term, formula order
    raw: list[dict[str, Any]] = []
    factor_cache: dict[tuple[str, ...], tuple[np.ndarray, pd.Index]] = {}
    for spec in random_terms:
        if spec.factors not in factor_cache:
            factor_cache[spec.factors] = grouping_factor(table, spec.factors, spec.source)
        codes, labels = factor_cache[spec.factors]
        design, names, part_spec = term_design(spec.expr, table, spec.source)
        _check_finite_columns(design, names, f"random term {spec.source!r}: column")
        check_term_size(spec, len(labels), len(names), n, generalized)
        raw.append({"spec": spec, "codes": codes, "labels": labels, "design": design, "names": names,
                    "part_spec": part_spec})
    terms, theta_names, theta_lower = assemble_terms(raw)
    labels = tuple(re.sub(r"\s+", " ", r["spec"].source) for r in raw)
    return ModelDesign(
        fixed=fixed,
        kept_columns=kept,
        terms=terms,
        theta_names=theta_names,
        theta_lower=theta_lower,
        term_labels=labels,
        table=table,
        primary_factors=random_terms[0].factors,
    )
