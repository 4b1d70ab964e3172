"""Oracle tests for the numba kernels against dense numpy on generated designs.

Every kernel in ``interlace.kernels`` is checked against the same quantity computed
from an explicit dense Z, built the obvious way: for term t, level l and column c the
global index is ``offset_t + l*k_t + c``, and ``Z[i, index] = design_t[i, c]`` when
``codes_t[i] == l``. The identities are exact up to rounding, so the tolerance is
tight and named once (:data:`RTOL`). Run the file with ``NUMBA_DISABLE_JIT=1`` too,
so the kernels' Python lines are exercised (and measured by coverage).

The end-to-end test checks that the dense and blocked paths of
:class:`interlace.linalg.system.PenalizedSystem` agree with each other and with a
direct dense computation of log det(Lambda'Z'Z Lambda + I), log det of the Schur
complement for X, and the penalised residual sum of squares.

The hypothesis strategies live at the top of this file (not in ``tests/strategies.py``)
so that this module is self-contained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

from interlace.design import ModelDesign, build_design
from interlace.formula.random import split_formula
from interlace.kernels.blockdiag import (
    assemble_scaled_upper,
    coupling_times,
    coupling_transpose_times,
    downdate_and_weigh_rest_scalar,
    downdate_rest,
    downdate_rest_scalar,
    factor_leading_block,
    lead_quadratic_forms,
    mirrored_inner_product,
    scale_symmetric_blocks,
    transpose_coupling,
)
from interlace.kernels.crossprod import (
    block_diagonal_crossprod,
    coupling_crossprod,
    random_crossprod,
)
from interlace.kernels.products import stacked_z_transpose_times, z_times, z_transpose_times
from interlace.kernels.sorting import INSERTION_MAX, sort_integers
from interlace.linalg.mirrored import MirroredMatrix
from interlace.linalg.system import PenalizedSystem, dense_crossprod

RTOL = 1e-10
"""Relative tolerance of every oracle comparison: the kernels and numpy compute the
same algebraic quantity, so they differ only by rounding (~1e-15 relative here)."""

SYSTEM_RTOL = 1e-10
"""Relative tolerance between the dense path, the blocked path and the dense oracle
for log-determinants and the penalised RSS."""

MAX_EXAMPLES = 25
"""Examples per kernel property; keeps the file well under 30 s without the JIT."""

MAX_SYSTEM_EXAMPLES = 15
"""Examples per formula in the end-to-end test (each builds a design with formulaic)."""

MAX_ROWS = 60
MAX_LEVELS = 7
MAX_COLUMNS = 3
MAX_FIXED = 3


# ----- generated designs -----------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One random term: level codes, per-row design (n x k) and its number of levels."""

    codes: np.ndarray
    design: np.ndarray
    n_levels: int

    @property
    def k(self) -> int:
        return self.design.shape[1]

    @property
    def n_effects(self) -> int:
        return self.n_levels * self.k


@dataclass(frozen=True)
class Design:
    """Random terms plus the [X y] columns (n x (p + 1)), as the kernels see them."""

    terms: tuple[Term, ...]
    xy: np.ndarray

    @property
    def n(self) -> int:
        return self.xy.shape[0]

    @property
    def lead(self) -> Term:
        return self.terms[0]

    @property
    def rest(self) -> tuple[Term, ...]:
        return self.terms[1:]

    @property
    def rest_size(self) -> int:
        """Size of the rest system: the rest's random effects plus [X y]."""
        return sum(t.n_effects for t in self.rest) + self.xy.shape[1]


FLOATS = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
NONNEGATIVE = st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def float_arrays(shape, elements=FLOATS):
    """float64 arrays with every element drawn (no constant fill)."""
    return hnp.arrays(np.float64, shape, elements=elements, fill=st.nothing())


@st.composite
def terms(draw, n: int, k: int | None = None) -> Term:
    n_levels = draw(st.integers(2, MAX_LEVELS))
    if k is None:
        k = draw(st.integers(1, MAX_COLUMNS))
    codes = draw(hnp.arrays(np.int32, n, elements=st.integers(0, n_levels - 1), fill=st.nothing()))
    return Term(codes, draw(float_arrays((n, k))), n_levels)


