"""Where the first fit's time goes with an empty Numba cache: seconds per kernel.

Each case runs in a fresh process whose ``NUMBA_CACHE_DIR`` is a new empty directory,
so every kernel the fit touches is compiled, as in a fresh install. The child times
every ``Dispatcher.compile`` in CPU seconds (steadier than wall time on a shared
machine; nested ones too: a kernel that calls another compiles the callee inside its
own compile, so "total" counts the callee twice and "own" only counts what is compiled
at the top level), and the whole process from outside (wall).

Cases: ``sleepstudy`` (``Reaction ~ Days + (Days | Subject)``), ``insteval``
(``y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)``) and ``trivial`` (a loop
summing an array: numba's fixed cost of a first compile in a process). "calls" counts
the compile requests of a kernel (numba asks again at every call site that it types;
only the first compiles), "several signatures" flags a kernel compiled for more than one
set of argument types.

    python benchmarks/compile_times.py                  # all three cases, once each
    python benchmarks/compile_times.py sleepstudy --repeats 3

Run it from the repository root (it imports the checkout it sits in, or what
``PYTHONPATH`` names first). A plain script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "sleepstudy": ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    "insteval": ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"),
    "trivial": (None, None),
}

_CHILD = r"""
import json, sys, time
t_start = time.perf_counter()
c_start = time.process_time()
from numba.core import dispatcher
original = dispatcher.Dispatcher.compile
records = []
depth = [0]

def timed(self, sig):
    t = time.process_time()
    depth[0] += 1
    try:
        return original(self, sig)
    finally:
        depth[0] -= 1
        name = f"{self.py_func.__module__}.{self.py_func.__qualname__}"
        records.append((name, time.process_time() - t, depth[0], str(sig)))

dispatcher.Dispatcher.compile = timed
dataset, formula = json.loads(sys.argv[1])
if dataset is None:
    import numba
    import numpy as np

    @numba.njit  # no cache: a -c program has no file to cache beside
    def trivial(x):
        total = 0.0
        for i in range(x.shape[0]):
            total += x[i]
        return total

    t_import = time.perf_counter()
    c_import = time.process_time()
    trivial(np.ones(3))
else:
    import interlace
    data = interlace.load_dataset(dataset)
    t_import = time.perf_counter()
    c_import = time.process_time()
    interlace.fit(formula, data)
t_end = time.perf_counter()
c_end = time.process_time()
print(json.dumps({"import": t_import - t_start, "fit": t_end - t_import, "fit_cpu": c_end - c_import,
                  "cpu": c_end - c_start, "records": records}))
"""


def run_case(case: str) -> dict:
    """One fresh process with an empty Numba cache: its wall time and compile records."""
    cache = tempfile.mkdtemp(prefix="interlace-compile-")
    try:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(CASES[case])], env=env,
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def summarize(runs: list[dict]) -> None:
    """Median per kernel over the runs: total (nested included), own (top level), signatures."""
    per_kernel: dict[str, list[tuple[float, float, int]]] = {}
    for run in runs:
        totals: dict[str, list] = {}
        for name, seconds, depth, _sig in run["records"]:
            entry = totals.setdefault(name, [0.0, 0.0, 0])
            entry[0] += seconds
            entry[1] += seconds if depth == 0 else 0.0
            entry[2] += 1
        for name, entry in totals.items():
            per_kernel.setdefault(name, []).append(tuple(entry))
    median = statistics.median
    print(f"  process wall {median(r['wall'] for r in runs):6.2f} s (CPU {median(r['cpu'] for r in runs):5.2f} s)"
          f"   import+data {median(r['import'] for r in runs):5.2f} s   fit {median(r['fit'] for r in runs):5.2f} s"
          f" (CPU {median(r['fit_cpu'] for r in runs):5.2f} s)   compile, top level (CPU) "
          f"{median(sum(s for _, s, d, _ in r['records'] if d == 0) for r in runs):5.2f} s")
    rows = sorted(per_kernel.items(), key=lambda kv: -median(e[0] for e in kv[1]))
    print(f"  {'total':>7} {'own':>7} {'calls':>5}  kernel")
    for name, entries in rows:
        print(f"  {median(e[0] for e in entries):7.2f} {median(e[1] for e in entries):7.2f} "
              f"{max(e[2] for e in entries):5d}  {name}")
    signatures: dict[str, set] = {}
    for name, _, _, sig in runs[0]["records"]:
        signatures.setdefault(name, set()).add(sig)
    for name, sigs in signatures.items():
        if len(sigs) > 1:
            print(f"  several signatures of {name}: {len(sigs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help=f"some of {', '.join(CASES)} (default: all)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    unknown = [case for case in args.cases if case not in CASES]
    if unknown:
        parser.error(f"cases: expected some of {', '.join(CASES)}, found {', '.join(unknown)}")
    for case in args.cases or list(CASES):
        print(f"{case}: {CASES[case][1] or 'a loop kernel'} ({args.repeats} fresh process(es))")
        summarize([run_case(case) for _ in range(args.repeats)])


if __name__ == "__main__":
    main()
