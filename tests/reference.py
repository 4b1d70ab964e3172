"""Reading the lme4 reference JSONs in tests/data/reference."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pandas as pd

import interlace
import interlace.datasets

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"


DATASET_DIR = Path(__file__).parent / "data" / "datasets"


@cache
def all_cases() -> list[dict]:
    """Every reference case (dataset, formula, REML, json; ``weights``/``offset`` columns)."""
    return json.loads((REFERENCE_DIR / "index.json").read_text())


@cache
def index() -> list[dict]:
    """The reference cases without prior weights or offsets (those need ``weights=`` and
    ``offset=``, not yet arguments of ``fit``)."""
    return [c for c in all_cases() if not (c.get("weights") or c.get("offset"))]


CONVERGED_DIR = REFERENCE_DIR / "converged"


@cache
def load(name: str) -> dict:
    """One reference JSON by file name: lme4's output at its optimum.

    Where lme4's default optimizer stopped short of the optimum (BodyWeight, where it
    warned "Model failed to converge", and Pixel), this is the same script's output with
    the optimizer run to convergence
    (``converged/``, made by ``make_converged_reference.R``); :func:`load_default` is
    the default fit's.
    """
    path = CONVERGED_DIR / name
    return json.loads((path if path.exists() else REFERENCE_DIR / name).read_text())


@cache
def load_default(name: str) -> dict:
    """One reference JSON by file name, as lme4's default optimizer left it."""
    return json.loads((REFERENCE_DIR / name).read_text())


def case_id(case: dict) -> str:
    return case["json"].removesuffix(".json")


def dataset_name(case: dict) -> str:
    return case["dataset"].removesuffix(".csv")


def case_data(case: dict) -> pd.DataFrame:
    """A case's dataset: a bundled one, or one of tests/data/datasets (R's factor levels
    from its schema.json)."""
    name = dataset_name(case)
    if name.lower() in {d.lower() for d in interlace.datasets.DATASETS}:
        return interlace.load_dataset(name)
    schema = json.loads((DATASET_DIR / "schema.json").read_text())[name]
    factors = [c for c, spec in schema.items() if spec["class"] == "factor"]
    frame = pd.read_csv(DATASET_DIR / f"{name}.csv", dtype=dict.fromkeys(factors, str))
    for column in factors:
        frame[column] = pd.Categorical(frame[column], categories=schema[column]["levels"])
    return frame


def r_fixef_name(name: str) -> str:
    """interlace's column name as R writes it: ``recipe[T.B]:temp`` -> ``recipeB:temp``,
    ``factor(x)[T.2]`` -> ``factor(x)2``, an indicator of every level ``g[a]`` -> ``ga``."""
    if name == "Intercept":
        return "(Intercept)"
    return re.sub(r"(?<=[A-Za-z0-9_.)`])\[(?:T\.)?([^\]]+)\]", r"\1", name)
