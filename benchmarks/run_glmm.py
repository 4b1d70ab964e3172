"""The GLMM benchmark: workloads G1-G5 of ``shared/spec/glmm.md``, interlace next to
R's ``lme4::glmer`` and the ``glmm`` package (PyPI) in the same run.

Each workload's data are written once; interlace and glmm each run in their own fresh
Python process (``_glmm_child.py``) and glmer in its own ``Rscript`` process, on the
same file. The workloads are defined in ``workloads.py`` (`GLMM_WORKLOADS`);
``benchmarks/README.md`` says how each side is timed.

Usage (from the repository root)::

    python benchmarks/run_glmm.py                        # G1-G5, 5 repeats, 1 thread
    python benchmarks/run_glmm.py --only G1,G2 --repeats 3
    python benchmarks/run_glmm.py --no-r --no-glmm       # interlace only
    python benchmarks/run_glmm.py --with-glmer-g5        # glmer on G5 too (tens of minutes)
    python benchmarks/run_glmm.py --quick --repeats 1    # smoke run: G3-G5 10-100x smaller
    python benchmarks/run_glmm.py --list                 # the workloads

It prints the machine and versions, then one Markdown table and the agreement of the
fits, and writes everything to ``benchmarks/results/glmm.json`` (``glmm-quick.json``
with ``--quick``; git-ignored).
"""

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import _harness

HERE = Path(__file__).resolve().parent
GLMM_THREAD_VAR = "RAYON_NUM_THREADS"
"""The thread count of glmm's Rust (rayon) pool, pinned with the others."""


