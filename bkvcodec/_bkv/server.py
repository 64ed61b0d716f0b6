# What a server does with BKV-family frames (bkv.md §10): which uplinks it must
# answer and how, how frames map to protocol-neutral events, and how neutral
# commands become GN and BKV frames. Units are converted to the contract's here
# (minutes → seconds, Wh → 0.01 kWh) and nowhere else (api.md §10.1).
#
# Decisions where the reference is silent are noted where they are made:
# - every status report, charge end, exception report and heartbeat is answered
#   at once (bkv.md §10.1-§10.6), charge ends with the 0x0C reply a real gateway
#   accepted (§4.5);
# - a GN 0x02/0x0C end report has no reason code; the reason is derived as the
#   contract says (api.md §10.2): remote_stop if this connection sent a stop for
#   that port, fault if fault bits are set, else normal;
# - "until full" is sent as a by-time order at the 900-minute maximum: the
#   gateway ends it on no-load (full), and 0x07 has no until-full mode.
from __future__ import annotations

import datetime
import math
from collections.abc import Hashable, Mapping

from .._commands import (
    Command,
    QueryParams,
    QueryStatus,
    SetNetworkList,
    SetParams,
    StartCharging,
    StartOta,
    StopCharging,
)
from .._errors import LocalProtocolError
from .._events import (
    AlarmRaised,
    CardPresented,
    ChargeMode,
    CommandAcknowledged,
    CommandRejected,
    DeviceHeartbeat,
    DeviceRegistered,
    EndReason,
    MeterReading,
    ParamsReported,
    PortState,
    PortStatusReported,
    ProgressReported,
    SettlementReported,
    UnknownMessage,
)
from .._jsonform import message_name
from .._roles import ConnectionEvent, RulesContext
from .._tracker import CommandTiming, MessageIds
from .._types import BcdTime, ProtocolFamily
from . import messages as m
from .codec import BkvFrame
from .status import BkvPortStatus

__all__ = ["BKV_END_REASONS", "BKV_TIMING", "BkvServerRules", "port_state"]

#: BKV gateways (bkv.md §10 gives no numbers; a real gateway answered within
#: about 3 s): 10 s timeout, one retransmission, 0.5 s spacing as for AP3000.
BKV_TIMING = CommandTiming(reply_timeout_s=10.0, max_retransmissions=1, min_spacing_s=0.5)

#: End-reason codes of GN 0x18 and BKV tag 0x2F (bkv.md §8.1, the [C] map) in the
#: contract's names. The reference calls the table unsettled (A8); pass another
#: mapping as ``ServerConnection(bkv_end_reasons=...)`` to change it.
BKV_END_REASONS: Mapping[int, EndReason] = {
    0: EndReason.NORMAL, 1: EndReason.FULL, 2: EndReason.NORMAL, 3: EndReason.NORMAL,
    4: EndReason.USER_STOP, 5: EndReason.REMOTE_STOP, 6: EndReason.FAULT,
    7: EndReason.FAULT, 8: EndReason.FAULT, 9: EndReason.FAULT, 10: EndReason.FAULT,
    11: EndReason.FAULT,
}

_MAX_MINUTES = 900
_FAULT_TEXT = {
    BkvPortStatus.METERING_FAULT: "metering fault",
    BkvPortStatus.OVER_TEMPERATURE: "over-temperature",
    BkvPortStatus.OVER_CURRENT: "over-current",
    BkvPortStatus.OVER_POWER: "over-power",
}
# SetParams / QueryParams names accepted for BKV 0x1011 (bkv.md §6.5).
_PARAM_NAMES = ("full_charge_delay_s", "no_load_delay_s", "full_power_threshold_dw",
                "no_load_power_threshold_dw", "high_temp_threshold_c", "power_limit_dw",
                "max_charge_time_min")
_REPORTED_PARAMS = (*_PARAM_NAMES, "trickle_threshold_pct", "over_current_limit_ma",
                    "key_base_amount", "anti_pulse_time")


def _minutes(seconds: int) -> int:
    """Whole minutes for *seconds*, rounded up, within the 1-900 range of 0x07."""
    return min(_MAX_MINUTES, max(1, math.ceil(seconds / 60)))


