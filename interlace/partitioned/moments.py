"""The second pass: what the rank check, the exact-fit check and the working scale
read from X and y, as statistics that add over partitions.

* R of the QR of [X y] (and of sqrt(w) [X y] with prior weights): partitions' R's are
  merged by the QR of the stacked pair (the R of a tall-and-skinny QR), as stable as
  the QR of the whole matrix in memory.
* X's column means and centred cross-products, merged by Chan, Golub and LeVeque's
  pairwise update, and its columns' smallest and largest values: the rank check's
  centred, scaled Gram matrix (:func:`interlace.design._comparable_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rows import PartitionRows, RowPlan, partition_rows


def qr_r(matrix: np.ndarray) -> np.ndarray:
    """The square R (m x m) of the QR of an (n x m) matrix, zero rows below when n < m."""
    m = matrix.shape[1]
    r = np.linalg.qr(matrix, mode="r")
    if r.shape[0] < m:
        r = np.vstack([r, np.zeros((m - r.shape[0], m))])
    return r


@dataclass
class Moments:
    """The second pass's statistics of some rows (added with ``+``).

    Attributes
    ----------
    n_rows : int
    r_xy : numpy.ndarray
        R of [X y] ((p + 1) x (p + 1)).
    r_weighted : numpy.ndarray or None
        R of sqrt(w) [X y] (prior weights), else None.
    sum_log_weights : float
    mean : numpy.ndarray
        X's column means.
    centred : numpy.ndarray
        (X - mean)'(X - mean).
    low, high : numpy.ndarray
        X's columns' smallest and largest values.
    y_low, y_high : float
        The response's (less the offset).
    term_cross : dict
        Per fixed-effect term (label): X' B and the squared norms of B's columns, B the
        term's full design (every level, :func:`interlace.formula.terms.full_term_design`):
        what the type III contrasts read (:mod:`interlace.inference.contrasts`).
    """

    n_rows: int
    r_xy: np.ndarray
    r_weighted: np.ndarray | None
    sum_log_weights: float
    mean: np.ndarray
    centred: np.ndarray
    low: np.ndarray
    high: np.ndarray
    y_low: float
    y_high: float
    term_cross: dict

    @classmethod
    def of_rows(cls, rows: PartitionRows, fixed_terms=()) -> Moments:
        """The statistics of one partition's rows (``fixed_terms``: the fixed part's terms)."""
        from ..formula.terms import full_term_design

        X, y = rows.X, rows.y
        xy = np.column_stack([X, y])
        weighted = None
        log_weights = 0.0
        if rows.weights is not None:
            weighted = qr_r(xy * np.sqrt(rows.weights)[:, None])
            log_weights = float(np.log(rows.weights).sum())
        mean = X.mean(axis=0)
        deviations = X - mean
        term_cross = {}
        for term in fixed_terms:
            block = full_term_design(term, rows.table)
            term_cross[term.label] = (X.T @ block, np.einsum("ij,ij->j", block, block))
        return cls(len(y), qr_r(xy), weighted, log_weights, mean, deviations.T @ deviations, X.min(axis=0),
                   X.max(axis=0), float(y.min()), float(y.max()), term_cross)

    def __add__(self, other: Moments) -> Moments:
        n = self.n_rows + other.n_rows
        delta = other.mean - self.mean
        weighted = None if self.r_weighted is None else qr_r(np.vstack([self.r_weighted, other.r_weighted]))
        return Moments(
            n,
            qr_r(np.vstack([self.r_xy, other.r_xy])),
            weighted,
            self.sum_log_weights + other.sum_log_weights,
            self.mean + delta * (other.n_rows / n),
            self.centred + other.centred + np.outer(delta, delta) * (self.n_rows * other.n_rows / n),
            np.minimum(self.low, other.low),
            np.maximum(self.high, other.high),
            min(self.y_low, other.y_low),
            max(self.y_high, other.y_high),
            {label: (cross + other.term_cross[label][0], norms + other.term_cross[label][1])
             for label, (cross, norms) in self.term_cross.items()},
        )

    @property
    def gram(self) -> np.ndarray:
        """X'X."""
        return self.centred + self.n_rows * np.outer(self.mean, self.mean)

    @property
    def norms(self) -> np.ndarray:
        """X's column norms."""
        return np.sqrt(np.maximum(np.diagonal(self.gram), 0.0))


def partition_moments(part, plan: RowPlan) -> Moments | None:
    """:class:`Moments` of a partition's rows (None without rows)."""
    rows = partition_rows(part, plan)
    return None if rows is None else Moments.of_rows(rows, plan.fixed_terms)
