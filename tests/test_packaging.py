"""What a release needs from the package: one version number, the licence files, the
``py.typed`` marker, and an attribution entry for every bundled dataset. Nothing is built."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
from pathlib import Path

import pytest

import interlace
from interlace.datasets import DATASETS

ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = importlib.resources.files("interlace.datasets")


def _wheel_installs() -> list[importlib.metadata.Distribution]:
    """The installed distributions of interlace that have a RECORD (a ``.dist-info``), not
    the ``interlace.egg-info`` a build leaves in a checkout, which shadows them when the
    checkout's root is on ``sys.path``."""
    return [d for d in importlib.metadata.distributions(name="interlace")
            if d.read_text("RECORD") is not None]


def _installed_files() -> set[str] | None:
    """Paths an installed wheel's RECORD lists, or None for an editable install or none
    (an editable RECORD lists the path hook, not the package's files)."""
    for dist in _wheel_installs():
        paths = {f.as_posix() for f in dist.files or []}
        if "interlace/__init__.py" in paths:
            return paths
    return None


def test_version_is_the_installed_distributions():
    assert interlace.__version__ == importlib.metadata.version("interlace")
    for dist in _wheel_installs():
        assert dist.version == interlace.__version__


def test_version_is_written_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'(?m)^version\s*=\s*"', pyproject) is None
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "interlace.__version__" }' in pyproject


def test_licence_files_exist():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    assert "the interlace developers" in licence
    gpl = DATASETS_DIR.joinpath("LICENSE-GPL-2").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in gpl and "Version 2, June 1991" in gpl


def test_installed_distribution_carries_the_licences():
    installs = [d for d in _wheel_installs() if d.metadata.get("License-Expression")]
    if not installs:
        pytest.skip("no installed metadata with PEP 639 licence fields: reinstall interlace")
    licence_files = {"LICENSE", "interlace/datasets/LICENSE-GPL-2", "interlace/datasets/README.md"}
    for dist in installs:
        assert dist.metadata["License-Expression"] == "MIT AND GPL-2.0-or-later"
        assert set(dist.metadata.get_all("License-File")) == licence_files
        for name in licence_files:
            assert dist.read_text(f"licenses/{name}"), name


def test_py_typed_ships():
    assert importlib.resources.files("interlace").joinpath("py.typed").is_file()
    installed = _installed_files()
    if installed is not None:
        assert "interlace/py.typed" in installed


def test_dataset_notices_ship():
    installed = _installed_files()
    for name in ("README.md", "LICENSE-GPL-2", "schema.json", *(f"{d}.csv" for d in DATASETS)):
        assert DATASETS_DIR.joinpath(name).is_file(), name
        if installed is not None:
            assert f"interlace/datasets/{name}" in installed, name


def test_datasets_readme_lists_every_csv():
    readme = DATASETS_DIR.joinpath("README.md").read_text()
    listed = set(re.findall(r"(?m)^\| `([^`]+\.csv)` \|", readme))
    bundled = {p.name for p in DATASETS_DIR.iterdir() if p.name.endswith(".csv")}
    assert listed == bundled
    assert bundled == {f"{d}.csv" for d in DATASETS}
    assert "GNU General Public License" in readme and "MIT" in readme
