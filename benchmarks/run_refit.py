"""Refit-speed benchmark (workload W3): interlace against lme4's ``refit``.

W3 is the refit loop of a simulation study: 30 subjects x 20 items (600 rows,
seed 1, W3's design in ``workloads.py``), ``y ~ x + (1 | subj) + (1 | item)`` fitted by REML,
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

import sys
import tempfile
from pathlib import Path

import _harness
import workloads

W3 = workloads.WORKLOADS["W3"]
FORMULA = W3.formula
N_SIM = W3.n_refits
N_WARMUP = 3
TARGET_RATIO = 20.0

# Threads must be pinned before numpy (and numba, via interlace) is imported.
ARGS = _harness.parse_args(
    "Time interlace refits against lme4::refit.",
    repeats_help="timed loops of 200 refits",
    repeats=3,
)
_harness.pin_threads(ARGS.threads)

import numpy as np  # noqa: E402

_harness.use_checkout()  # benchmark the checkout this script lives in
import interlace  # noqa: E402


def simulate_w3():
    """The W3 frame: 30 x 20 fully crossed; subj and item are Categoricals of "0", "1", ..."""
    return workloads.as_factors(W3.data.frame(), W3.data.factors)


# --- timing ----------------------------------------------------------------
def summarize(seconds, n_refits):
    """Timings and median, as `_harness.summarize`, plus the refits per second."""
    timing = _harness.summarize(seconds)
    return {**timing, "refits_per_s": n_refits / timing["median"]}


def time_interlace(m, Y, repeats):
    """The refit loop and the two bootMer calls; one entry per table row."""
    for j in range(N_WARMUP):
        m.refit(Y[:, j])
    seconds, fits = _harness.timed(lambda: [m.refit(Y[:, j]) for j in range(Y.shape[1])], repeats)
    loop = summarize(seconds, Y.shape[1])
    loop["slopes"] = [float(fit.fe_params["x"]) for fit in fits]
    loop["n_not_converged"] = sum(not fit.converged for fit in fits)
    rows = {"W3 refit loop": loop}
    for n_jobs in (1, 2):
        boot = lambda: m.bootMer(B=N_SIM, seed=1, n_jobs=n_jobs)  # noqa: B023, E731
        boot()  # untimed: warms the JIT, and for n_jobs=2 starts the worker pool
        seconds, result = _harness.timed(boot, repeats)
        rows[f"W3 bootMer n_jobs={n_jobs}"] = {
            **summarize(seconds, N_SIM),
            "n_failed": int(result.replicates.isna().any(axis=1).sum()),
        }
    return rows


def r_timing_script(data_csv, y_csv, repeats):
    """R source: fit, untimed warm-up refit, timed loops of refits, the last loop's slopes."""
    refits = "for (j in seq_len(ncol(Y))) fits[[j]] <- refit(m, Y[, j])"
    return f"""\
suppressPackageStartupMessages(library(lme4))
d <- read.csv({_harness.r_string(data_csv)}, colClasses = c(subj = "character", item = "character"))
d$subj <- factor(d$subj, levels = as.character(0:29))
d$item <- factor(d$item, levels = as.character(0:19))
Y <- as.matrix(read.csv({_harness.r_string(y_csv)}, header = FALSE))
m <- lmer({FORMULA}, d, REML = TRUE)
invisible(refit(m, Y[, 1]))  # warm-up, untimed
fits <- vector("list", ncol(Y))
{_harness.r_timed_loop(refits, repeats, stop_after=None)}
cat("slope", sprintf("%.17g", vapply(fits, function(f) fixef(f)[["x"]], 0)), "\\n")
"""


def time_lme4(frame, Y, repeats, tmp_dir):
    data_csv, y_csv, script = (Path(tmp_dir) / name for name in ("w3.csv", "Y.csv", "w3.R"))
    frame.to_csv(data_csv, index=False)  # pandas writes floats round-trip exact
    np.savetxt(y_csv, Y, fmt="%.17g", delimiter=",")
    fields, stderr = _harness.run_rscript(
        script, r_timing_script(data_csv, y_csv, repeats), "lme4 failed on W3"
    )
    seconds = [float(v) for v in fields["time"]]
    slopes = [float(v) for v in fields["slope"]]
    return {**summarize(seconds, Y.shape[1]), "slopes": slopes, "stderr": stderr}


# --- comparison and table --------------------------------------------------
def format_table(rows):
    """One line per row; "-" where lme4 did not run or the responses differ."""
    cell = _harness.cell
    return _harness.format_table(
        {
            "workload": [row["workload"] for row in rows],
            "interlace refits/s": [cell(row["interlace"]["refits_per_s"], ".1f") for row in rows],
            "lme4 refits/s": [cell(row["lme4_refits_per_s"], ".1f") for row in rows],
            "ratio (interlace/lme4)": [cell(row["ratio"], ".2f", "x") for row in rows],
            "agreement (mean|dslope|)": [cell(row["mean_abs_dslope"], ".1e") for row in rows],
        }
    )


def main():
    lme4 = None if ARGS.no_r else _harness.r_versions(["lme4"]).get("lme4")
    meta = _harness.describe_environment(ARGS, "lme4", lme4, cpus=True)
    _harness.print_environment(meta)

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
        rows.append(
            {
                "workload": name,
                "interlace": python_side,
                "lme4_refits_per_s": r_rate,
                "ratio": python_side["refits_per_s"] / r_rate if r_rate else None,
                "mean_abs_dslope": dslope,
            }
        )

    print("\n" + format_table(rows))
    loop = python_rows["W3 refit loop"]
    print(
        f"\ninterlace refits not converged: {loop['n_not_converged']} of {N_SIM}; "
        f"bootMer failed replicates: {[r['interlace'].get('n_failed') for r in rows[1:]]}"
    )
    if rows[0]["ratio"] is not None:
        verdict = "met" if rows[0]["ratio"] >= TARGET_RATIO else "not met"
        print(f"target (W3 refit loop >= {TARGET_RATIO:.0f}x lme4): {verdict}")
    _harness.write_results(
        "refit",
        {"meta": meta, "formula": FORMULA, "n_obs": len(frame), "lme4": r_side, "rows": rows},
    )


if __name__ == "__main__":
    main()
