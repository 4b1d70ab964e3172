"""Inference-speed benchmark: interlace against lme4/lmerTest/pbkrtest on an existing fit.

Workloads (timing excludes the fit itself):

- P01-P18: profile intervals, ``m.confint(method="profile")`` against lme4's
  ``confint(m, method = "profile", oldNames = FALSE)``, on every case of the shared
  reference set (``tests/data/reference/index.json``) with ``confint_profile``: its
  dataset (bundled CSV), formula and REML flag.
- S01-S18: Satterthwaite df on the same cases, ``m.fe_df`` on a fresh fit against
  lmerTest's ``summary(m)``.
- K1/K2: Kenward-Roger df, ``m.with_df_method("kenward-roger").fe_df`` against
  lmerTest's ``summary(m, ddf = "Kenward-Roger")`` (pbkrtest's ``vcovAdj`` and
  ``Lb_ddf``), on sleepstudy ``Reaction ~ Days + (Days | Subject)`` and Penicillin
  ``diameter ~ 1 + (1 | plate) + (1 | sample)`` (REML).

Protocol as ``run_suite.py``: threads pinned to ``--threads`` before numpy is imported,
one untimed warm-up call, then the median of ``--repeats`` timed calls (one if the
first exceeds 60 s); R runs the same protocol in one ``Rscript`` process per workload.
The df are cached on the result (``functools.cached_property``), so K and S workloads
time each call on its own fresh fit, all fitted untimed up front. lmerTest computes
the Satterthwaite derivatives inside ``lmer()``, so R's S time excludes work that
interlace's S time includes. ``ratio`` is R's median over interlace's (``3.0x``:
interlace three times faster). ``max rel diff`` is max |interlace - R| / |R| over all
interval ends (P) or df (K, S), taking 0 where both are 0. After the table, the P and
S workloads are summed (ratio of the sums) and the P target is checked: interlace no
slower than lme4 on any case and at least 5x faster summed.

Usage: ``python benchmarks/run_inference.py [--workloads P,S,K1] [--repeats 5]
[--threads 1] [--no-r]`` (``P`` and ``S`` stand for all of their cases). Results go to
``benchmarks/results/inference.json`` (git-ignored).
"""

import json
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness

R_PACKAGES = ("lme4", "lmerTest", "pbkrtest")

# Threads must be pinned before numpy (and numba, via interlace) is imported.
ARGS = _harness.parse_args(
    "Time interlace inference against lme4/lmerTest.",
    repeats_help="timed calls per workload",
    no_r_help="skip R",
    workloads="P,S,K1,K2",
    example="P,K1 or P03,S03",
)
_harness.pin_threads(ARGS.threads)

import numpy as np  # noqa: E402

_harness.use_checkout()  # benchmark the checkout this script lives in
import interlace  # noqa: E402

REFERENCE_DIR = _harness.REPO_ROOT / "tests" / "data" / "reference"
PROFILE_TARGET = 5.0
"""interlace's summed profile time must be this many times below lme4's."""



@dataclass(frozen=True)
class Workload:
    key: str
    kind: str  # "profile", "kenward-roger" or "satterthwaite"
    dataset: str
    formula: str
    reml: bool = True

    @property
    def label(self):
        return f"{self.kind} {self.dataset}{'' if self.reml else ' (ML)'}"


def reference_cases():
    """(dataset, formula, REML) of the shared reference cases with profile intervals."""
    cases = json.loads((REFERENCE_DIR / "index.json").read_text())
    out = []
    for case in cases:
        if case.get("weights") or case.get("offset"):
            continue
        ref = json.loads((REFERENCE_DIR / case["json"]).read_text())
        if "names" in ref.get("confint_profile", {}):
            out.append((case["dataset"].removesuffix(".csv"), case["formula"], bool(case["REML"])))
    return out


