"""Profile and Wald intervals against lme4's ``confint``.

Every profile end is lme4's within PROFILE_REL, or one where lme4's end is proven
wrong: tests/data/reference/profile_evidence.json (made by
tests/data/make_profile_evidence.R) holds lme4's own profiled deviance at both ends,
and :func:`test_proven_ends` checks interlace's end against it and against an
evaluation of the profiled deviance here, independent of the profiler (lme4's sd/cor
scale, minimised over the other parameters from several starts by scipy).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

import interlace
from interlace.fitting.objective import Objective
from interlace.linalg.dispatch import build_system

from .reference import REFERENCE_DIR, case_id, index, load, r_fixef_name
from .strategies import crossed_frames

PROFILE_REL = 1e-3
PROFILE_ABS_NEAR_ZERO = 1e-4
WALD_ABS = 1e-6
CUT = float(stats.norm.ppf(0.975))
PROVEN_ZETA = 1e-5
"""|zeta - cut-off| at interlace's end, by lme4 (R) and by the independent evaluation."""
PROVEN_FAR = 1e-3
"""|zeta - cut-off| above which an end is not the cut-off's: 100 x PROVEN_ZETA."""
PROVEN_SAME = 1e-6
"""Relative distance between interlace's end and the one the evidence evaluated."""
ZETA_AGREE = 1e-4
"""lme4's (R) and the independent evaluation's zeta at lme4's end."""

PROFILE_CASES = [c for c in index() if "names" in load(c["json"]).get("confint_profile", {})]
EVIDENCE = json.loads((REFERENCE_DIR / "profile_evidence.json").read_text())


def _proof(json_name: str, parameter: str, side: str) -> dict | None:
    return next((e for e in EVIDENCE["evidence"]
                 if (e["json"], e["parameter"], e["side"]) == (json_name, parameter, side)), None)


# ----- fits and their intervals, once per session ----------------------------------------

def _fit(json_name: str, fits) -> interlace.CrossedLMEResult:
    return fits.get(json_name)


_INTERVALS: dict[str, pd.DataFrame] = {}


def _profile(json_name: str, fits) -> pd.DataFrame:
    """interlace's profile intervals of a case, rows named as lme4's."""
    if json_name not in _INTERVALS:
        ci = _fit(json_name, fits).confint("profile")
        ci.index = [r_fixef_name(n) for n in ci.index]
        _INTERVALS[json_name] = ci
    return _INTERVALS[json_name]


# ----- the independent evaluation of the profiled deviance -------------------------------

def _lme4_scale(result) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """Names (lme4's, then sigma) and (theta index, term, row, col) of the sd/cor scale."""
    entries, names = [], []
    for t, term in enumerate(result._system.design.terms):
        effect = ["(Intercept)" if c == "Intercept" else c for c in term.column_names]
        for r in range(term.n_columns):
            for c in range(r + 1):
                i = int(term.theta_index[r, c])
                if i >= 0:
                    entries.append((i, t, r, c))
                    names.append((i, f"sd_{effect[r]}|{term.name}" if r == c else
                                  f"cor_{effect[r]}.{effect[c]}|{term.name}"))
    order = np.argsort([i for i, *_ in entries])
    return [names[k][1] for k in order] + ["sigma"], [entries[k] for k in order]


def _caller_system(result):
    """The penalised system of the fit's design on the caller's own scale (the fit's
    system is on its working scale): the independent evaluation's. Prior weights w
    scale the rows of y, X and Z by sqrt(w) (lme4's weighted residuals); the deviance
    then lacks lme4's -sum(log w) (:func:`_log_weights`)."""
    design = result._conditioning.design
    weights = design.fixed.weights
    if weights is not None:
        root = np.sqrt(weights)[:, None]
        design = replace(design, fixed=replace(design.fixed, matrix=design.X * root, response=design.y * root[:, 0],
                                               weights=None),
                         terms=tuple(replace(t, design=t.design * root) for t in design.terms))
    return build_system(design, result.solver_path)


