# The BKV family's wire grammar, written once, declaratively, with construct.
#
# This module is the definition of every byte layout in bkv.md: the envelope
# (§2), heartbeat (§3), the GN container and its sub-commands (§4), OTA (§5) and
# the BKV item (§6.1). The encoder builds every frame with it; the fast decoder
# in ``fastpath.py`` is a hand-tuned reading of the same layouts and is checked
# against this grammar by a differential property test on generated, real and
# malformed frames. Field names are the dataclass field names of
# ``messages.py``, so Containers convert to messages by name.
#
# Nothing here is public: construct objects and Containers never leave the
# package, and construct's exceptions are converted by the codec.
from __future__ import annotations

from typing import Any

import construct as cs
from construct import this

from .._types import Direction

__all__ = [
    "BKV_ITEM", "BKV_ITEMS", "ENVELOPE", "GN_CONTAINER", "GN_LAYOUTS", "HEARTBEAT",
    "HEARTBEAT_ACK", "OTA_UPGRADE",
]

# The construct stubs type adapters loosely; this module is the one place where
# ``Any`` is allowed (pyproject relaxes disallow_any_explicit here).


class _Latin1(cs.Adapter):  # type: ignore[type-arg]
    """Fixed-size text padded with NULs. Devices send ASCII; any other byte
    decodes as Latin-1 so that a frame is never lost over one odd character."""

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        return obj.rstrip(b"\0").decode("latin-1")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        raw = obj.encode("latin-1")
        return raw + b"\0" * (self.subcon.sizeof() - len(raw))


class _HourMinute(cs.Adapter):  # type: ignore[type-arg]
    """An hour byte and a minute byte as ``hh:mm``."""

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        return f"{obj[0]:02d}:{obj[1]:02d}"

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        hour, minute = obj.split(":")
        return bytes((int(hour), int(minute)))


class _IPv4(cs.Adapter):  # type: ignore[type-arg]
    """Four bytes as a dotted IPv4 address."""

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        return ".".join(str(octet) for octet in obj)

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        return bytes(int(octet) for octet in obj.split("."))


class _BkvLength(cs.Adapter):  # type: ignore[type-arg]
    """The BKV item LEN: 1-4 bytes of 7 value bits, most significant
    group first, bit 7 set on every byte but the last."""

    def _decode(self, obj: list[int], context: Any, path: Any) -> int:
        if obj[-1] & 0x80:
            raise cs.ValidationError("BKV LEN longer than 4 bytes", path=path)
        value = 0
        for byte in obj:
            value = (value << 7) | (byte & 0x7F)
        return value

    def _encode(self, obj: int, context: Any, path: Any) -> list[int]:
        if obj >= 1 << 28:
            raise cs.ValidationError("BKV LEN longer than 4 bytes", path=path)
        groups = [obj & 0x7F]
        obj >>= 7
        while obj:
            groups.append(0x80 | (obj & 0x7F))
            obj >>= 7
        return groups[::-1]


# --- envelope (§2) ---------------------------------------------------------------------
UPLINK_MAGIC = b"\xfc\xfe"
DOWNLINK_MAGIC = b"\xfc\xff"
TRAILER = b"\xfc\xee"
#: Envelope bytes around the payload: header 2, length 2, command 2, seq 4,
#: direction 1, gateway id 7, checksum 1, trailer 2.
ENVELOPE_OVERHEAD = 21

_ENVELOPE_BODY = cs.Struct(
    "length" / cs.Rebuild(cs.Int16ub, cs.len_(this.payload) + ENVELOPE_OVERHEAD - 4),
    "command" / cs.Int16ub,
    "seq" / cs.Int32ub,
    "direction" / cs.Int8ub,
    "gateway_id" / cs.Bytes(7),
    "payload" / cs.Bytes(this.length - (ENVELOPE_OVERHEAD - 4)),
)

ENVELOPE = cs.Struct(
    # Select of two Consts rather than OneOf: OneOf's error message calls str() on
    # the bytes, which python -bb turns into an error.
    "header" / cs.Select(cs.Const(UPLINK_MAGIC), cs.Const(DOWNLINK_MAGIC)),
    "body" / cs.RawCopy(_ENVELOPE_BODY),
    "checksum" / cs.Checksum(cs.Int8ub, lambda data: sum(data) & 0xFF, this.body.data),
    "trailer" / cs.Const(TRAILER),
    cs.Terminated,
)

