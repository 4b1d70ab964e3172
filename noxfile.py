"""nox sessions: tests (latest and oldest dependencies), kernels without the JIT,
lint, and the benchmarks.

    nox -s tests          # latest dependencies
    nox -s tests_oldest   # the oldest supported numpy / pandas / narwhals / formulaic
    nox -s kernels_nojit  # kernel tests with NUMBA_DISABLE_JIT=1 (coverage of kernel lines)
    nox -s lint           # ruff
    nox -s bench          # the benchmark suite W1-W11, side by side with lme4 when Rscript has it
    nox -s bench -- --only W1,W2 --repeats 3   # arguments after -- go to benchmarks/run_suite.py
    nox -s bench_glmm     # the GLMM benchmark G1-G5, beside glmer (when Rscript has lme4) and glmm
    nox -s bench_glmm -- --only G1,G2 --repeats 3   # arguments after -- go to benchmarks/run_glmm.py
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
PYTHON = ["3.11"]

OLDEST = [
    "numpy==1.26.4",
    "pandas==2.1.4",
    "scipy==1.14.1",
    "numba==0.59.1",
    "narwhals==2.0.0",
    "formulaic==1.1.0",
    "pyarrow==16.1.0",  # the newest pyarrow needs numpy 2
    "polars==1.31.0",  # narwhals 2.0 predates polars 2
]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite on the latest dependencies."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def tests_oldest(session: nox.Session) -> None:
    """The test suite on the oldest supported versions of the core dependencies."""
    session.install(".[test]", *OLDEST)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def kernels_nojit(session: nox.Session) -> None:
    """Kernel oracle tests with the JIT disabled, so coverage sees the kernels' lines."""
    session.install(".[test]")
    session.run("pytest", "tests/test_kernels.py", "tests/test_sparse_cholesky.py", *session.posargs,
                env={"NUMBA_DISABLE_JIT": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "interlace", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark suite (``benchmarks/run_suite.py``), with lme4 side by side when
    ``Rscript`` has it; the arguments after ``--`` go to the suite (see benchmarks/README.md).
    With ``nox --no-venv -s bench`` it benchmarks the current environment, installing nothing.
    """
    if session.venv_backend != "none":
        session.install(".[bench,pyarrow]")
    session.run("python", "benchmarks/run_suite.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_glmm(session: nox.Session) -> None:
    """The GLMM benchmark (``benchmarks/run_glmm.py``): interlace beside lme4's ``glmer``
    when ``Rscript`` has it and beside the ``glmm`` package (in the ``bench`` extra); the
    arguments after ``--`` go to the script (see benchmarks/README.md). With
    ``nox --no-venv -s bench_glmm`` it benchmarks the current environment, installing nothing.
    """
    if session.venv_backend != "none":
        session.install(".[bench,pyarrow]")
    session.run("python", "benchmarks/run_glmm.py", *session.posargs)
