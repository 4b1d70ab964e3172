"""lme4's profile scale for the variance parameters, in a chart that stays smooth at
the boundary.

lme4 profiles the standard deviations and correlations of each random-effects term
and sigma (``devfun2``). An lme4 term is a dense lower-triangular block of its
grouping factor's relative covariance factor T; on a block of k columns

    T = diag(s) C / sigma,   s_r = sd_r,   row r of C = omega_r,

omega_r a unit vector of R^(r+1) with a non-negative last entry, written in angles
a_r1, ..., a_rr in [0, pi]:

    omega_r = (cos a_r1, sin a_r1 cos a_r2, ..., sin a_r1 ... sin a_r(r-1) cos a_rr,
               sin a_r1 ... sin a_rr),

so that cor_rc = omega_r . omega_c, and cor_r0 = cos a_r1. The chart phi holds, in
theta's order, s_r where theta has the diagonal entry (r, r) and a_r(c+1) where it
has (r, c), then sigma last. theta is smooth in phi everywhere, also where a
correlation is +-1 (an angle at 0 or pi, where the deviance is even in the angle)
and where an sd is 0: the nuisance optimisation of a profile sees a smooth function
on a box (sd >= 0, angles in [0, pi], sigma > 0), as lme4's bounded optimiser does
on its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design import ModelDesign
from ..summary import r_name


@dataclass(frozen=True)
class Entry:
    """One theta entry: its term, its row and column in T, its block's first column,
    and whether it is an sd (diagonal), a correlation with the block's first column
    (``cor_r0 = cos phi``) or another correlation."""

    term: int
    row: int
    col: int
    block_start: int

    @property
    def is_sd(self) -> bool:
        return self.row == self.col

    @property
    def is_first_cor(self) -> bool:
        """A correlation with the block's first column: phi is its angle (cor = cos phi)."""
        return not self.is_sd and self.col == self.block_start


