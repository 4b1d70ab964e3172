"""The docs' examples: run a page's ```python blocks and compare what they print.

Shared by ``tests/test_docs.py``, the MkDocs hook ``run_examples.py`` and
``docs/make_plot_gallery.py``, so the test suite and the site build apply one rule.

A page's ```python blocks run in order in one namespace; a ```text block right after
a python block is its expected output. Lines are compared token by token (spacing may
differ with column widths); a number may differ by one unit in the last digit the
page shows, since printed values are rounded and the last digit of a value on a
rounding boundary moves with library versions.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
"""A fenced block: its language and its body."""


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _decimals(token: str) -> int:
    mantissa = token.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def same_token(shown: str, printed: str) -> bool:
    """Whether a printed token matches the page's: equal, or numbers one unit apart in
    the page's last digit."""
    if shown == printed:
        return True
    try:
        a, b = float(shown), float(printed)
    except ValueError:
        return False
    if "e" in shown.lower():
        exponent = int(shown.lower().split("e")[1])
        return abs(a - b) <= 1.01 * 10.0 ** (exponent - _decimals(shown))
    return abs(a - b) <= 1.01 * 10.0 ** (-_decimals(shown))


def same_output(shown: str, printed: str) -> bool:
    """Whether ``printed`` matches the page's ``shown`` output, line by line and token
    by token (:func:`same_token`)."""
    shown_lines, printed_lines = _lines(shown), _lines(printed)
    if len(shown_lines) != len(printed_lines):
        return False
    for s, p in zip(shown_lines, printed_lines, strict=True):
        s_tokens, p_tokens = s.split(), p.split()
        if len(s_tokens) != len(p_tokens) or not all(map(same_token, s_tokens, p_tokens)):
            return False
    return True


@dataclass(frozen=True)
class Mismatch:
    """A python block whose output differs from the text block after it."""

    page: str
    block: int
    shown: str
    printed: str

    def first_difference(self) -> str:
        """The first line that differs, as shown and as printed."""
        shown, printed = _lines(self.shown), _lines(self.printed)
        for k in range(max(len(shown), len(printed))):
            s = shown[k] if k < len(shown) else "<no line>"
            p = printed[k] if k < len(printed) else "<no line>"
            if s.split() != p.split() and not (k < len(shown) and k < len(printed) and same_output(s, p)):
                return f"line {k + 1}: shown {s.strip()!r}, printed {p.strip()!r}"
        return "none"

    def __str__(self) -> str:
        return (f"{self.page} block {self.block} (first difference {self.first_difference()}):\n"
                f"--- shown\n{self.shown}--- printed\n{self.printed}")


AfterBlock = Callable[[int, int, dict], None]
"""Called after each python block with the block's end offset in the page, the start of
the next python block (or the page's length) and the namespace."""


def run_examples(text: str, page: str, after_block: AfterBlock | None = None) -> Iterator[Mismatch]:
    """Run the page's python blocks in order in one namespace and yield a
    :class:`Mismatch` for each whose output differs from the text block that follows it.

    Output is captured and warnings ignored while a block runs; an exception in a
    block propagates (the blocks after it would run on a broken namespace).
    """
    matches = list(BLOCK.finditer(text))
    python_starts = [m.start() for m in matches if m.group(1) == "python"] + [len(text)]
    namespace: dict = {}
    k = 0
    for i, match in enumerate(matches):
        lang, body = match.group(1), match.group(2)
        if lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(body, f"{page}#block{i}", "exec"), namespace)
        k += 1
        if after_block is not None:
            after_block(match.end(), python_starts[k], namespace)
        following = matches[i + 1] if i + 1 < len(matches) else None
        if following is not None and following.group(1) == "text":
            if not same_output(following.group(2), out.getvalue()):
                yield Mismatch(page, i, following.group(2), out.getvalue())


@contextlib.contextmanager
def working_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Run in ``path`` and come back (``contextlib.chdir`` before Python 3.11)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield Path(path)
    finally:
        os.chdir(before)
