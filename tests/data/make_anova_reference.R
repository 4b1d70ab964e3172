# lmerTest's ANOVA tables of types I, II and III, drop1 and ranova, for interlace's
# tests (tests/test_anova_types.py).
#
# Run from the repository root:
#     Rscript tests/data/make_anova_reference.R
# Writes tests/data/anova/<case>.json and tests/data/anova/index.json.
#
# Data: the CSVs bundled in interlace/datasets/ (the weighted sleepstudy from
# tests/data/datasets/), with the column classes and factor level orders of
# interlace/datasets/schema.json (tests/data/datasets/schema.json), as
# interlace.load_dataset reads them. cake's `temperature` is a plain (unordered)
# factor there, as in the bundled CSV (lme4's own cake has it ordered, which would
# give polynomial contrasts): both sides code it with treatment contrasts.
#
# Every fit runs lme4's default optimizer (nloptwrap) with tight tolerances, so that
# the tables are those of the optimum and not of where the default tolerances stop
# (the F tests' df move with theta); ranova's refits inherit the control through
# update(). NA is written as the string "NA"; numbers with 17 significant digits.

suppressPackageStartupMessages({
  library(lmerTest)
  library(jsonlite)
})

bundled <- file.path("interlace", "datasets")
extra <- file.path("tests", "data", "datasets")
out_dir <- file.path("tests", "data", "anova")
if (!dir.exists(bundled)) stop("run this script from the repository root (", bundled, " not found)")
dir.create(out_dir, showWarnings = FALSE)

read_dataset <- function(name) {
  dir <- if (file.exists(file.path(bundled, paste0(name, ".csv")))) bundled else extra
  schema <- fromJSON(file.path(dir, "schema.json"), simplifyVector = FALSE)[[name]]
  df <- read.csv(file.path(dir, paste0(name, ".csv")), stringsAsFactors = FALSE,
                 colClasses = "character")
  for (col in names(df)) {
    cls <- schema[[col]]$class
    df[[col]] <- if (cls == "factor") factor(df[[col]], levels = unlist(schema[[col]]$levels))
                 else if (cls == "integer") as.integer(df[[col]]) else as.numeric(df[[col]])
  }
  df
}

tight <- lmerControl(optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, ftol_rel = 1e-14,
                                    xtol_rel = 1e-12, maxeval = 1e5))

table_json <- function(tab) {
  tab <- as.data.frame(tab)
  list(rows = I(rownames(tab)), columns = I(colnames(tab)),  # I(): arrays even of length 1
       values = lapply(setNames(colnames(tab), colnames(tab)), function(col) I(unname(tab[[col]]))))
}

# name, dataset, formula, REML, weights/offset columns, Kenward-Roger?, anova?, ranova(reduce.terms = FALSE)?
cases <- list(
  list(name = "sleepstudy_slopes_REML", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, kr = TRUE, full = TRUE),
  list(name = "sleepstudy_slopes_ML", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE, full = TRUE),
  list(name = "sleepstudy_uncorrelated", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days || Subject)", REML = TRUE, full = TRUE),
  list(name = "sleepstudy_weighted", dataset = "sleepstudy_weighted",
       formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, weights = "w", offset = "off",
       full = TRUE),
  list(name = "cake_factorial", dataset = "cake",
       formula = "angle ~ recipe * temperature + (1 | recipe:replicate)", REML = TRUE, kr = TRUE),
  list(name = "cake_numeric", dataset = "cake",
       formula = "angle ~ recipe * temp + (1 | recipe:replicate)", REML = TRUE),
  list(name = "BodyWeight_slopes", dataset = "BodyWeight",
       formula = "weight ~ Time * Diet + (Time | Rat)", REML = TRUE, kr = TRUE, full = TRUE),
  list(name = "TVbo_crossed", dataset = "TVbo",
       formula = "Coloursaturation ~ TVset * Picture + (1 | Assessor) + (1 | Assessor:TVset)", REML = TRUE),
  list(name = "TVbo_nested_fixed", dataset = "TVbo",
       formula = "Coloursaturation ~ TVset + TVset:Picture + (1 | Assessor)", REML = TRUE),
  list(name = "Exam_main_effects", dataset = "Exam",
       formula = "normexam ~ standLRT + sex + schavg + (1 | school)", REML = TRUE),
  list(name = "Exam_main_effects_reordered", dataset = "Exam",
       formula = "normexam ~ sex + schavg + standLRT + (1 | school)", REML = TRUE),
  list(name = "Penicillin_crossed", dataset = "Penicillin",
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE, anova = FALSE),
  list(name = "Pastes_nested", dataset = "Pastes",
       formula = "strength ~ 1 + (1 | batch/cask)", REML = TRUE, anova = FALSE),
  # a term without its margin: R codes Time by indicators in Time:Diet (2 in attr(terms,
  # "factors")), so lmerTest's containment does not count Time as contained in Time:Diet
  list(name = "BodyWeight_no_margin", dataset = "BodyWeight",
       formula = "weight ~ Time + Time:Diet + (Time | Rat)", REML = TRUE),
  # unbalanced (subjects 308 and 309 without days 6-9): Kenward-Roger's F scaling is not 1
  list(name = "sleepstudy_unbalanced_poly", dataset = "sleepstudy",
       formula = "Reaction ~ poly(Days, 2) + (Days | Subject)", REML = TRUE, kr = TRUE,
       drop = quote(Subject %in% c("308", "309") & Days > 5)),
  # rank deficient: temp is temperature's numeric value, so lme4 drops its column; lmerTest's
  # drop1 then tests temperature on 5 df, one more than the model has beyond recipe + temp
  # (its get_Ldiffmat2 keeps one row per non-zero residual column, not per dimension):
  # tests/test_anova_types.py checks the other rows and interlace's 4-df test
  list(name = "cake_rank_deficient", dataset = "cake",
       formula = "angle ~ recipe + temperature + temp + (1 | recipe:replicate)", REML = TRUE,
       evidence = TRUE)
)

