"""The dense and blocked paths give the same answer on every reference model, and the
dispatch picks the path its rule says."""

from __future__ import annotations

import numpy as np
import pytest

import interlace
from interlace.design import build_design
from interlace.fitting.conditioning import condition
from interlace.fitting.estimates import compute_estimates, conditional_sd
from interlace.fitting.objective import profiled_deviance
from interlace.formula.random import split_formula
from interlace.linalg.dispatch import DENSE_MAX_SIZE, choose_path
from interlace.linalg.system import PenalizedSystem

from .reference import case_design, case_id, index, load

PATHS_REL = 1e-8


@pytest.mark.parametrize("case", index(), ids=case_id)
def test_paths_agree_on_reference_models(case):
    ref = load(case["json"])
    design = condition(case_design(case))[1]  # prior weights on the rows, as the fit's
    theta = np.array(list(ref["theta"].values()), dtype=float)
    reml = bool(ref["REML"])
    results = []
    for n_leading in (0, 1):
        system = PenalizedSystem(design, n_leading)
        factor = system.factorize(theta)
        deviance = profiled_deviance(factor, design.n_obs, design.n_fixed, reml)
        est = compute_estimates(system, factor, theta, reml, deviance)
        results.append((deviance, est, conditional_sd(system, factor, theta, est.scale)))
    (d0, e0, sd0), (d1, e1, sd1) = results
    assert d0 == pytest.approx(d1, rel=PATHS_REL)
    np.testing.assert_allclose(e0.beta, e1.beta, rtol=PATHS_REL, atol=PATHS_REL * np.sqrt(e0.scale))
    # covariances that are zero in exact arithmetic (a balanced design's) are rounding noise
    np.testing.assert_allclose(e0.fe_cov, e1.fe_cov, rtol=PATHS_REL, atol=1e-12 * np.max(np.abs(e0.fe_cov)))
    np.testing.assert_allclose(e0.fitted, e1.fitted, rtol=0, atol=PATHS_REL * np.sqrt(e0.scale))
    for name in e0.effects:
        np.testing.assert_allclose(e0.effects[name], e1.effects[name], rtol=0, atol=PATHS_REL * np.sqrt(e0.scale))
        np.testing.assert_allclose(sd0[name], sd1[name], rtol=PATHS_REL, atol=1e-14)


def test_dispatch_rule():
    small = build_design(*split_formula("Reaction ~ Days + (Days | Subject)"), interlace.load_dataset("sleepstudy"))
    large = build_design(*split_formula("y ~ 1 + service + (1 | s) + (1 | d)"), interlace.load_dataset("InstEval"))
    assert small.n_random + small.n_fixed + 1 <= DENSE_MAX_SIZE
    assert large.n_random + large.n_fixed + 1 > DENSE_MAX_SIZE
    assert choose_path(small) == 0
    assert choose_path(large) == 1
    assert choose_path(small, "sparse") == 1
    assert choose_path(large, "dense") == 0


def test_solver_option_reaches_the_fit():
    sleep = interlace.load_dataset("sleepstudy")
    dense = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, solver="dense")
    blocked = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, solver="sparse")
    assert (dense.solver_path, blocked.solver_path) == ("dense", "sparse")
    assert dense.llf == pytest.approx(blocked.llf, abs=1e-6)


