# Reference predictions on held-out rows from lme4, for interlace's predict() tests.
#
# Run from the repository root:
#     Rscript tests/data/make_predict_reference.R
# Writes tests/data/reference/predict_heldout.json.
#
# Each case is a REML lmer fit on a subset of a bundled CSV (interlace/datasets/);
# the remaining rows are held out and predicted with
#   predict(m, newdata = heldout, allow.new.levels = TRUE)   # conditional
#   predict(m, newdata = heldout, re.form = NA)               # population
# and fitted(m) is recorded for the training rows. Row numbers are 1-based CSV rows
# (header excluded); every per-row vector follows the order of its row-number vector.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

data_dir <- file.path("interlace", "datasets")
out_file <- file.path("tests", "data", "reference", "predict_heldout.json")
if (!dir.exists(data_dir)) {
  stop("run this script from the repository root (", data_dir, " not found)")
}

read_data <- function(name) {
  read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = FALSE)
}

run_case <- function(data, formula, train) {
  stopifnot(is.logical(train), length(train) == nrow(data), !anyNA(train))
  train_rows <- which(train)
  heldout_rows <- which(!train)
  train_df <- data[train_rows, , drop = FALSE]
  heldout_df <- data[heldout_rows, , drop = FALSE]

  m <- lmer(formula, data = train_df, REML = TRUE)
  stopifnot(nobs(m) == length(train_rows))

  pred_cond <- predict(m, newdata = heldout_df, allow.new.levels = TRUE)
  pred_pop <- predict(m, newdata = heldout_df, re.form = NA)
  fitted_train <- fitted(m)

  list(
    formula = paste(deparse(formula, width.cutoff = 500L), collapse = " "),
    REML = TRUE,
    train_rows_1based = train_rows,
    heldout_rows_1based = heldout_rows,
    fixef = as.list(fixef(m)),
    theta = unname(getME(m, "theta")),
    sigma = sigma(m),
    predict_conditional = unname(pred_cond),
    predict_population = unname(pred_pop),
    fitted_train = unname(fitted_train)
  )
}

# --- Case 1: sleepstudy, random intercept + slope -------------------------------------
sleep <- read_data("sleepstudy")
sleep$Subject <- factor(as.character(sleep$Subject))
sleep_train <- !(as.character(sleep$Subject) %in% c("370", "371", "372")) & sleep$Days != 9
sleep_res <- run_case(sleep, Reaction ~ Days + (Days | Subject), sleep_train)

# --- Case 2: Penicillin, crossed random intercepts ------------------------------------
pen <- read_data("Penicillin")
pen$plate <- factor(pen$plate)
pen$sample <- factor(pen$sample)
pen_train <- !(pen$plate %in% c("w", "x")) & !(pen$plate == "a" & pen$sample == "F")
pen_res <- run_case(pen, diameter ~ 1 + (1 | plate) + (1 | sample), pen_train)

versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4"))
)
sleep_res$versions <- versions
pen_res$versions <- versions

out <- list(sleepstudy = sleep_res, Penicillin = pen_res)

# jsonlite's own `digits` option prints at most 15 significant digits (digits = NA and
# digits = I(17) both stop at 15 in jsonlite 1.8.4), which does not round-trip doubles.
# So every double is formatted here with "%.17g" (17 significant digits, enough to identify
# any IEEE double exactly) and passed through verbatim (class "json", json_verbatim = TRUE).
# Row numbers stay integers.
num17 <- function(x) {
  stopifnot(is.double(x), length(x) == 1L, is.finite(x))
  structure(sprintf("%.17g", x), class = "json")
}
vec17 <- function(x) {
  stopifnot(is.double(x), all(is.finite(x)))
  structure(paste0("[", paste(sprintf("%.17g", x), collapse = ", "), "]"), class = "json")
}
as_json_numbers <- function(res) {
  res$fixef <- lapply(res$fixef, num17)
  res$sigma <- num17(res$sigma)
  for (key in c("theta", "predict_conditional", "predict_population", "fitted_train")) {
    res[[key]] <- vec17(res[[key]])
  }
  res
}
json <- toJSON(lapply(out, as_json_numbers), auto_unbox = TRUE, pretty = TRUE,
               json_verbatim = TRUE)
writeLines(json, out_file)

# Check that the file reads back to the same structure and the same doubles.
back <- fromJSON(out_file, simplifyVector = TRUE)
for (case in names(out)) {
  for (key in c("train_rows_1based", "heldout_rows_1based")) {
    stopifnot(identical(as.integer(back[[case]][[key]]), out[[case]][[key]]))
  }
  for (key in c("theta", "predict_conditional", "predict_population", "fitted_train")) {
    stopifnot(identical(as.numeric(back[[case]][[key]]), as.numeric(out[[case]][[key]])))
  }
  stopifnot(identical(back[[case]]$sigma, out[[case]]$sigma))
  stopifnot(identical(unlist(back[[case]]$fixef), unlist(out[[case]]$fixef)))
  stopifnot(identical(back[[case]]$formula, out[[case]]$formula))
}

cat("wrote", out_file, "\n")
for (case in names(out)) {
  cat(sprintf("  %s: %d training rows, %d held-out rows\n", case,
              length(out[[case]]$train_rows_1based), length(out[[case]]$heldout_rows_1based)))
}
