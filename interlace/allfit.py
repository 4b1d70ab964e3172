"""lme4's ``allFit``: the model refitted with every optimiser, in one table.

A fit that reaches the same optimum from several optimisers is trustworthy; one whose
estimates move from optimiser to optimiser is not (lme4's advice for convergence
warnings). Each refit starts from the model's own arguments with only ``optimizer=``
changed; an optimiser that does not apply to the model (``"newton"`` needs scalar terms
on the blocked path) or that fails is a row with its error.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from .errors import InterlaceError
from .fitting.optimize import OPTIMIZERS
from .progress import ProgressBar


def all_fit(result, optimizers=None, show_progress=None) -> pd.DataFrame:
    """Refit ``result`` with each optimiser (lme4's ``allFit``).

    Parameters
    ----------
    result : CrossedLMEResult or CrossedGLMMResult
    optimizers : sequence of str, optional
        By default every optimiser ``interlace.fit`` takes (``"auto"`` included).
    show_progress : bool or None
        A bar over the refits (None: in interactive sessions only).

    Returns
    -------
    pandas.DataFrame
        One row per optimiser: ``converged``, ``llf`` (the criterion, as ``llf``),
        ``theta_*`` (theta, named as ``theta_names``), the fixed effects, ``seconds``,
        ``warnings`` (their messages) and ``error`` (why a refit failed, else empty).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> table = all_fit(m, ["auto", "cobyqa", "nelder-mead"])
    >>> bool(table["llf"].max() - table["llf"].min() < 1e-4), table.index.tolist()
    (True, ['auto', 'cobyqa', 'nelder-mead'])
    """
    names = list(OPTIMIZERS) if optimizers is None else [optimizers] if isinstance(optimizers, str) else list(optimizers)
    unknown = [n for n in names if not isinstance(n, str) or n.lower() not in OPTIMIZERS]
    if unknown or not names:
        raise InterlaceError(f"optimizers: expected some of {', '.join(OPTIMIZERS)}, found {optimizers!r}")
    rows = {}
    with ProgressBar(len(names), "all_fit", show_progress) as progress:
        for name in names:
            rows[name] = _refit(result, name)
            progress.advance()
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "optimizer"
    return table


def _refit(result, name: str) -> dict:
    start = time.perf_counter()
    row: dict = {"converged": False, "llf": np.nan}
    row.update({f"theta_{t}": np.nan for t in result.theta_names})
    row.update({f: np.nan for f in result.fe_params.index})
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = result.update(optimizer=name)
    except (InterlaceError, ValueError, np.linalg.LinAlgError) as exc:
        row.update(seconds=time.perf_counter() - start, warnings="", error=str(exc))
        return row
    row.update(converged=bool(fit.converged), llf=float(fit.llf))
    row.update({f"theta_{t}": float(v) for t, v in zip(result.theta_names, fit.theta, strict=True)})
    row.update({f: float(v) for f, v in fit.fe_params.items()})
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    row.update(seconds=time.perf_counter() - start, warnings="; ".join(messages), error="")
    return row
