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


_REF_PREFIX = "#/components/schemas/"


def _inline(text: str) -> str:
    """Plain text from the OpenAPI document, safe inside reStructuredText."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`") \
        .replace("|", "\\|").replace("_ ", "\\_ ")


def _resolve(schema: Mapping[str, object], schemas: Mapping[str, object]
             ) -> tuple[str | None, Mapping[str, object]]:
    """The component name (or None) and the schema behind a ``$ref``."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        name = ref[len(_REF_PREFIX):]
        target = schemas[name]
        assert isinstance(target, Mapping)
        return name, target
    return None, schema


def _json(value: object) -> str:
    return "``" + json.dumps(value, ensure_ascii=False) + "``"


def _type_text(schema: Mapping[str, object], schemas: Mapping[str, object]) -> str:
    """A short type: ``integer, 1–16``, ``string or null``, ``array of Port`` …"""
    name, schema = _resolve(schema, schemas)
    if name is not None:
        return f"object ({name})"
    if "const" in schema:
        return "exactly " + _json(schema["const"])
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(alternatives, list):
        return " or ".join(_type_text(a, schemas) for a in alternatives)
    kind = schema.get("type")
    kinds = [str(k) for k in kind] if isinstance(kind, list) else [str(kind or "any")]
    text = " or ".join(kinds)
    if "array" in kinds and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        assert isinstance(items, Mapping)
        text = text.replace("array", "array of " + _type_text(items, schemas), 1)
    facts: list[str] = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        facts.append(f"{low}–{high}")
    elif low is not None:
        facts.append(f"≥ {low}")
    elif high is not None:
        facts.append(f"≤ {high}")
    for lo_key, hi_key, unit in (("minLength", "maxLength", "characters"),
                                 ("minItems", "maxItems", "items"),
                                 ("minProperties", "maxProperties", "fields")):
        lo, hi = schema.get(lo_key), schema.get(hi_key)
        if lo is not None and hi is not None:
            facts.append(f"{lo}–{hi} {unit}")
        elif hi is not None:
            facts.append(f"at most {hi} {unit}")
        elif lo is not None:
            facts.append(f"at least {lo} {unit}")
    if "pattern" in schema:
        facts.append("pattern ``" + str(schema["pattern"]) + "``")
    enum = schema.get("enum")
    if isinstance(enum, list):
        facts.append("one of " + ", ".join(_json(v) for v in enum))
    return ", ".join([text, *facts])


def _conditions(schema: Mapping[str, object]) -> dict[str, list[str]]:
    """Fields required only when another field has a value (``allOf`` of if/then)."""
    out: dict[str, list[str]] = {}
    for rule in schema.get("allOf") or []:
        if not isinstance(rule, Mapping) or "if" not in rule:
            continue
        condition = rule["if"].get("properties", {})
        when = " and ".join(f"``{k}`` is {_json(v.get('const'))}"
                            for k, v in condition.items())
        for field in rule.get("then", {}).get("required", []):
            out.setdefault(field, []).append(when)
    return out


def _fields(schema: Mapping[str, object], schemas: Mapping[str, object], indent: str,
            seen: tuple[str, ...] = ()) -> list[str]:
    """A nested bullet list of an object schema's fields (``$ref`` resolved)."""
    name, schema = _resolve(schema, schemas)
    if name is not None:
        if name in seen:
            return [f"{indent}* (the {name} object above)", ""]
        seen = (*seen, name)
    alternatives = schema.get("oneOf")
    if isinstance(alternatives, list) and "properties" not in schema:
        lines: list[str] = []
        for alternative in alternatives:
            alt_name, resolved = _resolve(alternative, schemas)
            lines += [f"{indent}* One of: {alt_name or 'an object'}"
                      + (f" — {_inline(str(resolved['description']))}"
                         if resolved.get("description") else ""), ""]
            lines += _fields(alternative, schemas, indent + "  ", seen)
        return lines
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return [f"{indent}* {_type_text(schema, schemas)}", ""]
    required = set(schema.get("required") or [])
    conditional = _conditions(schema)
    lines = []
    for field, sub in properties.items():
        assert isinstance(sub, Mapping)
        if field in required:
            need = "required"
        elif field in conditional:
            need = "required when " + " or ".join(conditional[field])
        else:
            need = "optional"
        text = f"{indent}* ``{field}`` ({_type_text(sub, schemas)}; {need})"
        description = sub.get("description")
        if description:
            text += ": " + _inline(str(description))
        lines += [text, ""]
        _, target = _resolve(sub, schemas)
        if target.get("type") == "array" and isinstance(target.get("items"), Mapping):
            target = target["items"]
        _, resolved = _resolve(target, schemas)
        if isinstance(resolved.get("properties"), Mapping):
            lines += _fields(target, schemas, indent + "  ", seen)
    if schema.get("additionalProperties") is False:
        lines += [f"{indent}* No other field is accepted.", ""]
    return lines


def _data_schema(response: Mapping[str, object]) -> Mapping[str, object] | None:
    """The ``data`` schema of a success answer (the envelope's ``allOf``)."""
    content = response.get("content")
    if not isinstance(content, Mapping) or "application/json" not in content:
        return None
    schema = content["application/json"].get("schema", {})
    for part in schema.get("allOf") or []:
        data = part.get("properties", {}).get("data")
        if data is not None:
            return data  # type: ignore[no-any-return]
    return None


class OpenApiReference(SphinxDirective):
    """One section per route: method, path, summary, parameters, body and answers."""

    def run(self) -> list[nodes.Node]:
        from reference_server.api import openapi_document

        document = openapi_document()
        paths = document["paths"]
        components = document["components"]
        assert isinstance(paths, dict) and isinstance(components, dict)
        schemas = components["schemas"]
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
                        lines += [_inline(text), ""]
                if operation.get("security") == []:
                    lines += ["No authentication.", ""]
                parameters = operation.get("parameters") or []
                if parameters:
                    lines += ["**Parameters**", ""]
                    for p in parameters:
                        need = "required" if p.get("required") else "optional"
                        lines += [f"* ``{p['name']}`` (in {p['in']}; "
                                  f"{_type_text(p.get('schema', {}), schemas)}; {need}): "
                                  f"{_inline(p.get('description', ''))}", ""]
                body = operation.get("requestBody")
                if body:
                    schema = body.get("content", {}).get("application/json", {}).get(
                        "schema", {})
                    lines += ["**Request body** (JSON object)"
                              + (f": {_inline(body['description'])}"
                                 if body.get("description") else ""), ""]
                    lines += _fields(schema, schemas, "")
                responses = operation.get("responses") or {}
                if responses:
                    lines += ["**Responses**", ""]
                    for code, r in responses.items():
                        lines += [f"* ``{code}``: {_inline(r.get('description', ''))}", ""]
                    for code, r in responses.items():
                        data = _data_schema(r)
                        if data is not None and code.startswith("2"):
                            data_name, _ = _resolve(data, schemas)
                            lines += [f"**Answer** ``data`` on ``{code}``"
                                      + (f" ({data_name})" if data_name else "") + ":", ""]
                            lines += _fields(data, schemas, "")
                            break
        return parse(self, lines)


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("server-settings", ServerSettings)
    app.add_directive("openapi-reference", OpenApiReference)
    return {"parallel_read_safe": True}
