"""The robustness suites' shared settings and invariant pieces: the caller's frame unchanged, and an
error message that names a column or argument (tests/test_robustness.py,
tests/test_robustness_glmm.py)."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, settings

from interlace.errors import InterlaceError

try:
    import polars as pl
except ImportError:  # pragma: no cover - polars is a test extra
    pl = None
try:
    import pyarrow as pa
except ImportError:  # pragma: no cover - pyarrow is a test extra
    pa = None

EXAMPLES = int(os.environ.get("INTERLACE_ROBUSTNESS_EXAMPLES", "30"))
"""Hypothesis examples per property (INTERLACE_ROBUSTNESS_RANDOM draws them afresh)."""
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("INTERLACE_ROBUSTNESS_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
ALLOWED_ERRORS = (InterlaceError, ValueError, TypeError)
"""The exceptions a bad input may raise (with a message naming the column or argument)."""


def snapshot(frame: Any) -> Any:
    """A copy to compare the caller's frame with after the call."""
    if isinstance(frame, pd.DataFrame):
        return frame.copy(deep=True)
    if pl is not None and isinstance(frame, pl.DataFrame):
        return frame.clone()
    if pa is not None and isinstance(frame, pa.Table):
        return pa.table(frame.columns, schema=frame.schema)  # immutable; compared by value below
    if isinstance(frame, dict):
        return copy.deepcopy(frame)
    return frame


def assert_unchanged(frame: Any, before: Any) -> None:
    if isinstance(frame, pd.DataFrame):
        pd.testing.assert_frame_equal(frame, before, check_exact=True)
    elif pl is not None and isinstance(frame, pl.DataFrame):
        assert frame.schema == before.schema
        for a, b in zip(frame.get_columns(), before.get_columns(), strict=True):
            assert a.equals(b, null_equal=True) if a.dtype != pl.Object else a.to_list() == b.to_list()
    elif pa is not None and isinstance(frame, pa.Table):
        assert frame.schema.equals(before.schema)
        for a, b in zip(frame.columns, before.columns, strict=True):
            assert a.equals(b) or pd.Series(a.to_pylist(), dtype=object).equals(pd.Series(b.to_pylist(), dtype=object))
    elif isinstance(frame, dict):
        assert list(frame) == list(before)
        for k in frame:
            a, b = ([v] if np.ndim(v) == 0 else list(v) for v in (frame[k], before[k]))
            assert pd.Series(a, dtype=object).equals(pd.Series(b, dtype=object))


def names_one_of(message: str, names: list[str]) -> bool:
    """Whether an error message names one of ``names`` (a column, quoted or in a list of
    columns, or an argument, as ``argument:`` / ``argument=``)."""
    for name in names:
        if re.search(rf"{re.escape(name)}\s*[:=]", message) or repr(name) in message or f"`{name}`" in message:
            return True
        if re.search(rf"(^|[\s,(]){re.escape(name)}([\s,)]|$)", message):
            return True
    return False
