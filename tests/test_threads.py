"""Threads: refits of one fit from a thread pool, and the BLAS/numba thread control.

Refits share their system's structures (codes, cross-products, the sparse rest's
analysis) with the fit: each path is refitted concurrently from a ThreadPoolExecutor
and must give exactly the serial results.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.linalg import threads

N_REFITS = 6
N_WORKERS = 4


def _crossed(n: int, n1: int, n2: int, *, slope: bool = False, band: int = 0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, n)
    g2 = (g1 * n2 // n1 + rng.integers(-band, band + 1, n)) % n2 if band else rng.integers(0, n2, n)
    x = rng.standard_normal(n)
    y = (1 + 0.5 * x + rng.standard_normal(n1)[g1] + 0.5 * rng.standard_normal(n2)[g2]
         + (0.3 * rng.standard_normal(n1)[g1] * x if slope else 0) + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)})


CASES = {
    # name: (formula, frame, fit options, what the fit must have chosen)
    "dense compiled": ("y ~ x + (1 | g1) + (1 | g2)", lambda: _crossed(600, 30, 20), {},
                       lambda m: m.solver_path == "dense"),
    "blocked, Newton, scatter": ("y ~ x + (1 | g1) + (1 | g2)", lambda: _crossed(3000, 400, 300), {},
                                 lambda m: m._system.rest_layout == "dense" and m._system.downdate == "scatter"),
    "blocked, Newton, syrk": ("y ~ x + (1 | g1) + (1 | g2)", lambda: _crossed(40000, 500, 60), {},
                              lambda m: m._system.downdate == "syrk"),
    "blocked, random slope": ("y ~ x + (1 + x | g1) + (1 | g2)", lambda: _crossed(2000, 200, 30, slope=True),
                              {"solver": "sparse"}, lambda m: m.solver_path == "sparse"),
    "sparse rest": ("y ~ x + (1 | g1) + (1 | g2)", lambda: _crossed(20000, 6000, 5000, band=2), {},
                    lambda m: m._system.rest_layout == "sparse"),
}


def _summary(m) -> np.ndarray:
    effects = np.concatenate([np.asarray(m.random_effects[k], dtype=float).ravel() for k in m.random_effects])
    return np.concatenate([m.theta, m.fe_params.to_numpy(), [m.llf, m.scale], effects])


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    formula, frame, options, chosen = CASES[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        m = interlace.fit(formula, frame(), **options)
    assert chosen(m), f"{request.param}: the fit took another path"
    return m


def test_concurrent_refits_match_serial_refits(case):
    Y = case.simulate(N_REFITS, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        serial = [_summary(case.refit(Y[:, j])) for j in range(N_REFITS)]
        barrier = threading.Barrier(N_WORKERS)

        def refit(j):
            if j < N_WORKERS:
                barrier.wait(timeout=60)  # the first refits start together
            return _summary(case.refit(Y[:, j % N_REFITS]))

        with ThreadPoolExecutor(N_WORKERS) as pool:
            concurrent = list(pool.map(refit, range(3 * N_REFITS)))
    for j, got in enumerate(concurrent):
        np.testing.assert_allclose(got, serial[j % N_REFITS], rtol=1e-7, atol=1e-9,
                                   err_msg=f"refit {j % N_REFITS} in a thread pool")


def test_one_system_factored_from_many_threads():
    """The sparse rest's factor (one analysis, per-thread numbers) and a blocked
    criterion (per-thread buffers) evaluated at different theta in many threads."""
    from interlace.fitting.blocked_gradient import BlockedDeviance
    from interlace.fitting.objective import profiled_deviance
    from interlace.linalg.sparse_rest import SparseRestSystem

    m = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", _crossed(3000, 400, 300))
    system = m._system
    sparse = SparseRestSystem(system.design)
    criterion = BlockedDeviance(system, reml=True)
    thetas = [m.theta * f for f in np.linspace(0.5, 1.5, 8)]
    expected = [(profiled_deviance(sparse.factorize(t), m.nobs, 2, True), criterion.value(t)) for t in thetas]
    barrier = threading.Barrier(N_WORKERS)

    def evaluate(i):
        barrier.wait(timeout=60)
        out = []
        for _ in range(5):
            for t in thetas[i::N_WORKERS]:
                sparse_value = profiled_deviance(sparse.factorize(t), m.nobs, 2, True)
                value, grad, _ = criterion.derivatives(t)
                out.append((sparse_value, value))
        return out

    with ThreadPoolExecutor(N_WORKERS) as pool:
        results = list(pool.map(evaluate, range(N_WORKERS)))
    for i, got in enumerate(results):
        want = [expected[j] for j in range(i, len(thetas), N_WORKERS)] * 5
        np.testing.assert_allclose(got, want, rtol=1e-10)


# ----- the thread control -------------------------------------------------------------

def test_blas_libraries_are_found_and_limited():
    libraries = threads.blas_libraries()
    assert libraries, "no BLAS library found: numpy's and scipy's are loaded"
    before = threads.current_blas_threads()
    with threads.limited(10):
        assert threads.current_blas_threads() == [1] * len(libraries)
        with threads.limited(threads.BLAS_PARALLEL_MIN_SIZE):  # nested: the inner rule applies
            inner = threads.current_blas_threads()
        assert threads.current_blas_threads() == [1] * len(libraries)
    assert threads.current_blas_threads() == before
    assert all(1 <= n <= max(before) for n in inner)


def test_blas_threads_follow_size_and_idle_cores(monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda: 3)
    assert threads.blas_threads_for(threads.BLAS_PARALLEL_MIN_SIZE - 1, cap=8) == 1
    assert threads.blas_threads_for(threads.BLAS_PARALLEL_MIN_SIZE, cap=8) == 3
    assert threads.blas_threads_for(threads.BLAS_PARALLEL_MIN_SIZE, cap=2) == 2
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)  # another process spins the other cores
    assert threads.blas_threads_for(10**5, cap=8) == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: None)  # unknown: the cap
    assert threads.blas_threads_for(10**5, cap=8) == 8


def test_blas_is_single_threaded_while_two_threads_are_inside(monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda: 64)
    libraries = threads.blas_libraries()
    cap = min(threads.current_blas_threads())
    inside, seen = threading.Barrier(2), []

    def worker():
        with threads.limited(10**5):
            inside.wait(timeout=30)
            seen.append(threads.current_blas_threads())
            inside.wait(timeout=30)

    pool = [threading.Thread(target=worker) for _ in range(2)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert seen == [[1] * len(libraries)] * 2
    with threads.limited(10**5):  # alone: as many as the cap allows
        assert threads.current_blas_threads() == [cap] * len(libraries)


def test_numba_threads_limited_to_idle_cores_and_restored(monkeypatch):
    import numba

    before = numba.get_num_threads()
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)
    with threads.limited(10, kernels=True):
        from interlace.kernels._jit import thread_count

        assert thread_count() == 1
    assert numba.get_num_threads() == before


def test_idle_cores_counts_another_busy_process():
    import subprocess
    import sys

    if threads.idle_cores() is None:
        pytest.skip("no /proc/loadavg: idle cores unknown here")
    cores = threads._cpu_count()
    code = "import time\nprint('spinning', flush=True)\nend = time.time() + 60\nwhile time.time() < end: pass"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as spinner:
        try:
            assert spinner.stdout.readline().strip() == "spinning"
            counts = [threads.idle_cores() for _ in range(5)]
        finally:
            spinner.kill()
    assert all(1 <= n <= max(1, cores - 1) for n in counts), counts


def test_concurrent_refits_on_numba_workqueue_layer():
    """numba's workqueue layer aborts the process when two threads run parallel kernels
    at once: the blocks that run them take turns there."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import numba, numpy as np, pandas as pd, interlace
        from concurrent.futures import ThreadPoolExecutor
        rng = np.random.default_rng(1)
        n, n1, n2 = 3000, 400, 300
        g1, g2, x = rng.integers(0, n1, n), rng.integers(0, n2, n), rng.standard_normal(n)
        y = 1 + x + rng.standard_normal(n1)[g1] + rng.standard_normal(n2)[g2] + rng.standard_normal(n)
        m = interlace.fit("y ~ x + (1 | g1) + (1 | g2)",
                          pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)}))
        Y = m.simulate(8, seed=1)
        serial = [m.refit(Y[:, j]).llf for j in range(8)]
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(lambda j: m.refit(Y[:, j % 8]).llf, range(16)))
        print(numba.threading_layer(), max(abs(c - serial[j % 8]) for j, c in enumerate(concurrent)))
    """)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    layer, difference = proc.stdout.split()
    assert layer == "workqueue"
    assert float(difference) < 1e-8


def test_per_thread_state_is_left_behind_by_pickle():
    """Results travel to joblib's worker processes by pickle: the per-thread workspaces
    (threading.local) stay behind and each process starts its own."""
    import pickle

    from interlace.fitting.blocked_gradient import BlockedDeviance
    from interlace.linalg.sparse_rest import SparseRestSystem

    m = interlace.fit("y ~ x + (1 | g1) + (1 | g2)", _crossed(3000, 400, 300))
    sparse = SparseRestSystem(m._system.design)
    criterion = BlockedDeviance(m._system, reml=True)
    want = (sparse.factorize(m.theta).pwrss, criterion.value(m.theta))
    sparse2, criterion2 = pickle.loads(pickle.dumps((sparse, criterion)))
    assert (sparse2.factorize(m.theta).pwrss, criterion2.value(m.theta)) == pytest.approx(want, rel=1e-12)
