"""Shift and scale invariance: y -> a y + b and x -> a x + b give the fit the maths says.

The fit runs on one working scale (:mod:`interlace.fitting.conditioning`), so an affine map of
the response or of a numeric predictor changes only the back-transform: theta is the
same; beta, SEs, vcov, BLUPs, conditional SDs, fitted values, residuals and sigma move
as the map says (the intercept absorbs shifts, scale factors carry through); llf moves
by the Jacobian term; df, t, F and p-values (of the same hypotheses) do not move;
profile intervals, predictions, simulations (same seed), refits and bootMer follow.

Every quantity is compared to the transformed original to :data:`REL` of itself, or of
its natural unit where it is near zero (a coefficient's SE, y's SD): a shift by 1e8
SDs leaves the data 8 of their 16 digits, and every comparison here is made so that
those 8 digits are what it reads (the shift is taken off before comparing).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import interlace
from interlace.inference.satterthwaite import satterthwaite_df

from .reference import case_data, index
from .strategies import crossed_frames

REL = 1e-6
"""Relative agreement of every quantity with the transformed original."""

THETA_ABS = 1e-6
"""theta's agreement where it is near 0 (a boundary)."""

SCALES = [1e-100, 1e-3, 7.0, 1e100]
"""The factors a of the maps (with either sign)."""

MAX_SHIFT = 1e8
"""The largest shift b, in SDs of the transformed variable."""

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CROSSED = "y ~ x + (1 | g1) + (1 | g2)"
SLOPES = "y ~ x + (1 + x | g1) + (1 | g2)"


def quiet_fit(*args, **kwargs) -> interlace.CrossedLMEResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return interlace.fit(*args, **kwargs)


