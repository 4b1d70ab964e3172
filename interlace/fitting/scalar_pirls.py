"""PIRLS compiled for small designs of scalar terms with a canonical link, beta fixed.

The Laplace deviance of such a model is evaluated once per optimiser step, tens of
times per fit; on a design of a few thousand rows the general PIRLS
(:mod:`interlace.fitting.pirls`) spends most of each evaluation building its system's
objects rather than computing. Here the system is three arrays (the leading term's
diagonal, its coupling with the rest, the rest's Schur complement) that one kernel
refills per iteration (:func:`interlace.kernels.scalar_glmm.newton_system`):

- a coupling in which nearly every leading level meets every rest index (every subject
  sees every item) is held dense and eliminated by one BLAS rank update;
- a Schur complement whose pattern factors with little fill (nested terms: observations
  within broods within locations) is factored by the sparse Cholesky
  (:class:`~interlace.linalg.sparse_cholesky.SparseCholesky`, analysed once), and the
  gradient reads its selected inverse; any other by LAPACK, dense;
- the means and the log-likelihood, whose exp and log dominate a pass over the rows,
  are vectorised (numpy) on large designs and a compiled loop on small ones.

The Newton step is halved while the penalised deviance rises. The iteration, its
stopping rule and the factor kept at the mode are the general PIRLS's, so the two give
the same deviance (to rounding), and the gradient reads the same factor parts
(:class:`~.laplace_gradient.FactorParts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack

from ..kernels.glm import DBL_EPSILON, LOGIT_THRESHOLD
from ..kernels.scalar_glmm import loglik_and_means, newton_direction, newton_system, random_part
from ..linalg.sparse_cholesky import SparseCholesky
from .laplace_gradient import FactorParts, ScalarRows, gradient_from_parts, supports_gradient
from .pirls import FINAL_STEP, MAX_HALVINGS, MAX_ITERATIONS, PARALLEL_MIN_ROWS, TOLERANCE, Pirls

DENSE_SHARE = 0.5
"""A coupling with at least this share of the (leading level, rest index) pairs is held
dense and eliminated by BLAS (every subject meeting every item)."""

MAX_DENSE_COUPLING = 4_000_000
"""The most entries of a dense coupling (32 MB)."""

SPARSE_MIN_REST = 64
"""A smaller rest is factored dense whatever its pattern."""

SPARSE_SHARE = 0.25
"""A rest whose sparse factor has at most this share of a dense triangle's entries is
factored sparse."""

MAX_PATTERN_PAIRS = 5e6
"""The most (leading level, pair of rest indices) entries the sparse pattern is built from."""

VECTOR_MIN_ROWS = 2_000
"""From this many rows the log-likelihood's exp and log are numpy's (vectorised); below,
a compiled loop's (the same formulas)."""

LOG_EPSILON = float(np.log(DBL_EPSILON))
"""Below this eta a Poisson mean is R's floor, DBL_EPSILON."""

MAX_REST = 1_500
"""The largest dense rest (Schur complement) the compiled path factors at each iteration;
beyond it the general PIRLS, whose conjugate-gradient steps avoid most factorisations."""


class SparseRestFactor:
    """A sparse factor of the rest's Schur complement as the gradient reads it (see
    :class:`~interlace.fitting.laplace_gradient.FactorParts`): each mode owns one."""

    def __init__(self, chol: SparseCholesky, rows: np.ndarray, columns: np.ndarray):
        self.chol, self.rows, self.columns = chol, rows, columns

    def logdet(self) -> float:
        return self.chol.logdet()

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self.chol.solve(b)

    def dense_inverse(self) -> np.ndarray:
        """S^{-1} on S's pattern (both triangles), zero elsewhere."""
        n = self.chol.n
        out = np.zeros((n, n))
        values = self.chol.inverse_on_pattern()
        out[self.rows, self.columns] = values
        out[self.columns, self.rows] = values
        return out


