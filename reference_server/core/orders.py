# Orders: the open orders, each with its bkvcodec.ChargingSession, from the
# charge request or card swipe that creates them to their settlement.
#
# Every input of a session (a device report, a command's outcome, a stop, a
# timer) goes through input(), which stores the order's row and its events with
# the change; an order that ends leaves the tracking, cancels the commands its
# device has not seen, settles its card hold and frees its port.
#
# Device reports are checked for plausibility first (money.py): an implausible
# value is capped and raises order.anomaly.
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from bkvcodec import (
    AlarmRaised,
    CardPresented,
    ChargeMode,
    ChargingProgress,
    ChargingSession,
    ChargingStarted,
    CommandAcknowledged,
    CommandRejected,
    CommandTimedOut,
    MeterReading,
    OrderCancelled,
    OrderCompleted,
    OrderEvent,
    OrderException,
    OrderFailed,
    OrderState,
    PortState,
    PortStatusReported,
    PowerTierSpec,
    ProgressReported,
    ProtocolFamily,
    SessionTimeouts,
    SettlementReported,
    StartCharging,
    StartConfirmed,
    StopCharging,
    Tariff,
    TariffKind,
)

from ..config import Config
from ..errors import PortBusy
from ..eventdata import order_event_data
from ..logs import Logger
from ..money import Anomaly, backwards, cap_reading, cap_tier_minutes
from ..requests import ChargeRequest
from ..storage._database import Database, format_order_no
from ..storage._records import (
    OPEN_ORDER_STATES,
    CardRecord,
    CardSettlement,
    CardStatus,
    CommandRecord,
    CommandStatus,
    NewEvent,
    NewOrder,
    OrderRecord,
    PortRecord,
    ProgressSample,
    dump_json,
)
from ..units import kwh, watts
from .changes import Changes, Op, device_event, new_id
from .commands import Commands, OpenCommand
from .devices import Device, Devices, PortKey
from .intents import AnswerCard, ReportCardDebit

__all__ = ["CardOrder", "ChargePlan", "NewOrderStaged", "Order", "Orders"]


@dataclass(eq=False)
class Order:
    record: OrderRecord
    session: ChargingSession
    device: Device
    start_command: str | None = None
    stop_command: str | None = None
    #: The link of the last meter report and that report as the device sent it.
    reported_on: int | None = None
    reported: MeterReading | None = None
    #: The anomaly reasons already raised for progress reports (once per order).
    anomalies: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargePlan:
    """A charge request turned into an order and its start command."""

    new_order: NewOrder
    tariff: Tariff
    command: StartCharging
    #: The order the new one replaces on its port (``busy_port_policy = replace``).
    replaced: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CardOrder:
    """An authorised card swipe: the order to create, with its hold on the card."""

    new_order: NewOrder
    tariff: Tariff
    card: CardRecord
    #: The id of the BKV card answer, which starts the charge itself.
    command_id: str
    #: The card.swiped event's data (changed if the creation is refused).
    swiped: dict[str, object]
    #: The order's own change: the order, its hold and card.swiped.
    creation: Changes


@dataclass(eq=False, kw_only=True)
class NewOrderStaged:
    """An order staged for insertion; opened() tracks it once stored."""

    device: Device
    session: ChargingSession
    start_command: str | None
    card_command: str | None
    #: Filled in by the insertion inside the commit.
    created: list[OrderRecord]


