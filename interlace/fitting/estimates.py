"""From the optimum to the estimates: beta, BLUPs, variance components, fitted values.

These computations fill :class:`interlace.result.CrossedLMEResult`; the result
itself only holds data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.linalg import lapack

from ..deferred import Deferred
from ..design import ModelDesign, RandomTerm
from ..kernels.products import z_times
from ..linalg.system import Factor, PenalizedSystem
from .conditioning import Conditioning
from .objective import residual_dof

SINGULAR_TOL = 1e-4
"""lme4's default ``isSingular`` tolerance on the diagonal of a relative factor."""


@dataclass(frozen=True)
class Estimates:
    """Everything computed once at the optimum, on the caller's scale.

    Attributes
    ----------
    beta : numpy.ndarray
        The fixed effects.
    effects : dict of str to numpy.ndarray
        Per term (name -> (n_levels, k)): the BLUPs b.
    fe_cov : numpy.ndarray
        vcov(beta).
    scale : float
        sigma^2.
    fitted : numpy.ndarray
        X beta + Z b (without the offset).
    resid : numpy.ndarray
        y - X beta - Z b (y less the offset).
    deviance : float
        -2 log-likelihood (ML) or the REML criterion.
    """

    beta: np.ndarray
    effects: dict[str, np.ndarray]
    fe_cov: np.ndarray
    scale: float
    fitted: np.ndarray
    resid: np.ndarray
    deviance: float


def lme4_term_order(design: ModelDesign) -> tuple[RandomTerm, ...]:
    """The random terms in lme4's order (by their first theta entry)."""
    return design.lme4_terms


def fixed_cov(factor: Factor, scale: float) -> np.ndarray:
    """vcov(beta) = sigma^2 (L_X L_X')^{-1} of the system's own fixed effects."""
    Lx = factor.fixed_chol
    inv = lapack.dtrtri(Lx, lower=1)[0] if Lx.size else Lx  # L_X^{-1}
    return scale * (inv.T @ inv)


