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
        weights = np.ascontiguousarray(prior_weights * trials, dtype=np.float64)
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

    def minus_twice_loglik(self, mu: np.ndarray) -> float:
        """-2 log-likelihood at the means ``mu`` (R's ``family$aic``)."""
        from ..kernels.glm import loglik_sum

        return -2.0 * loglik_sum(mu, self.loglik_a, self.loglik_b, self.family.code) + self.loglik_constant

    def saturated_minus_twice_loglik(self) -> float:
        """-2 log-likelihood at mu = y (what R's deviance residuals leave out)."""
        mu = np.clip(self.y, 0.0, 1.0) if self.family.name == "binomial" else self.y
        return self.minus_twice_loglik(mu)


def _lhs(formula: str) -> str:
    if "~" not in formula:
        raise FormulaError(f"formula {formula!r}: expected 'response ~ terms'")
    return formula.split("~", 1)[0].strip()


def _factor_success(column: pd.Series) -> np.ndarray:
    """R's binomial of a factor: every level but the first is a success (NaN missing)."""
    values = column.array
    if isinstance(values, pd.Categorical):
        codes = np.asarray(values.codes)
    else:
        present = column.dropna()
        levels = sorted(pd.unique(present).tolist(), key=lambda v: (str(type(v)), v))
        codes = np.where(column.isna(), -1, column.map({v: i for i, v in enumerate(levels)}).fillna(-1)).astype(int)
    return np.where(codes < 0, np.nan, (codes > 0).astype(np.float64))


def _as_numbers(values, name: str, family: Family) -> np.ndarray:
    """A response column or expression value as numbers: logical 0/1, a factor by R's rule
    (binomial), numbers as they are."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        present = values.dropna()
        if pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_object_dtype(dtype) and len(present)
                                                 and all(isinstance(v, (bool, np.bool_)) for v in present)):
            return values.astype("float64").to_numpy()
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or \
                pd.api.types.is_object_dtype(dtype):
            if family.name != "binomial":
                raise DataError(f"response {name!r}: a {family.name} response is numeric, found a column of "
                                f"dtype {dtype}")
            return _factor_success(values)
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


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
    >>> f, name, d[TRIALS_COLUMN].iloc[0]
    ('`.interlace_response` ~ period + (1 | herd)', 'cbind(incidence, size - incidence)', np.float64(14.0))
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
        parts = [np.asarray(_evaluate(rexpr.deparse(arg.value), table), dtype=np.float64) for arg in node.args]
        successes, failures = parts
        if np.any(successes < 0) or np.any(failures < 0):
            raise DataError(f"response {lhs!r}: successes and failures are counts, found negative values")
        trials = successes + failures
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, successes / np.where(trials > 0, trials, 1.0), 0.0)
        y = np.where(np.isnan(trials), np.nan, y)
    else:
        y = _as_numbers(_evaluate(lhs, table), lhs, family)
        trials = np.where(np.isnan(y), np.nan, 1.0)
    if weights is None:
        prior = np.ones(info.n_rows)
    elif isinstance(weights, str):
        if weights not in info.columns:
            raise DataError(f"weights: column {weights!r} not found in data (columns: {', '.join(map(str, info.columns))})")
        column = select_as_pandas(frame, [weights])[weights]
        if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            raise DataError(f"weights: expected a numeric column, found column {weights!r} of dtype {column.dtype}")
        prior = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        prior = numeric_values(weights, "weights")
        if len(prior) != info.n_rows:
            raise DataError(f"weights: expected one number per row of data ({info.n_rows} rows), found {len(prior)}")
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
