# AP3000 frames and non-frame items as JSON-ready dicts and back, in the layout
# of the AP3000 vector files (ap3000.md §10): frame fields (``length``,
# ``physical_id`` as 8 hex digits, ``device_type_code``, ``device_number``,
# ``message_id``, ``command``, ``message``, ``data_hex``, ``checksum``) and
# ``fields`` with raw integers, hex for byte strings (the dataclass field name
# plus ``_hex``), lists for per-port arrays, and the derived values the vectors
# show (list counts such as ``port_count``, ``card_id_decimal``).
# Hex is lower case as in the BKV form (the AP3000 files print upper case; the
# vector checker compares hex without regard to case, and reading accepts both);
# ``physical_id`` keeps its printed ``phy_id`` form, an identifier in upper case.
# Derived values are ignored when reading JSON back; byte strings and integers
# are authoritative, so ``decode → JSON → encode`` gives back the same bytes.
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from .._errors import LocalProtocolError
from .._types import Direction
from .codec import Ap3000Frame
from .messages import (
    MESSAGE_TYPES,
    Ap3000CardSwipe,
    Ap3000CardSwipeReply,
    Ap3000FirmwarePacketHost,
    Ap3000FirmwarePacketPowerBoard,
    Ap3000FirmwarePacketSlave,
    Ap3000Heartbeat,
    Ap3000LegacyHeartbeat,
    Ap3000Message,
    Ap3000OrderConfirm,
    Ap3000PlayVoice,
    Ap3000SlaveVersion,
    Ap3000SlaveVersions,
    UnknownAp3000Command,
)
from .nonframe import IccidAnnouncement, LinkKeepAlive
from .values import format_phy_id, parse_phy_id

__all__ = ["frame_from_json", "frame_to_json", "header_to_json", "is_ap3000_json",
           "message_name", "non_frame_from_json", "non_frame_to_json"]

JsonObject = dict[str, object]

#: Name of :class:`UnknownAp3000Command` in the JSON form.
UNKNOWN_NAME = "unknown"
_CLASSES_BY_NAME: dict[str, type[Ap3000Message]] = {
    name: cls for cls, (_, _, name) in MESSAGE_TYPES.items()}
_COUNTS: dict[type[Any], tuple[str, str]] = {
    Ap3000Heartbeat: ("port_status", "port_count"),
    Ap3000LegacyHeartbeat: ("port_status", "port_count"),
    Ap3000SlaveVersions: ("entries", "type_count"),
    Ap3000PlayVoice: ("voice_ids", "voice_count"),
}
_CARD_IDS = (Ap3000CardSwipe, Ap3000CardSwipeReply, Ap3000OrderConfirm)
_FIRMWARE = (Ap3000FirmwarePacketSlave, Ap3000FirmwarePacketPowerBoard,
             Ap3000FirmwarePacketHost)


def message_name(message: Ap3000Message | type[Ap3000Message]) -> str:
    """The snake_case message name (``heartbeat``, ``charge_control_reply`` …)."""
    cls = message if isinstance(message, type) else type(message)
    if cls is UnknownAp3000Command:
        return UNKNOWN_NAME
    return MESSAGE_TYPES[cls][2]


def _hex(data: bytes) -> str:
    # Lower case, the convention of both protocols' JSON form (see the top).
    return data.hex()


def _value(value: object) -> object:
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, Ap3000SlaveVersion):
        return {"device_type": value.device_type, "reserved": value.reserved,
                "min_firmware_version": value.min_firmware_version,
                "physical_id": value.phy_id}
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    return value


def fields_to_json(message: Ap3000Message) -> JsonObject:
    """The ``fields`` object of *message*."""
    if isinstance(message, UnknownAp3000Command):
        return {}
    out: JsonObject = {}
    count = _COUNTS.get(type(message))
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if value is None or (field.name == "extra" and not value):
            continue
        if count is not None and field.name == count[0]:
            out[count[1]] = len(value)
        key = f"{field.name}_hex" if isinstance(value, bytes) else field.name
        out[key] = _value(value)
    if isinstance(message, _CARD_IDS):
        out["card_id_decimal"] = message.card_id_decimal
    if isinstance(message, _FIRMWARE) and message.verification is not None:
        out["verification"] = dataclasses.asdict(message.verification)
    return out


def frame_to_json(frame: Ap3000Frame, raw: bytes | None = None) -> JsonObject:
    """*frame* in the vector layout; *raw* (the frame's bytes) if known, else re-encoded."""
    data = raw if raw is not None else frame.encode()
    total = (data[3] | data[4] << 8) + 5
    return {
        "protocol": "ap3000",
        "direction": frame.direction.value,
        "length": total - 5,
        "physical_id": frame.phy_id,
        "device_type_code": frame.device_type_code,
        "device_number": frame.device_number,
        "message_id": frame.message_id,
        "command": frame.command,
        "message": message_name(frame.message),
        "data_hex": _hex(data[12:total - 2]),
        "checksum": data[total - 2] | data[total - 1] << 8,
        "fields": fields_to_json(frame.message),
    }


def non_frame_to_json(item: IccidAnnouncement | LinkKeepAlive) -> JsonObject:
    """A non-frame item as ``{"kind": "iccid" | "link", "value": …}``."""
    if isinstance(item, IccidAnnouncement):
        return {"protocol": "ap3000", "kind": "iccid", "value": item.iccid,
                "hex": _hex(item.encode())}
    return {"protocol": "ap3000", "kind": "link", "value": "link", "hex": _hex(item.encode())}


