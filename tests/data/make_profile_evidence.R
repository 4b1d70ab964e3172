# Evidence for the profile-interval ends where interlace and lme4's
# confint(m, method = "profile", oldNames = FALSE) disagree by more than the tests'
# tolerance: lme4's own profiled deviance, evaluated at both candidate ends.
#
# Run from the repository root:
#     Rscript tests/data/make_profile_evidence.R
# Writes tests/data/reference/profile_evidence.json.
#
# lme4's profile (profile.merMod) follows each parameter on a grid, re-optimising the
# others with bobyqa from the previous grid point, and confint() reads the ends off
# spline (or, after "bad spline fit", linear) interpolation of that grid. Where a
# nuisance parameter sits on its bound (a correlation at -1, an sd at 0) bobyqa often
# does not move it, so the grid's deviances are too high, and where the grid is not
# monotone the interpolation is off. Here each candidate end v is checked directly:
#   zeta(v) = sqrt(min over the other parameters of devfun2(...) - deviance at the optimum)
# for a variance parameter (lme4:::devfun2, lme4's profiled ML deviance on its sd/cor
# scale), and, for a fixed effect, the ML deviance of the model with beta_j held at v
# (an offset x_j v, x_j dropped: lme4's own fe.zeta), minimised over theta. Every
# minimum is the lowest of bobyqa (minqa), L-BFGS-B (optim) and lme4's Nelder_Mead
# from the optimum and from START_COUNT random starts. The deviance at the optimum is
# the lower of lme4's refitML and a bobyqa run of devfun2 from it.
#
# A correlation is kept within +-(1 - 1e-9): at exactly +-1 devfun2 is not the
# deviance. Its Sv_to_Cv takes lme4:::safe_chol of the singular covariance; when
# chol() fails there (it does or does not, by rounding) safe_chol returns the pivoted
# factor with its columns put back in the original order, which is not triangular, and
# the lower triangle read from it drops an effect or flips the correlation's sign
# (Dialyzer at cor = -1, sigma = 8.6585: sds (1.121051, 1.134098) give theta
# (-0.1295, 0.1310, 0), a correlation of +1; sds (1.120579, 1.135016) give
# (-0.1294, 0, 0), no pressure effect; the deviance jumps by 1.5). The deviance is
# continuous in the correlation, so the minimum over the open interval is the profile;
# lme4's own profile of Dialyzer, whose nuisance correlation starts at -1, evaluates
# those wrong models.
#
# The candidate ends: interlace's (copied below from interlace's confint at the time
# of writing, 10 significant digits) and lme4's (read from the reference JSON, its
# converged/ variant where there is one, as tests/reference.py reads it).
# tests/test_confint.py checks that interlace's current ends are these, that zeta at
# interlace's ends is the cut-off qnorm(0.975), and that zeta at lme4's is not.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(minqa)
})

if (!dir.exists(file.path("tests", "data", "reference"))) {
  stop("run this script from the repository root")
}
out_file <- file.path("tests", "data", "reference", "profile_evidence.json")
START_COUNT <- 12L
COR_LIMIT <- 1 - 1e-9  # see the note on safe_chol above
set.seed(20261206)

