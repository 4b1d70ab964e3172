"""The benchmark suite: workloads W1-W12 of the performance spec, interlace next to lme4.

Each workload runs in its own fresh Python process (``_child.py``), so its peak memory
is its own; lme4 runs in its own ``Rscript`` process on the same file, in the same
run. The workloads are defined in ``workloads.py``; ``benchmarks/README.md`` says how
each side is timed and how memory is measured.

Usage (from the repository root)::

    python benchmarks/run_suite.py                       # W1-W12, 5 repeats, 1 thread
    python benchmarks/run_suite.py --only W1,W2 --repeats 2
    python benchmarks/run_suite.py --quick --repeats 1   # smoke run, simulated data 10-100x smaller
    python benchmarks/run_suite.py --r-large             # lme4 on W7 and W11 too (minutes)
    python benchmarks/run_suite.py --list                # the workloads

It prints the machine and versions, then one Markdown table, and writes everything to
``benchmarks/results/suite.json`` (``suite-quick.json`` with ``--quick``; git-ignored).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import _harness

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    """The suite's command line."""
    parser = argparse.ArgumentParser(description="Run the benchmark suite W1-W12 against lme4.")
    parser.add_argument(
        "--only", default="", help="comma-separated workloads, e.g. W1,W2 (default all)"
    )
    parser.add_argument("--skip", default="", help="comma-separated workloads to leave out")
    _harness.add_common_options(
        parser,
        repeats_help="timed runs per workload, median kept; one when a run exceeds 60 s "
        "(default 5)",
        no_r_help="interlace only, no lme4",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: simulated workloads 10-100x smaller (targets not judged)",
    )
    parser.add_argument(
        "--r-large",
        action="store_true",
        help="also run lme4 on W7 and W11, which take minutes in lme4",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="JSON file name in benchmarks/results (default suite.json, "
        "suite-quick.json with --quick)",
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser.parse_args(argv)


ARGS = parse_args()
_harness.pin_threads(ARGS.threads)  # before numpy is imported; the processes inherit it

import _coldstart  # noqa: E402
import _lme4  # noqa: E402
import _machine  # noqa: E402
import _report  # noqa: E402
import workloads  # noqa: E402


def _keys(text):
    return [key.strip().upper() for key in text.split(",") if key.strip()]


def selected():
    """The workloads ``--only`` and ``--skip`` choose, in the table's order."""
    only, skip = _keys(ARGS.only), _keys(ARGS.skip)
    _harness.check_workloads(only + skip, workloads.WORKLOADS)
    return [
        w for key, w in workloads.WORKLOADS.items() if (not only or key in only) and key not in skip
    ]


def lme4_status(workload, have_lme4):
    """Why lme4 does not run on this workload, as the table shows it; "" if it runs."""
    if ARGS.no_r:
        return "not run (--no-r)"
    if not have_lme4:
        return "not run (no lme4)"
    if workload.lme4 == "no":
        return "not run (too long)" if workload.regular is None else "not run (not compared)"
    if workload.lme4 == "large" and not (ARGS.r_large or ARGS.quick):
        return "not run (--r-large)"
    return ""


def _log(message):
    print(message, file=sys.stderr, flush=True)


# --- one workload ----------------------------------------------------------------
def prepare_data(workload, with_r, tmp):
    """Write the workload's data once; where both sides read it, and R's factor lines."""
    data = workload.sized(ARGS.quick)
    if isinstance(data, str):  # a bundled dataset: both sides read its CSV
        factors_r = ""
        if with_r:
            import interlace

            factors_r = _lme4.factor_lines(frame=interlace.load_dataset(data))
        return {
            "dataset": data,
            "data_path": str(_harness.bundled_csv(data)),
            "factors_r": factors_r,
        }
    path = tmp / f"{workload.key}{workloads.data_suffix(with_r)}"  # R here reads no Parquet
    workloads.write_frame(data.frame(), path)
    return {
        "dataset": None,
        "data_path": str(path),
        "factors_r": _lme4.factor_lines(factors=data.factors),
    }


def run_child(workload, data, tmp, env=None):
    """interlace's side in a fresh process (``env``: its environment, by default this
    one's); (result, None) or (None, error text)."""
    spec = {
        "key": workload.key,
        "kind": workload.kind,
        "formula": workload.formula,
        "dataset": data["dataset"],
        "data_path": data["data_path"],
        "factors": list(workload.factors),
        "repeats": ARGS.repeats,
        "n_refits": workload.n_refits,
        "attribute": workload.attribute,
        "y_path": str(tmp / f"{workload.key}-Y.csv"),
        "out_path": str(tmp / f"{workload.key}.out.json"),
    }
    spec_path = tmp / f"{workload.key}.spec.json"
    spec_path.write_text(json.dumps(spec))
    if workload.all_cores:
        env = {**os.environ, **{var: str(os.cpu_count()) for var in _harness.THREAD_ENV_VARS}}
    proc = subprocess.run(
        [sys.executable, str(HERE / "_child.py"), str(spec_path)],
        capture_output=True,
        text=True,
        cwd=_harness.REPO_ROOT,
        env=env,
    )
    if proc.stderr.strip():
        _log(proc.stderr.strip()[-3000:])
    if proc.returncode != 0:
        return None, proc.stderr.strip()[-3000:] or f"exit status {proc.returncode}"
    return json.loads(Path(spec["out_path"]).read_text()), None


def run_r(workload, data, tmp):
    """lme4's side; (result, None) or (None, error text)."""
    if workload.kind == "fresh-loop":
        source = _lme4.fresh_loop_script(workload.formula, data["data_path"], ARGS.repeats)
    elif workload.kind == "refit":
        source = _lme4.refit_script(
            workload.formula,
            data["data_path"],
            data["factors_r"],
            tmp / f"{workload.key}-Y.csv",
            ARGS.repeats,
        )
    else:
        source = _lme4.fit_script(
            workload.formula, data["data_path"], data["factors_r"], ARGS.repeats
        )
    try:
        return _lme4.run(workload.key, source, tmp), None
    except RuntimeError as error:
        return None, str(error)[-3000:]


def _row(workload, quick_scaled):
    threads = f"; interlace on all {os.cpu_count()} cores" if workload.all_cores else ""
    return {
        "key": workload.key,
        "description": f"{workload.description}; {workload.size(ARGS.quick)}{threads}",
        "formula": workload.formula,
        "kind": workload.kind,
        "scaled": quick_scaled,
        "target_text": workload.target.text,
    }


def run_workload(workload, have_lme4, tmp):
    """Both sides of one fit or refit workload: its row of the table."""
    row = _row(workload, ARGS.quick and workload.scales)
    status = lme4_status(workload, have_lme4)
    row["lme4_status"] = status or "failed"
    if status in ("not run (too long)", "not run (--r-large)", "not run (not compared)"):  # its own reason
        row["lme4_note"] = workload.lme4_note
    _log(f"{workload.key}: writing data ({workload.size(ARGS.quick)}) ...")
    data = prepare_data(workload, not status, tmp)
    _log(f"{workload.key}: interlace, {workload.formula} ...")
    row["interlace"], row["interlace_error"] = run_child(workload, data, tmp)
    if not status and workload.kind == "refit" and row["interlace"] is None:
        row["lme4_status"] = "not run (W3's responses come from interlace)"
    elif not status:
        _log(f"{workload.key}: lme4 ...")
        row["lme4"], row["lme4_error"] = run_r(workload, data, tmp)
    if data["dataset"] is None:
        Path(data["data_path"]).unlink()  # W8's file is large: free the disk now
    if workload.regular is not None:
        run_regular(workload, row, tmp)
    return _finish(row, workload.target)


def run_regular(workload, row, tmp):
    """W12: interlace on the workload's regular design too, in its own fresh process;
    the row gets its time (``regular``) and the slowdown, time over regular time."""
    regular = replace(workload, key=f"{workload.key}-regular", data=workload.regular, regular=None)
    _log(f"{workload.key}: regular design ({regular.size(ARGS.quick)}) ...")
    data = prepare_data(regular, False, tmp)
    row["regular"], row["regular_error"] = run_child(regular, data, tmp)
    Path(data["data_path"]).unlink()
    if row["interlace"] and row["regular"]:
        row["slowdown"] = row["interlace"]["median"] / row["regular"]["median"]
        row["description"] += (
            f"; regular design {_report.seconds(row['regular']['median'])} s, "
            f"singular / regular = {row['slowdown']:.2f}x"
        )


SPIN = "import time\nprint('spinning', flush=True)\nwhile True:\n    pass\n"
"""A process that keeps one core busy until it is killed."""


def run_busy(workload, tmp):
    """W6-BUSY: the workload's fit with interlace's default threads (the pinned thread
    variables removed from the child's environment), in a fresh process on the quiet
    machine, then in another while a busy-loop process spins a core beside it; the row
    gets the busy time and the slowdown, busy over quiet."""
    row = _row(workload, ARGS.quick and workload.scales)
    row["lme4_status"] = "not run (not compared)"
    row["lme4_note"] = workload.lme4_note
    _log(f"{workload.key}: writing data ({workload.size(ARGS.quick)}) ...")
    data = prepare_data(workload, False, tmp)
    env = {k: v for k, v in os.environ.items() if k not in _harness.THREAD_ENV_VARS}
    _log(f"{workload.key}: interlace on the quiet machine, default threads ...")
    quiet = replace(workload, key=f"{workload.key}-quiet")
    row["quiet"], row["quiet_error"] = run_child(quiet, data, tmp, env=env)
    _log(f"{workload.key}: interlace beside a process spinning a core ...")
    with subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) as spinner:
        try:
            spinner.stdout.readline()  # it spins from here on
            row["interlace"], row["interlace_error"] = run_child(workload, data, tmp, env=env)
        finally:
            spinner.kill()
    Path(data["data_path"]).unlink()
    if row["interlace"] and row["quiet"]:
        row["slowdown"] = row["interlace"]["median"] / row["quiet"]["median"]
        row["description"] += (
            f"; quiet {_report.seconds(row['quiet']['median'])} s, "
            f"busy / quiet = {row['slowdown']:.2f}x"
        )
    return _finish(row, workload.target)


