"""Kenward-Roger: the adjusted covariance of the fixed effects and its df, as pbkrtest
0.5.2 computes them (``vcovAdj``, ``Lb_ddf``, ``KRmodcomp``), for REML fits.

pbkrtest writes V = sum_r gamma_r G_r, one G_r per covariance entry of each lme4
random term (G = Z_t (I (x) E_ij) Z_t') plus the identity for the residual, and
needs V^{-1} G_r V^{-1} products of size n x n. Here every such product is taken
in the space of the q random effects instead: with Lambda the relative factor,
R = Lambda (Lambda'Z'Z Lambda + I)^{-1} Lambda' and U = sigma^2 V^{-1} = I - Z R Z',

    C0 = Z'UZ, B0 = Z'UX, D0 = X'UX, and U^2, U^3 terms from them,

so nothing of size n x n is formed; Z'Z is kept sparse and the dense work is
O(q^3) once (a q x q inverse).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, stats

from ..design import ModelDesign
from ..errors import DegenerateFitWarning, InterlaceError
from ..fitting.conditioning import Conditioning
from ..linalg.memory import check_dense_size
from ..linalg.system import dense_crossprod, stack_terms
from .satterthwaite import DEGENERATE_SIGMA

MAX_RANDOM_EFFECTS = 20_000
"""Largest q for Kenward-Roger whatever the memory: its O(q^3) products take tens of
minutes beyond it."""

PEAK_ARRAYS = 9
"""Dense (q + p) x (q + p) float64 arrays Kenward-Roger holds at its peak (measured with
``tracemalloc`` at q = 1,992: the cross-products, Lambda'Z'Z Lambda + I and its factor,
Lambda', R, A R, C0 and the products' temporaries); checked against ``max_dense_gib``
(:func:`interlace.linalg.memory.check_dense_size`) before anything is allocated."""


@dataclass(frozen=True)
class KenwardRoger:
    """pbkrtest's adjusted covariance and what the df computations need.

    Attributes
    ----------
    vcov : numpy.ndarray
        Phi, the unadjusted covariance of beta (the caller's scale).
    vcov_adjusted : numpy.ndarray
        Phi_A = Phi + 2 Phi U Phi (the caller's scale).
    P : list of numpy.ndarray
        P_r = -X'V^{-1} G_r V^{-1} X (the working scale).
    W : numpy.ndarray
        2 times the inverse expected information of the covariance parameters.
    undefined : str
        Why the adjustment is undefined on this fit (empty when it is defined): then
        every matrix, df and test is NaN.
    """

    vcov: np.ndarray
    vcov_adjusted: np.ndarray
    P: list
    W: np.ndarray
    undefined: str = ""
    working: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    """(Phi, Phi_A) of the working fixed effects, when ``conditioning`` maps them."""
    conditioning: Conditioning | None = field(default=None, repr=False)
    """The map from the caller's fixed effects to the working ones (None: the same)."""

    def _working_rows(self, contrast: np.ndarray, beta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The contrast L on the caller's beta as rows on the working beta, and L beta
        in them (:meth:`~interlace.fitting.conditioning.Conditioning.hypothesis`)."""
        L = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
        beta = np.zeros(L.shape[1]) if beta is None else np.asarray(beta, dtype=np.float64)
        if self.conditioning is None:
            return L, L @ beta
        return self.conditioning.hypothesis(L, beta)

    def ddf(self, contrast: np.ndarray) -> float:
        """pbkrtest's ``Lb_ddf``: the denominator df for L beta."""
        if self.undefined:
            return float("nan")
        return self._adjust(self._working_rows(contrast)[0])[0]

    def _adjust(self, L: np.ndarray) -> tuple[float, float, int, float]:
        """(df2, F scaling, q, A2) of pbkrtest's ``.KR_adjust`` for a contrast L of the
        working fixed effects."""
        Phi = self.vcov if self.working is None else self.working[0]
        theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        theta_phi = theta @ Phi
        u = [theta_phi @ P @ Phi for P in self.P]
        traces = np.array([np.trace(ui) for ui in u])
        m = len(u)
        A1 = A2 = 0.0
        for i in range(m):
            for j in range(i, m):
                e = 1.0 if i == j else 2.0
                A1 += e * self.W[i, j] * traces[i] * traces[j]
                A2 += e * self.W[i, j] * float(np.sum(u[i] * u[j].T))
        q = int(np.linalg.matrix_rank(L))
        A1, A2 = np.float64(A1), np.float64(A2)
        with np.errstate(divide="ignore", invalid="ignore"):  # A2 = 0 and the like: inf/NaN, as R
            B = (A1 + 6.0 * A2) / (2.0 * q)
            g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
            denom = 3 * q + 2 * (1 - g)
            c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
            V0 = 1 + c1 * B
            V1 = 1 - c2 * B
            V2 = 1 - c3 * B
            V0 = 0.0 if abs(V0) < 1e-10 else V0
            ratio = _div_zero(1 - A2 / q, V1)
            rho = ratio**2 * V0 / V2 / q
            df2 = 4 + (q + 2) / (q * rho - 1)
            scaling = 1.0 if abs(df2 - 4) < 1e-2 else df2 * (1 - A2 / q) / (df2 - 2)
        return float(df2), float(scaling), q, float(A2)

    def f_test(self, contrast: np.ndarray, beta: np.ndarray) -> tuple[float, int, float, float]:
        """pbkrtest's ``KRmodcomp`` of L beta = 0: (F, numerator df, denominator df, p)."""
        L = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
        if self.undefined:
            return float("nan"), int(np.linalg.matrix_rank(L)), float("nan"), float("nan")
        L, Lb = self._working_rows(L, beta)
        df2, scaling, q, _ = self._adjust(L)
        adjusted = self.vcov_adjusted if self.working is None else self.working[1]
        wald = float(Lb @ np.linalg.solve(L @ adjusted @ L.T, Lb))
        F = scaling * wald / q
        return F, q, df2, float(stats.f.sf(F, q, df2))


def _div_zero(x: float, y: float, tol: float = 1e-14) -> float:
    """pbkrtest's ``.divZero``: x / y, or 0 when both are (near) zero."""
    if abs(x) < tol and abs(y) < tol:
        return 0.0
    return x / y


def _covariance_entries(design: ModelDesign) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per covariance parameter of the random terms: the index pairs (u, v) of E_r in
    the random-effects space (both orders for an off-diagonal entry)."""
    out = []
    offset = 0
    for term in design.terms:
        k = term.n_columns
        levels = np.arange(term.n_levels) * k + offset
        for j in range(k):
            for i in range(j, k):
                if term.theta_index[i, j] < 0:
                    continue  # different lme4 terms: no covariance parameter
                u, v = levels + i, levels + j
                if i != j:
                    u, v = np.concatenate([u, v]), np.concatenate([v, u])
                out.append((u, v))
        offset += term.n_effects
    return out


def _degenerate(design: ModelDesign, theta: np.ndarray, scale: float, size: float | None = None) -> str:
    """Why Kenward-Roger is undefined at this fit (as Satterthwaite's df), else ''
    (``size``: the response's root mean square, the design's y's when None)."""
    if size is None:
        y = design.y
        size = float(np.sqrt(np.mean(y * y))) if y.size else 0.0
    sigma = float(np.sqrt(scale)) if np.isfinite(scale) and scale >= 0 else float("nan")
    if not (np.isfinite(sigma) and sigma > DEGENERATE_SIGMA * size):
        ratio = sigma / size if size > 0 else sigma
        return (f"the residual standard deviation is {ratio:.3g} times the response's root mean square, "
                "zero or not finite")
    if not np.all(np.isfinite(theta)):
        return "theta is not finite"
    if design.n_obs <= design.n_fixed:
        return f"{design.n_obs} observations for {design.n_fixed} fixed effects"
    return ""


def system_crossprod(system) -> np.ndarray:
    """[Z X]'[Z X] (dense, (q + p) square, the system's order) from a penalised system's
    own cross-products: the rest's dense block, and on the blocked path the leading
    term's blocks by level and its coupling with the rest."""
    rest = getattr(system, "rest_crossprod", None)
    if rest is None:
        raise InterlaceError("df_method='kenward-roger': the fit's rest is held sparse (a large model); "
                             "use df_method='satterthwaite'")
    if not system.n_leading:
        return np.ascontiguousarray(rest[:-1, :-1])
    lead = system.lead_term
    q1, k = lead.n_effects, lead.n_columns
    m = rest.shape[0] - 1
    full = np.zeros((q1 + m, q1 + m))
    for level in range(lead.n_levels):
        full[level * k : (level + 1) * k, level * k : (level + 1) * k] = system.lead_crossprod[level]
    ptr, idx, val = system.coupling
    rows = np.repeat(np.arange(lead.n_levels), np.diff(ptr)) * k
    keep = idx < m  # the coupling's y entries aside
    for c in range(k):
        full[rows[keep] + c, q1 + idx[keep]] = val[keep, c]
        full[q1 + idx[keep], rows[keep] + c] = val[keep, c]
    full[q1:, q1:] = rest[:-1, :-1]
    return full


def _undefined(design: ModelDesign, reason: str) -> KenwardRoger:
    warnings.warn(f"Kenward-Roger's adjustment is undefined ({reason}): standard errors and df are NaN",
                  DegenerateFitWarning, stacklevel=4)
    p, m = design.n_fixed, len(_covariance_entries(design)) + 1
    nan = np.full((p, p), np.nan)
    return KenwardRoger(nan, nan.copy(), [nan.copy() for _ in range(m)], np.full((m, m), np.nan), reason)


def kenward_roger(design: ModelDesign, theta: np.ndarray, scale: float,
                  conditioning: Conditioning | None = None, *, max_dense_gib: float | None = None,
                  system=None) -> KenwardRoger:
    """pbkrtest's ``vcovAdj`` at (theta, sigma^2) of a REML fit.

    ``design`` is the working design of ``conditioning`` (the fit's system's), ``scale``
    sigma^2 on the caller's scale; the computation runs on the working scale and the
    covariances, df and tests are the caller's (see :mod:`interlace.fitting.conditioning`).
    [Z X]'[Z X] comes from the design's rows, or from the fit's ``system`` when the
    design has none (a fit from a Dask frame: :func:`system_crossprod`).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"),
    ...                   df_method="kenward-roger")
    >>> m.fe_df.round(3).tolist()
    [17.0, 17.0]
    """
    n, p = design.n_obs, design.n_fixed
    terms = design.terms
    q = design.n_random
    size = None
    if conditioning is not None:
        scale = scale / conditioning.unit**2  # sigma'^2
        size = conditioning.response_size
    reason = _degenerate(design, theta, scale, size)
    if reason:
        return _undefined(design, reason)
    if q > MAX_RANDOM_EFFECTS:
        raise InterlaceError(
            f"df_method: Kenward-Roger works with dense q x q matrices; expected at most "
            f"{MAX_RANDOM_EFFECTS:,} random effects, found {q:,} (use df_method='satterthwaite')"
        )
    check_dense_size(q + p, f"Kenward-Roger's dense system for {q:,} random effects", max_dense_gib,
                     arrays=PEAK_ARRAYS, why="Use df_method='satterthwaite'. ", argument="df_method")
    if design.has_rows:
        codes, designs, design_start, index_offset, _, _ = stack_terms(terms, n)
        full = dense_crossprod(codes, designs, design_start, index_offset, np.ascontiguousarray(design.X), q + p)
    else:
        full = system_crossprod(system)
    A_zz = sp.csr_matrix(full[:q, :q])
    A_zx = full[:q, q:]
    A_xx = full[q:, q:]
    Lam = sp.block_diag([sp.kron(sp.eye(t.n_levels), t.relative_cov_factor(theta)) for t in terms], format="csr")
    P_mat = (Lam.T @ A_zz @ Lam).toarray() + np.eye(q)
    chol = linalg.cho_factor(P_mat, lower=True)
    Lam_dense_t = Lam.T.toarray()
    R = Lam @ linalg.cho_solve(chol, Lam_dense_t)  # Lambda P^{-1} Lambda'  (q x q)
    AR = np.asarray(A_zz @ R)  # A_zz R
    C0 = A_zz.toarray() - np.asarray((A_zz @ AR.T).T)  # A_zz - A_zz R A_zz
    B0 = A_zx - AR @ A_zx
    D0 = A_xx - A_zx.T @ R @ A_zx
    D1 = D0 - A_zx.T @ R @ B0
    B1 = B0 - AR @ B0
    D2 = D1 - B0.T @ R @ B0
    trace_RA = float(np.trace(AR))
    trace_U2 = n - 2.0 * trace_RA + float(np.sum(AR * AR.T))
    entries = _covariance_entries(design)
    s2, s4, s6 = scale, scale**2, scale**3
    Phi = s2 * np.linalg.inv(D0)
    # per parameter: E_r B0 (q x p, rows at u) and the P_r matrices
    EB0 = []
    P_list = []
    for u, v in entries:
        M = np.zeros((q, p))
        np.add.at(M, u, B0[v])
        EB0.append(M)
        P_list.append(-(B0.T @ M) / s4)
    P_list.append(-D1 / s4)
    m = len(entries) + 1
    Q = [[None] * m for _ in range(m)]
    K = np.zeros((m, m))
    C0_EB0 = [C0 @ M for M in EB0]
    for r, (ur, vr) in enumerate(entries):
        for s, (us, vs) in enumerate(entries):
            Q[r][s] = (EB0[r].T @ C0_EB0[s]) / s6
            K[r, s] = float(np.sum(C0[np.ix_(vr, us)] * C0[np.ix_(vs, ur)].T)) / s4
        Q[r][m - 1] = (EB0[r].T @ B1) / s6
        Q[m - 1][r] = Q[r][m - 1].T
        # tr(E_r C1) with C1 = C0 - A_zz R C0, only at the pairs (v, u)
        c1_pairs = C0[vr, ur] - np.einsum("ij,ij->i", AR[vr], C0[:, ur].T)
        K[r, m - 1] = K[m - 1, r] = float(np.sum(c1_pairs)) / s4
    Q[m - 1][m - 1] = D2 / s6
    K[m - 1, m - 1] = trace_U2 / s4
    info = np.empty((m, m))
    for r in range(m):
        for s in range(m):
            info[r, s] = (K[r, s] - 2.0 * np.sum(Phi * Q[r][s])
                          + np.sum((Phi @ P_list[r]) * (P_list[s] @ Phi)))
    info = 0.5 * (info + info.T)
    if not (np.all(np.isfinite(info)) and np.all(np.isfinite(Phi))):  # overflow on a degenerate fit
        return _undefined(design, "its information matrix is not finite at this fit")
    if np.min(np.abs(np.linalg.eigvalsh(info))) > 1e-10:
        W = 2.0 * np.linalg.inv(info)
    else:
        W = 2.0 * np.linalg.pinv(info)
    W = 0.5 * (W + W.T)
    U = np.zeros((p, p))
    for r in range(m):
        for s in range(m):
            U += W[r, s] * (Q[r][s] - P_list[r] @ Phi @ P_list[s])
    adjusted = Phi + 2.0 * Phi @ U @ Phi
    adjusted = 0.5 * (adjusted + adjusted.T)
    if conditioning is None:
        return KenwardRoger(Phi, adjusted, P_list, W)
    return KenwardRoger(conditioning.cov(Phi), conditioning.cov(adjusted), P_list, W,
                        working=(Phi, adjusted), conditioning=conditioning)


def kenward_roger_table(kr: KenwardRoger, beta: pd.Series) -> pd.DataFrame:
    """Per fixed effect: adjusted SE, KR df, t and p (lmerTest's ``summary(ddf = "Kenward-Roger")``)."""
    p = len(beta)
    eye = np.eye(p)
    se = np.sqrt(np.diag(kr.vcov_adjusted))
    df = np.array([kr.ddf(eye[j]) for j in range(p)])
    t = beta.to_numpy() / se
    return pd.DataFrame({"Estimate": beta.to_numpy(), "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": 2.0 * stats.t.sf(np.abs(t), df)}, index=beta.index)
