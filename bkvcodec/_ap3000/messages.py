# The AP3000 ("DNY") messages as plain frozen dataclasses: one class per
# (command, direction) of ap3000.md §8, no behaviour beyond derived read-only
# properties, no construct.
#
# Field names are those of ap3000.md and its vector files, with two mechanical
# differences: byte-string fields drop the ``_hex`` suffix the JSON form adds
# (``order_no`` here, ``order_no_hex`` in JSON), and counts that only state the
# length of a list that follows (``port_count`` of 0x01/0x21, ``type_count``,
# ``voice_count``) are not stored: they are the list's length. Values are the
# raw wire integers; the suffix names the unit (``_0p1w`` 0.1 W, ``_0p01kwh``
# 0.01 kWh, ``_0p1v`` 0.1 V, ``_0p001a`` / ``_0p01a`` A, ``_s``, ``_min``,
# ``_fen`` 0.01 CNY, ``_raw`` see the field). Nothing is scaled.
#
# Optional tails (ap3000.md §2.6): a field older firmware omits is ``None`` when
# absent. Bytes beyond the last field that fits are kept in ``extra`` and written
# back when encoding, so every decoded frame encodes to the same bytes.
#
# ``@frozen_message`` is ``@dataclass(frozen=True, slots=True, kw_only=True)``,
# cheaper to create, with an ``__init__`` of the same signature that skips the
# frozen dataclass's per-field ``object.__setattr__`` (see ``_fastinit.py``).
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from typing import TypeAlias

from .._errors import LocalProtocolError
from .._fastinit import frozen_message
from .._types import Direction
from .values import card_id_decimal, format_phy_id

__all__ = [
    "MESSAGE_TYPES",
    "PARAMETER_BYTES",
    "PARAMETER_DEFAULTS",
    "PARAMETER_QUERIES",
    "PARAMETER_SETS",
    "Ap3000Alarm",
    "Ap3000CabinetHeartbeat",
    "Ap3000CabinetStop",
    "Ap3000CabinetStopReply",
    "Ap3000CardSwipe",
    "Ap3000CardSwipeReply",
    "Ap3000ChargeCompleteNotice",
    "Ap3000ChargeControl",
    "Ap3000ChargeControlReply",
    "Ap3000ClearMemory",
    "Ap3000ClearMemoryReply",
    "Ap3000FirmwarePacketHost",
    "Ap3000FirmwarePacketHostReply",
    "Ap3000FirmwarePacketPowerBoard",
    "Ap3000FirmwarePacketPowerBoardReply",
    "Ap3000FirmwarePacketSlave",
    "Ap3000FirmwarePacketSlaveReply",
    "Ap3000FirmwareVerification",
    "Ap3000Heartbeat",
    "Ap3000HeartbeatReply",
    "Ap3000HostHeartbeat",
    "Ap3000HostPoll",
    "Ap3000HostSetServer",
    "Ap3000HostSetServerReply",
    "Ap3000HostStatusReport",
    "Ap3000HostTimeReply",
    "Ap3000HostTimeRequest",
    "Ap3000LegacyFirmwarePacket",
    "Ap3000LegacyFirmwarePacketReply",
    "Ap3000LegacyHeartbeat",
    "Ap3000LegacyHeartbeatReply",
    "Ap3000Locate",
    "Ap3000LocateReply",
    "Ap3000Message",
    "Ap3000ModifyCharge",
    "Ap3000ModifyChargeReply",
    "Ap3000MultiFunction",
    "Ap3000MultiFunctionReply",
    "Ap3000OrderConfirm",
    "Ap3000OrderConfirmReply",
    "Ap3000PlayVoice",
    "Ap3000PlayVoiceReply",
    "Ap3000PortPush",
    "Ap3000PowerHeartbeat",
    "Ap3000QueryCardParams",
    "Ap3000QueryCardParamsReply",
    "Ap3000QueryLimits",
    "Ap3000QueryLimitsReply",
    "Ap3000QueryParams11",
    "Ap3000QueryParams11Reply",
    "Ap3000QueryParams12",
    "Ap3000QueryParams12Reply",
    "Ap3000QueryStatus",
    "Ap3000ReadEeprom",
    "Ap3000ReadEepromReply",
    "Ap3000Reboot",
    "Ap3000RebootReply",
    "Ap3000Register",
    "Ap3000RegisterReply",
    "Ap3000SetCardParams",
    "Ap3000SetCardParamsReply",
    "Ap3000SetLimits",
    "Ap3000SetLimitsReply",
    "Ap3000SetParams11",
    "Ap3000SetParams11Reply",
    "Ap3000SetParams12",
    "Ap3000SetParams12Reply",
    "Ap3000SetParams13",
    "Ap3000SetParams13Reply",
    "Ap3000SetQrCode",
    "Ap3000SetQrCodeReply",
    "Ap3000SetTcCardMode",
    "Ap3000SetTcCardModeReply",
    "Ap3000SetWorkMode",
    "Ap3000SetWorkModeReply",
    "Ap3000Settlement",
    "Ap3000SettlementReply",
    "Ap3000SlaveVersion",
    "Ap3000SlaveVersions",
    "Ap3000TempQrCode",
    "Ap3000TempQrCodeReply",
    "Ap3000TimeReply",
    "Ap3000TimeRequest",
    "Ap3000TriggerSelfUpgrade",
    "Ap3000UpgradeRequest",
    "Ap3000WriteEeprom",
    "Ap3000WriteEepromReply",
    "UnknownAp3000Command",
    "field_names",
    "parameter_message",
    "parameters",
]

U = Direction.UP
D = Direction.DOWN


# ============================================================================================
# Device → server (ap3000.md §4, §6)
# ============================================================================================

@frozen_message
class Ap3000HostPoll:
    """A host's RS-485 poll of its slaves, command 0x00.

    Bus-only: a server that sees it has almost certainly mis-framed the stream.
    The frame's physical-ID and message-ID slots carry other things here (0 or the
    host's clock; 1 if the host hands out virtual IDs).

    .. versionadded:: 0.1.0
    """

    virtual_id: int  #: Slave address polled, 0-49.
    extra: bytes = b""


@frozen_message
class Ap3000LegacyHeartbeat:
    """Old status heartbeat, command 0x01 up.

    Answer with :class:`Ap3000LegacyHeartbeatReply` — or answer the unit's 0x21
    instead, which makes it stop sending 0x01 (never both).

    .. versionadded:: 0.1.0
    """

    firmware_version: int  #: Decimal hundredths (640 = V6.40).
    voltage_0p1v: int
    port_status: tuple[int, ...]  #: One code per port (:class:`Ap3000PortStatus`).
    port_power_0p1w: tuple[int, ...]  #: Current power per port.
    port_peak_power_0p1w: tuple[int, ...]  #: Peak power per port since charging began.
    virtual_id: int  #: Local bus address (485/LoRa), 0 if none.
    signal_strength: int  #: Radio link slave ↔ host; 0 = wired or not supported.
    device_type: int  #: Hardware family.
    env_temp_raw: int | None = None  #: °C = raw − 65; 0 = no sensor. Optional.
    work_mode: int | None = None  #: :class:`Ap3000WorkMode` bits. Optional.
    extra: bytes = b""


