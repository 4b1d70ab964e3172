"""Progress bars on long loops (profiles, bootstraps, exact deletion, all_fit).

``show_progress=None`` (the default of the loops that take it) shows a bar only in an
interactive session (a terminal on stderr, IPython or Jupyter), so scripts, CI logs and
captured output stay clean; True and False force it on or off. The bar is tqdm's (the
optional dependency users expect; ``tqdm.auto`` in notebooks) when tqdm is installed,
else a one-line text bar on stderr.
"""

from __future__ import annotations

import sys

from .errors import InterlaceError


def interactive() -> bool:
    """Whether the session is interactive: a terminal on stderr, or IPython/Jupyter."""
    if "IPython" in sys.modules or hasattr(sys, "ps1"):
        return True
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def resolve(show_progress) -> bool:
    """``show_progress`` as a bool: None means :func:`interactive`."""
    if show_progress is None:
        return interactive()
    if not isinstance(show_progress, bool):
        raise InterlaceError(f"show_progress: expected True, False or None (interactive sessions only), "
                             f"found {show_progress!r}")
    return show_progress


class ProgressBar:
    """A bar over ``total`` steps labelled ``label``; :meth:`advance` counts finished
    steps, :meth:`close` ends it (also when used as a context manager).

    Examples
    --------
    >>> with ProgressBar(3, "demo", show_progress=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    >>> bar.done
    3
    """

    def __init__(self, total: int, label: str, show_progress=None):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.enabled = resolve(show_progress)
        self._tqdm = None
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._tqdm = tqdm(total=self.total, desc=label, file=sys.stderr, leave=True)

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more finished steps and redraw."""
        self.done += count
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.update(count)
            return
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def close(self) -> None:
        """End the bar."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
