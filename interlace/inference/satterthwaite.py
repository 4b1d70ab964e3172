"""Satterthwaite's denominator degrees of freedom, as lmerTest 3.1-3 computes them.

With varpar = (theta, sigma), D(varpar) the deviance profiled over beta only and
C(varpar) = sigma^2 (R_X'R_X)^{-1} the covariance of the fixed effects:

    A = 2 H^+ (H the Hessian of D; pseudo-inverse over eigenvalues > 1e-8)
    for a contrast L:  v = L'CL,  g_i = L' (dC/dvarpar_i) L,  df = 2 v^2 / (g'Ag)

lmerTest differentiates D and C numerically; here H and dC/dvarpar are exact
(:mod:`interlace.inference.deviance_hessian`), so a balanced design gets its exact df.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import DegenerateFitWarning
from ..linalg.system import PenalizedSystem
from .deviance_hessian import deviance_derivatives

DEGENERATE_SIGMA = 1e-12
"""A residual SD below this share of the response's root mean square is zero (a
perfect fit): the deviance's curvature in sigma is then infinite."""

EIGEN_TOL = 1e-8
"""Eigenvalues of the Hessian below this are treated as zero (lmerTest's tol)."""


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
    method : str
        How H and the Jacobian were computed (see :func:`deviance_derivatives`).
    """

    vcov_varpar: np.ndarray
    vcov_jacobian: np.ndarray
    hessian: np.ndarray
    method: str = "general"


def _undefined(m: int, p: int, reason: str) -> VarparDerivatives:
    warnings.warn(f"Satterthwaite's df are undefined ({reason}): they are NaN", DegenerateFitWarning,
                  stacklevel=4)
    nan = np.full((m + 1, m + 1), np.nan)
    return VarparDerivatives(nan, np.full((m + 1, p, p), np.nan), nan.copy(), "undefined")


def varpar_derivatives(system: PenalizedSystem, theta: np.ndarray, sigma: float, reml: bool,
                       response_size: float | None = None) -> VarparDerivatives:
    """Hessian of D and Jacobian of C at (theta, sigma), as lmerTest defines them.

    A degenerate fit (sigma zero or not finite, or below :data:`DEGENERATE_SIGMA` of
    the response's size, ``response_size`` or the root mean square of the system's y;
    theta not finite) has no df: the result is NaN, with a
    :class:`~interlace.errors.DegenerateFitWarning`. On the working scale the size is
    the caller's response's (:attr:`~interlace.fitting.conditioning.Conditioning.response_size`).
    """
    theta = np.asarray(theta, dtype=np.float64)
    m, p = len(theta), system.design.n_fixed
    if response_size is not None:
        size = float(response_size)
    else:
        y = system.design.y
        size = float(np.sqrt(np.mean(y * y))) if y.size else 0.0
    if not (np.isfinite(sigma) and sigma > DEGENERATE_SIGMA * size):
        if np.isfinite(sigma) and sigma > 0:  # in units of the response: free of the working scale
            reason = f"the residual standard deviation is {sigma / size:.3g} of the response's, zero to rounding"
        else:
            reason = f"the residual standard deviation is {sigma!r}, zero or not finite"
        return _undefined(m, p, reason)
    if not np.all(np.isfinite(theta)):
        return _undefined(m, p, "theta is not finite")
    with np.errstate(all="ignore"):
        derivatives = deviance_derivatives(system, theta, sigma, reml)
    hess = derivatives.hessian
    if not (np.all(np.isfinite(hess)) and np.all(np.isfinite(derivatives.vcov_jacobian))):
        return _undefined(m, p, "the deviance's Hessian is not finite at the optimum")
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
    return VarparDerivatives(2.0 * pinv, derivatives.vcov_jacobian, hess, derivatives.method)


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
    if not (np.isfinite(denom) and np.isfinite(v)):
        return np.nan
    return 2.0 * v**2 / denom if denom > 0 else np.inf
