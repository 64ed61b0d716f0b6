"""Hypothesis strategies for bkvcodec's messages, frames and byte streams.

Use them to property-test code that consumes or produces frames::

    from hypothesis import given
    from bkvcodec.testing import ap3000_frames, bkv_frames, malformed_bkv_frames

    @given(bkv_frames())
    def test_handler_survives_any_frame(frame):
        my_handler(frame.encode())

    @given(ap3000_frames(direction=Direction.UP))
    def test_server_survives_any_uplink(frame):
        my_server(frame.encode())

    @given(malformed_bkv_frames())
    def test_handler_rejects_bad_frames(case):
        with pytest.raises(case.error):
            my_strict_decoder(case.data)

Every generated message is valid by construction: it encodes, and decoding
the bytes gives an equal message. The malformed strategies say what they broke
(:class:`Mutation`) and which error a one-shot decode raises. This module needs
``hypothesis``: install ``bkvcodec[testing]``.

.. versionadded:: 0.1.0
"""
# Strategy: one strategy per message kind, built from the same field lists the
# codecs use (the AP3000 layouts are read from the grammar), so that a new
# message kind is covered without touching the tests. Frames wrap messages;
# streams join frames, modem items and noise that cannot start anything; the
# malformed strategies start from a valid frame (or build an envelope by hand)
# and break exactly one rule, so the error a decoder must raise is known
# without asking the decoder. Nothing here does I/O.
from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - checked by a test that hides hypothesis
    raise ImportError(
        "bkvcodec.testing needs hypothesis; install it with: pip install 'bkvcodec[testing]'"
    ) from err

from ._ap3000 import messages as a
from ._ap3000.codec import Ap3000Frame
from ._ap3000.grammar import LAYOUTS, MAX_LENGTH, MIN_LENGTH, PlainField
from ._ap3000.nonframe import IccidAnnouncement, LinkKeepAlive
from ._bkv import messages as m
from ._bkv.codec import BkvFrame
from ._bkv.grammar import ENVELOPE_OVERHEAD
from ._bkv.packets import BKV_PACKETS
from ._decoder import FrameDecoder
from ._errors import (
    BadLength,
    BadMagic,
    BadTrailer,
    ChecksumMismatch,
    Incomplete,
    InnerLengthMismatch,
    LengthTooLarge,
    LengthTooSmall,
    NoHeader,
    PayloadTooShort,
    RemoteProtocolError,
    TrailingBytes,
    Truncated,
)
from ._fastinit import frozen_dataclass
from ._known_frames import KNOWN_FRAMES
from ._types import BcdTime, BinaryTime, Direction, ProtocolFamily

__all__ = [
    "MalformedFrame",
    "Mutation",
    "ap3000_frame_bytes",
    "ap3000_frames",
    "ap3000_messages",
    "ap3000_streams",
    "assert_valid_frames",
    "bkv_frame_bytes",
    "bkv_frames",
    "bkv_messages",
    "bkv_streams",
    "chunked",
    "device_traffic",
    "malformed_ap3000_frames",
    "malformed_bkv_frames",
    "mixed_streams",
    "vector_bytes",
]

_u8 = st.integers(0, 0xFF)
_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFF_FFFF)
_hh_mm = st.builds(lambda h, mm: f"{h:02d}:{mm:02d}", _u8, _u8)
_extra = st.binary(max_size=6)
_containers = st.sampled_from([m.GN_CONTROL, m.GN_NETWORK])


def _kind(cls: type[m.BkvMessage], **fields: st.SearchStrategy[object]
          ) -> tuple[str, st.SearchStrategy[m.BkvMessage]]:
    return cls.__name__, st.builds(cls, **fields)


def _fixed(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


def _text(max_size: int) -> st.SearchStrategy[str]:
    # Fixed-size text fields are NUL padded, so a NUL cannot end the text.
    return st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=max_size)


_tiers = st.lists(st.builds(m.PowerTier, max_power_dw=_u16, price_fen=_u16, duration_min=_u16),
                  max_size=5).map(tuple)
_durations = st.lists(_u16, max_size=5).map(tuple)
_binary_time = st.builds(BinaryTime, _u16, _u8, _u8, _u8, _u8, _u8)
_bcd_time = _fixed(7).map(BcdTime)

_M17 = {
    "socket_no": _u8, "socket_version": _fixed(2), "temperature_c": _u8, "rssi": _u8,
    "port": _u8, "status": _u8, "business_no": _u16, "power_dw": _u16, "current_ma": _u16,
    "energy_wh": _u16, "duration_min": _u16,
}

