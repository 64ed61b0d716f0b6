"""Sphinx directives for the protocol guides, generated from the codec's own dispatch
tables, grammar and field comments so that the documentation cannot drift from the code:

``.. bkv-catalogue::``          every BKV/GN message: envelope command, key, direction
``.. ap3000-catalogue::``       every AP3000 message: command, uplink and downlink class
``.. message-fields:: P``       every field of every message of protocol P (``bkv`` or
                                ``ap3000``): wire form, type, unit and meaning
``.. value-sets:: P``           every value set (enum) the fields of protocol P refer to,
                                with its codes
"""
from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterator
from typing import Any

from docutils import nodes
from rstgen import cell, parse
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

import bkvcodec
from bkvcodec import Direction, ap3000, bkv, message_name
from bkvcodec._ap3000.grammar import LAYOUTS as AP3000_LAYOUTS
from bkvcodec._ap3000.messages import MESSAGE_TYPES as AP3000_MESSAGES
from bkvcodec._bkv import grammar as bkv_grammar
from bkvcodec._bkv.codec import _GN_CLASSES
from bkvcodec._bkv.packets import _TAGS as BKV_TAGS
from bkvcodec._bkv.packets import BKV_PACKETS

# The unit each field-name suffix stands for (bkv.md §1, ap3000.md §3.1), longest
# suffix first. The field names are the code's; this only spells the suffix out.
UNITS: dict[str, tuple[tuple[str, str], ...]] = {
    "bkv": (("_dv", "0.1 V"), ("_dw", "0.1 W"), ("_ma", "mA"), ("_wh", "Wh"),
            ("_min", "min"), ("_s", "s"), ("_fen", "0.01 CNY"), ("_c", "°C"),
            ("_pct", "%")),
    "ap3000": (("_0p01kwh", "0.01 kWh"), ("_0p001a", "0.001 A"), ("_0p01a", "0.01 A"),
               ("_0p1v", "0.1 V"), ("_0p1w", "0.1 W"), ("_temp_raw", "°C + 65"),
               ("_percent", "%"), ("_fen", "0.01 CNY"), ("_min", "min"), ("_s", "s"),
               ("_w", "W"), ("_c", "°C")),
}
# Fields every message of a kind has, described once in the guides.
_COMMON = {
    "extra": "Bytes after the last known field (newer firmware), kept and written back.",
    "unknown": "Items without a name, kept in wire order (:class:`~bkvcodec.bkv.BkvItem`).",
    "container": "The GN container command the message travelled in (``0x0005`` or "
                 "``0x0015``), written back.",
}
_ENUM_REF = re.compile(r":class:`~?(?:bkvcodec\.(?:\w+\.)?)?(\w+)`")
_NAME = re.compile(r"\b([A-Z]\w+)\b")
_BARE_REF = re.compile(r"(:(?:attr|meth):)`([a-z_]\w*)`")


# --- the catalogues ------------------------------------------------------------------

def bkv_messages() -> list[tuple[str, str, str, type[Any]]]:
    """(command, key, direction, class) of every BKV-family message with a layout."""
    rows: list[tuple[str, str, str, type[Any]]] = [
        ("``0x0000``", "", "up", bkv.Heartbeat),
        ("``0x0000``", "", "down", bkv.HeartbeatAck),
        ("``0x0007``", "", "down", bkv.OtaUpgrade),
    ]
    for cls, (sub, direction) in sorted(_GN_CLASSES.items(), key=lambda kv: kv[1][0]):
        container = cls.__dataclass_fields__["container"].default
        rows.append((f"``0x{container:04X}``", f"sub ``0x{sub:02X}``", direction.value, cls))
    for (bkv_cmd, direction), (cls, _) in sorted(BKV_PACKETS.items(),
                                                 key=lambda kv: kv[0][0]):
        rows.append(("``0x1000``", f"bkv ``0x{bkv_cmd:04X}``", direction.value, cls))
    return rows


def ap3000_messages() -> list[tuple[int, Direction, type[Any]]]:
    """(command, direction, class) of every AP3000 message with a layout."""
    return sorted(((command, direction, cls)
                   for cls, (command, direction, _) in AP3000_MESSAGES.items()),
                  key=lambda row: (row[0], row[1] is Direction.DOWN))


def public_name(cls: type[Any]) -> str:
    """The public module path of a class (``bkvcodec.bkv.Heartbeat`` …)."""
    for module in (bkvcodec, bkv, ap3000):
        if getattr(module, cls.__name__, None) is cls:
            return f"{module.__name__}.{cls.__name__}"
    raise ExtensionError(f"{cls.__qualname__} is not public")


def _ref(cls: type[Any]) -> str:
    return f":class:`~{public_name(cls)}`"


