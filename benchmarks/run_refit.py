"""Refit-speed benchmark (workload W3): interlace against lme4's ``refit``.

W3 is the refit loop of a simulation study: 30 subjects x 20 items (600 rows,
seed 1, see ``simulate_w3``), ``y ~ x + (1 | subj) + (1 | item)`` fitted by REML,
200 responses simulated from the fit, and the same model refitted to each
(lme4: ``refit(m, y)``). The performance spec's target is at least 20 times lme4's
refits per second.

Python: ``Y = m.simulate(200, seed=1)`` is written to a CSV so that lme4 refits
exactly the same 200 responses. A few untimed ``m.refit`` calls warm the JIT, then
the loop ``for j in range(200): m.refit(Y[:, j])`` is timed ``--repeats`` times and
the median kept. ``m.bootMer(B=200, seed=1, n_jobs=...)`` (which simulates its own
responses) is timed the same way for ``n_jobs=1`` and ``n_jobs=2``, each after one
untimed call of its own; for ``n_jobs=2`` that call starts joblib's worker pool,
which the timed calls reuse, so they include dispatch and pickling the model to the
workers but not process start-up. R: one ``Rscript`` process reads the same data and
responses, fits ``lmer(..., REML = TRUE)``, refits ``Y[, 1]`` untimed, then times the
200 refits with ``system.time()`` ``--repeats`` times. BLAS/OpenMP/numba threads are
pinned to ``--threads`` (default 1) on both sides before numpy is imported.

How to read it
--------------
``ratio`` is interlace's refits per second over lme4's: ``20.0x`` meets the target.
The bootMer rows divide by the same lme4 refit rate. ``agreement`` is the mean
absolute difference of the slope of ``x`` over the 200 refits (interlace against
lme4, same responses); near zero shows both refitted the same models. Quote ratios,
not rates, and only ratios measured in one run on one machine.

Usage: ``python benchmarks/run_refit.py [--repeats 3] [--threads 1] [--no-r]``.
Results also go to ``benchmarks/results/refit.json`` (git-ignored).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_ENV_VARS = "OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS NUMBA_NUM_THREADS".split()
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = REPO_ROOT / "benchmarks" / "results" / "refit.json"
FORMULA = "y ~ x + (1 | subj) + (1 | item)"
N_SIM = 200
N_WARMUP = 3
TARGET_RATIO = 20.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Time interlace refits against lme4::refit.")
    parser.add_argument("--repeats", type=int, default=3, help="timed loops of 200 refits")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/numba threads")
    parser.add_argument("--no-r", action="store_true", help="skip lme4")
    return parser.parse_args(argv)


# Threads must be pinned before numpy (and numba, via interlace) is imported.
ARGS = parse_args()
for _var in THREAD_ENV_VARS:
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))  # benchmark the checkout this script lives in
import interlace  # noqa: E402


def simulate_w3():
    """The W3 frame: 30 x 20 fully crossed; subj and item are Categoricals of "0", "1", ..."""
    subj = np.repeat(np.arange(30), 20)
    item = np.tile(np.arange(20), 30)
    rng = np.random.default_rng(1)  # draw order matters: keep it as in the spec
    x = rng.standard_normal(600)
    y = 1 + 0.5 * x + rng.standard_normal(30)[subj] + 0.5 * rng.standard_normal(20)[item] + rng.standard_normal(600)
    as_factor = lambda codes: pd.Categorical(codes).rename_categories(str)  # noqa: E731
    return pd.DataFrame({"y": y, "x": x, "subj": as_factor(subj), "item": as_factor(item)})


# --- python timing ---------------------------------------------------------
def timed(call, repeats):
    """Wall seconds of ``repeats`` calls (the caller warms up) and the last result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def summarize(seconds, n_refits):
    median = statistics.median(seconds)
    return {"seconds": seconds, "median": median, "refits_per_s": n_refits / median}


def time_interlace(m, Y, repeats):
    """The refit loop and the two bootMer calls; one entry per table row."""
    for j in range(N_WARMUP):
        m.refit(Y[:, j])
    seconds, fits = timed(lambda: [m.refit(Y[:, j]) for j in range(Y.shape[1])], repeats)
    loop = summarize(seconds, Y.shape[1])
    loop["slopes"] = [float(fit.fe_params["x"]) for fit in fits]
    loop["n_not_converged"] = sum(not fit.converged for fit in fits)
    rows = {"W3 refit loop": loop}
    for n_jobs in (1, 2):
        boot = lambda: m.bootMer(B=N_SIM, seed=1, n_jobs=n_jobs)  # noqa: B023, E731
        boot()  # untimed: warms the JIT, and for n_jobs=2 starts the worker pool
        seconds, result = timed(boot, repeats)
        rows[f"W3 bootMer n_jobs={n_jobs}"] = {
            **summarize(seconds, N_SIM),
            "n_failed": int(result.replicates.isna().any(axis=1).sum()),
        }
    return rows