def _log_weights(result) -> float:
    """sum(log w) of the fit's prior weights (0 without)."""
    weights = result._conditioning.design.fixed.weights
    return 0.0 if weights is None else float(np.log(weights).sum())


def _ml_deviance(result):
    """lme4's devfun2: the ML deviance at (sd, cor, sigma), theta from the Cholesky
    factor of each term's covariance."""
    system = _caller_system(result)
    n = system.design.n_obs
    _, entries = _lme4_scale(result)

    def deviance(values: np.ndarray) -> float:
        sigma = values[-1]
        theta = np.zeros(len(entries))
        for t, term in enumerate(system.design.terms):
            k = term.n_columns
            sd = np.zeros(k)
            cor = np.eye(k)
            for v, (_, tt, r, c) in zip(values, entries, strict=False):
                if tt == t and r == c:
                    sd[r] = v
                elif tt == t:
                    cor[r, c] = cor[c, r] = v
            cov = cor * np.outer(sd, sd)
            factor = np.zeros((k, k))  # Cholesky, zero columns for zero pivots
            for j in range(k):
                pivot = cov[j, j] - factor[j, :j] @ factor[j, :j]
                if pivot > 1e-13 * max(cov[j, j], 1e-300):
                    factor[j, j] = np.sqrt(pivot)
                    factor[j + 1:, j] = (cov[j + 1:, j] - factor[j + 1:, :j] @ factor[j, :j]) / factor[j, j]
            for i, tt, r, c in entries:
                if tt == t:
                    theta[i] = factor[r, c] / sigma
        f = system.factorize(theta)
        if not f.ok or not sigma > 0:
            return 1e300
        return f.logdet_random + f.pwrss / sigma**2 + n * (np.log(2 * np.pi) + 2 * np.log(sigma))

    return deviance


def _minimum(fun, starts: list[np.ndarray], bounds: list[tuple]) -> float:
    """The lowest of L-BFGS-B runs from each start, the best polished by Powell."""
    runs = [optimize.minimize(fun, s, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-15, "gtol": 1e-10})
            for s in starts]
    best = min(runs, key=lambda r: r.fun)
    polished = optimize.minimize(fun, best.x, method="Powell", bounds=bounds,
                                 options={"xtol": 1e-10, "ftol": 1e-15, "maxfev": 20000})
    return min(best.fun, polished.fun)


