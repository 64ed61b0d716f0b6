# What an AP3000 unit does (the device role of ap3000.md §7): how the server's
# frames become neutral commands and answers, and how a unit's neutral reports
# become 0x20/0x21/0x06/0x03/0x02 frames. The mirror image of ``_ap3000_rules``.
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._commands import (
    FirmwareTarget,
    ModifyCharge,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SetParams,
    StartCharging,
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
from .._roles import DeviceInput, DeviceOutput
from . import messages as a
from .codec import Ap3000Frame
from .jsonform import message_name
from .nonframe import IccidAnnouncement
from .values import (
    Ap3000PortStatus,
    Ap3000StopReason,
    decode_order_no,
    encode_order_no,
    parse_phy_id,
)

__all__ = ["Ap3000DeviceRules"]

_S = Ap3000StopReason
# The stop reason a unit reports for each contract end reason.
_STOP_REASONS = {
    EndReason.NORMAL: _S.PRESET_DURATION, EndReason.FULL: _S.FULL,
    EndReason.INSUFFICIENT_BALANCE: _S.PRESET_DURATION, EndReason.REMOTE_STOP: _S.SERVER_STOP,
    EndReason.FAULT: _S.OVER_CURRENT, EndReason.TIMEOUT: _S.MAX_DURATION,
    EndReason.USER_STOP: _S.CARD_SWIPE,
}
_ANSWERS = (a.Ap3000HeartbeatReply, a.Ap3000LegacyHeartbeatReply, a.Ap3000RegisterReply,
            a.Ap3000SettlementReply, a.Ap3000OrderConfirmReply, a.Ap3000TimeReply,
            a.Ap3000HostTimeReply)
_PACKETS: dict[type[a.Ap3000Message], type[a.Ap3000FirmwarePacketSlaveReply]
               | type[a.Ap3000FirmwarePacketPowerBoardReply]
               | type[a.Ap3000FirmwarePacketHostReply]] = {
    a.Ap3000FirmwarePacketSlave: a.Ap3000FirmwarePacketSlaveReply,
    a.Ap3000FirmwarePacketPowerBoard: a.Ap3000FirmwarePacketPowerBoardReply,
    a.Ap3000FirmwarePacketHost: a.Ap3000FirmwarePacketHostReply,
}
_PARAMS = tuple(f.name for f in dataclasses.fields(a.Ap3000SetParams11) if f.name != "extra")


@dataclass(slots=True)
class _Received:
    message_id: int
    message: a.Ap3000Message


class Ap3000DeviceRules:
    """An AP3000 unit's behaviour: one physical id, 1-16 ports."""

    def __init__(self, phy_id: str, iccid: str, *, port_count: int = 2,
                 firmware_version: int = 640, device_type: int = 0x21) -> None:
        self.physical_id = parse_phy_id(phy_id)
        self.phy_id = phy_id
        self.iccid = iccid
        self.firmware_version = firmware_version
        self.device_type = device_type
        self.port_status = [int(Ap3000PortStatus.IDLE)] * port_count
        self._message_id = 0
        self._received: dict[str, _Received] = {}
        self._cards: dict[int, a.Ap3000CardSwipe] = {}
        self._firmware: dict[int, dict[int, bytes]] = {}
        self._out_direct: list[bytes] = []

    def greeting(self) -> bytes:
        # The modem announces the SIM right after the TCP connection opens (§2.1).
        return IccidAnnouncement(iccid=self.iccid).encode()

    # --- server to device -----------------------------------------------------------

    def on_frame(self, frame: object, now: float) -> list[DeviceInput]:
        if not isinstance(frame, Ap3000Frame):
            return [UnknownMessage(phy_id=None, name=type(frame).__name__, data=b"")]
        message = frame.message
        if isinstance(message, _ANSWERS):
            timestamp = getattr(message, "timestamp", None)
            return [ServerAnswered(phy_id=frame.phy_id, name=message_name(message),
                                   server_time=None if timestamp is None else float(timestamp))]
        if isinstance(message, a.Ap3000CardSwipeReply):
            swipe = self._cards.pop(int.from_bytes(message.card_id, "big"), None)
            request = 0 if swipe is None else int.from_bytes(swipe.card_id, "big")
            return [CardAnswered(phy_id=frame.phy_id, request_id=request,
                                 accepted=message.account_status == 0,
                                 balance_cents=message.balance_or_expiry)]
        if isinstance(message, a.Ap3000FirmwarePacketSlave | a.Ap3000FirmwarePacketPowerBoard
                      | a.Ap3000FirmwarePacketHost):
            return self._firmware_packet(frame, message)
        command_id = f"{frame.message_id}"
        command = self._command(frame, message, command_id)
        if command is None:
            return [UnknownMessage(phy_id=frame.phy_id, name=message_name(message),
                                   data=frame.encode())]
        self._received[command_id] = _Received(frame.message_id, message)
        return [command]

    def _command(self, frame: Ap3000Frame, message: a.Ap3000Message, command_id: str
                 ) -> DeviceInput | None:
        phy_id = frame.phy_id
        if isinstance(message, a.Ap3000ModifyCharge):
            by_energy = message.mode == 2
            return ModifyCharge(command_id=command_id, phy_id=phy_id, port_no=message.port + 1,
                                duration_s=None if by_energy else message.value,
                                energy_wh=message.value * 10 if by_energy else None,
                                stop_when_full=message.mode in (1, 2))
        if isinstance(message, a.Ap3000ChargeControl):
            port_no = 255 if message.port == 0xFF else message.port + 1
            order_no = decode_order_no(message.order_no)
            if not message.charge_command:
                return StopCharging(command_id=command_id, phy_id=phy_id, port_no=port_no,
                                    order_no=order_no)
            if message.charge_value == 0:
                mode, duration, energy = ChargeMode.UNTIL_FULL, None, None
            elif message.rate_mode == 2:
                mode, duration, energy = ChargeMode.ENERGY, None, message.charge_value * 10
            else:
                mode, duration, energy = ChargeMode.TIME, message.charge_value, None
            return StartCharging(command_id=command_id, phy_id=phy_id, port_no=port_no,
                                 order_no=order_no, mode=mode, duration_s=duration,
                                 energy_wh=energy, amount_cents=message.balance_or_expiry)
        if isinstance(message, a.Ap3000QueryStatus):
            return QueryStatus(command_id=command_id, phy_id=phy_id)
        if isinstance(message, a.Ap3000SetParams11):
            return SetParams(command_id=command_id, phy_id=phy_id,
                             params={name: getattr(message, name) for name in _PARAMS})
        if isinstance(message, a.Ap3000QueryParams11):
            return QueryParams(command_id=command_id, phy_id=phy_id)
        return None

    def _firmware_packet(self, frame: Ap3000Frame, message: a.Ap3000FirmwarePacketSlave
                         | a.Ap3000FirmwarePacketPowerBoard | a.Ap3000FirmwarePacketHost
                         ) -> list[DeviceInput]:
        """Accept a firmware packet at once; hand over the image after the last one."""
        reply_class = _PACKETS[type(message)]
        self._out_direct.append(Ap3000Frame(
            physical_id=self.physical_id, message_id=frame.message_id,
            message=reply_class(result=0, packet_no=message.packet_no)).encode())
        blocks = self._firmware.setdefault(frame.command, {})
        blocks[message.packet_no] = message.firmware
        if message.packet_no < message.total_packets:
            return []
        del self._firmware[frame.command]
        ordered = [blocks[n] for n in sorted(blocks)]
        check = a.Ap3000FirmwareVerification.decode(ordered[-1])
        if check is not None:
            ordered.pop()
        return [SendFirmware(
            command_id=f"{frame.message_id}", phy_id=frame.phy_id, image=b"".join(ordered),
            target=FirmwareTarget(frame.command),
            device_type=None if check is None else check.device_type,
            firmware_version=None if check is None else check.firmware_version)]

    def take_output(self) -> bytes:
        """Answers the unit gives on its own (firmware packets), to write at once."""
        data = b"".join(self._out_direct)
        self._out_direct.clear()
        return data

    # --- device to server -----------------------------------------------------------

    def encode(self, event: DeviceOutput, now: float) -> bytes:
        if isinstance(event, DeviceRegistered):
            return self._up(a.Ap3000Register(
                firmware_version=self.firmware_version, port_count=len(self.port_status),
                virtual_id=0, device_type=event.device_type or self.device_type, work_mode=0))
        if isinstance(event, DeviceHeartbeat):
            return self._heartbeat(event.voltage_dv)
        if isinstance(event, PortStatusReported):
            self._set_status(event.port_no, event.raw_status)
            return self._heartbeat(event.voltage_dv)
        if isinstance(event, AlarmRaised):
            self._set_status(event.port_no or 1, event.fault_code)
            return self._heartbeat(None)
        if isinstance(event, StartConfirmed):
            return self._up(a.Ap3000OrderConfirm(
                port=event.port_no - 1, start_mode=1, card_id=bytes(4), charge_duration_s=0,
                order_no=encode_order_no(event.order_no or "")))
        if isinstance(event, ProgressReported):
            r = event.reading
            self._set_status(event.port_no, int(Ap3000PortStatus.CHARGING))
            return self._up(a.Ap3000PowerHeartbeat(
                port=event.port_no - 1, port_status=int(Ap3000PortStatus.CHARGING),
                charge_duration_s=r.duration_s, energy_0p01kwh=r.energy_centikwh,
                start_mode=1, power_0p1w=r.power_dw, max_power_0p1w=r.power_dw,
                min_power_0p1w=r.power_dw, avg_power_0p1w=r.power_dw,
                order_no=encode_order_no(event.order_no or ""), interval_energy_raw=0,
                peak_power_0p1w=event.peak_power_dw or r.power_dw,
                voltage_0p1v=r.voltage_dv or 2200, current_0p001a=r.current_ma or 0))
        if isinstance(event, SettlementReported):
            r = event.reading
            self._set_status(event.port_no, int(Ap3000PortStatus.IDLE))
            raw = event.end_reason_raw or int(_STOP_REASONS.get(event.end_reason,
                                                                _S.PRESET_DURATION))
            return self._up(a.Ap3000Settlement(
                charge_duration_s=r.duration_s, max_power_0p1w=event.peak_power_dw or 0,
                energy_0p01kwh=r.energy_centikwh, port=event.port_no - 1, start_mode=1,
                card_or_code=bytes(4), stop_reason=raw,
                order_no=encode_order_no(event.order_no or "")))
        if isinstance(event, CardPresented):
            card = int(event.card_no).to_bytes(4, "big")
            swipe = a.Ap3000CardSwipe(card_id=card, card_type=0,
                                      port=0xFF if event.port_no is None else event.port_no - 1,
                                      card_balance_fen=0)
            self._cards[int(event.card_no)] = swipe
            return self._up(swipe)
        if isinstance(event, ParamsReported):
            return self._param_reply(event)
        return self._answer(event)

    def _heartbeat(self, voltage_dv: int | None) -> bytes:
        return self._up(a.Ap3000Heartbeat(voltage_0p1v=voltage_dv or 2200,
                                          port_status=tuple(self.port_status),
                                          signal_strength=0, env_temp_raw=0))

    def set_port_status(self, port_no: int, code: int) -> None:
        """The status code *port_no* reports from now on (DeviceConnection's)."""
        self._set_status(port_no, code)

    def _set_status(self, port_no: int, code: int) -> None:
        if not 1 <= port_no <= len(self.port_status):
            raise LocalProtocolError(f"this unit has ports 1-{len(self.port_status)}")
        self.port_status[port_no - 1] = code

    def _param_reply(self, event: ParamsReported) -> bytes:
        received = self._received.pop(event.command_id or "", None)
        if received is None:
            raise LocalProtocolError(f"no query {event.command_id!r} to answer")
        p = event.params
        reply = a.Ap3000QueryParams11Reply(
            unplug_power=p.get("unplug_power", 0),
            unplug_detect_time_s=p.get("unplug_detect_time_s", 0),
            float_percent=p.get("float_percent", 0),
            float_detect_time_s=p.get("float_detect_time_s", 0),
            float_time_s=p.get("float_time_s", 0),
            heartbeat_interval_s=p.get("heartbeat_interval_s", 0))
        return self._reply(received, reply)

    def _answer(self, event: CommandAcknowledged | CommandRejected) -> bytes:
        received = self._received.pop(event.command_id, None)
        if received is None:
            raise LocalProtocolError(f"no command {event.command_id!r} to answer")
        ok = isinstance(event, CommandAcknowledged)
        message = received.message
        reply: a.Ap3000Message
        if isinstance(message, a.Ap3000ChargeControl):
            code = 0 if ok else (getattr(event, "raw_code", None) or 1)
            port = message.port if message.port != 0xFF else (
                (event.port_no or 1) - 1 if isinstance(event, CommandAcknowledged) else 0)
            reply = a.Ap3000ChargeControlReply(result=code, order_no=message.order_no,
                                               port=port)
        elif isinstance(message, a.Ap3000SetParams11):
            reply = a.Ap3000SetParams11Reply(result=0 if ok else 1)
        elif isinstance(message, a.Ap3000ModifyCharge):
            reply = a.Ap3000ModifyChargeReply(
                result=0 if ok else (getattr(event, "raw_code", None) or 1))
        elif isinstance(message, a.Ap3000QueryStatus):
            return b""  # 0x81 has no reply; the unit answers with its 0x20/0x21
        else:
            raise LocalProtocolError(f"cannot answer {type(message).__name__}")
        return self._reply(received, reply)

    def _reply(self, received: _Received, reply: a.Ap3000Message) -> bytes:
        return Ap3000Frame(physical_id=self.physical_id, message_id=received.message_id,
                           message=reply).encode()

    def _up(self, message: a.Ap3000Message) -> bytes:
        self._message_id = (self._message_id + 1) & 0xFFFF
        return Ap3000Frame(physical_id=self.physical_id, message_id=self._message_id,
                           message=message).encode()