@st.composite
def designs(draw, min_terms: int = 1, lead_k: int | None = None) -> Design:
    """1..60 rows, min_terms..3 random terms (2..7 levels, 1..3 columns), p = 0..3."""
    n = draw(st.integers(1, MAX_ROWS))
    n_terms = draw(st.integers(min_terms, 3))
    p = draw(st.integers(0, MAX_FIXED))
    lead = draw(terms(n, lead_k))
    rest = tuple(draw(terms(n)) for _ in range(n_terms - 1))
    return Design((lead, *rest), draw(float_arrays((n, p + 1))))


@st.composite
def lower_factors(draw, k: int) -> np.ndarray:
    """A k x k lower-triangular relative covariance factor (diagonal >= 0, may be 0)."""
    diagonal = draw(float_arrays(k, NONNEGATIVE))
    below = draw(float_arrays((k, k)))
    return np.tril(below, -1) + np.diag(diagonal)


@st.composite
def symmetric_blocks(draw, n_blocks: int, k: int) -> np.ndarray:
    """(n_blocks, k, k) symmetric matrices, shaped like the per-level shrink blocks."""
    raw = draw(float_arrays((n_blocks, k, k)))
    return 0.5 * (raw + np.transpose(raw, (0, 2, 1)))


# ----- dense oracles ---------------------------------------------------------------------


def term_z(term: Term) -> np.ndarray:
    """The dense n x (n_levels*k) Z of one term."""
    z = np.zeros((len(term.codes), term.n_effects))
    for i, level in enumerate(term.codes):
        for c in range(term.k):
            z[i, level * term.k + c] = term.design[i, c]
    return z


def diagonal_blocks(term: Term) -> np.ndarray:
    """The (n_levels, k, k) diagonal blocks of the term's dense Z'Z."""
    z = term_z(term)
    gram = z.T @ z
    k = term.k
    return np.array([gram[l * k : (l + 1) * k, l * k : (l + 1) * k] for l in range(term.n_levels)])


def dense_z(terms_: tuple[Term, ...], n: int) -> np.ndarray:
    """The terms' Z side by side (offsets are the running sums of n_effects)."""
    return np.hstack([term_z(t) for t in terms_]) if terms_ else np.zeros((n, 0))


def rest_matrix(design: Design) -> np.ndarray:
    """[Z_rest X y], the columns of the rest system."""
    return np.hstack([dense_z(design.rest, design.n), design.xy])


def stack_terms(terms_: tuple[Term, ...], n: int):
    """codes, designs, design_start, index_offset as the cross-product kernels take them."""
    if terms_:
        codes = np.ascontiguousarray(np.vstack([t.codes for t in terms_]))
        designs_ = np.ascontiguousarray(np.hstack([t.design for t in terms_]))
    else:
        codes = np.zeros((0, n), dtype=np.int32)
        designs_ = np.zeros((n, 0))
    design_start = np.concatenate([[0], np.cumsum([t.k for t in terms_])]).astype(np.int64)
    index_offset = np.concatenate([[0], np.cumsum([t.n_effects for t in terms_])[:-1]])
    return codes, designs_, design_start, index_offset[: len(terms_)].astype(np.int64)


def touched(design: Design) -> np.ndarray:
    """(n, rest_size) bool: the rest indices row i touches structurally."""
    pattern = np.zeros((design.n, design.rest_size), dtype=bool)
    offset = 0
    for t in design.rest:
        for c in range(t.k):
            pattern[np.arange(design.n), offset + t.codes * t.k + c] = True
        offset += t.n_effects
    pattern[:, offset:] = True
    return pattern


def coupling_oracle(design: Design):
    """Z_1'[Z_rest X y] as a CSR over the leading levels, built from dense numpy."""
    lead = design.lead
    dense = term_z(lead).T @ rest_matrix(design)
    pattern = touched(design)
    ptr, idx, val = [0], [], []
    for level in range(lead.n_levels):
        cols = np.flatnonzero(pattern[lead.codes == level].any(axis=0))
        idx.append(cols)
        val.append(dense[level * lead.k : (level + 1) * lead.k, cols].T)
        ptr.append(ptr[-1] + len(cols))
    return (
        np.array(ptr, dtype=np.int64),
        np.concatenate(idx).astype(np.int64),
        np.ascontiguousarray(np.vstack(val).reshape(-1, lead.k)),
    )


