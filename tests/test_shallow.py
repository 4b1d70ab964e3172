"""Shallow copies of frozen dataclasses with fields changed (:mod:`interlace.shallow`)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pytest

import interlace
from interlace.deferred import Deferred, DeferredField
from interlace.shallow import from_fields, with_fields


@dataclasses.dataclass(frozen=True)
class _Named:
    names: tuple
    values: np.ndarray

    @cached_property
    def count(self) -> int:
        return len(self.names)


def test_changed_fields_are_set_and_the_rest_shared():
    first = _Named(("a", "b"), np.zeros(2))
    assert first.count == 2
    values = np.ones(2)
    second = with_fields(first, values=values)
    assert second.values is values and second.names is first.names and first.values[0] == 0.0
    assert second.__dict__["count"] == 2  # a cached value comes along


def test_unknown_fields_and_post_init_are_refused():
    with pytest.raises(TypeError, match="changes: expected fields of _Named, found other"):
        with_fields(_Named((), np.zeros(0)), other=1)

    @dataclasses.dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self):
            pass

    with pytest.raises(TypeError, match="instance: expected a dataclass without __post_init__"):
        with_fields(Checked(1), x=2)


def test_a_refit_design_has_the_new_response_only():
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", interlace.load_dataset("sleepstudy"))
    y = m.simulate(1, seed=7)[:, 0]
    again = m.refit(y)
    np.testing.assert_array_equal(again._conditioning.design.y, y)
    np.testing.assert_array_equal(m._conditioning.design.y, m.model.endog)  # the fit's own is untouched
    assert again._system.design.fixed.matrix is m._system.design.fixed.matrix
    assert not np.array_equal(again._system.design.y, m._system.design.y)
    assert again._conditioning.design.fixed_index.equals(m._conditioning.design.fixed_index)


@dataclasses.dataclass(frozen=True)
class _Lazy:
    first: int
    second: int = DeferredField()
    third: str = "x"


def test_from_fields_makes_what_init_makes():
    made = from_fields(_Lazy, first=1, second=Deferred(abs, -2), third="y")
    built = _Lazy(1, Deferred(abs, -2), "y")
    assert list(made.__dict__) == list(built.__dict__) == ["first", "second", "third"]
    assert made == built and made.second == 2 and type(made) is _Lazy
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.first = 3


def test_from_fields_wants_every_field_and_no_other():
    with pytest.raises(TypeError, match="expected every field of _Lazy and no other, found third missing"):
        from_fields(_Lazy, first=1, second=2)
    with pytest.raises(TypeError, match="found  missing and fourth unknown"):
        from_fields(_Lazy, first=1, second=2, third="z", fourth=4)


def test_a_fit_result_is_the_one_its_init_makes():
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", interlace.load_dataset("sleepstudy"))
    for result in (m, m.refit(m.simulate(1, seed=8)[:, 0])):
        names = {f.name for f in dataclasses.fields(result)}
        state = {name: value for name, value in result.__dict__.items() if name in names}  # no cached values
        built = type(result)(**state)  # the deferred fields not computed yet: the same objects
        assert list(built.__dict__) == list(state)
        assert all(built.__dict__[name] is value for name, value in state.items())