# (reference json, its set, parameter, side, interlace's end)
claims <- list(
  list("Dialyzer__rate_pressure_QB_pressure_Subject__REML.json", "shared", "sd_(Intercept)|Subject", "upper", 6.278713311),
  list("Dialyzer__rate_pressure_QB_pressure_Subject__REML.json", "shared", "sd_pressure|Subject", "upper", 4.063101430),
  list("Dialyzer__rate_pressure_QB_pressure_Subject__REML.json", "shared", "sigma", "lower", 8.605097691),
  list("Dialyzer__rate_pressure_QB_pressure_Subject__REML.json", "shared", "sigma", "upper", 11.01852050),
  list("Pixel__pixel_day_I_day_2_day_Dog_1_Dog_Side__REML.json", "shared", "cor_day.(Intercept)|Dog", "lower", -0.9224605921),
  list("Pixel__pixel_day_I_day_2_day_Dog_1_Dog_Side__REML.json", "shared", "cor_day.(Intercept)|Dog", "upper", 0.1651266391),
  list("Gun__rounds_Method_1_Physique_Team__REML.json", "holdout", "sd_(Intercept)|Team:Physique", "lower", 0.2111603384),
  list("Gun__rounds_Method_1_Physique_Team__REML.json", "holdout", "sd_(Intercept)|Physique", "upper", 1.848622527),
  list("Gun__rounds_Method_1_Physique_Team__REML.json", "holdout", "(Intercept)", "lower", 22.44662940),
  list("Gun__rounds_Method_1_Physique_Team__REML.json", "holdout", "(Intercept)", "upper", 24.73114837),
  list("Gun__rounds_Method_1_Physique_Team__REML.json", "holdout", "MethodM2", "upper", -7.557770921),
  list("carrots__Preference_sens2_Homesize_1_sens2_Consumer_1_Product__REML.json", "holdout",
       "cor_sens2.(Intercept)|Consumer", "lower", -0.2391116027),
  list("carrots__Preference_sens2_Homesize_1_sens2_Consumer_1_Product__REML.json", "holdout",
       "cor_sens2.(Intercept)|Consumer", "upper", 0.6056621184),
  list("Wafer__current_voltage_I_voltage_2_voltage_uncorr_Wafer_1_Wafer_Site__REML.json", "holdout",
       "sd_(Intercept)|Wafer", "upper", 0.09488570992),
  # prior weights: lme4's fixed-effect profiles warn "non-monotonic profile" and end within 0.1 SE of the estimate
  list("sleepstudy_weighted__Reaction_Days_Days_Subject__REML__weights_w.json", "shared", "(Intercept)", "lower", 236.9272717),
  list("sleepstudy_weighted__Reaction_Days_Days_Subject__REML__weights_w.json", "shared", "(Intercept)", "upper", 264.2478898),
  list("sleepstudy_weighted__Reaction_Days_Days_Subject__REML__weights_w.json", "shared", "Days", "lower", 7.325195169),
  list("sleepstudy_weighted__Reaction_Days_Days_Subject__REML__weights_w.json", "shared", "Days", "upper", 13.92220422),
  list("sleepstudy_weighted__Reaction_Days_1_Subject__ML__weights_w_offset_off.json", "shared", "(Intercept)", "lower", 231.1747205),
  list("sleepstudy_weighted__Reaction_Days_1_Subject__ML__weights_w_offset_off.json", "shared", "(Intercept)", "upper", 269.9408156),
  list("sleepstudy_weighted__Reaction_Days_1_Subject__ML__weights_w_offset_off.json", "shared", "Days", "lower", 8.548657323),
  list("sleepstudy_weighted__Reaction_Days_1_Subject__ML__weights_w_offset_off.json", "shared", "Days", "upper", 11.69498532),
  list("Penicillin_weighted__diameter_1_1_plate_1_sample__REML__weights_w.json", "shared", "(Intercept)", "lower", 21.27205458),
  list("Penicillin_weighted__diameter_1_1_plate_1_sample__REML__weights_w.json", "shared", "(Intercept)", "upper", 24.67362787)
)

# points along a profile, for claims made about its shape: issue 12 read Dialyzer's
# sd_pressure profile as about 0.57 at 2, 0.8 at 4, 1.17 at 6, 1.88 at 8, 2.36 at 10,
# crossing 1.96 near 8.3
profile_points <- list(
  list("Dialyzer__rate_pressure_QB_pressure_Subject__REML.json", "shared", "sd_pressure|Subject",
       c(1, 2, 3, 4, 5, 6, 8, 8.3, 10))
)

reference_dir <- function(set) {
  if (set == "shared") file.path("tests", "data", "reference") else file.path("tests", "data", "holdout", "reference")
}

# the reference fit's data: the CSV with R's factor levels (as tests/reference.py reads it)
case_data <- function(dataset, set) {
  name <- sub("\\.csv$", "", dataset)
  dirs <- if (set == "holdout") file.path("tests", "data", "holdout", "data") else
    c(file.path("interlace", "datasets"), file.path("tests", "data", "datasets"))
  dir <- dirs[file.exists(file.path(dirs, paste0(name, ".csv")))][1]
  d <- read.csv(file.path(dir, paste0(name, ".csv")), stringsAsFactors = FALSE)
  schema <- fromJSON(file.path(dir, "schema.json"), simplifyVector = FALSE)[[name]]
  for (column in names(schema)) {
    if (schema[[column]]$class == "factor") {
      d[[column]] <- factor(as.character(d[[column]]), levels = unlist(schema[[column]]$levels))
    }
  }
  d
}