def expand_coupling(ptr, idx, val, size: int) -> np.ndarray:
    """The (n_levels*k1, size) dense matrix a coupling CSR stands for."""
    n_levels, k = len(ptr) - 1, val.shape[1]
    out = np.zeros((n_levels * k, size))
    for level in range(n_levels):
        for pos in range(ptr[level], ptr[level + 1]):
            out[level * k : (level + 1) * k, idx[pos]] += val[pos]
    return out


def transpose_oracle(ptr, idx, size: int):
    """(row_ptr, positions, levels) of transpose_coupling by a stable argsort."""
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=size))])
    positions = np.argsort(idx, kind="stable")
    levels = np.searchsorted(ptr, positions, side="right") - 1
    return row_ptr.astype(np.int64), positions.astype(np.int64), levels.astype(np.int64)


def block_lambda(factors: list[np.ndarray], levels: list[int], tail: int) -> np.ndarray:
    """Dense block-diagonal Lambda: each factor repeated per level, identity on the tail."""
    blocks = [f for f, n_levels in zip(factors, levels, strict=True) for _ in range(n_levels)]
    return scipy.linalg.block_diag(*blocks, np.eye(tail))


def assert_close(actual, expected, magnitude: float | None = None) -> None:
    """Entrywise within RTOL, with an absolute floor of RTOL times the largest summand
    (``magnitude``, default the largest expected entry) for entries that cancel."""
    expected = np.asarray(expected, dtype=float)
    if magnitude is None:
        magnitude = float(np.max(np.abs(expected), initial=0.0))
    assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * max(magnitude, 1.0))


# ----- crossprod.py ----------------------------------------------------------------------


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs())
def test_block_diagonal_crossprod(design):
    term = design.lead
    out = block_diagonal_crossprod(term.codes, term.design, term.n_levels)
    assert out.shape == (term.n_levels, term.k, term.k)
    assert_close(out, diagonal_blocks(term))


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs())
def test_random_crossprod(design):
    w = np.hstack([dense_z(design.terms, design.n), design.xy])
    codes, designs_, design_start, index_offset = stack_terms(design.terms, design.n)
    out = random_crossprod(codes, designs_, design_start, index_offset, design.xy, w.shape[1])
    expected = w.T @ w
    tail = w.shape[1] - design.xy.shape[1]
    expected[tail:, tail:] = 0.0  # the [X y]'[X y] block is the caller's
    assert_close(out, expected, float(np.max(np.abs(w.T @ w), initial=0.0)))
    # with it: the whole cross-product matrix
    assert_close(dense_crossprod(codes, designs_, design_start, index_offset, design.xy, w.shape[1]), w.T @ w)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs())
def test_coupling_crossprod(design):
    lead, size = design.lead, design.rest_size
    codes, designs_, design_start, index_offset = stack_terms(design.rest, design.n)
    ptr, idx, val = coupling_crossprod(
        lead.codes, lead.design, lead.n_levels, codes, designs_, design_start, index_offset,
        design.xy, size,
    )
    assert ptr.shape == (lead.n_levels + 1,) and ptr[0] == 0 and ptr[-1] == len(idx)
    assert np.all(np.diff(ptr) >= 0)
    assert val.shape == (len(idx), lead.k)
    pattern = touched(design)
    for level in range(lead.n_levels):
        level_idx = idx[ptr[level] : ptr[level + 1]]
        assert np.all(np.diff(level_idx) > 0), "idx must be strictly increasing within a level"
        assert pattern[lead.codes == level][:, level_idx].any(axis=0).all()
    expected = term_z(lead).T @ rest_matrix(design)
    assert_close(expand_coupling(ptr, idx, val, size), expected)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(hnp.arrays(np.int64, st.integers(0, 4 * INSERTION_MAX), elements=st.integers(-50, 50)), st.data())
def test_sort_integers(keys, data):
    # runs on both sides of INSERTION_MAX (insertion sort, heapsort), repeated keys
    # included; the keys outside [start, stop) stay where they are
    start = data.draw(st.integers(0, len(keys)))
    stop = data.draw(st.integers(start, len(keys)))
    expected = keys.copy()
    expected[start:stop] = np.sort(keys[start:stop])
    sort_integers(keys, start, stop)
    assert_array_equal(keys, expected)


