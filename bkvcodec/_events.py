# The protocol-neutral vocabulary between a device connection and its caller.
#
# Everything protocol-specific stays below this line: a server-role connection
# turns BKV, GN and AP3000 frames into these events, and turns these commands
# into frames. Quantities are in the contract's units (api.md §3): seconds,
# 0.01 kWh, 0.1 W, 0.1 V, mA, cents; ports are 1-based; identities are the
# printed ``phy_id`` strings. Every event says which device it concerns, because
# one connection may carry several (an AP3000 host relays its slaves).
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from ._session import ChargeMode, EndReason, MeterReading
from ._types import ProtocolFamily

__all__ = [
    "AlarmRaised", "CardPresented", "FirmwareProgress", "FirmwareTarget", "ModifyCharge",
    "SendFirmware", "NetworkSocketSpec", "SetNetworkList",
    "StartOta", "StartConfirmed", "ProgressReported", "SettlementReported",
    "CommandAcknowledged", "CommandRejected", "CommandTimedOut", "DeviceHeartbeat",
    "DeviceRegistered", "ModemIdentified", "ParamsReported", "PortState", "PortStatusReported",
    "PowerTierSpec", "QueryParams", "QueryStatus", "SetParams", "StartCharging",
    "StopCharging", "UnknownMessage", "UpgradeRequested",
]


class PortState(enum.IntEnum):
    """A port's state as the API shows it (api.md §6.3 ``status``)."""

    #: Nothing charging (a charger may be plugged in).
    IDLE = 0
    #: Charging.
    CHARGING = 1
    #: Faulted; see the fault code.
    FAULT = 2
    #: The socket is not reachable.
    OFFLINE = 3


# --- events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class ModemIdentified:
    """The modem announced its SIM before any frame named the device (AP3000 ICCID)."""

    iccid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegistered:
    """A device announced itself: AP3000 ``0x20``, or the first BKV heartbeat of a
    connection."""

    phy_id: str
    protocol: ProtocolFamily
    firmware: str | None = None
    port_count: int | None = None
    device_type: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceHeartbeat:
    """A heartbeat (BKV ``0x0000``, AP3000 ``0x21``/``0x01``/``0x11``); already answered."""

    phy_id: str
    protocol: ProtocolFamily
    iccid: str | None = None
    firmware: str | None = None
    rssi: int | None = None
    voltage_dv: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PortStatusReported:
    """One port's state and readings.

    Attributes:
        fault_code: The protocol's raw fault value, 0 when not faulted
            (api.md §10.4).
        raw_status: The status byte as sent.
        business_no: BKV session number, 0 or None when idle.
    """

    phy_id: str
    socket_no: int
    port_no: int
    state: PortState
    raw_status: int
    fault_code: int = 0
    fault_msg: str = ""
    power_dw: int | None = None
    voltage_dv: int | None = None
    current_ma: int | None = None
    energy_centikwh: int | None = None
    duration_s: int | None = None
    order_no: str | None = None
    business_no: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartConfirmed:
    """The device confirmed that an order's charging began (AP3000 ``0x04``, BKV start
    acknowledgement with its business number)."""

    phy_id: str
    socket_no: int
    port_no: int
    order_no: str | None = None
    business_no: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressReported:
    """Running totals of a charging port (AP3000 ``0x06``, BKV status with a session)."""

    phy_id: str
    socket_no: int
    port_no: int
    reading: MeterReading
    order_no: str | None = None
    business_no: int | None = None
    peak_power_dw: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementReported:
    """The device's end-of-charge report; already acknowledged.

    Attributes:
        end_reason: The contract's reason, mapped from the protocol's code or
            derived from status bits (api.md §10.2).
        end_reason_raw: The protocol's own code, when it sends one.
        amount_cents: What the device billed, when it bills (GN power and card
            modes).
    """

    phy_id: str
    socket_no: int
    port_no: int
    reading: MeterReading
    end_reason: EndReason
    end_reason_raw: int | None = None
    order_no: str | None = None
    business_no: int | None = None
    peak_power_dw: int | None = None
    amount_cents: int | None = None
    card_no: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandAcknowledged:
    """The device accepted a command sent with :meth:`ServerConnection.send`.

    Attributes:
        business_no: BKV session number the gateway created for a start.
    """

    command_id: str
    phy_id: str
    business_no: int | None = None
    port_no: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected:
    """The device refused a command.

    Attributes:
        reason: A snake_case reason (``no_charger``, ``port_busy``, ``port_fault`` …).
        raw_code: The protocol's result code.
    """

    command_id: str
    phy_id: str
    reason: str
    raw_code: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandTimedOut:
    """A command got no answer after every allowed retransmission."""

    command_id: str
    phy_id: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CardPresented:
    """A card was presented at a port; answer with ``answer_card``.

    Attributes:
        request_id: Pass it back to ``answer_card``.
        balance_only: The holder asked for the balance, not for a charge.
    """

    phy_id: str
    socket_no: int
    port_no: int | None
    card_no: str
    request_id: int
    balance_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRaised:
    """A device or port reported a fault or an alarm (api.md §7 ``device.alarm``)."""

    phy_id: str
    alarm_type: str
    fault_code: int
    fault_msg: str
    socket_no: int | None = None
    port_no: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamsReported:
    """Parameter values the device reported (a query's answer).

    Attributes:
        command_id: The query it answers, when known.
        params: Values by the protocol reference's field names, raw units.
    """

    phy_id: str
    params: Mapping[str, int]
    socket_no: int | None = None
    command_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareProgress:
    """A :class:`SendFirmware` transfer advanced: the device accepted a packet.

    The transfer's end is its :class:`CommandAcknowledged` (or
    :class:`CommandRejected` / :class:`CommandTimedOut`).
    """

    command_id: str
    phy_id: str
    packets_done: int
    packets_total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeRequested:
    """The device asked for a firmware upgrade (AP3000 ``0x05``)."""

    phy_id: str
    device_type: int | None = None
    firmware_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownMessage:
    """A valid frame the connection has no rule for; kept for logging."""

    phy_id: str | None
    name: str
    data: bytes


