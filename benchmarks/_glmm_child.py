"""One side of a GLMM workload (interlace or the ``glmm`` package), in a fresh process.

Usage: ``python benchmarks/_glmm_child.py SPEC.json``, started by ``run_glmm.py``. The
spec names the side, the formula, the family, the data and the repeats, and the file
to write the result to. The parent has pinned the thread counts in the environment
this process inherits (``RAYON_NUM_THREADS`` too, for glmm's Rust thread pool).
Reading the data is not timed.

- "interlace": one untimed ``interlace.fit(formula, frame, family=..., nAGQ=1)``
  warms the JIT (and loads the Numba cache), then ``repeats`` fits are timed (one if
  the first exceeds 60 s).
- "glmm": ``glmm.fit(frame, formula, family, anova_test="Wald")``: glmm's defaults
  (Laplace, its Hessian standard errors) except that no likelihood-ratio tables are
  stored (its default "auto" refits a Poisson GLMM once per fixed term after the fit,
  which glmer does not do). glmm takes a numeric response only, so a two-level factor
  response becomes 0/1 (the first level 0, as in R) before the timing. There is no JIT
  to warm, so as for glmer a first (untimed) fit over 60 s is kept as the single run.

After the timed runs the process reads its own peak resident set size (``VmHWM``,
see ``_harness.self_peak_bytes``): interpreter, imports, data and every fit.
"""

import json
import sys
import time
from importlib import metadata
from pathlib import Path

import _child
import _harness

GLMM_OPTIONS = {"anova_test": "Wald"}
"""Arguments of ``glmm.fit`` beyond the data, formula and family."""


def load(spec):
    """The workload's frame; generated data without importing interlace (glmm's side)."""
    if spec["dataset"] is None:
        import workloads

        return workloads.read_frame(spec["data_path"], spec["factors"])
    return _child.load(spec)


def numeric_response(frame, formula):
    """``frame`` with a two-level categorical response recoded 0/1 (first level 0)."""
    import pandas as pd

    response = formula.split("~", 1)[0].strip()
    column = frame[response]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return frame
    if len(column.cat.categories) != 2:
        raise ValueError(
            f"response {response!r}: expected two levels, found {column.cat.categories}"
        )
    return frame.assign(**{response: column.cat.codes.astype(float)})


def interlace_side(spec, frame):
    """The fit call and what to keep of its result: interlace."""
    import interlace

    def call():
        return interlace.fit(spec["formula"], frame, family=spec["family"], nAGQ=1)

    def read(m):
        return {
            "loglik": float(m.llf),
            "fixef": {str(name): float(value) for name, value in m.fe_params.items()},
            "theta": [float(v) for v in m.theta],
            "converged": bool(m.converged),
        }

    return call, read


def glmm_side(spec, frame):
    """The fit call and what to keep of its result: the ``glmm`` package."""
    import glmm

    frame = numeric_response(frame, spec["formula"])

    def call():
        return glmm.fit(frame, spec["formula"], spec["family"], **GLMM_OPTIONS)

    def read(m):
        return {
            "loglik": float(m.loglik),
            "fixef": dict(zip(m.names, map(float, m.beta), strict=True)),
            "se": dict(zip(m.names, map(float, m.se), strict=True)),
            "converged": bool(m.converged),
            "warnings": [w["kind"] for w in m.warnings],
            "version": metadata.version("glmm"),
            "options": GLMM_OPTIONS,
        }

    return call, read


SIDES = {"interlace": (interlace_side, True), "glmm": (glmm_side, False)}
"""Each side's set-up, and whether its warm-up is JIT work that must never be timed."""


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    _harness.use_checkout()  # benchmark the checkout this script lives in
    frame = load(spec)
    setup, jit = SIDES[spec["side"]]
    call, read = setup(spec, frame)
    start = time.perf_counter()
    result = call()
    warmup = time.perf_counter() - start
    if not jit and warmup > _harness.ONE_RUN_THRESHOLD_S:
        seconds = [warmup]  # nothing to warm: a run this long is the single timed one
    else:
        seconds, result = _harness.timed(call, spec["repeats"], _harness.ONE_RUN_THRESHOLD_S)
    out = {
        **_harness.summarize(seconds),
        "warmup_s": warmup,
        **read(result),
        "n_obs": len(frame),
        "peak_bytes": _harness.self_peak_bytes(),
    }
    Path(spec["out_path"]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
