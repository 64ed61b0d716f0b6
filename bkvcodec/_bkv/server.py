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
#
# Commands (bkv.md §4, §5, §6.5, §10). Every command frame carries a fresh seq from
# message_ids (a BKV packet also carries it as bkv_seq, §6.2) and is tracked under a
# _Key: the gateway, the kind of answer expected and the seq that answer echoes. The
# gateway is part of the key because each gateway has its own seq counter. Answers
# resolve their command by the envelope seq and, for BKV packets, by the echoed
# bkv_seq too (a reply may echo only that item). Result 1 (GN ``result``, BKV ``ack``)
# is CommandAcknowledged with the answer as ``reply``; any other value is
# CommandRejected("device_rejected", raw_code) (bkv.md documents only 1 = OK, 0 =
# failed). Where the answer is not the documented one:
# - 0x1D status query: a real gateway answers with a 0x1017 report, seq 0 (§11 A22),
#   so a status report naming the queried socket resolves the query too;
# - 0x17 power control and 0x1007 fee control: the answers are not printed; they are
#   read in the 0x07 acknowledgement's layout (§10.3) and as FeeControlAck (§10.5);
# - a GN sub-command without a layout (0x0A network delete, unverified): any uplink of
#   the same sub-command echoing the seq resolves it, acknowledged (no result is known);
# - 0x0007 OTA: the gateway never answers (§5): key None, acknowledged once written.
from __future__ import annotations

import dataclasses
import datetime
import math
import typing
from collections.abc import Hashable, Mapping
from typing import NamedTuple, TypeGuard

