"""Formula handling: lme4's random-term syntax (:mod:`.random`), the fixed part (:mod:`.fixed`),
and R's reading of terms: expressions (:mod:`.rexpr`), stateful transforms (:mod:`.rtransforms`),
a formula in formulaic's spelling and back (:mod:`.rformula`)."""
