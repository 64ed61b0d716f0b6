# One AP3000 ("DNY") frame to bytes and back (ap3000.md §2).
#
# Decoding checks the frame in the order of ap3000.md §2.7 (so that every
# malformed input gets the error the reference names: no_header,
# length_too_small, length_too_large, incomplete, checksum_mismatch, then
# trailing_bytes for a one-frame decode), then dispatches the data on (command,
# direction) to the fast decoders. The direction is an input: nothing in a frame
# says which way it travels (§2.6). Encoding writes optional fields up to the last
# one set (§2.6), with ``struct`` for the envelope, the fixed layouts and some
# variable ones; the construct grammar builds the rest and any value of an unusual
# type. ``reference_decode`` and ``reference_encode`` use the grammar alone; they
# exist for the differential tests and as an executable statement of the layout.
from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Callable
from operator import attrgetter
from struct import Struct
from struct import error as StructError
from typing import Any

import construct as cs

from .._errors import (
    ChecksumMismatch,
    Incomplete,
    LengthTooLarge,
    LengthTooSmall,
    LocalProtocolError,
    NoHeader,
    RemoteProtocolError,
    TrailingBytes,
)
from .._fastinit import frozen_dataclass, positional_builder, slot_filler
from .._types import Direction
from . import grammar
from .fastpath import DECODERS_BY_DIRECTION
from .grammar import HEADER, LAYOUTS, MAX_LENGTH, MIN_LENGTH, Layout, Text
from .messages import (
    MESSAGE_TYPES,
    Ap3000CardSwipe,
    Ap3000FirmwarePacketHost,
    Ap3000FirmwarePacketPowerBoard,
    Ap3000FirmwarePacketSlave,
    Ap3000HostSetServer,
    Ap3000LegacyFirmwarePacket,
    Ap3000Message,
    Ap3000PlayVoice,
    Ap3000ReadEeprom,
    Ap3000SetLimits,
    Ap3000SetParams11,
    Ap3000SetQrCode,
    Ap3000SlaveVersion,
    Ap3000WriteEeprom,
    UnknownAp3000Command,
)
from .values import format_phy_id

__all__ = ["Ap3000Frame", "Ap3000FrameSizeWarning", "check_downlink", "check_frame",
           "decode_checked", "reference_decode", "reference_encode"]

#: Frame bytes around the data: header 3, length 2, physical ID 4, message ID 2,
#: command 1, checksum 2.
FRAME_OVERHEAD = 14
#: The packet size the vendor document allows; 0xF8 frames need 269.
DOCUMENTED_MAX_LENGTH = 256
_LEGACY_FIRMWARE_LENGTH = 269

_HEAD = Struct("<IHB")
_ENVELOPE = Struct("<3sHIHB").unpack_from


class Ap3000FrameSizeWarning(UserWarning):
    """An encoded AP3000 frame is longer than the vendor's 256-byte packet limit
    (0xF8 packets of length 269 excepted). Devices may refuse it.

    .. versionadded:: 0.1.0
    """


def _message_key(message: Ap3000Message) -> tuple[int, Direction]:
    if isinstance(message, UnknownAp3000Command):
        return message.command, message.direction
    command, direction, _ = MESSAGE_TYPES[type(message)]
    return command, direction


