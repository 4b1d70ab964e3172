"""Kenward-Roger against pbkrtest 0.5.2 (through lmerTest 3.1-3's summary)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.inference.kenward_roger import kenward_roger

from .reference import case_data, case_id, index, load, prior_arguments, r_fixef_name

KR_REL = 1e-3  # issue 3: KR df and p-values at interlace's own optimum
EXACT_REL = 1e-8  # the same computation at lme4's theta and sigma
ROUNDING = 1e-12  # relative to a matrix's largest entry: entries at this level are zeros

KR_CASES = [c for c in index() if "skipped" not in load(c["json"])["kenward_roger"] and not c.get("weights")]
"""pbkrtest ignores lmer's prior weights (its Sigma's residual part is sigma^2 I:
tests/data/make_kr_weights_evidence.R shows KR df 17 becoming 26.6 when every weight is
2): the weighted cases are checked against pbkrtest on the equivalent unweighted model
of the rows scaled by sqrt(w) instead (:func:`test_kenward_roger_with_prior_weights`)."""

WEIGHTED_KR = json.loads((Path(__file__).parent / "data" / "kr_weighted.json").read_text())


def _kr_fit(case) -> interlace.CrossedLMEResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        warnings.simplefilter("ignore", interlace.MissingValuesWarning)
        return interlace.fit(case["formula"], case_data(case),
                             df_method="kenward-roger", **prior_arguments(case))


@pytest.mark.parametrize("case", KR_CASES, ids=case_id)
def test_kenward_roger_at_own_optimum(case):
    ref = load(case["json"])["kenward_roger"]
    m = _kr_fit(case)
    names = ref["names"]
    df = m.fe_df.rename(index=r_fixef_name)[names].to_numpy()
    p = m.fe_pvalues.rename(index=r_fixef_name)[names].to_numpy()
    np.testing.assert_allclose(df, ref["df"], rtol=KR_REL)
    np.testing.assert_allclose(p, ref["p"], rtol=KR_REL, atol=1e-12)  # p below 1e-12: see test_anova
    np.testing.assert_allclose(m.fe_bse.rename(index=r_fixef_name)[names].to_numpy(), ref["se"], rtol=KR_REL)


@pytest.mark.parametrize("json_name", sorted(WEIGHTED_KR))
def test_kenward_roger_with_prior_weights(json_name):
    """KR of a weighted fit is pbkrtest's on the same model with its rows scaled by sqrt(w)."""
    case = next(c for c in index() if c["json"] == json_name)
    expected = WEIGHTED_KR[json_name]
    m = _kr_fit(case)
    np.testing.assert_allclose(m.theta, expected["theta"], atol=2e-5)
    np.testing.assert_allclose(m.fe_df.to_numpy(), expected["df"], rtol=KR_REL)
    np.testing.assert_allclose(m.fe_bse.to_numpy(), expected["se"], rtol=KR_REL)


def test_kenward_roger_constant_weights_are_no_weights():
    """Every weight c: the unweighted model (sigma^2 times 1 / c), the same KR df and SE
    (pbkrtest's differ: tests/data/make_kr_weights_evidence.R)."""
    sleep = interlace.load_dataset("sleepstudy")
    plain = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, df_method="kenward-roger")
    weighted = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, df_method="kenward-roger",
                             weights=np.full(len(sleep), 2.0))
    np.testing.assert_allclose(weighted.fe_df.to_numpy(), plain.fe_df.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(weighted.fe_bse.to_numpy(), plain.fe_bse.to_numpy(), rtol=1e-6)
    assert weighted.scale == pytest.approx(2.0 * plain.scale, rel=1e-6)


@pytest.mark.parametrize("case", KR_CASES, ids=case_id)
def test_kenward_roger_at_lme4_theta_is_pbkrtest(case, fits):
    full = load(case["json"])
    ref = full["kenward_roger"]
    m = fits.get(case["json"])
    theta = np.array(list(full["theta"].values()), dtype=float)
    kr = kenward_roger(m._system.design, theta, full["sigma"] ** 2, m._conditioning)
    if "values" in ref["vcov_adjusted"]:  # stored for n <= 1000 only
        expected = np.array(ref["vcov_adjusted"]["values"])
        # covariances that are zero in exact arithmetic are rounding noise on both sides
        np.testing.assert_allclose(kr.vcov_adjusted, expected, rtol=EXACT_REL,
                                   atol=ROUNDING * np.max(np.abs(expected)))
    se = np.sqrt(np.diag(kr.vcov_adjusted))
    order_se = [list(m.fe_params.rename(index=r_fixef_name).index).index(n) for n in ref["names"]]
    np.testing.assert_allclose(se[order_se], ref["se"], rtol=EXACT_REL)
    eye = np.eye(len(m.fe_params))
    df = np.array([kr.ddf(eye[j]) for j in range(len(eye))])
    order = [list(m.fe_params.rename(index=r_fixef_name).index).index(n) for n in ref["names"]]
    np.testing.assert_allclose(df[order], ref["df"], rtol=EXACT_REL)


def test_kenward_roger_needs_reml():
    sleep = interlace.load_dataset("sleepstudy")
    ml = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, method="ML")
    with pytest.raises(interlace.InterlaceError, match=r"Kenward-Roger is defined for REML fits"):
        ml.with_df_method("kenward-roger")


def test_switching_df_method_without_refitting():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    kr = m.with_df_method("kenward-roger")
    assert kr.df_method == "kenward-roger" and m.df_method == "satterthwaite"
    np.testing.assert_array_equal(kr.theta, m.theta)
    back = kr.with_df_method("satterthwaite")
    pd.testing.assert_series_equal(back.fe_df, m.fe_df)
    assert "Kenward-Roger" in str(kr.summary()).splitlines()[0]
    ci = kr.fe_confidence_interval(0.9)
    assert np.all(ci["lower"] < kr.fe_params) and np.all(kr.fe_params < ci["upper"])


def test_type3_with_kenward_roger_single_df_is_the_t_test():
    cake = interlace.load_dataset("cake")
    m = interlace.fit("angle ~ recipe + temp + (1 | recipe:replicate)", cake, df_method="kenward-roger")
    table = interlace.anova(m)
    assert table.loc["temp", "DenDF"] == pytest.approx(m.fe_df["temp"], rel=1e-10)
    assert "Kenward-Roger" in table.attrs["title"]


def test_too_many_random_effects_is_a_clear_error(monkeypatch):
    from interlace.inference import kenward_roger as kr_module

    m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    monkeypatch.setattr(kr_module, "MAX_RANDOM_EFFECTS", 10)  # sleepstudy has 36
    with pytest.raises(interlace.InterlaceError, match="df_method: Kenward-Roger .* found 36"):
        m.with_df_method("kenward-roger")
