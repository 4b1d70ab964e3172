"""Fields of a frozen dataclass computed on first read.

A fitted model holds a few arrays (theta, beta, sigma, the factor) from which its
labelled pandas attributes follow. Building those at every fit is most of a refit's
time in a simulation loop that reads one number of each result. A field declared
``name: T = DeferredField()`` accepts either its value or a :class:`Deferred` (a
function of no arguments that computes it); the first read calls the function and
keeps its value, so later reads, ``==``, ``repr``, ``dataclasses.replace``,
``asdict``, pickling and copies all see the value, as for an ordinary field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_NO_ARGUMENT = object()  # the marker of a Deferred without an argument


class Deferred:
    """A field's value still to be computed: ``compute()`` returns it, from the function
    given (of no arguments, or of the one ``argument`` given).

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Pair:
    ...     first: int
    ...     second: int = DeferredField()
    >>> pair = Pair(1, Deferred(lambda: 2))
    >>> pair.second, pair == Pair(1, 2)
    (2, True)
    >>> Pair(1, Deferred(abs, -3)).second
    3
    """

    __slots__ = ("_function", "_argument")

    def __init__(self, compute: Callable[..., Any], argument: Any = _NO_ARGUMENT):
        # compute(argument) when an argument is given: a module-level function and an
        # object shared by several fields make one object per field, where a closure
        # makes three or four (a refit loop's garbage collections scan every one)
        self._function = compute
        self._argument = argument

    def compute(self) -> Any:
        """The value: ``compute()``, or ``compute(argument)`` when one was given."""
        if self._argument is _NO_ARGUMENT:
            return self._function()
        return self._function(self._argument)


class DeferredField:
    """A data descriptor for a dataclass field that may be given as a :class:`Deferred`.

    The value lives in the instance's ``__dict__`` under the field's own name (the
    descriptor takes precedence over it); a :class:`Deferred` there is replaced by
    its value on the first read. Read on the class it raises AttributeError, so that
    the dataclass gives the field no default.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            raise AttributeError(self.name)
        value = instance.__dict__[self.name]
        if type(value) is Deferred:
            value = value.compute()
            instance.__dict__[self.name] = value
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.name] = value  # only the dataclass's __init__ gets here: it is frozen


def accept_deferred(cls: type, name: str) -> None:
    """Let the dataclass field ``name`` of ``cls`` (already decorated) take a
    :class:`Deferred` as well as its value, keeping its default and its ``field()``
    options (``repr``, ``compare``): what :class:`DeferredField` does for a field with a
    default, which a descriptor declared in the class body cannot keep.

    Examples
    --------
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Pair:
    ...     first: int
    ...     second: int = field(default=0, compare=False)
    >>> accept_deferred(Pair, "second")
    >>> Pair(1, Deferred(lambda: 2)).second, Pair(1).second
    (2, 0)
    """
    if name not in getattr(cls, "__dataclass_fields__", {}):
        raise ValueError(f"name: expected a field of the dataclass {cls.__name__}, found {name!r}")
    descriptor = DeferredField()
    descriptor.__set_name__(cls, name)
    setattr(cls, name, descriptor)


def resolved_state(instance: Any) -> dict:
    """``instance.__dict__`` with every deferred value computed (the state its pickle
    and its copies hold, so that they do not carry the functions)."""
    for name, value in list(instance.__dict__.items()):
        if type(value) is Deferred:
            getattr(instance, name)
    return dict(instance.__dict__)
