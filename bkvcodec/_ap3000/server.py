# What a server does with AP3000 frames (ap3000.md §7): the answers every
# required uplink gets at once (§7.1), how frames map to protocol-neutral events,
# and how neutral commands become 0x82/0x83/0x90 frames with the pacing and
# retransmission of §7.2. AP3000 units are already in the contract's units
# (seconds, 0.01 kWh, 0.1 W, 0.1 V, mA); ports are converted to 1-based here.
#
# Decisions where the reference leaves room, noted where they are made:
# - stop reasons map to the contract's end reasons per api.md §10.2 (table below);
# - 0x82 results 0, 3 and 9 mean the command was executed (§7.3), any other is a
#   rejection;
# - 0x81 (query status) has no reply: it is written unpaced and untracked, and its
#   effect is the 0x20/0x21 frames that follow;
# - parameters are set with 0x83 (its six fields, all required by the layout) and
#   queried with 0x90.
from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from .._commands import (
    Command,
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
    CardPresented,
    ChargeMode,
    CommandAcknowledged,
    CommandRejected,
    DeviceHeartbeat,
    DeviceRegistered,
    EndReason,
    FirmwareProgress,
    MeterReading,
    ModemIdentified,
    ParamsReported,
    PortState,
    PortStatusReported,
    ProgressReported,
    SettlementReported,
    StartConfirmed,
    UnknownMessage,
    UpgradeRequested,
)
from .._roles import ConnectionEvent, RulesContext
from .._tracker import CommandTiming, MessageIds
from .._types import ProtocolFamily
from . import messages as a
from .codec import Ap3000Frame
from .jsonform import message_name
from .nonframe import IccidAnnouncement, LinkKeepAlive
from .timing import AP3000_REQUIRED_REPLIES, AP3000_TIMING, Ap3000Timing
from .values import (
    Ap3000PortStatus,
    Ap3000StopReason,
    decode_order_no,
    encode_order_no,
    parse_phy_id,
)

__all__ = ["AP3000_END_REASONS", "Ap3000ServerRules", "port_state"]

_S = Ap3000StopReason
#: AP3000 stop reasons (ap3000.md §3.4) in the contract's names (api.md §10.2).
AP3000_END_REASONS: Mapping[int, EndReason] = {
    _S.FULL: EndReason.FULL, _S.MAX_DURATION: EndReason.TIMEOUT,
    _S.PRESET_DURATION: EndReason.NORMAL, _S.PRESET_ENERGY: EndReason.NORMAL,
    _S.UNPLUGGED: EndReason.NORMAL, _S.LOAD_TOO_HIGH: EndReason.FAULT,
    _S.SERVER_STOP: EndReason.REMOTE_STOP, _S.DYNAMIC_OVERLOAD: EndReason.FAULT,
    _S.POWER_TOO_LOW: EndReason.FULL, _S.AMBIENT_TEMPERATURE: EndReason.FAULT,
    _S.PORT_TEMPERATURE: EndReason.FAULT, _S.OVER_CURRENT: EndReason.FAULT,
    _S.UNPLUGGED_STUCK_CONTACT: EndReason.NORMAL, _S.NO_POWER: EndReason.FAULT,
    _S.PRECHECK_RELAY_OR_FUSE: EndReason.FAULT, _S.WATER_IMMERSION: EndReason.FAULT,
    _S.FIRE_SUPPRESSION_THIS_PORT: EndReason.FAULT,
    _S.FIRE_SUPPRESSION_OTHER_PORT: EndReason.FAULT,
    _S.CABINET_OPENED_BY_USER: EndReason.USER_STOP, _S.CABINET_DOOR_OPEN: EndReason.FAULT,
    _S.EXTERNAL_OPERATION: EndReason.USER_STOP, _S.CARD_SWIPE: EndReason.USER_STOP,
    _S.SERVER_FORCED_STOP: EndReason.REMOTE_STOP, _S.FIRE_PROTECTION: EndReason.FAULT,
    _S.MEMORY_ERROR: EndReason.FAULT, _S.OVER_VOLTAGE: EndReason.FAULT,
    _S.UNDER_VOLTAGE: EndReason.FAULT, _S.LOW_POWER_CUTOFF: EndReason.FULL,
}

