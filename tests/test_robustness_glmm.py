"""Every awkward input to a generalized fit gives a right answer or a clear error.

The contract of tests/test_robustness.py, for ``interlace.fit(..., family=...)`` (lme4's
glmer). For every input below, :func:`check` asserts one of two outcomes:

- a fit whose ``fe_params``, ``theta`` and ``llf`` are finite and whose fitted means lie
  in the family's range (binomial [0, 1], Poisson >= 0), or that says why not with a
  :class:`~interlace.ConvergenceWarning`, :class:`~interlace.SingularFitWarning` or
  :class:`~interlace.DegenerateFitWarning`; whose log-likelihood is at most 0 (the
  Laplace deviance is a sum of non-negative terms: -2 log of probabilities, ||u||^2 and
  log |L|^2); whose summary renders;
- an exception from :mod:`interlace.errors` (or a ValueError / TypeError) whose message
  names the column or argument at fault;

never another exception type; no warning but interlace's own (and R's "non-integer
#successes"): a stray RuntimeWarning is an exception under ``-W error``; and the caller's
frame unchanged.

The inputs: every family and link; every kind of response glm reads (0/1 numbers,
logicals, factors, proportions with and without weights, ``cbind(s, f)`` and
``cbind(s, n - s)``) and its awkward values (NaN, inf, negative and non-integer counts,
zero trials, all zero, all one, separated, huge counts); weights and offsets of every
wrong kind; one level, a level per row, levels with all-zero responses; every ``nAGQ``;
pandas, polars, pyarrow frames and dicts; and hypothesis-made frames that combine them.
The number of hypothesis examples per test is ``INTERLACE_ROBUSTNESS_EXAMPLES`` (default
30); ``INTERLACE_ROBUSTNESS_RANDOM=1`` draws fresh random examples.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlace
from interlace.errors import (
    ConvergenceWarning,
    DegenerateFitWarning,
    MissingValuesWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from interlace.families import Binomial, Family

from .robustness_helpers import (  # pl, pa: polars and pyarrow when installed
    ALLOWED_ERRORS,
    SETTINGS,
    assert_unchanged,
    names_one_of,
    pa,
    pl,
    snapshot,
)

EXPLAINING_WARNINGS = (ConvergenceWarning, SingularFitWarning, DegenerateFitWarning)
INTERLACE_WARNINGS = (*EXPLAINING_WARNINGS, MissingValuesWarning, RankDeficiencyWarning)
NON_INTEGER = "non-integer #successes"  # R's glm warning, which interlace repeats
BACKENDS = ["pandas", "dict"] + (["polars"] if pl is not None else []) + (["pyarrow"] if pa is not None else [])
LINKS = {"binomial": ("logit", "probit", "cloglog", "log"), "poisson": ("log", "identity", "sqrt")}


def family(name: str, link: str | None = None) -> Family:
    return interlace.binomial(link or "logit") if name == "binomial" else interlace.poisson(link or "log")


# ----- the invariant ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What a call gave: ``kind`` "fit" or "error", the fit, the warnings, the error."""

    kind: str
    result: Any = None
    warnings: list = field(default_factory=list)
    error: BaseException | None = None

    def warned(self, category: type[Warning]) -> list[str]:
        return [str(w.message) for w in self.warnings if issubclass(w.category, category)]


def _stray(caught: list) -> list[str]:
    """Warnings that are neither interlace's nor R's non-integer #successes."""
    out = []
    for w in caught:
        if issubclass(w.category, INTERLACE_WARNINGS):
            continue
        if w.category is UserWarning and NON_INTEGER in str(w.message):
            continue
        out.append(f"{w.category.__name__}: {w.message} ({os.path.basename(w.filename)}:{w.lineno})")
    return out


def _assert_fit(result: Any, caught: list) -> None:
    explained = [str(w.message) for w in caught if issubclass(w.category, EXPLAINING_WARNINGS)]
    values = np.concatenate([result.fe_params.to_numpy(dtype=float), np.asarray(result.theta, float), [result.llf]])
    assert np.all(np.isfinite(values)) or explained, (
        f"non-finite fit without a warning: fe_params {result.fe_params.to_dict()}, theta {result.theta}, "
        f"llf {result.llf}")
    mu = np.asarray(result.fittedvalues, dtype=float)
    upper = 1.0 if result.family.name == "binomial" else np.inf
    in_range = np.all(np.isfinite(mu)) and np.all((mu >= 0.0) & (mu <= upper))
    assert in_range or explained, (
        f"fitted means outside the {result.family.name} family's range without a warning: "
        f"min {np.nanmin(mu) if mu.size else None}, max {np.nanmax(mu) if mu.size else None}, "
        f"{int(np.sum(~np.isfinite(mu)))} non-finite")
    if result.nAGQ <= 1 and not np.isnan(result.llf):
        assert result.llf <= 1e-8 * (1.0 + abs(result.llf)), (
            f"log-likelihood {result.llf} > 0: the Laplace deviance is a sum of non-negative terms; "
            f"warnings {explained}")
    str(result.summary())  # Wald z, p-values, variance components