# --- heartbeat (§3) and OTA (§5) ------------------------------------------------------------
HEARTBEAT = cs.Struct(
    "iccid" / _Latin1(cs.Bytes(20)),
    "firmware" / _Latin1(cs.Bytes(8)),
    "rssi" / cs.Int8ub,
    cs.Terminated,
)

HEARTBEAT_ACK = cs.Struct("time" / cs.Bytes(7), cs.Terminated)

OTA_UPGRADE = cs.Struct(
    "target" / cs.Int8ub,
    "ftp_ip" / _IPv4(cs.Bytes(4)),
    "ftp_port" / cs.Int16ub,
    "file_name" / _Latin1(cs.Bytes(13)),
    cs.Terminated,
)

# --- GN container (§4) --------------------------------------------------------------------------
GN_CONTAINER = cs.Struct(
    "inner_length" / cs.Rebuild(cs.Int16ub, cs.len_(this.params)),
    "sub_command" / cs.Int8ub,
    "params" / cs.Bytes(this.inner_length),
    cs.Terminated,
)

_EXTRA = "extra" / cs.GreedyBytes

_PORT_REPORT = cs.Struct(
    "port" / cs.Int8ub, "status" / cs.Int8ub, "business_no" / cs.Int16ub,
    "voltage_dv" / cs.Int16ub, "power_dw" / cs.Int16ub, "current_ma" / cs.Int16ub,
    "energy_wh" / cs.Int16ub, "duration_min" / cs.Int16ub,
)

_POWER_TIER = cs.Struct(
    "max_power_dw" / cs.Int16ub, "price_fen" / cs.Int16ub, "duration_min" / cs.Int16ub)

_SOCKET_HEADER = (
    "socket_no" / cs.Int8ub, "socket_version" / cs.Bytes(2),
    "temperature_c" / cs.Int8ub, "rssi" / cs.Int8ub,
)

#: The measurement block "M17" shared by 0x02, 0x18 and 0x0C.
_M17 = (
    *_SOCKET_HEADER,
    "port" / cs.Int8ub, "status" / cs.Int8ub, "business_no" / cs.Int16ub,
    "power_dw" / cs.Int16ub, "current_ma" / cs.Int16ub, "energy_wh" / cs.Int16ub,
    "duration_min" / cs.Int16ub,
)

_TIER_DURATIONS = (
    "tier_count" / cs.Rebuild(cs.Int8ub, cs.len_(this.tier_durations_min)),
    "tier_durations_min" / cs.Array(this.tier_count, cs.Int16ub),
)

_SOCKET_STATUS = cs.Struct(
    *_SOCKET_HEADER, "ports" / cs.GreedyRange(_PORT_REPORT), _EXTRA)

