"""Shared fixtures: a session-wide cache of reference fits (fitting InstEval once)."""

from __future__ import annotations

import warnings

import pytest

import interlace

from .reference import dataset_name, index, load


class FitCache:
    """Fits keyed by (reference json, solver), made on first request."""

    def __init__(self) -> None:
        self._fits: dict[tuple[str, str], interlace.CrossedLMEResult] = {}

    def get(self, json_name: str, solver: str = "auto") -> interlace.CrossedLMEResult:
        key = (json_name, solver)
        if key not in self._fits:
            case = next(c for c in index() if c["json"] == json_name)
            ref = load(json_name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", interlace.SingularFitWarning)
                self._fits[key] = interlace.fit(
                    case["formula"],
                    interlace.load_dataset(dataset_name(case)),
                    method="REML" if ref["REML"] else "ML",
                    solver=solver,
                )
        return self._fits[key]


@pytest.fixture(scope="session")
def fits() -> FitCache:
    return FitCache()
