# One BKV-family frame to bytes and back (bkv.md §2-§6).
#
# Decoding checks the envelope in the order of bkv.md §2.7 (so that every
# malformed input gets the error the reference names) and then dispatches the
# payload on (command, sub-command or bkv_cmd, direction) to the fast decoders.
# Encoding writes the envelope, the GN layouts, the heartbeat and the item lists
# by hand; the construct grammar builds the rest (OTA) and any value of an unusual
# type. ``reference_decode`` and ``reference_encode`` use the grammar alone; they
# exist for the differential tests and as an executable statement of the layout.
from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Callable
from operator import attrgetter
from struct import Struct
from struct import error as StructError
from typing import Any

import construct as cs

from .._errors import (
    BadLength,
    BadMagic,
    BadTrailer,
    ChecksumMismatch,
    InnerLengthMismatch,
    LocalProtocolError,
    PayloadInconsistent,
    PayloadTooShort,
    RemoteProtocolError,
    TrailingBytes,
    Truncated,
)
from .._fastinit import frozen_dataclass, positional_builder, slot_filler
from .._types import BcdTime, BinaryTime, Direction
from . import grammar
from .fastpath import GN_DECODERS, GN_FIXED, U16_ARRAYS, GnMessage, fast_packet, split_items
from .grammar import DOWNLINK_MAGIC, ENVELOPE_OVERHEAD, TRAILER, UPLINK_MAGIC
from .messages import (
    GN_CONTROL,
    GN_NETWORK,
    BkvMessage,
    CardBalanceQuery,
    CardBalanceReply,
    CardChargeEnd,
    CardOrder,
    CardOrderAck,
    CardSwipe,
    ChargeControl,
    ChargeControlAck,
    ChargeEnd,
    ChargeEndAck,
    ExceptionReportAck,
    FeeChargeEndAck,
    FeeControl,
    FeeTier,
    Heartbeat,
    HeartbeatAck,
    NetworkAdd,
    NetworkAddAck,
    NetworkRefresh,
    NetworkRefreshAck,
    NetworkSocket,
    OtaUpgrade,
    ParamQuery,
    ParamSet,
    PortReport,
    PowerChargeEnd,
    PowerControl,
    PowerTier,
    SocketStatus,
    StatusQuery,
    StatusReportAck,
    UnknownBkvPacket,
    UnknownCommand,
    UnknownGnMessage,
    VoiceConfig,
    VoiceConfigAck,
    VoiceWindow,
)
from .packets import (
    BKV_PACKETS,
    RawItem,
    fast_packet_bytes,
    grammar_items_to_bytes,
    items_to_bytes,
    packet_from_items,
    packet_to_items,
)

__all__ = ["BkvCommand", "BkvFrame", "check_downlink", "reference_decode", "reference_encode"]


class BkvCommand:
    """Envelope command codes."""

    #: Heartbeat and its time reply.
    HEARTBEAT = 0x0000
    #: GN container for network management.
    GN_NETWORK = GN_NETWORK
    #: OTA upgrade.
    OTA = 0x0007
    #: GN container for control and reports.
    GN_CONTROL = GN_CONTROL
    #: BKV item packet.
    BKV = 0x1000


_GN_CLASSES: dict[type[GnMessage], tuple[int, Direction]] = {
    NetworkRefresh: (0x08, Direction.DOWN), NetworkRefreshAck: (0x08, Direction.UP),
    NetworkAdd: (0x09, Direction.DOWN), NetworkAddAck: (0x09, Direction.UP),
    StatusQuery: (0x1D, Direction.DOWN), SocketStatus: (0x1C, Direction.UP),
    ChargeControl: (0x07, Direction.DOWN), ChargeControlAck: (0x07, Direction.UP),
    ChargeEnd: (0x02, Direction.UP), PowerControl: (0x17, Direction.DOWN),
    PowerChargeEnd: (0x18, Direction.UP), CardSwipe: (0x0B, Direction.UP),
    CardOrder: (0x0B, Direction.DOWN), CardOrderAck: (0x0F, Direction.UP),
    CardChargeEnd: (0x0C, Direction.UP), ChargeEndAck: (0x0C, Direction.DOWN),
    CardBalanceQuery: (0x1A, Direction.UP), CardBalanceReply: (0x1A, Direction.DOWN),
    VoiceConfig: (0x1B, Direction.DOWN), VoiceConfigAck: (0x1B, Direction.UP),
}
_GN_BY_KEY: dict[tuple[int, Direction], type[GnMessage]] = {
    key: cls for cls, key in _GN_CLASSES.items()}
_GN_BY_KEY[(0x1D, Direction.UP)] = SocketStatus
_BKV_DIRECTIONS: dict[type[Any], Direction] = {
    cls: direction for (_, direction), (cls, _) in BKV_PACKETS.items()}
_FIXED_DIRECTIONS: dict[type[Any], Direction] = {
    Heartbeat: Direction.UP, HeartbeatAck: Direction.DOWN, OtaUpgrade: Direction.DOWN,
    **{cls: direction for cls, (_, direction) in _GN_CLASSES.items()}, **_BKV_DIRECTIONS,
}


#: Envelope commands of the message classes that have one (GN messages name theirs).
_FIXED_COMMANDS: dict[type[Any], int] = {
    Heartbeat: BkvCommand.HEARTBEAT, HeartbeatAck: BkvCommand.HEARTBEAT,
    OtaUpgrade: BkvCommand.OTA, UnknownBkvPacket: BkvCommand.BKV,
    **dict.fromkeys(_BKV_DIRECTIONS, BkvCommand.BKV),
}


def _message_direction(message: BkvMessage) -> Direction:
    direction = _FIXED_DIRECTIONS.get(type(message))
    if direction is not None:
        return direction
    if isinstance(message, (UnknownCommand, UnknownGnMessage, UnknownBkvPacket)):
        return message.direction
    return _FIXED_DIRECTIONS[type(message)]


def _message_command(message: BkvMessage) -> int:
    command = _FIXED_COMMANDS.get(type(message))
    if command is not None:
        return command
    if isinstance(message, Heartbeat | HeartbeatAck):
        return BkvCommand.HEARTBEAT
    if isinstance(message, OtaUpgrade):
        return BkvCommand.OTA
    if isinstance(message, UnknownCommand):
        return message.command
    if type(message) in _BKV_DIRECTIONS or isinstance(message, UnknownBkvPacket):
        return BkvCommand.BKV
    return message.container  # type: ignore[union-attr]


