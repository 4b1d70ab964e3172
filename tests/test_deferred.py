"""Fields computed on first read (:mod:`interlace.deferred`): a result's labelled
fields are built when read, and are then the same values, pickles, copies and
replacements as those of a result built with every field computed."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.deferred import Deferred, DeferredField, accept_deferred
from interlace.fitting.estimates import EstimatesAtOptimum, compute_estimates

DEFERRED = ("fe_params", "fe_bse", "fe_cov", "random_effects", "variance_components", "correlation_params",
            "resid", "fittedvalues", "model")


@pytest.fixture(scope="module")
def sleep_fit():
    return interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))


def _pending(result) -> set[str]:
    return {name for name in DEFERRED if type(result.__dict__[name]) is Deferred}


def _assert_same_fields(a, b):
    for f in dataclasses.fields(a):
        if not f.compare:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, (pd.Series, pd.DataFrame)):
            assert x.equals(y) and type(x) is type(y), f.name
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), f.name
            for key in x:
                vx, vy = x[key], y[key]
                assert (vx.equals(vy) if hasattr(vx, "equals") else vx == vy), (f.name, key)
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif f.name == "optimization":
            np.testing.assert_array_equal(x.theta, y.theta)
            assert x.objective == y.objective
        elif f.name != "model":
            assert x == y, f.name


def test_a_field_is_computed_on_first_read_only():
    calls = []

    @dataclasses.dataclass(frozen=True)
    class Record:
        first: int
        second: list = DeferredField()
        third: int = 3

    record = Record(1, Deferred(lambda: calls.append(1) or [2]))
    assert calls == [] and record.third == 3
    assert record.second == [2] and record.second == [2] and calls == [1]
    assert record == Record(1, [2])
    assert [f.name for f in dataclasses.fields(Record)] == ["first", "second", "third"]
    with pytest.raises(TypeError):
        Record(1)  # a deferred field has no default
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.second = [3]


def test_a_deferred_call_with_an_argument_passes_it():
    shared = {"calls": 0}

    def read(holder):
        holder["calls"] += 1
        return holder["calls"]

    @dataclasses.dataclass(frozen=True)
    class Record:
        first: int = DeferredField()
        second: int = DeferredField()

    record = Record(Deferred(read, shared), Deferred(read, shared))
    assert shared["calls"] == 0
    assert (record.second, record.first, record.second) == (1, 2, 1)
    assert Deferred(lambda *args: args, None).compute() == (None,)  # None is an argument, not "none"
    assert Deferred(lambda *args: args).compute() == ()


def test_a_refit_result_holds_few_objects_for_the_collector(sleep_fit):
    # a simulation loop keeps its refits: each object the collector tracks is scanned at
    # every full collection (the deferred fields share one holder, no closures)
    import gc

    sleep_fit.refit(sleep_fit.simulate(1, seed=3)[:, 0])  # warm: caches of the design
    y = sleep_fit.simulate(1, seed=4)[:, 0]
    gc.collect()
    gc.disable()
    try:
        before = {id(o) for o in gc.get_objects()}
        again = sleep_fit.refit(y)
        new = [o for o in gc.get_objects() if id(o) not in before]
    finally:
        gc.enable()
    assert again.converged
    assert len(new) <= 45, sorted({type(o).__name__ for o in new})


def test_a_refit_builds_its_labelled_fields_when_read(sleep_fit):
    again = sleep_fit.refit(sleep_fit.simulate(1, seed=4)[:, 0])
    assert _pending(again) == set(DEFERRED)
    assert np.isfinite(again.llf) and again.theta.shape == (3,) and np.isfinite(again.scale)
    assert _pending(again) == set(DEFERRED)  # the scalars cost no labelled field
    slope = again.fe_params["Days"]
    assert _pending(again) == set(DEFERRED) - {"fe_params"}
    assert slope == again.fe_params.iloc[1]


def test_an_accepting_field_keeps_its_default_and_options():
    @dataclasses.dataclass(frozen=True)
    class Record:
        first: int
        second: list = dataclasses.field(default=None, compare=False, repr=False)

    accept_deferred(Record, "second")
    calls = []
    record = Record(1, Deferred(lambda: calls.append(1) or [2]))
    assert calls == [] and Record(1).second is None
    assert record.second == [2] and record.second == [2] and calls == [1]
    assert record == Record(1, [5]) and "second" not in repr(record)  # compare=False, repr=False kept
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.second = [3]
    with pytest.raises(ValueError, match="name: expected a field"):
        accept_deferred(Record, "third")


def test_a_refit_factors_its_system_when_the_factor_is_read(monkeypatch):
    # the compiled optimiser returns pwrss at its optimum: sigma^2 and the criterion need
    # no factorisation; beta, vcov(beta) and the factor itself equal an eager one's
    from interlace.linalg.system import PenalizedSystem

    m = interlace.fit("Reaction ~ Days + (1 | Subject)", interlace.load_dataset("sleepstudy"))
    y = m.simulate(1, seed=3)[:, 0]
    factored = []
    factorize = PenalizedSystem.factorize
    monkeypatch.setattr(PenalizedSystem, "factorize", lambda self, *a, **k: factored.append(1) or factorize(self, *a, **k))
    again = m.refit(y)
    assert factored == [] and np.isfinite(again.llf) and np.isfinite(again.scale)
    monkeypatch.undo()
    eager = compute_estimates(again._system, again._system.factorize(again.theta), again.theta, True,
                              again._conditioning.working_deviance(again.deviance, True), again._conditioning)
    assert again.scale == pytest.approx(eager.scale, rel=1e-10)
    assert type(again.__dict__["_factor"]) is Deferred  # the scalars read no factor
    np.testing.assert_allclose(again.fe_params.to_numpy(), eager.beta, rtol=1e-12)
    np.testing.assert_allclose(again.fe_cov, eager.fe_cov, rtol=1e-12)
    factor = again._factor
    assert type(again.__dict__["_factor"]) is not Deferred and factor.pwrss == pytest.approx(
        again._system.factorize(again.theta).pwrss, rel=1e-12)
    assert again._factor is factor  # computed once, shared with the estimates


def test_deferred_fields_equal_the_estimates_computed_at_once(sleep_fit):
    est = compute_estimates(sleep_fit._system, sleep_fit._factor, sleep_fit.theta, True,
                            sleep_fit._conditioning.working_deviance(sleep_fit.deviance, True),
                            sleep_fit._conditioning)
    np.testing.assert_allclose(sleep_fit.fe_params.to_numpy(), est.beta, rtol=1e-12)
    np.testing.assert_allclose(sleep_fit.fe_cov, est.fe_cov, rtol=1e-12)
    np.testing.assert_allclose(sleep_fit.resid, est.resid, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sleep_fit.random_effects["Subject"].to_numpy(), est.effects["Subject"], rtol=1e-12)
    assert sleep_fit.scale == pytest.approx(est.scale, rel=1e-12)
    lazy = EstimatesAtOptimum(sleep_fit._system, sleep_fit._factor, sleep_fit.theta, True, 0.0,
                              sleep_fit._conditioning)
    assert "beta" not in lazy.__dict__ and "fe_cov" not in lazy.__dict__
    np.testing.assert_array_equal(lazy.resolved().fe_cov, lazy.fe_cov)


def test_pickles_copies_and_replacements_hold_the_values(sleep_fit):
    y = sleep_fit.simulate(1, seed=5)[:, 0]
    reference = sleep_fit.refit(y)
    _ = [getattr(reference, name) for name in DEFERRED]
    for make in (lambda r: pickle.loads(pickle.dumps(r)), copy.copy, copy.deepcopy,
                 lambda r: dataclasses.replace(r, converged=r.converged)):
        fresh = sleep_fit.refit(y)
        other = make(fresh)
        assert _pending(other) == set()
        _assert_same_fields(other, reference)
        np.testing.assert_array_equal(other.model.endog, y)
    state = sleep_fit.refit(y).__getstate__()
    assert not any(type(v) is Deferred for v in state.values())


def test_a_replaced_field_is_the_given_value(sleep_fit):
    fresh = sleep_fit.refit(sleep_fit.simulate(1, seed=6)[:, 0])
    beta = pd.Series([1.0, 2.0], index=fresh.fe_params.index, name="Estimate")
    changed = dataclasses.replace(fresh, fe_params=beta)
    assert changed.fe_params is beta and changed.fe_bse.equals(fresh.fe_bse)
