# The AP3000 ("DNY") wire grammar, written once, declaratively, with construct.
#
# This module is the definition of every byte layout in ap3000.md: the frame
# (§2.2-§2.4) and the data of every (command, direction) of §4-§6. The encoder
# builds every frame with it and ``reference_decode`` parses with it; the fast
# decoders in ``fastpath.py`` are a reading of the same layouts with ``struct``
# (hand-written for the hot messages, compiled from the ``Layout`` records below
# for the others) and are checked against this grammar by a differential
# property test on generated, real, mutated and random frames.
#
# Optional tails (§2.6) are nested ``Optional`` structs: field k+1 is tried only
# inside field k's struct, so decoding stops at the first optional field whose
# bytes are not all there, and whatever is left over lands in ``extra``. Field
# names are the dataclass field names of ``messages.py``.
#
# Nothing here is public: construct objects and Containers never leave the
# package, and construct's exceptions are converted by the codec.
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import construct as cs
from construct import this

from .._types import Direction

__all__ = ["FRAME", "HEADER", "LAYOUTS", "MAX_LENGTH", "MIN_LENGTH", "Layout", "PlainField"]

#: The frame header, ASCII ``DNY``.
HEADER = b"DNY"
#: Smallest legal length field: physical ID 4 + message ID 2 + command 1 + checksum 2.
MIN_LENGTH = 9
#: Largest length field a decoder accepts.
MAX_LENGTH = 1024

U8 = cs.Int8ul
U16 = cs.Int16ul
U32 = cs.Int32ul

# The construct stubs type adapters loosely; this module is one of the places
# where ``Any`` is allowed (pyproject relaxes disallow_any_explicit here).


