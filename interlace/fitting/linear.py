"""The linear mixed model's fit: the working scale, the penalised system on the path
the dispatch picks, the optimiser of theta, and the result assembled from the optimum
(:func:`fit_linear`, :func:`assemble`). :func:`interlace.fit` checks the arguments and
reads the data (:mod:`interlace.fitting.model_frame`) first."""

from __future__ import annotations

import warnings
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from ..deferred import Deferred
from ..errors import ConvergenceWarning, InterlaceError, MissingValuesWarning, SingularFitWarning
from ..linalg.dispatch import build_system
from ..result import CrossedLMEResult, ModelInfo
from ..shallow import from_fields, with_fields
from .conditioning import Conditioning, condition
from .estimates import (
    EstimatesAtOptimum,
    boundary_flags,
    lme4_term_order,
    random_effects_frames,
    variance_components,
)
from .gradient import fit_deviance_functions
from .optimize import OptimizationRecord, optimize_theta
from .start import start_theta


def fit_linear(design, full_formula: str, data: Any, dropped_rows: np.ndarray, *, method: str, start,
               optimizer: str, max_evaluations: int, solver: str, df_method: str, max_dense_gib,
               options: dict) -> CrossedLMEResult:
    """The fit of a linear mixed model's ``design`` (arguments checked by
    :func:`interlace.fit`; ``options``: its arguments, kept for ``update``)."""
    conditioning, working = condition(design)  # the fit runs on the working scale
    system = build_system(working, solver, max_dense_gib)
    reml = method == "REML"
    objective, with_gradient = fit_deviance_functions(system, reml)
    if start is None:
        theta0 = start_theta(system)
    else:
        theta0 = np.asarray(start, dtype=np.float64).ravel()
        if theta0.shape != (design.n_theta,):
            raise InterlaceError(
                f"start: expected {design.n_theta} values for theta "
                f"({', '.join(design.theta_names)}), found {theta0.size}"
            )
    record = optimize_theta(objective, theta0, design.theta_lower, optimizer, int(max_evaluations), with_gradient,
                            polish=True)
    factor = optimum_factor(objective, with_gradient, theta=record.theta)
    return assemble(conditioning, system, record, reml, method, df_method, full_formula, data, dropped_rows,
                    options, factor=factor, pwrss=optimum_pwrss(with_gradient, record.theta))


def optimum_factor(*criteria, theta: np.ndarray):
    """The factor at the optimum when a criterion still holds it from its last
    evaluation (on a large model the factorisation is the costliest step), else None."""
    for criterion in criteria:
        owner = getattr(criterion, "__self__", criterion)  # a bound ``value`` method
        if hasattr(owner, "last_factor"):
            factor = owner.last_factor(theta)
            if factor is not None:
                # the leading term's weighted coupling serves the gradient only (it lives in
                # the factor's free triangle, which the next evaluation rewrites): the result
                # keeps the plain factor
                return factor if factor.lead_weighted is None else replace(factor, lead_weighted=None)
    return None


def optimum_pwrss(criterion, theta: np.ndarray) -> float | None:
    """The penalised residual sum of squares at the optimum ``theta`` when the
    criterion's optimiser computed it there (:meth:`CompiledDeviance.last_pwrss
    <interlace.fitting.gradient.CompiledDeviance.last_pwrss>`), else None."""
    last = getattr(criterion, "last_pwrss", None)
    return None if last is None else last(theta)


