"""Penalised iteratively reweighted least squares (PIRLS) and the Laplace deviance of a
generalized linear mixed model, on the linear model's penalised system.

For given theta (and beta, or with beta free: lme4's ``nAGQ = 0``), the conditional
mode u* of the spherical random effects minimises the penalised deviance

    pdev(u) = -2 log p(y | u) + ||u||^2,    eta = offset + X beta + Z Lambda u.

Each iteration is one penalised least-squares problem, the linear model's system on
the rows scaled by the square roots of the working weights w_i (d mu/d eta)^2 / V(mu_i)
(:func:`interlace.kernels.glm.working_response`): [Z X y] with y the working response,
factored on the path the dispatch picks (the same blocked Cholesky and kernels), its
solution the new u (and beta), halving the step while the penalised deviance rises.
The Laplace approximation of the deviance is then

    -2 log L(theta, beta) ~ -2 log p(y | u*) + ||u*||^2 + log |L|^2,

with -2 log p(y | u) the full log-likelihood (R's ``family$aic``, as lme4) and L the
factor at u*'s working weights (lme4's ``ldL2``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..design import ModelDesign
from ..errors import InterlaceError
from ..kernels.glm import working_response, working_response_rows
from ..kernels.products import z_times
from ..linalg.dispatch import choose_downdate, choose_path, choose_rest
from ..linalg.system import Factor, PenalizedSystem
from ..linalg.threads import limited
from .response import GlmResponse

MAX_ITERATIONS = 100
"""PIRLS iterations before giving up (lme4's ``maxit``)."""

MAX_HALVINGS = 30
"""Step halvings per iteration before giving up."""

TOLERANCE = 1e-10
"""PIRLS stops when the penalised deviance changes by less than this share of itself
and the step in u (and beta) by less than this share of their size: the Laplace
deviance is then exact to well below 1e-8 relative."""


def _least_squares(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin ||y - X b||: by the normal equations (X is on the working scale, its columns
    orthogonal before weighting), by an SVD when they are not positive definite."""
    try:
        solution = np.linalg.solve(X.T @ X, X.T @ y)
        if np.all(np.isfinite(solution)):
            return solution
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(X, y, rcond=None)[0]


class _Serial:
    """One BLAS thread and one numba thread for a small design's PIRLS (restored after)."""

    def __init__(self, size: int):
        self.blas = limited(size)

    def __enter__(self):
        import numba

        self.before = numba.get_num_threads()
        numba.set_num_threads(1)
        self.blas.__enter__()
        return self

    def __exit__(self, *exc):
        import numba

        self.blas.__exit__(*exc)
        numba.set_num_threads(self.before)


PARALLEL_MIN_ROWS = 50_000
"""Designs with fewer rows run PIRLS's kernels on one thread (no load check per call)."""

FINAL_STEP = 1e-10
"""A converged PIRLS whose last step moved u (and beta) by less than this share of their
size keeps that iteration's factor as the mode's: its working weights differ from the
mode's by rounding, and the log-determinant by far less than 1e-8 relative."""


@dataclass(frozen=True)
class ConditionalMode:
    """The conditional mode at one theta (and beta) and what the deviance needs.

    Attributes
    ----------
    u : numpy.ndarray
        The spherical random effects u* (q).
    beta : numpy.ndarray
        The fixed effects on the system's scale (given, or PIRLS's with beta free).
    eta, mu : numpy.ndarray
        Linear predictor (offset included) and mean per row.
    system : PenalizedSystem
        The weighted system at u*'s working weights.
    factor : Factor
        Its factor at theta.
    loglik_part : float
        -2 log p(y | u*) (the full log-likelihood).
    penalty : float
        ||u*||^2.
    converged : bool
        Whether PIRLS converged.
    theta : numpy.ndarray
        The theta of the mode.
    """

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    system: PenalizedSystem
    factor: Factor
    loglik_part: float
    penalty: float
    converged: bool
    theta: np.ndarray | None = None

    @property
    def ldl2(self) -> float:
        """log |L|^2 of the random effects (lme4's ``ldL2``)."""
        return self.factor.logdet_random

    @property
    def laplace_deviance(self) -> float:
        """The Laplace approximation of -2 log L."""
        if not self.factor.ok:
            return np.inf
        value = float(self.loglik_part + self.penalty + self.ldl2)
        return value if np.isfinite(value) else np.inf


class Pirls:
    """PIRLS on a design (its X possibly on a working scale), for one response.

    Parameters
    ----------
    design : ModelDesign
        Terms in factorisation order, X; its response is not used.
    response : GlmResponse
    offset : numpy.ndarray
        The offset per row (zeros without).
    solver : str
        ``"auto"``, ``"dense"`` or ``"sparse"``, as :func:`interlace.fit`.
    """

    def __init__(self, design: ModelDesign, response: GlmResponse, offset: np.ndarray, solver: str = "auto"):
        self.design = design
        self.response = response
        self.offset = np.ascontiguousarray(offset, dtype=np.float64)
        self.n_leading = choose_path(design, solver, rebuilt=True)
        self.sparse_rest = bool(self.n_leading and len(design.terms) > 1 and choose_rest(design) == "sparse")
        self._syrk = None
        self._templates: dict[bool, tuple] = {}
        self._preconditioner = None
        terms = design.terms
        scalar = all(t.n_columns == 1 for t in terms) and not self.sparse_rest
        self._scalar = None
        if scalar and terms:
            sizes = np.array([t.n_levels for t in terms])
            self._scalar = (np.ascontiguousarray(np.vstack([t.group_codes for t in terms])),
                            np.ascontiguousarray(np.hstack([t.design for t in terms])),
                            np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
        self.family_code = response.family.code
        self.link_code = response.family.link.code
        self.parallel = design.n_obs >= PARALLEL_MIN_ROWS  # the passes over the rows on threads
        self.n_evaluations = 0

    # ----- the weighted system --------------------------------------------------------
    def weighted_system(self, root_weights: np.ndarray, target: np.ndarray, with_fixed: bool) -> PenalizedSystem:
        """The penalised system of the rows scaled by ``root_weights``: [Z X target]
        (X only ``with_fixed``)."""
        design = self.design
        column = root_weights[:, None]
        X = np.ascontiguousarray(design.X * column) if with_fixed else np.zeros((design.n_obs, 0))
        terms = tuple(replace(t, design=np.ascontiguousarray(t.design * column)) for t in design.terms)
        weighted = replace(design, fixed=replace(design.fixed, matrix=X, response=np.ascontiguousarray(target),
                                                 offset=None, weights=None), terms=terms)
        weighted.__dict__["lme4_terms"] = tuple(terms[design.terms.index(t)] for t in design.lme4_terms)
        if self.sparse_rest:
            from ..linalg.sparse_rest import SparseRestSystem

            return SparseRestSystem(weighted, None)
        template = self._templates.get(with_fixed)
        if template is not None:
            return self._reweighted(template, weighted)
        system = PenalizedSystem(weighted, self.n_leading)
        if self.n_leading:
            if self._syrk is None:
                self._syrk = choose_downdate(system) == "syrk"
            if self._syrk:
                system = system.with_syrk_downdate()
            self._templates[with_fixed] = (system, self._slots(system, weighted))
        return system

    def coupling_slots_of(self, system) -> np.ndarray:
        """The rows' positions in a blocked ``system``'s coupling: its reweighting
        template's (:meth:`weighted_system`), computed when it has none."""
        for template, slots in self._templates.values():
            if system.coupling[0] is template.coupling[0]:
                return slots
        return self._slots(system, system.design)

    @staticmethod
    def _slots(system: PenalizedSystem, design: ModelDesign) -> np.ndarray:
        """Where each row's entries sit in the blocked system's coupling (fixed by the codes)."""
        from ..kernels.crossprod import coupling_slots
        from ..linalg.system import stack_terms

        codes, designs, design_start, index_offset, _, _ = stack_terms(system.rest_terms, design.n_obs)
        ptr, idx, _ = system.coupling
        return coupling_slots(system.lead_term.group_codes, codes, designs, design_start, index_offset, ptr, idx)

    @staticmethod
    def _reweighted(template, design: ModelDesign) -> PenalizedSystem:
        """The blocked system of ``design`` (the template's rows and codes, new weights):
        the cross-products' values recomputed, the structure (coupling pattern, its
        transpose, the downdate rule) the template's."""
        from ..kernels.crossprod import block_diagonal_crossprod, refill_coupling
        from ..linalg.system import dense_crossprod, stack_terms

        system, slots = template
        new = object.__new__(PenalizedSystem)
        new.__dict__.update(system.__dict__)
        terms = design.terms
        new.design = design
        new.lead_term, new.rest_terms = terms[0], terms[1:]
        xy = np.ascontiguousarray(np.column_stack([design.X, design.y]))
        codes, designs, design_start, index_offset, _, _ = stack_terms(new.rest_terms, design.n_obs)
        new.rest_crossprod = dense_crossprod(codes, designs, design_start, index_offset, xy, system.size)
        lead = new.lead_term
        new.lead_crossprod = block_diagonal_crossprod(lead.group_codes, lead.design, lead.n_levels)
        ptr, idx, _ = system.coupling
        new.coupling = (ptr, idx, refill_coupling(lead.group_codes, lead.design, designs, xy, slots, ptr, idx.size))
        new._dense_coupling = None
        return new

    # ----- pieces ---------------------------------------------------------------------
    def random_part(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Z Lambda u per row."""
        b = PenalizedSystem.spherical_to_effects(u, theta, self.design.terms)
        out = np.zeros(self.design.n_obs)
        pos = 0
        for term in self.design.terms:
            block = b[pos : pos + term.n_effects].reshape(term.n_levels, term.n_columns)
            out += z_times(term.group_codes, term.design, np.ascontiguousarray(block))
            pos += term.n_effects
        return out

    def linear_predictor(self, u: np.ndarray, beta: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """eta = offset + X beta + Z Lambda u."""
        eta = self.offset + self.random_part(u, theta)
        if beta.size:
            eta = eta + self.design.X @ beta
        return eta

    def _working(self, eta: np.ndarray):
        n = eta.size
        root_weights = np.empty(n)
        working_y = np.empty(n)
        r = self.response
        kernel = working_response_rows if self.parallel else working_response
        mu = kernel(eta, self.offset, r.y, r.weights, self.family_code, self.link_code, root_weights, working_y)
        return mu, root_weights, working_y

    def _means(self, eta: np.ndarray) -> np.ndarray:
        from ..kernels.glm import inverse_link, inverse_link_rows

        return (inverse_link_rows if self.parallel else inverse_link)(eta, self.link_code)

    def penalised_deviance(self, eta: np.ndarray, u: np.ndarray) -> tuple[float, np.ndarray]:
        """pdev at (eta, u) and the means."""
        mu = self._means(eta)
        return self._loglik_part(eta, mu) + float(u @ u), mu

    def _loglik_part(self, eta: np.ndarray, mu: np.ndarray) -> float:
        """-2 log p(y | u) at a mode, inf outside the family's and the link's range (R's
        validmu / valideta: too far)."""
        if not (self.valid_means(mu) and self.valid_eta(eta)):
            return np.inf
        return self.response.minus_twice_loglik(mu, self.parallel)

    def valid_eta(self, eta: np.ndarray) -> bool:
        """R's ``valideta``: a sqrt link's eta must be positive (else mu = eta^2 is the
        mirror image of a valid mean), an inverse link's non-zero."""
        name = self.response.family.link.name
        if name == "sqrt":
            return bool(np.all(eta > 0.0))
        if name == "inverse":
            return bool(np.all(eta != 0.0))
        return True

    def valid_means(self, mu: np.ndarray) -> bool:
        """Whether every mean is inside the family's range (a non-canonical link can leave it:
        a Poisson identity link below 0, a binomial log link above 1)."""
        if not np.all(np.isfinite(mu)):
            return False
        if self.family_code == 0:
            return bool(np.all((mu > 0.0) & (mu < 1.0)))
        return bool(np.all(mu > 0.0))

    # ----- the iteration --------------------------------------------------------------
    def start_beta(self) -> np.ndarray:
        """beta of the GLM without random effects, by IRLS from R's ``mustart``."""
        with self.threads:
            return self._start_beta()

    def _start_beta(self) -> np.ndarray:
        from ..kernels.glm import inverse_link

        design, r = self.design, self.response
        start_eta = r.family.link.link(r.family.start_mean(r.y, r.weights))
        eta = start_eta

        def valid(beta):
            eta_b = self.offset + design.X @ beta
            mu_b = inverse_link(eta_b, self.link_code)
            return self.valid_means(mu_b) and self.valid_eta(eta_b), eta_b, mu_b

        best: tuple[float, np.ndarray] | None = None
        beta = None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            base = np.linalg.lstsq(design.X, start_eta - self.offset, rcond=None)[0]  # the start's own beta
            ok, _, mu = valid(base) if np.all(np.isfinite(base)) else (False, None, None)
            if ok:
                beta, best = base, (r.minus_twice_loglik(mu), base)
            previous = np.inf
            for _ in range(50):
                _, root_weights, working_y = self._working(eta)
                if not (np.all(np.isfinite(root_weights)) and np.all(np.isfinite(working_y))):
                    break
                trial = _least_squares(design.X * root_weights[:, None], root_weights * working_y)
                ok, eta_trial, mu = valid(trial)
                for _ in range(MAX_HALVINGS if beta is not None else 0):  # R's "step size truncated"
                    if ok:
                        break
                    trial = beta + 0.5 * (trial - beta)
                    ok, eta_trial, mu = valid(trial)
                if not ok:
                    break
                beta, eta = trial, eta_trial
                value = r.minus_twice_loglik(mu)
                if np.isfinite(value) and (best is None or value < best[0]):
                    best = (value, trial)
                if abs(previous - value) <= 1e-10 * (abs(value) + 1.0):
                    break
                previous = value
        if best is None:
            raise InterlaceError(
                f"family: cannot find valid starting values (as glmer): the {r.family!r} model without random "
                "effects leaves the family's range from R's start values (means outside what the family allows "
                "or a linear predictor outside the link's domain); try another link or check the response, weights "
                "and offset")
        return best[1]

    @property
    def threads(self):
        """The thread limits of this PIRLS's systems (:mod:`interlace.linalg.threads`),
        entered once around an evaluation rather than around each factorisation."""
        size = self.design.n_random + self.design.n_fixed + 1
        if self.n_leading:
            size = sum(t.n_effects for t in self.design.terms[1:]) + self.design.n_fixed + 1
        if self.design.n_obs >= PARALLEL_MIN_ROWS:
            return limited(size, kernels=bool(self.n_leading))
        return _Serial(size)  # waking the kernels' threads costs more than a small design's work

    @staticmethod
    def _factor_and_solve(system, theta: np.ndarray, solve: bool = True):
        """The factor at theta and, with ``solve``, the solution (u, beta), inside the
        caller's thread limits."""
        if isinstance(system, PenalizedSystem) and type(system).factorize is PenalizedSystem.factorize:
            factor = system._factorize(theta, None)
            return factor, (system._solve(factor, theta) if solve and factor.ok else None)
        factor = system.factorize(theta)
        return factor, (system.solve(factor, theta) if solve and factor.ok else None)

    def mode(self, theta: np.ndarray, beta: np.ndarray | None = None, u0: np.ndarray | None = None,
             beta0: np.ndarray | None = None) -> ConditionalMode:
        """The conditional mode at ``theta`` with ``beta`` fixed, or with beta free when
        ``beta`` is None (from ``beta0``); PIRLS from ``u0`` (zeros by default)."""
        with self.threads:
            return self._mode(theta, beta, u0, beta0)

    def _mode(self, theta, beta, u0, beta0) -> ConditionalMode:
        self.n_evaluations += 1
        theta = np.asarray(theta, dtype=np.float64)
        q = self.design.n_random
        free = beta is None
        u = np.zeros(q) if u0 is None else np.array(u0, dtype=np.float64)
        b = (np.zeros(self.design.n_fixed) if beta0 is None else np.array(beta0, dtype=np.float64)) if free \
            else np.asarray(beta, dtype=np.float64)
        eta = self.linear_predictor(u, b, theta)
        pdev, _ = self.penalised_deviance(eta, u)
        converged = False
        preconditioner = self._preconditioner if not free and self._scalar is not None else None
        system = factor = None
        for _ in range(MAX_ITERATIONS):
            mu, root_weights, working_y = self._working(eta)
            target = working_y if free else working_y - (self.design.X @ b if b.size else 0.0)
            u_new = None
            if preconditioner is not None:
                u_new = self._conjugate_step(theta, root_weights**2, target, u, preconditioner[1])
            if u_new is None:
                system = self.weighted_system(root_weights, root_weights * target, free)
                factor, solution = self._factor_and_solve(system, theta)
                if not factor.ok:
                    break
                u_new, b_solved = solution
                if preconditioner is not None:  # a better one for this mode's next steps
                    from .preconditioned import FactorSolve

                    preconditioner = (theta, FactorSolve(system, factor, self._lambdas(theta),
                                                         self.design.terms[0].n_levels))
            else:
                system = factor = None
                b_solved = b
            b_new = b_solved if free else b
            step_u, step_b = u_new - u, b_new - b
            for _ in range(MAX_HALVINGS):
                eta_new = self.linear_predictor(u + step_u, b + step_b, theta)
                pdev_new, _ = self.penalised_deviance(eta_new, u + step_u)
                if pdev_new <= pdev + 1e-12 * abs(pdev):
                    break
                step_u *= 0.5
                step_b *= 0.5
            else:
                break
            u, b, eta = u + step_u, b + step_b, eta_new
            change = abs(pdev - pdev_new)
            pdev = pdev_new
            size = max(1.0, float(np.max(np.abs(u), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
            largest_step = max(float(np.max(np.abs(step_u), initial=0.0)), float(np.max(np.abs(step_b), initial=0.0)))
            if change <= TOLERANCE * abs(pdev) and largest_step <= 1e-7 * size:
                converged = True
                if factor is not None and largest_step <= FINAL_STEP * size:  # weights u*'s to rounding
                    mu = self._means(eta)
                    return self._finished(ConditionalMode(u, b, eta, mu, system, factor,
                                                          self._loglik_part(eta, mu), float(u @ u),
                                                          converged, theta), free)
                break
        # the factor at u*'s own working weights
        mu, root_weights, working_y = self._working(eta)
        target = working_y if free else working_y - (self.design.X @ b if b.size else 0.0)
        system = self.weighted_system(root_weights, root_weights * target, free)
        factor, _ = self._factor_and_solve(system, theta, solve=False)
        return self._finished(ConditionalMode(u, b, eta, mu, system, factor, self._loglik_part(eta, mu),
                                              float(u @ u), converged, theta), free)

    def _finished(self, mode: ConditionalMode, free: bool) -> ConditionalMode:
        """Keep a converged beta-fixed mode's factor as the next modes' preconditioner."""
        if not free and self._scalar is not None and mode.converged and mode.factor.ok:
            from .preconditioned import FactorSolve

            lam = self._lambdas(mode.theta)
            self._preconditioner = (mode.theta.copy(), FactorSolve(mode.system, mode.factor, lam,
                                                                   self.design.terms[0].n_levels))
        return mode

    def _lambdas(self, theta: np.ndarray) -> np.ndarray:
        return np.array([float(t.relative_cov_factor(theta)[0, 0]) for t in self.design.terms])

    def _conjugate_step(self, theta, weights, target, u, solve) -> np.ndarray | None:
        """The Newton step's new u by preconditioned conjugate gradients (scalar terms,
        beta fixed), or None when they do not converge."""
        from .preconditioned import (
            conjugate_gradients,
            scalar_normal_product,
            scalar_transpose_product,
        )

        codes, designs, offsets = self._scalar
        lam = self._lambdas(theta)
        rhs = scalar_transpose_product(codes, designs, lam, offsets, weights * target, self.design.n_random)

        def product(v):
            return scalar_normal_product(codes, designs, lam, offsets, weights, v)

        u_new, ok = conjugate_gradients(product, solve, rhs, u)
        return u_new if ok else None
