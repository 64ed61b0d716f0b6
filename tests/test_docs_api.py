"""The API reference documents every public name of every public module."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "docs" / "api.rst"
_DIRECTIVE = re.compile(
    r"^\.\. (?:(module)|auto(?:class|exception|function|data)|data)::\s+([\w.]+)", re.M)


def documented() -> dict[str, set[str]]:
    """The names documented under each ``.. module::`` of the API page."""
    names: dict[str, set[str]] = {}
    module = ""
    for match in _DIRECTIVE.finditer(API.read_text(encoding="utf-8")):
        if match.group(1):
            module = match.group(2)
            names.setdefault(module, set())
        else:
            names[module].add(match.group(2))
    return names


@pytest.mark.parametrize("module_name", ["bkvcodec", "bkvcodec.bkv", "bkvcodec.ap3000",
                                         "bkvcodec.errors"])
def test_every_public_name_is_in_the_api_reference(module_name: str) -> None:
    module = importlib.import_module(module_name)
    on_page = documented()[module_name]
    top = set(importlib.import_module("bkvcodec").__all__)
    # The error bases are documented once, at the top level.
    expected = set(module.__all__) - {"__version__"}
    if module_name == "bkvcodec.errors":
        expected -= top
    assert sorted(expected - on_page) == []
    assert sorted(on_page - set(module.__all__)) == []
