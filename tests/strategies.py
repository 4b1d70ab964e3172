"""Hypothesis strategies: small crossed designs drawn from a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st


@st.composite
def crossed_frames(draw, slope: bool = False) -> pd.DataFrame:
    """A frame with y, x and two crossed factors g1, g2; every (g1, g2) cell observed
    one to three times, variance components drawn away from zero."""
    n1 = draw(st.integers(4, 8))
    n2 = draw(st.integers(3, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    reps = rng.integers(1, 4, size=(n1, n2))
    g1 = np.repeat(np.repeat(np.arange(n1), n2), reps.ravel())
    g2 = np.repeat(np.tile(np.arange(n2), n1), reps.ravel())
    n = len(g1)
    x = rng.standard_normal(n)
    sd1, sd2 = draw(st.floats(0.5, 2.0)), draw(st.floats(0.5, 2.0))
    y = 1.0 + 0.5 * x + rng.standard_normal(n1)[g1] * sd1 + rng.standard_normal(n2)[g2] * sd2
    if slope:
        y = y + rng.standard_normal(n1)[g1] * 0.5 * x
    y = y + rng.standard_normal(n)
    return pd.DataFrame({
        "y": y,
        "x": x,
        "g1": pd.Categorical([f"a{i}" for i in g1]),
        "g2": pd.Categorical([f"b{i}" for i in g2]),
    })
