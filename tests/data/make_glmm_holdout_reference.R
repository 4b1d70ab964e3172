# Held-out lme4::glmer reference cases: public datasets and models that the shared GLMM set
# (tests/data/glmm/reference/, copied from the project lead's set) does not cover.
#
# Usage (from the repository root):
#   Rscript tests/data/make_glmm_holdout_reference.R
# Writes tests/data/glmm/holdout/data/*.csv, data/schema.json, data/README.md and
# tests/data/glmm/holdout/reference/*.json + reference/index.json (old *.csv / *.json there are removed first).
#
# It runs tests/data/glmer_reference.R (a byte-identical copy of the project lead's script) unchanged except
# that its `datasets`, `cases` and `where_of` assignments are replaced by the lists below (every case "holdout"),
# so the JSON files have exactly the format of the shared GLMM reference (17 significant digits,
# factor_levels, ranef with cond_sd, confint_wald, conv_messages, fit_warnings, glmer_seconds, ...).
# The lead script writes into two temporary directories (its "shared" one stays empty); the results are
# then moved to the layout above, its data/glmm_schema.json renamed to data/schema.json (same content:
# R column classes and factor level order of the CSVs, numeric columns as re-read from the CSV).
# The whole run takes well under a minute (R 4.2.2, lme4 1.1-31); the slowest fit (guImmun) ~2 s.
#
# What the held-out set adds to the shared one: binomial probit and cloglog links; a proportion response with
# weights = number of trials; a factor response other than VerbAgg's and a 0/1 numeric response; a correlated
# random slope (binomial and poisson); an uncorrelated `||` term; an `a:b` interaction grouping factor and a
# nested `a/b` term; a poisson offset stored as a CSV column (and Mmmec's computed one, as in the shared set);
# nAGQ = 0; adaptive Gauss-Hermite quadrature with nAGQ = 5 and 25; a crossed binomial with 3,435 rows.
#
# Derived datasets (made here, written to the CSVs):
#   cbpp_derived  = lme4::cbpp plus prop = incidence / size and logsize = log(size)
#   ScotsSec_pass = mlmRev::ScotsSec plus pass = as.numeric(attain >= 6)  (a 0/1 numeric response, 48% ones)
# Models tried and left out (lme4 warned): Contraception `use ~ age + I(age^2) + urban + livch + (urban | district)`
# with nAGQ = 1 ("Model failed to converge with max|grad| = 0.00246" and "nearly unidentifiable: very large
# eigenvalue"; kept here with nAGQ = 0, where glmer does not warn), the same fixed part with `(1 | district)`,
# probit or nAGQ = 25 ("nearly unidentifiable"), `(urban || district)` (urban is a factor, so lme4 makes a
# 2 x 2 correlated block for `0 + urban`; "nearly unidentifiable"), ScotsSec_pass with cloglog ("failed to
# converge", max|grad| 0.024), guImmun with all its covariates (25 s, max|grad| 0.61) and guPrenat
# `(1 | cluster/mom)` (Nelder_Mead hit 10,000 evaluations).
suppressMessages({ library(lme4); library(mlmRev); library(jsonlite) })
lead_script <- file.path("tests", "data", "glmer_reference.R")
out_dir <- file.path("tests", "data", "glmm", "holdout")
if (!file.exists(lead_script)) stop("run this script from the repository root (", lead_script, " not found)")
scratch_shared <- tempfile("glmm_shared")
scratch_hold <- tempfile("glmm_holdout")

cbpp_derived <- transform(lme4::cbpp, prop = incidence / size, logsize = log(size))
ScotsSec_pass <- transform(mlmRev::ScotsSec, pass = as.numeric(attain >= 6))

made <- c(cbpp_derived = "`lme4::cbpp` plus `prop = incidence / size`, `logsize = log(size)`",
          ScotsSec_pass = "`mlmRev::ScotsSec` plus `pass = as.numeric(attain >= 6)`")

holdout_datasets <- list(
  cbpp_derived  = list(df = cbpp_derived, where = "holdout", pkg = "lme4"),
  Contraception = list(df = mlmRev::Contraception, where = "holdout", pkg = "mlmRev"),
  ScotsSec_pass = list(df = ScotsSec_pass, where = "holdout", pkg = "mlmRev"),
  guImmun       = list(df = mlmRev::guImmun, where = "holdout", pkg = "mlmRev"),
  Mmmec         = list(df = mlmRev::Mmmec, where = "holdout", pkg = "mlmRev")
)