# ----- blockdiag.py ----------------------------------------------------------------------


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_factor_leading_block(design, data):
    lead = design.lead
    T = data.draw(lower_factors(lead.k))
    crossprod = diagonal_blocks(lead)
    chol, shrink, logdet, ok = factor_leading_block(crossprod, T)
    assert ok
    work = np.einsum("ri,lrs,sj->lij", T, crossprod, T) + np.eye(lead.k)
    assert_close(chol, np.linalg.cholesky(work))
    assert_close(shrink, T @ np.linalg.inv(work) @ T.T)
    sign, expected_logdet = np.linalg.slogdet(work)
    assert np.all(sign > 0)
    assert_allclose(logdet, expected_logdet.sum(), rtol=RTOL, atol=RTOL)


def test_factor_leading_block_reports_not_positive_definite():
    crossprod = np.array([np.eye(2), -2.0 * np.eye(2)])  # level 1: T'AT + I = -I
    chol, shrink, logdet, ok = factor_leading_block(crossprod, np.eye(2))
    assert not ok
    assert logdet == np.inf


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs())
def test_transpose_coupling(design):
    ptr, idx, _ = coupling_oracle(design)
    row_ptr, positions, levels = transpose_coupling(ptr, idx, design.rest_size)
    expected = transpose_oracle(ptr, idx, design.rest_size)
    assert_array_equal(row_ptr, expected[0])
    assert_array_equal(positions, expected[1])
    assert_array_equal(levels, expected[2])


def check_downdate(kernel, design: Design, data, head_only: bool = False) -> None:
    """``kernel`` on a random rest, shrink and scale vs rest - (s s') o (V' S V), upper
    only; with ``head_only`` the kernel downdates the rows before the [X y] tail only."""
    lead, size = design.lead, design.rest_size
    ptr, idx, val = coupling_oracle(design)
    shrink = data.draw(symmetric_blocks(lead.n_levels, lead.k))
    scale = data.draw(float_arrays(size, NONNEGATIVE))
    rest = data.draw(float_arrays((size, size)))
    v = expand_coupling(ptr, idx, val, size)
    downdate = np.outer(scale, scale) * (v.T @ scipy.linalg.block_diag(*shrink) @ v)
    out = rest.copy()
    n_head = size - design.xy.shape[1]
    if head_only:
        kernel(out, ptr, idx, val, shrink, *transpose_oracle(ptr, idx, size), scale, n_head,
               data.draw(st.integers(1, 4)))
        downdate[n_head:] = 0.0  # the tail rows are the caller's
    else:
        kernel(out, ptr, idx, val, shrink, *transpose_oracle(ptr, idx, size), scale)
    upper = np.triu_indices(size)
    magnitude = float(np.max(np.abs(rest), initial=0.0) + np.max(np.abs(downdate), initial=0.0))
    assert_close(out[upper], (rest - downdate)[upper], magnitude)
    strictly_lower = np.tril_indices(size, -1)
    assert_array_equal(out[strictly_lower], rest[strictly_lower])


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_downdate_rest(design, data):
    check_downdate(downdate_rest, design, data)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(lead_k=1), st.data())
def test_downdate_rest_scalar(design, data):
    check_downdate(downdate_rest_scalar, design, data, head_only=True)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(lead_k=1), st.data())
def test_downdate_rest_scalar_serial_twin(design, data):
    # the serial twin (small work: see interlace.kernels._jit.for_work) is the same kernel
    check_downdate(downdate_rest_scalar.serial, design, data, head_only=True)