def _dense_meeting_design(n=4000, n1=60, n2=50, seed=2):
    """Two crossed factors where every g1 level meets most g2 levels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    g1, g2, x = rng.integers(0, n1, n), rng.integers(0, n2, n), rng.standard_normal(n)
    y = 1 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.5 * rng.standard_normal(n2)[g2] + rng.standard_normal(n)
    frame = pd.DataFrame({"y": y, "x": x, "g1": [f"a{i}" for i in g1], "g2": [f"b{i}" for i in g2]})
    return build_design(*split_formula("y ~ x + (1 | g1) + (1 | g2)"), frame)


def test_downdate_rule_and_syrk_equals_scatter():
    from interlace.linalg.dispatch import build_system, choose_downdate

    dense_meeting = PenalizedSystem(_dense_meeting_design(), 1)
    assert choose_downdate(dense_meeting) == "syrk"
    instEval = build_design(*split_formula("y ~ 1 + service + (1 | s) + (1 | d)"), interlace.load_dataset("InstEval"))
    assert choose_downdate(PenalizedSystem(instEval, 1)) == "scatter"
    assert build_system(_dense_meeting_design(), "sparse").downdate == "syrk"
    syrk = dense_meeting.with_syrk_downdate()
    for theta in (np.array([0.8, 0.4]), np.array([0.0, 1.3])):
        a, b = dense_meeting.factorize(theta), syrk.factorize(theta)
        assert (a.logdet_random, a.logdet_fixed, a.pwrss) == pytest.approx((b.logdet_random, b.logdet_fixed, b.pwrss),
                                                                          rel=1e-12)
    # a new response or a new tail rebuilds the dense coupling
    y = np.random.default_rng(0).standard_normal(dense_meeting.design.n_obs)
    theta = np.array([0.7, 0.5])
    assert syrk.with_response(y).factorize(theta).pwrss == pytest.approx(
        dense_meeting.with_response(y).factorize(theta).pwrss, rel=1e-12)
    tail = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # drop x: [1, y]
    assert syrk.with_fixed_tail(tail).factorize(theta).pwrss == pytest.approx(
        dense_meeting.with_fixed_tail(tail).factorize(theta).pwrss, rel=1e-12)


def _sparse_meeting_frame(n=6000, n1=1500, n2=1500, seed=3):
    """W11's recipe, small: each g1 level meets about 20 neighbouring g2 levels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, n)
    g2 = (g1 * n2 // n1 + rng.integers(-10, 10, n)) % n2
    x = rng.standard_normal(n)
    y = 1 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.5 * rng.standard_normal(n2)[g2] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})


def test_rest_rule_picks_sparse_for_sparse_fill_and_dense_otherwise():
    from interlace.linalg import dispatch

    sparse_fill = build_design(*split_formula("y ~ x + (1 | g1) + (1 | g2)"), _sparse_meeting_frame())
    dense_fill = _dense_meeting_design()
    instEval = build_design(*split_formula("y ~ 1 + service + (1 | s) + (1 | d)"), interlace.load_dataset("InstEval"))
    small = build_design(*split_formula("Reaction ~ Days + (Days | Subject)"), interlace.load_dataset("sleepstudy"))
    original = dispatch.SPARSE_REST_MIN_SIZE
    try:
        dispatch.SPARSE_REST_MIN_SIZE = 1000  # the small designs of the test stand for large ones
        assert dispatch.choose_rest(sparse_fill) == "sparse"
        assert dispatch.choose_rest(dense_fill) == "dense"
        assert dispatch.choose_rest(instEval) == "dense"
        assert dispatch.choose_rest(small) == "dense"
        assert type(dispatch.build_system(sparse_fill)).__name__ == "SparseRestSystem"
    finally:
        dispatch.SPARSE_REST_MIN_SIZE = original
    assert dispatch.choose_rest(sparse_fill) == "dense"  # 1,503 rows: below the minimum size


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g1) + (1 | g2)", "y ~ x + (1 + x | g1) + (1 | g2)"])
def test_sparse_rest_agrees_with_dense_rest(formula):
    from interlace.linalg.sparse_rest import SparseRestSystem

    design = build_design(*split_formula(formula), _sparse_meeting_frame())
    dense, sparse = PenalizedSystem(design, 1), SparseRestSystem(design)
    assert sparse._pair_offsets.dtype == np.uint16  # a quarter of the bytes of int64 positions
    assert sparse.coupling_by_row is None  # the dense rest's downdate only
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = np.where(np.isfinite(design.theta_lower), rng.uniform(0.1, 1.5, design.n_theta),
                         rng.uniform(-0.5, 0.5, design.n_theta))
        for reml in (True, False):
            a = profiled_deviance(dense.factorize(theta), design.n_obs, design.n_fixed, reml)
            b = profiled_deviance(sparse.factorize(theta), design.n_obs, design.n_fixed, reml)
            assert a == pytest.approx(b, rel=PATHS_REL)
    fa, fb = dense.factorize(theta), sparse.factorize(theta)
    ea = compute_estimates(dense, fa, theta, True, 0.0)
    eb = compute_estimates(sparse, fb, theta, True, 0.0)
    np.testing.assert_allclose(ea.beta, eb.beta, rtol=PATHS_REL)
    np.testing.assert_allclose(ea.fe_cov, eb.fe_cov, rtol=PATHS_REL)
    np.testing.assert_allclose(ea.fitted, eb.fitted, rtol=0, atol=PATHS_REL * np.sqrt(ea.scale))
    sa, sb = conditional_sd(dense, fa, theta, ea.scale), conditional_sd(sparse, fb, theta, eb.scale)
    for name in sa:
        np.testing.assert_allclose(ea.effects[name], eb.effects[name], rtol=0, atol=PATHS_REL * np.sqrt(ea.scale))
        np.testing.assert_allclose(sa[name], sb[name], rtol=PATHS_REL, atol=1e-14)
    # a new response: the same as building the system on it
    y = np.random.default_rng(5).standard_normal(design.n_obs)
    a = profiled_deviance(dense.with_response(y).factorize(theta), design.n_obs, design.n_fixed, True)
    b = profiled_deviance(sparse.with_response(y).factorize(theta), design.n_obs, design.n_fixed, True)
    assert a == pytest.approx(b, rel=PATHS_REL)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g1) + (1 | g2)", "y ~ x + (1 + x | g1) + (1 | g2)",
                                     "y ~ x + (1 | g1) + (1 + x | g2) + (1 | g3)"])
