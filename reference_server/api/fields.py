# The building blocks of request validation (api.md §6: "body names the field"):
# small declarative specs for JSON body fields and query parameters, each of which
# both checks a value and describes itself as JSON Schema. parse.py declares the
# API's fields with them and takes values through them; openapi.py renders the same
# specs, so the document cannot drift from what is enforced.
#
# Checks are strict where JSON is loose: a bool is not an integer (Python says it
# is), 1.0 is not an integer, null means "absent". Every refusal is InvalidArgument
# naming the field as the client wrote it (``power_tiers[1].minutes``).
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, Protocol

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BodySpec", "BoolField", "BoolQuery", "ChoiceField", "ChoiceListQuery", "FieldSpec",
           "IntField", "IntQuery", "ObjectField", "ObjectListField", "ParamsField", "QuerySpec",
           "StrField", "StrListField", "StrQuery", "invalid", "json_type"]


def invalid(name: str, problem: str) -> NoReturn:
    """Refuse the request: InvalidArgument naming *name*."""
    raise InvalidArgument(name, problem)


class FieldSpec(Protocol):
    """A field of a JSON body: its name and its JSON Schema."""

    @property
    def name(self) -> str:
        """The key in the body."""
        ...

    def schema(self) -> dict[str, object]:
        """The field's JSON Schema (OpenAPI 3.1)."""
        ...


# --- body fields ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IntField:
    """An integer from *low* to *high* (or one of *also*); bools and floats refused."""

    name: str
    low: int
    high: int
    description: str
    also: tuple[int, ...] = ()

    def check(self, value: object, where: str) -> int:
        """*value* as an int, or InvalidArgument naming *where*."""
        # bool is an int subclass in Python, but true is not 1 to an API client.
        if isinstance(value, bool) or not isinstance(value, int):
            invalid(where, f"must be an integer, got {json_type(value)}")
        if not (self.low <= value <= self.high or value in self.also):
            invalid(where, f"must be {self._range_text()}, got {value}")
        return value

    def take(self, body: Mapping[str, object], prefix: str = "") -> int | None:
        """The field's value, or None when absent or null."""
        value = body.get(self.name)
        return None if value is None else self.check(value, prefix + self.name)

    def require(self, body: Mapping[str, object], prefix: str = "") -> int:
        """The field's value; absent or null is an error."""
        value = self.take(body, prefix)
        if value is None:
            invalid(prefix + self.name, "is required")
        return value

    def _range_text(self) -> str:
        text = f"an integer from {self.low} to {self.high}"
        return text + "".join(f" or {v}" for v in self.also)

    def schema(self) -> dict[str, object]:
        base: dict[str, object] = {"type": "integer", "minimum": self.low,
                                   "maximum": self.high}
        if not self.also:
            return {**base, "description": self.description}
        return {"description": self.description,
                "oneOf": [base, *({"const": v} for v in self.also)]}


@dataclass(frozen=True, slots=True)
class StrField:
    """A string of *min_length* to *max_length* characters, optionally matching *pattern*."""

    name: str
    max_length: int
    description: str
    min_length: int = 1
    pattern: str | None = None

    def check(self, value: object, where: str) -> str:
        """*value* as a str, or InvalidArgument naming *where*."""
        if not isinstance(value, str):
            invalid(where, f"must be a string, got {json_type(value)}")
        if not self.min_length <= len(value) <= self.max_length:
            invalid(where, f"must be {self.min_length} to {self.max_length} characters long")
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            invalid(where, f"must match {self.pattern}")
        return value

    def take(self, body: Mapping[str, object], prefix: str = "") -> str | None:
        """The field's value, or None when absent or null."""
        value = body.get(self.name)
        return None if value is None else self.check(value, prefix + self.name)

    def require(self, body: Mapping[str, object], prefix: str = "") -> str:
        """The field's value; absent or null is an error."""
        value = self.take(body, prefix)
        if value is None:
            invalid(prefix + self.name, "is required")
        return value

    def schema(self) -> dict[str, object]:
        out: dict[str, object] = {"type": "string", "minLength": self.min_length,
                                  "maxLength": self.max_length, "description": self.description}
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True, slots=True)
class ChoiceField:
    """One string out of *choices*."""

    name: str
    choices: tuple[str, ...]
    description: str

    def take(self, body: Mapping[str, object], prefix: str = "") -> str | None:
        """The chosen string, or None when absent or null."""
        value = body.get(self.name)
        if value is None:
            return None
        if not isinstance(value, str) or value not in self.choices:
            invalid(prefix + self.name, "must be one of " + ", ".join(self.choices))
        return value

    def schema(self) -> dict[str, object]:
        return {"type": "string", "enum": list(self.choices), "description": self.description}