def run_attribute(workload, tmp):
    """An "attribute" row: new fits and the attribute read from each, in one fresh
    process; with ``workload.busy``, with interlace's default threads beside a process
    spinning a core. The row's time is the attribute's; its description gives the fits'."""
    row = _row(workload, ARGS.quick and workload.scales)
    row["lme4_status"] = "not run (not compared)"
    row["lme4_note"] = workload.lme4_note
    data = prepare_data(workload, False, tmp)
    _log(f"{workload.key}: interlace, {workload.attribute} of {workload.formula} ...")
    if workload.busy:
        env = {k: v for k, v in os.environ.items() if k not in _harness.THREAD_ENV_VARS}
        with subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) as spinner:
            try:
                spinner.stdout.readline()
                row["interlace"], row["interlace_error"] = run_child(workload, data, tmp, env=env)
            finally:
                spinner.kill()
    else:
        row["interlace"], row["interlace_error"] = run_child(workload, data, tmp)
    if row["interlace"]:
        found = row["interlace"]
        row["description"] += (
            f"; fit {_report.seconds(found['fit_median'])} s, "
            f"{workload.attribute} / fit = {found['share_of_fit']:.2f}x"
        )
    return _finish(row, workload.target)


def _finish(row, target):
    row["ratio"] = _report.ratio(row)
    row["met"] = _report.verdict(target, row)
    if target is not None and target.max_slowdown is not None and not row.get("scaled"):
        slowdown = row.get("slowdown")
        row["met"] = (
            "n/a (a fit failed)"
            if slowdown is None
            else ("yes" if slowdown <= target.max_slowdown else "no (slowdown)")
        )
    row["agreement"] = _report.agreement(row)
    return row


