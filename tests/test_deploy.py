"""Deployment: a read-only install, and systems too large for memory.

The read-only tests copy the package to a read-only directory whose kernels cannot be
cached beside their source (``__pycache__`` is a file there, so even root cannot), with
a home and ``XDG_CACHE_HOME`` that cannot be created (numba's per-user cache fails
too) and no ``NUMBA_CACHE_DIR``: the situation where numba refuses to decorate the
kernels ("no locator available"). Each runs in a fresh process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import InterlaceError
from interlace.linalg import dispatch

PACKAGE = Path(interlace.__file__).resolve().parent

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="read-only directories as POSIX modes")


@pytest.fixture
def read_only_install(tmp_path):
    """(site directory holding a read-only copy of interlace, environment without a
    writable numba cache)."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "interlace", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "interlace" / "kernels" / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, so nothing can be created below it")
    (tmp_path / "tmp").mkdir()
    paths = sorted(site.rglob("*"), reverse=True) + [site]
    for path in paths:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE_DIR")}
    env.update(HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache"), TMPDIR=str(tmp_path / "tmp"),
               PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    yield site, env, blocker
    for path in paths:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _run(code: str, env: dict, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


RECORD = """
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    {body}
print(json.dumps({{"file": interlace.__file__, "value": value,
                   "warnings": [str(w.message) for w in caught]}}))
"""


@posix_only
def test_fit_from_a_read_only_install_caches_in_a_user_directory(read_only_install, tmp_path):
    site, env, _ = read_only_install
    body = ('import interlace; value = interlace.fit("Yield ~ 1 + (1 | Batch)", '
            'interlace.load_dataset("Dyestuff")).llf')
    out = _run(RECORD.format(body=body), env, tmp_path)
    assert Path(out["file"]).parent == site / "interlace"
    assert out["value"] == pytest.approx(-159.8271, abs=1e-3)  # lme4's REML criterion 319.6543
    assert out["warnings"] == []
    cached = list((tmp_path / "tmp").glob(f"interlace-{os.getuid()}/numba/**/*.nbi"))
    assert cached, "the kernels were not cached in the per-user fallback directory"


@posix_only
def test_kernels_compile_without_any_writable_directory_with_one_warning(read_only_install, tmp_path):
    _, env, blocker = read_only_install
    body = textwrap.dedent(f"""
    import tempfile
    tempfile.tempdir = {str(blocker / "tmp")!r}  # no temporary directory either
    import importlib, pkgutil, numpy as np
    import interlace, interlace.kernels
    for module in pkgutil.iter_modules(interlace.kernels.__path__):
        importlib.import_module("interlace.kernels." + module.name)
    from interlace.kernels.products import z_times
    value = z_times(np.array([0, 1, 1], dtype=np.int32), np.ones((3, 1)), np.ones((2, 1))).tolist()
    """).strip().replace("\n", "\n    ")
    out = _run(RECORD.format(body=body), env, tmp_path)
    assert out["value"] == [1.0, 1.0, 1.0]
    assert len(out["warnings"]) == 1, out["warnings"]
    assert "NUMBA_CACHE_DIR" in out["warnings"][0]


def test_fallback_cache_directory_in_a_shared_temporary_directory_must_be_private(tmp_path, monkeypatch):
    from interlace.kernels import _jit

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file" / "cache"))
    (tmp_path / "file").write_text("")
    _jit.fallback_cache_dir.cache_clear()
    try:
        shared = tmp_path / f"interlace-{_jit._user_name()}"
        shared.mkdir(mode=0o777)
        shared.chmod(0o777)  # writable by anyone: kernels loaded from it could be anyone's
        assert _jit.fallback_cache_dir() is None
        _jit.fallback_cache_dir.cache_clear()
        shared.chmod(0o700)
        assert _jit.fallback_cache_dir() == shared / "numba"
    finally:
        _jit.fallback_cache_dir.cache_clear()


# ----- memory ------------------------------------------------------------------------------

def _crossed(n: int, n1: int, n2: int, seed: int = 1, band: int = 0) -> pd.DataFrame:
    """Two crossed factors, at random or (``band``) each g1 level near a few g2 levels."""
    rng = np.random.default_rng(seed)
    g1, x = rng.integers(0, n1, n), rng.standard_normal(n)
    g2 = (g1 * n2 // n1 + rng.integers(-band, band + 1, n)) % n2 if band else rng.integers(0, n2, n)
    y = (1 + 0.5 * x + rng.standard_normal(n1)[g1] + (0.5 + 0.3 * x) * rng.standard_normal(n2)[g2]
         + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)})


SLOPE = "y ~ x + (1 | g1) + (1 + x | g2)"


def test_a_rest_that_fits_neither_dense_nor_sparse_is_refused_before_allocating():
    import tracemalloc

    frame = _crossed(12000, 4000, 1000)  # random crossing: the rest's factor fills in
    size = 2 * 1000 + 3  # g2's intercepts and slopes, x, the intercept, y
    # 0.02 GiB: beyond five dense arrays (31 MiB each) and the sparse factor (39 MiB);
    # 0.002 GiB: beyond even the entries the downdates create (3.3 MiB), found before the analysis
    for limit, sparse_mib in ((0.02, (30, 40)), (0.002, (3, 4))):
        with pytest.raises(InterlaceError):  # once untraced: numba loads the kernels (its own memory)
            interlace.fit(SLOPE, frame, max_dense_gib=limit)
        tracemalloc.start()
        try:
            with pytest.raises(InterlaceError) as caught:
                interlace.fit(SLOPE, frame, max_dense_gib=limit)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        message = str(caught.value)
        assert message.startswith(f"max_dense_gib: the rest of the blocked path (the random effects of g2 "
                                   f"(2,000 effects), the fixed effects and the response) has {size:,} rows")
        assert f"{dispatch.DENSE_PEAK_ARRAYS} dense {size:,} x {size:,} arrays of 31 MiB" in message
        found = re.search(r"sparse at least (\d+) MiB", message)
        assert found and sparse_mib[0] <= int(found.group(1)) <= sparse_mib[1], message
        assert f"max_dense_gib={limit:.3g}" in message
        assert peak < size**2 * 8, "a dense rest was allocated before the refusal"


@pytest.mark.parametrize("formula", [SLOPE, "y ~ x + (1 | g1) + (1 | g2)"])
def test_a_rest_beyond_the_dense_limit_goes_sparse_with_the_same_fit(formula):
    frame = _crossed(6000, 1500, 600, band=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        dense = interlace.fit(formula, frame)
        sparse = interlace.fit(formula, frame, max_dense_gib=0.005)  # 14 MiB dense at 600 levels
    assert dense._system.rest_layout == "dense" and sparse._system.rest_layout == "sparse"
    assert sparse.llf == pytest.approx(dense.llf, abs=1e-6)
    np.testing.assert_allclose(sparse.theta, dense.theta, rtol=1e-3, atol=1e-5)
    at_dense = dense._system.factorize(dense.theta), sparse._system.factorize(dense.theta)
    for name in ("logdet_random", "logdet_fixed", "pwrss"):
        assert getattr(at_dense[1], name) == pytest.approx(getattr(at_dense[0], name), rel=1e-10)
    for a, b in zip(dense._system.conditional_precision_inverse_blocks(at_dense[0], dense.theta),
                    sparse._system.conditional_precision_inverse_blocks(at_dense[1], dense.theta), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    assert sparse.fit_options["max_dense_gib"] == 0.005
    # the factor at other theta, the solution, and a new response (the refits' copy)
    rng = np.random.default_rng(2)
    y = rng.standard_normal(dense.nobs)
    for system_d, system_s in ((dense._system, sparse._system),
                               (dense._system.with_response(y), sparse._system.with_response(y))):
        for _ in range(2):
            theta = np.where(np.isfinite(dense._system.design.theta_lower), rng.uniform(0.1, 1.5, dense.theta.size),
                             rng.uniform(-0.5, 0.5, dense.theta.size))
            fa, fb = system_d.factorize(theta), system_s.factorize(theta)
            assert fb.pwrss == pytest.approx(fa.pwrss, rel=1e-10)
            assert fb.logdet_random == pytest.approx(fa.logdet_random, rel=1e-10)
            for a, b in zip(system_d.solve(fa, theta), system_s.solve(fb, theta), strict=True):
                np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)


def test_the_option_survives_update_and_is_checked():
    sleep = interlace.load_dataset("sleepstudy")
    m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, max_dense_gib=2.0)
    assert m.update(". ~ . - Days").fit_options["max_dense_gib"] == 2.0
    for bad in (0, -1.0, float("nan"), "4", True):
        with pytest.raises(InterlaceError, match="max_dense_gib: expected a positive number of GiB"):
            interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, max_dense_gib=bad)
    with pytest.raises(InterlaceError, match=r"max_dense_gib: the dense path's system \(solver='dense'\) has 39 rows"):
        interlace.fit("Reaction ~ Days + (Days | Subject)", sleep, solver="dense", max_dense_gib=1e-7)


def test_default_limit_is_half_the_machine_memory():
    from interlace.linalg import memory

    total = memory.machine_memory_bytes()
    if total is None:
        pytest.skip("the machine's memory is unknown here")
    assert memory.default_max_dense_gib() == pytest.approx(total / 2 / 2**30)
    assert memory.dense_limit_bytes(None) == pytest.approx(total / 2)


def test_kenward_roger_checks_its_peak_of_nine_arrays():
    from interlace.inference import kenward_roger as kr

    m = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", _crossed(3000, 300, 100))
    q_p = m._system.design.n_random + m._system.design.n_fixed
    one_array = q_p**2 * 8 / 2**30
    args = (m._system.design, m.theta, m.scale, m._conditioning)
    with pytest.raises(InterlaceError, match=rf"df_method: .* \({kr.PEAK_ARRAYS} dense {q_p:,} x {q_p:,} arrays"):
        kr.kenward_roger(*args, max_dense_gib=(kr.PEAK_ARRAYS - 0.5) * one_array)
    assert kr.PEAK_ARRAYS >= 7
    kr.kenward_roger(*args, max_dense_gib=(kr.PEAK_ARRAYS + 0.5) * one_array)
