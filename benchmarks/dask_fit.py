"""Fits from Dask frames (issue 17's W12-DASK rows): the simulated recipe of
``shared/spec/performance.md`` (``y ~ x + (1 | g1) + (1 | g2)``) written as Parquet
partitions, fitted on a ``dask.distributed.LocalCluster`` of this machine's cores.

Reports the wall time of the fit, the driver's peak memory (this process's peak
RSS, the data written by a child process beforehand) and each worker's, the time and
the driver's peak once the conditional SDs are read too, the bytes
one partition's cross-products send, and with ``--in-memory`` the same rows fitted
in memory (in a child process, its own peak) and the estimates' agreement.

    python benchmarks/dask_fit.py --n 1e7 --in-memory       # overhead per row, 1e7 rows
    python benchmarks/dask_fit.py --n 1e8 --partitions 100  # W12-DASK: ~3 GB of Parquet

Run by hand or by ``nox -s bench``; never a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

FORMULA = "y ~ x + (1 | g1) + (1 | g2)"


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_parquet(directory: Path, n: int, n1: int, n2: int, partitions: int, seed: int = 1) -> None:
    """The recipe's rows, ``partitions`` Parquet files of n / partitions rows each: the
    effects drawn once, each partition's rows from its own stream."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / "recipe.json"
    recipe = {"n": n, "n1": n1, "n2": n2, "partitions": partitions, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == recipe:
        return
    for old in directory.glob("*.parquet"):
        old.unlink()
    effects = np.random.default_rng(seed)
    u1 = effects.standard_normal(n1)
    u2 = effects.standard_normal(n2) * 0.5
    bounds = np.linspace(0, n, partitions + 1).astype(np.int64)
    for i in range(partitions):
        rng = np.random.default_rng([seed, i])
        m = int(bounds[i + 1] - bounds[i])
        g1 = rng.integers(0, n1, m).astype(np.int32)
        g2 = rng.integers(0, n2, m).astype(np.int32)
        x = rng.standard_normal(m)
        y = 1 + 0.5 * x + u1[g1] + u2[g2] + rng.standard_normal(m)
        pq.write_table(pa.table({"y": y, "x": x, "g1": g1, "g2": g2}), directory / f"part-{i:05d}.parquet")
    stamp.write_text(json.dumps(recipe))


def _summary(result) -> dict:
    return {"theta": result.theta.tolist(), "fe_params": result.fe_params.tolist(), "llf": result.llf,
            "scale": result.scale}


def fit_in_memory(directory: Path) -> dict:
    """The same rows read with pandas and fitted in memory (run in a child process)."""
    import pandas as pd

    import interlace

    frame = pd.read_parquet(sorted(directory.glob("*.parquet")))
    start = time.perf_counter()
    result = interlace.fit(FORMULA, frame)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": _peak_bytes(), **_summary(result)}


def fit_on_cluster(directory: Path, workers: int) -> dict:
    """The fit from ``dd.read_parquet`` on a LocalCluster of ``workers`` processes."""
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    import interlace
    from interlace.partitioned.crossproducts import statistics_bytes

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("interlace"))  # the workers' imports are not the fit's time
        frame = dd.read_parquet(sorted(str(f) for f in directory.glob("*.parquet")))
        before = _peak_bytes()
        start = time.perf_counter()
        result = interlace.fit(FORMULA, frame)
        seconds = time.perf_counter() - start
        driver = _peak_bytes()
        start = time.perf_counter()
        _ = result.random_effects_se  # the conditional SDs: an inverse of the rest, read by the workers' shards
        se_seconds = time.perf_counter() - start
        driver_with_se = _peak_bytes()
        worker_peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        first = frame.get_partition(0).compute()
        sent = statistics_bytes(result, first)
    return {"seconds": seconds, "driver_peak_bytes": driver, "driver_peak_before_fit": before,
            "conditional_sd_seconds": se_seconds, "driver_peak_with_conditional_sd_bytes": driver_with_se,
            "worker_peak_bytes": sorted(worker_peaks.values()), "partition_rows": len(first),
            "partition_statistics_bytes": sent, "partitions": frame.npartitions, **_summary(result)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--n1", type=int, default=100_000)
    parser.add_argument("--n2", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=None, help="default: one per 1e6 rows")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/data/dask"))
    parser.add_argument("--in-memory", action="store_true", help="also fit the rows in memory (a child process)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--role", choices=["main", "write", "memory"], default="main", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = int(args.n)
    partitions = args.partitions or max(1, n // 1_000_000)
    directory = args.dir / f"n{n}-{args.n1}x{args.n2}-p{partitions}"
    if args.role == "write":
        write_parquet(directory, n, args.n1, args.n2, partitions)
        return 0
    if args.role == "memory":
        print(json.dumps(fit_in_memory(directory)))
        return 0
    common = [sys.executable, __file__, "--n", str(n), "--n1", str(args.n1), "--n2", str(args.n2),
              "--partitions", str(partitions), "--dir", str(args.dir)]
    subprocess.run([*common, "--role", "write"], check=True)
    on_disk = sum(f.stat().st_size for f in directory.glob("*.parquet"))
    report = {"n": n, "n1": args.n1, "n2": args.n2, "parquet_bytes": on_disk, "workers": args.workers,
              "dask": fit_on_cluster(directory, args.workers)}
    if args.in_memory:
        child = subprocess.run([*common, "--role", "memory"], check=True, capture_output=True, text=True)
        report["memory"] = json.loads(child.stdout.strip().splitlines()[-1])
        import numpy as np

        report["max_abs_theta_difference"] = float(np.max(np.abs(np.subtract(report["memory"]["theta"],
                                                                              report["dask"]["theta"]))))
        report["llf_difference"] = abs(report["memory"]["llf"] - report["dask"]["llf"])
    gb = 1e9
    d = report["dask"]
    print(f"{n:,} rows, {args.n1:,} x {args.n2:,} levels, {d['partitions']} partitions, "
          f"{on_disk / gb:.2f} GB of Parquet, {args.workers} workers")
    print(f"  Dask fit: {d['seconds']:.1f} s, driver peak {d['driver_peak_bytes'] / gb:.2f} GB, worker peaks "
          + ", ".join(f"{w / gb:.2f}" for w in d["worker_peak_bytes"]) + " GB")
    print(f"  conditional SDs (random_effects_se) after it: {d['conditional_sd_seconds']:.1f} s, driver peak "
          f"{d['driver_peak_with_conditional_sd_bytes'] / gb:.2f} GB")
    print(f"  one partition ({d['partition_rows']:,} rows) sends {d['partition_statistics_bytes'] / 1e6:.1f} MB "
          "of cross-products")
    if "memory" in report:
        m = report["memory"]
        print(f"  in memory: {m['seconds']:.1f} s, peak {m['peak_bytes'] / gb:.2f} GB; Dask / memory "
              f"{d['seconds'] / m['seconds']:.2f}x, {(d['seconds'] - m['seconds']) / n * 1e9:.0f} ns more a row; "
              f"max |dtheta| {report['max_abs_theta_difference']:.1e}, |dllf| {report['llf_difference']:.1e}")
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
