"""V^{-1} without an n x n matrix: the Woodbury form through the fitted Cholesky factor.

With lme4's A = Lambda'Z' (q x n, sparse) the marginal covariance of y is

    V = sigma^2 (A'A + I),    V^{-1} = sigma^{-2} (I - A' M^{-1} A),    M = A A' + I,

and M is the random-effects block of the penalised system that the fit already
factored (:mod:`interlace.linalg.system`). On the blocked path M splits into the
leading term's block-diagonal M_11 (one k x k block per level) and the rest, whose
Schur complement S = M_rr - M_r1 M_11^{-1} M_1r is the leading block of the dense
factor. For a column a of A, with w = a_r - M_r1 M_11^{-1} a_1,

    a' M^{-1} a = a_1' M_11^{-1} a_1 + w' S^{-1} w,

and w has non-zeros only where the row's leading level meets the other terms, so the
diagonal of V^{-1} and its blocks over a few rows cost a few small products per row.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy import sparse
from scipy.linalg import cho_solve, lapack

from ..design import RandomTerm
from ..errors import InterlaceError
from ..kernels.diagnostics import column_quadratic_forms
from ..linalg.threads import limited


def random_design_transpose(
    terms: tuple[RandomTerm, ...], theta: np.ndarray, n_obs: int
) -> sparse.csc_matrix:
    """lme4's A = Lambda'Z' (q x n, CSC) for the terms in the given order.

    Row ``offset + level * k + c`` of a term holds (z_i' T)_c for the rows i at that
    level, z_i the row's design for the term and T its relative covariance factor.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> A = random_design_transpose(m._system.design.terms, m.theta, m.nobs)
    >>> A.shape, A.nnz
    ((6, 30), 30)
    """
    rows, columns, values = [], [], []
    offset = 0
    observation = np.arange(n_obs, dtype=np.int64)
    for term in terms:
        k = term.n_columns
        scaled = term.design @ term.relative_cov_factor(theta)
        rows.append(
            (
                offset + term.group_codes.astype(np.int64)[:, None] * k + np.arange(k)[None, :]
            ).ravel()
        )
        columns.append(np.repeat(observation, k))
        values.append(scaled.ravel())
        offset += term.n_effects
    matrix = sparse.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(offset, n_obs),
    ).tocsc()
    matrix.sort_indices()
    return matrix


class MarginalPrecision:
    """V^{-1} of a fitted model, applied and read entry by entry through the fit's factor.

    Parameters
    ----------
    result : CrossedLMEResult
        The fit; its (working) system, factor and theta, and sigma'^2 = sigma^2 / s^2,
        the residual variance on the working scale (:mod:`interlace.fitting.conditioning`).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> precision = MarginalPrecision(m)
    >>> dense = precision.block(np.arange(m.nobs))
    >>> bool(np.allclose(np.diag(dense), precision.diagonal()))
    True
    """

    def __init__(self, result):
        system = result._system
        factor = result._factor
        if system.rest_layout != "dense":
            raise InterlaceError(
                "result: the diagnostics read the dense factor of the rest; this fit factored its "
                "rest as a sparse matrix (a design whose dense rest would not fit), found "
                f"{system.n_rest_random} rest effects"
            )
        theta = np.asarray(result.theta, dtype=np.float64)
        design = system.design
        self.sigma2 = float(result.scale) / result._conditioning.unit**2
        self.n_obs = design.n_obs
        self.A = random_design_transpose(design.terms, theta, self.n_obs)
        self.n_lead = system.lead_term.n_effects if system.lead_term is not None else 0
        self.n_rest = system.n_rest_random
        self._rest_chol = np.tril(factor.rest_chol[: self.n_rest, : self.n_rest])
        if self.n_lead:
            lead = system.lead_term
            self.lead_k = lead.n_columns
            self.lead_codes = lead.group_codes.astype(np.int64)
            self.lead_levels = lead.n_levels
            chol_inverse = np.linalg.inv(factor.lead_chol)
            # M_11,l^{-1} = L_l^{-T} L_l^{-1}
            self.lead_inverse = np.einsum("lai,laj->lij", chol_inverse, chol_inverse)
            self.lead_scaled = np.ascontiguousarray(lead.design @ lead.relative_cov_factor(theta))
            A = self.A
            self.A_lead = A[: self.n_lead]
            self.A_rest = A[self.n_lead :]
            self.coupling = (self.A_rest @ self.A_lead.T).tocsr()  # M_r1 (M = AA' + I)
        else:
            self.A_rest = self.A

    # ----- products --------------------------------------------------------------------------
    def solve_random(self, rhs: np.ndarray) -> np.ndarray:
        """M^{-1} R for a dense q x c matrix R (random effects in factorisation order)."""
        rhs = np.asarray(rhs, dtype=np.float64)
        vector = rhs.ndim == 1
        R = rhs.reshape(rhs.shape[0], -1)
        q1 = self.n_lead
        R_rest = R[q1:]
        if q1:
            k = self.lead_k
            R_lead = R[:q1].reshape(self.lead_levels, k, -1)
            X_lead = np.einsum("lij,ljc->lic", self.lead_inverse, R_lead).reshape(q1, -1)
            R_rest = R_rest - self.coupling @ X_lead
        X_rest = cho_solve((self._rest_chol, True), R_rest) if self.n_rest else R_rest
        if q1:
            corrected = (R[:q1] - self.coupling.T @ X_rest).reshape(self.lead_levels, k, -1)
            X_lead = np.einsum("lij,ljc->lic", self.lead_inverse, corrected).reshape(q1, -1)
            out = np.vstack([X_lead, X_rest])
        else:
            out = X_rest
        return out[:, 0] if vector else out

    def times(self, values: np.ndarray) -> np.ndarray:
        """V^{-1} W for an n-vector or an n x c matrix W."""
        W = np.asarray(values, dtype=np.float64)
        AW = self.A @ W
        return (W - self.A.T @ self.solve_random(AW)) / self.sigma2

    # ----- selected entries ------------------------------------------------------------------
    @cached_property
    def schur_inverse(self) -> np.ndarray:
        """S^{-1} (dense, symmetric), S the Schur complement of the leading block in M."""
        if not self.n_rest:
            return np.zeros((0, 0))
        # LAPACK's potri on the BLAS threads the order allows (one below 2,000): on one
        # thread it takes a third of the time of two triangular solves with the identity
        with limited(self.n_rest):
            inverse = lapack.dpotri(np.asfortranarray(self._rest_chol), lower=1)[0]
        return np.tril(inverse) + np.tril(inverse, -1).T

    @cached_property
    def _lead_projection(self) -> tuple[sparse.csc_matrix | None, np.ndarray | None]:
        """B = M_11^{-1} A_1 (q1 x n, one k-block per column) and its per-row values."""
        if not self.n_lead:
            return None, None
        k = self.lead_k
        values = np.einsum("nij,nj->ni", self.lead_inverse[self.lead_codes], self.lead_scaled)
        indices = (self.lead_codes[:, None] * k + np.arange(k)[None, :]).ravel()
        indptr = np.arange(0, self.n_obs * k + 1, k, dtype=np.int64)
        B = sparse.csc_matrix((values.ravel(), indices, indptr), shape=(self.n_lead, self.n_obs))
        return B, values

    @cached_property
    def eliminated_rest(self) -> sparse.csc_matrix:
        """W = A_r - M_r1 M_11^{-1} A_1 (q_r x n, CSC, sorted): column i is row i's w."""
        B, _ = self._lead_projection
        W = self.A_rest if B is None else (self.A_rest - self.coupling @ B)
        W = sparse.csc_matrix(W)
        W.sum_duplicates()
        W.sort_indices()
        return W

    def random_quadratic_diagonal(self) -> np.ndarray:
        """a_i' M^{-1} a_i for every row i (a_i the i-th column of A)."""
        W = self.eliminated_rest
        rest = column_quadratic_forms(
            W.indptr.astype(np.int64), W.indices.astype(np.int64), W.data, self.schur_inverse
        )
        B, values = self._lead_projection
        if B is None:
            return rest
        return rest + np.einsum("ni,ni->n", self.lead_scaled, values)

    def diagonal(self) -> np.ndarray:
        """diag(V^{-1}), row by row: sigma^{-2} (1 - a_i' M^{-1} a_i)."""
        return (1.0 - self.random_quadratic_diagonal()) / self.sigma2

    def random_quadratic_block(self, rows: np.ndarray) -> np.ndarray:
        """A_I' M^{-1} A_I (m x m) for the rows I, through the non-zeros of their w's."""
        rows = np.asarray(rows, dtype=np.int64)
        m = len(rows)
        W = self.eliminated_rest[:, rows]
        W.sort_indices()
        used = np.unique(W.indices)
        local = sparse.csc_matrix(
            (W.data, np.searchsorted(used, W.indices), W.indptr), shape=(len(used), m)
        )
        left = np.asarray(local.T @ self.schur_inverse[np.ix_(used, used)])  # (m, |U|)
        Q = np.asarray((local.T @ left.T).T)
        B, _ = self._lead_projection
        if B is not None:
            Q = Q + (self.A_lead[:, rows].T @ B[:, rows]).toarray()
        return Q

    def block(self, rows: np.ndarray) -> np.ndarray:
        """The block V^{-1}_{II} (m x m) for the rows I."""
        Q = self.random_quadratic_block(rows)
        return (np.eye(Q.shape[0]) - Q) / self.sigma2

    def covariance_block(self, rows: np.ndarray) -> np.ndarray:
        """The block V_{II} = sigma^2 (A_I'A_I + I) of V itself (dense m x m)."""
        rows = np.asarray(rows, dtype=np.int64)
        A_rows = self.A[:, rows]
        return self.sigma2 * ((A_rows.T @ A_rows).toarray() + np.eye(len(rows)))

    def random_covariance_diagonal(self) -> np.ndarray:
        """diag(A'A) = diag(Z D Z') / sigma^2, row by row."""
        return np.asarray(self.A.multiply(self.A).sum(axis=0)).ravel()

    def cost_of_block(self, rows: np.ndarray) -> float:
        """A rough flop count of :meth:`block` for these rows (to choose a deletion path)."""
        W = self.eliminated_rest[:, np.asarray(rows, dtype=np.int64)]
        m = W.shape[1]
        used = len(np.unique(W.indices))
        return float(W.nnz * (used + m) + used * used + m**3 / 3.0)
