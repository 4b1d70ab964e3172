"""get_me (lme4's getME) against lme4 1.1-31 (tests/data/getme/, written by
tests/data/make_getme_reference.R): Z exactly, Lambda's pattern and values, theta, b,
u, beta, Gp, cnms; L L' equal to Lambda'Z'WZ Lambda + I (lme4's L factors a permutation
of it)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import interlace

DATA = Path(__file__).parent / "data"
CASES = sorted((DATA / "getme").glob("*.json"))
THETA_ABS = 2e-4  # tests/test_reference.py's tolerances
BLUP_IN_CONDSD = 1e-2


def _matrix(triplets) -> np.ndarray:
    return sp.coo_matrix((triplets["x"], (triplets["i"], triplets["j"])), shape=tuple(triplets["dim"])).toarray()


@pytest.fixture(scope="module", params=CASES, ids=[c.stem for c in CASES])
def pair(request):
    case = json.loads(request.param.read_text())
    if case["weights"]:
        data = pd.read_csv(DATA / "datasets" / f"{case['dataset']}.csv")
        data["Subject"] = data["Subject"].astype(str)
        m = interlace.fit(case["formula"], data, weights=case["weights"])
    else:
        m = interlace.fit(case["formula"], interlace.load_dataset(case["dataset"]))
    return m, case


def test_z_and_its_order_are_lme4s(pair):
    m, case = pair
    Z = m.get_me("Z")
    assert sp.issparse(Z)
    np.testing.assert_array_equal(Z.toarray(), _matrix(case["Z"]))
    np.testing.assert_array_equal(m.get_me("Zt").toarray(), _matrix(case["Z"]).T)
    assert m.get_me("Gp").tolist() == case["Gp"]
    assert m.get_me("cnms") == {k: v if isinstance(v, list) else [v] for k, v in case["cnms"].items()}
    assert m.get_me("n_rtrms") == len(case["cnms"])


def test_lambda_theta_and_the_effects_are_lme4s(pair):
    m, case = pair
    Lambda, expected = m.get_me("Lambda").toarray(), _matrix(case["Lambda"])
    np.testing.assert_array_equal(Lambda != 0, expected != 0)
    np.testing.assert_allclose(Lambda, expected, rtol=0, atol=THETA_ABS)
    np.testing.assert_allclose(m.get_me("Lambdat").toarray(), Lambda.T, rtol=0)
    np.testing.assert_allclose(m.get_me("theta").to_numpy(), case["theta"], rtol=0, atol=THETA_ABS)
    np.testing.assert_allclose(m.get_me("beta"), case["beta"], rtol=1e-4)
    b = m.get_me("b")
    condsd = np.concatenate([np.asarray(m.random_effects_se[t]).reshape(-1) for t in m.get_me("cnms")])
    assert np.all(np.abs(b - case["b"]) <= BLUP_IN_CONDSD * condsd)
    np.testing.assert_allclose(Lambda @ m.get_me("u"), b, rtol=1e-10, atol=1e-10)  # b = Lambda u
    np.testing.assert_allclose(m.get_me("u"), case["u"], rtol=0, atol=2e-3 * np.abs(case["u"]).max())


def test_l_is_the_factor_of_the_penalised_crossproduct(pair):
    m, case = pair
    L = m.get_me("L")
    assert sp.issparse(L) and np.allclose(sp.triu(L, 1).toarray(), 0.0)
    Z, Lambda = m.get_me("Z"), m.get_me("Lambda")
    w = np.ones(m.nobs) if not case["weights"] else m.model.data[case["weights"]].to_numpy()
    A = (Lambda.T @ Z.T @ sp.diags(w) @ Z @ Lambda + sp.identity(Z.shape[1])).toarray()
    np.testing.assert_allclose((L @ L.T).toarray(), A, rtol=1e-10, atol=1e-10)
    lme4 = _matrix(case["LLt"])  # one triangle of a symmetric matrix (Matrix's dsCMatrix)
    lme4 = np.triu(lme4) + np.triu(lme4, 1).T if np.allclose(np.tril(lme4, -1), 0.0) else lme4
    np.testing.assert_allclose(A, lme4, rtol=0, atol=1e-2 * np.abs(A).max())  # lme4's, at its own theta


def test_the_other_names_and_a_bad_one():
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    np.testing.assert_array_equal(m.get_me("X"), m.model.exog)
    np.testing.assert_array_equal(m.get_me("y"), m.model.endog)
    assert m.get_me("sigma") == pytest.approx(np.sqrt(m.scale)) and m.get_me("REML") is True
    assert m.getME("devcomp") == {"n": 180, "p": 2, "q": 36, "nth": 3, "REML": True, "REMLcrit": m.reml_criterion}
    np.testing.assert_array_equal(m.get_me("lower"), [0.0, -np.inf, 0.0])
    assert list(m.get_me("flist")) == ["Subject"]
    with pytest.raises(interlace.InterlaceError, match=r"name: expected one of X, y, Z, .*found 'Zeta'"):
        m.get_me("Zeta")
    g = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", interlace.load_dataset("cbpp"),
                      family="binomial")
    L, Z, Lambda = g.get_me("L"), g.get_me("Z"), g.get_me("Lambda")
    mu = g.fittedvalues
    trials = (interlace.load_dataset("cbpp")["size"]).to_numpy()
    W = trials * mu * (1 - mu)  # the working weights at the mode (logit link)
    A = (Lambda.T @ Z.T @ sp.diags(W) @ Z @ Lambda + sp.identity(Z.shape[1])).toarray()
    np.testing.assert_allclose((L @ L.T).toarray(), A, rtol=1e-8)
