"""lme4's side of a workload: an R script per workload, run in its own ``Rscript`` process.

The script reads the same file interlace read (the bundled CSV of a dataset, with
the factor levels in the order interlace uses, or the generated CSV, with
``factor()`` of the integer codes), then times only ``lmer(f, data = d, REML = TRUE)``
(lme4's default control) with ``system.time()``. The first call is the warm-up; if
it took over 60 s it is kept as the single timed run (R has no JIT to warm, and a
run that long does not need a second one), otherwise ``repeats`` further calls are
timed (one if the first of them exceeds 60 s). W3 times loops of ``refit(m, Y[, j])``
over the responses interlace simulated, after one untimed refit. The GLMM workloads
of ``run_glmm.py`` time ``glmer(f, data = d, family = <family>)`` (default control,
Laplace) the same way.

Peak memory is the Rscript process's maximum resident set size, read as
`_harness.run_measured` says (``/usr/bin/time -v`` when present): it covers R,
lme4, the data and every fit.
"""

from pathlib import Path

import _harness

LIMIT = _harness.ONE_RUN_THRESHOLD_S


def _header(data_path, factor_lines):
    """Load lme4, read the data and set the factors."""
    return (
        "suppressPackageStartupMessages(library(lme4))\n"
        f"d <- read.csv({_harness.r_string(data_path)}, stringsAsFactors = TRUE)\n"
        f"{factor_lines}\n"
    )


def factor_lines(frame=None, factors=()):
    """R lines giving ``d`` interlace's factor levels.

    Parameters
    ----------
    frame : pandas.DataFrame, optional
        A bundled dataset as interlace loads it: its Categoricals' level order.
    factors : sequence of str
        Integer-coded columns of generated data: ``factor()`` orders them numerically,
        as `workloads.read_frame` does.
    """
    if frame is not None:
        return _harness.r_factor_lines(frame)
    return "\n".join(f"d${column} <- factor(d${column})" for column in factors)


def _timed_runs(expression, repeats):
    """R: a first (warm-up) run, kept as the only one if it exceeds `LIMIT` seconds."""
    return (
        f'el <- system.time({expression})[["elapsed"]]\n'
        f'cat("warmup", sprintf("%.6f", el), "\\n")\n'
        f'if (el > {LIMIT}) cat("time", sprintf("%.6f", el), "\\n") else {{\n'
        f"{_harness.r_timed_loop(expression, repeats, stop_after=LIMIT)}\n"
        "}\n"
    )


def fit_script(formula, data_path, factors_r, repeats):
    """R source timing ``lmer``; prints ``time``, ``reml_crit`` and ``theta`` lines."""
    return (
        _header(data_path, factors_r)
        + f"f <- {formula}\n"
        + _timed_runs("m <- lmer(f, data = d, REML = TRUE)", repeats)
        + 'cat("reml_crit", sprintf("%.17g", REMLcrit(m)), "\\n")\n'
        + 'cat("theta", sprintf("%.17g", getME(m, "theta")), "\\n")\n'
    )


def glmer_script(formula, family, data_path, factors_r, repeats):
    """R source timing ``glmer``; prints ``time``, ``loglik``, ``theta``, ``fixef``,
    ``fixef_names``, ``se`` (Wald, from ``vcov``) and ``conv_messages`` (their count)."""
    fit = f"m <- glmer(f, data = d, family = {family})"
    return (
        _header(data_path, factors_r)
        + f"f <- {formula}\n"
        + _timed_runs(fit, repeats)
        + 'cat("loglik", sprintf("%.17g", as.numeric(logLik(m))), "\\n")\n'
        + 'cat("theta", sprintf("%.17g", getME(m, "theta")), "\\n")\n'
        + 'cat("fixef", sprintf("%.17g", fixef(m)), "\\n")\n'
        + 'cat("fixef_names", names(fixef(m)), "\\n")\n'
        + 'cat("se", sprintf("%.17g", sqrt(diag(as.matrix(vcov(m))))), "\\n")\n'
        + 'cat("conv_messages", length(m@optinfo$conv$lme4$messages), "\\n")\n'
    )