class Orders:
    """The open orders of the cached devices."""

    def __init__(self, commands: Commands, devices: Devices, config: Config,
                 log: Logger) -> None:
        self.commands = commands
        self.devices = devices
        self.config = config
        self.log = log
        self.orders: dict[str, Order] = {}
        self.by_port: dict[PortKey, str] = {}
        self.by_business: dict[tuple[int, int], str] = {}
        #: The lowest order number not yet given out (seeded from the database).
        self.free_order_no = format_order_no(0, 0)
        self.timeouts = SessionTimeouts(
            start_timeout=config.start_timeout, command_ttl=config.command_ttl,
            lost_order_after=min(config.offline_after_for("bkv"),
                                 config.offline_after_for("ap3000")))

    # --- tracking ---------------------------------------------------------------------------

    def get(self, order_no: str | None) -> Order | None:
        return self.orders.get(order_no or "")

    def on_port(self, key: PortKey) -> Order | None:
        """The open order that holds the port."""
        return self.orders.get(self.by_port.get(key, ""))

    def track(self, order: Order) -> None:
        record = order.record
        self.orders[record.order_no] = order
        self.by_port[(record.device_id, record.socket_no, record.port_no)] = record.order_no
        if record.business_no:
            self.by_business[(record.device_id, record.business_no)] = record.order_no

    def untrack(self, order: Order) -> None:
        record = order.record
        self.orders.pop(record.order_no, None)
        key = (record.device_id, record.socket_no, record.port_no)
        if self.by_port.get(key) == record.order_no:
            del self.by_port[key]
        if record.business_no:
            self.by_business.pop((record.device_id, record.business_no), None)

    def order_for(self, device: Device, socket_no: int, port_no: int, order_no: str | None,
                  business_no: int | None) -> Order | None:
        """The open order a report is about: by order number, business number, or port."""
        if order_no is not None:
            order = self.orders.get(order_no)
            return order if order is not None and order.device is device else None
        port_order = self.on_port((device.id, socket_no, port_no))
        if business_no:
            order = self.orders.get(self.by_business.get((device.id, business_no), ""))
            if order is not None:
                return order
            # A business number we never mapped belongs to the port's order only if
            # that order has none yet (the device assigned it in its start answer).
            if port_order is not None and port_order.record.business_no:
                return None
        return port_order

    def release(self, phy_id: str) -> None:
        """Forget a device another node now serves, with its orders and commands."""
        device = self.commands.release(phy_id)
        if device is not None:
            for order in [o for o in self.orders.values() if o.device is device]:
                self.untrack(order)

    def idle_port(self, device: Device, socket_no: int) -> int | None:
        """The lowest port of the socket that is idle and holds no order."""
        for port_no in self.devices.idle_ports(device, socket_no):
            if (device.id, socket_no, port_no) not in self.by_port:
                return port_no
        return None

    def next_order_no(self, now: float) -> str:
        """A new order number, given out here and not by the database:
        two requests in the same second must not both see the same "next free"
        number before either has inserted its order."""
        order_no = max(format_order_no(int(now), 0), self.free_order_no)
        second, sequence = int(order_no[3:13]), int(order_no[13:])
        self.free_order_no = (format_order_no(second, sequence + 1) if sequence < 999
                              else format_order_no(second + 1, 0))
        return order_no

    # --- creation ---------------------------------------------------------------------------

    def charge(self, device: Device, request: ChargeRequest, port_no: int,
               key_name: str | None, now: float, changes: Changes) -> ChargePlan:
        """A charge request: the port's order is replaced (or the request refused,
        :class:`~reference_server.errors.PortBusy`), and the new order planned."""
        replaced: str | None = None
        holder = self.on_port((device.id, request.socket_no, port_no))
        if holder is not None:
            if self.config.busy_port_policy == "reject":
                raise PortBusy(holder.record.order_no, port_no, holder.session.state.value)
            replaced = holder.record.order_no
            self.stop(holder, now, "replaced by a new order", changes, key_name=key_name)
        price = _default(request.price_per_kwh, self.config.default_price_per_kwh)
        tariff = Tariff(
            amount_cents=request.amount_cents, price_per_kwh_cents=price,
            service_fee_permille=_default(request.service_fee, self.config.default_service_fee),
            duration_s=request.duration_s,
            kind=TariffKind.for_order(request.charge_mode, price_per_kwh_cents=price,
                                      amount_cents=request.amount_cents),
            power_tiers=request.power_tiers)
        order_no = self.next_order_no(now)
        command = StartCharging(
            command_id=new_id("cmd"), phy_id=device.phy_id, port_no=port_no,
            order_no=order_no, mode=request.charge_mode, socket_no=request.socket_no,
            duration_s=request.duration_s, energy_wh=request.energy_wh,
            power_tiers=request.power_tiers, amount_cents=request.amount_cents)
        new_order = NewOrder(
            order_no=order_no, device_id=device.id, socket_no=request.socket_no,
            port_no=port_no, charge_mode=request.charge_mode, amount=request.amount_cents,
            price_per_kwh=tariff.price_per_kwh_cents, service_fee=tariff.service_fee_permille,
            requested_duration_sec=request.duration_s, requested_energy_wh=request.energy_wh,
            power_tiers_json=dump_json([dataclasses.asdict(t) for t in request.power_tiers])
            if request.power_tiers else None,
            card_no=request.card_no, created_at=int(now), key_name=key_name,
            tariff=tariff.kind)
        return ChargePlan(new_order=new_order, tariff=tariff, command=command,
                          replaced=replaced)

    def stage_order(self, device: Device, new_order: NewOrder, tariff: Tariff,
                    command: StartCharging | None, now: float, changes: Changes,
                    *, card_command: str | None = None,
                    also: Op | None = None) -> NewOrderStaged:
        """Insert the order, its start command and its first events with the
        change (with *also*, a write of the caller's, after the order's). A card
        order started by its card answer names it *card_command*."""
        session = ChargingSession(
            order_no=new_order.order_no, device_phy_id=device.phy_id,
            socket_no=new_order.socket_no, port_no=new_order.port_no,
            charge_mode=new_order.charge_mode, tariff=tariff,
            requested_duration_s=new_order.requested_duration_sec, timeouts=self.timeouts)
        first_events = session.start_requested(now)
        created: list[OrderRecord] = []
        changes.write(lambda db: created.append(db.insert_order(new_order)))
        if command is not None:
            self.commands.stage(device, command, new_order.order_no, now, changes,
                                key_name=new_order.key_name)
        if also is not None:
            changes.write(also)
        for order_event in first_events:
            changes.events.append(_order_event(device, new_order.amount, order_event,
                                               tariff=tariff.effective_kind))
        return NewOrderStaged(
            device=device, session=session, created=created, card_command=card_command,
            start_command=command.command_id if command is not None else card_command)

    def opened(self, staged: NewOrderStaged) -> Order:
        """The staged order is stored: track it (and its card answer, if that is
        the command that starts it)."""
        order = Order(record=staged.created[0], session=staged.session,
                      device=staged.device, start_command=staged.start_command)
        self.track(order)
        if staged.card_command is not None:
            self.commands.card_answer(staged.card_command, staged.device,
                                      order.record.order_no)
        return order

    # --- cards ------------------------------------------------------------------------------

    def card_swiped(self, device: Device, event: CardPresented, card: CardRecord | None,
                    now: float, changes: Changes) -> CardOrder | None:
        """A card swipe, with the card as stored: answered at once (a refusal or
        a balance query, None), or an order to create first."""
        refusal = None
        if card is None:
            refusal = "unknown_card"
        elif card.status is not CardStatus.ACTIVE:
            refusal = "card_blocked"
        elif card.available_cents <= 0:
            refusal = "insufficient_balance"
        port_no = event.port_no
        key = (device.id, event.socket_no, port_no or 0)
        if refusal is None and not event.balance_only and (
                port_no is None or key in self.by_port):
            refusal = "port_busy"
        available = card.available_cents if card is not None else 0
        swiped: dict[str, object] = {
            "card_no": event.card_no, "socket_no": event.socket_no, "port_no": port_no,
            "balance_cents": None if card is None else card.balance_cents,
            "available_cents": None if card is None else available,
            "authorised_cents": None, "balance_only": event.balance_only,
            "accepted": refusal is None, "reason": refusal, "order_no": None}
        if refusal is not None or event.balance_only or card is None or port_no is None:
            self.card_refused(device, event, now, changes, swiped, refusal, available)
            return None
        # The swipe is authorised for everything available, and that is held in
        # the order's own transaction; the settlement debits the bill from the
        # hold and releases the rest (ended()).
        authorised = available
        mode = card.charge_mode or ChargeMode.UNTIL_FULL
        tariff = Tariff(amount_cents=authorised,
                        price_per_kwh_cents=self.config.default_price_per_kwh,
                        service_fee_permille=self.config.default_service_fee,
                        duration_s=card.duration,
                        kind=TariffKind.for_order(
                            mode, price_per_kwh_cents=self.config.default_price_per_kwh,
                            amount_cents=card.balance_cents, card=True))
        order_no = self.next_order_no(now)
        new_order = NewOrder(order_no=order_no, device_id=device.id, socket_no=event.socket_no,
                             port_no=port_no, charge_mode=mode, amount=authorised,
                             price_per_kwh=tariff.price_per_kwh_cents,
                             service_fee=tariff.service_fee_permille,
                             requested_duration_sec=card.duration,
                             requested_energy_wh=card.energy_wh, card_no=card.card_no,
                             created_at=int(now), tariff=tariff.kind)
        swiped.update(order_no=order_no, authorised_cents=authorised)
        # The order and its hold are committed on their own, so that they exist
        # before the device is told to charge (the answer follows the hold).
        creation = Changes()
        card_no = card.card_no
        creation.write(lambda db: db.hold_card(card_no, order_no, authorised, int(now)))
        creation.events.append(device_event("card.swiped", device.phy_id, now, swiped))
        return CardOrder(new_order=new_order, tariff=tariff, card=card,
                         command_id=new_id("card"), swiped=swiped, creation=creation)

    def card_refused(self, device: Device, event: CardPresented, now: float,
                     changes: Changes, swiped: Mapping[str, object], refusal: str | None,
                     available: int) -> None:
        """Answer a swipe that starts no charge (a refusal or a balance query)."""
        changes.events.append(device_event("card.swiped", device.phy_id, now, swiped))
        changes.intents.append(AnswerCard(phy_id=device.phy_id, request_id=event.request_id,
                                          accept=refusal is None, balance_cents=available))

    def card_accepted(self, order: Order, event: CardPresented, plan: CardOrder,
                      now: float, changes: Changes) -> None:
        """The swipe's order and hold are stored: answer the card (and, for
        AP3000, queue the start command)."""
        device, card, new_order = order.device, plan.card, plan.new_order
        if device.protocol is ProtocolFamily.AP3000:
            # An AP3000 card reply only admits the card; the charge starts with the
            # usual start command, sent after the reply.
            start = StartCharging(command_id=new_id("cmd"), phy_id=device.phy_id,
                                  port_no=new_order.port_no, order_no=new_order.order_no,
                                  mode=new_order.charge_mode, socket_no=event.socket_no,
                                  duration_s=card.duration, energy_wh=card.energy_wh,
                                  amount_cents=new_order.amount)
            order.start_command = start.command_id
            changes.intents.append(AnswerCard(
                phy_id=device.phy_id, request_id=event.request_id, accept=True,
                order_no=new_order.order_no, balance_cents=new_order.amount or 0,
                duration_s=card.duration, energy_wh=card.energy_wh))
            self.commands.stage(device, start, new_order.order_no, now, changes)
            return
        changes.intents.append(AnswerCard(
            phy_id=device.phy_id, request_id=event.request_id, accept=True,
            command_id=plan.command_id, order_no=new_order.order_no,
            balance_cents=new_order.amount or 0, duration_s=card.duration,
            energy_wh=card.energy_wh))

    def card_answer_sent(self, order_no: str, now: float, changes: Changes) -> None:
        """The BKV card answer that starts the order was written."""
        order = self.orders.get(order_no)
        if order is not None:
            self.input(order, order.session.command_sent(now), now, changes)

    # --- inputs -----------------------------------------------------------------------------

    def stop(self, order: Order, now: float, reason: str, changes: Changes, *,
             key_name: str | None = None) -> None:
        """Ask the session to stop, and the device if the charge may have begun."""
        before = order.session.state
        if before.is_terminal:
            return
        events = order.session.stop_requested(now)
        order.record = dataclasses.replace(order.record, stop_reason=reason)
        after = order.session.state
        start = self.commands.get(order.start_command or "")
        start_reached_device = start is None or start.handed_to is not None or (
            before is not OrderState.PENDING)
        if after is OrderState.CANCELLED and start is not None and start.handed_to is None:
            self.commands.finish(start.id, CommandStatus.FAILED, now, changes,
                                 reason="cancelled")
        if before is not OrderState.STOPPING and start_reached_device:
            record = order.record
            stop = StopCharging(command_id=new_id("cmd"), phy_id=order.device.phy_id,
                                port_no=record.port_no, socket_no=record.socket_no,
                                order_no=record.order_no)
            order.stop_command = stop.command_id
            self.commands.stage(order.device, stop, record.order_no, now, changes,
                                key_name=key_name)
        self.input(order, events, now, changes)

    def input(self, order: Order, events: list[OrderEvent], now: float,
              changes: Changes, *, device_amount: int | None = None,
              refusal_code: int | None = None) -> None:
        """Record what a session input produced: the order row and its events."""
        session = order.session
        record = order.record
        if record.order_no not in changes.touched:
            changes.touched[record.order_no] = lambda at: self.restore(order, record, at)
        reading = session.last_reading
        bill = session.bill
        updated = dataclasses.replace(
            record, status=session.state, duration_sec=session.duration_s,
            total_kwh=session.energy_centikwh, peak_power=session.peak_power_dw,
            current_power=reading.power_dw if reading is not None else record.current_power,
            start_time=_int(session.start_time), end_time=_int(session.end_time),
            end_reason=session.end_reason,
            final_amount=bill.final_cents if bill is not None else None,
            refund_amount=bill.refund_cents if bill is not None else None,
            energy_fee=bill.energy_fee_cents if bill is not None else None,
            service_fee_amount=bill.service_fee_cents if bill is not None else None,
            device_amount=device_amount if device_amount is not None else record.device_amount,
            updated_at=int(now))
        for event in events:
            if isinstance(event, OrderCompleted):
                updated = dataclasses.replace(updated, end_reason_raw=event.end_reason_raw)
            elif isinstance(event, OrderFailed):
                updated = dataclasses.replace(
                    updated, end_detail=event.detail,
                    end_reason_raw=refusal_code if event.end_reason is None
                    else updated.end_reason_raw)
            changes.events.append(_order_event(order.device, record.amount, event,
                                               tariff=record.tariff))
            self._log_order_event(order, event)
        if updated == record and not events:
            return
        if session.state is OrderState.CHARGING and session.state is not record.status:
            # Settling a port's previous order may leave this one as the port's holder.
            self.by_port[(record.device_id, record.socket_no, record.port_no)] = record.order_no
        order.record = updated
        changes.write(lambda db: db.save_order(updated))
        if session.state.is_terminal:
            self._ended(order, events, now, changes)

    def _ended(self, order: Order, events: list[OrderEvent], now: float,
               changes: Changes) -> None:
        self.untrack(order)
        for command_id in (order.start_command, order.stop_command):
            open_command = self.commands.get(command_id or "")
            # One the device has not seen is cancelled; one it has is left to its
            # answer (a stop's acknowledgement may follow the settlement).
            if open_command is not None and open_command.handed_to is None:
                self.commands.finish(open_command.id, CommandStatus.FAILED, now, changes,
                                     reason=f"order {order.session.state.value}")
        record = order.record
        if record.card_no:
            bills = [e.bill.final_cents for e in events
                     if isinstance(e, OrderCompleted | OrderException)]
            self._settle_card(order, record.card_no, bills[0] if bills else 0, now, changes)
        key = (record.device_id, record.socket_no, record.port_no)
        ports = self.devices.ports
        port = ports.get(key)
        if port is not None and port.order_no == record.order_no:
            cleared = dataclasses.replace(port, order_no=None, updated_at=int(now))
            ports[key] = cleared
            held = port
            changes.undo.append(lambda: ports.__setitem__(key, held))
            changes.write(lambda db: db.put_port(cleared))

    def _settle_card(self, order: Order, card_no: str, final: int, now: float,
                     changes: Changes) -> None:
        """Debit the bill from the order's hold on its card and release the rest (an
        order that never charged releases it all), with the order's own change. A
        bill the card could not pay raises ``card.debit_failed``, in the same
        transaction: never silence."""
        order_no, phy_id = order.record.order_no, order.device.phy_id
        deliver = self.config.webhook_url is not None
        settled: list[CardSettlement | None] = []

        def settle(db: Database) -> None:
            result = db.settle_card_order(card_no, order_no, final, int(now))
            settled.append(result)
            if result is None or result.shortfall_cents:
                db.append_event(device_event("card.debit_failed", phy_id, now, {
                    "card_no": card_no, "order_no": order_no, "billed_cents": final,
                    "debited_cents": 0 if result is None else result.debited_cents,
                    "shortfall_cents": final if result is None else result.shortfall_cents,
                    "reason": "unknown_card" if result is None else "insufficient_funds"}),
                    deliver=deliver)

        changes.write(settle)
        changes.intents.append(ReportCardDebit(card_no, order_no, final, settled))

    def _log_order_event(self, order: Order, event: OrderEvent) -> None:
        if isinstance(event, ChargingStarted):
            self.log.info("order confirmed", order_no=event.order_no,
                          device=order.device.phy_id, port_no=event.port_no)
        elif isinstance(event, ChargingProgress):
            self.log.info("charging progress updated", order_no=event.order_no,
                          duration=event.reading.duration_s,
                          kwh=kwh(event.reading.energy_centikwh),
                          power_w=watts(event.reading.power_dw))
        elif isinstance(event, OrderCompleted | OrderException | OrderFailed | OrderCancelled):
            self.log.info("order ended", order_no=event.order_no,
                          status=order.session.state.value,
                          end_reason=None if order.session.end_reason is None
                          else order.session.end_reason.name.lower())

    # --- device reports ---------------------------------------------------------------------

    def port_status(self, device: Device, event: PortStatusReported, now: float,
                    changes: Changes) -> None:
        if device.protocol is ProtocolFamily.AP3000 and event.port_no > (device.port_count or 0):
            device.port_count = event.port_no
        key = (device.id, event.socket_no, event.port_no)
        order = self.on_port(key)
        old = self.devices.ports.get(key)
        port = PortRecord(
            device_id=device.id, socket_no=event.socket_no, port_no=event.port_no,
            status=event.state, power_w=round((event.power_dw or 0) / 10),  # whole watts
            voltage=event.voltage_dv,
            fault_code=event.fault_code,
            order_no=order.record.order_no if order is not None else event.order_no,
            business_no=event.business_no, updated_at=int(now))
        self.devices.put_port(device, old, port, event.fault_msg, now, changes)
        if (order is not None and event.state is not PortState.CHARGING
                and event.state is not PortState.FAULT
                and order.session.state in (OrderState.CHARGING, OrderState.STOPPING)):
            self.input(order, order.session.port_idle(now), now, changes)

    def _port_follows(self, order: Order, reading: MeterReading, now: float,
                      changes: Changes) -> None:
        """A progress report: its port charges for the order at the reported power
        (AP3000 sends its power as 0x06 only, not as a port status)."""
        record = order.record
        key = (record.device_id, record.socket_no, record.port_no)
        old = self.devices.ports.get(key)
        if old is not None and old.status is PortState.FAULT:
            return  # a fault stays shown until the device reports the port otherwise
        port = PortRecord(
            device_id=record.device_id, socket_no=record.socket_no, port_no=record.port_no,
            status=PortState.CHARGING, power_w=round(reading.power_dw / 10),  # whole watts
            voltage=reading.voltage_dv if reading.voltage_dv is not None
            else None if old is None else old.voltage,
            fault_code=0, order_no=record.order_no,
            business_no=record.business_no if old is None or record.business_no
            else old.business_no,
            updated_at=int(now))
        self.devices.put_port(order.device, old, port, "", now, changes)

    def report(self, device: Device,
               event: StartConfirmed | ProgressReported | SettlementReported,
               now: float, changes: Changes) -> None:
        """A report about a charge: its start, its progress, its settlement."""
        order = self.order_for(device, event.socket_no, event.port_no, event.order_no,
                               event.business_no)
        if order is None:
            if isinstance(event, SettlementReported):
                # Often an order the server settled first (a fault); the library
                # has acknowledged it, and nothing changes.
                self.log.info("settlement for no open order", device=device.phy_id,
                              socket_no=event.socket_no, port_no=event.port_no,
                              order_no=event.order_no, business_no=event.business_no)
            return
        session = order.session
        if isinstance(event, StartConfirmed):
            self.input(order, session.device_confirmed(now), now, changes)
            return
        reading = self._plausible(order, event, now, changes)
        if isinstance(event, ProgressReported):
            if not session.state.is_terminal:
                sample = ProgressSample(
                    order_no=order.record.order_no, at=int(now), duration_sec=reading.duration_s,
                    total_kwh=reading.energy_centikwh, power=reading.power_dw,
                    voltage=reading.voltage_dv, current=reading.current_ma)
                changes.write(lambda db: db.add_progress(sample))
                self._port_follows(order, reading, now, changes)
            self.input(order, session.progress(now, reading), now, changes)
            return
        settling = not session.state.is_terminal
        tier_minutes = event.tier_minutes
        if tier_minutes is not None and settling:
            tier_minutes, capped = cap_tier_minutes(tier_minutes, reading.duration_s)
            for anomaly in capped:
                self._anomaly(order, anomaly, "settlement", now, changes)
        self.input(order, session.settlement(
            now, reading, end_reason=event.end_reason,
            end_reason_raw=event.end_reason_raw, tier_minutes=tier_minutes), now, changes,
            device_amount=event.amount_cents)
        bill = session.bill
        if (settling and bill is not None and bill.tariff is TariffKind.TIERS
                and event.amount_cents is not None
                and abs(event.amount_cents - bill.final_cents) > max(
                    1, len(session.tariff.power_tiers))):
            # The server's figure bills: the order's tier prices applied to the
            # device's minutes; the device's own sum only cross-checks it.
            self._anomaly(order, Anomaly(
                reason="device_amount_mismatch", field="final_amount_cents",
                reported=event.amount_cents, accepted=bill.final_cents),
                "settlement", now, changes)

    def _plausible(self, order: Order, event: ProgressReported | SettlementReported,
                   now: float, changes: Changes) -> MeterReading:
        """The report's reading, capped where it cannot be true."""
        report = "settlement" if isinstance(event, SettlementReported) else "progress"
        if order.session.state.is_terminal:
            return event.reading
        reading, anomalies = cap_reading(event.reading, self.config.rated_power_w)
        link_id = order.device.link_id
        if order.reported is not None and order.reported_on == link_id:
            anomalies += backwards(order.reported, event.reading)
        order.reported_on, order.reported = link_id, event.reading
        for anomaly in anomalies:
            self._anomaly(order, anomaly, report, now, changes)
        return reading

    def _anomaly(self, order: Order, anomaly: Anomaly, report: str, now: float,
                 changes: Changes) -> None:
        """Raise ``order.anomaly``: for a settlement always, for progress once per
        reason and order."""
        key = f"{anomaly.reason}:{anomaly.field}"
        if report == "progress":
            if key in order.anomalies:
                return
            order.anomalies.add(key)
            changes.undo.append(lambda: order.anomalies.discard(key))
        record = order.record
        self.log.warning("implausible device report", order_no=record.order_no,
                         device=order.device.phy_id, reason=anomaly.reason,
                         field=anomaly.field, reported=anomaly.reported,
                         accepted=anomaly.accepted)
        changes.events.append(NewEvent(
            event_id=f"order.anomaly-{record.order_no}-{new_id('e')}",
            event_type="order.anomaly", created_at=int(now),
            device_phy_id=order.device.phy_id, order_no=record.order_no,
            data={"order_no": record.order_no, "device_phy_id": order.device.phy_id,
                  "socket_no": record.socket_no, "port_no": record.port_no,
                  "tariff": record.tariff.value, "report": report,
                  "reason": anomaly.reason, "field": anomaly.field,
                  "reported": anomaly.reported, "accepted": anomaly.accepted}))

    def alarm(self, device: Device, event: AlarmRaised, now: float,
              changes: Changes) -> None:
        order = None
        if event.port_no is not None:
            order = self.on_port((device.id, event.socket_no or 1, event.port_no))
        if order is not None:
            # The session records the alarm and settles the order with reason fault.
            self.input(order, order.session.port_fault(now, event.fault_code,
                                                       event.fault_msg), now, changes)
            return
        changes.events.append(device_event("device.alarm", device.phy_id, now, {
            "device_phy_id": device.phy_id, "alarm_type": event.alarm_type,
            "socket_no": event.socket_no, "port_no": event.port_no,
            "fault_code": event.fault_code, "fault_msg": event.fault_msg, "order_no": None}))

    # --- commands' outcomes -----------------------------------------------------------------

    def command_outcome(self, event: CommandAcknowledged | CommandRejected | CommandTimedOut,
                        now: float, changes: Changes) -> None:
        """A command's outcome, and what it means for the command's order."""
        open_command = self.commands.outcome(event, now, changes)
        if open_command is None:
            return
        order = self.get(open_command.order_no)
        if order is None:
            return
        kind = open_command.kind
        if isinstance(event, CommandAcknowledged):
            if kind in ("start_charging", "card_answer"):
                if event.business_no:
                    order.record = dataclasses.replace(order.record,
                                                       business_no=event.business_no)
                    self.by_business[(order.device.id, event.business_no)] = (
                        order.record.order_no)
                self.input(order, order.session.command_acked(now), now, changes)
            return
        if kind in ("start_charging", "card_answer") and (
                order.session.state is OrderState.PENDING):
            if isinstance(event, CommandTimedOut):
                # Unanswered is not refused: the order waits for start_timeout, which
                # ends it as no_confirmation unless a late confirmation or progress
                # report arrives first.
                return
            self.input(order, order.session.command_rejected(now, event.reason),
                       now, changes, refusal_code=event.raw_code)
        elif kind == "stop_charging" and order.session.state is OrderState.STOPPING:
            self.input(order, order.session.stop_failed(now), now, changes)

    def handed_over(self, open_command: OpenCommand, link_id: int, now: float,
                    changes: Changes) -> None:
        """A connection took the command: a start command's order learns it was sent."""
        self.commands.handed_over(open_command, link_id, now, changes)
        order = self.get(open_command.order_no)
        if order is not None and open_command.kind == "start_charging":
            self.input(order, order.session.command_sent(now), now, changes)

    # --- timers -----------------------------------------------------------------------------

    def deadlines_due(self, now: float, changes: Changes) -> None:
        """The sessions whose clocks ran out (start, stop, lost order …)."""
        for order in list(self.orders.values()):
            deadline = order.session.next_deadline()
            if deadline is not None and deadline <= now:
                self.input(order, order.session.handle_timeout(now), now, changes)

    def commands_expired(self, records: list[CommandRecord], now: float,
                         changes: Changes) -> None:
        """The database expired these commands: a pending order's start among
        them fails the order."""
        for record in records:
            open_command = self.commands.expired(record)
            waiting = self.get(record.order_no)
            if (open_command is not None and waiting is not None
                    and record.kind == "start_charging"
                    and waiting.session.state is OrderState.PENDING):
                self.input(waiting, waiting.session.command_expired(now), now, changes)

    # --- resuming ---------------------------------------------------------------------------

    def resume(self, record: OrderRecord, device: Device, commands: list[CommandRecord],
               events_emitted: int, now: float) -> Order:
        """Track a stored open order again, its session resumed (a restart, or its
        device claimed from another node); *commands*: the device's unfinished ones."""
        start: CommandRecord | None = None
        stop: CommandRecord | None = None
        for command in self.commands.resume(device, commands):
            if command.order_no == record.order_no:
                if command.kind == "start_charging":
                    start = command
                elif command.kind == "stop_charging":
                    stop = command
        session = self._stored_session(
            record, device, now, events_emitted=events_emitted,
            command_sent_at=None if start is None or start.sent_at is None
            else float(start.sent_at))
        order = Order(record=record, session=session, device=device,
                      start_command=None if start is None else start.id,
                      stop_command=None if stop is None else stop.id)
        self.track(order)
        return order

    def restore(self, order: Order, stored: OrderRecord, now: float) -> None:
        """A commit failed: the order is as its row *stored* has it."""
        self.untrack(order)
        order.record = stored
        if stored.status.is_terminal:
            return
        start = self.commands.get(order.start_command or "")
        order.session = self._stored_session(
            stored, order.device, now, events_emitted=order.session.events_emitted,
            command_sent_at=None if start is None or start.handed_to is None else now)
        self.track(order)

    def _stored_session(self, record: OrderRecord, device: Device, now: float, *,
                        events_emitted: int, command_sent_at: float | None
                        ) -> ChargingSession:
        """The session of an open order as its row *record* stores it."""
        return ChargingSession.resume(
            order_no=record.order_no, device_phy_id=device.phy_id, socket_no=record.socket_no,
            port_no=record.port_no, charge_mode=record.charge_mode,
            tariff=self._stored_tariff(record),
            requested_duration_s=record.requested_duration_sec, timeouts=self.timeouts,
            state=record.status, created_at=float(record.created_at),
            command_sent_at=command_sent_at,
            start_time=None if record.start_time is None else float(record.start_time),
            duration_s=record.duration_sec, energy_centikwh=record.total_kwh,
            peak_power_dw=record.peak_power, events_emitted=events_emitted, now=now)

    def _stored_tariff(self, record: OrderRecord) -> Tariff:
        tiers: tuple[PowerTierSpec, ...] = ()
        if record.power_tiers_json:
            tiers = _tier_specs(record.power_tiers_json)
        kind = record.tariff
        if kind is TariffKind.TIERS and not tiers:
            self.log.error("tier order without tiers; billed flat", order_no=record.order_no)
            kind = TariffKind.FLAT
        return Tariff(amount_cents=record.amount, price_per_kwh_cents=record.price_per_kwh,
                      service_fee_permille=record.service_fee,
                      duration_s=record.requested_duration_sec, kind=kind, power_tiers=tiers)


def _order_event(device: Device, amount_cents: int | None, event: OrderEvent, *,
                 tariff: TariffKind) -> NewEvent:
    event_type, data = order_event_data(event, device_phy_id=device.phy_id,
                                        amount_cents=amount_cents, tariff=tariff.value)
    return NewEvent(event_id=event.event_id, event_type=event_type, data=data,
                    created_at=int(event.at), device_phy_id=device.phy_id,
                    order_no=event.order_no)


def _tier_specs(text: str) -> tuple[PowerTierSpec, ...]:
    """The ``power_tiers_json`` of an order (written from the request's tiers)."""
    value = json.loads(text)
    assert isinstance(value, list)
    return tuple(PowerTierSpec(**item) for item in value)


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


# Open states must match the storage's notion of an order holding its port.
assert {OrderState.PENDING, OrderState.CHARGING, OrderState.STOPPING} == OPEN_ORDER_STATES
