"""The generalised-least-squares quantities at the fit that every diagnostic reads.

With V the marginal covariance at the fit's theta and sigma^2, beta-hat the GLS
estimate (the fit's fixed effects) and e = y - X beta-hat the marginal residual:
V^{-1} X, V^{-1} e, X'V^{-1}X and its inverse (lme4's ``vcov``), each computed once,
through :class:`~interlace.diagnostics.woodbury.MarginalPrecision`.

They are read on the fit's working scale (:mod:`interlace.fitting.conditioning`): X', y',
beta' and sigma'^2. Every influence measure and leverage built from them is unchanged
by the affine map (a change of basis of beta and of the units of y), and the
diagnostics with units (marginal residuals) are mapped back where they are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InterlaceError
from .woodbury import MarginalPrecision


@dataclass
class GlsPieces:
    """The fit's GLS quantities (HLMdiag's ``.lmerMod_matrices`` without n x n matrices),
    on the working scale.

    Attributes
    ----------
    precision : MarginalPrecision
        V^{-1} through the fitted factor.
    X, y, beta : numpy.ndarray
        The fixed-effects matrix, the response and beta-hat.
    marginal_resid : numpy.ndarray
        e = y - X beta-hat.
    precision_X, precision_resid : numpy.ndarray
        V^{-1} X (n x p) and V^{-1} e.
    xvx, xvx_inv : numpy.ndarray
        X'V^{-1}X (from the fit's factor: L_X L_X' / sigma^2) and its inverse, vcov(beta).
    """

    precision: MarginalPrecision
    X: np.ndarray
    y: np.ndarray
    beta: np.ndarray
    marginal_resid: np.ndarray
    precision_X: np.ndarray
    precision_resid: np.ndarray
    xvx: np.ndarray
    xvx_inv: np.ndarray

    @property
    def n_fixed(self) -> int:
        """p, the number of fixed effects."""
        return self.X.shape[1]

    @cached_property
    def precision_diagonal(self) -> np.ndarray:
        """diag(V^{-1})."""
        return self.precision.diagonal()

    @cached_property
    def fixed_quadratic(self) -> np.ndarray:
        """(V^{-1}X)_i (X'V^{-1}X)^{-1} (V^{-1}X)_i' per row: diag(V^{-1} X vcov X' V^{-1})."""
        return np.einsum("ij,jk,ik->i", self.precision_X, self.xvx_inv, self.precision_X)

    @cached_property
    def projection_diagonal(self) -> np.ndarray:
        """diag(P), P = V^{-1} - V^{-1} X (X'V^{-1}X)^{-1} X' V^{-1}."""
        return self.precision_diagonal - self.fixed_quadratic


def check_finite_fit(result) -> None:
    """The diagnostics need finite theta and fixed effects and a positive residual
    variance: anything else (a fit that failed) is an :class:`InterlaceError`."""
    theta, scale = np.asarray(result.theta, dtype=np.float64), float(result.scale)
    beta = result.fe_params.to_numpy(dtype=np.float64)
    if np.all(np.isfinite(theta)) and np.all(np.isfinite(beta)) and np.isfinite(scale) and scale > 0:
        return
    raise InterlaceError(
        "result: the diagnostics need a fit with finite theta and fixed effects and a positive "
        f"residual variance, found theta {np.round(theta, 6).tolist()}, fixed effects "
        f"{np.round(beta, 6).tolist()} and scale {scale!r}"
    )


def gls_pieces(result) -> GlsPieces:
    """The GLS quantities of a fit.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> pieces = gls_pieces(m)
    >>> c = m._conditioning
    >>> bool(np.allclose(c.cov(pieces.xvx_inv), m.fe_cov)), bool(np.allclose(c.beta(pieces.beta), m.fe_params))
    (True, True)
    """
    check_finite_fit(result)
    system = result._system
    design = system.design
    precision = MarginalPrecision(result)
    X = design.X
    y = design.y
    beta = system.solve(result._factor, np.asarray(result.theta, dtype=np.float64))[1]
    resid = y - X @ beta
    both = precision.times(np.column_stack([X, resid]))
    Lx = result._factor.fixed_chol
    xvx = (Lx @ Lx.T) / precision.sigma2
    xvx_inv = np.linalg.inv(xvx)
    return GlsPieces(precision, X, y, beta, resid, both[:, :-1], both[:, -1], xvx, xvx_inv)
