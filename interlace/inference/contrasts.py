"""Type III contrast matrices for the fixed-effect terms, as lmerTest 3.1-3 builds them.

With X the model's (treatment-coded, full-rank) design and rdX the
over-parameterised design (intercept, then every level of every term):

1. L = ginv(X) rdX, transposed: one row per rdX column, one column per X column;
2. for terms from the highest order down, the X-columns of a term contained in
   others (:meth:`FixedTerm.contained_in`) are replaced by their residuals after
   least squares on the columns of the terms that contain it;
3. the rows of L for X's own columns are kept, and a term's contrast is the
   transpose of its columns, without zero rows.

Entries are rounded as R's ``zapsmall`` does at each step.
"""

from __future__ import annotations

import numpy as np

from ..design import ModelDesign
from ..errors import InterlaceError
from ..formula.terms import FixedTerm, fixed_terms, full_term_design


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
    X = design.X
    names = design.fixed_names
    table = design.table
    terms = [t for t in fixed_terms(design.fixed.model_spec) if any(c in names for c in t.columns)]
    blocks, rows_of_x, rd_term = [], {}, []
    offset = 0
    if "Intercept" in names:
        blocks.append(np.ones((len(table), 1)))
        rows_of_x["Intercept"] = 0
        rd_term.append(None)
        offset = 1
    for term in terms:
        block = full_term_design(term, table)
        for name, col in zip([c for c in term.columns if c in names], _match_columns(X, names, term, block), strict=True):
            rows_of_x[name] = offset + col
        blocks.append(block)
        offset += block.shape[1]
    rdX = np.hstack(blocks)
    L = zapsmall(np.linalg.pinv(X) @ rdX).T  # (rdX columns) x p
    column_of = {name: i for i, name in enumerate(names)}
    cols = {t.label: [column_of[c] for c in t.columns if c in column_of] for t in terms}
    for term in sorted(terms, key=lambda t: -t.order):  # stable: formula order within an order
        containing = [c for other in terms if term.contained_in(other) for c in cols[other.label]]
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
