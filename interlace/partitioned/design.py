"""The design of a fit from partitions: names, levels, terms and theta's layout as in
memory, but no rows (:class:`RowlessDesign`), and the working scale read from the
second pass's statistics (:class:`RowlessConditioning`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..design import ModelDesign
from ..errors import InterlaceError
from ..fitting.conditioning import EXACT_FIT_TOLERANCE, Conditioning


class RowsNotInMemoryError(InterlaceError):
    """A computation needs the rows of a model fitted from a Dask frame."""


ROWS_MESSAGE = (
    "this model was fitted from a Dask frame by sufficient statistics, so its rows are not in memory: "
    "its per-row outputs are Dask series (fittedvalues, resid, predict(ddf)); for {what}, fit the rows "
    "in memory (interlace.fit(formula, ddf.compute()))"
)


@dataclass(frozen=True)
class RowlessDesign(ModelDesign):
    """A :class:`~interlace.design.ModelDesign` without rows: its terms' codes and
    columns and X have no rows (X keeps its p columns); ``n_rows`` is the number of
    rows the statistics were summed over, ``plan`` how a partition's rows are read
    (:class:`~interlace.partitioned.rows.RowPlan`), ``gram`` X'X of the kept columns
    (the type I and II contrasts of :mod:`interlace.inference.contrasts`), ``term_cross``
    per fixed term X' B and its full design B's squared column norms, and
    ``intercept_cross`` X'1 (the type III contrasts). Reading X or y raises
    :class:`RowsNotInMemoryError`."""

    n_rows: int = 0
    plan: Any = None
    gram: Any = None
    term_cross: Any = None
    intercept_cross: Any = None

    @property
    def n_obs(self) -> int:
        """Rows used."""
        return self.n_rows

    @property
    def has_rows(self) -> bool:
        """False: the rows stayed in the partitions."""
        return False

    @property
    def X(self) -> np.ndarray:  # noqa: N802
        raise RowsNotInMemoryError(ROWS_MESSAGE.format(what="anything that reads X row by row"))

    @property
    def y(self) -> np.ndarray:
        raise RowsNotInMemoryError(ROWS_MESSAGE.format(what="anything that reads the response row by row"))


@dataclass(frozen=True)
class RowlessConditioning(Conditioning):
    """The working scale (:class:`~interlace.fitting.conditioning.Conditioning`) of a
    fit from partitions; ``size`` is rms(y) on the working scale."""

    size: float = 0.0

    @property
    def response_size(self) -> float:
        return self.size

    def weighted(self, values: np.ndarray) -> np.ndarray:
        raise RowsNotInMemoryError(ROWS_MESSAGE.format(what="values per row"))

    def rows(self, working_values: np.ndarray) -> np.ndarray:
        raise RowsNotInMemoryError(ROWS_MESSAGE.format(what="values per row"))

    def with_response(self, y, working=None):
        raise RowsNotInMemoryError(ROWS_MESSAGE.format(what="a new response (refit, simulate, bootMer)"))


@dataclass(frozen=True)
class WorkingScaleFound:
    """The working scale read from R of sqrt(w) [X y]: T, log|det T|, gamma, |s|,
    rms(y) / |s|, and the mean squares of the least-squares residual and of y."""

    basis: np.ndarray
    log_det: float
    shift: np.ndarray
    unit: float
    size: float
    residual_ms: float
    response_ms: float


def working_scale(r_xy: np.ndarray, kept: np.ndarray, n: int) -> WorkingScaleFound:
    """The working scale from R of sqrt(w) [X y] (every column of X; ``kept`` those
    kept), as :func:`~interlace.fitting.conditioning.condition` finds it from the rows:
    X = QR, T = sqrt(n) R^{-1}, gamma the least-squares coefficients, s the residual's
    root mean square (at least :data:`~interlace.fitting.conditioning.EXACT_FIT_TOLERANCE`
    of y's; 1 when both are 0)."""
    p_all = r_xy.shape[0] - 1
    r = np.linalg.qr(r_xy[:, np.append(kept, p_all)], mode="r")
    r = r * np.where(np.diagonal(r) < 0, -1.0, 1.0)[:, None]
    p = len(kept)
    root_n = float(np.sqrt(n))
    if p:
        from scipy.linalg import lapack

        basis = lapack.dtrtri(np.ascontiguousarray(r[:p, :p]), lower=0)[0] * root_n
        log_det = float(0.5 * p * np.log(n) - np.log(np.diagonal(r)[:p]).sum())
    else:
        basis, log_det = np.eye(0), 0.0
    coef = r[:p, p] / root_n
    shift = basis @ coef
    resid_ms = float(r[p, p]) ** 2 / n
    y_ms = resid_ms + float(coef @ coef)
    unit = max(float(np.sqrt(resid_ms)), EXACT_FIT_TOLERANCE * float(np.sqrt(y_ms)))
    if not unit > 0:
        return WorkingScaleFound(basis, log_det, shift, 1.0, 0.0, resid_ms, y_ms)
    return WorkingScaleFound(basis, log_det, shift, unit, float(np.sqrt(y_ms)) / unit, resid_ms, y_ms)
