# What a BKV gateway does (the device role of bkv.md §10): how the server's GN and
# BKV frames become neutral commands, and how a gateway's neutral reports become
# frames. The mirror image of ``_bkv_rules``; simulators and tests pair the two.
from __future__ import annotations

import datetime
from dataclasses import dataclass

from .._commands import (
    NetworkSocketSpec,
    PowerTierSpec,
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
from .._types import CHINA_STANDARD_TIME, Direction
from . import messages as m
from .codec import BkvFrame
from .status import BkvPortStatus

__all__ = ["BkvDeviceRules"]

_ANSWERS = (m.HeartbeatAck, m.StatusReportAck, m.ChargeEndAck, m.FeeChargeEndAck,
            m.ExceptionReportAck)
_PARAMS = ("full_charge_delay_s", "no_load_delay_s", "full_power_threshold_dw",
           "no_load_power_threshold_dw", "high_temp_threshold_c", "power_limit_dw",
           "max_charge_time_min")
_CHARGING = int(BkvPortStatus.ONLINE | BkvPortStatus.CHARGING)
_END_STATUS = {
    EndReason.FULL: int(BkvPortStatus.ONLINE | BkvPortStatus.CHARGING | BkvPortStatus.NO_LOAD),
    EndReason.NORMAL: int(BkvPortStatus.ONLINE | BkvPortStatus.LIMIT_REACHED
                          | BkvPortStatus.CHARGING),
}


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
        command = self._command(frame, message, command_id)
        if command is None:
            return [UnknownMessage(phy_id=frame.gateway_id, name=message_name(message),
                                   data=frame.encode())]
        self._received[command_id] = _Received(frame.seq, message)
        return [command]

    def _command(self, frame: BkvFrame, message: m.BkvMessage, command_id: str
                 ) -> DeviceInput | None:
        gateway = frame.gateway_id
        if isinstance(message, m.OtaUpgrade):
            return StartOta(command_id=command_id, phy_id=gateway, ftp_host=message.ftp_ip,
                            ftp_port=message.ftp_port, file_name=message.file_name,
                            target=message.target)
        if isinstance(message, m.NetworkRefresh | m.NetworkAdd):
            sockets = (message.sockets if isinstance(message, m.NetworkRefresh)
                       else (m.NetworkSocket(socket_no=message.socket_no, mac=message.mac),))
            return SetNetworkList(
                command_id=command_id, phy_id=gateway,
                sockets=tuple(NetworkSocketSpec(socket_no=s.socket_no, mac=s.mac.hex())
                              for s in sockets),
                channel=message.channel if isinstance(message, m.NetworkRefresh) else 1,
                add=isinstance(message, m.NetworkAdd))
        if isinstance(message, m.ChargeControl):
            if not message.switch:
                return StopCharging(command_id=command_id, phy_id=gateway,
                                    socket_no=message.socket_no, port_no=message.port + 1)
            by_time = message.mode == 1
            return StartCharging(
                command_id=command_id, phy_id=gateway, socket_no=message.socket_no,
                port_no=message.port + 1, order_no="",
                mode=ChargeMode.TIME if by_time else ChargeMode.ENERGY,
                duration_s=message.duration_min * 60 if by_time else None,
                energy_wh=None if by_time else message.energy_wh)
        if isinstance(message, m.PowerControl):
            return StartCharging(
                command_id=command_id, phy_id=gateway, socket_no=message.socket_no,
                port_no=message.port + 1, order_no="", mode=ChargeMode.POWER_TIERS,
                amount_cents=message.amount_fen,
                power_tiers=tuple(PowerTierSpec(max_power_w=t.max_power_dw // 10,
                                                price_cents=t.price_fen, minutes=t.duration_min)
                                  for t in message.tiers))
        if isinstance(message, m.StatusQuery):
            return QueryStatus(command_id=command_id, phy_id=gateway,
                               socket_no=message.socket_no)
        if isinstance(message, m.ParamSet):
            params = {name: getattr(message, name) for name in _PARAMS
                      if getattr(message, name) is not None}
            return SetParams(command_id=command_id, phy_id=gateway,
                             socket_no=message.socket_no or 1, params=params)
        if isinstance(message, m.ParamQuery):
            return QueryParams(command_id=command_id, phy_id=gateway,
                               socket_no=message.socket_no or 1)
        return None

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
            return self._charge_end(event)
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

    def _charge_end(self, event: SettlementReported) -> bytes:
        r = event.reading
        status = _END_STATUS.get(event.end_reason, int(BkvPortStatus.ONLINE))
        if event.end_reason is EndReason.FAULT:
            status |= int(BkvPortStatus.OVER_CURRENT)
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
        received = self._received.pop(event.command_id or "", None)
        seq = received.seq if received else 0
        p = event.params
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
        received = self._received.pop(event.command_id, None)
        if received is None:
            raise LocalProtocolError(f"no command {event.command_id!r} to answer")
        ok = isinstance(event, CommandAcknowledged)
        message = received.message
        reply: m.BkvMessage
        if isinstance(message, m.ChargeControl | m.PowerControl):
            business = (event.business_no if isinstance(event, CommandAcknowledged)
                        and event.business_no else self.new_business_no())
            reply = m.ChargeControlAck(result=int(ok), socket_no=message.socket_no,
                                       port=message.port, business_no=business if ok else 0)
            if isinstance(message, m.PowerControl):
                payload = bytes((int(ok), message.socket_no, message.port)) + business.to_bytes(
                    2, "big")
                reply = m.UnknownGnMessage(direction=Direction.UP, sub_command=0x17,
                                           params=payload)
        elif isinstance(message, m.CardOrder):
            reply = m.CardOrderAck(socket_no=message.socket_no, port=message.port,
                                   result=int(ok))
        elif isinstance(message, m.ParamSet):
            reply = m.ParamSetAck(socket_no=message.socket_no, ack=int(ok),
                                  bkv_seq=message.bkv_seq)
        elif isinstance(message, m.ParamQuery):
            reply = m.ParamQueryReply(socket_no=message.socket_no, ack=int(ok),
                                      bkv_seq=message.bkv_seq)
        elif isinstance(message, m.NetworkRefresh):
            reply = m.NetworkRefreshAck(result=int(ok), container=message.container)
        elif isinstance(message, m.NetworkAdd):
            reply = m.NetworkAddAck(result=int(ok), container=message.container)
        elif isinstance(message, m.StatusQuery):
            reply = m.SocketStatus(socket_no=message.socket_no, socket_version=b"\xff\xff",
                                   temperature_c=30, rssi=30, ports=())
        else:
            raise LocalProtocolError(f"cannot answer {type(message).__name__}")
        return self._up(reply, received.seq)

    def new_business_no(self) -> int:
        """The next session number this gateway hands out (never 0)."""
        self._business = self._business % 0xFFFF + 1
        return self._business

    def _up(self, message: m.BkvMessage, seq: int = 0) -> bytes:
        return BkvFrame(gateway_id=self.phy_id, message=message, seq=seq).encode()
