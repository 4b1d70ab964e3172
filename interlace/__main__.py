"""The main job: ``python -m interlace [FILE "FORMULA" [--ml]]``.

With no arguments, fits the bundled InstEval data,
``y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)`` by REML, and prints the
summary and the fit time. With a CSV or Parquet file and a formula, fits that.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"


def _read(path: Path):
    import pandas as pd

    if not path.exists():
        raise SystemExit(f"interlace: file {str(path)!r} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise SystemExit(f"interlace: FILE: expected a .csv or .parquet file, found {path.name!r}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m interlace",
        description="Fit a linear mixed model with lme4's formula syntax and print its summary.",
    )
    parser.add_argument("file", nargs="?", help="a .csv or .parquet file (default: bundled InstEval)")
    parser.add_argument("formula", nargs="?", help='e.g. "y ~ x + (1 | g) + (1 | h)"')
    parser.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    args = parser.parse_args(argv)
    if args.file and not args.formula:
        parser.error("a FORMULA is needed with FILE")

    import interlace

    if args.file:
        data, formula, label = _read(Path(args.file)), args.formula, args.file
    else:
        data, formula, label = interlace.load_dataset("InstEval"), DEFAULT_FORMULA, "InstEval (bundled)"
    method = "ML" if args.ml else "REML"
    start = time.perf_counter()
    try:
        result = interlace.fit(formula, data, method=method)
    except interlace.InterlaceError as exc:
        print(f"interlace: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(f"Data: {label}")
    print(result.summary())
    print(f"\nFit time: {elapsed:.2f} s ({result.optimization.n_evaluations} evaluations, "
          f"{result.solver_path} path; includes compiling kernels on a first run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