@frozen_message
class Ap3000CardSwipe:
    """A card presented at a port, command 0x02 up.

    Answer with :class:`Ap3000CardSwipeReply`; the reply does not start charging,
    a separate :class:`Ap3000ChargeControl` does.

    .. versionadded:: 0.1.0
    """

    card_id: bytes  #: 4-byte card UID, wire order.
    card_type: int  #: :class:`Ap3000CardType`.
    port: int  #: 0-based; 0xFF = balance query only.
    card_balance_fen: int  #: Money stored on a balance card.
    timestamp: int | None = None  #: Unix seconds, debug only. Optional (V8.0).
    card_no2_len: int | None = None  #: Length of ``card_no2``. Optional (2023-12).
    card_no2: bytes | None = None  #: Second card number (16 bytes for type 4). Optional.
    extra: bytes = b""

    @property
    def card_id_decimal(self) -> int:
        """The printed card number, :attr:`card_id` read big-endian."""
        return card_id_decimal(self.card_id)


@frozen_message
class Ap3000Settlement:
    """End-of-charge record, command 0x03 up.

    Answering it with :class:`Ap3000SettlementReply` is **mandatory**: the device
    keeps the record and repeats it every 30 min until answered. Expect
    duplicates (same order number); settle idempotently.

    .. versionadded:: 0.1.0
    """

    charge_duration_s: int  #: Whole session.
    max_power_0p1w: int  #: Highest power during the session.
    energy_0p01kwh: int  #: Whole session.
    port: int  #: 0-based.
    start_mode: int  #: :class:`Ap3000StartMode`.
    card_or_code: bytes  #: Card UID (offline start), zeros (online), code (start_mode 3).
    stop_reason: int  #: :class:`Ap3000StopReason`.
    order_no: bytes  #: 16 bytes.
    second_max_power_0p1w: int | None = None  #: Highest power in the first 5 min. Optional.
    timestamp: int | None = None  #: Unix seconds, debug only. Optional (V8.0).
    occupancy_min: int | None = None  #: Cabinets only, minutes occupied after full. Optional.
    extra: bytes = b""


@frozen_message
class Ap3000OrderConfirm:
    """Legacy start confirmation, command 0x04 up; units made
    before mid-2019 only. Answer with :class:`Ap3000OrderConfirmReply`.

    .. versionadded:: 0.1.0
    """

    port: int
    start_mode: int  #: :class:`Ap3000StartMode`.
    card_id: bytes  #: 4-byte card UID.
    charge_duration_s: int  #: Charged so far.
    order_no: bytes  #: 16 bytes.
    extra: bytes = b""

    @property
    def card_id_decimal(self) -> int:
        """The printed card number, :attr:`card_id` read big-endian."""
        return card_id_decimal(self.card_id)


@frozen_message
class Ap3000UpgradeRequest:
    """The device asks for a firmware upgrade, command 0x05 up. No reply.

    Every field is optional: older units send an undocumented 0x05 to restart an
    0xF8 upgrade, which decodes with the fields it has (often none).

    .. versionadded:: 0.1.0
    """

    device_type: int | None = None
    firmware_version: int | None = None
    package_type: int | None = None  #: u32, the firmware package family.
    extra: bytes = b""


@frozen_message
class Ap3000PowerHeartbeat:
    """Progress of one charging port, command 0x06 up. No reply.

    Sent every 5 min per charging port; the values are cumulative for the order.

    .. versionadded:: 0.1.0
    """

    port: int
    port_status: int  #: 1, 2, 3 or 5 (:class:`Ap3000PortStatus`).
    charge_duration_s: int  #: So far.
    energy_0p01kwh: int  #: So far in this order.
    start_mode: int  #: :class:`Ap3000StartMode`.
    power_0p1w: int  #: At the moment of sending.
    max_power_0p1w: int  #: Since the previous 0x06.
    min_power_0p1w: int  #: Since the previous 0x06.
    avg_power_0p1w: int  #: Since the previous 0x06.
    order_no: bytes  #: 16 bytes.
    interval_energy_raw: int | None = None  #: Debug value, / 4800 = energy of the interval.
    peak_power_0p1w: int | None = None  #: Peak of the whole session.
    voltage_0p1v: int | None = None
    current_0p001a: int | None = None
    env_temp_raw: int | None = None  #: °C = raw − 65; 0 = no sensor.
    port_temp_raw: int | None = None  #: °C = raw − 65; 0 = no sensor.
    timestamp: int | None = None  #: Unix seconds, debug only (V8.0).
    occupancy_min: int | None = None  #: Cabinets only.
    extra: bytes = b""


@frozen_message
class Ap3000HostHeartbeat:
    """Host (or unit with its own modem) status, command 0x11 up.
    No reply; every 30 min.

    .. versionadded:: 0.1.0
    """

    firmware_version: int
    rtc_type: int  #: 0 none, 1 SD2068, 2 BM8563.
    host_timestamp: int  #: Host clock, Unix seconds; 0 without RTC.
    signal_strength: int  #: Modem signal 0-31, 99 = error; some modules add 100.
    module_type: int  #: Modem module (1 WIFI … 8 4G Cat-1 GM6).
    iccid: str  #: 20 ASCII characters.
    host_type: int
    frequency: int  #: LoRa centre frequency; 0 if none.
    imei: str | None = None  #: 15 ASCII characters. Optional.
    module_version: str | None = None  #: 24 bytes of ASCII, NUL-padded. Optional.
    extra: bytes = b""