def assert_close(actual, expected, unit, what: str) -> None:
    """|actual - expected| <= REL * max(|expected|, unit), elementwise."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, what
    if not actual.size:
        return
    undefined = np.isnan(expected)  # as a correlation of an sd at 0: NaN on both sides
    assert np.array_equal(np.isnan(actual), undefined), f"{what}: NaN at other places: {actual} against {expected}"
    actual, expected = actual[~undefined], expected[~undefined]
    if np.ndim(unit):
        unit = np.broadcast_to(unit, undefined.shape)[~undefined]
    if not actual.size:
        return
    assert np.all(np.isfinite(actual)), f"{what}: not finite: {actual}"
    bound = REL * np.maximum(np.abs(expected), unit)
    error = np.abs(actual - expected)
    worst = int(np.argmax(error - bound))
    assert np.all(error <= bound), (
        f"{what}: {actual.ravel()[worst]!r} against {expected.ravel()[worst]!r} "
        f"(off by {error.ravel()[worst]:.3g}, allowed {bound.ravel()[worst]:.3g})"
    )


def _frame_values(frames: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float64) for k, v in frames.items()}


def _shift(result, b: float) -> np.ndarray:
    """b on the intercept: what a shift of y adds to beta."""
    out = np.zeros(len(result.fe_params))
    out[list(result.fe_params.index).index("Intercept")] = b
    return out


maps = st.tuples(
    st.sampled_from(SCALES),
    st.sampled_from([1.0, -1.0]),
    st.sampled_from([0.0, 1.0, -1.0]),
    st.floats(0.0, np.log10(MAX_SHIFT)),
)
"""(|a|, sign of a, sign of b, log10 of |b| in SDs)."""


def _map(drawn, sd: float) -> tuple[float, float]:
    size, sign, shift_sign, shift_log = drawn
    a = sign * size
    return a, shift_sign * 10.0**shift_log * sd * size


# ----- the response -----------------------------------------------------------------------

def check_response_map(m0, m1, a: float, b: float) -> None:
    """m1, fitted to a y + b, against m0 fitted to y."""
    n, p = m0.nobs, len(m0.fe_params)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=REL, atol=THETA_ABS, err_msg="theta")
    assert_close(np.sqrt(m1.scale), abs(a) * np.sqrt(m0.scale), 0.0, "sigma")
    se0 = m0.fe_bse.to_numpy()
    # beta1 = a beta0 + b e_int: compare with the shift taken off, in SE units
    assert_close((m1.fe_params.to_numpy() - _shift(m1, b)) / a, m0.fe_params.to_numpy(), se0, "beta")
    assert_close(m1.fe_bse.to_numpy(), abs(a) * se0, 0.0, "SE")
    unit = np.outer(se0, se0)
    assert_close(m1.fe_cov / a**2, m0.fe_cov, unit, "vcov")
    sigma0 = float(np.sqrt(m0.scale))  # the unit of effects near 0 (a variance at the boundary)
    for name, blup0 in _frame_values(m0.random_effects).items():
        blup1 = _frame_values(m1.random_effects)[name]
        assert_close(blup1 / a, blup0, sigma0, f"BLUPs {name}")
        sd0 = np.asarray(m0.random_effects_se[name], dtype=np.float64)
        sd1 = np.asarray(m1.random_effects_se[name], dtype=np.float64)
        assert_close(sd1 / abs(a), sd0, sigma0, f"cond SD {name}")
    y_sd = float(np.std(m0.model.endog))
    assert_close((m1.fittedvalues - b) / a, m0.fittedvalues, y_sd, "fitted")
    assert_close(m1.resid / a, m0.resid, float(np.sqrt(m0.scale)), "resid")
    for name, comp0 in m0.variance_components.items():
        assert_close(np.asarray(m1.variance_components[name], dtype=np.float64) / a**2,
                     np.asarray(comp0, dtype=np.float64), m0.scale, f"VarCorr {name}")
    for name, cor0 in m0.correlation_params.items():
        assert_close(m1.correlation_params[name], cor0, 1.0, f"cor {name}")
    nu = n - p if m0.method == "REML" else n
    assert_close(m1.llf + nu * np.log(abs(a)), m0.llf, 1.0, "llf")
    # tests: df unchanged; t and p of every coefficient but the intercept (whose
    # hypothesis b moves) unchanged, t with the sign of a
    assert_close(m1.fe_df.to_numpy(), m0.fe_df.to_numpy(), 0.0, "df")
    slopes = [k for k in m0.fe_params.index if k != "Intercept" or b == 0.0]
    assert_close(m1.fe_tvalues[slopes].to_numpy(), np.sign(a) * m0.fe_tvalues[slopes].to_numpy(), 1.0, "t")
    assert_p_values_follow(m1.fe_pvalues[slopes].to_numpy(), m0, slopes)


def assert_p_values_follow(p1: np.ndarray, m0, names: list[str]) -> None:
    """p1 equals m0's p values to what t and df being equal to REL implies: p =
    2 T_df(-|t|) moves by |dp/dt| REL |t| + |dp/ddf| REL df. (A small p magnifies t's
    relative error about t^2-fold, so REL on p itself would ask t for REL / t^2, below the
    optimum's own accuracy: 2e-6 relative on a p of 6e-5 at t = 4.5 is within REL on t.)"""
    t = np.abs(m0.fe_tvalues[names].to_numpy())
    df = m0.fe_df[names].to_numpy()
    p0 = m0.fe_pvalues[names].to_numpy()
    dp_dt = 2.0 * stats.t.pdf(t, df)
    step = 1e-4 * df
    dp_ddf = np.abs(2.0 * (stats.t.sf(t, df + step) - stats.t.sf(t, df - step)) / (2.0 * step))
    bound = dp_dt * REL * np.maximum(t, 1.0) + dp_ddf * REL * df + 1e-12 * np.maximum(p0, 1e-12)
    off = np.abs(np.asarray(p1, dtype=np.float64) - p0)
    assert np.all(off <= bound), f"p: {p1} against {p0} (off by {off}, allowed {bound})"


@SETTINGS
@given(crossed_frames(), maps, st.sampled_from(["REML", "ML"]))
def test_response_map_on_crossed_designs(frame, drawn, method):
    a, b = _map(drawn, float(frame["y"].std()))
    m0 = quiet_fit(CROSSED, frame, method=method)
    m1 = quiet_fit(CROSSED, frame.assign(y=a * frame["y"] + b), method=method)
    check_response_map(m0, m1, a, b)
    # predictions for the rows and an unseen level, and draws of the same seed
    new = frame.iloc[:5].assign(g1=["unseen"] * 5)
    assert_close((m1.predict(new) - b) / a, m0.predict(new), float(frame["y"].std()), "predict")
    assert_close((m1.predict(new, include_re=False) - b) / a, m0.predict(new, include_re=False),
                 float(frame["y"].std()), "predict without BLUPs")
    assert_close((m1.simulate(2, seed=3) - b) / a, m0.simulate(2, seed=3), float(frame["y"].std()), "simulate")


@SETTINGS
@given(crossed_frames(slope=True), maps)
def test_response_map_with_random_slopes(frame, drawn):
    a, b = _map(drawn, float(frame["y"].std()))
    m0 = quiet_fit(SLOPES, frame)
    m1 = quiet_fit(SLOPES, frame.assign(y=a * frame["y"] + b))
    check_response_map(m0, m1, a, b)


@SETTINGS
@given(crossed_frames(), maps)
def test_refit_and_bootmer_follow_the_map(frame, drawn):
    a, b = _map(drawn, float(frame["y"].std()))
    m0 = quiet_fit(CROSSED, frame)
    m1 = quiet_fit(CROSSED, frame.assign(y=a * frame["y"] + b))
    y_new = m0.simulate(1, seed=11)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        check_response_map(m0.refit(y_new), m1.refit(a * y_new + b), a, b)
        boot0 = m0.bootMer(B=3, seed=5)
        boot1 = m1.bootMer(B=3, seed=5)
    se = m0.fe_bse.to_numpy()
    assert_close((boot1.replicates.to_numpy() - _shift(m0, b)) / a, boot0.replicates.to_numpy(),
                 np.broadcast_to(se, boot0.replicates.shape), "bootMer")


# ----- a numeric predictor ------------------------------------------------------------------

def predictor_map(result, a: float, b: float, column: str = "x") -> np.ndarray:
    """N with beta1 = N beta0 when column x becomes a x + b (the intercept absorbs b)."""
    names = list(result.fe_params.index)
    N = np.eye(len(names))
    j, i = names.index(column), names.index("Intercept")
    N[j, j] = 1.0 / a
    N[i, j] = -b / a
    return N


def contrast_df(result, contrast: np.ndarray) -> float:
    """Satterthwaite's df of a contrast of the caller's beta."""
    return satterthwaite_df(result._conditioning.direction(contrast), result._working_cov, result._varpar)


def check_predictor_map(m0, m1, a: float, b: float) -> None:
    """m1, fitted with x -> a x + b, against m0."""
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=REL, atol=THETA_ABS, err_msg="theta")
    assert_close(m1.scale, m0.scale, 0.0, "sigma^2")
    N = predictor_map(m0, a, b)
    expected = N @ m0.fe_params.to_numpy()
    cov = N @ m0.fe_cov @ N.T
    se = np.sqrt(np.diag(cov))
    assert_close(m1.fe_params.to_numpy(), expected, se, "beta")
    assert_close(m1.fe_bse.to_numpy(), se, 0.0, "SE")
    assert_close(m1.fe_cov, cov, np.outer(se, se), "vcov")
    for name, blup0 in _frame_values(m0.random_effects).items():
        assert_close(_frame_values(m1.random_effects)[name], blup0, np.sqrt(m0.scale), f"BLUPs {name}")
    y_sd = float(np.std(m0.model.endog))
    assert_close(m1.fittedvalues, m0.fittedvalues, y_sd, "fitted")
    assert_close(m1.resid, m0.resid, float(np.sqrt(m0.scale)), "resid")
    # ML is free of X's basis; REML's criterion has log|X'V^{-1}X|: -log|a|
    jacobian = -np.log(abs(a)) if m0.method == "REML" else 0.0
    assert_close(m1.llf - jacobian, m0.llf, 1.0, "llf")
    # df of the same hypotheses: x's own, and the intercept's (a contrast of the old beta)
    names = list(m0.fe_params.index)
    for k, name in enumerate(names):
        assert_close(m1.fe_df.iloc[k], contrast_df(m0, N[k]), 0.0, f"df {name}")
    j = names.index("x")
    assert_close(m1.fe_tvalues.iloc[j], np.sign(a) * m0.fe_tvalues.iloc[j], 1.0, "t of x")
    assert_close(m1.fe_pvalues.iloc[j], m0.fe_pvalues.iloc[j], 1e-12, "p of x")


