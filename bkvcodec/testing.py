"""Hypothesis strategies for bkvcodec's messages and frames.

Use them to property-test code that consumes or produces frames::

    from hypothesis import given
    from bkvcodec.testing import bkv_frames

    @given(bkv_frames())
    def test_handler_survives_any_frame(frame):
        my_handler(frame.encode())

Every generated message is valid by construction: it encodes, and decoding
the bytes gives an equal message. This module needs ``hypothesis`` (install
``bkvcodec[testing]``).

.. versionadded:: 0.1.0
"""
from __future__ import annotations

from hypothesis import strategies as st

from ._bkv import messages as m
from ._bkv.codec import BkvFrame
from ._bkv.packets import BKV_PACKETS
from ._types import BcdTime, BinaryTime, Direction

__all__ = ["bkv_frame_bytes", "bkv_frames", "bkv_messages", "bkv_streams"]

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