@frozen_message
class Ap3000HostTimeRequest:
    """A host asks for the time, command 0x12 up.
    Answer with :class:`Ap3000HostTimeReply`.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000HostStatusReport:
    """Host electrical status, command 0x17 up. No reply.

    .. versionadded:: 0.1.0
    """

    breaker_state: int  #: 0 open, 1 closed.
    temperature_raw: int  #: Offset rule not stated for hosts.
    voltage_0p1v: int
    current_0p01a: int
    energy_0p01kwh: int
    meter_current_0p01a: int
    meter_energy_0p01kwh: int
    smoke_alarm: int  #: 0 none, 1 alarm.
    alarm_relay_state: int  #: 0 open, 1 closed.
    leakage_current_ma: int
    live_wire_temp_raw: int | None = None
    neutral_wire_temp_raw: int | None = None
    lock_state: int | None = None  #: 0 unlocked, 1 locked.
    breaker_model: int | None = None  #: 0 short single-phase, 1 long, 2 screen host.
    extra: bytes = b""


@frozen_message
class Ap3000Register:
    """Registration after power-up, command 0x20 up.
    Answer with :class:`Ap3000RegisterReply`.

    .. versionadded:: 0.1.0
    """

    firmware_version: int
    port_count: int
    virtual_id: int  #: 0 if the unit is not on a local bus.
    device_type: int
    work_mode: int  #: :class:`Ap3000WorkMode` bits.
    power_board_version: int | None = None  #: 0 = no power board. Optional.
    extra: bytes = b""


@frozen_message
class Ap3000Heartbeat:
    """Periodic heartbeat, command 0x21 up; every 180 s by default.
    Answer with :class:`Ap3000HeartbeatReply`.

    .. versionadded:: 0.1.0
    """

    voltage_0p1v: int
    port_status: tuple[int, ...]  #: One code per port (:class:`Ap3000PortStatus`).
    signal_strength: int
    env_temp_raw: int  #: °C = raw − 65; 0 = no sensor.
    extra: bytes = b""


@frozen_message
class Ap3000TimeRequest:
    """The device asks for the time, command 0x22 up.
    Answer with :class:`Ap3000TimeReply`.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000HostSetServerReply:
    """Answer to :class:`Ap3000HostSetServer`, command 0x34 up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 = OK.
    extra: bytes = b""


@frozen_message
class Ap3000SlaveVersion:
    """One entry of :class:`Ap3000SlaveVersions` (8 bytes).

    .. versionadded:: 0.1.0
    """

    device_type: int
    reserved: int
    min_firmware_version: int  #: Lowest firmware version among slaves of this type.
    physical_id: int  #: The slave with that version (32-bit value; :attr:`phy_id`).

    @property
    def phy_id(self) -> str:
        """:attr:`physical_id` as 8 upper-case hex digits, type code first."""
        return format_phy_id(self.physical_id)


@frozen_message
class Ap3000SlaveVersions:
    """Lowest firmware version per slave type, command 0x35 up. No reply.

    .. versionadded:: 0.1.0
    """

    entries: tuple[Ap3000SlaveVersion, ...]  #: ``type_count`` is its length.
    extra: bytes = b""


@frozen_message
class Ap3000CabinetHeartbeat:
    """Charging-cabinet heartbeat, command 0x41 up. No reply.

    .. versionadded:: 0.1.0
    """

    port_count: int
    door_bits: int  #: A set bit means the door is open.
    fan_bits: int  #: A set bit means the fan is on.
    extra: bytes = b""


@frozen_message
class Ap3000Alarm:
    """Cabinet alarm, command 0x42 up. No reply.

    .. versionadded:: 0.1.0
    """

    alarm_type: int  #: 1 power cut, 2 water, 3 fuse, 4 smoke, 5 temperature, 6 level, 7 door.
    port: int  #: Port, or the RS-485 address of a sensor; 0 = raised by the unit itself.
    trigger_bits: int  #: For multi-input sensors, bit i-1 = input i fired.
    extra: bytes = b""


@frozen_message
class Ap3000ChargeCompleteNotice:
    """Charging finished (cabinets), command 0x43 up: the first
    29 bytes of :class:`Ap3000Settlement`; the settlement comes later. No reply.

    .. versionadded:: 0.1.0
    """

    charge_duration_s: int
    max_power_0p1w: int
    energy_0p01kwh: int
    port: int
    start_mode: int  #: :class:`Ap3000StartMode`.
    card_or_code: bytes
    stop_reason: int  #: :class:`Ap3000StopReason`.
    order_no: bytes
    extra: bytes = b""


@frozen_message
class Ap3000PortPush:
    """Cabinet port event, command 0x44 up. No reply.

    .. versionadded:: 0.1.0
    """

    push_type: int  #: 1 = cabinet door not closed.
    port: int
    order_no: bytes
    extra: bytes = b""


@frozen_message
class Ap3000CabinetStopReply:
    """Answer to :class:`Ap3000CabinetStop`, command 0x72 up.

    .. versionadded:: 0.1.0
    """

    result: int
    order_no: bytes
    extra: bytes = b""


@frozen_message
class Ap3000ChargeControlReply:
    """Answer to :class:`Ap3000ChargeControl`, command 0x82 up.

    Firmware before V6.2 answers with fewer bytes.

    .. versionadded:: 0.1.0
    """

    result: int  #: :class:`Ap3000ChargeResult`.
    order_no: bytes | None = None  #: Echo. Optional.
    port: int | None = None  #: The port acted on (the chosen one for 0xFF). Optional.
    pending_ports_bitmap: int | None = None  #: Bit i = charger waiting (result 5). Optional.
    extra: bytes = b""


@frozen_message
class Ap3000SetParams11Reply:
    """Answer to :class:`Ap3000SetParams11`, command 0x83 up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 = OK, 1 = parameter error.
    extra: bytes = b""


@frozen_message
class Ap3000SetParams12Reply:
    """Answer to :class:`Ap3000SetParams12`, command 0x84 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000SetLimitsReply:
    """Answer to :class:`Ap3000SetLimits`, command 0x85 up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 = OK, 1 = beyond the device's limits.
    extra: bytes = b""


@frozen_message
class Ap3000SetCardParamsReply:
    """Answer to :class:`Ap3000SetCardParams`, command 0x86 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000RebootReply:
    """Answer to :class:`Ap3000Reboot`, command 0x87 up; may never come.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000ClearMemoryReply:
    """Answer to :class:`Ap3000ClearMemory`, command 0x88 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000PlayVoiceReply:
    """Answer to :class:`Ap3000PlayVoice`, command 0x89 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000ModifyChargeReply:
    """Answer to :class:`Ap3000ModifyCharge`, command 0x8A up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 OK, 1 not charging, 2 below the current value, 3 unknown mode/port.
    extra: bytes = b""


@frozen_message
class Ap3000ReadEepromReply:
    """Answer to :class:`Ap3000ReadEeprom`, command 0x8B up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 = OK.
    eeprom_data: bytes = b""  #: Every byte after ``result``.


@frozen_message
class Ap3000WriteEepromReply:
    """Answer to :class:`Ap3000WriteEeprom`, command 0x8C up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000SetWorkModeReply:
    """Answer to :class:`Ap3000SetWorkMode`, command 0x8D up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 OK, 1 not supported, other = failed.
    extra: bytes = b""


@frozen_message
class Ap3000SetQrCodeReply:
    """Answer to :class:`Ap3000SetQrCode`, command 0x8E up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000SetTcCardModeReply:
    """Answer to :class:`Ap3000SetTcCardMode`, command 0x8F up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000QueryParams11Reply:
    """Stored parameters of :class:`Ap3000SetParams11` (no result byte), command
    0x90 up.

    .. versionadded:: 0.1.0
    """

    unplug_power: int
    unplug_detect_time_s: int
    float_percent: int
    float_detect_time_s: int
    float_time_s: int
    heartbeat_interval_s: int
    extra: bytes = b""


