"""Data frames in and out: the only module that touches narwhals.

Any eager frame narwhals understands (pandas, polars, pyarrow) comes in through
:func:`ingest` (a pandas frame directly, without importing narwhals). Level order of
categorical columns: a pandas Categorical's categories or a polars Enum's declared
order, else sorted values (R's ``factor``). The model works on a pandas frame of the
used columns; frames that go back to the caller are built in the caller's own type by
:func:`to_native_like`.
"""

from __future__ import annotations

from collections.abc import Collection
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
    DataFrame. A dict of equal-length columns is read as a pandas frame.

    Examples
    --------
    >>> import pandas as pd
    >>> frame, info = ingest(pd.DataFrame({"a": [1, 2]}))
    >>> info.columns, info.n_rows, info.backend
    (('a',), 2, 'pandas')
    >>> ingest({"a": [1, 2], "b": [1.0]})
    Traceback (most recent call last):
    ...
    interlace.errors.DataError: data: expected columns of equal length, found a: 2, b: 1
    """
    if isinstance(data, dict):
        data = _dict_frame(data, argument)
    if isinstance(data, pd.DataFrame):
        return data, FrameInfo(tuple(data.columns), "pandas", len(data))
    import narwhals.stable.v2 as nw

    _refuse_duplicate_names(getattr(data, "column_names", None), argument)  # pyarrow allows them, narwhals not
    try:
        frame = nw.from_native(data)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{argument}: expected a data frame (pandas, polars or pyarrow Table), "
            f"found {type(data).__name__}"
        ) from exc
    if isinstance(frame, nw.LazyFrame):
        raise DataError(
            f"{argument}: expected an eager data frame, found a lazy "
            f"{type(data).__module__.split('.')[0]} {type(data).__name__}; "
            "collect it first (polars: `data.collect()`)"
        )
    if not isinstance(frame, nw.DataFrame):
        raise DataError(
            f"{argument}: expected a data frame (pandas, polars or pyarrow Table), "
            f"found {type(data).__name__}"
        )
    return frame, FrameInfo(tuple(frame.columns), frame.implementation, len(frame))


def _dict_frame(data: dict, argument: str) -> pd.DataFrame:
    """A dict of columns as a pandas frame: every value one-dimensional, all of one length."""
    lengths: dict[str, int] = {}
    for name, values in data.items():
        if not hasattr(values, "__len__") or isinstance(values, (str, bytes)):
            raise DataError(f"{argument}: expected a sequence of values for column {name!r}, "
                            f"found a single {type(values).__name__}")
        if getattr(values, "ndim", 1) != 1:
            raise DataError(f"{argument}: expected one value per row in column {name!r}, "
                            f"found an array of shape {np.shape(values)}")
        lengths[str(name)] = len(values)
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise DataError(f"{argument}: expected columns of equal length, found {found}")
    try:
        return pd.DataFrame(data)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{argument}: could not read the dict as a data frame ({exc})") from exc


def _refuse_duplicate_names(columns: Any, argument: str, used: Any = None) -> None:
    """A DataError when a column name appears more than once (among ``used``, if given)."""
    if columns is None or (isinstance(columns, pd.Index) and columns.is_unique):
        return  # pandas keeps whether an Index is unique: no count needed
    names = list(columns)
    counts = pd.Series(names, dtype=object).value_counts(sort=False) if names else pd.Series(dtype=int)
    duplicated = [name for name, count in counts.items() if count > 1 and (used is None or name in used)]
    if duplicated:
        listed = ", ".join(f"{name!r} ({counts[name]} times)" for name in duplicated)
        raise DataError(f"{argument}: duplicate column names {listed}; give every column a unique name")


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
    if dtype == nw.Decimal:
        return series.cast(nw.Float64).to_numpy()
    if dtype.is_numeric():
        wide = tuple(t for t in (getattr(nw, "Int128", None), getattr(nw, "UInt128", None)) if t is not None)
        if series.null_count() or any(dtype == t for t in wide):
            # numpy has no 128-bit integers (and polars 2.0's to_numpy panics on them): as float64
            return series.cast(nw.Float64).to_numpy()
        try:
            return series.to_numpy()
        except Exception:  # numpy has no such type (Int128): as float64
            return series.cast(nw.Float64).to_numpy()
    if dtype == nw.Boolean:
        return series.to_numpy() if not series.null_count() else _object_array(series.to_list())
    if dtype in (nw.Date, nw.Datetime, nw.Duration):
        return series.to_numpy()  # datetime64 / timedelta64, NaT where missing
    if dtype in (nw.List, nw.Array, nw.Struct, nw.Object):
        raise DataError(f"column {series.name!r}: dtype {dtype} cannot be used in a model; {EXPECTED_KINDS}")
    values = series.to_list()
    for value in values:
        if not _hashable(value):
            raise DataError(f"column {series.name!r}: dtype {dtype} holds {type(value).__name__} values, "
                            f"which cannot be used in a model; {EXPECTED_KINDS}")
    return _object_array(values)


EXPECTED_KINDS = "expected numbers, booleans, strings or a categorical (or dates for a grouping factor)"


def _hashable(value: Any) -> bool:
    if isinstance(value, (list, dict, set, np.ndarray, pd.Series)):
        return False
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _object_array(values: list) -> np.ndarray:
    """A 1-d object array of ``values`` (never broadcast into more dimensions)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