def refit_script(formula, data_path, factors_r, y_path, repeats):
    """R source timing loops of ``refit(m, Y[, j])``; prints ``time`` and ``slope`` lines."""
    loop = "for (j in seq_len(ncol(Y))) fits[[j]] <- refit(m, Y[, j])"
    return (
        _header(data_path, factors_r)
        + f"Y <- as.matrix(read.csv({_harness.r_string(y_path)}, header = FALSE))\n"
        + f"m <- lmer({formula}, data = d, REML = TRUE)\n"
        + "invisible(refit(m, Y[, 1]))  # warm-up, untimed\n"
        + 'fits <- vector("list", ncol(Y))\n'
        + _harness.r_timed_loop(loop, repeats, stop_after=LIMIT)
        + '\ncat("slope", sprintf("%.17g", vapply(fits, function(f) fixef(f)[["x"]], 0)), "\\n")\n'
    )


def fresh_loop_script(formula, data_path, repeats):
    """R source timing loops of ``lmer`` over the frames of a stacked `FreshCrossed`
    file (split by ``rep`` before the clock starts, factors per frame with
    ``droplevels``); prints ``time`` and ``slope`` lines."""
    loop = f"for (j in seq_along(frames)) fits[[j]] <- lmer({formula}, data = frames[[j]], REML = TRUE)"
    return (
        "suppressPackageStartupMessages(library(lme4))\n"
        f"all <- read.csv({_harness.r_string(data_path)}, colClasses = c(subj = \"character\", "
        "item = \"character\"))\n"
        "frames <- split(all[, c(\"y\", \"x\", \"subj\", \"item\")], all$rep)\n"
        "frames <- frames[order(as.integer(names(frames)))]\n"
        "frames <- lapply(frames, function(f) { f$subj <- factor(f$subj); f$item <- factor(f$item); f })\n"
        f"invisible(lmer({formula}, data = frames[[1]], REML = TRUE))  # warm-up, untimed\n"
        'fits <- vector("list", length(frames))\n'
        + _harness.r_timed_loop(loop, repeats, stop_after=LIMIT)
        + '\ncat("slope", sprintf("%.17g", vapply(fits, function(f) fixef(f)[["x"]], 0)), "\\n")\n'
    )


def run(key, source, tmp_dir):
    """Run one script; the timings, the values it printed and the peak memory.

    Returns
    -------
    dict
        ``seconds``, ``median``, ``warmup_s`` (None for W3), ``peak_bytes`` and the
        printed values: ``reml_crit`` and ``theta``, or ``slopes``; for `glmer_script`
        ``loglik``, ``theta``, ``fixef`` (by name), ``se`` (by name) and ``converged``
        (no convergence message).
    """
    fields, proc = _harness.run_rscript_measured(
        Path(tmp_dir) / f"{key}.R", source, f"lme4 failed on {key}"
    )
    names = fields.pop("fixef_names", None)
    values = {name: [float(v) for v in found] for name, found in fields.items()}
    result = {
        **_harness.summarize(values["time"]),
        "warmup_s": values.get("warmup", [None])[0],
        "peak_bytes": proc.peak_bytes,
        "stderr": proc.stderr.strip()[-2000:],
    }
    if "slope" in values:
        result["slopes"] = values["slope"]
    elif "loglik" in values:
        result["loglik"] = values["loglik"][0]
        result["theta"] = values["theta"]
        result["fixef"] = dict(zip(names, values["fixef"], strict=True))
        result["se"] = dict(zip(names, values["se"], strict=True))
        result["converged"] = values["conv_messages"][0] == 0
    else:
        result["reml_crit"] = values["reml_crit"][0]
        result["theta"] = values["theta"]
    return result
