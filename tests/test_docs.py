"""The docs' examples run, and print what the pages say they print.

Each page's ```python blocks run in order in one namespace; a ```text block right
after a python block is its expected output. Lines are compared token by token
(spacing may differ with column widths); a number may differ by one unit in the
last digit the page shows, since printed values are rounded and the last digit of
a value on a rounding boundary moves with library versions. The rule lives in
``docs/hooks/doc_examples.py``, which the site build's hook runs too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS / "hooks"))  # the comparison is shared with the site build's hook

from doc_examples import run_examples, same_output  # noqa: E402


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_page_examples(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for mismatch in run_examples((DOCS / page).read_text(), page):
        pytest.fail(str(mismatch))


def test_output_comparison_allows_only_the_last_digit():
    assert same_output("df  17.000\n", "df    17.001\n")
    assert not same_output("df  17.000\n", "df  17.003\n")
    assert same_output("p 3.26e-06\n", "p 3.27e-06\n")
    assert not same_output("Days 10.467\n", "Dayz 10.467\n")
