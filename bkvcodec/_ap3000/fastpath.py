# Fast decoding of AP3000 data fields with ``struct`` (ap3000.md §4-§6).
#
# The construct grammar (``grammar.py``) is the definition; parsing with it costs
# 20-100 µs a message. This module reads the same layouts in two ways:
#
# * Fixed layouts (every field a number, fixed-size bytes or NUL-padded text) are
#   compiled at import time from the grammar's ``Layout.plain()`` records into one
#   ``struct.Struct`` per possible optional tail (mandatory fields plus the first
#   k optional ones), so any payload is read with a single ``unpack_from``
#   whatever firmware version sent it. This covers the hot 0x06 power heartbeat,
#   0x03 settlement and 0x11 host heartbeat.
# * Layouts whose size depends on the data (0x01 and 0x21 with their per-port
#   lists, 0x02's second card number, 0x35, 0x89, 0x8B/0x8C rest-of-data fields)
#   are read by hand-written functions.
#
# Every decoder reads the data field in place, from offset 12 of the whole frame
# up to the checksum (``decode(frame, end)``): the envelope is checked once by the
# caller, and the fixed layouts need no copy of the data field.
#
# Messages are built positionally by ``positional_builder``, skipping the frozen
# dataclass's ``__init__`` (which costs 0.13 µs a field; the builder about
# 0.02 µs); the values are well typed by construction.
# ``tests/test_ap3000_roundtrip.py`` checks, on generated, real, mutated and
# random frames, that every decoder here agrees with the grammar, errors included
# (§2.6: payload_too_short when a mandatory field or a counted list is missing,
# leftovers to ``extra``, never an error for them).
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from itertools import starmap
from struct import Struct

from .._errors import PayloadTooShort
from .._fastinit import positional_builder
from .._types import Direction
from .grammar import LAYOUTS, PlainField
from .messages import (
    MESSAGE_TYPES,
    Ap3000CardSwipe,
    Ap3000Heartbeat,
    Ap3000LegacyHeartbeat,
    Ap3000Message,
    Ap3000PlayVoice,
    Ap3000ReadEepromReply,
    Ap3000SlaveVersion,
    Ap3000SlaveVersions,
    Ap3000WriteEeprom,
)

__all__ = ["DECODERS", "DECODERS_BY_DIRECTION"]

#: ``decode(frame, end)``: the message in ``frame[12:end]`` (``end`` is where the
#: checksum starts).
Decoder = Callable[[bytes, int], Ap3000Message]

#: Where the data field starts in a frame.
DATA = 12



# --- compiled fixed layouts ---------------------------------------------------------------------