@dataclass(frozen=True, slots=True)
class BoolField:
    """``true`` or ``false`` (not 1 or 0)."""

    name: str
    description: str

    def take(self, body: Mapping[str, object], prefix: str = "") -> bool | None:
        """The value, or None when absent or null."""
        value = body.get(self.name)
        if value is None:
            return None
        if not isinstance(value, bool):
            invalid(prefix + self.name, f"must be true or false, got {json_type(value)}")
        return value

    def schema(self) -> dict[str, object]:
        return {"type": "boolean", "description": self.description}


@dataclass(frozen=True, slots=True)
class StrListField:
    """A list of up to *max_items* strings, each checked by *item*."""

    name: str
    item: StrField
    max_items: int
    description: str

    def take(self, body: Mapping[str, object]) -> tuple[str, ...] | None:
        """The strings, or None when absent or null."""
        value = body.get(self.name)
        if value is None:
            return None
        if not isinstance(value, list):
            invalid(self.name, f"must be a list, got {json_type(value)}")
        if len(value) > self.max_items:
            invalid(self.name, f"must hold at most {self.max_items} items")
        return tuple(self.item.check(entry, f"{self.name}[{i}]")
                     for i, entry in enumerate(value))

    def schema(self) -> dict[str, object]:
        return {"type": "array", "maxItems": self.max_items, "items": self.item.schema(),
                "description": self.description}


@dataclass(frozen=True, slots=True)
class ObjectField:
    """A JSON object of any keys (checked by whoever reads it)."""

    name: str
    description: str

    def take(self, body: Mapping[str, object]) -> dict[str, object] | None:
        """The object, or None when absent or null."""
        value = body.get(self.name)
        if value is None:
            return None
        if not isinstance(value, dict):
            invalid(self.name, f"must be an object, got {json_type(value)}")
        return {str(k): v for k, v in value.items()}

    def schema(self) -> dict[str, object]:
        return {"type": "object", "description": self.description}


@dataclass(frozen=True, slots=True)
class BodySpec:
    """A JSON object body: its fields, which are required, extra JSON Schema rules."""

    name: str
    description: str
    fields: tuple[FieldSpec, ...]
    required: tuple[str, ...] = ()
    all_of: tuple[Mapping[str, object], ...] = ()

    def schema(self) -> dict[str, object]:
        """The body's JSON Schema; unknown properties are allowed (and ignored)."""
        out: dict[str, object] = {
            "type": "object", "description": self.description,
            "properties": {f.name: f.schema() for f in self.fields}}
        if self.required:
            out["required"] = list(self.required)
        if self.all_of:
            out["allOf"] = [dict(rule) for rule in self.all_of]
        return out


@dataclass(frozen=True, slots=True)
class ObjectListField:
    """A list of *min_items* to *max_items* objects, each described by *item*."""

    name: str
    item: BodySpec
    max_items: int
    description: str
    min_items: int = 1

    def take(self, body: Mapping[str, object]) -> list[dict[str, object]] | None:
        """The list's objects, or None when absent or null."""
        value = body.get(self.name)
        if value is None:
            return None
        if not isinstance(value, list):
            invalid(self.name, f"must be a list, got {json_type(value)}")
        if not self.min_items <= len(value) <= self.max_items:
            invalid(self.name, f"must hold {self.min_items} to {self.max_items} items")
        items: list[dict[str, object]] = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                invalid(f"{self.name}[{i}]", f"must be an object, got {json_type(entry)}")
            items.append({str(k): v for k, v in entry.items()})
        return items

    def schema(self) -> dict[str, object]:
        return {"type": "array", "minItems": self.min_items, "maxItems": self.max_items,
                "items": {"$ref": f"#/components/schemas/{self.item.name}"},
                "description": self.description}


