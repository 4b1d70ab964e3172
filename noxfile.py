"""nox sessions: tests (latest and oldest dependencies, and across numpy versions), kernels
without the JIT, lint, the docs, and the benchmarks.

    nox -s tests          # latest dependencies
    nox -s tests_oldest   # the oldest supported numpy / pandas / narwhals / formulaic
    nox -s tests_numpy    # every numpy from 1.26 to the newest, on each Python 3.10-3.13 with wheels
    nox -s "tests_numpy(3.11-numpy1.26)" -- -q -x   # one of them; arguments after -- go to pytest
    nox -s kernels_nojit  # kernel tests with NUMBA_DISABLE_JIT=1 (coverage of kernel lines)
    nox -s lint           # ruff
    nox -s docs           # mkdocs build --strict, then docs/check_site.py over the site
    nox -s bench          # the benchmark suite W1-W11, side by side with lme4 when Rscript has it
    nox -s bench -- --only W1,W2 --repeats 3   # arguments after -- go to benchmarks/run_suite.py
    nox -s bench_glmm     # the GLMM benchmark G1-G5, beside glmer (when Rscript has lme4) and glmm
    nox -s bench_glmm -- --only G1,G2 --repeats 3   # arguments after -- go to benchmarks/run_glmm.py
"""

from __future__ import annotations

from pathlib import Path

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


NUMPY_MATRIX = {
    # numpy: (numba of its time, Pythons with wheels of both on PyPI, other pins). Each numba range starts at
    # the first numba whose metadata admits that numpy and stops where the next numpy is admitted,
    # so the matrix covers numba 0.60 to the newest as well. Checked 2026-12 against PyPI:
    # numba 0.59-0.60 have no Python 3.13 wheels, 0.61.0 takes numpy < 2.2, 0.61.2 < 2.3,
    # 0.62-0.63 < 2.4, 0.64-0.66 < 2.5, 0.67-0.68 < 2.6; numpy 1.26 and 2.0 have no 3.13
    # wheels, 2.3 and 2.4 need Python >= 3.11, and 2.5 (the newest) needs >= 3.12.
    # pyarrow 26 refuses numpy 1.x at import without saying so in its metadata (apache/arrow#50769).
    "1.26": ("numba>=0.59.1,<0.61", ["3.10", "3.11", "3.12"], ["pyarrow<26"]),
    "2.0": ("numba>=0.60,<0.61", ["3.10", "3.11", "3.12"], []),
    "2.1": ("numba>=0.61.0,<0.61.2", ["3.10", "3.11", "3.12", "3.13"], []),
    "2.2": ("numba>=0.61.2,<0.62", ["3.10", "3.11", "3.12", "3.13"], []),
    "2.3": ("numba>=0.62,<0.64", ["3.11", "3.12", "3.13"], []),
    "2.4": ("numba>=0.64,<0.67", ["3.11", "3.12", "3.13"], []),
    "2.5": ("numba>=0.67", ["3.12", "3.13"], []),
}


@nox.session
@nox.parametrize(
    ("python", "numpy"),
    [nox.param(python, numpy, id=f"{python}-numpy{numpy}")
     for numpy, (_, pythons, _) in NUMPY_MATRIX.items() for python in pythons],
)
def tests_numpy(session: nox.Session, numpy: str) -> None:
    """The test suite on one numpy (its newest patch) and a numba of its time.

    The other dependencies are the newest that pip finds compatible. Numba's cache is kept
    in the session's environment, apart from other numba versions'.
    """
    numba, _, pins = NUMPY_MATRIX[numpy]
    session.install(".[test]", f"numpy=={numpy}.*", numba, *pins)
    session.run("python", "-c", "import sys, numpy, numba, scipy, pandas; print('Python', sys.version.split()[0], "
                "'numpy', numpy.__version__, 'numba', numba.__version__, 'scipy', scipy.__version__, "
                "'pandas', pandas.__version__)")
    session.run("python", "-m", "pytest", *session.posargs,
                env={"NUMBA_CACHE_DIR": str(Path(session.virtualenv.location) / "numba_cache")})


@nox.session(python=PYTHON)
def kernels_nojit(session: nox.Session) -> None:
    """Kernel oracle tests with the JIT disabled, so coverage sees the kernels' lines."""
    session.install(".[test]")
    session.run("pytest", "tests/test_kernels.py", "tests/test_sparse_cholesky.py", *session.posargs,
                env={"NUMBA_DISABLE_JIT": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks (``.ci/run`` runs the same command)."""
    session.install("ruff")
    session.run("ruff", "check", "interlace", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The docs: ``mkdocs build --strict`` into ``site/``, then ``docs/check_site.py`` over it."""
    session.install("-r", "docs/requirements.txt", ".[plot,polars,pyarrow,parallel,dask]")  # what the pages import
    session.run("mkdocs", "build", "--strict", "-d", "site")
    session.run("python", "docs/check_site.py", "site")


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
