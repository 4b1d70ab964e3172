"""The response of a generalized linear mixed model, read as glm and glmer read it.

A binomial response is a proportion y of successes in n trials: a 0/1 number, a logical
(True is a success), a factor (every level but the first is a success, as R), a
proportion with ``weights=`` the trials, or ``cbind(successes, failures)`` on the left
of ``~`` (y = s / (s + f), n = s + f). A Poisson response is a count. The row weights w
the likelihood and the working weights use are the prior weights times n (R's
``binomial()$initialize``).

:func:`read_response` evaluates the left-hand side on the caller's rows before the
model frame is built, so that its missing values drop rows as a column's do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..families import Family
from ..formula import rexpr
from ..formula.random import split_formula
from ..frames import ingest, select_as_pandas

RESPONSE_COLUMN = ".interlace_response"
TRIALS_COLUMN = ".interlace_trials"
WEIGHTS_COLUMN = ".interlace_weights"


@dataclass(frozen=True)
class GlmResponse:
    """The response of the rows used, with what the likelihood needs.

    Attributes
    ----------
    y : numpy.ndarray
        The response: a proportion (binomial) or a count (Poisson).
    weights : numpy.ndarray
        w: prior weights times the binomial trials (1 without either).
    prior_weights : numpy.ndarray
        The ``weights=`` argument (1 without).
    trials : numpy.ndarray
        The binomial trials of a ``cbind`` response, else 1.
    name : str
        The left-hand side as written (``"cbind(incidence, size - incidence)"``).
    family : Family
    loglik_a, loglik_b : numpy.ndarray
        The rows' log-likelihood coefficients (:meth:`Family.loglik_terms`).
    loglik_constant : float
        -2 times the log-likelihood's part free of mu.
    """

    y: np.ndarray
    weights: np.ndarray
    prior_weights: np.ndarray
    trials: np.ndarray
    name: str
    family: Family
    loglik_a: np.ndarray
    loglik_b: np.ndarray
    loglik_constant: float

    @classmethod
    def build(cls, y: np.ndarray, prior_weights: np.ndarray, trials: np.ndarray, name: str,
              family: Family) -> GlmResponse:
        """The response of ``family`` checked (an error naming it when it is not of that
        family) with its likelihood's terms."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        if np.max(prior_weights, initial=0.0) > 1e100:
            raise DataError(f"weights: expected prior weights below 1e100 (their products with the data must stay "
                            f"finite), found up to {np.max(prior_weights):g}")
        weights = np.ascontiguousarray(prior_weights * trials, dtype=np.float64)
        if y.size and not np.any(weights > 0):
            raise DataError(f"response {name!r}: every row has zero weight (the weights= times the binomial "
                            f"trials), found {y.size} row(s) and nothing to fit; expected some rows with trials")
        family.check(y, weights, name)
        a, b, constant = family.loglik_terms(y, weights, trials)
        return cls(y, weights, np.ascontiguousarray(prior_weights, dtype=np.float64),
                   np.ascontiguousarray(trials, dtype=np.float64), name, family,
                   np.ascontiguousarray(a, dtype=np.float64), np.ascontiguousarray(b, dtype=np.float64),
                   float(constant))

    def take(self, rows: np.ndarray) -> GlmResponse:
        """The response of some rows."""
        return GlmResponse.build(self.y[rows], self.prior_weights[rows], self.trials[rows], self.name, self.family)

    def with_values(self, y: np.ndarray) -> GlmResponse:
        """The same rows with another response (a simulated one)."""
        return GlmResponse.build(y, self.prior_weights, self.trials, self.name, self.family)

    def minus_twice_loglik(self, mu: np.ndarray, parallel: bool = False) -> float:
        """-2 log-likelihood at the means ``mu`` (R's ``family$aic``); ``parallel``: the
        rows over threads (many rows)."""
        from ..kernels.glm import loglik_sum, loglik_sum_rows

        total = (loglik_sum_rows if parallel else loglik_sum)(mu, self.loglik_a, self.loglik_b, self.family.code)
        return -2.0 * total + self.loglik_constant

    def saturated_minus_twice_loglik(self) -> float:
        """-2 log-likelihood at mu = y (what R's deviance residuals leave out)."""
        mu = np.clip(self.y, 0.0, 1.0) if self.family.name == "binomial" else self.y
        return self.minus_twice_loglik(mu)


def _lhs(formula: str) -> str:
    if not isinstance(formula, str):
        raise FormulaError(f"formula: expected a string like 'y ~ x + (1 | g)', found {type(formula).__name__} "
                           f"{formula!r}")
    if "~" not in formula:
        raise FormulaError(f"formula {formula!r}: expected 'response ~ terms'")
    split_formula(formula)  # the formula checked as a whole (balanced, one '~') before its response is read
    lhs = formula.split("~", 1)[0].strip()
    if not lhs:
        raise FormulaError(f"formula {formula!r}: expected a response left of '~' (a generalized model needs one)")
    return lhs


