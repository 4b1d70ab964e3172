"""Responses drawn from a fitted model, and refits of its design to new responses.

``simulate`` is lme4's ``simulate.merMod``: y* = X beta + Z b* + e*, with new random
effects b* = sigma Lambda u*, u* ~ N(0, I) per draw (``use_re=False``, lme4's
default) or the BLUPs (``use_re=True``, lme4's ``use.u = TRUE``), and e*_i ~ N(0,
sigma^2 / w_i) (w the prior weights, 1 without), plus the model's offset.
``refit`` is lme4's ``refit``: the same design with a new response, reusing every
structure that does not depend on y and starting from the fitted theta (the offset is
subtracted from the new response, as lme4 fits y - offset).

Both are on the caller's scale. A draw is the mean X beta plus s times a draw of the
working model's random part (:mod:`interlace.fitting.conditioning`): sigma |s| in size, with
the sign of s, so that the same seed draws a y + b from a fit to a y + b.
A refit maps the new response to the working scale through the fit's T, with its own
gamma and s, and fits it on the fit's working system.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from .deferred import Deferred
from .errors import InterlaceError
from .fitting.gradient import deviance_functions
from .fitting.linear import assemble, optimum_factor, optimum_pwrss
from .fitting.optimize import optimize_theta
from .kernels.products import z_times


def check_nsim(nsim) -> None:
    """``nsim``: a positive integer, else an error naming it."""
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise InterlaceError(f"nsim: expected a positive integer, found {nsim!r}")


def random_part(terms, theta: np.ndarray, random_effects: dict, rng: np.random.Generator, use_re: bool,
                sigma: float = 1.0) -> np.ndarray:
    """Z b per row: the fit's conditional modes (``use_re``) or new effects
    b = sigma Lambda u, u ~ N(0, I), drawn term by term from ``rng``."""
    out = np.zeros(len(terms[0].group_codes)) if terms else np.zeros(0)
    for term in terms:
        if use_re:
            effects = random_effects[term.name]
            block = np.asarray(effects.to_frame() if effects.ndim == 1 else effects, dtype=np.float64)
        else:
            T = term.relative_cov_factor(theta)
            block = sigma * rng.standard_normal((term.n_levels, term.n_columns)) @ T.T
        out += z_times(term.group_codes, term.design, np.ascontiguousarray(block))
    return out


def simulate_responses(result, nsim: int = 1, seed=None, use_re: bool = False) -> np.ndarray:
    """(n, nsim) responses simulated from the fit."""
    check_nsim(nsim)
    rng = np.random.default_rng(seed)
    conditioning = result._conditioning
    design = conditioning.design
    sigma = conditioning.sign * float(np.sqrt(result.scale))  # s sigma': signed
    mean = design.fixed.with_offset_added(design.X @ result.fe_params.to_numpy())
    out = np.empty((design.n_obs, nsim))
    for draw in range(nsim):
        y = mean + random_part(design.terms, result.theta, result.random_effects, rng, use_re, sigma)
        noise = sigma * rng.standard_normal(design.n_obs)
        weights = design.fixed.weights
        out[:, draw] = y + (noise if weights is None else noise / np.sqrt(weights))
    return out


def refit_curvature(result) -> np.ndarray | None:
    """The inverse Hessian of the fit's criterion at its theta, where the compiled
    optimiser has one (small dense systems of scalar terms), else None. Refits of
    the design start BFGS from it instead of from the identity."""
    _, with_gradient = deviance_functions(result._system, result.method == "REML")
    if not hasattr(with_gradient, "inverse_hessian"):
        return None
    return with_gradient.inverse_hessian(result.theta, result._system.design.theta_lower)


def refit_response(result, y):
    """The fit's model refitted to the response ``y`` (a new result)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    n = result.nobs
    if y.shape != (n,):
        raise InterlaceError(f"y: expected {n} values (the rows used in the fit), found {y.size}")
    if not np.isfinite(y).all():
        raise InterlaceError("y: expected finite values, found NaN or infinity")
    fixed = result._conditioning.design.fixed
    conditioning, working_y = result._conditioning.with_response(y if fixed.offset is None else y - fixed.offset,
                                                                 result._system.design)
    system = result._system.with_response(working_y)
    reml = result.method == "REML"
    fun, with_gradient = deviance_functions(system, reml)
    record = optimize_theta(fun, result.theta, system.design.theta_lower,
                            result.fit_options.get("optimizer", "auto"), fun_and_grad=with_gradient,
                            inverse_hessian=result._refit_curvature)
    info = result.model  # read once: a deferred field's every read is a descriptor call
    model = Deferred(partial(replace, info, endog=y))
    return assemble(conditioning, system, record, reml, result.method, result.df_method,
                     info.formula, info.data, info.dropped_rows, result.fit_options,
                     model, factor=optimum_factor(fun, with_gradient, theta=record.theta),
                     pwrss=optimum_pwrss(with_gradient, record.theta))