# dataset, formula, family, link, nAGQ, extra (weights = column; offset = column)
holdout_cases <- list(
  # proportion response with weights = number of trials (logit, Laplace; probit, nAGQ = 0)
  list("cbpp_derived", "prop ~ period + (1 | herd)", "binomial", "logit", 1L, list(weights = "size")),
  list("cbpp_derived", "prop ~ period + (1 | herd)", "binomial", "probit", 0L, list(weights = "size")),
  # cbind response, cloglog link, adaptive Gauss-Hermite quadrature with 5 points
  list("cbpp_derived", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "cloglog", 5L),
  # poisson with an offset stored in the CSV (log of the herd size)
  list("cbpp_derived", "incidence ~ period + (1 | herd)", "poisson", "log", 1L, list(offset = "logsize")),
  # factor response (N/Y): correlated random slope of a factor, Laplace; with I(age^2), nAGQ = 0
  list("Contraception", "use ~ age + urban + livch + (urban | district)", "binomial", "logit", 1L),
  list("Contraception", "use ~ age + I(age^2) + urban + livch + (urban | district)", "binomial", "logit", 0L),
  # single scalar term, AGQ with 25 points
  list("Contraception", "use ~ age + urban + livch + (1 | district)", "binomial", "logit", 25L),
  # uncorrelated intercept and slope of a numeric covariate
  list("Contraception", "use ~ age + urban + livch + (age || district)", "binomial", "logit", 1L),
  # interaction grouping factor a:b (120 levels, 102 occurring)
  list("Contraception", "use ~ age + urban + livch + (1 | district:urban)", "binomial", "logit", 1L),
  # 0/1 numeric response, crossed (148 primary x 19 secondary schools, 3435 rows): logit, probit, nAGQ = 0
  list("ScotsSec_pass", "pass ~ verbal + sex + (1 | primary) + (1 | second)", "binomial", "logit", 1L),
  list("ScotsSec_pass", "pass ~ verbal + sex + (1 | primary) + (1 | second)", "binomial", "probit", 1L),
  list("ScotsSec_pass", "pass ~ verbal + sex + (1 | primary) + (1 | second)", "binomial", "logit", 0L),
  # nested a/b: 1595 mothers in 161 communities (factor response)
  list("guImmun", "immun ~ kid2p + mom25p + ord + (1 | comm/mom)", "binomial", "logit", 1L),
  # poisson, correlated random slope, offset logexpected = log(expected) computed by the lead script (its note)
  list("Mmmec", "deaths ~ uvb + (uvb | nation) + (1 | region)", "poisson", "log", 1L, list(offset = "logexpected"))
)

# glmer drops rows with NA silently and the JSON has no record of them: refuse such cases
for (cs in holdout_cases) {
  df <- holdout_datasets[[cs[[1]]]]$df
  used <- intersect(c(all.vars(as.formula(cs[[2]])), unlist(if (length(cs) >= 6) cs[[6]])), names(df))
  if (anyNA(df[used])) stop("NA in a model column of ", cs[[1]], ": ", cs[[2]])
}

## run the lead script with the three lists replaced
env <- new.env(parent = globalenv())
env$commandArgs <- function(trailingOnly = FALSE) c(scratch_shared, scratch_hold)
env$holdout_datasets <- holdout_datasets
env$holdout_cases <- holdout_cases
replacement <- list(datasets = as.name("holdout_datasets"), cases = as.name("holdout_cases"),
                    where_of = quote(rep("holdout", length(cases))))
replaced <- setNames(integer(length(replacement)), names(replacement))
for (e in parse(lead_script, keep.source = FALSE)) {
  if (is.call(e) && identical(e[[1]], as.name("<-")) && is.name(e[[2]]) && as.character(e[[2]]) %in% names(replacement)) {
    v <- as.character(e[[2]])
    e[[3]] <- replacement[[v]]
    replaced[[v]] <- replaced[[v]] + 1L
  }
  eval(e, env)
}
stopifnot(all(replaced == 1L))

## move the results into tests/data/glmm/holdout/{data,reference}
dir.create(file.path(out_dir, "data"), recursive = TRUE, showWarnings = FALSE)
dir.create(file.path(out_dir, "reference"), recursive = TRUE, showWarnings = FALSE)
unlink(c(Sys.glob(file.path(out_dir, "data", "*.csv")), Sys.glob(file.path(out_dir, "reference", "*.json"))))
for (ds in names(holdout_datasets))
  stopifnot(file.copy(file.path(scratch_hold, "data", paste0(ds, ".csv")), file.path(out_dir, "data"), overwrite = TRUE))
