# What simulated devices let a test runner observe: the ground truth of every
# charge (the model's own energy and duration, to compare with what the server
# billed), a journal of everything a device sent and received stamped with
# simulated time, and counters. Plain frozen records; the device and its ports
# fill them in.
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, TypeAlias

from bkvcodec import ChargeMode, DeviceInput, DeviceOutput, EndReason, MeterReading

__all__ = [
    "ChargeRecord", "DeviceStatistics", "EndCause", "FleetStatistics", "Garbage",
    "JournalEntry", "JournalItem", "LinkChange",
]


class EndCause(enum.Enum):
    """Why a simulated charge ended, as the device saw it.

    The contract's end reason follows from it and the protocol
    (:attr:`ChargeRecord.end_reason`).
    """

    #: The ordered duration was reached.
    TIME_LIMIT = "time_limit"
    #: The ordered energy was reached.
    ENERGY_LIMIT = "energy_limit"
    #: The plug was pulled.
    UNPLUGGED = "unplugged"
    #: The charger's power stayed below the full threshold: battery full.
    FULL = "full"
    #: The port drew (almost) nothing: no battery, a full one, or never plugged.
    NO_LOAD = "no_load"
    #: The server sent a stop.
    REMOTE_STOP = "remote_stop"
    #: A port fault opened the relay.
    FAULT = "fault"
    #: The device's maximum charging time.
    MAX_TIME = "max_time"
    #: Stopped at the device (button, card).
    USER_STOP = "user_stop"
    #: The device rebooted without persistent orders and forgot it; no settlement.
    LOST = "lost"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeRecord:
    """One order on a simulated port: the model's truth and what was reported.

    Times are simulated seconds (:meth:`SimClock.now`).

    Attributes:
        order_no: The order number the server sent (AP3000), or None (BKV
            commands carry none; the server maps ``business_no``).
        business_no: The BKV session number the device assigned, else None.
        command_id: The start command's id on the device's connection.
        mode: How the order is limited.
        limit_s: The ordered duration, if any.
        limit_wh: The ordered energy, if any.
        accepted_at: When the device accepted the start.
        started_at: When the relay closed (plug detected), or None if it never did.
        ended_at: When it ended, None while it runs.
        duration_s: Seconds the device's charge timer ran (exact, not rounded).
        energy_wh: Energy drawn at the socket according to the model (exact).
        peak_power_w: Highest power seen.
        end_cause: Why it ended (None while it runs).
        end_reason: The end reason the server should record, derived
            as the protocol carries it; None while it runs.
        reported: The meters the settlement carried (rounded as on the wire), or
            None if the device sent none.
    """

    order_no: str | None
    business_no: int | None
    command_id: str | None
    mode: ChargeMode
    limit_s: float | None
    limit_wh: float | None
    accepted_at: float
    started_at: float | None
    ended_at: float | None
    duration_s: float
    energy_wh: float
    peak_power_w: float
    end_cause: EndCause | None = None
    end_reason: EndReason | None = None
    reported: MeterReading | None = None

    @property
    def energy_kwh(self) -> float:
        """:attr:`energy_wh` in kWh (the unit of the API's ``total_kwh``)."""
        return self.energy_wh / 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Garbage:
    """Junk bytes the device wrote on purpose (a noisy link)."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkChange:
    """The device's TCP link came up or went down.

    Attributes:
        up: True when a connection opened.
        detail: The local address (when up) or the reason (when down).
    """

    up: bool
    detail: str


JournalItem: TypeAlias = DeviceOutput | DeviceInput | Garbage | LinkChange
"""What a journal entry holds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    """One thing a device sent, received or went through.

    Attributes:
        seq: Position in the device's journal, counting from 1, never reused.
        at: Simulated time.
        direction: ``sent``, ``received`` or ``link``.
        item: The neutral event or command (bkvcodec), junk, or a link change.
    """

    seq: int
    at: float
    direction: Literal["sent", "received", "link"]
    item: JournalItem


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStatistics:
    """A device's counters (see :meth:`SimDevice.statistics`)."""

    connected: bool
    connections: int
    connect_failures: int
    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int
    charging_ports: int
    errors: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetStatistics:
    """A fleet's counters, summed over its devices (see :meth:`Fleet.statistics`)."""

    devices: int
    connected: int
    ever_connected: int
    charging_ports: int
    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int
    reconnects: int
    connect_failures: int
    errors: int