@frozen_message
class Ap3000QueryParams12Reply:
    """Stored parameters of :class:`Ap3000SetParams12` (no result byte), command
    0x91 up.

    .. versionadded:: 0.1.0
    """

    dyn_overload_power: int
    dyn_overload_detect_time_s: int
    dyn_overload_start_time_s: int
    unplug_interference_power: int
    unplug_interference_time_s: int
    float_second_time_point_s: int
    float_second_detect_time_s: int
    min_power: int
    min_power_check_time_s: int
    second_max_power_time_s: int
    env_alarm_temp_c: int
    port_alarm_temp_c: int
    unplug_detect_off: int
    qr_light: int
    extra: bytes = b""


@frozen_message
class Ap3000QueryLimitsReply:
    """Stored limits of :class:`Ap3000SetLimits` (no result byte), command 0x92 up, with or
    without the voltage fields.

    .. versionadded:: 0.1.0
    """

    max_charge_duration_s: int
    overload_power_0p1w: int
    over_voltage_0p1v: int | None = None
    under_voltage_0p1v: int | None = None
    extra: bytes = b""


@frozen_message
class Ap3000QueryCardParamsReply:
    """Stored card parameters of :class:`Ap3000SetCardParams` (no result byte),
    command 0x93 up.

    .. versionadded:: 0.1.0
    """

    card_sector: int
    user_card_key: bytes  #: 6 bytes.
    new_card_key: bytes  #: 6 bytes.
    extra: bytes = b""


@frozen_message
class Ap3000TempQrCodeReply:
    """Answer to :class:`Ap3000TempQrCode`, command 0x95 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000LocateReply:
    """Answer to :class:`Ap3000Locate`, command 0x96 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000SetParams13Reply:
    """Answer to :class:`Ap3000SetParams13`, command 0x97 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000MultiFunctionReply:
    """Answer to :class:`Ap3000MultiFunction`, command 0x98 up.

    .. versionadded:: 0.1.0
    """

    result: int
    extra: bytes = b""


@frozen_message
class Ap3000FirmwarePacketSlaveReply:
    """Answer to :class:`Ap3000FirmwarePacketSlave`, command 0xE0 up.

    .. versionadded:: 0.1.0
    """

    result: int  #: :class:`Ap3000FirmwareResult`.
    packet_no: int  #: Last packet received correctly.
    extra: bytes = b""


@frozen_message
class Ap3000FirmwarePacketPowerBoardReply:
    """Answer to :class:`Ap3000FirmwarePacketPowerBoard`, command 0xE1 up.

    .. versionadded:: 0.1.0
    """

    result: int
    packet_no: int
    extra: bytes = b""


@frozen_message
class Ap3000FirmwarePacketHostReply:
    """Answer to :class:`Ap3000FirmwarePacketHost`, command 0xE2 up.

    .. versionadded:: 0.1.0
    """

    result: int
    packet_no: int
    extra: bytes = b""


@frozen_message
class Ap3000LegacyFirmwarePacketReply:
    """Answer to :class:`Ap3000LegacyFirmwarePacket`, command 0xF8 up.

    .. versionadded:: 0.1.0
    """

    result: int  #: 0 = OK, next; 1 = error, resend this one.
    packet_no: int
    extra: bytes = b""


# ============================================================================================
# Server → device (ap3000.md §4 replies, §5, §6)
# ============================================================================================

@frozen_message
class Ap3000LegacyHeartbeatReply:
    """Answer to :class:`Ap3000LegacyHeartbeat`, command 0x01 down.

    .. versionadded:: 0.1.0
    """

    result: int = 0  #: 0 = OK.
    extra: bytes = b""


@frozen_message
class Ap3000CardSwipeReply:
    """Answer to :class:`Ap3000CardSwipe`, command 0x02 down.

    .. versionadded:: 0.1.0
    """

    card_id: bytes  #: Echo of the request's card UID.
    account_status: int  #: :class:`Ap3000AccountStatus`.
    rate_mode: int  #: :class:`Ap3000RateMode`.
    balance_or_expiry: int  #: Fen (rate modes 0/2/3) or Unix expiry time (1).
    port: int  #: Echo of the request's port.
    extra: bytes = b""

    @property
    def card_id_decimal(self) -> int:
        """The printed card number, :attr:`card_id` read big-endian."""
        return card_id_decimal(self.card_id)


@frozen_message
class Ap3000SettlementReply:
    """Answer to :class:`Ap3000Settlement`, command 0x03 down; mandatory.

    .. versionadded:: 0.1.0
    """

    result: int = 0  #: 0 once the record is stored.
    extra: bytes = b""


@frozen_message
class Ap3000OrderConfirmReply:
    """Answer to :class:`Ap3000OrderConfirm`, command 0x04 down.

    .. versionadded:: 0.1.0
    """

    port: int  #: Echo.
    result: int = 0  #: 0 = OK.
    extra: bytes = b""


@frozen_message
class Ap3000HostTimeReply:
    """Answer to :class:`Ap3000HostTimeRequest`, command 0x12 down.

    .. versionadded:: 0.1.0
    """

    timestamp: int  #: Unix seconds.
    extra: bytes = b""


@frozen_message
class Ap3000RegisterReply:
    """Answer to :class:`Ap3000Register`, command 0x20 down.

    .. versionadded:: 0.1.0
    """

    result: int = 0  #: 0 = OK.
    extra: bytes = b""


@frozen_message
class Ap3000HeartbeatReply:
    """Answer to :class:`Ap3000Heartbeat`, command 0x21 down.

    .. versionadded:: 0.1.0
    """

    result: int = 0  #: 0 = OK.
    extra: bytes = b""


@frozen_message
class Ap3000TimeReply:
    """Answer to :class:`Ap3000TimeRequest`, command 0x22 down.

    .. versionadded:: 0.1.0
    """

    timestamp: int  #: Unix seconds.
    extra: bytes = b""


@frozen_message
class Ap3000HostSetServer:
    """Point a host's modem at a server, command 0x34 down.

    .. versionadded:: 0.1.0
    """

    server_port: int
    module_type: int  #: 1 WIFI, 2 2G, 3 4G.
    socket_b_enable: int  #: 1 = open the second server socket.
    server_address: str  #: IP or domain, at most 45 characters (46 bytes NUL-padded).
    extra: bytes = b""


@frozen_message
class Ap3000CabinetStop:
    """Stop a cabinet port without opening the door, command 0x72 down.

    .. versionadded:: 0.1.0
    """

    port: int
    order_no: bytes
    extra: bytes = b""


@frozen_message
class Ap3000QueryStatus:
    """Make the device send 0x20, 0x01 and 0x21, command 0x81 down.
    No reply.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000ChargeControl:
    """Start or stop charging, command 0x82 down.

    A stop acts only when ``order_no`` matches the running order. When encoding,
    unset optional fields before the last one set are written as 0, except
    ``short_check``, written as 2 (normal detection).

    .. versionadded:: 0.1.0
    """

    rate_mode: int  #: :class:`Ap3000RateMode`.
    balance_or_expiry: int  #: Announced by voice only (fen, or a Unix time for monthly).
    port: int  #: 0-based; 0xFF = let the device pick.
    charge_command: int  #: 0 = stop, 1 = start.
    charge_value: int  #: Seconds (rate mode 0) or 0.01 kWh (mode 2); 0 = until full.
    order_no: bytes  #: 16 bytes.
    max_duration_s: int | None = None  #: This order only; 0 = device setting.
    overload_power_0p1w: int | None = None  #: This order only; 0 = device setting.
    qr_light: int | None = None  #: 0 = QR backlight on at next plug-in, 1 = off.
    long_charge: int | None = None  #: 1 = keep power on after float charging.
    extra_float_time_s: int | None = None  #: 0xFFFF = no float charging.
    short_check: int | None = None  #: 0/1 = skip short-circuit detection, 2 = detect.
    unplug_detect_off: int | None = None  #: 1 = ignore unplugging.
    force_auto_stop: int | None = None  #: 1 = stop when full even in timed/energy mode.
    full_power_w: int | None = None  #: **1 W units**; 0x00/0xFF = off.
    full_power_max_check_min: int | None = None  #: Minutes to keep checking ``full_power_w``.
    extra: bytes = b""