@frozen_dataclass
class BkvFrame:
    """One frame of the BKV family: the ``fcfe``/``fcff`` envelope around a message.

    The envelope's command code and header follow from the message
    (:attr:`command`, :attr:`direction`); GN messages name their container
    command in their ``container`` field.

    Attributes:
        gateway_id: The gateway's printed id, 14 lower-case hex digits.
        message: The decoded payload.
        seq: Frame sequence number (u32): 0 for reports a gateway starts, the
            server's own number for its commands, echoed in replies.
        direction_byte: The direction byte when it disagrees with the header, else None.
            Decoders report it; encoders write it.

    .. versionadded:: 0.1.0
    """

    gateway_id: str
    message: BkvMessage
    seq: int = 0
    direction_byte: int | None = None

    @property
    def direction(self) -> Direction:
        """Which way the frame travels (``fcfe`` up, ``fcff`` down)."""
        return _message_direction(self.message)

    @property
    def command(self) -> int:
        """The envelope command code (:class:`BkvCommand`)."""
        return _message_command(self.message)

    @classmethod
    def decode(cls, data: bytes) -> BkvFrame:
        """Decode *data*, which must hold exactly one frame.

        Raises:
            FrameError: *data* is not one well-formed frame; the subclass says
                why (:class:`~bkvcodec.errors.Truncated`, :class:`~bkvcodec.errors.BadMagic`,
                :class:`~bkvcodec.errors.BadLength`,
                :class:`~bkvcodec.errors.BadTrailer`, :class:`~bkvcodec.errors.ChecksumMismatch`,
                :class:`~bkvcodec.errors.TrailingBytes`), in the order the protocol checks them.
            PayloadError: The envelope is valid but its payload is not.
        """
        size = len(data)
        # One test for a well-formed frame of up to 259 bytes (the checksum is then
        # adler32's low half - 1); any failure goes to check_envelope for its error.
        if ENVELOPE_OVERHEAD <= size <= 259 and _FILLERS:
            magic, length, command, seq, flag, gateway = _HEADER_UNPACK(data)
            if (length + 4 == size and data[size - 2:] == TRAILER
                    and (magic == UPLINK_MAGIC or magic == DOWNLINK_MAGIC)
                    and data[size - 3] == (_adler32(data[2:size - 3]) - 1) & 0xFF):
                up = magic == UPLINK_MAGIC
                # _frame_new inlined: this is the hot path of every decoder.
                frame = _new(_FRAME_FILLER)
                frame.message = _message(data, up, length, command, gateway)
                frame.gateway_id = gateway.hex()
                frame.seq = seq
                frame.direction_byte = None if flag == up else flag
                frame.__class__ = BkvFrame
                return frame  # type: ignore[no-any-return]
        total = check_envelope(data)
        if size > total:
            raise TrailingBytes(total, size)
        return decode_checked(data)

    def encode(self) -> bytes:
        """The frame as bytes, with its length and checksum computed.

        Raises:
            LocalProtocolError: A field does not fit its wire encoding.
        """
        encoded = fast_encode(self)
        return encode_frame(self) if encoded is None else encoded


# --- decoding ------------------------------------------------------------------------------
_UP, _DOWN = Direction.UP, Direction.DOWN
_frame_new = positional_builder(BkvFrame)
# Enum members hash in Python code; the hot path looks decoders up by int only.
_GN_UP = {sub: fn for (sub, direction), fn in GN_DECODERS.items() if direction is _UP}
_GN_DOWN = {sub: fn for (sub, direction), fn in GN_DECODERS.items() if direction is _DOWN}
_heartbeat_new = positional_builder(Heartbeat)


def check_envelope(data: bytes) -> int:
    """Check the envelope at the start of *data*; return the frame's size.

    Raises:
        FrameError: As :meth:`bkvcodec.bkv.BkvFrame.decode`, except
            :class:`~bkvcodec.errors.TrailingBytes`.
    """
    available = len(data)
    if available < 4:
        raise Truncated(ENVELOPE_OVERHEAD, available)
    magic = data[:2]
    if magic != UPLINK_MAGIC and magic != DOWNLINK_MAGIC:
        raise BadMagic(bytes(magic))
    total = ((data[2] << 8) | data[3]) + 4
    if total < ENVELOPE_OVERHEAD:
        raise BadLength(total - 4, ENVELOPE_OVERHEAD - 4)
    if available < total:
        raise Truncated(total, available)
    if data[total - 2:total] != TRAILER:
        raise BadTrailer(bytes(data[total - 2:total]))
    expected = checksum(data, total)
    if data[total - 3] != expected:
        raise ChecksumMismatch(expected, data[total - 3])
    return total


def checksum(data: bytes, total: int) -> int:
    """The envelope checksum of the *total*-byte frame at the start of *data*."""
    if total <= 259:
        # adler32's low half is 1 + the byte sum while that sum stays below 65521.
        return (_adler32(data[2:total - 3]) - 1) & 0xFF
    return sum(memoryview(data)[2:total - 3]) & 0xFF


_HEADER = Struct(">2sHHIB7s")
_HEADER_UNPACK = _HEADER.unpack_from
_FRAME_FILLER: Any = slot_filler(BkvFrame)
_HEARTBEAT_ACK_FILLER: Any = slot_filler(HeartbeatAck)
_BCD_TIME_FILLER: Any = slot_filler(BcdTime)
#: True when the objects of the hot path can be made inline (CPython).
_FILLERS = None not in (_FRAME_FILLER, _HEARTBEAT_ACK_FILLER, _BCD_TIME_FILLER)
_new = object.__new__
_adler32 = zlib.adler32
_BYTES = tuple(bytes((n,)) for n in range(256))


def decode_checked(data: bytes) -> BkvFrame:
    """Decode the frame at the start of *data*, whose envelope has been checked."""
    magic, length, command, seq, flag, gateway = _HEADER_UNPACK(data)
    up = magic == UPLINK_MAGIC
    return _frame_new(gateway.hex(), _message(data, up, length, command, gateway), seq,
                      None if flag == up else flag)