@SETTINGS
@given(crossed_frames(), maps, st.sampled_from(["REML", "ML"]))
def test_predictor_map_on_crossed_designs(frame, drawn, method):
    a, b = _map(drawn, float(frame["x"].std()))
    moved = frame.assign(x=a * frame["x"] + b)
    m0 = quiet_fit(CROSSED, frame, method=method)
    m1 = quiet_fit(CROSSED, moved, method=method)
    check_predictor_map(m0, m1, a, b)
    y_sd = float(frame["y"].std())
    assert_close(m1.predict(moved.iloc[:7]), m0.predict(frame.iloc[:7]), y_sd, "predict")
    assert_close(m1.simulate(2, seed=4), m0.simulate(2, seed=4), y_sd, "simulate")


def test_predictor_times_1e100_has_the_df_of_the_predictor():
    frame = _crossed(3)
    m0 = quiet_fit(CROSSED, frame)
    m1 = quiet_fit(CROSSED, frame.assign(x=frame["x"] * 1e100))
    assert np.all(np.isfinite(m1.fe_df.to_numpy()))
    assert_close(m1.fe_df.to_numpy(), m0.fe_df.to_numpy(), 0.0, "df")
    kr0, kr1 = m0.with_df_method("kenward-roger"), m1.with_df_method("kenward-roger")
    assert np.all(np.isfinite(kr1.fe_df.to_numpy()))
    assert_close(kr1.fe_df.to_numpy(), kr0.fe_df.to_numpy(), 0.0, "KR df")
    assert_close(kr1.fe_bse["x"] * 1e100, kr0.fe_bse["x"], 0.0, "KR SE")


