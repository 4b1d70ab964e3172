# lme4's fit of a random term confounded with the fixed effects (tests/test_robustness.py::
# test_a_term_confounded_with_the_fixed_effects_has_a_finite_fit). Run from the project root:
#   Rscript tests/data/confounded_term_reference.R
suppressMessages(library(lme4))
d <- read.csv("interlace/datasets/InstEval.csv")
for (v in c("s", "d", "dept", "service")) d[[v]] <- factor(d[[v]])
m <- lmer(y ~ service * dept + (1 | s) + (1 | d) + (1 | dept:service), d)
print(getME(m, "theta"), digits = 7)
print(REMLcrit(m), digits = 12)
