"""Fits from frames that do not fit in one process: Dask DataFrames (read from
Parquet, CSV or anything Dask reads), by sufficient statistics.

Every cross-product the linear mixed model needs (Z'Z, Z'X, X'X, Z'y, y'y, weighted
where the model has prior weights) is a sum over rows, so it is computed partition by
partition with the same arithmetic as in memory and added up by a tree reduction on
the Dask cluster; the factorisations and the optimiser then run on the driver, on
matrices of the size of the random-effects system only. No array with one entry per
row is collected to the driver.

Passes over the rows (each one Dask computation, in the cluster):

1. :mod:`~interlace.partitioned.levels`: the levels of every grouping factor and
   categorical predictor, and the rows with missing values.
2. :mod:`~interlace.partitioned.moments`: R of the QR of [X y] (merged by QR of the
   stacked R's) and X's centred moments: the rank check, the exact-fit check and the
   working scale (:mod:`interlace.fitting.conditioning`), as in memory.
3. :mod:`~interlace.partitioned.crossproducts`: the working design's cross-products.

Per-row outputs (fitted values, residuals, predictions) are Dask series, computed
when the caller computes them (:mod:`~interlace.partitioned.outputs`).
"""

from __future__ import annotations

from typing import Any


def is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame (without importing Dask).

    Examples
    --------
    >>> import pandas as pd
    >>> is_dask_frame(pd.DataFrame({"a": [1]}))
    False
    """
    module = type(data).__module__ or ""
    return (module.split(".", 1)[0] == "dask" and hasattr(data, "map_partitions") and hasattr(data, "npartitions")
            and hasattr(data, "columns"))
