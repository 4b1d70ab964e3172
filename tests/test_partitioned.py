"""Fits from Dask frames (interlace.partitioned) against the same fits in memory, on a
real dask.distributed LocalCluster (two worker processes): every estimate, SE, df,
BLUP, conditional SD, the criterion and the per-row outputs equal to 1e-8."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("dask.distributed")

TOL = 1e-8


@pytest.fixture(scope="module")
def client():
    # The in-memory fits compared here run on the compiled optimiser, as the fits from Dask
    # frames do: a process's first small dense fits run on LAPACK's L-BFGS-B while that is in
    # no cache (interlace.fitting.gradient.COMPILE_AFTER_FITS), whose optimum moves by ~3e-8
    # in theta when the cross-products are summed in another order. A refit compiles it.
    for formula in ("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"):
        m = interlace.fit(formula, interlace.load_dataset("sleepstudy"))
        m.refit(m.model.endog)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def _relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))) if a.size else 0.0


def assert_same_fit(memory, partitioned, tol: float = TOL, references=()) -> None:
    """Every estimate of the two fits agrees to ``tol`` (relative where larger than 1),
    or, given ``references`` (the same rows fitted in memory in other orders), within
    twice the largest difference between ``memory`` and one of them."""

    def check(a, b, name, refs=()):
        bound = max([tol] + [2 * _relative(a, ref) for ref in refs])
        assert _relative(a, b) <= bound, name

    def of(results, name):
        return [getattr(result, name) for result in results]

    assert list(partitioned.fe_params.index) == list(memory.fe_params.index)
    assert partitioned.nobs == memory.nobs
    assert partitioned.ngroups == memory.ngroups
    for name in ("fe_params", "fe_bse", "theta", "scale", "llf", "fe_df", "fe_tvalues", "fe_cov", "aic"):
        check(getattr(memory, name), getattr(partitioned, name), name, of(references, name))
    for key, frame in memory.random_effects.items():
        other = partitioned.random_effects[key]
        assert list(other.index) == list(frame.index)
        check(frame, other, key, [r.random_effects[key] for r in references])
        check(memory.random_effects_se[key], partitioned.random_effects_se[key], key,
              [r.random_effects_se[key] for r in references])
    fitted = partitioned.fittedvalues.compute()
    resid = partitioned.resid.compute()
    assert len(fitted) == memory.nobs
    order = [np.argsort(r.model.data.index.to_numpy()) for r in references]  # back to the rows' order
    check(memory.fittedvalues, fitted.to_numpy(), "fitted",
          [np.asarray(r.fittedvalues)[o] for r, o in zip(references, order, strict=True)])
    check(memory.resid, resid.to_numpy(), "resid",
          [np.asarray(r.resid)[o] for r, o in zip(references, order, strict=True)])


def _crossed(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, 40, n)
    item = rng.integers(0, 25, n)
    cond = rng.choice(["a", "b", "c"], n)
    x = rng.normal(size=n)
    y = (1.0 + 0.5 * x + (cond == "b") * 0.3 + rng.normal(0, 0.8, 40)[subj] + rng.normal(0, 0.5, 25)[item]
         + rng.normal(0, 0.4, 40)[subj] * x + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "cond": cond, "subj": [f"s{s:02d}" for s in subj], "item": item,
                         "w": rng.uniform(0.5, 2.0, n), "off": rng.normal(0, 0.1, n)})


def _banded(n: int, n1: int, n2: int, seed: int, g2_sd: float) -> pd.DataFrame:
    """Crossed intercepts where each g1 level meets a few neighbouring g2 levels (a
    sparse rest once g1 is eliminated), with a predictor x."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, n)
    g2 = (g1 * n2 // n1 + rng.integers(-2, 3, n)) % n2
    y = rng.normal(size=n1)[g1] + g2_sd * rng.normal(size=n2)[g2] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "g1": g1, "g2": g2})


CASES = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
    ("Reaction ~ Days + (1 | Subject)", "sleepstudy", {"method": "ML"}),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {}),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {"solver": "sparse"}),
    ("strength ~ 1 + (1 | batch) + (1 | batch:cask)", "Pastes", {}),
    ("y ~ service + (1 | s) + (1 | d)", "InstEval", {}),
    ("log(Reaction) ~ Days + I(Days^2) + (Days || Subject)", "sleepstudy", {}),  # transforms of each row
]


