"""MkDocs hook: a ``\\|`` inside a code span of a table row shows as ``|``.

GitHub's Markdown needs a pipe in a table cell escaped even inside backticks
(`` `(1 \\| g)` ``) and shows it without the backslash; Python-Markdown's tables already
leave pipes inside code spans alone and would show the backslash. The pages keep
GitHub's form; this hook drops the backslash in table rows' code spans before MkDocs
renders them.
"""

from __future__ import annotations

import re

CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _unescape(match: re.Match) -> str:
    return match.group(1) + match.group(2).replace("\\|", "|") + match.group(1)


def on_page_markdown(markdown: str, page, config, files) -> str:
    lines = markdown.split("\n")
    fenced = False
    for k, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith("|") and "\\|" in line:
            lines[k] = CODE_SPAN.sub(_unescape, line)
    return "\n".join(lines)
