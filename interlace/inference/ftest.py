"""F tests of several contrasts at once with Satterthwaite's df (lmerTest's ``contestMD``).

For a q x p contrast L: V_L = L C L' = P D P' (eigenvalues in decreasing order,
those above sqrt(machine eps) times the largest kept: rank q'); with rows
l_m = (P'L)_m, F = (1/q') sum_m (l_m' beta)^2 / d_m, nu_m = 2 d_m^2 / (g_m' A g_m)
(g_{m,i} = l_m' dC/dvarpar_i l_m), and the denominator df combine the nu_m as
lmerTest's ``get_Fstat_ddf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .satterthwaite import VarparDerivatives

EIGEN_REL_TOL = float(np.sqrt(np.finfo(float).eps))
"""Eigenvalues of L C L' below this fraction of the largest are dropped (rank)."""


@dataclass(frozen=True)
class FTest:
    """One F test: statistic, numerator and denominator df, p-value."""

    F: float
    num_df: int
    den_df: float
    p_value: float


def combine_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: one df from the per-direction df ``nu``."""
    nu = np.asarray(nu, dtype=np.float64)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    expected = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * expected / (expected - nu.size)


def satterthwaite_f_test(contrast: np.ndarray, beta: np.ndarray | None, vcov_beta: np.ndarray,
                         derivatives: VarparDerivatives, value: np.ndarray | None = None) -> FTest:
    """The F test of L beta = 0 with Satterthwaite's denominator df. ``value``, when
    given, is the estimate of L beta itself (``beta`` is then not read): the tests on
    the working scale (:meth:`~interlace.fitting.conditioning.Conditioning.hypothesis`).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> rows, value = m._conditioning.hypothesis(np.array([[0.0, 1.0]]), m.fe_params.to_numpy())
    >>> test = satterthwaite_f_test(rows, None, m._working_cov, m._varpar, value=value)
    >>> round(test.F, 3), test.num_df, round(test.den_df, 3)
    (45.853, 1, 17.0)
    """
    L = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
    values, vectors = np.linalg.eigh(L @ vcov_beta @ L.T)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > max(EIGEN_REL_TOL * values[0], 0.0)
    values, rows = values[keep], (vectors[:, keep].T @ L)
    rank = int(values.size)
    estimate = rows @ beta if value is None else vectors[:, keep].T @ np.atleast_1d(value)
    F = float(np.sum(estimate**2 / values) / rank)
    grads = np.einsum("ma,iab,mb->mi", rows, derivatives.vcov_jacobian, rows)
    nu = 2.0 * values**2 / np.einsum("mi,ij,mj->m", grads, derivatives.vcov_varpar, grads)
    den_df = combine_df(nu)
    return FTest(F, rank, den_df, float(stats.f.sf(F, rank, den_df)))
