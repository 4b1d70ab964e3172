"""Core-speed benchmark: interlace against lme4 on four REML workloads.

Workloads: W1 sleepstudy ``Reaction ~ Days + (Days | Subject)``; W2 Penicillin
``diameter ~ 1 + (1 | plate) + (1 | sample)``; W4 InstEval ``y ~ 1 + service +
(1 | s) + (1 | d) + (1 | dept)``; W6 simulated ``y ~ x + (1 | g1) + (1 | g2)`` with
n = 1e5 rows and 5000 x 1000 crossed levels (seed 1, see ``simulate_crossed``).

Each is fitted by REML as one whole ``interlace.fit(formula, frame)`` call on a frame
already in memory: one untimed fit warms the JIT, then ``--repeats`` fits are timed
and the median kept (a workload whose first timed fit exceeds 60 s is timed once).
lme4 follows the same protocol in one ``Rscript`` process per workload (untimed
``lmer()``, then timed repeats with ``system.time()``) on the same CSV with the same
factor levels. BLAS/OpenMP/numba threads are pinned to ``--threads`` (default 1) on
both sides before numpy is imported. "import time" is a fresh ``import interlace``.

How to read it
--------------
``ratio`` is lme4's median over interlace's: ``3.0x`` means interlace was three times
faster, ``0.5x`` that it took twice as long. Quote ratios, not seconds, and only
ratios measured in one run on one machine. ``max|dtheta|`` (largest absolute
difference of the fitted theta vectors, lme4's order) and ``|dREML|`` (interlace
``-2 * llf`` against lme4 ``REMLcrit``) near zero show both fitted the same model.

Usage: ``python benchmarks/run_core.py [--workloads W1,W2,W4,W6] [--repeats 5] [--threads 1]
[--no-r]``. Results also go to ``benchmarks/results/core.json`` (git-ignored).
"""

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness

# Threads must be pinned before numpy (and numba, via interlace) is imported.
ARGS = _harness.parse_args(
    "Time interlace.fit against lme4::lmer.", repeats_help="timed fits per workload",
    workloads="W1,W2,W4,W6", example="W1,W2",
)
_harness.pin_threads(ARGS.threads)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_harness.use_checkout()  # benchmark the checkout this script lives in
import interlace  # noqa: E402


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    formula: str
    dataset: str | None  # bundled dataset name; None means simulated


