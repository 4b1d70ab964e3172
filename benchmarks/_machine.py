"""The machine and software a suite run used: stored in the JSON, printed above the table."""

import os
import platform
import subprocess
import time
from importlib import metadata

import _harness

PYTHON_PACKAGES = ("numpy", "scipy", "numba", "pandas", "formulaic", "narwhals")
R_PROBE = """\
cat("R", paste(R.version$major, R.version$minor, sep = "."), "\\n")
if (requireNamespace("lme4", quietly = TRUE)) cat("lme4", packageDescription("lme4")$Version, "\\n")
cat("BLAS", extSoftVersion()[["BLAS"]], "\\n")
cat("LAPACK", La_library(), "\\n")
"""


def _proc_field(path, key):
    """The value of the first ``key: value`` line of a /proc file, or None."""
    try:
        with open(path) as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_and_memory():
    """CPU model, logical and usable cores, total RAM, platform and load average."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "?",
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gb": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def python_versions():
    """Python, interlace, the core dependencies and numpy's BLAS."""
    import numpy as np

    versions = {"python": platform.python_version()}
    for package in ("interlace", *PYTHON_PACKAGES):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        versions["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError):  # numpy < 1.26 has no mode="dicts"
        versions["numpy_blas"] = None
    return versions


def r_software():
    """R, lme4 and R's BLAS/LAPACK libraries; empty if ``Rscript`` is missing or fails."""
    try:
        proc = subprocess.run(["Rscript", "-e", R_PROBE], capture_output=True, text=True)
    except OSError:
        return {}
    pairs = (line.strip().split(maxsplit=1) for line in proc.stdout.splitlines())
    return {pair[0]: pair[1].strip() for pair in pairs if len(pair) == 2}


def git_commit():
    """The checkout's commit, with ``+dirty`` if the tree has changes; None outside git."""

    def git(*args):
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=_harness.REPO_ROOT
        )

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def describe(threads, with_r):
    """Everything about the run's machine and software, for the JSON."""
    info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        **cpu_and_memory(),
        "threads": threads,
        "thread_env": {var: os.environ.get(var) for var in _harness.THREAD_ENV_VARS},
        "versions": python_versions(),
    }
    info["r_versions"] = r_software() if with_r else {}
    return info


def summary_lines(info):
    """The machine and software in a few printable lines."""
    v, r = info["versions"], info["r_versions"]
    ram = f"{info['ram_gb']} GiB RAM" if info["ram_gb"] else "RAM ?"
    load = ", ".join(f"{x:.2f}" for x in info["load_average"] or [])
    r_text = (
        f"R {r.get('R')}, lme4 {r.get('lme4', 'not installed')}, BLAS {r.get('BLAS')}"
        if r
        else "R not used"
    )
    return [
        f"machine: {info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), {ram}, "
        f"{info['platform']}; load average at start {load}",
        f"python {v['python']}, interlace {v['interlace']} ({info['commit']}), numpy {v['numpy']} "
        f"(BLAS {v['numpy_blas']}), scipy {v['scipy']}, numba {v['numba']}, pandas {v['pandas']}",
        r_text,
        f"threads: {info['threads']} ({', '.join(_harness.THREAD_ENV_VARS)}; Python and R)",
    ]


def provenance(info, command, repeats):
    """One Markdown line saying where and how the table was measured, for the README."""
    v, r = info["versions"], info["r_versions"]
    r_text = f"R {r.get('R')}, lme4 {r.get('lme4')} (BLAS {r.get('BLAS')})" if r else "no R"
    threads = f"{info['threads']} BLAS thread" + ("s" if info["threads"] != 1 else "")
    runs = f"medians of {repeats} runs (one for runs over a minute)" if repeats > 1 else "one run"
    return (
        f"Measured on {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GiB RAM, "
        f"{platform.system()} {platform.machine()}; Python {v['python']}, numpy {v['numpy']}, "
        f"numba {v['numba']}, scipy {v['scipy']}; {r_text}; {threads}; "
        f"{info['date'][:10]}, commit {info['commit']}; `{command}`; {runs}."
    )