#: Parameter layouts by (sub-command, direction)
GN_LAYOUTS: dict[tuple[int, Direction], cs.Construct[Any, Any]] = {
    (0x08, Direction.DOWN): cs.Struct(
        "channel" / cs.Int8ub,
        "sockets" / cs.GreedyRange(cs.Struct("socket_no" / cs.Int8ub, "mac" / cs.Bytes(6))),
        _EXTRA),
    (0x08, Direction.UP): cs.Struct("result" / cs.Int8ub, _EXTRA),
    (0x09, Direction.DOWN): cs.Struct("socket_no" / cs.Int8ub, "mac" / cs.Bytes(6), _EXTRA),
    (0x09, Direction.UP): cs.Struct("result" / cs.Int8ub, _EXTRA),
    (0x1D, Direction.DOWN): cs.Struct("socket_no" / cs.Int8ub, _EXTRA),
    (0x1C, Direction.UP): _SOCKET_STATUS,
    (0x1D, Direction.UP): _SOCKET_STATUS,
    (0x07, Direction.DOWN): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "switch" / cs.Int8ub, "mode" / cs.Int8ub,
        "duration_min" / cs.Int16ub, "energy_wh" / cs.Int16ub, _EXTRA),
    (0x07, Direction.UP): cs.Struct(
        "result" / cs.Int8ub, "socket_no" / cs.Int8ub, "port" / cs.Int8ub,
        "business_no" / cs.Int16ub, _EXTRA),
    (0x02, Direction.UP): cs.Struct(*_M17, _EXTRA),
    (0x17, Direction.DOWN): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "switch" / cs.Int8ub,
        "amount_fen" / cs.Int16ub,
        "tier_count" / cs.Rebuild(cs.Int8ub, cs.len_(this.tiers)),
        "tiers" / cs.Array(this.tier_count, _POWER_TIER),
        _EXTRA),
    (0x18, Direction.UP): cs.Struct(
        *_M17,
        "end_time" / cs.Struct(
            "year" / cs.Int16ub, "month" / cs.Int8ub, "day" / cs.Int8ub,
            "hour" / cs.Int8ub, "minute" / cs.Int8ub, "second" / cs.Int8ub),
        "end_reason" / cs.Int8ub, "amount_fen" / cs.Int16ub,
        "settlement_power_dw" / cs.Int16ub, *_TIER_DURATIONS, _EXTRA),
    (0x0B, Direction.UP): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "business_no" / cs.Int16ub,
        "status" / cs.Int8ub, "card_no" / cs.Bytes(6), "offline_params" / cs.Bytes(20), _EXTRA),
    (0x0B, Direction.DOWN): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "business_no" / cs.Int16ub,
        "switch" / cs.Int8ub, "mode" / cs.Int8ub, "duration_min" / cs.Int16ub,
        "energy_wh" / cs.Int16ub,
        # The power-mode part is present only in power orders (inner length 13 + 6n).
        "power" / cs.Optional(cs.Struct(
            "amount_fen" / cs.Int16ub,
            "tier_count" / cs.Rebuild(cs.Int8ub, cs.len_(this.tiers)),
            "tiers" / cs.Array(this.tier_count, _POWER_TIER))),
        _EXTRA),
    (0x0F, Direction.UP): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "result" / cs.Int8ub, _EXTRA),
    (0x0C, Direction.UP): cs.Struct(
        *_M17, "card_no" / cs.Bytes(6), "card_type" / cs.Int8ub, "billing_mode" / cs.Int8ub,
        "amount_fen" / cs.Int16ub, "settlement_power_dw" / cs.Int16ub, *_TIER_DURATIONS,
        _EXTRA),
    (0x0C, Direction.DOWN): cs.Struct("socket_no" / cs.Int8ub, "result" / cs.Int8ub, _EXTRA),
    (0x1A, Direction.UP): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "card_no" / cs.Bytes(6), _EXTRA),
    (0x1A, Direction.DOWN): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "card_no" / cs.Bytes(6),
        "balance_fen" / cs.Int32ub, _EXTRA),
    (0x1B, Direction.DOWN): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "buzzer_on" / cs.Int8ub,
        "voice_on" / cs.Int8ub,
        "window_count" / cs.Rebuild(cs.Int8ub, cs.len_(this.windows)),
        "windows" / cs.Array(this.window_count, cs.Struct(
            "start" / _HourMinute(cs.Bytes(2)), "end" / _HourMinute(cs.Bytes(2)))),
        _EXTRA),
    (0x1B, Direction.UP): cs.Struct(
        "socket_no" / cs.Int8ub, "port" / cs.Int8ub, "result" / cs.Int8ub, _EXTRA),
}

# --- BKV items (§6.1) -------------------------------------------------------------------------
BKV_ITEM = cs.Struct(
    "length" / cs.Rebuild(
        _BkvLength(cs.RepeatUntil(lambda byte, items, ctx: byte < 0x80 or len(items) == 4,
                                  cs.Byte)),
        1 + cs.len_(this.key) + cs.len_(this.value)),
    "ks" / cs.Int8ub,
    "key" / cs.Bytes(this.ks & 0x7F),
    "value" / cs.Bytes(this.length - 1 - (this.ks & 0x7F)),
)

BKV_ITEMS = cs.Struct("items" / cs.GreedyRange(BKV_ITEM), cs.Terminated)

#: Fee tier of tag 0x83, six bytes per tier.
FEE_TIER = cs.Struct(
    "end" / _HourMinute(cs.Bytes(2)),
    "electricity_price_fen" / cs.Int16ub,
    "service_price_fen" / cs.Int16ub,
)
