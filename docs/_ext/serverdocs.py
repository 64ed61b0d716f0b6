"""Sphinx directives for the server guide, generated from the server's own code so the
pages cannot drift from it:

``.. server-settings::``   the configuration table (``reference_server.config``)
``.. openapi-reference::`` every HTTP route from the OpenAPI document the server serves
"""
from __future__ import annotations

import json
from collections.abc import Mapping

from docutils import nodes
from rstgen import cell, parse
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class ServerSettings(SphinxDirective):
    """Every setting: TOML key, environment variable, flag and meaning."""

    def run(self) -> list[nodes.Node]:
        from reference_server.config import describe_settings

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 18 24 22 36", "",
                 "   * - TOML", "     - environment", "     - flag", "     - meaning"]
        for toml_key, env, flag, help_text in describe_settings():
            lines += [f"   * - ``{toml_key}``", f"     - ``{env}``", f"     - ``{flag}``",
                      f"     - {cell(help_text)}"]
        return parse(self, lines)


def _schema_text(schema: Mapping[str, object]) -> str:
    return json.dumps(schema, ensure_ascii=False, sort_keys=True)


class OpenApiReference(SphinxDirective):
    """One section per route: method, path, summary, parameters, body and answers."""

    def run(self) -> list[nodes.Node]:
        from reference_server.api import openapi_document

        document = openapi_document()
        paths = document["paths"]
        assert isinstance(paths, dict)
        lines: list[str] = []
        for path, operations in paths.items():
            for method, operation in operations.items():
                if method not in ("get", "post", "put", "delete", "patch"):
                    continue
                # A rubric, not a section: a directive's output cannot open sections.
                lines += [f".. rubric:: ``{method.upper()} {path}``", ""]
                summary = operation.get("summary") or ""
                description = operation.get("description") or ""
                for text in (summary, description):
                    if text:
                        lines += [text, ""]
                if operation.get("security") == []:
                    lines += ["No authentication.", ""]
                parameters = operation.get("parameters") or []
                if parameters:
                    lines += ["Parameters:", ""]
                    for p in parameters:
                        required = " (required)" if p.get("required") else ""
                        lines.append(f"* ``{p['name']}`` in {p['in']}{required}: "
                                     f"{p.get('description', '')}")
                    lines.append("")
                body = operation.get("requestBody")
                if body:
                    schema = body.get("content", {}).get("application/json", {}).get(
                        "schema", {})
                    lines += ["Request body schema:", "", ".. code-block:: json", "",
                              "   " + _schema_text(schema), ""]
                responses = operation.get("responses") or {}
                if responses:
                    lines += ["Responses: " + ", ".join(
                        f"``{code}`` {r.get('description', '')}".strip()
                        for code, r in responses.items()), ""]
        return parse(self, lines)


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("server-settings", ServerSettings)
    app.add_directive("openapi-reference", OpenApiReference)
    return {"parallel_read_safe": True}