def assemble(conditioning: Conditioning, system, record: OptimizationRecord, reml: bool, method: str,
             df_method: str, formula: str, data: Any, dropped_rows: np.ndarray,
             options: dict | None = None, model: ModelInfo | Deferred | None = None,
             factor=None, pwrss: float | None = None) -> CrossedLMEResult:
    """The result of an optimum ``record`` of ``system`` (built on the working design of
    ``conditioning``), every value on the caller's scale.

    The scalars (theta, sigma^2, the criterion, the flags) are computed here; the
    labelled fields (``fe_params``, ``random_effects``, ``model``, ...) when first read
    (:mod:`interlace.deferred`), from the estimates at the optimum, which are
    themselves computed on first use (:class:`EstimatesAtOptimum`).

    ``factor``: the system's factor at the optimum, when the optimiser kept it; else
    with ``pwrss`` (the penalised residual sum of squares there, see
    :func:`optimum_pwrss`) the factorisation waits until something reads the factor
    (beta, the BLUPs, vcov(beta), ``_factor``), otherwise it is done now."""
    design = conditioning.design
    theta = record.theta.copy()  # the deferred fields' own: unchanged by the caller's edits of the result
    if factor is None:
        factor = system.factorize(theta) if pwrss is None else Deferred(system.factorize, theta)
    est = EstimatesAtOptimum(system, factor, theta, reml, record.objective, conditioning, pwrss)
    flags = boundary_flags(design, theta)
    singular = any(flags.values())
    if singular:
        warnings.warn("boundary (singular) fit: see interlace.isSingular", SingularFitWarning, stacklevel=4)
    if not record.converged:
        warnings.warn(
            f"the optimizer ({record.optimizer}) did not converge: {record.message}",
            ConvergenceWarning,
            stacklevel=4,
        )
    n_dropped = len(dropped_rows)
    if n_dropped:
        warnings.warn(
            f"{n_dropped} row{'s' if n_dropped > 1 else ''} with missing values "
            f"{'were' if n_dropped > 1 else 'was'} dropped",
            MissingValuesWarning,
            stacklevel=4,
        )
    ordered = lme4_term_order(design)
    at = _AtOptimum(est, design, theta)
    result = from_fields(
        CrossedLMEResult,
        fe_params=Deferred(_fe_params, at),
        fe_bse=Deferred(_fe_bse, at),
        fe_cov=Deferred(_fe_cov, at),
        random_effects=Deferred(_random_effects, at),
        variance_components=Deferred(_variance_components, at),
        correlation_params=Deferred(_correlation_params, at),
        theta=theta.copy(),
        theta_names=design.theta_names,
        scale=est.scale,
        llf=-0.5 * est.deviance,
        nparams=design.n_fixed + design.n_theta + 1,
        resid=Deferred(_resid, at),  # y - offset - (X b + Z u)
        fittedvalues=Deferred(_fitted, at),
        nobs=design.n_obs,
        ngroups={t.name: t.n_levels for t in ordered},
        method=method,
        converged=record.converged,
        df_method="satterthwaite",
        model=model if model is not None else Deferred(partial(model_info, design, formula, data, dropped_rows)),
        is_singular=singular,
        boundary_flags=flags,
        n_dropped=n_dropped,
        optimization=with_fields(record, objective=est.deviance),
        solver_path=system.path,
        fit_options=dict(options or {}),
        _system=system,
        _factor=Deferred(_factor, at),
        _conditioning=conditioning,
        _kenward_roger=None,
    )
    return result.with_df_method(df_method) if df_method != "satterthwaite" else result


class _AtOptimum:
    """What the deferred fields of a result read: the estimates at the optimum, the
    design, theta, and the variance components once computed (one object that every
    field's :class:`~interlace.deferred.Deferred` shares)."""

    __slots__ = ("est", "design", "theta", "_components")

    def __init__(self, est: EstimatesAtOptimum, design, theta: np.ndarray):
        self.est, self.design, self.theta, self._components = est, design, theta, None

    def components(self) -> tuple:
        """:func:`variance_components` at the optimum (computed on the first call)."""
        if self._components is None:
            self._components = variance_components(self.design, self.theta, self.est.scale)
        return self._components


def _fe_params(at: _AtOptimum) -> pd.Series:
    return pd.Series(at.est.beta, index=at.design.fixed_index, name="Estimate")


def _fe_bse(at: _AtOptimum) -> pd.Series:
    return pd.Series(np.sqrt(np.diag(at.est.fe_cov)), index=at.design.fixed_index, name="Std. Error")


def _fe_cov(at: _AtOptimum) -> np.ndarray:
    return at.est.fe_cov


def _random_effects(at: _AtOptimum):
    return random_effects_frames(at.design, at.est.effects)


def _variance_components(at: _AtOptimum):
    return at.components()[0]


def _correlation_params(at: _AtOptimum):
    return at.components()[1]


def _resid(at: _AtOptimum) -> np.ndarray:
    return at.est.resid


def _fitted(at: _AtOptimum) -> np.ndarray:
    return at.design.fixed.with_offset_added(at.est.fitted)


def _factor(at: _AtOptimum):
    return at.est.factor


def model_info(design, formula: str, data: Any, dropped_rows: np.ndarray) -> ModelInfo:
    """The model's data of a fit of ``design`` (the caller's design, not the working one)."""
    return ModelInfo(
        exog=design.X,
        endog=design.fixed.observed,
        exog_names=list(design.fixed_names),
        endog_names=design.fixed.response_name,
        groups={t.name: pd.Categorical.from_codes(t.group_codes, categories=t.levels)
                for t in lme4_term_order(design)},
        formula=formula,
        data=data,
        dropped_rows=dropped_rows,
    )