@frozen_dataclass
class Ap3000Frame:
    """One AP3000 frame: ``DNY``, length, physical ID, message ID, command, data
    and checksum.

    The command code and direction follow from the message class; the
    length and checksum are computed when encoding.

    Attributes:
        physical_id: The 32-bit physical ID of the unit the frame concerns; see
            :attr:`phy_id`, :attr:`device_type_code` and :attr:`device_number`.
        message_id: The message ID (u16): a fresh number for each new
            command, the same for a retransmission, the request's in a reply.
        message: The decoded data.

    .. versionadded:: 0.1.0
    """

    physical_id: int
    message_id: int = 0
    message: Ap3000Message

    @property
    def direction(self) -> Direction:
        """Which way the frame travels (given by the message class)."""
        return _message_key(self.message)[1]

    @property
    def command(self) -> int:
        """The command byte."""
        return _message_key(self.message)[0]

    @property
    def phy_id(self) -> str:
        """The physical ID as 8 upper-case hex digits, type code first (``"04CEAA40"``)."""
        return format_phy_id(self.physical_id)

    @property
    def device_type_code(self) -> int:
        """The type code, the physical ID's most significant byte."""
        return self.physical_id >> 24

    @property
    def device_number(self) -> int:
        """The number printed under the unit's QR code, the low 24 bits."""
        return self.physical_id & 0xFF_FFFF

    @classmethod
    def decode(cls, data: bytes, direction: Direction) -> Ap3000Frame:
        """Decode *data*, which must hold exactly one frame.

        Args:
            data: The frame's bytes.
            direction: Which way the frame travelled (:attr:`Direction.UP
                <bkvcodec.Direction.UP>` for what a device sends); it selects the
                data layout, because a request and its reply share the command
                byte.

        Returns:
            The frame. A command without a layout in this direction gives an
            :class:`UnknownAp3000Command` message.

        Raises:
            FrameError: *data* is not one well-formed frame; the subclass says
                why (:class:`~bkvcodec.errors.NoHeader`,
                :class:`~bkvcodec.errors.LengthTooSmall`,
                :class:`~bkvcodec.errors.LengthTooLarge`,
                :class:`~bkvcodec.errors.Incomplete`,
                :class:`~bkvcodec.errors.ChecksumMismatch`,
                :class:`~bkvcodec.errors.TrailingBytes`).
            PayloadError: The frame is valid but its data is not
                (:class:`~bkvcodec.errors.PayloadTooShort`: a mandatory field or a counted list is
                missing).
            LocalProtocolError: *direction* is not a :class:`~bkvcodec.Direction`.
        """
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        # The common case in one pass: one well-formed frame of at most 256 bytes.
        if FRAME_OVERHEAD <= size <= 256:
            header, length, physical_id, message_id, command = _ENVELOPE(data)
            low = data[-2]
            high = data[-1]
            if header == HEADER and length + 5 == size and (
                    _adler32(data) & 0xFFFF) - 1 - low - high == low | high << 8:
                if direction is _UP:
                    decoder = _UP_DECODERS.get(command)
                elif direction is _DOWN:
                    decoder = _DOWN_DECODERS.get(command)
                else:
                    raise LocalProtocolError(
                        f"direction must be a Direction, got {direction!r}")
                if decoder is not None and _FRAME_FILLER is not None:
                    # _frame_new inlined: this is the hot path of every decoder.
                    frame = _new(_FRAME_FILLER)
                    frame.physical_id = physical_id
                    frame.message_id = message_id
                    frame.message = decoder(data, size - 2)
                    frame.__class__ = Ap3000Frame
                    return frame  # type: ignore[no-any-return]
                return decode_checked(data, size, direction)
        total = check_frame(data)
        if size > total:
            raise TrailingBytes(total, size)
        return decode_checked(data, total, direction)

    def encode(self) -> bytes:
        """The frame as bytes, with its length and checksum computed.

        Optional fields are written up to the last one set; unset ones before it
        get their neutral value. A frame longer than 256 bytes (other
        than an 0xF8 packet) triggers an :class:`Ap3000FrameSizeWarning`.

        Returns:
            The frame.

        Raises:
            LocalProtocolError: A field does not fit its wire encoding, or the
                frame would exceed the 1024-byte length limit.
        """
        message = self.message
        encoder = _FRAME_ENCODERS.get(message.__class__)
        if encoder is not None:
            # Anything unusual (a value out of range or of another type, a long
            # frame) is left to encode_frame, which gives the grammar's error.
            try:
                encoded = encoder(message, self.physical_id, self.message_id)
            except (StructError, ValueError, TypeError, OverflowError, AttributeError):
                encoded = None
            if encoded is not None:
                return encoded
        return encode_frame(self)

    def reply(self, message: Ap3000Message) -> Ap3000Frame:
        """The frame answering this one: same physical ID and message ID.

        Args:
            message: The answer, for example :class:`Ap3000HeartbeatReply` for an
                :class:`Ap3000Heartbeat`.

        Returns:
            The reply frame.

        Raises:
            LocalProtocolError: *message* has another command or travels the same
                way as this frame.
        """
        command, direction = _message_key(message)
        if command != self.command or direction is self.direction:
            raise LocalProtocolError(
                f"{type(message).__name__} does not answer command {self.command:#04x} "
                f"{self.direction.value}")
        return Ap3000Frame(physical_id=self.physical_id, message_id=self.message_id,
                           message=message)


# --- decoding ------------------------------------------------------------------------------

def checksum(data: bytes, end: int) -> int:
    """The checksum of the first *end* bytes of *data*."""
    if end + 2 == len(data) <= 256:
        # adler32's low half is 1 + the byte sum while that sum stays below 65521;
        # summing the whole frame saves a copy, then the two checksum bytes go.
        return (zlib.adler32(data) & 0xFFFF) - 1 - data[end] - data[end + 1]
    if end <= 256:
        # adler32's low half is 1 + the byte sum while that sum stays below 65521.
        return (zlib.adler32(memoryview(data)[:end]) & 0xFFFF) - 1
    return _long_sum(data, end)


