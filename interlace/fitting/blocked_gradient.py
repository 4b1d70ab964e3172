"""The gradient and the average information of the profiled deviance on the blocked path.

For a blocked system whose terms are all scalar (one effect per level: crossed random
intercepts, ``(0 + x | g)``) and whose rest is dense, the derivatives of lme4's
criterion in theta come from the factor the value needs, one inverse of the rest
(LAPACK ``potri``) and one pass over the coupling, never from the n rows.

Notation: term t has relative standard deviation theta_t (Lambda_t = theta_t I) and
q_t effects; G = [Z X]'[Z X]; M = Lambda~' G Lambda~ + diag(I_q, 0), the system
without y; (u, beta) the PLS solution; r^2 = pwrss; nu = n - p (REML) or n (ML); M_d
= M for REML and its random-effects block for ML.

Gradient (Jacobi's formula for the log-determinants; for r^2 the envelope theorem
with the PLS identity u_t = theta_t Z_t'e):

    d criterion / d theta_t = (2 / theta_t) [q_t - tr_t(M_d^{-1}) - nu ||u_t||^2 / r^2],

tr_t the trace of M_d^{-1} over term t's indices (0 at theta_t = 0, where the
criterion is even in theta_t). On the blocked path the rest block of M_d^{-1} is
S^{-1}, S the rest's Schur complement, and the leading term's diagonal is

    (M_d^{-1})_ll = 1 / d_l + theta_1^2 v_l' S^{-1} v_l / d_l^2,

with d_l = theta_1^2 n_l + 1 and v_l = Lambda_r C_l the level's scaled coupling. The
leading term's trace is then sum_l 1 / d_l + <S^{-1}, V>, V = sum_l theta_1^2 v_l v_l' / d_l^2,
and V is formed by the downdate that builds S, in its own pass over the coupling
(:func:`~interlace.kernels.blockdiag.downdate_and_weigh_rest_scalar`): a gradient
costs one inverse (:func:`~interlace.linalg.cholesky_inverse.cholesky_inverse`, LAPACK
``potri``'s result at the speed of a matrix product) and passes over dense matrices only.

Average information (Gilmour, Thompson and Cullis 1995, for the criterion with sigma
profiled out): with P the REML projection, y'Py = r^2 and w_t = dH/dtheta_t P y
= 2 Z_t u_t (H = I + Z Lambda Lambda' Z'),

    AI = (nu / r^2) [Q - q q' / r^2],   Q_st = w_s' P w_t,   q_t = 2 ||u_t||^2 / theta_t,

the average of the observed and the expected Hessian, positive semi-definite. Q comes
from the cross-products: w_s'w_t = 4 u_s' G_st u_t and [Z Lambda X]'w_t =
2 Lambda~ G_(., t) u_t, with one solve by the factor per term.

References
----------
Gilmour, A. R., Thompson, R. and Cullis, B. R. (1995). Average information REML: an
efficient algorithm for variance parameter estimation in linear mixed models.
Biometrics 51, 1440-1450.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from ..kernels._jit import for_work, thread_count
from ..kernels.blockdiag import (
    lead_quadratic_forms,
    mirrored_inner_product,
)
from ..linalg.cholesky_inverse import cholesky_inverse
from ..linalg.dispatch import supports_blocked_derivatives
from ..linalg.lapack_inplace import leading_inverse
from ..linalg.system import Factor, PenalizedSystem
from ..linalg.threads import limited
from .objective import LastFactor, profiled_deviance, residual_dof

N_PROBES = 64
"""Random sign vectors per trace in :meth:`BlockedDeviance.derivatives` with
``exact=False`` (relative error of the traces about 1e-3 on InstEval)."""

PROBE_SEED = 20261201
"""Seed of the probes: an estimated gradient is a function of the data alone."""

ESTIMATED_MIN_SIZE = 500
"""Smallest rest whose traces ``exact=False`` estimates; below it the inverse is cheap."""


class BlockedDeviance(LastFactor):
    """The profiled deviance of a blocked system of scalar terms, with its gradient and
    average information in theta.

    ``value(theta)`` is the criterion; ``derivatives(theta)`` returns (value, gradient,
    average information), reusing the factor of the last ``value`` call at the same
    theta; calling the object returns (value, gradient), as L-BFGS-B takes them. The
    rest's factor and inverse live in buffers that each evaluation rewrites (mapping a
    fresh gigabyte costs more than filling it): a factor from :meth:`factor` is valid
    until the next evaluation in the same thread (the buffers are per thread, see
    :class:`~interlace.fitting.objective.LastFactor`).

    Parameters
    ----------
    system : PenalizedSystem
        A blocked system (``n_leading == 1``), dense rest, scalar terms.
    reml : bool
        REML criterion (True) or -2 log-likelihood (False).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)",
    ...                   interlace.load_dataset("Penicillin"), solver="sparse")
    >>> value, grad, info = BlockedDeviance(m._system, reml=True).derivatives(m.theta)  # working scale
    >>> round(m._conditioning.deviance(value, reml=True), 4), bool(np.max(np.abs(grad)) < 1e-2)
    (330.8606, True)
    >>> bool(np.all(np.linalg.eigvalsh(info) > 0))
    True
    """

    has_average_information = True
    """``derivatives`` gives the average information: Newton's method runs on it."""

    def __init__(self, system: PenalizedSystem, reml: bool):
        if not supports_blocked_derivatives(system):
            raise ValueError("BlockedDeviance: expected a blocked system of scalar terms with a dense rest")
        self.system = system
        self.reml = reml
        design = system.design
        self.n_obs, self.n_fixed = design.n_obs, system.n_fixed
        self.nu = residual_dof(self.n_obs, self.n_fixed, reml)
        self.n_theta = design.n_theta
        self.lead = system.lead_term
        self.n_lead = self.lead.n_levels
        self.lead_counts = np.ascontiguousarray(system.lead_crossprod[:, 0, 0])
        terms = (self.lead, *system.rest_terms)
        self.theta_of_term = np.array([int(t.theta_index[0, 0]) for t in terms], dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum([t.n_levels for t in system.rest_terms])])
        self.rest_slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.level_sizes = self._level_sizes(terms)
        self._reset_factors()  # per thread: the rest's factor ("work", rewritten at each
        # evaluation) and M_d's rest block ("inverse", at each gradient), see LastFactor

    def _level_sizes(self, terms) -> np.ndarray:
        """Per theta, the mean diagonal of Z_t'Z_t over its terms' levels (observations
        per level for an intercept): a level's effect is shrunk by about
        1 / (1 + theta_t^2 c_t), the coordinates of :mod:`interlace.fitting.newton`."""
        diagonal = self.system.rest_crossprod.diagonal()
        means = [float(np.mean(self.lead_counts))]
        means += [float(np.mean(diagonal[s])) for s in self.rest_slices]
        sums = np.zeros(self.n_theta)
        counts = np.zeros(self.n_theta)
        np.add.at(sums, self.theta_of_term, means)
        np.add.at(counts, self.theta_of_term, 1.0)
        return sums / np.maximum(counts, 1.0)

    # ----- value ---------------------------------------------------------------------------

    def _factorize(self, theta: np.ndarray, weigh_lead: bool = True) -> Factor:
        """A new factor, written into the buffer (:meth:`LastFactor.factor` caches it),
        with the leading term's weighted coupling (``lead_weighted``) in the buffer's free
        triangle where the downdate forms it in its own pass: an exact gradient at this
        theta then reads the leading term's trace off it instead of passing over the
        coupling again. Without ``weigh_lead`` (a gradient whose traces are estimated)
        the downdate forms the factor alone (about a quarter faster on InstEval); an exact
        gradient at that theta passes over the coupling instead."""
        shape = self.system.rest_crossprod.shape
        return self.system.factorize(theta, out=self._buffer("work", shape), weigh_lead=weigh_lead)

    def value(self, theta: np.ndarray) -> float:
        """The criterion at ``theta`` (inf where the system is not positive definite)."""
        theta = np.asarray(theta, dtype=np.float64)
        return profiled_deviance(self.factor(theta), self.n_obs, self.n_fixed, self.reml)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, _ = self.derivatives(theta)
        return value, grad

    # ----- derivatives ---------------------------------------------------------------------

    def derivatives(self, theta: np.ndarray, exact: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
        """(criterion, gradient, average information) at ``theta``.

        With ``exact=False`` and a rest of at least :data:`ESTIMATED_MIN_SIZE` rows the
        traces in the gradient are Hutchinson estimates from :data:`N_PROBES` random
        sign vectors (a fixed seed: the same data give the same estimate), two
        triangular solves with all the probes at once instead of an inverse of the
        rest. Their error moves a first Newton step from a start far from the optimum
        by a negligible amount; the iteration's later steps use exact gradients.
        """
        with limited(self.system.size, kernels=True):
            return self._derivatives(np.asarray(theta, dtype=np.float64), exact)

    def _derivatives(self, theta: np.ndarray, exact: bool) -> tuple[float, np.ndarray, np.ndarray]:
        estimated = not exact and self.system.size >= ESTIMATED_MIN_SIZE
        factor = self.factor(theta, weigh_lead=not estimated)  # estimated traces read no lead_weighted
        value = profiled_deviance(factor, self.n_obs, self.n_fixed, self.reml)
        K = self.n_theta
        if not np.isfinite(value):
            return value, np.zeros(K), np.eye(K)
        u, _ = self.system.solve(factor, theta)
        u_lead, u_rest = u[: self.n_lead], u[self.n_lead :]
        u_terms = [u_lead] + [u_rest[s] for s in self.rest_slices]
        thetas = theta[self.theta_of_term]
        scale = self.system._scalar_scale(theta)
        r2 = factor.pwrss
        sizes = np.array([self.n_lead] + [s.stop - s.start for s in self.rest_slices], dtype=np.float64)
        squares = np.array([ut @ ut for ut in u_terms])
        # before the traces: a system that inverts in place overwrites the factor there
        info_terms = self._average_information(factor, thetas, scale, u_terms, squares, r2)
        if estimated:
            traces = self._estimated_traces(factor, thetas, scale)
        else:
            traces = self._inverse_traces(factor, thetas, scale)
        grad = np.zeros(K)
        positive = thetas > 0
        grad_terms = np.zeros(len(thetas))
        grad_terms[positive] = (2.0 / thetas[positive]) * (
            sizes[positive] - traces[positive] - self.nu * squares[positive] / r2
        )
        np.add.at(grad, self.theta_of_term, grad_terms)
        info = np.zeros((K, K))
        idx = self.theta_of_term
        np.add.at(info, (idx[:, None], idx[None, :]), info_terms)
        return value, grad, info

    def _inverse_traces(self, factor: Factor, thetas: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Per term, the trace of M_d^{-1} over its indices."""
        system = self.system
        m = system.n_rest_random + (self.n_fixed if self.reml else 0)
        theta_lead = thetas[0]
        weights = 1.0 / (theta_lead**2 * self.lead_counts + 1.0)  # 1 / d_l
        traces = np.empty(len(thetas))
        if m == 0:
            traces[0] = float(np.sum(weights))
            return traces
        if getattr(system, "inverts_in_place", False):
            # the leading block inverted where it lies: no second rest-sized matrix, but the
            # factor is gone, so this theta's next value factors again
            inverse = factor.rest_chol
            self._threads.last = None
            if leading_inverse(inverse, m) != 0:
                raise np.linalg.LinAlgError("the rest's factor is singular")
        else:
            inverse = cholesky_inverse(factor.rest_chol[:m, :m], self._buffer("inverse", (m, m), order="F"))
        diagonal = np.diagonal(inverse)[:m]
        for i, s in enumerate(self.rest_slices, start=1):
            traces[i] = float(np.sum(diagonal[s]))
        # the lower triangle (Fortran order) is the upper one of the C-ordered transpose
        weighted = factor.lead_weighted
        if weighted is not None:
            # sum_l theta_1^2 v_l' S^{-1} v_l / d_l^2 = <S^{-1}, sum_l theta_1^2 v_l v_l' / d_l^2>
            inner, chunks = for_work(mirrored_inner_product, float(m) * m / 2, 4 * thread_count())
            lead_share = inner(inverse.T, weighted.buffer, weighted.diagonal, m, chunks)
            traces[0] = float(np.sum(weights)) + lead_share
            return traces
        ptr, idx, val = system.coupling
        quadratic_forms, chunks = for_work(lead_quadratic_forms, system.downdate_work, thread_count())
        quad = quadratic_forms(ptr, idx, val, scale, *system.coupling_by_row, inverse.T, m, chunks)
        traces[0] = float(np.sum(weights + theta_lead**2 * quad * weights**2))
        return traces

    def _estimated_traces(self, factor: Factor, thetas: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """:meth:`_inverse_traces` by Hutchinson's estimator: tr(E_t S^{-1}) = E ||L^{-1} E_t v||^2
        for random signs v on term t's indices, and the leading term's sum of
        theta_1^2 v_l' S^{-1} v_l / d_l^2 = E ||L^{-1} sum_l (theta_1 s_l / d_l) v_l||^2 for
        random signs s_l over its levels."""
        system = self.system
        m = system.n_rest_random + (self.n_fixed if self.reml else 0)
        theta_lead = thetas[0]
        weights = 1.0 / (theta_lead**2 * self.lead_counts + 1.0)
        rng = np.random.default_rng(PROBE_SEED)
        n_rest = len(self.rest_slices)
        probes = np.zeros((system.size, N_PROBES * (n_rest + 1)))
        for i, sl in enumerate(self.rest_slices):
            probes[sl, i * N_PROBES : (i + 1) * N_PROBES] = rng.choice([-1.0, 1.0], (sl.stop - sl.start, N_PROBES))
        signs = rng.choice([-1.0, 1.0], (self.n_lead, N_PROBES)) * (theta_lead * weights)[:, None]
        probes[:, n_rest * N_PROBES :] = scale[:, None] * system.lead_transpose_times(signs)  # Lambda_r C' s
        probes[m:] = 0.0
        solved = lapack.dtrtrs(factor.rest_chol, probes, lower=1)[0]  # rows past m stay 0
        squares = np.sum(solved[:m] ** 2, axis=0)
        traces = np.empty(len(thetas))
        for i in range(n_rest):
            traces[i + 1] = float(np.mean(squares[i * N_PROBES : (i + 1) * N_PROBES]))
        traces[0] = float(np.sum(weights) + np.mean(squares[n_rest * N_PROBES :]))
        return traces

    def _average_information(self, factor: Factor, thetas: np.ndarray, scale: np.ndarray,
                             u_terms: list[np.ndarray], squares: np.ndarray, r2: float) -> np.ndarray:
        """The average information between terms (n_terms x n_terms)."""
        system = self.system
        size = system.size
        head = size - 1  # random effects and X: the system without y
        scale = scale[:head]
        theta_lead = thetas[0]
        n_terms = len(u_terms)
        # G_(., t) u_t, split into the leading part and the rest/X part
        g_lead = np.empty((self.n_lead, n_terms))
        g_head = np.empty((head, n_terms))
        g_lead[:, 0] = self.lead_counts * u_terms[0]
        g_head[:, 0] = system.lead_transpose_times(u_terms[0])[:head]
        if n_terms > 1:
            placed = np.zeros((size, n_terms - 1))
            for t, s in enumerate(self.rest_slices, start=1):
                placed[s, t - 1] = u_terms[t]
                g_head[:, t] = system.rest_crossprod[:head, s] @ u_terms[t]
            g_lead[:, 1:] = system.lead_times(placed)
        # a = Lambda~ g;  z = M^{-1} a by the blocked factor
        a_lead = theta_lead * g_lead
        a_head = scale[:, None] * g_head
        d = theta_lead**2 * self.lead_counts + 1.0
        pushed = system.lead_transpose_times(theta_lead * a_lead / d[:, None])  # B' D^{-1} a_lead, B = Lambda_1 C Lambda_r
        rhs = np.zeros((size, n_terms))
        rhs[:head] = a_head - scale[:, None] * pushed[:head]
        L = factor.rest_chol  # solving with the whole factor, y's row last: its entry stays 0
        z = lapack.dtrtrs(L, rhs, lower=1)[0]
        z[head:] = 0.0
        z = lapack.dtrtrs(L, z, lower=1, trans=1)[0]
        z_head = z[:head]
        back = np.zeros((size, n_terms))
        back[:head] = scale[:, None] * z_head
        z_lead = (a_lead - theta_lead * system.lead_times(back)) / d[:, None]
        # u_s' G_st u_t and the projection
        plain = np.empty((n_terms, n_terms))
        plain[0] = u_terms[0] @ g_lead
        for s, sl in enumerate(self.rest_slices, start=1):
            plain[s] = u_terms[s] @ g_head[sl]
        projected = a_lead.T @ z_lead + a_head.T @ z_head
        Q = 4.0 * (0.5 * (plain + plain.T) - 0.5 * (projected + projected.T))
        q = np.zeros(n_terms)
        positive = thetas > 0
        q[positive] = 2.0 * squares[positive] / thetas[positive]
        return (self.nu / r2) * (Q - np.outer(q, q) / r2)