@pytest.mark.parametrize(("formula", "dataset", "options"), CASES)
def test_public_datasets_match_memory(client, formula, dataset, options):
    data = interlace.load_dataset(dataset)
    memory = interlace.fit(formula, data, **options)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=6), **options)
    assert partitioned.solver_path == memory.solver_path
    assert_same_fit(memory, partitioned)


@pytest.mark.parametrize("options", [
    {},
    {"weights": "w"},
    {"offset": "off", "method": "ML"},
    {"solver": "sparse"},
])
def test_crossed_slopes_factors_weights_offsets(client, options):
    data = _crossed()
    formula = "y ~ x + cond + (1 + x | subj) + (1 | item)"
    memory = interlace.fit(formula, data, **options)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=9), **options)
    assert_same_fit(memory, partitioned)


def test_levels_in_some_partitions_missing_values_and_an_empty_partition(client):
    data = _crossed(1200, seed=3).sort_values("subj", kind="stable").reset_index(drop=True)
    data.loc[data.index % 7 == 0, "x"] = np.nan  # missing values in every partition
    data.loc[data.index % 11 == 0, "y"] = np.nan
    data.loc[data.subj == "s05", "cond"] = "d"  # a level of a predictor in one partition only
    bounds = np.linspace(0, len(data), 9).astype(int)
    parts = [data.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    parts.insert(3, data.iloc[:0])  # a partition without rows
    ddf = dd.from_delayed([dask.delayed(p) for p in parts], meta=data.iloc[:0])
    formula = "y ~ x + cond + (1 | subj) + (1 | item)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        memory = interlace.fit(formula, data)
        partitioned = interlace.fit(formula, ddf)
    dropped = [str(w.message) for w in caught if issubclass(w.category, interlace.errors.MissingValuesWarning)]
    assert len(dropped) == 2 and dropped[0] == dropped[1]
    assert partitioned.n_dropped == memory.n_dropped > 0
    assert "cond[T.d]" in partitioned.fe_params.index
    assert_same_fit(memory, partitioned)
    fitted = partitioned.fittedvalues.compute()
    assert not data.loc[fitted.index, ["x", "y"]].isna().any().any()  # the kept rows, by label
    dropped = partitioned.model.dropped_rows.compute()
    assert sorted(dropped) == sorted(memory.model.dropped_rows)  # labels here are the positions
    assert len(partitioned.model.endog.compute()) == memory.nobs


def test_predict_takes_a_dask_frame(client):
    data = _crossed()
    memory = interlace.fit("y ~ x + cond + (1 + x | subj) + (1 | item)", data)
    partitioned = interlace.fit("y ~ x + cond + (1 + x | subj) + (1 | item)", dd.from_pandas(data, npartitions=4))
    new = data.head(200).assign(subj=lambda f: np.where(f.index % 3 == 0, "unseen", f.subj))
    expected = memory.predict(new)
    lazy = partitioned.predict(dd.from_pandas(new, npartitions=3))
    assert _relative(expected, lazy.compute().to_numpy()) < TOL
    assert _relative(memory.predict(new, include_re=False),
                     partitioned.predict(dd.from_pandas(new, npartitions=2), include_re=False).compute()) < TOL
    assert _relative(expected, partitioned.predict(new)) < TOL  # a pandas frame as in memory


def test_rank_deficiency_and_errors_as_in_memory(client):
    data = _crossed(600)
    data["x2"] = 2.0 * data["x"]
    with pytest.warns(interlace.errors.RankDeficiencyWarning, match="dropping 1 column: x2") as caught:
        partitioned = interlace.fit("y ~ x + x2 + (1 | subj)", dd.from_pandas(data, npartitions=3))
    assert "x2" not in partitioned.fe_params.index
    assert caught[0].filename == __file__  # the warning names the caller's line
    exact = data.assign(y=1.0 + 2.0 * data.x)
    with pytest.warns(interlace.errors.DegenerateFitWarning, match="fitted exactly") as caught:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", interlace.errors.ConvergenceWarning)
            warnings.simplefilter("ignore", interlace.errors.SingularFitWarning)
            interlace.fit("y ~ x + (1 | subj)", dd.from_pandas(exact, npartitions=3))
    assert [w.filename for w in caught if "fitted exactly" in str(w.message)] == [__file__]
    with pytest.raises(interlace.errors.DataError, match="all 600 values are equal"):
        interlace.fit("y ~ x + (1 | subj)", dd.from_pandas(data.assign(y=1.0), npartitions=3))
    with pytest.raises(interlace.errors.DataError, match="na_action='raise'"):
        interlace.fit("y ~ x + (1 | subj)", dd.from_pandas(data.assign(x=np.where(data.index == 5, np.nan, data.x)),
                                                           npartitions=3), na_action="raise")
    for transform in ("scale(x)", "poly(x, 2)", "factor(item)"):  # state from every row's values
        with pytest.raises(interlace.InterlaceError, match="computed from all the rows"):
            interlace.fit(f"y ~ {transform} + (1 | subj)", dd.from_pandas(data, npartitions=3))


def test_rows_that_are_not_in_memory_are_named(client):
    data = _crossed(600)
    partitioned = interlace.fit("y ~ x + (1 | subj)", dd.from_pandas(data, npartitions=3))
    from interlace.partitioned.design import RowsNotInMemoryError

    with pytest.raises(RowsNotInMemoryError, match="Dask frame"):
        partitioned.simulate(2, seed=1)
    with pytest.raises(RowsNotInMemoryError, match="ddf.compute"):
        partitioned.refit(np.zeros(600))
    print(partitioned.summary())


def test_boot_mer_on_the_cluster_through_joblib(client):
    joblib = pytest.importorskip("joblib")
    data = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", data)
    here = m.bootMer(B=12, seed=5)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        there = m.bootMer(B=12, seed=5, n_jobs=2)
    np.testing.assert_allclose(there.replicates, here.replicates, rtol=1e-10)
    assert len(stream.data) > 0  # the refits ran as tasks of the cluster's worker processes
    assert {task["worker"] for task in stream.data} <= set(client.scheduler_info()["workers"])


def test_the_sparse_rest_matches_memory(client, monkeypatch):
    import interlace.linalg.dispatch as dispatch

    monkeypatch.setattr(dispatch, "SPARSE_REST_MIN_SIZE", 100)  # the driver decides: a small sparse rest
    data = _banded(6000, 2000, 1800, seed=7, g2_sd=0.5)
    formula = "y ~ x + (1 | g1) + (1 | g2)"
    memory = interlace.fit(formula, data)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=5))
    assert memory._system.rest_layout == partitioned._system.rest_layout == "sparse"
    # The sparse rest is optimised by COBYQA from the criterion's values alone. At this flat
    # optimum (the REML criterion changes by ~1e-11 between the fits) theta is fixed only to
    # ~2e-9 to 1e-8: the in-memory fit of the same rows in another order moves it that much
    # (its finite-difference df by ~4e-6, its BLUPs by up to ~1.5e-8; a tighter final trust
    # radius moves theta more, 1.4e-7, not less). The fit from partitions sums in another
    # order too: it must agree with the in-memory fit within twice what reordering does.
    shuffled = [interlace.fit(formula, data.sample(frac=1, random_state=seed)) for seed in (1, 2, 3)]
    assert_same_fit(memory, partitioned, references=shuffled)


