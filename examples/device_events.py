"""What the example servers do with the events of a connection: shared by
``asyncio_server.py``, ``trio_server.py`` and ``blocking_server.py``.

A real server stores each report in its database where these examples print it;
either way the order is the one :func:`handle_read` follows: store the events of a
read, **then** acknowledge the answers the connection held (settlements), so that a
device hears "settled" only once the settlement is stored. If storing fails, do not
acknowledge: the device repeats the report and the next attempt stores it.

Each device is asked for its status once per connection, when it first shows up. Not
on every registration: an AP3000 unit answers a status query with a new
registration, and querying on each one would loop for as long as the unit is
connected.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import assert_never

from bkvcodec import (
    AlarmRaised,
    AnswerWithheld,
    CardPresented,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandTimedOut,
    ConnectionEvent,
    DeviceHeartbeat,
    DeviceRegistered,
    FirmwareProgress,
    FrameRejected,
    ModemIdentified,
    ParamsReported,
    PortStatusReported,
    ProgressReported,
    QueryStatus,
    ServerConnection,
    SettlementReported,
    StartConfirmed,
    UnidentifiedStream,
    UnknownMessage,
    UpgradeRequested,
)

#: Stores one event; a real server writes it to its database.
EventHandler = Callable[[ConnectionEvent], None]

_command_ids = itertools.count(1)


def describe(event: ConnectionEvent) -> str:
    """One line about *event*. The ``match`` names every kind a connection reports,
    and ``assert_never`` makes a kind a new release adds a type error here."""
    match event:
        case DeviceRegistered() | DeviceHeartbeat():
            return f"{event.phy_id}: {type(event).__name__} ({event.protocol.value})"
        case PortStatusReported():
            return f"{event.phy_id} port {event.port_no}: {event.state.name.lower()}"
        case StartConfirmed() | ProgressReported():
            return f"{event.phy_id} port {event.port_no}: {type(event).__name__}"
        case SettlementReported():
            return (f"{event.phy_id} port {event.port_no}: settled, "
                    f"{event.reading.energy_centikwh / 100:.2f} kWh, {event.end_reason.name}")
        case CommandAcknowledged() | CommandRejected() | CommandTimedOut() | CommandDropped():
            return f"{event.phy_id}: command {event.command_id} {type(event).__name__}"
        case CardPresented():
            return f"{event.phy_id}: card {event.card_no} presented"
        case AlarmRaised():
            return f"{event.phy_id}: alarm {event.alarm_type} ({event.fault_msg})"
        case ParamsReported():
            return f"{event.phy_id}: parameters {dict(event.params)}"
        case FirmwareProgress():
            return f"{event.phy_id}: firmware {event.packets_done}/{event.packets_total}"
        case UpgradeRequested():
            return f"{event.phy_id}: asks for a firmware upgrade"
        case ModemIdentified():
            return f"modem with SIM {event.iccid}"
        case AnswerWithheld():
            return f"{event.phy_id}: not answered, repeats {type(event.event).__name__}"
        case UnknownMessage():
            return f"{event.phy_id}: {event.name} (no rule)"
        case FrameRejected():
            return f"rejected frame: {event.error.code}"
        case UnidentifiedStream():
            return f"no known protocol: {event.head.hex()}"
        case _:
            assert_never(event)


def print_event(event: ConnectionEvent) -> None:
    print(describe(event), flush=True)


def handle_read(conn: ServerConnection, events: list[ConnectionEvent], now: float,
                on_event: EventHandler, queried: set[str]) -> None:
    """Store the events of one read, acknowledge what the connection held, and ask
    each device that shows up for the first time on this connection for its status.
    Everything to write is then in ``conn.data_to_send()``."""
    for event in events:
        on_event(event)                # store first ...
    for report in conn.held():
        conn.acknowledge(report)       # ... then let the device forget the report
    for event in events:
        if (isinstance(event, DeviceRegistered | DeviceHeartbeat)
                and event.phy_id not in queried):
            queried.add(event.phy_id)
            conn.send(QueryStatus(command_id=f"status-{next(_command_ids)}",
                                  phy_id=event.phy_id), now)
