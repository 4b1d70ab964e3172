"""A frozen dataclass's copy with some fields changed, without ``dataclasses.replace``,
and a new instance from all its fields' values, without ``__init__``.

``replace`` builds the copy through ``__init__`` (every field passed again, a few
microseconds each): on a refit's path, which makes several such copies of a design
with a new response, that is a sizeable share of the refit. :func:`with_fields`
copies the instance's ``__dict__`` instead, so the values it caches
(``functools.cached_property``) come along: use it only where none of them depends on
the fields changed, and on classes without ``__post_init__``. :func:`from_fields`
writes every field's value into a new instance's ``__dict__`` as a frozen dataclass's
``__init__`` does (field by field through ``object.__setattr__``, a fitted model's
thirty fields a few microseconds), for classes whose fields are plain or
:class:`~interlace.deferred.DeferredField` (which store their value as given).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any, TypeVar

Instance = TypeVar("Instance")


@cache
def _field_names(cls: type) -> frozenset[str]:
    """The field names of a dataclass without ``__post_init__`` (checked once per class)."""
    if not is_dataclass(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"instance: expected a dataclass without __post_init__, found {cls.__name__}")
    return frozenset(f.name for f in fields(cls))


def with_fields(instance: Instance, **changes: Any) -> Instance:
    """``instance`` (a dataclass) with the fields ``changes`` names set to its values,
    everything else in its ``__dict__`` (other fields, cached values) shared.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Point:
    ...     x: float
    ...     y: float
    >>> with_fields(Point(1.0, 2.0), y=3.0)
    Point(x=1.0, y=3.0)
    """
    cls = type(instance)
    names = _field_names(cls)
    if not changes.keys() <= names:  # a set comparison, no new set: the common case is quick
        unknown = set(changes) - names
        raise TypeError(f"changes: expected fields of {cls.__name__}, found {', '.join(sorted(unknown))}")
    new = object.__new__(cls)
    new.__dict__.update(instance.__dict__)
    new.__dict__.update(changes)
    return new


def from_fields(cls: type[Instance], **values: Any) -> Instance:
    """A new instance of the dataclass ``cls`` (without ``__post_init__``) whose fields
    hold ``values``, every field given; ``__init__`` is not called. Its ``__dict__``
    keeps the order of ``values``: given in the fields' order, it is the one
    ``__init__`` would make.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Point:
    ...     x: float
    ...     y: float = 0.0
    >>> from_fields(Point, x=1.0, y=2.0) == Point(1.0, 2.0)
    True
    """
    names = _field_names(cls)
    if values.keys() != names:
        missing, unknown = sorted(names - set(values)), sorted(set(values) - names)
        raise TypeError(f"values: expected every field of {cls.__name__} and no other, found "
                        f"{', '.join(missing)} missing and {', '.join(unknown) or 'nothing'} unknown")
    new = object.__new__(cls)
    new.__dict__.update(values)
    return new
