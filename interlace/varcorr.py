"""The variance components as lme4's ``VarCorr`` prints them and as
``as.data.frame(VarCorr(m))`` tabulates them.

Each lme4 random-effects term is one block: ``(Days | Subject)`` gives the standard
deviations of its two effects and their correlation; ``(1 | Subject) + (0 + Days |
Subject)`` two blocks of one effect each, named ``Subject`` and ``Subject.1`` as R's
``make.unique`` names them. A linear model adds the residual's row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .summary import r_name


def _design_of(result):
    """The caller's design of a linear or a generalized fit."""
    conditioning = getattr(result, "_conditioning", None)
    return conditioning.design if conditioning is not None else result._fit.design


def _blocks(term) -> list[tuple[int, int]]:
    """(first, stop) rows of each lme4 term in a design term (a new block where the
    relative covariance factor has a structural zero just left of the diagonal)."""
    index = term.theta_index
    starts = [0] + [r for r in range(1, index.shape[0]) if index[r, r - 1] < 0]
    return list(zip(starts, [*starts[1:], index.shape[0]], strict=True))


def r_format(values, digits: int = 5) -> list[str]:
    """R's ``format(values, digits = digits)`` of numbers: one count of decimals for all,
    the fewest that show each value to ``digits`` significant digits (trailing zeros
    dropped), right-aligned to a common width.

    Examples
    --------
    >>> r_format([24.74065799, 5.92213766, 25.59179572])
    ['24.7407', ' 5.9221', '25.5918']
    >>> r_format([0.8467048, 1.931607, 0.5499167])
    ['0.84670', '1.93161', '0.54992']
    """
    values = [float(v) for v in values]
    decimals = 0
    for v in values:
        if not np.isfinite(v) or v == 0.0:
            continue
        shown = f"{v:.{digits}g}"
        if "e" in shown:
            decimals = max(decimals, digits - 1 - int(np.floor(np.log10(abs(v)))))
            continue
        if "." in shown:
            decimals = max(decimals, len(shown.split(".")[1].rstrip("0")))
    texts = [f"{v:.{decimals}f}" for v in values]
    width = max((len(t) for t in texts), default=0)
    return [t.rjust(width) for t in texts]


@dataclass(frozen=True)
class VarCorr:
    """lme4's ``VarCorr(m)``: print it for lme4's layout, read ``table`` for its numbers.

    Attributes
    ----------
    table : pandas.DataFrame
        ``as.data.frame(VarCorr(m))``: columns ``grp``, ``var1``, ``var2`` (None on a
        variance row), ``vcov`` (variance or covariance), ``sdcor`` (standard deviation
        or correlation); per block its variances, then its covariances; the residual
        last (linear models).
    comp : tuple of str
        The columns printed: ``("Std.Dev.",)`` (lme4's default), ``("Variance",)`` or
        both.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> print(m.varcorr())
     Groups   Name        Std.Dev. Corr
     Subject  (Intercept) 24.7405
              Days         5.9221  0.066
     Residual             25.5918
    """

    table: pd.DataFrame
    comp: tuple[str, ...] = ("Std.Dev.",)

    @classmethod
    def of(cls, result, comp=("Std.Dev.",)) -> VarCorr:
        """The variance components of a fitted model."""
        comp = (comp,) if isinstance(comp, str) else tuple(comp)
        if not comp or any(c not in ("Variance", "Std.Dev.") for c in comp):
            from .errors import InterlaceError

            raise InterlaceError(f"comp: expected 'Variance', 'Std.Dev.' or both, found {comp!r}")
        design = _design_of(result)
        scale = float(getattr(result, "scale", 1.0)) if getattr(result, "family", None) is None else 1.0
        rows, seen = [], {}
        for term in design.lme4_terms:
            T = term.relative_cov_factor(result.theta)
            cov = scale * (T @ T.T)
            for first, stop in _blocks(term):
                count = seen.get(term.name, 0)
                seen[term.name] = count + 1
                group = term.name if count == 0 else f"{term.name}.{count}"
                names = [r_name(n) for n in term.column_names[first:stop]]
                block = cov[first:stop, first:stop]
                sd = np.sqrt(np.diag(block))
                rows += [(group, names[i], None, block[i, i], sd[i]) for i in range(len(names))]
                for i in range(len(names)):
                    for j in range(i + 1, len(names)):
                        with np.errstate(invalid="ignore", divide="ignore"):
                            corr = block[i, j] / (sd[i] * sd[j])
                        rows.append((group, names[i], names[j], block[i, j], corr))
        if getattr(result, "family", None) is None:
            rows.append(("Residual", None, None, scale, np.sqrt(scale)))
        table = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        return cls(table, comp)

    def __str__(self) -> str:
        t = self.table
        variances = t[t["var2"].isna()]
        sd_text = dict(zip(variances.index, r_format(variances["sdcor"]), strict=True))
        var_text = dict(zip(variances.index, r_format(variances["vcov"]), strict=True))
        blocks = list(dict.fromkeys(variances["grp"]))
        n_corr = max((int(np.sum(variances["grp"] == g)) - 1 for g in blocks), default=0)
        header = ["Groups", "Name", *self.comp] + (["Corr"] + [""] * (n_corr - 1) if n_corr else [])
        cells = [header]
        for group in blocks:
            rows = variances[variances["grp"] == group]
            names = list(rows["var1"])
            for i, (position, row) in enumerate(rows.iterrows()):
                line = [group if i == 0 else "", "" if pd.isna(row["var1"]) else row["var1"]]
                line += [var_text[position] if c == "Variance" else sd_text[position] for c in self.comp]
                corr = []
                for j in range(i):
                    match = t[(t["grp"] == group) & (t["var1"] == names[j]) & (t["var2"] == names[i])]
                    corr.append(f"{round(float(match['sdcor'].iloc[0]), 3):.3f}")
                cells.append(line + corr + [""] * (n_corr - len(corr)))
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        lines = [" " + " ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)
