"""The fit of a linear mixed model from a Dask frame: three passes over the
partitions (:mod:`interlace.partitioned`), then the penalised system, the optimiser
and the result on the driver, as :func:`interlace.fitting.linear.fit_linear` in
memory."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from ..design import (
    _check_fixed_size,
    assemble_terms,
    check_term_size,
    comparable_gram,
    sequential_rank,
    warn_if_exact,
    warn_rank_deficient,
)
from ..errors import DataError, InterlaceError, MissingValuesWarning
from ..fitting.linear import assemble, optimum_factor, optimum_pwrss
from ..fitting.model_frame import _check_response, _columns_read, _formula_terms
from ..formula.fixed import fixed_design, term_design
from ..formula.random import quote_name
from ..formula.terms import fixed_terms
from ..linalg.dispatch import build_system
from ..result import CrossedLMEResult
from ..shallow import with_fields
from .coupling import WorkerCoupling, shard_bounds
from .crossproducts import (
    SummedCrossProducts,
    WorkingScale,
    partition_crossproducts,
    partition_split_crossproducts,
)
from .design import RowlessConditioning, RowlessDesign, working_scale
from .levels import categorical_predictors, factor_levels, predictor_categories, scan_partition
from .moments import Moments, partition_moments
from .reduction import tree_sum, tree_sums
from .rows import RowPlan, grouping_specs, used_table
from .system import coupling_client, system_with_worker_coupling


def _column_argument(argument: str, value: Any, columns: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InterlaceError(f"{argument}: with a Dask frame, expected the name of one of its columns, found "
                             f"{type(value).__name__} (numbers per row cannot follow the partitions)")
    if value not in columns:
        raise DataError(f"{argument}: column {value!r} not found in data (columns: {', '.join(map(str, columns))})")
    return value


def _stateless(spec: Any, where: str) -> None:
    """A formula part whose columns depend on every row's values (``scale(x)``,
    ``poly(x, 2)``, ``factor(x)``: a transform that keeps state, such as a mean or the
    levels, for new data) cannot be built partition by partition: an error naming it.
    Transforms of each row alone (``log(x)``, ``I(x^2)``) keep no state and are read
    in each partition as in memory."""
    state = getattr(spec, "transform_state", None) or {}
    stateful = [str(name) for name, value in state.items() if value]
    if stateful:
        raise InterlaceError(
            f"{where}: a transform computed from all the rows' values ({', '.join(stateful)}) cannot be "
            "built partition by partition; compute the column in the Dask frame first (ddf.assign(...); a "
            "factor as a categorical column, ddf.astype({'x': 'category'}))"
        )


def _plan(formula: str, ddf: Any, groups, random, weights, offset):
    fixed_formula, specs, full_formula = _formula_terms(formula, groups, random)
    meta = ddf._meta
    columns = list(meta.columns)
    used, predictors = _columns_read(fixed_formula, specs, tuple(columns))
    used = list(used)
    weights = _column_argument("weights", weights, columns)
    offset = _column_argument("offset", offset, columns)
    for name in (weights, offset):
        if name is not None and name not in used:
            used.append(name)
    _check_response(fixed_formula, meta[used])
    return fixed_formula, specs, full_formula, meta, RowPlan(fixed_formula, tuple(used), frozenset(predictors),
                                                              weights, offset)


def _check_scan(scan, plan: RowPlan, na_action: str, columns: list[str]) -> int:
    if scan is None or scan.n_rows == 0:
        raise DataError(f"data: expected rows, found an empty frame (columns: {', '.join(map(str, columns))})")
    if scan.n_missing and na_action == "raise":
        bad = [c for c in plan.used if scan.missing_by_column[c]]
        raise DataError(f"data: {scan.n_missing} row(s) have missing values in {', '.join(bad)} and "
                        "na_action='raise'")
    n = scan.n_rows - scan.n_missing
    if n == 0:
        raise DataError(f"data: no rows left after dropping missing values ({scan.n_missing} of {scan.n_rows} "
                        f"rows had a missing value in {', '.join(plan.used)})")
    return n


def _template_design(sample, plan: RowPlan, specs, n: int):
    """The fixed part's names and spec, the random terms (factorisation order, with the
    whole frame's levels and no rows) and theta's names and bounds, built from a few
    complete rows (``sample``) read as every partition is."""
    template, _, _ = used_table(sample, plan)
    fixed = fixed_design(plan.fixed_formula, template)
    _stateless(fixed.model_spec, f"formula {plan.fixed_formula!r}")
    raw = []
    for spec in specs:
        design, names, part_spec = term_design(spec.expr, template, spec.source)
        _stateless(part_spec, f"random term {spec.source!r}")
        labels = plan.factor_levels[spec.factors].labels
        check_term_size(spec, len(labels), len(names), n, False)
        raw.append({"spec": spec, "codes": np.zeros(0, dtype=np.int32), "labels": labels,
                    "design": np.zeros((0, design.shape[1])), "names": names, "part_spec": part_spec})
    return (fixed, *assemble_terms(raw))


def _signed_scale(total, unit: float, size: float) -> float:
    """s with the sign of the working response's third moment (of its largest entry
    when that is 0), as in memory; the summed cross-products with y flipped to match."""
    skew = total.cubes if total.cubes != 0.0 else total.extreme
    if not (size > 0 and skew < 0):
        return unit
    total.random_tail[:, -1] *= -1.0
    total.tail[-1, :-1] *= -1.0
    total.tail[:-1, -1] *= -1.0
    return -unit


def _fixed_effects(moments: Moments, fixed, plan: RowPlan, n: int):
    """From the second pass, as in memory: the varying-response check, the columns of X
    kept (the rank rule), the size check, the exact-fit check and the working scale.
    Returns the kept columns, the caller's FixedDesign (no rows) and the working scale."""
    if moments.y_low == moments.y_high:
        raise DataError(
            f"response {fixed.response_name!r}: all {n} values are equal ({moments.y_low:g}"
            + (" after subtracting the offset" if fixed.offset_terms or plan.offset else "")
            + "); expected a response that varies (its residual variance would be zero)")
    p_all = len(fixed.column_names)
    kept = sequential_rank(comparable_gram(n, moments.mean, moments.centred, moments.low, moments.high))
    if len(kept) < p_all:
        warn_rank_deficient(fixed.column_names, kept, stacklevel=4)  # <- fit_partitioned <- fit <- the caller
    names = tuple(fixed.column_names[i] for i in kept)
    offset_terms = fixed.offset_terms + ((quote_name(plan.offset),) if plan.offset else ())
    caller_fixed = replace(fixed, response=np.zeros(0), matrix=np.zeros((0, len(kept))), column_names=names,
                           offset=None, offset_terms=offset_terms, weights=None)
    _check_fixed_size(caller_fixed, n)
    r_weighted = moments.r_weighted if moments.r_weighted is not None else moments.r_xy
    found = working_scale(r_weighted, kept, n)
    warn_if_exact(caller_fixed, found.residual_ms, found.response_ms, stacklevel=4)  # as the rank warning
    return kept, caller_fixed, found


