"""Estimated marginal means and contrasts against R's emmeans 1.8.4 (``tests/data/emmeans``,
written by ``tests/data/emmeans_reference.R``), and properties that hold whatever R says.

Every number of every reference table must agree within ``RTOL`` relative; p values also
within ``P_ATOL`` absolute (an absolute floor for p values near 0 only, where R's ``ptukey``
and ``pt`` carry no more absolute accuracy). Labels must agree exactly.

The cbpp reference holds emmeans on glmer's *default* fit, whose PIRLS tolerance leaves its
covariance an iteration stale (SEs about 1% off, ``tests/data/README.md``; interlace agrees with
glmer run to convergence). So the cbpp tables are checked on glmer's own estimates and covariance
(``tests/data/glmm/reference``, the same default fit), substituted into interlace's fit, and
interlace's own fit is checked against glmer's converged fit separately.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace

DATA = Path(__file__).parent / "data"
REFERENCES = sorted(p.name for p in (DATA / "emmeans").glob("*.json"))
TABLES = ("emmeans", "emmeans_response", "pairs_tukey", "pairs_holm", "pairs_none")
GLMER = DATA / "glmm" / "reference" / "cbpp__cbind_incidence_size_incidence_period_1_herd__binomial_logit__nAGQ1.json"
GLMER_CONVERGED = GLMER.parent / "converged" / GLMER.name

RTOL = 1e-4
"""Every number of every reference table, relative."""

P_ATOL = 1e-8
"""p values only: an absolute floor near 0."""

CONVERGED_RTOL = 1e-4
"""cbpp's EMMs of interlace's own fit against those of glmer's converged fit."""

CAKE = "angle ~ recipe * temperature + (1 | recipe:replicate)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _reference(name: str) -> dict:
    return json.loads((DATA / "emmeans" / name).read_text())


def _glmer_values(path: Path) -> tuple[pd.Series, np.ndarray]:
    ref = json.loads(path.read_text())
    return pd.Series(ref["fixef"]), np.array(ref["vcov"]["values"])


@cache
def _fit(name: str):
    ref = _reference(name)
    data = interlace.load_dataset(ref["dataset"].removesuffix(".csv"))
    family = ref["family"] if isinstance(ref["family"], str) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        m = (interlace.fit(ref["formula"], data, family=family) if family else
             interlace.fit(ref["formula"], data, method="REML" if ref["REML"] else "ML"))
    if family is None:
        return m
    beta, vcov = _glmer_values(GLMER)  # see the module docstring
    assert list(beta.index) == ["(Intercept)", "period2", "period3", "period4"]
    return dataclasses.replace(m, fe_params=pd.Series(beta.to_numpy(), index=m.fe_params.index),
                               fe_cov=vcov, fe_bse=pd.Series(np.sqrt(np.diag(vcov)), index=m.fe_params.index))


@cache
def _ours(name: str) -> dict[str, pd.DataFrame]:
    ref = _reference(name)
    m = _fit(name)
    family = isinstance(ref["family"], str)
    kwargs = {"at": ref["at"] or None}
    if not family:
        kwargs["df_method"] = ref["df_method"]
    emm = interlace.emmeans(m, ref["specs"], **kwargs)
    out = {"emmeans": emm.table, "pairs_tukey": emm.pairs(adjust="tukey").table,
           "pairs_holm": emm.pairs(adjust="holm").table, "pairs_none": emm.pairs(adjust="none").table}
    if family:
        out["emmeans_response"] = interlace.emmeans(m, ref["specs"], type="response", **kwargs).table
    return out


def _numbers(column: pd.Series) -> np.ndarray:
    return np.array([np.inf if v == "Inf" else np.nan if v is None else float(v) for v in column])


def _is_label(values: list) -> bool:
    return any(isinstance(v, str) and v != "Inf" for v in values)


CASES = [(name, table) for name in REFERENCES for table in TABLES if table in _reference(name)]


def test_every_reference_is_read():
    assert len(REFERENCES) == 5
    assert len(CASES) == 21


@pytest.mark.parametrize(("name", "table"), CASES, ids=[f"{n.removesuffix('.json')}-{t}" for n, t in CASES])
def test_reference_table(name, table):
    expected = _reference(name)[table]
    found = _ours(name)[table]
    assert list(found.columns) == list(expected), f"{table}: columns"
    for column, values in expected.items():
        if _is_label(values):
            assert found[column].astype(str).tolist() == values, f"{table}.{column}"
            continue
        want = _numbers(values)
        got = found[column].to_numpy(dtype=np.float64)
        atol = P_ATOL if column == "p.value" else 0.0
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=atol, err_msg=f"{name} {table}.{column}")