def test_for_work_picks_the_serial_twin_below_the_threshold():
    from interlace.kernels._jit import PARALLEL_MIN_WORK, for_work

    assert for_work(downdate_rest_scalar, PARALLEL_MIN_WORK / 2, 8) == (downdate_rest_scalar.serial, 1)
    assert for_work(downdate_rest_scalar, PARALLEL_MIN_WORK, 8) == (downdate_rest_scalar, 8)
    assert for_work(downdate_rest_scalar, PARALLEL_MIN_WORK, 1) == (downdate_rest_scalar.serial, 1)
    assert downdate_rest_scalar.serial.py_func.__qualname__ == "downdate_rest_scalar_serial"


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(lead_k=1), st.data())
def test_downdate_and_weigh_rest_scalar(design, data):
    # the downdate as downdate_rest_scalar's, and the weighted sum on the head rows kept
    # mirrored in the strictly lower triangle of the same array (overwriting what was
    # there) with its diagonal apart; the tail rows' mirrors and diagonal untouched
    lead, size = design.lead, design.rest_size
    ptr, idx, val = coupling_oracle(design)
    shrink = data.draw(symmetric_blocks(lead.n_levels, 1))
    second = data.draw(float_arrays(lead.n_levels))
    scale = data.draw(float_arrays(size, NONNEGATIVE))
    rest = data.draw(float_arrays((size, size)))
    n_head = size - design.xy.shape[1]
    v = expand_coupling(ptr, idx, val, size) * scale
    downdate = v.T @ (shrink[:, 0, 0, None] * v)
    downdate[n_head:] = 0.0
    expected = v.T @ (second[:, None] * v)
    out, diagonal = rest.copy(), np.full(size, np.nan)
    downdate_and_weigh_rest_scalar(out, diagonal, ptr, idx, val, shrink, second, *transpose_oracle(ptr, idx, size),
                                   scale, n_head, data.draw(st.integers(1, 4)))
    upper = np.triu_indices(size)
    magnitude = float(np.max(np.abs(rest), initial=0.0) + np.max(np.abs(downdate), initial=0.0))
    assert_close(out[upper], (rest - downdate)[upper], magnitude)
    weighted_magnitude = float(np.max(np.abs(expected), initial=0.0))
    assert_close(diagonal[:n_head], np.diagonal(expected)[:n_head], weighted_magnitude)
    assert np.all(np.isnan(diagonal[n_head:])), "the tail rows' diagonal is the caller's"
    for a in range(size):  # W[a, b], b > a, at out[size - 1 - a, b - a - 1]
        mirror = out[size - 1 - a, : size - 1 - a]
        if a < n_head:
            assert_close(mirror, expected[a, a + 1 :], weighted_magnitude)
        else:
            assert_array_equal(mirror, rest[size - 1 - a, : size - 1 - a])


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(st.integers(0, 12), st.data())
def test_mirrored_inner_product(size, data):
    a = data.draw(float_arrays((size, size)))
    w = data.draw(float_arrays((size, size)))
    a, w = a + a.T, w + w.T
    m = data.draw(st.integers(0, size))
    nan_lower = np.tril(np.full((size, size), np.nan), -1)
    mirrored = MirroredMatrix(np.triu(np.full((size, size), np.nan)), np.empty(size))  # NaN where W is not
    mirrored.store_upper(0, w)
    out = mirrored_inner_product(np.triu(a) + nan_lower, mirrored.buffer, mirrored.diagonal, m,
                                 data.draw(st.integers(1, 4)))
    expected = float(np.sum(a[:m, :m] * w[:m, :m]))
    magnitude = float(np.max(np.abs(a), initial=0.0) * np.max(np.abs(w), initial=0.0) * size**2)
    assert_close(np.array([out]), np.array([expected]), magnitude)


def test_mirrored_matrix_round_trip():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 6))
    w = w + w.T
    mirrored = MirroredMatrix(np.triu(np.full((6, 6), np.nan)), np.empty(6))
    mirrored.store_upper(0, w)
    assert_array_equal(mirrored.dense(), w)
    assert np.all(np.isnan(mirrored.buffer[np.triu_indices(6)])), "the upper triangle is not W's"
    mirrored.store_upper(4, np.array([[1.0, 2.0], [-7.0, 3.0]]))  # a tail block: only its upper triangle read
    assert_array_equal(mirrored.dense()[4:, 4:], [[1.0, 2.0], [2.0, 3.0]])
    assert_array_equal(mirrored.dense()[:4], w[:4])
    with pytest.raises(ValueError, match="block: expected a square block ending at column 6"):
        mirrored.store_upper(3, np.eye(2))


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_assemble_scaled_upper(design, data):
    w = np.hstack([dense_z(design.terms, design.n), design.xy])
    crossprod = w.T @ w
    size = crossprod.shape[0]
    n_random = data.draw(st.integers(0, size))
    scale = data.draw(float_arrays(size, NONNEGATIVE))
    out = np.full((size, size), np.nan)
    assemble_scaled_upper(crossprod, scale, n_random, out)
    expected = np.outer(scale, scale) * crossprod
    expected[np.arange(n_random), np.arange(n_random)] += 1.0
    upper = np.triu_indices(size)
    assert_close(out[upper], expected[upper])
    assert np.all(np.isnan(out[np.tril_indices(size, -1)])), "the lower triangle is not written"


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_coupling_times(design, data):
    ptr, idx, val = coupling_oracle(design)
    vector = data.draw(float_arrays(design.rest_size))
    out = coupling_times(ptr, idx, val, vector)
    lead = design.lead
    expected = term_z(lead).T @ (rest_matrix(design) @ vector)
    assert out.shape == (lead.n_levels, lead.k)
    assert_close(out.ravel(), expected)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(lead_k=1), st.data())