def _long_sum(data: bytes, end: int) -> int:
    """The byte sum of ``data[:end]`` modulo 65536, through adler32 256 bytes at a time
    (adler32's low half is 1 + the byte sum while that sum stays below 65521)."""
    view = memoryview(data)
    total = 0
    for start in range(0, end, 256):
        total += (_adler32(view[start:min(start + 256, end)]) & 0xFFFF) - 1
    return total & 0xFFFF


def check_frame(data: bytes) -> int:
    """Check the frame at the start of *data*; return the frame's size.

    Raises:
        FrameError: As :meth:`Ap3000Frame.decode`, except
            :class:`~bkvcodec.errors.TrailingBytes`.
    """
    available = len(data)
    if data[:3] != HEADER:
        if available < 3 and HEADER.startswith(data):
            raise Incomplete(FRAME_OVERHEAD, available)
        raise NoHeader(bytes(data[:3]))
    if available < 5:
        raise Incomplete(FRAME_OVERHEAD, available)
    length = data[3] | data[4] << 8
    if length < MIN_LENGTH:
        raise LengthTooSmall(length, MIN_LENGTH)
    if length > MAX_LENGTH:
        raise LengthTooLarge(length, MAX_LENGTH)
    total = length + 5
    if available < total:
        raise Incomplete(total, available)
    expected = checksum(data, total - 2)
    actual = data[total - 2] | data[total - 1] << 8
    if expected != actual:
        raise ChecksumMismatch(expected, actual)
    return total


_frame_new = positional_builder(Ap3000Frame)
_FRAME_FILLER: Any = slot_filler(Ap3000Frame)
_new = object.__new__
_adler32 = zlib.adler32
_UP = Direction.UP
_DOWN = Direction.DOWN
_UP_DECODERS = DECODERS_BY_DIRECTION[Direction.UP]
_DOWN_DECODERS = DECODERS_BY_DIRECTION[Direction.DOWN]


def decode_checked(data: bytes, total: int, direction: Direction) -> Ap3000Frame:
    """Decode the *total*-byte frame at the start of *data*, already checked.

    Raises:
        PayloadError: The data does not fit the command's layout.
        LocalProtocolError: *direction* is not a :class:`~bkvcodec.Direction`.
    """
    physical_id, message_id, command = _HEAD.unpack_from(data, 5)
    if direction is _UP:
        decoder = _UP_DECODERS.get(command)
    elif direction is _DOWN:
        decoder = _DOWN_DECODERS.get(command)
    else:
        raise LocalProtocolError(f"direction must be a Direction, got {direction!r}")
    message = (decoder(data, total - 2) if decoder is not None else
               UnknownAp3000Command(direction=direction, command=command,
                                    data=data[12:total - 2]))
    return _frame_new(physical_id, message_id, message)


# --- encoding ------------------------------------------------------------------------------

def _neutral(layout: Layout, field: Any, message: Ap3000Message) -> Any:
    """The value written for an unset optional field before the last one set."""
    if isinstance(message, Ap3000CardSwipe) and field.name == "card_no2_len":
        return len(message.card_no2 or b"")
    return _layout_neutral(layout, field)


def _layout_neutral(layout: Layout, field: Any) -> Any:
    """:func:`_neutral` for a field whose neutral value does not depend on the message."""
    name = field.name
    if name in layout.neutral:
        return layout.neutral[name]
    sub = field.subcon
    if isinstance(sub, Text):
        return ""
    if isinstance(sub, cs.Bytes) and isinstance(sub.length, int):
        return bytes(sub.length)
    return 0


def _plain_value(value: object) -> Any:
    if isinstance(value, tuple):
        return [_plain_value(v) for v in value]
    if isinstance(value, Ap3000SlaveVersion):
        return dataclasses.asdict(value)
    return value


def _container(layout: Layout, message: Ap3000Message) -> dict[str, Any]:
    """*message* as the dict structure the layout's construct builds from."""
    out: dict[str, Any] = {}
    for field in layout.mandatory:
        if hasattr(message, field.name):
            out[field.name] = _plain_value(getattr(message, field.name))
    if isinstance(message, Ap3000CardSwipe) and message.card_no2 is not None and (
            message.card_no2_len not in (None, len(message.card_no2))):
        raise LocalProtocolError(
            f"card_no2_len {message.card_no2_len} but card_no2 has {len(message.card_no2)} "
            "bytes")
    values = [getattr(message, f.name) for f in layout.optional]
    last = max((i for i, v in enumerate(values) if v is not None), default=-1)
    tail: dict[str, Any] | None = None
    for i in range(last, -1, -1):
        field = layout.optional[i]
        value = values[i] if values[i] is not None else _neutral(layout, field, message)
        tail = {field.name: value, "tail": tail}
    if layout.optional:
        out["tail"] = tail
    if not layout.rest:
        out["extra"] = getattr(message, "extra", b"")
    return out


