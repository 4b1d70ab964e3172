"""varcorr(), tidy() and glance() against lme4 1.1-31 (tests/data/varcorr/, written by
tests/data/make_varcorr_reference.R): as.data.frame(VarCorr(m)), its printed layout,
REMLcrit, deviance, sigma and df.residual; and broom.mixed's columns."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace

CASES = sorted(Path(__file__).parent.joinpath("data", "varcorr").glob("*.json"))
SDCOR_REL = 2e-4  # the fits' estimates agree with lme4's to the reference tolerances (theta to 2e-4)


def _fit(case):
    data = interlace.load_dataset(case["dataset"])
    options = {"family": case["family"]} if case["family"] else {"method": "REML" if case["REML"] else "ML"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.fit(case["formula"], data, **options)


@pytest.fixture(scope="module", params=CASES, ids=[c.stem for c in CASES])
def pair(request):
    case = json.loads(request.param.read_text())
    return _fit(case), case


def test_varcorr_table_is_lme4s(pair):
    m, case = pair
    table, ref = m.varcorr().table, case["varcorr"]
    assert table["grp"].tolist() == ref["grp"]
    for column in ("var1", "var2"):
        assert [None if pd.isna(v) else v for v in table[column]] == ref[column]
    np.testing.assert_allclose(table["sdcor"], ref["sdcor"], rtol=SDCOR_REL, atol=1e-4)
    np.testing.assert_allclose(table["vcov"], ref["vcov"], rtol=2 * SDCOR_REL, atol=1e-4)


def test_varcorr_prints_lme4s_layout(pair):
    m, case = pair
    printed = [line.split() for line in str(m.varcorr()).splitlines()]
    expected = [line.split() for line in case["printed"]]
    assert len(printed) == len(expected)
    for got, want in zip(printed, expected, strict=True):
        assert len(got) == len(want), (got, want)
        for g, w in zip(got, want, strict=True):
            try:  # numbers: lme4's digits, equal to the last one shown (the estimates' tolerance)
                assert abs(float(g) - float(w)) <= max(SDCOR_REL * abs(float(w)), 10.0 ** -_decimals(w)), (g, w)
                assert _decimals(g) == _decimals(w), (g, w)
            except ValueError:
                assert g == w


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def test_glance_is_lme4s(pair):
    m, case = pair
    row = m.glance().iloc[0]
    reml = case["REML"] and not case["family"]
    assert m.glance().columns.tolist() == ["nobs", "sigma", "logLik", "AIC", "BIC",
                                           "REMLcrit" if reml else "deviance", "df.residual"]
    assert row["nobs"] == case["nobs"] and row["df.residual"] == case["df_residual"]
    assert row["sigma"] == pytest.approx(case["sigma"], rel=1e-4)
    for name in ("logLik", "AIC", "BIC"):
        assert row[name] == pytest.approx(case[name], abs=2e-3)
    if reml:
        assert row["REMLcrit"] == pytest.approx(case["REMLcrit"], abs=2e-3)
    else:
        assert row["deviance"] == pytest.approx(case["deviance"], rel=1e-4)


def test_tidy_has_broom_mixeds_rows(pair):
    m, case = pair
    t = m.tidy(conf_int=True)
    linear = not case["family"]
    columns = ["effect", "group", "term", "estimate", "std.error", "statistic"] + (["df"] if linear else [])
    assert t.columns.tolist() == columns + ["p.value", "conf.low", "conf.high"]
    fixed = t[t["effect"] == "fixed"]
    np.testing.assert_allclose(fixed["estimate"], m.fe_params, rtol=0)
    np.testing.assert_allclose(fixed["statistic"], m.fe_params / m.fe_bse, rtol=1e-12)
    np.testing.assert_allclose(fixed["p.value"], m.fe_pvalues, rtol=0)
    np.testing.assert_allclose(fixed[["conf.low", "conf.high"]], m.fe_conf_int, rtol=0)
    ran = t[t["effect"] == "ran_pars"]
    ref = case["varcorr"]
    expected = {}
    for grp, v1, v2, sdcor in zip(ref["grp"], ref["var1"], ref["var2"], ref["sdcor"], strict=True):
        term = "sd__Observation" if grp == "Residual" else f"sd__{v1}" if v2 is None else f"cor__{v1}.{v2}"
        expected[(grp, term)] = sdcor
    assert set(zip(ran["group"], ran["term"], strict=True)) == set(expected)
    for (grp, term), value in zip(zip(ran["group"], ran["term"], strict=True), ran["estimate"], strict=True):
        assert value == pytest.approx(expected[(grp, term)], rel=SDCOR_REL, abs=1e-4)


def test_tidy_orders_each_groups_sd_before_its_correlations():
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    assert m.tidy("ran_pars")["term"].tolist() == ["sd__(Intercept)", "cor__(Intercept).Days", "sd__Days",
                                                   "sd__Observation"]
    assert m.tidy("fixed")["effect"].unique().tolist() == ["fixed"]
    with pytest.raises(interlace.InterlaceError, match=r"effects: expected 'fixed', 'ran_pars' or both, found"):
        m.tidy("random")
    with pytest.raises(interlace.InterlaceError, match=r"comp: expected 'Variance', 'Std.Dev.' or both"):
        m.varcorr(comp="SD")
    both = str(m.varcorr(comp=("Variance", "Std.Dev."))).splitlines()
    assert both[0].split()[:4] == ["Groups", "Name", "Variance", "Std.Dev."]
    # R: format(c(612.100158, 35.0717144, 654.940008), digits = 5) is "612.100" " 35.072" "654.940"
    shown = [both[1].split()[2], both[2].split()[1], both[3].split()[1]]  # Subject, Days, Residual
    assert [s.split(".")[1].__len__() for s in shown] == [3, 3, 3]
    np.testing.assert_allclose([float(s) for s in shown], [*np.diag(m.variance_components["Subject"]), m.scale],
                               rtol=1e-5)