_GN_KINDS: list[tuple[str, st.SearchStrategy[m.BkvMessage]]] = [
    _kind(m.NetworkRefresh, channel=_u8, sockets=st.lists(
        st.builds(m.NetworkSocket, socket_no=_u8, mac=_fixed(6)), max_size=8).map(tuple),
        extra=st.binary(max_size=6), container=_containers),
    _kind(m.NetworkRefreshAck, result=_u8, extra=_extra, container=_containers),
    _kind(m.NetworkAdd, socket_no=_u8, mac=_fixed(6), extra=_extra, container=_containers),
    _kind(m.NetworkAddAck, result=_u8, extra=_extra, container=_containers),
    _kind(m.StatusQuery, socket_no=_u8, extra=_extra, container=_containers),
    _kind(m.SocketStatus, socket_no=_u8, socket_version=_fixed(2), temperature_c=_u8,
          rssi=_u8, ports=st.lists(st.builds(
              m.PortReport, port=_u8, status=_u8, business_no=_u16, voltage_dv=_u16,
              power_dw=_u16, current_ma=_u16, energy_wh=_u16, duration_min=_u16),
              max_size=4).map(tuple),
          sub_command=st.sampled_from([0x1C, 0x1D]), extra=st.binary(max_size=13),
          container=_containers),
    _kind(m.ChargeControl, socket_no=_u8, port=_u8, switch=_u8, mode=_u8,
          duration_min=_u16, energy_wh=_u16, extra=_extra, container=_containers),
    _kind(m.ChargeControlAck, result=_u8, socket_no=_u8, port=_u8, business_no=_u16,
          extra=_extra, container=_containers),
    _kind(m.ChargeEnd, **_M17, extra=_extra, container=_containers),
    _kind(m.PowerControl, socket_no=_u8, port=_u8, switch=_u8, amount_fen=_u16,
          tiers=_tiers, extra=_extra, container=_containers),
    _kind(m.PowerChargeEnd, **_M17, end_time=_binary_time, end_reason=_u8,
          amount_fen=_u16, settlement_power_dw=_u16, tier_durations_min=_durations,
          extra=_extra, container=_containers),
    _kind(m.CardSwipe, socket_no=_u8, port=_u8, business_no=_u16, status=_u8,
          card_no=_fixed(6), offline_params=_fixed(20), extra=_extra,
          container=_containers),
    # A time/energy card order: any extra bytes must not read as a power part.
    _kind(m.CardOrder, socket_no=_u8, port=_u8, business_no=_u16, switch=_u8, mode=_u8,
          duration_min=_u16, energy_wh=_u16, extra=st.binary(max_size=2),
          container=_containers),
    _kind(m.CardOrder, socket_no=_u8, port=_u8, business_no=_u16, switch=_u8, mode=_u8,
          duration_min=_u16, energy_wh=_u16, amount_fen=_u16, tiers=_tiers,
          extra=_extra, container=_containers),
    _kind(m.CardOrderAck, socket_no=_u8, port=_u8, result=_u8, extra=_extra,
          container=_containers),
    _kind(m.CardChargeEnd, **_M17, card_no=_fixed(6), card_type=_u8, billing_mode=_u8,
          amount_fen=_u16, settlement_power_dw=_u16, tier_durations_min=_durations,
          extra=_extra, container=_containers),
    _kind(m.ChargeEndAck, socket_no=_u8, result=_u8, extra=_extra, container=_containers),
    _kind(m.CardBalanceQuery, socket_no=_u8, port=_u8, card_no=_fixed(6), extra=_extra,
          container=_containers),
    _kind(m.CardBalanceReply, socket_no=_u8, port=_u8, card_no=_fixed(6),
          balance_fen=_u32, extra=_extra, container=_containers),
    _kind(m.VoiceConfig, socket_no=_u8, port=_u8, buzzer_on=_u8, voice_on=_u8,
          windows=st.lists(st.builds(m.VoiceWindow, start=_hh_mm, end=_hh_mm),
                               max_size=3).map(tuple),
          extra=_extra, container=_containers),
    _kind(m.VoiceConfigAck, socket_no=_u8, port=_u8, result=_u8, extra=_extra,
          container=_containers),
]

_KNOWN_GN = {(0x08, Direction.DOWN), (0x08, Direction.UP), (0x09, Direction.DOWN),
             (0x09, Direction.UP), (0x1D, Direction.DOWN), (0x1C, Direction.UP),
             (0x1D, Direction.UP), (0x07, Direction.DOWN), (0x07, Direction.UP),
             (0x02, Direction.UP), (0x17, Direction.DOWN), (0x18, Direction.UP),
             (0x0B, Direction.UP), (0x0B, Direction.DOWN), (0x0F, Direction.UP),
             (0x0C, Direction.UP), (0x0C, Direction.DOWN), (0x1A, Direction.UP),
             (0x1A, Direction.DOWN), (0x1B, Direction.DOWN), (0x1B, Direction.UP)}
_directions = st.sampled_from(list(Direction))


@st.composite
def _unknown_gn(draw: st.DrawFn) -> m.UnknownGnMessage:
    direction = draw(_directions)
    sub_command = draw(_u8.filter(lambda sub: (sub, direction) not in _KNOWN_GN))
    return m.UnknownGnMessage(direction=direction, sub_command=sub_command,
                              params=draw(st.binary(max_size=24)), container=draw(_containers))


@st.composite
def _unknown_command(draw: st.DrawFn) -> m.UnknownCommand:
    direction = draw(_directions)
    command = draw(_u16.filter(lambda c: c not in (0x0000, 0x0005, 0x0015, 0x1000)))
    payload = draw(st.binary(max_size=24))
    if command == 0x0007 and direction is Direction.DOWN and len(payload) == 20:
        payload += b"\0"
    return m.UnknownCommand(direction=direction, command=command, payload=payload)


_big_uint = st.integers(0, 2**40)


def _items(exclude: frozenset[int],
           min_size: int = 0) -> st.SearchStrategy[tuple[m.BkvItem, ...]]:
    keys = st.one_of(st.integers(0, 0xFFFF).filter(lambda k: k not in exclude),
                     st.text(st.characters(max_codepoint=0xFF), max_size=4))
    return st.lists(st.builds(m.BkvItem, key=keys, value=st.binary(max_size=12)),
                    min_size=min_size, max_size=3).map(tuple)


_PORT_TAG_SET = frozenset({0x08, 0x09, 0x0A, 0x95, 0x0B, 0x0C, 0x0D, 0x0E})
_CLUSTER_TAG_SET = frozenset({0x4A, 0x3E, 0x07, 0x96, 0x5B})
_opt_uint = st.none() | _big_uint

_port_groups = st.builds(
    m.PortGroup, port=_opt_uint, status=_opt_uint, business_no=_opt_uint,
    voltage_dv=_opt_uint, power_dw=_opt_uint, current_ma=_opt_uint, energy_wh=_opt_uint,
    duration_min=_opt_uint, unknown=_items(_PORT_TAG_SET))
_clusters = st.builds(
    m.SocketCluster, socket_no=_opt_uint, socket_version=st.none() | st.binary(max_size=4),
    temperature_c=_opt_uint, rssi=_opt_uint,
    ports=st.lists(_port_groups, max_size=2).map(tuple), unknown=_items(_CLUSTER_TAG_SET))
_fee_tiers = st.lists(st.builds(m.FeeTier, end=_hh_mm, electricity_price_fen=_u16,
                                service_price_fen=_u16), max_size=3).map(tuple)


def _packet(cls: type[m.BkvMessage], tags: tuple[int, ...],
            unknown_tags: int = 0) -> st.SearchStrategy[m.BkvMessage]:
    overrides: dict[str, st.SearchStrategy[object]] = {
        "bkv_seq": st.integers(0, 2**64 - 1),
        "bkv_gateway_id": st.none() | _fixed(6).map(bytes.hex),
        "unknown": _items(frozenset(tags) | {0x01, 0x02, 0x03}, unknown_tags),
    }
    for name in cls.__dataclass_fields__:
        if name in overrides or name in ("item_order", "direction", "bkv_cmd"):
            continue
        if name == "sockets":
            overrides[name] = st.lists(_clusters, max_size=2).map(tuple)
        elif name == "fee_tiers":
            overrides[name] = _fee_tiers
        elif name in ("time", "end_time"):
            overrides[name] = st.none() | _bcd_time
        elif name in ("tier_usage",):
            overrides[name] = st.none() | st.binary(max_size=12)
        else:
            overrides[name] = _opt_uint
    return st.builds(cls, **overrides)


