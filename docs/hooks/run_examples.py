"""MkDocs hook: every page's examples run during the build, as ``tests/test_docs.py``
runs them.

On each page the ```python blocks run in order in one namespace (in a scratch working
directory) and each ```text block after a python block is compared with what the block
printed, by the rule of :mod:`doc_examples`. A block that raises, or prints something
else, is logged as an error, which fails ``mkdocs build --strict``; the build is then
stopped before any page is written, with or without ``--strict``. A figure a block draws
is saved into the image the page shows after it (``docs/make_plot_gallery.py``), before
MkDocs copies the images into the site, so the plots gallery shows the current code's
plots.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from mkdocs.exceptions import PluginError

HOOKS = Path(__file__).resolve().parent
sys.path.insert(0, str(HOOKS))
sys.path.insert(0, str(HOOKS.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

from doc_examples import run_examples, working_directory  # noqa: E402
from make_plot_gallery import image_saver  # noqa: E402

log = logging.getLogger("mkdocs.hooks.run_examples")
_failures: list[str] = []


def on_pre_build(config) -> None:
    _failures.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    name = page.file.src_uri
    written: list[Path] = []
    checked = 0
    try:
        with tempfile.TemporaryDirectory() as scratch, working_directory(scratch):
            for mismatch in run_examples(markdown, name, after_block=image_saver(markdown, written)):
                _failures.append(name)
                log.error("example output differs from the page: %s", mismatch)
            checked = markdown.count("```python\n")
    except Exception:  # a failing example: report it, fail the build
        _failures.append(name)
        log.error("example failed on %s:\n%s", name, traceback.format_exc())
    if checked:
        images = f", {len(written)} image(s) saved" if written else ""
        log.info("run_examples: %s: %d python block(s) run%s", name, checked, images)
    return markdown


def on_env(env, config, files):
    if _failures:
        raise PluginError(f"run_examples: examples failed on {sorted(set(_failures))}")
    return env
