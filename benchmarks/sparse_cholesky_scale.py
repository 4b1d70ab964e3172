"""Scale benchmark of the sparse Cholesky factor on the W11 Schur-complement block.

The pattern is the one the factor is for: a crossed model with n1 = n2 = 50,000 levels
and n = 1e6 rows, where each level of factor 1 meets some 20 neighbouring levels of
factor 2 (with wrap-around)::

    rng = numpy.random.default_rng(1)
    g1 = rng.integers(0, n1, n)
    g2 = (g1 * n2 // n1 + rng.integers(-10, 10, n)) % n2

After factor 1 is eliminated, the block of factor 2 with X = [1, x] and y as three dense
trailing columns is, at relative covariance factors (theta1, theta2),

    A(theta) = Lambda' (B'B - B'Z1 D Z1'B) Lambda + diag(I, 0),   B = [Z2 X y],
    D = diag(theta1^2 / (theta1^2 counts1 + 1)),   Lambda = diag(theta2 I, 1, 1, 1),

which at theta = (1, 1) is Z2'Z2 + I - Z2'Z1 diag(1 / (counts1 + 1)) Z1'Z2 bordered by
the X and y columns. The script builds it with scipy.sparse (untimed), then times

* ``SparseCholesky.analyse(A, 3)`` once (ordering "auto": AMD, RCM and the given order
  are each counted and the cheapest kept), and each ordering on its own, plus SuperLU's
  minimum degree (``splu(..., permc_spec="MMD_AT_PLUS_A")``, applied as a given order);
* ``refactor`` (median of ``--repeats`` calls, cycling through values at several theta,
  after one untimed call that also compiles the kernels), ``logdet``, a solve with the
  three trailing columns, and the selected inverse (diagonal of A^{-1});

and reports nnz(L), the flops of the numeric phase (sum of squared column counts) and
the peak resident memory of the process (``getrusage``), which includes building A.

Usage: ``python benchmarks/sparse_cholesky_scale.py [--levels 50000] [--rows 1000000]
[--repeats 5] [--threads 1]``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--levels", type=int, default=50_000, help="levels of each factor")
PARSER.add_argument("--rows", type=int, default=1_000_000, help="observations")
PARSER.add_argument("--repeats", type=int, default=5, help="timed refactor calls")
PARSER.add_argument("--threads", type=int, default=1, help="BLAS/numba threads (default 1)")
ARGS = PARSER.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before numpy is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout

import resource  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.sparse.linalg import splu  # noqa: E402

from interlace.linalg.sparse_cholesky import SparseCholesky  # noqa: E402

THETAS = ((1.0, 1.0), (0.5, 1.5), (2.0, 0.7), (1.2, 0.3), (0.8, 2.2))


def peak_mb():
    """Peak resident set size of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def seconds(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def w11_parts(n1, n2, n, seed=1):
    """The theta-free pieces: B'B, C = Z1'B (n1 x (n2 + 3)) and counts1."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, n)
    g2 = (g1 * n2 // n1 + rng.integers(-10, 10, n)) % n2
    x = rng.standard_normal(n)
    y = 1.0 + 0.5 * x + rng.standard_normal(n)
    rows = np.arange(n)
    Z1 = sp.csr_matrix((np.ones(n), (rows, g1)), shape=(n, n1))
    Z2 = sp.csr_matrix((np.ones(n), (rows, g2)), shape=(n, n2))
    B = sp.hstack([Z2, sp.csr_matrix(np.column_stack([np.ones(n), x, y]))]).tocsc()
    return (B.T @ B).tocsc(), (Z1.T @ B).tocsc(), np.bincount(g1, minlength=n1)


def w11_matrix(BtB, C, counts1, theta1, theta2):
    """A(theta) as CSC (see the module docstring)."""
    n2 = BtB.shape[0] - 3
    D = sp.diags(theta1**2 / (theta1**2 * counts1 + 1.0))
    Lam = sp.diags(np.r_[np.full(n2, theta2), np.ones(3)])
    A = Lam @ (BtB - C.T @ D @ C) @ Lam + sp.diags(np.r_[np.ones(n2), np.zeros(3)])
    return sp.csc_matrix(A)


def superlu_order(A, n_leading):
    """SuperLU's minimum degree on A + A' of the leading block (the inverse of perm_c)."""
    lead = sp.csc_matrix(A[:n_leading, :n_leading])
    lu = splu(
        lead, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )
    order = np.empty(n_leading, dtype=np.int64)
    order[lu.perm_c] = np.arange(n_leading)
    return order


def refactor_seconds(chol, values, repeats):
    """Wall and CPU seconds of ``repeats`` refactor calls, cycling through ``values``."""
    wall, cpu = [], []
    for r in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        ok = chol.refactor(values[r % len(values)])
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert ok, "A(theta) should be positive definite"
    return wall, cpu


def flops(chol):
    """Multiply-adds of the numeric phase, up to a constant: sum of squared column counts."""
    return float(np.sum(np.diff(chol.L_indptr).astype(np.float64) ** 2))


def compare_orderings(A, n_leading):
    """Analyse and refactor time, nnz(L) and flops for each ordering on its own."""
    print("\nordering of the leading block (analyse = ordering + symbolic factorisation;")
    print("nnz(L) exact / stored with the relaxed-supernode padding; refactor median of 3):")
    print(
        f"{'ordering':<13}{'analyse [s]':>12}{'nnz(L)':>12}{'stored':>12}{'flops':>10}"
        f"{'refactor wall [s]':>19}{'cpu [s]':>9}"
    )
    n = A.shape[0]
    for ordering in ("amd", "rcm", "natural", "superlu-mmd"):
        start = time.perf_counter()
        if ordering == "superlu-mmd":
            permutation = np.r_[superlu_order(A, n_leading), np.arange(n_leading, n)]
            matrix = sp.csc_matrix(A[permutation][:, permutation])
            chol = SparseCholesky.analyse(matrix, n - n_leading, ordering="natural")
        else:
            matrix = A
            chol = SparseCholesky.analyse(matrix, n - n_leading, ordering=ordering)
        t_analyse = time.perf_counter() - start
        values = [chol.values_of(matrix)]
        chol.refactor(values[0])
        wall, cpu = refactor_seconds(chol, values, 3)
        print(
            f"{ordering:<13}{t_analyse:>12.3f}{chol.nnz_exact:>12,}{chol.nnz_L:>12,}"
            f"{flops(chol):>10.3g}{statistics.median(wall):>19.3f}{statistics.median(cpu):>9.3f}"
        )


def main():
    n1 = n2 = ARGS.levels
    t_build, (BtB, C, counts1) = seconds(lambda: w11_parts(n1, n2, ARGS.rows))
    matrices = [w11_matrix(BtB, C, counts1, *theta) for theta in THETAS]
    A = matrices[0]
    n = A.shape[0]
    print(
        f"W11 Schur block: n = {n:,} ({n2:,} levels + 3 dense), nnz(A) = {A.nnz:,} "
        f"({A.nnz / n:.1f} per column); built in {t_build:.2f} s; peak so far {peak_mb():.0f} MB"
    )

    # warm the JIT (compile or load from the cache) on a small matrix, untimed
    small = SparseCholesky.analyse(sp.csc_matrix(np.array([[2.0, 1.0], [1.0, 2.0]])), 1)
    small.refactor(np.array([2.0, 1.0, 2.0]))
    small.logdet()
    small.solve(np.ones(2))
    small.inverse_diagonal_blocks(1)

    compare_orderings(A, n2)

    t_analyse, chol = seconds(lambda: SparseCholesky.analyse(A, 3))
    values = [chol.values_of(M) for M in matrices]
    t_first, ok = seconds(lambda: chol.refactor(values[0]))
    assert ok, "A(theta) should be positive definite"
    wall, cpu = refactor_seconds(chol, values, ARGS.repeats)
    t_logdet, logdet = seconds(chol.logdet)
    rhs = np.zeros((n, 3))
    rhs[-3:, :] = np.eye(3)
    t_solve, _ = seconds(lambda: chol.solve(rhs))
    t_selinv, diagonal = seconds(chol.selected_inverse_diagonal)
    t_blocks, _ = seconds(lambda: chol.inverse_diagonal_blocks(1))
    # a spot check of the selected inverse against solves
    probe = np.array([0, n2 // 2, n2 - 1, n - 1])
    unit = np.zeros((n, probe.size))
    unit[probe, np.arange(probe.size)] = 1.0
    check = chol.solve(unit)[probe, np.arange(probe.size)]
    error = float(np.max(np.abs(check - diagonal[probe]) / np.abs(check)))

    print(
        f"\nchosen (ordering='auto'): {chol.ordering}, nnz(L) = {chol.nnz_exact:,} exact, "
        f"{chol.nnz_L:,} stored ({chol.nnz_L / n:.1f} per column), flops = {flops(chol):.3g}"
    )
    print(f"analyse (auto)               {t_analyse:8.3f} s")
    print(f"first refactor               {t_first:8.3f} s")
    print(
        f"refactor, median of {ARGS.repeats:<3d}      {statistics.median(wall):8.3f} s wall "
        f"(min {min(wall):.3f}, max {max(wall):.3f}); {statistics.median(cpu):.3f} s CPU"
    )
    print(f"logdet                       {t_logdet:8.4f} s   (log det A = {logdet:.6f})")
    print(f"solve, 3 right-hand sides    {t_solve:8.4f} s")
    print(
        f"selected inverse diagonal    {t_selinv:8.3f} s   (max rel. error vs solves {error:.1e})"
    )
    print(f"inverse blocks (k = 1)       {t_blocks:8.4f} s   (reuses the selected inverse)")
    print(f"peak memory (ru_maxrss)      {peak_mb():8.0f} MB  (whole process, building A included)")


if __name__ == "__main__":
    main()