def _grammar_data(message: Ap3000Message) -> bytes:
    """The data field of *message*, built by the construct grammar."""
    if isinstance(message, UnknownAp3000Command):
        return message.data
    layout = LAYOUTS[_message_key(message)]
    return bytes(layout.struct.build(_container(layout, message)))


def _sized_as_wire(values: list[Any], sized: tuple[tuple[int, int, bool], ...],
                   count: int) -> bool:
    """Put the text and bytes fields among the first *count* of *values* in their wire
    form, in place: text as ASCII, bytes checked against their size. False when one
    is not written the way the grammar writes it (the grammar then decides)."""
    for i, size, text in sized:
        if i >= count:
            break
        value = values[i]
        if text:
            if type(value) is not str or not value.isascii() or len(value) > size:
                return False
            values[i] = value.encode("ascii")
        elif type(value) is not bytes or len(value) != size:
            return False
    return True

def _compile_encoder(layout: Layout) -> Callable[[Any], bytes | None] | None:
    """A ``struct`` encoder for a layout whose fields all have a fixed size, or None.

    It returns None for any value it does not write the way the grammar does (a value
    of an unusual type, text too long, bytes of the wrong size, a number out of range):
    the grammar then builds the data or raises its error.
    """
    plain = layout.plain()
    if plain is None:
        return None
    mandatory, optional = plain
    fields = [*mandatory, *optional]
    names = tuple(f.name for f in fields)
    first_optional = len(mandatory)
    # structs[k] packs the mandatory fields and the first k optional ones.
    structs = [Struct("<" + "".join(f.code for f in fields[:first_optional + k]))
               for k in range(len(optional) + 1)]
    # (index, size, is_text) of the text and bytes fields.
    sized = tuple((i, int(f.code[:-1]), f.text) for i, f in enumerate(fields)
                  if f.code.endswith("s"))

    def encode(message: Any) -> bytes | None:
        values = [getattr(message, name) for name in names]
        k = len(values) - first_optional
        while k and values[first_optional + k - 1] is None:
            k -= 1
        count = first_optional + k
        del values[count:]
        for i in range(first_optional, count):
            if values[i] is None:
                values[i] = _neutral(layout, layout.optional[i - first_optional], message)
        if not _sized_as_wire(values, sized, count):
            return None
        extra = message.extra
        if type(extra) is not bytes:
            return None
        try:
            return structs[k].pack(*values) + extra
        except StructError:
            return None
    return encode


_U8, _U16, _HEARTBEAT_HEAD = Struct("<B").pack, Struct("<H").pack, Struct("<HB").pack
_SLAVE_VERSION_PACK = Struct("<BBHI").pack


def _heartbeat_data(m: Any) -> bytes | None:
    statuses, extra = m.port_status, m.extra
    if type(statuses) is not tuple or type(extra) is not bytes:
        return None
    # bytes() refuses what the grammar's u8 refuses (out of range, not an integer);
    # the caller turns its error into the grammar path.
    return (_HEARTBEAT_HEAD(m.voltage_0p1v, len(statuses)) + bytes(statuses)
            + bytes((m.signal_strength, m.env_temp_raw)) + extra)


def _slave_versions_data(m: Any) -> bytes | None:
    entries, extra = m.entries, m.extra
    if type(entries) is not tuple or type(extra) is not bytes or any(
            type(e) is not Ap3000SlaveVersion for e in entries):
        return None
    return _U8(len(entries)) + b"".join(
        _SLAVE_VERSION_PACK(e.device_type, e.reserved, e.min_firmware_version, e.physical_id)
        for e in entries) + extra


_CARD_SWIPE_HEAD = Struct("<4sBBH").pack
_U32 = Struct("<I").pack