def _zeta(result, parameter: str, value: float, n_starts: int = 6) -> float:
    """|zeta| at ``parameter`` = ``value``: the ML deviance minimised over the other
    parameters from the ML optimum and ``n_starts`` random starts, less its minimum."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        held = _held_deviance(result, parameter, value, n_starts) - _log_weights(result)
        return float(np.sqrt(max(held - _ml_minimum(result), 0.0)))


_ML_FITS: dict[int, interlace.CrossedLMEResult] = {}


def _ml_fit(result) -> interlace.CrossedLMEResult:
    """The model refitted by ML (the profile's centre)."""
    if result.method == "ML":
        return result
    if id(result) not in _ML_FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", interlace.SingularFitWarning)
            warnings.simplefilter("ignore", interlace.MissingValuesWarning)
            _ML_FITS[id(result)] = result.update(method="ML")
    return _ML_FITS[id(result)]


def _ml_start(result) -> np.ndarray:
    """The ML optimum on lme4's sd/cor scale."""
    m = _ml_fit(result)
    names, _ = _lme4_scale(m)
    return np.array([_estimate(m, name) for name in names])


def _ml_minimum(result) -> float:
    return -2.0 * _ml_fit(result).llf


def _held_deviance(result, parameter: str, value: float, n_starts: int) -> float:
    m = _ml_fit(result)
    names, _ = _lme4_scale(m)
    rng = np.random.default_rng(1)
    if parameter not in names:  # a fixed effect: theta re-optimised with beta_j at value
        system = _caller_system(m)
        p = system.n_fixed
        j = [r_fixef_name(n) for n in m.fe_params.index].index(parameter)
        tail = np.zeros((p + 1, p))
        for new, old in enumerate(c for c in range(p) if c != j):
            tail[old, new] = 1.0
        tail[p, p - 1], tail[j, p - 1] = 1.0, -value
        objective = Objective(system.with_fixed_tail(tail), reml=False)
        lower = system.design.theta_lower
        starts = [m.theta] + [np.where(np.isfinite(lower), rng.uniform(0.0, 2.0, lower.size),
                                       rng.uniform(-1.0, 1.0, lower.size)) for _ in range(n_starts)]
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        return _minimum(lambda t: objective(np.maximum(t, lower)), starts, bounds)
    deviance = _ml_deviance(m)
    k = names.index(parameter)
    is_cor = np.array([n.startswith("cor_") for n in names])
    free = [i for i in range(len(names)) if i != k]
    centre = _ml_start(result)
    bounds = [(-1.0, 1.0) if is_cor[i] else (1e-6 * centre[-1] if i == len(names) - 1 else 0.0, None) for i in free]
    starts = [centre[free]]
    for _ in range(n_starts):
        s = np.where(is_cor, rng.uniform(-0.95, 0.95, len(names)),
                     np.maximum(centre, 0.05 * centre[-1]) * np.exp(rng.normal(0.0, 0.7, len(names))))
        starts.append(s[free])

    def held(x: np.ndarray) -> float:
        values = np.empty(len(names))
        values[k], values[free] = value, x
        return deviance(values)

    return _minimum(held, starts, bounds)


def _estimate(result, name: str) -> float:
    """A parameter's estimate on lme4's scale (``sd_x|g``, ``cor_x.y|g``, ``sigma``)."""
    if name == "sigma":
        return float(np.sqrt(result.scale))
    kind, rest = name.split("_", 1)
    effects, group = rest.rsplit("|", 1)
    vc = result.variance_components[group]
    # a copy: the fits are shared with other tests
    if not isinstance(vc, pd.DataFrame):
        vc = pd.DataFrame([[vc]], index=["Intercept"], columns=["Intercept"])
    cov = vc.copy()
    cov.index = cov.columns = ["(Intercept)" if c == "Intercept" else c for c in cov.columns]
    if kind == "sd":
        return float(np.sqrt(cov.loc[effects, effects]))
    a, b = next((a, effects[len(a) + 1:]) for a in cov.columns if effects.startswith(a + ".")
                and effects[len(a) + 1:] in cov.columns)
    d = np.sqrt(cov.loc[a, a] * cov.loc[b, b])
    return float(cov.loc[a, b] / d) if d > 0 else np.nan


# ----- lme4's intervals ------------------------------------------------------------------

def _close(mine: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(mine - ref) <= np.maximum(PROFILE_REL * np.abs(ref), PROFILE_ABS_NEAR_ZERO)


@pytest.mark.parametrize("case", PROFILE_CASES, ids=case_id)
def test_profile_intervals_match_lme4(case, fits):
    # each end is lme4's, or one whose evidence shows lme4's is not the profile's
    # (checked in test_proven_ends)
    ref = load(case["json"])["confint_profile"]
    ci = _profile(case["json"], fits)
    assert list(ci.index) == ref["names"]
    for side in ("lower", "upper"):
        theirs = np.array([np.nan if v is None else v for v in ref[side]], dtype=float)
        mine = ci[side].to_numpy()
        for name, a, b, ok in zip(ref["names"], mine, theirs, _close(mine, theirs), strict=True):
            if ok:
                continue
            proof = _proof(case["json"], name, side)
            assert proof is not None, f"{name} {side}: interlace {a!r}, lme4 {b!r}, and no evidence"
            assert proof["lme4"] == pytest.approx(b, rel=1e-12), f"{name} {side}: evidence for lme4's {proof['lme4']}"
            assert a == pytest.approx(proof["interlace"], rel=PROVEN_SAME), f"{name} {side}: {proof['interlace']}"


def _proof_id(proof: dict) -> str:
    return f"{proof['json'].split('__')[0]}-{proof['parameter']}-{proof['side']}"


@pytest.mark.parametrize("proof", EVIDENCE["evidence"], ids=_proof_id)
def test_proven_ends(proof, fits):
    # lme4's profiled deviance (R) and an independent one (here): zeta is the cut-off at
    # interlace's end, and far from it at lme4's
    assert proof["cut"] == pytest.approx(CUT, rel=1e-12)
    assert abs(proof["zeta_interlace"] - CUT) <= PROVEN_ZETA
    assert abs(proof["zeta_lme4"] - CUT) >= PROVEN_FAR
    result = _fit(proof["json"], fits)
    mine = _profile(proof["json"], fits).loc[proof["parameter"], proof["side"]]
    assert mine == pytest.approx(proof["interlace"], rel=PROVEN_SAME)
    assert abs(_zeta(result, proof["parameter"], mine) - CUT) <= PROVEN_ZETA
    at_lme4 = _zeta(result, proof["parameter"], proof["lme4"])
    assert abs(at_lme4 - proof["zeta_lme4"]) <= ZETA_AGREE
    assert abs(at_lme4 - CUT) >= PROVEN_FAR


def test_dialyzer_sd_pressure_profile(fits):
    # issue 12 read this profile as 0.8 at 4 and crossing 1.96 near 8.3: lme4's own
    # profiled deviance (R) and the independent evaluation give 1.92 at 4, 4.16 at 8.3
    json_name = "Dialyzer__rate_pressure_QB_pressure_Subject__REML.json"
    points = next(p for p in EVIDENCE["profiles"] if p["json"] == json_name)
    zeta = dict(zip(points["values"], points["zeta"], strict=True))
    assert np.all(np.diff(points["zeta"]) > 0)  # monotone from the estimate (0.79) outward
    result = _fit(json_name, fits)
    for value in (4.0, 8.3):
        assert _zeta(result, "sd_pressure|Subject", value) == pytest.approx(zeta[value], abs=ZETA_AGREE)
    assert zeta[4.0] < CUT < zeta[5.0]
    assert _profile(json_name, fits).loc["sd_pressure|Subject", "upper"] == pytest.approx(4.0631, abs=1e-4)


WALD_CASES = [c for c in index() if "names" in load(c["json"]).get("confint_wald", {})]


@pytest.mark.parametrize("case", WALD_CASES, ids=case_id)
def test_wald_intervals_match_lme4(case, fits):
    # at lme4's theta: the 1e-6 tolerance is tighter than the distance between lme4's
    # optimum and interlace's (fixed effects agree to 1e-3 of their SE, test_reference.py)
    ref = load(case["json"])["confint_wald"]
    ci = fits.at_reference_theta(case["json"]).confint("wald")
    ci.index = [r_fixef_name(n) for n in ci.index]
    ci = ci.loc[ref["names"]]
    scale = np.maximum(1.0, np.abs(np.array(ref["upper"])))
    np.testing.assert_allclose(ci["lower"].to_numpy(), ref["lower"], atol=WALD_ABS * scale.max(), rtol=1e-6)
    np.testing.assert_allclose(ci["upper"].to_numpy(), ref["upper"], atol=WALD_ABS * scale.max(), rtol=1e-6)


# ----- properties ------------------------------------------------------------------------

def quiet_fit(*args, **kwargs) -> interlace.CrossedLMEResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return interlace.fit(*args, **kwargs)


def _estimates(m, names) -> np.ndarray:
    fixed = dict(zip(m.fe_params.index, m.fe_params.to_numpy(), strict=True))
    return np.array([fixed[n] if n in fixed else _estimate(m, n) for n in names])


def _assert_interval_properties(m) -> None:
    with warnings.catch_warnings():
        # a profile that finds a lower optimum than the fit's says so, and profiles from it
        warnings.simplefilter("ignore", interlace.ConvergenceWarning)
        narrow, wide = m.confint(level=0.8), m.confint(level=0.99)
    est = _estimates(m, narrow.index)
    slack = 1e-6 * (1.0 + np.abs(np.nan_to_num(est)))  # an estimate-less correlation: bounds only
    lower, upper = narrow["lower"].to_numpy(), narrow["upper"].to_numpy()
    known = np.isfinite(est)  # a correlation of an sd at 0 has no estimate
    assert np.all(lower[known] <= est[known] + slack[known]) and np.all(est[known] - slack[known] <= upper[known])
    assert np.all(lower < upper)
    assert np.all(wide["lower"].to_numpy() <= lower + slack) and np.all(wide["upper"].to_numpy() >= upper - slack)
    # where neither end sits on a bound (0 or +-1), the wider interval is strictly wider
    inside = (lower > 0) & (np.abs(lower) != 1.0)
    assert np.all(wide["lower"].to_numpy()[inside] < lower[inside])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crossed_frames(slope=True), st.sampled_from(["y ~ x + (1 | g1) + (1 | g2)", "y ~ x + (x | g1) + (1 | g2)",
                                                    "y ~ x + (x || g1)"]), st.floats(0.0, 1.0))
def test_profile_intervals_surround_the_estimate(frame, formula, shrink):
    # shrink g2's effects towards nothing so that some fits end on the boundary (an sd
    # at 0, a correlation at +-1): the profile never raises, each interval holds the ML
    # estimate, and the 99% interval holds the 80% one
    data = frame.assign(y=frame["y"] - (1 - shrink) * frame.groupby("g2", observed=True)["y"].transform("mean"))
    _assert_interval_properties(quiet_fit(formula, data, method="ML"))


def test_terms_of_three_correlated_effects():
    # a correlation between the second and third effects is profiled on the same model
    # with the term's columns reordered; the end is where the deviance says
    data = interlace.load_dataset("sleepstudy").assign(Days2=lambda d: (d["Days"] - 4.5) ** 2 / 10)
    m = quiet_fit("Reaction ~ Days + Days2 + (Days + Days2 | Subject)", data, method="ML")
    ci = m.confint()
    ci.index = [r_fixef_name(n) for n in ci.index]
    assert list(ci.index[:7]) == ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
                                  "cor_Days2.(Intercept)|Subject", "sd_Days|Subject", "cor_Days2.Days|Subject",
                                  "sd_Days2|Subject", "sigma"]
    for side in ("lower", "upper"):
        assert abs(_zeta(m, "cor_Days2.Days|Subject", ci.loc["cor_Days2.Days|Subject", side]) - CUT) <= PROVEN_ZETA
    _assert_interval_properties(m)


def test_blocked_path_gives_the_dense_paths_intervals():
    data = interlace.load_dataset("Penicillin")
    dense = quiet_fit("diameter ~ 1 + (1 | plate) + (1 | sample)", data, solver="dense").confint()
    blocked = quiet_fit("diameter ~ 1 + (1 | plate) + (1 | sample)", data, solver="sparse").confint()
    np.testing.assert_allclose(blocked.to_numpy(), dense.to_numpy(), rtol=1e-6)


def test_profile_interval_contains_estimate_and_widens_with_level(fits):
    m = fits.get("sleepstudy__Reaction_Days_Days_Subject__ML.json")
    _assert_interval_properties(m)


def test_confint_arguments_are_checked(fits):
    m = fits.get("Dyestuff__Yield_1_1_Batch__REML.json")
    with pytest.raises(interlace.InterlaceError, match=r"method: expected 'profile' or 'wald', found 'boot'"):
        m.confint("boot")
    with pytest.raises(ValueError, match=r"level: expected a number between 0 and 1, found 95"):
        m.confint(level=95)