# ----- reference datasets -------------------------------------------------------------------

REFERENCE = {
    "sleepstudy__Reaction_Days_Days_Subject__REML.json": "Days",
    "Penicillin__diameter_1_1_plate_1_sample__REML.json": None,
    "Pastes__strength_1_1_batch_cask__REML.json": None,
    "cake__angle_recipe_temp_1_recipe_replicate__REML.json": "temp",
}


def _reference_case(json_name: str) -> dict:
    return next(c for c in index() if c["json"] == json_name)


def _response_name(formula: str) -> str:
    return formula.split("~", 1)[0].strip()


@pytest.mark.parametrize("json_name", list(REFERENCE))
@pytest.mark.parametrize("a", [1e-100, -1e-3, 7.0, -1e100])
def test_response_map_on_reference_models(json_name, a):
    case = _reference_case(json_name)
    data = case_data(case)
    y = _response_name(case["formula"])
    b = 1e8 * abs(a) * float(data[y].std())
    method = "REML" if "REML" in json_name else "ML"
    m0 = quiet_fit(case["formula"], data, method=method)
    m1 = quiet_fit(case["formula"], data.assign(**{y: a * data[y] + b}), method=method)
    check_response_map(m0, m1, a, b)
    kr0, kr1 = m0.with_df_method("kenward-roger"), m1.with_df_method("kenward-roger")
    assert_close(kr1.fe_df.to_numpy(), kr0.fe_df.to_numpy(), 0.0, "KR df")
    assert_close(kr1.fe_bse.to_numpy(), abs(a) * kr0.fe_bse.to_numpy(), 0.0, "KR SE")
    table0, table1 = interlace.anova(m0), interlace.anova(m1)
    if len(table0):
        # F is a squared estimate in SE units: compared as such (its root to REL of 1 SE)
        assert_close(np.sqrt(table1["F value"].to_numpy()), np.sqrt(table0["F value"].to_numpy()), 1.0, "F")
        assert_close(table1["DenDF"].to_numpy(), table0["DenDF"].to_numpy(), 0.0, "DenDF")
        assert_close(table1["Pr(>F)"].to_numpy(), table0["Pr(>F)"].to_numpy(), 1e-6, "Pr(>F)")
        assert_close(np.sqrt(table1["Sum Sq"].to_numpy()) / abs(a), np.sqrt(table0["Sum Sq"].to_numpy()),
                     np.sqrt(m0.scale), "Sum Sq")