def _card_swipe_data(m: Any) -> bytes | None:
    card_id, extra = m.card_id, m.extra
    if type(card_id) is not bytes or len(card_id) != 4 or type(extra) is not bytes:
        return None
    data = _CARD_SWIPE_HEAD(card_id, m.card_type, m.port, m.card_balance_fen)
    timestamp, length, card_no2 = m.timestamp, m.card_no2_len, m.card_no2
    if card_no2 is not None:
        # A card_no2_len that disagrees with card_no2 is refused by the grammar
        # path, with its message.
        if type(card_no2) is not bytes or (length is not None and length != len(card_no2)):
            return None
        return (data + _U32(0 if timestamp is None else timestamp)
                + _U8(len(card_no2) if length is None else length) + card_no2 + extra)
    if length is not None:
        return data + _U32(0 if timestamp is None else timestamp) + _U8(length) + extra
    if timestamp is not None:
        return data + _U32(timestamp) + extra
    return data + extra


def _play_voice_data(m: Any) -> bytes | None:
    ids, extra = m.voice_ids, m.extra
    if type(ids) is not bytes or type(extra) is not bytes:
        return None
    return bytes((m.interrupt, len(ids))) + ids + extra


def _read_eeprom_reply_data(m: Any) -> bytes | None:
    data = m.eeprom_data
    return _U8(m.result) + data if type(data) is bytes else None


def _write_eeprom_data(m: Any) -> bytes | None:
    data = m.eeprom_data
    return _U16(m.address) + _U8(m.write_length) + data if type(data) is bytes else None


#: Data encoders by (command, direction): compiled for the fixed layouts, written by
#: hand for some variable ones. None from one: the grammar builds the data.
_ENCODERS: dict[tuple[int, Direction], Callable[[Any], bytes | None]] = {
    **{key: encoder for key, layout in LAYOUTS.items()
       if (encoder := _compile_encoder(layout)) is not None},
    (0x21, Direction.UP): _heartbeat_data,
    (0x02, Direction.UP): _card_swipe_data,
    (0x35, Direction.UP): _slave_versions_data,
    (0x89, Direction.DOWN): _play_voice_data,
    (0x8B, Direction.UP): _read_eeprom_reply_data,
    (0x8C, Direction.DOWN): _write_eeprom_data,
}


def encode_data(message: Ap3000Message) -> bytes:
    """The data field of *message* (see :meth:`bkvcodec.ap3000.Ap3000Frame.encode`).

    Fixed layouts are packed with ``struct``; the property tests check them against the
    grammar, which builds the others.
    """
    return _encode_data(message, _message_key(message))


def _encode_data(message: Ap3000Message, key: tuple[int, Direction]) -> bytes:
    if isinstance(message, UnknownAp3000Command):
        return message.data
    encoder = _ENCODERS.get(key)
    if encoder is not None:
        try:
            data = encoder(message)
        except (StructError, ValueError, TypeError, OverflowError, AttributeError):
            data = None
        if data is not None:
            return data
    layout = LAYOUTS[key]
    return bytes(layout.struct.build(_container(layout, message)))


_FRAME_HEAD = Struct("<3sHIHB")
_CHECKSUM = Struct("<H")
_frame_head = _FRAME_HEAD.pack
_checksum = _CHECKSUM.pack


def _data_max(command: int) -> int:
    """The longest data field a frame encoder writes: the length field stays within the
    documented limit (no size warning to give)."""
    return (_LEGACY_FIRMWARE_LENGTH if command == 0xF8 else DOCUMENTED_MAX_LENGTH) - MIN_LENGTH

#: ``encode(message, physical_id, message_id)``: the whole frame, or None (then
#: encode_frame writes it, or raises the error the grammar gives).
FrameEncoder = Callable[[Any, int, int], bytes | None]