@st.composite
def _unknown_packet(draw: st.DrawFn) -> m.UnknownBkvPacket:
    direction = draw(_directions)
    bkv_cmd = draw(_u16.filter(lambda c: (c, direction) not in BKV_PACKETS))
    return m.UnknownBkvPacket(
        direction=direction, bkv_cmd=bkv_cmd, bkv_seq=draw(st.integers(0, 2**64 - 1)),
        unknown=draw(_items(frozenset({0x01, 0x02, 0x03}))))


def _bkv_kinds() -> list[tuple[str, st.SearchStrategy[m.BkvMessage]]]:
    """One strategy per BKV-family message kind, named after its class."""
    return [
        _kind(m.Heartbeat, iccid=_text(20), firmware=_text(8), rssi=_u8),
        _kind(m.HeartbeatAck, time=_bcd_time),
        _kind(m.OtaUpgrade, target=_u8,
              ftp_ip=st.tuples(_u8, _u8, _u8, _u8).map(lambda t: ".".join(map(str, t))),
              ftp_port=_u16, file_name=_text(13)),
        ("UnknownCommand", _unknown_command()),
        *_GN_KINDS,
        ("UnknownGnMessage", _unknown_gn()),
        *((cls.__name__, _packet(cls, tags)) for cls, tags in BKV_PACKETS.values()),
        ("UnknownBkvPacket", _unknown_packet()),
    ]


_BKV_KINDS = _bkv_kinds()


def bkv_messages() -> st.SearchStrategy[m.BkvMessage]:
    """Every BKV-family message kind, in both directions, unknown
    commands, GN sub-commands, packets and tags included.

    Returns:
        A strategy for valid messages. Each encodes (in a
        :class:`~bkvcodec.bkv.BkvFrame`), and decoding the bytes gives an equal message.

    .. versionadded:: 0.1.0
    """
    return st.one_of(*(strategy for _, strategy in _BKV_KINDS))


@st.composite
def bkv_frames(draw: st.DrawFn,
               messages: st.SearchStrategy[m.BkvMessage] | None = None) -> BkvFrame:
    """Whole BKV frames around :func:`bkv_messages` (or *messages*).

    Args:
        draw: Supplied by Hypothesis.
        messages: The messages to wrap, instead of :func:`bkv_messages`.

    Returns:
        A frame with any gateway ID and sequence number, and sometimes a
        direction byte that disagrees with the magic (devices send those; the
        frame keeps it).

    .. versionadded:: 0.1.0
    """
    message = draw(messages if messages is not None else bkv_messages())
    frame = BkvFrame(gateway_id=draw(_fixed(7)).hex(), message=message, seq=draw(_u32))
    consistent = int(frame.direction is Direction.UP)
    direction_byte = draw(st.none() | _u8.filter(lambda b: b != consistent))
    return BkvFrame(gateway_id=frame.gateway_id, message=message, seq=frame.seq,
                    direction_byte=direction_byte)


def bkv_frame_bytes() -> st.SearchStrategy[bytes]:
    """Encoded :func:`bkv_frames`.

    .. versionadded:: 0.1.0
    """
    return bkv_frames().map(BkvFrame.encode)


@st.composite
def bkv_streams(draw: st.DrawFn) -> tuple[list[BkvFrame], bytes]:
    """A byte stream of several BKV frames with noise between them, and its frames.

    The noise never contains ``0xFC``, so it cannot start or hide a frame. A
    :class:`~bkvcodec.FrameDecoder` returns exactly the frames, however the
    stream is split into reads (see :func:`chunked`).

    Args:
        draw: Supplied by Hypothesis.

    Returns:
        (the frames in the order sent, the stream's bytes).

    .. versionadded:: 0.1.0
    """
    frames = draw(st.lists(bkv_frames(), max_size=5))
    noise = st.binary(max_size=8).map(lambda b: b.replace(b"\xfc", b""))
    parts = [draw(noise)]
    for frame in frames:
        parts += [frame.encode(), draw(noise)]
    return frames, b"".join(parts)


# --- AP3000 (ap3000.md) ---------------------------------------------------------------------
# Fixed layouts are generated from the grammar's field list, so every message kind
# is covered and a new field is generated without touching this module. A message
# sets its optional fields as a prefix (the first k of them), as a decoder reads
# them; ``extra`` then holds either any bytes (all optional fields set) or fewer
# bytes than the next optional field needs, so that decoding gives the message back.

_AP3000_INTS = {"B": _u8, "H": _u16, "L": _u32, "I": _u32}
_AP3000_EXTRA = st.binary(max_size=6)


def _plain_field(field: PlainField) -> st.SearchStrategy[object]:
    if field.code in _AP3000_INTS:
        return _AP3000_INTS[field.code]
    size = int(field.code[:-1])
    return _text(size) if field.text else _fixed(size)


def _field_size(field: PlainField) -> int:
    return 1 if field.code == "B" else 2 if field.code == "H" else (
        4 if field.code in "LI" else int(field.code[:-1]))


@st.composite
def _fixed_layout(draw: st.DrawFn, cls: type[a.Ap3000Message], mandatory: tuple[PlainField, ...],
                  optional: tuple[PlainField, ...]) -> a.Ap3000Message:
    values: dict[str, object] = {f.name: draw(_plain_field(f)) for f in mandatory}
    present = draw(st.integers(0, len(optional)))
    for field in optional[:present]:
        values[field.name] = draw(_plain_field(field))
    if present == len(optional):
        values["extra"] = b"" if cls is a.Ap3000LegacyFirmwarePacket else draw(_AP3000_EXTRA)
    else:
        values["extra"] = draw(st.binary(max_size=_field_size(optional[present]) - 1))
    return cls(**values)  # type: ignore[arg-type]


@st.composite
def _legacy_heartbeat(draw: st.DrawFn) -> a.Ap3000LegacyHeartbeat:
    count = draw(st.integers(0, 16))
    ports = st.lists(_u16, min_size=count, max_size=count).map(tuple)
    present = draw(st.integers(0, 2))
    env_temp = draw(_u8) if present >= 1 else None
    work_mode = draw(_u8) if present == 2 else None
    return a.Ap3000LegacyHeartbeat(
        firmware_version=draw(_u16), voltage_0p1v=draw(_u16),
        port_status=tuple(draw(st.lists(_u8, min_size=count, max_size=count))),
        port_power_0p1w=draw(ports), port_peak_power_0p1w=draw(ports), virtual_id=draw(_u8),
        signal_strength=draw(_u8), device_type=draw(_u8), env_temp_raw=env_temp,
        work_mode=work_mode, extra=draw(_AP3000_EXTRA) if present == 2 else b"")


