"""Frames in: pandas, polars and pyarrow, with their categorical level orders."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import interlace
from interlace.errors import DataError
from interlace.frames import (
    ingest,
    model_columns,
    row_values,
    same_values,
    select_as_pandas,
    to_native_like,
    with_column,
)


@pytest.fixture(scope="module")
def cake():
    return interlace.load_dataset("cake")


def test_polars_enum_order_sets_the_reference_level(cake):
    frame = pl.DataFrame({
        "angle": cake["angle"].to_numpy(),
        "recipe": pl.Series(cake["recipe"].astype(str).tolist(), dtype=pl.Enum(["C", "A", "B"])),
        "replicate": cake["replicate"].astype(str).tolist(),
    })
    m = interlace.fit("angle ~ recipe + (1 | replicate)", frame)
    assert list(m.fe_params.index) == ["Intercept", "recipe[T.A]", "recipe[T.B]"]


def test_polars_categorical_and_strings_sort_like_r(cake):
    frame = pl.DataFrame({
        "angle": cake["angle"].to_numpy(),
        "recipe": pl.Series(["C" if r == "A" else r for r in cake["recipe"].astype(str)], dtype=pl.Categorical),
        "replicate": cake["replicate"].astype(str).tolist(),
    })
    m = interlace.fit("angle ~ recipe + (1 | replicate)", frame)
    assert list(m.fe_params.index) == ["Intercept", "recipe[T.C]"]


def test_pyarrow_table_matches_pandas(cake):
    table = pa.table({
        "angle": cake["angle"].to_numpy(),
        "recipe": pa.array(cake["recipe"].astype(str).tolist()).dictionary_encode(),
        "replicate": pa.array(cake["replicate"].astype(str).tolist()),
    })
    a = interlace.fit("angle ~ recipe + (1 | replicate)", table)
    b = interlace.fit("angle ~ recipe + (1 | replicate)", cake)
    np.testing.assert_allclose(a.fe_params.to_numpy(), b.fe_params.to_numpy(), rtol=1e-10)
    assert a.llf == pytest.approx(b.llf, rel=1e-12)


@pytest.mark.parametrize("backend", ["pandas", "polars", "pyarrow"])
def test_output_frame_has_the_callers_type(cake, backend):
    native = {"pandas": cake, "polars": pl.from_pandas(cake[["angle"]]), "pyarrow": pa.table({"angle": cake["angle"].to_numpy()})}[backend]
    frame, info = ingest(native)
    out = to_native_like({"angle": np.arange(3.0)}, info)
    assert type(out) is type(native)
    assert select_as_pandas(frame, ["angle"]).shape == (len(cake), 1)


# ----- issue 13: what comes in, and what the model can read --------------------------------


def test_ingest_refuses_what_is_not_an_eager_frame():
    with pytest.raises(DataError, match=r"data: expected columns of equal length, found a: 2, b: 1"):
        ingest({"a": [1, 2], "b": [1.0]})
    with pytest.raises(DataError, match=r"data: expected a sequence of values for column 'a', found a single int"):
        ingest({"a": 1})
    with pytest.raises(DataError, match=r"column 'a', found an array of shape \(2, 2\)"):
        ingest({"a": np.zeros((2, 2))})
    with pytest.raises(DataError, match=r"newdata: expected an eager data frame, found a lazy polars LazyFrame.*collect"):
        ingest(pl.DataFrame({"a": [1]}).lazy(), "newdata")
    with pytest.raises(DataError, match=r"data: duplicate column names 'a' \(2 times\)"):
        ingest(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]))
    with pytest.raises(DataError, match=r"data: expected a data frame .* found Series"):
        ingest(pl.Series("a", [1]))


def test_select_refuses_a_used_duplicate_name():
    frame = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "a", "b"])
    assert select_as_pandas(frame, ["b"]).shape == (1, 1)
    with pytest.raises(DataError, match=r"duplicate column names 'a' \(2 times\)"):
        select_as_pandas(frame, ["a", "b"])


def test_polars_and_pyarrow_columns_become_model_types():
    frame = pl.DataFrame({
        "dec": pl.Series([decimal.Decimal("1.5"), None], dtype=pl.Decimal(5, 1)),
        "i8": pl.Series([1, None], dtype=pl.Int8),
        "b": pl.Series([True, None]),
        "d": pl.Series([datetime.date(2020, 1, 1), None]),
        "t": pl.Series([datetime.time(1), datetime.time(2)]),
    })
    table = select_as_pandas(ingest(frame)[0], ["dec", "i8", "b", "d", "t"])
    assert table["dec"].tolist()[0] == 1.5 and np.isnan(table["dec"].tolist()[1])
    assert table["i8"].dtype == np.float64 and table["d"].dtype.kind == "M"
    assert table["b"].tolist() == [True, None] and table.isna().sum().tolist() == [1, 1, 1, 1, 0]
    for dtype, values in (("List", [[1], [2]]), ("Struct", [{"a": 1}, {"a": 2}])):
        with pytest.raises(DataError, match=rf"column 'x': dtype {dtype}.* cannot be used in a model"):
            select_as_pandas(ingest(pl.DataFrame({"x": values}))[0], ["x"])
    arrow = pa.table({"bin": pa.array([b"a", b"b"]), "dur": pa.array([1, 2], pa.duration("s"))})
    out = select_as_pandas(ingest(arrow)[0], ["bin", "dur"])
    assert out["bin"].tolist() == [b"a", b"b"] and out["dur"].dtype.kind == "m"


def test_model_columns_by_role():
    table = pd.DataFrame({
        "n": pd.array([1, 2, 3], dtype="Int64"),
        "f16": np.array([0.5, 1.5, 2.5], dtype=np.float16),
        "dec": [decimal.Decimal("0.5"), decimal.Decimal("1"), decimal.Decimal("2")],
        "flag": np.array([True, False, True], dtype=object),
        "d": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-01"]),
        "mixed": np.array([1, "a", 1], dtype=object),
        "word": ["a", "b", "a"],
    })
    out = model_columns(table, predictors=["n", "f16", "dec", "flag", "word"])
    assert [str(out[c].dtype) for c in ("n", "f16", "dec", "flag")] == ["float64", "float64", "float64", "bool"]
    assert out["d"].dtype.kind == "M" and out["word"].tolist() == ["a", "b", "a"]
    assert isinstance(out["mixed"].dtype, pd.CategoricalDtype)
    assert list(out["mixed"].cat.categories) == [1, "a"]  # unsortable: order of appearance
    with pytest.raises(DataError, match=r"column 'd': a predictor or response cannot have dtype datetime64"):
        model_columns(table, predictors=["d"])
    with pytest.raises(DataError, match=r"column 'mixed': a predictor or response cannot have dtype object"):
        model_columns(table, predictors=["mixed"])
    with pytest.raises(DataError, match=r"column 'c': dtype complex128 \(complex numbers\)"):
        model_columns(pd.DataFrame({"c": [1 + 1j]}), predictors=[])
    with pytest.raises(DataError, match=r"column 'l': dtype object holds list values"):
        model_columns(pd.DataFrame({"l": pd.Series([[1], [2]])}), predictors=[])


def _mixed_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "y": [1.0, 2.5, np.nan, 4.0],
        "n": pd.array([1, None, 3, 4], dtype="Int64"),
        "i": np.array([1, 2, 3, 4], dtype=np.int64),
        "g": pd.Categorical(["b", "a", "b", "c"], categories=["c", "b", "a"]),
        "w": ["a", "b", "a", None],
        "flag": [True, False, True, True],
        "d": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-01", None]),
        "o": np.array([1, "a", 1, 2], dtype=object),
    }, index=[10, 11, 12, 13])


@pytest.mark.parametrize("columns", [["y", "n", "i", "g", "w", "flag", "d", "o"],  # every column, in order
                                     ["g", "y", "o"], ["d"], ["w", "i", "n"]])
def test_select_as_pandas_is_the_label_selection(columns):
    frame = _mixed_frame()
    before = frame.copy(deep=True)
    out = select_as_pandas(frame, columns)
    expected = frame.loc[:, columns].copy()
    expected.index = pd.RangeIndex(len(expected))
    pd.testing.assert_frame_equal(out, expected, check_index_type=True, check_column_type=True)
    assert out.columns.dtype == pd.Index(columns).dtype
    out.iloc[0, 0] = out.iloc[1, 0]  # a copy: the caller's frame never changes
    pd.testing.assert_frame_equal(frame, before)


def test_model_columns_is_a_new_frame_whether_or_not_a_column_changes():
    plain = pd.DataFrame({"y": [1.0, 2.0], "g": pd.Categorical(["a", "b"]), "w": np.array(["a", "b"], dtype=object)})
    for table, predictors in ((plain, ["y"]), (plain.set_axis([5, 6]), ["y"]), (_mixed_frame().dropna(), ["y", "n"])):
        out = model_columns(table, predictors)
        rebuilt = pd.DataFrame({c: out[c].to_numpy() if not isinstance(out[c].dtype, pd.CategoricalDtype)
                                else out[c].array for c in out.columns}, index=pd.RangeIndex(len(table)))
        pd.testing.assert_frame_equal(out, rebuilt, check_index_type=True, check_column_type=True)
        assert out is not table
    out = model_columns(plain, ["y"])
    out["y"] = 0.0
    assert plain["y"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("backend", ["pandas", "polars", "pyarrow"])
def test_with_column_makes_a_new_frame_of_the_callers_type(cake, backend):
    native = {"pandas": cake[["angle"]], "polars": pl.from_pandas(cake[["angle"]]),
              "pyarrow": pa.table({"angle": cake["angle"].to_numpy()})}[backend]
    out = with_column(native, "g", np.array(["a"] * len(cake), dtype=object))
    assert type(out) is type(native) and list(out.columns if backend != "pyarrow" else out.column_names) == ["angle", "g"]
    assert (native.shape[1] if backend != "pyarrow" else native.num_columns) == 1  # the caller's is unchanged


def test_row_values_of_every_series_type():
    expected = ["a", "b", None]
    for values, name in ((pd.Series(expected, name="g"), "g"), (pl.Series("h", expected), "h"),
                         (pa.chunked_array([expected]), None), (pa.array(expected), None),
                         (np.array(expected, dtype=object), None), (pd.Series(expected), None)):
        found, out = row_values(values, "groups")
        assert found == name and same_values(out, expected)
    assert row_values(["g"], "groups") is None and row_values("g", "groups") is None
    with pytest.raises(DataError, match=r"groups: expected a 1-d array of the rows' values, found shape \(1, 3\)"):
        row_values(np.zeros((1, 3)), "groups")


@pytest.mark.parametrize("values", [pd.Index(["b", "a"], name="g"), pd.Categorical(["x", "y"]).categories,
                                    pd.Index([3, 1]), pd.Index(["a", 1], dtype=object),
                                    pd.Index(pd.array(["a", "b"], dtype="string")), pd.Index([1.0, 2.5])])
def test_level_labels_are_python_strings_in_pandas_default_dtype(values):
    from interlace.design import _level_labels, level_label

    labels = _level_labels(values)
    expected = pd.Index([level_label(v) if not isinstance(v, str) else v for v in values])
    pd.testing.assert_index_equal(labels, expected, exact=True)
    assert labels.name is None and labels is not values
