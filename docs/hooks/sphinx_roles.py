"""A griffe extension for the API reference: the docstrings' Sphinx roles as code.

interlace's numpydoc docstrings cross-reference with Sphinx roles
(``:func:`hlm_resid```, ``:class:`~interlace.result.CrossedLMEResult```), which
Markdown would show as they are typed. Each becomes a code span with the name Sphinx
would show: the last component after ``~``, else the name as written. Registered in
``mkdocs.yml`` under the python handler's ``extensions``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