def _message(data: bytes, up: bool, length: int, command: int, gateway: bytes
             ) -> BkvMessage:
    """The message of a checked frame, from its header fields."""
    if command == 0x1000:  # BkvCommand.BKV
        return fast_packet(data[18:length + 1], _UP if up else _DOWN, gateway)
    if ((command == GN_CONTROL or command == GN_NETWORK) and length >= 20
            and (data[18] << 8) | data[19] == length - 20
            and (decoder := (_GN_UP if up else _GN_DOWN).get(data[20])) is not None):
        return decoder(data[21:length + 1], command)
    if command == 0:
        if length == 24 and not up and _FILLERS:  # the heartbeat reply: 7 bytes of time
            time = _new(_BCD_TIME_FILLER)
            time.raw = data[18:25]
            time.__class__ = BcdTime
            message = _new(_HEARTBEAT_ACK_FILLER)
            message.time = time
            message.__class__ = HeartbeatAck
            return message  # type: ignore[no-any-return]
        if length == 46 and up:  # the heartbeat: ICCID, firmware, signal
            return _heartbeat_new(data[18:38].rstrip(b"\0").decode("latin-1"),
                                  data[38:46].rstrip(b"\0").decode("latin-1"), data[46])
    return _decode_payload(command, _UP if up else _DOWN, data[18:length + 1], gateway,
                           split_items)


def _decode_payload(command: int, direction: Direction, payload: bytes, gateway: bytes,
                    split: Any) -> BkvMessage:
    if command == BkvCommand.BKV:
        return packet_from_items(split(payload), direction, gateway, split)
    if command == BkvCommand.HEARTBEAT:
        if direction is Direction.UP:
            if len(payload) < 29:
                raise PayloadTooShort("heartbeat", 29, len(payload))
            if len(payload) > 29:
                raise PayloadInconsistent("heartbeat", f"{len(payload)} bytes, expected 29")
            return _heartbeat_new(payload[:20].rstrip(b"\0").decode("latin-1"),
                                  payload[20:28].rstrip(b"\0").decode("latin-1"), payload[28])
        if len(payload) != 7:
            raise PayloadInconsistent("heartbeat_ack", f"{len(payload)} bytes, expected 7")
        return HeartbeatAck(time=BcdTime(payload))
    if command in (GN_CONTROL, GN_NETWORK):
        if len(payload) < 3:
            raise PayloadTooShort("gn_container", 3, len(payload))
        inner = (payload[0] << 8) | payload[1]
        if inner != len(payload) - 3:
            raise InnerLengthMismatch(inner, len(payload) - 3)
        sub_command = payload[2]
        decoder = (_GN_UP if direction is _UP else _GN_DOWN).get(sub_command)
        if decoder is None:
            return UnknownGnMessage(direction=direction, sub_command=sub_command,
                                    params=payload[3:], container=command)
        return decoder(payload[3:], command)
    if command == BkvCommand.OTA and direction is Direction.DOWN and len(payload) == 20:
        ota: OtaUpgrade = _from_container(OtaUpgrade, grammar.OTA_UPGRADE.parse(payload))
        return ota
    return UnknownCommand(direction=direction, command=command, payload=payload)


# --- encoding ------------------------------------------------------------------------------

def _to_container(value: object) -> Any:
    """A message (or part) as the plain dict/list structure construct builds from."""
    if isinstance(value, BcdTime):
        return value.raw
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_container(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_container(v) for v in value]
    return value


def _gn_params(message: GnMessage) -> bytes:
    key = _GN_CLASSES[type(message)]
    if isinstance(message, SocketStatus):
        key = (message.sub_command, Direction.UP)
    fields = _to_container(message)
    assert isinstance(fields, dict)
    if isinstance(message, CardOrder):
        fields["power"] = (None if message.amount_fen is None else
                           {"amount_fen": message.amount_fen, "tiers": fields["tiers"]})
    return bytes(grammar.GN_LAYOUTS[key].build(fields))


def _payload(message: BkvMessage, gateway: bytes,
             build_items: Callable[[list[RawItem]], bytes]) -> bytes:
    if isinstance(message, Heartbeat):
        return bytes(grammar.HEARTBEAT.build(_to_container(message)))
    if isinstance(message, HeartbeatAck):
        if len(message.time.raw) != 7:
            raise LocalProtocolError("HeartbeatAck.time must be 7 bytes")
        return message.time.raw
    if isinstance(message, OtaUpgrade):
        return bytes(grammar.OTA_UPGRADE.build(_to_container(message)))
    if isinstance(message, UnknownCommand):
        return message.payload
    if isinstance(message, UnknownGnMessage):
        params = message.params
        sub_command = message.sub_command
    elif type(message) in _GN_CLASSES:
        params = _gn_params(message)  # type: ignore[arg-type]
        sub_command = message.sub_command if isinstance(message, SocketStatus) else (
            _GN_CLASSES[type(message)][0])  # type: ignore[index]
    else:
        return build_items(packet_to_items(message, gateway))  # type: ignore[arg-type]
    return bytes(grammar.GN_CONTAINER.build({"sub_command": sub_command, "params": params}))


_ENVELOPE_HEAD = Struct(">HHIB7s")
_GN_HEAD = Struct(">HB")


def _fixed_encoder(sub_command: int, layout: str, names: tuple[str, ...]
                   ) -> Callable[[Any], bytes | None]:
    """The GN payload of a message of one struct *layout*, written with ``struct``; None
    for a value of an unusual type (the grammar then decides: it converts some)."""
    packer = Struct(">" + layout)
    codes = [code for code in re.findall(r"\d*[A-Za-z]", layout)]
    byte_fields = tuple((i, int(code[:-1])) for i, code in enumerate(codes)
                        if code.endswith("s"))
    pack, head = packer.pack, _GN_HEAD.pack

    def encode(message: Any) -> bytes | None:
        values = [getattr(message, name) for name in names]
        for i, size in byte_fields:
            value = values[i]
            if type(value) is not bytes or len(value) != size:
                return None
        extra = message.extra
        if type(extra) is not bytes:
            return None
        params = pack(*values) + extra
        return head(len(params), sub_command) + params
    return encode


#: struct encoders of the GN messages of one fixed layout, by class.
_GN_FIXED_ENCODERS: dict[type[Any], Callable[[Any], bytes | None]] = {
    cls: _fixed_encoder(sub, layout, tuple(
        f.name for f in dataclasses.fields(cls)[:len(re.findall(r"\d*[A-Za-z]", layout))]))
    for (sub, _), (cls, _, layout) in GN_FIXED.items()}