def header_to_json(data: bytes, direction: Direction | None = None) -> JsonObject:
    """The header fields of the frame *data* starts with, as :func:`~bkvcodec.frame_to_json`
    names them (for the JSON form of a payload error; ``_jsonform.error_to_json``)."""
    out: JsonObject = {}
    if len(data) >= 12:
        out.update({"physical_id": format_phy_id(int.from_bytes(data[5:9], "little")),
                    "message_id": data[9] | data[10] << 8, "command": data[11]})
    if direction is not None:
        out["direction"] = direction.value
    return out


# --- JSON to frames --------------------------------------------------------------------------

_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(f"{where}: expected an integer, got {value!r}")
    return value


def _bytes(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{where}: expected a hex string, got {value!r}")
    try:
        return bytes.fromhex(value)
    except ValueError as err:
        raise LocalProtocolError(f"{where}: {err}") from err


def _physical_id(value: object, where: str) -> int:
    if isinstance(value, str):
        try:
            return parse_phy_id(value)
        except ValueError as err:
            raise LocalProtocolError(f"{where}: {err}") from err
    return _int(value, where)


def _entry(value: object, where: str) -> Ap3000SlaveVersion:
    if not isinstance(value, Mapping):
        raise LocalProtocolError(f"{where}: expected an object")
    try:
        return Ap3000SlaveVersion(
            device_type=_int(value["device_type"], f"{where}.device_type"),
            reserved=_int(value.get("reserved", 0), f"{where}.reserved"),
            min_firmware_version=_int(value["min_firmware_version"],
                                      f"{where}.min_firmware_version"),
            physical_id=_physical_id(value["physical_id"], f"{where}.physical_id"))
    except KeyError as err:
        raise LocalProtocolError(f"{where}: missing {err}") from err


def _convert(hint: Any, value: object, where: str) -> object:
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    if options and typing.get_origin(hint) is not tuple:
        if value is None:
            return None
        hint = options[0]
    if hint is bytes:
        return _bytes(value, where)
    if hint is str:
        if not isinstance(value, str):
            raise LocalProtocolError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is int:
        return _int(value, where)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise LocalProtocolError(f"{where}: expected a list")
        item = typing.get_args(hint)[0]
        if item is Ap3000SlaveVersion:
            return tuple(_entry(v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(_int(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise LocalProtocolError(f"{where}: cannot convert {value!r}")


def fields_from_json(cls: type[Ap3000Message], fields: Mapping[str, object]) -> Ap3000Message:
    """The message of class *cls* described by a ``fields`` object."""
    kwargs: dict[str, Any] = {}
    for name, hint in _hints(cls).items():
        key = f"{name}_hex" if name + "_hex" in fields else name
        if key in fields:
            kwargs[name] = _convert(hint, fields[key], f"fields.{key}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise LocalProtocolError(f"fields: {err}") from err


def is_ap3000_json(obj: Mapping[str, Any]) -> bool:
    """True when *obj* describes an AP3000 frame or non-frame item."""
    return obj.get("protocol") == "ap3000" or "physical_id" in obj or "kind" in obj


def non_frame_from_json(obj: Mapping[str, Any]) -> IccidAnnouncement | LinkKeepAlive:
    """The non-frame item described by *obj* (``kind`` ``iccid`` or ``link``).

    Raises:
        LocalProtocolError: The object does not describe one.
    """
    kind = obj.get("kind")
    if kind == "link":
        return LinkKeepAlive()
    if kind == "iccid" and isinstance(obj.get("value"), str):
        return IccidAnnouncement(iccid=str(obj["value"]))
    raise LocalProtocolError(f"not a non-frame item: kind {kind!r}")


def frame_from_json(obj: Mapping[str, Any]) -> Ap3000Frame:
    """The frame described by *obj* (the layout of :func:`~bkvcodec.frame_to_json`).

    Uses ``physical_id``, ``message_id``, ``message`` and ``fields``; an unknown
    message also needs ``direction``, ``command`` and ``data_hex``. Lengths,
    checksums and derived fields are ignored.

    Raises:
        LocalProtocolError: The object does not describe a frame.
    """
    name = obj.get("message")
    physical_id = _physical_id(obj.get("physical_id"), "physical_id")
    message_id = _int(obj.get("message_id", 0), "message_id")
    if name == UNKNOWN_NAME:
        try:
            direction = Direction(obj.get("direction"))
        except ValueError as err:
            raise LocalProtocolError(f"direction: {err}") from err
        message: Ap3000Message = UnknownAp3000Command(
            direction=direction, command=_int(obj.get("command"), "command"),
            data=_bytes(obj.get("data_hex", ""), "data_hex"))
    else:
        cls = _CLASSES_BY_NAME.get(str(name))
        if cls is None:
            raise LocalProtocolError(f"unknown AP3000 message {name!r}")
        fields = obj.get("fields") or {}
        if not isinstance(fields, Mapping):
            raise LocalProtocolError("fields: expected an object")
        message = fields_from_json(cls, fields)
    return Ap3000Frame(physical_id=physical_id, message_id=message_id, message=message)