@pytest.mark.parametrize(("formula", "dataset", "solver"), [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "dense"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", "sparse"),  # blocked: the lead's blocks
])
def test_kenward_roger_from_the_systems_crossproducts(client, formula, dataset, solver):
    data = interlace.load_dataset(dataset)
    memory = interlace.fit(formula, data, solver=solver).with_df_method("kenward-roger")
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=4), solver=solver)
    adjusted = partitioned.with_df_method("kenward-roger")
    for name in ("fe_df", "fe_bse", "fe_pvalues"):
        assert _relative(getattr(memory, name), getattr(adjusted, name)) < TOL, name
    from interlace.inference.kenward_roger import system_crossprod
    from interlace.linalg.system import dense_crossprod, stack_terms

    design = memory._system.design  # the same [Z X]'[Z X] as from the rows
    codes, designs, start, offsets, _, _ = stack_terms(design.terms, design.n_obs)
    rows = dense_crossprod(codes, designs, start, offsets, np.ascontiguousarray(design.X),
                           design.n_random + design.n_fixed)
    np.testing.assert_allclose(system_crossprod(memory._system), rows, rtol=0, atol=1e-12 * np.abs(rows).max())


@pytest.mark.parametrize(("formula", "dataset"), [
    ("angle ~ recipe * temperature + (1 | recipe:replicate)", "cake"),
    ("weight ~ Time * Diet + (Time | Rat)", "BodyWeight"),
])
def test_anova_types_from_summed_crossproducts(client, formula, dataset):
    """lmerTest's F tables of type I, II and III: their contrasts from X'X and X' times the
    terms' full designs summed over the partitions, the same as from the rows; drop1 too."""
    data = interlace.load_dataset(dataset)
    memory = interlace.fit(formula, data)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=4))
    for kind in (1, 2, 3):
        expected, found = interlace.anova(memory, type=kind), interlace.anova(partitioned, type=kind)
        assert list(found.index) == list(expected.index)
        assert _relative(expected.to_numpy(float), found.to_numpy(float)) < TOL, kind
    expected, found = interlace.drop1(memory), interlace.drop1(partitioned)  # no column dropped: marginal
    assert _relative(expected.to_numpy(float), found.to_numpy(float)) < TOL


