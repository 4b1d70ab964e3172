"""How many threads the BLAS and the parallel kernels use inside a fit, and where.

Rule
----
Every factorisation, inverse and solve of the penalised system runs inside
:func:`limited` (``with limited(m): ...``, m the order of the dense matrix the call
works on). Inside it:

- the **BLAS** (OpenBLAS, MKL or BLIS, in numpy's and in scipy's copy) runs on one
  thread when m is below :data:`BLAS_PARALLEL_MIN_SIZE`: there a second thread saves
  less than it costs to wake and synchronise, and OpenBLAS's idle threads spin
  against the compiled kernels that run between the BLAS calls (on a 2-core machine
  W6 took 0.22 s with OpenBLAS's default two threads and 0.10 s with one). From
  that size on it runs on as many threads as there are idle cores at that moment,
  at most the BLAS's own count when the fit began (``OPENBLAS_NUM_THREADS`` and
  friends, or a ``threadpoolctl`` limit around the call, are honoured);
- numba's **parallel kernels** (:func:`interlace.kernels._jit.thread_count`) run on as
  many threads as there are idle cores, at most numba's count for the calling thread
  (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``);
- when two or more Python threads of the process are inside :func:`limited` at once
  (a thread pool of refits), the BLAS runs on one thread: the threads already
  occupy the cores.

Idle cores are read on Linux from the run queue (``/proc/loadavg``'s running tasks)
minus this process's own running threads, so a process spinning a core beside a fit
(another fit, a simulation study's n_jobs workers) takes that core out of the count
at once: a thread that waits for a core at every synchronisation makes OpenBLAS 8 to
35 times slower. Elsewhere the count is not known and the caps apply.

The BLAS thread count is a process-wide setting of the library: changed while any
thread is inside :func:`limited`, restored when the last one leaves (BLAS calls that
other threads of the process make in that time run with the same count). numba's
count is per calling thread; on numba's ``workqueue`` threading layer (used when
neither OpenMP nor TBB is available), which is not thread-safe, blocks that run
parallel kernels take turns.
"""

from __future__ import annotations

import ctypes
import os
import threading
from functools import cache
from pathlib import Path

import numba

BLAS_PARALLEL_MIN_SIZE = 2000
"""Smallest matrix order m whose factorisation runs on more than one BLAS thread.
Measured on a 2-core machine, a Cholesky and inverse (``potrf`` + ``potri``) of order
1,000 take 0.024 s on one thread or two, of order 1,500 0.067 s and 0.040 s, of order
2,000 0.15 s and 0.086 s, of order 4,000 0.95 s and 0.54 s; below 2,000 the second
thread's spinning between calls costs the compiled kernels more than it saves."""

_SYMBOLS = (
    # (get, set) entry points, in the order tried: OpenBLAS as numpy's and scipy's wheels
    # name it (scipy_openblas, 64-bit and 32-bit integers), plain OpenBLAS, MKL, BLIS
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads"),
    ("bli_thread_get_num_threads", "bli_thread_set_num_threads"),
)

_NAMES = ("openblas", "mkl_rt", "blis")
"""Parts of the file names of the BLAS libraries looked for."""


class _Blas:
    """One loaded BLAS library's thread-count entry points."""

    def __init__(self, path: str, get, set_):
        self.path = path
        self._get = get
        self._set = set_

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(int(n))


def _loaded_paths() -> list[str]:
    """Paths of the BLAS libraries loaded in this process (Linux: from its memory
    map; elsewhere: numpy's and scipy's bundled libraries)."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(None, 5)[-1] if line.count(" ") >= 5 else ""
                name = os.path.basename(path).lower()
                if path.startswith("/") and any(n in name for n in _NAMES) and path not in found:
                    found.append(path)
        return found
    except OSError:
        pass
    import numpy
    import scipy

    for package in (numpy, scipy):
        root = Path(package.__file__).parent
        for folder in (root.parent / f"{root.name}.libs", root / ".dylibs", root / ".libs"):
            if folder.is_dir():
                found += [str(p) for p in sorted(folder.iterdir()) if any(n in p.name.lower() for n in _NAMES)]
    return found


@cache
def blas_libraries() -> tuple[_Blas, ...]:
    """The BLAS libraries whose thread count :func:`limited` controls (found once,
    after numpy and scipy's LAPACK are loaded)."""
    import numpy  # noqa: F401 - their BLAS libraries must be loaded to be found
    import scipy.linalg  # noqa: F401

    out = []
    for path in _loaded_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and set_ is not None:
                get.restype = ctypes.c_int
                get.argtypes = []
                set_.restype = None
                set_.argtypes = [ctypes.c_int]
                out.append(_Blas(path, get, set_))
                break
    return tuple(out)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def idle_cores() -> int | None:
    """Cores not running another process's threads right now (Linux), else None.

    The machine's running tasks (``/proc/loadavg``) minus this process's own running
    threads, subtracted from the cores this process may use.
    """
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2 : stat.rindex(")") + 3] == "R":
                own += 1
    except (OSError, ValueError, IndexError):
        return None
    return max(1, _cpu_count() - max(0, running - max(own, 1)))


