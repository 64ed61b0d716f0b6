"""The API reference documents every public name, and nothing private leaks."""
from __future__ import annotations

import re
from pathlib import Path

import bkvcodec

API = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def test_every_public_name_is_in_the_api_reference() -> None:
    text = API.read_text(encoding="utf-8")
    documented = set(re.findall(
        r"\.\. (?:auto(?:class|exception|function|data)|data)::\s+(\w+)", text))

    missing = sorted(set(bkvcodec.__all__) - documented - {"__version__"})

    assert [] == missing


def test_public_names_resolve() -> None:
    for name in bkvcodec.__all__:
        assert getattr(bkvcodec, name) is not None
