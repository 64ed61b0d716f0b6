"""Hypothesis strategies for bkvcodec's messages and frames.

Use them to property-test code that consumes or produces frames::

    from hypothesis import given
    from bkvcodec.testing import ap3000_frames, bkv_frames

    @given(bkv_frames())
    def test_handler_survives_any_frame(frame):
        my_handler(frame.encode())

    @given(ap3000_frames(direction=Direction.UP))
    def test_server_survives_any_uplink(frame):
        my_server(frame.encode())

Every generated message is valid by construction: it encodes, and decoding
the bytes gives an equal message. This module needs ``hypothesis`` (install
``bkvcodec[testing]``).

.. versionadded:: 0.1.0
"""
from __future__ import annotations

from hypothesis import strategies as st

from ._ap3000 import messages as a
from ._ap3000.codec import Ap3000Frame
from ._ap3000.grammar import LAYOUTS, PlainField
from ._ap3000.nonframe import IccidAnnouncement, LinkKeepAlive
from ._bkv import messages as m
from ._bkv.codec import BkvFrame
from ._bkv.packets import BKV_PACKETS
from ._types import BcdTime, BinaryTime, Direction

__all__ = ["ap3000_frame_bytes", "ap3000_frames", "ap3000_messages", "bkv_frame_bytes",
           "bkv_frames", "bkv_messages", "bkv_streams", "mixed_streams"]

_u8 = st.integers(0, 0xFF)
_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFF_FFFF)
_hh_mm = st.builds(lambda h, mm: f"{h:02d}:{mm:02d}", _u8, _u8)
_extra = st.binary(max_size=6)
_containers = st.sampled_from([m.GN_CONTROL, m.GN_NETWORK])


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