@frozen_message
class Ap3000SetParams11:
    """Device tuning 1.1, command 0x83 down.

    .. versionadded:: 0.1.0
    """

    unplug_power: int  #: Default 3; unit not stated.
    unplug_detect_time_s: int  #: Default 10.
    float_percent: int  #: 1-100, default 20.
    float_detect_time_s: int  #: Default 1800.
    float_time_s: int  #: Default 3600.
    heartbeat_interval_s: int  #: The 0x21/0x01 interval, default 180.
    extra: bytes = b""


@frozen_message
class Ap3000SetParams12:
    """Device tuning 1.2, command 0x84 down.

    .. versionadded:: 0.1.0
    """

    dyn_overload_power: int  #: Default 800; unit not stated.
    dyn_overload_detect_time_s: int  #: Default 30.
    dyn_overload_start_time_s: int  #: Default 1800.
    unplug_interference_power: int  #: Default 10.
    unplug_interference_time_s: int  #: Default 300.
    float_second_time_point_s: int  #: Default 10800.
    float_second_detect_time_s: int  #: Default 300.
    min_power: int  #: Default 300.
    min_power_check_time_s: int  #: Default 1800.
    second_max_power_time_s: int  #: Default 300.
    env_alarm_temp_c: int  #: Plain °C, default 80.
    port_alarm_temp_c: int  #: Plain °C, default 80.
    unplug_detect_off: int  #: 0 = detection on.
    qr_light: int  #: 0 = on, 1 = off (stored).
    extra: bytes = b""


@frozen_message
class Ap3000SetLimits:
    """Charging limits, command 0x85 down; stored permanently.

    .. versionadded:: 0.1.0
    """

    max_charge_duration_s: int  #: Default 36000.
    overload_power_0p1w: int  #: Per port.
    over_voltage_0p1v: int | None = None  #: Default 2700. Optional (2024-08).
    under_voltage_0p1v: int | None = None  #: Default 1000. Optional (2024-08).
    extra: bytes = b""


@frozen_message
class Ap3000SetCardParams:
    """Card reader keys, command 0x86 down.

    .. versionadded:: 0.1.0
    """

    card_sector: int  #: Default 0.
    user_card_key: bytes  #: 6 bytes, default ``159185191880``.
    new_card_key: bytes  #: 6 bytes, default ``FFFFFFFFFFFF``.
    extra: bytes = b""


@frozen_message
class Ap3000Reboot:
    """Reboot the device, command 0x87 down.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000ClearMemory:
    """Clear everything but the IDs and upgrade data, command 0x88 down.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000PlayVoice:
    """Play voice prompts, command 0x89 down (marked reserved).

    .. versionadded:: 0.1.0
    """

    interrupt: int  #: 1 = cut the current prompt.
    voice_ids: bytes  #: One byte per prompt; ``voice_count`` is its length.
    extra: bytes = b""


@frozen_message
class Ap3000ModifyCharge:
    """Change the duration or energy of a running order, command 0x8A down.

    .. versionadded:: 0.1.0
    """

    mode: int  #: 0 timed, 1 timed with stop-when-full, 2 energy with stop-when-full.
    port: int
    value: int  #: Seconds (modes 0, 1) or 0.01 kWh (mode 2).
    extra: bytes = b""


@frozen_message
class Ap3000ReadEeprom:
    """Read device memory, command 0x8B down.

    .. versionadded:: 0.1.0
    """

    address: int
    read_length: int  #: At most 32.
    extra: bytes = b""


@frozen_message
class Ap3000WriteEeprom:
    """Write device memory, command 0x8C down.

    .. versionadded:: 0.1.0
    """

    address: int
    write_length: int  #: At most 32; normally ``len(eeprom_data)``.
    eeprom_data: bytes = b""  #: Every byte after ``write_length``.


@frozen_message
class Ap3000SetWorkMode:
    """Networked or card-only operation, command 0x8D down.

    .. versionadded:: 0.1.0
    """

    work_mode: int  #: 0 networked, 1 card-only.
    extra: bytes = b""


@frozen_message
class Ap3000SetQrCode:
    """Set the QR code text, command 0x8E down.

    .. versionadded:: 0.1.0
    """

    main_screen: int  #: 0 port status, 1 QR code.
    reserved: bytes  #: 3 bytes.
    qr_text: str  #: At most 71 characters (72 bytes NUL-padded).
    extra: bytes = b""


@frozen_message
class Ap3000SetTcCardMode:
    """Charging mode for TC cards, command 0x8F down.

    .. versionadded:: 0.1.0
    """

    tc_mode: int  #: 0 time, 1 per use, 3 energy, 4 fixed fee, 5 home, 6 free choice.
    extra: bytes = b""


@frozen_message
class Ap3000QueryParams11:
    """Query the 0x83 parameters, command 0x90 down.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000QueryParams12:
    """Query the 0x84 parameters, command 0x91 down.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000QueryLimits:
    """Query the 0x85 limits, command 0x92 down.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000QueryCardParams:
    """Query the 0x86 card parameters, command 0x93 down.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000TempQrCode:
    """Temporary QR code on screen models, command 0x95 down.

    .. versionadded:: 0.1.0
    """

    qr_text: str  #: At most 200 characters (200 bytes NUL-padded).
    extra: bytes = b""


@frozen_message
class Ap3000Locate:
    """Play a sound and flash, command 0x96 down.

    .. versionadded:: 0.1.0
    """

    duration_s: int
    extra: bytes = b""


