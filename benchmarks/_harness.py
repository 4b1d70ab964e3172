"""What the benchmark scripts share: arguments, thread pinning, timing, processes, R, output.

``run_suite.py`` (and the processes it starts), ``run_inference.py`` and
``run_refit.py`` import this module from their own directory (first on ``sys.path``
when run as ``python benchmarks/run_X.py``). It imports only the standard library at
module level, so that a script can parse its arguments and pin the thread counts
before numpy is imported::

    import _harness

    ARGS = _harness.parse_args("...", repeats_help="...")
    _harness.pin_threads(ARGS.threads)
    import numpy as np  # noqa: E402

Functions that need numpy, pandas or interlace import them when called.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
ONE_RUN_THRESHOLD_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
GNU_TIME = "/usr/bin/time"


# --- command line and set-up -----------------------------------------------
def parse_args(
    description,
    *,
    repeats_help,
    repeats=5,
    no_r_help="skip lme4",
    workloads=None,
    example=None,
    argv=None,
):
    """Parse the options every script has, and ``--workloads`` if it has workloads.

    Parameters
    ----------
    description : str
        The parser's description, shown by ``--help``.
    repeats_help : str
        Help text of ``--repeats``.
    repeats : int, default 5
        Default of ``--repeats``.
    no_r_help : str, default "skip lme4"
        Help text of ``--no-r``.
    workloads : str, optional
        Default of ``--workloads``, comma-separated keys; None means no such option.
    example : str, optional
        Keys quoted in the help text of ``--workloads``, e.g. ``"W1,W2"``.
    argv : list of str, optional
        Arguments to parse instead of ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        ``repeats``, ``threads``, ``no_r`` and, with ``workloads``, the requested
        keys as a list, upper-cased.
    """
    parser = argparse.ArgumentParser(description=description)
    if workloads is not None:
        parser.add_argument(
            "--workloads", default=workloads, help=f"comma-separated, e.g. {example}"
        )
    add_common_options(parser, repeats_help=repeats_help, repeats=repeats, no_r_help=no_r_help)
    args = parser.parse_args(argv)
    if workloads is not None:
        args.workloads = [key.strip().upper() for key in args.workloads.split(",") if key.strip()]
    return args


def add_common_options(parser, *, repeats_help, repeats=5, no_r_help="skip lme4"):
    """Add ``--repeats``, ``--threads`` and ``--no-r`` to an `argparse.ArgumentParser`."""
    parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP/numba threads, Python and R (default 1)"
    )
    parser.add_argument("--no-r", action="store_true", help=no_r_help)


def pin_threads(threads):
    """Set the BLAS/OpenMP/numba thread counts; call before numpy is imported.

    Parameters
    ----------
    threads : int
        Written to each of `THREAD_ENV_VARS` in ``os.environ``, which the ``Rscript``
        processes inherit too.
    """
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)


def use_checkout():
    """Put the repository root first on ``sys.path``, so the checkout is benchmarked."""
    sys.path.insert(0, str(REPO_ROOT))


def check_workloads(keys, workloads):
    """Exit with a message if a requested key is not a known workload.

    Parameters
    ----------
    keys : list of str
        The requested keys.
    workloads : dict
        The known workloads, by key.
    """
    unknown = [key for key in keys if key not in workloads]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {sorted(workloads)}")


# --- timing ----------------------------------------------------------------
def timed(call, repeats, stop_after=None):
    """Time ``repeats`` calls; the caller does any warm-up.

    Parameters
    ----------
    call : callable
        Called without arguments.
    repeats : int
        How many calls to time.
    stop_after : float, optional
        Stop after the first call if it took longer than this many seconds.

    Returns
    -------
    seconds : list of float
        Wall seconds of each call.
    result : object
        What the last call returned.
    """
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
        if stop_after is not None and seconds[0] > stop_after:
            break
    return seconds, result


def time_repeated(call, repeats):
    """One untimed warm-up call, then `timed` with the 60 s single-run rule.

    Parameters
    ----------
    call : callable
        Called without arguments.
    repeats : int
        How many calls to time (one if the first exceeds `ONE_RUN_THRESHOLD_S`).

    Returns
    -------
    seconds : list of float
        Wall seconds of each timed call.
    result : object
        What the last call returned.
    """
    call()
    return timed(call, repeats, stop_after=ONE_RUN_THRESHOLD_S)


def summarize(seconds):
    """The timings and their median, as stored in the JSON.

    Parameters
    ----------
    seconds : list of float
        Wall seconds of the timed calls.

    Returns
    -------
    dict
        ``{"seconds": seconds, "median": median}``.
    """
    return {"seconds": seconds, "median": statistics.median(seconds)}


# --- processes and memory ----------------------------------------------------
@dataclass
class Measured:
    """A finished process: exit code, output, wall seconds and peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int | None