def fit_partitioned(formula: str, ddf: Any, groups=None, random=None, *, method: str, start, optimizer: str,
                    max_evaluations: int, solver: str, na_action: str, df_method: str, max_dense_gib,
                    weights=None, offset=None, options: dict) -> CrossedLMEResult:
    """:func:`interlace.fit` of a Dask DataFrame ``ddf`` (arguments checked by it)."""
    from ..fitting.gradient import deviance_functions
    from ..fitting.optimize import optimize_theta
    from ..fitting.start import start_theta

    if groups is not None and not isinstance(groups, (str, list, tuple)):
        raise InterlaceError("groups: with a Dask frame, expected column names, found "
                             f"{type(groups).__name__}")
    fixed_formula, specs, full_formula, meta, plan = _plan(formula, ddf, groups, random, weights, offset)
    # pass 1: levels
    factors = grouping_specs(specs)
    categorical = categorical_predictors(meta, plan)
    scan = tree_sum(ddf, scan_partition, plan, factors, categorical)
    n = _check_scan(scan, plan, na_action, list(meta.columns))
    plan = replace(plan, predictor_levels={name: predictor_categories(name, scan.predictor_values[name], meta)
                                           for name in categorical},
                   factor_levels={names: factor_levels(names, scan.factor_values[names], meta) for names in factors})
    fixed, terms, theta_names, theta_lower = _template_design(scan.sample, plan, specs, n)
    plan = replace(plan, column_names=fixed.column_names,
                   terms=tuple((t.factors, t.part_specs, t.column_names) for t in terms),
                   fixed_terms=tuple(fixed_terms(fixed.model_spec)))
    # pass 2: rank, exact fit, working scale
    moments: Moments = tree_sum(ddf, partition_moments, plan)
    kept, caller_fixed, found = _fixed_effects(moments, fixed, plan, n)
    basis, log_det, shift, unit, size = found.basis, found.log_det, found.shift, found.unit, found.size
    design = RowlessDesign(fixed=caller_fixed, kept_columns=kept, terms=terms, theta_names=theta_names,
                           theta_lower=theta_lower, term_labels=tuple(re.sub(r"\s+", " ", s.source) for s in specs),
                           table=scan.sample.iloc[:0], primary_factors=specs[0].factors, n_rows=n, plan=plan,
                           gram=moments.gram[np.ix_(kept, kept)],
                           term_cross={label: (cross[kept], norms) for label, (cross, norms) in
                                       moments.term_cross.items()},
                           intercept_cross=n * moments.mean[kept])
    working = replace(design, fixed=replace(caller_fixed, offset_terms=()))
    # pass 3: the working cross-products (a large leading coupling summed into shards kept on the workers)
    n_effects = [t.n_effects for t in terms]
    working_scale = WorkingScale(kept, basis, shift, unit)
    client = coupling_client(working, solver)
    if client is None:
        total = tree_sum(ddf, partition_crossproducts, plan, working_scale, n_effects)
    else:
        bounds = shard_bounds(terms[0].n_levels, len(client.scheduler_info()["workers"]))
        futures = client.compute(tree_sums(ddf, partition_split_crossproducts, len(bounds), plan, working_scale,
                                           n_effects, bounds))
        total, lead_rows = futures[0].result(), futures[1:]
        del futures
    scale = _signed_scale(total, unit, size)
    conditioning = RowlessConditioning(design, basis, log_det, shift, scale, None, moments.sum_log_weights, size)
    crossproducts = SummedCrossProducts(total, n_effects, [t.n_columns for t in terms])
    if client is None:
        system = build_system(working, solver, max_dense_gib, crossproducts=crossproducts)
    else:
        coupling = WorkerCoupling.build(client, lead_rows, bounds, working.n_random - terms[0].n_effects,
                                        1.0 if scale > 0 else -1.0)
        del lead_rows  # the shards hold the sums now
        system = system_with_worker_coupling(working, crossproducts, coupling, solver, max_dense_gib)
    del crossproducts, total
    reml = method == "REML"
    # compiled at once (no LAPACK first fits): a fit from a cluster is no process's quick first fit
    objective, with_gradient = deviance_functions(system, reml)
    theta0 = start_theta(system) if start is None else np.asarray(start, dtype=np.float64).ravel()
    if theta0.shape != (design.n_theta,):
        raise InterlaceError(f"start: expected {design.n_theta} values for theta "
                             f"({', '.join(design.theta_names)}), found {theta0.size}")
    record = optimize_theta(objective, theta0, design.theta_lower, optimizer, int(max_evaluations), with_gradient,
                            polish=True)
    factor = optimum_factor(objective, with_gradient, theta=record.theta)
    if factor is None and getattr(system, "inverts_in_place", False):
        # the last gradient inverted the factor in its buffer: factor there again, not in a second matrix
        factor = replace(with_gradient.factor(record.theta), lead_weighted=None)
    from .outputs import model_info, row_series

    info = model_info(ddf, plan, design, full_formula)
    result = assemble(conditioning, system, record, reml, method, df_method, full_formula, ddf,
                      np.zeros(0, dtype=np.int64), options, model=info, factor=factor,
                      pwrss=optimum_pwrss(with_gradient, record.theta))
    if scan.n_missing:
        warnings.warn(f"{scan.n_missing} row{'s' if scan.n_missing > 1 else ''} with missing values "
                      f"{'were' if scan.n_missing > 1 else 'was'} dropped", MissingValuesWarning, stacklevel=3)
    return with_fields(result, n_dropped=scan.n_missing,
                       fittedvalues=row_series(ddf, plan, result, "fitted"),
                       resid=row_series(ddf, plan, result, "resid"))

