"""Contrast matrices for the fixed-effect terms, as lmerTest 3.1-3 builds them: one
matrix (rows x p) per term, for the F tests of types I, II and III and of ``drop1``.

Type I (sequential, lmerTest's ``get_contrasts_type1``): the rows of U' for the
term's columns, U the unit upper-triangular factor of X'X = U' D U (lmerTest's
``doolittle``, with its absolute threshold :data:`DOOLITTLE_EPS`).

Type II (``get_contrasts_type2_unfolded``): a term contained in no other term
(:func:`containment`) gets its marginal contrast (its own columns: rows of the
identity); any other term gets its type I contrast with X's columns reordered so
that the term comes after every term but those that contain it.

Type III (:func:`type3_contrasts`), with X the model's (treatment-coded, full-rank)
design and rdX the over-parameterised design (intercept, then every level of every
term):

With X the model's (treatment-coded, full-rank) design and rdX the
over-parameterised design (intercept, then every level of every term):

1. L = ginv(X) rdX, transposed: one row per rdX column, one column per X column;
2. for terms from the highest order down, the X-columns of a term contained in
   others (:func:`containment`) are replaced by their residuals after
   least squares on the columns of the terms that contain it;
3. the rows of L for X's own columns are kept, and a term's contrast is the
   transpose of its columns, without zero rows.

Entries are rounded as R's ``zapsmall`` does at each step.

``drop1`` (:func:`drop1_contrasts`) tests the terms contained in no other term
(:func:`drop_scope`) by their marginal contrasts; where X lost columns as redundant,
by the difference between X and the design without the term.
"""

from __future__ import annotations

import numpy as np

from ..design import ModelDesign
from ..errors import InterlaceError
from ..formula.fixed import design_for_new_data
from ..formula.terms import FixedTerm, fixed_terms, full_term_design

DOOLITTLE_EPS = 1e-6
"""lmerTest's ``doolittle`` threshold: a pivot below it (in absolute value) gives zero
multipliers, and entries below it are set to zero."""

RESIDUAL_EPS = 1e-8
"""A column of X whose residual on the design without a term has an absolute sum below
this is in that design (lmerTest's ``get_Ldiffmat2``)."""