def run_cold_start(workload, have_lme4):
    """W10's three rows: cold-start fit, ``import interlace``, first fit on an empty cache."""
    status = lme4_status(workload, have_lme4)
    _log(f"{workload.key}: fresh processes ...")
    try:
        found = _coldstart.measure(workload.formula, ARGS.repeats, with_r=not status)
    except RuntimeError as error:
        row = {**_row(workload, False), "interlace": None, "interlace_error": str(error)[-3000:]}
        return [_finish(row, workload.target)]
    fit = {
        **_row(workload, False),
        "interlace": found["fit"],
        "lme4": found["lme4_fit"],
        "lme4_status": status or "failed",
        "lme4_error": found["lme4_error"],
    }
    imported = {
        "key": "W10 import",
        "description": "`import interlace` in a fresh process (`-X importtime`, cumulative)",
        "formula": "",
        "kind": "import",
        "target_text": workloads.IMPORT_TARGET.text,
        "interlace": found["import"],
        "lme4": None,
        "lme4_status": "-",
    }
    cold = {
        "key": "W10 cold cache",
        "description": "as W10, NUMBA_CACHE_DIR an empty directory: "
        "the first fit, kernels compiled",
        "formula": "",
        "kind": "cold-cache",
        "target_text": workloads.COLD_CACHE_TARGET.text,
        "interlace": found["cold_cache"],
        "lme4": found["lme4_fit"],
        "lme4_status": fit["lme4_status"],
    }
    return [
        _finish(fit, workload.target),
        _finish(imported, workloads.IMPORT_TARGET),
        _finish(cold, workloads.COLD_CACHE_TARGET),
    ]