PROFILED = ["sleepstudy__Reaction_Days_Days_Subject__REML.json", "Penicillin__diameter_1_1_plate_1_sample__REML.json"]


def _transformed_interval(ci: pd.DataFrame, a: float, shifts: dict[str, float]) -> pd.DataFrame:
    """Profile intervals under y -> a y + b: sds and sigma times |a|, correlations kept,
    each fixed effect through beta -> a beta + shift (ends swapped when a < 0)."""
    out = ci.copy()
    for name in ci.index:
        estimate, lower, upper = ci.loc[name, ["estimate", "lower", "upper"]]
        if name.startswith("cor_"):
            continue
        if name.startswith("sd_") or name == "sigma":
            out.loc[name] = [abs(a) * estimate, abs(a) * lower, abs(a) * upper]
        else:
            shift = shifts.get(name, 0.0)
            out.loc[name] = [a * estimate + shift, *sorted([a * lower + shift, a * upper + shift])]
    return out


@pytest.mark.parametrize("json_name", PROFILED)
@pytest.mark.parametrize("a", [-1e-3, 1e100])
def test_profile_intervals_follow_the_response_map(json_name, a):
    case = _reference_case(json_name)
    data = case_data(case)
    y = _response_name(case["formula"])
    b = 1e8 * abs(a) * float(data[y].std())
    m0 = quiet_fit(case["formula"], data)
    m1 = quiet_fit(case["formula"], data.assign(**{y: a * data[y] + b}))
    ci0, ci1 = m0.confint(), m1.confint()
    expected = _transformed_interval(ci0, a, {"Intercept": b})
    width = (ci0["upper"] - ci0["lower"]).to_numpy()
    for bound in ("estimate", "lower", "upper"):
        shift = np.array([b if name == "Intercept" else 0.0 for name in ci0.index])
        unit = np.where([n.startswith("cor_") for n in ci0.index], 1.0, abs(a) * width)
        assert_close(ci1[bound].to_numpy() - shift, expected[bound].to_numpy() - shift, unit, f"profile {bound}")


def test_profile_interval_of_a_scaled_predictor():
    data = interlace.load_dataset("sleepstudy")
    a, b = -1e-3, 1e8 * 1e-3 * float(data["Days"].std())
    m0 = quiet_fit("Reaction ~ Days + (1 | Subject)", data)
    m1 = quiet_fit("Reaction ~ Days + (1 | Subject)", data.assign(Days=a * data["Days"] + b))
    ci0, ci1 = m0.confint(), m1.confint()
    width = abs((ci0.loc["Days", "upper"] - ci0.loc["Days", "lower"]) / a)
    ends = ["lower", "upper"]
    assert_close(ci1.loc["Days", ends].to_numpy(), np.sort(ci0.loc["Days", ends].to_numpy() / a), width, "Days")
    assert_close(ci1.loc["Days", "estimate"], ci0.loc["Days", "estimate"] / a, width, "Days estimate")
    for name in ("sd_(Intercept)|Subject", "sigma"):
        assert_close(ci1.loc[name].to_numpy(), ci0.loc[name].to_numpy(), 1.0, name)


