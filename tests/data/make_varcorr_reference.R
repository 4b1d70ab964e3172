# lme4's VarCorr tables (as.data.frame(VarCorr(m))), REMLcrit, df.residual and sigma for
# tests/test_varcorr_broom.py. Run from the repository root:
#   Rscript tests/data/make_varcorr_reference.R
# Writes tests/data/varcorr/<name>.json. lme4 1.1-31 (Debian's r-cran-lme4).
suppressMessages({library(lme4); library(jsonlite)})
read <- function(name) read.csv(file.path("interlace", "datasets", paste0(name, ".csv")))
sleep <- read("sleepstudy"); sleep$Subject <- factor(sleep$Subject)
pen <- read("Penicillin"); pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
cbpp <- read("cbpp"); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
fits <- list(
  sleepstudy_slopes = lmer(Reaction ~ Days + (Days | Subject), sleep),
  sleepstudy_uncorrelated = lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep),
  sleepstudy_ml = lmer(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE),
  penicillin = lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen),
  # glmer run to its optimum (tests/data/make_glmm_converged_reference.R says why the default fit
  # stops short): theta 0.642261430, as that script's converged cbpp reference
  cbpp = glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial,
               control = glmerControl(tolPwrss = 1e-13, optimizer = "bobyqa",
                                      optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
)
formulas <- list(
  sleepstudy_slopes = "Reaction ~ Days + (Days | Subject)",
  sleepstudy_uncorrelated = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
  sleepstudy_ml = "Reaction ~ Days + (Days | Subject)",
  penicillin = "diameter ~ 1 + (1 | plate) + (1 | sample)",
  cbpp = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
)
dir.create(file.path("tests", "data", "varcorr"), showWarnings = FALSE)
for (name in names(fits)) {
  m <- fits[[name]]
  vc <- as.data.frame(VarCorr(m))
  out <- list(
    formula = formulas[[name]],
    dataset = c(sleepstudy_slopes = "sleepstudy", sleepstudy_uncorrelated = "sleepstudy",
                sleepstudy_ml = "sleepstudy", penicillin = "Penicillin", cbpp = "cbpp")[[name]],
    REML = isREML(m), family = if (isGLMM(m)) "binomial" else NULL,
    varcorr = list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = I(vc$vcov), sdcor = I(vc$sdcor)),
    printed = capture.output(print(VarCorr(m))),
    REMLcrit = if (isREML(m)) REMLcrit(m) else NULL,
    deviance = if (isREML(m)) NULL else deviance(m), sigma = sigma(m), df_residual = df.residual(m), nobs = nobs(m),
    logLik = as.numeric(logLik(m)), AIC = AIC(m), BIC = BIC(m)
  )
  writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", na = "null", pretty = TRUE),
             file.path("tests", "data", "varcorr", paste0(name, ".json")))
}