def run_cold_cache(workload):
    """A "cold-cache" row: the first fit of a bundled dataset in fresh processes, each
    with an empty Numba cache."""
    row = {**_row(workload, False), "lme4": None, "lme4_status": "not run (not compared)",
           "lme4_note": workload.lme4_note}
    _log(f"{workload.key}: fresh processes, empty Numba cache ...")
    try:
        row["interlace"] = _coldstart.cold_cache(workload.formula, workload.data, ARGS.repeats)
        row["interlace_error"] = None
    except RuntimeError as error:
        row["interlace"], row["interlace_error"] = None, str(error)[-3000:]
    return _finish(row, workload.target)


def run_dask(workload, tmp):
    """A "dask" row: ``dask_fit.py`` in a child process, the Parquet written by its own
    child first; with a target without limits (context), the rows fitted in memory too."""
    data = workload.sized(ARGS.quick)
    context = workload.target.max_memory_gb is None
    row = {**_row(workload, ARGS.quick and workload.scales), "lme4": None, "lme4_status": "not run (not compared)",
           "lme4_note": workload.lme4_note}
    output = tmp / f"{workload.key}.json"
    command = [sys.executable, str(Path(__file__).with_name("dask_fit.py")), "--n", str(data.n), "--n1", str(data.n1),
               "--n2", str(data.n2), "--output", str(output)] + (["--in-memory"] if context else [])
    _log(f"{workload.key}: {' '.join(command[1:])} ...")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        row["interlace"], row["interlace_error"] = None, (done.stdout + done.stderr)[-3000:]
        return _finish(row, None if context else workload.target)
    report = json.loads(output.read_text())
    found = report["dask"]
    # the driver's peak over the fit and the conditional SDs read after it (the larger of the two)
    peak = max(found["driver_peak_bytes"], found.get("driver_peak_with_conditional_sd_bytes", 0))
    row["interlace"] = {"median": found["seconds"], "seconds": [found["seconds"]], "peak_bytes": peak, **report}
    row["interlace_error"] = None
    return _finish(row, None if context else workload.target)


# --- the run -----------------------------------------------------------------------
def _ms(value):
    return "?" if value is None else f"{value * 1000:.1f} ms"