# --- commands ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class PowerTierSpec:
    """One power tier of a power-tier order (api.md §6.3 ``power_tiers``)."""

    max_power_w: int
    price_cents: int
    minutes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StartCharging:
    """Start an order on a port.

    Attributes:
        command_id: The caller's id for the command; events about its outcome
            carry it.
        mode: 1 time (``duration_s``), 2 energy (``energy_wh``), 3 power tiers,
            4 until full.
        amount_cents: Prepaid amount (announced by some devices, billed by
            power-tier orders).
        order_no: The order number (16 ASCII characters).
    """

    command_id: str
    phy_id: str
    port_no: int
    order_no: str
    mode: ChargeMode
    socket_no: int = 1
    duration_s: int | None = None
    energy_wh: int | None = None
    power_tiers: tuple[PowerTierSpec, ...] = ()
    amount_cents: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopCharging:
    """Stop the order running on a port."""

    command_id: str
    phy_id: str
    port_no: int
    socket_no: int = 1
    order_no: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStatus:
    """Ask the device to report its status now."""

    command_id: str
    phy_id: str
    socket_no: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SetParams:
    """Set device parameters, by the protocol reference's field names."""

    command_id: str
    phy_id: str
    params: Mapping[str, int] = field(default_factory=dict)
    socket_no: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ModifyCharge:
    """Change the limit of the order running on a port (AP3000 ``0x8A``).

    Exactly one of ``duration_s`` and ``energy_wh`` is set. BKV gateways cannot
    modify a running order.

    Attributes:
        stop_when_full: With a time limit, also stop when the charger is full.
    """

    command_id: str
    phy_id: str
    port_no: int
    duration_s: int | None = None
    energy_wh: int | None = None
    stop_when_full: bool = False
    socket_no: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StartOta:
    """Tell a BKV gateway to fetch a firmware file by FTP (BKV ``0x0007``).

    The gateway sends no answer (bkv.md §5): the command is written untracked and
    its effect shows as a new firmware version in later heartbeats. AP3000 firmware
    is transferred in packets, which this library does not drive yet.
    """

    command_id: str
    phy_id: str
    ftp_host: str
    file_name: str
    ftp_port: int = 21
    target: int = 1


class FirmwareTarget(enum.Enum):
    """Which part of an AP3000 unit a :class:`SendFirmware` upgrades (ap3000.md §5.10)."""

    #: A slave or socket unit (``0xE0``).
    SLAVE = 0xE0
    #: Its power board (``0xE1``).
    POWER_BOARD = 0xE1
    #: A host (``0xE2``).
    HOST = 0xE2


@dataclass(frozen=True, slots=True, kw_only=True)
class SendFirmware:
    """Transfer a firmware image to an AP3000 unit in 200-byte packets (``0xE0``-``0xE2``).

    Each packet waits for the unit's answer (30 s, resent up to 3 times);
    :class:`FirmwareProgress` reports each accepted packet. With ``device_type``
    and ``firmware_version`` set, the verification packet the vendor recommends
    is appended. BKV gateways fetch firmware by FTP instead (:class:`StartOta`).
    """

    command_id: str
    phy_id: str
    image: bytes
    target: FirmwareTarget = FirmwareTarget.SLAVE
    device_type: int | None = None
    firmware_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSocketSpec:
    """A socket to network under a BKV gateway: its number and its MAC (12 hex digits)."""

    socket_no: int
    mac: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetNetworkList:
    """Replace a BKV gateway's socket list (GN ``0x08``), or add one socket (``0x09``)
    when ``add`` is set (then ``sockets`` holds exactly one).

    Attributes:
        channel: Radio channel 1-15 (ignored when adding).
    """

    command_id: str
    phy_id: str
    sockets: tuple[NetworkSocketSpec, ...]
    channel: int = 1
    add: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryParams:
    """Ask for the device's parameters; the answer is a :class:`ParamsReported`."""

    command_id: str
    phy_id: str
    socket_no: int = 1
