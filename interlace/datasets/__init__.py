"""Example datasets of lme4, lmerTest, nlme and mlmRev, bundled as CSV with R's factor levels.

Examples
--------
>>> import interlace
>>> df = interlace.load_dataset("sleepstudy")
>>> df.shape, list(df.columns)
((180, 3), ['Reaction', 'Days', 'Subject'])
>>> df["Subject"].cat.categories[:3].tolist()
['308', '309', '310']
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ..errors import DataError

_HERE = Path(__file__).parent

DATASETS = ("sleepstudy", "Penicillin", "Pastes", "Dyestuff", "Dyestuff2", "cake", "InstEval", "TVbo", "Pixel",
            "BodyWeight", "Exam", "Dialyzer", "cbpp", "VerbAgg", "grouseticks", "Mmmec")
"""Names accepted by :func:`load_dataset`."""


@lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads((_HERE / "schema.json").read_text())


def load_dataset(name: str) -> pd.DataFrame:
    """One of the bundled datasets as a pandas DataFrame.

    Factor columns are pandas Categoricals with R's level order (the first
    level is the reference of treatment contrasts, as in R); numeric columns
    are float64 or int64.

    Parameters
    ----------
    name : str
        One of lme4's ``sleepstudy``, ``Penicillin``, ``Pastes``, ``Dyestuff``,
        ``Dyestuff2``, ``cake``, ``InstEval``, ``cbpp``, ``VerbAgg``, ``grouseticks``;
        lmerTest's ``TVbo``; nlme's ``Pixel``, ``BodyWeight``, ``Dialyzer``; mlmRev's
        ``Exam``, ``Mmmec`` (case-insensitive). Ordered factors of R are plain factors
        with the same level order.

    Returns
    -------
    pandas.DataFrame
        A new frame on every call.

    Examples
    --------
    >>> load_dataset("InstEval").shape
    (73421, 7)
    """
    lookup = {d.lower(): d for d in DATASETS}
    key = lookup.get(str(name).lower())
    if key is None:
        raise DataError(f"name: expected one of {', '.join(DATASETS)}, found {name!r}")
    schema = _schema()[key]
    dtypes = {c: ("string" if s["class"] == "factor" else None) for c, s in schema.items()}
    frame = pd.read_csv(_HERE / f"{key}.csv", dtype={c: str for c, t in dtypes.items() if t})
    for column, spec in schema.items():
        if spec["class"] == "factor":
            frame[column] = pd.Categorical(frame[column], categories=spec["levels"])
    return frame