@st.composite
def _card_swipe(draw: st.DrawFn) -> a.Ap3000CardSwipe:
    present = draw(st.integers(0, 3))
    timestamp = draw(_u32) if present >= 1 else None
    card_no2: bytes | None = draw(st.binary(max_size=20)) if present == 3 else None
    length: int | None = None
    if present == 3:
        length = len(card_no2 or b"")
        extra = draw(_AP3000_EXTRA)
    elif present == 2:
        length = draw(st.integers(1, 20))
        extra = draw(st.binary(max_size=length - 1))
    else:
        extra = draw(st.binary(max_size=3)) if present == 0 else b""
    return a.Ap3000CardSwipe(
        card_id=draw(_fixed(4)), card_type=draw(_u8), port=draw(_u8),
        card_balance_fen=draw(_u16), timestamp=timestamp, card_no2_len=length,
        card_no2=card_no2, extra=extra)


_AP3000_VARIABLE: dict[type[a.Ap3000Message], st.SearchStrategy[a.Ap3000Message]] = {
    a.Ap3000LegacyHeartbeat: _legacy_heartbeat(),
    a.Ap3000Heartbeat: st.builds(
        a.Ap3000Heartbeat, voltage_0p1v=_u16, port_status=st.lists(_u8, max_size=16).map(tuple),
        signal_strength=_u8, env_temp_raw=_u8, extra=_AP3000_EXTRA),
    a.Ap3000CardSwipe: _card_swipe(),
    a.Ap3000SlaveVersions: st.builds(
        a.Ap3000SlaveVersions, entries=st.lists(st.builds(
            a.Ap3000SlaveVersion, device_type=_u8, reserved=_u8, min_firmware_version=_u16,
            physical_id=_u32), max_size=4).map(tuple), extra=_AP3000_EXTRA),
    a.Ap3000PlayVoice: st.builds(a.Ap3000PlayVoice, interrupt=_u8,
                                 voice_ids=st.binary(max_size=8), extra=_AP3000_EXTRA),
    a.Ap3000ReadEepromReply: st.builds(a.Ap3000ReadEepromReply, result=_u8,
                                       eeprom_data=st.binary(max_size=32)),
    a.Ap3000WriteEeprom: st.builds(a.Ap3000WriteEeprom, address=_u16, write_length=_u8,
                                   eeprom_data=st.binary(max_size=32)),
}


def _ap3000_strategies() -> dict[tuple[int, Direction], st.SearchStrategy[a.Ap3000Message]]:
    out: dict[tuple[int, Direction], st.SearchStrategy[a.Ap3000Message]] = {}
    for cls, (command, direction, _) in a.MESSAGE_TYPES.items():
        plain = LAYOUTS[(command, direction)].plain()
        out[(command, direction)] = (_AP3000_VARIABLE[cls] if plain is None
                                     else _fixed_layout(cls, *plain))
    return out


_AP3000_BY_KEY = _ap3000_strategies()


@st.composite
def _unknown_ap3000(draw: st.DrawFn, direction: Direction | None) -> a.UnknownAp3000Command:
    chosen = direction if direction is not None else draw(_directions)
    command = draw(_u8.filter(lambda c: (c, chosen) not in _AP3000_BY_KEY))
    return a.UnknownAp3000Command(direction=chosen, command=command,
                                  data=draw(st.binary(max_size=24)))


def ap3000_messages(direction: Direction | None = None) -> st.SearchStrategy[a.Ap3000Message]:
    """Every AP3000 message kind, unknown commands included.

    Args:
        direction: Only messages travelling this way; None for both.

    Returns:
        A strategy for valid messages. Each encodes, and decoding the bytes in
        the message's direction gives an equal message.

    .. versionadded:: 0.1.0
    """
    return st.one_of(
        *(strategy for (_, way), strategy in _AP3000_BY_KEY.items()
          if direction is None or way is direction),
        _unknown_ap3000(direction),
    )


@st.composite
def ap3000_frames(draw: st.DrawFn, direction: Direction | None = None,
                  messages: st.SearchStrategy[a.Ap3000Message] | None = None) -> Ap3000Frame:
    """Whole AP3000 frames around :func:`ap3000_messages` (or *messages*).

    Args:
        draw: Supplied by Hypothesis.
        direction: Only frames travelling this way; None for both.
        messages: The messages to wrap, instead of :func:`ap3000_messages`.

    Returns:
        A frame with any physical ID and message ID. Its length stays within the
        documented 256 bytes (269 for 0xF8), so encoding it never warns.

    .. versionadded:: 0.1.0
    """
    message = draw(messages if messages is not None else ap3000_messages(direction))
    return Ap3000Frame(physical_id=draw(_u32), message_id=draw(_u16), message=message)


def ap3000_frame_bytes(direction: Direction | None = None) -> st.SearchStrategy[bytes]:
    """Encoded :func:`ap3000_frames`.

    .. versionadded:: 0.1.0
    """
    return ap3000_frames(direction).map(Ap3000Frame.encode)


_ICCID_DIGITS = "0123456789ABCDEF"
_iccids = st.builds(
    lambda body, last: IccidAnnouncement(iccid="89" + body + last),
    st.text(st.sampled_from(_ICCID_DIGITS), min_size=17, max_size=17),
    st.sampled_from("0123456789"))
# Noise that can neither start nor complete anything the decoder recognises: no
# 0xFC, ``D``, ``l`` and no hex digit (which could extend an ICCID).
_QUIET = bytes(b for b in range(256) if b not in set(b"\xfcDl0123456789ABCDEFabcdef"))
_mixed_noise = st.lists(st.sampled_from(_QUIET), max_size=6).map(bytes)


@st.composite
def mixed_streams(draw: st.DrawFn, direction: Direction = Direction.UP) -> tuple[
        list[BkvFrame | Ap3000Frame | IccidAnnouncement | LinkKeepAlive], bytes]:
    """A byte stream mixing BKV frames, AP3000 frames travelling *direction*,
    AP3000 modem items (ICCID, ``link``) and noise, and the items sent on it.

    A :class:`~bkvcodec.FrameDecoder` built with *direction* returns every frame
    sent. It returns the modem items too when it was told the protocol is AP3000,
    or when the first frame sent is an AP3000 frame; otherwise they are taken for
    noise (see the decoder's identification rules).

    Args:
        draw: Supplied by Hypothesis.
        direction: The direction of the AP3000 frames.

    Returns:
        (items in the order sent, the stream's bytes).

    .. versionadded:: 0.1.0
    """
    items = draw(st.lists(st.one_of(
        bkv_frames(), ap3000_frames(direction), _iccids, st.just(LinkKeepAlive())),
        max_size=6))
    parts = [draw(_mixed_noise)]
    for item in items:
        parts += [item.encode(), draw(_mixed_noise)]
    return items, b"".join(parts)


