"""Frames in: pandas, polars and pyarrow, with their categorical level orders."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import interlace
from interlace.frames import ingest, select_as_pandas, to_native_like


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
