"""Write the images of docs/plots.md: run the page's python blocks in order, in one
namespace, and save the figure a block draws into the image the page shows after it.

A block is followed (before the next python block) by ``![...](images/NAME.png)``; the
current matplotlib figure after the block is saved there, then every figure is closed.

    python docs/make_plot_gallery.py        # from the repository's root (or anywhere)
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (after the backend)

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "plots.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\((images/[\w.-]+\.png)\)")
DPI = 80
"""Resolution of the saved images (small files; sharp enough on the page)."""


def main() -> list[Path]:
    """Run the page's blocks and write its images; returns the files written."""
    text = PAGE.read_text()
    blocks = list(BLOCK.finditer(text))
    namespace: dict = {"__name__": "plots_gallery"}
    written = []
    for k, block in enumerate(blocks):
        exec(compile(block.group(1), f"{PAGE.name}#block{k}", "exec"), namespace)
        end = blocks[k + 1].start() if k + 1 < len(blocks) else len(text)
        image = IMAGE.search(text, block.end(), end)
        if image is not None:
            target = DOCS / image.group(1)
            target.parent.mkdir(exist_ok=True)
            plt.gcf().savefig(target, dpi=DPI)
            written.append(target)
        plt.close("all")
    return written


if __name__ == "__main__":
    for path in main():
        print(f"{path.relative_to(DOCS.parent)}  {path.stat().st_size / 1024:.0f} KiB")
