"""Satterthwaite's denominator degrees of freedom, as lmerTest 3.1-3 computes them.

With varpar = (theta, sigma), D(varpar) the deviance profiled over beta only and
C(varpar) = sigma^2 (R_X'R_X)^{-1} the covariance of the fixed effects:

    A = 2 H^+ (H the Hessian of D; pseudo-inverse over eigenvalues > 1e-8)
    for a contrast L:  v = L'CL,  g_i = L' (dC/dvarpar_i) L,  df = 2 v^2 / (g'Ag)

Derivatives are central differences on theta (every point one factorisation,
2 m^2 of them for m theta entries) and exact in sigma, which D and C depend on in
closed form.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..linalg.system import Factor, PenalizedSystem
from ..objective import LOG_2PI, residual_dof

EIGEN_TOL = 1e-8
"""Eigenvalues of the Hessian below this are treated as zero (lmerTest's tol)."""

RELATIVE_STEP = 1e-4
"""Finite-difference step on theta, relative to max(|theta_i|, 1)."""


@dataclass(frozen=True)
class VarparDerivatives:
    """Derivatives at the optimum that Satterthwaite's df need.

    Attributes
    ----------
    vcov_varpar : numpy.ndarray
        A = 2 H^+, (m+1) x (m+1).
    vcov_jacobian : numpy.ndarray
        (m+1, p, p): dC/dvarpar_i.
    hessian : numpy.ndarray
        H, the Hessian of D.
    """

    vcov_varpar: np.ndarray
    vcov_jacobian: np.ndarray
    hessian: np.ndarray


def _pieces(factor: Factor) -> tuple[float, float, np.ndarray]:
    """(log-determinants, pwrss, (R_X'R_X)^{-1}) from a factor."""
    Lx = factor.fixed_chol
    p = Lx.shape[0]
    inv = np.linalg.solve(Lx, np.eye(p))
    return factor.logdet_random, factor.pwrss, inv.T @ inv


def varpar_derivatives(system: PenalizedSystem, theta: np.ndarray, sigma: float, reml: bool) -> VarparDerivatives:
    """Hessian of D and Jacobian of C at (theta, sigma), as lmerTest defines them."""
    design = system.design
    n, p = design.n_obs, design.n_fixed
    nu = residual_dof(n, p, reml)
    m = len(theta)

    def evaluate(th: np.ndarray) -> tuple[float, float, np.ndarray]:
        factor = system.factorize(th)
        logdet, pwrss, xtvx_inv = _pieces(factor)
        if reml:
            logdet += factor.logdet_fixed
        return logdet, pwrss, xtvx_inv

    def deviance(logdet: float, pwrss: float, s: float) -> float:
        return logdet + pwrss / s**2 + nu * (LOG_2PI + 2.0 * np.log(s))

    h = RELATIVE_STEP * np.maximum(np.abs(theta), 1.0)
    base = evaluate(theta)
    plus = [evaluate(theta + h[i] * np.eye(m)[i]) for i in range(m)]
    minus = [evaluate(theta - h[i] * np.eye(m)[i]) for i in range(m)]
    hess = np.zeros((m + 1, m + 1))
    d0 = deviance(base[0], base[1], sigma)
    for i in range(m):
        hess[i, i] = (deviance(*plus[i][:2], sigma) - 2 * d0 + deviance(*minus[i][:2], sigma)) / h[i] ** 2
        for j in range(i):
            e = np.eye(m)
            pp = evaluate(theta + h[i] * e[i] + h[j] * e[j])
            pm = evaluate(theta + h[i] * e[i] - h[j] * e[j])
            mp = evaluate(theta - h[i] * e[i] + h[j] * e[j])
            mm = evaluate(theta - h[i] * e[i] - h[j] * e[j])
            value = (deviance(*pp[:2], sigma) - deviance(*pm[:2], sigma)
                     - deviance(*mp[:2], sigma) + deviance(*mm[:2], sigma)) / (4 * h[i] * h[j])
            hess[i, j] = hess[j, i] = value
        # mixed theta-sigma: dD/dsigma = -2 pwrss / sigma^3 + 2 nu / sigma
        hess[i, m] = hess[m, i] = (-2.0 / sigma**3) * (plus[i][1] - minus[i][1]) / (2 * h[i])
    hess[m, m] = 6.0 * base[1] / sigma**4 - 2.0 * nu / sigma**2
    jac = np.empty((m + 1, p, p))
    for i in range(m):
        jac[i] = sigma**2 * (plus[i][2] - minus[i][2]) / (2 * h[i])
    jac[m] = 2.0 * sigma * base[2]
    eigenvalues, vectors = np.linalg.eigh(hess)
    negative = int(np.sum(eigenvalues < -EIGEN_TOL))
    if negative:
        warnings.warn(
            f"Model failed to converge with {negative} negative eigenvalue(s): "
            f"{', '.join(f'{v:.1e}' for v in eigenvalues[eigenvalues < -EIGEN_TOL])}",
            RuntimeWarning,
            stacklevel=3,
        )
    keep = eigenvalues > EIGEN_TOL
    pinv = (vectors[:, keep] / eigenvalues[keep]) @ vectors[:, keep].T
    return VarparDerivatives(2.0 * pinv, jac, hess)


def satterthwaite_df(contrast: np.ndarray, vcov_beta: np.ndarray, derivatives: VarparDerivatives) -> float:
    """Denominator df of one contrast L (a length-p vector).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> round(float(m.fe_df["Days"]), 3)
    17.0
    """
    contrast = np.asarray(contrast, dtype=np.float64)
    v = float(contrast @ vcov_beta @ contrast)
    grad = np.einsum("a,iab,b->i", contrast, derivatives.vcov_jacobian, contrast)
    denom = float(grad @ derivatives.vcov_varpar @ grad)
    return 2.0 * v**2 / denom if denom > 0 else np.inf
