"""Shared test helpers: the golden vectors and a containment check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent / "vectors"


def load_vectors(protocol: str) -> dict[str, Any]:
    """The vector file ``tests/vectors/<protocol>.json``."""
    return json.loads((VECTOR_DIR / f"{protocol}.json").read_text(encoding="utf-8"))


def vector_params(protocol: str, kind: str) -> list[Any]:
    """pytest parameters (id = vector id) for one list of a vector file."""
    import pytest

    return [pytest.param(case, id=case["id"]) for case in load_vectors(protocol).get(kind, [])]


def contains(answer: Any, expect: Any, path: str = "") -> str | None:
    """None when *expect* is contained in *answer*, else where they first differ.

    The rule of ``shared/tools/check_vectors.py``: every key of an expected
    object is present with an equal value; lists compare element-wise; hex
    strings compare case-insensitively.
    """
    if isinstance(expect, dict):
        if not isinstance(answer, dict):
            return f"{path or '.'}: expected an object, got {answer!r}"
        for key, value in expect.items():
            if key not in answer:
                return f"{path}.{key}: missing"
            where = contains(answer[key], value, f"{path}.{key}")
            if where:
                return where
        return None
    if isinstance(expect, list):
        if not isinstance(answer, list) or len(answer) != len(expect):
            return f"{path}: expected a list of {len(expect)}, got {answer!r}"
        for i, (a, e) in enumerate(zip(answer, expect, strict=True)):
            where = contains(a, e, f"{path}[{i}]")
            if where:
                return where
        return None
    if isinstance(expect, str) and isinstance(answer, str):
        return None if answer.lower() == expect.lower() else f"{path}: {expect!r} != {answer!r}"
    if answer == expect and type(answer) is type(expect):
        return None
    return f"{path}: expected {expect!r}, got {answer!r}"