def test_cbpp_fit_agrees_with_glmer_at_convergence():
    """interlace's own cbpp fit: EMMs (both scales) of glmer's converged estimates."""
    data = interlace.load_dataset("cbpp")
    g = interlace.fit(CBPP, data, family="binomial")
    beta, vcov = _glmer_values(GLMER_CONVERGED)
    L = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], dtype=float)
    est, se = L @ beta.to_numpy(), np.sqrt(np.diag(L @ vcov @ L.T))
    table = interlace.emmeans(g, "period").table
    np.testing.assert_allclose(table["emmean"], est, rtol=CONVERGED_RTOL)
    np.testing.assert_allclose(table["SE"], se, rtol=CONVERGED_RTOL)
    prob = interlace.emmeans(g, "period", type="response").table
    mu = 1.0 / (1.0 + np.exp(-est))
    np.testing.assert_allclose(prob["prob"], mu, rtol=CONVERGED_RTOL)
    np.testing.assert_allclose(prob["SE"], mu * (1 - mu) * se, rtol=CONVERGED_RTOL)


# ----- properties --------------------------------------------------------------------------

@cache
def _cake(formula: str = CAKE):
    return interlace.fit(formula, interlace.load_dataset("cake"))


def test_one_factor_means_are_the_fixed_part_cell_means():
    cake = interlace.load_dataset("cake")
    m = _cake("angle ~ recipe + (1 | recipe:replicate)")
    cells = pd.Series(m.predict(cake, include_re=False)).groupby(cake["recipe"].to_numpy()).mean()
    table = interlace.emmeans(m, "recipe").table
    np.testing.assert_allclose(table["emmean"], cells.loc[["A", "B", "C"]], rtol=1e-12)
    cbpp = interlace.load_dataset("cbpp")
    g = interlace.fit(CBPP, cbpp, family="binomial")
    eta = pd.Series(g.predict(cbpp, type="link", include_re=False)).groupby(cbpp["period"].to_numpy()).mean()
    np.testing.assert_allclose(interlace.emmeans(g, "period").table["emmean"], eta.loc[["1", "2", "3", "4"]],
                               rtol=1e-12)


def test_marginal_means_average_the_cells_with_equal_weights():
    m = _cake()
    cells = interlace.emmeans(m, ["recipe", "temperature"]).table
    margins = interlace.emmeans(m, "recipe").table
    averaged = cells.groupby("recipe", observed=True)["emmean"].mean()
    np.testing.assert_allclose(margins["emmean"], averaged.to_numpy(), rtol=1e-12)
    assert "Results are averaged over the levels of: temperature" in interlace.emmeans(m, "recipe").notes


def test_pairwise_estimates_are_differences_of_the_means():
    m = _cake()
    emm = interlace.emmeans(m, "temperature", by="recipe")
    pairs = emm.pairs(adjust="none").table
    t = emm.table
    k = 0
    for recipe in ["A", "B", "C"]:
        rows = t[t["recipe"] == recipe].reset_index(drop=True)
        L = emm.linfct.to_numpy()[t.index[t["recipe"] == recipe]]
        for i in range(6):
            for j in range(i + 1, 6):
                row = pairs.iloc[k]
                assert row["contrast"] == f"temperature{rows['temperature'][i]} - temperature{rows['temperature'][j]}"
                assert row["recipe"] == recipe
                assert row["estimate"] == pytest.approx(rows["emmean"][i] - rows["emmean"][j], rel=1e-12)
                d = L[i] - L[j]
                assert row["SE"] == pytest.approx(np.sqrt(d @ m.fe_cov @ d), rel=1e-12)
                k += 1
    assert k == len(pairs) == 45


def test_adjusted_p_values_are_ordered():
    emm = interlace.emmeans(_cake(), "temperature", by="recipe")
    none, holm = emm.pairs(adjust="none").table, emm.pairs(adjust="holm").table
    bonferroni, tukey = emm.pairs(adjust="bonferroni").table, emm.pairs(adjust="tukey").table
    for recipe in ["A", "B", "C"]:
        rows = (none["recipe"] == recipe).to_numpy()
        p, h = none["p.value"].to_numpy()[rows], holm["p.value"].to_numpy()[rows]
        order = np.argsort(p)
        assert np.all(np.diff(h[order]) >= 0)  # monotone in the unadjusted order
        assert np.all(h >= p) and np.all(h <= 1.0)
        assert np.all(bonferroni["p.value"].to_numpy()[rows] >= h - 1e-15)
        assert np.all(tukey["p.value"].to_numpy()[rows] >= p)
        assert h[order][0] == pytest.approx(min(1.0, 15 * p[order][0]), rel=1e-12)
    assert np.any(holm["p.value"] < bonferroni["p.value"])


def test_formula_specs_equal_names_and_by():
    m = _cake()
    a = interlace.emmeans(m, "~ temperature | recipe").table
    b = interlace.emmeans(m, "temperature", by="recipe").table
    pd.testing.assert_frame_equal(a, b)
    assert interlace.emmeans(m, "~ recipe * temperature").table.shape == (18, 7)