# For the rank-deficient case: the rank of each of lmerTest's drop1 hypotheses, and the number of
# dimensions the full design has beyond the design without the term (what the test should have).
drop1_evidence <- function(m, tab) {
  lapply(attr(tab, "hypotheses"), function(L) {
    if (!is.matrix(L) || anyNA(L)) return(list(rank = NA))
    list(rows = nrow(L), rank = qr(L)$rank, intercept_and_recipe_entries = I(unname(L[, 1:3])))
  })
}
extra_dimensions <- function(m, term) {
  full <- model.matrix(nobars(formula(m)), model.frame(m))
  rest <- model.matrix(update(nobars(formula(m)), paste(". ~ . -", term)), model.frame(m))
  qr(full)$rank - qr(rest)$rank
}

run_case <- function(case) {
  data <- read_dataset(case$dataset)
  dropped <- if (is.null(case$drop)) integer(0) else which(eval(case$drop, data))
  if (length(dropped)) data <- data[-dropped, ]
  args <- list(formula = as.formula(case$formula), data = data, REML = case$REML, control = tight)
  if (!is.null(case$weights)) args$weights <- data[[case$weights]]
  if (!is.null(case$offset)) args$offset <- data[[case$offset]]
  m <- suppressMessages(do.call(lmerTest::lmer, args))  # the rank-deficiency message
  out <- list(name = case$name, dataset = case$dataset, formula = case$formula, REML = case$REML,
              weights = if (is.null(case$weights)) NULL else case$weights,
              offset = if (is.null(case$offset)) NULL else case$offset,
              dropped_rows = I(dropped),  # 1-based CSV rows left out of the fit
              theta = I(unname(getME(m, "theta"))), sigma = sigma(m), logLik = as.numeric(logLik(m)))
  if (!isFALSE(case$anova)) {
    tables <- list()
    for (type in c("I", "II", "III")) {
      tab <- anova(m, type = type)
      tables[[paste0("type", type, "_Satterthwaite")]] <- c(table_json(tab), title = attr(tab, "heading"))
      if (isTRUE(case$kr)) {
        tab <- anova(m, type = type, ddf = "Kenward-Roger")
        tables[[paste0("type", type, "_Kenward-Roger")]] <- c(table_json(tab), title = attr(tab, "heading"))
      }
    }
    out$anova <- tables
    tab <- drop1(m)
    out$drop1 <- c(table_json(tab), title = attr(tab, "heading")[1])
    if (isTRUE(case$evidence)) {
      out$drop1_hypotheses <- drop1_evidence(m, tab)
      out$drop1_dimensions_beyond <- lapply(setNames(rownames(tab), rownames(tab)),
                                            function(term) extra_dimensions(m, term))
    }
  }
  tab <- ranova(m)
  out$ranova <- c(table_json(tab), title = attr(tab, "heading")[1], model = attr(tab, "heading")[3])
  if (isTRUE(case$full)) {
    tab <- ranova(m, reduce.terms = FALSE)
    out$ranova_complete <- c(table_json(tab), title = attr(tab, "heading")[1], model = attr(tab, "heading")[3])
  }
  out
}

index <- list()
for (case in cases) {
  res <- run_case(case)
  file <- paste0(case$name, ".json")
  writeLines(toJSON(res, auto_unbox = TRUE, digits = I(17), na = "string", null = "null", pretty = TRUE),
             file.path(out_dir, file))
  index[[length(index) + 1L]] <- list(name = case$name, json = file)
  cat("wrote", file, "\n")
}
versions <- list(R = paste(R.version$major, R.version$minor, sep = "."),
                 lme4 = as.character(packageVersion("lme4")),
                 lmerTest = as.character(packageVersion("lmerTest")),
                 pbkrtest = as.character(packageVersion("pbkrtest")))
writeLines(toJSON(list(versions = versions, cases = index), auto_unbox = TRUE, pretty = TRUE),
           file.path(out_dir, "index.json"))