_HEARTBEAT_LAYOUT = Struct(">20s8sB")
_M17_NAMES = ("socket_no", "socket_version", "temperature_c", "rssi", "port", "status",
              "business_no", "power_dw", "current_ma", "energy_wh", "duration_min")
_M17_PACK = Struct(">B2sBBBBHHHHH").pack
_U8, _U16 = Struct(">B").pack, Struct(">H").pack
_HOUR_MINUTE = re.compile(r"([0-9]{2}):([0-9]{2})")


def _m17(message: Any) -> bytes | None:
    version = message.socket_version
    if type(version) is not bytes or len(version) != 2:
        return None
    return _M17_PACK(*[getattr(message, name) for name in _M17_NAMES])


def _durations(durations: object) -> bytes | None:
    if type(durations) is not tuple or any(type(d) is not int for d in durations):
        return None
    return _U8(len(durations)) + _U16_ARRAYS[len(durations)].pack(*durations)


def _pack_power_tiers(tiers: object) -> bytes | None:
    if type(tiers) is not tuple or any(type(t) is not PowerTier for t in tiers):
        return None
    return _U8(len(tiers)) + b"".join(
        _POWER_TIER_PACK(t.max_power_dw, t.price_fen, t.duration_min) for t in tiers)


_POWER_TIER_PACK = Struct(">HHH").pack
#: Lists of n u16 (tier durations), n < 256 as their count is one byte.
_U16_ARRAYS = U16_ARRAYS
_PORT_REPORT_PACK = Struct(">BBHHHHHH").pack
_SOCKET_HEAD_PACK = Struct(">B2sBB").pack


def _socket_status_params(m: SocketStatus) -> bytes | None:
    if m.sub_command not in (0x1C, 0x1D) or type(m.ports) is not tuple or type(
            m.socket_version) is not bytes or len(m.socket_version) != 2:
        return None
    parts = [_SOCKET_HEAD_PACK(m.socket_no, m.socket_version, m.temperature_c, m.rssi)]
    for p in m.ports:
        if type(p) is not PortReport:
            return None
        parts.append(_PORT_REPORT_PACK(p.port, p.status, p.business_no, p.voltage_dv,
                                       p.power_dw, p.current_ma, p.energy_wh, p.duration_min))
    return b"".join(parts)


def _network_refresh_params(m: NetworkRefresh) -> bytes | None:
    if type(m.sockets) is not tuple:
        return None
    parts = [_U8(m.channel)]
    for socket in m.sockets:
        if type(socket) is not NetworkSocket or type(socket.mac) is not bytes or len(
                socket.mac) != 6:
            return None
        parts.append(_U8(socket.socket_no) + socket.mac)
    return b"".join(parts)


def _power_control_params(m: PowerControl) -> bytes | None:
    tiers = _pack_power_tiers(m.tiers)
    if tiers is None:
        return None
    return bytes((m.socket_no, m.port, m.switch)) + _U16(m.amount_fen) + tiers


def _card_order_params(m: CardOrder) -> bytes | None:
    head = (bytes((m.socket_no, m.port)) + _U16(m.business_no) + bytes((m.switch, m.mode))
            + _U16(m.duration_min) + _U16(m.energy_wh))
    if m.amount_fen is None:
        return head
    tiers = _pack_power_tiers(m.tiers)
    return None if tiers is None else head + _U16(m.amount_fen) + tiers


_CARD_CHARGE_END_NAMES = (*_M17_NAMES, "card_no", "card_type", "billing_mode", "amount_fen",
                          "settlement_power_dw")
_card_charge_end_values = attrgetter(*_CARD_CHARGE_END_NAMES)
#: The fixed part and the tier count in one struct.
_CARD_CHARGE_END_PACK = Struct(">B2sBBBBHHHHH6sBBHHB").pack


def _card_charge_end_params(m: CardChargeEnd) -> bytes | None:
    version, card, durations = m.socket_version, m.card_no, m.tier_durations_min
    if (type(version) is not bytes or len(version) != 2 or type(card) is not bytes
            or len(card) != 6 or type(durations) is not tuple):
        return None
    # struct refuses what the grammar's u16 refuses (out of range, not an integer);
    # the caller turns its error into the grammar path. The count goes first, so a
    # list too long for its byte fails there.
    return (_CARD_CHARGE_END_PACK(*_card_charge_end_values(m), len(durations))
            + _U16_ARRAYS[len(durations)].pack(*durations))


def _power_charge_end_params(m: PowerChargeEnd) -> bytes | None:
    head, durations, end = _m17(m), _durations(m.tier_durations_min), m.end_time
    if head is None or durations is None or type(end) is not BinaryTime:
        return None
    return (head + _U16(end.year) + bytes((end.month, end.day, end.hour, end.minute,
                                           end.second, m.end_reason))
            + _U16(m.amount_fen) + _U16(m.settlement_power_dw) + durations)


def _voice_config_params(m: VoiceConfig) -> bytes | None:
    if type(m.windows) is not tuple:
        return None
    parts = [bytes((m.socket_no, m.port, m.buzzer_on, m.voice_on, len(m.windows)))]
    for window in m.windows:
        if type(window) is not VoiceWindow:
            return None
        for text in (window.start, window.end):
            match = _HOUR_MINUTE.fullmatch(text) if type(text) is str else None
            if match is None:
                return None
            parts.append(bytes((int(match[1]), int(match[2]))))
    return b"".join(parts)


#: struct encoders of the GN messages of a variable layout: their params, or None when
#: a value is of an unusual type (the grammar then decides).
_GN_VARIABLE_ENCODERS: dict[type[Any], Callable[[Any], bytes | None]] = {
    SocketStatus: _socket_status_params, NetworkRefresh: _network_refresh_params,
    PowerControl: _power_control_params, CardOrder: _card_order_params,
    CardChargeEnd: _card_charge_end_params, PowerChargeEnd: _power_charge_end_params,
    VoiceConfig: _voice_config_params,
}


