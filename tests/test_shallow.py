"""Shallow copies of frozen dataclasses with fields changed (:mod:`interlace.shallow`)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pytest

import interlace
from interlace.shallow import with_fields


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
