"""Reading the lme4 reference JSONs in tests/data/reference."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"


@cache
def index() -> list[dict]:
    """The reference cases (dataset, formula, REML, json)."""
    return json.loads((REFERENCE_DIR / "index.json").read_text())


@cache
def load(name: str) -> dict:
    """One reference JSON by file name."""
    return json.loads((REFERENCE_DIR / name).read_text())


def case_id(case: dict) -> str:
    return case["json"].removesuffix(".json")


def dataset_name(case: dict) -> str:
    return case["dataset"].removesuffix(".csv")


def r_fixef_name(name: str) -> str:
    """formulaic's column name as R writes it: ``recipe[T.B]:temp`` -> ``recipeB:temp``."""
    if name == "Intercept":
        return "(Intercept)"
    return re.sub(r"([A-Za-z0-9_.]+)\[T\.([^\]]+)\]", r"\1\2", name)