@dataclass(frozen=True)
class ScalarMode:
    """A conditional mode from the compiled path: spherical effects, the fixed effects
    it was taken at, linear predictor, means, the Laplace deviance's parts and the
    factor at the mode's working weights."""

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    minus_twice_loglik: float
    penalty: float
    parts: FactorParts | None
    converged: bool

    @property
    def laplace_deviance(self) -> float:
        """-2 log p(y | u*) + ||u*||^2 + log|M| (inf when the factor failed)."""
        if self.parts is None:
            return np.inf
        value = self.minus_twice_loglik + self.penalty + self.parts.logdet()
        return value if np.isfinite(value) else np.inf


class ScalarPirls:
    """The compiled PIRLS of a :class:`~.pirls.Pirls` (see the module docstring).

    Parameters
    ----------
    pirls : Pirls
        Its design (terms in factorisation order, X on the working scale), response and
        offset; :meth:`applies` must hold.
    """

    def __init__(self, pirls: Pirls):
        design = pirls.design
        self.rows = rows = ScalarRows.of(pirls)
        terms = design.terms
        codes = rows.codes
        n = design.n_obs
        self.n_lead = terms[0].n_levels if pirls.n_leading else 0
        self.n_rest = design.n_random - self.n_lead
        self.rest_offsets = rows.offsets - np.where(np.arange(len(terms)) > 0, self.n_lead, 0)
        self.dense = False
        if self.n_lead:
            rest_index = codes[1:] + self.rest_offsets[1:, None]
            keys = (codes[0][None, :] * self.n_rest + rest_index).ravel()
            unique, inverse = np.unique(keys, return_inverse=True)
            grid = self.n_lead * self.n_rest
            self.dense = 0 < grid <= MAX_DENSE_COUPLING and unique.size >= DENSE_SHARE * grid
            if self.dense:  # every (leading level, rest index) pair: row-major positions
                self.ptr = np.arange(self.n_lead + 1, dtype=np.int64) * self.n_rest
                self.idx = np.tile(np.arange(self.n_rest, dtype=np.int64), self.n_lead)
                self.slots = np.ascontiguousarray(keys.reshape(len(terms) - 1, n).T, dtype=np.int64)
            else:
                self.ptr = np.searchsorted(unique // self.n_rest, np.arange(self.n_lead + 1)).astype(np.int64)
                self.idx = np.ascontiguousarray(unique % self.n_rest, dtype=np.int64)
                self.slots = np.ascontiguousarray(inverse.reshape(len(terms) - 1, n).T, dtype=np.int64)
        else:
            self.ptr, self.idx = np.zeros(1, np.int64), np.zeros(0, np.int64)
            self.slots = np.zeros((n, 0), np.int64)
        self.pattern_rows = self.pattern_columns = np.zeros(0, np.int64)  # set with a sparse rest
        self.sparse = self._sparse_rest(codes) if not self.dense and self.n_rest >= SPARSE_MIN_REST else None
        response = pirls.response
        self.y, self.weights = response.y, response.weights
        self.loglik_a = np.ascontiguousarray(response.loglik_a, dtype=np.float64)
        self.loglik_b = np.ascontiguousarray(response.loglik_b, dtype=np.float64)
        self.constant = float(response.loglik_constant)
        self.family_code = int(response.family.code)
        self.offset = pirls.offset
        self.X = design.X

    def _sparse_rest(self, codes: np.ndarray) -> SparseCholesky | None:
        """The Schur complement's sparse factor, analysed once, when its pattern (the rest
        pairs that share a row or a leading level) factors with little fill (nested
        terms: observations within broods within locations); else None (dense)."""
        first = 1 if self.n_lead else 0
        rest_index = codes[first:] + self.rest_offsets[first:, None]
        rows = [np.repeat(rest_index, rest_index.shape[0], axis=0).ravel()]
        columns = [np.tile(rest_index, (rest_index.shape[0], 1)).ravel()]
        sizes = np.diff(self.ptr)
        if self.n_lead and np.sum(sizes.astype(np.float64) ** 2) > MAX_PATTERN_PAIRS:
            return None
        for size in np.unique(sizes[sizes > 1]):  # the pairs a leading level's elimination fills
            levels = np.flatnonzero(sizes == size)
            entries = self.idx[self.ptr[levels][:, None] + np.arange(size)]
            rows.append(np.repeat(entries, size, axis=1).ravel())
            columns.append(np.tile(entries, (1, size)).ravel())
        rows, columns = np.concatenate(rows), np.concatenate(columns)
        pattern = sp.csc_matrix((np.ones(rows.size), (rows, columns)), shape=(self.n_rest, self.n_rest))
        chol = SparseCholesky.analyse(pattern)
        if chol.nnz_L > SPARSE_SHARE * self.n_rest * (self.n_rest + 1) / 2:
            return None
        self.pattern_rows = chol.input_indices
        self.pattern_columns = np.repeat(np.arange(self.n_rest, dtype=np.int64), np.diff(chol.input_indptr))
        return chol

    @staticmethod
    def applies(pirls: Pirls) -> bool:
        """Whether the compiled path fits the design: the exact gradient's conditions
        (canonical link, scalar terms, dense rest), fewer rows than a parallel pass pays
        for, and a rest small enough to factor at every iteration."""
        design = pirls.design
        if not supports_gradient(pirls) or not design.terms or design.n_obs >= PARALLEL_MIN_ROWS:
            return False
        n_lead = design.terms[0].n_levels if pirls.n_leading else 0
        return design.n_random - n_lead <= MAX_REST

    def mode(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None) -> ScalarMode:
        """The conditional mode at (theta, beta) by PIRLS from ``u0`` (zeros by default)."""
        rows = self.rows
        lam = rows.lambdas(np.asarray(theta, dtype=np.float64))
        beta = np.asarray(beta, dtype=np.float64)
        base = self.offset + self.X @ beta if beta.size else self.offset.copy()
        q = rows.n_random
        u = np.zeros(q) if u0 is None else np.array(u0, dtype=np.float64)
        eta = self._linear_predictor(base, lam, u)
        loglik, mu = self.loglik_and_means(eta)
        pdev = -2.0 * loglik + self.constant + float(u @ u)
        beta_size = float(np.max(np.abs(beta), initial=0.0))
        lead = np.empty(self.n_lead)
        coupling = np.empty(self.idx.size)
        schur = np.empty((self.n_rest, self.n_rest))
        rhs, step = np.empty(q), np.empty(q)
        converged, chol = False, None
        self._workspace = self.sparse.workspace() if self.sparse is not None else None  # the mode's own
        for _ in range(MAX_ITERATIONS):
            chol = self._factor(mu, lam, u, lead, coupling, schur, rhs)
            if chol is None:
                break
            newton_direction(self.n_lead, self.ptr, self.idx, lead, coupling, rhs,
                             self._rest_solve(chol, rhs[self.n_lead:]), step)
            for _ in range(MAX_HALVINGS):  # halve the step while the penalised deviance rises
                trial = u + step
                trial_eta = self._linear_predictor(base, lam, trial)
                loglik, trial_mu = self.loglik_and_means(trial_eta)
                pdev_new = -2.0 * loglik + self.constant + float(trial @ trial)
                if pdev_new <= pdev + 1e-12 * abs(pdev):
                    break
                step *= 0.5
            else:
                break
            change = abs(pdev - pdev_new)
            largest = float(np.max(np.abs(step), initial=0.0))
            u, eta, mu, pdev = trial, trial_eta, trial_mu, pdev_new
            size = max(1.0, float(np.max(np.abs(u), initial=0.0)), beta_size)
            if change <= TOLERANCE * abs(pdev) and largest <= 1e-7 * size:
                converged = True
                if largest <= FINAL_STEP * size:  # the iteration's factor is u*'s to rounding
                    return self._finished(u, beta, eta, mu, pdev, lead, coupling, chol, converged)
                break
        chol = self._factor(mu, lam, u, lead, coupling, schur, rhs)
        return self._finished(u, beta, eta, mu, pdev, lead, coupling, chol, converged)

    def _linear_predictor(self, base: np.ndarray, lam: np.ndarray, u: np.ndarray) -> np.ndarray:
        rows = self.rows
        eta = np.empty(base.size)
        random_part(rows.codes, rows.designs, lam, rows.offsets, u, eta)
        eta += base
        return eta

    def loglik_and_means(self, eta: np.ndarray) -> tuple[float, np.ndarray]:
        """sum_i a_i log(mu_i) + b_i log(1 - mu_i) (binomial) or a_i log(mu_i) - b_i mu_i
        (Poisson) at eta (-inf when not finite) and the means, as
        :func:`~interlace.kernels.glm.inverse_link` gives them (R's guards), with numpy's
        vectorised exp and log."""
        a, b = self.loglik_a, self.loglik_b
        if eta.size < VECTOR_MIN_ROWS:  # numpy's call overhead exceeds the scalar loop's cost
            mu = np.empty(eta.size)
            value = loglik_and_means(eta, a, b, self.family_code, mu)
            return (value if np.isfinite(value) else -np.inf), mu
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.family_code == 0:
                t = np.exp(eta)
                if np.any(np.abs(eta) > LOGIT_THRESHOLD):  # R's guards: t is eps or 1/eps there
                    t = np.where(eta < -LOGIT_THRESHOLD, DBL_EPSILON, np.where(eta > LOGIT_THRESHOLD, 1.0 / DBL_EPSILON, t))
                mu = t / (1.0 + t)
                # as R (and the general PIRLS) from the rounded means: 0 < mu < 1 under the guards
                value = float(a @ np.log(mu)) + float(b @ np.log(1.0 - mu))
            else:
                mu = np.maximum(np.exp(eta), DBL_EPSILON)
                log_mu = eta if np.all(eta >= LOG_EPSILON) else np.log(mu)
                value = float(a @ log_mu) - float(b @ mu)
        return (value if np.isfinite(value) else -np.inf), mu

    def _factor(self, mu, lam, u, lead, coupling, schur, rhs) -> np.ndarray | None:
        """Fill the system at the means' working weights and factor its Schur complement
        (None when a weight is not finite or the factorisation fails)."""
        rows = self.rows
        ok = newton_system(mu, self.y, self.weights, self.family_code, rows.codes, rows.designs, lam,
                           self.rest_offsets, self.n_lead, self.ptr, self.idx, self.slots, u, lead, coupling, schur,
                           rhs, not self.dense, self.pattern_rows, self.pattern_columns)
        if not ok:
            return None
        if not self.n_rest:
            return np.zeros((0, 0))
        if self.sparse is not None:
            # the input layout's (i >= j) entries read from S's upper triangle
            chol = self._workspace
            if not chol.refactor(schur[self.pattern_columns, self.pattern_rows]):
                return None
            return SparseRestFactor(chol, self.pattern_rows, self.pattern_columns)
        upper = schur.T  # symmetric: its transpose is Fortran-ordered, its lower triangle S's upper
        if self.dense:  # S = M_rest - C'D^{-1}C by one rank-n_lead update
            block = coupling.reshape(self.n_lead, self.n_rest)
            rhs[self.n_lead:] -= (rhs[: self.n_lead] / lead) @ block
            scaled = block / np.sqrt(lead)[:, None]
            upper = blas.dsyrk(-1.0, scaled.T, beta=1.0, c=upper, trans=0, lower=1, overwrite_c=1)
        chol, info = lapack.dpotrf(upper, lower=1, clean=1, overwrite_a=1)
        return chol if info == 0 else None

    @staticmethod
    def _rest_solve(chol, b: np.ndarray) -> np.ndarray:
        if not b.size:
            return b.copy()
        if isinstance(chol, SparseRestFactor):
            return chol.solve(b)
        return lapack.dpotrs(chol, b, lower=1)[0]

    def _finished(self, u, beta, eta, mu, pdev, lead, coupling, chol, converged) -> ScalarMode:
        penalty = float(u @ u)
        parts = None
        if chol is not None:
            parts = FactorParts(self.n_lead, lead.copy(), self.ptr, self.idx, coupling.copy(), self.slots, chol,
                                self.n_rest, self.dense)
        return ScalarMode(u.copy(), beta, eta.copy(), mu.copy(), pdev - penalty, penalty, parts, converged)

    def gradient(self, mode: ScalarMode, theta: np.ndarray) -> np.ndarray:
        """The Laplace deviance's gradient in (theta, beta') at ``mode``."""
        return gradient_from_parts(self.rows, mode.parts, mode.mu, mode.u, np.asarray(theta, dtype=np.float64))
