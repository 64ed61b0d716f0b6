# What a server does with AP3000 frames (ap3000.md §7): the answers every
# required uplink gets at once (§7.1), how frames map to protocol-neutral events,
# and how commands become downlink frames with the pacing and retransmission of
# §7.2. AP3000 units are already in the contract's units (seconds, 0.01 kWh,
# 0.1 W, 0.1 V, mA); ports are converted to 1-based here.
#
# Every command is keyed on (physical id, command byte, message id) (§2.5) and
# resolved by the unit's reply with the same command and message id: result 0 (or
# the command's own success codes) is a CommandAcknowledged carrying the reply, any
# other result a CommandRejected named after ap3000.md §5 where the reference names
# the code. Decisions where the reference leaves room, noted where they are made:
# - stop reasons map to the contract's end reasons per api.md §10.2 (table below);
# - 0x82 results 0, 3 and 9 mean the command was executed (§7.3), any other is a
#   rejection;
# - 0x81 (query status) has no reply of its own (§5.1): the unit's next 0x20, 0x01
#   or 0x21 (the frames a 0x81 makes it send) answers it; without one it is
#   retransmitted and times out like any command;
# - 0xE4 (trigger self-upgrade) has no documented reply: it is paced and reported
#   acknowledged once written (key None), as are downlinks that are themselves
#   answers to uplinks;
# - 0x87 (reboot) is tracked like any command although the unit may restart before
#   it answers; its outcome is then a timeout, or a drop when the connection closes;
# - SetParams picks the set command (0x83-0x86, 0x97) whose fields it names, and
#   QueryParams the query (0x90-0x93) whose reply carries the names it asks for.
from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

