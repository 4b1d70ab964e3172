"""The first fits of a process whose compiled optimiser is in no cache run on LAPACK
(interlace.fitting.gradient.fit_deviance_functions): the same fit, nothing compiled."""

from __future__ import annotations

import numpy as np
import pytest

import interlace
from interlace.fitting import gradient
from interlace.kernels import _jit
from interlace.kernels.products import z_times


@pytest.fixture
def cold(monkeypatch):
    """As in a fresh environment: the compiled optimiser and Hessian not loaded."""
    monkeypatch.setattr(gradient.CompiledDeviance, "is_loaded", lambda self: False)
    monkeypatch.setattr(gradient, "_uncompiled_fits", [0])


@pytest.mark.parametrize(
    "formula, dataset",
    [("Reaction ~ Days + (Days | Subject)", "sleepstudy"), ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")],
)
def test_a_cold_first_fit_runs_on_lapack_and_agrees(cold, formula, dataset):
    data = interlace.load_dataset(dataset)
    first = interlace.fit(formula, data)
    assert first.optimization.optimizer == "l-bfgs-b"
    assert gradient._uncompiled_fits[0] == 1
    gradient._uncompiled_fits[0] = gradient.COMPILE_AFTER_FITS  # the loop has paid its rent: compile
    compiled = interlace.fit(formula, data)
    assert compiled.optimization.optimizer == "auto-compiled"
    assert first.converged and compiled.converged
    np.testing.assert_allclose(first.theta, compiled.theta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.fe_params, compiled.fe_params, rtol=1e-7)
    assert first.llf == pytest.approx(compiled.llf, rel=1e-10)


def test_refits_compile_at_once(cold):
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    assert m.optimization.optimizer == "l-bfgs-b"
    again = m.refit(m.model.endog)
    assert again.optimization.optimizer == "auto-compiled"
    assert again.llf == pytest.approx(m.llf, rel=1e-10)


def test_is_loaded_probes_without_compiling():
    import numba

    @numba.njit(cache=False)
    def double(values):
        return 2.0 * values

    values = np.ones(3)
    assert not _jit.is_loaded(double, values)
    assert len(double.overloads) == 0  # the probe compiled nothing
    double(values)
    assert _jit.is_loaded(double, values)
    assert not _jit.is_loaded(double, np.ones(3, dtype=np.int32))  # another signature: not compiled
    assert len(double.overloads) == 1


def test_is_loaded_finds_an_installed_kernel():
    codes, design, effects = np.zeros(4, np.int32), np.ones((4, 1)), np.ones((1, 1))
    z_times(codes, design, effects)
    assert _jit.is_loaded(z_times, codes, design, effects)