@st.composite
def ap3000_streams(draw: st.DrawFn, direction: Direction = Direction.UP) -> tuple[
        list[Ap3000Frame | IccidAnnouncement | LinkKeepAlive], bytes]:
    """What an AP3000 unit's TCP connection carries: sometimes the modem's ICCID
    first, then frames travelling *direction* and ``link`` keep-alives, with noise between them
    that cannot start anything.

    A :class:`~bkvcodec.FrameDecoder` built with ``protocol=ProtocolFamily.AP3000``
    and *direction* returns exactly the items, however the stream is split into
    reads. Without the protocol named, the modem items before the first frame
    are held until that frame confirms AP3000 (they come out with it).

    Args:
        draw: Supplied by Hypothesis.
        direction: The direction of the frames.

    Returns:
        (the items in the order sent, the stream's bytes).

    .. versionadded:: 0.1.0
    """
    items: list[Ap3000Frame | IccidAnnouncement | LinkKeepAlive] = []
    if draw(st.booleans()):
        items.append(draw(_iccids))
    items += draw(st.lists(st.one_of(ap3000_frames(direction), st.just(LinkKeepAlive())),
                           max_size=5))
    parts = [draw(_mixed_noise)]
    for item in items:
        parts += [item.encode(), draw(_mixed_noise)]
    return items, b"".join(parts)


@st.composite
def chunked(draw: st.DrawFn, data: bytes | st.SearchStrategy[bytes],
            max_chunks: int = 16) -> list[bytes]:
    """*data* split into the reads a socket might return.

    Args:
        draw: Supplied by Hypothesis.
        data: The bytes, or a strategy for them (``bkv_streams().map(lambda s: s[1])``).
        max_chunks: The most reads.

    Returns:
        Non-empty chunks whose concatenation is the data (no chunk at all for
        empty data). Feeding them one by one must give the same result as
        feeding the whole.

    .. versionadded:: 0.1.0
    """
    whole = data if isinstance(data, bytes) else draw(data)
    if not whole:
        return []
    cuts = draw(st.sets(st.integers(1, len(whole) - 1), max_size=max_chunks - 1)
                if len(whole) > 1 else st.just(set[int]()))
    bounds = [0, *sorted(cuts), len(whole)]
    return [whole[start:end] for start, end in itertools.pairwise(bounds)]


def vector_bytes(kinds: Iterable[str] = ("vectors", "non_frame", "malformed"),
                 protocol: ProtocolFamily | None = None) -> st.SearchStrategy[bytes]:
    """The real frames of the vendors' test vectors, embedded in the
    package (captures of real gateways and devices, the vendors' documented
    examples, and frames built from the vendors' layouts).

    Args:
        kinds: Which sections: ``"vectors"`` (valid frames), ``"non_frame"``
            (AP3000 modem items) and ``"malformed"`` (the references' bad inputs).
        protocol: Only this protocol's file; None for both.

    Returns:
        A strategy sampling those byte strings.

    .. versionadded:: 0.1.0
    """
    wanted = frozenset(kinds)
    chosen = [bytes.fromhex(case.hex) for case in KNOWN_FRAMES
              if case.kind in wanted and (protocol is None or case.protocol == protocol.value)]
    return st.sampled_from(chosen)


# --- malformed frames -----------------------------------------------------------------------
# Each mutator breaks one rule of a valid frame (bkv.md §2.7, ap3000.md §2.7) and
# names the error class that a one-shot decode raises for it.


class Mutation(enum.Enum):
    """What a malformed-frame strategy did to a valid frame.

    What a :class:`~bkvcodec.FrameDecoder` does with each is listed in
    :func:`malformed_bkv_frames` and :func:`malformed_ap3000_frames`.

    .. versionadded:: 0.1.0
    """

    #: The checksum byte(s) changed.
    BAD_CHECKSUM = "bad_checksum"
    #: The bytes cut short before the end the length declares.
    TRUNCATED = "truncated"
    #: The length field declares more bytes than the frame has (at most the
    #: protocol's limit).
    LENGTH_TOO_LONG = "length_too_long"
    #: The length field declares fewer bytes than the frame has (at least the
    #: protocol's minimum), so the trailer (BKV) or the checksum (AP3000) is
    #: looked for in the wrong place.
    LENGTH_TOO_SHORT = "length_too_short"
    #: The length field below the size of an empty frame.
    LENGTH_BELOW_MINIMUM = "length_below_minimum"
    #: The length field above 1024 (AP3000 only).
    LENGTH_ABOVE_MAXIMUM = "length_above_maximum"
    #: The ``fc ee`` trailer replaced (BKV only).
    WRONG_TRAILER = "wrong_trailer"
    #: The frame header (magic) replaced.
    BAD_MAGIC = "bad_magic"
    #: Bytes appended after the frame.
    TRAILING_BYTES = "trailing_bytes"
    #: A sound envelope around a message that breaks its own layout (too short,
    #: or a BKV GN container whose inner length lies).
    BAD_PAYLOAD = "bad_payload"
    #: A valid frame of a command, GN sub-command or BKV packet that the protocol
    #: reference does not define. It decodes as an unknown message.
    UNKNOWN_COMMAND = "unknown_command"
    #: A known BKV ``0x1000`` packet carrying tags the reference does not define.
    #: It decodes, with those items in ``unknown`` (BKV only).
    UNKNOWN_TAG = "unknown_tag"


@frozen_dataclass
class MalformedFrame:
    """A frame broken on purpose, and what was done to it.

    Attributes:
        data: The bytes to feed.
        mutation: What was done.
        protocol: The protocol the frame belongs to.
        direction: The direction to decode it in (AP3000 frames do not say;
            BKV frames carry it in their magic).
        error: The exact class of the error that a one-shot decode
            (:meth:`BkvFrame.decode <bkvcodec.bkv.BkvFrame.decode>`,
            :meth:`Ap3000Frame.decode <bkvcodec.ap3000.Ap3000Frame.decode>`) raises, or
            None when the frame decodes (unknown commands and tags).
        original: The valid frame the mutation started from, or None when the
            frame was built by hand (:attr:`Mutation.BAD_PAYLOAD`).

    .. versionadded:: 0.1.0
    """

    data: bytes
    mutation: Mutation
    protocol: ProtocolFamily
    direction: Direction
    error: type[RemoteProtocolError] | None
    original: bytes | None


