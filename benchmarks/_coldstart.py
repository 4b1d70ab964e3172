"""W10, cold start: fresh processes, timed whole from outside, start-up included.

Three measurements, each the median wall time of ``repeats`` fresh processes (one
if the first exceeds 60 s), run from the repository root so that the checkout is
what gets imported:

- fit: ``python -c "import interlace; interlace.fit(<sleepstudy>)"`` with the Numba
  cache warm (one untimed process first fills it), against
  ``Rscript -e 'library(lme4); lmer(Reaction ~ Days + (Days | Subject), sleepstudy)'``
  (one untimed process first too, so both start from a warm disk cache).
- import: the cumulative ``-X importtime`` figure of ``import interlace`` in a fresh
  process (median of at least 20), with the heavy modules that the import loads;
  and, as a cross-check, ``python -c "import interlace"`` minus ``python -c pass``
  (median of as many paired differences of wall times).
- cold cache: the fit process with ``NUMBA_CACHE_DIR`` pointing at a new empty
  directory each time, so every kernel it needs is compiled: the very first fit.

Peak memory is each process's maximum resident set size (`_harness.run_measured`).
"""

import os
import sys
import tempfile

import _harness

HEAVY = ("numpy", "pandas", "scipy", "numba", "formulaic", "narwhals", "pyarrow", "polars")
R_FIT = "library(lme4); lmer(Reaction ~ Days + (Days | Subject), sleepstudy)"
MIN_IMPORT_RUNS = 20


def python_fit_code(formula, dataset="sleepstudy"):
    """The ``-c`` program of the interlace cold start."""
    return f"import interlace; interlace.fit({formula!r}, interlace.load_dataset({dataset!r}))"


def _processes(command, repeats, cold_cache=False):
    """Run ``command`` fresh ``repeats`` times (one if the first exceeds 60 s).

    With ``cold_cache``, each process gets ``NUMBA_CACHE_DIR`` at a new empty
    directory, removed afterwards.
    """
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="interlace-numba-") as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache} if cold_cache else None
            proc = _harness.run_measured(command, env=env, cwd=_harness.REPO_ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{proc.stderr}")
        runs.append(proc)
        if runs[0].seconds > _harness.ONE_RUN_THRESHOLD_S:
            break
    return {
        **_harness.summarize([proc.seconds for proc in runs]),
        "peak_bytes": max(proc.peak_bytes or 0 for proc in runs) or None,
    }


def _importtime_probe():
    """One fresh ``python -X importtime`` import of interlace: cumulative seconds, heavy modules."""
    code = f"import interlace, sys; print(*[m for m in {HEAVY!r} if m in sys.modules])"
    probe = _harness.run_measured(
        [sys.executable, "-X", "importtime", "-c", code], cwd=_harness.REPO_ROOT
    )
    if probe.returncode != 0:
        raise RuntimeError(f"import interlace failed:\n{probe.stderr}")
    cumulative_us = None
    for line in probe.stderr.splitlines():
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "interlace":
            cumulative_us = int(parts[1])
    return cumulative_us / 1e6, probe.stdout.split(), probe.peak_bytes


def import_time(repeats):
    """``import interlace`` in fresh processes: ``-X importtime`` and start-up subtracted.

    ``median`` is the median over at least `MIN_IMPORT_RUNS` processes of the
    cumulative ``-X importtime`` figure of ``interlace`` (everything its import
    loads). The import takes milliseconds, within the noise of interpreter start-up,
    so the wall-clock figure, the median of as many paired differences of
    ``python -c "import interlace"`` and ``python -c pass``, is kept as a cross-check.
    """
    runs = max(repeats, MIN_IMPORT_RUNS)
    probes = [_importtime_probe() for _ in range(runs)]
    differences = []
    for _ in range(runs):
        bare = _processes([sys.executable, "-c", "pass"], 1)
        with_import = _processes([sys.executable, "-c", "import interlace"], 1)
        differences.append(with_import["median"] - bare["median"])
    return {
        **_harness.summarize([seconds for seconds, _, _ in probes]),
        "wall_difference": _harness.summarize(differences),
        "heavy_modules_loaded": probes[-1][1],
        "peak_bytes": max(peak or 0 for _, _, peak in probes) or None,
    }


def cold_cache(formula, dataset, repeats):
    """The first fit of ``dataset`` in fresh processes, each with an empty Numba cache."""
    return _processes([sys.executable, "-c", python_fit_code(formula, dataset)], repeats, cold_cache=True)


def measure(formula, repeats, with_r):
    """Every W10 figure: ``fit``, ``lme4_fit`` (None without R or if R failed, then with
    ``lme4_error``), ``import`` and ``cold_cache``."""
    command = [sys.executable, "-c", python_fit_code(formula)]
    _processes(command, 1)  # untimed: fills the Numba cache if it is empty
    result = {"fit": _processes(command, repeats), "lme4_fit": None, "lme4_error": None}
    if with_r:
        r_command = ["Rscript", "-e", R_FIT]
        try:
            _processes(r_command, 1)  # untimed: the same warm disk cache as Python's
            result["lme4_fit"] = _processes(r_command, repeats)
        except RuntimeError as error:
            result["lme4_error"] = str(error)[-3000:]
    result["import"] = import_time(repeats)
    result["cold_cache"] = _processes(command, repeats, cold_cache=True)
    return result
