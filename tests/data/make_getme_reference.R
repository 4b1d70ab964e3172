# lme4's getME pieces for tests/test_getme.py. Run from the repository root:
#   Rscript tests/data/make_getme_reference.R
# Writes tests/data/getme/<name>.json: Z and Lambda as (row, column, value) triplets (0-based),
# theta, b, u, beta, Gp, cnms, and L's product L L' (lme4's L factors a fill-reducing permutation
# of Lambda'Z'WZ Lambda + I; L L' with the permutation undone is that matrix). lme4 1.1-31.
suppressMessages({library(lme4); library(jsonlite); library(Matrix)})
read <- function(name) read.csv(file.path("interlace", "datasets", paste0(name, ".csv")))
sleep <- read("sleepstudy"); sleep$Subject <- factor(sleep$Subject)
pen <- read("Penicillin"); pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
weighted <- read.csv(file.path("tests", "data", "datasets", "sleepstudy_weighted.csv")); weighted$Subject <- factor(weighted$Subject)
cases <- list(
  sleepstudy = list(fit = lmer(Reaction ~ Days + (Days | Subject), sleep), dataset = "sleepstudy",
                    formula = "Reaction ~ Days + (Days | Subject)", weights = NULL),
  penicillin = list(fit = lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen), dataset = "Penicillin",
                    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", weights = NULL),
  weighted = list(fit = lmer(Reaction ~ Days + (Days | Subject), weighted, weights = w), dataset = "sleepstudy_weighted",
                  formula = "Reaction ~ Days + (Days | Subject)", weights = "w")
)
triplets <- function(M) { M <- as(M, "TsparseMatrix"); list(i = M@i, j = M@j, x = M@x, dim = dim(M)) }
dir.create(file.path("tests", "data", "getme"), showWarnings = FALSE)
for (name in names(cases)) {
  case <- cases[[name]]; m <- case$fit
  L <- getME(m, "L")
  LLt <- crossprod(t(as(L, "sparseMatrix")))              # L L' of the permuted matrix
  perm <- L@perm + 1L
  A <- LLt; A[perm, perm] <- LLt                            # undo the permutation
  out <- list(dataset = case$dataset, formula = case$formula, weights = case$weights,
              Z = triplets(getME(m, "Z")), Lambda = triplets(getME(m, "Lambda")),
              theta = unname(getME(m, "theta")), b = as.vector(getME(m, "b")), u = as.vector(getME(m, "u")),
              beta = unname(getME(m, "beta")), Gp = getME(m, "Gp"), cnms = getME(m, "cnms"),
              LLt = triplets(A))
  writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", pretty = FALSE),
             file.path("tests", "data", "getme", paste0(name, ".json")))
}
