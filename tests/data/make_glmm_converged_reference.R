# lme4's glmer references at the converged Laplace / AGQ optimum.
#
# Why: lme4 1.1-31's default glmer fit is not the exact optimum of the approximation it reports.
# Its PIRLS tolerance (glmerControl(tolPwrss = 1e-7)) leaves the Cholesky factor L one iteration
# stale, so the deviance at glmer's own parameters is not the exact Laplace approximation: for cbpp
# `cbind(incidence, size - incidence) ~ period + (1 | herd)` glmer reports -2 logLik 184.0531327791
# where the exact Laplace deviance at the same parameters is 184.0525724160 (3e-6 relative). The
# curvature of that deviance function is off too, so vcov (lme4's finite-difference Hessian of it)
# is off by up to 1.3%: SE of period4 0.42205 against 0.42744 with tolPwrss = 1e-13, where lme4
# gives SEs 0.2324733 0.3066414 0.3266373 0.4274372. And its optimizers stop early: stage 2's
# Nelder_Mead stops when the simplex is within xt = 5e-4 * its initial step of its centroid, stage
# 1's bobyqa at rhoend = 1e-6 * rhobeg.
#
# What: this script reruns glmer_reference.R (a byte-identical copy of the project lead's script,
# not edited) for the shared set, and make_glmm_holdout_reference.R's lists (in a scratch copy of the
# two scripts, as make_converged_reference.R does for its holdout mode) for the held-out set, with
#   - glmerControl()'s default tolPwrss set to 1e-13 (the lead script calls glmer without `control`,
#     so glmer's default argument `control = glmerControl()`, evaluated in lme4's namespace, gets it);
#   - lme4's optwrap (which glmer calls for both stages) given tight tolerances per optimizer:
#     bobyqa (stage 1, and the only stage with nAGQ = 0) rhoend = 1e-10, maxfun = 1e5;
#     Nelder_Mead (stage 2) xt = 1e-10 (absolute, every parameter: the tolerance its simplex
#     test uses), FtolAbs = 1e-12, FtolRel = 1e-15, maxfun = 1e5. (lme4's Nelder_Mead accepts
#     XtolRel but never passes it to its C++ optimizer, so xt is the one that matters.) A single
#     Nelder_Mead run can stall with a collapsed simplex (held-out Contraception `(urban | district)`:
#     6e-9 above the minimum, parameters up to 1e-5 off), so it is restarted from its best point
#     until a restart gains less than 1e-11 (one to three restarts here).
# Optimizers, starting values, the boundary check and everything else are glmer's defaults, so the
# JSON's "optimizer" ("bobyqa" with nAGQ = 0, else "Nelder_Mead") and "feval" (stage 2's or, with
# nAGQ = 0, stage 1's; with the restarts, all of stage 2's runs) are what ran; the JSON format is
# the lead script's, unchanged.
# With these settings cbpp's Laplace fit ends at -2 logLik 184.0525637430, theta 0.6422614318, SEs
# 0.2324718 0.3066421 0.3266375 0.4274358 (default fit: 184.0531327791, theta 0.6420699277, SEs
# 0.2312140 0.3031506 0.3228302 0.4220492; tolPwrss = 1e-13 alone: 184.0525637490, 0.6422698886).
#
# Usage (from the repository root; about a minute in all with R 4.2.2, lme4 1.1-31, mlmRev 1.0-8):
#   Rscript tests/data/make_glmm_converged_reference.R [shared|holdout]   (default: both)
# Writes tests/data/glmm/reference/converged/<case>.json (every case of the shared set) and
# tests/data/glmm/holdout/reference/converged/<case>.json (every held-out case), with the file names
# of the default fits (old *.json there are removed first; no index.json), and prints, per case, the
# default and converged -2 logLik, max |theta difference|, max relative SE difference and the
# converged fit's warnings, flagging a converged -2 logLik more than 1e-9 above the default's.
# A rerun reproduces every file except glmer_seconds, and, not bit for bit across R processes,
# grouseticks (stage 1 ends in 114 or 115 bobyqa evaluations: theta differs by 1e-7, SEs by 8e-6
# relative, -2 logLik by 5e-13) and the held-out Mmmec (theta 5e-8, SEs 5e-7, -2 logLik 4e-11).
suppressMessages({ library(lme4); library(jsonlite) })
args <- commandArgs(trailingOnly = TRUE)
sets <- if (length(args) >= 1) args[1] else c("shared", "holdout")
stopifnot(all(sets %in% c("shared", "holdout")))
root <- getwd()
data_dir <- file.path(root, "tests", "data")
if (!file.exists(file.path(data_dir, "glmer_reference.R"))) stop("run this script from the repository root")

## tolPwrss: glmerControl()'s default
tight_glmerControl <- lme4::glmerControl
formals(tight_glmerControl)$tolPwrss <- 1e-13
assignInNamespace("glmerControl", tight_glmerControl, "lme4")