def _fast_payload(message: BkvMessage, gateway: bytes) -> bytes:
    """``_payload(message, gateway, items_to_bytes)`` with the fixed GN layouts and the
    heartbeat packed by ``struct``; the same bytes and errors."""
    encoder = _GN_FIXED_ENCODERS.get(type(message))
    if encoder is not None:
        payload = encoder(message)
        if payload is not None:
            return payload
    elif (variable := _GN_VARIABLE_ENCODERS.get(type(message))) is not None:
        try:
            params = variable(message)
        except (StructError, ValueError, TypeError, OverflowError, AttributeError):
            params = None
        extra = getattr(message, "extra", None)
        if params is not None and type(extra) is bytes:
            params += extra
            sub_command = (message.sub_command if isinstance(message, SocketStatus)
                           else _GN_CLASSES[type(message)][0])  # type: ignore[index]
            return _GN_HEAD.pack(len(params), sub_command) + params
    elif type(message) is Heartbeat:
        iccid, firmware = message.iccid, message.firmware
        if type(iccid) is str and type(firmware) is str:
            raw_iccid, raw_firmware = iccid.encode("latin-1"), firmware.encode("latin-1")
            if len(raw_iccid) <= 20 and len(raw_firmware) <= 8:
                return _HEARTBEAT_LAYOUT.pack(raw_iccid, raw_firmware, message.rssi)
    return _payload(message, gateway, items_to_bytes)


#: ``payload(message, gateway)``: the payload of a message of one class, or None (then
#: encode_frame writes the frame, or raises the error the grammar gives).
PayloadEncoder = Callable[[Any, bytes], bytes | None]


def _gn_fixed_payload(encoder: Callable[[Any], bytes | None]) -> PayloadEncoder:
    return lambda message, gateway: encoder(message)


def _gn_variable_payload(cls: type[Any], params: Callable[[Any], bytes | None]
                         ) -> PayloadEncoder:
    fixed_sub = _GN_CLASSES[cls][0]
    socket_status = cls is SocketStatus

    def payload(message: Any, gateway: bytes) -> bytes | None:
        data = params(message)
        extra = message.extra
        if data is None or type(extra) is not bytes:
            return None
        data += extra
        return _gn_head(len(data), message.sub_command if socket_status else fixed_sub) + data
    return payload


def _heartbeat_payload(message: Any, gateway: bytes) -> bytes | None:
    iccid, firmware = message.iccid, message.firmware
    if type(iccid) is not str or type(firmware) is not str:
        return None
    raw_iccid, raw_firmware = iccid.encode("latin-1"), firmware.encode("latin-1")
    if len(raw_iccid) > 20 or len(raw_firmware) > 8:
        return None
    return _heartbeat_pack(raw_iccid, raw_firmware, message.rssi)


def _heartbeat_ack_payload(message: Any, gateway: bytes) -> bytes | None:
    time = message.time
    if type(time) is not BcdTime:
        return None
    raw = time.raw
    return raw if type(raw) is bytes and len(raw) == 7 else None


def _packet_payload(message: Any, gateway: bytes) -> bytes | None:
    payload = fast_packet_bytes(message, gateway)
    return items_to_bytes(packet_to_items(message, gateway)) if payload is None else payload


_gn_head = _GN_HEAD.pack
_heartbeat_pack = _HEARTBEAT_LAYOUT.pack
_FRAME_HEAD_PACK = Struct(">2sHHIB7s").pack
#: The checksum byte and the trailer, by checksum.
_TAILS = tuple(bytes((n,)) + TRAILER for n in range(256))


def _frame_encoders() -> dict[type[Any], tuple[bytes, int, int | None, PayloadEncoder]]:
    """(magic, direction byte, envelope command or None for a GN container, payload
    encoder) by message class."""
    payloads: dict[type[Any], PayloadEncoder] = {
        Heartbeat: _heartbeat_payload, HeartbeatAck: _heartbeat_ack_payload,
        **{cls: _gn_fixed_payload(enc) for cls, enc in _GN_FIXED_ENCODERS.items()},
        **{cls: _gn_variable_payload(cls, params)
           for cls, params in _GN_VARIABLE_ENCODERS.items()},
        **dict.fromkeys(_BKV_DIRECTIONS, _packet_payload),
    }
    out: dict[type[Any], tuple[bytes, int, int | None, PayloadEncoder]] = {}
    for cls, payload in payloads.items():
        up = _FIXED_DIRECTIONS[cls] is Direction.UP
        out[cls] = (UPLINK_MAGIC if up else DOWNLINK_MAGIC, int(up),
                    _FIXED_COMMANDS.get(cls), payload)
    return out


#: Whole-frame encoding by exact message class (a subclass takes encode_frame).
_FRAME_ENCODERS = _frame_encoders()


def fast_encode(frame: BkvFrame) -> bytes | None:
    """*frame* as bytes if it is a usual one, else None (then :func:`encode_frame`
    writes it or raises its error)."""
    message: Any = frame.message
    entry = _FRAME_ENCODERS.get(message.__class__)
    gateway_id = frame.gateway_id
    if entry is None or type(gateway_id) is not str:
        return None
    magic, flag, command, payload_encoder = entry
    try:
        gateway = bytes.fromhex(gateway_id)
        payload = payload_encoder(message, gateway)
        if payload is None or len(gateway) != 7 or len(payload) > 256 - ENVELOPE_OVERHEAD:
            return None
        direction_byte = frame.direction_byte
        encoded = _FRAME_HEAD_PACK(
            magic, len(payload) + ENVELOPE_OVERHEAD - 4,
            message.container if command is None else command, frame.seq,
            flag if direction_byte is None else direction_byte, gateway) + payload
    except (StructError, ValueError, TypeError, OverflowError, AttributeError, KeyError,
            UnicodeError, AssertionError, LocalProtocolError):
        return None
    # adler32's low half is 1 + the byte sum while that sum stays below 65521; the
    # checksum leaves out the magic.
    return encoded + _TAILS[(_adler32(encoded) - 1 - magic[0] - magic[1]) & 0xFF]


def encode_frame(frame: BkvFrame) -> bytes:
    """Encode *frame* (see :meth:`bkvcodec.bkv.BkvFrame.encode`).

    The envelope and BKV item lists are written by hand (construct takes 30-100 µs
    for them); the property tests check the bytes against :func:`reference_encode`.
    """
    gateway, direction, flag = _envelope_fields(frame)
    try:
        payload = _fast_payload(frame.message, gateway)
        body = _ENVELOPE_HEAD.pack(len(payload) + ENVELOPE_OVERHEAD - 4, frame.command,
                                   frame.seq, flag, gateway) + payload
    except LocalProtocolError:
        raise
    except (cs.ConstructError, ValueError, TypeError, OverflowError, AttributeError,
            KeyError, UnicodeError, AssertionError, StructError) as err:
        raise LocalProtocolError(
            f"cannot encode {type(frame.message).__name__}: {err}") from err
    magic = UPLINK_MAGIC if direction is Direction.UP else DOWNLINK_MAGIC
    # adler32's low half is 1 + the byte sum while that sum stays below 65521.
    check = (_adler32(body) - 1) & 0xFF if len(body) <= 256 else sum(body) & 0xFF
    return b"".join((magic, body, _BYTES[check], TRAILER))