class BkvCatalogue(SphinxDirective):
    """The BKV/GN message catalogue as a table."""

    def run(self) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 12 14 8 26 22", "",
                 "   * - command", "     - key", "     - direction", "     - class",
                 "     - name (JSON ``message``)"]
        for command, key, direction, cls in bkv_messages():
            lines += [f"   * - {command}", f"     - {key or ' '}", f"     - {direction}",
                      f"     - {_ref(cls)}", f"     - ``{message_name(cls)}``"]
        return parse(self, lines)


class Ap3000Catalogue(SphinxDirective):
    """The AP3000 message catalogue: one row per command, one column per direction."""

    def run(self) -> list[nodes.Node]:
        by_command: dict[int, dict[Direction, type[Any]]] = {}
        for command, direction, cls in ap3000_messages():
            by_command.setdefault(command, {})[direction] = cls
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 8 46 46", "",
                 "   * - command", "     - device → server (up)",
                 "     - server → device (down)"]
        for command, classes in sorted(by_command.items()):
            lines.append(f"   * - ``0x{command:02X}``")
            for direction in (Direction.UP, Direction.DOWN):
                cls = classes.get(direction)
                lines.append(f"     - {_ref(cls)} (``{message_name(cls)}``)" if cls
                             else "     - —")
        return parse(self, lines)


# --- fields ----------------------------------------------------------------------------

def unit(protocol: str, name: str) -> str:
    """The unit a field name's suffix gives, or ''."""
    for suffix, text in UNITS[protocol]:
        if name.endswith(suffix):
            return text
    return ""


def _attr_docs(cls: type[Any]) -> dict[str, str]:
    """The ``#:`` comments of a class's attributes, with references to the class's own
    members (``:attr:`phy_id```) qualified, since the tables are outside the class."""
    docs = ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
    return {attr: _BARE_REF.sub(rf"\1`~{public_name(cls)}.\2`",
                                " ".join(line.strip() for line in text).strip())
            for (owner, attr), text in docs.items() if owner == cls.__name__}


def _parts(cls: type[Any]) -> Iterator[type[Any]]:
    """The public dataclasses a message's fields are made of (socket clusters …)."""
    for f in dataclasses.fields(cls):
        for name in _NAME.findall(str(f.type)):
            part = getattr(bkv, name, getattr(ap3000, name, None))
            if isinstance(part, type) and dataclasses.is_dataclass(part):
                yield part


def _struct_wire(fields: Any, optional: bool = False) -> dict[str, str]:
    """Each named field of a construct sequence and its size in the data."""
    wire: dict[str, str] = {}
    for sub in fields:
        name = getattr(sub, "name", None)
        if not name or name == "extra":
            continue
        try:
            text = f"{sub.sizeof()} B"
        except Exception:  # a size that depends on the data
            element = getattr(getattr(sub, "subcon", None), "subcon", None)
            try:
                text = f"n × {element.sizeof()} B"
            except Exception:
                text = "variable"
        wire[name] = text + (", optional" if optional else "")
    return wire


def _ap3000_wire(cls: type[Any]) -> dict[str, str]:
    command, direction, _ = AP3000_MESSAGES[cls]
    layout = AP3000_LAYOUTS[(command, direction)]
    return {**_struct_wire(layout.mandatory), **_struct_wire(layout.optional, True)}


def _bkv_wire(cls: type[Any]) -> dict[str, str]:
    for (_, _), (packet, tags) in BKV_PACKETS.items():
        if packet is cls:
            return {BKV_TAGS[tag][0]: f"item ``0x{tag:02X}``" for tag in tags
                    if tag in BKV_TAGS}
    if cls in _GN_CLASSES:
        sub, direction = _GN_CLASSES[cls]
        return _struct_wire(bkv_grammar.GN_LAYOUTS[(sub, direction)].subcons)
    envelope = {bkv.Heartbeat: bkv_grammar.HEARTBEAT,
                bkv.HeartbeatAck: bkv_grammar.HEARTBEAT_ACK,
                bkv.OtaUpgrade: bkv_grammar.OTA_UPGRADE}.get(cls)
    return {} if envelope is None else _struct_wire(envelope.subcons)


def _field_table(protocol: str, cls: type[Any], wire: dict[str, str]) -> list[str]:
    docs = _attr_docs(cls)
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 24 14 18 10 34", "",
             "   * - field", "     - wire", "     - type", "     - unit", "     - meaning"]
    for f in dataclasses.fields(cls):
        meaning = docs.get(f.name) or _COMMON.get(f.name, "")
        lines += [f"   * - ``{f.name}``", f"     - {cell(wire.get(f.name, ''))}",
                  f"     - ``{f.type}``", f"     - {cell(unit(protocol, f.name))}",
                  f"     - {cell(meaning)}"]
    return [*lines, ""]