def test_likelihood_ratio_statistics_are_unchanged():
    sleep = interlace.load_dataset("sleepstudy")
    a, b = -7.0, 1e8 * 7.0 * float(sleep["Reaction"].std())
    moved = sleep.assign(Reaction=a * sleep["Reaction"] + b)
    tables = []
    for data in (sleep, moved):
        small = quiet_fit("Reaction ~ Days + (1 | Subject)", data)
        large = quiet_fit("Reaction ~ Days + (Days | Subject)", data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", interlace.RefitWarning)
            tables.append(interlace.anova(small, large))
    before, after = tables
    assert_close(after["Chisq"].to_numpy()[1:], before["Chisq"].to_numpy()[1:], 0.0, "Chisq")
    assert_close(after["Pr(>Chisq)"].to_numpy()[1:], before["Pr(>Chisq)"].to_numpy()[1:], 1e-12, "p")
    assert_close(after["logLik"].to_numpy() + sleep.shape[0] * np.log(abs(a)), before["logLik"].to_numpy(),
                 1.0, "ML logLik")


# ----- the cases of issue 13 ----------------------------------------------------------------

def _crossed(seed: int, n1: int = 8, n2: int = 6, reps: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g1 = np.repeat(np.arange(n1), n2 * reps)
    g2 = np.tile(np.repeat(np.arange(n2), reps), n1)
    x = rng.standard_normal(g1.size)
    y = 1.0 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.7 * rng.standard_normal(n2)[g2] + rng.standard_normal(g1.size)
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})


