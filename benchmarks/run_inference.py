"""Inference-speed benchmark: interlace against lme4/lmerTest/pbkrtest on an existing fit.

Workloads (REML fits on the bundled CSVs; timing excludes the fit itself):
P1/P2 profile intervals, ``m.confint(method="profile")`` against lme4's
``confint(m, method = "profile")``; K1/K2 Kenward-Roger df,
``m.with_df_method("kenward-roger").fe_df`` against lmerTest's
``summary(m, ddf = "Kenward-Roger")`` (pbkrtest's ``vcovAdj`` and ``Lb_ddf``);
S1 Satterthwaite df, ``m.fe_df`` against lmerTest's ``summary(m)``, for context.
P1, K1, S1 use sleepstudy ``Reaction ~ Days + (Days | Subject)``; P2, K2 Penicillin
``diameter ~ 1 + (1 | plate) + (1 | sample)``.

Protocol as ``run_core.py``: threads pinned to ``--threads`` before numpy is imported,
one untimed warm-up call, then the median of ``--repeats`` timed calls (one if the
first exceeds 60 s); R runs the same protocol in one ``Rscript`` process per workload.
The df are cached on the result (``functools.cached_property``), so K and S workloads
time each call on its own fresh fit, all fitted untimed up front. lmerTest computes
the Satterthwaite derivatives inside ``lmer()``, so R's S1 time excludes work that
interlace's S1 time includes. ``ratio`` is R's median over interlace's (``3.0x``:
interlace three times faster). ``max rel diff`` is max |interlace - R| / |R| over all
interval ends (P) or df (K, S), taking 0 where both are 0.

Usage: ``python benchmarks/run_inference.py [--workloads P1,P2,K1,K2,S1] [--repeats 5]
[--threads 1] [--no-r]``. Results go to ``benchmarks/results/inference.json`` (git-ignored).
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
RESULTS_PATH = REPO_ROOT / "benchmarks" / "results" / "inference.json"
R_PACKAGES = ("lme4", "lmerTest", "pbkrtest")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Time interlace inference against lme4/lmerTest.")
    parser.add_argument("--workloads", default="P1,P2,K1,K2,S1", help="comma-separated, e.g. P1,K1")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per workload")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/numba threads")
    parser.add_argument("--no-r", action="store_true", help="skip R")
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

SLEEP = ("sleepstudy", "Reaction ~ Days + (Days | Subject)")
PENICILLIN = ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)")


@dataclass(frozen=True)
class Workload:
    key: str
    kind: str  # "profile", "kenward-roger" or "satterthwaite"
    dataset: str
    formula: str

    @property
    def label(self):
        return f"{self.kind} {self.dataset}"


WORKLOADS = {
    w.key: w
    for w in (
        Workload("P1", "profile", *SLEEP),
        Workload("P2", "profile", *PENICILLIN),
        Workload("K1", "kenward-roger", *SLEEP),
        Workload("K2", "kenward-roger", *PENICILLIN),
        Workload("S1", "satterthwaite", *SLEEP),
    )
}

# R side: (package, timed expression, table `v` holding the values, taken row by row)
R_CALLS = {
    "profile": ("lme4", 'confint(m, method = "profile", oldNames = FALSE)', "s"),
    "kenward-roger": ("lmerTest", 'summary(m, ddf = "Kenward-Roger")', 'coef(s)[, "df", drop = FALSE]'),
    "satterthwaite": ("lmerTest", "summary(m)", 'coef(s)[, "df", drop = FALSE]'),
}


# --- python timing ---------------------------------------------------------
def time_repeated(call_once, repeats):
    """Warm up untimed, then time ``repeats`` calls (one if the first exceeds 60 s)."""
    call_once()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call_once()
        seconds.append(time.perf_counter() - start)
        if seconds[0] > ONE_RUN_THRESHOLD_S:
            break
    return seconds, result


def time_interlace(workload, frame, repeats):
    """Time the inference call; the fits it runs on are made untimed beforehand."""
    fit = lambda: interlace.fit(workload.formula, frame, method="REML")  # noqa: E731
    if workload.kind == "profile":
        m = fit()  # confint caches nothing on the result: one fit serves every call
        seconds, table = time_repeated(lambda: m.confint(method="profile"), repeats)
        names, values = list(table.index), table.to_numpy(dtype=float).ravel()
        converged = m.converged
    else:
        # fe_df and kenward_roger are cached properties: one fresh fit per call
        fits = iter([fit() for _ in range(repeats + 1)])
        if workload.kind == "kenward-roger":
            call = lambda: next(fits).with_df_method("kenward-roger").fe_df  # noqa: E731
        else:
            call = lambda: next(fits).fe_df  # noqa: E731
        seconds, df = time_repeated(call, repeats)
        names, values, converged = list(df.index), df.to_numpy(dtype=float), True
    return {
        "seconds": seconds,
        "median": statistics.median(seconds),
        "names": names,
        "values": values.tolist(),
        "converged": bool(converged),
    }


# --- R timing --------------------------------------------------------------
def r_factor_lines(frame):
    """``factor()`` calls giving each categorical column the frame's own level order."""
    lines = []
    for column in frame.select_dtypes("category").columns:
        levels = ", ".join(json.dumps(str(level)) for level in frame[column].cat.categories)
        lines.append(f"d${column} <- factor(d${column}, levels = c({levels}))")
    return "\n".join(lines)