_BKV_MAGICS = (b"\xfc\xfe", b"\xfc\xff")
_BKV_TRAILER = b"\xfc\xee"


def _bkv_direction(data: bytes) -> Direction:
    return Direction.UP if data[:2] == b"\xfc\xfe" else Direction.DOWN


def _bkv_case(data: bytes | bytearray, mutation: Mutation, original: bytes,
              error: type[RemoteProtocolError] | None) -> MalformedFrame:
    return MalformedFrame(data=bytes(data), mutation=mutation, protocol=ProtocolFamily.BKV,
                          direction=_bkv_direction(original), error=error, original=original)


def _bkv_envelope(up: bool, command: int, payload: bytes, gateway: bytes) -> bytes:
    """A BKV frame built by hand: any payload, a correct envelope."""
    body = (command.to_bytes(2, "big") + b"\0\0\0\0" + bytes([int(up)]) + gateway + payload)
    length = len(body) + 3  # + checksum + trailer, minus nothing: length counts from command
    head = (b"\xfc\xfe" if up else b"\xfc\xff") + length.to_bytes(2, "big")
    return head + body + bytes([sum(length.to_bytes(2, "big") + body) & 0xFF]) + _BKV_TRAILER


_bkv_bytes = bkv_frame_bytes()


@st.composite
def _bkv_mutated(draw: st.DrawFn, mutation: Mutation) -> MalformedFrame:
    original = draw(_bkv_bytes if mutation is not Mutation.LENGTH_TOO_SHORT
                    else _bkv_bytes.filter(lambda b: len(b) > ENVELOPE_OVERHEAD))
    data = bytearray(original)
    size = len(data)
    error: type[RemoteProtocolError]
    if mutation is Mutation.BAD_CHECKSUM:
        data[size - 3] = (data[size - 3] + draw(st.integers(1, 0xFF))) & 0xFF
        error = ChecksumMismatch
    elif mutation is Mutation.TRUNCATED:
        del data[draw(st.integers(2, size - 1)):]
        error = Truncated
    elif mutation is Mutation.LENGTH_TOO_LONG:
        data[2:4] = draw(st.integers(size - 3, 0xFFFF)).to_bytes(2, "big")
        error = Truncated
    elif mutation is Mutation.LENGTH_TOO_SHORT:
        total = draw(st.integers(ENVELOPE_OVERHEAD, size - 1).filter(
            lambda t: original[t - 2:t] != _BKV_TRAILER))
        data[2:4] = (total - 4).to_bytes(2, "big")
        error = BadTrailer
    elif mutation is Mutation.LENGTH_BELOW_MINIMUM:
        data[2:4] = draw(st.integers(0, ENVELOPE_OVERHEAD - 5)).to_bytes(2, "big")
        error = BadLength
    elif mutation is Mutation.WRONG_TRAILER:
        data[size - 2:] = draw(_fixed(2).filter(lambda b: b != _BKV_TRAILER))
        error = BadTrailer
    elif mutation is Mutation.BAD_MAGIC:
        data[:2] = draw(_fixed(2).filter(lambda b: b not in _BKV_MAGICS))
        error = BadMagic
    else:
        assert mutation is Mutation.TRAILING_BYTES
        data += draw(st.binary(min_size=1, max_size=8))
        error = TrailingBytes
    return _bkv_case(data, mutation, original, error)


@st.composite
def _bkv_bad_payload(draw: st.DrawFn) -> MalformedFrame:
    gateway = draw(_fixed(7))
    error: type[RemoteProtocolError]
    if draw(st.booleans()):  # an uplink heartbeat shorter than its 29 bytes (bkv.md §4.1)
        data = _bkv_envelope(True, 0x0000, draw(st.binary(max_size=28)), gateway)
        error = PayloadTooShort
    else:  # a GN container whose inner length disagrees with its size (bkv.md §5)
        params = draw(st.binary(max_size=20))
        inner = draw(st.integers(0, 0xFFFF).filter(lambda n: n != len(params)))
        payload = inner.to_bytes(2, "big") + draw(_u8).to_bytes(1, "big") + params
        data = _bkv_envelope(draw(st.booleans()), draw(_containers), payload, gateway)
        error = InnerLengthMismatch
    return MalformedFrame(data=data, mutation=Mutation.BAD_PAYLOAD, protocol=ProtocolFamily.BKV,
                          direction=_bkv_direction(data), error=error, original=None)


def _bkv_unknown(mutation: Mutation) -> st.SearchStrategy[MalformedFrame]:
    messages: st.SearchStrategy[m.BkvMessage]
    if mutation is Mutation.UNKNOWN_COMMAND:
        messages = st.one_of(_unknown_command(), _unknown_gn(), _unknown_packet())
    else:
        messages = st.one_of(*(_packet(cls, tags, unknown_tags=1)
                               for cls, tags in BKV_PACKETS.values()))
    return bkv_frames(messages).map(BkvFrame.encode).map(
        lambda data: _bkv_case(data, mutation, data, None))


_BKV_MUTATIONS = (Mutation.BAD_CHECKSUM, Mutation.TRUNCATED, Mutation.LENGTH_TOO_LONG,
                  Mutation.LENGTH_TOO_SHORT, Mutation.LENGTH_BELOW_MINIMUM,
                  Mutation.WRONG_TRAILER, Mutation.BAD_MAGIC, Mutation.TRAILING_BYTES,
                  Mutation.BAD_PAYLOAD, Mutation.UNKNOWN_COMMAND, Mutation.UNKNOWN_TAG)
_AP3000_MUTATIONS = (Mutation.BAD_CHECKSUM, Mutation.TRUNCATED, Mutation.LENGTH_TOO_LONG,
                     Mutation.LENGTH_TOO_SHORT, Mutation.LENGTH_BELOW_MINIMUM,
                     Mutation.LENGTH_ABOVE_MAXIMUM, Mutation.BAD_MAGIC,
                     Mutation.TRAILING_BYTES, Mutation.BAD_PAYLOAD, Mutation.UNKNOWN_COMMAND)


def _chosen(mutations: Iterable[Mutation] | None, allowed: tuple[Mutation, ...],
            protocol: str) -> tuple[Mutation, ...]:
    chosen = allowed if mutations is None else tuple(mutations)
    wrong = [mutation.name for mutation in chosen if mutation not in allowed]
    if wrong or not chosen:
        raise ValueError(f"mutations {wrong or 'none'} do not apply to {protocol} frames")
    return chosen