@frozen_message
class Ap3000SetParams13:
    """Device tuning 1.3, command 0x97 down.

    .. versionadded:: 0.1.0
    """

    mute: int  #: 1 = silent.
    extra: bytes = b""


@frozen_message
class Ap3000MultiFunction:
    """Cabinet functions, command 0x98 down.

    .. versionadded:: 0.1.0
    """

    function: int  #: 0 = force the cabinet door open.
    port: int
    extra: bytes = b""


#: The eight bytes that open a firmware verification packet.
VERIFICATION_MAGIC = bytes.fromhex("A1A2A3A4A5A6A7A8")
_VERIFICATION = struct.Struct("<8sIBH")


@frozen_message
class Ap3000FirmwareVerification:
    """The optional last packet of an 0xE0/0xE1/0xE2 upgrade:
    ``A1 … A8``, the byte sum of the whole image (u32), the target device type,
    the new firmware version (u16), then zeros to 200 bytes.

    Attributes:
        image_sum: Sum of every byte of the image, modulo 2**32.
        device_type: The target ``device_type``.
        firmware_version: The version the unit will report after the upgrade.

    .. versionadded:: 0.1.0
    """

    image_sum: int
    device_type: int
    firmware_version: int

    @classmethod
    def for_image(cls, image: bytes, *, device_type: int,
                  firmware_version: int) -> Ap3000FirmwareVerification:
        """The verification record of *image*.

        Args:
            image: The whole firmware image (without padding).
            device_type: The target ``device_type``.
            firmware_version: The new firmware version.

        Returns:
            The record; put :meth:`~bkvcodec.encode` into the last packet.
        """
        return cls(image_sum=sum(image) & 0xFFFF_FFFF, device_type=device_type,
                   firmware_version=firmware_version)

    @classmethod
    def decode(cls, block: bytes) -> Ap3000FirmwareVerification | None:
        """Read a packet's ``firmware`` bytes; None when they are not a verification block.

        Args:
            block: The ``firmware`` field of a firmware packet.

        Returns:
            The record, or None.
        """
        if len(block) < _VERIFICATION.size or not block.startswith(VERIFICATION_MAGIC):
            return None
        _, image_sum, device_type, version = _VERIFICATION.unpack_from(block)
        return cls(image_sum=image_sum, device_type=device_type, firmware_version=version)

    def encode(self) -> bytes:
        """The 200-byte ``firmware`` field of the verification packet.

        Raises:
            ValueError: A value does not fit its field.
        """
        try:
            head = _VERIFICATION.pack(VERIFICATION_MAGIC, self.image_sum, self.device_type,
                                      self.firmware_version)
        except struct.error as err:
            raise ValueError(str(err)) from err
        return head + bytes(200 - len(head))


@frozen_message
class Ap3000FirmwarePacketSlave:
    """One firmware packet for a slave/socket unit, command 0xE0 down.

    .. versionadded:: 0.1.0
    """

    total_packets: int  #: ceil(image size / 200), +1 with a verification packet.
    packet_no: int  #: 1-based; ``packet_no == total_packets`` ends the transfer.
    firmware: bytes  #: 200 bytes; the last packet is padded with zeros.
    extra: bytes = b""

    @property
    def verification(self) -> Ap3000FirmwareVerification | None:
        """The verification record, when this is the verification packet."""
        return Ap3000FirmwareVerification.decode(self.firmware)


@frozen_message
class Ap3000FirmwarePacketPowerBoard:
    """One firmware packet for a unit's power board, command 0xE1 down.

    .. versionadded:: 0.1.0
    """

    total_packets: int
    packet_no: int
    firmware: bytes  #: 200 bytes.
    extra: bytes = b""

    @property
    def verification(self) -> Ap3000FirmwareVerification | None:
        """The verification record, when this is the verification packet."""
        return Ap3000FirmwareVerification.decode(self.firmware)


@frozen_message
class Ap3000FirmwarePacketHost:
    """One firmware packet for a host ("unified" upgrade), command 0xE2 down.

    .. versionadded:: 0.1.0
    """

    total_packets: int
    packet_no: int
    firmware: bytes  #: 200 bytes.
    extra: bytes = b""

    @property
    def verification(self) -> Ap3000FirmwareVerification | None:
        """The verification record, when this is the verification packet."""
        return Ap3000FirmwareVerification.decode(self.firmware)


@frozen_message
class Ap3000TriggerSelfUpgrade:
    """Make a unit that downloads firmware itself upgrade, command 0xE4 down. No reply documented.

    .. versionadded:: 0.1.0
    """

    extra: bytes = b""


@frozen_message
class Ap3000LegacyFirmwarePacket:
    """One packet of the legacy upgrade, command 0xF8 down.
    These frames have length 269, above the documented 256-byte limit.

    .. versionadded:: 0.1.0
    """

    total_packets: int  #: ceil(image size / 256).
    packet_no: int  #: 1-based.
    firmware: bytes  #: 256 bytes.
    extra: bytes = b""


@frozen_message
class UnknownAp3000Command:
    """A frame whose (command, direction) has no documented layout, kept raw
    (decode, expose the data, do not answer). The host commands
    for slave units and the undocumented 0x23/0x26 arrive this way.

    .. versionadded:: 0.1.0
    """

    direction: Direction
    command: int
    data: bytes


Ap3000Message: TypeAlias = (
    Ap3000HostPoll | Ap3000LegacyHeartbeat | Ap3000CardSwipe | Ap3000Settlement
    | Ap3000OrderConfirm | Ap3000UpgradeRequest | Ap3000PowerHeartbeat | Ap3000HostHeartbeat
    | Ap3000HostTimeRequest | Ap3000HostStatusReport | Ap3000Register | Ap3000Heartbeat
    | Ap3000TimeRequest | Ap3000HostSetServerReply | Ap3000SlaveVersions
    | Ap3000CabinetHeartbeat | Ap3000Alarm | Ap3000ChargeCompleteNotice | Ap3000PortPush
    | Ap3000CabinetStopReply | Ap3000ChargeControlReply | Ap3000SetParams11Reply
    | Ap3000SetParams12Reply | Ap3000SetLimitsReply | Ap3000SetCardParamsReply
    | Ap3000RebootReply | Ap3000ClearMemoryReply | Ap3000PlayVoiceReply
    | Ap3000ModifyChargeReply | Ap3000ReadEepromReply | Ap3000WriteEepromReply
    | Ap3000SetWorkModeReply | Ap3000SetQrCodeReply | Ap3000SetTcCardModeReply
    | Ap3000QueryParams11Reply | Ap3000QueryParams12Reply | Ap3000QueryLimitsReply
    | Ap3000QueryCardParamsReply | Ap3000TempQrCodeReply | Ap3000LocateReply
    | Ap3000SetParams13Reply | Ap3000MultiFunctionReply | Ap3000FirmwarePacketSlaveReply
    | Ap3000FirmwarePacketPowerBoardReply | Ap3000FirmwarePacketHostReply
    | Ap3000LegacyFirmwarePacketReply
    | Ap3000LegacyHeartbeatReply | Ap3000CardSwipeReply | Ap3000SettlementReply
    | Ap3000OrderConfirmReply | Ap3000HostTimeReply | Ap3000RegisterReply
    | Ap3000HeartbeatReply | Ap3000TimeReply | Ap3000HostSetServer | Ap3000CabinetStop
    | Ap3000QueryStatus | Ap3000ChargeControl | Ap3000SetParams11 | Ap3000SetParams12
    | Ap3000SetLimits | Ap3000SetCardParams | Ap3000Reboot | Ap3000ClearMemory
    | Ap3000PlayVoice | Ap3000ModifyCharge | Ap3000ReadEeprom | Ap3000WriteEeprom
    | Ap3000SetWorkMode | Ap3000SetQrCode | Ap3000SetTcCardMode | Ap3000QueryParams11
    | Ap3000QueryParams12 | Ap3000QueryLimits | Ap3000QueryCardParams | Ap3000TempQrCode
    | Ap3000Locate | Ap3000SetParams13 | Ap3000MultiFunction | Ap3000FirmwarePacketSlave
    | Ap3000FirmwarePacketPowerBoard | Ap3000FirmwarePacketHost | Ap3000TriggerSelfUpgrade
    | Ap3000LegacyFirmwarePacket | UnknownAp3000Command
)
"""Every message an :class:`Ap3000Frame` can carry."""