def zapsmall(values: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    values = np.asarray(values, dtype=np.float64)
    largest = np.max(np.abs(values)) if values.size else 0.0
    if largest == 0:
        return values
    return np.round(values, max(0, digits - int(np.ceil(np.log10(largest)))))


def _match_columns(X: np.ndarray, names: tuple[str, ...], term: FixedTerm, block: np.ndarray) -> list[int]:
    """For each X column of the term, the rdX column (within the term's block) it equals."""
    out = []
    for name in term.columns:
        if name not in names:
            continue  # dropped as redundant
        column = X[:, names.index(name)]
        hits = np.flatnonzero(np.all(np.abs(block - column[:, None]) <= 1e-12 * (1 + np.abs(column[:, None])), axis=0))
        if hits.size == 0:
            raise InterlaceError(
                f"type III contrasts: column {name!r} of term {term.label!r} is not treatment-coded; "
                "type III tests need treatment contrasts"
            )
        out.append(int(hits[0]))
    return out


def _full_design_coefficients(design: ModelDesign, terms: list[FixedTerm]) -> tuple[np.ndarray, dict[str, int]]:
    """pinv(X) rdX (p x rdX columns), rdX the terms' full designs (every level) after
    an intercept column, and the rdX column each column of X equals, from the rows."""
    X = design.X
    names = design.fixed_names
    table = design.table
    blocks, rows_of_x = [], {}
    offset = 0
    if "Intercept" in names:
        blocks.append(np.ones((len(table), 1)))
        rows_of_x["Intercept"] = 0
        offset = 1
    for term in terms:
        block = full_term_design(term, table)
        for name, col in zip([c for c in term.columns if c in names], _match_columns(X, names, term, block), strict=True):
            rows_of_x[name] = offset + col
        blocks.append(block)
        offset += block.shape[1]
    return np.linalg.pinv(X) @ np.hstack(blocks), rows_of_x


def _full_design_coefficients_summed(design: ModelDesign, terms: list[FixedTerm]) -> tuple[np.ndarray, dict[str, int]]:
    """:func:`_full_design_coefficients` from cross-products summed over a Dask frame's
    partitions (X'X, X'rdX and rdX's squared column norms): (X'X)^{-1} X'rdX, and a
    column of X equals a column b of rdX where |x - b|^2 = x'x - 2 x'b + b'b vanishes."""
    names = design.fixed_names
    gram = design.gram
    crosses, rows_of_x = [], {}
    offset = 0
    if "Intercept" in names:
        crosses.append(design.intercept_cross[:, None])
        rows_of_x["Intercept"] = 0
        offset = 1
    for term in terms:
        cross, norms = design.term_cross[term.label]
        for name in term.columns:
            if name not in names:
                continue
            j = names.index(name)
            distance = gram[j, j] - 2.0 * cross[j] + norms
            hits = np.flatnonzero(np.abs(distance) <= 1e-10 * (gram[j, j] + norms + 1.0))
            if hits.size == 0:
                raise InterlaceError(
                    f"type III contrasts: column {name!r} of term {term.label!r} is not treatment-coded; "
                    "type III tests need treatment contrasts"
                )
            rows_of_x[name] = offset + int(hits[0])
        crosses.append(cross)
        offset += cross.shape[1]
    return np.linalg.solve(gram, np.hstack(crosses)), rows_of_x


def type3_contrasts(design: ModelDesign) -> dict[str, np.ndarray]:
    """One contrast matrix (rows x p) per fixed-effect term, lmerTest's type III.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("angle ~ recipe * temp + (1 | replicate)"),
    ...                  interlace.load_dataset("cake"))
    >>> {k: v.shape for k, v in type3_contrasts(d).items()}
    {'recipe': (2, 6), 'temp': (1, 6), 'recipe:temp': (2, 6)}
    """
    names = design.fixed_names
    terms = [t for t in fixed_terms(design.fixed.model_spec) if any(c in names for c in t.columns)]
    coefficients, rows_of_x = (_full_design_coefficients(design, terms) if design.has_rows
                               else _full_design_coefficients_summed(design, terms))
    L = zapsmall(coefficients).T  # (rdX columns) x p
    column_of = {name: i for i, name in enumerate(names)}
    cols = {t.label: [column_of[c] for c in t.columns if c in column_of] for t in terms}
    contained = containment(fixed_terms(design.fixed.model_spec))
    for term in sorted(terms, key=lambda t: -t.order):  # stable: formula order within an order
        containing = [c for label in contained[term.label] for c in cols.get(label, [])]
        if not containing:
            continue
        A = L[:, containing]
        B = L[:, cols[term.label]]
        coef, *_ = np.linalg.lstsq(A, B, rcond=None)
        L[:, cols[term.label]] = zapsmall(B - A @ coef)
    L = L[[rows_of_x[name] for name in names], :]  # p x p
    out: dict[str, np.ndarray] = {}
    for term in terms:
        contrast = L[:, cols[term.label]].T
        out[term.label] = contrast[np.sum(np.abs(contrast), axis=1) > 1e-8]
    return out


def doolittle(x: np.ndarray, eps: float = DOOLITTLE_EPS) -> tuple[np.ndarray, np.ndarray]:
    """lmerTest's ``doolittle``: x = L U without pivoting, L unit lower-triangular; a
    pivot below ``eps`` (absolute) gives zero multipliers, and entries of L and U below
    ``eps`` are set to zero at the end.

    Examples
    --------
    >>> L, U = doolittle(np.array([[4.0, 2.0], [2.0, 3.0]]))
    >>> L.tolist(), U.tolist()
    ([[1.0, 0.0], [0.5, 1.0]], [[4.0, 2.0], [0.0, 2.0]])
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            below = x[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else below / U[i, i]
    L[np.abs(L) < eps] = 0.0
    U[np.abs(U) < eps] = 0.0
    return L, U


def term_columns(design: ModelDesign) -> tuple[list[FixedTerm], dict[str, list[int]]]:
    """The fixed-effect terms in formula order, and each term's columns of X (the
    columns kept: none for a term whose columns were all dropped as redundant)."""
    names = design.fixed_names
    column_of = {name: i for i, name in enumerate(names)}
    terms = fixed_terms(design.fixed.model_spec)
    return terms, {t.label: [column_of[c] for c in t.columns if c in column_of] for t in terms}


def fixed_gram(design: ModelDesign) -> np.ndarray:
    """X'X of the fixed effects' kept columns: from the rows, or, for a fit from a Dask
    frame (no rows), summed over its partitions (``design.gram``)."""
    if design.has_rows:
        return design.X.T @ design.X
    return design.gram


def _sequential(gram: np.ndarray) -> np.ndarray:
    """U' of X'X = U' D U (p x p), from X'X: row j is the type I hypothesis of column j."""
    if gram.shape[0] == 1:
        return np.ones((1, 1))
    return doolittle(gram)[0].T


def type1_contrasts(design: ModelDesign) -> dict[str, np.ndarray]:
    """lmerTest's type I (sequential) contrasts: one matrix per term, in formula order.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("angle ~ recipe * temp + (1 | replicate)"),
    ...                  interlace.load_dataset("cake"))
    >>> {k: v.shape for k, v in type1_contrasts(d).items()}
    {'recipe': (2, 6), 'temp': (1, 6), 'recipe:temp': (2, 6)}
    """
    terms, cols = term_columns(design)
    p = design.n_fixed
    L = _sequential(fixed_gram(design)) if p else np.zeros((0, 0))
    return {t.label: L[cols[t.label], :] for t in terms}


def _coded_variables(terms: list[FixedTerm]) -> dict[str, set[str]]:
    """The variables of each term that R codes by contrasts (1 in ``attr(terms,
    "factors")``, not 2): v of term T is coded so when T without v is empty or lies
    within a term before T (R's term order: by degree, formula order within one)."""
    ordered = sorted(terms, key=lambda t: t.order)
    out: dict[str, set[str]] = {}
    for k, term in enumerate(ordered):
        earlier = [set(t.variables) for t in ordered[:k]]
        variables = set(term.variables)
        out[term.label] = {v for v in variables
                           if not variables - {v} or any(variables - {v} <= e for e in earlier)}
    return out


def containment(terms: list[FixedTerm]) -> dict[str, list[str]]:
    """lmerTest's ``containment``: for each term, the terms that contain it. T2
    contains T1 when T2's coded variables (:func:`_coded_variables`) include T1's and
    more, and both have the same numeric variables among them.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("angle ~ recipe * temp + (1 | replicate)"),
    ...                  interlace.load_dataset("cake"))
    >>> containment(fixed_terms(d.fixed.model_spec))
    {'recipe': [], 'temp': ['recipe:temp'], 'recipe:temp': []}
    """
    coded = _coded_variables(terms)
    numeric = {t.label: coded[t.label] & set(t.numeric) for t in terms}

    def contains(outer: FixedTerm, inner: FixedTerm) -> bool:
        a, b = coded[inner.label], coded[outer.label]
        return a <= b and bool(b - a) and numeric[inner.label] == numeric[outer.label]

    return {t.label: [o.label for o in terms if contains(o, t)] for t in terms}


def _type2_contrast(gram: np.ndarray, own: list[int], containing: list[int]) -> np.ndarray:
    """Type I rows of a term's columns with X's columns reordered (``gram``: X'X): the
    others, then the term's, then those of the terms that contain it; returned in X's
    column order."""
    last = own + containing
    order = [j for j in range(gram.shape[0]) if j not in set(last)] + last
    reordered = _sequential(gram[np.ix_(order, order)])
    position = {j: i for i, j in enumerate(order)}
    rows = reordered[[position[j] for j in own], :]
    out = np.empty_like(rows)
    out[:, order] = rows
    return out


def type2_contrasts(design: ModelDesign) -> dict[str, np.ndarray]:
    """lmerTest's type II contrasts (``get_contrasts_type2_unfolded``): marginal for a
    term that no other term contains, type II for the others; type I for a model with
    at most one term or one column.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("angle ~ recipe * temp + (1 | replicate)"),
    ...                  interlace.load_dataset("cake"))
    >>> type2_contrasts(d)["recipe:temp"]
    array([[0., 0., 0., 0., 1., 0.],
           [0., 0., 0., 0., 0., 1.]])
    """
    terms, cols = term_columns(design)
    p = design.n_fixed
    if p <= 1 or len(terms) <= 1:
        return type1_contrasts(design)
    gram = fixed_gram(design)
    containing = containment(terms)
    identity = np.eye(p)
    out = {}
    for term in terms:
        others = [j for label in containing[term.label] for j in cols[label]]
        own = cols[term.label]
        out[term.label] = _type2_contrast(gram, own, others) if others else identity[own, :]
    return out


def drop_scope(terms: list[FixedTerm]) -> list[FixedTerm]:
    """R's ``drop.scope``: the terms whose variables are not all in another term."""
    return [t for t in terms
            if not any(o is not t and set(t.variables) <= set(o.variables) for o in terms)]


def _full_design(design: ModelDesign, terms: list[FixedTerm]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """X before redundant columns were dropped, and each term's columns of it."""
    full = design_for_new_data(design.fixed.model_spec, design.table)
    intercept = "Intercept" in design.fixed_names
    columns, offset = {}, int(intercept)
    for term in terms:
        columns[term.label] = list(range(offset, offset + len(term.columns)))
        offset += len(term.columns)
    if offset != full.shape[1] or not np.allclose(full[:, design.kept_columns], design.X):
        raise InterlaceError(
            f"drop1: the model matrix of {design.fixed.response_name!r} could not be rebuilt "
            f"term by term (expected {offset} columns, found {full.shape[1]})"
        )
    return full, columns


def _difference_contrast(X: np.ndarray, X0: np.ndarray) -> np.ndarray:
    """lmerTest's ``get_Ldiffmat2``: the hypothesis that the mean lies in the span of
    ``X0`` as orthonormal rows, one per dimension of X beyond it. lmerTest keeps one row
    per non-zero residual column even when they are dependent, so that its test has more
    df than the design has dimensions beyond ``X0`` (tests/data/anova/
    cake_rank_deficient.json); here the rows span exactly those dimensions. Any
    orthonormal basis of them gives the same F and Satterthwaite df."""
    coef, *_ = np.linalg.lstsq(X0, X, rcond=None)
    R = X - X0 @ coef
    R = R[:, np.sum(np.abs(R), axis=0) > RESIDUAL_EPS]
    if R.shape[1] == 0:
        return np.zeros((0, X.shape[1]))
    u, d, _ = np.linalg.svd(X.T @ R, full_matrices=False)
    rank = int(np.sum(d > np.sqrt(np.finfo(float).eps) * d[0]))
    return u[:, :rank].T


def drop1_contrasts(design: ModelDesign, scope: list[str]) -> dict[str, np.ndarray]:
    """lmerTest's ``drop1`` hypotheses for the terms in ``scope``: the term's columns
    (marginal contrasts), or, where X lost redundant columns, the difference between X
    and the full design of the other terms.

    Examples
    --------
    >>> import interlace
    >>> from interlace.design import build_design
    >>> from interlace.formula.random import split_formula
    >>> d = build_design(*split_formula("angle ~ recipe * temp + (1 | replicate)"),
    ...                  interlace.load_dataset("cake"))
    >>> drop1_contrasts(d, ["recipe:temp"])["recipe:temp"].shape
    (2, 6)
    """
    terms, cols = term_columns(design)
    if design.kept_columns.size == _width(design, terms):  # no column dropped as redundant
        identity = np.eye(design.n_fixed)
        return {label: identity[cols[label], :] for label in scope}
    X = design.X  # (a fit from a Dask frame has no rows: its error says so)
    full, full_cols = _full_design(design, terms)
    intercept = [0] if "Intercept" in design.fixed_names else []
    out = {}
    for label in scope:
        rest = intercept + [j for t in terms if t.label != label for j in full_cols[t.label]]
        out[label] = _difference_contrast(X, full[:, rest])
    return out


def _width(design: ModelDesign, terms: list[FixedTerm]) -> int:
    """The number of columns of X before redundant ones were dropped."""
    return int("Intercept" in design.fixed_names) + sum(len(t.columns) for t in terms)
