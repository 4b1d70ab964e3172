"""all_fit (lme4's allFit) and the progress bars of the long loops."""

import numpy as np
import pytest

import interlace
from interlace.progress import ProgressBar


@pytest.fixture(scope="module")
def sleep_fit():
    return interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))


def test_all_fit_reaches_one_optimum_and_says_which_optimisers_do_not_apply(sleep_fit):
    table = sleep_fit.all_fit(show_progress=False)
    assert table.index.tolist() == ["auto", "newton", "cobyqa", "l-bfgs-b", "powell", "nelder-mead"]
    ok = table[table["error"] == ""]
    assert ok["converged"].all() and len(ok) == 5
    np.testing.assert_allclose(ok["llf"], sleep_fit.llf, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ok[["Intercept", "Days"]], np.tile(sleep_fit.fe_params, (5, 1)), rtol=1e-4)
    assert table.loc["newton", "error"].startswith("optimizer='newton': needs a blocked system")
    assert np.isnan(table.loc["newton", "llf"])
    with pytest.raises(interlace.InterlaceError, match=r"optimizers: expected some of auto, newton"):
        sleep_fit.all_fit(["bobyqa"])


def test_all_fit_of_a_generalized_model():
    g = interlace.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", interlace.load_dataset("cbpp"),
                      family="binomial")
    table = g.all_fit(["auto", "nelder-mead", "l-bfgs-b"], show_progress=False)
    np.testing.assert_allclose(table.loc[["auto", "nelder-mead"], "llf"], g.llf, rtol=0, atol=1e-5)
    assert "a generalized fit takes" in table.loc["l-bfgs-b", "error"]


def test_progress_bars_show_only_when_asked_or_interactive(sleep_fit, capsys):
    sleep_fit.bootMer(B=3, seed=1, show_progress=True)
    shown = capsys.readouterr().err
    assert "bootMer" in shown and "3/3" in shown
    sleep_fit.fe_bootstrap_se(n_bootstrap=3, seed=1)  # None: captured output is not a terminal
    interlace.hlm_influence(sleep_fit, level="Subject", approx=False, leverage=[])
    assert capsys.readouterr().err == ""
    interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff")).confint(show_progress=True)
    shown = capsys.readouterr().err
    assert "profile" in shown and "3/3" in shown  # sd, sigma and the intercept
    with pytest.raises(interlace.InterlaceError, match=r"show_progress: expected True, False or None"):
        ProgressBar(3, "x", show_progress="yes")


def test_the_text_bar_without_tqdm(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with ProgressBar(4, "steps", show_progress=True) as bar:
        for _ in range(4):
            bar.advance()
    assert capsys.readouterr().err.endswith("steps [##############################] 4/4\n")