def check(call: Callable[[], Any], frame: Any, names: list[str]) -> Outcome:
    """Run ``call`` and assert the invariant (module docstring)."""
    before = snapshot(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except ALLOWED_ERRORS as exc:
            message = str(exc)
            assert names_one_of(message, names), f"{type(exc).__name__} names none of {names}: {message}"
            outcome = Outcome("error", warnings=list(caught), error=exc)
        else:
            _assert_fit(result, list(caught))
            outcome = Outcome("fit", result, list(caught))
    stray = _stray(outcome.warnings)
    assert not stray, f"warnings that are not interlace's ({outcome.kind}): {stray}"
    assert_unchanged(frame, before)
    return outcome


# ----- data ------------------------------------------------------------------------------


def glmm_frame(n: int = 48, n_levels: int = 8, seed: int = 0) -> pd.DataFrame:
    """Binomial and Poisson responses with a real group effect: y (0/1), s successes of
    n trials (f failures, p = s / n), c counts (log-linear models); yl (0/1) of a
    log-binomial model (probabilities below 0.9), ci counts of an identity-link model
    (means above 0.5); x a predictor, g a grouping factor of ``n_levels`` balanced
    levels, h a second factor crossed with g, o a small offset."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    g = i % n_levels
    x = rng.standard_normal(n)
    b = 0.8 * rng.standard_normal(n_levels)
    prob = 1.0 / (1.0 + np.exp(-(-0.4 + 0.7 * x + b[g])))
    y = (rng.random(n) < prob).astype(float)
    trials = rng.integers(1, 9, n)
    s = rng.binomial(trials, prob)
    c = rng.poisson(np.exp(1.2 + 0.3 * x + 0.5 * b[g]))
    yl = (rng.random(n) < np.minimum(np.exp(-1.3 + 0.25 * x + 0.4 * b[g]), 0.9)).astype(float)
    ci = rng.poisson(np.maximum(6.0 + 1.0 * x + 1.2 * b[g], 0.5))
    return pd.DataFrame({
        "y": y, "x": x, "g": [f"g{j}" for j in g], "h": [f"h{j}" for j in (i // n_levels) % 6],
        "s": s.astype(np.int64), "f": (trials - s).astype(np.int64), "n": trials.astype(np.int64),
        "p": s / trials, "c": c.astype(np.int64), "o": 0.1 * x, "yl": yl, "ci": ci.astype(np.int64),
    })


BASE = glmm_frame()
BINOMIAL_FORMULA = "y ~ x + (1 | g)"
CBIND_FORMULA = "cbind(s, n - s) ~ x + (1 | g)"
POISSON_FORMULA = "c ~ x + (1 | g)"


def as_backend(frame: pd.DataFrame, backend: str) -> Any:
    """``frame`` as the backend holds it; None when it cannot (mixed objects)."""
    if backend == "pandas":
        return frame
    if backend == "dict":
        return {c: list(frame[c]) for c in frame.columns}
    try:
        if backend == "polars":
            return pl.from_pandas(frame)
        return pa.Table.from_pandas(frame, preserve_index=False)
    except Exception as exc:  # a column the backend cannot hold (polars' and pyarrow's own errors too)
        if isinstance(exc, (TypeError, ValueError, OverflowError)) or type(exc).__module__.startswith(
                ("polars", "pyarrow")):
            return None
        raise


def objects(values) -> pd.Series:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return pd.Series(out, dtype=object)


def fit_values(m) -> np.ndarray:
    return np.concatenate([m.fe_params.to_numpy(), m.theta, [m.llf]])


# ----- families and links ----------------------------------------------------------------

FAMILY_LINKS = [(f, link) for f, links in LINKS.items() for link in links]


@pytest.mark.parametrize(("name", "link"), FAMILY_LINKS, ids=[f"{f}-{k}" for f, k in FAMILY_LINKS])
@pytest.mark.parametrize("nagq", [0, 1, 5])
def test_every_link_fits_ordinary_data(name, link, nagq):
    """Every family and link, by every approximation, on data of its own model: a fit
    without a warning."""
    response = {("binomial", "log"): "yl", ("poisson", "identity"): "ci"}.get((name, link))
    formula = (BINOMIAL_FORMULA if name == "binomial" else POISSON_FORMULA) if response is None else \
        f"{response} ~ x + (1 | g)"
    out = check(lambda: interlace.fit(formula, BASE, family=family(name, link), nAGQ=nagq), BASE, ["nAGQ"])
    if (name, link, nagq > 1) == ("binomial", "log", True):  # knots with means above 1: refused by name
        assert out.kind == "error" and "nAGQ" in str(out.error)
        return
    assert out.kind == "fit"
    assert not out.warned(ConvergenceWarning), out.warned(ConvergenceWarning)
    assert out.result.family.link.name == link and out.result.nAGQ == nagq


@pytest.mark.parametrize("value", ["binomial", "Binomial", "POISSON", "poisson"])
def test_family_names(value):
    formula = BINOMIAL_FORMULA if value.lower() == "binomial" else POISSON_FORMULA
    assert check(lambda: interlace.fit(formula, BASE, family=value), BASE, []).kind == "fit"


@pytest.mark.parametrize("value", [
    "gaussian", "binomial ", "", "logit", Binomial, 1, True, ["binomial"], interlace.binomial,
    lambda: interlace.binomial("inverse"), lambda: interlace.poisson("logit"),
    lambda: interlace.binomial(3), lambda: interlace.poisson(""),
])
def test_wrong_families_and_links(value):
    def call():
        given = value() if callable(value) and getattr(value, "__name__", "") == "<lambda>" else value
        return interlace.fit(BINOMIAL_FORMULA, BASE, family=given)

    assert check(call, BASE, ["family", "link"]).kind == "error"


# ----- binomial responses ----------------------------------------------------------------

Y = BASE["y"].to_numpy()
WORDS = np.where(Y > 0, "yes", "no")


def binomial_responses() -> dict[str, tuple[str, Any]]:
    """name -> (expected outcome, the response column): "fit", "error" or "either"
    (degenerate data: a fit, warned where it is not finite, or a clear error)."""
    n = len(Y)
    with_na = Y.copy()
    with_na[[0, 5]] = np.nan
    three = np.where(Y > 0, np.where(np.arange(n) % 2, "b", "c"), "a")
    arrow = {} if pa is None else {"string[pyarrow]": ("fit", pd.Series(WORDS, dtype="string[pyarrow]")),
                                   "arrow bool": ("fit", pd.Series(Y > 0, dtype=pd.ArrowDtype(pa.bool_())))}
    return arrow | {
        "float 0/1": ("fit", pd.Series(Y)),
        "int 0/1": ("fit", pd.Series(Y.astype(np.int64))),
        "uint8 0/1": ("fit", pd.Series(Y.astype(np.uint8))),
        "float32 0/1": ("fit", pd.Series(Y.astype(np.float32))),
        "Int64 0/1 with NA": ("fit", pd.Series(pd.array([None if i == 0 else int(v) for i, v in enumerate(Y)],
                                                         dtype="Int64"))),
        "float 0/1 with NaN": ("fit", pd.Series(with_na)),
        "bool": ("fit", pd.Series(Y > 0)),
        "boolean with NA": ("fit", pd.Series(pd.array([None if i == 3 else bool(v) for i, v in enumerate(Y)],
                                                       dtype="boolean"))),
        "object bools": ("fit", objects([bool(v) for v in Y])),
        "decimal 0/1": ("fit", objects([decimal.Decimal(int(v)) for v in Y])),
        "category 2 levels": ("fit", pd.Series(pd.Categorical(WORDS))),
        "category, declared order": ("fit", pd.Series(pd.Categorical(WORDS, categories=["yes", "no"]))),
        "ordered category": ("fit", pd.Series(pd.Categorical(WORDS, ordered=True))),
        "object strings": ("fit", objects(list(WORDS))),
        "string": ("fit", pd.Series(WORDS, dtype="string")),
        "strings with None": ("fit", objects([None if i == 2 else w for i, w in enumerate(WORDS)])),
        "strings, 3 levels": ("fit", objects(list(three))),
        "category, 3 levels": ("fit", pd.Series(pd.Categorical(three))),
        "category of ints": ("fit", pd.Series(pd.Categorical(Y.astype(int)))),
        "category, one level": ("either", pd.Series(pd.Categorical(["a"] * n))),
        "category, unused first level": ("either", pd.Series(pd.Categorical(WORDS, categories=["maybe", "no", "yes"]))),
        "proportion": ("fit", pd.Series(BASE["p"])),
        "all zero": ("either", pd.Series(np.zeros(n))),
        "all one": ("either", pd.Series(np.ones(n))),
        "all False": ("either", pd.Series(np.zeros(n, bool))),
        "separated by x": ("either", pd.Series((BASE["x"] > 0).astype(float))),
        "separated by g": ("either", pd.Series(BASE["g"].isin(["g0", "g1", "g2", "g3"]).astype(float))),
        "one success": ("either", pd.Series(np.eye(1, n, 7).ravel())),
        "counts 0..8": ("error", pd.Series(BASE["s"])),
        "negative": ("error", pd.Series(np.where(np.arange(n) == 4, -1.0, Y))),
        "2 and 0": ("error", pd.Series(2.0 * Y)),
        "inf": ("error", pd.Series(np.where(np.arange(n) == 4, np.inf, Y))),
        "-inf": ("error", pd.Series(np.where(np.arange(n) == 4, -np.inf, Y))),
        "all NaN": ("error", pd.Series(np.full(n, np.nan))),
        "datetime": ("error", pd.Series(pd.to_datetime(Y * 86400, unit="s"))),
        "timedelta": ("error", pd.Series(pd.to_timedelta(Y, unit="D"))),
        "complex": ("error", pd.Series(Y + 0j)),
        "list objects": ("error", objects([[v] for v in Y])),
    }


BINOMIAL_RESPONSES = binomial_responses()


@pytest.mark.parametrize("kind", list(BINOMIAL_RESPONSES))
def test_binomial_responses(kind):
    expected, column = BINOMIAL_RESPONSES[kind]
    frame = BASE.assign(resp=column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array)
    out = check(lambda: interlace.fit("resp ~ x + (1 | g)", frame, family="binomial"), frame, ["resp", "response"])
    if expected != "either":
        assert out.kind == expected, f"{kind}: {out.kind} {out.error}"
    if out.kind == "fit" and column.isna().any() and not column.isna().all():
        assert out.warned(MissingValuesWarning) and out.result.n_dropped == int(column.isna().sum())


def test_binomial_responses_of_every_kind_are_one_model():
    """A 0/1 number, a logical, a factor (first level a failure), its strings: the same
    fit; a factor whose declared first level is "yes" the fit of the other outcome."""
    ref = interlace.fit("resp ~ x + (1 | g)", BASE.assign(resp=Y), family="binomial")
    for kind in ["int 0/1", "uint8 0/1", "bool", "object bools", "decimal 0/1", "category 2 levels", "ordered category",
                 "object strings", "string", "category of ints"] + (["string[pyarrow]", "arrow bool"] if pa else []):
        column = BINOMIAL_RESPONSES[kind][1]
        m = interlace.fit("resp ~ x + (1 | g)", BASE.assign(resp=column.array), family="binomial")
        np.testing.assert_allclose(fit_values(m), fit_values(ref), rtol=1e-6, atol=1e-8, err_msg=kind)
    flipped = interlace.fit("resp ~ x + (1 | g)",
                            BASE.assign(resp=BINOMIAL_RESPONSES["category, declared order"][1].array), family="binomial")
    np.testing.assert_allclose(flipped.fe_params.to_numpy(), -ref.fe_params.to_numpy(), rtol=1e-5, atol=1e-6)


def test_proportions():
    """A proportion with weights= the trials is cbind(s, n - s); without weights a
    proportion warns as R (non-integer #successes); decimals are numbers."""
    cbind = interlace.fit(CBIND_FORMULA, BASE, family="binomial")
    for weights in ["n", BASE["n"].to_numpy(), BASE["n"].astype(float).tolist(), BASE["n"]]:
        out = check(lambda w=weights: interlace.fit("p ~ x + (1 | g)", BASE, family="binomial", weights=w), BASE, [])
        assert out.kind == "fit" and not out.warnings, [str(w.message) for w in out.warnings]
        np.testing.assert_allclose(fit_values(out.result), fit_values(cbind), rtol=1e-6, atol=1e-8)
    out = check(lambda: interlace.fit("p ~ x + (1 | g)", BASE, family="binomial"), BASE, ["p"])
    assert out.kind == "fit" and any(NON_INTEGER in str(w.message) for w in out.warnings)
    frame = BASE.assign(dp=objects([decimal.Decimal(int(s)) / decimal.Decimal(int(n))
                                    for s, n in zip(BASE["s"], BASE["n"], strict=True)]))
    out = check(lambda: interlace.fit("dp ~ x + (1 | g)", frame, family="binomial", weights="n"), frame, ["dp"])
    assert out.kind == "fit"
    np.testing.assert_allclose(fit_values(out.result), fit_values(cbind), rtol=1e-6, atol=1e-8)


# ----- cbind(successes, failures) --------------------------------------------------------

N_ROWS = len(BASE)
FIRST = np.arange(N_ROWS) < 4


def cbind_cases() -> dict[str, tuple[str, str, pd.DataFrame]]:
    """name -> (expected outcome, formula, frame)."""
    s, f, n = BASE["s"].to_numpy(float), BASE["f"].to_numpy(float), BASE["n"].to_numpy(float)
    both = "cbind(s, f) ~ x + (1 | g)"
    return {
        "cbind(s, f)": ("fit", both, BASE),
        "cbind(s, n - s)": ("fit", CBIND_FORMULA, BASE),
        "cbind(s, f) floats": ("fit", both, BASE.assign(s=s, f=f)),
        "cbind of Int64": ("fit", both, BASE.assign(s=BASE["s"].astype("Int64"), f=BASE["f"].astype("Int64"))),
        "cbind of bools": ("fit", "cbind(s > 2, s <= 2) ~ x + (1 | g)", BASE),
        "zero-trial rows": ("fit", both, BASE.assign(s=np.where(FIRST, 0, s), f=np.where(FIRST, 0, f))),
        "zero-trial rows, n - s": ("fit", CBIND_FORMULA, BASE.assign(s=np.where(FIRST, 0, s), n=np.where(FIRST, 0, n))),
        "a level of zero-trial rows": ("fit", both, BASE.assign(s=np.where(BASE["g"] == "g0", 0, s),
                                                              f=np.where(BASE["g"] == "g0", 0, f))),
        "every row zero trials": ("error", both, BASE.assign(s=0, f=0)),
        "NaN in s": ("fit", both, BASE.assign(s=np.where(FIRST, np.nan, s))),
        "NaN in f": ("fit", both, BASE.assign(f=np.where(FIRST, np.nan, f))),
        "NaN in n": ("fit", CBIND_FORMULA, BASE.assign(n=np.where(FIRST, np.nan, n))),
        "None in s": ("fit", both, BASE.assign(s=objects([None if i < 4 else v for i, v in enumerate(s)]))),
        "NaN in every row": ("error", both, BASE.assign(s=np.nan)),
        "negative s": ("error", both, BASE.assign(s=np.where(FIRST, -1.0, s))),
        "negative f": ("error", both, BASE.assign(f=np.where(FIRST, -2.0, f))),
        "s > n": ("error", CBIND_FORMULA, BASE.assign(n=np.where(FIRST, s - 1, n))),
        "non-integer s": ("fit", both, BASE.assign(s=s + 0.5)),
        "non-integer n": ("fit", CBIND_FORMULA, BASE.assign(n=n + 0.25)),
        "inf s": ("error", both, BASE.assign(s=np.where(FIRST, np.inf, s))),
        "inf f": ("error", both, BASE.assign(f=np.where(FIRST, np.inf, f))),
        "inf n": ("error", CBIND_FORMULA, BASE.assign(n=np.where(FIRST, np.inf, n))),
        "huge counts": ("fit", both, BASE.assign(s=s * 10**6, f=f * 10**6)),
        "all failures": ("either", both, BASE.assign(s=0)),
        "all successes": ("either", both, BASE.assign(f=0)),
        "strings in s": ("error", both, BASE.assign(s=[f"w{v}" for v in BASE["s"]])),
        "category s": ("error", both, BASE.assign(s=pd.Categorical(BASE["s"]))),
        "datetime s": ("error", both, BASE.assign(s=pd.to_datetime(BASE["s"], unit="D"))),
        "three columns": ("error", "cbind(s, f, n) ~ x + (1 | g)", BASE),
        "one column": ("error", "cbind(s) ~ x + (1 | g)", BASE),
        "unknown column": ("error", "cbind(s, zz) ~ x + (1 | g)", BASE),
    }


CBIND_CASES = cbind_cases()


@pytest.mark.parametrize("kind", list(CBIND_CASES))
def test_cbind_responses(kind):
    expected, formula, frame = CBIND_CASES[kind]
    out = check(lambda: interlace.fit(formula, frame, family="binomial"), frame,
                ["s", "f", "n", "zz", "response", "formula", formula.split("~")[0].strip()])
    if expected != "either":
        assert out.kind == expected, f"{kind}: {out.kind} {out.error}"
    if "NaN" in kind or "None" in kind:
        assert out.kind == "error" or (out.warned(MissingValuesWarning) and out.result.n_dropped == 4)


def test_zero_trials_and_missing_counts_are_rows_left_out():
    """A row of zero trials adds nothing to the likelihood, a row with a missing count
    is dropped: both the fit of the other rows."""
    rest = interlace.fit("cbind(s, f) ~ x + (1 | g)", BASE.loc[~FIRST], family="binomial")
    for kind in ["zero-trial rows", "zero-trial rows, n - s", "NaN in s", "NaN in f"]:
        _, formula, frame = CBIND_CASES[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingValuesWarning)
            m = interlace.fit(formula, frame, family="binomial")
        np.testing.assert_allclose(fit_values(m), fit_values(rest), rtol=1e-6, atol=1e-8, err_msg=kind)


def test_cbind_with_poisson_is_refused():
    out = check(lambda: interlace.fit("cbind(s, f) ~ x + (1 | g)", BASE, family="poisson"), BASE,
                ["response", "cbind(s, f)"])
    assert out.kind == "error"


# ----- Poisson responses -----------------------------------------------------------------

C = BASE["c"].to_numpy()


def poisson_responses() -> dict[str, tuple[str, Any]]:
    n = len(C)
    return {
        "int64": ("fit", pd.Series(C)),
        "float": ("fit", pd.Series(C.astype(float))),
        "uint16": ("fit", pd.Series(C.astype(np.uint16))),
        "Int64 with NA": ("fit", pd.Series(pd.array([None if i == 1 else int(v) for i, v in enumerate(C)],
                                                     dtype="Int64"))),
        "float with NaN": ("fit", pd.Series(np.where(np.arange(n) < 3, np.nan, C))),
        "decimal objects": ("fit", objects([decimal.Decimal(int(v)) for v in C])),
        "arrow int64": ("fit", pd.Series(C, dtype=pd.ArrowDtype(pa.int64())) if pa is not None else pd.Series(C)),
        "bool": ("either", pd.Series(C > 3)),
        "all zero": ("either", pd.Series(np.zeros(n, np.int64))),
        "one nonzero": ("either", pd.Series(np.eye(1, n, 9).ravel() * 3)),
        "zero in a level": ("fit", pd.Series(np.where(BASE["g"] == "g0", 0, C))),
        "counts times 1e3": ("fit", pd.Series(C * 10**3)),
        "counts times 1e6": ("fit", pd.Series(C * 10**6)),
        "counts times 1e9": ("fit", pd.Series(C.astype(float) * 1e9)),
        "counts times 1e15": ("either", pd.Series(C.astype(float) * 1e15)),
        "counts times 1e300": ("either", pd.Series(C.astype(float) * 1e300)),
        "negative": ("error", pd.Series(np.where(np.arange(n) == 2, -1, C))),
        "all negative": ("error", pd.Series(-C - 1)),
        "non-integer": ("either", pd.Series(C + 0.5)),
        "inf": ("error", pd.Series(np.where(np.arange(n) == 2, np.inf, C))),
        "strings": ("error", objects([f"c{v}" for v in C])),
        "category": ("error", pd.Series(pd.Categorical(C))),
        "datetime": ("error", pd.Series(pd.to_datetime(C, unit="D"))),
        "complex": ("error", pd.Series(C + 0j)),
    }


POISSON_RESPONSES = poisson_responses()
POISSON_VALUES = {  # kinds whose outcome may depend on the link -> the links tried (bounded in time: the
    # identity link's and the square root's slowest degenerate cases are left out)
    "bool": LINKS["poisson"], "all zero": ("log", "sqrt"), "zero in a level": LINKS["poisson"],
    "one nonzero": LINKS["poisson"], "counts times 1e6": LINKS["poisson"],
    "counts times 1e9": LINKS["poisson"], "counts times 1e15": ("log", "sqrt"), "counts times 1e300": ("log",),
}
POISSON_CASES = [(kind, link) for kind in POISSON_RESPONSES for link in POISSON_VALUES.get(kind, ("log",))]


@pytest.mark.parametrize(("kind", "link"), POISSON_CASES, ids=[f"{k}-{link}" for k, link in POISSON_CASES])
def test_poisson_responses(kind, link):
    expected, column = POISSON_RESPONSES[kind]
    frame = BASE.assign(resp=column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array)
    out = check(lambda: interlace.fit("resp ~ x + (1 | g)", frame, family=interlace.poisson(link)), frame,
                ["resp", "response"])
    if expected != "either":
        assert out.kind == expected, f"{kind}: {out.kind} {out.error}"
    if out.kind == "fit" and column.isna().any():
        assert out.warned(MissingValuesWarning) and out.result.n_dropped == int(column.isna().sum())


@pytest.mark.parametrize("link", LINKS["binomial"])
@pytest.mark.parametrize("kind", ["all zero", "all one", "separated by x", "separated by g", "one success"])
def test_degenerate_binomial_responses_by_link(kind, link):
    column = BINOMIAL_RESPONSES[kind][1]
    frame = BASE.assign(resp=column.to_numpy())
    check(lambda: interlace.fit("resp ~ x + (1 | g)", frame, family=interlace.binomial(link)), frame,
          ["resp", "response"])


SMALL = pd.DataFrame({"x": [-1.5, -0.5, 0.5, 1.5, -1.0, 0.0, 1.0, 2.0], "g": ["a", "a", "b", "b", "c", "c", "d", "d"]})
SMALL_RESPONSES = {"all one": np.ones(8), "one nonzero": np.eye(1, 8, 7).ravel(), "all zero": np.zeros(8)}


@pytest.mark.parametrize(("name", "link"), FAMILY_LINKS, ids=[f"{f}-{k}" for f, k in FAMILY_LINKS])
@pytest.mark.parametrize("kind", ["all one", "one nonzero"])
def test_small_degenerate_frames(kind, name, link):
    """Eight rows of four levels whose response is all one or has a single nonzero row."""
    frame = SMALL.assign(resp=SMALL_RESPONSES[kind] * (1 if name == "binomial" else 3))
    check(lambda: interlace.fit("resp ~ x + (1 | g)", frame, family=family(name, link)), frame, ["resp", "response"])


# ----- weights and offsets ---------------------------------------------------------------

ONES = np.ones(N_ROWS)


def weight_cases() -> dict[str, tuple[str, Any]]:
    """name -> (expected outcome, weights=) for the 0/1 response."""
    return {
        "ones": ("fit", ONES),
        "twos": ("fit", 2 * ONES),
        "column": ("fit", "n"),
        "list": ("fit", [1] * N_ROWS),
        "pandas Series": ("fit", pd.Series(ONES)),
        "polars Series": ("fit", pl.Series(ONES) if pl is not None else ONES),
        "pyarrow array": ("fit", pa.array(ONES) if pa is not None else ONES),
        "NaN": ("fit", np.where(FIRST, np.nan, 1.0)),
        "None": ("fit", [None if i < 4 else 1.0 for i in range(N_ROWS)]),
        "zero on some rows": ("fit", np.where(FIRST, 0.0, 1.0)),
        "zero on a level": ("fit", np.where(BASE["g"] == "g0", 0.0, 1.0)),
        "all zero": ("error", np.zeros(N_ROWS)),
        "all NaN": ("error", np.full(N_ROWS, np.nan)),
        "negative": ("error", np.where(FIRST, -1.0, 1.0)),
        "inf": ("error", np.where(FIRST, np.inf, 1.0)),
        "-inf": ("error", np.where(FIRST, -np.inf, 1.0)),
        "non-integer": ("fit", np.linspace(0.5, 1.5, N_ROWS)),
        "tiny": ("either", np.full(N_ROWS, 1e-300)),
        "huge": ("either", np.full(N_ROWS, 1e300)),
        "large": ("fit", np.full(N_ROWS, 1e6)),
        "wrong length": ("error", ONES[:-1]),
        "empty": ("error", []),
        "2-d": ("error", np.ones((N_ROWS, 2))),
        "scalar": ("error", 1.0),
        "strings": ("error", ["1"] * N_ROWS),
        "string column": ("error", "g"),
        "bool column": ("error", "b"),
        "missing column": ("error", "nope"),
        "bools": ("error", [True] * N_ROWS),
        "dict": ("error", {"a": 1}),
        "object": ("error", object()),
    }


WEIGHT_CASES = weight_cases()


WEIGHT_VALUES = ("ones", "twos", "column", "NaN", "zero on some rows", "zero on a level", "all zero", "non-integer",
                 "tiny", "huge", "large")  # the others are wrong whatever the family
WEIGHT_PARAMS = [(k, f) for k in WEIGHT_CASES for f in (("binomial", "poisson") if k in WEIGHT_VALUES else ("binomial",))]


@pytest.mark.parametrize(("kind", "name"), WEIGHT_PARAMS, ids=[f"{f}-{k}" for k, f in WEIGHT_PARAMS])
def test_weights(kind, name):
    expected, weights = WEIGHT_CASES[kind]
    frame = BASE.assign(b=BASE["x"] > 0)
    formula = BINOMIAL_FORMULA if name == "binomial" else POISSON_FORMULA
    out = check(lambda: interlace.fit(formula, frame, family=name, weights=weights), frame,
                ["weights", "n", "g", "b", "nope"])
    if expected != "either":
        assert out.kind == expected, f"{kind}: {out.kind} {out.error}"
    if out.kind == "fit" and kind in ("NaN", "None"):
        assert out.warned(MissingValuesWarning) and out.result.n_dropped == 4


def test_zero_weights_are_rows_left_out():
    rest = interlace.fit(BINOMIAL_FORMULA, BASE.loc[~FIRST], family="binomial")
    m = interlace.fit(BINOMIAL_FORMULA, BASE, family="binomial", weights=np.where(FIRST, 0.0, 1.0))
    np.testing.assert_allclose(fit_values(m), fit_values(rest), rtol=1e-6, atol=1e-8)


def offset_cases() -> dict[str, tuple[str, Any]]:
    return {
        "column": ("fit", "o"),
        "array": ("fit", BASE["o"].to_numpy()),
        "list": ("fit", BASE["o"].tolist()),
        "NaN": ("fit", np.where(FIRST, np.nan, BASE["o"])),
        "inf": ("error", np.where(FIRST, np.inf, BASE["o"])),
        "-inf": ("error", np.where(FIRST, -np.inf, BASE["o"])),
        "wrong length": ("error", [0.0, 1.0]),
        "strings": ("error", ["0"] * N_ROWS),
        "string column": ("error", "g"),
        "missing column": ("error", "nope"),
        "constant 100": ("fit", np.full(N_ROWS, 100.0)),
        "constant -100": ("fit", np.full(N_ROWS, -100.0)),
        "constant 1e6": ("either", np.full(N_ROWS, 1e6)),
        "huge varying": ("either", 1e6 * BASE["x"].to_numpy()),
        "huge 1e300": ("either", np.full(N_ROWS, 1e300)),
    }


OFFSET_CASES = offset_cases()
CANONICAL = [("binomial", "logit"), ("poisson", "log")]
OFFSET_LINKS = {  # kinds whose outcome may depend on the link -> (family, link) tried (1e300: the links
    # that answer fast; the others spend seconds before the same outcome)
    "constant 100": FAMILY_LINKS, "constant 1e6": FAMILY_LINKS,
    "huge varying": FAMILY_LINKS, "huge 1e300": [*CANONICAL, ("binomial", "log"), ("poisson", "sqrt")],
}
OFFSET_PARAMS = [(kind, f, link) for kind in OFFSET_CASES for f, link in OFFSET_LINKS.get(kind, CANONICAL)]


@pytest.mark.parametrize(("kind", "name", "link"), OFFSET_PARAMS, ids=[f"{k}-{f}-{link}" for k, f, link in OFFSET_PARAMS])
def test_offsets(kind, name, link):
    expected, offset = OFFSET_CASES[kind]
    formula = BINOMIAL_FORMULA if name == "binomial" else POISSON_FORMULA
    out = check(lambda: interlace.fit(formula, BASE, family=family(name, link), offset=offset), BASE,
                ["offset", "o", "g", "nope"])
    if expected != "either":
        assert out.kind == expected, f"{kind}: {out.kind} {out.error}"
    if out.kind == "fit" and kind == "NaN":
        assert out.warned(MissingValuesWarning) and out.result.n_dropped == 4


@pytest.mark.parametrize(("name", "link"), CANONICAL)
@pytest.mark.parametrize("size", [1e3, 1e6])
def test_a_huge_offset_without_an_intercept(name, link, size):
    """Nothing can take a large offset back: means at the family's bound, a fit warned
    where not finite, or an error naming the offset."""
    formula = ("y" if name == "binomial" else "c") + " ~ 0 + x + (1 | g)"
    check(lambda: interlace.fit(formula, BASE, family=family(name, link), offset=np.full(N_ROWS, size)), BASE,
          ["offset"])


@pytest.mark.parametrize("name", ["binomial", "poisson"])
def test_a_constant_offset_moves_only_the_intercept(name):
    """For the canonical links, offset=k: the fit without it, the intercept less k."""
    formula = BINOMIAL_FORMULA if name == "binomial" else POISSON_FORMULA
    plain = interlace.fit(formula, BASE, family=name)
    for k in (-100.0, 3.0, 100.0):
        moved = interlace.fit(formula, BASE, family=name, offset=np.full(N_ROWS, k))
        assert moved.llf == pytest.approx(plain.llf, rel=1e-7)
        assert moved.fe_params["Intercept"] == pytest.approx(plain.fe_params["Intercept"] - k, abs=1e-5)
        np.testing.assert_allclose(moved.theta, plain.theta, rtol=1e-4, atol=1e-6)


# ----- grouping factors ------------------------------------------------------------------


def grouping_cases() -> dict[str, tuple[str, str, pd.DataFrame]]:
    return {
        "one level": ("error", BINOMIAL_FORMULA, BASE.assign(g="a")),
        "two levels": ("fit", BINOMIAL_FORMULA, BASE.assign(g=np.arange(N_ROWS) % 2)),
        "a level per row, binomial": ("fit", BINOMIAL_FORMULA, BASE.assign(g=np.arange(N_ROWS))),
        "a level per row, cbind": ("fit", CBIND_FORMULA, BASE.assign(g=np.arange(N_ROWS))),
        "a level per row, poisson": ("fit", POISSON_FORMULA, BASE.assign(g=np.arange(N_ROWS))),
        "observation-level and group effects": ("fit", "c ~ x + (1 | g) + (1 | obs)", BASE.assign(obs=np.arange(N_ROWS))),
        "levels of all-zero responses": ("fit", BINOMIAL_FORMULA,
                                         BASE.assign(y=np.where(BASE["g"].isin(["g0", "g1"]), 0.0, Y))),
        "levels of all-one responses": ("fit", BINOMIAL_FORMULA,
                                        BASE.assign(y=np.where(BASE["g"].isin(["g0", "g1"]), 1.0, Y))),
        "levels of all-zero counts": ("fit", POISSON_FORMULA,
                                      BASE.assign(c=np.where(BASE["g"].isin(["g0", "g1"]), 0, C))),
        "a level of one row": ("fit", BINOMIAL_FORMULA, BASE.assign(g=np.where(np.arange(N_ROWS) == 0, "lone", BASE["g"]))),
        "NaN levels": ("fit", BINOMIAL_FORMULA, BASE.assign(g=objects([None if i < 4 else v for i, v in enumerate(BASE["g"])]))),
        "all NaN levels": ("error", BINOMIAL_FORMULA, BASE.assign(g=objects([None] * N_ROWS))),
        "slope": ("fit", "y ~ x + (x | g)", BASE),
        "uncorrelated slope": ("fit", "c ~ x + (x || g)", BASE),
        "crossed": ("fit", "c ~ x + (1 | g) + (1 | h)", BASE),
        "nested": ("fit", "c ~ x + (1 | g/h)", BASE),
        "slope of a level per row": ("either", "y ~ x + (x | obs)", BASE.assign(obs=np.arange(N_ROWS))),
        "factor predictor": ("fit", "y ~ h + (1 | g)", BASE),
        "grouping factor as predictor": ("fit", "c ~ g + (1 | g)", BASE),
        "no fixed effects": ("fit", "c ~ 0 + (1 | g)", BASE),
        "intercept only": ("fit", "y ~ 1 + (1 | g)", BASE),
        "constant predictor": ("fit", "y ~ k + (1 | g)", BASE.assign(k=1.0)),
        "duplicated predictor": ("fit", "y ~ x + x2 + (1 | g)", BASE.assign(x2=2 * BASE["x"])),
        "more predictors than rows": ("either", "y ~ g * x + h + (1 | g)", BASE.head(12)),
        "two rows": ("either", BINOMIAL_FORMULA, BASE.head(2).assign(g=["a", "b"])),
        "empty": ("error", BINOMIAL_FORMULA, BASE.head(0)),
    }


GROUPING_CASES = grouping_cases()


@pytest.mark.parametrize("kind", list(GROUPING_CASES))
def test_grouping_factors(kind):
    expected, formula, frame = GROUPING_CASES[kind]
    name = "poisson" if formula.startswith("c ") else "binomial"
    out = check(lambda: interlace.fit(formula, frame, family=name), frame,
                ["g", "h", "obs", "x", "x2", "k", "y", "c", "data", "formula", "term"])
    if expected != "either":
        assert out.kind == expected, f"{kind}: {out.kind} {out.error}"


# ----- nAGQ ------------------------------------------------------------------------------


NAGQ_FITS = [0, 1, 2, 5, 25, np.int64(5), np.int8(0)]
NAGQ_WRONG = [26, -1, 100, 10**30, "a", "1", True, False, 1.0, 1.5, np.nan, None, [1], np.array([1])]
NAGQ_PARAMS = ([(v, "fit", f) for v in NAGQ_FITS for f in ("binomial", "poisson")]
               + [(v, "error", "binomial") for v in NAGQ_WRONG])


@pytest.mark.parametrize(("nagq", "expected", "name"), NAGQ_PARAMS)
def test_nagq_values(nagq, expected, name):
    formula = BINOMIAL_FORMULA if name == "binomial" else POISSON_FORMULA
    out = check(lambda: interlace.fit(formula, BASE, family=name, nAGQ=nagq), BASE, ["nAGQ"])
    assert out.kind == expected, out.error


@pytest.mark.parametrize(("formula", "nagq", "expected"), [
    ("y ~ x + (1 | g) + (1 | h)", 5, "error"),
    ("y ~ x + (1 | g) + (1 | h)", 2, "error"),
    ("y ~ x + (x | g)", 5, "error"),
    ("y ~ x + (x || g)", 5, "error"),
    ("y ~ x + (1 | g/h)", 5, "error"),
    ("y ~ x + (1 | g) + (1 | h)", 0, "fit"),
    ("y ~ x + (1 | g) + (1 | h)", 1, "fit"),
    ("y ~ x + (x | g)", 0, "fit"),
    ("y ~ 1 + (1 | g)", 25, "fit"),
    ("y ~ 0 + x + (1 | g)", 5, "fit"),
])
def test_nagq_with_terms(formula, nagq, expected):
    out = check(lambda: interlace.fit(formula, BASE, family="binomial", nAGQ=nagq), BASE, ["nAGQ"])
    assert out.kind == expected, out.error


def test_nagq_for_a_linear_model_is_refused():
    frame = BASE.assign(yy=BASE["x"] + BASE["c"])
    assert check(lambda: interlace.fit("yy ~ x + (1 | g)", frame, nAGQ=5), frame, ["nAGQ"]).kind == "error"


@pytest.mark.parametrize(("name", "link"), FAMILY_LINKS, ids=[f"{f}-{k}" for f, k in FAMILY_LINKS])
def test_more_quadrature_points_approach_a_limit(name, link):
    """AGQ with 11 and 25 points: the log-likelihood has settled (and is <= 0)."""
    formula = BINOMIAL_FORMULA if name == "binomial" else POISSON_FORMULA
    if (name, link) == ("binomial", "log"):
        pytest.skip("binomial log with nAGQ > 1 is refused by name (test_every_link_fits_ordinary_data)")
    llf = [check(lambda k=k: interlace.fit(formula, BASE, family=family(name, link), nAGQ=k), BASE, []).result.llf
           for k in (11, 25)]
    assert abs(llf[1] - llf[0]) <= 1e-4 * abs(llf[1]) and all(v <= 0 for v in llf), llf


# ----- other arguments -------------------------------------------------------------------


@pytest.mark.parametrize(("argument", "value", "expected"), [
    ("method", "ML", "fit"), ("method", "REML", "error"), ("method", "reml", "error"), ("method", 1, "error"),
    ("optimizer", "nelder-mead", "fit"), ("optimizer", "bobyqa", "error"), ("optimizer", None, "error"),
    ("start", [0.5], "fit"), ("start", [0.5, 1.0], "error"), ("start", [np.nan], "error"), ("start", [-1.0], "either"),
    ("start", "a", "error"), ("max_evaluations", 3, "either"), ("max_evaluations", 0, "error"),
    ("max_evaluations", 2.5, "error"), ("solver", "sparse", "fit"), ("solver", "dense", "fit"),
    ("solver", "cholmod", "error"), ("na_action", "raise", "fit"), ("na_action", "omit", "error"),
    ("df_method", "kenward-roger", "error"), ("groups", "h", "fit"), ("groups", ["h", 3], "error"),
    ("random", "(1 | h)", "fit"), ("random", "(1 | zz)", "error"),
])
def test_other_arguments(argument, value, expected):
    out = check(lambda: interlace.fit(CBIND_FORMULA, BASE, family="binomial", **{argument: value}), BASE,
                [argument, "zz", "h"])
    if expected != "either":
        assert out.kind == expected, out.error


# ----- missing values --------------------------------------------------------------------


MISSING_CASES = [
    ("y", BINOMIAL_FORMULA, {}),
    ("x", BINOMIAL_FORMULA, {}),
    ("g", BINOMIAL_FORMULA, {}),
    ("s", CBIND_FORMULA, {}),
    ("n", CBIND_FORMULA, {}),
    ("c", POISSON_FORMULA, {}),
    ("p", "p ~ x + (1 | g)", {"weights": "n"}),
    ("n", "p ~ x + (1 | g)", {"weights": "n"}),
    ("o", POISSON_FORMULA, {"offset": "o"}),
    ("o", "c ~ x + offset(o) + (1 | g)", {}),
]
MISSING_ROWS = np.array([1, 6, 7])


@functools.cache
def fit_without(formula: str, name: str, extra: tuple):
    """The fit of BASE without the rows MISSING_ROWS."""
    return interlace.fit(formula, BASE.drop(index=MISSING_ROWS), family=name, **dict(extra))


MISSING_PARAMS = [(b, *case) for b in BACKENDS for i, case in enumerate(MISSING_CASES)
                  if b == "pandas" or i in (0, 2, 3, 8)]


@pytest.mark.parametrize(("backend", "column", "formula", "extra"), MISSING_PARAMS,
                         ids=[f"{b}-{c}-{f}-{e}" for b, c, f, e in MISSING_PARAMS])
def test_missing_values_are_dropped_with_a_warning(backend, column, formula, extra):
    """NaN (None in object columns, null in polars and pyarrow) in a used column: the row
    dropped with a MissingValuesWarning that counts it, the fit of the other rows; with
    na_action="raise" an error naming the column."""
    rows = MISSING_ROWS
    frame = BASE.copy()
    if not pd.api.types.is_numeric_dtype(frame[column].dtype):
        frame[column] = objects([None if i in rows else v for i, v in enumerate(frame[column])])
    else:
        frame[column] = frame[column].astype(float).where(~np.isin(np.arange(N_ROWS), rows))
    name = "poisson" if formula.startswith("c ") else "binomial"
    data = as_backend(frame, backend)
    out = check(lambda: interlace.fit(formula, data, family=name, **extra), data, [column])
    assert out.kind == "fit"
    messages = out.warned(MissingValuesWarning)
    assert len(messages) == 1 and "3 rows" in messages[0], messages
    assert out.result.n_dropped == 3 and out.result.nobs == N_ROWS - 3
    np.testing.assert_allclose(fit_values(out.result), fit_values(fit_without(formula, name, tuple(extra.items()))),
                               rtol=1e-6, atol=1e-8)
    out = check(lambda: interlace.fit(formula, data, family=name, na_action="raise", **extra), data, [column])
    assert out.kind == "error"


# ----- frames of every backend -----------------------------------------------------------

BACKEND_CASES = {
    "0/1": (BINOMIAL_FORMULA, "binomial", {}),
    "bool": ("yb ~ x + (1 | g)", "binomial", {}),
    "strings": ("ys ~ x + (1 | g)", "binomial", {}),
    "categorical": ("yc ~ x + (1 | g)", "binomial", {}),
    "cbind(s, f)": ("cbind(s, f) ~ x + (1 | g)", "binomial", {}),
    "cbind(s, n - s)": (CBIND_FORMULA, "binomial", {}),
    "proportion with weights": ("p ~ x + (1 | g)", "binomial", {"weights": "n"}),
    "counts": (POISSON_FORMULA, "poisson", {}),
    "counts with offset": (POISSON_FORMULA, "poisson", {"offset": "o"}),
    "probit AGQ": (BINOMIAL_FORMULA, interlace.binomial("probit"), {"nAGQ": 5}),
}


BACKEND_FRAME = BASE.assign(yb=Y > 0, ys=objects(list(WORDS)), yc=pd.Categorical(WORDS))


@functools.cache
def pandas_fit(kind: str):
    formula, name, extra = BACKEND_CASES[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return interlace.fit(formula, BACKEND_FRAME, family=name, **extra)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "pandas"])
@pytest.mark.parametrize("kind", list(BACKEND_CASES))
def test_frames_of_every_backend_give_one_fit(kind, backend):
    formula, name, extra = BACKEND_CASES[kind]
    ref = pandas_fit(kind)
    data = as_backend(BACKEND_FRAME, backend)
    out = check(lambda: interlace.fit(formula, data, family=name, **extra), data, [])
    assert out.kind == "fit"
    np.testing.assert_allclose(fit_values(out.result), fit_values(ref), rtol=1e-7, atol=1e-9)


@pytest.mark.skipif(pl is None, reason="polars not installed")
@pytest.mark.parametrize(("kind", "column", "expected"), [
    ("Boolean", lambda: pl.Series(list(Y > 0)), "fit"),
    ("Boolean with null", lambda: pl.Series([None, *list(Y[1:] > 0)]), "fit"),
    ("String", lambda: pl.Series(list(WORDS)), "fit"),
    ("Categorical", lambda: pl.Series(list(WORDS), dtype=pl.Categorical), "fit"),
    ("Enum", lambda: pl.Series(list(WORDS), dtype=pl.Enum(["yes", "no"])), "fit"),
    ("Int8", lambda: pl.Series(list(Y.astype(int)), dtype=pl.Int8), "fit"),
    ("Decimal", lambda: pl.Series([decimal.Decimal(int(v)) for v in Y], dtype=pl.Decimal(5, 1)), "fit"),
    ("Float64 with NaN", lambda: pl.Series([np.nan, *Y[1:]]), "fit"),
    ("Date", lambda: pl.Series([datetime.date(2020, 1, 1 + int(v)) for v in Y]), "error"),
    ("List", lambda: pl.Series([[v] for v in Y]), "error"),
    ("Null", lambda: pl.Series([None] * N_ROWS), "error"),
])
def test_polars_response_dtypes(kind, column, expected):
    frame = pl.from_pandas(BASE).with_columns(column().alias("resp"))
    out = check(lambda: interlace.fit("resp ~ x + (1 | g)", frame, family="binomial"), frame, ["resp", "response"])
    assert out.kind == expected, out.error


@pytest.mark.skipif(pa is None, reason="pyarrow not installed")
@pytest.mark.parametrize(("kind", "column", "expected"), [
    ("bool", lambda: pa.array(list(Y > 0)), "fit"),
    ("bool with null", lambda: pa.array([None, *[bool(v) for v in Y[1:]]]), "fit"),
    ("string", lambda: pa.array(list(WORDS)), "fit"),
    ("dictionary", lambda: pa.array(list(WORDS)).dictionary_encode(), "fit"),
    ("int8", lambda: pa.array(list(Y.astype(int)), pa.int8()), "fit"),
    ("decimal128", lambda: pa.array([decimal.Decimal(int(v)) for v in Y], pa.decimal128(5, 1)), "fit"),
    ("float16", lambda: pa.array(Y.astype(np.float16), pa.float16()), "fit"),
    ("date32", lambda: pa.array([datetime.date(2020, 1, 1 + int(v)) for v in Y], pa.date32()), "error"),
    ("list", lambda: pa.array([[v] for v in Y]), "error"),
    ("null", lambda: pa.nulls(N_ROWS), "error"),
])
def test_pyarrow_response_dtypes(kind, column, expected):
    frame = pa.Table.from_pandas(BASE, preserve_index=False).append_column("resp", column())
    out = check(lambda: interlace.fit("resp ~ x + (1 | g)", frame, family="binomial"), frame, ["resp", "response"])
    assert out.kind == expected, out.error


# ----- hypothesis: awkward frames --------------------------------------------------------

RESPONSE_KINDS = {
    "binomial": ["0/1", "0/1", "0/1", "int 0/1", "bool", "strings", "category", "strings3", "proportion",
                 "proportion+weights", "cbind(s, f)", "cbind(s, f)", "cbind(s, n - s)"],
    "poisson": ["counts", "counts", "float counts", "Int64 counts"],
}
RESPONSE_MUTATIONS = ["plain"] * 8 + ["nan", "none", "inf", "negative", "non-integer", "all zero", "all one",
                                      "separated", "zero trials", "huge", "one level zero"]
WEIGHT_KINDS = [None] * 8 + ["ones", "column", "nan", "zero", "negative", "inf", "wrong length", "strings",
                             "non-integer", "all zero"]
OFFSET_KINDS = [None] * 8 + ["column", "array", "term", "nan", "inf", "wrong length", "huge", "constant"]
NAGQ_VALUES = [1] * 6 + [0, 0, 5, 26, -1, "a", True]
GROUPINGS = ["plain"] * 6 + ["one level", "two levels", "a level per row", "nan", "ints"]
FORMULAS = ["{y} ~ x + (1 | g)"] * 3 + ["{y} ~ 1 + (1 | g)", "{y} ~ x + (x | g)", "{y} ~ x + (1 | g) + (1 | h)",
                                        "{y} ~ x + (1 | g/h)", "{y} ~ 0 + x + (1 | g)"]


@dataclass
class GlmmCase:
    frame: pd.DataFrame
    formula: str
    family: Any
    kwargs: dict
    backend: str
    missing: np.ndarray  # rows that should be dropped for a missing value

    @property
    def names(self) -> list[str]:
        return ["resp", "s", "f", "n", "x", "g", "h", "o", "w", "response", "weights", "offset", "nAGQ", "data",
                "formula", "term", self.formula.split("~")[0].strip()]


def _mutate(values: np.ndarray, how: str, rng: np.random.Generator, kind: str, x: np.ndarray) -> np.ndarray:
    n = len(values)
    out = values.astype(float)
    where = rng.choice(n, size=max(1, n // 6), replace=False)
    if how in ("nan", "none"):
        out[where] = np.nan
    elif how == "inf":
        out[where] = np.inf
    elif how == "negative":
        out[where] = -1.0
    elif how == "non-integer":
        out = out + 0.5
    elif how == "all zero":
        out = np.zeros(n)
    elif how == "all one":
        out = np.ones(n) if kind != "counts" else out
    elif how == "separated":
        out = (x > 0).astype(float) * (1.0 if kind != "counts" else 5.0)
    elif how == "huge":
        out = out * 1e9
    return out


@st.composite
def glmm_cases(draw) -> GlmmCase:
    name = draw(st.sampled_from(["binomial"] * 3 + ["poisson"] * 2))
    link = draw(st.sampled_from([LINKS[name][0]] * 3 + list(LINKS[name])))
    n = draw(st.sampled_from([40] * 4 + [2, 3, 8, 15]))
    grouping = draw(st.sampled_from(GROUPINGS))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n_levels = {"one level": 1, "two levels": 2, "a level per row": n}.get(grouping, max(2, n // 5))
    g = np.arange(n) % n_levels
    x = rng.standard_normal(n)
    b = rng.standard_normal(n_levels)
    prob = 1.0 / (1.0 + np.exp(-(0.7 * x + b[g])))
    trials = rng.integers(1, 7, n).astype(float)
    successes = rng.binomial(trials.astype(int), prob).astype(float)
    counts = rng.poisson(np.exp(1.0 + 0.3 * x + 0.5 * b[g])).astype(float)
    kind = draw(st.sampled_from(RESPONSE_KINDS[name]))
    how = draw(st.sampled_from(RESPONSE_MUTATIONS))
    frame = pd.DataFrame({"x": x, "g": [f"l{j}" for j in g], "h": [f"m{j}" for j in np.arange(n) % 3]})
    missing = np.zeros(n, bool)
    if grouping == "nan":
        frame["g"] = objects([None if i % 7 == 3 else v for i, v in enumerate(frame["g"])])
        missing |= frame["g"].isna().to_numpy()
    elif grouping == "ints":
        frame["g"] = g
    if kind.startswith("cbind"):
        if how == "zero trials":
            successes[: n // 3] = 0
            trials[: n // 3] = 0
        s = _mutate(successes, how, rng, kind, x)
        s = np.minimum(s, trials) if how not in ("inf", "non-integer", "huge") else s
        frame["s"], frame["n"] = s, trials
        frame["f"] = trials - np.where(np.isfinite(s), s, 0)
        if how == "all one":
            frame["f"] = 0.0
        missing |= np.isnan(s)
        lhs = "cbind(s, f)" if kind == "cbind(s, f)" else "cbind(s, n - s)"
    else:
        if kind in ("proportion", "proportion+weights"):
            base = successes / trials
        elif name == "poisson":
            base = counts
        else:
            base = (rng.random(n) < prob).astype(float)
        values = _mutate(base, how, rng, "counts" if name == "poisson" else kind, x)
        if how == "one level zero":
            values = np.where(g == 0, 0.0, values)
        missing |= np.isnan(values)
        present = ~np.isnan(values)
        integral = np.all(np.isfinite(values[present])) and np.all(values[present] == np.round(values[present]))
        if kind in ("int 0/1", "Int64 counts") and integral:
            column = pd.Series(pd.array([None if np.isnan(v) else int(v) for v in values], dtype="Int64"))
        elif kind == "bool" and np.all(np.isin(values[present], (0.0, 1.0))):
            column = objects([None if np.isnan(v) else bool(v) for v in values])
        elif kind in ("strings", "strings3") and np.all(np.isin(values[present], (0.0, 1.0))):
            words = ["no", "yes"] if kind == "strings" else ["a", "b", "c"]
            column = objects([None if np.isnan(v) else words[int(v) + (int(v) and i % 2 and kind == "strings3")]
                              for i, v in enumerate(values)])
        elif kind == "category" and np.all(np.isin(values[present], (0.0, 1.0))):
            column = pd.Series(pd.Categorical([None if np.isnan(v) else ["no", "yes"][int(v)] for v in values]))
        else:
            column = pd.Series(values)
        frame["resp"] = column.array
        frame["n"] = trials
        lhs = "resp"
    kwargs: dict[str, Any] = {"family": family(name, link)}
    weight_kind = draw(st.sampled_from(WEIGHT_KINDS))
    if kind == "proportion+weights":
        weight_kind = draw(st.sampled_from(["column", "column", "nan", "zero", "negative"]))
    weights = {"ones": np.ones(n), "column": trials, "nan": np.where(np.arange(n) % 9 == 2, np.nan, trials),
               "zero": np.where(np.arange(n) % 5 == 0, 0.0, trials), "negative": np.where(np.arange(n) == 1, -1.0, 1.0),
               "inf": np.where(np.arange(n) == 1, np.inf, 1.0), "wrong length": np.ones(n + 1),
               "strings": ["1"] * n, "non-integer": np.linspace(0.5, 1.5, n), "all zero": np.zeros(n)}.get(weight_kind)
    if weight_kind is not None:
        if draw(st.booleans()) and not isinstance(weights, list) and len(weights) == n:
            frame["w"] = weights
            kwargs["weights"] = "w"
        else:
            kwargs["weights"] = weights
        if weight_kind == "nan":
            missing |= np.isnan(weights)
    offset_kind = draw(st.sampled_from(OFFSET_KINDS))
    formula = draw(st.sampled_from(FORMULAS))
    frame["o"] = 0.2 * x
    if offset_kind == "column":
        kwargs["offset"] = "o"
    elif offset_kind == "array":
        kwargs["offset"] = frame["o"].to_numpy()
    elif offset_kind == "term":
        formula = formula.replace(" + (", " + offset(o) + (", 1)
    elif offset_kind == "nan":
        kwargs["offset"] = np.where(np.arange(n) % 8 == 5, np.nan, 0.1)
        missing |= np.isnan(kwargs["offset"])
    elif offset_kind == "inf":
        kwargs["offset"] = np.where(np.arange(n) == 0, np.inf, 0.1)
    elif offset_kind == "wrong length":
        kwargs["offset"] = [0.0] * (n + 2)
    elif offset_kind == "huge":
        kwargs["offset"] = np.full(n, 1e6)
    elif offset_kind == "constant":
        kwargs["offset"] = np.full(n, 2.0)
    nagq = draw(st.sampled_from(NAGQ_VALUES))
    if nagq != 1:
        kwargs["nAGQ"] = nagq
    backend = draw(st.sampled_from(["pandas"] * 3 + BACKENDS))
    return GlmmCase(frame, formula.format(y=lhs), kwargs["family"], kwargs, backend, missing)


def run_case(case: GlmmCase) -> str | None:
    data = as_backend(case.frame, case.backend)
    if data is None:
        return None
    out = check(lambda: interlace.fit(case.formula, data, **case.kwargs), data, case.names)
    if out.kind == "fit":
        expected = int(case.missing.sum())
        assert out.result.n_dropped == expected, (out.result.n_dropped, expected)
        assert bool(out.warned(MissingValuesWarning)) == (expected > 0)
    return out.kind


@SETTINGS
@given(glmm_cases())
def test_awkward_glmm_frames(case):
    run_case(case)


def test_awkward_glmm_frames_reach_every_outcome():
    """The strategy is not vacuous: it makes fits and errors (the outcomes only: the
    contract is test_awkward_glmm_frames')."""
    outcomes: set[str] = set()

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(glmm_cases())
    def collect(case):
        data = as_backend(case.frame, case.backend)
        if data is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                interlace.fit(case.formula, data, **case.kwargs)
                outcomes.add("fit")
            except Exception:  # noqa: BLE001 - an outcome, whatever its kind
                outcomes.add("error")

    collect()
    assert outcomes == {"fit", "error"}


# ----- hypothesis: malformed formulas ----------------------------------------------------

FORMULA_TOKENS = ["y", "s", "f", "n", "c", "x", "g", "~", "+", "-", "*", ":", "|", "||", "(", ")", "1", "0", ",",
                  "cbind(", "cbind(s, f)", "cbind(s, n - s)", "I(", "log(", "offset(", "(1 | g)", "(x | g)", " ",
                  "`", ">", "2", ".", "foo(", "[", "\n"]


@st.composite
def glmm_formulas(draw) -> str:
    text = "".join(draw(st.lists(st.sampled_from(FORMULA_TOKENS), max_size=12)))
    if draw(st.booleans()):
        text = draw(st.sampled_from(["y ~ ", "cbind(s, f) ~ ", "c ~ ", "~ "])) + text
    if draw(st.booleans()):
        text += " + (1 | g)"
    return text


@SETTINGS
@given(glmm_formulas(), st.sampled_from(["binomial", "poisson"]))
def test_malformed_glmm_formulas(formula, name):
    lhs = formula.split("~", 1)[0].strip()
    check(lambda: interlace.fit(formula, BASE, family=name), BASE,
          ["formula", "term", "terms", "response", "y", "s", "f", "n", "c", "x", "g", "data", lhs])


# ----- hypothesis: wrong arguments -------------------------------------------------------

WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=3), st.lists(st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.just(object()), st.just(np.array([1.0, np.nan])),
    st.just(np.zeros((2, 2))), st.just(pd.Series([1, 2])), st.just("binomial "), st.just(["g", 3]),
)


@SETTINGS
@given(st.sampled_from(["family", "nAGQ", "weights", "offset"]), WRONG_VALUES)
def test_wrong_generalized_arguments(argument, value):
    if argument == "family" and value is None:
        return  # a linear fit (tests/test_robustness.py)
    kwargs = {"family": "poisson", argument: value}
    texts = value if isinstance(value, list) else [value]
    names = [argument, "link"] + [v for v in texts if isinstance(v, str) and v.strip()]
    check(lambda: interlace.fit(POISSON_FORMULA, BASE, **kwargs), BASE, names)
