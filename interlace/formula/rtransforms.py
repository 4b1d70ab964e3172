"""R's stateful transforms of a model formula, with the state R's ``predict`` keeps.

- :func:`poly`: ``stats::poly``, orthogonal polynomials: on the fitting data the
  centred Vandermonde matrix's QR (columns ``Q diag(R)``, normalised), keeping
  ``alpha`` and ``norm2``; on new data the three-term recurrence with those
  coefficients, as ``predict`` evaluates ``poly(x, k, coefs = ...)`` (R's
  ``makepredictcall``). ``raw = TRUE``: the powers ``x, x^2, ...``.
- :func:`scale`: ``scale(x, center, scale)``: centre by the mean and divide by the
  standard deviation (ddof 1; without centring, the root mean square with n - 1);
  new data use the fit's centre and scale.
- :func:`factor`: ``factor(x)`` / ``as.factor(x)``: levels sorted (numbers by value,
  labelled as R's ``as.character``), a factor's own level order kept; new data
  keep the fit's levels.
- :func:`as_numeric`: ``as.numeric(x)``: a factor gives its level codes (1, 2, ...)
  as in R.

A state is a dict: empty on the fitting data (the transform fills it), filled on
new data (the transform reads it), or None (no state: learn from the data at hand).

Examples
--------
>>> import numpy as np
>>> state = {}
>>> poly(np.array([1.0, 2.0, 3.0, 4.0]), 2, False, state, "poly(x, 2)").round(4).tolist()[0]
[-0.6708, 0.5]
>>> sorted(state)
['alpha', 'norm2']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError


def _degree(degree: Any, term: str) -> int:
    if isinstance(degree, (bool, np.bool_)) or not float(degree).is_integer() or degree < 1:
        raise FormulaError(f"term {term!r}: poly()'s degree must be a whole number of at least 1, "
                           f"found {degree!r}")
    return int(degree)


def poly(x: np.ndarray, degree: Any, raw: bool, state: dict | None, term: str) -> np.ndarray:
    """R's ``poly(x, degree, raw)``: an n x degree array (see the module docstring)."""
    degree = _degree(degree, term)
    x = np.asarray(x, dtype=np.float64)
    if raw:
        return np.column_stack([x**k for k in range(1, degree + 1)])
    if state:
        return _poly_predict(x, np.asarray(state["alpha"]), np.asarray(state["norm2"]))
    finite = x[~np.isnan(x)]
    if len(finite) < len(x):
        raise DataError(f"term {term!r}: missing values are not allowed in poly()")
    unique = len(np.unique(x))
    if degree >= unique:
        raise DataError(f"term {term!r}: 'degree' must be less than number of unique points "
                        f"(degree {degree}, {unique} unique value{'s' if unique != 1 else ''})")
    xbar = x.mean()
    centred = x - xbar
    vandermonde = centred[:, None] ** np.arange(degree + 1)
    q, r = np.linalg.qr(vandermonde)
    rank = np.linalg.matrix_rank(r)
    if rank < degree:
        raise DataError(f"term {term!r}: 'degree' must be less than number of unique points")
    Z = q * np.diag(r)  # Q diag(R): sign-free, R's qr.qy(QR, diag(diag(QR$qr)))
    norm2 = np.sum(Z**2, axis=0)
    alpha = (np.sum(centred[:, None] * Z**2, axis=0) / norm2 + xbar)[:degree]
    norm2 = np.concatenate([[1.0], norm2])
    if state is not None:
        state["alpha"], state["norm2"] = alpha.tolist(), norm2.tolist()
    return (Z / np.sqrt(norm2[1:]))[:, 1:]


def _poly_predict(x: np.ndarray, alpha: np.ndarray, norm2: np.ndarray) -> np.ndarray:
    """``poly(x, coefs = list(alpha, norm2))``: R's three-term recurrence."""
    degree = len(alpha)
    Z = np.ones((len(x), degree + 1))
    Z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
    return (Z / np.sqrt(norm2[1:]))[:, 1:]


def scale(x: np.ndarray, center: Any, scale: Any, state: dict | None, term: str) -> np.ndarray:
    """R's ``scale(x, center, scale)`` of one column (see the module docstring);
    ``center`` and ``scale`` are TRUE/FALSE or numbers, as in R."""
    x = np.asarray(x, dtype=np.float64)
    if state:
        shift, divisor = state["center"], state["scale"]
    else:
        shift = _setting(center, term, "center", lambda v: float(np.nanmean(v)), x)
        centred = x - shift if shift is not None else x

        def rms(v):
            v = v[~np.isnan(v)]
            return float(np.sqrt(np.sum(v**2) / max(1, len(v) - 1)))

        divisor = _setting(scale, term, "scale", rms, centred)
        if state is not None:
            state["center"], state["scale"] = shift, divisor
    out = x - shift if shift is not None else x
    return out / divisor if divisor is not None else out


def _setting(value: Any, term: str, what: str, learn, x: np.ndarray) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return learn(x) if value else None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    raise FormulaError(f"term {term!r}: scale()'s {what} must be TRUE, FALSE or a number, found {value!r}")


def r_label(value: Any) -> str:
    """A value as R's ``as.character`` writes it (15 significant digits, ``TRUE``)."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{float(value):.15g}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def factor(x: Any, drop_unused: bool, state: dict | None, term: str) -> pd.Categorical:
    """R's ``factor(x)`` (``drop_unused``) or ``as.factor(x)``: a Categorical whose
    categories are R's level labels in R's order."""
    if isinstance(x, pd.Categorical):
        labels = np.array([r_label(v) for v in x.categories], dtype=object)
        values = np.where(x.codes >= 0, labels[np.maximum(x.codes, 0)], None)
        levels = [labels[k] for k in range(len(labels)) if not drop_unused or np.any(x.codes == k)]
    else:
        array = np.asarray(x)
        if array.ndim != 1:
            raise FormulaError(f"term {term!r}: factor() needs one column")
        if array.dtype.kind == "f":
            present = np.unique(array[~np.isnan(array)])
        else:
            present = np.array(sorted(set(array.tolist())), dtype=object)
        levels = [r_label(v) for v in present]
        values = np.array([r_label(v) for v in array.tolist()], dtype=object)
    if state:
        known = state["levels"]
        unseen = sorted({v for v in values if v is not None} - set(known))
        if unseen:
            raise DataError(f"newdata: term {term!r} has level(s) {', '.join(map(repr, unseen))} not seen in "
                            f"the fit (levels: {', '.join(known)})")
        levels = known
    elif state is not None:
        state["levels"] = list(levels)
    return pd.Categorical(values, categories=levels)


def as_numeric(x: Any, term: str) -> np.ndarray:
    """R's ``as.numeric(x)``: numbers as doubles, TRUE/FALSE as 1/0, a factor's codes
    (1 for its first level); character columns must hold numbers."""
    if isinstance(x, pd.Categorical):
        return np.where(x.codes >= 0, x.codes + 1.0, np.nan)
    array = np.asarray(x)
    if array.dtype == bool or np.issubdtype(array.dtype, np.number):
        return array.astype(np.float64)
    try:
        return np.array([float(v) for v in array.tolist()], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FormulaError(f"term {term!r}: as.numeric() of a character column that does not hold numbers "
                           f"({exc}); R would give NA") from exc
