"""The working scale's one factorisation of X (:func:`interlace.linalg.thin_qr.thin_qr`)
and the exact-fit check the fit reads from it."""

import warnings

import numpy as np
import pytest

import interlace
from interlace.design import build_design
from interlace.fitting.conditioning import condition
from interlace.formula.random import split_formula
from interlace.linalg import thin_qr as module
from interlace.linalg.thin_qr import thin_qr


@pytest.fixture
def sleep():
    return interlace.load_dataset("sleepstudy")


def test_the_exact_fit_warning_names_the_callers_line(sleep):
    data = sleep.assign(Reaction=2.0 * sleep["Days"] + 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interlace.fit("Reaction ~ Days + (1 | Subject)", data)
    exact = [w for w in caught if issubclass(w.category, interlace.DegenerateFitWarning)]
    assert len(exact) == 1 and exact[0].filename == __file__


def test_a_weighted_exact_fit_warns(sleep):
    data = sleep.assign(Reaction=2.0 * sleep["Days"] + 1.0, w=np.linspace(0.5, 2.0, len(sleep)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = interlace.fit("Reaction ~ Days + (1 | Subject)", data, weights="w")
    assert any("fitted exactly" in str(w.message) for w in caught)
    np.testing.assert_allclose(m.fe_params.to_numpy(), [1.0, 2.0], rtol=1e-12)


def test_an_exact_fit_is_conditioned_by_householder(sleep):
    """An exact fit's working response is the factorisation's rounding: Householder's,
    as before Cholesky QR, so what the fit reads in it does not change."""
    data = sleep.assign(Reaction=2.0 * sleep["Days"] + 1.0)
    design = build_design(*split_formula("Reaction ~ Days + (1 | Subject)"), data)
    with pytest.warns(interlace.DegenerateFitWarning):
        _, working = condition(design)
    Q, _ = thin_qr(design.X, np.sqrt(design.n_obs), householder=True)
    np.testing.assert_array_equal(working.X, Q)


def test_an_ordinary_fit_is_conditioned_by_cholesky_qr():
    frame = interlace.load_dataset("InstEval")
    design = build_design(*split_formula("y ~ service * dept + (1 | s) + (1 | d)"), frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conditioning, working = condition(design)
    Q, _ = thin_qr(design.X, np.sqrt(design.n_obs))
    np.testing.assert_array_equal(working.X, Q)
    assert module._cholesky_qr2(design.X, 1.0) is not None
    np.testing.assert_allclose(working.X.T @ working.X / design.n_obs, np.eye(design.n_fixed), atol=1e-12)
    np.testing.assert_allclose(design.X @ conditioning.basis, working.X, atol=1e-10)


def test_an_exact_fit_is_found_on_every_row_of_a_large_design():
    """A level seen on one row only: the exact fit holds there too, and is found (the
    check once solved on a subset of rows above 1e8 n p^2, where that level was absent)."""
    import pandas as pd

    n, levels = 80_000, 40
    rng = np.random.default_rng(6)
    g = rng.integers(1, levels, n)
    g[1] = 0  # level 0 on row 1 only
    frame = pd.DataFrame({"g": pd.Categorical(g), "h": pd.Categorical(rng.integers(0, 10, n))})
    frame["y"] = rng.standard_normal(levels)[g] + 3.0
    design = build_design(*split_formula("y ~ g + (1 | h)"), frame)
    assert design.n_obs * design.n_fixed**2 > 1e8
    with pytest.warns(interlace.DegenerateFitWarning, match="fitted exactly"):
        condition(design)


def test_an_ordinary_response_is_not_an_exact_fit(sleep):
    design = build_design(*split_formula("Reaction ~ Days + (1 | Subject)"), sleep.assign(Reaction=sleep.Reaction + 1e6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conditioning, working = condition(design)
    assert abs(conditioning.scale) > 1.0
