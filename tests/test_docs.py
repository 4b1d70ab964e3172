"""The docs' examples run, and print what the pages say they print.

Each page's ```python blocks run in order in one namespace; a ```text block right
after a python block is its expected output. Lines are compared token by token
(spacing may differ with column widths); a number may differ by one unit in the
last digit the page shows, since printed values are rounded and the last digit of
a value on a rounding boundary moves with library versions.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _decimals(token: str) -> int:
    mantissa = token.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _same_token(shown: str, printed: str) -> bool:
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


def _same_output(shown: str, printed: str) -> bool:
    shown_lines, printed_lines = _lines(shown), _lines(printed)
    if len(shown_lines) != len(printed_lines):
        return False
    for s, p in zip(shown_lines, printed_lines, strict=True):
        s_tokens, p_tokens = s.split(), p.split()
        if len(s_tokens) != len(p_tokens) or not all(map(_same_token, s_tokens, p_tokens)):
            return False
    return True


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_page_examples(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall((DOCS / page).read_text())
    namespace: dict = {}
    for i, (lang, body) in enumerate(blocks):
        if lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(body, f"{page}#block{i}", "exec"), namespace)
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if following and following[0] == "text":
            assert _same_output(following[1], out.getvalue()), (
                f"{page} block {i}:\n--- shown\n{following[1]}--- printed\n{out.getvalue()}"
            )


def test_output_comparison_allows_only_the_last_digit():
    assert _same_output("df  17.000\n", "df    17.001\n")
    assert not _same_output("df  17.000\n", "df  17.003\n")
    assert _same_output("p 3.26e-06\n", "p 3.27e-06\n")
    assert not _same_output("Days 10.467\n", "Dayz 10.467\n")
