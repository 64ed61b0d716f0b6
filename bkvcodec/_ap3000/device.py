# What an AP3000 unit does (the device role of ap3000.md §7): how the server's
# frames become neutral commands and answers, and how a unit's neutral reports
# and answers become frames. The mirror image of ``server.py``.
#
# Every server command of §5 and §6.6 reaches the application as a DeviceInput:
# the neutral command where one exists (0x82 StartCharging / StopCharging, 0x8A
# ModifyCharge, 0x81 QueryStatus, 0x83-0x86 and 0x97 SetParams, 0x90-0x93
# QueryParams), else SendMessage with the decoded message and the command id
# ``"<command hex>-<message id>"`` (``"96-7"``). Firmware packets (0xE0-0xE2) are
# answered at once, as units do, and the image is handed over after the last one.
#
# The application answers with CommandAcknowledged (its ``reply`` is sent as given,
# else the command's default success reply), CommandRejected (the reply with result
# ``raw_code``) or, for a query, ParamsReported. The defaults:
# - a result byte of 0 (0x82 also echoes the order number and the port);
# - 0x90-0x93: the unit's stored parameters, which start at the defaults of
#   §5.4-§5.7 (0x85 overload power: 2000 W, the dual-socket limit) and follow every
#   acknowledged SetParams;
# - 0x8B: result 0 and ``read_length`` zero bytes (the role has no EEPROM);
# - 0x72 echoes the order number, 0xF8 the packet number;
# - 0x81 has no reply: the unit sends a 0x21 heartbeat with its port statuses (the
#   frame a 0x81 asks for; pass a register or legacy heartbeat as ``reply`` instead);
# - 0xE4 has no reply: acknowledging it sends nothing.
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .._commands import (
    FirmwareTarget,
    ModifyCharge,
    QueryParams,
    QueryStatus,
    SendFirmware,
    SendMessage,
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

__all__ = ["AP3000_DEFAULT_PARAMS", "Ap3000DeviceRules"]

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

#: The parameters a unit starts with (the reference's defaults).
AP3000_DEFAULT_PARAMS = a.PARAMETER_DEFAULTS


class _ResultReply(Protocol):
    """A reply class whose only field is ``result``."""

    def __call__(self, *, result: int) -> a.Ap3000Message: ...


#: The replies that carry nothing but a result byte.
_RESULT_REPLIES: dict[type[a.Ap3000Message], _ResultReply] = {
    a.Ap3000HostSetServer: a.Ap3000HostSetServerReply,
    a.Ap3000SetParams11: a.Ap3000SetParams11Reply,
    a.Ap3000SetParams12: a.Ap3000SetParams12Reply,
    a.Ap3000SetLimits: a.Ap3000SetLimitsReply,
    a.Ap3000SetCardParams: a.Ap3000SetCardParamsReply,
    a.Ap3000Reboot: a.Ap3000RebootReply,
    a.Ap3000ClearMemory: a.Ap3000ClearMemoryReply,
    a.Ap3000PlayVoice: a.Ap3000PlayVoiceReply,
    a.Ap3000ModifyCharge: a.Ap3000ModifyChargeReply,
    a.Ap3000WriteEeprom: a.Ap3000WriteEepromReply,
    a.Ap3000SetWorkMode: a.Ap3000SetWorkModeReply,
    a.Ap3000SetQrCode: a.Ap3000SetQrCodeReply,
    a.Ap3000SetTcCardMode: a.Ap3000SetTcCardModeReply,
    a.Ap3000TempQrCode: a.Ap3000TempQrCodeReply,
    a.Ap3000Locate: a.Ap3000LocateReply,
    a.Ap3000SetParams13: a.Ap3000SetParams13Reply,
    a.Ap3000MultiFunction: a.Ap3000MultiFunctionReply,
}
#: What may answer a 0x81: the frames it makes a unit send.
_STATUS_FRAMES = (a.Ap3000Register, a.Ap3000LegacyHeartbeat, a.Ap3000Heartbeat)


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
        #: The unit's parameters (what 0x90-0x93 report), by field name.
        self.params = dict(AP3000_DEFAULT_PARAMS)
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
        command_id = f"{frame.command:02x}-{frame.message_id}"
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
        if isinstance(message, a.Ap3000SetParams11 | a.Ap3000SetParams12 | a.Ap3000SetLimits
                      | a.Ap3000SetCardParams | a.Ap3000SetParams13):
            return SetParams(command_id=command_id, phy_id=phy_id,
                             params=a.parameters(message))
        if isinstance(message, a.Ap3000QueryParams11 | a.Ap3000QueryParams12
                      | a.Ap3000QueryLimits | a.Ap3000QueryCardParams):
            return QueryParams(command_id=command_id, phy_id=phy_id,
                               names=a.field_names(a.PARAMETER_QUERIES[type(message)]))
        try:
            return SendMessage(command_id=command_id, phy_id=phy_id, message=message)
        except LocalProtocolError:  # an unknown command, or a value ap3000.md does not allow
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
            command_id=f"{frame.command:02x}-{frame.message_id}", phy_id=frame.phy_id,
            image=b"".join(ordered), target=FirmwareTarget(frame.command),
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
        return self._up(self._heartbeat_message(voltage_dv))

    def _heartbeat_message(self, voltage_dv: int | None) -> a.Ap3000Heartbeat:
        return a.Ap3000Heartbeat(voltage_0p1v=voltage_dv or 2200,
                                 port_status=tuple(self.port_status),
                                 signal_strength=0, env_temp_raw=0)

    def set_port_status(self, port_no: int, code: int) -> None:
        """The status code *port_no* reports from now on (DeviceConnection's)."""
        self._set_status(port_no, code)

    def _set_status(self, port_no: int, code: int) -> None:
        if not 1 <= port_no <= len(self.port_status):
            raise LocalProtocolError(f"this unit has ports 1-{len(self.port_status)}")
        self.port_status[port_no - 1] = code

    def _param_reply(self, event: ParamsReported) -> bytes:
        """Answer a 0x90-0x93 with the values *event* reports, the stored ones for the
        fields it leaves out; the unit stores what it reports."""
        received = self._received.get(event.command_id or "")
        query = None if received is None else received.message
        if not isinstance(query, a.Ap3000QueryParams11 | a.Ap3000QueryParams12
                          | a.Ap3000QueryLimits | a.Ap3000QueryCardParams):
            raise LocalProtocolError(f"no parameter query {event.command_id!r} to answer")
        assert received is not None
        reply_class = a.PARAMETER_QUERIES[type(query)]
        names = a.field_names(reply_class)
        foreign = sorted(set(event.params) - set(names))
        if foreign:
            raise LocalProtocolError(
                f"{message_name(reply_class)} carries {', '.join(names)}; not "
                f"{', '.join(foreign)}")
        reply = a.parameter_message(reply_class, {**self.params, **event.params})
        data = self._reply(received, reply)
        self.params.update(a.parameters(reply))
        del self._received[event.command_id or ""]
        return data

    def _answer(self, event: CommandAcknowledged | CommandRejected) -> bytes:
        """The reply to a received command: *event*'s own, else the default (see top)."""
        received = self._received.get(event.command_id)
        if received is None:
            raise LocalProtocolError(f"no command {event.command_id!r} to answer")
        message = received.message
        reply: a.Ap3000Message | None
        if isinstance(event, CommandRejected):
            reply = self._failure(message, 1 if event.raw_code is None else event.raw_code)
        elif event.reply is not None:
            if not isinstance(event.reply, a.Ap3000Message):
                raise LocalProtocolError(
                    f"{type(event.reply).__name__} is a BKV message; this is an AP3000 unit")
            reply = event.reply
        else:
            reply = self._success(message, event)
        if reply is None:  # 0xE4: no reply documented
            data = b""
        elif isinstance(message, a.Ap3000QueryStatus):
            if not isinstance(reply, _STATUS_FRAMES):
                raise LocalProtocolError(
                    "a 0x81 is answered by the unit's 0x20, 0x01 or 0x21, not "
                    f"{type(reply).__name__}")
            data = self._up(reply)
        else:
            data = self._reply(received, reply)
        if isinstance(message, a.Ap3000SetParams11 | a.Ap3000SetParams12 | a.Ap3000SetLimits
                      | a.Ap3000SetCardParams | a.Ap3000SetParams13) and (
                getattr(reply, "result", None) == 0):
            self.params.update(a.parameters(message))
        del self._received[event.command_id]
        return data

    def _success(self, message: a.Ap3000Message,
                 event: CommandAcknowledged) -> a.Ap3000Message | None:
        """The default success reply to *message*."""
        if isinstance(message, a.Ap3000ChargeControl):
            port = message.port if message.port != 0xFF else (event.port_no or 1) - 1
            return a.Ap3000ChargeControlReply(result=0, order_no=message.order_no, port=port)
        if isinstance(message, a.Ap3000QueryParams11 | a.Ap3000QueryParams12
                      | a.Ap3000QueryLimits | a.Ap3000QueryCardParams):
            return a.parameter_message(a.PARAMETER_QUERIES[type(message)], self.params)
        if isinstance(message, a.Ap3000QueryStatus):
            return self._heartbeat_message(None)
        if isinstance(message, a.Ap3000TriggerSelfUpgrade):
            return None
        return self._failure(message, 0)

    def _failure(self, message: a.Ap3000Message, result: int) -> a.Ap3000Message:
        """The reply to *message* with *result* (0 for a plain success).

        Raises:
            LocalProtocolError: *message*'s reply has no result byte (0x81, 0x90-0x93,
                0xE4), so the unit cannot refuse it.
        """
        if isinstance(message, a.Ap3000ChargeControl):
            port = message.port if message.port != 0xFF else 0
            return a.Ap3000ChargeControlReply(result=result, order_no=message.order_no,
                                              port=port)
        if isinstance(message, a.Ap3000ReadEeprom):
            return a.Ap3000ReadEepromReply(
                result=result, eeprom_data=bytes(message.read_length) if result == 0 else b"")
        if isinstance(message, a.Ap3000CabinetStop):
            return a.Ap3000CabinetStopReply(result=result, order_no=message.order_no)
        if isinstance(message, a.Ap3000LegacyFirmwarePacket):
            return a.Ap3000LegacyFirmwarePacketReply(result=result, packet_no=message.packet_no)
        reply_class = _RESULT_REPLIES.get(type(message))
        if reply_class is None:
            raise LocalProtocolError(
                f"{message_name(message)} has no result byte to refuse with: answer it, or "
                "let the server time it out")
        return reply_class(result=result)

    def _reply(self, received: _Received, reply: a.Ap3000Message) -> bytes:
        """*reply* to *received*, with its message id (raises LocalProtocolError when
        *reply* does not answer that command)."""
        request = Ap3000Frame(physical_id=self.physical_id, message_id=received.message_id,
                              message=received.message)
        return request.reply(reply).encode()

    def _up(self, message: a.Ap3000Message) -> bytes:
        self._message_id = (self._message_id + 1) & 0xFFFF
        return Ap3000Frame(physical_id=self.physical_id, message_id=self._message_id,
                           message=message).encode()
