"""The docs' examples run, and print what the pages say they print.

Each page's ```python blocks run in order in one namespace; a ```text block right
after a python block is its expected output (trailing spaces ignored).
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
            assert _lines(out.getvalue()) == _lines(following[1]), f"{page} block {i}"
