"""Write the images of docs/plots.md: run the page's python blocks in order, in one
namespace, and save the figure a block draws into the image the page shows after it.

A block is followed (before the next python block) by ``![...](images/NAME.png)``; the
current matplotlib figure after the block is saved there, then every figure is closed.
A file is rewritten only when its bytes change. The site build (``mkdocs build``) does
the same through its hook ``docs/hooks/run_examples.py``, so the gallery always shows
the current code's plots.

    python docs/make_plot_gallery.py        # from the repository's root (or anywhere)
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "hooks"))

from doc_examples import run_examples  # noqa: E402 (after the path)

PAGE = DOCS / "plots.md"
IMAGE = re.compile(r"!\[[^\]]*\]\((images/[\w.-]+\.png)\)")
DPI = 80
"""Resolution of the saved images (small files; sharp enough on the page)."""


def image_saver(text: str, written: list[Path]) -> Callable[[int, int, dict], None]:
    """An ``after_block`` for :func:`doc_examples.run_examples`: saves the current figure
    into the image shown between the block and the next python block, if any, and
    closes every figure. matplotlib is imported only by a page that shows an image."""

    def after_block(end: int, next_start: int, namespace: dict) -> None:
        image = IMAGE.search(text, end, next_start)
        if image is not None:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            buffer = io.BytesIO()
            plt.gcf().savefig(buffer, format="png", dpi=DPI)
            target = DOCS / image.group(1)
            target.parent.mkdir(exist_ok=True)
            if not target.exists() or target.read_bytes() != buffer.getvalue():
                target.write_bytes(buffer.getvalue())
            written.append(target)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    return after_block


def main() -> list[Path]:
    """Run the page's blocks and write its images; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    text = PAGE.read_text()
    written: list[Path] = []
    for mismatch in run_examples(text, PAGE.name, after_block=image_saver(text, written)):
        raise SystemExit(str(mismatch))
    return written


if __name__ == "__main__":
    for path in main():
        print(f"{path.relative_to(DOCS.parent)}  {path.stat().st_size / 1024:.0f} KiB")
