"""The working scale: one affine reparametrisation that every computation runs on,
and its one back-transform to the caller's scale.

With the caller's X (n x p, full rank) and response y (less the offset), the fit
runs on the working design

    X' = X T,    y' = (y - X gamma) / s,

T = sqrt(n) R^{-1} from X = QR (so X' = sqrt(n) Q: orthogonal columns of unit root
mean square), gamma the least-squares coefficients of y on X, and s the root mean
square of the residual y - X gamma (at least :data:`EXACT_FIT_TOLERANCE` of y's),
signed so that y' has a positive third moment. The model y = X beta + Z b + e is the
model y' = X' beta' + Z b' + e' with

    beta = gamma + s T beta',   b = s b',   e = s e',   sigma = |s| sigma',
    vcov(beta) = s^2 T vcov(beta') T',

and theta unchanged (Lambda is relative to sigma). Shifts and scales of y, and of
any column of X, change gamma, s and T only: the working problem stays the same,
as well conditioned as the data allow (a response shifted by 1e8 of its SD keeps 8
of its 16 digits, and so does y'). The criteria differ by constants, the
Jacobians of the map:

    ML deviance     D    = D'    + 2 n log|s|,
    REML criterion  D_R  = D_R'  + 2 (n - p) log|s| - 2 log|det T|.

A contrast L beta of the caller's fixed effects is L gamma + s (L T) beta' on the
working ones; its df and tests are read on the working scale.

Where the fixed effects fit y exactly (a residual of rounding, below
:data:`EXACT_FIT_TOLERANCE` of y), s is that share of y's root mean square: beta is
then gamma, the exact coefficients, and sigma' is far below
:attr:`Conditioning.response_size`, y's size on the working scale, against which the
fit's checks find a zero residual variance; :func:`condition` warns then
(:func:`interlace.design.warn_if_exact`). X's factorisation is
:func:`interlace.linalg.thin_qr.thin_qr`, the least squares of y the one on its Q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import lapack

from ..design import ModelDesign, warn_if_exact
from ..linalg.thin_qr import thin_qr
from ..linalg.threads import limited
from ..shallow import with_fields

EXACT_FIT_TOLERANCE = 1e-12
"""The fixed effects fit y exactly when the residual's root mean square is below this
share of y's (rounding; the Satterthwaite code's zero residual SD): s is never smaller."""


def _with_fixed(design: ModelDesign, terms=None, **changes) -> ModelDesign:
    """``design`` with its FixedDesign's fields changed (and its terms, when given), the
    caches that do not depend on X's or y's values (names, term order) carried over."""
    new = replace(design, fixed=replace(design.fixed, **changes), **({} if terms is None else {"terms": terms}))
    new.__dict__["fixed_index"] = design.fixed_index  # computed once, shared by both designs
    if terms is None:
        new.__dict__["lme4_terms"] = design.lme4_terms
    return new


def _weighted_terms(design: ModelDesign, root_weights: np.ndarray):
    """The random terms with every row of their design scaled by sqrt(w)."""
    column = root_weights[:, None]
    return tuple(replace(t, design=np.ascontiguousarray(t.design * column)) for t in design.terms)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(values @ values / values.size)) if values.size else 0.0


def _least_squares(working_X: np.ndarray, basis: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(gamma, r, mean square of r, mean square of y) of the least squares of y on the
    orthogonal working columns (one pass for X'y, one for the residual r)."""
    n = y.size
    if not working_X.shape[1]:
        y_ms = float(y @ y) / n if n else 0.0
        return np.zeros(0), y, y_ms, y_ms
    coef = working_X.T @ y / n
    resid = y - working_X @ coef
    resid_ms = float(resid @ resid) / n
    return basis @ coef, resid, resid_ms, resid_ms + float(coef @ coef)  # X'X = n I: y'y = r'r + n coef'coef


def _working_response(resid: np.ndarray, resid_ms: float, y_ms: float) -> tuple[float, np.ndarray]:
    """(s, y'): s the residual's root mean square, at least :data:`EXACT_FIT_TOLERANCE`
    of y's (1 when both are 0), with the sign of the residual's third moment (of its
    largest entry when that is 0)."""
    n = resid.size
    scale = max(math.sqrt(resid_ms), EXACT_FIT_TOLERANCE * math.sqrt(y_ms))  # correctly rounded, as np.sqrt
    if not scale > 0:
        return 1.0, np.ascontiguousarray(resid, dtype=np.float64)
    working_y = resid / scale
    skew = float((working_y * working_y) @ working_y)
    if skew == 0.0 and n:
        skew = float(resid[int(np.argmax(np.abs(resid)))])
    if skew < 0:
        np.negative(working_y, out=working_y)
        scale = -scale
    return scale, working_y


