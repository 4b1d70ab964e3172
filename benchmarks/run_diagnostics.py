"""Diagnostics timing on InstEval: HLMdiag's one-step influence, leverage and residuals.

InstEval has 73,421 rows. The model is ``y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)``:
2,972 students crossed with 1,128 lecturers and 14 departments, fitted by REML. There is
no R side, because HLMdiag refuses crossed models (residuals, leverage and exact deletion).
Its dense n x n V^-1 would take 43 GB here anyway.

The script fits the model once, untimed. Then, for each of

- ``interlace.hlm_influence(m)`` (level 1, ``approx=True``: Cook's distance, MDFFITS,
  COVTRACE, COVRATIO and ``leverage.overall`` for every row),
- ``interlace.hlm_leverage(m)`` (level 1: the four leverages of every row),
- ``interlace.hlm_resid(m)`` (level 1: conditional, per-student least-squares and marginal
  residuals),

it makes one untimed warm-up call (the numba kernels compile on first use and are cached on
disk), then ``--repeats`` timed calls, and reports the median. Every call starts from the
fitted result and builds its own Woodbury pieces; nothing is cached between calls. Thread
counts are pinned (default 1) before numpy is imported.

Usage: ``python benchmarks/run_diagnostics.py [--repeats 3] [--threads 1]``.
Results also go to ``benchmarks/results/diagnostics.json`` (git-ignored).
"""

import time
import warnings

import _harness

ARGS = _harness.parse_args(
    "Time interlace's HLMdiag diagnostics on InstEval.",
    repeats_help="timed calls of each diagnostic (the median is reported)",
    repeats=3,
    no_r_help="no effect: there is no R side (HLMdiag refuses crossed models)",
)
_harness.pin_threads(ARGS.threads)

_harness.use_checkout()  # benchmark the checkout this script lives in
import interlace  # noqa: E402

FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"
CALLS = {
    "hlm_influence(approx=True)": lambda m: interlace.hlm_influence(m),
    "hlm_leverage": lambda m: interlace.hlm_leverage(m),
    "hlm_resid": lambda m: interlace.hlm_resid(m),
}


def time_call(call, result):
    """Warm-up, then the timed calls: median, all timings and the frame's shape."""
    with warnings.catch_warnings():
        # students whose ratings all share one `service` value make the LS fits of
        # hlm_resid rank deficient; HLMdiag warns about that too
        warnings.simplefilter("ignore", interlace.RankDeficiencyWarning)
        call(result)
        seconds, frame = _harness.timed(lambda: call(result), ARGS.repeats)
    return {**_harness.summarize(seconds), "shape": list(frame.shape)}


def main():
    data = interlace.load_dataset("InstEval")
    start = time.perf_counter()
    result = interlace.fit(FORMULA, data, method="REML")
    fit_seconds = time.perf_counter() - start
    rows = {name: time_call(call, result) for name, call in CALLS.items()}
    meta = _harness.describe_environment(ARGS, "HLMdiag", "", cpus=True)
    meta["HLMdiag"] = "not run: HLMdiag refuses crossed models"
    _harness.print_environment(meta)
    print(
        f"InstEval: {result.nobs} rows, {FORMULA}; fit (untimed, includes JIT) {fit_seconds:.1f} s"
    )
    print()
    print(
        _harness.format_table(
            {
                "call (level 1)": list(rows),
                "median s": [_harness.cell(r["median"], ".2f") for r in rows.values()],
                "runs": [" ".join(f"{s:.2f}" for s in r["seconds"]) for r in rows.values()],
                "frame": [f"{r['shape'][0]} x {r['shape'][1]}" for r in rows.values()],
            }
        )
    )
    _harness.write_results(
        "diagnostics", {"meta": meta, "formula": FORMULA, "fit_s": fit_seconds, "rows": rows}
    )


if __name__ == "__main__":
    main()