# ----- the leading coupling kept on the workers (interlace.partitioned.coupling) ---------------------------


@pytest.fixture
def coupling_on_workers(monkeypatch):
    """Every fit whose coupling may go to the workers sends it there, however small."""
    import interlace.partitioned.system as system

    monkeypatch.setattr(system, "WORKER_COUPLING_MIN_BYTES", 0)
    return system


@pytest.mark.parametrize(("formula", "dataset", "options", "negate"), [
    ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", "InstEval", {}, False),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {"solver": "sparse", "method": "ML"}, False),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {"solver": "sparse"}, True),  # y's sign flipped
])
def test_coupling_on_the_workers_matches_memory(client, coupling_on_workers, formula, dataset, options, negate):
    data = interlace.load_dataset(dataset)
    if negate:  # the working response's third moment changes sign: so does the shards' y
        response = formula.split("~")[0].strip()
        data = data.assign(**{response: -data[response]})
    memory = interlace.fit(formula, data, **options)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=6), **options)
    system = partitioned._system
    assert isinstance(system, coupling_on_workers.WorkerCouplingSystem)
    assert_same_fit(memory, partitioned)
    # what reads the coupling's arrays (the scalar Satterthwaite formula above, Kenward-Roger) gets them
    # gathered: the same as in memory
    ptr, idx, val = system.coupling
    mine = memory._system.coupling
    np.testing.assert_array_equal(ptr, mine[0])
    np.testing.assert_array_equal(idx, mine[1])
    np.testing.assert_allclose(val, mine[2], rtol=1e-12, atol=1e-12)


def test_a_large_models_fit_never_brings_the_coupling_to_the_driver(client, coupling_on_workers, monkeypatch):
    """Past the size where the exact scalar Satterthwaite formula builds a dense coupling
    (which it gathers, being larger than the sparse one), the fit and the conditional
    SDs read the coupling on the workers only."""
    import interlace.inference.deviance_hessian as deviance_hessian

    monkeypatch.setattr(deviance_hessian, "SCALAR_MAX_BYTES", 0)
    data = interlace.load_dataset("InstEval")
    formula = "y ~ service + (1 | s) + (1 | d)"
    memory = interlace.fit(formula, data)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=4))
    system = partitioned._system
    partitioned.random_effects_se  # noqa: B018
    assert isinstance(system, coupling_on_workers.WorkerCouplingSystem)
    assert "_gathered" not in system.__dict__
    for name in ("theta", "fe_params", "fe_bse", "llf"):
        assert _relative(getattr(memory, name), getattr(partitioned, name)) <= TOL, name
    for key, se in memory.random_effects_se.items():
        assert _relative(se, partitioned.random_effects_se[key]) <= TOL, key


