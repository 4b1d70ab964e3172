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
from dataclasses import asdict, dataclass
from pathlib import Path

THREAD_ENV_VARS = "OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS NUMBA_NUM_THREADS".split()
ONE_RUN_THRESHOLD_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = REPO_ROOT / "benchmarks" / "results" / "core.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Time interlace.fit against lme4::lmer.")
    parser.add_argument("--workloads", default="W1,W2,W4,W6", help="comma-separated, e.g. W1,W2")
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per workload")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/numba threads")
    parser.add_argument("--no-r", action="store_true", help="skip lme4")
    args = parser.parse_args(argv)
    args.workloads = [key.strip().upper() for key in args.workloads.split(",") if key.strip()]
    return args


# Threads must be pinned before numpy (and numba, via interlace) is imported.
ARGS = parse_args()
for _var in THREAD_ENV_VARS:
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))  # benchmark the checkout this script lives in
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
        return Path(interlace.__file__).parent / "datasets" / f"{workload.dataset}.csv"
    path = Path(tmp_dir) / f"{workload.key}.csv"
    frame.to_csv(path, index=False)
    return path


# --- python timing ---------------------------------------------------------
def time_repeated(fit_once, repeats):
    """Warm up untimed, then time ``repeats`` calls (one if the first exceeds 60 s)."""
    fit_once()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit_once()
        seconds.append(time.perf_counter() - start)
        if seconds[0] > ONE_RUN_THRESHOLD_S:
            break
    return seconds, result


def time_interlace(workload, frame, repeats):
    seconds, result = time_repeated(
        lambda: interlace.fit(workload.formula, frame, method="REML"), repeats
    )
    return {
        "seconds": seconds,
        "median": statistics.median(seconds),
        "theta": np.asarray(result.theta, dtype=float).ravel().tolist(),
        "reml_crit": -2.0 * float(result.llf),
        "converged": bool(result.converged),
    }


def time_fresh_import(statement="import interlace", runs=3):
    """Median wall time of ``python -c statement`` in a fresh interpreter, start-up included."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=REPO_ROOT, check=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


# --- R timing --------------------------------------------------------------
def r_factor_lines(frame):
    """``factor()`` calls giving each categorical column the frame's own level order."""
    lines = []
    for column in frame.select_dtypes("category").columns:
        levels = ", ".join(json.dumps(str(level)) for level in frame[column].cat.categories)
        lines.append(f"d${column} <- factor(d${column}, levels = c({levels}))")
    return "\n".join(lines)


def r_timing_script(workload, frame, csv_path, repeats):
    """R source: untimed warm-up ``lmer()``, timed repeats, then REML criterion and theta."""
    # json.dumps(text) is a double-quoted literal that R reads as the same string
    return f"""\
suppressPackageStartupMessages(library(lme4))
d <- read.csv({json.dumps(str(csv_path))}, stringsAsFactors = TRUE)
{r_factor_lines(frame)}
f <- {workload.formula}
m <- lmer(f, d, REML = TRUE)  # warm-up, untimed
for (i in seq_len({repeats})) {{
  t <- system.time(m <- lmer(f, d, REML = TRUE))[["elapsed"]]
  cat("time", sprintf("%.6f", t), "\\n")
  if (i == 1 && t > {ONE_RUN_THRESHOLD_S}) break
}}
cat("reml_crit", sprintf("%.17g", REMLcrit(m)), "\\n")
cat("theta", sprintf("%.17g", getME(m, "theta")), "\\n")
"""


def lme4_version():
    """lme4's version string, or None if Rscript or lme4 is missing."""
    if shutil.which("Rscript") is None:
        return None
    probe = "suppressMessages(library(lme4)); cat(as.character(packageVersion('lme4')))"
    proc = subprocess.run(["Rscript", "-e", probe], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def time_lme4(workload, frame, csv_path, repeats, tmp_dir):
    script_path = Path(tmp_dir) / f"{workload.key}.R"
    script_path.write_text(r_timing_script(workload, frame, csv_path, repeats))
    # os.environ already carries the pinned thread counts
    proc = subprocess.run(["Rscript", str(script_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lme4 failed on {workload.key}:\n{proc.stderr}")
    fields = {}
    for line in proc.stdout.splitlines():
        key, *values = line.split()
        fields.setdefault(key, []).extend(float(v) for v in values)
    return {
        "seconds": fields["time"],
        "median": statistics.median(fields["time"]),
        "theta": fields["theta"],
        "reml_crit": fields["reml_crit"][0],
        "stderr": proc.stderr.strip(),
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
    cell = lambda value, fmt: "-" if value is None else format(value, fmt)  # noqa: E731
    table = pd.DataFrame(
        {
            "workload": [f"{row['key']} {row['label']}" for row in rows],
            "interlace [s]": [cell(row["interlace"]["median"], ".4f") for row in rows],
            "lme4 [s]": [cell(row["lme4"] and row["lme4"]["median"], ".4f") for row in rows],
            "ratio (x faster)": [
                cell(row["ratio"], ".2f") + ("x" if row["ratio"] else "") for row in rows
            ],
            "max|dtheta|": [cell(row["max_abs_dtheta"], ".1e") for row in rows],
            "|dREML|": [cell(row["abs_dreml"], ".1e") for row in rows],
        }
    )
    return table.to_string(index=False)


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


def describe_environment(lme4_label):
    """Settings and versions: printed above the table and stored in the JSON."""
    return {
        "threads": ARGS.threads,
        "repeats": ARGS.repeats,
        "interlace": f"{getattr(interlace, '__version__', '?')} at {interlace.__file__}",
        "lme4": lme4_label,
        "python": f"{platform.python_version()} (numpy {np.__version__}, pandas {pd.__version__})",
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main():
    unknown = [key for key in ARGS.workloads if key not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    lme4 = None if ARGS.no_r else lme4_version()
    meta = describe_environment("skipped (--no-r)" if ARGS.no_r else (lme4 or "not available"))
    print(f"threads: {ARGS.threads} (OMP/OpenBLAS/MKL/numba, Python and R)")
    print("\n".join(f"{key}: {value}" for key, value in meta.items() if key != "threads"))

    with tempfile.TemporaryDirectory() as tmp_dir:
        rows = [run_workload(WORKLOADS[key], lme4 is not None, tmp_dir) for key in ARGS.workloads]
    import_s = time_fresh_import("import interlace")

    print("\n" + format_table(rows))
    print(f'\nimport time: {import_s:.3f} s (python -c "import interlace", median of 3)')
    meta["import_time_s"] = import_s
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({"meta": meta, "workloads": rows}, indent=2))
    print(f"results written to {RESULTS_PATH.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