# the lowest of three optimisers from each start; fn must return a finite number
minimise <- function(fn, starts, lower, upper) {
  best <- Inf
  for (s in starts) {
    s <- pmin(pmax(s, lower + 1e-8 * (is.finite(lower))), ifelse(is.finite(upper), upper - 1e-8, Inf))
    runs <- list(
      tryCatch(bobyqa(s, fn, lower = lower, upper = upper,
                      control = list(iprint = 0, rhoend = 1e-10, maxfun = 1e5))$fval, error = function(e) Inf),
      tryCatch(optim(s, fn, method = "L-BFGS-B", lower = lower, upper = upper,
                     control = list(factr = 1, pgtol = 0, maxit = 5000))$value, error = function(e) Inf),
      tryCatch(Nelder_Mead(fn, s, lower = lower, upper = upper,
                           control = list(FtolAbs = 1e-12, XtolRel = 1e-10, maxfun = 1e5))$fval,
               error = function(e) Inf)
    )
    best <- min(best, unlist(runs))
  }
  best
}

random_starts <- function(centre, is_cor, lower, upper, count) {
  starts <- list(centre)
  for (i in seq_len(count)) {
    s <- ifelse(is_cor, runif(length(centre), -0.95, 0.95),
                pmax(centre, 0.05 * max(centre[!is_cor])) * exp(rnorm(length(centre), 0, 0.7)))
    starts[[length(starts) + 1L]] <- s
  }
  starts
}

# the reference as tests/reference.py's load() reads it: the converged/ variant first
reference_path <- function(json, set) {
  converged <- file.path(reference_dir(set), "converged", json)
  if (file.exists(converged)) converged else file.path(reference_dir(set), json)
}

evaluate_case <- function(json, set, items) {
  ref <- fromJSON(reference_path(json, set), simplifyVector = FALSE)
  d <- case_data(ref$dataset, set)
  m <- if (is.null(ref$weights) && is.null(ref$offset)) lmer(as.formula(ref$formula), d, REML = ref$REML) else {
    d$.w <- if (is.null(ref$weights)) rep(1, nrow(d)) else d[[ref$weights]]
    d$.o <- if (is.null(ref$offset)) rep(0, nrow(d)) else d[[ref$offset]]
    lmer(as.formula(ref$formula), d, REML = ref$REML, weights = .w, offset = .o)
  }
  dd <- lme4:::devfun2(m, useSc = TRUE, signames = FALSE)
  opt <- attr(dd, "optimum")
  n_var <- length(opt) - length(fixef(m))
  var_names <- names(opt)[seq_len(n_var)]
  is_cor <- grepl("^cor_", var_names)
  # sigma = 0 gives devfun2 a non-finite theta, which its C++ objects keep: every later
  # evaluation is NaN (hence also a fresh devfun2 after any non-finite value)
  lower <- ifelse(is_cor, -COR_LIMIT, ifelse(var_names == "sigma", 1e-3 * sigma(m), 0))
  upper <- ifelse(is_cor, COR_LIMIT, Inf)
  refit_base <- attr(dd, "basedev")
  own_base <- minimise(function(p) { v <- tryCatch(dd(p), error = function(e) NA); if (is.finite(v)) v else 1e300 },
                       list(pmin(pmax(opt[seq_len(n_var)], lower), upper)), lower, upper)
  base <- min(refit_base, own_base)
  m_ml <- refitML(m)

  zeta_variance <- function(parameter, value) {
    w <- match(parameter, var_names)
    fn <- function(x) {
      p <- numeric(n_var); p[w] <- value; p[-w] <- x
      v <- tryCatch(dd(p), error = function(e) NA)
      if (is.finite(v)) return(v)
      dd <<- lme4:::devfun2(m, useSc = TRUE, signames = FALSE)
      1e300
    }
    centre <- opt[seq_len(n_var)][-w]
    starts <- random_starts(centre, is_cor[-w], lower[-w], upper[-w], START_COUNT)
    for (r in c(-0.99, 0, 0.99)) if (any(is_cor[-w])) { s <- centre; s[is_cor[-w]] <- r; starts[[length(starts) + 1L]] <- s }
    starts <- lapply(starts, function(s) pmin(pmax(s, lower[-w]), upper[-w]))
    sqrt(max(minimise(fn, starts, lower[-w], upper[-w]) - base, 0))
  }

  zeta_fixed <- function(parameter, value) {
    X <- getME(m_ml, "X")
    j <- match(parameter, colnames(X))
    frame <- model.frame(m_ml)
    frame$.y <- getME(m_ml, "y")
    frame$.off <- X[, j] * value + m_ml@resp$offset  # the model's own offset too
    frame$.w <- weights(m_ml)  # and its prior weights (1 without)
    kept <- X[, -j, drop = FALSE]
    if (ncol(kept)) {
      colnames(kept) <- paste0(".x", seq_len(ncol(kept)))
      frame <- cbind(frame, kept)
    }
    bars <- paste0("(", vapply(findbars(formula(m_ml)), function(b) paste(deparse(b), collapse = ""), ""), ")")
    f <- as.formula(paste(".y ~ 0 +", paste(c(colnames(kept), "offset(.off)"), collapse = " + "), "+",
                          paste(bars, collapse = " + ")))
    devfun <- lmer(f, frame, REML = FALSE, devFunOnly = TRUE, weights = .w)
    th_lower <- getME(m_ml, "lower")
    th_upper <- rep(Inf, length(th_lower))
    theta <- getME(m_ml, "theta")
    starts <- list(theta)
    for (i in seq_len(START_COUNT)) {
      starts[[length(starts) + 1L]] <- ifelse(is.finite(th_lower), runif(length(theta), 0, 2), runif(length(theta), -1, 1))
    }
    fn <- function(t) { v <- tryCatch(devfun(t), error = function(e) NA); if (is.finite(v)) v else 1e300 }
    sqrt(max(minimise(fn, starts, th_lower, th_upper) - base, 0))
  }

  zeta <- function(parameter, value) {
    if (parameter %in% var_names) zeta_variance(parameter, value) else zeta_fixed(parameter, value)
  }

  if (!is.null(items$points)) {  # a profile's points
    return(lapply(items$points, function(v) zeta(items$parameter, v)))
  }
  cp <- ref$confint_profile
  lapply(items, function(item) {
    parameter <- item[[3]]; side <- item[[4]]; ours <- item[[5]]
    k <- match(parameter, unlist(cp$names))
    theirs <- cp[[side]][[k]]
    list(
      json = json, set = set, reference = reference_path(json, set), parameter = parameter, side = side,
      interlace = ours, lme4 = theirs,
      zeta_interlace = zeta(parameter, ours),
      zeta_lme4 = zeta(parameter, theirs),
      cut = qnorm(0.975),
      base_deviance = base, lme4_refit_deviance = refit_base,
      lme4_warnings = unique(unlist(cp$warnings))
    )
  })
}