def test_coupling_on_the_workers_with_weights_missing_values_and_an_empty_partition(client, coupling_on_workers):
    data = _crossed(1200, seed=4).sort_values("subj", kind="stable").reset_index(drop=True)
    data.loc[data.index % 9 == 0, "x"] = np.nan
    bounds = np.linspace(0, len(data), 7).astype(int)
    parts = [data.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    parts.insert(2, data.iloc[:0])
    ddf = dd.from_delayed([dask.delayed(p) for p in parts], meta=data.iloc[:0])
    formula = "y ~ x + cond + (1 | subj) + (1 | item) + (1 | cond:item)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.errors.MissingValuesWarning)
        memory = interlace.fit(formula, data, weights="w", solver="sparse")
        partitioned = interlace.fit(formula, ddf, weights="w", solver="sparse")
    assert isinstance(partitioned._system, coupling_on_workers.WorkerCouplingSystem)
    assert_same_fit(memory, partitioned)


def test_coupling_gathered_for_a_sparse_rest(client, coupling_on_workers, monkeypatch):
    """Where the rest is held sparse the coupling comes to the driver, as it always did."""
    import interlace.linalg.dispatch as dispatch

    monkeypatch.setattr(dispatch, "SPARSE_REST_MIN_SIZE", 100)
    data = _banded(5000, 1500, 1400, seed=8, g2_sd=1.0)
    formula = "y ~ 1 + (1 | g1) + (1 | g2)"
    memory = interlace.fit(formula, data)
    partitioned = interlace.fit(formula, dd.from_pandas(data, npartitions=4))
    assert partitioned._system.rest_layout == memory._system.rest_layout == "sparse"
    shuffled = [interlace.fit(formula, data.sample(frac=1, random_state=seed)) for seed in (1, 2, 3)]
    assert_same_fit(memory, partitioned, references=shuffled)


def test_shards_hold_the_coupling_exactly(client):
    """The shards built from the leading rows of the summed cross-products hold the
    coupling exactly, and the driver's handle gives the products, the gathered arrays
    and the factor of the in-memory system."""
    import scipy.sparse as sparse

    from interlace.partitioned.coupling import WorkerCoupling, shard_bounds
    from interlace.partitioned.crossproducts import CrossProducts, split_leading_rows
    from interlace.partitioned.system import WorkerCouplingSystem

    m = interlace.fit("y ~ service + (1 | s) + (1 | d)", interlace.load_dataset("InstEval"))
    system = m._system
    ptr, idx, val = system.coupling
    n_lead, q_rest, size = system.lead_term.n_levels, system.n_rest_random, system.size
    n_tail = size - q_rest
    # the leading rows of Z'Z (upper triangle) and of Z'[X y] as the third pass sums them
    level_of = np.repeat(np.arange(n_lead), np.diff(ptr))
    inside = idx < q_rest
    rows = np.concatenate([np.arange(n_lead), level_of[inside]])
    columns = np.concatenate([np.arange(n_lead), n_lead + idx[inside]])
    values = np.concatenate([system.lead_crossprod[:, 0, 0], val[inside, 0]])
    random = sparse.csr_matrix((values, (rows, columns)), shape=(n_lead + q_rest, n_lead + q_rest))
    random_tail = np.zeros((n_lead + q_rest, n_tail))
    random_tail[:n_lead] = val[(ptr[1:, None] - n_tail) + np.arange(n_tail), 0]
    bounds = shard_bounds(n_lead, 3)
    _, *pieces = split_leading_rows(CrossProducts(random, random_tail, np.eye(n_tail), 0.0, 0.0), bounds)
    coupling = WorkerCoupling.build(client, [client.scatter(piece) for piece in pieces], bounds, q_rest)
    np.testing.assert_array_equal(coupling.counts, np.diff(ptr))
    _, gathered_idx, gathered_val = coupling.gather()
    np.testing.assert_array_equal(gathered_idx, idx)
    np.testing.assert_array_equal(gathered_val, val)
    rng = np.random.default_rng(0)
    vectors, weights = rng.normal(size=(size, 2)), rng.normal(size=(n_lead, 2))
    np.testing.assert_allclose(coupling.times(vectors), system.lead_times(vectors), rtol=1e-12)
    np.testing.assert_allclose(coupling.transpose_times(weights), system.lead_transpose_times(weights),
                               rtol=1e-12, atol=1e-12)
    remote = WorkerCouplingSystem(system.design, sparse.csr_array(system.rest_crossprod), system.lead_crossprod,
                                  coupling)
    local = system.factorize(m.theta)
    factor = remote.factorize(m.theta, weigh_lead=True)
    np.testing.assert_allclose(np.tril(factor.rest_chol), np.tril(local.rest_chol), rtol=1e-10, atol=1e-12)
    assert factor.logdet_random == pytest.approx(local.logdet_random, rel=1e-12)
    assert factor.pwrss == pytest.approx(local.pwrss, rel=1e-12)