def test_coupling_transpose_times(design, data):
    ptr, idx, val = coupling_oracle(design)
    weights = data.draw(float_arrays(design.lead.n_levels))
    out = coupling_transpose_times(ptr, idx, val, weights, design.rest_size)
    expected = rest_matrix(design).T @ (term_z(design.lead) @ weights)
    magnitude = float(np.max(np.abs(val), initial=0.0) * np.max(np.abs(weights), initial=0.0) * len(idx))
    assert_close(out, expected, magnitude)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(lead_k=1), st.data())
def test_lead_quadratic_forms(design, data):
    ptr, idx, val = coupling_oracle(design)
    size = design.rest_size
    scale = data.draw(float_arrays(size, NONNEGATIVE))
    raw = data.draw(float_arrays((size, size)))
    inverse = raw + raw.T
    n_head = data.draw(st.integers(0, size))
    v = expand_coupling(ptr, idx, val, size)[:, :n_head] * scale[:n_head]
    expected = np.einsum("la,ab,lb->l", v, inverse[:n_head, :n_head], v)
    upper_only = np.triu(inverse) + np.tril(np.full((size, size), np.nan), -1)
    chunks = data.draw(st.integers(1, 4))
    out = lead_quadratic_forms(ptr, idx, val, scale, *transpose_oracle(ptr, idx, size), upper_only, n_head,
                               chunks)
    magnitude = float(np.max(np.abs(v), initial=0.0) ** 2 * np.max(np.abs(inverse), initial=0.0) * size**2)
    assert_close(out, expected, magnitude)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_scale_symmetric_blocks(design, data):
    terms_ = design.terms
    tail = design.xy.shape[1]
    factors = [data.draw(lower_factors(t.k)) for t in terms_]
    lam = block_lambda(factors, [t.n_levels for t in terms_], tail)
    size = lam.shape[0]
    matrix = data.draw(float_arrays((size, size)))
    _, _, _, block_offset = stack_terms(terms_, design.n)
    flat = np.ascontiguousarray(np.concatenate([f.ravel() for f in factors]))
    factor_start = np.concatenate([[0], np.cumsum([f.size for f in factors])[:-1]]).astype(np.int64)
    out = matrix.copy()
    scale_symmetric_blocks(
        out, block_offset, np.array([t.k for t in terms_], dtype=np.int64),
        np.array([t.n_levels for t in terms_], dtype=np.int64), flat, factor_start,
    )
    magnitude = float(np.max(np.abs(lam).T @ np.abs(matrix) @ np.abs(lam), initial=0.0))
    assert_close(out, lam.T @ matrix @ lam, magnitude)


# ----- products.py -----------------------------------------------------------------------


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_z_times(design, data):
    term = design.lead
    effects = data.draw(float_arrays((term.n_levels, term.k)))
    out = z_times(term.codes, term.design, effects)
    assert_close(out, term_z(term) @ effects.ravel())


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_z_transpose_times(design, data):
    term = design.lead
    vector = data.draw(float_arrays(design.n))
    out = z_transpose_times(term.codes, term.design, vector, term.n_levels)
    assert out.shape == (term.n_levels, term.k)
    assert_close(out.ravel(), term_z(term).T @ vector)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(designs(), st.data())
def test_stacked_z_transpose_times(design, data):
    # every term's Z'v at its offset, the tail (here 3 entries) left zero; each term's
    # sums are z_transpose_times' own, to the bit
    vector = data.draw(float_arrays(design.n))
    codes, designs_, design_start, index_offset = stack_terms(design.terms, design.n)
    z = dense_z(design.terms, design.n)
    out = stacked_z_transpose_times(codes, designs_, design_start, index_offset, vector, z.shape[1] + 3)
    assert out.shape == (z.shape[1] + 3,)
    assert_close(out[: z.shape[1]], z.T @ vector)
    assert_array_equal(out[z.shape[1] :], 0.0)
    for t, term in enumerate(design.terms):
        own = z_transpose_times(term.codes, term.design, vector, term.n_levels).ravel()
        assert_array_equal(out[index_offset[t] : index_offset[t] + term.n_effects], own)


# ----- end to end: PenalizedSystem, dense path vs blocked path vs dense oracle -----------

