"""Elementwise kernels of generalized linear models: links, working weights, likelihoods.

Links and distributions are given by the integer codes of :mod:`interlace.families`:
links logit 0, probit 1, cloglog 2, log 3, identity 4, inverse 5, sqrt 6; distributions
binomial 0, poisson 1. The inverse links and d mu / d eta keep R's (and lme4's) guards,
so extreme linear predictors give the same means as glmer's.

The ``*_rows`` kernels are the same formulas with the rows split over threads, for
designs of many rows (a fit's thread limits set how many).

A row's log-likelihood, free of constants, is ``a log(mu) + b log(1 - mu)`` (binomial)
or ``a log(mu) - b mu`` (Poisson), with ``a`` and ``b`` fixed by the response and the
weights (:class:`interlace.fitting.response.GlmResponse`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._jit import kernel, parallel_kernel

DBL_EPSILON = 2.220446049250313e-16
LOGIT_THRESHOLD = 30.0  # lme4's logitLinkInv / logitMuEta guards
PROBIT_THRESHOLD = 8.125890664701906  # -qnorm(DBL_EPSILON): R's probit linkinv
SQRT_HALF = 0.7071067811865476
INV_SQRT_2PI = 0.3989422804014327


@kernel
def _inverse_link_one(eta, link):
    if link == 0:  # logit
        if eta < -LOGIT_THRESHOLD:
            t = DBL_EPSILON
        elif eta > LOGIT_THRESHOLD:
            t = 1.0 / DBL_EPSILON
        else:
            t = math.exp(eta)
        return t / (1.0 + t)
    if link == 1:  # probit
        e = min(max(eta, -PROBIT_THRESHOLD), PROBIT_THRESHOLD)
        return 0.5 * math.erfc(-e * SQRT_HALF)
    if link == 2:  # cloglog
        mu = -math.expm1(-math.exp(eta))
        return min(max(mu, DBL_EPSILON), 1.0 - DBL_EPSILON)
    if link == 3:  # log
        return max(math.exp(eta), DBL_EPSILON)
    if link == 5:  # inverse
        return 1.0 / eta
    if link == 6:  # sqrt
        return eta * eta
    return eta  # identity


@kernel
def _mu_eta_one(eta, link):
    if link == 0:
        if eta > LOGIT_THRESHOLD or eta < -LOGIT_THRESHOLD:
            return DBL_EPSILON
        e = math.exp(eta)
        return e / ((1.0 + e) * (1.0 + e))
    if link == 1:
        return max(INV_SQRT_2PI * math.exp(-0.5 * eta * eta), DBL_EPSILON)
    if link == 2:
        e = math.exp(min(eta, 700.0))
        return max(e * math.exp(-e), DBL_EPSILON)
    if link == 3:
        return max(math.exp(eta), DBL_EPSILON)
    if link == 5:
        return -1.0 / (eta * eta)
    if link == 6:
        return max(2.0 * eta, DBL_EPSILON)  # eta > 0 is the link's range (valideta)
    return 1.0


@kernel
def _variance_one(mu, family):
    if family == 0:
        return mu * (1.0 - mu)
    return mu


@kernel
def inverse_link(eta, link):
    """mu = g^{-1}(eta), elementwise."""
    out = np.empty(eta.size)
    for i in range(eta.size):
        out[i] = _inverse_link_one(eta[i], link)
    return out


@kernel
def mu_eta(eta, link):
    """d mu / d eta, elementwise."""
    out = np.empty(eta.size)
    for i in range(eta.size):
        out[i] = _mu_eta_one(eta[i], link)
    return out


@kernel
def _xlogy(x, y):
    if x == 0.0:
        return 0.0
    return x * math.log(y)


@kernel
def _xlog_ratio(x, numerator, denominator):
    """x log(numerator / denominator), 0 when x is 0 (whatever the ratio)."""
    if x == 0.0:
        return 0.0
    return x * math.log(numerator / denominator)


@kernel
def loglik_sum(mu, a, b, family):
    """sum_i a_i log(mu_i) + b_i log(1 - mu_i) (binomial) or a_i log(mu_i) - b_i mu_i (Poisson)."""
    total = 0.0
    if family == 0:
        for i in range(mu.size):
            total += _xlogy(a[i], mu[i]) + _xlogy(b[i], 1.0 - mu[i])
    else:
        for i in range(mu.size):
            total += _xlogy(a[i], mu[i]) - b[i] * mu[i]
    return total


@kernel
def unit_deviance(y, mu, weights, family):
    """R's ``dev.resids``: 2 w (y log(y / mu) + (1 - y) log((1 - y) / (1 - mu))) (binomial)
    or 2 w (y log(y / mu) - (y - mu)) (Poisson)."""
    out = np.empty(y.size)
    for i in range(y.size):
        if family == 0:
            d = _xlog_ratio(y[i], y[i], mu[i]) + _xlog_ratio(1.0 - y[i], 1.0 - y[i], 1.0 - mu[i])
        else:
            d = _xlog_ratio(y[i], y[i], mu[i]) - (y[i] - mu[i])
        out[i] = 2.0 * weights[i] * d
    return out


@kernel
def working_response(eta, offset, y, weights, family, link, root_weights, working_y):
    """The iteratively reweighted least-squares quantities at the linear predictor
    ``eta`` (offset included): the square roots of the working weights
    w (d mu / d eta)^2 / V(mu) into ``root_weights`` and the working response
    eta - offset + (y - mu) / (d mu / d eta) into ``working_y``. Returns mu."""
    mu = np.empty(eta.size)
    for i in range(eta.size):
        m = _inverse_link_one(eta[i], link)
        d = _mu_eta_one(eta[i], link)
        v = _variance_one(m, family)
        mu[i] = m
        root_weights[i] = math.sqrt(weights[i] * d * d / v) if v > 0.0 else 0.0
        working_y[i] = eta[i] - offset[i] + ((y[i] - m) / d if d != 0.0 else 0.0)
    return mu


@kernel
def canonical_derivatives(eta, y, weights, family, a, w, dw):
    """For a canonical link (logit with binomial, log with Poisson): per row the score
    of the log-likelihood in eta, a = w (y - mu); the working weight W = w V(mu) (the
    observed information, equal to the expected one); and dW / d eta = w V'(mu) V(mu)."""
    for i in range(eta.size):
        if family == 0:
            m = _inverse_link_one(eta[i], 0)
            v = m * (1.0 - m)
            a[i] = weights[i] * (y[i] - m)
            w[i] = weights[i] * v
            dw[i] = weights[i] * (1.0 - 2.0 * m) * v
        else:
            m = _inverse_link_one(eta[i], 3)
            a[i] = weights[i] * (y[i] - m)
            w[i] = weights[i] * m
            dw[i] = weights[i] * m