def public_names(message: str, formula: str) -> str:
    """An error message of the model frame's with the response's working columns
    (:data:`RESPONSE_COLUMN`, :data:`TRIALS_COLUMN`, :data:`WEIGHTS_COLUMN`) named as the
    caller knows them: the left-hand side of ``formula`` and ``weights``; left out of a
    list of the data's columns.

    Examples
    --------
    >>> public_names("data: 2 row(s) have missing values in .interlace_response, .interlace_trials", "y ~ x")
    'data: 2 row(s) have missing values in y'
    """
    if not isinstance(formula, str) or "~" not in formula or ".interlace_" not in message:
        return message
    lhs = formula.split("~", 1)[0].strip()
    working = (RESPONSE_COLUMN, TRIALS_COLUMN, WEIGHTS_COLUMN)
    message = message.replace(", " + ", ".join(working), "")  # the data's columns, as listed
    message = message.replace(f"`{RESPONSE_COLUMN}`", lhs).replace(f", {TRIALS_COLUMN}", "")
    return message.replace(RESPONSE_COLUMN, lhs).replace(TRIALS_COLUMN, lhs).replace(WEIGHTS_COLUMN, "weights")


def _factor_success(column: pd.Series) -> np.ndarray:
    """R's binomial of a factor: every level but the first is a success (NaN missing)."""
    values = column.array
    if isinstance(values, pd.Categorical):
        codes = np.asarray(values.codes)
    else:
        found, uniques = pd.factorize(column)  # -1 where missing
        uniques = list(uniques)
        order = sorted(range(len(uniques)), key=lambda i: (str(type(uniques[i])), uniques[i]))
        rank = np.empty(len(uniques), dtype=np.int64)
        rank[order] = np.arange(len(uniques))
        codes = np.where(found < 0, -1, rank[np.maximum(found, 0)] if len(uniques) else -1)
    return np.where(codes < 0, np.nan, (codes > 0).astype(np.float64))


NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal")
"""pandas' ``infer_dtype`` of an object column of numbers (decimals held as objects too)."""