def reference_encode(frame: BkvFrame) -> bytes:
    """Encode *frame* with the construct grammar alone (slow; for tests)."""
    gateway, direction, flag = _envelope_fields(frame)
    try:
        payload = _payload(frame.message, gateway, grammar_items_to_bytes)
        body = {"command": frame.command, "seq": frame.seq, "direction": flag,
                "gateway_id": gateway, "payload": payload}
        return bytes(grammar.ENVELOPE.build({
            "header": UPLINK_MAGIC if direction is Direction.UP else DOWNLINK_MAGIC,
            "body": {"value": body},
        }))
    except LocalProtocolError:
        raise
    except (cs.ConstructError, ValueError, TypeError, OverflowError, AttributeError,
            KeyError, UnicodeError, AssertionError) as err:
        raise LocalProtocolError(
            f"cannot encode {type(frame.message).__name__}: {err}") from err


def _envelope_fields(frame: BkvFrame) -> tuple[bytes, Direction, int]:
    try:
        gateway = bytes.fromhex(frame.gateway_id)
    except ValueError:
        gateway = b""
    if len(gateway) != 7:
        raise LocalProtocolError(f"gateway_id must be 14 hex digits, got {frame.gateway_id!r}")
    direction = frame.direction
    flag = int(direction is Direction.UP) if frame.direction_byte is None else frame.direction_byte
    return gateway, direction, flag


# --- the grammar as a decoder ---------------------------------------------------------------

