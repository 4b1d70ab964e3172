"""PIRLS's Newton steps by conjugate gradients, preconditioned with an earlier factor.

Between two evaluations of the Laplace deviance at nearby (theta, beta), the matrix
M = Lambda'Z'WZ Lambda + I of the conditional mode changes little. Each PIRLS step
solves M(W_k) u = Lambda'Z' W_k z_k; here by conjugate gradients with the products
M v in one pass over the rows (:func:`scalar_normal_product`) and the previous mode's
Cholesky factor as the preconditioner (its solve costs a pass over the blocked factor,
no factorisation). The mode's own factor is then computed once, at u*, for the
log-determinant. For every term scalar, beta fixed, and the factor dense or blocked with
a scalar leading term and a dense rest; elsewhere PIRLS refactors at every step.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from ..kernels._jit import kernel

CG_TOLERANCE = 1e-12
"""Conjugate gradients stop when the residual is below this share of the right-hand side."""

CG_MAX_ITERATIONS = 12

CG_PROBE = 4
CG_PROBE_REDUCTION = 1e-2
"""After CG_PROBE iterations the residual must have fallen below this share of its start,
else the step is taken by a factorisation (a slow start would not reach the tolerance)."""
"""More than this and the step is taken by a factorisation instead (the preconditioner is
too far from the current matrix)."""


@kernel
def scalar_normal_product(codes, designs, lam, offsets, weights, v):
    """M v = Lambda'Z' diag(W) Z Lambda v + v for scalar terms (codes: terms x rows)."""
    n_terms, n = codes.shape
    out = v.copy()
    for i in range(n):
        s = 0.0
        for t in range(n_terms):
            s += lam[t] * designs[i, t] * v[offsets[t] + codes[t, i]]
        s *= weights[i]
        for t in range(n_terms):
            out[offsets[t] + codes[t, i]] += lam[t] * designs[i, t] * s
    return out


@kernel
def scalar_transpose_product(codes, designs, lam, offsets, values, n_random):
    """Lambda'Z' values for scalar terms (one pass over the rows)."""
    n_terms, n = codes.shape
    out = np.zeros(n_random)
    for i in range(n):
        for t in range(n_terms):
            out[offsets[t] + codes[t, i]] += lam[t] * designs[i, t] * values[i]
    return out


class FactorSolve:
    """x = M^{-1} r with a mode's factor (see the module docstring)."""

    def __init__(self, system, factor, lam: np.ndarray, n_lead: int):
        self.blocked = bool(system.n_leading)
        q_rest = system.n_rest_random
        self.rest_chol = np.asfortranarray(factor.rest_chol[:q_rest, :q_rest])
        if self.blocked:
            ptr, idx, val = system.coupling
            self.n_lead = n_lead
            self.D = factor.lead_chol[:, 0, 0] ** 2
            level = np.repeat(np.arange(n_lead), np.diff(ptr))
            random = idx < q_rest
            rest_scale = np.ones(system.size)
            offset = 0
            for t, term in enumerate(system.rest_terms, start=1):
                rest_scale[offset : offset + term.n_levels] = lam[t]
                offset += term.n_levels
            self.rows = level[random]
            self.cols = idx[random]
            self.entries = lam[0] * val[random, 0] * rest_scale[self.cols]
            self.q_rest = q_rest

    def _rest(self, r: np.ndarray) -> np.ndarray:
        if r.size == 0:
            return r
        y = lapack.dtrtrs(self.rest_chol, r, lower=1)[0]
        return lapack.dtrtrs(self.rest_chol, y, lower=1, trans=1)[0]

    def __call__(self, r: np.ndarray) -> np.ndarray:
        if not self.blocked:
            return self._rest(r)
        n1 = self.n_lead
        r1, rr = r[:n1], r[n1:]
        rhs = rr - np.bincount(self.cols, weights=self.entries * (r1 / self.D)[self.rows], minlength=self.q_rest)
        xr = self._rest(rhs)
        x1 = (r1 - np.bincount(self.rows, weights=self.entries * xr[self.cols], minlength=n1)) / self.D
        return np.concatenate([x1, xr])


def conjugate_gradients(product, precondition, rhs: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, bool]:
    """Solve ``product(x) = rhs`` from ``x0`` by preconditioned conjugate gradients:
    (x, converged)."""
    x = x0.copy()
    r = rhs - product(x)
    target = CG_TOLERANCE * max(float(np.linalg.norm(rhs)), 1e-300)
    if float(np.linalg.norm(r)) <= target:
        return x, True
    z = precondition(r)
    p = z.copy()
    rz = float(r @ z)
    start = float(np.linalg.norm(r))
    for iteration in range(CG_MAX_ITERATIONS):
        if iteration == CG_PROBE and float(np.linalg.norm(r)) > CG_PROBE_REDUCTION * start:
            return x, False  # converging too slowly: the preconditioner is far from the matrix
        Ap = product(p)
        denominator = float(p @ Ap)
        if not denominator > 0:
            return x, False
        alpha = rz / denominator
        x += alpha * p
        r -= alpha * Ap
        if float(np.linalg.norm(r)) <= target:
            return x, True
        z = precondition(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, False
