"""The two distributions of the repository agree (issue 11): bkvcodec (pyproject.toml)
and bkvcodec-server (reference_server/pyproject.toml).

The version's one source is ``bkvcodec/_version.py``; the server's ``_version.py`` and
its pins on bkvcodec repeat it, and these tests fail until they do. The built wheels
and sdists are checked by ``.ci/check_wheel.py``.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import bkvcodec

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "reference_server"


def _project(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _server_version() -> str:
    text = (SERVER / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert match, text
    return match.group(1)


def test_the_server_has_the_library_version() -> None:
    assert bkvcodec.__version__ == _server_version()


def test_the_server_pins_the_library_of_its_version() -> None:
    project = _project(SERVER / "pyproject.toml")
    pin = f"bkvcodec=={bkvcodec.__version__}"

    assert pin in project["dependencies"]  # type: ignore[operator]
    assert f"bkvcodec[docs,sniff,testing]=={bkvcodec.__version__}" in (
        project["optional-dependencies"]["test"])  # type: ignore[index]
    mentions = [r for r in project["dependencies"] if r.startswith("bkvcodec")]  # type: ignore[attr-defined]
    assert [pin] == mentions


def test_the_library_ships_bkvcodec_alone_and_has_no_server_extra() -> None:
    project = _project(ROOT / "pyproject.toml")
    with (ROOT / "pyproject.toml").open("rb") as f:
        find = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]

    assert ["bkvcodec*"] == find["include"]
    assert {"testing", "fuzz", "docs", "sniff", "dev"} == set(project["optional-dependencies"])  # type: ignore[arg-type]


def test_the_server_lists_every_subpackage() -> None:
    with (SERVER / "pyproject.toml").open("rb") as f:
        setuptools = tomllib.load(f)["tool"]["setuptools"]
    folders = sorted(
        ".".join(("reference_server", *init.parent.relative_to(SERVER).parts))
        for init in SERVER.rglob("__init__.py")
        if not {"build", "dist"} & set(init.relative_to(SERVER).parts))

    assert {"reference_server": "."} == setuptools["package-dir"]
    assert folders == sorted(setuptools["packages"])


def test_the_server_carries_the_repository_license() -> None:
    assert (ROOT / "LICENSE").read_bytes() == (SERVER / "LICENSE").read_bytes()


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "bkvcodec", "--version"],
    [sys.executable, "-m", "reference_server", "--version"],
])
def test_version_options(command: list[str]) -> None:
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout

    version = bkvcodec.__version__
    assert out in (f"bkvcodec {version}\n", f"bkvcodec-server {version} (bkvcodec {version})\n")
    assert ("reference_server" in command) == out.startswith("bkvcodec-server")
