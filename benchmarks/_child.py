"""interlace's side of one workload, in a fresh process started by ``run_suite.py``.

Usage: ``python benchmarks/_child.py SPEC.json``. The spec (written by
``run_suite.py``) names the workload's kind, formula, data and repeats, and the file
to write the result to. The parent has pinned the thread counts in the environment
this process inherits. Reading the data is not timed.

"fit": one untimed ``interlace.fit(formula, frame, method="REML")`` warms the JIT
(its time is kept as ``warmup_s``), then ``repeats`` fits are timed (one if the first
exceeds 60 s). "refit": one untimed fit, ``Y = m.simulate(n_refits, seed=1)`` written
to ``y_path`` for lme4, three untimed refits, then ``repeats`` timed loops of
``m.refit(Y[:, j])`` over every column.

"fresh-loop": the stacked frames split into their frames, one untimed fit, then
``repeats`` timed loops of ``interlace.fit`` over every frame.

"attribute": one untimed fit and access warm the JIT, then ``repeats`` times a new fit
(timed) and the access of ``spec["attribute"]`` on it (timed, e.g.
``random_effects_se``): the medians of both, and the access's share of the fit.

After the timed runs the process reads its own peak resident set size
(``VmHWM``, see ``_harness.self_peak_bytes``): it covers the interpreter, the imports,
the data and every fit, warm-up included.
"""

import json
import sys
import time
from pathlib import Path

import _harness

N_REFIT_WARMUP = 3


def load(spec):
    """The workload's frame: a bundled dataset, or generated data read back."""
    import workloads

    import interlace

    if spec["dataset"] is not None:
        return interlace.load_dataset(spec["dataset"])
    return workloads.read_frame(spec["data_path"], spec["factors"])


def time_fit(spec, frame):
    """Warm-up fit, then the timed fits; the last fit's theta and REML criterion."""
    import interlace

    def call():
        return interlace.fit(spec["formula"], frame, method="REML")

    start = time.perf_counter()
    call()
    warmup = time.perf_counter() - start
    seconds, result = _harness.timed(call, spec["repeats"], _harness.ONE_RUN_THRESHOLD_S)
    return {
        **_harness.summarize(seconds),
        "warmup_s": warmup,
        "theta": [float(v) for v in result.theta],
        "reml_crit": -2.0 * float(result.llf),
        "converged": bool(result.converged),
    }


def time_refits(spec, frame):
    """Fit, simulate the responses (saved for lme4), then time loops of refits."""
    import numpy as np

    import interlace

    m = interlace.fit(spec["formula"], frame, method="REML")
    Y = m.simulate(spec["n_refits"], seed=1)
    np.savetxt(spec["y_path"], Y, fmt="%.17g", delimiter=",")
    start = time.perf_counter()
    for j in range(N_REFIT_WARMUP):
        m.refit(Y[:, j])
    warmup = time.perf_counter() - start

    def loop():
        return [m.refit(Y[:, j]) for j in range(Y.shape[1])]

    seconds, fits = _harness.timed(loop, spec["repeats"], _harness.ONE_RUN_THRESHOLD_S)
    return {
        **_harness.summarize(seconds),
        "warmup_s": warmup,
        "slopes": [float(fit.fe_params["x"]) for fit in fits],
        "converged": all(fit.converged for fit in fits),
        "n_not_converged": sum(not fit.converged for fit in fits),
    }


def time_fresh_loop(spec, frame):
    """One untimed fit (the JIT), then ``repeats`` timed loops of ``fit`` over every
    frame (a new frame each time); the slope of each fit of the last loop."""
    import workloads

    import interlace

    frames = workloads.split_frames(frame)
    interlace.fit(spec["formula"], frames[0], method="REML")

    def loop():
        return [interlace.fit(spec["formula"], f, method="REML") for f in frames]

    seconds, fits = _harness.timed(loop, spec["repeats"], _harness.ONE_RUN_THRESHOLD_S)
    return {
        **_harness.summarize(seconds),
        "n_fits": len(frames),
        "slopes": [float(fit.fe_params["x"]) for fit in fits],
        "converged": all(fit.converged for fit in fits),
    }


def time_attribute(spec, frame):
    """Warm-up fit and access, then ``repeats`` pairs of a timed fit and a timed access
    of the attribute on it; the access's median ("median"), the fits' ("fit_median")."""
    import interlace

    name = spec["attribute"]
    getattr(interlace.fit(spec["formula"], frame, method="REML"), name)
    fits, accesses = [], []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        result = interlace.fit(spec["formula"], frame, method="REML")
        middle = time.perf_counter()
        getattr(result, name)
        fits.append(middle - start)
        accesses.append(time.perf_counter() - middle)
        if middle - start > _harness.ONE_RUN_THRESHOLD_S:
            break
    timing = _harness.summarize(accesses)
    fit_median = _harness.summarize(fits)["median"]
    return {**timing, "fit_median": fit_median, "share_of_fit": timing["median"] / fit_median,
            "attribute": name, "theta": [float(v) for v in result.theta],
            "reml_crit": -2.0 * float(result.llf), "converged": bool(result.converged)}


TIMERS = {"refit": time_refits, "attribute": time_attribute, "fresh-loop": time_fresh_loop}


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    _harness.use_checkout()  # benchmark the checkout this script lives in
    frame = load(spec)
    timing = TIMERS.get(spec["kind"], time_fit)(spec, frame)
    result = {**timing, "n_obs": len(frame), "peak_bytes": _harness.self_peak_bytes()}
    Path(spec["out_path"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
