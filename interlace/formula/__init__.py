"""Formula handling: lme4's random-term syntax (:mod:`.random`) and the fixed part (:mod:`.fixed`)."""