stopifnot(file.copy(file.path(scratch_hold, "data", "glmm_schema.json"), file.path(out_dir, "data", "schema.json"), overwrite = TRUE))
jsons <- list.files(file.path(scratch_hold, "reference", "glmm"), pattern = "[.]json$", full.names = TRUE)
stopifnot(all(file.copy(jsons, file.path(out_dir, "reference"), overwrite = TRUE)))
unlink(c(scratch_shared, scratch_hold), recursive = TRUE)

## data/README.md: files, shapes, origin, level orders, cases (with glmer's time and warnings)
datasets <- env$datasets
index <- env$index$holdout
L <- c("# Held-out datasets for lme4::glmer reference checks", "",
       "Written by `tests/data/make_glmm_holdout_reference.R`, which runs `tests/data/glmer_reference.R` (the project",
       "lead's script) with its dataset and case lists replaced. R data objects exported with",
       "`write.csv(df, row.names = FALSE)`: plain CSV, header row, R's column names; factor columns are written as",
       "(quoted) strings, so read them as categorical even when they look numeric. Ordered factors were turned into",
       "plain factors with the same level order; the level order R used (which sets the treatment-contrast reference",
       "level) is in `schema.json`, listed below and in each reference JSON under `factor_levels`. A factor response",
       "is binomial with its first level failure (0). The fits used the numeric columns as re-read from the CSV and",
       "the rows in file order; no model column has NA values.",
       paste0(R.version.string, ", lme4 ", packageVersion("lme4"), ", mlmRev ", packageVersion("mlmRev"), "."), "",
       "| file | rows | columns | origin |", "|---|---:|---|---|")
for (ds in names(datasets)) {
  df <- datasets[[ds]]$df
  cols <- vapply(names(df), function(n) if (is.factor(df[[n]])) paste0("`", n, "` (factor, ", nlevels(df[[n]]), " levels)")
                 else paste0("`", n, "` (numeric)"), "")
  origin <- if (ds %in% names(made)) made[[ds]] else paste0("`", datasets[[ds]]$pkg, "::", ds, "`")
  L <- c(L, paste0("| ", ds, ".csv | ", nrow(df), " | ", paste(cols, collapse = ", "), " | R package ", datasets[[ds]]$pkg,
                   " ", packageVersion(datasets[[ds]]$pkg), ", ", origin, " |"))
}
L <- c(L, "", "## Factor level order used by R (first = reference level)", "")
for (ds in names(datasets)) {
  df <- datasets[[ds]]$df
  for (n in names(df)) if (is.factor(df[[n]])) {
    lv <- levels(df[[n]]); alpha <- identical(lv, sort(lv, method = "radix"))
    shown <- if (length(lv) > 12) paste0(paste(head(lv, 12), collapse = ", "), ", ... (", length(lv), " levels)") else paste(lv, collapse = ", ")
    L <- c(L, paste0("- ", ds, " `", n, "`: ", shown, if (!alpha) "  **(not in sorted string order)**" else ""))
  }
}
L <- c(L, "", "## Reference cases (`../reference/`, one JSON per case, listed in `../reference/index.json`)", "",
       "| dataset | formula | family | link | nAGQ | weights / offset | nobs | glmer s | glmer warnings |",
       "|---|---|---|---|---:|---|---:|---:|---|")
for (e in index) {
  r <- fromJSON(file.path(out_dir, "reference", e$json))
  wo <- paste(c(if (!is.null(e$weights)) paste0("weights = `", e$weights, "`"), if (!is.null(e$offset)) paste0("offset = `", e$offset, "`")), collapse = ", ")
  msgs <- unique(c(r$fit_warnings, r$conv_messages))
  L <- c(L, paste0("| ", e$dataset, " | `", gsub("|", "\\|", e$formula, fixed = TRUE), "` | ", e$family, " | ", e$link, " | ", e$nAGQ,
                   " | ", wo, " | ", r$nobs, " | ", sprintf("%.2f", r$glmer_seconds), " | ",
                   if (length(msgs)) gsub("\n", " ", paste(msgs, collapse = "; ")) else "none", " |"))
}
L <- c(L, "", "Mmmec's offset column `logexpected = log(expected)` is not in the CSV: compute it before fitting (the case's",
       "`note` says so, as in the shared Mmmec case). cbpp_derived's `logsize` is in the CSV.")
writeLines(L, file.path(out_dir, "data", "README.md"))
cat("wrote", out_dir, "\n")
