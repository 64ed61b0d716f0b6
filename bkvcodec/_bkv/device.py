# What a BKV gateway does (the device role of bkv.md §10): how the server's GN and
# BKV frames become neutral commands, and how a gateway's neutral reports become
# frames. The mirror image of ``_bkv.server``; simulators and tests pair the two.
#
# Every downlink command arrives as one DeviceInput whose command_id is the frame's
# seq (a retransmission arrives again with the same id). It is the neutral command
# when one says everything the frame says (ChargeControl → StartCharging or
# StopCharging, PowerControl → StartCharging, StatusQuery → QueryStatus, ParamSet and
# an all-day VoiceConfig for port A → SetParams, ParamQuery → QueryParams, network
# lists → SetNetworkList, OtaUpgrade → StartOta; a card order is a CardAnswered);
# otherwise, and for FeeControl and GN sub-commands without a layout, it is a
# SendMessage carrying the decoded message.
#
# The device answers with CommandAcknowledged or CommandRejected under that id.
# CommandAcknowledged.reply, when set, is sent as it is, with the command's seq (a
# StatusReport with seq 0, as real gateways answer a 0x1D query, bkv.md §11 A22).
# Otherwise the answer is the command's documented one with result (GN) or ack (BKV)
# 1, or raw_code (default 0) for a rejection:
#   ChargeControl → ChargeControlAck with business_no, else for a start a new session
#   number (0 for a stop or a refusal); PowerControl → a 0x17 uplink in that layout
#   (§10.3, unverified); StatusQuery → SocketStatus (0x1C) of the socket without
#   ports; NetworkRefresh / NetworkAdd → their acks; CardOrder → CardOrderAck;
#   VoiceConfig → VoiceConfigAck; ParamSet → ParamSetAck; ParamQuery →
#   ParamQueryReply without values (report values with ParamsReported instead);
#   FeeControl → FeeControlAck with a business number as for 0x07 (§10.5,
#   unverified); a GN sub-command without a layout → the same sub-command up with one
#   result byte 1 (the form of the 0x08/0x09 answers; an assumption).
# A status query and a GN sub-command without a layout have no documented refusal,
# and an OTA order has no answer at all: answering those the wrong way raises.
from __future__ import annotations

import dataclasses
import datetime
import typing
from dataclasses import dataclass
from typing import TypeGuard

from .._commands import (
    NetworkSocketSpec,
    PowerTierSpec,
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
    CardAnswered,
    CardPresented,
    ChargeMode,
    CommandAcknowledged,
    CommandRejected,
    DeviceHeartbeat,
    DeviceRegistered,
    EndReason,
    ParamsReported,
    PortStatusReported,
    ProgressReported,
    ServerAnswered,
    SettlementReported,
    StartConfirmed,
    UnknownMessage,
)
from .._jsonform import message_name
from .._roles import DeviceInput, DeviceOutput
from .._types import CHINA_STANDARD_TIME, BinaryTime, Direction
from . import messages as m
from .codec import BkvFrame
from .status import BkvPortStatus

__all__ = ["BkvDeviceRules"]

_ANSWERS = (m.HeartbeatAck, m.StatusReportAck, m.ChargeEndAck, m.FeeChargeEndAck,
            m.ExceptionReportAck)
_PARAMS = ("full_charge_delay_s", "no_load_delay_s", "full_power_threshold_dw",
           "no_load_power_threshold_dw", "high_temp_threshold_c", "power_limit_dw",
           "max_charge_time_min")
#: What a 0x1012 reply carries, by field name.
_REPORTED = tuple(f.name for f in dataclasses.fields(m.ParamQueryReply)
                  if f.name not in ("socket_no", "ack", "bkv_seq", "bkv_gateway_id", "unknown",
                                    "item_order"))
#: The voice window of a SetParams (server role): sounds allowed all day.
_ALL_DAY = (m.VoiceWindow(start="00:00", end="23:59"),)
_BKV_CLASSES: frozenset[type[object]] = frozenset(typing.get_args(m.BkvMessage))
_CHARGING = int(BkvPortStatus.ONLINE | BkvPortStatus.CHARGING)
_END_STATUS = {
    EndReason.FULL: int(BkvPortStatus.ONLINE | BkvPortStatus.CHARGING | BkvPortStatus.NO_LOAD),
    EndReason.NORMAL: int(BkvPortStatus.ONLINE | BkvPortStatus.LIMIT_REACHED
                          | BkvPortStatus.CHARGING),
}