def _compile(name: str, cls: type[Ap3000Message], mandatory: Sequence[PlainField],
             optional: Sequence[PlainField]) -> Decoder:
    """A decoder for a layout whose fields all have a fixed size."""
    fields = [*mandatory, *optional]
    declared = [f.name for f in dataclasses.fields(cls)]
    if declared != [f.name for f in fields] + ["extra"]:
        raise AssertionError(f"{cls.__name__} fields do not follow the {name} layout")
    build = positional_builder(cls)
    # structs[k] reads the mandatory fields and the first k optional ones.
    structs = [Struct("<" + "".join(f.code for f in fields[:len(mandatory) + k]))
               for k in range(len(optional) + 1)]
    sizes = [s.size for s in structs]
    full = sizes[-1]
    minimum = sizes[0]
    # by_length[n] = the struct for an n-byte payload (n capped at the full size).
    by_length: list[tuple[Struct, tuple[None, ...]] | None] = []
    for n in range(full + 1):
        fitting = [k for k, size in enumerate(sizes) if size <= n]
        k = fitting[-1] if fitting else -1
        by_length.append(None if k < 0 else (structs[k], (None,) * (len(optional) - k)))
    texts = [i for i, f in enumerate(fields) if f.text]

    if not texts and not optional:
        # The common shape: one struct whatever the length.
        layout = structs[0]
        unpack_from = layout.unpack_from
        size = layout.size
        if not size:
            # Messages are immutable, so every empty one can be the same object.
            empty = build(b"")

            def decode_empty(frame: bytes, end: int) -> Ap3000Message:
                return build(frame[DATA:end]) if end > DATA else empty
            return decode_empty

        def decode_fixed(frame: bytes, end: int) -> Ap3000Message:
            if end - DATA < size:
                raise PayloadTooShort(name, size, end - DATA)
            return build(*unpack_from(frame, DATA), frame[DATA + size:end])
        return decode_fixed

    if not texts:
        def decode(frame: bytes, end: int) -> Ap3000Message:
            n = end - DATA
            entry = by_length[n if n < full else full]
            if entry is None:
                raise PayloadTooShort(name, minimum, n)
            layout, absent = entry
            return build(*layout.unpack_from(frame, DATA), *absent,
                         frame[DATA + layout.size:end])
        return decode

    def decode_text(frame: bytes, end: int) -> Ap3000Message:
        n = end - DATA
        entry = by_length[n if n < full else full]
        if entry is None:
            raise PayloadTooShort(name, minimum, n)
        layout, absent = entry
        values: list[object] = list(layout.unpack_from(frame, DATA))
        for i in texts:
            if i < len(values):
                raw = values[i]
                assert isinstance(raw, bytes)
                values[i] = raw.rstrip(b"\0").decode("latin-1")
        return build(*values, *absent, frame[DATA + layout.size:end])
    return decode_text


# --- hand-written variable layouts -----------------------------------------------------------

_U16_LISTS = [Struct(f"<{n}H") for n in range(256)]
_legacy_heartbeat_new = positional_builder(Ap3000LegacyHeartbeat)
_heartbeat_new = positional_builder(Ap3000Heartbeat)
_card_swipe_new = positional_builder(Ap3000CardSwipe)
_SLAVE_VERSION = Struct("<BBHI")
_slave_version_new = positional_builder(Ap3000SlaveVersion)
_slave_versions_new = positional_builder(Ap3000SlaveVersions)
_play_voice_new = positional_builder(Ap3000PlayVoice)
_read_eeprom_reply_new = positional_builder(Ap3000ReadEepromReply)
_write_eeprom_new = positional_builder(Ap3000WriteEeprom)


def _legacy_heartbeat(frame: bytes, end: int) -> Ap3000Message:
    """0x01 up: n = port_count; 8 + 5n mandatory bytes, two optional."""
    p = frame[DATA:end]
    n = len(p)
    if n < 5:
        raise PayloadTooShort("legacy_heartbeat", 8, n)
    count = p[4]
    last = 8 + 5 * count
    if n < last:
        raise PayloadTooShort("legacy_heartbeat", last, n)
    powers = _U16_LISTS[count]
    env_temp = p[last] if n > last else None
    work_mode = p[last + 1] if n > last + 1 else None
    stop = last if env_temp is None else last + 1 if work_mode is None else last + 2
    return _legacy_heartbeat_new(
        p[0] | p[1] << 8, p[2] | p[3] << 8, tuple(p[5:5 + count]),
        powers.unpack_from(p, 5 + count), powers.unpack_from(p, 5 + 3 * count),
        p[last - 3], p[last - 2], p[last - 1], env_temp, work_mode, p[stop:])


def _heartbeat(frame: bytes, end: int) -> Ap3000Message:
    """0x21 up: voltage, n = port_count, n statuses, signal, temperature."""
    n = end - DATA
    if n < 3:
        raise PayloadTooShort("heartbeat", 5, n)
    count = frame[14]
    last = 17 + count
    if end < last:
        raise PayloadTooShort("heartbeat", last - DATA, n)
    return _heartbeat_new(frame[12] | frame[13] << 8, tuple(frame[15:15 + count]),
                          frame[last - 2], frame[last - 1], frame[last:end])


