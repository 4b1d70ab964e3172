"""Inference on a fitted model: one concept per module (Satterthwaite's df, ...)."""