def malformed_bkv_frames(mutations: Iterable[Mutation] | None = None
                         ) -> st.SearchStrategy[MalformedFrame]:
    """BKV frames broken in one way each, with what was broken.

    What :meth:`BkvFrame.decode <bkvcodec.bkv.BkvFrame.decode>` raises is
    :attr:`MalformedFrame.error`; what a :class:`~bkvcodec.FrameDecoder` does:

    ============================  ====================  ==============================
    Mutation                      One-shot error        Stream decoder
    ============================  ====================  ==============================
    ``BAD_CHECKSUM``              ChecksumMismatch      rejects, drops the frame
    ``WRONG_TRAILER``             BadTrailer            rejects, drops one byte
    ``LENGTH_TOO_SHORT``          BadTrailer            rejects, drops one byte
    ``LENGTH_BELOW_MINIMUM``      BadLength             rejects, drops one byte
    ``TRUNCATED``                 Truncated             waits for the rest
    ``LENGTH_TOO_LONG``           Truncated             waits (or rejects with
                                                        FrameTooLong above its
                                                        ``max_frame_size``)
    ``BAD_MAGIC``                 BadMagic              skips the bytes as noise
    ``TRAILING_BYTES``            TrailingBytes         the frame, then noise
    ``BAD_PAYLOAD``               PayloadTooShort or    rejects, drops the frame
                                  InnerLengthMismatch
    ``UNKNOWN_COMMAND``           (decodes)             an unknown message
    ``UNKNOWN_TAG``               (decodes)             the packet, tags in
                                                        ``unknown``
    ============================  ====================  ==============================

    After dropping one byte the decoder searches for the next header, which may
    lie inside the rejected bytes.

    Args:
        mutations: Only these mutations; None for all of the table's.

    Returns:
        A strategy for :class:`MalformedFrame` cases.

    Raises:
        ValueError: A mutation that does not apply to BKV (``LENGTH_ABOVE_MAXIMUM``).

    .. versionadded:: 0.1.0
    """
    strategies: list[st.SearchStrategy[MalformedFrame]] = []
    for mutation in _chosen(mutations, _BKV_MUTATIONS, "BKV"):
        if mutation is Mutation.BAD_PAYLOAD:
            strategies.append(_bkv_bad_payload())
        elif mutation in (Mutation.UNKNOWN_COMMAND, Mutation.UNKNOWN_TAG):
            strategies.append(_bkv_unknown(mutation))
        else:
            strategies.append(_bkv_mutated(mutation))
    return st.one_of(*strategies)


def _ap3000_checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFFFF


def _ap3000_raw(physical_id: int, message_id: int, command: int, payload: bytes) -> bytes:
    """An AP3000 frame built by hand: any data, a correct envelope."""
    body = (physical_id.to_bytes(4, "little") + message_id.to_bytes(2, "little")
            + bytes([command]) + payload)
    head = b"DNY" + (len(body) + 2).to_bytes(2, "little")
    return head + body + _ap3000_checksum(head + body).to_bytes(2, "little")


def _ap3000_case(data: bytes | bytearray, mutation: Mutation, direction: Direction,
                 original: bytes | None,
                 error: type[RemoteProtocolError] | None) -> MalformedFrame:
    return MalformedFrame(data=bytes(data), mutation=mutation, protocol=ProtocolFamily.AP3000,
                          direction=direction, error=error, original=original)


@st.composite
def _ap3000_mutated(draw: st.DrawFn, mutation: Mutation,
                    direction: Direction | None) -> MalformedFrame:
    way = direction if direction is not None else draw(_directions)
    frames = ap3000_frame_bytes(way)
    if mutation is Mutation.LENGTH_TOO_SHORT:
        frames = frames.filter(lambda b: len(b) > MIN_LENGTH + 5)
    original = draw(frames)
    data = bytearray(original)
    size = len(data)
    error: type[RemoteProtocolError]
    if mutation is Mutation.BAD_CHECKSUM:
        wrong = (_ap3000_checksum(data[:-2]) + draw(st.integers(1, 0xFFFF))) & 0xFFFF
        data[size - 2:] = wrong.to_bytes(2, "little")
        error = ChecksumMismatch
    elif mutation is Mutation.TRUNCATED:
        del data[draw(st.integers(3, size - 1)):]
        error = Incomplete
    elif mutation is Mutation.LENGTH_TOO_LONG:
        data[3:5] = draw(st.integers(size - 4, MAX_LENGTH)).to_bytes(2, "little")
        error = Incomplete
    elif mutation is Mutation.LENGTH_TOO_SHORT:
        length = draw(st.integers(MIN_LENGTH, size - 6))
        data[3:5] = length.to_bytes(2, "little")
        end = length + 3
        if _ap3000_checksum(data[:end]) == data[end] | data[end + 1] << 8:
            data[end] ^= 0xFF  # the declared end must not hold a valid checksum
        error = ChecksumMismatch
    elif mutation is Mutation.LENGTH_BELOW_MINIMUM:
        data[3:5] = draw(st.integers(0, MIN_LENGTH - 1)).to_bytes(2, "little")
        error = LengthTooSmall
    elif mutation is Mutation.LENGTH_ABOVE_MAXIMUM:
        data[3:5] = draw(st.integers(MAX_LENGTH + 1, 0xFFFF)).to_bytes(2, "little")
        error = LengthTooLarge
    elif mutation is Mutation.BAD_MAGIC:
        data[:3] = draw(_fixed(3).filter(lambda b: b != b"DNY" and b[0] != 0xFC))
        error = NoHeader
    else:
        assert mutation is Mutation.TRAILING_BYTES
        data += draw(st.binary(min_size=1, max_size=8))
        error = TrailingBytes
    return _ap3000_case(data, mutation, way, original, error)


def _mandatory_sizes() -> dict[tuple[int, Direction], int]:
    """The fixed-layout commands with mandatory data, and its size."""
    out: dict[tuple[int, Direction], int] = {}
    for key, layout in LAYOUTS.items():
        plain = layout.plain()
        needed = 0 if plain is None else sum(_field_size(field) for field in plain[0])
        if needed:
            out[key] = needed
    return out


_MANDATORY = _mandatory_sizes()


@st.composite
def _ap3000_bad_payload(draw: st.DrawFn, direction: Direction | None) -> MalformedFrame:
    (command, way), needed = draw(st.sampled_from(sorted(
        (item for item in _MANDATORY.items() if direction in (None, item[0][1])),
        key=lambda item: (item[0][0], item[0][1].value))))
    data = _ap3000_raw(draw(_u32), draw(_u16), command, draw(st.binary(max_size=needed - 1)))
    return _ap3000_case(data, Mutation.BAD_PAYLOAD, way, None, PayloadTooShort)