WORKLOADS = {
    w.key: w
    for w in (
        Workload("W1", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "sleepstudy"),
        Workload("W2", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
        Workload("W4", "InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", "InstEval"),
        Workload("W6", "simulated 1e5", "y ~ x + (1 | g1) + (1 | g2)", None),
    )
}


# --- data ------------------------------------------------------------------
def simulate_crossed(n=100_000, n1=5000, n2=1000, seed=1):
    """Simulated two-factor crossed design; g1, g2 are Categoricals of "0", "1", ..."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, n)  # draw order matters: keep it as in the spec
    g2 = rng.integers(0, n2, n)
    x = rng.standard_normal(n)
    u1 = rng.standard_normal(n1) * 1.0
    u2 = rng.standard_normal(n2) * 0.5
    y = 1 + 0.5 * x + u1[g1] + u2[g2] + rng.standard_normal(n)
    as_factor = lambda codes: pd.Categorical(codes).rename_categories(str)  # noqa: E731
    return pd.DataFrame({"y": y, "x": x, "g1": as_factor(g1), "g2": as_factor(g2)})


def load_frame(workload):
    return interlace.load_dataset(workload.dataset) if workload.dataset else simulate_crossed()


def csv_for_r(workload, frame, tmp_dir):
    """The CSV lme4 reads: the bundled file, or the simulated frame written out."""
    if workload.dataset is not None:
        return _harness.bundled_csv(workload.dataset)
    path = Path(tmp_dir) / f"{workload.key}.csv"
    frame.to_csv(path, index=False)
    return path


# --- timing ----------------------------------------------------------------
def time_interlace(workload, frame, repeats):
    seconds, result = _harness.time_repeated(
        lambda: interlace.fit(workload.formula, frame, method="REML"), repeats
    )
    return {
        **_harness.summarize(seconds),
        "theta": np.asarray(result.theta, dtype=float).ravel().tolist(),
        "reml_crit": -2.0 * float(result.llf),
        "converged": bool(result.converged),
    }


def time_fresh_import(statement="import interlace", runs=3):
    """Median wall time of ``python -c statement`` in a fresh interpreter, start-up included."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=_harness.REPO_ROOT, check=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def r_timing_script(workload, frame, csv_path, repeats):
    """R source: untimed warm-up ``lmer()``, timed repeats, then REML criterion and theta."""
    return f"""\
suppressPackageStartupMessages(library(lme4))
d <- read.csv({_harness.r_string(csv_path)}, stringsAsFactors = TRUE)
{_harness.r_factor_lines(frame)}
f <- {workload.formula}
m <- lmer(f, d, REML = TRUE)  # warm-up, untimed
{_harness.r_timed_loop("m <- lmer(f, d, REML = TRUE)", repeats)}
cat("reml_crit", sprintf("%.17g", REMLcrit(m)), "\\n")
cat("theta", sprintf("%.17g", getME(m, "theta")), "\\n")
"""


def time_lme4(workload, frame, csv_path, repeats, tmp_dir):
    fields, stderr = _harness.run_rscript(
        Path(tmp_dir) / f"{workload.key}.R",
        r_timing_script(workload, frame, csv_path, repeats),
        f"lme4 failed on {workload.key}",
    )
    fields = {key: [float(v) for v in values] for key, values in fields.items()}
    return {
        **_harness.summarize(fields["time"]),
        "theta": fields["theta"],
        "reml_crit": fields["reml_crit"][0],
        "stderr": stderr,
    }


# --- comparison and table --------------------------------------------------
def compare(python_side, r_side):
    """Ratio (lme4 / interlace) and agreement of the two fits; None where not computable."""
    if r_side is None:
        return {"ratio": None, "max_abs_dtheta": None, "abs_dreml": None}
    theta_py, theta_r = np.asarray(python_side["theta"]), np.asarray(r_side["theta"])
    same_shape = theta_py.shape == theta_r.shape
    return {
        "ratio": r_side["median"] / python_side["median"],
        "max_abs_dtheta": float(np.max(np.abs(theta_py - theta_r))) if same_shape else None,
        "abs_dreml": abs(python_side["reml_crit"] - r_side["reml_crit"]),
    }


def format_table(rows):
    """One line per workload; "-" where lme4 did not run or the thetas differ in length."""
    cell = _harness.cell
    return _harness.format_table({
        "workload": [f"{row['key']} {row['label']}" for row in rows],
        "interlace [s]": [cell(row["interlace"]["median"], ".4f") for row in rows],
        "lme4 [s]": [cell(row["lme4"] and row["lme4"]["median"], ".4f") for row in rows],
        "ratio (x faster)": [cell(row["ratio"], ".2f", "x" if row["ratio"] else "") for row in rows],
        "max|dtheta|": [cell(row["max_abs_dtheta"], ".1e") for row in rows],
        "|dREML|": [cell(row["abs_dreml"], ".1e") for row in rows],
    })


def run_workload(workload, with_lme4, tmp_dir):
    """Time one workload on both sides and return its result row."""
    print(f"running {workload.key}: {workload.formula} ...", file=sys.stderr, flush=True)
    frame = load_frame(workload)
    python_side = time_interlace(workload, frame, ARGS.repeats)
    if not python_side["converged"]:
        print(f"warning: interlace converged=False on {workload.key}", file=sys.stderr)
    r_side = None
    if with_lme4:
        csv_path = csv_for_r(workload, frame, tmp_dir)
        r_side = time_lme4(workload, frame, csv_path, ARGS.repeats, tmp_dir)
    return {
        **asdict(workload),
        "n_obs": len(frame),
        "interlace": python_side,
        "lme4": r_side,
        **compare(python_side, r_side),
    }


def main():
    _harness.check_workloads(ARGS.workloads, WORKLOADS)
    lme4 = None if ARGS.no_r else _harness.r_versions(["lme4"]).get("lme4")
    meta = _harness.describe_environment(ARGS, "lme4", lme4)
    _harness.print_environment(meta)

    with tempfile.TemporaryDirectory() as tmp_dir:
        rows = [run_workload(WORKLOADS[key], lme4 is not None, tmp_dir) for key in ARGS.workloads]
    import_s = time_fresh_import("import interlace")

    print("\n" + format_table(rows))
    print(f'\nimport time: {import_s:.3f} s (python -c "import interlace", median of 3)')
    meta["import_time_s"] = import_s
    _harness.write_results("core", {"meta": meta, "workloads": rows})


if __name__ == "__main__":
    main()