def _plain_frame_encoder(command: int, layout: Layout) -> FrameEncoder | None:
    """A whole-frame encoder for a layout whose fields all have a fixed size: one
    ``struct`` for the envelope head and the fields (one per length of the optional
    tail), or None for other layouts.

    Like the data encoders it returns None for a value it does not write as the grammar
    does (text that is not ASCII or too long, bytes of another size or type).
    """
    plain = layout.plain()
    if plain is None:
        return None
    mandatory, optional = plain
    fields = [*mandatory, *optional]
    first_optional = len(mandatory)
    # structs[k]: the head, the mandatory fields and the first k optional ones.
    structs = [Struct("<3sHIHB" + "".join(f.code for f in fields[:first_optional + k]))
               for k in range(len(optional) + 1)]
    packs = [layout_struct.pack for layout_struct in structs]
    # The length field (from the physical ID to the checksum) without the extra.
    lengths = [layout_struct.size - 3 for layout_struct in structs]
    # (index, size, is_text) of the text and bytes fields.
    sized = tuple((i, int(f.code[:-1]), f.text) for i, f in enumerate(fields)
                  if f.code.endswith("s"))
    neutrals = [_layout_neutral(layout, field) for field in layout.optional]
    # The longest length field a frame encoder writes.
    data_max = _data_max(command)
    limit = data_max + MIN_LENGTH
    header = HEADER
    count = len(fields)
    if not count:
        pack = packs[0]

        def encode_empty(m: Any, physical_id: int, message_id: int) -> bytes | None:
            extra = m.extra
            if type(extra) is not bytes or len(extra) > data_max:
                return None
            body = pack(header, MIN_LENGTH + len(extra), physical_id, message_id,
                        command) + extra
            size = len(body)
            check = (_adler32(body) & 0xFFFF) - 1 if size <= 256 else _long_sum(body, size)
            return body + _checksum(check)
        return encode_empty
    get = attrgetter(*[f.name for f in fields], "extra")
    texts = any(text for _, _, text in sized)
    if not optional and not texts:
        # Numbers and fixed-size bytes only: the values go to the struct as they are.
        pack, fixed_length = packs[0], lengths[0]

        def encode_fixed(m: Any, physical_id: int, message_id: int) -> bytes | None:
            values: Any = get(m)
            extra = values[count]
            if type(extra) is not bytes:
                return None
            for i, size, _ in sized:
                value = values[i]
                if type(value) is not bytes or len(value) != size:
                    return None
            length = fixed_length + len(extra)
            if length > limit:
                return None
            body = pack(header, length, physical_id, message_id, command,
                        *values[:count]) + extra
            total = len(body)
            check = (_adler32(body) & 0xFFFF) - 1 if total <= 256 else _long_sum(body, total)
            return body + _checksum(check)
        return encode_fixed

    def encode(m: Any, physical_id: int, message_id: int) -> bytes | None:
        values: Any = get(m)
        extra = values[count]
        if type(extra) is not bytes:
            return None
        k = count - first_optional
        while k and values[first_optional + k - 1] is None:
            k -= 1
        values = values[:first_optional + k]
        if sized or k:
            values = list(values)
            for i in range(first_optional, first_optional + k):
                if values[i] is None:
                    values[i] = neutrals[i - first_optional]
            if not _sized_as_wire(values, sized, first_optional + k):
                return None
        length = lengths[k] + len(extra)
        if length > limit:
            return None
        body = packs[k](header, length, physical_id, message_id, command, *values) + extra
        check = (_adler32(body) & 0xFFFF) - 1 if len(body) <= 256 else _long_sum(body, len(body))
        return body + _checksum(check)
    return encode


def _data_frame_encoder(command: int, data_encoder: Callable[[Any], bytes | None]
                        ) -> FrameEncoder:
    """The envelope around a data encoder's result."""
    data_max = _data_max(command)

    def encode(m: Any, physical_id: int, message_id: int) -> bytes | None:
        data = data_encoder(m)
        if data is None or len(data) > data_max:
            return None
        body = _frame_head(HEADER, len(data) + MIN_LENGTH, physical_id, message_id,
                           command) + data
        check = (_adler32(body) & 0xFFFF) - 1 if len(body) <= 256 else _long_sum(body, len(body))
        return body + _checksum(check)
    return encode


def _frame_encoders() -> dict[type[Ap3000Message], FrameEncoder]:
    out: dict[type[Ap3000Message], FrameEncoder] = {}
    for cls, (command, direction, _) in MESSAGE_TYPES.items():
        key = (command, direction)
        encoder = _plain_frame_encoder(command, LAYOUTS[key])
        if encoder is None and key in _ENCODERS:
            encoder = _data_frame_encoder(command, _ENCODERS[key])
        if encoder is not None:
            out[cls] = encoder
    return out


#: Whole-frame encoders by message class (the exact class: a subclass takes the
#: general path).
_FRAME_ENCODERS = _frame_encoders()


#: What building a frame raises for a value that does not fit its wire encoding
#: (the grammar's, struct's and the fast encoders' errors), turned into
#: LocalProtocolError by both encoders.
_UNENCODABLE = (cs.ConstructError, ValueError, TypeError, OverflowError, AttributeError,
                KeyError, UnicodeError, StructError)