# --- R timing --------------------------------------------------------------
def r_timing_script(data_csv, y_csv, repeats):
    """R source: fit, untimed warm-up refit, timed loops of refits, the last loop's slopes."""
    # json.dumps(text) is a double-quoted literal that R reads as the same string
    return f"""\
suppressPackageStartupMessages(library(lme4))
d <- read.csv({json.dumps(str(data_csv))}, colClasses = c(subj = "character", item = "character"))
d$subj <- factor(d$subj, levels = as.character(0:29))
d$item <- factor(d$item, levels = as.character(0:19))
Y <- as.matrix(read.csv({json.dumps(str(y_csv))}, header = FALSE))
m <- lmer({FORMULA}, d, REML = TRUE)
invisible(refit(m, Y[, 1]))  # warm-up, untimed
fits <- vector("list", ncol(Y))
for (i in seq_len({repeats})) {{
  t <- system.time(for (j in seq_len(ncol(Y))) fits[[j]] <- refit(m, Y[, j]))[["elapsed"]]
  cat("time", sprintf("%.6f", t), "\\n")
}}
cat("slope", sprintf("%.17g", vapply(fits, function(f) fixef(f)[["x"]], 0)), "\\n")
"""


def lme4_version():
    """lme4's version string, or None if Rscript or lme4 is missing."""
    if shutil.which("Rscript") is None:
        return None
    probe = "suppressMessages(library(lme4)); cat(as.character(packageVersion('lme4')))"
    proc = subprocess.run(["Rscript", "-e", probe], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def time_lme4(frame, Y, repeats, tmp_dir):
    data_csv, y_csv, script = (Path(tmp_dir) / name for name in ("w3.csv", "Y.csv", "w3.R"))
    frame.to_csv(data_csv, index=False)  # pandas writes floats round-trip exact
    np.savetxt(y_csv, Y, fmt="%.17g", delimiter=",")
    script.write_text(r_timing_script(data_csv, y_csv, repeats))
    # os.environ already carries the pinned thread counts
    proc = subprocess.run(["Rscript", str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lme4 failed on W3:\n{proc.stderr}")
    fields = {}
    for line in proc.stdout.splitlines():
        key, *values = line.split()
        fields.setdefault(key, []).extend(float(v) for v in values)
    return {**summarize(fields["time"], Y.shape[1]), "slopes": fields["slope"], "stderr": proc.stderr.strip()}


# --- comparison and table --------------------------------------------------
def format_table(rows):
    """One line per row; "-" where lme4 did not run or the responses differ."""
    cell = lambda value, fmt, suffix="": "-" if value is None else format(value, fmt) + suffix  # noqa: E731
    table = pd.DataFrame(
        {
            "workload": [row["workload"] for row in rows],
            "interlace refits/s": [cell(row["interlace"]["refits_per_s"], ".1f") for row in rows],
            "lme4 refits/s": [cell(row["lme4_refits_per_s"], ".1f") for row in rows],
            "ratio (interlace/lme4)": [cell(row["ratio"], ".2f", "x") for row in rows],
            "agreement (mean|dslope|)": [cell(row["mean_abs_dslope"], ".1e") for row in rows],
        }
    )
    return table.to_string(index=False)


def describe_environment(lme4_label):
    """Settings and versions: printed above the table and stored in the JSON."""
    return {
        "threads": ARGS.threads,
        "repeats": ARGS.repeats,
        "interlace": f"{getattr(interlace, '__version__', '?')} at {interlace.__file__}",
        "lme4": lme4_label,
        "python": f"{platform.python_version()} (numpy {np.__version__}, pandas {pd.__version__})",
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main():
    lme4 = None if ARGS.no_r else lme4_version()
    meta = describe_environment("skipped (--no-r)" if ARGS.no_r else (lme4 or "not available"))
    print(f"threads: {ARGS.threads} (OMP/OpenBLAS/MKL/numba, Python and R)")
    print("\n".join(f"{key}: {value}" for key, value in meta.items() if key != "threads"))

    frame = simulate_w3()
    m = interlace.fit(FORMULA, frame, method="REML")
    Y = m.simulate(N_SIM, seed=1)
    print(f"running W3: {FORMULA}, {N_SIM} refits ...", file=sys.stderr, flush=True)
    python_rows = time_interlace(m, Y, ARGS.repeats)
    r_side = None
    if lme4 is not None:
        print("running W3 in lme4 ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp_dir:
            r_side = time_lme4(frame, Y, ARGS.repeats, tmp_dir)

    rows = []
    for name, python_side in python_rows.items():
        r_rate = r_side and r_side["refits_per_s"]
        dslope = None
        if r_side is not None and "slopes" in python_side:
            dslope = float(np.mean(np.abs(np.subtract(python_side["slopes"], r_side["slopes"]))))
        rows.append({
            "workload": name,
            "interlace": python_side,
            "lme4_refits_per_s": r_rate,
            "ratio": python_side["refits_per_s"] / r_rate if r_rate else None,
            "mean_abs_dslope": dslope,
        })

    print("\n" + format_table(rows))
    loop = python_rows["W3 refit loop"]
    print(f"\ninterlace refits not converged: {loop['n_not_converged']} of {N_SIM}; "
          f"bootMer failed replicates: {[r['interlace'].get('n_failed') for r in rows[1:]]}")
    if rows[0]["ratio"] is not None:
        verdict = "met" if rows[0]["ratio"] >= TARGET_RATIO else "not met"
        print(f"target (W3 refit loop >= {TARGET_RATIO:.0f}x lme4): {verdict}")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({"meta": meta, "formula": FORMULA, "n_obs": len(frame),
                                        "lme4": r_side, "rows": rows}, indent=2))
    print(f"results written to {RESULTS_PATH.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
