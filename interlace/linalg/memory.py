"""How much memory a fit may take: the ``max_dense_gib`` limit and the machine's memory.

A computation that holds several dense n x n float64 arrays at once is checked with
:func:`check_dense_size` before any of them is allocated; the rule that decides what
is dense is in :mod:`interlace.linalg.dispatch`. The default limit is half of the
machine's physical memory (``os.sysconf``; ``GlobalMemoryStatusEx`` on Windows), or
of its container's limit (cgroup) when that is lower: no package beyond the standard
library is needed.
"""

from __future__ import annotations

import os
import sys
from functools import cache

import numpy as np

from ..errors import InterlaceError

GIB = 2**30
"""Bytes in a GiB, the unit of ``max_dense_gib``."""


def _cgroup_limit_bytes() -> int | None:
    """The memory limit of this process's container (cgroup v2 or v1), or None."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            return int(text)
    return None


@cache
def machine_memory_bytes() -> int | None:
    """The machine's physical memory, or its container's limit when lower; None when
    unknown (read with ``os.sysconf``, or ``GlobalMemoryStatusEx`` on Windows), once
    per process (every fit asks; the files of a cgroup limit cost a fit of a small
    model a tenth of its time)."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        if sys.platform == "win32":  # pragma: no cover - Windows only
            import ctypes

            class _Status(ctypes.Structure):
                _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong),
                            ("total_physical", ctypes.c_ulonglong), ("available_physical", ctypes.c_ulonglong),
                            ("total_page_file", ctypes.c_ulonglong), ("available_page_file", ctypes.c_ulonglong),
                            ("total_virtual", ctypes.c_ulonglong), ("available_virtual", ctypes.c_ulonglong),
                            ("available_extended", ctypes.c_ulonglong)]

            status = _Status(length=ctypes.sizeof(_Status))
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
                total = int(status.total_physical)
    limit = _cgroup_limit_bytes()
    if total is None or total <= 0:
        return limit
    return min(total, limit) if limit else total


def default_max_dense_gib() -> float:
    """The default ``max_dense_gib``: half of :func:`machine_memory_bytes`, in GiB
    (infinite when the memory is unknown)."""
    total = machine_memory_bytes()
    return float("inf") if total is None else total / 2 / GIB


def dense_limit_bytes(max_dense_gib: float | None = None) -> float:
    """``max_dense_gib`` (None: :func:`default_max_dense_gib`) in bytes, checked."""
    if max_dense_gib is None:
        return default_max_dense_gib() * GIB
    if isinstance(max_dense_gib, bool) or not isinstance(max_dense_gib, (int, float, np.integer, np.floating)) \
            or not max_dense_gib > 0:
        raise InterlaceError(f"max_dense_gib: expected a positive number of GiB, found {max_dense_gib!r}")
    return float(max_dense_gib) * GIB


def format_bytes(n_bytes: float) -> str:
    """``n_bytes`` as GiB (from 0.1 GiB) or MiB, for messages."""
    return f"{n_bytes / GIB:,.1f} GiB" if n_bytes >= GIB / 10 else f"{n_bytes / 2**20:,.0f} MiB"


def check_dense_size(size: int, what: str, max_dense_gib: float | None = None, *, arrays: float,
                     why: str = "", argument: str = "max_dense_gib") -> None:
    """Refuse, before allocating, a computation holding ``arrays`` dense ``size`` x
    ``size`` float64 arrays at once beyond the limit (``max_dense_gib``, GiB)."""
    limit = dense_limit_bytes(max_dense_gib)
    need = float(arrays) * size * size * 8
    if need <= limit:
        return
    default = "" if max_dense_gib is not None else (
        f" (by default half of this machine's memory, {format_bytes(machine_memory_bytes() or 0)})")
    raise InterlaceError(
        f"{argument}: {what} has {size:,} rows; it needs about {format_bytes(need)} ({arrays} dense "
        f"{size:,} x {size:,} arrays of {format_bytes(need / arrays)}), more than the limit of "
        f"max_dense_gib={limit / GIB:.3g}{default}. {why}Raise max_dense_gib (an option of "
        "interlace.fit) if the machine has the memory."
    )