#: (command, direction, JSON name) of every message class with a layout.
MESSAGE_TYPES: dict[type[Ap3000Message], tuple[int, Direction, str]] = {
    Ap3000HostPoll: (0x00, U, "host_poll"),
    Ap3000LegacyHeartbeat: (0x01, U, "legacy_heartbeat"),
    Ap3000LegacyHeartbeatReply: (0x01, D, "legacy_heartbeat_reply"),
    Ap3000CardSwipe: (0x02, U, "card_swipe"),
    Ap3000CardSwipeReply: (0x02, D, "card_swipe_reply"),
    Ap3000Settlement: (0x03, U, "settlement"),
    Ap3000SettlementReply: (0x03, D, "settlement_reply"),
    Ap3000OrderConfirm: (0x04, U, "order_confirm"),
    Ap3000OrderConfirmReply: (0x04, D, "order_confirm_reply"),
    Ap3000UpgradeRequest: (0x05, U, "upgrade_request"),
    Ap3000PowerHeartbeat: (0x06, U, "power_heartbeat"),
    Ap3000HostHeartbeat: (0x11, U, "host_heartbeat"),
    Ap3000HostTimeRequest: (0x12, U, "host_time_request"),
    Ap3000HostTimeReply: (0x12, D, "host_time_reply"),
    Ap3000HostStatusReport: (0x17, U, "host_status_report"),
    Ap3000Register: (0x20, U, "register"),
    Ap3000RegisterReply: (0x20, D, "register_reply"),
    Ap3000Heartbeat: (0x21, U, "heartbeat"),
    Ap3000HeartbeatReply: (0x21, D, "heartbeat_reply"),
    Ap3000TimeRequest: (0x22, U, "time_request"),
    Ap3000TimeReply: (0x22, D, "time_reply"),
    Ap3000HostSetServerReply: (0x34, U, "host_set_server_reply"),
    Ap3000HostSetServer: (0x34, D, "host_set_server"),
    Ap3000SlaveVersions: (0x35, U, "slave_versions"),
    Ap3000CabinetHeartbeat: (0x41, U, "cabinet_heartbeat"),
    Ap3000Alarm: (0x42, U, "alarm"),
    Ap3000ChargeCompleteNotice: (0x43, U, "charge_complete_notice"),
    Ap3000PortPush: (0x44, U, "port_push"),
    Ap3000CabinetStopReply: (0x72, U, "cabinet_stop_reply"),
    Ap3000CabinetStop: (0x72, D, "cabinet_stop"),
    Ap3000QueryStatus: (0x81, D, "query_status"),
    Ap3000ChargeControlReply: (0x82, U, "charge_control_reply"),
    Ap3000ChargeControl: (0x82, D, "charge_control"),
    Ap3000SetParams11Reply: (0x83, U, "set_params_1_1_reply"),
    Ap3000SetParams11: (0x83, D, "set_params_1_1"),
    Ap3000SetParams12Reply: (0x84, U, "set_params_1_2_reply"),
    Ap3000SetParams12: (0x84, D, "set_params_1_2"),
    Ap3000SetLimitsReply: (0x85, U, "set_limits_reply"),
    Ap3000SetLimits: (0x85, D, "set_limits"),
    Ap3000SetCardParamsReply: (0x86, U, "set_card_params_reply"),
    Ap3000SetCardParams: (0x86, D, "set_card_params"),
    Ap3000RebootReply: (0x87, U, "reboot_reply"),
    Ap3000Reboot: (0x87, D, "reboot"),
    Ap3000ClearMemoryReply: (0x88, U, "clear_memory_reply"),
    Ap3000ClearMemory: (0x88, D, "clear_memory"),
    Ap3000PlayVoiceReply: (0x89, U, "play_voice_reply"),
    Ap3000PlayVoice: (0x89, D, "play_voice"),
    Ap3000ModifyChargeReply: (0x8A, U, "modify_charge_reply"),
    Ap3000ModifyCharge: (0x8A, D, "modify_charge"),
    Ap3000ReadEepromReply: (0x8B, U, "read_eeprom_reply"),
    Ap3000ReadEeprom: (0x8B, D, "read_eeprom"),
    Ap3000WriteEepromReply: (0x8C, U, "write_eeprom_reply"),
    Ap3000WriteEeprom: (0x8C, D, "write_eeprom"),
    Ap3000SetWorkModeReply: (0x8D, U, "set_work_mode_reply"),
    Ap3000SetWorkMode: (0x8D, D, "set_work_mode"),
    Ap3000SetQrCodeReply: (0x8E, U, "set_qr_code_reply"),
    Ap3000SetQrCode: (0x8E, D, "set_qr_code"),
    Ap3000SetTcCardModeReply: (0x8F, U, "set_tc_card_mode_reply"),
    Ap3000SetTcCardMode: (0x8F, D, "set_tc_card_mode"),
    Ap3000QueryParams11Reply: (0x90, U, "query_params_1_1_reply"),
    Ap3000QueryParams11: (0x90, D, "query_params_1_1"),
    Ap3000QueryParams12Reply: (0x91, U, "query_params_1_2_reply"),
    Ap3000QueryParams12: (0x91, D, "query_params_1_2"),
    Ap3000QueryLimitsReply: (0x92, U, "query_limits_reply"),
    Ap3000QueryLimits: (0x92, D, "query_limits"),
    Ap3000QueryCardParamsReply: (0x93, U, "query_card_params_reply"),
    Ap3000QueryCardParams: (0x93, D, "query_card_params"),
    Ap3000TempQrCodeReply: (0x95, U, "temp_qr_code_reply"),
    Ap3000TempQrCode: (0x95, D, "temp_qr_code"),
    Ap3000LocateReply: (0x96, U, "locate_reply"),
    Ap3000Locate: (0x96, D, "locate"),
    Ap3000SetParams13Reply: (0x97, U, "set_params_1_3_reply"),
    Ap3000SetParams13: (0x97, D, "set_params_1_3"),
    Ap3000MultiFunctionReply: (0x98, U, "multi_function_reply"),
    Ap3000MultiFunction: (0x98, D, "multi_function"),
    Ap3000FirmwarePacketSlaveReply: (0xE0, U, "firmware_packet_slave_reply"),
    Ap3000FirmwarePacketSlave: (0xE0, D, "firmware_packet_slave"),
    Ap3000FirmwarePacketPowerBoardReply: (0xE1, U, "firmware_packet_power_board_reply"),
    Ap3000FirmwarePacketPowerBoard: (0xE1, D, "firmware_packet_power_board"),
    Ap3000FirmwarePacketHostReply: (0xE2, U, "firmware_packet_host_reply"),
    Ap3000FirmwarePacketHost: (0xE2, D, "firmware_packet_host"),
    Ap3000TriggerSelfUpgrade: (0xE4, D, "trigger_self_upgrade"),
    Ap3000LegacyFirmwarePacketReply: (0xF8, U, "legacy_firmware_packet_reply"),
    Ap3000LegacyFirmwarePacket: (0xF8, D, "legacy_firmware_packet"),
}


