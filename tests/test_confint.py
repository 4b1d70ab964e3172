"""Profile and Wald intervals against lme4's ``confint``."""

from __future__ import annotations

import numpy as np
import pytest

import interlace

from .reference import case_id, index, load, r_fixef_name

PROFILE_REL = 1e-3
PROFILE_ABS_NEAR_ZERO = 1e-4
WALD_ABS = 1e-6

PROFILE_CASES = [c for c in index() if "names" in load(c["json"]).get("confint_profile", {})]


def _close(mine: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(mine - ref) <= np.maximum(PROFILE_REL * np.abs(ref), PROFILE_ABS_NEAR_ZERO)


@pytest.mark.parametrize("case", PROFILE_CASES, ids=case_id)
def test_profile_intervals_match_lme4(case, fits):
    ref = load(case["json"])["confint_profile"]
    ci = fits.get(case["json"]).confint("profile")
    ci.index = [r_fixef_name(n) for n in ci.index]
    assert list(ci.index) == ref["names"]
    lower = np.array([np.nan if v is None else v for v in ref["lower"]], dtype=float)
    upper = np.array([np.nan if v is None else v for v in ref["upper"]], dtype=float)
    assert np.all(_close(ci["lower"].to_numpy(), lower)), ci.assign(ref_lower=lower)
    assert np.all(_close(ci["upper"].to_numpy(), upper)), ci.assign(ref_upper=upper)


@pytest.mark.parametrize("case", [c for c in index() if "names" in load(c["json"]).get("confint_wald", {})], ids=case_id)
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


def test_profile_interval_contains_estimate_and_widens_with_level(fits):
    m = fits.get("sleepstudy__Reaction_Days_Days_Subject__ML.json")
    narrow, wide = m.confint(level=0.8), m.confint(level=0.99)
    estimates = np.concatenate([[24.7, 0.07, 5.9, np.sqrt(m.scale)], m.fe_params.to_numpy()])
    assert np.all(narrow["lower"].to_numpy() < estimates) and np.all(estimates < narrow["upper"].to_numpy())
    assert np.all(wide["lower"] < narrow["lower"]) and np.all(wide["upper"] > narrow["upper"])


def test_confint_arguments_are_checked(fits):
    m = fits.get("Dyestuff__Yield_1_1_Batch__REML.json")
    with pytest.raises(interlace.InterlaceError, match=r"method: expected 'profile' or 'wald', found 'boot'"):
        m.confint("boot")
    with pytest.raises(ValueError, match=r"level: expected a number between 0 and 1, found 95"):
        m.confint(level=95)
