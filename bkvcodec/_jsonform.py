# Frames as JSON-ready dicts and back, in the layout of the protocol references'
# vector files (bkv.md §9): envelope fields, ``message``, and ``fields`` with raw
# integers, lower-case hex for byte strings and 14-digit strings for times.
# The CLI speaks this form; so can anyone who logs or replays frames.
#
# AP3000 frames and the modem's non-frame items have their own layout
# (ap3000.md §10), written by ``_ap3000/jsonform.py``; the public functions here
# dispatch on the object's type (to JSON) or on its ``protocol`` / ``kind`` /
# ``physical_id`` keys (from JSON).
from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeAlias, Union

from ._ap3000 import jsonform as ap3000_json
from ._ap3000.codec import Ap3000Frame
from ._ap3000.messages import Ap3000Message
from ._ap3000.nonframe import IccidAnnouncement, LinkKeepAlive
from ._bkv import messages as m
from ._bkv.codec import BkvFrame
from ._bkv.fastpath import split_items
from ._bkv.messages import BkvMessage
from ._bkv.packets import BKV_PACKETS, BkvPacket
from ._errors import LocalProtocolError, PayloadError, RemoteProtocolError
from ._types import BcdTime, BinaryTime, Direction

__all__ = ["JsonItem", "JsonObject", "error_to_json", "frame_from_json", "frame_to_json",
           "message_name"]

JsonObject: TypeAlias = dict[str, object]
#: Everything :func:`frame_to_json` writes and :func:`frame_from_json` reads.
JsonItem: TypeAlias = BkvFrame | Ap3000Frame | IccidAnnouncement | LinkKeepAlive

_MESSAGE_CLASSES: tuple[type[Any], ...] = typing.get_args(BkvMessage)
_NAME_OVERRIDES: dict[type[Any], str] = {m.Bkv1013Report: "bkv_1013_report"}
_PACKET_CLASSES = frozenset(cls for cls, _ in BKV_PACKETS.values()) | {m.UnknownBkvPacket}
# Fields that the envelope or the layout already state.
_HIDDEN = frozenset({"container", "item_order", "direction"})


def message_name(message: BkvMessage | Ap3000Message | type[BkvMessage]
                 | type[Ap3000Message]) -> str:
    """The snake_case message name, as in the message catalogues: for BKV messages (``heartbeat``,
    ``status_report`` …), for AP3000 ones (``register``,
    ``charge_control_reply`` …; ``unknown`` for :class:`~bkvcodec.ap3000.UnknownAp3000Command`).

    Names are unique within a protocol family, not across families: the
    ``protocol`` key of the JSON form tells them apart.
    """
    cls = message if isinstance(message, type) else type(message)
    if cls in _AP3000_CLASSES:
        return ap3000_json.message_name(cls)
    return _NAME_OVERRIDES.get(cls) or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


_AP3000_CLASSES: frozenset[type[Any]] = frozenset(typing.get_args(Ap3000Message))


_CLASSES_BY_NAME = {message_name(cls): cls for cls in _MESSAGE_CLASSES}


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, BcdTime):
        return str(value)
    if isinstance(value, BinaryTime):
        # Out-of-range fields do not fit the 14-digit form; spell them out.
        text = str(value)
        return text if len(text) == 14 else dataclasses.asdict(value)
    if isinstance(value, m.BkvItem):
        return {"tag": value.key, "value": value.value.hex()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Direction):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    return value


def _fields(obj: object) -> JsonObject:
    out: JsonObject = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if f.name in _HIDDEN or value is None or (f.name in ("extra", "unknown") and not value):
            continue
        if f.name == "tier_durations_min" or (f.name == "tiers" and getattr(
                obj, "amount_fen", 0) is not None):
            out["tier_count"] = len(value)
        if f.name == "windows":
            out["window_count"] = len(value)
        out[f.name] = _plain(value)
    return out


