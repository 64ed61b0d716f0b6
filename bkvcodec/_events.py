# The protocol-neutral vocabulary between a device connection and its caller.
#
# Everything protocol-specific stays below this line: a server-role connection
# turns BKV, GN and AP3000 frames into these events, a device-role connection
# turns the server's frames into them, and the order machine (_session) consumes
# them. Quantities are in the contract's units: seconds, 0.01 kWh, 0.1 W, 0.1 V,
# mA, cents; ports are 1-based; identities are the printed ``phy_id`` strings.
# Every event says which device it concerns, because one connection may carry
# several (an AP3000 host relays its slaves).
from __future__ import annotations

import enum
from collections.abc import Mapping

from ._ap3000.messages import Ap3000Message
from ._bkv.messages import BkvMessage
from ._fastinit import frozen_dataclass
from ._types import ProtocolFamily

__all__ = [
    "AlarmRaised",
    "AnswerWithheld",
    "CardAnswered",
    "CardPresented",
    "ChargeMode",
    "CommandAcknowledged",
    "CommandDropped",
    "CommandRejected",
    "CommandTimedOut",
    "DeviceHeartbeat",
    "DeviceRegistered",
    "EndReason",
    "Event",
    "FirmwareProgress",
    "MeterReading",
    "ModemIdentified",
    "ParamsReported",
    "PortState",
    "PortStatusReported",
    "ProgressReported",
    "ServerAnswered",
    "SettlementReported",
    "StartConfirmed",
    "UnknownMessage",
    "UpgradeRequested",
]


class PortState(enum.IntEnum):
    """A port's state as the API shows it (``status``)."""

    #: Nothing charging (a charger may be plugged in).
    IDLE = 0
    #: Charging.
    CHARGING = 1
    #: Faulted; see the fault code.
    FAULT = 2
    #: The socket is not reachable.
    OFFLINE = 3


class EndReason(enum.IntEnum):
    """Why an order ended; the integer is stored, the name shown."""

    #: A limit was reached (time, energy, amount) or the plug was pulled.
    NORMAL = 0
    #: The charger reported full.
    FULL = 1
    #: The balance ran out.
    INSUFFICIENT_BALANCE = 2
    #: Stopped by the platform.
    REMOTE_STOP = 3
    #: A port fault stopped the charge.
    FAULT = 4
    #: The device's maximum-charge-time protection.
    TIMEOUT = 5
    #: Stopped at the device (button, card).
    USER_STOP = 6
    #: No confirmation or progress within ``start_timeout``.
    NO_CONFIRMATION = 100
    #: The device reported the port idle (or never reported the end) without settling.
    DEVICE_LOST_ORDER = 101
    #: The start command expired while the device was offline.
    COMMAND_EXPIRED = 102


class ChargeMode(enum.IntEnum):
    """How an order limits the charge (``charge_mode``)."""

    #: By time (``duration``).
    TIME = 1
    #: By energy (``energy_wh``).
    ENERGY = 2
    #: By power tiers.
    POWER_TIERS = 3
    #: Until the charger is full.
    UNTIL_FULL = 4


@frozen_dataclass
class MeterReading:
    """A device's meters for one order, in contract units.

    Attributes:
        duration_s: Seconds charged, by the device's clock.
        energy_centikwh: Energy in 0.01 kWh.
        power_dw: Instant power, 0.1 W.
        voltage_dv: Voltage, 0.1 V, if reported.
        current_ma: Current, mA, if reported.
        temperature_c: Temperature, °C, if reported.

    .. versionadded:: 0.1.0
    """

    duration_s: int
    energy_centikwh: int
    power_dw: int = 0
    voltage_dv: int | None = None
    current_ma: int | None = None
    temperature_c: int | None = None


@frozen_dataclass
class Event:
    """The base of everything a connection reports.

    Match on the concrete classes; a connection's return type
    (:data:`ConnectionEvent`, :data:`DeviceInput`) is the closed union of those
    it can report, so ``assert_never`` in the last ``case`` makes an unhandled
    new kind a type error.

    Attributes:
        phy_id: The device the event concerns. None only before any frame named
            a device (a modem's ICCID announcement, a rejected frame, a stream in
            no known protocol) and for frames without a device id.

    .. versionadded:: 0.1.0
    """

    phy_id: str | None


# --- events ------------------------------------------------------------------------------

@frozen_dataclass
class ModemIdentified(Event):
    """The modem announced its SIM before any frame named the device (AP3000 ICCID)."""

    phy_id: None = None
    iccid: str


@frozen_dataclass
class DeviceRegistered(Event):
    """A device announced itself: AP3000 ``0x20``, or the first BKV heartbeat of a
    connection."""

    phy_id: str
    protocol: ProtocolFamily
    firmware: str | None = None
    port_count: int | None = None
    device_type: int | None = None


@frozen_dataclass
class DeviceHeartbeat(Event):
    """A heartbeat (BKV ``0x0000``, AP3000 ``0x21``/``0x01``/``0x11``); already answered."""

    phy_id: str
    protocol: ProtocolFamily
    iccid: str | None = None
    firmware: str | None = None
    rssi: int | None = None
    voltage_dv: int | None = None


