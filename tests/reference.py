"""Reading the lme4 reference JSONs: the shared set (tests/data/reference) and our held-out
set (tests/data/holdout)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pandas as pd

import interlace
import interlace.datasets

DATA_DIR = Path(__file__).parent / "data"
REFERENCE_DIR = DATA_DIR / "reference"
"""The project lead's shared reference set (lme4 1.1-31, lmerTest 3.1-3, pbkrtest)."""

HOLDOUT_DIR = DATA_DIR / "holdout"
"""Our own held-out set, made the same way on other public datasets (make_holdout_reference.R)."""

DATASET_DIR = DATA_DIR / "datasets"

CONVERGED_DIR = REFERENCE_DIR / "converged"


def _reference_dirs() -> tuple[Path, ...]:
    return (REFERENCE_DIR, HOLDOUT_DIR / "reference")


@cache
def all_cases() -> list[dict]:
    """Every reference case (dataset, formula, REML, json; ``weights``/``offset`` columns),
    the shared set's then the held-out set's (``set``: "shared" or "holdout")."""
    shared = [dict(c, set="shared") for c in json.loads((REFERENCE_DIR / "index.json").read_text())]
    holdout = [dict(c, set="holdout") for c in json.loads((HOLDOUT_DIR / "reference" / "index.json").read_text())]
    return shared + holdout


@cache
def index() -> list[dict]:
    """Every reference case, those with prior weights or an offset column included
    (:func:`prior_arguments`)."""
    return all_cases()


def prior_arguments(case: dict) -> dict:
    """The case's ``weights=`` and ``offset=`` arguments of ``interlace.fit`` (column
    names), for the cases that name them."""
    return {argument: case[argument] for argument in ("weights", "offset") if case.get(argument)}


def case_design(case: dict):
    """The case's model design as ``interlace.fit`` builds it (prior weights and offset
    included), before the working scale."""
    from interlace.fitting.model_frame import prepare

    return prepare(case["formula"], case_data(case), **prior_arguments(case))[0]


def _path(name: str, converged: bool) -> Path:
    for directory in _reference_dirs():
        for candidate in ((directory / "converged" / name) if converged else None, directory / name):
            if candidate is not None and candidate.exists():
                return candidate
    raise FileNotFoundError(f"reference {name!r} in none of {[str(d) for d in _reference_dirs()]}")


@cache
def load(name: str) -> dict:
    """One reference JSON by file name: lme4's output at its optimum.

    Where lme4's default optimizer stopped short of the optimum (BodyWeight, where it
    warned "Model failed to converge", Pixel, the held-out Oxboys ML fit), this is the
    same script's output with the optimizer run to convergence (``converged/``, made by
    ``make_converged_reference.R``); :func:`load_default` is the default fit's.
    """
    return json.loads(_path(name, converged=True).read_text())


@cache
def load_default(name: str) -> dict:
    """One reference JSON by file name, as lme4's default optimizer left it."""
    return json.loads(_path(name, converged=False).read_text())


def converged_names() -> list[str]:
    """The cases with a converged reference."""
    return sorted(p.name for d in _reference_dirs() for p in (d / "converged").glob("*.json"))


def case_id(case: dict) -> str:
    return case["json"].removesuffix(".json")


def dataset_name(case: dict) -> str:
    return case["dataset"].removesuffix(".csv")


def _read_with_schema(directory: Path, name: str) -> pd.DataFrame:
    schema = json.loads((directory / "schema.json").read_text())[name]
    factors = [c for c, spec in schema.items() if spec["class"] == "factor"]
    frame = pd.read_csv(directory / f"{name}.csv", dtype=dict.fromkeys(factors, str))
    for column in factors:
        frame[column] = pd.Categorical(frame[column], categories=schema[column]["levels"])
    return frame


def case_data(case: dict) -> pd.DataFrame:
    """A case's dataset with R's factor levels: a bundled one, one of tests/data/datasets,
    or the held-out set's own (tests/data/holdout/data)."""
    name = dataset_name(case)
    if case.get("set") == "holdout":
        return _read_with_schema(HOLDOUT_DIR / "data", name)
    if name.lower() in {d.lower() for d in interlace.datasets.DATASETS}:
        return interlace.load_dataset(name)
    return _read_with_schema(DATASET_DIR, name)


def r_fixef_name(name: str) -> str:
    """interlace's column name as R writes it: ``recipe[T.B]:temp`` -> ``recipeB:temp``,
    ``factor(x)[T.2]`` -> ``factor(x)2``, an indicator of every level ``g[a]`` -> ``ga``."""
    if name == "Intercept":
        return "(Intercept)"
    return re.sub(r"(?<=[A-Za-z0-9_.)`])\[(?:T\.)?([^\]]+)\]", r"\1", name)
