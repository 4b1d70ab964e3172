"""Data frames in and out: the only module that touches narwhals.

Any eager frame narwhals understands (pandas, polars, pyarrow) comes in through
:func:`ingest` (a pandas frame directly, without importing narwhals). Level order of
categorical columns: a pandas Categorical's categories or a polars Enum's declared
order, else sorted values (R's ``factor``). The model works on a pandas frame of the
used columns; frames that go back to the caller are built in the caller's own type by
:func:`to_native_like`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import DataError

if TYPE_CHECKING:  # narwhals loads on first use: a pandas frame never needs it
    import narwhals.stable.v2 as nw


@dataclass(frozen=True)
class FrameInfo:
    """What we keep of the caller's frame: its column names and its backend
    (``"pandas"``, or narwhals' implementation of the caller's library)."""

    columns: tuple[str, ...]
    backend: Any
    n_rows: int

    @property
    def is_pandas(self) -> bool:
        """Whether the caller's frame is a pandas DataFrame."""
        return isinstance(self.backend, str) or self.backend.is_pandas()


def ingest(data: Any, argument: str = "data") -> tuple[pd.DataFrame | nw.DataFrame, FrameInfo]:
    """Take any eager frame: a pandas frame as it is, another one wrapped as a narwhals
    DataFrame.

    Examples
    --------
    >>> import pandas as pd
    >>> frame, info = ingest(pd.DataFrame({"a": [1, 2]}))
    >>> info.columns, info.n_rows, info.backend
    (('a',), 2, 'pandas')
    """
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    if isinstance(data, pd.DataFrame):
        return data, FrameInfo(tuple(data.columns), "pandas", len(data))
    import narwhals.stable.v2 as nw

    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError as exc:
        raise DataError(
            f"{argument}: expected a data frame (pandas, polars or pyarrow Table), "
            f"found {type(data).__name__}"
        ) from exc
    return frame, FrameInfo(tuple(frame.columns), frame.implementation, len(frame))


def _column_to_pandas(series: nw.Series) -> pd.Series | np.ndarray:
    import narwhals.stable.v2 as nw

    dtype = series.dtype
    if dtype == nw.Enum:
        # an Enum declares its level order: the first is the reference level
        return pd.Categorical(series.to_list(), categories=list(dtype.categories))
    if dtype == nw.Categorical:
        # polars/pyarrow categoricals declare no level order: R's factor() sorts them
        values = series.to_list()
        return pd.Categorical(values, categories=sorted({v for v in values if v is not None}))
    if dtype == nw.String:
        return np.asarray(series.to_list(), dtype=object)
    if dtype.is_numeric() or dtype == nw.Boolean:
        if series.null_count():
            return series.cast(nw.Float64).to_numpy()
        return series.to_numpy()
    return np.asarray(series.to_list(), dtype=object)


def select_as_pandas(frame: pd.DataFrame | nw.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The named columns as a new pandas frame (categorical order kept; the caller's
    frame is not modified)."""
    if isinstance(frame, pd.DataFrame) or frame.implementation.is_pandas():
        native = frame if isinstance(frame, pd.DataFrame) else frame.to_native()
        out = native.loc[:, list(columns)].copy()
        out.index = pd.RangeIndex(len(out))
        return out
    return pd.DataFrame({c: _column_to_pandas(frame[c]) for c in columns})


def missing_rows(table: pd.DataFrame) -> np.ndarray:
    """Boolean mask of rows with a missing value in any column."""
    return table.isna().to_numpy().any(axis=1) if table.shape[1] else np.zeros(len(table), bool)


def to_native_like(columns: dict[str, Any], info: FrameInfo) -> Any:
    """Build a frame of the caller's type from a dict of equal-length columns.

    Examples
    --------
    >>> import pandas as pd
    >>> _, info = ingest(pd.DataFrame({"a": [1]}))
    >>> type(to_native_like({"b": [2.0]}, info)).__name__
    'DataFrame'
    """
    data = {k: (np.asarray(v) if not isinstance(v, pd.Categorical) else v) for k, v in columns.items()}
    if info.is_pandas:
        return pd.DataFrame(data)
    import narwhals.stable.v2 as nw

    return nw.from_dict(data, backend=info.backend).to_native()