def test_response_plus_1e8():
    # issue 13: theta stayed at its start and llf was -inf
    sleep = interlace.load_dataset("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    m0 = quiet_fit(formula, sleep)
    m1 = quiet_fit(formula, sleep.assign(Reaction=sleep["Reaction"] + 1e8))
    check_response_map(m0, m1, 1.0, 1e8)
    assert np.isfinite(m1.llf)


def test_response_plus_1e6_on_3000_crossed_rows():
    # issue 13: llf -3413.8 against -3452.7 unshifted
    frame = _crossed(7, n1=60, n2=25, reps=2)
    assert len(frame) == 3000
    m0 = quiet_fit(CROSSED, frame)
    m1 = quiet_fit(CROSSED, frame.assign(y=frame["y"] + 1e6))
    check_response_map(m0, m1, 1.0, 1e6)


def test_int64_response_near_2_to_the_62():
    # issue 13: the scale was 3.9e44. A float64 carries 53 bits: near 2**62 its spacing is
    # 2**10 = 1024, so an int64 response there is read to within 512, the precision the
    # data carry as float64 (what any float computation sees; a response that varies by
    # a few thousand there is constant to rounding, and the fit says so). Here every value
    # is a multiple of 1024, exact as float64, varying by ~1e10: the fit must be that of
    # the small integers, shifted by 2**62 and times 1024, to REL (the intercept and the
    # fitted values are held to within 512 of 2**62 by float64 itself: 1e-7 of them).
    frame = _crossed(5)
    small = np.round(frame["y"].to_numpy() * 1e7).astype(np.int64)
    big = np.int64(2**62) + small * np.int64(1024)
    assert np.array_equal(big.astype(np.float64) - 2.0**62, small * 1024.0)  # exact as float64
    m0 = quiet_fit(CROSSED, frame.assign(y=small))
    m1 = quiet_fit(CROSSED, frame.assign(y=big))
    check_response_map(m0, m1, 1024.0, 2.0**62)
    assert m1.scale < 1e22  # sigma^2 of 1024 * a response of SD ~ 2e7


# ----- diagnostics --------------------------------------------------------------------------

def _columns(frame: pd.DataFrame, names) -> dict[str, np.ndarray]:
    return {name: frame[name].to_numpy(dtype=np.float64) for name in names}


FREE = ("cooksd", "mdffits", "covtrace", "covratio", "leverage.overall")
"""Influence and leverage: free of the units of y and of X's basis."""


def check_diagnostics(m0, m1, a: float, b: float, y_map: bool) -> None:
    """HLMdiag's residuals, influence and leverage of m1 (y -> a y + b when ``y_map``,
    else x -> a x + b) against m0: what has the units of y follows them, the rest stays."""
    ay, by = (a, b) if y_map else (1.0, 0.0)
    sigma0, sd0 = float(np.sqrt(m0.scale)), float(np.std(m0.model.endog))
    raw0, raw1 = interlace.hlm_resid(m0), interlace.hlm_resid(m1)
    for name, unit, shifted in ((".resid", sigma0, False), (".fitted", sd0, True), (".ls.resid", sigma0, False),
                                (".ls.fitted", sd0, True), (".mar.resid", sd0, False), (".mar.fitted", sd0, True)):
        shift = by if shifted else 0.0
        assert_close((raw1[name].to_numpy() - shift) / ay, raw0[name].to_numpy(), unit, name)
    std0, std1 = interlace.hlm_resid(m0, standardize=True), interlace.hlm_resid(m1, standardize=True)
    for name in (".std.resid", ".std.ls.resid", ".chol.mar.resid"):
        assert_close(std1[name].to_numpy(), np.sign(ay) * std0[name].to_numpy(), 1.0, name)
    for level in (1, "Subject"):
        infl0, infl1 = interlace.hlm_influence(m0, level=level), interlace.hlm_influence(m1, level=level)
        for name in FREE:  # in units of the column's largest value (a residual near 0 has a Cook's d near 0)
            values = infl0[name].to_numpy()
            assert_close(infl1[name].to_numpy(), values, np.max(np.abs(values)), f"{name} at {level}")
        lev0, lev1 = interlace.hlm_leverage(m0, level=level), interlace.hlm_leverage(m1, level=level)
        for name in ("overall", "fixef", "ranef", "ranef.uc"):
            assert_close(lev1[name].to_numpy(), lev0[name].to_numpy(), 1e-12, f"leverage {name} at {level}")
    exact0 = interlace.hlm_influence(m0, level="Subject", approx=False, delete=["308"])
    exact1 = interlace.hlm_influence(m1, level="Subject", approx=False, delete=["308"])
    for name in exact0.columns:
        assert_close(exact1[name].to_numpy(), exact0[name].to_numpy(), 1e-6, f"exact {name}")
    if y_map:
        group0, group1 = interlace.hlm_resid(m0, level="Subject"), interlace.hlm_resid(m1, level="Subject")
        for name in (".ranef.intercept", ".ls.intercept"):
            assert_close(group1[name].to_numpy() / a, group0[name].to_numpy(), sigma0, name)


@pytest.mark.parametrize("a", [-7.0, 1e-100])
def test_diagnostics_follow_a_response_map(a):
    sleep = interlace.load_dataset("sleepstudy")
    b = 1e8 * abs(a) * float(sleep["Reaction"].std())
    m0 = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep)
    m1 = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=a * sleep["Reaction"] + b))
    check_diagnostics(m0, m1, a, b, y_map=True)


@pytest.mark.parametrize("a", [-1e-3, 1e100])
def test_diagnostics_follow_a_predictor_map(a):
    sleep = interlace.load_dataset("sleepstudy")
    b = 1e8 * abs(a) * float(sleep["Days"].std())
    m0 = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep)
    m1 = quiet_fit("Reaction ~ Days + (1 | Subject)", sleep.assign(Days=a * sleep["Days"] + b))
    check_diagnostics(m0, m1, a, b, y_map=False)