def test_sparse_rest_builds_its_crossproducts_and_pattern_from_the_codes(formula):
    """A_rr's entries and the rest's lower pattern against the scipy products they
    replace: [Z_r X y]'[Z_r X y] from a sparse Z_r, and the coupling cliques C'C plus the
    diagonal and the [X y] rows."""
    import scipy.sparse as sp

    from interlace.kernels.blockdiag import transpose_coupling
    from interlace.kernels.sparse_rest import rest_lower_pattern
    from interlace.linalg.sparse_rest import rest_crossprod_entries
    from interlace.linalg.system import lead_blocks, stack_terms

    frame = _sparse_meeting_frame()
    frame["g3"] = frame["g2"].cat.codes % 37
    design = build_design(*split_formula(formula), frame)
    rest = design.terms[1:]
    n, p = design.n_obs, design.n_fixed
    q = sum(t.n_effects for t in rest)
    size = q + p + 1
    xy = np.column_stack([design.X, design.y])
    codes, designs, _, offsets, ks, _ = stack_terms(rest, n)
    columns = [offsets[t] + codes[t].astype(np.int64) * ks[t] + c for t in range(len(rest)) for c in range(ks[t])]
    z = sp.csr_matrix((designs.T.ravel(), (np.tile(np.arange(n), len(columns)), np.concatenate(columns))),
                      shape=(n, q))
    full = sp.hstack([z, sp.csr_matrix(xy)]).tocsc()
    expected = np.tril((full.T @ full).toarray())
    rows, cols, values = rest_crossprod_entries(rest, offsets, xy, q)
    assert np.all(rows >= cols)
    assert np.unique(rows * size + cols).size == rows.size  # one entry per place
    built = np.zeros((size, size))
    built[rows, cols] = values
    np.testing.assert_allclose(built, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    ptr, idx, _ = lead_blocks(design, np.ascontiguousarray(xy)).coupling
    indptr, indices = rest_lower_pattern(ptr, idx, *transpose_coupling(ptr, idx, size), size, p + 1)
    level_of = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    cliques = sp.csr_matrix((np.ones(idx.size), (level_of, idx)), shape=(len(ptr) - 1, size))
    tail = np.zeros((size, size))
    tail[q:, :] = 1.0
    pattern = sp.tril(cliques.T @ cliques + sp.eye(size) + sp.csr_matrix(tail) + abs(sp.csr_matrix(expected))).tocsc()
    pattern.sort_indices()
    np.testing.assert_array_equal(indptr, pattern.indptr)
    np.testing.assert_array_equal(indices, pattern.indices)


def test_fit_on_the_sparse_rest_equals_the_dense_fit():
    from interlace.linalg import dispatch

    frame = _sparse_meeting_frame()
    original = dispatch.SPARSE_REST_MIN_SIZE
    try:
        dispatch.SPARSE_REST_MIN_SIZE = 1000
        sparse_fit = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", frame)
    finally:
        dispatch.SPARSE_REST_MIN_SIZE = original
    dense_fit = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", frame)
    assert type(sparse_fit._system).__name__ == "SparseRestSystem"
    assert type(dense_fit._system).__name__ == "PenalizedSystem"
    assert sparse_fit.llf == pytest.approx(dense_fit.llf, rel=1e-10, abs=1e-7)
    np.testing.assert_allclose(sparse_fit.fe_params, dense_fit.fe_params, rtol=1e-6)
    np.testing.assert_allclose(sparse_fit.fe_df, dense_fit.fe_df, rtol=1e-4)
    refit = sparse_fit.refit(sparse_fit.model.endog)
    assert refit.llf == pytest.approx(sparse_fit.llf, rel=1e-12)
    with pytest.raises(interlace.InterlaceError, match="sparse rest"):
        sparse_fit.confint(method="profile")
    with pytest.raises(interlace.InterlaceError, match="sparse matrix"):
        interlace.hlm_leverage(sparse_fit)
    with pytest.raises(interlace.InterlaceError, match="sparse matrix"):
        interlace.hlm_influence(sparse_fit, level="g1", approx=False, leverage=())


def _crossed_slopes_frame(n=900, n1=40, n2=25, seed=5):
    import pandas as pd

    rng = np.random.default_rng(seed)
    g1, g2, x = rng.integers(0, n1, n), rng.integers(0, n2, n), rng.standard_normal(n)
    y = (1 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.4 * x * rng.standard_normal(n1)[g1]
         + 0.5 * rng.standard_normal(n2)[g2] + 0.3 * x * rng.standard_normal(n2)[g2] + rng.standard_normal(n))
    w = rng.uniform(0.5, 2.0, n)
    return pd.DataFrame({"y": y, "x": x, "w": w, "g1": [f"a{i}" for i in g1], "g2": [f"b{i}" for i in g2]})


@pytest.mark.parametrize("solver", ["dense", "sparse"])
@pytest.mark.parametrize(
    "formula, weights",
    [
        ("y ~ x + (1 | g1) + (1 | g2)", None),
        ("y ~ x + (1 + x | g1) + (1 | g2)", None),
        ("y ~ x + (1 | g1) + (1 + x | g2)", "w"),
        ("y ~ x + (1 + x | g1) + (1 + x | g2)", None),
        ("y ~ x + (1 | g1)", None),
    ],
)
def test_conditional_sds_are_the_dense_inverses(formula, weights, solver):
    """random_effects_se from the selected entries of the inverse equals lme4's condVar
    computed the long way: sigma^2 diag(Lambda (Lambda'Z'WZ Lambda + I)^{-1} Lambda')."""
    frame = _crossed_slopes_frame()
    m = interlace.fit(formula, frame, weights=weights, solver=solver)
    assert m.solver_path == solver
    Z, Lambda = m.get_me("Z").toarray(), m.get_me("Lambda").toarray()
    w = np.ones(m.nobs) if weights is None else frame[weights].to_numpy()
    precision = Lambda.T @ (Z.T * w) @ Z @ Lambda + np.eye(Z.shape[1])
    expected = np.sqrt(m.scale * np.diag(Lambda @ np.linalg.inv(precision) @ Lambda.T))
    found = np.concatenate([np.asarray(m.random_effects_se[t]).reshape(-1) for t in m.get_me("cnms")])
    np.testing.assert_allclose(found, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", ["sparse", "dense"])
def test_build_system_stacks_x_and_y_once(monkeypatch, solver):
    """[X y] (n rows) is stacked once and shared by the leading term's coupling and the
    rest's cross-products; the system equals one built from its own stack."""
    from interlace.linalg import dispatch

    design = build_design(*split_formula("y ~ service + (1 | s) + (1 | d)"), interlace.load_dataset("InstEval"))
    stacks = []
    column_stack = np.column_stack

    def counting(arrays, *args, **kwargs):
        out = column_stack(arrays, *args, **kwargs)
        if out.shape[0] == design.n_obs:
            stacks.append(out.shape)
        return out

    monkeypatch.setattr(np, "column_stack", counting)
    system = dispatch.build_system(design, solver)
    assert stacks == [(design.n_obs, design.n_fixed + 1)]
    monkeypatch.setattr(np, "column_stack", column_stack)
    own = PenalizedSystem(design, system.n_leading)
    np.testing.assert_array_equal(system.rest_crossprod, own.rest_crossprod)
    if system.n_leading:
        for built, expected in zip(system.coupling, own.coupling, strict=True):
            np.testing.assert_array_equal(built, expected)