@dataclass(frozen=True, slots=True)
class ParamsField:
    """``params``: an object of parameter names to integers."""

    name: str
    value: IntField
    description: str
    max_items: int = 64

    def take(self, body: Mapping[str, object]) -> dict[str, int] | None:
        """The parameters, or None when absent or null."""
        raw = body.get(self.name)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            invalid(self.name, f"must be an object, got {json_type(raw)}")
        if not 1 <= len(raw) <= self.max_items:
            invalid(self.name, f"must hold 1 to {self.max_items} parameters")
        params: dict[str, int] = {}
        for key, value in raw.items():
            name = str(key)
            if not 1 <= len(name) <= 64:
                invalid(self.name, "parameter names must be 1 to 64 characters long")
            params[name] = self.value.check(value, f"{self.name}.{name}")
        return params

    def schema(self) -> dict[str, object]:
        return {"type": "object", "minProperties": 1, "maxProperties": self.max_items,
                "additionalProperties": self.value.schema(), "description": self.description}


def json_type(value: object) -> str:
    """What a JSON value is, in words (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# --- query parameters ----------------------------------------------------------------------

class QuerySpec(Protocol):
    """A query parameter: its name, whether it is required, its JSON Schema."""

    @property
    def name(self) -> str:
        """The parameter name."""
        ...

    @property
    def description(self) -> str:
        """Words for the document."""
        ...

    def schema(self) -> dict[str, object]:
        """The parameter's JSON Schema."""
        ...


@dataclass(frozen=True, slots=True)
class IntQuery:
    """An integer query parameter with a default."""

    name: str
    low: int
    high: int
    default: int | None
    description: str

    def parse(self, query: Mapping[str, str]) -> int | None:
        """The value, the default when absent.

        Raises:
            InvalidArgument: Not a decimal integer in range.
        """
        raw = query.get(self.name)
        if raw is None or raw == "":
            return self.default
        text = raw.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        if not digits.isdecimal() or len(digits) > 19:
            invalid(self.name, f"must be an integer from {self.low} to {self.high}")
        value = int(text)
        if not self.low <= value <= self.high:
            invalid(self.name, f"must be an integer from {self.low} to {self.high}")
        return value

    def schema(self) -> dict[str, object]:
        out: dict[str, object] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            out["default"] = self.default
        return out


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True, slots=True)
class BoolQuery:
    """A boolean filter: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``); absent = no
    filter."""

    name: str
    description: str

    def parse(self, query: Mapping[str, str]) -> bool | None:
        """The value, or None when absent.

        Raises:
            InvalidArgument: Not a boolean word.
        """
        raw = query.get(self.name)
        if raw is None or raw == "":
            return None
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        invalid(self.name, "must be true or false")

    def schema(self) -> dict[str, object]:
        return {"type": "boolean"}


@dataclass(frozen=True, slots=True)
class StrQuery:
    """A free string parameter (an identifier or an opaque cursor)."""

    name: str
    max_length: int
    description: str

    def parse(self, query: Mapping[str, str]) -> str | None:
        """The value, or None when absent.

        Raises:
            InvalidArgument: Longer than *max_length*.
        """
        raw = query.get(self.name)
        if raw is None or raw == "":
            return None
        if len(raw) > self.max_length:
            invalid(self.name, f"must be at most {self.max_length} characters long")
        return raw

    def schema(self) -> dict[str, object]:
        return {"type": "string", "maxLength": self.max_length}


@dataclass(frozen=True, slots=True)
class ChoiceListQuery:
    """One or more comma-separated words out of *choices*."""

    name: str
    choices: tuple[str, ...]
    description: str
    multiple: bool = True

    def parse(self, query: Mapping[str, str]) -> tuple[str, ...]:
        """The chosen words (empty: no filter).

        Raises:
            InvalidArgument: An unknown word, or several where one is allowed.
        """
        raw = query.get(self.name)
        if raw is None or raw == "":
            return ()
        words = tuple(w.strip() for w in raw.split(","))
        if any(w not in self.choices for w in words) or (len(words) > 1 and not self.multiple):
            invalid(self.name, ("comma-separated values out of " if self.multiple
                                 else "one of ") + ", ".join(self.choices))
        return words

    def schema(self) -> dict[str, object]:
        if self.multiple:
            return {"type": "string", "description": "comma-separated: "
                    + ", ".join(self.choices)}
        return {"type": "string", "enum": list(self.choices)}