def notes(rows, info):
    """What the table cannot say: memory methods, skipped lme4 runs, failures, W10 details."""
    lines = [
        "interlace peak memory: maximum resident set size (VmHWM) of the workload's own "
        "fresh Python process, read by it after its timed runs: interpreter, imports, data, "
        "warm-up and timed fits. W10 rows: of the timed fresh processes, from "
        f"{info['peak_method']}.",
        "lme4 peak memory: maximum resident set size of the Rscript process, from "
        f"{info['peak_method']}: R, lme4, data and every fit.",
    ]
    if ARGS.quick:
        lines.append(
            "--quick: simulated workloads run 10-100x smaller; their targets are not judged."
        )
    for row in rows:
        if row.get("lme4_note"):
            lines.append(f"{row['key']}: lme4 {row['lme4_status']}: {row['lme4_note']}.")
        for side in ("interlace", "lme4", "regular", "quiet"):
            if row.get(f"{side}_error"):
                lines.append(f"{row['key']}: {side} failed: ...{row[f'{side}_error'][-300:]}")
        if row.get("kind") == "dask" and row.get("interlace"):
            found = row["interlace"]["dask"]
            line = (f"{row['key']}: {found['partitions']} partitions ({row['interlace']['parquet_bytes'] / 1e9:.2f} GB "
                    f"of Parquet), fit {found['seconds']:.1f} s; driver peak {found['driver_peak_bytes'] / 2**30:.2f} "
                    f"GiB, worker peaks {', '.join(f'{w / 2**30:.2f}' for w in found['worker_peak_bytes'])} GiB; one "
                    f"partition ({found['partition_rows']:,} rows) sends "
                    f"{found['partition_statistics_bytes'] / 1e6:.1f} MB of cross-products")
            memory = row["interlace"].get("memory")
            if memory:
                extra = (found["seconds"] - memory["seconds"]) / row["interlace"]["n"] * 1e9
                line += (f"; in memory {memory['seconds']:.1f} s, peak {memory['peak_bytes'] / 2**30:.2f} GiB: Dask "
                         f"{found['seconds'] / memory['seconds']:.2f}x, {extra:.0f} ns more a row; max|dtheta| "
                         f"{row['interlace']['max_abs_theta_difference']:.1e}")
            lines.append(line)
        if row["key"] == "W10 import" and row["interlace"]:
            imp = row["interlace"]
            lines.append(
                'W10 import: wall time of `python -c "import interlace"` minus `python -c pass`: '
                f"{_ms(imp['wall_difference']['median'])} (median of "
                f"{len(imp['wall_difference']['seconds'])} pairs); heavy modules loaded by "
                f"`import interlace`: {', '.join(imp['heavy_modules_loaded']) or 'none'}."
            )
    return lines


def main():
    rows_to_run = selected()
    if ARGS.list:
        for w in rows_to_run:
            print(f"{w.key}: {w.description}; {w.size()}; {w.formula}; target {w.target.text}")
        return
    info = _machine.describe(ARGS.threads, with_r=not ARGS.no_r)
    info["peak_method"] = _harness.peak_method()
    have_lme4 = "lme4" in info["r_versions"]
    command = "python benchmarks/run_suite.py " + shlex.join(sys.argv[1:])
    rows = []
    with tempfile.TemporaryDirectory(prefix="interlace-bench-") as tmp:
        for workload in rows_to_run:
            if workload.kind == "cold-start":
                rows += run_cold_start(workload, have_lme4)
            elif workload.kind == "cold-cache":
                rows.append(run_cold_cache(workload))
            elif workload.kind == "attribute":
                rows.append(run_attribute(workload, Path(tmp)))
            elif workload.kind == "busy":
                rows.append(run_busy(workload, Path(tmp)))
            elif workload.kind == "dask":
                rows.append(run_dask(workload, Path(tmp)))
            else:
                rows.append(run_workload(workload, have_lme4, Path(tmp)))

    print("\n".join(_machine.summary_lines(info)))
    print(f"command: {command.strip()}")
    print(
        f"repeats: {ARGS.repeats} (median; one run when a run exceeds 60 s)"
        + ("; --quick smoke run" if ARGS.quick else "")
    )
    print("\n" + _machine.provenance(info, command.strip(), ARGS.repeats))
    print("\n" + _report.main_table(rows) + "\n")
    print("\n".join(f"- {line}" for line in notes(rows, info)))
    agreement = _report.agreement_table(rows)
    if agreement:
        print("\n" + agreement)
    name = ARGS.output or ("suite-quick" if ARGS.quick else "suite")
    payload = {
        "command": command.strip(),
        "args": vars(ARGS),
        "machine": info,
        "rows": rows,
        "table": _report.main_table(rows),
    }
    _harness.write_results(name.removesuffix(".json"), payload)


if __name__ == "__main__":
    main()
