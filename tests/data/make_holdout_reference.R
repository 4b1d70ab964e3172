# Held-out lme4 reference cases: other public datasets "of the same kinds" as tests/data/reference/.
#
# Usage (from the repository root):
#   Rscript tests/data/make_holdout_reference.R [REGEXP]
# Writes tests/data/holdout/data/*.csv, data/schema.json, data/README.md and
# tests/data/holdout/reference/*.json + reference/index.json.
#
# It runs tests/data/lme4_reference.R (a copy of the project lead's script) unchanged except that its
# `datasets` and `cases` assignments are replaced by the lists below, so the JSON files have exactly
# the format of the shared reference (17 significant digits, factor_levels, rows_dropped_1based,
# confint_profile with its warnings, satterthwaite, kenward_roger, anova_type3_satterthwaite, ...).
# The lead script's shared outputs (its anova__sleepstudy.json and shared index) go to a temporary
# directory and are discarded. Optional REGEXP re-runs only the matching JSON files (index.json is
# always complete). All datasets have < 8,000 rows and every profile finished in < 15 s (R 4.2.2,
# lme4 1.1-31), so no profile is skipped (the lead script skips them only for n > 20000). The whole
# run takes ~3.5 min, 2.5 of them in pbkrtest's Kenward-Roger for ScotsSec (n = 3435, crossed).
#
# Model choices: mostly Pinheiro & Bates (2000) / package-documentation models, plus formula
# transforms in the fixed part (I(), poly(), poly(raw = TRUE), log(), scale(), offset(), factor()).
# lme4 emitted no convergence warning for any case; the one singular fit (Wafer) carries lme4's message in
# conv_messages ("boundary (singular) fit"). nlme::Assay (logDens ~ sample * dilut + (1 | Block) +
# (1 | Block:sample) + (1 | Block:dilut)) was tried and left out: lme4 warned "Model failed to converge".
suppressMessages({
  library(lme4); library(lmerTest); library(pbkrtest); library(nlme); library(mlmRev); library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
only <- if (length(args) >= 1) args[1] else NULL
lead_script <- file.path("tests", "data", "lme4_reference.R")
out_hold <- file.path("tests", "data", "holdout")
if (!file.exists(lead_script)) stop("run this script from the repository root (", lead_script, " not found)")
scratch <- tempfile("holdout_shared")

holdout_datasets <- list(
  Rail      = list(df = nlme::Rail, where = "holdout", pkg = "nlme"),
  ergoStool = list(df = nlme::ergoStool, where = "holdout", pkg = "nlme"),
  Machines  = list(df = nlme::Machines, where = "holdout", pkg = "nlme"),
  Oats      = list(df = nlme::Oats, where = "holdout", pkg = "nlme"),
  Gun       = list(df = nlme::Gun, where = "holdout", pkg = "nlme"),
  ScotsSec  = list(df = mlmRev::ScotsSec, where = "holdout", pkg = "mlmRev"),
  carrots   = list(df = lmerTest::carrots, where = "holdout", pkg = "lmerTest"),
  ham       = list(df = lmerTest::ham, where = "holdout", pkg = "lmerTest"),
  Orthodont = list(df = nlme::Orthodont, where = "holdout", pkg = "nlme"),
  Oxboys    = list(df = nlme::Oxboys, where = "holdout", pkg = "nlme"),
  Wafer     = list(df = nlme::Wafer, where = "holdout", pkg = "nlme"),
  sleepstudy = list(df = lme4::sleepstudy, where = "holdout", pkg = "lme4"),
  Early     = list(df = mlmRev::Early, where = "holdout", pkg = "mlmRev"),
  Gcsemv    = list(df = mlmRev::Gcsemv, where = "holdout", pkg = "mlmRev"),
  Milk      = list(df = nlme::Milk, where = "holdout", pkg = "nlme"),
  bdf       = list(df = mlmRev::bdf[, c("schoolNR", "pupilNR", "IQ.verb", "ses", "sex", "Minority", "langPOST")],
                   where = "holdout", pkg = "mlmRev"),
  Hsb82     = list(df = mlmRev::Hsb82, where = "holdout", pkg = "mlmRev")
)

holdout_cases <- list(
  # random intercepts only (P&B 1.1, 1.2)
  list("Rail", "travel ~ 1 + (1 | Rail)", TRUE),
  list("ergoStool", "effort ~ Type + (1 | Subject)", TRUE),
  # interaction grouping factor (P&B 1.3)
  list("Machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", TRUE),
  # nested (P&B 1.6), and factor() of a numeric column, ML
  list("Oats", "yield ~ nitro + Variety + (1 | Block/Variety)", TRUE),
  list("Oats", "yield ~ factor(nitro) + Variety + (1 | Block/Variety)", FALSE),
  # nested; the profile of sd(Physique) reaches its lower bound 0 (P&B Gun)
  list("Gun", "rounds ~ Method + (1 | Physique/Team)", TRUE),
  # crossed (mlmRev ScotsSec, lmerTest carrots (3 rows with NA Preference) and ham)
  list("ScotsSec", "attain ~ verbal + sex + (1 | primary) + (1 | second)", TRUE),
  list("carrots", "Preference ~ sens2 + Homesize + (1 + sens2 | Consumer) + (1 | Product)", TRUE),
  list("ham", "Informed.liking ~ Product * Information + (1 | Consumer) + (1 | Consumer:Product)", TRUE),
  # correlated slopes (P&B Orthodont, Oxboys; mlmRev Hsb82)
  list("Orthodont", "distance ~ age + Sex + (age | Subject)", TRUE),
  list("Orthodont", "distance ~ Sex + offset(0.5 * age) + (1 | Subject)", FALSE),
  list("Oxboys", "height ~ age + I(age^2) + (age | Subject)", FALSE),
  list("Oxboys", "height ~ age + (age || Subject)", TRUE),
  # singular fit (theta for Wafer:Site is 0), uncorrelated terms, I() (P&B Wafer)
  list("Wafer", "current ~ voltage + I(voltage^2) + (voltage || Wafer) + (1 | Wafer:Site)", TRUE),
  # formula transforms in the fixed part
  list("sleepstudy", "Reaction ~ poly(Days, 2) + (Days | Subject)", TRUE),
  list("Early", "cog ~ poly(age, 2, raw = TRUE) + trt + (1 | id)", FALSE),
  list("Milk", "log(protein) ~ Diet + log(Time) + (1 | Cow)", TRUE),
  list("bdf", "langPOST ~ scale(IQ.verb) + scale(ses) + Minority + (1 | schoolNR)", FALSE),
  # rows with NA in the response (180 of 1905 dropped)
  list("Gcsemv", "course ~ gender + (1 | school)", TRUE),
  list("Hsb82", "mAch ~ meanses * cses + sector * cses + (cses | school)", TRUE)
)

## run the lead script with the two lists replaced
env <- new.env(parent = globalenv())
env$commandArgs <- function(trailingOnly = FALSE) c(scratch, out_hold, if (!is.null(only)) only)
env$holdout_datasets <- holdout_datasets
env$holdout_cases <- holdout_cases
replaced <- c(datasets = 0L, cases = 0L)
for (e in parse(lead_script, keep.source = FALSE)) {
  if (is.call(e) && identical(e[[1]], as.name("<-")) && is.name(e[[2]]) && as.character(e[[2]]) %in% names(replaced)) {
    v <- as.character(e[[2]])
    e[[3]] <- as.name(paste0("holdout_", v))
    replaced[[v]] <- replaced[[v]] + 1L
  }
  eval(e, env)
}
stopifnot(all(replaced == 1L))
unlink(scratch, recursive = TRUE)

## data/schema.json: R column classes and factor level order of the CSVs (as /work/shared/tools/schema.R)
schema <- lapply(env$datasets, function(d) lapply(d$df, function(col)
  if (is.factor(col)) list(class = "factor", levels = levels(col)) else list(class = class(col)[1])))
writeLines(toJSON(schema, auto_unbox = TRUE, pretty = TRUE), file.path(out_hold, "data", "schema.json"))
cat("wrote", file.path(out_hold, "data", "schema.json"), "\n")