def frame_to_json(frame: JsonItem, raw: bytes | None = None) -> JsonObject:
    """*frame* in the layout of its protocol's vector files.

    Args:
        frame: A :class:`~bkvcodec.bkv.BkvFrame`, an
            :class:`~bkvcodec.ap3000.Ap3000Frame` or a non-frame
            item (``{"kind": …}``).
        raw: The frame's bytes if known, else the frame is encoded again.

    Returns:
        A JSON-ready dict.
    """
    if isinstance(frame, Ap3000Frame):
        return ap3000_json.frame_to_json(frame, raw)
    if isinstance(frame, IccidAnnouncement | LinkKeepAlive):
        return ap3000_json.non_frame_to_json(frame)
    data = raw if raw is not None else frame.encode()
    payload = data[18:-3]
    message = frame.message
    fields: JsonObject = {}
    if frame.command in (m.GN_CONTROL, m.GN_NETWORK) and len(payload) >= 3:
        fields["inner_length"] = int.from_bytes(payload[:2], "big")
        fields["sub_command"] = payload[2]
    if type(message) in _PACKET_CLASSES:
        items = split_items(payload)
        packet: BkvPacket = message  # type: ignore[assignment]
        fields["items"] = [{"tag": key, "value": value.hex()} for key, value in items]
        fields["bkv_cmd"] = int.from_bytes(items[0][1], "big")
        fields["bkv_seq"] = packet.bkv_seq
        fields["bkv_gateway_id"] = packet.bkv_gateway_id or frame.gateway_id
        body = _fields(message)
        body.pop("bkv_seq", None)
        body.pop("bkv_gateway_id", None)
        fields.update(body)
    else:
        fields.update(_fields(message))
    out: JsonObject = {
        "protocol": "bkv",
        "header": data[:2].hex(),
        "length": int.from_bytes(data[2:4], "big"),
        "command": frame.command,
        "seq": frame.seq,
        "direction": data[10],
        "gateway_id": frame.gateway_id,
        "payload": payload.hex(),
        "checksum": data[-3],
        "trailer": data[-2:].hex(),
        "message": message_name(message),
        "fields": fields,
    }
    return out


def error_to_json(error: RemoteProtocolError, data: bytes = b"",
                  direction: Direction | None = None) -> JsonObject:
    """A decode error as ``{"error": code, ...numbers, "detail": message}``.

    Both protocols use the same names for the same condition: the error's
    attributes under their own names (``needed``/``available``, ``length``/``minimum``,
    ``length``/``limit``, ``found``, ``frame_length``/``available`` …), byte strings
    as lower-case hex, and a checksum's ``expected``/``actual`` as
    ``expected_checksum``/``actual_checksum``. Only ``error``, the code, follows
    each protocol's test vectors (``truncated`` / ``incomplete`` …).

    For a :class:`~bkvcodec.errors.PayloadError` the frame itself is valid: ``frame_valid`` is true
    and the frame's header fields are added from *data* (the frame's bytes) under
    the names :func:`frame_to_json` gives them, so that a log line says which
    device sent it: ``gateway_id``, ``seq``, ``command``, ``direction`` for BKV,
    ``physical_id``, ``message_id``, ``command``, ``direction`` (*direction*, the
    one the frame was decoded in) for AP3000.
    """
    out: JsonObject = {"error": error.code}
    for key, value in vars(error).items():
        if key in ("expected", "actual"):
            key = f"{key}_checksum"
        out[key] = value.hex() if isinstance(value, bytes) else value
    if isinstance(error, PayloadError):
        out["frame_valid"] = True
        if data.startswith(b"DNY"):
            out.update(ap3000_json.header_to_json(data, direction))
        elif len(data) >= 18:
            out.update({"gateway_id": data[11:18].hex(),
                        "seq": int.from_bytes(data[6:10], "big"),
                        "command": int.from_bytes(data[4:6], "big"), "direction": data[10]})
    out["detail"] = str(error)
    return out


# --- JSON to frames --------------------------------------------------------------------------

