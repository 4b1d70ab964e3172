"""Reading the lme4::glmer reference JSONs: the project lead's shared set (tests/data/glmm/reference)
and our held-out set (tests/data/glmm/holdout, made by make_glmm_holdout_reference.R).

Each case is an entry of an ``index.json`` (dataset, formula, family, link, nAGQ, json, optional
``weights`` / ``offset`` column names) plus ``set``: "shared" or "holdout". The shared set's datasets are
bundled with interlace (``interlace.load_dataset``); the held-out set's are in
tests/data/glmm/holdout/data with their column classes in its ``schema.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

import interlace
import interlace.datasets

GLMM_DIR = Path(__file__).parent / "data" / "glmm"
REFERENCE_DIR = GLMM_DIR / "reference"
"""The project lead's shared glmer set (lme4 1.1-31), copied unchanged."""

HOLDOUT_DIR = GLMM_DIR / "holdout"
"""Our own held-out glmer set: HOLDOUT_DIR / "reference" (JSONs) and HOLDOUT_DIR / "data" (CSVs)."""

_SET_DIRS = {"shared": REFERENCE_DIR, "holdout": HOLDOUT_DIR / "reference"}

COMPUTED_COLUMNS: dict[str, tuple[str, Callable[[pd.DataFrame], pd.Series]]] = {
    "logexpected": ("log(expected)", lambda frame: np.log(frame["expected"])),
}
"""Columns a case uses that its CSV does not hold, as the case's ``note`` defines them
(Mmmec: "offset column logexpected = log(expected) is added to the CSV's columns before fitting")."""


@cache
def all_cases() -> list[dict]:
    """Every glmer reference case, the shared set's then the held-out set's (``set`` key)."""
    cases = []
    for name, directory in _SET_DIRS.items():
        cases += [dict(c, set=name) for c in json.loads((directory / "index.json").read_text())]
    return cases


def case_id(case: dict) -> str:
    return f"{case['set']}:{case['json'].removesuffix('.json')}"


def dataset_name(case: dict) -> str:
    return case["dataset"].removesuffix(".csv")


def _case(case: dict | str) -> dict:
    if isinstance(case, dict) and "set" in case and "json" in case:
        return case
    name = case if isinstance(case, str) else case["json"]
    matches = [c for c in all_cases() if c["json"] == name]
    if len(matches) != 1:
        raise KeyError(f"glmer reference {name!r}: {len(matches)} cases of that name")
    return matches[0]


@cache
def _load(set_name: str, json_name: str) -> dict:
    return json.loads((_SET_DIRS[set_name] / json_name).read_text())


def load_converged(name: str | dict) -> dict:
    """glmer's output run to convergence (``converged/``, made by
    make_glmm_converged_reference.R: PIRLS to tolPwrss = 1e-13 and the optimisers' tolerances
    tightened), where there is one, else the default fit's (:func:`load`). lme4's default PIRLS
    tolerance leaves its Cholesky factor an iteration behind the mode: its deviance and its
    finite-difference Hessian (the SEs) then differ from the Laplace approximation's."""
    case = _case(name)
    path = _SET_DIRS[case["set"]] / "converged" / case["json"]
    return json.loads(path.read_text()) if path.exists() else load(case)


def load(name: str | dict) -> dict:
    """One reference JSON (by file name or case): glmer's output at its optimum.

    The returned dict is shared between calls: do not modify it.
    """
    case = _case(name)
    return _load(case["set"], case["json"])


@cache
def _holdout_schema() -> dict:
    return json.loads((HOLDOUT_DIR / "data" / "schema.json").read_text())


def schema(case: dict | str) -> dict:
    """R's column classes (and factor levels) of a case's CSV."""
    case = _case(case)
    if case["set"] == "holdout":
        return _holdout_schema()[dataset_name(case)]
    return json.loads((Path(interlace.datasets.__file__).parent / "schema.json").read_text())[
        dataset_name(case)
    ]


def _read_holdout(name: str) -> pd.DataFrame:
    spec = _holdout_schema()[name]
    factors = [c for c, s in spec.items() if s["class"] == "factor"]
    frame = pd.read_csv(HOLDOUT_DIR / "data" / f"{name}.csv", dtype=dict.fromkeys(factors, str))
    if list(frame.columns) != list(spec):
        raise ValueError(
            f"{name}.csv columns {list(frame.columns)} differ from its schema {list(spec)}"
        )
    for column in factors:
        frame[column] = pd.Categorical(frame[column], categories=spec[column]["levels"])
    return frame


def computed_columns(case: dict | str) -> list[str]:
    """The columns the case uses (weights / offset) that its note says are computed, not stored."""
    case = _case(case)
    note = load(case).get("note") or ""
    return [
        column
        for column in (case.get("weights"), case.get("offset"))
        if column in COMPUTED_COLUMNS
        and re.search(rf"\b{column}\s*=\s*{re.escape(COMPUTED_COLUMNS[column][0])}", note)
    ]


def dataset(case: dict | str) -> pd.DataFrame:
    """A case's data with R's column classes (factors as categoricals in R's level order), rows in
    CSV order, plus the computed columns its note describes (Mmmec's ``logexpected``).

    Raises if the case names a weights / offset column that is neither in the CSV nor described.
    """
    case = _case(case)
    name = dataset_name(case)
    frame = interlace.load_dataset(name) if case["set"] == "shared" else _read_holdout(name)
    for column in computed_columns(case):
        if column not in frame.columns:
            frame[column] = COMPUTED_COLUMNS[column][1](frame)
    missing = [c for c in (case.get("weights"), case.get("offset")) if c and c not in frame.columns]
    if missing:
        raise KeyError(
            f"{case['json']}: columns {missing} are neither in {case['dataset']} nor in its note"
        )
    return frame


def used_columns(case: dict | str, frame: pd.DataFrame) -> list[str]:
    """The frame's columns that the case's model uses: names in its formula, weights and offset."""
    case = _case(case)
    names = set(re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", case["formula"]))
    names |= {c for c in (case.get("weights"), case.get("offset")) if c}
    return [c for c in frame.columns if c in names]