def _fault_msg(status: int) -> str:
    flags = BkvPortStatus(status)
    return ", ".join(text for bit, text in _FAULT_TEXT.items() if bit in flags)


def port_state(status: int) -> PortState:
    """The API port state for a BKV status byte (bkv.md §7, provisional bits)."""
    flags = BkvPortStatus(status)
    if flags.faults:
        return PortState.FAULT
    if BkvPortStatus.ONLINE not in flags:
        return PortState.OFFLINE
    return PortState.CHARGING if BkvPortStatus.CHARGING in flags else PortState.IDLE


class BkvServerRules:
    """The server's behaviour on a BKV connection."""

    def __init__(self, timezone: datetime.tzinfo, *, timing: CommandTiming = BKV_TIMING,
                 end_reasons: Mapping[int, EndReason] = BKV_END_REASONS,
                 message_ids: MessageIds | None = None) -> None:
        self.timezone = timezone
        self.timing = timing
        self.end_reasons = end_reasons
        self.message_ids = message_ids or MessageIds(modulus=0x1_0000_0000)
        self._card_requests = 0
        self._registered: set[str] = set()
        self._faults: dict[tuple[str, int, int], int] = {}
        self._stops: set[tuple[str, int, int]] = set()
        self._orders: dict[tuple[str, int, int, int], str] = {}
        self._starts: dict[Hashable, StartCharging] = {}
        self._queries: dict[str, Hashable] = {}
        self._cards_pending: dict[int, m.CardSwipe | m.CardBalanceQuery] = {}

    # --- frames in ------------------------------------------------------------------

    def on_frame(self, frame: object, now: float,
                 context: RulesContext) -> list[ConnectionEvent]:
        if not isinstance(frame, BkvFrame):
            return [UnknownMessage(phy_id=None, name=type(frame).__name__, data=b"")]
        gateway = frame.gateway_id
        message = frame.message
        if isinstance(message, m.Heartbeat):
            return self._heartbeat(frame, message, now, context)
        if isinstance(message, m.StatusReport):
            context.reply(self._frame(gateway, m.StatusReportAck(
                ack=1, bkv_seq=message.bkv_seq), frame.seq))
            self._resolve_query(gateway, None, now, context)
            return self._status_report(gateway, message)
        if isinstance(message, m.SocketStatus):
            self._resolve_query(gateway, ("query", frame.seq), now, context)
            return self._socket_status(gateway, message)
        if isinstance(message, m.ChargeControlAck):
            return self._charge_control_ack(frame, message, now, context)
        if (isinstance(message, m.UnknownGnMessage) and message.sub_command == 0x17
                and len(message.params) >= 5):
            # The answer to 0x17 is not printed; [G] says it carries a business
            # number, so it is read in the 0x07 acknowledgement's layout (bkv.md §10.3).
            p = message.params
            ack = m.ChargeControlAck(result=p[0], socket_no=p[1], port=p[2],
                                     business_no=(p[3] << 8) | p[4])
            return self._charge_control_ack(frame, ack, now, context)
        # Charge ends are answered through context.answer: the application may
        # hold the answer until it has stored the settlement.
        if isinstance(message, m.ChargeEnd | m.PowerChargeEnd | m.CardChargeEnd):
            settled = self._charge_end(gateway, message)
            context.answer(settled, self._frame(gateway, m.ChargeEndAck(
                socket_no=message.socket_no, result=1), 0))
            return [settled]
        if isinstance(message, m.FeeChargeEnd):
            settled = self._fee_charge_end(gateway, message)
            context.answer(settled, self._frame(gateway, m.FeeChargeEndAck(
                ack=1, socket_no=message.socket_no, port=message.port,
                bkv_seq=message.bkv_seq), frame.seq))
            return [settled]
        if isinstance(message, m.ExceptionReport):
            context.reply(self._frame(gateway, m.ExceptionReportAck(
                socket_no=message.socket_no, ack=1, bkv_seq=message.bkv_seq), frame.seq))
            return [self._exception(gateway, message)]
        if isinstance(message, m.CardSwipe | m.CardBalanceQuery):
            return [self._card(gateway, message)]
        if isinstance(message, m.CardOrderAck | m.VoiceConfigAck | m.NetworkRefreshAck
                      | m.NetworkAddAck):
            return self._generic_ack(gateway, frame.seq, message, now, context)
        if isinstance(message, m.ParamSetAck | m.ParamQueryReply):
            return self._param_answer(gateway, frame.seq, message, now, context)
        return [UnknownMessage(phy_id=gateway, name=message_name(message),
                               data=frame.encode())]

    def _heartbeat(self, frame: BkvFrame, message: m.Heartbeat, now: float,
                   context: RulesContext) -> list[ConnectionEvent]:
        local = datetime.datetime.fromtimestamp(now, self.timezone)
        context.reply(self._frame(frame.gateway_id, m.HeartbeatAck(
            time=BcdTime.from_datetime(local)), 0))
        events: list[ConnectionEvent] = []
        if frame.gateway_id not in self._registered:
            self._registered.add(frame.gateway_id)
            events.append(DeviceRegistered(phy_id=frame.gateway_id,
                                           protocol=ProtocolFamily.BKV,
                                           firmware=message.firmware))
        events.append(DeviceHeartbeat(phy_id=frame.gateway_id, protocol=ProtocolFamily.BKV,
                                      iccid=message.iccid, firmware=message.firmware,
                                      rssi=message.rssi))
        return events

    def _port(self, gateway: str, socket_no: int, port: int, status: int, business_no: int,
              power_dw: int | None, voltage_dv: int | None, current_ma: int | None,
              energy_wh: int | None, duration_min: int | None) -> list[ConnectionEvent]:
        port_no = port + 1
        state = port_state(status)
        faults = int(BkvPortStatus(status).faults)
        events: list[ConnectionEvent] = []
        key = (gateway, socket_no, port_no)
        if faults and self._faults.get(key) != faults:
            events.append(AlarmRaised(phy_id=gateway, alarm_type="port_fault",
                                      fault_code=faults, fault_msg=_fault_msg(status),
                                      socket_no=socket_no, port_no=port_no))
        self._faults[key] = faults
        order_no = self._orders.get((gateway, socket_no, port_no, business_no))
        energy = None if energy_wh is None else energy_wh // 10
        duration = None if duration_min is None else duration_min * 60
        events.append(PortStatusReported(
            phy_id=gateway, socket_no=socket_no, port_no=port_no, state=state,
            raw_status=status, fault_code=faults, fault_msg=_fault_msg(status) if faults else "",
            power_dw=power_dw, voltage_dv=voltage_dv, current_ma=current_ma,
            energy_centikwh=energy, duration_s=duration, order_no=order_no,
            business_no=business_no or None))
        if business_no and state is PortState.CHARGING:
            events.append(ProgressReported(
                phy_id=gateway, socket_no=socket_no, port_no=port_no, order_no=order_no,
                business_no=business_no,
                reading=MeterReading(duration_s=duration or 0, energy_centikwh=energy or 0,
                                     power_dw=power_dw or 0, voltage_dv=voltage_dv,
                                     current_ma=current_ma)))
        return events

    def _status_report(self, gateway: str, message: m.StatusReport) -> list[ConnectionEvent]:
        events: list[ConnectionEvent] = []
        for cluster in message.sockets:
            for group in cluster.ports:
                if cluster.socket_no is None or group.port is None or group.status is None:
                    continue
                events += self._port(gateway, cluster.socket_no, group.port, group.status,
                                     group.business_no or 0, group.power_dw, group.voltage_dv,
                                     group.current_ma, group.energy_wh, group.duration_min)
        return events

    def _socket_status(self, gateway: str, message: m.SocketStatus) -> list[ConnectionEvent]:
        events: list[ConnectionEvent] = []
        for report in message.ports:
            events += self._port(gateway, message.socket_no, report.port, report.status,
                                 report.business_no, report.power_dw, report.voltage_dv,
                                 report.current_ma, report.energy_wh, report.duration_min)
        return events

    def _charge_control_ack(self, frame: BkvFrame, message: m.ChargeControlAck, now: float,
                            context: RulesContext) -> list[ConnectionEvent]:
        gateway = frame.gateway_id
        key = ("control", frame.seq)
        pending = context.resolve(key, now)
        start = self._starts.pop(key, None)
        if pending is None:
            return [UnknownMessage(phy_id=gateway, name="charge_control_ack",
                                   data=frame.encode())]
        if message.result != 1:
            return [CommandRejected(command_id=pending.command_id, phy_id=gateway,
                                    reason="device_rejected", raw_code=message.result)]
        if start is not None:
            self._orders[(gateway, message.socket_no, message.port + 1,
                          message.business_no)] = start.order_no
        return [CommandAcknowledged(command_id=pending.command_id, phy_id=gateway,
                                    business_no=message.business_no,
                                    port_no=message.port + 1)]

    def _charge_end(self, gateway: str,
                    message: m.ChargeEnd | m.PowerChargeEnd | m.CardChargeEnd
                    ) -> SettlementReported:
        port_no = message.port + 1
        key = (gateway, message.socket_no, port_no)
        raw: int | None = None
        if isinstance(message, m.PowerChargeEnd):
            raw = message.end_reason
            reason = self.end_reasons.get(raw, EndReason.NORMAL)
        elif key in self._stops:
            reason = EndReason.REMOTE_STOP
        elif BkvPortStatus(message.status).faults:
            reason = EndReason.FAULT
        else:
            reason = EndReason.NORMAL
        self._stops.discard(key)
        amount = None
        card = None
        if isinstance(message, m.PowerChargeEnd):
            amount = message.amount_fen
        if isinstance(message, m.CardChargeEnd):
            card = message.card_no.hex()
            amount = message.amount_fen if message.billing_mode == 3 else None
        return SettlementReported(
            phy_id=gateway, socket_no=message.socket_no, port_no=port_no,
            order_no=self._orders.pop((gateway, message.socket_no, port_no,
                                       message.business_no), None),
            business_no=message.business_no,
            reading=MeterReading(duration_s=message.duration_min * 60,
                                 energy_centikwh=message.energy_wh // 10,
                                 power_dw=message.power_dw, current_ma=message.current_ma,
                                 temperature_c=message.temperature_c),
            end_reason=reason, end_reason_raw=raw, amount_cents=amount, card_no=card)

    def _fee_charge_end(self, gateway: str, message: m.FeeChargeEnd) -> SettlementReported:
        socket_no = message.socket_no or 1
        port_no = (message.port or 0) + 1
        raw = message.end_reason
        self._stops.discard((gateway, socket_no, port_no))
        business_no = message.business_no or 0
        fees = [f for f in (message.electricity_fee_fen, message.service_fee_fen)
                if f is not None]
        return SettlementReported(
            phy_id=gateway, socket_no=socket_no, port_no=port_no,
            order_no=self._orders.pop((gateway, socket_no, port_no, business_no), None),
            business_no=business_no or None,
            reading=MeterReading(duration_s=(message.duration_min or 0) * 60,
                                 energy_centikwh=(message.energy_wh or 0) // 10,
                                 power_dw=message.power_dw or 0,
                                 current_ma=message.current_ma,
                                 temperature_c=message.temperature_c),
            end_reason=(EndReason.NORMAL if raw is None
                        else self.end_reasons.get(raw, EndReason.NORMAL)),
            end_reason_raw=raw, amount_cents=sum(fees) if fees else None)

    def _exception(self, gateway: str, message: m.ExceptionReport) -> AlarmRaised:
        reason = message.socket_event_reason or 0
        return AlarmRaised(
            phy_id=gateway, alarm_type="socket_exception", fault_code=reason,
            fault_msg=(f"socket event {message.socket_event_status or 0:#x}, "
                       f"reason {reason:#x}"),
            socket_no=message.socket_no)

    def _card(self, gateway: str,
              message: m.CardSwipe | m.CardBalanceQuery) -> CardPresented:
        balance_only = isinstance(message, m.CardBalanceQuery)
        self._card_requests += 1
        request_id = self._card_requests
        self._cards_pending[request_id] = message
        return CardPresented(phy_id=gateway, socket_no=message.socket_no,
                             port_no=message.port + 1, card_no=message.card_no.hex(),
                             request_id=request_id, balance_only=balance_only)

    def _generic_ack(self, gateway: str, seq: int, message: m.BkvMessage, now: float,
                     context: RulesContext) -> list[ConnectionEvent]:
        key = ("card" if isinstance(message, m.CardOrderAck) else "command", seq)
        pending = context.resolve(key, now)
        if pending is None:
            return [UnknownMessage(phy_id=gateway, name=message_name(message), data=b"")]
        result = getattr(message, "result", 1)
        if result != 1:
            return [CommandRejected(command_id=pending.command_id, phy_id=gateway,
                                    reason="device_rejected", raw_code=result)]
        return [CommandAcknowledged(command_id=pending.command_id, phy_id=gateway)]

    def _param_answer(self, gateway: str, seq: int,
                      message: m.ParamSetAck | m.ParamQueryReply, now: float,
                      context: RulesContext) -> list[ConnectionEvent]:
        pending = context.resolve(("params", seq), now)
        command_id = None if pending is None else pending.command_id
        events: list[ConnectionEvent] = []
        if isinstance(message, m.ParamQueryReply):
            params = {name: getattr(message, name) for name in _REPORTED_PARAMS
                      if getattr(message, name) is not None}
            events.append(ParamsReported(phy_id=gateway, socket_no=message.socket_no,
                                         command_id=command_id, params=params))
        if command_id is not None:
            if message.ack not in (None, 1):
                events.append(CommandRejected(command_id=command_id, phy_id=gateway,
                                              reason="device_rejected", raw_code=message.ack))
            else:
                events.append(CommandAcknowledged(command_id=command_id, phy_id=gateway))
        return events

    def _resolve_query(self, gateway: str, key: Hashable | None, now: float,
                       context: RulesContext) -> None:
        # A real gateway answers a 0x1D query with a 0x1017 report, seq 0 (bkv.md §11 A22).
        expected = self._queries.get(gateway)
        if expected is not None and (key is None or key == expected):
            del self._queries[gateway]
            context.resolve(expected, now)

    # --- commands out ----------------------------------------------------------------

    def encode(self, command: Command, now: float) -> tuple[bytes, Hashable | None]:
        gateway = command.phy_id
        seq = self.message_ids.next(gateway)
        if isinstance(command, StartCharging):
            message, key = self._start(command), ("control", seq)
            self._starts[key] = command
        elif isinstance(command, StopCharging):
            message = m.ChargeControl(socket_no=command.socket_no, port=command.port_no - 1,
                                      switch=0, mode=1, duration_min=0, energy_wh=0)
            key = ("control", seq)
        elif isinstance(command, QueryStatus):
            message, key = m.StatusQuery(socket_no=command.socket_no), ("query", seq)
            self._queries[gateway] = key
        elif isinstance(command, SetParams):
            unknown = sorted(set(command.params) - set(_PARAM_NAMES))
            if unknown:
                raise LocalProtocolError(f"BKV parameters not known: {', '.join(unknown)}")
            p = command.params
            message = m.ParamSet(
                socket_no=command.socket_no, bkv_seq=seq,
                full_charge_delay_s=p.get("full_charge_delay_s"),
                no_load_delay_s=p.get("no_load_delay_s"),
                full_power_threshold_dw=p.get("full_power_threshold_dw"),
                no_load_power_threshold_dw=p.get("no_load_power_threshold_dw"),
                high_temp_threshold_c=p.get("high_temp_threshold_c"),
                power_limit_dw=p.get("power_limit_dw"),
                max_charge_time_min=p.get("max_charge_time_min"))
            key = ("params", seq)
        elif isinstance(command, QueryParams):
            message = m.ParamQuery(socket_no=command.socket_no, bkv_seq=seq)
            key = ("params", seq)
        elif isinstance(command, StartOta):
            # The gateway does not answer an OTA order (bkv.md §5): nothing to track.
            message = m.OtaUpgrade(target=command.target, ftp_ip=command.ftp_host,
                                   ftp_port=command.ftp_port, file_name=command.file_name)
            return self._frame(gateway, message, seq), None
        elif isinstance(command, SetNetworkList):
            message, key = self._network(command), ("command", seq)
        else:
            raise LocalProtocolError(
                f"BKV gateways cannot {type(command).__name__} (no such command in bkv.md)")
        return self._frame(gateway, message, seq), key

    @staticmethod
    def _network(command: SetNetworkList) -> m.BkvMessage:
        try:
            sockets = tuple(m.NetworkSocket(socket_no=s.socket_no, mac=bytes.fromhex(s.mac))
                            for s in command.sockets)
        except ValueError as err:
            raise LocalProtocolError(f"a socket MAC is not hex: {err}") from err
        if command.add:
            if len(sockets) != 1:
                raise LocalProtocolError("adding a socket takes exactly one")
            return m.NetworkAdd(socket_no=sockets[0].socket_no, mac=sockets[0].mac)
        return m.NetworkRefresh(channel=command.channel, sockets=sockets)

    def _start(self, command: StartCharging) -> m.BkvMessage:
        socket_no, port = command.socket_no, command.port_no - 1
        if not 1 <= command.port_no <= 2:
            raise LocalProtocolError(f"BKV sockets have ports 1 and 2, not {command.port_no}")
        if command.mode is ChargeMode.TIME:
            if not command.duration_s:
                raise LocalProtocolError("a time order needs duration_s")
            return m.ChargeControl(socket_no=socket_no, port=port, switch=1, mode=1,
                                   duration_min=_minutes(command.duration_s), energy_wh=0)
        if command.mode is ChargeMode.ENERGY:
            if not command.energy_wh:
                raise LocalProtocolError("an energy order needs energy_wh")
            return m.ChargeControl(socket_no=socket_no, port=port, switch=1, mode=0,
                                   duration_min=0, energy_wh=command.energy_wh)
        if command.mode is ChargeMode.POWER_TIERS:
            if not command.power_tiers or len(command.power_tiers) > 5:
                raise LocalProtocolError("a power-tier order needs 1 to 5 tiers")
            return m.PowerControl(
                socket_no=socket_no, port=port, switch=1, amount_fen=command.amount_cents or 0,
                tiers=tuple(m.PowerTier(max_power_dw=t.max_power_w * 10,
                                        price_fen=t.price_cents, duration_min=t.minutes)
                            for t in command.power_tiers))
        return m.ChargeControl(socket_no=socket_no, port=port, switch=1, mode=1,
                               duration_min=_MAX_MINUTES, energy_wh=0)

    def command_timing(self, command: Command) -> CommandTiming | None:
        """Every BKV command uses :attr:`timing`."""
        return None

    def stop_sent(self, command: StopCharging) -> None:
        self._stops.add((command.phy_id, command.socket_no, command.port_no))

    def answer_card(self, event: CardPresented, *, accept: bool, command_id: str,
                    order_no: str | None, now: float, balance_cents: int,
                    duration_s: int | None, energy_wh: int | None,
                    refusal_code: int | None) -> tuple[bytes, Hashable | None]:
        message = self._cards_pending.pop(event.request_id)
        gateway = event.phy_id
        if isinstance(message, m.CardBalanceQuery):
            reply = m.CardBalanceReply(socket_no=message.socket_no, port=message.port,
                                       card_no=message.card_no,
                                       balance_fen=balance_cents if accept else 0)
            return self._frame(gateway, reply, self.message_ids.next(gateway)), None
        seq = self.message_ids.next(gateway)
        # switch, mode, minutes, Wh. The by-energy mode of the card order is not
        # documented (bkv.md §11 A15); 0 is its value in 0x07.
        if not accept:
            terms = (0, 1, 0, 0)
        elif energy_wh and not duration_s:
            terms = (1, 0, 0, energy_wh)
        else:
            terms = (1, 1, _minutes(duration_s) if duration_s else _MAX_MINUTES, 0)
        order = m.CardOrder(socket_no=message.socket_no, port=message.port,
                            business_no=message.business_no, switch=terms[0], mode=terms[1],
                            duration_min=terms[2], energy_wh=terms[3])
        if accept and order_no is not None:
            self._orders[(gateway, message.socket_no, message.port + 1,
                          message.business_no)] = order_no
        return self._frame(gateway, order, seq), ("card", seq)

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def _frame(gateway: str, message: m.BkvMessage, seq: int) -> bytes:
        return BkvFrame(gateway_id=gateway, message=message, seq=seq).encode()