## optimizer tolerances: lme4's optwrap, per optimizer (glmer's control$optCtrl goes to both stages,
## and each optimizer warns about the other's control names)
default_optwrap <- lme4:::optwrap
converged_optwrap <- function(optimizer, fn, par, lower = -Inf, upper = Inf, control = list(), ...) {
  tight <- switch(optimizer,
    bobyqa = list(rhoend = 1e-10, maxfun = 1e5),
    Nelder_Mead = list(xt = rep(1e-10, length(par)), FtolAbs = 1e-12, FtolRel = 1e-15, maxfun = 1e5),
    stop("unexpected optimizer ", optimizer))
  control <- modifyList(tight, control)
  opt <- default_optwrap(optimizer, fn, par, lower, upper, control = control, ...)
  value <- function(o) if (is.null(o$fval)) o$value else o$fval
  cat(sprintf("    %-11s %6d evaluations, %.15g: %s\n", optimizer, as.integer(opt$feval), value(opt),
              if (is.null(opt$msg)) opt$message else opt$msg))
  if (optimizer == "Nelder_Mead") {
    # restart from the best point until a restart gains less than 1e-11: a single run can stall with
    # a collapsed simplex (Contraception `(urban | district)` 6e-9 above the minimum, parameters 1e-5 off)
    feval <- opt$feval; warns <- attr(opt, "warnings"); settled <- FALSE
    for (restart in 1:10) {
      again <- default_optwrap(optimizer, fn, opt$par, lower, upper, control = control, ...)
      feval <- feval + again$feval; warns <- c(warns, attr(again, "warnings"))
      cat(sprintf("    %-11s %6d evaluations, %.15g: %s (restart %d)\n", optimizer, as.integer(again$feval),
                  value(again), again$message, restart))
      gain <- value(opt) - value(again)
      if (gain >= 0) opt <- again
      if (gain < 1e-11) { settled <- TRUE; break }
    }
    if (!settled) stop("Nelder_Mead still improving after 10 restarts")
    if (!identical(opt$par, again$par)) fn(opt$par)   # leave the deviance function's state at the best point
    opt$feval <- feval; attr(opt, "warnings") <- warns
  }
  opt
}
assignInNamespace("optwrap", converged_optwrap, "lme4")

work <- tempfile("glmm_converged")
dir.create(work)
run_set <- function(set) {
  if (set == "shared") {
    env <- new.env(parent = globalenv())
    env$commandArgs <- function(trailingOnly = FALSE) c(file.path(work, "shared"), file.path(work, "other"))
    sys.source(file.path(data_dir, "glmer_reference.R"), envir = env)
    list(made = file.path(work, "shared", "reference", "glmm"),
         default = file.path(data_dir, "glmm", "reference"))
  } else {
    # make_glmm_holdout_reference.R writes under tests/data/glmm/holdout of the working directory:
    # run it in a scratch copy of the scripts and keep only the reference JSON files
    scratch <- file.path(work, "holdout")
    dir.create(file.path(scratch, "tests", "data"), recursive = TRUE)
    for (f in c("glmer_reference.R", "make_glmm_holdout_reference.R"))
      stopifnot(file.copy(file.path(data_dir, f), file.path(scratch, "tests", "data", f)))
    setwd(scratch)
    on.exit(setwd(root))
    sys.source(file.path("tests", "data", "make_glmm_holdout_reference.R"), envir = new.env(parent = globalenv()))
    list(made = file.path(scratch, "tests", "data", "glmm", "holdout", "reference"),
         default = file.path(data_dir, "glmm", "holdout", "reference"))
  }
}

compare <- function(default_file, converged_file) {
  a <- fromJSON(default_file); b <- fromJSON(converged_file)
  se_a <- unlist(a$se); se_b <- unlist(b$se)[names(se_a)]
  data.frame(case = sub("[.]json$", "", basename(converged_file)), optimizer = b$optimizer,
             feval = paste0(a$feval, "->", b$feval),
             m2ll_default = a$minus2logLik, m2ll_converged = b$minus2logLik,
             decrease = a$minus2logLik - b$minus2logLik,
             max_theta_diff = max(abs(unlist(a$theta) - unlist(b$theta)[names(a$theta)])),
             max_rel_se_diff = max(abs(se_b / se_a - 1)),
             warned = paste(c(b$fit_warnings, b$conv_messages), collapse = "; "))
}

summary_rows <- list()
for (set in sets) {
  cat("==", set, "set\n")
  r <- run_set(set)
  out <- file.path(r$default, "converged")
  dir.create(out, showWarnings = FALSE, recursive = TRUE)
  unlink(Sys.glob(file.path(out, "*.json")))
  made <- setdiff(list.files(r$made, pattern = "[.]json$"), "index.json")
  expected <- setdiff(list.files(r$default, pattern = "[.]json$"), "index.json")
  if (!setequal(made, expected)) stop(set, ": cases made differ from ", r$default, "'s")
  stopifnot(all(file.copy(file.path(r$made, made), file.path(out, made))))
  cat("wrote", file.path(out, made), sep = "\n")
  for (f in made) summary_rows[[length(summary_rows) + 1]] <- cbind(set = set, compare(file.path(r$default, f), file.path(out, f)))
}
unlink(work, recursive = TRUE)

tab <- do.call(rbind, summary_rows)
tab$not_lower <- ifelse(tab$decrease < -1e-9, "CONVERGED HIGHER", "")
tab$warned[tab$warned == ""] <- "none"
fmt <- transform(tab, m2ll_default = sprintf("%.10f", m2ll_default), m2ll_converged = sprintf("%.10f", m2ll_converged),
                 decrease = sprintf("%.3g", decrease), max_theta_diff = sprintf("%.3g", max_theta_diff),
                 max_rel_se_diff = sprintf("%.3g", max_rel_se_diff))
options(width = 250)
cat("\nDefault fit (the set's reference) against converged fit; decrease = default - converged -2 logLik\n")
print(fmt, row.names = FALSE, right = FALSE)
if (any(tab$not_lower != "")) cat("\nWARNING: converged -2 logLik above the default's for", sum(tab$not_lower != ""), "case(s)\n")