@parallel_kernel
def inverse_link_rows(eta, link):
    """:func:`inverse_link`, the rows over threads."""
    out = np.empty(eta.size)
    for i in numba.prange(eta.size):
        out[i] = _inverse_link_one(eta[i], link)
    return out


@parallel_kernel
def loglik_sum_rows(mu, a, b, family):
    """:func:`loglik_sum`, the rows over threads."""
    total = 0.0
    if family == 0:
        for i in numba.prange(mu.size):
            total += _xlogy(a[i], mu[i]) + _xlogy(b[i], 1.0 - mu[i])
    else:
        for i in numba.prange(mu.size):
            total += _xlogy(a[i], mu[i]) - b[i] * mu[i]
    return total


@parallel_kernel
def working_response_rows(eta, offset, y, weights, family, link, root_weights, working_y):
    """:func:`working_response`, the rows over threads."""
    mu = np.empty(eta.size)
    for i in numba.prange(eta.size):
        m = _inverse_link_one(eta[i], link)
        d = _mu_eta_one(eta[i], link)
        v = _variance_one(m, family)
        mu[i] = m
        root_weights[i] = math.sqrt(weights[i] * d * d / v) if v > 0.0 else 0.0
        working_y[i] = eta[i] - offset[i] + ((y[i] - m) / d if d != 0.0 else 0.0)
    return mu
