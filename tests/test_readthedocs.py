"""Read the Docs builds the documentation that .ci/run builds, with the same installs."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_MARK = "The install list of .readthedocs.yaml"


def _config() -> dict[str, object]:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def _ci_docs_installs() -> set[str]:
    """The packages .ci/run installs for its Read the Docs-like build (the line after
    the marker comment), as pip specifications such as ``.[docs]``."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if _MARK in line)
    words = shlex.split(lines[at + 1])
    assert words[1:3] == ["install", "-q"], lines[at + 1]
    return {w for w in words[3:] if w != "-e"}


def test_the_sphinx_configuration_is_the_one_ci_builds() -> None:
    config = _config()

    assert config["version"] == 2
    sphinx = config["sphinx"]
    assert isinstance(sphinx, dict)
    assert sphinx["configuration"] == "docs/conf.py"
    assert (ROOT / sphinx["configuration"]).is_file()
    assert sphinx["fail_on_warning"] is True
    build = config["build"]
    assert isinstance(build, dict)
    assert build["os"] == "ubuntu-24.04"
    assert build["tools"] == {"python": "3.11"}
    # .ci/run builds the same source folder, warnings as errors.
    assert re.search(r"sphinx-build\"? -E -W -q -b html docs ", (ROOT / ".ci" / "run").read_text())


def test_the_installs_are_the_ones_ci_builds_with() -> None:
    python = _config()["python"]
    assert isinstance(python, dict)
    specs = set()
    for entry in python["install"]:
        assert entry["method"] == "pip"
        extras = entry.get("extra_requirements") or []
        specs.add(entry["path"] + (f"[{','.join(extras)}]" if extras else ""))

    assert specs == _ci_docs_installs() == {".[docs]", "./reference_server"}


def test_the_docs_extra_has_what_conf_py_needs_and_no_graphviz() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    docs = project["project"]["optional-dependencies"]["docs"]
    names = {re.split(r"[<>=\[;\s]", requirement)[0].lower() for requirement in docs}

    assert {"sphinx", "furo", "myst-parser", "bkvcodec"} <= names
    assert not any("graphviz" in name for name in names)
    conf = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    assert "sphinx.ext.graphviz" not in conf
    assert "graphviz" not in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
