"""lmerTest's ``ranova``: a likelihood-ratio test for each random-effects term.

Each term of the formula is taken away in turn (or, with ``reduce_terms``, a term
with slopes loses one of them at a time, as lmerTest reduces it: ``(1 + x | g)``
becomes ``(1 | g)``, ``(0 + x + z | g)`` becomes ``(z - 1 | g)`` and ``(x - 1 | g)``,
and ``(0 + x | g)`` becomes ``(1 | g)``), the model is refitted with the same method, and its log-likelihood (the REML one for a REML fit,
as lmerTest compares them) is compared with the model's:
LRT = 2 (logLik - logLik_reduced) on Df = npar - npar_reduced.

The terms and their names follow lme4's ``findbars`` and R's ``deparse``: ``(x || g)``
is the two terms ``(1 | g)`` and ``(0 + x | g)``, ``(1 | a/b)`` the terms
``(1 | b:a)`` and ``(1 | a)``; a reduced term's row is named ``x in (x | g)``. A model
left with no random term is a linear model, whose (REML) log-likelihood is R's
``logLik.lm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InterlaceError
from ..formula.random import quote_name, split_formula
from ..formula.rexpr import Binary, Num, Paren, deparse, parse

RANOVA_COLUMNS = ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]


@dataclass(frozen=True)
class RandomBar:
    """One random-effects term as lme4's ``findbars`` lists it.

    Attributes
    ----------
    lhs : str
        The left-hand side as R deparses it (``"Days"``, ``"0 + Days"``).
    group : str
        The grouping factor as R deparses it (``"b:a"``, ``"c:(b:a)"``).
    group_fit : str
        The grouping factor as interlace's formulas write it (``"c:b:a"``).
    """

    lhs: str
    group: str
    group_fit: str

    @property
    def label(self) -> str:
        """The term as lmerTest names it, without parentheses (``"Days | Subject"``)."""
        return f"{self.lhs} | {self.group}"

    @property
    def term(self) -> str:
        """The term in an interlace formula (``"(Days | Subject)"``)."""
        return f"({self.lhs} | {self.group_fit})"


def _nested_groups(group: str) -> list[str]:
    """R's spelling of the grouping factors of ``a/b/c``: ``["a", "b:a", "c:(b:a)"]``."""
    parts = [deparse(parse(part)) for part in group.split("/")]
    out = [parts[0]]
    for part in parts[1:]:
        inner = out[-1]
        out.append(f"{part}:({inner})" if ":" in inner else f"{part}:{inner}")
    return out


def random_bars(formula: str) -> list[RandomBar]:
    """The random terms of ``formula`` in lme4's ``findbars`` order, R's spelling.

    Examples
    --------
    >>> [b.label for b in random_bars("y ~ x + (x || g) + (1 | a/b) + (1 + x | h)")]
    ['1 | g', '0 + x | g', '1 | b:a', '1 | a', '1 + x | h']
    """
    specs = split_formula(formula)[1]
    sources = list(dict.fromkeys(spec.source for spec in specs))
    bars: list[RandomBar] = []
    for source in sources:
        mine = [spec for spec in specs if spec.source == source]
        inner = source[1:-1]
        double = "||" in inner
        lhs, group = inner.split("||" if double else "|", 1)
        groups = _nested_groups(group.strip())
        depths = list(dict.fromkeys(spec.factors for spec in mine))
        exprs = list(dict.fromkeys(spec.expr for spec in mine)) if double else [lhs.strip()]
        for expr in exprs:
            for depth in reversed(range(len(depths))):
                fit_group = ":".join(quote_name(f) for f in depths[depth])
                bars.append(RandomBar(deparse(parse(expr)), groups[depth], fit_group))
    return bars


