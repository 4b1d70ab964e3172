"""Shared fixtures: a session-wide cache of reference fits (fitting InstEval once)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import settings

import interlace
from interlace.fitting.linear import assemble as _assemble
from interlace.fitting.objective import Objective
from interlace.fitting.optimize import OptimizationRecord

from .reference import case_data, index, load, prior_arguments

# CI: the property tests draw the same examples on every run (a clean clone has no
# hypothesis database); locally they explore afresh
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


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
                warnings.simplefilter("ignore", interlace.MissingValuesWarning)  # lme4 drops them silently
                self._fits[key] = interlace.fit(
                    case["formula"],
                    case_data(case),
                    method="REML" if ref["REML"] else "ML",
                    solver=solver,
                    **prior_arguments(case),
                )
        return self._fits[key]


    def at_reference_theta(self, json_name: str) -> interlace.CrossedLMEResult:
        """The fit's model evaluated at lme4's theta instead of interlace's optimum."""
        key = (json_name, "reference-theta")
        if key not in self._fits:
            fitted = self.get(json_name)
            system = fitted._system
            theta = np.array(list(load(json_name)["theta"].values()), dtype=float)
            reml = fitted.method == "REML"
            deviance = Objective(system, reml)(theta)
            record = OptimizationRecord("lme4 theta", theta, deviance, 0, True, "reference")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", interlace.SingularFitWarning)
                warnings.simplefilter("ignore", interlace.MissingValuesWarning)
                self._fits[key] = _assemble(fitted._conditioning, system, record, reml, fitted.method,
                                            fitted.df_method, fitted.model.formula, fitted.model.data,
                                            fitted.model.dropped_rows)
        return self._fits[key]


@pytest.fixture(scope="session")
def fits() -> FitCache:
    return FitCache()