@dataclass(frozen=True)
class Conditioning:
    """The map between the caller's fixed-effects problem and the working one (see
    the module docstring).

    Attributes
    ----------
    design : ModelDesign
        The caller's design: X, the response, names, terms, ``model_spec``.
    basis : numpy.ndarray
        T (p x p, upper triangular): X' = X T.
    log_det_basis : float
        log|det T|.
    shift : numpy.ndarray
        gamma (p): the least-squares coefficients of y on X.
    scale : float
        s, non-zero, signed: y' = (y - X gamma) / s.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("Reaction ~ Days + (Days | Subject)"),
    ...                  interlace.load_dataset("sleepstudy"))
    >>> c, working = condition(d)
    >>> bool(np.allclose(working.X.T @ working.X / d.n_obs, np.eye(2)))
    True
    >>> bool(np.allclose(d.y, d.X @ c.shift + c.scale * working.y))
    True
    >>> bool(np.allclose(working.X, d.X @ c.basis))
    True
    """

    design: ModelDesign
    basis: np.ndarray
    log_det_basis: float
    shift: np.ndarray
    scale: float
    root_weights: np.ndarray | None = None
    log_weights: float = 0.0

    @classmethod
    def identity(cls, design: ModelDesign) -> Conditioning:
        """The map of a design that is its own working design (T = I, gamma = 0, s = 1)."""
        p = design.n_fixed
        return cls(design, np.eye(p), 0.0, np.zeros(p), 1.0)

    def weighted(self, values: np.ndarray) -> np.ndarray:
        """Values per row times sqrt(w) (unchanged without prior weights): the caller's
        rows as the working design holds them."""
        return values if self.root_weights is None else values * self.root_weights

    def rows(self, working_values: np.ndarray) -> np.ndarray:
        """A working residual per row on the caller's scale: s r' / sqrt(w)."""
        out = self.scale * working_values
        return out if self.root_weights is None else out / self.root_weights

    # ----- new responses ----------------------------------------------------------------
    def with_response(self, y: np.ndarray, working: ModelDesign | None = None) -> tuple[Conditioning, np.ndarray]:
        """The map of the same X for the response ``y`` (less the offset; gamma and s
        recomputed, T kept) and the working response y'. ``working``: a working design
        of this map (its X' is used; else X T is formed)."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        working_X = working.X if working is not None else self.weighted(self.design.X.T).T @ self.basis
        shift, resid, resid_ms, y_ms = _least_squares(working_X, self.basis, self.weighted(y))
        scale, working_y = _working_response(resid, resid_ms, y_ms)
        # shallow copies: the design's caches (names, term order) do not depend on y
        design = with_fields(self.design, fixed=with_fields(self.design.fixed, response=y))
        return with_fields(self, design=design, shift=shift, scale=scale), working_y

    # ----- the back-transform -----------------------------------------------------------
    @property
    def unit(self) -> float:
        """|s|: the caller's units of y per working unit."""
        return abs(self.scale)

    @property
    def response_size(self) -> float:
        """The root mean square of y (less the offset) on the working scale, rms(y) / |s|:
        the size a residual SD is compared with to find an exact fit."""
        return _rms(self.weighted(self.design.y)) / self.unit

    @property
    def sign(self) -> float:
        """The sign of s (+1 or -1): e = s e' carries it."""
        return 1.0 if self.scale > 0 else -1.0

    def beta(self, working_beta: np.ndarray) -> np.ndarray:
        """beta = gamma + s T beta'."""
        return self.shift + self.scale * (self.basis @ working_beta)

    def cov(self, working_cov: np.ndarray) -> np.ndarray:
        """vcov(beta) = s^2 T vcov(beta') T'."""
        return self.scale**2 * (self.basis @ working_cov @ self.basis.T)

    def deviance(self, working_deviance: float, reml: bool) -> float:
        """The caller's ML deviance or REML criterion from the working one (the
        Jacobian terms: 2 nu log|s|, and -2 log|det T| for REML)."""
        n, p = self.design.n_obs, self.design.n_fixed
        if not reml:
            return float(working_deviance + 2.0 * n * np.log(self.unit) - self.log_weights)
        return float(working_deviance + 2.0 * (n - p) * np.log(self.unit) - 2.0 * self.log_det_basis
                     - self.log_weights)

    def working_deviance(self, deviance: float, reml: bool) -> float:
        """The working criterion from the caller's (the inverse of :meth:`deviance`)."""
        return float(deviance - (self.deviance(0.0, reml)))

    # ----- contrasts --------------------------------------------------------------------
    def direction(self, contrast: np.ndarray) -> np.ndarray:
        """A contrast l of the caller's beta as a unit vector on the working beta (l T
        normalised): the direction its df are computed in."""
        working = np.asarray(contrast, dtype=np.float64) @ self.basis
        norm = float(np.linalg.norm(working))
        return working / norm if norm > 0 else working

    def hypothesis(self, contrast: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The hypothesis L beta = 0 on the caller's beta as M beta' = m on the working
        one: M = L T / c and m = L beta / (s c), c the largest entry of |L T| (against
        under- and overflow). M keeps L's rows, as lmerTest's F tests need (their df
        depend on the contrast's basis), and tests of M beta' = m are those of L beta."""
        L = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
        rows = L @ self.basis
        largest = float(np.max(np.abs(rows))) if rows.size else 0.0
        largest = largest if largest > 0 else 1.0
        value = (L @ np.asarray(beta, dtype=np.float64)) / self.scale / largest
        return rows / largest, value


def _working_columns(X: np.ndarray, householder: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """(X', T, log|det T|) of the (weighted) X: X' = sqrt(n) Q and T = sqrt(n) R^{-1}
    from X = QR (:func:`interlace.linalg.thin_qr.thin_qr`, ``householder`` passed on)."""
    n, p = X.shape
    if not p:
        return X, np.eye(0), 0.0
    root_n = float(np.sqrt(n))
    working_X, R = thin_qr(X, root_n, householder)  # R with a positive diagonal
    basis = lapack.dtrtri(R, lower=0)[0] * root_n  # upper triangular
    return working_X, basis, float(0.5 * p * np.log(n) - np.log(R.diagonal()).sum())


def condition(design: ModelDesign) -> tuple[Conditioning, ModelDesign]:
    """The working scale of a design: its :class:`Conditioning` and the working design
    (X' and y' in place of X and y, no offset; names, terms and ``model_spec`` the
    caller's), on which the penalised system is built.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> d = build_design(*split_formula("Reaction ~ Days + (Days | Subject)"), sleep)
    >>> shifted = build_design(*split_formula("Reaction ~ Days + (Days | Subject)"),
    ...                        sleep.assign(Reaction=1e8 + 1e3 * sleep.Reaction))
    >>> a, wa = condition(d)
    >>> b, wb = condition(shifted)
    >>> bool(np.allclose(wa.y, wb.y, atol=1e-7)), round(b.scale / a.scale, 6)
    (True, 1000.0)
    """
    with limited(0):  # products of n-vectors and n x p matrices: one BLAS thread, as build_system's
        return _condition(design)


def _condition(design: ModelDesign) -> tuple[Conditioning, ModelDesign]:
    weights = design.fixed.weights
    root_weights = None if weights is None else np.sqrt(weights)
    X = design.X if root_weights is None else np.ascontiguousarray(design.X * root_weights[:, None])
    y = design.y if root_weights is None else design.y * root_weights
    working_X, basis, log_det = _working_columns(X)
    shift, resid, resid_ms, y_ms = _least_squares(working_X, basis, y)
    if warn_if_exact(design.fixed, resid_ms, y_ms, stacklevel=5):  # _condition <- condition <- fit_linear <- fit
        # y' is then the factorisation's rounding, and what the fit finds in it (theta)
        # is that rounding's: Householder's, whatever the condition of X
        working_X, basis, log_det = _working_columns(X, householder=True)
        shift, resid, resid_ms, y_ms = _least_squares(working_X, basis, y)
    scale, working_y = _working_response(resid, resid_ms, y_ms)
    if root_weights is None:
        return Conditioning(design, basis, log_det, shift, scale), _with_fixed(
            design, matrix=working_X, response=working_y, offset=None)
    conditioning = Conditioning(design, basis, log_det, shift, scale, root_weights, float(np.log(weights).sum()))
    return conditioning, _with_fixed(design, _weighted_terms(design, root_weights), matrix=working_X,
                                     response=working_y, offset=None, weights=None)
