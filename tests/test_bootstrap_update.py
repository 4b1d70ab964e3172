"""bootMer, bootstrap_se, fe_bootstrap_se and update."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace


@pytest.fixture(scope="module")
def sleep_fit():
    return interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))


def test_bootmer_is_reproducible_whatever_n_jobs(sleep_fit):
    a = sleep_fit.bootMer(B=12, seed=7)
    b = sleep_fit.bootMer(B=12, seed=7, n_jobs=2)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)
    assert list(a.replicates.columns) == ["Intercept", "Days"]
    assert not a.replicates.equals(sleep_fit.bootMer(B=12, seed=8).replicates)


def test_bootmer_custom_statistic_and_intervals(sleep_fit):
    boot = interlace.bootMer(sleep_fit, statistic=lambda r: np.sqrt(r.scale), B=40, seed=1)
    assert list(boot.replicates.columns) == ["statistic"]
    ci = boot.confidence_interval(0.9)
    assert ci.loc["statistic", "lower"] < np.sqrt(sleep_fit.scale) < ci.loc["statistic", "upper"]
    assert boot.n_failed == 0 and boot.se["statistic"] > 0


def test_bootmer_arguments_are_checked(sleep_fit):
    with pytest.raises(interlace.InterlaceError, match=r"B: expected a positive integer, found 0"):
        sleep_fit.bootMer(B=0)
    with pytest.raises(interlace.InterlaceError, match=r"statistic: expected a function"):
        sleep_fit.bootMer(statistic="fixef", B=2)


def test_fe_bootstrap_se_by_group_and_by_observation(sleep_fit):
    group = sleep_fit.fe_bootstrap_se(n_bootstrap=150, resample_level="group", seed=3)
    assert list(group.index) == ["Intercept", "Days"]
    ratio = group / sleep_fit.fe_bse
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    pd.testing.assert_series_equal(group, sleep_fit.fe_bootstrap_se(n_bootstrap=150, resample_level="group", seed=3))
    # resampling single rows ignores the clustering by subject: smaller SEs here
    rows = sleep_fit.fe_bootstrap_se(n_bootstrap=150, resample_level="observation", seed=3)
    assert np.all((rows > 0) & (rows < group)), (rows, group)


def test_fe_bootstrap_se_arguments_are_checked(sleep_fit):
    with pytest.raises(interlace.InterlaceError, match=r"resample_level: expected 'group' or 'observation'"):
        sleep_fit.fe_bootstrap_se(resample_level="cluster")
    with pytest.raises(interlace.InterlaceError, match=r"statistic: expected 'median' or 'sd'"):
        sleep_fit.fe_bootstrap_se(statistic="mean")


def test_bootstrap_se_of_the_mean_is_the_analytic_one(sleep_fit):
    """The bootstrap SE of a mean tends to sqrt((n - 1) / n) s / sqrt(n): over rows, s the
    rows' SD; over the 18 subjects' 10-row clusters (balanced), s the subject means' SD."""
    y = interlace.load_dataset("sleepstudy")["Reaction"].to_numpy()
    by_rows = sleep_fit.bootstrap_se("mean", n_bootstrap=4000, resample_level="observation", seed=1)
    n = y.size
    assert by_rows == pytest.approx(np.sqrt((n - 1) / n) * y.std(ddof=1) / np.sqrt(n), rel=0.05)
    means = interlace.load_dataset("sleepstudy").groupby("Subject", observed=True)["Reaction"].mean().to_numpy()
    g = means.size
    by_subject = sleep_fit.bootstrap_se("mean", n_bootstrap=4000, seed=1)
    assert by_subject == pytest.approx(np.sqrt((g - 1) / g) * means.std(ddof=1) / np.sqrt(g), rel=0.05)
    assert by_subject == sleep_fit.bootstrap_se("mean", n_bootstrap=4000, resample_level="Subject", seed=1)
    assert by_subject > by_rows  # the subjects' clustering