SYSTEM_CASES = [
    # (formula, levels of g, levels of h): chosen so every factorize branch is reached
    pytest.param("y ~ x + (1 | g) + (1 | h)", (3, 8), (2, 6), id="scalar lead, scalar rest"),
    pytest.param("y ~ x + (1 + x | g) + (1 | h)", (3, 8), (2, 5), id="vector lead, scalar rest"),
    pytest.param("y ~ x + (1 | g) + (1 + x | h)", (7, 10), (2, 3), id="scalar lead, vector rest"),
    pytest.param("y ~ x + (1 + x | g) + (1 + x | h)", (3, 8), (2, 5), id="vector lead, vector rest"),
    pytest.param("y ~ x + (1 | g)", (2, 8), (2, 2), id="lead only, empty rest"),
]


NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
"""The frames are drawn from a seed, so shrinking them buys little and costs seconds."""


@st.composite
def crossed_frames(draw, g_levels: tuple[int, int], h_levels: tuple[int, int]) -> pd.DataFrame:
    """40..70 rows, crossed factors g and h with every level used, y with real structure."""
    n = draw(st.integers(40, 70))
    n_g = draw(st.integers(*g_levels))
    n_h = draw(st.integers(*h_levels))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = rng.permutation(np.arange(n) % n_g)
    h = rng.permutation(np.arange(n) % n_h)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(size=n_g)[g] + rng.normal(size=n_h)[h] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{c}" for c in g], "h": [f"h{c}" for c in h]})


@st.composite
def thetas(draw, design: ModelDesign) -> np.ndarray:
    """theta within its bounds: diagonal entries in [0, 2] (0 included), others in [-2, 2]."""
    values = [
        draw(NONNEGATIVE if math.isfinite(lower) else FLOATS) for lower in design.theta_lower
    ]
    return np.array(values)


def dense_system_oracle(design: ModelDesign, theta: np.ndarray) -> tuple[float, float, float]:
    """log det(Lambda'Z'Z Lambda + I), log det of X's Schur complement, and the pwrss."""
    p = design.n_fixed
    z = np.hstack([term_z(Term(t.group_codes, t.design, t.n_levels)) for t in design.terms])
    lam = block_lambda(
        [t.relative_cov_factor(theta) for t in design.terms], [t.n_levels for t in design.terms], 0
    )
    zl = z @ lam
    q = zl.shape[1]
    precision = zl.T @ zl + np.eye(q)
    logdet_random = np.linalg.slogdet(precision)[1]
    cross = zl.T @ design.X
    schur = design.X.T @ design.X - cross.T @ np.linalg.solve(precision, cross)
    logdet_fixed = np.linalg.slogdet(schur)[1]
    # min over (u, beta) of ||y - X beta - Z Lambda u||^2 + ||u||^2, by least squares
    augmented = np.block([[zl, design.X], [np.eye(q), np.zeros((q, p))]])
    target = np.concatenate([design.y, np.zeros(q)])
    solution = np.linalg.lstsq(augmented, target, rcond=None)[0]
    pwrss = float(np.sum((target - augmented @ solution) ** 2))
    return logdet_random, logdet_fixed, pwrss


@pytest.mark.parametrize(("formula", "g_levels", "h_levels"), SYSTEM_CASES)
@settings(max_examples=MAX_SYSTEM_EXAMPLES, deadline=None, phases=NO_SHRINK)
@given(data=st.data())
def test_dense_and_blocked_paths_match_dense_oracle(formula, g_levels, h_levels, data):
    frame = data.draw(crossed_frames(g_levels, h_levels))
    design = build_design(*split_formula(formula), frame)
    theta = data.draw(thetas(design))
    dense = PenalizedSystem(design, 0).factorize(theta)
    blocked = PenalizedSystem(design, 1).factorize(theta)
    assert dense.ok and blocked.ok
    expected = dense_system_oracle(design, theta)
    for name, want in zip(("logdet_random", "logdet_fixed", "pwrss"), expected, strict=True):
        got_dense, got_blocked = getattr(dense, name), getattr(blocked, name)
        assert_allclose(got_blocked, got_dense, rtol=SYSTEM_RTOL, atol=SYSTEM_RTOL, err_msg=name)
        assert_allclose(got_dense, want, rtol=SYSTEM_RTOL, atol=SYSTEM_RTOL, err_msg=name)