def _product(left: list[tuple[str, ...]], right: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """R's ``a:b`` of two lists of terms."""
    return list(dict.fromkeys(tuple(dict.fromkeys(a + b)) for a in left for b in right))


def _expand(node, text: str) -> tuple[list[tuple[str, ...]], bool]:
    """R's terms of a formula right-hand side: (terms as variable tuples, intercept).
    Handles ``+``, ``-``, ``*``, ``:``, parentheses, 0 and 1."""
    if isinstance(node, Paren):
        return _expand(node.inner, text)
    if isinstance(node, Num) and node.value in (0.0, 1.0):
        return [], node.value == 1.0
    if not isinstance(node, Binary) or node.op not in ("+", "-", "*", ":"):
        if isinstance(node, Binary) and node.op in ("/", "^", "%in%"):
            raise InterlaceError(f"reduce_terms: cannot reduce the random term with left-hand side {text!r} "
                                 f"(its operator {node.op!r} is not supported); use reduce_terms=False")
        return [(deparse(node),)], True
    left, left_intercept = _expand(node.left, text)
    right, right_intercept = _expand(node.right, text)
    if node.op == "+":
        zero = isinstance(node.right, Num) and node.right.value == 0.0
        return list(dict.fromkeys(left + right)), left_intercept and right_intercept and not zero
    if node.op == "-":
        removes_intercept = isinstance(node.right, Num) and node.right.value == 1.0
        return [t for t in left if t not in right], left_intercept and not removes_intercept
    if node.op == "*":
        return list(dict.fromkeys(left + right + _product(left, right))), True
    return _product(left, right), True


def lhs_terms(lhs: str) -> tuple[list[str], bool]:
    """The term labels of a random term's left-hand side in R's order (by degree, then
    first appearance), and whether it has an intercept.

    Examples
    --------
    >>> lhs_terms("0 + x * z")
    (['x', 'z', 'x:z'], False)
    """
    node = parse(lhs)
    terms, intercept = _expand(node, lhs)
    if isinstance(node, Num) and node.value == 0.0:
        intercept = False
    order = {v: i for i, v in enumerate(dict.fromkeys(v for t in terms for v in t))}
    ordered = sorted(terms, key=len)  # stable: first appearance within a degree
    return [":".join(sorted(t, key=order.__getitem__)) for t in ordered], intercept


def _drop_scope(labels: list[str]) -> list[str]:
    """R's ``drop.scope``: the labels whose variables are not all in another label's."""
    sets = {label: set(label.split(":")) for label in labels}
    return [a for a in labels if not any(b != a and sets[a] <= sets[b] for b in labels)]


def reduced_models(bars: list[RandomBar], reduce_terms: bool = True) -> dict[str, list[RandomBar]]:
    """The random terms of each reduced model, by lmerTest's row name.

    Examples
    --------
    >>> bars = random_bars("y ~ x + (x | g) + (1 | h)")
    >>> {name: [b.label for b in kept] for name, kept in reduced_models(bars).items()}
    {'x in (x | g)': ['1 | h', '1 | g'], '(1 | h)': ['x | g']}
    """
    out: dict[str, list[RandomBar]] = {}
    for i, bar in enumerate(bars):
        others = bars[:i] + bars[i + 1:]
        labels, intercept = lhs_terms(bar.lhs)
        if not reduce_terms or not labels:
            out[f"({bar.label})"] = others
            continue
        for dropped in _drop_scope(labels):
            rest = [label for label in labels if label != dropped]
            lhs = " + ".join(rest) + ("" if intercept else " - 1") if rest else "1"
            kept: dict[str, RandomBar] = {}
            for b in others + [RandomBar(lhs, bar.group, bar.group_fit)]:
                kept.setdefault(b.label, b)  # R's terms keep the first of equal terms
            out[f"{dropped} in ({bar.label})"] = list(kept.values())
    return out


def linear_model_loglik(design, reml: bool) -> tuple[float, int]:
    """R's ``logLik.lm`` (with ``REML``) of the fixed part alone, and its df (p + 1).

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> value, df = linear_model_loglik(m._conditioning.design, reml=True)
    >>> round(value, 3), df
    (-946.832, 3)
    """
    X, y = design.X, design.y
    weights = design.fixed.weights
    root = np.ones_like(y) if weights is None else np.sqrt(weights)
    n, p = X.shape
    Q, R = np.linalg.qr(X * root[:, None])
    residual = y * root - Q @ (Q.T @ (y * root))
    N = n - p if reml else n
    value = 0.5 * (2.0 * np.sum(np.log(root)) - N * (np.log(2 * np.pi) + 1 - np.log(N) + np.log(residual @ residual)))
    if reml:
        value -= float(np.sum(np.log(np.abs(np.diag(R)))))
    return float(value), p + 1


def _refit(result, fixed: str, bars: list[RandomBar], name: str) -> tuple[float, int]:
    """(logLik, npar) of the model with ``bars`` as its random terms."""
    if not bars:
        return linear_model_loglik(result._conditioning.design, result.method == "REML")
    refit = result.update(" + ".join([fixed] + [b.term for b in bars]))
    if refit.nobs != result.nobs:
        raise InterlaceError(f"ranova: the model without {name} uses {refit.nobs} rows, the model {result.nobs}: "
                             "the number of rows in use has changed (remove the rows with missing values first)")
    return float(refit.llf), int(refit.nparams)


def ranova_table(result, reduce_terms: bool = True) -> pd.DataFrame:
    """lmerTest's ``ranova(m, reduce.terms = ...)``: the columns ``npar``, ``logLik``,
    ``AIC``, ``LRT``, ``Df``, ``Pr(>Chisq)``, a first row ``<none>`` for the model and
    one row per reduced model (:func:`reduced_models`). The title is in
    ``table.attrs["title"]`` and the model's formula, random terms written out, in
    ``table.attrs["formula"]``.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.load_dataset("sleepstudy"))
    >>> table = ranova_table(m)
    >>> table.index.tolist(), table["Df"].tolist()
    (['<none>', 'Days in (Days | Subject)'], [nan, 2.0])
    """
    if not isinstance(reduce_terms, (bool, np.bool_)):
        raise InterlaceError(f"reduce_terms: expected True or False, found {reduce_terms!r}")
    fixed = split_formula(result.model.formula)[0]
    bars = random_bars(result.model.formula)
    rows = {"<none>": (float(result.llf), int(result.nparams))}
    for name, kept in reduced_models(bars, bool(reduce_terms)).items():
        rows[name] = _refit(result, fixed, kept, name)
    loglik = np.array([v[0] for v in rows.values()])
    npar = np.array([v[1] for v in rows.values()])
    lrt = np.concatenate([[np.nan], 2.0 * (loglik[0] - loglik[1:])])
    df = np.concatenate([[np.nan], npar[0] - npar[1:]]).astype(float)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(lrt, np.where(df > 0, df, 1.0)), np.nan)
    table = pd.DataFrame({"npar": npar, "logLik": loglik, "AIC": -2.0 * loglik + 2.0 * npar, "LRT": lrt,
                          "Df": df, "Pr(>Chisq)": p}, index=list(rows))
    table.attrs["title"] = "ANOVA-like table for random-effects: Single term deletions"
    table.attrs["formula"] = " + ".join([fixed] + [b.term for b in bars])
    return table