from .._commands import (
    Command,
    QueryParams,
    QueryStatus,
    SendMessage,
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
from .._tracker import CommandTiming, MessageIds, remember
from .._types import BcdTime, Direction, ProtocolFamily
from . import messages as m
from .codec import BkvFrame, check_downlink
from .status import BkvPortStatus

__all__ = ["BKV_END_REASONS", "BKV_TIMING", "BkvServerRules", "port_state"]

#: BKV gateways (the protocol gives no numbers; a real gateway answered within
#: about 3 s): 10 s timeout, one retransmission, 0.5 s spacing as for AP3000.
BKV_TIMING = CommandTiming(reply_timeout_s=10.0, max_retransmissions=1, min_spacing_s=0.5)

#: End-reason codes of GN 0x18 and BKV tag 0x2F (the [C] map) in the
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
#: SetParams names by the command that sets them, each with its allowed range (the
#: field names and item sizes of the 0x1011 items and the 0x1B layout). A SetParams names one group.
_SETTABLE: Mapping[str, Mapping[str, tuple[int, int]]] = {
    "param_set (BKV 0x1011)": {
        "full_charge_delay_s": (0, 0xFFFF), "no_load_delay_s": (0, 0xFFFF),
        "full_power_threshold_dw": (0, 0xFFFF), "no_load_power_threshold_dw": (0, 0xFFFF),
        "high_temp_threshold_c": (0, 0xFF), "power_limit_dw": (0, 0xFFFF),
        "max_charge_time_min": (0, 0xFFFF),
    },
    "voice_config (GN 0x1B)": {"buzzer_on": (0, 1), "voice_on": (0, 1)},
}
_PARAM_NAMES = tuple(_SETTABLE["param_set (BKV 0x1011)"])
#: What the 0x1012 reply reports: every QueryParams name must be here.
_REPORTED_PARAMS = (*_PARAM_NAMES, "trickle_threshold_pct", "over_current_limit_ma",
                   "key_base_amount", "anti_pulse_time")
#: The window a voice_config SetParams sends: sounds allowed all day (0x1B
#: windows say when the device may make sounds).
_ALL_DAY = m.VoiceWindow(start="00:00", end="23:59")

_BKV_CLASSES: frozenset[type[object]] = frozenset(typing.get_args(m.BkvMessage))


class _Key(NamedTuple):
    """What a command's answer is matched by (see the module comment)."""

    gateway: str
    kind: str  #: The command's kind: which answer resolves it.
    seq: int  #: The seq the answer echoes.
    socket_no: int | None = None  #: Status queries: the socket asked about.


#: The kind of each command message; its answer carries the same kind.
_COMMAND_KINDS: Mapping[type[object], str] = {
    m.ChargeControl: "control", m.PowerControl: "control", m.StatusQuery: "status_query",
    m.NetworkRefresh: "network_refresh", m.NetworkAdd: "network_add",
    m.CardOrder: "card_order", m.VoiceConfig: "voice_config", m.ParamSet: "param_set",
    m.ParamQuery: "param_query", m.FeeControl: "fee_control",
}
#: The answers (GN ``result`` / BKV ``ack``) to the commands of each kind.
_ANSWER_KINDS: Mapping[type[object], str] = {
    m.ChargeControlAck: "control", m.NetworkRefreshAck: "network_refresh",
    m.NetworkAddAck: "network_add", m.CardOrderAck: "card_order",
    m.VoiceConfigAck: "voice_config", m.ParamSetAck: "param_set",
    m.ParamQueryReply: "param_query", m.FeeControlAck: "fee_control",
}


def _is_bkv(message: object) -> TypeGuard[m.BkvMessage]:
    return type(message) in _BKV_CLASSES


def _result(message: m.BkvMessage) -> int | None:
    """An answer's result (GN) or ack (BKV); None for an answer without a layout."""
    if isinstance(message, m.NetworkRefreshAck | m.NetworkAddAck | m.CardOrderAck
                  | m.VoiceConfigAck):
        return message.result
    if isinstance(message, m.ParamSetAck | m.FeeControlAck):
        return message.ack
    return None


def _gn_kind(sub_command: int) -> str:
    return f"gn_{sub_command:02x}"


def _minutes(seconds: int) -> int:
    """Whole minutes for *seconds*, rounded up, within the 1-900 range of 0x07."""
    return min(_MAX_MINUTES, max(1, math.ceil(seconds / 60)))


def _fault_msg(status: int) -> str:
    flags = BkvPortStatus(status)
    return ", ".join(text for bit, text in _FAULT_TEXT.items() if bit in flags)


def _check_port(port_no: int) -> None:
    if not 1 <= port_no <= 2:
        raise LocalProtocolError(f"BKV sockets have ports 1 and 2, not {port_no}")


def _set_params(command: SetParams) -> m.BkvMessage:
    """The one command that sets *command*'s parameters (``_SETTABLE``)."""
    params = command.params  # not empty, whole numbers >= 0: checked by SetParams
    known = {name for group in _SETTABLE.values() for name in group}
    unknown = sorted(set(params) - known)
    if unknown:
        raise LocalProtocolError(
            f"BKV parameters not known: {', '.join(unknown)}; settable: "
            + "; ".join(f"{label}: {', '.join(group)}" for label, group in _SETTABLE.items()))
    groups = {label: [name for name in group if name in params]
              for label, group in _SETTABLE.items()}
    used = {label: names for label, names in groups.items() if names}
    if len(used) > 1:
        raise LocalProtocolError(
            "SetParams spans two BKV commands; send one SetParams for each: "
            + "; ".join(f"{label} sets {', '.join(names)}" for label, names in used.items()))
    [(label, names)] = used.items()
    for name in names:
        low, high = _SETTABLE[label][name]
        if not low <= params[name] <= high:
            raise LocalProtocolError(f"{name} must be {low}-{high}, not {params[name]!r}")
    if label.startswith("voice_config"):
        missing = [name for name in _SETTABLE[label] if name not in params]
        if missing:
            raise LocalProtocolError(
                f"{label} sets buzzer_on and voice_on together: {', '.join(missing)} "
                "missing")
        # One all-day window: sounds as switched, at any hour. Other windows or a
        # port other than A: send a VoiceConfig with SendMessage.
        return m.VoiceConfig(socket_no=command.socket_no, port=0, buzzer_on=params["buzzer_on"],
                             voice_on=params["voice_on"], windows=(_ALL_DAY,))
    return m.ParamSet(
        socket_no=command.socket_no, full_charge_delay_s=params.get("full_charge_delay_s"),
        no_load_delay_s=params.get("no_load_delay_s"),
        full_power_threshold_dw=params.get("full_power_threshold_dw"),
        no_load_power_threshold_dw=params.get("no_load_power_threshold_dw"),
        high_temp_threshold_c=params.get("high_temp_threshold_c"),
        power_limit_dw=params.get("power_limit_dw"),
        max_charge_time_min=params.get("max_charge_time_min"))


def port_state(status: int) -> PortState:
    """The API port state for a BKV status byte (provisional bits)."""
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
            return self._status_report(gateway, message) + self._report_answers_query(
                gateway, message, now, context)
        if isinstance(message, m.SocketStatus):
            events = self._socket_status(gateway, message)
            pending = context.resolve(_Key(gateway, "status_query", frame.seq,
                                           message.socket_no), now)
            if pending is not None:
                events.append(CommandAcknowledged(command_id=pending.command_id,
                                                  phy_id=gateway, reply=message))
            return events
        if isinstance(message, m.ChargeControlAck):
            return self._charge_control_ack(frame, message, message, now, context)
        if (isinstance(message, m.UnknownGnMessage) and message.sub_command == 0x17
                and len(message.params) >= 5):
            # The answer to 0x17 is not printed; [G] says it carries a business
            # number, so it is read in the 0x07 acknowledgement's layout (bkv.md §10.3).
            p = message.params
            ack = m.ChargeControlAck(result=p[0], socket_no=p[1], port=p[2],
                                     business_no=(p[3] << 8) | p[4])
            return self._charge_control_ack(frame, ack, message, now, context)
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
        if isinstance(message, m.ParamQueryReply):
            return self._param_query_reply(frame, message, now, context)
        kind = _ANSWER_KINDS.get(type(message))
        if kind is not None:
            return self._answered(frame, kind, now, context)
        if isinstance(message, m.UnknownGnMessage) and message.direction is Direction.UP:
            return self._answered(frame, _gn_kind(message.sub_command), now, context)
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

    def _charge_control_ack(self, frame: BkvFrame, ack: m.ChargeControlAck,
                            reply: m.BkvMessage, now: float,
                            context: RulesContext) -> list[ConnectionEvent]:
        gateway = frame.gateway_id
        key = _Key(gateway, "control", frame.seq)
        pending = context.resolve(key, now)
        start = self._starts.pop(key, None)
        if pending is None:
            return [UnknownMessage(phy_id=gateway, name=message_name(reply),
                                   data=frame.encode())]
        if ack.result != 1:
            return [CommandRejected(command_id=pending.command_id, phy_id=gateway,
                                    reason="device_rejected", raw_code=ack.result)]
        if start is not None:
            self._orders[(gateway, ack.socket_no, ack.port + 1, ack.business_no)] = (
                start.order_no)
        return [CommandAcknowledged(command_id=pending.command_id, phy_id=gateway,
                                    business_no=ack.business_no or None,
                                    port_no=ack.port + 1, reply=reply)]

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
        tiers: tuple[int, ...] | None = None
        if isinstance(message, m.PowerChargeEnd):
            amount = message.amount_fen
            tiers = message.tier_durations_min
        if isinstance(message, m.CardChargeEnd):
            card = message.card_no.hex()
            amount = message.amount_fen if message.billing_mode == 3 else None
            tiers = message.tier_durations_min if message.billing_mode == 3 else None
        return SettlementReported(
            phy_id=gateway, socket_no=message.socket_no, port_no=port_no,
            order_no=self._orders.pop((gateway, message.socket_no, port_no,
                                       message.business_no), None),
            business_no=message.business_no,
            reading=MeterReading(duration_s=message.duration_min * 60,
                                 energy_centikwh=message.energy_wh // 10,
                                 power_dw=message.power_dw, current_ma=message.current_ma,
                                 temperature_c=message.temperature_c),
            end_reason=reason, end_reason_raw=raw, amount_cents=amount, card_no=card,
            tier_minutes=tiers)

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
        remember(self._cards_pending, request_id, message)
        return CardPresented(phy_id=gateway, socket_no=message.socket_no,
                             port_no=message.port + 1, card_no=message.card_no.hex(),
                             request_id=request_id, balance_only=balance_only)

    def _resolve(self, frame: BkvFrame, kind: str, now: float,
                 context: RulesContext) -> str | None:
        """The id of the command *frame* answers, now resolved, or None.

        The answer echoes the command's seq; a BKV packet's answer may echo it only
        in its ``bkv_seq`` item, so that is tried too.
        """
        seqs = [frame.seq]
        bkv_seq = getattr(frame.message, "bkv_seq", None)
        if bkv_seq is not None and bkv_seq != frame.seq:
            seqs.append(bkv_seq)
        for seq in seqs:
            pending = context.resolve(_Key(frame.gateway_id, kind, seq), now)
            if pending is not None:
                return pending.command_id
        return None

    def _outcome(self, frame: BkvFrame, command_id: str, result: int | None,
                 **details: int | None) -> ConnectionEvent:
        """Result 1 (or none) acknowledges, anything else rejects."""
        if result not in (None, 1):
            return CommandRejected(command_id=command_id, phy_id=frame.gateway_id,
                                   reason="device_rejected", raw_code=result)
        return CommandAcknowledged(command_id=command_id, phy_id=frame.gateway_id,
                                   reply=frame.message, **details)

    def _answered(self, frame: BkvFrame, kind: str, now: float,
                  context: RulesContext) -> list[ConnectionEvent]:
        message = frame.message
        command_id = self._resolve(frame, kind, now, context)
        if command_id is None:
            return [UnknownMessage(phy_id=frame.gateway_id, name=message_name(message),
                                   data=frame.encode())]
        details: dict[str, int | None] = {}
        if isinstance(message, m.FeeControlAck):
            details = {"business_no": message.business_no or None,
                       "port_no": None if message.port is None else message.port + 1}
        return [self._outcome(frame, command_id, _result(message), **details)]

    def _param_query_reply(self, frame: BkvFrame, message: m.ParamQueryReply, now: float,
                           context: RulesContext) -> list[ConnectionEvent]:
        command_id = self._resolve(frame, "param_query", now, context)
        rejected = message.ack not in (None, 1)
        events: list[ConnectionEvent] = []
        if not rejected or command_id is None:
            params = {name: getattr(message, name) for name in _REPORTED_PARAMS
                      if getattr(message, name) is not None}
            events.append(ParamsReported(phy_id=frame.gateway_id, socket_no=message.socket_no,
                                         command_id=command_id, params=params))
        if command_id is not None:
            events.append(self._outcome(frame, command_id, message.ack))
        return events

    def _report_answers_query(self, gateway: str, message: m.StatusReport, now: float,
                              context: RulesContext) -> list[ConnectionEvent]:
        # A real gateway answers a 0x1D query with a 0x1017 report, seq 0 (bkv.md
        # §11 A22): a report naming the queried socket answers the query in flight.
        pending = context.in_flight(gateway)
        if pending is None or not isinstance(pending.key, _Key):
            return []
        key = pending.key
        if key.kind != "status_query" or key.socket_no not in {
                cluster.socket_no for cluster in message.sockets}:
            return []
        context.resolve(key, now)
        return [CommandAcknowledged(command_id=pending.command_id, phy_id=gateway,
                                    reply=message)]

    # --- commands out ----------------------------------------------------------------

    def encode(self, command: Command, now: float) -> tuple[bytes, Hashable | None]:
        gateway = command.phy_id
        if isinstance(command, SendMessage):
            if not _is_bkv(command.message):
                raise LocalProtocolError(
                    f"{type(command.message).__name__} is not a BKV message; "
                    f"{gateway} speaks BKV")
            message = command.message  # checked by SendMessage itself
        else:
            message = self._message(command)
            check_downlink(message)
        seq = self.message_ids.next(gateway)
        if isinstance(message, m.ParamSet | m.ParamQuery | m.FeeControl):
            message = dataclasses.replace(message, bkv_seq=seq)  # bkv.md §6.2
        if isinstance(message, m.OtaUpgrade):
            # The gateway does not answer an OTA order (bkv.md §5): nothing to track.
            return self._frame(gateway, message, seq), None
        if isinstance(message, m.UnknownGnMessage):
            key = _Key(gateway, _gn_kind(message.sub_command), seq)
        else:
            socket_no = message.socket_no if isinstance(message, m.StatusQuery) else None
            key = _Key(gateway, _COMMAND_KINDS[type(message)], seq, socket_no)
        if isinstance(command, StartCharging):
            self._starts[key] = command
        if (isinstance(command, SendMessage) and isinstance(message, m.ChargeControl)
                and not message.switch):
            self._stops.add((gateway, message.socket_no, message.port + 1))
        return self._frame(gateway, message, seq), key

    def _message(self, command: Command) -> m.BkvMessage:
        """The GN or BKV message a neutral command is sent as."""
        if isinstance(command, StartCharging):
            return self._start(command)
        if isinstance(command, StopCharging):
            _check_port(command.port_no)
            return m.ChargeControl(socket_no=command.socket_no, port=command.port_no - 1,
                                   switch=0, mode=1, duration_min=0, energy_wh=0)
        if isinstance(command, QueryStatus):
            return m.StatusQuery(socket_no=command.socket_no)
        if isinstance(command, SetParams):
            return _set_params(command)
        if isinstance(command, QueryParams):
            unreported = sorted(set(command.names) - set(_REPORTED_PARAMS))
            if unreported:
                raise LocalProtocolError(
                    f"no BKV query reports {', '.join(unreported)}; param_query (BKV "
                    f"0x1012) reports {', '.join(_REPORTED_PARAMS)}")
            return m.ParamQuery(socket_no=command.socket_no)
        if isinstance(command, StartOta):
            return m.OtaUpgrade(target=command.target, ftp_ip=command.ftp_host,
                                ftp_port=command.ftp_port, file_name=command.file_name)
        if isinstance(command, SetNetworkList):
            return self._network(command)
        raise LocalProtocolError(
            f"BKV gateways cannot {type(command).__name__} (the protocol has no such command)")

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
        _check_port(command.port_no)
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
            for i, tier in enumerate(command.power_tiers):
                if not 0 <= tier.max_power_w <= 0xFFFF // 10:
                    raise LocalProtocolError(
                        f"power_tiers[{i}].max_power_w must be 0-{0xFFFF // 10}, "
                        f"not {tier.max_power_w}")
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
        return self._frame(gateway, order, seq), _Key(gateway, "card_order", seq)

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def _frame(gateway: str, message: m.BkvMessage, seq: int) -> bytes:
        return BkvFrame(gateway_id=gateway, message=message, seq=seq).encode()