cases <- unique(vapply(claims, function(c) paste(c[[1]], c[[2]], sep = "\t"), ""))
evidence <- list()
for (key in cases) {
  parts <- strsplit(key, "\t")[[1]]
  items <- Filter(function(c) c[[1]] == parts[1] && c[[2]] == parts[2], claims)
  cat("evaluating", parts[1], "\n")
  evidence <- c(evidence, evaluate_case(parts[1], parts[2], items))
}
for (e in evidence) {
  cat(sprintf("%-40s %-32s %-5s interlace %-14.10g zeta %.6f | lme4 %-14.10g zeta %.6f\n", substr(e$json, 1, 40),
              e$parameter, e$side, e$interlace, e$zeta_interlace, e$lme4, e$zeta_lme4))
}
points <- lapply(profile_points, function(p) {
  cat("profile of", p[[3]], "in", p[[1]], "\n")
  zetas <- evaluate_case(p[[1]], p[[2]], list(parameter = p[[3]], points = p[[4]]))
  cat(sprintf("  %g: zeta %.6f\n", p[[4]], unlist(zetas)), sep = "")
  list(json = p[[1]], set = p[[2]], parameter = p[[3]], values = p[[4]], zeta = unlist(zetas))
})
out <- list(
  description = paste(
    "lme4's profiled deviance (devfun2; fixed effects: the model with beta_j held by an offset) at",
    "interlace's and lme4's profile-interval ends where they disagree, minimised over the other",
    "parameters from several starts; zeta = sqrt(deviance - deviance at the optimum). Made by",
    "tests/data/make_profile_evidence.R"),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  minqa = as.character(packageVersion("minqa"))),
  evidence = evidence,
  profiles = points
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(15), pretty = TRUE), out_file)
cat("wrote", out_file, "\n")
