# R's reading of formula transforms, for interlace's tests of interlace/formula/rexpr.py.
#
# Run from the repository root:
#     Rscript tests/data/make_formula_reference.R
# Writes tests/data/reference/formula_transforms.json.
#
# 1. "terms": for each right-hand side, model.matrix(~ rhs, data) (R's column names
#    and values) and the same columns for `newdata` built as predict() builds them
#    (model.frame of the fit's terms, whose "predvars" carry poly's coefs and scale's
#    centre and scale: R's makepredictcall); null where R refuses the new data.
# 2. "deparse": R's deparse of expressions and their term labels (the spelling of
#    model.matrix's column names: as deparse, but integer constants without their L).
# 3. "fits": lme4 1.1-31 / lmerTest 3.1-3 fits with transforms and an offset: fixef,
#    theta, logLik, fitted, predictions on new rows, and lmerTest's type III anova.
# Doubles are written with 17 significant digits; NA, NaN, Inf and -Inf as strings.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

data_dir <- file.path("interlace", "datasets")
out_file <- file.path("tests", "data", "reference", "formula_transforms.json")
if (!dir.exists(data_dir)) {
  stop("run this script from the repository root (", data_dir, " not found)")
}

data <- data.frame(
  y = c(1.2, 0.4, 2.5, 3.1, 2.2, 4.8, 5.5, 4.1, 6.9, 8.0),
  x = c(0.5, 1, 2, 3.5, 4, 5, 7, 8, 10, 12.25),
  z = c(2L, 1L, 3L, 1L, 2L, 3L, 1L, 2L, 3L, 10L),
  g = c("b", "a", "c", "a", "b", "c", "a", "b", "c", "a"),
  f = factor(c("lo", "hi", "mid", "lo", "hi", "mid", "lo", "hi", "mid", "lo"), levels = c("lo", "mid", "hi")),
  `my x` = c(3, 1, 4, 1, 5, 9, 2, 6, 5, 3.5),
  check.names = FALSE, stringsAsFactors = FALSE
)
newdata <- data.frame(
  y = c(0, 0, 0, 0),
  x = c(-1, 0.5, 6, 15),
  z = c(1L, 2L, 3L, 10L),
  g = c("a", "b", "c", "a"),
  f = factor(c("hi", "lo", "mid", "lo"), levels = c("lo", "mid", "hi")),
  `my x` = c(2, 7, 1.5, 4),
  check.names = FALSE, stringsAsFactors = FALSE
)

rhs <- c(
  "I(x^2)", "I(x**2)", "I(x %% 3)", "I(x %/% 3)", "I(-x)", "I((x - 10)^2)", "I(x * 1e-3)",
  "I(x * 2L)", "I(x/2)", "I(x*2)", "I(x * 1/3)", "I(x^-1)", "I(-x^2)", "I(2^-1 * x)", "I(x * 100000)",
  "I(x * 0.0001)", "I(x * pi)", "I(x * TRUE)", "I(x > 3)", "I(x >= 2 & x < 8)", "I(!(x > 2))",
  "I(x == 2)", "log(x)", "log(x, 2)", "log(x, base = 10)", "log10(x)", "log2(x)", "log1p(x)",
  "exp(x/10)", "sqrt(x)", "abs(x - 5)", "sqrt(abs(x - 5))", "log(x + 1)", "log(x+1)",
  "scale(x)", "scale(x, center = FALSE)", "scale(x, scale = FALSE)", "scale(x, center = 2, scale = 4)",
  "exp(scale(x))", "poly(x, 2)", "poly(x, 3)", "poly(x, degree = 2)", "poly(x, 1)",
  "poly(x, 2, raw = TRUE)", "factor(z)", "as.factor(z)", "factor(f)", "as.numeric(z)",
  "as.numeric(f)", "log(`my x`)", "I(`my x` * 2)", "x + I(x^2)", "x^2", "(x + z)^2",
  "poly(x, 2):g", "g + poly(x, 2):g", "x:factor(z)", "f + scale(x):f", "z + I(z^2) + I(z^3)",
  # an interaction's variables in the order they first appear in the formula
  "z:x + x", "x*z + g*z", "g:f + f + g", "f + g + g:f", "x + g:f:x + f", "f*x + g*x",
  "z + x:z + g:z", "log(x):g + g", "g*x + I(x^2):g",
  # R's coding of factors without an intercept or without an interaction's margins
  "0 + g + f", "0 + g:f", "g:f", "0 + x:g + x:f", "x:g + x:f", "g:f + f:x", "0 + f + g:f",
  "-1 + x*g", "0 + g:x + g", "x + x:g", "0 + x + x:g", "x + g:f:x + f"
)

matrix_columns <- function(mm) {
  lapply(seq_len(ncol(mm)), function(j) unname(as.numeric(mm[, j])))
}