def _workloads():
    out = []
    for i, (dataset, formula, reml) in enumerate(reference_cases(), start=1):
        out.append(Workload(f"P{i:02d}", "profile", dataset, formula, reml))
    for i, (dataset, formula, reml) in enumerate(reference_cases(), start=1):
        out.append(Workload(f"S{i:02d}", "satterthwaite", dataset, formula, reml))
    out.append(Workload("K1", "kenward-roger", "sleepstudy", "Reaction ~ Days + (Days | Subject)"))
    out.append(Workload("K2", "kenward-roger", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"))
    return {w.key: w for w in out}


WORKLOADS = _workloads()

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
    formula = workload.formula
    method = "REML" if workload.reml else "ML"
    def fit():
        with warnings.catch_warnings():  # several reference fits are singular, as lme4's
            warnings.simplefilter("ignore", interlace.SingularFitWarning)
            return interlace.fit(formula, frame, method=method)

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
m <- lmer({workload.formula}, d, REML = {"TRUE" if workload.reml else "FALSE"})  # untimed
s <- suppressWarnings({expression})  # warm-up, untimed
{_harness.r_timed_loop(f"s <- suppressWarnings({expression})", repeats)}
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
    return {"ratio": r_side["median"] / python_side["median"], "max_rel_diff": float(np.nanmax(rel))}


def format_table(rows):
    """One line per workload; "-" where R did not run or the value counts differ."""
    cell = _harness.cell
    return _harness.format_table(
        {
            "workload": [f"{row['key']} {row['label']}" for row in rows],
            "formula": [row["formula"] for row in rows],
            "interlace [s]": [cell(row["interlace"]["median"], ".4f") for row in rows],
            "R [s]": [cell(row["r"] and row["r"]["median"], ".4f") for row in rows],
            "ratio (x faster)": [
                cell(row["ratio"], ".2f", "x" if row["ratio"] else "") for row in rows
            ],
            "max rel diff": [cell(row["max_rel_diff"], ".1e") for row in rows],
        }
    )


def summarize_kind(rows, kind):
    """Summed medians of one kind's workloads where both sides ran, and the ratio."""
    both = [row for row in rows if row["kind"] == kind and row["r"] is not None]
    if not both:
        return None
    mine = sum(row["interlace"]["median"] for row in both)
    theirs = sum(row["r"]["median"] for row in both)
    slowest = min(both, key=lambda row: row["ratio"])
    return {"kind": kind, "workloads": len(both), "interlace": mine, "r": theirs, "ratio": theirs / mine,
            "slowest": slowest["key"], "slowest_ratio": slowest["ratio"]}


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


def requested(keys):
    """The workload keys, ``P`` and ``S`` expanded to all of their cases."""
    out = []
    for key in keys:
        out += [k for k in WORKLOADS if k[0] == key and k[1:].isdigit()] if key in ("P", "S") else [key]
    return out


def main():
    keys = requested(ARGS.workloads)
    _harness.check_workloads(keys, WORKLOADS)
    versions = {} if ARGS.no_r else _harness.r_versions(R_PACKAGES)
    r_label = ", ".join(f"{p} {v}" for p, v in versions.items())
    meta = _harness.describe_environment(ARGS, "R", r_label)
    _harness.print_environment(meta)

    with tempfile.TemporaryDirectory() as tmp_dir:
        rows = [run_workload(WORKLOADS[key], versions, tmp_dir) for key in keys]

    print("\n" + format_table(rows))
    sums = [s for s in (summarize_kind(rows, "profile"), summarize_kind(rows, "satterthwaite")) if s]
    for s in sums:
        print(f"\n{s['kind']}: {s['workloads']} workloads, summed interlace {s['interlace']:.3f} s, "
              f"R {s['r']:.3f} s, ratio {s['ratio']:.2f}x; slowest {s['slowest']} at {s['slowest_ratio']:.2f}x")
        if s["kind"] == "profile":
            met = s["ratio"] >= PROFILE_TARGET and s["slowest_ratio"] >= 1.0
            print(f"profile target (no slower than lme4 on any case, at least {PROFILE_TARGET:.0f}x summed): "
                  f"{'met' if met else 'NOT met'}")
    _harness.write_results("inference", {"meta": meta, "workloads": rows, "sums": sums})


if __name__ == "__main__":
    main()