def test_covariates_enter_at_their_mean_or_their_two_values():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    table = interlace.emmeans(m, "Days").table
    b = m.fe_params.to_numpy()
    assert table["Days"].tolist() == [4.5]
    assert table["emmean"].iloc[0] == pytest.approx(b[0] + 4.5 * b[1], rel=1e-12)
    cake = interlace.load_dataset("cake").assign(hot=lambda d: (d["temp"] >= 215).astype(int))
    h = interlace.fit("angle ~ recipe + hot + (1 | recipe:replicate)", cake)
    assert interlace.emmeans(h, "hot").table["hot"].tolist() == [0.0, 1.0]  # emmeans' cov.keep = "2"
    beta = h.fe_params
    expected = beta["Intercept"] + 0.5 * beta["hot"]  # both values, equal weights (the mean is 1/3)
    assert interlace.emmeans(h, "recipe").table["emmean"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_response_scale_and_odds_ratios_follow_the_link():
    g = interlace.fit(CBPP, interlace.load_dataset("cbpp"), family="binomial")
    link = interlace.emmeans(g, "period")
    response = interlace.emmeans(g, "period", type="response")
    mu = 1.0 / (1.0 + np.exp(-link.table["emmean"]))
    np.testing.assert_allclose(response.table["prob"], mu, rtol=1e-12)
    np.testing.assert_allclose(response.table["asymp.LCL"], 1.0 / (1.0 + np.exp(-link.table["asymp.LCL"])),
                               rtol=1e-12)
    ratios, differences = response.pairs().table, link.pairs().table
    assert ratios["contrast"].iloc[0] == "period1 / period2"
    np.testing.assert_allclose(ratios["odds.ratio"], np.exp(differences["estimate"]), rtol=1e-12)
    np.testing.assert_allclose(ratios["z.ratio"], differences["z.ratio"], rtol=1e-12)
    np.testing.assert_allclose(ratios["p.value"], differences["p.value"], rtol=1e-12)
    assert (ratios["null"] == 1.0).all()


def test_kenward_roger_uses_the_adjusted_covariance():
    m = _cake("angle ~ recipe + temperature + (1 | recipe:replicate)")
    emm = interlace.emmeans(m, "recipe", df_method="kenward-roger")
    L = emm.linfct.to_numpy()
    adjusted = m.kenward_roger.vcov_adjusted
    np.testing.assert_allclose(emm.table["SE"], np.sqrt(np.einsum("ij,jk,ik->i", L, adjusted, L)), rtol=1e-12)
    np.testing.assert_allclose(emm.table["df"], [m.kenward_roger.ddf(row) for row in L], rtol=1e-12)


def test_a_cell_the_fit_cannot_estimate_is_nan():
    cake = interlace.load_dataset("cake")
    short = cake[~((cake["recipe"] == "C") & (cake["temperature"] == "225"))].reset_index(drop=True)
    with pytest.warns(interlace.RankDeficiencyWarning):
        m = interlace.fit(CAKE, short)
    cells = interlace.emmeans(m, ["recipe", "temperature"]).table
    missing = (cells["recipe"] == "C") & (cells["temperature"] == "225")
    assert cells.loc[missing, "emmean"].isna().all()
    assert cells.loc[~missing, ["emmean", "SE", "df"]].notna().all().all()
    margins = interlace.emmeans(m, "recipe").table
    assert margins["emmean"].isna().tolist() == [False, False, True]


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"specs": "flavour"}, ["specs", "'flavour'", "is not a variable of the fixed part"]),
    ({"specs": "recipe", "by": "colour"}, ["by", "'colour'"]),
    ({"specs": "recipe ~ temperature"}, ["specs: expected a one-sided formula"]),
    ({"specs": "recipe", "at": {"temperature": ["999"]}}, ["at: 'temperature' takes its levels in the fit", "999"]),
    ({"specs": "recipe", "at": [1, 2]}, ["at: expected a dict of variable name to values, found list"]),
    ({"specs": "recipe", "level": 1.5}, ["level: expected a number between 0 and 1, found 1.5"]),
    ({"specs": "recipe", "type": "odds"}, ["type", "odds"]),
])
def test_bad_input_names_the_argument(kwargs, words):
    with pytest.raises(interlace.InterlaceError) as info:
        interlace.emmeans(_cake(), **kwargs)
    for word in words:
        assert word in str(info.value)


def test_bad_contrast_arguments():
    emm = interlace.emmeans(_cake(), "recipe")
    with pytest.raises(interlace.InterlaceError, match="adjust: expected one of .* found 'scheffe'"):
        emm.pairs(adjust="scheffe")
    with pytest.raises(interlace.InterlaceError, match="method: contrast 'x' needs 3 coefficients"):
        emm.contrast({"x": [1, -1]})
    with pytest.raises(interlace.InterlaceError, match="result: expected a fit"):
        interlace.emmeans("not a fit", "recipe")
