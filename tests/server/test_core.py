"""The service's core without trio: device events and operations in, changes and
intents out.

The core's writes are functions of a synchronous Database; these tests apply them
to a real one in a temporary folder, as the shell's commit does, so that what the
core stages is checked against the schema too.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from bkvcodec import (
    ChargeMode,
    CommandAcknowledged,
    DeviceHeartbeat,
    EndReason,
    MeterReading,
    OrderState,
    ProtocolFamily,
    SettlementReported,
    StartCharging,
    StartConfirmed,
)
from reference_server.config import Config
from reference_server.core.changes import Changes
from reference_server.core.commands import Commands
from reference_server.core.devices import Device, Devices
from reference_server.core.intents import CloseLink, Dispatch, Send
from reference_server.core.orders import Order, Orders
from reference_server.logs import Logger
from reference_server.metrics import Metrics
from reference_server.requests import ChargeRequest
from reference_server.storage import CommandStatus, Database

PHY = "82210225000520"
NOW = 1_750_000_000.0


class Core:
    """The three parts wired as the service wires them, with a database to commit to."""

    def __init__(self, db: Database) -> None:
        config = Config()
        self.db = db
        self.devices = Devices(config, tick=0.25)
        self.commands = Commands(self.devices, config, Logger("error", io.StringIO()),
                                 Metrics())
        self.orders = Orders(self.commands, self.devices, config,
                             Logger("error", io.StringIO()))

    def commit(self, changes: Changes) -> Changes:
        """Apply *changes* in one transaction (the shell's commit, without trio);
        returns what was taken, for the test to look at."""
        taken = changes.take()
        with self.db.transaction():
            for op in taken.ops:
                op(self.db)
            for event in taken.events:
                self.db.append_event(event, deliver=False)
        return taken

    def device(self, *, online: bool) -> Device:
        record, _ = self.db.upsert_device(PHY, ProtocolFamily.BKV, int(NOW))
        device = self.devices.cache(record)
        device.online = online
        device.link_id = 1
        return device

    def start(self, device: Device) -> tuple[Order, StartCharging, Changes]:
        """A charge request on port 1: the order and its start command, stored."""
        changes = Changes()
        request = ChargeRequest(phy_id=PHY, port_no=1, charge_mode=ChargeMode.TIME,
                                duration_s=3600, amount_cents=500)
        plan = self.orders.charge(device, request, 1, None, NOW, changes)
        staged = self.orders.stage_order(device, plan.new_order, plan.tariff, plan.command,
                                         NOW, changes)
        taken = self.commit(changes)
        return self.orders.opened(staged), plan.command, taken


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    db = Database.open(tmp_path / "core.db")
    try:
        yield Core(db)
    finally:
        db.close()


def event_types(changes: Changes) -> list[str]:
    return [event.event_type for event in changes.events]


def heartbeat() -> DeviceHeartbeat:
    return DeviceHeartbeat(phy_id=PHY, protocol=ProtocolFamily.BKV, rssi=20, voltage_dv=2200)


def test_a_heartbeat_of_a_known_online_device_writes_nothing(core: Core) -> None:
    device = core.device(online=True)
    device.rssi, device.heartbeats = 20, 1  # stored before; the next heartbeat is not sampled
    changes = Changes()

    core.devices.seen(device, "10.0.0.1:5000", NOW, changes)
    core.devices.heartbeat(device, heartbeat(), NOW, changes, sampling=10)

    assert changes.empty()
    assert [PHY] == list(core.devices.touched)  # its last_seen rides the next flush


def test_every_tenth_heartbeat_is_an_event_without_a_write(core: Core) -> None:
    device = core.device(online=True)
    device.rssi = 20
    changes = Changes()

    core.devices.heartbeat(device, heartbeat(), NOW, changes, sampling=10)

    assert ["device.heartbeat"] == event_types(changes)
    assert not changes.ops


def test_a_first_frame_brings_the_device_online_and_dispatches_its_queue(core: Core) -> None:
    device = core.device(online=False)
    changes = Changes()

    core.devices.seen(device, "10.0.0.1:5000", NOW, changes)

    assert device.online
    assert 1 == len(changes.ops)
    assert ["device.online"] == event_types(changes)
    assert [Dispatch(PHY)] == changes.intents
    core.commit(changes)
    stored = core.db.get_device(PHY)
    assert stored is not None and stored.online


def test_a_failed_commit_undoes_the_online_transition(core: Core) -> None:
    device = core.device(online=False)
    changes = Changes()
    core.devices.seen(device, "10.0.0.1:5000", NOW, changes)

    for action in reversed(changes.take().undo):  # what the shell does on a failure
        action()

    assert not device.online


def test_staging_a_start_command_writes_it_and_sends_it_after_the_commit(core: Core) -> None:
    device = core.device(online=True)

    order, command, taken = core.start(device)

    assert 2 == len(taken.ops)  # the order, its start command
    assert [Send(command.command_id, command)] == taken.intents
    assert "order.created" in event_types(taken)
    assert core.orders.get(order.record.order_no) is order
    assert core.commands.get(command.command_id) is not None
    stored = core.db.get_command(command.command_id)
    assert stored is not None and stored.order_no == order.record.order_no


def test_an_acknowledged_start_is_finished_and_its_order_waits_for_the_device(
        core: Core) -> None:
    device = core.device(online=True)
    order, command, _ = core.start(device)
    open_command = core.commands.get(command.command_id)
    assert open_command is not None
    sent = Changes()
    core.orders.handed_over(open_command, 1, NOW, sent)
    core.commit(sent)
    changes = Changes()

    core.orders.command_outcome(
        CommandAcknowledged(command_id=command.command_id, phy_id=PHY, business_no=7,
                            port_no=1), NOW + 1, changes)

    # The acknowledgement says the device took the command; the charge has begun
    # only when the device confirms it.
    assert order.session.state is OrderState.PENDING
    assert core.commands.get(command.command_id) is None
    assert core.orders.order_for(device, 1, 2, None, 7) is order  # by its business number
    core.commit(changes)
    stored = core.db.get_command(command.command_id)
    assert stored is not None and stored.status is CommandStatus.ACKED

    confirmed = Changes()
    core.orders.report(device, StartConfirmed(phy_id=PHY, socket_no=1, port_no=1,
                                              business_no=7), NOW + 2, confirmed)

    assert order.session.state is OrderState.CHARGING
    assert ["charging.started"] == event_types(confirmed)


def confirm(core: Core, device: Device, order: Order) -> None:
    changes = Changes()
    core.orders.report(device, StartConfirmed(phy_id=PHY, socket_no=1, port_no=1,
                                              order_no=order.record.order_no),
                       NOW + 1, changes)
    core.commit(changes)


def test_a_failed_commit_resumes_the_order_from_its_stored_row(core: Core) -> None:
    device = core.device(online=True)
    order, _, _ = core.start(device)
    changes = Changes()
    core.orders.report(device, StartConfirmed(phy_id=PHY, socket_no=1, port_no=1,
                                              order_no=order.record.order_no),
                       NOW + 1, changes)
    assert order.session.state is OrderState.CHARGING

    taken = changes.take()  # the commit failed: the shell rolls back
    for action in reversed(taken.undo):
        action()
    for restore in taken.touched.values():
        restore(NOW + 1)

    assert order.session.state is OrderState.PENDING
    assert order.record.status is OrderState.PENDING


def test_a_settlement_is_recorded_once(core: Core) -> None:
    device = core.device(online=True)
    order, _, _ = core.start(device)
    confirm(core, device, order)
    settlement = SettlementReported(
        phy_id=PHY, socket_no=1, port_no=1, order_no=order.record.order_no,
        reading=MeterReading(duration_s=600, energy_centikwh=50, power_dw=0),
        end_reason=EndReason.NORMAL)
    changes = Changes()

    core.orders.report(device, settlement, NOW + 600, changes)

    assert ["charging.ended", "order.completed"] == event_types(changes)
    assert core.orders.get(order.record.order_no) is None
    core.commit(changes)
    stored = core.db.get_order(order.record.order_no)
    assert stored is not None and stored.status is OrderState.COMPLETED

    repeated = Changes()
    core.orders.report(device, settlement, NOW + 601, repeated)

    assert repeated.empty()


def test_a_silent_device_goes_offline_and_its_connection_is_closed(core: Core) -> None:
    device = core.device(online=True)
    device.last_seen = NOW
    changes = Changes()

    core.commands.sweep_silent(NOW + 10, changes)  # not silent yet
    assert changes.empty()
    core.commands.sweep_silent(NOW + 10_000, changes)

    assert not device.online and device.link_id is None
    assert ["device.offline"] == event_types(changes)
    assert [CloseLink(PHY, 1, "silent")] == changes.intents