def peak_method():
    """How `run_measured` reads a process's peak memory, as stated in the output."""
    if Path(GNU_TIME).exists():
        return f"`{GNU_TIME} -v`"
    return "ru_maxrss from wait4()"


def run_measured(command, env=None, cwd=None):
    """Run ``command`` to its end; time it and read its peak resident set size.

    The peak comes from GNU ``time -v`` ("Maximum resident set size") when
    `GNU_TIME` exists, else from the ``ru_maxrss`` that ``wait4()`` returns for the
    process: the same kernel figure. ``seconds`` is the wall time seen from here.

    Parameters
    ----------
    command : list of str
        The program and its arguments.
    env : dict, optional
        The environment; default ``os.environ`` (which carries the pinned threads).
    cwd : path, optional
        Working directory.

    Returns
    -------
    Measured
    """
    with tempfile.TemporaryDirectory() as tmp:
        out, err, report = (Path(tmp) / name for name in ("stdout", "stderr", "time"))
        gnu_time = Path(GNU_TIME).exists()
        full = [GNU_TIME, "-v", "-o", str(report), *command] if gnu_time else list(command)
        with out.open("w") as fout, err.open("w") as ferr:
            start = time.perf_counter()
            proc = subprocess.Popen(full, stdout=fout, stderr=ferr, env=env, cwd=cwd)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        peak = _ru_maxrss_bytes(usage.ru_maxrss)
        if gnu_time:
            peak = _gnu_time_peak(report.read_text()) if report.exists() else None
        return Measured(proc.returncode, out.read_text(), err.read_text(), seconds, peak)


def _gnu_time_peak(report):
    """Bytes of "Maximum resident set size (kbytes)" in a ``time -v`` report, or None."""
    for line in report.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1]) * 1024
    return None