def test_bootstrap_se_is_a_reproducible_float(sleep_fit):
    se = sleep_fit.bootstrap_se(n_bootstrap=300, seed=7)  # the median, by subject
    assert isinstance(se, float) and se > 0
    assert se == sleep_fit.bootstrap_se(n_bootstrap=300, seed=7)
    assert sleep_fit.bootstrap_se(lambda y: 3.0, n_bootstrap=20, seed=1) == 0.0
    q90 = sleep_fit.bootstrap_se(lambda y: np.quantile(y, 0.9), n_bootstrap=200, seed=2)
    assert q90 > 0


def test_bootstrap_se_arguments_are_checked(sleep_fit):
    with pytest.raises(interlace.InterlaceError, match=r"resample_level: expected 'group', 'observation' or a "
                                                       r"grouping factor \(Subject\), found 'cluster'"):
        sleep_fit.bootstrap_se(resample_level="cluster")
    with pytest.raises(interlace.InterlaceError, match=r"statistic: expected one of 'median'"):
        sleep_fit.bootstrap_se(statistic="mode")
    with pytest.raises(interlace.InterlaceError, match=r"n_bootstrap: expected an integer of at least 2"):
        sleep_fit.bootstrap_se(n_bootstrap=1)
    with pytest.raises(interlace.InterlaceError, match=r"statistic: expected a function returning one number"):
        sleep_fit.bootstrap_se(lambda y: y[:2], n_bootstrap=5)


def test_update_reproduces_direct_fits():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep)
    grown = m.update(". ~ . + (0 + Days | Subject)")
    direct = interlace.fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    np.testing.assert_array_equal(grown.theta, direct.theta)
    shrunk = grown.update(". ~ . - Days")
    assert shrunk.model.formula == "Reaction ~ (1 | Subject) + (0 + Days | Subject)"
    np.testing.assert_array_equal(shrunk.theta, interlace.fit(shrunk.model.formula, sleep).theta)
    logged = m.update("log(.) ~ .")
    assert logged.model.formula == "log(Reaction) ~ Days + (1 | Subject)"
    assert m.update(method="ML").llf == pytest.approx(interlace.fit(m.model.formula, sleep, method="ML").llf)
    half = m.update(data=sleep.iloc[:90])
    assert half.nobs == 90


def test_update_refuses_removing_a_random_term_that_is_not_there():
    m = interlace.fit("Reaction ~ Days + (1 | Subject)", interlace.load_dataset("sleepstudy"))
    with pytest.raises(interlace.FormulaError, match=r"cannot remove '\(Days \| Subject\)'"):
        m.update(". ~ . - (Days | Subject)")


@pytest.mark.slow
def test_bootmer_percentile_intervals_cover_the_truth():
    """A small coverage study: 40 simulated crossed designs, B = 100 each; the 95 %
    percentile interval of the slope should cover the true 0.5 about 95 % of the
    time (binomial SD of the coverage over 40 sets: 3.4 %)."""
    rng = np.random.default_rng(2024)
    covered = 0
    runs = 40
    for _ in range(runs):
        subj = np.repeat(np.arange(30), 20)
        item = np.tile(np.arange(20), 30)
        x = rng.standard_normal(600)
        y = 1 + 0.5 * x + rng.standard_normal(30)[subj] + 0.5 * rng.standard_normal(20)[item] + rng.standard_normal(600)
        frame = pd.DataFrame({"y": y, "x": x, "subj": subj.astype(str), "item": item.astype(str)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", interlace.SingularFitWarning)
            m = interlace.fit("y ~ x + (1 | subj) + (1 | item)", frame)
        ci = m.bootMer(B=100, seed=int(rng.integers(1 << 31))).confidence_interval(0.95)
        covered += ci.loc["x", "lower"] <= 0.5 <= ci.loc["x", "upper"]
    assert 0.85 <= covered / runs <= 1.0