def _from_container(cls: type[Any], container: Any) -> Any:
    """Build dataclass *cls* from a construct Container, by field name."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in container:
            continue
        value = container[f.name]
        if isinstance(value, list):
            item_cls = _LIST_ITEMS.get((cls, f.name))
            value = tuple(_from_container(item_cls, v) if item_cls else int(v) for v in value)
        elif f.name == "end_time":
            value = BinaryTime(*(int(value[k]) for k in
                                 ("year", "month", "day", "hour", "minute", "second")))
        elif isinstance(value, bytes):
            value = bytes(value)
        elif isinstance(value, str):
            value = str(value)
        else:
            value = int(value)
        kwargs[f.name] = value
    return cls(**kwargs)


_LIST_ITEMS: dict[tuple[type[Any], str], type[Any]] = {
    (NetworkRefresh, "sockets"): NetworkSocket,
    (SocketStatus, "ports"): PortReport,
    (PowerControl, "tiers"): PowerTier,
    (CardOrder, "tiers"): PowerTier,
    (VoiceConfig, "windows"): VoiceWindow,
}


def _grammar_items(data: bytes) -> list[RawItem]:
    parsed = grammar.BKV_ITEMS.parse(data)
    items: list[RawItem] = []
    for item in parsed["items"]:
        ks, raw_key = int(item["ks"]), bytes(item["key"])
        key: int | str = raw_key.decode("latin-1") if ks & 0x80 else int.from_bytes(raw_key, "big")
        items.append((key, bytes(item["value"])))
    return items


def _grammar_gn(payload: bytes, command: int, direction: Direction) -> BkvMessage:
    container = grammar.GN_CONTAINER.parse(payload)
    sub_command, params = int(container["sub_command"]), bytes(container["params"])
    layout = grammar.GN_LAYOUTS.get((sub_command, direction))
    if layout is None:
        return UnknownGnMessage(direction=direction, sub_command=sub_command, params=params,
                                container=command)
    parsed = layout.parse(params)
    cls = _GN_BY_KEY[(sub_command, direction)]
    extra_fields: dict[str, Any] = {"container": command}
    if cls is SocketStatus:
        extra_fields["sub_command"] = sub_command
    if cls is CardOrder and parsed["power"] is not None:
        parsed["amount_fen"] = parsed["power"]["amount_fen"]
        parsed["tiers"] = parsed["power"]["tiers"]
    message = _from_container(cls, parsed)
    return dataclasses.replace(message, **extra_fields)  # type: ignore[no-any-return]


def reference_decode(data: bytes) -> BkvFrame:
    """Decode one frame with the construct grammar alone (slow; for tests).

    Raises:
        RemoteProtocolError: The bytes are not a valid frame or payload (the
            error is less specific than :meth:`bkvcodec.bkv.BkvFrame.decode`'s).
    """
    try:
        envelope = grammar.ENVELOPE.parse(data)
    except cs.ConstructError as err:
        raise _GrammarRejected(f"envelope: {err}") from err
    header = bytes(envelope["header"])
    body = envelope["body"]["value"]
    direction = Direction.UP if header == UPLINK_MAGIC else Direction.DOWN
    command = int(body["command"])
    gateway = bytes(body["gateway_id"])
    payload = bytes(body["payload"])
    try:
        if command == BkvCommand.BKV:
            message: BkvMessage = packet_from_items(
                _grammar_items(payload), direction, gateway, _grammar_items)
        elif command in (GN_CONTROL, GN_NETWORK):
            message = _grammar_gn(payload, command, direction)
        elif command == BkvCommand.HEARTBEAT and direction is Direction.UP:
            message = _from_container(Heartbeat, grammar.HEARTBEAT.parse(payload))
        elif command == BkvCommand.HEARTBEAT:
            message = HeartbeatAck(time=BcdTime(bytes(
                grammar.HEARTBEAT_ACK.parse(payload)["time"])))
        else:
            message = _decode_payload(command, direction, payload, gateway, _grammar_items)
    except cs.ConstructError as err:
        raise _GrammarRejected(f"payload: {err}") from err
    flag = int(body["direction"])
    return BkvFrame(gateway_id=gateway.hex(), message=message, seq=int(body["seq"]),
                    direction_byte=None if flag == (direction is Direction.UP) else flag)


class _GrammarRejected(RemoteProtocolError):
    """The reference grammar rejected the bytes (reason in the message)."""

    code = "grammar_rejected"


# --- what a server may send as a command ---------------------------------------------------
# SendMessage runs check_downlink() when it is built, and the server role runs it on the
# message of every neutral command, so a command that breaks a documented rule fails
# where the caller made it, naming the field. The grammar catches values too wide for
# their bytes; these checks add what bkv.md states in prose (§4, §5, §6.5, §8.3): ranges,
# list lengths, fields that go together. Answers to a gateway's own frames are refused:
# the connection sends them itself.

#: Downlinks that answer an uplink, never commands: what each answers.
_ANSWERS: dict[type[Any], str] = {
    HeartbeatAck: "heartbeat (0x0000)",
    ChargeEndAck: "charge end report (GN 0x02, 0x0C, 0x18)",
    CardBalanceReply: "card balance query (GN 0x1A; use ServerConnection.answer_card)",
    StatusReportAck: "status report (BKV 0x1017)",
    FeeChargeEndAck: "fee-mode charge end (BKV 0x1004)",
    ExceptionReportAck: "exception report (BKV 0x1010)",
}
#: GN sub-commands only gateways start: a downlink with one answers it.
_REPORT_SUB_COMMANDS = {0x02: "charge_end", 0x0F: "card_order_ack", 0x18: "power_charge_end",
                        0x1C: "socket_status"}
_MAX_U8, _MAX_U16 = 0xFF, 0xFFFF
_SOCKETS = (1, 250)  #: socket_no range under one gateway.
_BROADCAST_SOCKET = 254  #: 0x1B socket_no for every socket of the gateway.
_HH_MM = re.compile(r"(\d{1,2}):(\d{2})")
#: BKV 0x1011 parameters and their largest values (from their item sizes).
_PARAM_SET_LIMITS = {
    "full_charge_delay_s": _MAX_U16, "no_load_delay_s": _MAX_U16,
    "full_power_threshold_dw": _MAX_U16, "no_load_power_threshold_dw": _MAX_U16,
    "high_temp_threshold_c": _MAX_U8, "power_limit_dw": _MAX_U16, "max_charge_time_min": _MAX_U16,
}


def check_downlink(message: BkvMessage) -> None:
    """Check that *message* is a command a server may send, and that it encodes.

    Beyond the wire grammar this checks what the protocol states in prose: socket numbers
    1-250 (254 for every socket in ``0x1B``), ports 0-1, switches 0-1, the ``0x07``
    duration 1-900 minutes, at most 5 power tiers, at most 2 voice windows, ``hh:mm``
    times, 6-byte MACs, the radio channel 1-15, the OTA address, port and 13-character
    file name, and a fee plan whose last tier ends at 23:59.

    Raises:
        LocalProtocolError: An uplink; an answer to a gateway's own frame (a heartbeat
            or charge-end reply, ...), which the connection sends itself; a message
            without a known layout; or a value outside its documented range (the
            message names the field).
    """
    name = type(message).__name__
    if isinstance(message, UnknownCommand | UnknownBkvPacket):
        raise LocalProtocolError(f"{name} is not a command a server sends")
    if _message_direction(message) is not Direction.DOWN:
        raise LocalProtocolError(f"{name} is sent by devices, not servers")
    answered = _ANSWERS.get(type(message))
    if answered is not None:
        raise LocalProtocolError(
            f"{name} answers a gateway's {answered}; it is not a command: the connection "
            "sends it")
    _FIELD_CHECKS[type(message)](message)
    BkvFrame(gateway_id="0" * 14, message=message, seq=1).encode()


def _fail(message: object, field: str, rule: str, value: object) -> LocalProtocolError:
    return LocalProtocolError(f"{type(message).__name__}.{field} {rule}, not {value!r}")


def _within(message: object, field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(message, field, f"must be {low}-{high}", value)


def _required(message: object, field: str, value: object, low: int, high: int) -> None:
    if value is None:
        raise _fail(message, field, f"is required ({low}-{high})", value)
    _within(message, field, value, low, high)


def _optional(message: object, field: str, value: object, low: int, high: int) -> None:
    if value is not None:
        _within(message, field, value, low, high)


def _socket(message: object, value: object, field: str = "socket_no") -> None:
    _within(message, field, value, *_SOCKETS)


def _socket_port_switch(message: Any) -> None:
    _socket(message, message.socket_no)
    _within(message, "port", message.port, 0, 1)
    _within(message, "switch", message.switch, 0, 1)


def _hh_mm(message: object, field: str, value: object) -> None:
    match = _HH_MM.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise _fail(message, field, "must be a time of day hh:mm (00:00-23:59)", value)


def _mac(message: object, field: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != 6:
        raise _fail(message, field, "must be 6 bytes", value)


def _power_tiers(message: Any, *, required: bool) -> None:
    tiers: tuple[PowerTier, ...] = message.tiers
    low = 1 if required else 0
    if not low <= len(tiers) <= 5:
        raise _fail(message, "tiers", f"must hold {low}-5 power tiers", len(tiers))
    for i, tier in enumerate(tiers):
        for field in ("max_power_dw", "price_fen", "duration_min"):
            _within(message, f"tiers[{i}].{field}", getattr(tier, field), 0, _MAX_U16)


def _check_ota(message: OtaUpgrade) -> None:
    _within(message, "target", message.target, 0, _MAX_U8)
    octets = message.ftp_ip.split(".") if isinstance(message.ftp_ip, str) else []
    if len(octets) != 4 or not all(o.isdigit() and int(o) <= 255 for o in octets):
        raise _fail(message, "ftp_ip", "must be a dotted IPv4 address", message.ftp_ip)
    _within(message, "ftp_port", message.ftp_port, 1, _MAX_U16)
    file_name = message.file_name
    if not (isinstance(file_name, str) and 1 <= len(file_name) <= 13 and file_name.isascii()
            and file_name.isprintable()):
        raise _fail(message, "file_name", "must be 1-13 printable ASCII characters", file_name)


def _check_network_refresh(message: NetworkRefresh) -> None:
    _within(message, "channel", message.channel, 1, 15)
    if len(message.sockets) > _SOCKETS[1]:
        raise _fail(message, "sockets", "must list at most 250 sockets", len(message.sockets))
    seen: set[int] = set()
    for i, socket in enumerate(message.sockets):
        _socket(message, socket.socket_no, f"sockets[{i}].socket_no")
        _mac(message, f"sockets[{i}].mac", socket.mac)
        if socket.socket_no in seen:
            raise _fail(message, f"sockets[{i}].socket_no", "must be unique", socket.socket_no)
        seen.add(socket.socket_no)


def _check_network_add(message: NetworkAdd) -> None:
    _socket(message, message.socket_no)
    _mac(message, "mac", message.mac)


def _check_status_query(message: StatusQuery) -> None:
    _socket(message, message.socket_no)


def _check_charge_control(message: ChargeControl) -> None:
    _socket_port_switch(message)
    _within(message, "mode", message.mode, 0, _MAX_U8)
    _within(message, "duration_min", message.duration_min, 0, _MAX_U16)
    _within(message, "energy_wh", message.energy_wh, 0, _MAX_U16)
    if message.switch == 1:  # a stop ignores the other fields (§4.5)
        _within(message, "mode", message.mode, 0, 1)
        if message.mode == 1:
            _within(message, "duration_min", message.duration_min, 1, 900)
        else:
            _within(message, "energy_wh", message.energy_wh, 1, _MAX_U16)


def _check_power_control(message: PowerControl) -> None:
    _socket_port_switch(message)
    _within(message, "amount_fen", message.amount_fen, 0, _MAX_U16)
    _power_tiers(message, required=message.switch == 1)


def _check_card_order(message: CardOrder) -> None:
    _socket_port_switch(message)
    _within(message, "business_no", message.business_no, 0, _MAX_U16)
    _within(message, "mode", message.mode, 0, _MAX_U8)
    _within(message, "duration_min", message.duration_min, 0, _MAX_U16)
    _within(message, "energy_wh", message.energy_wh, 0, _MAX_U16)
    if message.amount_fen is None:
        if message.tiers:
            raise _fail(message, "tiers", "need amount_fen (by-power orders, mode 3)",
                        len(message.tiers))
        if message.switch == 1 and message.mode == 3:
            raise _fail(message, "amount_fen", "is required by a by-power order (mode 3)", None)
        return
    if message.mode != 3:
        raise _fail(message, "amount_fen", "is for by-power orders (mode 3) only",
                    message.amount_fen)
    _within(message, "amount_fen", message.amount_fen, 0, _MAX_U16)
    _power_tiers(message, required=True)


def _check_voice_config(message: VoiceConfig) -> None:
    if message.socket_no != _BROADCAST_SOCKET:
        _within(message, "socket_no", message.socket_no, *_SOCKETS)
    _within(message, "port", message.port, 0, 1)
    _within(message, "buzzer_on", message.buzzer_on, 0, 1)
    _within(message, "voice_on", message.voice_on, 0, 1)
    if len(message.windows) > 2:
        raise _fail(message, "windows", "must hold at most 2 windows", len(message.windows))
    for i, window in enumerate(message.windows):
        _hh_mm(message, f"windows[{i}].start", window.start)
        _hh_mm(message, f"windows[{i}].end", window.end)


def _check_fee_control(message: FeeControl) -> None:
    _required(message, "socket_no", message.socket_no, *_SOCKETS)
    _required(message, "port", message.port, 0, 1)
    _required(message, "switch", message.switch, 0, 1)
    _optional(message, "charge_mode", message.charge_mode, 0, _MAX_U8)
    _optional(message, "control_type", message.control_type, 0, _MAX_U8)
    _optional(message, "payment_fen", message.payment_fen, 0, _MAX_U16)
    _optional(message, "service_fee_mode", message.service_fee_mode, 0, 1)
    _optional(message, "duration_limit_min", message.duration_limit_min, 0, _MAX_U16)
    tiers: tuple[FeeTier, ...] = message.fee_tiers
    _optional(message, "fee_tier_count", message.fee_tier_count, 0, _MAX_U8)
    if tiers and message.fee_tier_count not in (None, len(tiers)):
        raise _fail(message, "fee_tier_count", f"must equal the {len(tiers)} fee_tiers",
                    message.fee_tier_count)
    for i, tier in enumerate(tiers):
        _hh_mm(message, f"fee_tiers[{i}].end", tier.end)
        _within(message, f"fee_tiers[{i}].electricity_price_fen", tier.electricity_price_fen,
                0, _MAX_U16)
        _within(message, f"fee_tiers[{i}].service_price_fen", tier.service_price_fen, 0,
                _MAX_U16)
    if tiers and tiers[-1].end != "23:59":
        raise _fail(message, f"fee_tiers[{len(tiers) - 1}].end",
                    "must be 23:59 (the last tier ends the day)", tiers[-1].end)


def _check_param_set(message: ParamSet) -> None:
    _required(message, "socket_no", message.socket_no, *_SOCKETS)
    values = {field: getattr(message, field) for field in _PARAM_SET_LIMITS}
    if all(value is None for value in values.values()):
        raise LocalProtocolError(
            f"ParamSet sets nothing: give at least one of {', '.join(_PARAM_SET_LIMITS)}")
    for field, value in values.items():
        _optional(message, field, value, 0, _PARAM_SET_LIMITS[field])


def _check_param_query(message: ParamQuery) -> None:
    _required(message, "socket_no", message.socket_no, *_SOCKETS)


def _check_unknown_gn(message: UnknownGnMessage) -> None:
    sub = message.sub_command
    known = _GN_BY_KEY.get((sub, Direction.DOWN))
    if known is not None:
        raise _fail(message, "sub_command", f"has a message class: send a {known.__name__}",
                    sub)
    if sub in _REPORT_SUB_COMMANDS:
        raise _fail(message, "sub_command",
                    f"is a gateway's {_REPORT_SUB_COMMANDS[sub]}; a downlink with it answers "
                    "the report and is not a command", sub)


_FIELD_CHECKS: dict[type[Any], Callable[[Any], None]] = {
    OtaUpgrade: _check_ota, NetworkRefresh: _check_network_refresh,
    NetworkAdd: _check_network_add, StatusQuery: _check_status_query,
    ChargeControl: _check_charge_control, PowerControl: _check_power_control,
    CardOrder: _check_card_order, VoiceConfig: _check_voice_config,
    FeeControl: _check_fee_control, ParamSet: _check_param_set,
    ParamQuery: _check_param_query, UnknownGnMessage: _check_unknown_gn,
}