_EXECUTED = {0x00, 0x03, 0x09}
_REJECTIONS = {1: "no_charger", 2: "port_busy", 4: "no_such_port", 5: "several_ports_waiting",
               6: "total_power_too_high", 7: "memory_damaged", 8: "precheck_relay_or_fuse",
               10: "precheck_short_circuit", 11: "smoke_alarm", 12: "over_voltage",
               13: "under_voltage", 14: "no_response"}
_SET_PARAMS = tuple(f.name for f in dataclasses.fields(a.Ap3000SetParams11)
                    if f.name != "extra")


_FIRMWARE_REPLIES = (a.Ap3000FirmwarePacketSlaveReply, a.Ap3000FirmwarePacketPowerBoardReply,
                     a.Ap3000FirmwarePacketHostReply)
_FIRMWARE_REFUSALS = {2: "image_checksum_wrong", 3: "wrong_device_type",
                      4: "verification_packet_missing", 5: "upgrade_refused"}
_PACKET_SIZE = 200
_PACKET_CLASSES: dict[FirmwareTarget, type[a.Ap3000FirmwarePacketSlave]
                      | type[a.Ap3000FirmwarePacketPowerBoard]
                      | type[a.Ap3000FirmwarePacketHost]] = {
    FirmwareTarget.SLAVE: a.Ap3000FirmwarePacketSlave,
    FirmwareTarget.POWER_BOARD: a.Ap3000FirmwarePacketPowerBoard,
    FirmwareTarget.HOST: a.Ap3000FirmwarePacketHost,
}


@dataclass(frozen=True, slots=True)
class _Transfer:
    """A firmware image cut into the 200-byte packets of ap3000.md §5.10."""

    command: int
    target: FirmwareTarget
    blocks: tuple[bytes, ...]

    @classmethod
    def start(cls, command: SendFirmware) -> _Transfer:
        if not command.image:
            raise LocalProtocolError("SendFirmware needs a non-empty image")
        image = command.image
        blocks = [image[i:i + _PACKET_SIZE].ljust(_PACKET_SIZE, b"\0")
                  for i in range(0, len(image), _PACKET_SIZE)]
        if command.device_type is not None and command.firmware_version is not None:
            blocks.append(a.Ap3000FirmwareVerification.for_image(
                image, device_type=command.device_type,
                firmware_version=command.firmware_version).encode())
        if len(blocks) > 0xFFFF:
            raise LocalProtocolError("firmware image too large for 16-bit packet numbers")
        return cls(command.target.value, command.target, tuple(blocks))

    @property
    def total(self) -> int:
        return len(self.blocks)

    def packet(self, number: int) -> a.Ap3000Message:
        """Packet *number* (1-based)."""
        packet: a.Ap3000Message = _PACKET_CLASSES[self.target](
            total_packets=self.total, packet_no=number, firmware=self.blocks[number - 1])
        return packet


def port_state(code: int) -> PortState:
    """The API port state for an AP3000 port status (ap3000.md §3.3)."""
    if code == Ap3000PortStatus.CHARGING or code == Ap3000PortStatus.FLOAT_CHARGING:
        return PortState.CHARGING
    if code >= 0x04:
        return PortState.FAULT
    return PortState.IDLE


def _status_name(code: int) -> str:
    try:
        return Ap3000PortStatus(code).name.lower().replace("_", " ")
    except ValueError:
        return f"status {code:#04x}"


def _temperature(raw: int | None) -> int | None:
    return None if not raw else raw - 65


def _required_reply(frame: Ap3000Frame, now: float) -> a.Ap3000Message | None:
    """The answer :data:`AP3000_REQUIRED_REPLIES` names for an uplink, or None. Card
    swipes are answered by the application (``answer_card``)."""
    message = frame.message
    reply_class = AP3000_REQUIRED_REPLIES.get(type(message))
    if reply_class is None or isinstance(message, a.Ap3000CardSwipe):
        return None
    if reply_class is a.Ap3000OrderConfirmReply:
        assert isinstance(message, a.Ap3000OrderConfirm)
        return a.Ap3000OrderConfirmReply(port=message.port, result=0)
    if reply_class is a.Ap3000TimeReply:
        return a.Ap3000TimeReply(timestamp=int(now))
    if reply_class is a.Ap3000HostTimeReply:
        return a.Ap3000HostTimeReply(timestamp=int(now))
    if reply_class is a.Ap3000HeartbeatReply:
        return a.Ap3000HeartbeatReply(result=0)
    if reply_class is a.Ap3000LegacyHeartbeatReply:
        return a.Ap3000LegacyHeartbeatReply(result=0)
    if reply_class is a.Ap3000RegisterReply:
        return a.Ap3000RegisterReply(result=0)
    if reply_class is a.Ap3000SettlementReply:
        return a.Ap3000SettlementReply(result=0)
    raise AssertionError(f"no answer is built for {reply_class.__name__}")