_GN_STRATEGIES: list[st.SearchStrategy[m.BkvMessage]] = [
    st.builds(m.NetworkRefresh, channel=_u8, sockets=st.lists(
        st.builds(m.NetworkSocket, socket_no=_u8, mac=_fixed(6)), max_size=8).map(tuple),
        extra=st.binary(max_size=6), container=_containers),
    st.builds(m.NetworkRefreshAck, result=_u8, extra=_extra, container=_containers),
    st.builds(m.NetworkAdd, socket_no=_u8, mac=_fixed(6), extra=_extra, container=_containers),
    st.builds(m.NetworkAddAck, result=_u8, extra=_extra, container=_containers),
    st.builds(m.StatusQuery, socket_no=_u8, extra=_extra, container=_containers),
    st.builds(m.SocketStatus, socket_no=_u8, socket_version=_fixed(2), temperature_c=_u8,
              rssi=_u8, ports=st.lists(st.builds(
                  m.PortReport, port=_u8, status=_u8, business_no=_u16, voltage_dv=_u16,
                  power_dw=_u16, current_ma=_u16, energy_wh=_u16, duration_min=_u16),
                  max_size=4).map(tuple),
              sub_command=st.sampled_from([0x1C, 0x1D]), extra=st.binary(max_size=13),
              container=_containers),
    st.builds(m.ChargeControl, socket_no=_u8, port=_u8, switch=_u8, mode=_u8,
              duration_min=_u16, energy_wh=_u16, extra=_extra, container=_containers),
    st.builds(m.ChargeControlAck, result=_u8, socket_no=_u8, port=_u8, business_no=_u16,
              extra=_extra, container=_containers),
    st.builds(m.ChargeEnd, **_M17, extra=_extra, container=_containers),
    st.builds(m.PowerControl, socket_no=_u8, port=_u8, switch=_u8, amount_fen=_u16,
              tiers=_tiers, extra=_extra, container=_containers),
    st.builds(m.PowerChargeEnd, **_M17, end_time=_binary_time, end_reason=_u8,
              amount_fen=_u16, settlement_power_dw=_u16, tier_durations_min=_durations,
              extra=_extra, container=_containers),
    st.builds(m.CardSwipe, socket_no=_u8, port=_u8, business_no=_u16, status=_u8,
              card_no=_fixed(6), offline_params=_fixed(20), extra=_extra,
              container=_containers),
    # A time/energy card order: any extra bytes must not read as a power part.
    st.builds(m.CardOrder, socket_no=_u8, port=_u8, business_no=_u16, switch=_u8, mode=_u8,
              duration_min=_u16, energy_wh=_u16, extra=st.binary(max_size=2),
              container=_containers),
    st.builds(m.CardOrder, socket_no=_u8, port=_u8, business_no=_u16, switch=_u8, mode=_u8,
              duration_min=_u16, energy_wh=_u16, amount_fen=_u16, tiers=_tiers,
              extra=_extra, container=_containers),
    st.builds(m.CardOrderAck, socket_no=_u8, port=_u8, result=_u8, extra=_extra,
              container=_containers),
    st.builds(m.CardChargeEnd, **_M17, card_no=_fixed(6), card_type=_u8, billing_mode=_u8,
              amount_fen=_u16, settlement_power_dw=_u16, tier_durations_min=_durations,
              extra=_extra, container=_containers),
    st.builds(m.ChargeEndAck, socket_no=_u8, result=_u8, extra=_extra, container=_containers),
    st.builds(m.CardBalanceQuery, socket_no=_u8, port=_u8, card_no=_fixed(6), extra=_extra,
              container=_containers),
    st.builds(m.CardBalanceReply, socket_no=_u8, port=_u8, card_no=_fixed(6),
              balance_fen=_u32, extra=_extra, container=_containers),
    st.builds(m.VoiceConfig, socket_no=_u8, port=_u8, buzzer_on=_u8, voice_on=_u8,
              windows=st.lists(st.builds(m.VoiceWindow, start=_hh_mm, end=_hh_mm),
                               max_size=3).map(tuple),
              extra=_extra, container=_containers),
    st.builds(m.VoiceConfigAck, socket_no=_u8, port=_u8, result=_u8, extra=_extra,
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


def _items(exclude: frozenset[int]) -> st.SearchStrategy[tuple[m.BkvItem, ...]]:
    keys = st.one_of(st.integers(0, 0xFFFF).filter(lambda k: k not in exclude),
                     st.text(st.characters(max_codepoint=0xFF), max_size=4))
    return st.lists(st.builds(m.BkvItem, key=keys, value=st.binary(max_size=12)),
                    max_size=3).map(tuple)


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


def _packet(cls: type[m.BkvMessage], tags: tuple[int, ...]) -> st.SearchStrategy[m.BkvMessage]:
    overrides: dict[str, st.SearchStrategy[object]] = {
        "bkv_seq": st.integers(0, 2**64 - 1),
        "bkv_gateway_id": st.none() | _fixed(6).map(bytes.hex),
        "unknown": _items(frozenset(tags) | {0x01, 0x02, 0x03}),
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


def bkv_messages() -> st.SearchStrategy[m.BkvMessage]:
    """Every BKV-family message kind, unknown ones included."""
    return st.one_of(
        st.builds(m.Heartbeat, iccid=_text(20), firmware=_text(8), rssi=_u8),
        st.builds(m.HeartbeatAck, time=_bcd_time),
        st.builds(m.OtaUpgrade, target=_u8,
                  ftp_ip=st.tuples(_u8, _u8, _u8, _u8).map(lambda t: ".".join(map(str, t))),
                  ftp_port=_u16, file_name=_text(13)),
        _unknown_command(),
        *_GN_STRATEGIES,
        _unknown_gn(),
        *(_packet(cls, tags) for cls, tags in BKV_PACKETS.values()),
        _unknown_packet(),
    )


@st.composite
def bkv_frames(draw: st.DrawFn,
               messages: st.SearchStrategy[m.BkvMessage] | None = None) -> BkvFrame:
    """Whole frames around :func:`bkv_messages` (or *messages*)."""
    message = draw(messages if messages is not None else bkv_messages())
    frame = BkvFrame(gateway_id=draw(_fixed(7)).hex(), message=message, seq=draw(_u32))
    consistent = int(frame.direction is Direction.UP)
    direction_byte = draw(st.none() | _u8.filter(lambda b: b != consistent))
    return BkvFrame(gateway_id=frame.gateway_id, message=message, seq=frame.seq,
                    direction_byte=direction_byte)


def bkv_frame_bytes() -> st.SearchStrategy[bytes]:
    """Encoded :func:`bkv_frames`."""
    return bkv_frames().map(BkvFrame.encode)


@st.composite
def bkv_streams(draw: st.DrawFn) -> tuple[list[BkvFrame], bytes]:
    """A byte stream of several frames with noise between them, and its frames.

    The noise never contains ``0xFC``, so it cannot start or hide a frame.
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
    """Every AP3000 message kind (ap3000.md §8), unknown commands included.

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
