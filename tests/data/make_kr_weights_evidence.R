# Evidence that pbkrtest (0.5.2 here) ignores lmer's prior weights in Kenward-Roger.
#
# Usage: Rscript tests/data/make_kr_weights_evidence.R
# The same model fitted with every weight 2 is the unweighted model (sigma^2 doubles, the
# fixed effects, vcov and lmerTest's Satterthwaite df are unchanged), but pbkrtest's KR df
# change, because pbkrtest's .get_SigmaG builds the residual part of Sigma as sigma^2 I
# (sparseMatrix(1:n, 1:n, x = 1)) whatever the weights. Output here (R 4.2.2, lme4 1.1-31):
#   KR df, no weights:    17 17
#   KR df, all weights 2: 26.5943 22.9967
# tests/test_kenward_roger.py therefore compares interlace's KR on weighted fits with the
# unweighted fit's (constant weights) and with Satterthwaite's df, not with pbkrtest's.
suppressMessages({library(lme4); library(pbkrtest); library(lmerTest)})
d <- lme4::sleepstudy
m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), d)
d$w2 <- 2
m2 <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, weights = w2)
L <- diag(2)
kr <- function(m) sapply(1:2, function(j) pbkrtest::get_Lb_ddf(m, L[j, , drop = FALSE]))
cat("fixef equal:", all.equal(fixef(m1), fixef(m2)), " vcov equal:", all.equal(as.matrix(vcov(m1)), as.matrix(vcov(m2))), "\n")
cat("KR df, no weights:   ", kr(m1), "\n")
cat("KR df, all weights 2:", kr(m2), "\n")
cat("Satterthwaite df, no weights / weights 2:", summary(as(m1, "lmerModLmerTest"))$coefficients[, "df"], "/",
    summary(lmerTest::lmer(Reaction ~ Days + (Days | Subject), d, weights = w2))$coefficients[, "df"], "\n")

# The weighted model is the unweighted model of the rows scaled by sqrt(w): y sqrt(w) on
# X sqrt(w) and Z sqrt(w), no intercept (the columns carry sqrt(w)). pbkrtest is right on
# that one, so its KR df and adjusted SEs there are the weighted model's; written to
# tests/data/kr_weighted.json for tests/test_kenward_roger.py.
scaled_kr <- function(file, formula, columns, fixed, random) {
  d <- read.csv(file.path("tests", "data", "datasets", file))
  d$sw <- sqrt(d$w)
  d$yw <- d[[columns$y]] * d$sw
  if (!is.null(columns$x)) d$swx <- d[[columns$x]] * d$sw
  for (g in columns$groups) d[[g]] <- factor(d[[g]])
  m <- lme4::lmer(as.formula(paste("yw ~ 0 +", fixed, "+", random)), d, REML = TRUE,
                  control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
  L <- diag(length(fixef(m)))
  df <- sapply(seq_len(nrow(L)), function(j) pbkrtest::get_Lb_ddf(m, L[j, , drop = FALSE]))
  se <- sqrt(diag(as.matrix(pbkrtest::vcovAdj(m))))
  list(formula = formula, scaled_formula = paste("yw ~ 0 +", fixed, "+", random), df = df, se = se,
       theta = unname(getME(m, "theta")), REMLcrit = REMLcrit(m))
}
out <- list(
  "sleepstudy_weighted__Reaction_Days_Days_Subject__REML__weights_w.json" = scaled_kr(
    "sleepstudy_weighted.csv", "Reaction ~ Days + (Days | Subject)",
    list(y = "Reaction", x = "Days", groups = "Subject"), "sw + swx", "(0 + sw + swx | Subject)"),
  "Penicillin_weighted__diameter_1_1_plate_1_sample__REML__weights_w.json" = scaled_kr(
    "Penicillin_weighted.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)",
    list(y = "diameter", groups = c("plate", "sample")), "sw", "(0 + sw | plate) + (0 + sw | sample)"))
jsonlite::write_json(out, file.path("tests", "data", "kr_weighted.json"), digits = 17, auto_unbox = TRUE,
                     pretty = TRUE)
print(out)
