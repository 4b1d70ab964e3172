"""nox sessions: tests (latest and oldest dependencies), kernels without the JIT,
lint, and the benchmarks.

    nox -s tests          # latest dependencies
    nox -s tests_oldest   # the oldest supported numpy / pandas / narwhals / formulaic
    nox -s kernels_nojit  # kernel tests with NUMBA_DISABLE_JIT=1 (coverage of kernel lines)
    nox -s lint           # ruff
    nox -s bench          # benchmarks/run_core.py side by side with lme4 when Rscript is there
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
    session.run("pytest", "tests/test_kernels.py", *session.posargs, env={"NUMBA_DISABLE_JIT": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "interlace", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The core benchmark (W1, W2, W4, W6), with lme4 side by side when Rscript has it."""
    session.install(".[bench]")
    session.run("python", "benchmarks/run_core.py", *session.posargs)