term_case <- function(text) {
  fo <- as.formula(paste("~", text))
  mf <- model.frame(fo, data)
  tt <- terms(mf)
  mm <- model.matrix(tt, mf)
  new_mm <- tryCatch({
    nf <- model.frame(tt, newdata, xlev = .getXlevels(tt, mf), na.action = na.pass)
    matrix_columns(model.matrix(tt, nf))
  }, error = function(e) NULL)
  list(rhs = text, columns = colnames(mm), values = matrix_columns(mm), new_values = new_mm)
}

expressions <- c(
  "I(x*2)", "I(x/2)", "I(x^2)", "I(x**2)", "I(x%%3)", "I(x %/% 3)", "log(x+1)", "I((x-10)^2)",
  "I(x*1e-3)", "I(x*2L)", "I(x * 100000)", "I(x*1e5L)", "I(x*0.0001)", "I(x*123456)", "I(x*1234567.1)",
  "I(x*1e15)", "I(x*123456789012)", "I(x*.5)", "I(x*5.)", "I(x*1.50)", "I(x*3e-5)", "I(x*0.1234567890123456)",
  "I(x>3)", "I(x>=2&x<8)", "I(!(x>2))", "I(- x)", "I(+x)", "I(-x^2)", "I(2^-1*x)", "log(x,base=2)",
  "poly(x,2,raw=TRUE)", "scale(x,center=FALSE)", "log(`my x`)", "I(`my x`^2)", "I(x - (1))", "I(x*pi)",
  "I(x*TRUE)", "sqrt(abs(x))", "I(x %in% 2)", "I(x^2L)", "I(x*-1e-300)",
  "I(x*1e300)", "I(x*0.001)", "I(x*1e-05)", "I(x*100)", "I(x*1e4)", "I(x*12345678)", "I(x/3+2^3^2)"
)

deparsed <- lapply(expressions, function(e) {
  list(text = e, deparse = deparse(str2lang(e)),
       term_label = attr(terms(as.formula(paste("~", e))), "term.labels"))
})

sleep <- read.csv(file.path(data_dir, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
pixel <- read.csv(file.path(data_dir, "Pixel.csv"), stringsAsFactors = FALSE)
pixel$Dog <- factor(pixel$Dog)
pixel$Side <- factor(pixel$Side)

sleep_new <- data.frame(Days = c(0, 4.5, 12, 3), Subject = factor(c("308", "309", "999", "372")))
pixel_new <- data.frame(day = c(0, 5, 25, 10), Dog = factor(c("1", "10", "99", "3")),
                        Side = factor(c("L", "R", "L", "R")))

fit_case <- function(formula, data, newdata, REML) {
  m <- lmer(as.formula(formula), data = data, REML = REML)
  a <- anova(m)
  list(
    formula = formula, REML = REML,
    fixef_names = names(fixef(m)), fixef = unname(fixef(m)),
    theta_names = names(getME(m, "theta")), theta = unname(getME(m, "theta")),
    sigma = sigma(m), logLik = as.numeric(logLik(m)),
    ranef_columns = lapply(ranef(m), colnames),
    fitted = unname(fitted(m)), residuals = unname(residuals(m)),
    newdata = newdata,
    predict = unname(predict(m, newdata = newdata, allow.new.levels = TRUE)),
    predict_population = unname(predict(m, newdata = newdata, re.form = NA)),
    anova = list(terms = rownames(a), NumDF = a[["NumDF"]], DenDF = a[["DenDF"]],
                 F = a[["F value"]], p = a[["Pr(>F)"]]),
    warnings = m@optinfo$conv$lme4$messages
  )
}

fits <- list(
  fit_case("Reaction ~ Days + offset(0.5 * Days) + (1 | Subject)", sleep, sleep_new, FALSE),
  fit_case("Reaction ~ Days + offset(0.5 * Days) + (Days | Subject)", sleep, sleep_new, TRUE),
  fit_case("pixel ~ poly(day, 2) + (day | Dog) + (1 | Dog:Side)", pixel, pixel_new, TRUE),
  fit_case("Reaction ~ scale(Days) + (scale(Days) | Subject)", sleep, sleep_new, TRUE),
  fit_case("Reaction ~ log(Days + 1) + (log(Days + 1) | Subject)", sleep, sleep_new, TRUE)
)

out <- list(
  made_by = "tests/data/make_formula_reference.R",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest"))),
  data = c(as.list(data[, names(data) != "f"]), list(f = as.character(data$f))),
  newdata = c(as.list(newdata[, names(newdata) != "f"]), list(f = as.character(newdata$f))),
  f_levels = levels(data$f),
  terms = lapply(rhs, term_case),
  deparse = deparsed,
  fits = fits
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17), null = "null", na = "string", pretty = FALSE), out_file)
cat("wrote", out_file, "\n")