def encode_frame(frame: Ap3000Frame) -> bytes:
    """Encode *frame* (see :meth:`bkvcodec.ap3000.Ap3000Frame.encode`)."""
    try:
        message = frame.message
        key = _message_key(message)
        command = key[0]
        data = _encode_data(message, key)
        length = len(data) + MIN_LENGTH
        if length > MAX_LENGTH:
            raise LocalProtocolError(f"length {length} exceeds the limit {MAX_LENGTH}")
        # The envelope by hand (grammar.FRAME was most of the encode time);
        # reference_encode builds it with the grammar, and the property tests check
        # that both agree.
        body = _FRAME_HEAD.pack(HEADER, length, frame.physical_id, frame.message_id,
                                command) + data
        # adler32's low half is 1 + the byte sum while that sum stays below 65521.
        check = ((_adler32(body) & 0xFFFF) - 1 if len(body) <= 256
                 else _long_sum(body, len(body)))
        encoded = body + _CHECKSUM.pack(check)
    except LocalProtocolError:
        raise
    except _UNENCODABLE as err:
        raise LocalProtocolError(
            f"cannot encode {type(frame.message).__name__}: {err}") from err
    limit = _LEGACY_FIRMWARE_LENGTH if command == 0xF8 else DOCUMENTED_MAX_LENGTH
    if length > limit:
        warnings.warn(f"AP3000 frame length {length} exceeds the documented {limit}",
                      Ap3000FrameSizeWarning, stacklevel=3)
    return encoded


def reference_encode(frame: Ap3000Frame) -> bytes:
    """Encode *frame* with the construct grammar alone (slow; for tests).

    Raises:
        LocalProtocolError: A field does not fit its wire encoding.
    """
    try:
        data = _grammar_data(frame.message)
        return bytes(grammar.FRAME.build({"body": {"value": {
            "physical_id": frame.physical_id, "message_id": frame.message_id,
            "command": frame.command, "data": data}}}))
    except LocalProtocolError:
        raise
    except _UNENCODABLE as err:
        raise LocalProtocolError(
            f"cannot encode {type(frame.message).__name__}: {err}") from err


# --- the grammar as a decoder ---------------------------------------------------------------