def unit_row(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """omega (r + 1) of r angles and its Jacobian (r + 1, r).

    Examples
    --------
    >>> omega, d = unit_row(np.array([np.pi / 3]))
    >>> np.round(omega, 4).tolist(), np.round(d[:, 0], 4).tolist()
    ([0.5, 0.866], [-0.866, 0.5])
    """
    r = len(angles)
    if r == 1:  # the common case: a correlation with the block's first column
        c, s = np.cos(angles[0]), np.sin(angles[0])
        return np.array([c, s]), np.array([[-s], [c]])
    sin, cos = np.sin(angles), np.cos(angles)
    omega = np.empty(r + 1)
    jac = np.zeros((r + 1, r))
    prefix = 1.0  # prod of sin a_i, i < j
    for j in range(r + 1):
        tail = cos[j] if j < r else 1.0
        omega[j] = prefix * tail
        for m in range(j):
            jac[j, m] = tail * cos[m] * np.prod(np.delete(sin[:j], m))
        if j < r:
            jac[j, j] = -prefix * sin[j]
            prefix *= sin[j]
    return omega, jac


def row_angles(row: np.ndarray) -> np.ndarray:
    """The angles of a row of T (any positive multiple of omega), by ``arctan2`` (exact
    near 0 and pi); pi/2 for an all-zero row, whose direction is free."""
    r = len(row) - 1
    if not np.any(row):
        return np.full(r, np.pi / 2)
    tail = np.sqrt(np.cumsum(row[::-1] ** 2)[::-1])  # ||row[j:]||
    return np.array([np.arctan2(tail[j + 1], row[j]) for j in range(r)])


def psd_cholesky(cov: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of a positive semi-definite matrix, a zero column
    where a pivot vanishes (a singular covariance: a correlation at +-1, an sd at 0).

    Examples
    --------
    >>> psd_cholesky(np.array([[4.0, -2.0], [-2.0, 1.0]])).tolist()  # correlation -1
    [[2.0, 0.0], [-1.0, 0.0]]
    """
    k = cov.shape[0]
    factor = np.zeros((k, k))
    for j in range(k):
        pivot = cov[j, j] - factor[j, :j] @ factor[j, :j]
        if pivot <= 1e-14 * max(cov[j, j], 1e-300):
            continue
        factor[j, j] = np.sqrt(pivot)
        factor[j + 1 :, j] = (cov[j + 1 :, j] - factor[j + 1 :, :j] @ factor[j, :j]) / factor[j, j]
    return factor


class ProfileScale:
    """The chart phi of the variance parameters (see the module docstring).

    Parameters
    ----------
    design : ModelDesign
        The fitted model's design; theta follows its ``theta_index``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> scale = ProfileScale(m._system.design)
    >>> sigma = float(np.sqrt(m.scale))
    >>> phi = scale.from_theta(m.theta, sigma)
    >>> scale.names()
    ['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma']
    >>> np.round(phi, 3).tolist()  # the correlation 0.066 as the angle arccos(0.066)
    [24.74, 1.505, 5.922, 25.592]
    >>> np.round(scale.sdcor(phi), 3).tolist()
    [24.74, 0.066, 5.922, 25.592]
    >>> bool(np.allclose(scale.to_theta(phi), m.theta))
    True
    """

    def __init__(self, design: ModelDesign):
        self.terms = design.terms
        self.n_theta = design.n_theta
        entries: dict[int, Entry] = {}
        for t, term in enumerate(self.terms):
            index = term.theta_index
            start = 0
            for r in range(term.n_columns):
                if r > 0 and index[r, r - 1] < 0:
                    start = r  # a new lme4 term of the same grouping factor
                for c in range(start, r + 1):
                    entries[int(index[r, c])] = Entry(t, r, c, start)
        self.entries = [entries[i] for i in range(self.n_theta)]
        self.is_sd = np.array([e.is_sd for e in self.entries] + [True])
        """Per phi entry: an sd (or sigma, the last), else an angle."""
        self.lower = np.zeros(self.n_phi)
        self.upper = np.where(self.is_sd, np.inf, np.pi)
        self._row_list = [row[3:] for row in self._rows()]

    def block_angles(self, index: int) -> list[int]:
        """The phi indices of the angles in the block of theta entry ``index``."""
        e = self.entries[index]
        return [i for i, other in enumerate(self.entries)
                if not other.is_sd and other.term == e.term and other.block_start == e.block_start]

    @property
    def n_phi(self) -> int:
        return self.n_theta + 1

    def names(self) -> list[str]:
        """lme4's names (``oldNames = FALSE``) of the theta entries, then ``sigma``."""
        out = []
        for e in self.entries:
            term = self.terms[e.term]
            if e.is_sd:
                out.append(f"sd_{r_name(term.column_names[e.row])}|{term.name}")
            else:
                out.append(f"cor_{r_name(term.column_names[e.row])}.{r_name(term.column_names[e.col])}|{term.name}")
        return out + ["sigma"]

    def _rows(self):
        """(term, row, block start, phi index of s_r, phi indices of the row's angles,
        theta indices of the row's entries) of every row of every block."""
        for t, term in enumerate(self.terms):
            index = term.theta_index
            start = 0
            for r in range(term.n_columns):
                if r > 0 and index[r, r - 1] < 0:
                    start = r
                cols = index[r, start : r + 1]
                yield t, r, start, int(cols[-1]), cols[:-1].astype(np.int64), cols.astype(np.int64)

    def to_theta(self, phi: np.ndarray) -> np.ndarray:
        """theta at phi."""
        return self.jacobian(phi, with_jacobian=False)[0]

    def jacobian(self, phi: np.ndarray, with_jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(theta, d theta / d phi of shape (n_theta, n_phi)) at phi."""
        phi = np.asarray(phi, dtype=np.float64)
        sigma = phi[-1]
        theta = np.zeros(self.n_theta)
        jac = np.zeros((self.n_theta, self.n_phi)) if with_jacobian else None
        for s_at, angles_at, theta_at in self._row_list:
            s = phi[s_at]
            if angles_at.size == 0:  # a term's first row: theta = s / sigma
                theta[s_at] = s / sigma
                if jac is not None:
                    jac[s_at, s_at] = 1.0 / sigma
                    jac[s_at, -1] = -theta[s_at] / sigma
                continue
            omega, d_omega = unit_row(phi[angles_at])
            theta[theta_at] = s * omega / sigma
            if jac is not None:
                jac[theta_at, s_at] = omega / sigma
                jac[theta_at[:, None], angles_at] = s * d_omega / sigma
                jac[theta_at, -1] = -theta[theta_at] / sigma
        return theta, jac

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """phi of (theta, sigma)."""
        phi = np.empty(self.n_phi)
        phi[-1] = sigma
        for s_at, angles_at, theta_at in self._row_list:
            row = np.asarray(theta, dtype=np.float64)[theta_at]
            phi[s_at] = sigma * float(np.sqrt(row @ row))
            phi[angles_at] = row_angles(row)
        return phi

    def sdcor(self, phi: np.ndarray) -> np.ndarray:
        """lme4's values at phi: the sd or correlation of each theta entry, then sigma."""
        phi = np.asarray(phi, dtype=np.float64)
        omegas: dict[tuple[int, int], np.ndarray] = {}
        for t, r, _, _, angles_at, _ in self._rows():
            omegas[(t, r)] = unit_row(phi[angles_at])[0]
        out = np.empty(self.n_phi)
        out[-1] = phi[-1]
        for i, e in enumerate(self.entries):
            if e.is_sd:
                out[i] = phi[i]
            else:
                a, b = omegas[(e.term, e.row)], omegas[(e.term, e.col)]
                out[i] = float(a[: len(b)] @ b)
        return out