from .._commands import (
    Command,
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
from .._fastinit import frozen_record
from .._roles import ConnectionEvent, RulesContext
from .._tracker import CommandTiming, MessageIds, remember
from .._types import Direction, ProtocolFamily
from . import messages as a
from .codec import Ap3000Frame, check_downlink
from .jsonform import message_name
from .messages import Ap3000Message
from .nonframe import IccidAnnouncement, LinkKeepAlive
from .timing import AP3000_REQUIRED_REPLIES, AP3000_TIMING, Ap3000Timing
from .values import (
    Ap3000PortStatus,
    Ap3000StopReason,
    decode_order_no,
    encode_order_no,
    parse_phy_id,
)

__all__ = ["AP3000_END_REASONS", "Ap3000ParameterCommand", "Ap3000ServerRules",
           "parameter_command", "port_state"]

_S = Ap3000StopReason
#: AP3000 stop reasons in the contract's names.
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

#: The commands a server starts: the unit answers each with the
#: same command byte and message id, except 0x81 (answered by its status frames)
#: and 0xE4 (no reply documented).
_REPLIES: dict[int, type[a.Ap3000Message]] = {
    command: cls for cls, (command, direction, _) in a.MESSAGE_TYPES.items()
    if direction is Direction.UP and (command in (0x34, 0x72, 0xF8) or 0x81 <= command <= 0xE4)}
#: 0x81 has no reply: the unit's next 0x20, 0x01 or 0x21 answers it.
_QUERY_STATUS = 0x81

#: Result codes meaning the command was carried out: 0, and for 0x82 also 3 (port
#: fault) and 9 (relay welded), which the device reports after executing.
_SUCCESS: dict[int, frozenset[int]] = {0x82: frozenset({0x00, 0x03, 0x09})}
_OK = frozenset({0})
_REJECTIONS = {1: "no_charger", 2: "port_busy", 4: "no_such_port", 5: "several_ports_waiting",
               6: "total_power_too_high", 7: "memory_damaged", 8: "precheck_relay_or_fuse",
               10: "precheck_short_circuit", 11: "smoke_alarm", 12: "over_voltage",
               13: "under_voltage", 14: "no_response"}
_FIRMWARE_REFUSALS = {1: "packet_error", 2: "image_checksum_wrong", 3: "wrong_device_type",
                      4: "verification_packet_missing", 5: "upgrade_refused"}
#: The result codes the protocol names, per command. A command it says nothing more
#: about follows the general rule, "0 = success, 1 = parameter error / failure"
#: (``failed``); codes the reference does not name are ``device_rejected``.
_REASONS: dict[int, dict[int, str]] = {
    0x82: _REJECTIONS,
    0x83: {1: "parameter_error"},
    0x84: {1: "parameter_error"},
    0x85: {1: "beyond_device_limits"},
    0x8A: {1: "port_not_charging", 2: "value_below_current", 3: "unknown_mode_or_port"},
    0x8D: {1: "not_supported"},
    0xE0: _FIRMWARE_REFUSALS, 0xE1: _FIRMWARE_REFUSALS, 0xE2: _FIRMWARE_REFUSALS,
    0xF8: {1: "packet_error"},
}
#: 0x8D: "1 = not supported, other = failed".
_OTHER_REASONS: dict[int, str] = {0x8D: "failed", 0xE0: "firmware_refused",
                                   0xE1: "firmware_refused", 0xE2: "firmware_refused"}


def _rejection_reason(command: int, result: int) -> str:
    """The snake_case reason of a unit's non-success *result* to *command*."""
    reasons = _REASONS.get(command, {1: "failed"})
    return reasons.get(result, _OTHER_REASONS.get(command, "device_rejected"))


def _is_status_query(key: Hashable) -> bool:
    """Whether a command key (physical id, command, message id) is a 0x81's."""
    return isinstance(key, tuple) and key[1] == _QUERY_STATUS


def _describe(cls: type[a.Ap3000Message]) -> str:
    """``0x85 set_limits``: a command as error messages name it."""
    return f"0x{a.MESSAGE_TYPES[cls][0]:02X} {message_name(cls)}"


#: The fields SetParams takes, by set command; the names QueryParams asks for, by query.
_SET_FIELDS: dict[type[a.ParameterSet], tuple[str, ...]] = {
    cls: a.field_names(cls) for cls in a.PARAMETER_SETS}
_QUERY_FIELDS: dict[type[a.ParameterQuery], tuple[str, ...]] = {
    query: a.field_names(reply) for query, reply in a.PARAMETER_QUERIES.items()}


_Kind = TypeVar("_Kind", type[a.ParameterSet], type[a.ParameterQuery])


def _route(names: list[str], table: Mapping[_Kind, tuple[str, ...]], what: str) -> _Kind:
    """The one command of *table* whose fields include every name of *names*.

    Raises:
        LocalProtocolError: A name belongs to no command, or the names belong to
            several.
    """
    unknown = [name for name in names if not any(name in f for f in table.values())]
    if unknown:
        known = "; ".join(f"{_describe(cls)}: {', '.join(fields)}"
                          for cls, fields in table.items())
        raise LocalProtocolError(
            f"{what}: unknown AP3000 parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (known: {known})")
    owners = {cls: [name for name in names if name in fields]
              for cls, fields in table.items()}
    chosen = [cls for cls, owned in owners.items() if owned]
    if len(chosen) > 1:
        parts = "; ".join(f"{_describe(cls)}: {', '.join(owners[cls])}" for cls in chosen)
        raise LocalProtocolError(
            f"{what}: the parameters belong to {len(chosen)} AP3000 commands, send one "
            f"{what} per command ({parts})")
    return chosen[0]


@frozen_record
class Ap3000ParameterCommand:
    """The AP3000 set command some parameter names belong to: what a
    :class:`~bkvcodec.SetParams` naming them must carry, and how to read their values.

    A set command carries all its mandatory fields in one frame, so an application
    that changes some of them fills in the others (the device's current values,
    read with a :class:`~bkvcodec.QueryParams` for :attr:`query_names`).

    Attributes:
        name: The command as error messages name it (``0x85 set_limits``).
        fields: Every field of the command, in wire order.
        mandatory: The fields a SetParams must name.
        query_names: The names a QueryParams asks for to read every field (the
            fields of the query reply); empty when no query reports them
            (``0x97``).
        defaults: The protocol reference's default of each field (a unit's values
            before any set; ``0x85``'s overload power depends on the model, 2000 W
            here).

    .. versionadded:: 0.1.0
    """

    name: str
    fields: tuple[str, ...]
    mandatory: tuple[str, ...]
    query_names: tuple[str, ...]
    defaults: Mapping[str, int]


def parameter_command(names: Iterable[str]) -> Ap3000ParameterCommand:
    """The AP3000 set command (``0x83``-``0x86``, ``0x97``) whose fields include every
    name of *names*.

    Raises:
        LocalProtocolError: No name given, a name no set command has (the message
            lists the known ones), or names of several commands.

    .. versionadded:: 0.1.0
    """
    wanted = list(names)
    if not wanted:
        raise LocalProtocolError("no AP3000 parameter named")
    cls = _route(wanted, _SET_FIELDS, "SetParams")
    query = a.PARAMETER_SETS[cls]
    return Ap3000ParameterCommand(
        name=_describe(cls), fields=_SET_FIELDS[cls],
        mandatory=tuple(f.name for f in dataclasses.fields(cls)
                        if f.name != "extra" and f.default is dataclasses.MISSING),
        query_names=() if query is None else _QUERY_FIELDS[query],
        defaults={name: a.PARAMETER_DEFAULTS[name] for name in _SET_FIELDS[cls]})


_FIRMWARE_REPLIES = (a.Ap3000FirmwarePacketSlaveReply, a.Ap3000FirmwarePacketPowerBoardReply,
                     a.Ap3000FirmwarePacketHostReply)
_FIRMWARE_PACKETS = (a.Ap3000FirmwarePacketSlave, a.Ap3000FirmwarePacketPowerBoard,
                     a.Ap3000FirmwarePacketHost, a.Ap3000LegacyFirmwarePacket)
_PACKET_SIZE = 200
_PACKET_CLASSES: dict[FirmwareTarget, type[a.Ap3000FirmwarePacketSlave]
                      | type[a.Ap3000FirmwarePacketPowerBoard]
                      | type[a.Ap3000FirmwarePacketHost]] = {
    FirmwareTarget.SLAVE: a.Ap3000FirmwarePacketSlave,
    FirmwareTarget.POWER_BOARD: a.Ap3000FirmwarePacketPowerBoard,
    FirmwareTarget.HOST: a.Ap3000FirmwarePacketHost,
}


@frozen_record
class _Transfer:
    """A firmware image cut into the 200-byte packets of commands 0xE0-0xE2."""

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
    """The API port state for an AP3000 port status."""
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
                port_count=message.port_count, device_type=message.device_type),
                *self._status_answered(frame, now, context)]
        if isinstance(message, a.Ap3000Heartbeat | a.Ap3000LegacyHeartbeat):
            events: list[ConnectionEvent] = [DeviceHeartbeat(
                phy_id=phy_id, protocol=ProtocolFamily.AP3000,
                voltage_dv=message.voltage_0p1v,
                rssi=message.signal_strength)]
            powers = getattr(message, "port_power_0p1w", ())
            for index, code in enumerate(message.port_status):
                events += self._port(phy_id, index, code,
                                     powers[index] if index < len(powers) else None)
            return events + self._status_answered(frame, now, context)
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
        if _REPLIES.get(frame.command) is type(message):
            return self._command_reply(frame, message, now, context)
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
        remember(self._cards, self._card_requests, frame)
        balance_only = message.port == 0xFF
        return CardPresented(
            phy_id=frame.phy_id, socket_no=1,
            port_no=None if balance_only else message.port + 1,
            card_no=str(int.from_bytes(message.card_id, "big")),
            request_id=self._card_requests, balance_only=balance_only)

    def _status_answered(self, frame: Ap3000Frame, now: float,
                         context: RulesContext) -> list[ConnectionEvent]:
        """A 0x20/0x01/0x21 answers the unit's 0x81 in flight, if there is one."""
        pending = context.in_flight(frame.phy_id)
        if pending is None or not _is_status_query(pending.key):
            return []
        context.resolve(pending.key, now)
        return [CommandAcknowledged(command_id=pending.command_id, phy_id=frame.phy_id,
                                    reply=frame.message)]

    def _command_reply(self, frame: Ap3000Frame, message: a.Ap3000Message, now: float,
                       context: RulesContext) -> list[ConnectionEvent]:
        """A unit's reply to a server command (same command byte and message id)."""
        key = (frame.physical_id, frame.command, frame.message_id)
        transfer = self._transfers.pop(key, None)
        if transfer is not None and isinstance(message, _FIRMWARE_REPLIES):
            return self._firmware_reply(frame, message, transfer, now, context)
        pending = context.resolve(key, now)
        command_id = None if pending is None else pending.command_id
        events: list[ConnectionEvent] = []
        if isinstance(message, a.Ap3000QueryParams11Reply | a.Ap3000QueryParams12Reply
                      | a.Ap3000QueryLimitsReply | a.Ap3000QueryCardParamsReply):
            # Unsolicited or late, the values are still worth reporting.
            events.append(ParamsReported(phy_id=frame.phy_id, params=a.parameters(message),
                                         command_id=command_id))
        if command_id is None:
            return events or [UnknownMessage(phy_id=frame.phy_id, name=message_name(message),
                                             data=frame.encode())]
        result: int | None = getattr(message, "result", None)
        if result is None or result in _SUCCESS.get(frame.command, _OK):
            port = getattr(message, "port", None) if frame.command == 0x82 else None
            events.append(CommandAcknowledged(
                command_id=command_id, phy_id=frame.phy_id, reply=message,
                port_no=None if port is None else port + 1))
            return events
        return [CommandRejected(command_id=command_id, phy_id=frame.phy_id,
                                reason=_rejection_reason(frame.command, result),
                                raw_code=result)]

    # --- commands out ----------------------------------------------------------------

    def encode(self, command: Command, now: float) -> tuple[bytes, Hashable | None]:
        """The frame of *command* and the key its reply will carry (None: the
        protocol never answers it; it is done once written).

        Raises:
            LocalProtocolError: AP3000 cannot express *command*, or a value is out
                of range (the message names the field and the allowed range).
        """
        physical_id = parse_phy_id(command.phy_id)
        message: a.Ap3000Message
        if isinstance(command, SendFirmware):
            transfer = _Transfer.start(command)
            message_id = self.message_ids.next(command.phy_id)
            key = (physical_id, transfer.command, message_id)
            self._transfers[key] = transfer
            frame = Ap3000Frame(physical_id=physical_id, message_id=message_id,
                                message=transfer.packet(1))
            return frame.encode(), key
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
            message = a.Ap3000QueryStatus()
        elif isinstance(command, SetParams):
            message = self._set_params(command)
        elif isinstance(command, QueryParams):
            query = (_route(list(command.names), _QUERY_FIELDS, "QueryParams")
                     if command.names else a.Ap3000QueryParams11)
            message = query()
        elif isinstance(command, ModifyCharge):
            message = self._modify(command)
        elif isinstance(command, SendMessage):
            if not isinstance(command.message, Ap3000Message):
                raise LocalProtocolError(
                    f"{type(command.message).__name__} is a BKV message; this is an AP3000 "
                    "connection")
            message = command.message
        else:
            raise LocalProtocolError(
                f"AP3000 devices cannot {type(command).__name__} through this library "
                "(socket networking and FTP updates are BKV commands)")
        message_id = self.message_ids.next(command.phy_id)
        frame = Ap3000Frame(physical_id=physical_id, message_id=message_id, message=message)
        answered = frame.command in _REPLIES or frame.command == _QUERY_STATUS
        return frame.encode(), (physical_id, frame.command, message_id) if answered else None

    @staticmethod
    def _set_params(command: SetParams) -> a.Ap3000Message:
        """The set command (0x83-0x86, 0x97) whose fields *command* names."""
        names = list(command.params)
        if not names:
            raise LocalProtocolError("SetParams names no parameter")
        cls = _route(names, _SET_FIELDS, "SetParams")
        mandatory = [f.name for f in dataclasses.fields(cls)
                     if f.name != "extra" and f.default is dataclasses.MISSING]
        missing = [name for name in mandatory if name not in command.params]
        if missing:
            raise LocalProtocolError(
                f"SetParams for AP3000 {_describe(cls)} needs {', '.join(mandatory)}; "
                f"missing {', '.join(missing)}")
        if "under_voltage_0p1v" in command.params and "over_voltage_0p1v" not in (
                command.params):
            # Optional fields are written in order: a missing over-voltage would be 0 V.
            raise LocalProtocolError(
                "SetParams for AP3000 0x85 set_limits: under_voltage_0p1v needs "
                "over_voltage_0p1v too (the field before it on the wire)")
        try:
            message = a.parameter_message(cls, command.params)
            check_downlink(message)
        except LocalProtocolError as err:
            raise LocalProtocolError(f"SetParams for AP3000 {_describe(cls)}: {err}") from None
        return message

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
                        transfer: _Transfer, now: float,
                        context: RulesContext) -> list[ConnectionEvent]:
        """The reply to one packet of a :class:`SendFirmware`: send the next packet, or end."""
        pending = context.resolve((frame.physical_id, frame.command, frame.message_id), now)
        if pending is None:  # a late reply: the packet timed out, the transfer ended
            return [UnknownMessage(phy_id=frame.phy_id, name=message_name(message),
                                   data=frame.encode())]
        if message.result == 0 and message.packet_no >= transfer.total:
            return [CommandAcknowledged(command_id=pending.command_id, phy_id=frame.phy_id,
                                        reply=message)]
        if message.result not in (0, 1):
            return [CommandRejected(command_id=pending.command_id, phy_id=frame.phy_id,
                                    reason=_rejection_reason(frame.command, message.result),
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
                       self.firmware_timing, message_id=message_id)
        return [FirmwareProgress(command_id=pending.command_id, phy_id=frame.phy_id,
                                 packets_done=message.packet_no, packets_total=transfer.total)]

    @staticmethod
    def _modify(command: ModifyCharge) -> a.Ap3000ModifyCharge:
        """0x8A: mode 0 timed, 1 timed with stop-when-full, 2 energy."""
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
        """Firmware packets (a :class:`SendFirmware`, or one sent as a
        :class:`SendMessage`) wait 30 s and are resent 3 times."""
        firmware = isinstance(command, SendFirmware) or (
            isinstance(command, SendMessage) and isinstance(command.message, _FIRMWARE_PACKETS))
        return self.firmware_timing if firmware else None

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