class Ap3000ServerRules:
    """The server's behaviour on an AP3000 connection."""

    def __init__(self, *, timing: Ap3000Timing = AP3000_TIMING,
                 end_reasons: Mapping[int, EndReason] = AP3000_END_REASONS,
                 message_ids: MessageIds | None = None) -> None:
        self.timing = CommandTiming(
            reply_timeout_s=timing.reply_timeout_s,
            max_retransmissions=timing.max_retransmissions,
            min_spacing_s=timing.min_command_spacing_s)
        self.firmware_timing = CommandTiming(
            reply_timeout_s=timing.firmware_reply_timeout_s,
            max_retransmissions=timing.firmware_max_resends,
            min_spacing_s=timing.min_command_spacing_s)
        self.end_reasons = end_reasons
        self.message_ids = message_ids or MessageIds(modulus=0x10000)
        self._transfers: dict[Hashable, _Transfer] = {}
        self._faults: dict[tuple[str, int], int] = {}
        self._running: dict[tuple[str, int], str] = {}
        self._cards: dict[int, Ap3000Frame] = {}
        self._card_requests = 0

    # --- frames in ------------------------------------------------------------------

    def on_frame(self, frame: object, now: float,
                 context: RulesContext) -> list[ConnectionEvent]:
        if isinstance(frame, IccidAnnouncement):
            return [ModemIdentified(iccid=frame.iccid)]
        if isinstance(frame, LinkKeepAlive):
            return []
        if not isinstance(frame, Ap3000Frame):
            return [UnknownMessage(phy_id=None, name=type(frame).__name__, data=b"")]
        message = frame.message
        phy_id = frame.phy_id
        reply = _required_reply(frame, now)
        if isinstance(message, a.Ap3000Settlement | a.Ap3000OrderConfirm):
            # Holdable answers: the device forgets the report once answered.
            report = (self._settled(phy_id, message) if isinstance(message, a.Ap3000Settlement)
                      else StartConfirmed(phy_id=phy_id, socket_no=1, port_no=message.port + 1,
                                          order_no=decode_order_no(message.order_no)))
            assert reply is not None
            context.answer(report, frame.reply(reply).encode())
            return [report]
        if reply is not None:
            context.reply(frame.reply(reply).encode())
        if isinstance(message, a.Ap3000Register):
            return [DeviceRegistered(
                phy_id=phy_id, protocol=ProtocolFamily.AP3000,
                firmware=f"V{message.firmware_version / 100:.2f}",
                port_count=message.port_count, device_type=message.device_type)]
        if isinstance(message, a.Ap3000Heartbeat | a.Ap3000LegacyHeartbeat):
            events: list[ConnectionEvent] = [DeviceHeartbeat(
                phy_id=phy_id, protocol=ProtocolFamily.AP3000,
                voltage_dv=message.voltage_0p1v,
                rssi=message.signal_strength)]
            powers = getattr(message, "port_power_0p1w", ())
            for index, code in enumerate(message.port_status):
                events += self._port(phy_id, index, code,
                                     powers[index] if index < len(powers) else None)
            return events
        if isinstance(message, a.Ap3000HostHeartbeat):
            rssi = message.signal_strength
            return [DeviceHeartbeat(phy_id=phy_id, protocol=ProtocolFamily.AP3000,
                                    iccid=message.iccid, rssi=rssi - 100 if rssi > 99 else rssi,
                                    firmware=f"V{message.firmware_version / 100:.2f}")]
        if isinstance(message, a.Ap3000PowerHeartbeat):
            return [self._progress(phy_id, message)]
        if isinstance(message, a.Ap3000CardSwipe):
            return [self._card(frame, message)]
        if isinstance(message, a.Ap3000UpgradeRequest):
            return [UpgradeRequested(phy_id=phy_id, device_type=message.device_type,
                                     firmware_version=message.firmware_version)]
        if isinstance(message, a.Ap3000Alarm):
            return [AlarmRaised(phy_id=phy_id, alarm_type=f"cabinet_{message.alarm_type}",
                                fault_code=message.alarm_type,
                                fault_msg=f"cabinet alarm {message.alarm_type}",
                                port_no=message.port + 1 if message.port else None)]
        if isinstance(message, a.Ap3000ChargeControlReply):
            return self._control_reply(frame, message, now, context)
        if isinstance(message, a.Ap3000SetParams11Reply | a.Ap3000ModifyChargeReply):
            return self._result(frame, message.result, now, context)
        if isinstance(message, _FIRMWARE_REPLIES):
            return self._firmware_reply(frame, message, now, context)
        if isinstance(message, a.Ap3000QueryParams11Reply):
            pending = context.resolve((frame.physical_id, frame.command, frame.message_id), now)
            params = {name: getattr(message, name) for name in _SET_PARAMS}
            command_id = None if pending is None else pending.command_id
            events = [ParamsReported(phy_id=phy_id, params=params, command_id=command_id)]
            if command_id is not None:
                events.append(CommandAcknowledged(command_id=command_id, phy_id=phy_id))
            return events
        if reply is not None:
            return []
        return [UnknownMessage(phy_id=phy_id, name=message_name(message), data=frame.encode())]

    def _port(self, phy_id: str, index: int, code: int,
              power_dw: int | None) -> list[ConnectionEvent]:
        port_no = index + 1
        state = port_state(code)
        fault = code if state is PortState.FAULT else 0
        events: list[ConnectionEvent] = []
        if fault and self._faults.get((phy_id, port_no)) != fault:
            events.append(AlarmRaised(phy_id=phy_id, alarm_type="port_fault", fault_code=fault,
                                      fault_msg=_status_name(code), socket_no=1,
                                      port_no=port_no))
        self._faults[(phy_id, port_no)] = fault
        events.append(PortStatusReported(
            phy_id=phy_id, socket_no=1, port_no=port_no, state=state, raw_status=code,
            fault_code=fault, fault_msg=_status_name(code) if fault else "",
            power_dw=power_dw, order_no=self._running.get((phy_id, port_no))))
        return events

    def _progress(self, phy_id: str, message: a.Ap3000PowerHeartbeat) -> ProgressReported:
        order_no = decode_order_no(message.order_no)
        self._running[(phy_id, message.port + 1)] = order_no
        return ProgressReported(
            phy_id=phy_id, socket_no=1, port_no=message.port + 1, order_no=order_no,
            peak_power_dw=message.peak_power_0p1w,
            reading=MeterReading(duration_s=message.charge_duration_s,
                                 energy_centikwh=message.energy_0p01kwh,
                                 power_dw=message.power_0p1w,
                                 voltage_dv=message.voltage_0p1v,
                                 current_ma=message.current_0p001a,
                                 temperature_c=_temperature(message.port_temp_raw)))

    def _settled(self, phy_id: str, message: a.Ap3000Settlement) -> SettlementReported:
        self._running.pop((phy_id, message.port + 1), None)
        card = message.card_or_code.hex().upper() if any(message.card_or_code) else None
        return SettlementReported(
            phy_id=phy_id, socket_no=1, port_no=message.port + 1,
            order_no=decode_order_no(message.order_no),
            reading=MeterReading(duration_s=message.charge_duration_s,
                                 energy_centikwh=message.energy_0p01kwh),
            peak_power_dw=message.max_power_0p1w,
            end_reason=self.end_reasons.get(message.stop_reason, EndReason.NORMAL),
            end_reason_raw=message.stop_reason, card_no=card)

    def _card(self, frame: Ap3000Frame, message: a.Ap3000CardSwipe) -> CardPresented:
        self._card_requests += 1
        self._cards[self._card_requests] = frame
        balance_only = message.port == 0xFF
        return CardPresented(
            phy_id=frame.phy_id, socket_no=1,
            port_no=None if balance_only else message.port + 1,
            card_no=str(int.from_bytes(message.card_id, "big")),
            request_id=self._card_requests, balance_only=balance_only)

    def _control_reply(self, frame: Ap3000Frame, message: a.Ap3000ChargeControlReply,
                       now: float, context: RulesContext) -> list[ConnectionEvent]:
        pending = context.resolve((frame.physical_id, frame.command, frame.message_id), now)
        if pending is None:
            return [UnknownMessage(phy_id=frame.phy_id, name="charge_control_reply",
                                   data=frame.encode())]
        if message.result in _EXECUTED:
            port_no = None if message.port is None else message.port + 1
            return [CommandAcknowledged(command_id=pending.command_id, phy_id=frame.phy_id,
                                        port_no=port_no)]
        return [CommandRejected(command_id=pending.command_id, phy_id=frame.phy_id,
                                reason=_REJECTIONS.get(message.result, "device_rejected"),
                                raw_code=message.result)]

    def _result(self, frame: Ap3000Frame, result: int, now: float,
                context: RulesContext) -> list[ConnectionEvent]:
        pending = context.resolve((frame.physical_id, frame.command, frame.message_id), now)
        if pending is None:
            return []
        if result == 0:
            return [CommandAcknowledged(command_id=pending.command_id, phy_id=frame.phy_id)]
        return [CommandRejected(command_id=pending.command_id, phy_id=frame.phy_id,
                                reason="device_rejected", raw_code=result)]

    # --- commands out ----------------------------------------------------------------

    def encode(self, command: Command, now: float) -> tuple[bytes, Hashable | None]:
        physical_id = parse_phy_id(command.phy_id)
        message_id = self.message_ids.next(command.phy_id)
        message: a.Ap3000Message
        if isinstance(command, StartCharging):
            message = self._start(command)
        elif isinstance(command, StopCharging):
            order_no = command.order_no or self._running.get((command.phy_id, command.port_no))
            if order_no is None:
                raise LocalProtocolError(
                    "an AP3000 stop needs the order number (the device checks it)")
            message = a.Ap3000ChargeControl(
                rate_mode=0, balance_or_expiry=0, port=command.port_no - 1, charge_command=0,
                charge_value=0, order_no=encode_order_no(order_no))
        elif isinstance(command, QueryStatus):
            frame = Ap3000Frame(physical_id=physical_id, message_id=message_id,
                                message=a.Ap3000QueryStatus())
            return frame.encode(), None
        elif isinstance(command, SetParams):
            missing = [name for name in _SET_PARAMS if name not in command.params]
            unknown = sorted(set(command.params) - set(_SET_PARAMS))
            if missing or unknown:
                raise LocalProtocolError(
                    f"AP3000 0x83 sets exactly {', '.join(_SET_PARAMS)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {', '.join(unknown)}" if unknown else ""))
            p = command.params
            message = a.Ap3000SetParams11(
                unplug_power=p["unplug_power"], unplug_detect_time_s=p["unplug_detect_time_s"],
                float_percent=p["float_percent"], float_detect_time_s=p["float_detect_time_s"],
                float_time_s=p["float_time_s"], heartbeat_interval_s=p["heartbeat_interval_s"])
        elif isinstance(command, QueryParams):
            message = a.Ap3000QueryParams11()
        elif isinstance(command, ModifyCharge):
            message = self._modify(command)
        elif isinstance(command, SendFirmware):
            transfer = _Transfer.start(command)
            message = transfer.packet(1)
            key = (physical_id, transfer.command, message_id)
            self._transfers[key] = transfer
            frame = Ap3000Frame(physical_id=physical_id, message_id=message_id,
                                message=message)
            return frame.encode(), key
        else:
            raise LocalProtocolError(
                f"AP3000 devices cannot {type(command).__name__} through this library "
                "(firmware transfer and socket networking are not AP3000 commands it drives)")
        frame = Ap3000Frame(physical_id=physical_id, message_id=message_id, message=message)
        return frame.encode(), (physical_id, frame.command, message_id)

    def _start(self, command: StartCharging) -> a.Ap3000ChargeControl:
        if command.mode is ChargeMode.TIME:
            if not command.duration_s or command.duration_s > 0xFFFF:
                raise LocalProtocolError("an AP3000 time order needs 1-65535 seconds")
            rate_mode, value = 0, command.duration_s
        elif command.mode is ChargeMode.ENERGY:
            if not command.energy_wh or command.energy_wh // 10 > 0xFFFF:
                raise LocalProtocolError("an AP3000 energy order needs 10-655350 Wh")
            rate_mode, value = 2, max(1, command.energy_wh // 10)
        elif command.mode is ChargeMode.UNTIL_FULL:
            rate_mode, value = 0, 0
        else:
            raise LocalProtocolError("AP3000 devices have no power-tier orders")
        port = 0xFF if command.port_no == 255 else command.port_no - 1
        self._running[(command.phy_id, command.port_no)] = command.order_no
        return a.Ap3000ChargeControl(
            rate_mode=rate_mode, balance_or_expiry=command.amount_cents or 0, port=port,
            charge_command=1, charge_value=value, order_no=encode_order_no(command.order_no))

    def _firmware_reply(self, frame: Ap3000Frame,
                        message: a.Ap3000FirmwarePacketSlaveReply
                        | a.Ap3000FirmwarePacketPowerBoardReply
                        | a.Ap3000FirmwarePacketHostReply,
                        now: float, context: RulesContext) -> list[ConnectionEvent]:
        key = (frame.physical_id, frame.command, frame.message_id)
        transfer = self._transfers.pop(key, None)
        pending = context.resolve(key, now)
        if transfer is None or pending is None:
            return [UnknownMessage(phy_id=frame.phy_id, name=message_name(message),
                                   data=frame.encode())]
        if message.result == 0 and message.packet_no >= transfer.total:
            return [CommandAcknowledged(command_id=pending.command_id, phy_id=frame.phy_id)]
        if message.result not in (0, 1):
            return [CommandRejected(command_id=pending.command_id, phy_id=frame.phy_id,
                                    reason=_FIRMWARE_REFUSALS.get(message.result,
                                                                  "firmware_refused"),
                                    raw_code=message.result)]
        # 0: send the next packet; 1: resend the one after the last received correctly.
        # Either way the next packet is the one after the last the unit names (§9 A6).
        message_id = self.message_ids.next(frame.phy_id)
        next_no = min(message.packet_no + 1, transfer.total)
        next_key = (frame.physical_id, frame.command, message_id)
        self._transfers[next_key] = transfer
        data = Ap3000Frame(physical_id=frame.physical_id, message_id=message_id,
                           message=transfer.packet(next_no)).encode()
        context.submit(pending.command_id, frame.phy_id, next_key, data, now,
                       self.firmware_timing)
        return [FirmwareProgress(command_id=pending.command_id, phy_id=frame.phy_id,
                                 packets_done=message.packet_no, packets_total=transfer.total)]

    @staticmethod
    def _modify(command: ModifyCharge) -> a.Ap3000ModifyCharge:
        """0x8A (ap3000.md §5.3): mode 0 timed, 1 timed with stop-when-full, 2 energy."""
        if (command.duration_s is None) == (command.energy_wh is None):
            raise LocalProtocolError("ModifyCharge takes exactly one of duration_s, energy_wh")
        if command.duration_s is not None:
            mode, value = (1 if command.stop_when_full else 0), command.duration_s
        else:
            mode, value = 2, (command.energy_wh or 0) // 10
        if not 0 <= value <= 0xFFFF:
            raise LocalProtocolError(f"ModifyCharge value {value} does not fit 16 bits")
        return a.Ap3000ModifyCharge(mode=mode, port=command.port_no - 1, value=value)

    def command_timing(self, command: Command) -> CommandTiming | None:
        """Firmware packets wait 30 s and are resent 3 times (ap3000.md §5.10)."""
        return self.firmware_timing if isinstance(command, SendFirmware) else None

    def stop_sent(self, command: StopCharging) -> None:
        """Nothing to remember: AP3000 settlements carry their own stop reason."""

    def answer_card(self, event: CardPresented, *, accept: bool, command_id: str,
                    order_no: str | None, now: float, balance_cents: int,
                    duration_s: int | None, energy_wh: int | None,
                    refusal_code: int | None) -> tuple[bytes, Hashable | None]:
        frame = self._cards.pop(event.request_id)
        swipe = frame.message
        assert isinstance(swipe, a.Ap3000CardSwipe)
        status = 0 if accept else (refusal_code if refusal_code is not None else 0x06)
        reply = a.Ap3000CardSwipeReply(card_id=swipe.card_id, account_status=status,
                                       rate_mode=0, balance_or_expiry=balance_cents,
                                       port=swipe.port)
        return frame.reply(reply).encode(), None