class _State:
    """The process-wide BLAS setting: who is inside :func:`limited`, what to restore."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inside: dict[int, list[int]] = {}  # thread id -> requested BLAS counts, innermost last
        self.saved: list[int] | None = None  # each library's count before the first entry
        self.current: int | None = None  # the count set now

    def apply(self, libraries) -> None:
        """Set the libraries to what the threads inside ask for, or restore them."""
        if not self.inside:
            if self.saved is not None:
                for lib, n in zip(libraries, self.saved, strict=True):
                    lib.set(n)
            self.saved = self.current = None
            return
        wanted = 1 if len(self.inside) > 1 else next(iter(self.inside.values()))[-1]
        if wanted != self.current:
            for lib in libraries:
                lib.set(wanted)
            self.current = wanted


_STATE = _State()
_WORKQUEUE = threading.RLock()  # parallel kernels one thread at a time on numba's workqueue layer


@cache
def _unsafe_threading_layer() -> bool:
    """Whether numba runs parallel kernels on its ``workqueue`` layer, which aborts the
    process when two threads launch them at once (the ``omp`` and ``tbb`` layers are
    thread-safe). The layer is chosen once, when numba's threads are started."""
    numba.get_num_threads()  # starts them
    return numba.threading_layer() == "workqueue"
_LOCAL = threading.local()  # per thread: the BLAS cap when its outermost section began


def _blas_cap(libraries) -> int:
    """The BLAS threads this thread may use: its outermost section's cap, else the
    libraries' counts before the first section (saved, under the lock)."""
    cap = getattr(_LOCAL, "blas_cap", None)
    if cap is None:
        if _STATE.saved is None:
            _STATE.saved = [lib.get() for lib in libraries]
        cap = min(_STATE.saved, default=1)
    return max(1, cap)


def blas_threads_for(size: int, cap: int) -> int:
    """BLAS threads for a call on a matrix of order ``size``, at most ``cap``: one below
    :data:`BLAS_PARALLEL_MIN_SIZE`, else the idle cores (see the module docstring)."""
    if cap <= 1 or size < BLAS_PARALLEL_MIN_SIZE:
        return 1
    idle = idle_cores()
    return cap if idle is None else max(1, min(cap, idle))


class limited:  # noqa: N801 - used as a function: ``with limited(size): ...``
    """Run the block with the BLAS threads the rule of this module gives for a matrix of
    order ``size`` (0: one thread) and, with ``kernels`` (the block runs numba's
    parallel kernels), numba's threads limited to the idle cores.

    Examples
    --------
    >>> import numpy as np
    >>> with limited(10):
    ...     x = np.linalg.cholesky(np.eye(10))
    >>> float(x[0, 0])
    1.0
    """

    __slots__ = ("size", "kernels", "_registered", "_outermost", "_numba", "_serial")

    def __init__(self, size: int = 0, kernels: bool = False):
        self.size = size
        self.kernels = kernels

    def __enter__(self) -> limited:
        libraries = blas_libraries()
        self._registered = not (  # fast path: one thread wanted, and nobody else has changed any
            not self.kernels and self.size < BLAS_PARALLEL_MIN_SIZE and not _STATE.inside
            and all(lib.get() <= 1 for lib in libraries))
        if self._registered:
            self._outermost = getattr(_LOCAL, "blas_cap", None) is None
            with _STATE.lock:
                cap = _blas_cap(libraries)
                _STATE.inside.setdefault(threading.get_ident(), []).append(blas_threads_for(self.size, cap))
                _STATE.apply(libraries)
            if self._outermost:
                _LOCAL.blas_cap = cap
        self._numba = None
        self._serial = False
        if self.kernels:
            before = numba.get_num_threads()
            idle = idle_cores() if before > 1 else None
            now = before if idle is None else max(1, min(before, idle))
            self._serial = _unsafe_threading_layer()
            if self._serial:
                _WORKQUEUE.acquire()
            if now != before:
                numba.set_num_threads(now)
                self._numba = before
        return self

    def __exit__(self, *exc) -> None:
        if self._numba is not None:
            numba.set_num_threads(self._numba)
        if self._serial:
            _WORKQUEUE.release()
        if not self._registered:
            return
        if self._outermost:
            _LOCAL.blas_cap = None
        ident = threading.get_ident()
        with _STATE.lock:
            stack = _STATE.inside[ident]
            stack.pop()
            if not stack:
                del _STATE.inside[ident]
            _STATE.apply(blas_libraries())


def current_blas_threads() -> list[int]:
    """Each controlled BLAS library's thread count now (for tests and diagnostics)."""
    return [lib.get() for lib in blas_libraries()]


__all__ = ["BLAS_PARALLEL_MIN_SIZE", "blas_libraries", "blas_threads_for", "current_blas_threads",
           "idle_cores", "limited"]