@frozen_dataclass
class PortStatusReported(Event):
    """One port's state and readings.

    Attributes:
        fault_code: The protocol's raw fault value, 0 when not faulted.
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


@frozen_dataclass
class StartConfirmed(Event):
    """The device confirmed that an order's charging began (AP3000 ``0x04``, BKV start
    acknowledgement with its business number)."""

    phy_id: str
    socket_no: int
    port_no: int
    order_no: str | None = None
    business_no: int | None = None


@frozen_dataclass
class ProgressReported(Event):
    """Running totals of a charging port (AP3000 ``0x06``, BKV status with a session)."""

    phy_id: str
    socket_no: int
    port_no: int
    reading: MeterReading
    order_no: str | None = None
    business_no: int | None = None
    peak_power_dw: int | None = None


@frozen_dataclass
class SettlementReported(Event):
    """The device's end-of-charge report. Its answer is held until
    :meth:`ServerConnection.acknowledge` (unless the connection's ``hold`` says
    otherwise): store the report first.

    Attributes:
        end_reason: The contract's reason, mapped from the protocol's code or
            derived from status bits.
        end_reason_raw: The protocol's own code, when it sends one.
        amount_cents: What the device billed, when it bills (GN power and card
            modes).
        tier_minutes: Minutes charged in each power tier, as the device reports
            them (GN ``0x18`` and ``0x0C``); None when the report has none.
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
    tier_minutes: tuple[int, ...] | None = None


@frozen_dataclass
class CommandAcknowledged(Event):
    """The device accepted a command sent with :meth:`bkvcodec.ServerConnection.send`.

    Attributes:
        business_no: BKV session number the gateway created for a start.
        port_no: The port the device acted on, when it says.
        reply: The device's answer as a wire message (``None`` for a command the
            protocol never answers, acknowledged once written). A device-role
            connection sends this exact answer when it is set.
    """

    command_id: str
    phy_id: str
    business_no: int | None = None
    port_no: int | None = None
    reply: BkvMessage | Ap3000Message | None = None


@frozen_dataclass
class CommandRejected(Event):
    """The device refused a command.

    Attributes:
        reason: A snake_case reason (``no_charger``, ``port_busy``, ``port_fault`` …).
        raw_code: The protocol's result code.
    """

    command_id: str
    phy_id: str
    reason: str
    raw_code: int | None = None


@frozen_dataclass
class CommandTimedOut(Event):
    """A command got no answer after every allowed retransmission."""

    command_id: str
    phy_id: str
    attempts: int


@frozen_dataclass
class CardPresented(Event):
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


@frozen_dataclass
class AlarmRaised(Event):
    """A device or port reported a fault or an alarm (``device.alarm``)."""

    phy_id: str
    alarm_type: str
    fault_code: int
    fault_msg: str
    socket_no: int | None = None
    port_no: int | None = None


@frozen_dataclass
class ParamsReported(Event):
    """Parameter values the device reported (a query's answer).

    Attributes:
        command_id: The query it answers, when known.
        params: Values by the field names of the protocol's messages, raw units.
    """

    phy_id: str
    params: Mapping[str, int]
    socket_no: int | None = None
    command_id: str | None = None


@frozen_dataclass
class FirmwareProgress(Event):
    """A :class:`SendFirmware` transfer advanced: the device accepted a packet.

    The transfer's end is its :class:`CommandAcknowledged` (or
    :class:`CommandRejected` / :class:`CommandTimedOut`).
    """

    command_id: str
    phy_id: str
    packets_done: int
    packets_total: int


@frozen_dataclass
class UpgradeRequested(Event):
    """The device asked for a firmware upgrade (AP3000 ``0x05``)."""

    phy_id: str
    device_type: int | None = None
    firmware_version: int | None = None


@frozen_dataclass
class UnknownMessage(Event):
    """A valid frame the connection has no rule for; kept for logging."""

    phy_id: str | None
    name: str
    data: bytes


# --- what a device-role connection receives besides commands ----------------------

@frozen_dataclass
class ServerAnswered(Event):
    """The server answered one of the device's frames (a heartbeat, a report …).

    Attributes:
        name: The answered message, by its message name.
        server_time: The time the answer carries (heartbeat and time replies), as
            Unix seconds, else None.
    """

    phy_id: str
    name: str
    server_time: float | None = None


@frozen_dataclass
class CardAnswered(Event):
    """The server's decision on a card the device presented.

    Attributes:
        request_id: The :class:`CardPresented` it answers.
        accepted: The card may charge (or, for a balance query, is valid).
        command_id: Acknowledge the charge with this id (BKV card orders), or None.
    """

    phy_id: str
    request_id: int
    accepted: bool
    balance_cents: int | None = None
    duration_s: int | None = None
    energy_wh: int | None = None
    command_id: str | None = None
    order_no: str | None = None


# --- what a closing connection leaves behind -------------------------------------


@frozen_dataclass
class CommandDropped(Event):
    """The connection ended before a command's outcome was known (the command
    was queued, in flight, or written in a write that failed). Send it again on
    the device's next connection, or give it up.

    .. versionadded:: 0.1.0
    """

    phy_id: str
    command_id: str


@frozen_dataclass
class AnswerWithheld(Event):
    """The connection ended while the answer to *event* was held (see
    :meth:`bkvcodec.ServerConnection.acknowledge`) or before an acknowledged answer was
    written. The device did not hear it, keeps the report and repeats it on its
    next connection, where it arrives again as a new event.

    Attributes:
        event: The report whose answer was not written.

    .. versionadded:: 0.1.0
    """

    phy_id: str
    event: Event