class EstimatesAtOptimum:
    """The estimates of :func:`compute_estimates`, each computed on first use: sigma^2
    and the criterion at once, beta on the first read of it, the BLUPs, fitted values
    and residuals, and vcov(beta) on theirs (a refit loop that reads one number of each
    refit pays for that one). The arithmetic is :func:`compute_estimates`' own.

    ``factor`` may be a :class:`~interlace.deferred.Deferred` when ``pwrss`` (the
    penalised residual sum of squares at theta) is given: sigma^2 and the criterion
    then need no factorisation, and the factor is computed when beta or vcov(beta) is
    first read (a refit loop that reads the variance components never factors)."""

    def __init__(self, system: PenalizedSystem, factor: Factor | Deferred, theta: np.ndarray, reml: bool,
                 deviance: float, conditioning: Conditioning | None = None, pwrss: float | None = None):
        design = system.design
        self._system, self._theta, self._conditioning = system, theta, conditioning
        if type(factor) is Deferred:  # factored on first use: sigma^2 needs ``pwrss`` only
            if pwrss is None:
                raise ValueError("pwrss: expected the penalised residual sum of squares with a deferred factor")
            self._deferred_factor = factor
        else:
            self.__dict__["factor"] = factor
            pwrss = factor.pwrss
        nu = residual_dof(design.n_obs, design.n_fixed, reml)
        self._working_scale = pwrss / nu
        c = conditioning
        self.scale = float(self._working_scale) if c is None else float(self._working_scale * c.scale**2)
        self.deviance = float(deviance) if c is None else c.deviance(deviance, reml)

    @cached_property
    def factor(self) -> Factor:
        """The system's factor at theta (computed now when it was deferred)."""
        return self._deferred_factor.compute()

    @cached_property
    def _solution(self) -> tuple[np.ndarray, np.ndarray]:
        return self._system.solve(self.factor, self._theta)  # u, working beta

    @cached_property
    def beta(self) -> np.ndarray:
        """The fixed effects."""
        beta = self._solution[1]
        return beta if self._conditioning is None else self._conditioning.beta(beta)

    @cached_property
    def _working_blups(self) -> dict[str, np.ndarray]:
        """The BLUPs per term on the system's scale (name -> (n_levels, k))."""
        design = self._system.design
        u = self._solution[0]
        b = PenalizedSystem.spherical_to_effects(u, self._theta, design.terms)
        effects: dict[str, np.ndarray] = {}
        pos = 0
        for term in design.terms:
            effects[term.name] = b[pos : pos + term.n_effects].reshape(term.n_levels, term.n_columns)
            pos += term.n_effects
        return effects

    @cached_property
    def _working_effects(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The BLUPs per term and the fitted values, on the system's scale."""
        design = self._system.design
        effects = self._working_blups
        fitted = design.X @ self._solution[1]
        for term in design.terms:
            fitted = fitted + z_times(term.group_codes, term.design, np.ascontiguousarray(effects[term.name]))
        return effects, fitted

    @cached_property
    def effects(self) -> dict[str, np.ndarray]:
        """Per term (name -> (n_levels, k)): the BLUPs b."""
        effects = self._working_blups
        if self._conditioning is None:
            return effects
        return {name: self._conditioning.scale * block for name, block in effects.items()}

    @cached_property
    def resid(self) -> np.ndarray:
        """y - X beta - Z b (y less the offset)."""
        resid = self._system.design.y - self._working_effects[1]
        return resid if self._conditioning is None else self._conditioning.rows(resid)

    @cached_property
    def fitted(self) -> np.ndarray:
        """X beta + Z b (without the offset)."""
        if self._conditioning is None:
            return self._working_effects[1]
        return self._conditioning.design.y - self.resid

    @cached_property
    def fe_cov(self) -> np.ndarray:
        """vcov(beta)."""
        fe_cov = fixed_cov(self.factor, self._working_scale)
        return fe_cov if self._conditioning is None else self._conditioning.cov(fe_cov)

    def resolved(self) -> Estimates:
        """Every estimate, computed now."""
        return Estimates(self.beta, self.effects, self.fe_cov, self.scale, self.fitted, self.resid, self.deviance)


def compute_estimates(system: PenalizedSystem, factor: Factor, theta: np.ndarray, reml: bool,
                      deviance: float, conditioning: Conditioning | None = None) -> Estimates:
    """beta, the BLUPs b = Lambda u per term, vcov(beta), sigma^2, fitted values and
    residuals, solved on the system's (working) scale and returned on the caller's
    through ``conditioning`` (the system's own scale when None; ``deviance``: the
    system's criterion at theta)."""
    return EstimatesAtOptimum(system, factor, theta, reml, deviance, conditioning).resolved()


def random_effects_frames(design: ModelDesign, effects: dict[str, np.ndarray]) -> dict[str, pd.Series | pd.DataFrame]:
    """BLUP arrays as lme4's ``ranef``: a Series for intercept-only factors, else a DataFrame."""
    out: dict[str, pd.Series | pd.DataFrame] = {}
    for term in lme4_term_order(design):
        block = effects[term.name]
        index = term.level_index
        if term.n_columns == 1:
            out[term.name] = pd.Series(block[:, 0], index=index, name=term.column_names[0])
        else:
            out[term.name] = pd.DataFrame(block, index=index, columns=list(term.column_names))
    return out


def variance_components(design: ModelDesign, theta: np.ndarray, scale: float):
    """Per grouping factor: sigma^2 T T' (a float when k = 1), and the correlations."""
    components: dict[str, float | pd.DataFrame] = {}
    correlations: dict[str, float] = {}
    for term in lme4_term_order(design):
        T = term.relative_cov_factor(theta)
        relative = T @ T.T
        cov = scale * relative
        names = list(term.column_names)
        if term.n_columns == 1:
            components[term.name] = float(cov[0, 0])
            continue
        components[term.name] = pd.DataFrame(cov, index=names, columns=names)
        sd = np.sqrt(np.diag(relative))  # the correlations from T T': free of sigma's size
        for j in range(len(names)):
            for i in range(j + 1, len(names)):
                if term.theta_index[i, j] < 0:
                    continue  # separate lme4 terms: structurally uncorrelated, lme4 shows none
                corr = relative[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                correlations[f"{term.name}:{names[j]},{names[i]}"] = float(corr)
    return components, correlations


def boundary_flags(design: ModelDesign, theta: np.ndarray, tol: float = SINGULAR_TOL) -> dict[str, bool]:
    """Per grouping factor: whether a diagonal entry of its relative factor is below ``tol``."""
    theta = np.asarray(theta)
    return {term.name: bool(theta[term.diagonal_theta].min() < tol) for term in lme4_term_order(design)}


def conditional_sd(system: PenalizedSystem, factor: Factor, theta: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Per term (name -> (n_levels, k)): conditional SDs of the BLUPs, as lme4's condVar."""
    blocks = system.conditional_precision_inverse_blocks(factor, theta)
    out: dict[str, np.ndarray] = {}
    for term, inv in zip(system.design.terms, blocks, strict=False):
        T = term.relative_cov_factor(theta)
        cov = np.einsum("ra,lab,cb->lrc", T, inv, T)
        out[term.name] = np.sqrt(np.maximum(scale * np.diagonal(cov, axis1=1, axis2=2), 0.0))
    return out
