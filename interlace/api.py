"""The user-facing entry points: validate the arguments, run the fitting pipeline.

Pipeline: parse the formula -> read the used columns from any frame -> drop rows
with missing values -> build the design (codes, X, y) -> build the penalised
system on the path the dispatch picks -> optimise theta -> estimates -> result.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from .conditioning import Conditioning, condition
from .design import ModelDesign, build_design
from .errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    InterlaceError,
    MissingValuesWarning,
    SingularFitWarning,
)
from .estimates import (
    Estimates,
    boundary_flags,
    compute_estimates,
    lme4_term_order,
    random_effects_frames,
    variance_components,
)
from .formula.random import RandomTermSpec, parse_random_term, quote_name, split_formula
from .formula.rformula import formula_variables
from .frames import (
    ingest,
    missing_rows,
    model_columns,
    numeric_values,
    row_values,
    same_values,
    select_as_pandas,
    with_column,
)
from .gradient import deviance_functions
from .linalg.dispatch import build_system
from .optimize import OPTIMIZERS, OptimizationRecord, optimize_theta
from .result import CrossedLMEResult, ModelInfo
from .start import start_theta

Method = Literal["REML", "ML"]
NaAction = Literal["drop", "raise"]
DfMethod = Literal["satterthwaite", "kenward-roger"]
DF_METHODS = ("satterthwaite", "kenward-roger")


def _choice(argument: str, value: Any, allowed: Sequence[str]) -> str:
    for a in allowed:
        if isinstance(value, str) and value.lower() == a.lower():
            return a
    raise InterlaceError(f"{argument}: expected one of {', '.join(map(repr, allowed))}, found {value!r}")


GROUPS_NAME = "group"
"""The grouping factor's name when ``groups=`` is an unnamed array of the rows' groups."""


def _attach_groups(data: Any, groups: Any) -> tuple[Any, Any]:
    """``groups`` given as the rows' groups (a pandas/polars Series, a pyarrow or numpy
    array: statsmodels' habit) becomes a column of a new frame of the caller's type,
    named after the Series, else ``"group"``; column names pass through unchanged."""
    found = row_values(groups, "groups")
    if found is None:
        return data, groups
    name, values = found
    frame, info = ingest(data)
    if len(values) != info.n_rows:
        raise DataError(f"groups: expected one group per row of data ({info.n_rows} rows), "
                        f"found {len(values)} values")
    name = name or GROUPS_NAME
    if name in info.columns:
        if same_values(select_as_pandas(frame, [name])[name], values):
            return data, name
        raise DataError(
            f"groups: the rows' groups are named {name!r} like a column of data that holds other "
            "values; give them another name (pandas: Series.rename, polars: Series.alias)"
        )
    return with_column(frame if isinstance(frame, pd.DataFrame) else data, name, values), name


MAX_EVALUATIONS = 2**31 - 1
"""The largest ``max_evaluations`` (lme4's ``maxfun`` is an R integer too)."""


def _check_start(start: Any) -> np.ndarray | None:
    """``start`` as a 1-d float array of finite numbers (its length is checked against
    the model's theta once the model is built), or None."""
    if start is None:
        return None
    if isinstance(start, (str, bytes, dict)) or not hasattr(start, "__len__"):
        raise InterlaceError(f"start: expected a sequence of theta values, found {type(start).__name__} {start!r}")
    try:
        values = np.asarray(start, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InterlaceError(f"start: expected numbers, found {start!r}") from exc
    if values.ndim != 1:
        raise InterlaceError(f"start: expected a 1-d sequence of theta values, found shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InterlaceError(f"start: expected finite numbers, found {values.tolist()!r}")
    return values


def _check_max_evaluations(max_evaluations: Any) -> None:
    if (isinstance(max_evaluations, bool) or not isinstance(max_evaluations, (int, np.integer))
            or max_evaluations < 1):
        raise InterlaceError(f"max_evaluations: expected a positive integer, found {max_evaluations!r}")
    if max_evaluations > MAX_EVALUATIONS:
        raise InterlaceError(f"max_evaluations: expected at most {MAX_EVALUATIONS}, found {max_evaluations!r}")


def _argument_term(argument: str, text: str) -> list[RandomTermSpec]:
    try:
        return parse_random_term(text)
    except FormulaError as exc:
        raise FormulaError(f"{argument}: {exc}") from exc


def _random_specs(groups: str | Sequence[str] | None, random: str | Sequence[str] | None) -> list[RandomTermSpec]:
    specs: list[RandomTermSpec] = []
    if groups is not None:
        if not isinstance(groups, (str, list, tuple)):
            raise InterlaceError(
                "groups: expected a column name, a list of column names, or the rows' groups as a "
                f"Series or 1-d array, found {type(groups).__name__}"
            )
        names = [groups] if isinstance(groups, str) else list(groups)
        for name in names:
            if not isinstance(name, str) or not name:
                raise InterlaceError(f"groups: expected column names, found {name!r}")
            specs.extend(_argument_term("groups", f"(1 | {quote_name(name)})"))
    if random is not None:
        if not isinstance(random, (str, list, tuple)):
            raise InterlaceError(
                f"random: expected a term like '(1 + x | g)' or a list of them, found {type(random).__name__}"
            )
        terms = [random] if isinstance(random, str) else list(random)
        for term in terms:
            if not isinstance(term, str):
                raise InterlaceError(f"random: expected terms like '(1 + x | g)', found {term!r}")
            text = term.strip()
            specs.extend(_argument_term("random", text if text.startswith("(") else f"({text})"))
    return specs


def _used_columns(text: str, columns: Sequence[str], where: str) -> list[str]:
    """Columns named in ``text`` (read as R reads a formula: function and argument
    names and R's constants are not columns); any other name is an unknown column."""
    present = set(columns)
    used: list[str] = []
    for token in formula_variables(text, present):
        if token not in present:
            raise DataError(
                f"{where}: column {token!r} not found in data (columns: {', '.join(map(str, columns))})"
            )
        used.append(token)
    return used


def _check_response(formula: str, table: pd.DataFrame) -> None:
    lhs = formula.split("~", 1)[0].strip().strip("`")
    if lhs in table.columns:
        column = table[lhs]
        numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
        if column.dtype == object:  # numbers or decimals held as Python objects
            numeric = pd.api.types.infer_dtype(column, skipna=True) in (
                "integer", "floating", "mixed-integer-float", "decimal")
        if not numeric:
            raise DataError(f"response {lhs!r}: expected a numeric column, found dtype {column.dtype}")


def _check_intercept_column(fixed_formula: str, specs: list[RandomTermSpec], columns: Sequence[str]) -> None:
    """A predictor column named ``Intercept`` would share its coefficient's name with
    the intercept (R names that ``(Intercept)``): refused, naming the column."""
    if "Intercept" not in columns:
        return
    rhs = fixed_formula.split("~", 1)[1]
    read = set(formula_variables(rhs, set(columns)))
    for spec in specs:
        read.update(formula_variables(spec.expr, set(columns)))
    if "Intercept" in read:
        raise DataError(
            "column 'Intercept': a predictor of this name would share its coefficient's name with "
            "the intercept's; rename the column (pandas: data.rename(columns={'Intercept': ...}))"
        )


def _row_argument(argument: str, value: Any, columns: Sequence[str], n_rows: int) -> str | np.ndarray | None:
    """``weights=`` or ``offset=``: a column name (checked to exist), or its numbers per
    row as a float array (NaN where missing), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in columns:
            raise DataError(f"{argument}: column {value!r} not found in data (columns: {', '.join(map(str, columns))})")
        return value
    values = numeric_values(value, argument)
    if len(values) != n_rows:
        raise DataError(f"{argument}: expected one number per row of data ({n_rows} rows), found {len(values)}")
    return values


def _row_numbers(argument: str, given: str | np.ndarray | None, table: pd.DataFrame,
                 kept: np.ndarray) -> np.ndarray | None:
    """The numbers of a ``weights=``/``offset=`` argument for the rows of ``table`` (a
    column of it, or the given numbers of the rows ``kept``)."""
    if given is None:
        return None
    if isinstance(given, str):
        column = table[given]
        if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            raise DataError(f"{argument}: expected a numeric column, found column {given!r} of dtype {column.dtype}")
        return np.ascontiguousarray(column.to_numpy(dtype=np.float64))
    return np.ascontiguousarray(given[kept])


def prepare(formula: str, data: Any, groups=None, random=None, na_action: str = "drop", weights: Any = None,
            offset: Any = None) -> tuple[ModelDesign, str, pd.DataFrame, np.ndarray]:
    """Parse and read the data: the design, the full formula, the used rows, and the
    positions of the rows dropped for missing values (in a used column, the weights or
    the offset)."""
    na_action = _choice("na_action", na_action, ("drop", "raise"))
    data, groups = _attach_groups(data, groups)
    fixed_formula, specs = split_formula(formula)
    specs = specs + _random_specs(groups, random)
    if not specs:
        raise FormulaError(
            f"formula {formula!r}: no random-effects term; write one like '(1 | g)' in the "
            "formula or pass groups= / random="
        )
    full_formula = formula if not (groups or random) else (
        fixed_formula + "".join(f" + ({s.expr} | {':'.join(map(quote_name, s.factors))})" for s in specs)
    )
    frame, info = ingest(data)
    columns = list(info.columns)
    used = _used_columns(fixed_formula, columns, f"formula {fixed_formula!r}")
    predictors = set(used)
    for spec in specs:
        for name in spec.factors:
            if name not in columns:
                raise DataError(
                    f"random term {spec.source!r}: grouping column {name!r} not found in data "
                    f"(columns: {', '.join(map(str, columns))})"
                )
        slopes = _used_columns(spec.expr, columns, f"random term {spec.source!r}")
        predictors.update(slopes)
        for name in slopes + list(spec.factors):
            if name not in used:
                used.append(name)
    _check_intercept_column(fixed_formula, specs, columns)
    given = {argument: _row_argument(argument, value, columns, info.n_rows)
             for argument, value in (("weights", weights), ("offset", offset))}
    for value in given.values():
        if isinstance(value, str) and value not in used:
            used.append(value)
    table = select_as_pandas(frame, used)
    _check_response(fixed_formula, table)
    missing = missing_rows(table)
    for value in given.values():
        if isinstance(value, np.ndarray):
            missing = missing | np.isnan(value)
    n_dropped = int(missing.sum())
    if n_dropped:
        if na_action == "raise":
            bad = [c for c in used if table[c].isna().any()]
            bad += [a for a, v in given.items() if isinstance(v, np.ndarray) and np.isnan(v).any()]
            raise DataError(
                f"data: {n_dropped} row(s) have missing values in {', '.join(bad)} and "
                "na_action='raise'"
            )
        table = table.loc[~missing].reset_index(drop=True)
    if info.n_rows == 0:
        raise DataError(f"data: expected rows, found an empty frame (columns: {', '.join(map(str, columns))})")
    if len(table) == 0:
        raise DataError(
            f"data: no rows left after dropping missing values ({n_dropped} of {info.n_rows} "
            f"rows had a missing value in {', '.join(used)})"
        )
    kept = np.flatnonzero(~missing)
    numbers = {argument: _row_numbers(argument, value, table, kept) for argument, value in given.items()}
    table = model_columns(table, predictors)
    design = build_design(fixed_formula, specs, table, numbers["weights"], numbers["offset"],
                          given["offset"] if isinstance(given["offset"], str) else None)
    return design, full_formula, table, np.flatnonzero(missing)


def fit(
    formula: str,
    data: Any,
    groups: str | Sequence[str] | None = None,
    random: str | Sequence[str] | None = None,
    method: Method = "REML",
    *,
    start: Sequence[float] | None = None,
    optimizer: str = "auto",
    max_evaluations: int = 100_000,
    solver: str = "auto",
    na_action: NaAction = "drop",
    df_method: DfMethod = "satterthwaite",
    max_dense_gib: float | None = None,
    weights: str | Sequence[float] | None = None,
    offset: str | Sequence[float] | None = None,
) -> CrossedLMEResult:
    """Fit a linear mixed model with crossed (or nested) random effects.

    Parameters
    ----------
    formula : str
        ``"y ~ x + (1 + x | g) + (1 | h)"`` in lme4's syntax, or the fixed part
        only (``"y ~ x"``) with ``groups=``/``random=`` naming the random part.
    data : DataFrame
        Any eager frame narwhals reads: pandas, polars, a pyarrow Table. Not modified.
    groups : str, list of str, or Series / array, optional
        Columns that each get a random intercept, ``(1 | g)``. Or, as statsmodels'
        ``MixedLM``, the rows' groups themselves (a pandas or polars Series, a pyarrow or
        numpy array, in row order): a grouping factor named after the Series, else
        ``"group"``, added as a column to a copy of ``data`` (``result.model.data``).
    random : str or list of str, optional
        Random terms in lme4's syntax, e.g. ``"(1 + x | g)"``.
    method : {"REML", "ML"}
        Restricted (default, as lme4) or full maximum likelihood.
    start : sequence of float, optional
        Start values of theta (lme4's order). By default lme4's start, or moment
        estimates where the Newton optimiser runs (see :mod:`interlace.start`).
    optimizer : str
        ``"auto"`` (default: a compiled BFGS or L-BFGS-B with the analytic gradient on
        the dense path; Newton's method with the average information on the blocked
        path when every term is scalar; COBYQA otherwise), ``"newton"``, ``"cobyqa"``,
        ``"l-bfgs-b"``, ``"powell"`` or ``"nelder-mead"``.
    max_evaluations : int
        Budget of objective evaluations (lme4's ``maxfun``); a fit that runs out
        warns and reports ``converged=False``.
    solver : {"auto", "dense", "sparse"}
        Forces the Cholesky path; ``"auto"`` decides by size (see
        :mod:`interlace.linalg.dispatch`).
    na_action : {"drop", "raise"}
        Drop rows with a missing value in a used column (lme4's ``na.omit``) or raise.
    df_method : {"satterthwaite", "kenward-roger"}
        Denominator df of the t and F tests: Satterthwaite's (lmerTest's default) or
        Kenward-Roger's (pbkrtest; REML fits only, and then ``fe_bse`` are the
        adjusted standard errors).
    max_dense_gib : float, optional
        Memory in GiB the fit's dense matrices may take at their peak (about five
        copies of the dense system, or of the rest the blocked path keeps dense). A
        model that needs more is refused before anything large is allocated, with an
        error naming both sizes (unless its rest can be held sparse instead). By
        default half of the machine's memory (or of its container's limit); see
        :mod:`interlace.linalg.dispatch`.
    weights : str or sequence of float, optional
        Prior weights, as lmer's ``weights``: a column of ``data`` or one number per
        row, positive. They are precision weights: row i's residual variance is
        sigma^2 / w_i, and the log-likelihood is lme4's (with its 0.5 sum log w_i).
        Rows whose weight is missing are dropped.
    offset : str or sequence of float, optional
        A known part of the linear predictor, as lmer's ``offset``: a column of
        ``data`` or one number per row, added to any ``offset()`` terms of the formula.
        The fit is that of y - offset; fitted values and predictions include it (a
        column is read from ``newdata`` by :meth:`~CrossedLMEResult.predict`).

    Returns
    -------
    CrossedLMEResult

    Examples
    --------
    >>> import interlace
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> m = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    >>> m.fe_params.round(2).to_dict()
    {'Intercept': 251.41, 'Days': 10.47}
    >>> m2 = interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    >>> bool(np.allclose(m.theta, m2.theta))
    True
    """
    method = _choice("method", method, ("REML", "ML"))
    df_method = _choice("df_method", df_method, DF_METHODS)
    if df_method == "kenward-roger" and method != "REML":
        raise InterlaceError(
            "df_method='kenward-roger': Kenward-Roger is defined for REML fits (as pbkrtest), "
            "found method='ML'"
        )
    start = _check_start(start)
    _check_max_evaluations(max_evaluations)
    if not isinstance(solver, str):
        raise InterlaceError(f"solver: expected 'auto', 'dense' or 'sparse', found {solver!r}")
    if not isinstance(optimizer, str):
        raise InterlaceError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, found {optimizer!r}")
    data, groups = _attach_groups(data, groups)
    design, full_formula, table, dropped_rows = prepare(formula, data, groups, random, na_action, weights, offset)
    conditioning, working = condition(design)  # the fit runs on the working scale
    system = build_system(working, solver, max_dense_gib)
    reml = method == "REML"
    objective, with_gradient = deviance_functions(system, reml)
    if start is None:
        theta0 = start_theta(system)
    else:
        theta0 = np.asarray(start, dtype=np.float64).ravel()
        if theta0.shape != (design.n_theta,):
            raise InterlaceError(
                f"start: expected {design.n_theta} values for theta "
                f"({', '.join(design.theta_names)}), found {theta0.size}"
            )
    if not isinstance(max_evaluations, (int, np.integer)) or max_evaluations < 1:
        raise InterlaceError(f"max_evaluations: expected a positive integer, found {max_evaluations!r}")
    record = optimize_theta(objective, theta0, design.theta_lower, optimizer, int(max_evaluations), with_gradient,
                            polish=True)
    options = {"method": method, "solver": solver, "optimizer": optimizer,
               "max_evaluations": int(max_evaluations), "na_action": na_action, "df_method": df_method,
               "max_dense_gib": max_dense_gib, "weights": weights, "offset": offset}
    factor = _optimum_factor(objective, with_gradient, theta=record.theta)
    return _assemble(conditioning, system, record, reml, method, df_method, full_formula, data, dropped_rows,
                     options, factor=factor)


def _optimum_factor(*criteria, theta: np.ndarray):
    """The factor at the optimum when a criterion still holds it from its last
    evaluation (on a large model the factorisation is the costliest step), else None."""
    for criterion in criteria:
        owner = getattr(criterion, "__self__", criterion)  # a bound ``value`` method
        if hasattr(owner, "last_factor"):
            factor = owner.last_factor(theta)
            if factor is not None:
                return factor
    return None


def predict(result: CrossedLMEResult, newdata: Any = None, include_re: bool = True) -> np.ndarray:
    """Predictions of a fitted model; see :meth:`CrossedLMEResult.predict`.

    Examples
    --------
    >>> import interlace
    >>> m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff"))
    >>> bool(np.allclose(interlace.predict(m), m.fittedvalues))
    True
    """
    if not isinstance(result, CrossedLMEResult):
        raise InterlaceError(f"result: expected a CrossedLMEResult, found {type(result).__name__}")
    return result.predict(newdata, include_re)


def simulate(result: CrossedLMEResult, nsim: int = 1, seed=None, use_re: bool = False) -> np.ndarray:
    """Responses simulated from a fitted model; see :meth:`CrossedLMEResult.simulate`."""
    if not isinstance(result, CrossedLMEResult):
        raise InterlaceError(f"result: expected a CrossedLMEResult, found {type(result).__name__}")
    return result.simulate(nsim, seed, use_re)


def bootMer(result: CrossedLMEResult, statistic=None, B: int = 500, seed=None,  # noqa: N802
            show_progress: bool = False, n_jobs: int = 1, use_re: bool = False):
    """Parametric bootstrap of a fitted model; see :meth:`CrossedLMEResult.bootMer`."""
    if not isinstance(result, CrossedLMEResult):
        raise InterlaceError(f"result: expected a CrossedLMEResult, found {type(result).__name__}")
    return result.bootMer(statistic, B, seed, show_progress, n_jobs, use_re)


def isSingular(result: CrossedLMEResult, tol: float = 1e-4) -> bool:  # noqa: N802 (lme4's name)
    """lme4's ``isSingular``: whether a diagonal entry of a relative covariance factor
    (a theta entry with lower bound 0) is below ``tol``.

    Examples
    --------
    >>> import interlace, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     m = interlace.fit("Yield ~ 1 + (1 | Batch)", interlace.load_dataset("Dyestuff2"))
    >>> interlace.isSingular(m), interlace.isSingular(m, tol=0.0)
    (True, False)
    """
    if not isinstance(result, CrossedLMEResult):
        raise InterlaceError(f"result: expected a CrossedLMEResult, found {type(result).__name__}")
    if not tol >= 0:
        raise InterlaceError(f"tol: expected a non-negative number, found {tol!r}")
    return any(boundary_flags(result._system.design, result.theta, tol).values())


def anova(*results: CrossedLMEResult, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Analysis of variance: lmerTest's type III table for one model, lme4's
    likelihood-ratio table for several.

    With one result: one row per fixed-effect term, F tests of lmerTest's type III
    hypotheses with Satterthwaite's denominator df. With several: the models in
    order of their number of parameters, each compared with the one before by a
    likelihood-ratio test; REML fits are refitted by ML first (a
    :class:`~interlace.inference.anova.RefitWarning` says so), as lme4's ``anova``.

    Examples
    --------
    >>> import interlace, warnings
    >>> sleep = interlace.load_dataset("sleepstudy")
    >>> m1 = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    >>> interlace.anova(m1)[["NumDF", "DenDF", "F value"]].round(2)
          NumDF  DenDF  F value
    Days      1   17.0    45.85
    >>> m0 = interlace.fit("Reaction ~ Days + (1 | Subject)", sleep)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     table = interlace.anova(m0, m1, names=["m0", "m1"])
    >>> table[["npar", "Chisq", "Df"]].round(2)
        npar  Chisq   Df
    m0     4    NaN  NaN
    m1     6  42.14  2.0
    """
    from .inference.anova import likelihood_ratio_table, type3_table

    if not results:
        raise InterlaceError("anova: expected at least one fitted model, found none")
    for r in results:
        if not isinstance(r, CrossedLMEResult):
            raise InterlaceError(f"anova: expected fitted models (CrossedLMEResult), found {type(r).__name__}")
    if len(results) == 1:
        return type3_table(results[0])
    return likelihood_ratio_table(list(results), None if names is None else list(names))


def _assemble(conditioning: Conditioning, system, record: OptimizationRecord, reml: bool, method: str,
              df_method: str, formula: str, data: Any, dropped_rows: np.ndarray,
              options: dict | None = None, model: ModelInfo | None = None,
              factor=None) -> CrossedLMEResult:
    """The result of an optimum ``record`` of ``system`` (built on the working design of
    ``conditioning``), every value on the caller's scale."""
    design = conditioning.design
    theta = record.theta
    if factor is None:
        factor = system.factorize(theta)
    est: Estimates = compute_estimates(system, factor, theta, reml, record.objective, conditioning)
    names = design.fixed_index
    fe_params = pd.Series(est.beta, index=names, name="Estimate")
    fe_bse = pd.Series(np.sqrt(np.diag(est.fe_cov)), index=names, name="Std. Error")
    components, correlations = variance_components(design, theta, est.scale)
    flags = boundary_flags(design, theta)
    singular = any(flags.values())
    if singular:
        warnings.warn("boundary (singular) fit: see interlace.isSingular", SingularFitWarning, stacklevel=3)
    if not record.converged:
        warnings.warn(
            f"the optimizer ({record.optimizer}) did not converge: {record.message}",
            ConvergenceWarning,
            stacklevel=3,
        )
    n_dropped = len(dropped_rows)
    if n_dropped:
        warnings.warn(
            f"{n_dropped} row{'s' if n_dropped > 1 else ''} with missing values "
            f"{'were' if n_dropped > 1 else 'was'} dropped",
            MissingValuesWarning,
            stacklevel=3,
        )
    ordered = lme4_term_order(design)
    model = model or ModelInfo(
        exog=design.X,
        endog=design.fixed.observed,
        exog_names=list(design.fixed_names),
        endog_names=design.fixed.response_name,
        groups={t.name: pd.Categorical.from_codes(t.group_codes, categories=t.levels) for t in ordered},
        formula=formula,
        data=data,
        dropped_rows=dropped_rows,
    )
    result = CrossedLMEResult(
        fe_params=fe_params,
        fe_bse=fe_bse,
        fe_cov=est.fe_cov,
        random_effects=random_effects_frames(design, est.effects),
        variance_components=components,
        correlation_params=correlations,
        theta=theta.copy(),
        theta_names=design.theta_names,
        scale=est.scale,
        llf=-0.5 * est.deviance,
        nparams=design.n_fixed + design.n_theta + 1,
        resid=est.resid,  # y - offset - (X b + Z u)
        fittedvalues=design.fixed.with_offset_added(est.fitted),
        nobs=design.n_obs,
        ngroups={t.name: t.n_levels for t in ordered},
        method=method,
        converged=record.converged,
        df_method="satterthwaite",
        model=model,
        is_singular=singular,
        boundary_flags=flags,
        n_dropped=n_dropped,
        optimization=replace(record, objective=est.deviance),
        solver_path=system.path,
        fit_options=dict(options or {}),
        _system=system,
        _factor=factor,
        _conditioning=conditioning,
    )
    return result.with_df_method(df_method) if df_method != "satterthwaite" else result