def _ru_maxrss_bytes(value):
    """``ru_maxrss`` in bytes: the kernel gives kilobytes on Linux, bytes on macOS."""
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def self_peak_bytes():
    """Peak resident set size of this process so far, in bytes.

    On Linux the high-water mark of this process's own memory (``VmHWM`` in
    ``/proc/self/status``): ``getrusage``'s ``ru_maxrss`` also counts, after a fork
    and exec, the resident size of the parent at the fork, and the suite's parent
    holds the generated data of earlier workloads (1e7 rows for W8). Elsewhere
    ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _ru_maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def format_bytes(value):
    """``123 MB`` or ``1.23 GB`` (powers of 1024); "-" for None."""
    if value is None:
        return "-"
    mb = value / 2**20
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


# --- R ---------------------------------------------------------------------
def r_string(text):
    """A double-quoted R string literal of ``str(text)`` (R reads JSON's escapes alike)."""
    return json.dumps(str(text))


def r_factor_lines(frame):
    """R ``factor()`` calls giving each categorical column of ``d`` the frame's level order.

    Parameters
    ----------
    frame : pandas.DataFrame
        The frame R reads as ``d``.

    Returns
    -------
    str
        One line per categorical column.
    """
    lines = []
    for column in frame.select_dtypes("category").columns:
        levels = ", ".join(r_string(level) for level in frame[column].cat.categories)
        lines.append(f"d${column} <- factor(d${column}, levels = c({levels}))")
    return "\n".join(lines)


def r_timed_loop(expression, repeats, stop_after=ONE_RUN_THRESHOLD_S):
    """R source timing ``expression`` ``repeats`` times, printing ``time <seconds>`` lines.

    Parameters
    ----------
    expression : str
        R code run inside ``system.time()``; the caller does any warm-up.
    repeats : int
        How many runs to time.
    stop_after : float or None, default `ONE_RUN_THRESHOLD_S`
        Stop after the first run if it took longer; None times every run.

    Returns
    -------
    str
        A ``for`` loop, to be placed in a script for `run_rscript`.
    """
    stop = "" if stop_after is None else f"  if (i == 1 && el > {stop_after}) break\n"
    return (
        f"for (i in seq_len({repeats})) {{\n"
        f'  el <- system.time({expression})[["elapsed"]]\n'
        '  cat("time", sprintf("%.6f", el), "\\n")\n'
        f"{stop}}}"
    )


def r_versions(packages):
    """Versions of the R packages that load.

    Parameters
    ----------
    packages : sequence of str
        Package names.

    Returns
    -------
    dict
        ``{package: version}`` of those that load; empty without ``Rscript``.
    """
    if shutil.which("Rscript") is None:
        return {}
    probe = (
        f"for (p in c({', '.join(r_string(p) for p in packages)})) "
        "if (requireNamespace(p, quietly = TRUE)) cat(p, as.character(packageVersion(p)), '\\n')"
    )
    proc = subprocess.run(["Rscript", "-e", probe], capture_output=True, text=True)
    return dict(line.split() for line in proc.stdout.splitlines() if line.strip())


def run_rscript(script_path, source, error):
    """Run R source in its own ``Rscript`` process and collect its ``key value ...`` lines.

    Parameters
    ----------
    script_path : pathlib.Path
        Where to write the source.
    source : str
        The R script; each line it prints is a key followed by values.
    error : str
        Start of the `RuntimeError` message if R fails, e.g. ``"lme4 failed on W1"``.

    Returns
    -------
    fields : dict
        ``{key: [value, ...]}``, values as strings, in print order.
    stderr : str
        What R wrote to stderr, stripped.
    """
    fields, proc = run_rscript_measured(script_path, source, error)
    return fields, proc.stderr.strip()


def run_rscript_measured(script_path, source, error):
    """As `run_rscript`, but return the `Measured` process (peak memory) for the stderr."""
    script_path.write_text(source)
    # os.environ already carries the pinned thread counts
    proc = run_measured(["Rscript", str(script_path)])
    if proc.returncode != 0:
        raise RuntimeError(f"{error}:\n{proc.stderr}")
    fields = {}
    for line in proc.stdout.splitlines():
        if line.strip():
            key, *values = line.split()
            fields.setdefault(key, []).extend(values)
    return fields, proc


def bundled_csv(dataset):
    """Path of the CSV behind ``interlace.load_dataset(dataset)``, for R to read."""
    import interlace

    return Path(interlace.__file__).parent / "datasets" / f"{dataset}.csv"


# --- output ----------------------------------------------------------------
def describe_environment(args, r_key, r_label, cpus=False):
    """Settings and versions: printed above the table and stored in the JSON.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (``threads``, ``repeats``, ``no_r``).
    r_key : str
        Key of the R entry, e.g. ``"lme4"`` or ``"R"``.
    r_label : str
        The R versions found, or "" if none; ignored with ``--no-r``.
    cpus : bool, default False
        Add the CPU count to the machine entry.

    Returns
    -------
    dict
        ``threads``, ``repeats``, ``interlace``, `r_key`, ``python``, ``machine``, ``date``.
    """
    import numpy as np
    import pandas as pd

    import interlace

    machine = platform.platform() + (f", {os.cpu_count()} CPUs" if cpus else "")
    return {
        "threads": args.threads,
        "repeats": args.repeats,
        "interlace": f"{getattr(interlace, '__version__', '?')} at {interlace.__file__}",
        r_key: "skipped (--no-r)" if args.no_r else (r_label or "not available"),
        "python": f"{platform.python_version()} (numpy {np.__version__}, pandas {pd.__version__})",
        "machine": machine,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_environment(meta):
    """Print the thread count and the other entries of `describe_environment`'s dict."""
    print(f"threads: {meta['threads']} (OMP/OpenBLAS/MKL/numba, Python and R)")
    print("\n".join(f"{key}: {value}" for key, value in meta.items() if key != "threads"))


def cell(value, fmt, suffix=""):
    """``value`` formatted with ``fmt`` and ``suffix`` appended, or "-" if it is None."""
    return "-" if value is None else format(value, fmt) + suffix


def format_table(columns):
    """The result table as text.

    Parameters
    ----------
    columns : dict
        ``{header: [cell, ...]}``, one cell per row, already formatted.

    Returns
    -------
    str
        The columns side by side, headers on top, without an index.
    """
    import pandas as pd

    return pd.DataFrame(columns).to_string(index=False)


def write_results(name, payload):
    """Write ``payload`` as JSON to ``benchmarks/results/<name>.json`` and say so.

    Parameters
    ----------
    name : str
        File name without ``.json``.
    payload : dict
        The results, JSON-serialisable.
    """
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"results written to {path.relative_to(REPO_ROOT)}")