@st.composite
def _ap3000_unknown(draw: st.DrawFn, direction: Direction | None) -> MalformedFrame:
    way = direction if direction is not None else draw(_directions)
    data = draw(ap3000_frames(way, messages=_unknown_ap3000(way))).encode()
    return _ap3000_case(data, Mutation.UNKNOWN_COMMAND, way, data, None)


def malformed_ap3000_frames(direction: Direction | None = None,
                            mutations: Iterable[Mutation] | None = None
                            ) -> st.SearchStrategy[MalformedFrame]:
    """AP3000 frames broken in one way each, with what was broken.

    What :meth:`Ap3000Frame.decode <bkvcodec.ap3000.Ap3000Frame.decode>` (in
    :attr:`MalformedFrame.direction`) raises is :attr:`MalformedFrame.error`;
    what a :class:`~bkvcodec.FrameDecoder` told the protocol does:

    ============================  ====================  ==============================
    Mutation                      One-shot error        Stream decoder
    ============================  ====================  ==============================
    ``BAD_CHECKSUM``              ChecksumMismatch      rejects, drops one byte
    ``LENGTH_TOO_SHORT``          ChecksumMismatch      rejects, drops one byte
    ``LENGTH_BELOW_MINIMUM``      LengthTooSmall        rejects, drops one byte
    ``LENGTH_ABOVE_MAXIMUM``      LengthTooLarge        rejects, drops one byte
    ``TRUNCATED``                 Incomplete            waits for the rest
    ``LENGTH_TOO_LONG``           Incomplete            waits for the rest
    ``BAD_MAGIC``                 NoHeader              skips the bytes as noise
    ``TRAILING_BYTES``            TrailingBytes         the frame, then noise
    ``BAD_PAYLOAD``               PayloadTooShort       rejects, drops the frame
    ``UNKNOWN_COMMAND``           (decodes)             an unknown message
    ============================  ====================  ==============================

    A decoder that does not know the protocol yet holds AP3000 rejections until
    an AP3000 frame confirms it (see :class:`~bkvcodec.FrameDecoder`).

    Args:
        direction: Only frames travelling this way; None for both.
        mutations: Only these mutations; None for all of the table's.

    Returns:
        A strategy for :class:`MalformedFrame` cases.

    Raises:
        ValueError: A mutation that does not apply to AP3000 (``WRONG_TRAILER``,
            ``UNKNOWN_TAG``).

    .. versionadded:: 0.1.0
    """
    strategies: list[st.SearchStrategy[MalformedFrame]] = []
    for mutation in _chosen(mutations, _AP3000_MUTATIONS, "AP3000"):
        if mutation is Mutation.BAD_PAYLOAD:
            strategies.append(_ap3000_bad_payload(direction))
        elif mutation is Mutation.UNKNOWN_COMMAND:
            strategies.append(_ap3000_unknown(direction))
        else:
            strategies.append(_ap3000_mutated(mutation, direction))
    return st.one_of(*strategies)


# --- what a server's frame handler gets, and what it must answer ---------------------------

def _second(pair: tuple[object, bytes]) -> bytes:
    return pair[1]


def device_traffic() -> st.SearchStrategy[list[bytes]]:
    """What devices, broken devices and strangers send on one connection, as the
    reads a server gets: streams of valid frames and modem items of either
    protocol, malformed frames of every :class:`Mutation`, the references' real
    frames, and random bytes, split by :func:`chunked`.

    A server must survive all of it: never crash, keep serving the connection,
    and answer only valid frames (:func:`assert_valid_frames`).

    Returns:
        A strategy for lists of reads.

    .. versionadded:: 0.1.0
    """
    malformed = st.one_of(malformed_bkv_frames(),
                          malformed_ap3000_frames(Direction.UP)).map(lambda case: case.data)
    streams: st.SearchStrategy[bytes] = st.one_of(
        bkv_streams().map(_second),
        ap3000_streams(Direction.UP).map(_second),
        mixed_streams(Direction.UP).map(_second),
        st.lists(st.one_of(malformed, vector_bytes(), bkv_frame_bytes(),
                           ap3000_frame_bytes(Direction.UP)), min_size=1,
                 max_size=4).map(b"".join),
        st.binary(min_size=1, max_size=200),
    )
    return chunked(streams)


def assert_valid_frames(data: bytes, direction: Direction = Direction.DOWN
                        ) -> list[BkvFrame | Ap3000Frame]:
    """Check that *data* is nothing but whole, valid frames travelling *direction*.

    Use it on what a server wrote back: every answer must be a frame a device
    can decode.

    Args:
        data: The bytes to check (all of them, for example everything a server
            wrote on one connection).
        direction: Which way the frames travel: :attr:`Direction.DOWN
            <bkvcodec.Direction.DOWN>` (the default) for a server's answers.

    Returns:
        The frames, in order.

    Raises:
        AssertionError: *data* holds something else: a rejected frame, a modem
            item, noise, a frame in the other direction, or an unfinished frame.

    .. versionadded:: 0.1.0
    """
    decoder = FrameDecoder(direction=direction)
    frames: list[BkvFrame | Ap3000Frame] = []
    for item in [*decoder.feed(data), *decoder.end()]:
        if not isinstance(item, BkvFrame | Ap3000Frame):
            raise AssertionError(f"not a valid frame: {item!r}")
        if isinstance(item, BkvFrame) and item.direction is not direction:
            raise AssertionError(f"a frame travelling {item.direction.name}: {item!r}")
        frames.append(item)
    # Frames encode back to their bytes, so anything else in *data* shows here
    # (noise, and modem items a decoder holds until it knows the protocol).
    if b"".join(frame.encode() for frame in frames) != data:
        raise AssertionError(f"bytes other than frames in {data.hex()}")
    return frames


def _frame_kinds() -> list[tuple[str, st.SearchStrategy[bytes]]]:
    """Encoded frames of every message kind, one strategy each (for the corpus)."""
    out = [(f"bkv-{name}", bkv_frames(strategy).map(BkvFrame.encode))
           for name, strategy in _BKV_KINDS]
    for (command, way), strategy in _AP3000_BY_KEY.items():
        out.append((f"ap3000-{command:02x}-{way.name.lower()}",
                    ap3000_frames(way, strategy).map(Ap3000Frame.encode)))
    for way in Direction:
        out.append((f"ap3000-unknown-{way.name.lower()}",
                    ap3000_frames(way, _unknown_ap3000(way)).map(Ap3000Frame.encode)))
    return out