# ============================================================================================
# Parameter messages as the name → integer mappings of SetParams and ParamsReported
# ============================================================================================

ParameterSet: TypeAlias = (Ap3000SetParams11 | Ap3000SetParams12 | Ap3000SetLimits
                           | Ap3000SetCardParams | Ap3000SetParams13)
ParameterQuery: TypeAlias = (Ap3000QueryParams11 | Ap3000QueryParams12 | Ap3000QueryLimits
                             | Ap3000QueryCardParams)
ParameterReply: TypeAlias = (Ap3000QueryParams11Reply | Ap3000QueryParams12Reply
                             | Ap3000QueryLimitsReply | Ap3000QueryCardParamsReply)

#: The set commands whose fields ``SetParams`` takes (0x83-0x86 and 0x97), each with
#: the query that reports them (0x97 has none).
PARAMETER_SETS: Mapping[type[ParameterSet], type[ParameterQuery] | None] = {
    Ap3000SetParams11: Ap3000QueryParams11, Ap3000SetParams12: Ap3000QueryParams12,
    Ap3000SetLimits: Ap3000QueryLimits, Ap3000SetCardParams: Ap3000QueryCardParams,
    Ap3000SetParams13: None,
}
#: The parameter queries (0x90-0x93) and the replies that carry the values.
PARAMETER_QUERIES: Mapping[type[ParameterQuery], type[ParameterReply]] = {
    Ap3000QueryParams11: Ap3000QueryParams11Reply, Ap3000QueryParams12: Ap3000QueryParams12Reply,
    Ap3000QueryLimits: Ap3000QueryLimitsReply, Ap3000QueryCardParams: Ap3000QueryCardParamsReply,
}
#: The parameters a unit starts with: the protocol's defaults for 0x83-0x86 (0x85's
#: overload power depends on the model; 20000 = 2000 W, the dual-socket limit) and
#: 0x97 ``mute`` off.
PARAMETER_DEFAULTS: Mapping[str, int] = {
    # 0x83 (§5.4)
    "unplug_power": 3, "unplug_detect_time_s": 10, "float_percent": 20,
    "float_detect_time_s": 1800, "float_time_s": 3600, "heartbeat_interval_s": 180,
    # 0x84 (§5.5)
    "dyn_overload_power": 800, "dyn_overload_detect_time_s": 30,
    "dyn_overload_start_time_s": 1800, "unplug_interference_power": 10,
    "unplug_interference_time_s": 300, "float_second_time_point_s": 10800,
    "float_second_detect_time_s": 300, "min_power": 300, "min_power_check_time_s": 1800,
    "second_max_power_time_s": 300, "env_alarm_temp_c": 80, "port_alarm_temp_c": 80,
    "unplug_detect_off": 0, "qr_light": 1,
    # 0x85 (§5.6)
    "max_charge_duration_s": 36000, "overload_power_0p1w": 20000,
    "over_voltage_0p1v": 2700, "under_voltage_0p1v": 1000,
    # 0x86 (§5.7)
    "card_sector": 0, "user_card_key": 0x159185191880, "new_card_key": 0xFFFFFFFFFFFF,
    # 0x97 (§5.8)
    "mute": 0,
}
#: Byte-string parameters (the 0x86 card keys) and their size. As integers they are the
#: bytes read big-endian, so ``0x159185191880`` is the key ``15 91 85 19 18 80``.
PARAMETER_BYTES: Mapping[str, int] = {"user_card_key": 6, "new_card_key": 6}


def field_names(cls: type[Ap3000Message]) -> tuple[str, ...]:
    """The data fields of a message class in wire order, without ``extra``."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")


def parameters(message: ParameterSet | ParameterReply) -> dict[str, int]:
    """The fields of a parameter message as integers (unset optional fields left out;
    :data:`PARAMETER_BYTES` read big-endian)."""
    values: dict[str, int] = {}
    for name in field_names(type(message)):
        value: int | bytes | None = getattr(message, name)
        if isinstance(value, bytes):
            values[name] = int.from_bytes(value, "big")
        elif value is not None:
            values[name] = value
    return values


def parameter_message(cls: type[ParameterSet] | type[ParameterReply],
                      params: Mapping[str, int]) -> ParameterSet | ParameterReply:
    """Build *cls* from integer parameters (the inverse of :func:`parameters`); names
    *cls* lacks are ignored, optional fields not given stay unset.

    Raises:
        LocalProtocolError: A mandatory field is missing, or a byte-string parameter
            does not fit its size.
    """
    fields: dict[str, int | bytes] = {}
    for name in field_names(cls):
        if name not in params:
            continue
        value = params[name]
        size = PARAMETER_BYTES.get(name)
        if size is not None:
            if type(value) is not int or not 0 <= value < 1 << 8 * size:
                raise LocalProtocolError(
                    f"{name} must be 0-0x{(1 << 8 * size) - 1:X} ({size} bytes read "
                    f"big-endian), got {value!r}")
            fields[name] = value.to_bytes(size, "big")
        else:
            fields[name] = value
    try:
        return cls(**fields)  # type: ignore[arg-type]
    except TypeError as err:
        raise LocalProtocolError(f"{cls.__name__}: {err}") from None
