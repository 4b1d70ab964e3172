"""Inference-speed benchmark: interlace against lme4/lmerTest/pbkrtest on an existing fit.

Workloads (REML fits on the bundled CSVs; timing excludes the fit itself):
P1/P2 profile intervals, ``m.confint(method="profile")`` against lme4's
``confint(m, method = "profile")``; K1/K2 Kenward-Roger df,
``m.with_df_method("kenward-roger").fe_df`` against lmerTest's
``summary(m, ddf = "Kenward-Roger")`` (pbkrtest's ``vcovAdj`` and ``Lb_ddf``);
S1 Satterthwaite df, ``m.fe_df`` against lmerTest's ``summary(m)``, for context.
P1, K1, S1 use sleepstudy ``Reaction ~ Days + (Days | Subject)``; P2, K2 Penicillin
``diameter ~ 1 + (1 | plate) + (1 | sample)``.

Protocol as ``run_suite.py``: threads pinned to ``--threads`` before numpy is imported,
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

import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness

R_PACKAGES = ("lme4", "lmerTest", "pbkrtest")

# Threads must be pinned before numpy (and numba, via interlace) is imported.
ARGS = _harness.parse_args(
    "Time interlace inference against lme4/lmerTest.",
    repeats_help="timed calls per workload",
    no_r_help="skip R",
    workloads="P1,P2,K1,K2,S1",
    example="P1,K1",
)
_harness.pin_threads(ARGS.threads)

import numpy as np  # noqa: E402

_harness.use_checkout()  # benchmark the checkout this script lives in
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
    "kenward-roger": (
        "lmerTest",
        'summary(m, ddf = "Kenward-Roger")',
        'coef(s)[, "df", drop = FALSE]',
    ),
    "satterthwaite": ("lmerTest", "summary(m)", 'coef(s)[, "df", drop = FALSE]'),
}


# --- timing ----------------------------------------------------------------
def time_interlace(workload, frame, repeats):
    """Time the inference call; the fits it runs on are made untimed beforehand."""
    fit = lambda: interlace.fit(workload.formula, frame, method="REML")  # noqa: E731
    if workload.kind == "profile":
        m = fit()  # confint caches nothing on the result: one fit serves every call
        seconds, table = _harness.time_repeated(lambda: m.confint(method="profile"), repeats)
        names, values = list(table.index), table.to_numpy(dtype=float).ravel()
        converged = m.converged
    else:
        # fe_df and kenward_roger are cached properties: one fresh fit per call
        fits = iter([fit() for _ in range(repeats + 1)])
        if workload.kind == "kenward-roger":
            call = lambda: next(fits).with_df_method("kenward-roger").fe_df  # noqa: E731
        else:
            call = lambda: next(fits).fe_df  # noqa: E731
        seconds, df = _harness.time_repeated(call, repeats)
        names, values, converged = list(df.index), df.to_numpy(dtype=float), True
    return {
        **_harness.summarize(seconds),
        "names": names,
        "values": values.tolist(),
        "converged": bool(converged),
    }


def r_timing_script(workload, frame, csv_path, repeats):
    """R source: untimed ``lmer()`` and warm-up call, timed repeats, then the values."""
    package, expression, table = R_CALLS[workload.kind]
    return f"""\
suppressPackageStartupMessages(library({package}))
d <- read.csv({_harness.r_string(csv_path)}, stringsAsFactors = TRUE)
{_harness.r_factor_lines(frame)}
m <- lmer({workload.formula}, d, REML = TRUE)  # untimed
s <- {expression}  # warm-up, untimed
{_harness.r_timed_loop(f"s <- {expression}", repeats)}
v <- as.matrix({table})
cat("names", rownames(v), "\\n")
cat("value", sprintf("%.17g", as.vector(t(v))), "\\n")
"""


def time_r(workload, frame, csv_path, repeats, tmp_dir):
    fields, stderr = _harness.run_rscript(
        Path(tmp_dir) / f"{workload.key}.R",
        r_timing_script(workload, frame, csv_path, repeats),
        f"R failed on {workload.key}",
    )
    return {
        **_harness.summarize([float(v) for v in fields["time"]]),
        "names": fields.get("names", []),
        "values": [float(v) for v in fields["value"]],
        "stderr": stderr,
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
    cell = _harness.cell
    return _harness.format_table(
        {
            "workload": [f"{row['key']} {row['label']}" for row in rows],
            "interlace [s]": [cell(row["interlace"]["median"], ".4f") for row in rows],
            "R [s]": [cell(row["r"] and row["r"]["median"], ".4f") for row in rows],
            "ratio (x faster)": [
                cell(row["ratio"], ".2f", "x" if row["ratio"] else "") for row in rows
            ],
            "max rel diff": [cell(row["max_rel_diff"], ".1e") for row in rows],
        }
    )


def run_workload(workload, versions, tmp_dir):
    """Time one workload on both sides and return its result row."""
    print(
        f"running {workload.key}: {workload.label}, {workload.formula} ...",
        file=sys.stderr,
        flush=True,
    )
    frame = interlace.load_dataset(workload.dataset)
    python_side = time_interlace(workload, frame, ARGS.repeats)
    if not python_side["converged"]:
        print(f"warning: interlace converged=False on {workload.key}", file=sys.stderr)
    needed = ("lme4",) if workload.kind == "profile" else ("lmerTest", "pbkrtest")
    r_side = None
    if all(package in versions for package in needed):
        csv_path = _harness.bundled_csv(workload.dataset)
        r_side = time_r(workload, frame, csv_path, ARGS.repeats, tmp_dir)
    return {
        **asdict(workload),
        "label": workload.label,
        "n_obs": len(frame),
        "interlace": python_side,
        "r": r_side,
        **compare(python_side, r_side),
    }


def main():
    _harness.check_workloads(ARGS.workloads, WORKLOADS)
    versions = {} if ARGS.no_r else _harness.r_versions(R_PACKAGES)
    r_label = ", ".join(f"{p} {v}" for p, v in versions.items())
    meta = _harness.describe_environment(ARGS, "R", r_label)
    _harness.print_environment(meta)

    with tempfile.TemporaryDirectory() as tmp_dir:
        rows = [run_workload(WORKLOADS[key], versions, tmp_dir) for key in ARGS.workloads]

    print("\n" + format_table(rows))
    _harness.write_results("inference", {"meta": meta, "workloads": rows})


if __name__ == "__main__":
    main()
