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


# --- the HTTP reference (the OpenAPI document and its rendering) ----------------------

def _http_operations() -> list[tuple[str, str, dict[str, object]]]:
    from reference_server.api import openapi_document

    paths = openapi_document()["paths"]
    assert isinstance(paths, dict)
    return [(method, path, op) for path, ops in paths.items() for method, op in ops.items()]


def test_only_routes_with_a_body_list_the_body_limits() -> None:
    for method, path, op in _http_operations():
        responses = op["responses"]
        assert isinstance(responses, dict)
        has_body = "requestBody" in op
        assert ("413" in responses) == has_body, (method, path)
        assert ("408" in responses) == has_body, (method, path)
        if method == "get":
            assert not has_body, path


def test_the_rendered_reference_resolves_every_schema() -> None:
    import sys

    sys.path.insert(0, str(API.parent / "_ext"))
    try:
        import serverdocs
    finally:
        sys.path.remove(str(API.parent / "_ext"))
    from reference_server.api import openapi_document

    schemas = openapi_document()["components"]["schemas"]  # type: ignore[index]
    for method, path, op in _http_operations():
        body = op.get("requestBody")
        if body:
            schema = body["content"]["application/json"]["schema"]  # type: ignore[index]
            text = "\n".join(serverdocs._fields(schema, schemas, ""))
            assert "$ref" not in text and "#/components" not in text, (method, path)
            for alternative in schema.get("oneOf", [schema]):
                _, resolved = serverdocs._resolve(alternative, schemas)
                for name in resolved["properties"]:
                    assert f"``{name}``" in text, (method, path, name)
        for code, response in op["responses"].items():  # type: ignore[attr-defined]
            data = serverdocs._data_schema(response)
            if data is not None:
                text = "\n".join(serverdocs._fields(data, schemas, ""))
                assert "$ref" not in text, (method, path, code)
                _, resolved = serverdocs._resolve(data, schemas)
                for name in resolved.get("properties", {}):
                    assert f"``{name}``" in text, (method, path, code, name)
