"""Sums over partitions by a tree reduction on the Dask cluster: each partition's
statistics are computed where the partition lives, added in groups of
:data:`SPLIT_EVERY` on the workers, and only the total reaches the driver."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from operator import add
from typing import Any

SPLIT_EVERY = 8
"""How many partial sums a node of the reduction tree adds."""


def _total(*parts: Any) -> Any:
    """The sum of the partial statistics that are not None (an empty partition's)."""
    present = [p for p in parts if p is not None]
    return reduce(add, present) if present else None


def tree_sum(frame: Any, statistic: Callable[..., Any], *arguments: Any, split_every: int = SPLIT_EVERY) -> Any:
    """``statistic(partition, *arguments)`` of every partition of the Dask frame,
    summed with ``+`` by a tree reduction (None for a partition without rows); the
    total, computed.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"a": range(10)}), npartitions=4)
    >>> tree_sum(ddf, lambda part: int(part["a"].sum()), split_every=2)
    45
    """
    import dask

    level = [dask.delayed(statistic)(part, *arguments) for part in frame.to_delayed()]
    while len(level) > 1:
        level = [dask.delayed(_total)(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    (total,) = dask.compute(dask.delayed(_total)(*level))
    return total


def tree_sums(frame: Any, statistic: Callable[..., Any], n_outputs: int, *arguments: Any,
              split_every: int = SPLIT_EVERY) -> list:
    """As :func:`tree_sum` for a ``statistic`` that returns a tuple of ``n_outputs``
    statistics: one tree reduction per entry, over the same per-partition tasks, each
    total a ``dask.delayed`` object not yet computed (compute them together, or keep
    them on the workers with ``Client.compute``).

    Examples
    --------
    >>> import dask, pandas as pd, dask.dataframe as dd
    >>> ddf = dd.from_pandas(pd.DataFrame({"a": range(10)}), npartitions=4)
    >>> dask.compute(*tree_sums(ddf, lambda part: (len(part), int(part["a"].sum())), 2))
    (10, 45)
    """
    import dask

    parts = [dask.delayed(statistic, nout=n_outputs)(part, *arguments) for part in frame.to_delayed()]
    totals = []
    for entry in range(n_outputs):
        level = [part[entry] for part in parts]
        while len(level) > 1:
            level = [dask.delayed(_total)(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
        totals.append(dask.delayed(_total)(*level))
    return totals