TEXT_DTYPE = pd.Index(["a"]).dtype
"""The dtype pandas gives an Index of Python strings (``str`` from pandas 3, object before)."""


def select_as_pandas(frame: pd.DataFrame | nw.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The named columns as a new pandas frame (categorical order kept; the caller's
    frame is not modified). A name that appears more than once in a pandas frame is a
    :class:`~interlace.errors.DataError`."""
    if isinstance(frame, pd.DataFrame) or frame.implementation.is_pandas():
        native = frame if isinstance(frame, pd.DataFrame) else frame.to_native()
        _refuse_duplicate_names(native.columns, "data", set(columns))
        columns = list(columns)
        if list(native.columns) == columns:  # every column, in order: one copy of the blocks
            out = native.copy(deep=True)
            out.index = pd.RangeIndex(len(out))
            labels = native.columns
            if not (labels.name is None and labels.dtype == TEXT_DTYPE and all(type(c) is str for c in columns)):
                out.columns = pd.Index(columns)  # the labels as a dict's keys give them below
            return out
        return pd.DataFrame({c: native[c].array.copy() for c in columns}, index=pd.RangeIndex(len(native)),
                            copy=False)  # column by column: selecting mixed blocks is slower
    return pd.DataFrame({c: _column_to_pandas(frame[c]) for c in columns})


def model_columns(table: pd.DataFrame, predictors: Collection[str]) -> pd.DataFrame:
    """The used columns of the rows kept, in types the design reads: numbers (numpy
    int or float; decimals and nullable numbers as float64), booleans, strings and
    categoricals; dates, times and other hashable values only in grouping factors.

    ``predictors`` are the columns a formula reads (response, fixed effects, random
    slopes); the others are grouping factors. A column its role cannot use is a
    :class:`~interlace.errors.DataError` naming it and its dtype.

    Examples
    --------
    >>> import pandas as pd
    >>> t = model_columns(pd.DataFrame({"y": pd.array([1, 2], dtype="Int64"),
    ...                                 "d": pd.to_datetime(["2020-01-01", "2020-01-02"])}), predictors=["y"])
    >>> str(t["y"].dtype), t["d"].dtype.kind
    ('float64', 'M')
    >>> model_columns(t, predictors=["y", "d"])
    Traceback (most recent call last):
    ...
    interlace.errors.DataError: column 'd': a predictor or response cannot have dtype datetime64[...] (dates or times); expected numbers, booleans, strings or a categorical: convert it, for example to the number of days since the first date
    """
    predictors = set(predictors)
    given = {name: table[name] for name in table.columns}
    out = {name: _model_column(str(name), column, name in predictors) for name, column in given.items()}
    index = table.index
    if (all(out[name] is column for name, column in given.items()) and isinstance(index, pd.RangeIndex)
            and index.start == 0 and index.step == 1):
        return table.copy(deep=False)  # every column as it is, on rows 0..n-1: no new frame to build
    return pd.DataFrame(out, index=pd.RangeIndex(len(table)))


def _model_column(name: str, column: pd.Series, predictor: bool) -> Any:
    kind, values = _kind(name, column)
    if predictor and kind not in ("number", "bool", "text", "category"):
        what = {"time": "dates or times", "other": "values that are neither numbers nor strings"}[kind]
        raise DataError(
            f"column {name!r}: a predictor or response cannot have dtype {column.dtype} ({what}); "
            "expected numbers, booleans, strings or a categorical: convert it, "
            + ("for example to the number of days since the first date" if kind == "time"
               else "for example to strings"))
    if kind == "other":  # a grouping factor of other values: levels sorted when they can be
        unique = list(pd.unique(np.asarray(values, dtype=object)))
        try:
            unique = sorted(unique)
        except TypeError:
            pass  # values of several types: levels in order of appearance
        return pd.Categorical(np.asarray(values, dtype=object), categories=unique)
    return values


def _kind(name: str, column: pd.Series) -> tuple[str, Any]:
    """(kind, values in the design's type) of one column without missing values."""
    dtype = column.dtype
    api = pd.api.types
    if isinstance(dtype, pd.CategoricalDtype):
        return "category", column
    if api.is_bool_dtype(dtype):
        return "bool", column if dtype == np.bool_ else column.to_numpy(dtype=bool)
    if api.is_complex_dtype(dtype):
        raise DataError(f"column {name!r}: dtype {dtype} (complex numbers) cannot be used in a model; "
                        f"{EXPECTED_KINDS}")
    if api.is_numeric_dtype(dtype) and not isinstance(dtype, pd.SparseDtype):
        if isinstance(dtype, np.dtype) and (dtype.kind in "iu" or dtype == np.float64):
            return "number", column
        return "number", column.to_numpy(dtype=np.float64)  # float16/32, nullable and arrow numbers
    if isinstance(dtype, pd.SparseDtype):
        return _kind(name, pd.Series(column.sparse.to_dense(), name=column.name))
    if api.is_datetime64_any_dtype(dtype) or api.is_timedelta64_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "time", column
    if api.is_object_dtype(dtype):
        inferred = api.infer_dtype(column, skipna=True)
        if inferred in ("string", "empty"):
            return "text", column
        if inferred == "boolean":
            return "bool", column.to_numpy(dtype=bool)
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "number", column.to_numpy(dtype=np.float64)
        if inferred == "complex":
            raise DataError(f"column {name!r}: complex numbers cannot be used in a model; {EXPECTED_KINDS}")
        for value in column:
            if not _hashable(value):
                raise DataError(f"column {name!r}: dtype object holds {type(value).__name__} values, which "
                                f"cannot be used in a model; {EXPECTED_KINDS}")
        if inferred in ("date", "datetime", "datetime64", "timedelta", "time", "period"):
            return "time", column
        return "other", column
    if api.is_string_dtype(dtype):  # pandas' string dtypes: as Python strings, which formulaic reads as factors
        return "text", column.to_numpy(dtype=object)
    for value in column:
        if not _hashable(value):
            raise DataError(f"column {name!r}: dtype {dtype} holds {type(value).__name__} values, which "
                            f"cannot be used in a model; {EXPECTED_KINDS}")
    return "other", column


def row_values(values: Any, argument: str) -> tuple[str | None, np.ndarray | pd.Categorical] | None:
    """A Series or 1-d array (pandas, polars, pyarrow, numpy) given where a column name
    is expected: its name (None when it has none) and its values; None when ``values``
    is not such an object.

    Examples
    --------
    >>> import pandas as pd
    >>> row_values(pd.Series(["a", "b"], name="g"), "groups")
    ('g', array(['a', 'b'], dtype=object))
    >>> row_values("g", "groups") is None
    True
    """
    if isinstance(values, (str, bytes, list, tuple, dict)) or values is None:
        return None
    if isinstance(values, (pd.Series, pd.Index)):
        name = values.name if isinstance(values.name, str) and values.name else None
        array = values.array
        out = array if isinstance(array, pd.Categorical) else _object_array(list(array))
    elif isinstance(values, pd.Categorical):
        name, out = None, values
    elif isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise DataError(f"{argument}: expected a 1-d array of the rows' values, found shape {values.shape}")
        name, out = None, _object_array(values.tolist())
    elif type(values).__module__.split(".")[0] == "pyarrow" and hasattr(values, "to_pylist"):
        name, out = None, _object_array(values.to_pylist())  # a pyarrow Array or ChunkedArray
    else:
        import narwhals.stable.v2 as nw

        try:
            series = nw.from_native(values, series_only=True)
        except TypeError:
            return None
        name = series.name if isinstance(series.name, str) and series.name else None
        out = _column_to_pandas(series)
        out = out if isinstance(out, pd.Categorical) else _object_array(list(out))
    return name, out


def numeric_values(values: Any, argument: str) -> np.ndarray:
    """Numbers given per row (a list, numpy/pandas/polars/pyarrow array or Series) as a
    float64 array, None and NaN as NaN (a missing value); an error naming ``argument``
    for anything else.

    Examples
    --------
    >>> numeric_values([1, 2.5, None], "weights").tolist()
    [1.0, 2.5, nan]
    >>> numeric_values(["a"], "offset")
    Traceback (most recent call last):
    ...
    interlace.errors.DataError: offset: expected numbers, one per row of data, found 'a'
    """
    if isinstance(values, (list, tuple)):
        items = list(values)
    else:
        found = row_values(values, argument)
        if found is None:
            raise DataError(f"{argument}: expected a column name or one number per row of data, "
                            f"found {type(values).__name__}")
        items = list(np.asarray(found[1], dtype=object))
    out = np.empty(len(items))
    for i, item in enumerate(items):
        if item is None:
            out[i] = np.nan
        elif isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float, np.integer, np.floating)):
            raise DataError(f"{argument}: expected numbers, one per row of data, found {item!r}")
        else:
            out[i] = float(item)
    return out


def same_values(a: Any, b: Any) -> bool:
    """Whether two columns hold the same values row by row (missing values equal)."""
    a, b = _object_array(list(a)), _object_array(list(b))
    if len(a) != len(b):
        return False
    missing_a, missing_b = pd.isna(a), pd.isna(b)
    if not np.array_equal(missing_a, missing_b):
        return False
    keep = ~missing_a
    return bool(np.all(a[keep] == b[keep]))


def with_column(data: Any, name: str, values: np.ndarray | pd.Categorical, argument: str = "data") -> Any:
    """A new frame of the caller's type: ``data`` with one more column (``data`` is
    not modified).

    Examples
    --------
    >>> import polars as pl
    >>> with_column(pl.DataFrame({"y": [1.0, 2.0]}), "g", np.array(["a", "b"], dtype=object)).columns
    ['y', 'g']
    """
    frame, info = ingest(data, argument)
    if isinstance(frame, pd.DataFrame):
        return frame.assign(**{name: values})
    import narwhals.stable.v2 as nw

    listed = list(values.astype(object)) if isinstance(values, pd.Categorical) else list(values)
    column = nw.new_series(name, listed, backend=info.backend)
    return frame.with_columns(column).to_native()


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