_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(hint: Any, value: object, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0] if len(options) == 1 else hint, value, where) \
            if len(options) == 1 else _convert_union(options, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise LocalProtocolError(f"{where}: expected a list")
        item_hint = typing.get_args(hint)[0]
        return tuple(_convert(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bytes:
        if not isinstance(value, str):
            raise LocalProtocolError(f"{where}: expected a hex string")
        try:
            return bytes.fromhex(value)
        except ValueError as err:
            raise LocalProtocolError(f"{where}: {err}") from err
    if hint is BcdTime:
        return BcdTime(_convert(bytes, value, where))  # type: ignore[arg-type]
    if hint is BinaryTime:
        if isinstance(value, Mapping):
            return _build(BinaryTime, value, where)
        text = str(value)
        if not re.fullmatch(r"\d{14}", text):
            raise LocalProtocolError(f"{where}: expected YYYYMMDDhhmmss")
        return BinaryTime(int(text[:4]), *(int(text[i:i + 2]) for i in range(4, 14, 2)))
    if hint is m.BkvItem:
        if not isinstance(value, Mapping):
            raise LocalProtocolError(f"{where}: expected {{tag, value}}")
        return m.BkvItem(key=value["tag"], value=_convert(bytes, value["value"], where))  # type: ignore[arg-type]
    if hint is Direction:
        return Direction(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise LocalProtocolError(f"{where}: expected an object")
        return _build(hint, value, where)  # type: ignore[arg-type]
    if hint in (int, str) and not isinstance(value, hint):
        raise LocalProtocolError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _convert_union(options: list[Any], value: object, where: str) -> object:
    for option in options:
        if isinstance(value, option):
            return value
    raise LocalProtocolError(f"{where}: unexpected {value!r}")


def _build(cls: type[Any], values: Mapping[str, object], where: str) -> Any:
    hints = _hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}")
              for name, value in values.items() if name in hints}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise LocalProtocolError(f"{where}: {err}") from err


def frame_from_json(obj: Mapping[str, Any]) -> JsonItem:
    """The frame (or non-frame item) described by *obj* (the layout of
    :func:`frame_to_json`).

    An object with ``"protocol": "ap3000"``, a ``physical_id`` or a ``kind`` is
    read as AP3000 (``physical_id``, ``message_id``, ``message``,
    ``fields``). Anything else is read as BKV: envelope fields ``gateway_id``,
    ``seq`` and optionally ``direction`` (the byte) and ``command`` (for GN
    containers), ``message`` and ``fields``. Derived fields (lengths, counts,
    ``items``, checksums) are ignored.

    Args:
        obj: The JSON object.

    Returns:
        The frame or item; ``.encode()`` gives its bytes.

    Raises:
        LocalProtocolError: The object does not describe a frame.
    """
    if ap3000_json.is_ap3000_json(obj):
        if "kind" in obj:
            return ap3000_json.non_frame_from_json(obj)
        return ap3000_json.frame_from_json(obj)
    return _bkv_frame_from_json(obj)


def _bkv_frame_from_json(obj: Mapping[str, Any]) -> BkvFrame:
    name = obj.get("message")
    cls = _CLASSES_BY_NAME.get(str(name))
    if cls is None:
        raise LocalProtocolError(f"unknown message {name!r}")
    fields = dict(obj.get("fields") or {})
    items = fields.get("items")
    if cls in _PACKET_CLASSES and isinstance(items, list):
        fields["item_order"] = [i["tag"] for i in items[3:]]
        if cls is m.UnknownBkvPacket:
            fields["unknown"] = items[3:]
    if "command" in obj and "container" in _hints(cls):
        fields["container"] = obj["command"]
    header = str(obj.get("header", ""))
    if "direction" in _hints(cls):
        fields["direction"] = "down" if header == "fcff" else "up"
    gateway_id = str(obj.get("gateway_id", ""))
    if fields.get("bkv_gateway_id") == gateway_id:
        del fields["bkv_gateway_id"]
    message = _build(cls, fields, "fields")
    frame = BkvFrame(gateway_id=gateway_id, message=message,
                     seq=int(obj.get("seq", 0)))
    direction_byte = obj.get("direction")
    if isinstance(direction_byte, int) and direction_byte != (frame.direction is Direction.UP):
        frame = dataclasses.replace(frame, direction_byte=direction_byte)
    return frame