def r_timing_script(workload, frame, csv_path, repeats):
    """R source: untimed ``lmer()`` and warm-up call, timed repeats, then the values."""
    package, expression, table = R_CALLS[workload.kind]
    return f"""\
suppressPackageStartupMessages(library({package}))
d <- read.csv({json.dumps(str(csv_path))}, stringsAsFactors = TRUE)
{r_factor_lines(frame)}
m <- lmer({workload.formula}, d, REML = TRUE)  # untimed
s <- {expression}  # warm-up, untimed
for (i in seq_len({repeats})) {{
  el <- system.time(s <- {expression})[["elapsed"]]
  cat("time", sprintf("%.6f", el), "\\n")
  if (i == 1 && el > {ONE_RUN_THRESHOLD_S}) break
}}
v <- as.matrix({table})
cat("names", rownames(v), "\\n")
cat("value", sprintf("%.17g", as.vector(t(v))), "\\n")
"""


def r_versions():
    """{package: version} of the R packages that load; empty without Rscript."""
    if shutil.which("Rscript") is None:
        return {}
    probe = (
        f"for (p in c({', '.join(json.dumps(p) for p in R_PACKAGES)})) "
        "if (requireNamespace(p, quietly = TRUE)) cat(p, as.character(packageVersion(p)), '\\n')"
    )
    proc = subprocess.run(["Rscript", "-e", probe], capture_output=True, text=True)
    return dict(line.split() for line in proc.stdout.splitlines() if line.strip())


def time_r(workload, frame, csv_path, repeats, tmp_dir):
    script_path = Path(tmp_dir) / f"{workload.key}.R"
    script_path.write_text(r_timing_script(workload, frame, csv_path, repeats))
    # os.environ already carries the pinned thread counts
    proc = subprocess.run(["Rscript", str(script_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"R failed on {workload.key}:\n{proc.stderr}")
    fields = {}
    for line in proc.stdout.splitlines():
        key, *values = line.split()
        fields.setdefault(key, []).extend(values)
    seconds = [float(v) for v in fields["time"]]
    return {
        "seconds": seconds,
        "median": statistics.median(seconds),
        "names": fields.get("names", []),
        "values": [float(v) for v in fields["value"]],
        "stderr": proc.stderr.strip(),
    }


# --- comparison and table --------------------------------------------------
def compare(python_side, r_side):
    """Ratio (R / interlace) and max relative difference; None where not computable."""
    if r_side is None:
        return {"ratio": None, "max_rel_diff": None}
    a, b = np.asarray(python_side["values"]), np.asarray(r_side["values"])
    if a.shape != b.shape:
        return {"ratio": r_side["median"] / python_side["median"], "max_rel_diff": None}
    scale = np.abs(b)
    diff = np.abs(a - b)
    rel = np.divide(diff, scale, out=np.where(diff == 0, 0.0, np.inf), where=scale > 0)
    return {"ratio": r_side["median"] / python_side["median"], "max_rel_diff": float(rel.max())}


def format_table(rows):
    """One line per workload; "-" where R did not run or the value counts differ."""
    cell = lambda value, fmt: "-" if value is None else format(value, fmt)  # noqa: E731
    table = pd.DataFrame(
        {
            "workload": [f"{row['key']} {row['label']}" for row in rows],
            "interlace [s]": [cell(row["interlace"]["median"], ".4f") for row in rows],
            "R [s]": [cell(row["r"] and row["r"]["median"], ".4f") for row in rows],
            "ratio (x faster)": [
                cell(row["ratio"], ".2f") + ("x" if row["ratio"] else "") for row in rows
            ],
            "max rel diff": [cell(row["max_rel_diff"], ".1e") for row in rows],
        }
    )
    return table.to_string(index=False)


def run_workload(workload, versions, tmp_dir):
    """Time one workload on both sides and return its result row."""
    print(f"running {workload.key}: {workload.label}, {workload.formula} ...", file=sys.stderr, flush=True)
    frame = interlace.load_dataset(workload.dataset)
    python_side = time_interlace(workload, frame, ARGS.repeats)
    if not python_side["converged"]:
        print(f"warning: interlace converged=False on {workload.key}", file=sys.stderr)
    needed = ("lme4",) if workload.kind == "profile" else ("lmerTest", "pbkrtest")
    r_side = None
    if all(package in versions for package in needed):
        csv_path = Path(interlace.__file__).parent / "datasets" / f"{workload.dataset}.csv"
        r_side = time_r(workload, frame, csv_path, ARGS.repeats, tmp_dir)
    return {
        **asdict(workload),
        "label": workload.label,
        "n_obs": len(frame),
        "interlace": python_side,
        "r": r_side,
        **compare(python_side, r_side),
    }


def describe_environment(r_label):
    """Settings and versions: printed above the table and stored in the JSON."""
    return {
        "threads": ARGS.threads,
        "repeats": ARGS.repeats,
        "interlace": f"{getattr(interlace, '__version__', '?')} at {interlace.__file__}",
        "R": r_label,
        "python": f"{platform.python_version()} (numpy {np.__version__}, pandas {pd.__version__})",
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main():
    unknown = [key for key in ARGS.workloads if key not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    versions = {} if ARGS.no_r else r_versions()
    r_label = "skipped (--no-r)" if ARGS.no_r else (
        ", ".join(f"{p} {v}" for p, v in versions.items()) or "not available"
    )
    meta = describe_environment(r_label)
    print(f"threads: {ARGS.threads} (OMP/OpenBLAS/MKL/numba, Python and R)")
    print("\n".join(f"{key}: {value}" for key, value in meta.items() if key != "threads"))

    with tempfile.TemporaryDirectory() as tmp_dir:
        rows = [run_workload(WORKLOADS[key], versions, tmp_dir) for key in ARGS.workloads]

    print("\n" + format_table(rows))
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({"meta": meta, "workloads": rows}, indent=2))
    print(f"results written to {RESULTS_PATH.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