class Text(cs.Adapter):  # type: ignore[type-arg]
    """Fixed-size text padded with NULs (ASCII, NUL padding removed). Any byte
    that is not ASCII decodes as Latin-1, so that a frame is never lost over one
    odd character, and trailing NULs are the only thing stripped, so that the
    text encodes back to the same bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(cs.Bytes(size))
        self.size = size

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        return obj.rstrip(b"\0").decode("latin-1")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        raw = obj.encode("latin-1")
        if len(raw) > self.size:
            raise cs.ValidationError(f"text longer than {self.size} bytes", path=path)
        return raw + b"\0" * (self.size - len(raw))


# --- frame (§2.2-§2.4) -------------------------------------------------------------------------

_FRAME_BODY = cs.Struct(
    "header" / cs.Const(HEADER),
    "length" / cs.Rebuild(U16, cs.len_(this.data) + MIN_LENGTH),
    cs.Check((this.length >= MIN_LENGTH) & (this.length <= MAX_LENGTH)),
    "physical_id" / U32,
    "message_id" / U16,
    "command" / U8,
    "data" / cs.Bytes(this.length - MIN_LENGTH),
)

#: A whole frame. The checksum is the sum of every byte from ``D`` to the last
#: data byte, modulo 65536, little-endian.
FRAME = cs.Struct(
    "body" / cs.RawCopy(_FRAME_BODY),
    "checksum" / cs.Checksum(U16, lambda data: sum(data) & 0xFFFF, this.body.data),
    cs.Terminated,
)


# --- message layouts (§4-§6) ---------------------------------------------------------------------

@dataclass(frozen=True)
class PlainField:
    """A fixed-size field as ``struct`` reads it (for the compiled fast decoders).

    Attributes:
        name: The field name.
        code: The ``struct`` format code, without byte order (``"H"``, ``"16s"``).
        text: True for NUL-padded text (:class:`Text`).
    """

    name: str
    code: str
    text: bool = False


def _plain(field: Any) -> PlainField | None:
    """*field* as a PlainField, or None when its size depends on the data."""
    sub = field.subcon
    if isinstance(sub, Text):
        return PlainField(field.name, f"{sub.size}s", text=True)
    if isinstance(sub, cs.FormatField):
        return PlainField(field.name, sub.fmtstr.lstrip("<"))
    if isinstance(sub, cs.Bytes) and isinstance(sub.length, int):
        return PlainField(field.name, f"{sub.length}s")
    return None


def _tail(fields: tuple[Any, ...]) -> Any:
    """Optional fields as nested ``Optional`` structs, each inside the one before."""
    inner = _tail(fields[1:]) if len(fields) > 1 else None
    parts = (fields[0], "tail" / inner) if inner is not None else (fields[0],)
    return cs.Optional(cs.Struct(*parts))


@dataclass(frozen=True)
class Layout:
    """One message's data layout.

    Attributes:
        name: The message name, for error messages.
        mandatory: The fields every payload has, in wire order.
        optional: The fields older firmware omits, in wire order.
        neutral: Values written for optional fields the caller left unset before
            the last one set (0 unless named here).
        rest: True when the last mandatory field takes every remaining byte
            (then there is no ``extra``).
        struct: The construct for the whole data field.
    """

    name: str
    mandatory: tuple[Any, ...]
    optional: tuple[Any, ...] = ()
    neutral: Mapping[str, object] = field(default_factory=dict)
    rest: bool = False
    struct: Any = None

    def __post_init__(self) -> None:
        parts: list[Any] = list(self.mandatory)
        if self.optional:
            parts.append("tail" / _tail(self.optional))
        if not self.rest:
            parts.append("extra" / cs.GreedyBytes)
        object.__setattr__(self, "struct", cs.Struct(*parts))

    @property
    def optional_names(self) -> tuple[str, ...]:
        """Names of the optional fields, in wire order."""
        return tuple(f.name for f in self.optional)

    def plain(self) -> tuple[tuple[PlainField, ...], tuple[PlainField, ...]] | None:
        """(mandatory, optional) as PlainFields, or None when a field has a
        data-dependent size (counted lists, rest-of-data fields)."""
        mandatory = tuple(_plain(f) for f in self.mandatory)
        optional = tuple(_plain(f) for f in self.optional)
        if self.rest or None in mandatory or None in optional:
            return None
        return (tuple(f for f in mandatory if f is not None),
                tuple(f for f in optional if f is not None))


def _fields(*fields: Any) -> tuple[Any, ...]:
    return fields


_RESULT = _fields("result" / U8)
_ORDER_NO = "order_no" / cs.Bytes(16)
_TIMESTAMP = _fields("timestamp" / U32)
_FIRMWARE_REPLY = _fields("result" / U8, "packet_no" / U16)

#: 0x03 settlement up to the order number; also all of 0x43.
_SETTLEMENT_HEAD = _fields(
    "charge_duration_s" / U16, "max_power_0p1w" / U16, "energy_0p01kwh" / U16,
    "port" / U8, "start_mode" / U8, "card_or_code" / cs.Bytes(4), "stop_reason" / U8,
    _ORDER_NO,
)

#: 0x83 set_params_1_1, also the 0x90 reply.
_PARAMS_1_1 = _fields(
    "unplug_power" / U16, "unplug_detect_time_s" / U16, "float_percent" / U8,
    "float_detect_time_s" / U16, "float_time_s" / U16, "heartbeat_interval_s" / U16,
)

#: 0x84 set_params_1_2, also the 0x91 reply.
_PARAMS_1_2 = _fields(
    "dyn_overload_power" / U16, "dyn_overload_detect_time_s" / U16,
    "dyn_overload_start_time_s" / U16, "unplug_interference_power" / U8,
    "unplug_interference_time_s" / U16, "float_second_time_point_s" / U16,
    "float_second_detect_time_s" / U16, "min_power" / U16, "min_power_check_time_s" / U16,
    "second_max_power_time_s" / U16, "env_alarm_temp_c" / U8, "port_alarm_temp_c" / U8,
    "unplug_detect_off" / U8, "qr_light" / U8,
)

#: 0x85 set_limits, also the 0x92 reply.
_LIMITS = _fields("max_charge_duration_s" / U16, "overload_power_0p1w" / U16)
_LIMITS_OPTIONAL = _fields("over_voltage_0p1v" / U16, "under_voltage_0p1v" / U16)

#: 0x86 set_card_params, also the 0x93 reply.
_CARD_PARAMS = _fields(
    "card_sector" / U8, "user_card_key" / cs.Bytes(6), "new_card_key" / cs.Bytes(6))

#: 0xE0/0xE1/0xE2 firmware packet.
_FIRMWARE_PACKET = _fields(
    "total_packets" / U16, "packet_no" / U16, "firmware" / cs.Bytes(200))


def _result_reply(name: str) -> Layout:
    return Layout(name, _RESULT)


def _empty(name: str) -> Layout:
    return Layout(name, ())


U = Direction.UP
D = Direction.DOWN

#: Data layouts by (command, direction)
LAYOUTS: dict[tuple[int, Direction], Layout] = {
    # §6.1 host poll (bus only)
    (0x00, U): Layout("host_poll", _fields("virtual_id" / U8)),
    # §4.1 legacy heartbeat: n = port_count
    (0x01, U): Layout("legacy_heartbeat", _fields(
        "firmware_version" / U16, "voltage_0p1v" / U16,
        "port_count" / cs.Rebuild(U8, cs.len_(this.port_status)),
        "port_status" / cs.Array(this.port_count, U8),
        "port_power_0p1w" / cs.Array(this.port_count, U16),
        "port_peak_power_0p1w" / cs.Array(this.port_count, U16),
        "virtual_id" / U8, "signal_strength" / U8, "device_type" / U8,
    ), optional=_fields("env_temp_raw" / U8, "work_mode" / U8)),
    (0x01, D): _result_reply("legacy_heartbeat_reply"),
    # §4.2 card swipe
    (0x02, U): Layout("card_swipe", _fields(
        "card_id" / cs.Bytes(4), "card_type" / U8, "port" / U8, "card_balance_fen" / U16,
    ), optional=_fields(
        "timestamp" / U32, "card_no2_len" / U8, "card_no2" / cs.Bytes(this._.card_no2_len))),
    (0x02, D): Layout("card_swipe_reply", _fields(
        "card_id" / cs.Bytes(4), "account_status" / U8, "rate_mode" / U8,
        "balance_or_expiry" / U32, "port" / U8)),
    # §4.3 settlement
    (0x03, U): Layout("settlement", _SETTLEMENT_HEAD, optional=_fields(
        "second_max_power_0p1w" / U16, "timestamp" / U32, "occupancy_min" / U16)),
    (0x03, D): _result_reply("settlement_reply"),
    # §4.4 order confirmation (legacy)
    (0x04, U): Layout("order_confirm", _fields(
        "port" / U8, "start_mode" / U8, "card_id" / cs.Bytes(4), "charge_duration_s" / U16,
        _ORDER_NO)),
    (0x04, D): Layout("order_confirm_reply", _fields("port" / U8, "result" / U8)),
    # §4.5 upgrade request: every field optional (§9 A5)
    (0x05, U): Layout("upgrade_request", (), optional=_fields(
        "device_type" / U8, "firmware_version" / U16, "package_type" / U32)),
    # §4.6 power heartbeat
    (0x06, U): Layout("power_heartbeat", _fields(
        "port" / U8, "port_status" / U8, "charge_duration_s" / U16, "energy_0p01kwh" / U16,
        "start_mode" / U8, "power_0p1w" / U16, "max_power_0p1w" / U16,
        "min_power_0p1w" / U16, "avg_power_0p1w" / U16, _ORDER_NO,
    ), optional=_fields(
        "interval_energy_raw" / U16, "peak_power_0p1w" / U16, "voltage_0p1v" / U16,
        "current_0p001a" / U16, "env_temp_raw" / U8, "port_temp_raw" / U8,
        "timestamp" / U32, "occupancy_min" / U16)),
    # §6.2 host heartbeat
    (0x11, U): Layout("host_heartbeat", _fields(
        "firmware_version" / U16, "rtc_type" / U8, "host_timestamp" / U32,
        "signal_strength" / U8, "module_type" / U8, "iccid" / Text(20), "host_type" / U8,
        "frequency" / U16,
    ), optional=_fields("imei" / Text(15), "module_version" / Text(24))),
    # §6.3 host time
    (0x12, U): _empty("host_time_request"),
    (0x12, D): Layout("host_time_reply", _TIMESTAMP),
    # §6.4 host status report
    (0x17, U): Layout("host_status_report", _fields(
        "breaker_state" / U8, "temperature_raw" / U8, "voltage_0p1v" / U16,
        "current_0p01a" / U16, "energy_0p01kwh" / U32, "meter_current_0p01a" / U16,
        "meter_energy_0p01kwh" / U32, "smoke_alarm" / U8, "alarm_relay_state" / U8,
        "leakage_current_ma" / U8,
    ), optional=_fields(
        "live_wire_temp_raw" / U8, "neutral_wire_temp_raw" / U8, "lock_state" / U8,
        "breaker_model" / U8)),
    # §4.7 register
    (0x20, U): Layout("register", _fields(
        "firmware_version" / U16, "port_count" / U8, "virtual_id" / U8,
        "device_type" / U8, "work_mode" / U8,
    ), optional=_fields("power_board_version" / U16)),
    (0x20, D): _result_reply("register_reply"),
    # §4.8 heartbeat: n = port_count
    (0x21, U): Layout("heartbeat", _fields(
        "voltage_0p1v" / U16,
        "port_count" / cs.Rebuild(U8, cs.len_(this.port_status)),
        "port_status" / cs.Array(this.port_count, U8),
        "signal_strength" / U8, "env_temp_raw" / U8)),
    (0x21, D): _result_reply("heartbeat_reply"),
    # §4.9 time
    (0x22, U): _empty("time_request"),
    (0x22, D): Layout("time_reply", _TIMESTAMP),
    # §6.6 host server address
    (0x34, U): _result_reply("host_set_server_reply"),
    (0x34, D): Layout("host_set_server", _fields(
        "server_port" / U16, "module_type" / U8, "socket_b_enable" / U8,
        "server_address" / Text(46))),
    # §6.5 slave versions
    (0x35, U): Layout("slave_versions", _fields(
        "type_count" / cs.Rebuild(U8, cs.len_(this.entries)),
        "entries" / cs.Array(this.type_count, cs.Struct(
            "device_type" / U8, "reserved" / U8, "min_firmware_version" / U16,
            "physical_id" / U32)))),
    # §4.10 charging cabinets
    (0x41, U): Layout("cabinet_heartbeat", _fields(
        "port_count" / U8, "door_bits" / U32, "fan_bits" / U32)),
    (0x42, U): Layout("alarm", _fields("alarm_type" / U8, "port" / U8, "trigger_bits" / U8)),
    (0x43, U): Layout("charge_complete_notice", _SETTLEMENT_HEAD),
    (0x44, U): Layout("port_push", _fields("push_type" / U8, "port" / U8, _ORDER_NO)),
    # §5.8 cabinet stop
    (0x72, U): Layout("cabinet_stop_reply", _fields("result" / U8, _ORDER_NO)),
    (0x72, D): Layout("cabinet_stop", _fields("port" / U8, _ORDER_NO)),
    # §5.1 query status
    (0x81, D): _empty("query_status"),
    # §5.2 charge control
    (0x82, U): Layout("charge_control_reply", _RESULT, optional=_fields(
        _ORDER_NO, "port" / U8, "pending_ports_bitmap" / U16)),
    (0x82, D): Layout("charge_control", _fields(
        "rate_mode" / U8, "balance_or_expiry" / U32, "port" / U8, "charge_command" / U8,
        "charge_value" / U16, _ORDER_NO,
    ), optional=_fields(
        "max_duration_s" / U16, "overload_power_0p1w" / U16, "qr_light" / U8,
        "long_charge" / U8, "extra_float_time_s" / U16, "short_check" / U8,
        "unplug_detect_off" / U8, "force_auto_stop" / U8, "full_power_w" / U8,
        "full_power_max_check_min" / U8,
    ), neutral={"short_check": 2}),
    # §5.4-§5.7 parameters
    (0x83, U): _result_reply("set_params_1_1_reply"),
    (0x83, D): Layout("set_params_1_1", _PARAMS_1_1),
    (0x84, U): _result_reply("set_params_1_2_reply"),
    (0x84, D): Layout("set_params_1_2", _PARAMS_1_2),
    (0x85, U): _result_reply("set_limits_reply"),
    (0x85, D): Layout("set_limits", _LIMITS, optional=_LIMITS_OPTIONAL),
    (0x86, U): _result_reply("set_card_params_reply"),
    (0x86, D): Layout("set_card_params", _CARD_PARAMS),
    # §5.8 simple commands
    (0x87, U): _result_reply("reboot_reply"),
    (0x87, D): _empty("reboot"),
    (0x88, U): _result_reply("clear_memory_reply"),
    (0x88, D): _empty("clear_memory"),
    (0x89, U): _result_reply("play_voice_reply"),
    (0x89, D): Layout("play_voice", _fields(
        "interrupt" / U8, "voice_count" / cs.Rebuild(U8, cs.len_(this.voice_ids)),
        "voice_ids" / cs.Bytes(this.voice_count))),
    # §5.3 modify charge
    (0x8A, U): _result_reply("modify_charge_reply"),
    (0x8A, D): Layout("modify_charge", _fields("mode" / U8, "port" / U8, "value" / U16)),
    (0x8B, U): Layout("read_eeprom_reply", _fields(
        "result" / U8, "eeprom_data" / cs.GreedyBytes), rest=True),
    (0x8B, D): Layout("read_eeprom", _fields("address" / U16, "read_length" / U8)),
    (0x8C, U): _result_reply("write_eeprom_reply"),
    (0x8C, D): Layout("write_eeprom", _fields(
        "address" / U16, "write_length" / U8, "eeprom_data" / cs.GreedyBytes), rest=True),
    (0x8D, U): _result_reply("set_work_mode_reply"),
    (0x8D, D): Layout("set_work_mode", _fields("work_mode" / U8)),
    (0x8E, U): _result_reply("set_qr_code_reply"),
    (0x8E, D): Layout("set_qr_code", _fields(
        "main_screen" / U8, "reserved" / cs.Bytes(3), "qr_text" / Text(72))),
    (0x8F, U): _result_reply("set_tc_card_mode_reply"),
    (0x8F, D): Layout("set_tc_card_mode", _fields("tc_mode" / U8)),
    # §5.9 parameter queries: the reply has the set command's layout, no result
    (0x90, U): Layout("query_params_1_1_reply", _PARAMS_1_1),
    (0x90, D): _empty("query_params_1_1"),
    (0x91, U): Layout("query_params_1_2_reply", _PARAMS_1_2),
    (0x91, D): _empty("query_params_1_2"),
    (0x92, U): Layout("query_limits_reply", _LIMITS, optional=_LIMITS_OPTIONAL),
    (0x92, D): _empty("query_limits"),
    (0x93, U): Layout("query_card_params_reply", _CARD_PARAMS),
    (0x93, D): _empty("query_card_params"),
    (0x95, U): _result_reply("temp_qr_code_reply"),
    (0x95, D): Layout("temp_qr_code", _fields("qr_text" / Text(200))),
    (0x96, U): _result_reply("locate_reply"),
    (0x96, D): Layout("locate", _fields("duration_s" / U8)),
    (0x97, U): _result_reply("set_params_1_3_reply"),
    (0x97, D): Layout("set_params_1_3", _fields("mute" / U8)),
    (0x98, U): _result_reply("multi_function_reply"),
    (0x98, D): Layout("multi_function", _fields("function" / U8, "port" / U8)),
    # §5.10 firmware packets
    (0xE0, U): Layout("firmware_packet_slave_reply", _FIRMWARE_REPLY),
    (0xE0, D): Layout("firmware_packet_slave", _FIRMWARE_PACKET),
    (0xE1, U): Layout("firmware_packet_power_board_reply", _FIRMWARE_REPLY),
    (0xE1, D): Layout("firmware_packet_power_board", _FIRMWARE_PACKET),
    (0xE2, U): Layout("firmware_packet_host_reply", _FIRMWARE_REPLY),
    (0xE2, D): Layout("firmware_packet_host", _FIRMWARE_PACKET),
    (0xE4, D): _empty("trigger_self_upgrade"),
    # §5.11 legacy firmware packets
    (0xF8, U): Layout("legacy_firmware_packet_reply", _FIRMWARE_REPLY),
    (0xF8, D): Layout("legacy_firmware_packet", _fields(
        "total_packets" / U16, "packet_no" / U16, "firmware" / cs.Bytes(256))),
}