def _card_swipe(frame: bytes, end: int) -> Ap3000Message:
    """0x02 up: 8 mandatory bytes; timestamp, card_no2_len, card_no2 optional."""
    p = frame[DATA:end]
    n = len(p)
    if n < 8:
        raise PayloadTooShort("card_swipe", 8, n)
    timestamp: int | None = None
    length: int | None = None
    card_no2: bytes | None = None
    stop = 8
    if n >= 12:
        timestamp = p[8] | p[9] << 8 | p[10] << 16 | p[11] << 24
        stop = 12
        if n >= 13:
            length = p[12]
            stop = 13
            if n >= 13 + length:
                card_no2 = p[13:13 + length]
                stop = 13 + length
    return _card_swipe_new(p[:4], p[4], p[5], p[6] | p[7] << 8, timestamp, length, card_no2,
                           p[stop:])


def _slave_versions(frame: bytes, end: int) -> Ap3000Message:
    """0x35 up: type_count, then 8-byte entries."""
    n = end - DATA
    if n < 1:
        raise PayloadTooShort("slave_versions", 1, n)
    last = DATA + 1 + 8 * frame[DATA]
    if end < last:
        raise PayloadTooShort("slave_versions", last - DATA, n)
    return _slave_versions_new(
        tuple(starmap(_slave_version_new, _SLAVE_VERSION.iter_unpack(frame[DATA + 1:last]))),
        frame[last:end])


def _play_voice(frame: bytes, end: int) -> Ap3000Message:
    """0x89 down: interrupt, voice_count, voice ids."""
    n = end - DATA
    if n < 2:
        raise PayloadTooShort("play_voice", 2, n)
    last = DATA + 2 + frame[DATA + 1]
    if end < last:
        raise PayloadTooShort("play_voice", last - DATA, n)
    return _play_voice_new(frame[DATA], frame[DATA + 2:last], frame[last:end])


def _read_eeprom_reply(frame: bytes, end: int) -> Ap3000Message:
    """0x8B up: result, then the memory read."""
    if end <= DATA:
        raise PayloadTooShort("read_eeprom_reply", 1, 0)
    return _read_eeprom_reply_new(frame[DATA], frame[DATA + 1:end])


def _write_eeprom(frame: bytes, end: int) -> Ap3000Message:
    """0x8C down: address, write_length, then the bytes to write."""
    if end - DATA < 3:
        raise PayloadTooShort("write_eeprom", 3, end - DATA)
    return _write_eeprom_new(frame[DATA] | frame[DATA + 1] << 8, frame[DATA + 2],
                             frame[DATA + 3:end])


_HAND_WRITTEN: dict[tuple[int, Direction], Decoder] = {
    (0x01, Direction.UP): _legacy_heartbeat,
    (0x21, Direction.UP): _heartbeat,
    (0x02, Direction.UP): _card_swipe,
    (0x35, Direction.UP): _slave_versions,
    (0x89, Direction.DOWN): _play_voice,
    (0x8B, Direction.UP): _read_eeprom_reply,
    (0x8C, Direction.DOWN): _write_eeprom,
}


def _decoders() -> dict[tuple[int, Direction], Decoder]:
    classes = {(command, direction): cls
               for cls, (command, direction, _) in MESSAGE_TYPES.items()}
    out: dict[tuple[int, Direction], Decoder] = {}
    for key, layout in LAYOUTS.items():
        plain = layout.plain()
        if plain is None:
            out[key] = _HAND_WRITTEN[key]
        else:
            out[key] = _compile(layout.name, classes[key], *plain)
    return out


#: Fast decoders by (command, direction); the same keys as grammar.LAYOUTS.
DECODERS: dict[tuple[int, Direction], Decoder] = _decoders()
#: The same by direction, then command (hashing an Enum member costs more than the
#: lookup itself).
DECODERS_BY_DIRECTION: dict[Direction, dict[int, Decoder]] = {
    direction: {command: decoder for (command, way), decoder in DECODERS.items()
                if way is direction}
    for direction in Direction}
