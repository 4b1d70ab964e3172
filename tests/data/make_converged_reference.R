# lme4's reference for a case whose default fit stopped short of the optimum.
#
# lme4 1.1-31's default optimizer (nloptwrap: BOBYQA with xtol_abs = 1e-6, ftol_abs = 1e-6)
# ends BodyWeight's REML fit `weight ~ Time * Diet + (Time | Rat)` with
# "Model failed to converge with max|grad| = 0.00687887", theta 8.3007 where the REML
# criterion is 5.1e-5 above its minimum (theta 8.3128), and Pixel's
# `pixel ~ day + I(day^2) + (day | Dog) + (1 | Dog:Side)` without a warning at
# Dog.(Intercept) 3.15530, 3.6e-7 above the minimum (3.15586). This script reruns
# lme4_reference.R (a copy of the project lead's script) for the cases matching a
# regular expression with nloptwrap's tolerances tightened, so every number in the JSON
# (fit, lmerTest's df, pbkrtest, profile intervals) is lme4's at its converged optimum.
#
# Usage (from the repository root):
#   Rscript tests/data/make_converged_reference.R [REGEXP]            (default: ^(BodyWeight|Pixel)__)
#   Rscript tests/data/make_converged_reference.R holdout [REGEXP]    (default: ^(Oxboys__height_age_I_|carrots__|Hsb82__))
# Writes tests/data/reference/converged/<case>.json (or tests/data/holdout/reference/converged/,
# through make_holdout_reference.R's lists, for the held-out set: its ML fit of
# `height ~ age + I(age^2) + (age | Subject)` on Oxboys stops 9e-8 above the minimum, at
# Subject.(Intercept) 13.61829 for 13.61856; carrots' and Hsb82's REML fits 8.8e-7 and 8.7e-7
# above theirs) for each matching case, reading the datasets
# the original script exports itself (lme4, lmerTest, nlme, mlmRev packages).
# Also run for the weighted sleepstudy REML case
# (Rscript tests/data/make_converged_reference.R '^sleepstudy_weighted__Reaction_Days_Days_Subject__REML'):
# its default fit stops 7e-8 above the REML minimum at Subject.Days.(Intercept) -0.0028817 for
# -0.0028899 (the minimum that pbkrtest's fit of the rows scaled by sqrt(w), in
# make_kr_weights_evidence.R, reaches too).
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
holdout <- length(args) >= 1 && args[1] == "holdout"
if (holdout) args <- args[-1]
only <- if (length(args) >= 1) args[1] else if (holdout) "^(Oxboys__height_age_I_|carrots__|Hsb82__)" else "^(BodyWeight|Pixel)__"
default_nloptwrap <- lme4::nloptwrap
converged_nloptwrap <- function(par, fn, lower, upper, control = list(), ...) {
  tight <- list(xtol_abs = 1e-12, ftol_abs = 1e-14, ftol_rel = 1e-14, xtol_rel = 1e-12, maxeval = 1e5)
  default_nloptwrap(par, fn, lower, upper, control = modifyList(tight, control), ...)
}
assignInNamespace("nloptwrap", converged_nloptwrap, "lme4")
work <- tempfile("converged")
dir.create(work)
if (holdout) {
  # make_holdout_reference.R writes under tests/data/holdout of the working directory: run it
  # in a scratch copy of the scripts and keep only the converged JSON files
  root <- getwd()
  dir.create(file.path(work, "tests", "data"), recursive = TRUE)
  for (f in c("lme4_reference.R", "make_holdout_reference.R"))
    file.copy(file.path(root, "tests", "data", f), file.path(work, "tests", "data", f))
  setwd(work)
  commandArgs <- function(trailingOnly = FALSE) only
  source(file.path("tests", "data", "make_holdout_reference.R"), local = TRUE)
  setwd(root)
  made_dir <- file.path(work, "tests", "data", "holdout", "reference")
  out <- file.path("tests", "data", "holdout", "reference", "converged")
} else {
  commandArgs <- function(trailingOnly = FALSE) c(file.path(work, "shared"), file.path(work, "holdout"), only)
  source(file.path("tests", "data", "lme4_reference.R"), local = TRUE)
  made_dir <- file.path(work, "shared", "reference")
  out <- file.path("tests", "data", "reference", "converged")
}
dir.create(out, showWarnings = FALSE, recursive = TRUE)
made <- setdiff(list.files(made_dir, pattern = only), "index.json")
for (f in made) file.copy(file.path(made_dir, f), file.path(out, f), overwrite = TRUE)
cat("wrote", file.path(out, made), sep = "\n")
