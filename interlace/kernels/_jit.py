"""The one place that decides how kernels are compiled.

Every kernel in :mod:`interlace.kernels` is decorated with :func:`kernel` or, when it
splits its work over threads with ``numba.prange``, :func:`parallel_kernel`, so the
compile options (on-disk cache, no GIL, no Python objects) are set here once. A
parallel kernel takes the number of chunks it splits its work into from its caller,
usually a multiple of :func:`thread_count` (a compiled kernel that asks numba for the
thread count cannot be cached).

Where the compiled kernels are cached
-------------------------------------
numba caches a kernel in ``NUMBA_CACHE_DIR`` when it is set, else beside its source
(``interlace/kernels/__pycache__``) when that is writable, else in numba's per-user
cache (``~/.cache/numba``). When none of them can be written (a read-only install in a
container whose home is read-only or missing), numba refuses to decorate the kernel
("no locator available"); interlace then caches it in the first writable directory of
:func:`fallback_cache_dirs` (a per-user cache directory computed as platformdirs does,
then a private per-user directory in the system's temporary directory), and when no
directory can be written compiles it without a cache, in every process, with one
warning.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import types
import warnings
from functools import cache
from pathlib import Path

import numba
from numba.core import config as _numba_config
from numba.core.compiler_lock import global_compiler_lock


def _home() -> Path | None:
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):  # no HOME and no password entry
        return None


def _user_name() -> str:
    if hasattr(os, "getuid"):
        return str(os.getuid())
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name: one shared name, still checked below
        return "user"


def fallback_cache_dirs() -> list[Path]:
    """Where interlace caches its kernels when numba has nowhere to (in order):

    - the per-user cache directory: ``%LOCALAPPDATA%\\interlace\\Cache`` on Windows,
      ``~/Library/Caches/interlace`` on macOS, ``$XDG_CACHE_HOME/interlace`` or
      ``~/.cache/interlace`` elsewhere; then
    - ``interlace-<uid>`` in the temporary directory (``TMPDIR``), used only when this
      user owns it and nobody else may write to it (machine code loaded from a
      directory another user controls would run as this user).

    Each with a ``numba`` subdirectory.
    """
    out: list[Path] = []
    home = _home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        if base:
            out.append(Path(base) / "interlace" / "Cache")
    elif sys.platform == "darwin":
        if home is not None:
            out.append(home / "Library" / "Caches" / "interlace")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        if os.path.isabs(xdg):
            out.append(Path(xdg) / "interlace")
        elif home is not None:
            out.append(home / ".cache" / "interlace")
    out.append(Path(tempfile.gettempdir()) / f"interlace-{_user_name()}")
    return [path / "numba" for path in out]


def _private(path: Path) -> bool:
    """Whether ``path`` is a real directory owned by this user that no one else may
    write to (POSIX; always True elsewhere)."""
    if not hasattr(os, "getuid"):
        return True
    info = os.lstat(path)
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _usable(path: Path) -> bool:
    """Whether kernels can be cached in ``path`` (created when missing)."""
    try:
        temporary = path.parent
        if temporary.parent == Path(tempfile.gettempdir()):  # interlace-<uid> in a shared directory
            temporary.mkdir(mode=0o700, exist_ok=True)
            if not _private(temporary):
                return False
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


@cache
def fallback_cache_dir() -> Path | None:
    """The first usable directory of :func:`fallback_cache_dirs`, or None."""
    return next((path for path in fallback_cache_dirs() if _usable(path)), None)


_WARNED: list[bool] = []


def _compile(func, options: dict):
    """``numba.njit(cache=True, **options)(func)``, cached where it can be (see the
    module docstring)."""
    try:
        return numba.njit(cache=True, **options)(func)
    except RuntimeError as error:
        if "no locator" not in str(error):
            raise
    directory = fallback_cache_dir()
    if directory is not None:
        saved = _numba_config.CACHE_DIR
        _numba_config.CACHE_DIR = str(directory)  # read when the cache is located, just below
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as error:
            if "no locator" not in str(error):
                raise
        finally:
            _numba_config.CACHE_DIR = saved
    if not _WARNED:
        _WARNED.append(True)
        tried = ", ".join(str(p) for p in fallback_cache_dirs())
        warnings.warn(
            f"interlace: no writable directory to cache its compiled kernels (beside its source, "
            f"numba's user cache, {tried}); they are compiled in every new process (several seconds). "
            "Set NUMBA_CACHE_DIR to a writable directory to keep them",
            RuntimeWarning,
            stacklevel=3,
        )
    return numba.njit(cache=False, **options)(func)


def kernel(func):
    """Decorator for compiled kernels: ``numba.njit(cache=True, nogil=True)``, cached
    where the module docstring says."""
    return _compile(func, {"nogil": True})


REASSOCIATING_FLAGS = frozenset({"reassoc", "contract"})
"""The fast-math flags of :func:`reassociating_kernel`: sums may be reordered (so that
LLVM vectorises the inner reductions) and a multiply-add fused; NaN and infinity keep
their meaning (kernels test ``not v > 0.0``)."""


def reassociating_kernel(func):
    """Decorator for compiled kernels whose inner loops are long dot products:
    :func:`kernel` with ``fastmath`` :data:`REASSOCIATING_FLAGS`, so that LLVM may
    vectorise the reductions. Results differ from :func:`kernel`'s in rounding only.

    Such a kernel also follows numpy's error model: a division by zero gives inf or NaN
    instead of raising ZeroDivisionError, so no division carries a test for zero (these
    kernels test their pivots before dividing by them; the quotients are the same)."""
    return _compile(func, {"nogil": True, "fastmath": set(REASSOCIATING_FLAGS), "error_model": "numpy"})


def _renamed(func, name: str):
    """A copy of the function ``func`` under another name (numba caches a kernel under
    its qualified name and line: a twin with other options needs its own)."""
    twin = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__, func.__closure__)
    twin.__qualname__ = func.__qualname__.rsplit(".", 1)[0] + "." + name if "." in func.__qualname__ else name
    twin.__module__, twin.__doc__ = func.__module__, func.__doc__
    return twin


def parallel_kernel(func):
    """Decorator for compiled kernels whose outer loop is a ``numba.prange``:
    ``numba.njit(cache=True, nogil=True, parallel=True)``, with a serial twin of the
    same source as its ``serial`` attribute (``prange`` run as ``range``), for work too
    small to gain from threads: numba compiles a parallel kernel about twice as slowly,
    and each compiles only when first called (see :func:`for_work`)."""
    dispatcher = _compile(func, {"nogil": True, "parallel": True})
    dispatcher.serial = _compile(_renamed(func, func.__name__ + "_serial"), {"nogil": True})
    return dispatcher


PARALLEL_MIN_WORK = 1e7
"""Least work (inner-loop steps, e.g. the sum of a downdate's squared level sizes) for
which a parallel kernel runs its parallel version: below it a call takes milliseconds,
which threads barely shorten, and the first fit skips compiling the parallel version."""


def for_work(kernel, work: float, n_chunks: int):
    """(the kernel to call, its chunk count): a :func:`parallel_kernel` itself with
    ``n_chunks`` when ``work`` is at least :data:`PARALLEL_MIN_WORK` and there are chunks
    to share, else its serial twin with one chunk."""
    if work >= PARALLEL_MIN_WORK and n_chunks > 1:
        return kernel, n_chunks
    return kernel.serial, 1


class _WouldCompile(Exception):
    """Raised in place of compiling, by :func:`is_loaded`'s probe."""


def is_loaded(kernel, *args) -> bool:
    """Whether ``kernel`` runs on ``args`` without compiling: its machine code for their
    types is in memory, or in the on-disk cache (and is then loaded, as a call would).

    The probe asks numba for the overload with its compiler replaced by one that
    refuses (under numba's compiler lock, so no other thread compiles meanwhile); with
    a numba whose internals differ it answers True, and the call compiles as before.

    Examples
    --------
    >>> import numpy as np
    >>> from interlace.kernels.products import z_times
    >>> codes, design, b = np.zeros(3, np.int32), np.ones((3, 1)), np.ones((1, 1))
    >>> _ = z_times(codes, design, b)
    >>> is_loaded(z_times, codes, design, b)
    True
    """
    try:
        signature = tuple(kernel.typeof_pyval(a) for a in args)
        if signature in kernel.overloads:
            return True
        compiler = kernel._compiler

        def refuse(*_args, **_kwargs):
            raise _WouldCompile

        with global_compiler_lock:
            compiler.compile = refuse  # an instance attribute: shadows the method
            try:
                kernel.compile(signature)
            except _WouldCompile:
                return False
            finally:
                del compiler.compile
        return True
    except Exception:  # noqa: BLE001 - a numba whose internals differ: compile on call, as before
        return True


def thread_count() -> int:
    """The threads a parallel kernel runs on: ``NUMBA_NUM_THREADS``, by default the
    machine's cores (``numba.get_num_threads()``), for the calling thread; inside a fit
    :func:`interlace.linalg.threads.limited` lowers it to the idle cores."""
    return numba.get_num_threads()
