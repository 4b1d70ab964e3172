"""Fresh fits in a loop (a simulation study's loop): interlace against lme4's ``lmer``.

Two loops, each a fit of a new frame (not a refit: the formula is parsed and the
frame read every time):

* W1 loop: ``Reaction ~ Days + (Days | Subject)`` on sleepstudy (180 rows), fitted
  ``--n-w1`` times (REML).
* W3-design loop: ``y ~ x + (1 | subj) + (1 | item)`` on ``--n-w3`` new frames of
  600 rows with W3's column schema: new x ~ N(0, 1), new subject and item effects,
  and each row's subject (of 30) and item (of 20) drawn at random, seeds 1, 2, ...
  (``subj`` and ``item`` Categoricals of the labels "s0".., "i0"..).

Python: the frames are built before the clock starts; one untimed fit warms the
JIT; each loop is timed ``--repeats`` times and the median kept. R: one ``Rscript``
process reads the same frames (one CSV with a ``rep`` column, split into a list of
data frames before the clock starts), fits the first frame untimed, then times the
same loops with ``system.time()``. BLAS/OpenMP/numba threads are pinned to
``--threads`` (default 1) on both sides before numpy is imported.

How to read it
--------------
``ratio`` is lme4's time per fit over interlace's (the issue's targets: W1 at least
5x, the W3-design loop at least 10x). ``agreement`` is the largest difference of
the slope over the fits both sides ran (interlace against lme4, same frames).
Quote ratios measured in one run on one machine only.

Usage: ``python benchmarks/fresh_fits.py [--repeats 3] [--threads 1] [--no-r]
[--n-w1 200] [--n-w3 1000] [--checkout DIR]``. ``--checkout`` imports interlace from
another checkout (e.g. the main branch, to compare a change in one run). Results
also go to ``benchmarks/results/fresh_fits.json`` (git-ignored).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import _harness

W1_FORMULA = "Reaction ~ Days + (Days | Subject)"
W3_FORMULA = "y ~ x + (1 | subj) + (1 | item)"


def parse_args():
    parser = argparse.ArgumentParser(description="Time loops of fresh fits against lme4's lmer.")
    _harness.add_common_options(parser, repeats_help="timed runs of each loop", repeats=3)
    parser.add_argument("--n-w1", type=int, default=200, help="fits in the W1 loop (default 200)")
    parser.add_argument("--n-w3", type=int, default=1000, help="frames in the W3-design loop (default 1000)")
    parser.add_argument("--checkout", default=None, help="import interlace from this checkout instead")
    return parser.parse_args()


ARGS = parse_args()
_harness.pin_threads(ARGS.threads)  # before numpy is imported

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

if ARGS.checkout is None:
    _harness.use_checkout()  # benchmark the checkout this script lives in
else:
    sys.path.insert(0, str(Path(ARGS.checkout).resolve()))
import workloads  # noqa: E402

import interlace  # noqa: E402


def w3_design_frame(seed):
    """One frame of the W3 design (`workloads.FreshCrossed`, the suite's W3-LOOP data),
    ``subj`` and ``item`` as Categoricals."""
    frame = workloads.FreshCrossed().one(seed)
    for column in ("subj", "item"):
        frame[column] = pd.Categorical(frame[column])
    return frame


def time_interlace(sleep, frames, repeats):
    """Median seconds per fit of each loop, and the slopes of the last run."""
    interlace.fit(W1_FORMULA, sleep)
    interlace.fit(W3_FORMULA, frames[0])  # warm-up: the JIT, the imports
    rows = {}
    n_w1 = ARGS.n_w1
    seconds, fits = _harness.timed(lambda: [interlace.fit(W1_FORMULA, sleep) for _ in range(n_w1)], repeats)
    rows["W1 fresh fits"] = {**_harness.summarize(seconds), "n_fits": n_w1,
                             "slopes": [float(fits[0].fe_params["Days"])]}
    seconds, fits = _harness.timed(lambda: [interlace.fit(W3_FORMULA, f) for f in frames], repeats)
    rows["W3-design fresh fits"] = {**_harness.summarize(seconds), "n_fits": len(frames),
                                    "slopes": [float(fit.fe_params["x"]) for fit in fits]}
    return rows


def r_timing_script(sleep_csv, frames_csv, n_w1, repeats):
    w1 = f"for (j in seq_len({n_w1})) w1 <- lmer({W1_FORMULA}, sleep, REML = TRUE)"
    w3 = "for (j in seq_along(frames)) fits[[j]] <- lmer(" + W3_FORMULA + ", frames[[j]], REML = TRUE)"
    return f"""\
suppressPackageStartupMessages(library(lme4))
sleep <- read.csv({_harness.r_string(sleep_csv)})
sleep$Subject <- factor(sleep$Subject)
all <- read.csv({_harness.r_string(frames_csv)}, colClasses = c(subj = "character", item = "character"))
all$subj <- factor(all$subj)
all$item <- factor(all$item)
frames <- split(all[, c("y", "x", "subj", "item")], all$rep)
frames <- lapply(frames, function(f) {{ f$subj <- droplevels(f$subj); f$item <- droplevels(f$item); f }})
frames <- frames[order(as.integer(names(frames)))]
invisible(lmer({W1_FORMULA}, sleep, REML = TRUE))
invisible(lmer({W3_FORMULA}, frames[[1]], REML = TRUE))  # warm-up, untimed
cat("w1_slope", sprintf("%.17g", fixef(lmer({W1_FORMULA}, sleep, REML = TRUE))[["Days"]]), "\\n")
{_harness.r_timed_loop(w1, repeats, stop_after=None).replace('"time"', '"w1_time"')}
fits <- vector("list", length(frames))
{_harness.r_timed_loop(w3, repeats, stop_after=None).replace('"time"', '"w3_time"')}
cat("w3_slope", sprintf("%.17g", vapply(fits, function(f) fixef(f)[["x"]], 0)), "\\n")
"""


def time_lme4(frames, repeats, tmp_dir):
    sleep_csv, frames_csv, script = (Path(tmp_dir) / name for name in ("sleep.csv", "frames.csv", "fresh.R"))
    interlace.load_dataset("sleepstudy").to_csv(sleep_csv, index=False)
    pd.concat([f.assign(rep=i) for i, f in enumerate(frames)]).to_csv(frames_csv, index=False)
    fields, stderr = _harness.run_rscript(script, r_timing_script(sleep_csv, frames_csv, ARGS.n_w1, repeats),
                                          "lme4 failed on the fresh-fit loops")
    return {
        "W1 fresh fits": {**_harness.summarize([float(v) for v in fields["w1_time"]]), "n_fits": ARGS.n_w1,
                          "slopes": [float(v) for v in fields["w1_slope"]]},
        "W3-design fresh fits": {**_harness.summarize([float(v) for v in fields["w3_time"]]),
                                 "n_fits": len(frames), "slopes": [float(v) for v in fields["w3_slope"]]},
        "stderr": stderr,
    }


def main():
    lme4 = None if ARGS.no_r else _harness.r_versions(["lme4"]).get("lme4")
    meta = _harness.describe_environment(ARGS, "lme4", lme4, cpus=True)
    _harness.print_environment(meta)
    sleep = interlace.load_dataset("sleepstudy")
    frames = [w3_design_frame(seed) for seed in range(1, ARGS.n_w3 + 1)]
    print(f"running interlace: {ARGS.n_w1} W1 fits, {len(frames)} W3-design fits ...", file=sys.stderr, flush=True)
    python_side = time_interlace(sleep, frames, ARGS.repeats)
    r_side = None
    if lme4 is not None:
        print("running lme4 ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp_dir:
            r_side = time_lme4(frames, ARGS.repeats, tmp_dir)
    rows = []
    for name, py in python_side.items():
        per_fit = py["median"] / py["n_fits"]
        r = r_side and r_side[name]
        r_per_fit = r["median"] / r["n_fits"] if r else None
        agreement = None
        if r:
            k = min(len(py["slopes"]), len(r["slopes"]))
            agreement = float(np.max(np.abs(np.subtract(py["slopes"][:k], r["slopes"][:k]))))
        rows.append({"workload": name, "interlace_ms_per_fit": 1e3 * per_fit,
                     "lme4_ms_per_fit": None if r is None else 1e3 * r_per_fit,
                     "ratio": None if r is None else r_per_fit / per_fit, "max_abs_dslope": agreement,
                     "interlace": py, "lme4": r})
    cell = _harness.cell
    print("\n" + _harness.format_table({
        "workload": [row["workload"] for row in rows],
        "interlace ms/fit": [cell(row["interlace_ms_per_fit"], ".3f") for row in rows],
        "lme4 ms/fit": [cell(row["lme4_ms_per_fit"], ".3f") for row in rows],
        "ratio (lme4/interlace)": [cell(row["ratio"], ".2f", "x") for row in rows],
        "agreement (max|dslope|)": [cell(row["max_abs_dslope"], ".1e") for row in rows],
    }))
    _harness.write_results("fresh_fits", {"meta": meta, "rows": rows})


if __name__ == "__main__":
    main()