def _kind(values: pd.Series) -> str:
    """What a response column holds: "number", "logical", "factor" (a categorical or
    strings), "missing" (nothing but missing values), or "other" (dates, complex
    numbers, bytes, lists, mixed values: no response)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "logical"
    if isinstance(dtype, pd.CategoricalDtype):
        return "factor"
    if pd.api.types.is_complex_dtype(dtype):
        return "other"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "factor"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred == "empty":
            return "missing"
        if inferred == "boolean":
            return "logical"
        if inferred in NUMBER_KINDS:
            return "number"
        if inferred in ("string", "categorical"):
            return "factor"
    return "other"


def _as_numbers(values, name: str, family: Family) -> np.ndarray:
    """A response column or expression value as numbers: logical 0/1, a factor by R's rule
    (binomial), numbers as they are; anything else an error naming the response."""
    if not isinstance(values, pd.Series):
        return np.asarray(values, dtype=np.float64)
    kind = _kind(values)
    if kind == "factor":
        if family.name != "binomial":
            raise DataError(f"response {name!r}: a {family.name} response is numeric, found a column of "
                            f"dtype {values.dtype}")
        return _factor_success(values)
    if kind == "other":
        expected = ("numbers, a logical, a factor or strings" if family.name == "binomial" else "numbers (counts)")
        raise DataError(f"response {name!r}: expected {expected}, found a column of dtype {values.dtype} "
                        f"({pd.api.types.infer_dtype(values, skipna=True)} values)")
    return _numbers(values)


def _numbers(values: pd.Series) -> np.ndarray:
    """A column of numbers or logicals (:func:`_kind`) as float64, NaN where missing."""
    if pd.api.types.is_object_dtype(values.dtype):  # Python numbers, bools or decimals
        return np.array([np.nan if pd.isna(v) else float(v) for v in values], dtype=np.float64)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _counts(value, lhs: str, argument: str) -> np.ndarray:
    """One argument of ``cbind(successes, failures)`` as numbers (logicals as 0/1); an
    error naming the response for anything but numbers."""
    if isinstance(value, pd.Series):
        kind = _kind(value)
        if kind not in ("number", "logical", "missing"):
            raise DataError(f"response {lhs!r}: successes and failures are counts, found {argument!r} of dtype "
                            f"{value.dtype}")
        return _numbers(value)
    return np.asarray(value, dtype=np.float64)


def _refuse_infinite(values: np.ndarray, lhs: str, expected: str) -> None:
    infinite = np.isinf(values)
    if infinite.any():
        raise DataError(f"response {lhs!r}: {expected}, found {int(infinite.sum())} infinite value(s) (NaN is a "
                        "missing value and its row is dropped; inf is not)")


def _evaluate(text: str, table: pd.DataFrame) -> np.ndarray | pd.Series:
    node = rexpr.parse(text)
    names = rexpr.names_read(node)
    if len(names) == 1 and text.strip().strip("`") == names[0]:
        return table[names[0]]
    env = {name: rexpr.as_r_value(table[name]) for name in names}
    value = rexpr.evaluate(node, env, None, text)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (len(table),)).copy()


def read_response(formula: str, data, family: Family, weights) -> tuple[object, str, str]:
    """The caller's ``data`` with the response's proportion, trials and prior weights as
    columns (:data:`RESPONSE_COLUMN`, :data:`TRIALS_COLUMN`, :data:`WEIGHTS_COLUMN`:
    missing where an input is), the formula with that response, and the left-hand side
    as written.

    Examples
    --------
    >>> import interlace
    >>> from interlace.families import binomial
    >>> d, f, name = read_response("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                            interlace.load_dataset("cbpp"), binomial(), None)
    >>> f, name, float(d[TRIALS_COLUMN].iloc[0])
    ('`.interlace_response` ~ period + (1 | herd)', 'cbind(incidence, size - incidence)', 14.0)
    """
    from ..frames import numeric_values, with_column

    lhs = _lhs(formula)
    frame, info = ingest(data)
    node = rexpr.parse(lhs)
    names = [n for n in rexpr.names_read(node) if n in info.columns]
    missing_names = [n for n in rexpr.names_read(node) if n not in info.columns]
    if missing_names:
        raise DataError(f"response {lhs!r}: column {missing_names[0]!r} not found in data "
                        f"(columns: {', '.join(map(str, info.columns))})")
    table = select_as_pandas(frame, names)
    is_cbind = isinstance(node, rexpr.Call) and node.fn == "cbind"
    if is_cbind:
        if family.name != "binomial":
            raise FormulaError(f"response {lhs!r}: cbind(successes, failures) is a binomial response, found "
                               f"family {family.name!r}")
        if len(node.args) != 2:
            raise FormulaError(f"response {lhs!r}: expected cbind(successes, failures), two columns")
        parts = [_counts(_evaluate(rexpr.deparse(arg.value), table), lhs, rexpr.deparse(arg.value))
                 for arg in node.args]
        successes, failures = parts
        for part in parts:
            _refuse_infinite(part, lhs, "successes and failures are counts")
        if np.any(successes < 0) or np.any(failures < 0):
            raise DataError(f"response {lhs!r}: successes and failures are counts, found negative values")
        trials = successes + failures
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, successes / np.where(trials > 0, trials, 1.0), 0.0)
        y = np.where(np.isnan(trials), np.nan, y)
    else:
        y = _as_numbers(_evaluate(lhs, table), lhs, family)
        _refuse_infinite(y, lhs, f"a {family.name} response is finite")
        trials = np.where(np.isnan(y), np.nan, 1.0)
    if info.n_rows and np.all(np.isnan(y)):
        raise DataError(f"response {lhs!r}: all {info.n_rows} values are missing (NaN or None); expected "
                        "a response")
    if weights is None:
        prior = np.ones(info.n_rows)
    elif isinstance(weights, str):
        if weights not in info.columns:
            raise DataError(f"weights: column {weights!r} not found in data (columns: {', '.join(map(str, info.columns))})")
        column = select_as_pandas(frame, [weights])[weights]
        if _kind(column) not in ("number", "missing"):
            raise DataError(f"weights: expected a numeric column, found column {weights!r} of dtype {column.dtype}")
        prior = _numbers(column)
    else:
        prior = numeric_values(weights, "weights")
        if len(prior) != info.n_rows:
            raise DataError(f"weights: expected one number per row of data ({info.n_rows} rows), found {len(prior)}")
    if info.n_rows and np.all(np.isnan(prior)):
        raise DataError(f"weights: all {info.n_rows} values are missing (NaN or None); expected prior weights")
    finite = prior[~np.isnan(prior)]
    if np.any(~np.isfinite(finite)) or np.any(finite < 0):
        bad = int(np.sum(~np.isfinite(finite) | (finite < 0)))
        raise DataError(f"weights: expected finite non-negative numbers (prior weights), found {bad} row(s) "
                        "negative or infinite")
    out = data
    for column, values in ((RESPONSE_COLUMN, y), (TRIALS_COLUMN, trials), (WEIGHTS_COLUMN, prior)):
        out = with_column(out, column, values)
    rhs = formula.split("~", 1)[1]
    return out, f"`{RESPONSE_COLUMN}` ~{rhs}", lhs
