"""interlace.plots: what each plot draws is the result's numbers, read back from the
Axes (lines, collections, patches, tick labels and texts, found by their ``gid``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from scipy import stats  # noqa: E402

import interlace  # noqa: E402
from interlace import plots  # noqa: E402

Z95 = stats.norm.ppf(0.975)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep():
    return interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def dyestuff():
    return interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))


@pytest.fixture(scope="module")
def penicillin():
    return interlace.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", interlace.load_dataset("Penicillin"))


@pytest.fixture(scope="module")
def cbpp():
    return interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         interlace.load_dataset("cbpp"), family="binomial")


def _lines(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


def _line(ax, gid):
    found = _lines(ax, gid)
    assert len(found) == 1, f"{len(found)} lines with gid {gid!r}"
    return np.asarray(found[0].get_xdata(), dtype=float), np.asarray(found[0].get_ydata(), dtype=float)


def _vertical_positions(ax, gid):
    return sorted(float(line.get_xdata()[0]) for line in _lines(ax, gid))


def _horizontal_positions(ax, gid):
    return sorted(float(line.get_ydata()[0]) for line in _lines(ax, gid))


# ----- import -----------------------------------------------------------------------------
def test_importing_interlace_and_its_plots_module_does_not_import_matplotlib():
    code = ("import sys, interlace, interlace.plots\n"
            "from interlace import plots\n"
            "assert callable(plots.caterpillar)\n"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----- caterpillar ------------------------------------------------------------------------
@pytest.mark.parametrize(("fixture", "group", "term", "level"), [
    ("sleep", "Subject", "Days", 0.95),
    ("sleep", "Subject", None, 0.80),  # the first term, Intercept
    ("dyestuff", None, None, 0.95),    # an intercept-only factor: a Series
    ("penicillin", "sample", "Intercept", 0.99),
    ("cbpp", "herd", None, 0.95),      # a generalized fit
])
def test_caterpillar_draws_sorted_blups_and_their_normal_intervals(request, fixture, group, term, level):
    result = request.getfixturevalue(fixture)
    ax = plots.caterpillar(result, group, term=term, level=level)
    name = group or next(iter(result.random_effects))
    est, se = result.random_effects[name], result.random_effects_se[name]
    if isinstance(est, pd.DataFrame):
        est, se = est[term or est.columns[0]], se[term or est.columns[0]]
    z = stats.norm.ppf(0.5 + level / 2)
    x, y = _line(ax, "blup")
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert sorted(labels) == sorted(map(str, est.index))
    assert np.array_equal(x, np.sort(est.to_numpy()))  # sorted, smallest at the bottom
    assert np.array_equal(y, np.arange(len(est)))
    assert np.allclose(x, [est[label] for label in labels], rtol=0, atol=0)  # each label at its own BLUP
    (collection,) = [c for c in ax.collections if c.get_gid() == "interval"]
    segments = np.array(collection.get_segments())
    by_label = {str(k): k for k in est.index}
    expected_lower = np.array([est[by_label[label]] - z * se[by_label[label]] for label in labels])
    expected_upper = np.array([est[by_label[label]] + z * se[by_label[label]] for label in labels])
    assert np.allclose(segments[:, 0, 0], expected_lower, rtol=1e-12, atol=1e-12)
    assert np.allclose(segments[:, 1, 0], expected_upper, rtol=1e-12, atol=1e-12)
    assert np.array_equal(segments[:, 0, 1], y) and np.array_equal(segments[:, 1, 1], y)


def test_caterpillar_of_a_slope_has_its_largest_blup_on_top(sleep):
    ax = plots.caterpillar(sleep, "Subject", term="Days")
    days = sleep.random_effects["Subject"]["Days"]
    assert ax.get_yticklabels()[-1].get_text() == str(days.idxmax())
    assert ax.get_yticklabels()[0].get_text() == str(days.idxmin())


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"group": "Patient"}, "group"),
    ({"group": "Subject", "term": "Hours"}, "term"),
    ({"level": 1.5}, "level"),
    ({"level": True}, "level"),
    ({"ax": "left"}, "ax"),
])
def test_caterpillar_bad_input_names_the_argument(sleep, kwargs, argument):
    with pytest.raises(interlace.InterlaceError, match=rf"^{argument}:"):
        plots.caterpillar(sleep, **kwargs)


def test_caterpillar_term_of_an_intercept_only_factor(dyestuff):
    plots.caterpillar(dyestuff, "Batch", term="Intercept")
    with pytest.raises(interlace.InterlaceError, match=r"^term:.*'Intercept'"):
        plots.caterpillar(dyestuff, "Batch", term="Days")


# ----- residuals --------------------------------------------------------------------------
def test_residuals_vs_fitted_of_a_linear_fit(sleep):
    ax = plots.residuals_vs_fitted(sleep)
    x, y = _line(ax, "residuals")
    assert np.array_equal(x, sleep.fittedvalues) and np.array_equal(y, sleep.resid)
    assert _horizontal_positions(ax, "zero") == [0.0]
    assert ax.get_ylabel() == "Residuals"


@pytest.mark.parametrize(("kind", "label"), [(None, "Pearson residuals"), ("deviance", "Deviance residuals"),
                                             ("response", "Response residuals")])
def test_residuals_vs_fitted_of_a_generalized_fit(cbpp, kind, label):
    ax = plots.residuals_vs_fitted(cbpp, type=kind)
    x, y = _line(ax, "residuals")
    assert np.array_equal(x, cbpp.fittedvalues)
    assert np.array_equal(y, cbpp.residuals(kind or "pearson"))
    assert ax.get_ylabel() == label


def test_residuals_bad_input_names_the_argument(sleep, cbpp):
    with pytest.raises(interlace.InterlaceError, match=r"^type:"):
        plots.residuals_vs_fitted(sleep, type="pearson")
    with pytest.raises(interlace.InterlaceError, match=r"^type:"):
        plots.residuals_vs_fitted(cbpp, type="studentized")
    with pytest.raises(interlace.InterlaceError, match=r"^result:"):
        plots.residuals_vs_fitted(sleep.summary())


# ----- QQ ---------------------------------------------------------------------------------
def _r_ppoints(n):
    a = 3 / 8 if n <= 10 else 1 / 2
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def _check_qq(ax, values):
    x, y = _line(ax, "points")
    assert np.array_equal(y, np.sort(values))
    assert np.allclose(x, stats.norm.ppf(_r_ppoints(len(values))), rtol=1e-12)
    (rx, ry) = _line(ax, "reference")  # qqline: through the quartiles at the normal's
    slope = (ry[1] - ry[0]) / (rx[1] - rx[0])
    q1, q3 = np.quantile(values, [0.25, 0.75])
    z1, z3 = stats.norm.ppf([0.25, 0.75])
    assert ry[0] + slope * (z1 - rx[0]) == pytest.approx(q1, rel=1e-10, abs=1e-10)
    assert ry[0] + slope * (z3 - rx[0]) == pytest.approx(q3, rel=1e-10, abs=1e-10)


def test_qq_of_residuals(sleep, cbpp):
    _check_qq(plots.qq(sleep), sleep.resid)
    _check_qq(plots.qq(cbpp), cbpp.resid_deviance)  # R's resid(m) of a glmer fit
    _check_qq(plots.qq(cbpp, type="pearson"), cbpp.resid_pearson)


def test_qq_of_blups(sleep, dyestuff):
    _check_qq(plots.qq(sleep, "Subject", term="Days"), sleep.random_effects["Subject"]["Days"].to_numpy())
    _check_qq(plots.qq(dyestuff, "Batch"), dyestuff.random_effects["Batch"].to_numpy())  # n = 6: a = 3/8


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"which": "Patient"}, "which"),
    ({"which": "Subject", "term": "Hours"}, "term"),
    ({"which": "Subject", "type": "pearson"}, "type"),
    ({"term": "Days"}, "term"),
])
def test_qq_bad_input_names_the_argument(sleep, kwargs, argument):
    with pytest.raises(interlace.InterlaceError, match=rf"^{argument}:"):
        plots.qq(sleep, **kwargs)


# ----- profile ----------------------------------------------------------------------------
def test_profile_zeta_crosses_the_cut_off_at_the_profile_interval(dyestuff):
    fig = plots.profile_zeta(dyestuff)
    intervals = dyestuff.confint(method="profile")
    assert [ax.get_title() for ax in fig.axes] == list(intervals.index)
    for ax in fig.axes:
        lower, upper = intervals.loc[ax.get_title(), ["lower", "upper"]]
        x, zeta = _line(ax, "zeta")
        assert np.all(np.diff(x) > 0) and np.all(np.diff(zeta) > 0)  # Dyestuff's profiles are monotone
        # out to qnorm(0.995), lme4's reach, or to the bound (the sd's profile stays above -2.5 down to 0)
        assert zeta.max() > 2.5 and (zeta.min() < -2.5 or (ax.get_title().startswith("sd_") and x[0] == 0.0))
        width = upper - lower
        # the drawn curve's crossings, by linear interpolation between its points
        assert np.interp(-Z95, zeta, x) == pytest.approx(lower, abs=5e-3 * width)
        assert np.interp(Z95, zeta, x) == pytest.approx(upper, abs=5e-3 * width)
        assert np.allclose(_vertical_positions(ax, "interval"), [lower, upper], rtol=1e-8)
        assert np.allclose(_horizontal_positions(ax, "cut"), [-Z95, Z95], rtol=1e-12)


def test_profile_zeta_of_a_correlation_rises_with_the_correlation(sleep):
    name = "cor_Days.(Intercept)|Subject"  # profiled on its angle: cor = cos(angle)
    (ax,) = plots.profile_zeta(sleep, parm=name).axes
    lower, upper = sleep.confint(method="profile").loc[name, ["lower", "upper"]]
    x, zeta = _line(ax, "zeta")
    assert np.all(np.diff(x) > 0) and np.all(np.diff(zeta) > 0) and -1 <= x[0] and x[-1] <= 1
    assert np.interp(-Z95, zeta, x) == pytest.approx(lower, abs=5e-3 * (upper - lower))
    assert np.interp(Z95, zeta, x) == pytest.approx(upper, abs=5e-3 * (upper - lower))
    assert np.allclose(_vertical_positions(ax, "interval"), [lower, upper], rtol=1e-8)


def test_profile_zeta_of_chosen_parameters_on_a_given_figure(dyestuff):
    fig = plt.figure()
    assert plots.profile_zeta(dyestuff, parm="sigma", level=0.9, fig=fig) is fig
    (ax,) = fig.axes
    assert ax.get_title() == "sigma"
    lower, upper = dyestuff.confint(method="profile", level=0.9).loc["sigma", ["lower", "upper"]]
    assert np.allclose(_vertical_positions(ax, "interval"), [lower, upper], rtol=1e-8)
    assert np.allclose(_horizontal_positions(ax, "cut"), np.array([-1, 1]) * stats.norm.ppf(0.95), rtol=1e-12)
    fig = plots.profile_zeta(dyestuff, parm="beta_")
    assert [ax.get_title() for ax in fig.axes] == ["Intercept"]


def test_profile_zeta_bad_input_names_the_argument(dyestuff, cbpp):
    with pytest.raises(interlace.InterlaceError, match=r"^parm:.*'sd_\(Intercept\)\|Batch'"):
        plots.profile_zeta(dyestuff, parm="sd_Batch")
    with pytest.raises(interlace.InterlaceError, match=r"^result:.*CrossedGLMMResult"):
        plots.profile_zeta(cbpp)
    with pytest.raises(interlace.InterlaceError, match=r"^fig:"):
        plots.profile_zeta(dyestuff, parm="sigma", fig=plt.gca())


# ----- influence --------------------------------------------------------------------------
def _internal(values, two_sided=False):
    q1, q3 = np.quantile(values, [0.25, 0.75])
    iqr = q3 - q1
    return [q1 - 3 * iqr, q3 + 3 * iqr] if two_sided else [q3 + 3 * iqr]


def test_influence_marks_exactly_the_observations_beyond_q3_plus_3_iqr(sleep):
    ax = plots.influence(sleep, "cooksd")
    table = interlace.hlm_influence(sleep)
    cooksd = table["cooksd"].to_numpy()
    (cut,) = _internal(cooksd)
    assert _vertical_positions(ax, "cutoff") == pytest.approx([cut], rel=1e-12)
    beyond_x, _ = _line(ax, "beyond")
    within_x, _ = _line(ax, "within")
    assert np.array_equal(np.sort(beyond_x), np.sort(cooksd[cooksd > cut]))
    assert np.array_equal(np.sort(within_x), np.sort(cooksd[cooksd <= cut]))
    assert 0 < len(beyond_x) < len(cooksd)
    # the five farthest beyond are labelled with their ids, at their points
    top = table.sort_values("cooksd", ascending=False).head(5)
    assert sorted(text.get_text() for text in ax.texts) == sorted(map(str, top["id"]))
    for text in ax.texts:
        assert text.xy[0] == cooksd[table["id"].to_numpy() == int(text.get_text())][0]


def test_influence_two_sided_cut_off_of_covratio(sleep):
    ax = plots.influence(sleep, "covratio", n_labels=100)
    covratio = interlace.hlm_influence(sleep)["covratio"].to_numpy()
    lower, upper = _internal(covratio, two_sided=True)
    assert _vertical_positions(ax, "cutoff") == pytest.approx([lower, upper], rel=1e-12)
    beyond_x, _ = _line(ax, "beyond")
    outside = (covratio < lower) | (covratio > upper)
    assert np.array_equal(np.sort(beyond_x), np.sort(covratio[outside]))
    assert len(ax.texts) == outside.sum()


def test_influence_of_group_levels_with_a_given_cut_off(sleep):
    ax = plots.influence(sleep, "mdffits", level="Subject", cutoff=0.1)
    table = interlace.hlm_influence(sleep, level="Subject")
    mdffits = table["mdffits"].to_numpy()
    assert _vertical_positions(ax, "cutoff") == [0.1]
    beyond_x, _ = _line(ax, "beyond")
    assert np.array_equal(np.sort(beyond_x), np.sort(mdffits[mdffits > 0.1]))
    assert sorted(t.get_text() for t in ax.texts) == sorted(map(str, table["Subject"][mdffits > 0.1]))
    assert len(ax.texts) > 0


def test_influence_does_not_mark_equal_values_for_their_rounding(sleep):
    # a balanced design: every subject has the same leverage, IQR 0, the cut-off at their value
    ax = plots.influence(sleep, "leverage", level="Subject")
    values = interlace.hlm_influence(sleep, level="Subject")["leverage.overall"].to_numpy()
    assert np.ptp(values) < 1e-12 * values.max()
    assert len(_line(ax, "beyond")[0]) == 0 and len(ax.texts) == 0


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"level": "Patient"}, "level"),
    ({"diagnostic": "dfbetas"}, "diagnostic"),
    ({"diagnostic": "rvc.sigma2"}, "diagnostic"),  # exact deletion only
    ({"diagnostic": "covratio", "cutoff": 1.2}, "cutoff"),
    ({"diagnostic": "cooksd", "cutoff": (0.1, 0.2)}, "cutoff"),
    ({"diagnostic": "cooksd", "cutoff": "internal"}, "cutoff"),
])
def test_influence_bad_input_names_the_argument(sleep, kwargs, argument):
    with pytest.raises(interlace.InterlaceError, match=rf"^{argument}:"):
        plots.influence(sleep, **kwargs)


def test_influence_refuses_a_generalized_fit(cbpp):
    with pytest.raises(interlace.InterlaceError, match="CrossedGLMMResult"):
        plots.influence(cbpp)


def test_influence_of_exact_deletion(dyestuff):
    ax = plots.influence(dyestuff, "rvc.D11", level="Batch", approx=False)
    rvc = interlace.hlm_influence(dyestuff, level="Batch", approx=False)["rvc.D11"].to_numpy()
    within_x, _ = _line(ax, "within")
    beyond_x, _ = _line(ax, "beyond")
    assert np.array_equal(np.sort(np.concatenate([within_x, beyond_x])), np.sort(rvc))
    assert _vertical_positions(ax, "cutoff") == pytest.approx(_internal(rvc, two_sided=True), rel=1e-12)


# ----- bootstrap --------------------------------------------------------------------------
def _histogram_total(ax):
    return sum(patch.get_height() for patch in ax.patches if patch.get_gid() == "replicates")


def test_bootstrap_distribution_counts_and_interval(dyestuff):
    boot = dyestuff.bootMer(B=20, seed=1)
    fig = plots.bootstrap_distribution(boot)
    (ax,) = fig.axes
    assert ax.get_title() == "Intercept"
    assert _histogram_total(ax) == 20
    interval = boot.confidence_interval(0.95).loc["Intercept"]
    assert _vertical_positions(ax, "interval") == pytest.approx([interval["lower"], interval["upper"]], rel=1e-12)
    assert _vertical_positions(ax, "original") == [boot.original["Intercept"]]


def test_bootstrap_distribution_leaves_out_failed_replicates_on_a_given_figure(sleep):
    def days_and_sigma(fit):
        return pd.Series({"Days": fit.fe_params["Days"], "sigma": np.sqrt(fit.scale)})

    boot = sleep.bootMer(days_and_sigma, B=20, seed=2)
    replicates = boot.replicates.copy()
    replicates.iloc[[3, 7]] = np.nan  # as failed refits leave them
    failed = interlace.BootstrapResult(boot.original, replicates, boot.seed, failed=(3, 7))
    fig = plt.figure()
    assert plots.bootstrap_distribution(failed, level=0.8, fig=fig) is fig
    assert [ax.get_title() for ax in fig.axes] == ["Days", "sigma"]
    interval = failed.confidence_interval(0.8)
    for ax in fig.axes:
        assert _histogram_total(ax) == 18
        name = ax.get_title()
        assert _vertical_positions(ax, "interval") == pytest.approx(list(interval.loc[name, ["lower", "upper"]]))
    (ax,) = plots.bootstrap_distribution(boot, parm="sigma").axes
    assert ax.get_title() == "sigma" and _histogram_total(ax) == 20


def test_bootstrap_distribution_bad_input_names_the_argument(dyestuff):
    boot = dyestuff.bootMer(B=5, seed=1)
    with pytest.raises(interlace.InterlaceError, match=r"^parm:.*'Intercept'"):
        plots.bootstrap_distribution(boot, parm="sigma")
    with pytest.raises(interlace.InterlaceError, match=r"^boot:"):
        plots.bootstrap_distribution(dyestuff)
    with pytest.raises(interlace.InterlaceError, match=r"^level:"):
        plots.bootstrap_distribution(boot, level=95)


# ----- ax= --------------------------------------------------------------------------------
@pytest.mark.parametrize(("function", "args"), [
    (plots.caterpillar, ()),
    (plots.residuals_vs_fitted, ()),
    (plots.qq, ("Subject",)),
    (plots.influence, ("cooksd",)),
])
def test_each_plot_draws_on_the_given_axes(sleep, function, args):
    fig, (left, right) = plt.subplots(1, 2)
    assert function(sleep, *args, ax=right) is right
    assert right.has_data() and not left.has_data()
    assert len(plt.get_fignums()) == 1  # no other figure made