#: The GN 0x18 end-reason code a gateway sends for each end reason.
_END_CODES = {EndReason.NORMAL: 0, EndReason.FULL: 1, EndReason.USER_STOP: 4,
              EndReason.REMOTE_STOP: 5, EndReason.FAULT: 6}


@dataclass(slots=True)
class _Received:
    """A command the gateway received and has not answered yet."""

    seq: int
    message: m.BkvMessage


class BkvDeviceRules:
    """A BKV gateway's behaviour: one gateway id, sockets under it."""

    def __init__(self, phy_id: str, iccid: str, *, firmware: str = "200.1.17",
                 timezone: datetime.tzinfo = CHINA_STANDARD_TIME) -> None:
        self.phy_id = phy_id
        self.iccid = iccid
        self.firmware = firmware
        self.timezone = timezone
        self._received: dict[str, _Received] = {}
        self._swipes: dict[int, m.CardSwipe | m.CardBalanceQuery] = {}
        self._business = 0

    def greeting(self) -> bytes:
        return b""

    def take_output(self) -> bytes:
        return b""

    # --- server to device -----------------------------------------------------------

    def on_frame(self, frame: object, now: float) -> list[DeviceInput]:
        if not isinstance(frame, BkvFrame):
            return [UnknownMessage(phy_id=None, name=type(frame).__name__, data=b"")]
        message = frame.message
        command_id = f"{frame.seq}"
        if isinstance(message, _ANSWERS):
            server_time = None
            if isinstance(message, m.HeartbeatAck):
                try:
                    server_time = message.time.to_datetime(self.timezone).timestamp()
                except ValueError:
                    server_time = None
            return [ServerAnswered(phy_id=frame.gateway_id, name=message_name(message),
                                   server_time=server_time)]
        if isinstance(message, m.CardOrder | m.CardBalanceReply):
            return [self._card_answer(frame, message)]
        command = self._command(frame.gateway_id, message, command_id)
        if command is None:
            return [UnknownMessage(phy_id=frame.gateway_id, name=message_name(message),
                                   data=frame.encode())]
        if not isinstance(message, m.OtaUpgrade):  # an OTA order has no answer (§5)
            self._received[command_id] = _Received(frame.seq, message)
        return [command]

    def _command(self, gateway: str, message: m.BkvMessage, command_id: str
                 ) -> DeviceInput | None:
        try:
            neutral = _neutral(command_id, gateway, message)
        except LocalProtocolError:
            neutral = None  # a value the neutral command cannot hold
        if neutral is not None:
            return neutral
        try:
            return SendMessage(command_id=command_id, phy_id=gateway, message=message)
        except LocalProtocolError:
            return None  # not a command a server may send: reported as unknown

    def _card_answer(self, frame: BkvFrame,
                     message: m.CardOrder | m.CardBalanceReply) -> CardAnswered:
        if isinstance(message, m.CardBalanceReply):
            request = next((rid for rid, swipe in self._swipes.items()
                            if isinstance(swipe, m.CardBalanceQuery)
                            and swipe.card_no == message.card_no), 0)
            self._swipes.pop(request, None)
            return CardAnswered(phy_id=frame.gateway_id, request_id=request, accepted=True,
                                balance_cents=message.balance_fen)
        request = next((rid for rid, swipe in self._swipes.items()
                        if isinstance(swipe, m.CardSwipe)
                        and swipe.business_no == message.business_no), 0)
        self._swipes.pop(request, None)
        command_id = f"{frame.seq}"
        self._received[command_id] = _Received(frame.seq, message)
        return CardAnswered(
            phy_id=frame.gateway_id, request_id=request, accepted=bool(message.switch),
            duration_s=message.duration_min * 60 if message.mode == 1 else None,
            energy_wh=message.energy_wh or None, command_id=command_id)

    # --- device to server -----------------------------------------------------------

    def encode(self, event: DeviceOutput, now: float) -> bytes:
        if isinstance(event, DeviceRegistered | StartConfirmed):
            return b""  # a BKV gateway neither registers nor confirms separately
        if isinstance(event, DeviceHeartbeat):
            return self._up(m.Heartbeat(iccid=event.iccid or self.iccid,
                                        firmware=event.firmware or self.firmware,
                                        rssi=event.rssi if event.rssi is not None else 31))
        if isinstance(event, PortStatusReported):
            return self._status(event.socket_no, event.port_no, event.raw_status,
                                event.business_no or 0, event.power_dw, event.voltage_dv,
                                event.current_ma, event.energy_centikwh, event.duration_s)
        if isinstance(event, ProgressReported):
            r = event.reading
            return self._status(event.socket_no, event.port_no, _CHARGING,
                                event.business_no or 0, r.power_dw, r.voltage_dv,
                                r.current_ma, r.energy_centikwh, r.duration_s)
        if isinstance(event, SettlementReported):
            return self._charge_end(event, now)
        if isinstance(event, CardPresented):
            return self._card(event)
        if isinstance(event, AlarmRaised):
            return self._up(m.ExceptionReport(
                socket_no=event.socket_no or 1, socket_event_reason=event.fault_code & 0xFF,
                socket_event_status=1))
        if isinstance(event, ParamsReported):
            return self._param_reply(event)
        return self._answer(event)

    def _status(self, socket_no: int, port_no: int, status: int, business_no: int,
                power_dw: int | None, voltage_dv: int | None, current_ma: int | None,
                energy_centikwh: int | None, duration_s: int | None) -> bytes:
        group = m.PortGroup(port=port_no - 1, status=status, business_no=business_no,
                            voltage_dv=voltage_dv if voltage_dv is not None else 2200,
                            power_dw=power_dw or 0, current_ma=current_ma or 0,
                            energy_wh=(energy_centikwh or 0) * 10,
                            duration_min=(duration_s or 0) // 60)
        cluster = m.SocketCluster(socket_no=socket_no, socket_version=b"\xff\xff",
                                  temperature_c=30, rssi=30, ports=(group,))
        return self._up(m.StatusReport(sockets=(cluster,)))

    def _charge_end(self, event: SettlementReported, now: float) -> bytes:
        r = event.reading
        status = _END_STATUS.get(event.end_reason, int(BkvPortStatus.ONLINE))
        if event.end_reason is EndReason.FAULT:
            status |= int(BkvPortStatus.OVER_CURRENT)
        if event.tier_minutes is not None:
            # A power-tier session ends with GN 0x18: its reason code, the amount
            # the gateway billed and the minutes it charged in each tier.
            end = datetime.datetime.fromtimestamp(now, self.timezone)
            return self._up(m.PowerChargeEnd(
                socket_no=event.socket_no, socket_version=b"\xff\xff",
                temperature_c=r.temperature_c or 30, rssi=30, port=event.port_no - 1,
                status=status, business_no=event.business_no or 0, power_dw=r.power_dw,
                current_ma=r.current_ma or 0, energy_wh=r.energy_centikwh * 10,
                duration_min=r.duration_s // 60, end_time=BinaryTime.from_datetime(end),
                end_reason=(event.end_reason_raw if event.end_reason_raw is not None
                            else _END_CODES.get(event.end_reason, 0)),
                amount_fen=event.amount_cents or 0, settlement_power_dw=r.power_dw,
                tier_durations_min=event.tier_minutes))
        return self._up(m.ChargeEnd(
            socket_no=event.socket_no, socket_version=b"\xff\xff",
            temperature_c=r.temperature_c or 30, rssi=30, port=event.port_no - 1,
            status=status, business_no=event.business_no or 0, power_dw=r.power_dw,
            current_ma=r.current_ma or 0, energy_wh=r.energy_centikwh * 10,
            duration_min=r.duration_s // 60))

    def _card(self, event: CardPresented) -> bytes:
        card = bytes.fromhex(event.card_no)
        port = (event.port_no or 1) - 1
        swipe: m.CardSwipe | m.CardBalanceQuery
        if event.balance_only:
            swipe = m.CardBalanceQuery(socket_no=event.socket_no, port=port, card_no=card)
        else:
            swipe = m.CardSwipe(socket_no=event.socket_no, port=port,
                                business_no=self.new_business_no(), status=_CHARGING,
                                card_no=card, offline_params=bytes(20))
        self._swipes[event.request_id] = swipe
        return self._up(swipe)

    def _param_reply(self, event: ParamsReported) -> bytes:
        p = event.params
        unreported = sorted(set(p) - set(_REPORTED))
        if unreported:
            raise LocalProtocolError(
                f"a BKV 0x1012 reply cannot carry {', '.join(unreported)}; it reports "
                f"{', '.join(_REPORTED)}")
        seq = 0
        if event.command_id is not None:
            received = self._received.get(event.command_id)
            if received is None or not isinstance(received.message, m.ParamQuery):
                raise LocalProtocolError(f"no parameter query {event.command_id!r} to answer")
            del self._received[event.command_id]
            seq = received.seq
        reply = m.ParamQueryReply(
            socket_no=event.socket_no or 1, ack=1, bkv_seq=seq,
            full_power_threshold_dw=p.get("full_power_threshold_dw"),
            trickle_threshold_pct=p.get("trickle_threshold_pct"),
            full_charge_delay_s=p.get("full_charge_delay_s"),
            no_load_power_threshold_dw=p.get("no_load_power_threshold_dw"),
            no_load_delay_s=p.get("no_load_delay_s"),
            max_charge_time_min=p.get("max_charge_time_min"),
            high_temp_threshold_c=p.get("high_temp_threshold_c"),
            power_limit_dw=p.get("power_limit_dw"),
            over_current_limit_ma=p.get("over_current_limit_ma"),
            key_base_amount=p.get("key_base_amount"), anti_pulse_time=p.get("anti_pulse_time"))
        return self._up(reply, seq)

    def _answer(self, event: CommandAcknowledged | CommandRejected) -> bytes:
        received = self._received.get(event.command_id)
        if received is None:
            raise LocalProtocolError(
                f"no command {event.command_id!r} awaiting an answer (OTA orders get none)")
        if isinstance(event, CommandAcknowledged) and event.reply is not None:
            reply, seq = self._exact_reply(event.reply), received.seq
            if isinstance(reply, m.StatusReport):
                seq = 0  # as a real gateway answers a status query (bkv.md §11 A22)
        else:
            reply, seq = self._default_answer(event, received.message), received.seq
        del self._received[event.command_id]
        return self._up(reply, seq)

    @staticmethod
    def _exact_reply(reply: object) -> m.BkvMessage:
        if not _is_bkv(reply):
            raise LocalProtocolError(f"{type(reply).__name__} is not a BKV message")
        if BkvFrame(gateway_id="0" * 14, message=reply).direction is not Direction.UP:
            raise LocalProtocolError(
                f"{type(reply).__name__} is sent by servers; a reply goes up")
        return reply

    def _default_answer(self, event: CommandAcknowledged | CommandRejected,
                        message: m.BkvMessage) -> m.BkvMessage:
        """The command's documented answer (see the module comment)."""
        if isinstance(event, CommandAcknowledged):
            result = 1
        else:
            result = 0 if event.raw_code is None else event.raw_code
            if result == 1:
                raise LocalProtocolError("raw_code 1 means OK in BKV: a rejection needs "
                                         "another code (0 = failed)")
            if isinstance(message, m.StatusQuery | m.UnknownGnMessage):
                raise LocalProtocolError(
                    f"the protocol documents no refusal of {message_name(message)}: answer with "
                    "CommandAcknowledged (its reply may be any uplink)")
        if isinstance(message, m.ChargeControl | m.PowerControl | m.FeeControl):
            # A start creates a session number; a stop names the given one, if any.
            business = 0
            if isinstance(event, CommandAcknowledged):
                business = event.business_no or (
                    self.new_business_no() if message.switch == 1 else 0)
            if isinstance(message, m.FeeControl):
                return m.FeeControlAck(ack=result, socket_no=message.socket_no,
                                       port=message.port, business_no=business,
                                       bkv_seq=message.bkv_seq)
            if isinstance(message, m.PowerControl):
                payload = bytes((result, message.socket_no, message.port))
                return m.UnknownGnMessage(direction=Direction.UP, sub_command=0x17,
                                          params=payload + business.to_bytes(2, "big"))
            return m.ChargeControlAck(result=result, socket_no=message.socket_no,
                                      port=message.port, business_no=business)
        if isinstance(message, m.CardOrder):
            return m.CardOrderAck(socket_no=message.socket_no, port=message.port,
                                  result=result)
        if isinstance(message, m.VoiceConfig):
            return m.VoiceConfigAck(socket_no=message.socket_no, port=message.port,
                                    result=result)
        if isinstance(message, m.ParamSet):
            return m.ParamSetAck(socket_no=message.socket_no, ack=result,
                                 bkv_seq=message.bkv_seq)
        if isinstance(message, m.ParamQuery):
            return m.ParamQueryReply(socket_no=message.socket_no, ack=result,
                                     bkv_seq=message.bkv_seq)
        if isinstance(message, m.NetworkRefresh):
            return m.NetworkRefreshAck(result=result, container=message.container)
        if isinstance(message, m.NetworkAdd):
            return m.NetworkAddAck(result=result, container=message.container)
        if isinstance(message, m.StatusQuery):
            return m.SocketStatus(socket_no=message.socket_no, socket_version=b"\xff\xff",
                                  temperature_c=30, rssi=30, ports=(),
                                  container=message.container)
        assert isinstance(message, m.UnknownGnMessage)
        return m.UnknownGnMessage(direction=Direction.UP, sub_command=message.sub_command,
                                  params=b"\x01", container=message.container)

    def new_business_no(self) -> int:
        """The next session number this gateway hands out (never 0)."""
        self._business = self._business % 0xFFFF + 1
        return self._business

    def _up(self, message: m.BkvMessage, seq: int = 0) -> bytes:
        return BkvFrame(gateway_id=self.phy_id, message=message, seq=seq).encode()


def _neutral(cid: str, phy: str, message: m.BkvMessage) -> DeviceInput | None:
    """The neutral command that says everything *message* says, or None."""
    if getattr(message, "extra", b"") or getattr(message, "unknown", ()):
        return None  # bytes a neutral command would drop
    if isinstance(message, m.OtaUpgrade):
        return StartOta(command_id=cid, phy_id=phy, ftp_host=message.ftp_ip,
                        ftp_port=message.ftp_port, file_name=message.file_name,
                        target=message.target)
    if isinstance(message, m.NetworkRefresh):
        return SetNetworkList(
            command_id=cid, phy_id=phy, channel=message.channel,
            sockets=tuple(NetworkSocketSpec(socket_no=s.socket_no, mac=s.mac.hex())
                          for s in message.sockets))
    if isinstance(message, m.NetworkAdd):
        return SetNetworkList(command_id=cid, phy_id=phy, add=True, sockets=(
            NetworkSocketSpec(socket_no=message.socket_no, mac=message.mac.hex()),))
    if isinstance(message, m.StatusQuery):
        return QueryStatus(command_id=cid, phy_id=phy, socket_no=message.socket_no)
    if isinstance(message, m.ParamSet) and message.socket_no is not None:
        params = {name: getattr(message, name) for name in _PARAMS
                  if getattr(message, name) is not None}
        return SetParams(command_id=cid, phy_id=phy, socket_no=message.socket_no,
                         params=params)
    if isinstance(message, m.ParamQuery) and message.socket_no is not None:
        return QueryParams(command_id=cid, phy_id=phy, socket_no=message.socket_no)
    if (isinstance(message, m.VoiceConfig) and message.port == 0
            and message.windows == _ALL_DAY):
        return SetParams(command_id=cid, phy_id=phy, socket_no=message.socket_no,
                         params={"buzzer_on": message.buzzer_on,
                                 "voice_on": message.voice_on})
    if isinstance(message, m.ChargeControl | m.PowerControl) and message.port in (0, 1):
        return _charge_command(cid, phy, message)
    return None


def _charge_command(command_id: str, phy_id: str, message: m.ChargeControl | m.PowerControl
                    ) -> DeviceInput | None:
    """The StartCharging or StopCharging a 0x07 or 0x17 order says, or None."""
    socket_no, port_no = message.socket_no, message.port + 1
    if isinstance(message, m.PowerControl):
        if message.switch != 1 or any(t.max_power_dw % 10 for t in message.tiers):
            return None  # no neutral stop by 0x17; neutral tiers are in whole watts
        return StartCharging(
            command_id=command_id, phy_id=phy_id, socket_no=socket_no, port_no=port_no,
            order_no="", mode=ChargeMode.POWER_TIERS, amount_cents=message.amount_fen,
            power_tiers=tuple(PowerTierSpec(max_power_w=t.max_power_dw // 10,
                                            price_cents=t.price_fen, minutes=t.duration_min)
                              for t in message.tiers))
    if not message.switch:
        return StopCharging(command_id=command_id, phy_id=phy_id, socket_no=socket_no,
                            port_no=port_no)
    if message.mode == 1:
        return StartCharging(command_id=command_id, phy_id=phy_id, socket_no=socket_no,
                             port_no=port_no, order_no="", mode=ChargeMode.TIME,
                             duration_s=message.duration_min * 60)
    if message.mode == 0:
        return StartCharging(command_id=command_id, phy_id=phy_id, socket_no=socket_no,
                             port_no=port_no, order_no="", mode=ChargeMode.ENERGY,
                             energy_wh=message.energy_wh)
    return None


def _is_bkv(message: object) -> TypeGuard[m.BkvMessage]:
    return type(message) in _BKV_CLASSES