def protocol_classes(protocol: str) -> list[type[Any]]:
    """The messages of a protocol in catalogue order, then the parts they contain."""
    if protocol == "bkv":
        messages = [cls for _, _, _, cls in bkv_messages()]
    elif protocol == "ap3000":
        messages = [cls for _, _, cls in ap3000_messages()]
    else:
        raise ExtensionError(f"unknown protocol {protocol!r} (expected bkv or ap3000)")
    classes = list(dict.fromkeys(messages))
    for cls in list(classes):
        for part in _parts(cls):
            if part not in classes:
                classes.append(part)
    return classes


class MessageFields(SphinxDirective):
    """Every field of every message of one protocol."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        protocol = self.arguments[0]
        lines: list[str] = []
        for cls in protocol_classes(protocol):
            if protocol == "ap3000" and cls in AP3000_MESSAGES:
                wire = _ap3000_wire(cls)
            elif protocol == "bkv":
                wire = _bkv_wire(cls)
            else:
                wire = {}
            title = _ref(cls)
            if cls in AP3000_MESSAGES or hasattr(cls, "container") or cls in {
                    c for c, _ in BKV_PACKETS.values()}:
                title += f" (``{message_name(cls)}``)"
            summary = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            lines += [f".. rubric:: {title}", "", summary, ""]
            lines += _field_table(protocol, cls, wire)
        return parse(self, lines)


# --- value sets ------------------------------------------------------------------------

def value_sets(protocol: str) -> dict[type[enum.Enum], list[str]]:
    """Each enum the fields of a protocol refer to, with the fields that do."""
    sets: dict[type[enum.Enum], list[str]] = {}
    for cls in protocol_classes(protocol):
        for attr, text in _attr_docs(cls).items():
            for name in _ENUM_REF.findall(text):
                candidate = getattr(bkv, name, getattr(ap3000, name, None))
                if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
                    where = f"``{attr}`` of {_ref(cls)}"
                    sets.setdefault(candidate, [])
                    if where not in sets[candidate]:
                        sets[candidate].append(where)
    return sets


class ValueSets(SphinxDirective):
    """The codes of every value set one protocol's fields use."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        protocol = self.arguments[0]
        sets = value_sets(protocol)
        if not sets:
            raise ExtensionError(f"no value sets found for {protocol!r}")
        lines: list[str] = []
        for cls, used_by in sets.items():
            summary = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            lines += [f".. rubric:: {_ref(cls)}", "", summary, "",
                      "Used by " + ", ".join(used_by) + ".", ""]
            member_docs = _attr_docs(cls)
            # The contract's end reason (api.md §10.2) each stop reason settles with.
            ends: dict[Any, Any] = (dict(ap3000.AP3000_END_REASONS)
                                    if cls is ap3000.Ap3000StopReason else {})
            lines += [".. list-table::", "   :header-rows: 1",
                      "   :widths: 10 28 44 18" if ends else "   :widths: 10 30 60", "",
                      "   * - code", "     - name", "     - meaning"]
            if ends:
                lines.append("     - end reason")
            for member in cls:  # type: ignore[var-annotated]
                value = member.value
                code = f"``0x{value:02X}``" if isinstance(value, int) else f"``{value}``"
                lines += [f"   * - {code}", f"     - ``{member.name}``",
                          f"     - {cell(member_docs.get(member.name, ''))}"]
                if ends:
                    lines.append(f"     - {_end_reason(ends.get(member))}")
            lines.append("")
        if protocol == "bkv":
            lines += _bkv_end_reasons()
        return parse(self, lines)


def _end_reason(reason: Any) -> str:
    return f":attr:`~bkvcodec.EndReason.{reason.name}`" if reason is not None else "—"


def _bkv_end_reasons() -> list[str]:
    lines = [".. rubric:: End-reason codes", "",
             "The raw ``end_reason`` of :class:`~bkvcodec.bkv.PowerChargeEnd` and "
             ":class:`~bkvcodec.bkv.FeeChargeEnd`, and the contract's end "
             "reason (:doc:`contract`) the connection reports for it "
             "(:data:`~bkvcodec.bkv.BKV_END_REASONS`).", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 20 80", "",
             "   * - code", "     - end reason"]
    for code, reason in sorted(bkv.BKV_END_REASONS.items()):
        lines += [f"   * - ``{code}``", f"     - {_end_reason(reason)}"]
    return [*lines, ""]


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("bkv-catalogue", BkvCatalogue)
    app.add_directive("ap3000-catalogue", Ap3000Catalogue)
    app.add_directive("message-fields", MessageFields)
    app.add_directive("value-sets", ValueSets)
    return {"parallel_read_safe": True}