def parse_args(argv=None):
    """The GLMM benchmark's command line."""
    parser = argparse.ArgumentParser(
        description="Run the GLMM workloads G1-G5 against lme4::glmer and the glmm package."
    )
    parser.add_argument(
        "--only", default="", help="comma-separated workloads, e.g. G1,G2 (default all)"
    )
    _harness.add_common_options(
        parser,
        repeats_help="timed runs per workload and side, median kept; one when a run "
        "exceeds 60 s (default 5)",
        no_r_help="no glmer",
    )
    parser.add_argument("--no-glmm", action="store_true", help="no glmm package")
    parser.add_argument(
        "--with-glmer-g5",
        action="store_true",
        help="also run glmer on G5 (1e6 rows: tens of minutes)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: G3-G5 10-100x smaller (targets not judged)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="JSON file name in benchmarks/results (default glmm.json, glmm-quick.json "
        "with --quick)",
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser.parse_args(argv)


ARGS = parse_args()
_harness.pin_threads(ARGS.threads)  # before numpy is imported; the processes inherit it
os.environ[GLMM_THREAD_VAR] = str(ARGS.threads)

import _lme4  # noqa: E402
import _machine  # noqa: E402
import _report  # noqa: E402
import workloads  # noqa: E402

COLUMNS = (
    "id",
    "workload",
    "rows",
    "interlace (s)",
    "glmer (s)",
    "glmm (s)",
    "glmer/interlace",
    "glmm/interlace",
    "target",
    "met?",
    "interlace peak memory",
    "glmer peak memory",
    "glmm peak memory",
)


def _log(message):
    print(message, file=sys.stderr, flush=True)


def selected():
    """The workloads ``--only`` chooses, in the table's order."""
    only = [key.strip().upper() for key in ARGS.only.split(",") if key.strip()]
    _harness.check_workloads(only, workloads.GLMM_WORKLOADS)
    return [w for key, w in workloads.GLMM_WORKLOADS.items() if not only or key in only]


def statuses(workload, have_lme4, have_glmm):
    """Why glmer and why glmm do not run on this workload ("" where they run)."""
    if ARGS.no_r:
        glmer = "not run (--no-r)"
    elif not have_lme4:
        glmer = "not run (no lme4)"
    elif workload.lme4 == "large" and not (ARGS.with_glmer_g5 or ARGS.quick):
        glmer = "not run (--with-glmer-g5)"
    else:
        glmer = ""
    glmm = "not run (--no-glmm)" if ARGS.no_glmm else "" if have_glmm else "not run (no glmm)"
    return glmer, glmm


# --- one workload ----------------------------------------------------------------
def write_data(workload, for_r, tmp):
    """The data both Python sides and R read: ``dataset``, ``data_path``, ``factors_r``.

    A bundled dataset is read from its CSV (``interlace.load_dataset`` in Python, with
    R given the same factor levels); generated data are written once, to CSV when R
    reads them.
    """
    data = workload.sized(ARGS.quick)
    if isinstance(data, str):
        import interlace

        frame = interlace.load_dataset(data)
        path, factors_r = _harness.bundled_csv(data), _lme4.factor_lines(frame=frame)
    else:
        frame = data.frame()
        path = tmp / f"{workload.key}{workloads.data_suffix(for_r)}"
        workloads.write_frame(frame, path)
        factors_r, data = _lme4.factor_lines(factors=data.factors), None
    return {"dataset": data, "data_path": str(path), "factors_r": factors_r, "n_obs": len(frame)}


def run_side(side, workload, data, tmp):
    """interlace's or glmm's side in a fresh process; (result, None) or (None, error)."""
    out_path = tmp / f"{workload.key}-{side}.out.json"
    spec = {
        "side": side,
        "formula": workload.formula,
        "family": workload.family,
        "dataset": data["dataset"],
        "data_path": data["data_path"],
        "factors": list(workload.factors),
        "repeats": ARGS.repeats,
        "out_path": str(out_path),
    }
    spec_path = tmp / f"{workload.key}-{side}.spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, str(HERE / "_glmm_child.py"), str(spec_path)],
        capture_output=True,
        text=True,
        cwd=_harness.REPO_ROOT,
    )
    error = proc.stderr.strip()[-3000:]
    if error:
        _log(error)
    if proc.returncode != 0:
        return None, error or f"exit status {proc.returncode}"
    return json.loads(out_path.read_text()), None


def run_glmer(workload, data, tmp):
    """glmer's side in its own Rscript process; (result, None) or (None, error)."""
    source = _lme4.glmer_script(
        workload.formula, workload.family, data["data_path"], data["factors_r"], ARGS.repeats
    )
    try:
        return _lme4.run(workload.key, source, tmp), None
    except RuntimeError as error:
        return None, str(error)[-3000:]


def run_workload(workload, have_lme4, have_glmm, tmp):
    """The three sides of one workload: its row of the table."""
    size = workload.size(ARGS.quick)
    row = {
        "key": workload.key,
        "description": f"{workload.description}; {size}",
        "formula": workload.formula,
        "family": workload.family,
        "scaled": ARGS.quick and workload.scales,
        "target_text": workload.target.text,
    }
    glmer_status, glmm_status = statuses(workload, have_lme4, have_glmm)
    row["lme4_status"], row["glmm_status"] = glmer_status or "failed", glmm_status or "failed"
    if glmer_status == "not run (--with-glmer-g5)":
        row["lme4_note"] = workload.lme4_note
    _log(f"{workload.key}: data ({size}) ...")
    try:
        data = write_data(workload, not glmer_status, tmp)
    except Exception as error:  # e.g. a dataset interlace does not bundle yet
        row["interlace_error"] = row["data_error"] = f"{type(error).__name__}: {error}"
        row["lme4_status"], row["glmm_status"] = "not run (no data)", "not run (no data)"
        return finish(row, workload.target)
    row["n_obs"] = data["n_obs"]
    _log(f"{workload.key}: interlace, {workload.family}, {workload.formula} ...")
    row["interlace"], row["interlace_error"] = run_side("interlace", workload, data, tmp)
    if not glmer_status:
        _log(f"{workload.key}: glmer ...")
        row["lme4"], row["lme4_error"] = run_glmer(workload, data, tmp)
        row["lme4_status"] = "ran" if row["lme4"] else "failed"
    if not glmm_status:
        _log(f"{workload.key}: glmm ...")
        row["glmm"], row["glmm_error"] = run_side("glmm", workload, data, tmp)
        row["glmm_status"] = "ran" if row["glmm"] else "failed"
    if data["dataset"] is None:
        Path(data["data_path"]).unlink()
    return finish(row, workload.target)


# --- verdicts and agreement ----------------------------------------------------------
def glmm_ratio(row):
    """glmm's median seconds over interlace's, or None if either is missing."""
    return _report.ratio({"interlace": row.get("interlace"), "lme4": row.get("glmm")})


def verdict(target, row):
    """`_report.verdict` (glmer ratio, time, memory), and the target against glmm."""
    base = _report.verdict(target, row)
    if row.get("scaled") or not row.get("interlace") or target.min_glmm_ratio is None:
        return base
    value = glmm_ratio(row)
    failed = [base[len("no (") : -1]] if base.startswith("no (") else []
    if value is not None and value < target.min_glmm_ratio:
        failed.append("glmm ratio")
    if failed:
        return f"no ({', '.join(failed)})"
    missing = (["glmer"] if base == "n/a (no lme4 run)" else []) + (
        ["glmm"] if value is None else []
    )
    return f"n/a (no {' or '.join(missing)} run)" if missing else base


def compare(fit, reference):
    """One fit against the reference fit: logLik difference and fixed-effect distance.

    ``dloglik`` is the fit's logLik minus the reference's (positive: a higher
    likelihood). Fixed effects are matched by name (by position if the names differ);
    ``max_abs_dfixef`` is the largest absolute difference and ``max_dfixef_per_se``
    the largest in units of the reference's standard errors; ``max_abs_dtheta`` the
    largest difference of the theta vectors (lme4's order), where both have one.
    """
    ref_fe, fe = reference["fixef"], fit["fixef"]
    if set(ref_fe) <= set(fe):
        pairs = [(fe[name], ref_fe[name], name) for name in ref_fe]
    elif len(fe) == len(ref_fe):
        pairs = list(zip(fe.values(), ref_fe.values(), ref_fe, strict=True))
    else:
        pairs = []
    se = reference.get("se", {})
    diffs = [abs(a - b) for a, b, _ in pairs]
    per_se = [abs(a - b) / se[name] for a, b, name in pairs if se.get(name)]
    theta, ref_theta = fit.get("theta"), reference.get("theta")
    same = theta is not None and ref_theta is not None and len(theta) == len(ref_theta)
    return {
        "max_abs_dtheta": max(abs(a - b) for a, b in zip(theta, ref_theta, strict=True))
        if same
        else None,
        "dloglik": fit["loglik"] - reference["loglik"],
        "max_abs_dfixef": max(diffs) if diffs else None,
        "max_dfixef_per_se": max(per_se) if per_se else None,
        "matched_by": "name" if set(ref_fe) <= set(fe) else ("position" if pairs else "none"),
    }


def agreement(row):
    """interlace's and glmm's fits against glmer's (against glmm's where glmer did not run)."""
    reference = "lme4" if row.get("lme4") else "glmm"
    if not row.get(reference):
        return None
    found = {"reference": "glmer" if reference == "lme4" else "glmm"}
    for side in ("interlace", "glmm"):
        if side != reference and row.get(side):
            found[side] = compare(row[side], row[reference])
    return found if len(found) > 1 else None


def finish(row, target):
    """The row's ratios, verdict and agreement."""
    row["ratio"] = _report.ratio(row)
    row["glmm_ratio"] = glmm_ratio(row)
    row["met"] = verdict(target, row)
    row["agreement"] = agreement(row)
    return row


# --- tables ----------------------------------------------------------------------
def _time(row, side, status):
    found = row.get(side)
    return _report.seconds(found["median"]) if found else status


def table_row(row):
    """The cells of one row, in `COLUMNS` order."""
    py, r, g = row.get("interlace"), row.get("lme4"), row.get("glmm")
    return [
        row["key"],
        _report._escape(f"{row['description']}; `{row['formula']}`"),
        f"{row['n_obs']:,}" if "n_obs" in row else "-",
        _time(row, "interlace", "failed"),
        _time(row, "lme4", row["lme4_status"]),
        _time(row, "glmm", row["glmm_status"]),
        _report._ratio_cell(row["ratio"]),
        _report._ratio_cell(row["glmm_ratio"]),
        row["target_text"],
        row["met"],
        *(_harness.format_bytes(side and side.get("peak_bytes")) for side in (py, r, g)),
    ]


def _fit_cell(found):
    if not found:
        return "-"
    dfe, per_se = found["max_abs_dfixef"], found["max_dfixef_per_se"]
    dtheta = found["max_abs_dtheta"]
    return (
        f"dlogLik {found['dloglik']:+.1e}, max\\|dbeta\\| {_harness.cell(dfe, '.1e')} "
        f"({_harness.cell(per_se, '.1e')} SE)"
        + ("" if dtheta is None else f", max\\|dtheta\\| {dtheta:.1e}")
    )


def _converged(side):
    return "-" if not side else ("yes" if side.get("converged") else "no")


def agreement_table(rows):
    """How the fits agree, one line per workload with a reference fit; "" if none."""
    lines = [
        [
            row["key"],
            row["agreement"]["reference"],
            _fit_cell(row["agreement"].get("interlace")),
            _fit_cell(row["agreement"].get("glmm")),
            " / ".join(_converged(row.get(s)) for s in ("interlace", "lme4", "glmm")),
        ]
        for row in rows
        if row.get("agreement")
    ]
    header = (
        "id",
        "reference",
        "interlace vs reference",
        "glmm vs reference",
        "converged (interlace / glmer / glmm)",
    )
    return _report.markdown(header, lines) if lines else ""


def notes(rows, info):
    """What the table cannot say: memory methods, skipped sides, failures, logLiks."""
    lines = [
        "interlace and glmm peak memory: maximum resident set size (VmHWM) of the side's "
        "own fresh Python process, read after its timed runs: interpreter, imports, data, "
        "warm-up and timed fits.",
        "glmer peak memory: maximum resident set size of the Rscript process, from "
        f"{info['peak_method']}: R, lme4, data and every fit.",
        'glmm runs with `anova_test="Wald"` (its default "auto" also refits a Poisson '
        "GLMM once per fixed term, for likelihood-ratio tables glmer does not compute).",
    ]
    if ARGS.quick:
        lines.append("--quick: G3-G5 run 10-100x smaller; their targets are not judged.")
    for row in rows:
        if row.get("lme4_note"):
            lines.append(f"{row['key']}: glmer {row['lme4_status']}: {row['lme4_note']}.")
        loglik = {
            name: row[side]["loglik"]
            for side, name in (("interlace", "interlace"), ("lme4", "glmer"), ("glmm", "glmm"))
            if row.get(side)
        }
        if loglik:
            text = ", ".join(f"{name} {value:.6f}" for name, value in loglik.items())
            lines.append(f"{row['key']}: logLik {text}.")
        if row.get("glmm") and row["glmm"].get("warnings"):
            lines.append(f"{row['key']}: glmm warned: {', '.join(row['glmm']['warnings'])}.")
        for side, name in (("interlace", "interlace"), ("lme4", "glmer"), ("glmm", "glmm")):
            if row.get(f"{side}_error"):  # the error's last line (a traceback's exception)
                last = row[f"{side}_error"].strip().splitlines()[-1][-300:]
                lines.append(f"{row['key']}: {name} failed: {last}")
    return lines


# --- the run -----------------------------------------------------------------------
def main():
    rows_to_run = selected()
    if ARGS.list:
        for w in rows_to_run:
            print(
                f"{w.key}: {w.description}; {w.size()}; {w.family}; {w.formula}; "
                f"target {w.target.text}"
            )
        return
    info = _machine.describe(ARGS.threads, with_r=not ARGS.no_r)
    info["peak_method"] = _harness.peak_method()
    have_glmm = importlib.util.find_spec("glmm") is not None
    info["versions"]["glmm"] = metadata.version("glmm") if have_glmm else None
    info["thread_env"][GLMM_THREAD_VAR] = os.environ[GLMM_THREAD_VAR]
    have_lme4 = "lme4" in info["r_versions"]
    command = ("python benchmarks/run_glmm.py " + shlex.join(sys.argv[1:])).strip()
    with tempfile.TemporaryDirectory(prefix="interlace-glmm-bench-") as tmp:
        rows = [run_workload(w, have_lme4, have_glmm, Path(tmp)) for w in rows_to_run]

    table = _report.markdown(COLUMNS, [table_row(row) for row in rows])
    print("\n".join(_machine.summary_lines(info)))
    print(f"glmm {info['versions']['glmm'] or 'not installed'} ({GLMM_THREAD_VAR}={ARGS.threads})")
    print(f"command: {command}")
    print(
        f"repeats: {ARGS.repeats} (median; one run when a run exceeds 60 s)"
        + ("; --quick smoke run" if ARGS.quick else "")
    )
    print("\n" + _machine.provenance(info, command, ARGS.repeats))
    print("\n" + table + "\n")
    print("\n".join(f"- {line}" for line in notes(rows, info)))
    agreement = agreement_table(rows)
    if agreement:
        print("\n" + agreement)
    name = ARGS.output or ("glmm-quick" if ARGS.quick else "glmm")
    payload = {
        "command": command,
        "args": vars(ARGS),
        "machine": info,
        "rows": rows,
        "table": table,
    }
    _harness.write_results(name.removesuffix(".json"), payload)


if __name__ == "__main__":
    main()
