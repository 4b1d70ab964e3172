"""Prior weights and offsets of the linear model (lmer's ``weights=`` and ``offset=``).

The lme4 references of the weighted cases are in tests/test_reference.py (with every
other case); here: the arguments' forms, their errors, and the properties that tie a
weighted fit to an unweighted one.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    data = interlace.load_dataset("sleepstudy").copy()
    rng = np.random.default_rng(3)
    data["w"] = rng.uniform(0.5, 3.0, len(data))
    data["off"] = rng.normal(0.0, 5.0, len(data))
    return data


def _same_fit(a, b, rtol=1e-7):
    np.testing.assert_allclose(a.fe_params.to_numpy(), b.fe_params.to_numpy(), rtol=rtol)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-7)
    assert a.llf == pytest.approx(b.llf, rel=1e-9)
    np.testing.assert_allclose(a.fittedvalues, b.fittedvalues, rtol=rtol)


def test_weights_as_column_array_list_and_series(sleep):
    by_name = interlace.fit(FORMULA, sleep, weights="w")
    for given in (sleep["w"].to_numpy(), sleep["w"].tolist(), sleep["w"]):
        _same_fit(interlace.fit(FORMULA, sleep.drop(columns="w"), weights=given), by_name)


def test_polars_and_pyarrow_weights_are_pandas_weights(sleep):
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    expected = interlace.fit(FORMULA, sleep, weights="w", offset="off")
    frame = pl.from_pandas(sleep)
    _same_fit(interlace.fit(FORMULA, frame, weights="w", offset="off"), expected)
    _same_fit(interlace.fit(FORMULA, sleep, weights=frame["w"], offset=pa.array(sleep["off"])), expected)


def test_offset_argument_is_the_formula_offset(sleep):
    in_formula = interlace.fit("Reaction ~ Days + offset(off) + (Days | Subject)", sleep, weights="w")
    argument = interlace.fit(FORMULA, sleep, weights="w", offset="off")
    _same_fit(argument, in_formula)
    both = interlace.fit("Reaction ~ Days + offset(off) + (Days | Subject)", sleep, offset=sleep["off"].to_numpy())
    doubled = interlace.fit(FORMULA, sleep.assign(off2=2 * sleep["off"]), offset="off2")
    _same_fit(both, doubled)


def test_offset_moves_the_response(sleep):
    # an offset o fits y - o; fitted values include it again
    with_offset = interlace.fit(FORMULA, sleep, offset="off")
    moved = interlace.fit(FORMULA, sleep.assign(Reaction=sleep["Reaction"] - sleep["off"]))
    np.testing.assert_allclose(with_offset.fe_params, moved.fe_params, rtol=1e-8)
    np.testing.assert_allclose(with_offset.fittedvalues, moved.fittedvalues + sleep["off"].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(with_offset.resid, moved.resid, rtol=1e-7, atol=1e-9)


def test_constant_weights_are_the_unweighted_model(sleep):
    plain = interlace.fit(FORMULA, sleep)
    for c in (0.25, 4.0):
        weighted = interlace.fit(FORMULA, sleep, weights=np.full(len(sleep), c))
        np.testing.assert_allclose(weighted.fe_params, plain.fe_params, rtol=1e-8)
        # the same distribution of y: sigma^2 / c is the plain sigma^2, theta (relative to
        # sigma) is 1 / sqrt(c) times the plain one, the random effects' covariance is the same
        np.testing.assert_allclose(weighted.theta, plain.theta / np.sqrt(c), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(weighted.fe_bse, plain.fe_bse, rtol=1e-6)
        assert weighted.scale == pytest.approx(c * plain.scale, rel=1e-6)
        pd.testing.assert_frame_equal(weighted.variance_components["Subject"], plain.variance_components["Subject"],
                                      rtol=1e-6)
        assert weighted.llf == pytest.approx(plain.llf, rel=1e-9)
        np.testing.assert_allclose(weighted.fe_df, plain.fe_df, rtol=1e-6)


def test_weights_are_rows_scaled_by_their_root(sleep):
    # the weighted model is the unweighted one of y sqrt(w) on X sqrt(w) and Z sqrt(w)
    weighted = interlace.fit(FORMULA, sleep, weights="w", method="ML")
    root = np.sqrt(sleep["w"])
    scaled = sleep.assign(yw=sleep["Reaction"] * root, sw=root, swx=sleep["Days"] * root)
    plain = interlace.fit("yw ~ 0 + sw + swx + (0 + sw + swx | Subject)", scaled, method="ML")
    np.testing.assert_allclose(weighted.fe_params.to_numpy(), plain.fe_params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(weighted.theta, plain.theta, rtol=1e-4, atol=1e-6)
    # the weighted density carries 0.5 sum(log w) (lme4's ldW)
    assert weighted.llf == pytest.approx(plain.llf + 0.5 * np.log(sleep["w"]).sum(), rel=1e-8)
    np.testing.assert_allclose(weighted.fe_df.to_numpy(), plain.fe_df.to_numpy(), rtol=1e-4)


def test_weighted_fit_is_invariant_to_row_order(sleep):
    order = np.random.default_rng(0).permutation(len(sleep))
    a = interlace.fit(FORMULA, sleep, weights="w", offset="off")
    b = interlace.fit(FORMULA, sleep.iloc[order].reset_index(drop=True), weights="w", offset="off")
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-8)
    assert a.llf == pytest.approx(b.llf, rel=1e-10)
    np.testing.assert_allclose(a.fittedvalues[order], b.fittedvalues, rtol=1e-8)


def test_predict_reads_the_offset_column_of_newdata(sleep):
    m = interlace.fit(FORMULA, sleep, weights="w", offset="off")
    np.testing.assert_allclose(m.predict(sleep), m.fittedvalues, rtol=1e-10)
    new = sleep.head(3).assign(off=[0.0, 10.0, -10.0])
    expected = m.predict(new.assign(off=0.0)) + np.array([0.0, 10.0, -10.0])
    np.testing.assert_allclose(m.predict(new), expected, rtol=1e-12)
    with pytest.raises(interlace.DataError, match="'off'"):
        m.predict(sleep.drop(columns="off"))


def test_predict_new_data_needs_a_named_offset(sleep):
    m = interlace.fit(FORMULA, sleep, offset=sleep["off"].to_numpy())
    np.testing.assert_allclose(m.predict(), m.fittedvalues)
    with pytest.raises(interlace.DataError, match="offset= a column name"):
        m.predict(sleep)


def test_missing_weights_drop_their_rows(sleep):
    w = sleep["w"].to_numpy().copy()
    w[[3, 50]] = np.nan
    with pytest.warns(interlace.MissingValuesWarning, match="2 rows"):
        m = interlace.fit(FORMULA, sleep, weights=w)
    kept = interlace.fit(FORMULA, sleep.drop(index=[3, 50]), weights="w")
    assert m.nobs == len(sleep) - 2
    _same_fit(m, kept)
    with pytest.raises(interlace.DataError, match="weights"):
        interlace.fit(FORMULA, sleep, weights=w, na_action="raise")


@pytest.mark.parametrize(("argument", "value", "message"), [
    ("weights", -1.0, "positive"),
    ("weights", 0.0, "positive"),
    ("weights", np.inf, "infinite"),
    ("offset", np.inf, "infinite"),
])
def test_bad_values_are_named(sleep, argument, value, message):
    values = sleep["w"].to_numpy().copy()
    values[7] = value
    with pytest.raises(interlace.DataError, match=f"{argument}: .*{message}"):
        interlace.fit(FORMULA, sleep, **{argument: values})


@pytest.mark.parametrize("argument", ["weights", "offset"])
def test_bad_arguments_are_named(sleep, argument):
    with pytest.raises(interlace.DataError, match=f"{argument}: column 'nope' not found"):
        interlace.fit(FORMULA, sleep, **{argument: "nope"})
    with pytest.raises(interlace.DataError, match=f"{argument}: expected one number per row of data \\(180 rows\\), found 3"):
        interlace.fit(FORMULA, sleep, **{argument: [1.0, 2.0, 3.0]})
    with pytest.raises(interlace.DataError, match=f"{argument}: expected a numeric column"):
        interlace.fit(FORMULA, sleep, **{argument: "Subject"})
    with pytest.raises(interlace.DataError, match=f"{argument}: expected numbers"):
        interlace.fit(FORMULA, sleep, **{argument: ["a"] * len(sleep)})
    with pytest.raises(interlace.DataError, match=f"{argument}: expected a column name or one number per row"):
        interlace.fit(FORMULA, sleep, **{argument: 3.0})


def test_simulate_draws_noise_of_variance_sigma2_over_w(sleep):
    m = interlace.fit(FORMULA, sleep, weights="w")
    draws = m.simulate(4000, seed=2, use_re=True)
    noise = draws - m.fittedvalues[:, None]
    ratio = noise.var(axis=1) * sleep["w"].to_numpy() / m.scale
    assert abs(ratio.mean() - 1.0) < 0.01  # 180 rows x 4000 draws: SE of the mean ratio ~0.002
    assert np.all(np.abs(ratio - 1.0) < 0.15)


def test_refit_update_and_bootstrap_keep_the_weights(sleep):
    m = interlace.fit(FORMULA, sleep, weights="w", offset="off")
    again = m.refit(m.model.endog)
    assert again.llf == pytest.approx(m.llf, rel=1e-9)
    np.testing.assert_allclose(again.fe_params, m.fe_params, rtol=1e-7)
    assert m.update(method="ML").llf == pytest.approx(
        interlace.fit(FORMULA, sleep, weights="w", offset="off", method="ML").llf, rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        boot = m.bootMer(B=20, seed=1)
    assert np.all(np.isfinite(boot.replicates.to_numpy()))
    # the bootstrap's spread is the weighted model's: its SD near the fixed effects' SE
    assert 0.4 < boot.replicates["Days"].std() / m.fe_bse["Days"] < 2.0