def _flatten(layout: Layout, parsed: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in layout.mandatory:
        values[field.name] = parsed[field.name]
    tail = parsed.get("tail")
    for field in layout.optional:
        if tail is None:
            values[field.name] = None
            continue
        values[field.name] = tail[field.name]
        tail = tail.get("tail")
    if not layout.rest:
        values["extra"] = parsed["extra"]
    return values


def _python(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return tuple(Ap3000SlaveVersion(
                device_type=int(v["device_type"]), reserved=int(v["reserved"]),
                min_firmware_version=int(v["min_firmware_version"]),
                physical_id=int(v["physical_id"])) for v in value)
        return tuple(int(v) for v in value)
    return None if value is None else int(value)


def reference_decode(data: bytes, direction: Direction) -> Ap3000Frame:
    """Decode one frame with the construct grammar alone (slow; for tests).

    Raises:
        RemoteProtocolError: The bytes are not a valid frame or payload (the
            error is less specific than :meth:`bkvcodec.ap3000.Ap3000Frame.decode`'s).
    """
    try:
        parsed = grammar.FRAME.parse(data)
    except cs.ConstructError as err:
        raise _GrammarRejected(f"frame: {err}") from err
    body = parsed["body"]["value"]
    command = int(body["command"])
    payload = bytes(body["data"])
    layout = LAYOUTS.get((command, direction))
    if layout is None:
        message: Ap3000Message = UnknownAp3000Command(
            direction=direction, command=command, data=payload)
    else:
        try:
            values = _flatten(layout, layout.struct.parse(payload))
        except cs.ConstructError as err:
            raise _GrammarRejected(f"{layout.name}: {err}") from err
        cls = next(c for c, key in MESSAGE_TYPES.items() if key[:2] == (command, direction))
        names = {f.name for f in dataclasses.fields(cls)}
        message = cls(**{k: _python(v) for k, v in values.items() if k in names})
    return Ap3000Frame(physical_id=int(body["physical_id"]),
                       message_id=int(body["message_id"]), message=message)


class _GrammarRejected(RemoteProtocolError):
    """The reference grammar rejected the bytes (reason in the message)."""

    code = "grammar_rejected"


#: Limits the protocol states for downlink fields that are narrower than the wire
#: type: (low, high, where the limit comes from).
_DOCUMENTED_LIMITS: dict[tuple[type[Ap3000Message], str], tuple[int, int, str]] = {
    (Ap3000SetParams11, "float_percent"): (1, 100, "percent"),
    (Ap3000SetLimits, "overload_power_0p1w"): (
        0, 35000, "0.1 W, at most 3500 W on high-power models"),
    (Ap3000ReadEeprom, "read_length"): (0, 32, "bytes"),
    (Ap3000WriteEeprom, "write_length"): (0, 32, "bytes"),
}
#: Text fields whose content must leave room for a terminating NUL.
_TEXT_LIMITS: dict[tuple[type[Ap3000Message], str], int] = {
    (Ap3000SetQrCode, "qr_text"): 71,
    (Ap3000HostSetServer, "server_address"): 45,
}
_FIRMWARE_PACKETS = (Ap3000FirmwarePacketSlave, Ap3000FirmwarePacketPowerBoard,
                     Ap3000FirmwarePacketHost, Ap3000LegacyFirmwarePacket)


def _check_field(cls: type[Ap3000Message], field: Any, value: object) -> None:
    """Check one field value against its wire type and the documented limits."""
    where = f"{cls.__name__}.{field.name}"
    sub = field.subcon
    if isinstance(sub, cs.FormatField):
        if type(value) is not int:
            raise LocalProtocolError(f"{where} must be an integer, got {value!r}")
        low, high, why = _DOCUMENTED_LIMITS.get(
            (cls, field.name), (0, 256 ** sub.sizeof() - 1, f"u{8 * sub.sizeof()}"))
        if not low <= value <= high:
            raise LocalProtocolError(f"{where} must be {low}-{high} ({why}), got {value}")
    elif isinstance(sub, Text):
        if not isinstance(value, str):
            raise LocalProtocolError(f"{where} must be text, got {value!r}")
        limit = _TEXT_LIMITS.get((cls, field.name), sub.size)
        try:
            size = len(value.encode("latin-1"))
        except UnicodeError:
            raise LocalProtocolError(f"{where} must be Latin-1 text, got {value!r}") from None
        if size > limit:
            raise LocalProtocolError(
                f"{where} holds at most {limit} characters ({sub.size} bytes NUL-padded), "
                f"got {size}")
    elif isinstance(sub, cs.Bytes) and isinstance(sub.length, int):
        if not isinstance(value, bytes):
            raise LocalProtocolError(f"{where} must be bytes, got {value!r}")
        if len(value) != sub.length:
            raise LocalProtocolError(
                f"{where} must be exactly {sub.length} bytes, got {len(value)}")


def check_downlink(message: Ap3000Message) -> None:
    """Check that *message* is a server-to-device message that encodes and keeps
    the limits the protocol states for its fields.

    Beyond each field's wire type (u8, u16, fixed-size bytes, text size) it checks
    ``float_percent`` of 0x83 (1-100), ``overload_power_0p1w`` of 0x85 (at most
    3500 W), ``qr_text`` of 0x8E (71 characters) and ``server_address`` of 0x34 (45
    characters, each leaving room for the final NUL), the EEPROM lengths of 0x8B and
    0x8C (at most 32, and the 0x8C length equal to the data's), the 0x89 prompt count
    (one byte) and the packet number of firmware packets (1 to ``total_packets``).
    Value sets (modes, work modes, the mute flag …) stay open, as everywhere in the
    codec: a unit answers a value it does not know with a result code.

    Raises:
        LocalProtocolError: An uplink, or a value that does not fit its field; the
            message names the field and the allowed range.
    """
    if isinstance(message, UnknownAp3000Command):
        raise LocalProtocolError("UnknownAp3000Command is not a command a server sends")
    cls = type(message)
    command, direction, _ = MESSAGE_TYPES[cls]
    if direction is not Direction.DOWN:
        raise LocalProtocolError(f"{cls.__name__} is sent by devices, not servers")
    layout = LAYOUTS[(command, direction)]
    for field in layout.mandatory + layout.optional:
        value = getattr(message, field.name, None)  # counts (voice_count) are derived
        if value is not None:
            _check_field(cls, field, value)
    if isinstance(message, Ap3000PlayVoice) and len(message.voice_ids) > 0xFF:
        raise LocalProtocolError(
            f"Ap3000PlayVoice.voice_ids holds at most 255 prompts (voice_count is one "
            f"byte), got {len(message.voice_ids)}")
    if isinstance(message, Ap3000WriteEeprom) and (
            message.write_length != len(message.eeprom_data)):
        raise LocalProtocolError(
            f"Ap3000WriteEeprom.write_length is {message.write_length} but eeprom_data "
            f"has {len(message.eeprom_data)} bytes")
    if isinstance(message, _FIRMWARE_PACKETS) and not (
            1 <= message.packet_no <= message.total_packets):
        raise LocalProtocolError(
            f"{cls.__name__}.packet_no must be 1-{message.total_packets} (1-based, at most "
            f"total_packets), got {message.packet_no}")
    Ap3000Frame(physical_id=0, message_id=1, message=message).encode()
