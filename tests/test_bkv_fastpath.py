"""The one-pass decoder of BKV item packets (command 0x1000) against the general item
reading and the construct grammar: same packets on random item lists (usual and unusual
item forms, repeated and misplaced tags, nested clusters and port groups), same error
types and messages on malformed ones."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bkvcodec import LocalProtocolError, RemoteProtocolError
from bkvcodec._bkv.codec import _grammar_items, reference_decode, reference_encode
from bkvcodec._bkv.fastpath import fast_packet, split_items
from bkvcodec._bkv.messages import BkvItem, PortGroup
from bkvcodec._bkv.packets import (
    _FAST_SPECS,
    _PACKET_KEYS,
    BKV_PACKETS,
    _plain_items,
    _port_group_bytes,
    fast_packet_bytes,
    grammar_items_to_bytes,
    items_to_bytes,
    packet_from_items,
    packet_to_items,
)
from bkvcodec._bkv.packets import _PORT_TAGS as _PORT_TAGS_ORDER
from bkvcodec._types import BcdTime, Direction
from bkvcodec.bkv import BkvFrame
from bkvcodec.testing import bkv_frames

GATEWAY = bytes.fromhex("82231214002700")
_PACKET_TAGS = sorted({tag for _, tags in BKV_PACKETS.values() for tag in tags})
_PORT_TAGS = [0x08, 0x09, 0x0A, 0x95, 0x0B, 0x0C, 0x0D, 0x0E]
_CLUSTER_TAGS = [0x4A, 0x3E, 0x07, 0x96]


def _length(draw: st.DrawFn, length: int) -> bytes:
    """LEN in its shortest form, or (sometimes) padded to more groups."""
    groups = [length & 0x7F]
    rest = length >> 7
    while rest:
        groups.append(0x80 | (rest & 0x7F))
        rest >>= 7
    while len(groups) < 4 and draw(st.integers(0, 9)) == 0:
        groups.append(0x80)
    return bytes(reversed(groups))


@st.composite
def _item(draw: st.DrawFn, tags: list[int], body: st.SearchStrategy[bytes] | None = None
          ) -> bytes:
    form = draw(st.integers(0, 19))
    if form == 0:  # a text key
        key = draw(st.text("ab\x01", min_size=0, max_size=3)).encode("latin-1")
        ks = 0x80 | len(key)
    elif form == 1:  # a two-byte numeric key
        key = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        ks = 2
    else:
        key = bytes((draw(st.sampled_from(tags) if draw(st.booleans()) else
                          st.integers(0, 255)),))
        ks = 1
    value = draw(body if body is not None and draw(st.booleans()) else
                 st.one_of(st.binary(max_size=3), st.binary(min_size=6, max_size=8),
                           st.binary(min_size=120, max_size=140)))
    return _length(draw, 1 + len(key) + len(value)) + bytes((ks,)) + key + value


def _items(tags: list[int], body: st.SearchStrategy[bytes] | None = None, max_size: int = 8
           ) -> st.SearchStrategy[bytes]:
    return st.lists(_item(tags, body), max_size=max_size).map(b"".join)


def _usual(tag: int, value: bytes) -> bytes:
    """An item with a one-byte key and the shortest LEN."""
    length = 2 + len(value)
    head = bytes((length,)) if length < 0x80 else bytes((0x80 | length >> 7, length & 0x7F))
    return head + bytes((1, tag)) + value


@st.composite
def _port_group(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # the usual form, which the template reads
        sizes = (1, 1, 2, 2, 2, 2, 2, 2)
        return b"".join(_usual(tag, draw(st.binary(min_size=size, max_size=size)))
                        for tag, size in zip(_PORT_TAGS, sizes, strict=True))
    return draw(_items(_PORT_TAGS))


@st.composite
def _cluster(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        head = (_usual(0x4A, draw(st.binary(min_size=1, max_size=1)))
                + _usual(0x3E, draw(st.binary(min_size=2, max_size=2)))
                + _usual(0x07, draw(st.binary(min_size=1, max_size=1)))
                + _usual(0x96, draw(st.binary(min_size=1, max_size=1))))
        groups = draw(st.lists(_port_group(), max_size=3))
        return head + b"".join(_usual(0x5B, g) for g in groups)
    return draw(_items([*_CLUSTER_TAGS, 0x5B], _port_group().map(
        lambda g: _usual(0x5B, g)), max_size=6))


@st.composite
def packets(draw: st.DrawFn) -> tuple[bytes, Direction]:
    """A 0x1000 payload: header items (usually), then random items."""
    key, (_, tags) = draw(st.sampled_from(sorted(BKV_PACKETS.items(),
                                                 key=lambda kv: (kv[0][0], kv[0][1].value))))
    bkv_cmd, direction = key
    if draw(st.integers(0, 9)) == 0:
        bkv_cmd = draw(st.integers(0, 0xFFFF))
    head = _usual(0x01, bkv_cmd.to_bytes(2, "big"))
    if draw(st.booleans()):
        head += _usual(0x02, draw(st.binary(max_size=8)))
    if draw(st.booleans()):
        head += _usual(0x03, GATEWAY if draw(st.booleans()) else draw(st.binary(max_size=7)))
    body_tags = [*tags, *_PACKET_TAGS[:4], 0x01, 0x02, 0x03]
    clusters = _cluster().map(lambda c: _usual(0x94, c))
    fee_tiers = st.binary(min_size=6, max_size=13).map(lambda v: _usual(0x83, v))
    body = draw(st.lists(st.one_of(_item(body_tags), clusters, fee_tiers), max_size=12))
    payload = head + b"".join(body)
    if draw(st.integers(0, 4)) == 0:  # no header at all, or a broken one
        payload = draw(st.binary(max_size=4)) + payload[draw(st.integers(0, 6)):]
    return payload, direction


def _outcome(read: object) -> object:
    try:
        return read()  # type: ignore[operator]
    except RemoteProtocolError as err:
        return type(err), str(err)


def _general(payload: bytes, direction: Direction) -> object:
    return _outcome(lambda: packet_from_items(split_items(payload), direction, GATEWAY,
                                              split_items))


@given(packets())
@example((bytes.fromhex("04010110170a01020000000000000000090103822312140027006501940301"
                        "4a0104013effff030107250301961e28015b030108000301098004010a0000"
                        "04019508e304010b000004010c000104010d000004010e0000"), Direction.UP))
def test_fast_packet_agrees_with_the_general_reading(case: tuple[bytes, Direction]) -> None:
    payload, direction = case

    assert _outcome(lambda: fast_packet(payload, direction, GATEWAY)) == _general(
        payload, direction)


@given(packets())
def test_fast_packet_agrees_with_the_grammar(case: tuple[bytes, Direction]) -> None:
    payload, direction = case
    fast = _outcome(lambda: fast_packet(payload, direction, GATEWAY))
    try:
        grammar = packet_from_items(_grammar_items(payload), direction, GATEWAY,
                                    _grammar_items)
    except Exception:  # construct's errors, or the packet's own
        assert isinstance(fast, tuple) and issubclass(fast[0], RemoteProtocolError)
        return
    assert fast == grammar


@given(packets(), st.data())
def test_mutated_packets_fail_alike(case: tuple[bytes, Direction], data: st.DataObject
                                    ) -> None:
    payload, direction = case
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        if mutated:
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(
                st.integers(0, 255))
    cut = bytes(mutated[:data.draw(st.integers(0, len(mutated)))])

    for variant in (bytes(mutated), cut):
        assert _outcome(lambda v=variant: fast_packet(v, direction, GATEWAY)) == _general(
            variant, direction)


def _frame(payload: bytes, direction: Direction) -> bytes:
    magic = b"\xfc\xfe" if direction is Direction.UP else b"\xfc\xff"
    body = ((len(payload) + 17).to_bytes(2, "big") + b"\x10\x00" + bytes(4)
            + bytes((direction is Direction.UP,)) + GATEWAY + payload)
    return magic + body + bytes((sum(body) & 0xFF,)) + b"\xfc\xee"


@given(packets())
def test_whole_frames_decode_as_the_grammar_reads_them(case: tuple[bytes, Direction]) -> None:
    payload, direction = case
    data = _frame(payload, direction)

    fast = _outcome(lambda: BkvFrame.decode(data))
    reference = _outcome(lambda: reference_decode(data))
    if isinstance(reference, tuple):
        assert isinstance(fast, tuple)
    else:
        assert fast == reference


def _ordered_decode(data: bytes) -> object:
    """BkvFrame.decode without its one-test envelope shortcut."""
    from bkvcodec._bkv.codec import check_envelope, decode_checked
    from bkvcodec.errors import TrailingBytes

    total = check_envelope(data)
    if len(data) > total:
        raise TrailingBytes(total, len(data))
    return decode_checked(data)


@given(packets(), st.data())
def test_envelope_shortcut_keeps_the_errors(case: tuple[bytes, Direction], data: st.DataObject
                                            ) -> None:
    frame = bytearray(_frame(*case))
    for _ in range(data.draw(st.integers(0, 2))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    variant = bytes(frame) + data.draw(st.binary(max_size=2))

    assert _outcome(lambda: BkvFrame.decode(variant)) == _outcome(
        lambda: _ordered_decode(variant))


@given(bkv_frames(), st.data())
def test_fast_encoder_refuses_what_the_grammar_refuses(frame: BkvFrame, data: st.DataObject
                                                       ) -> None:
    message = frame.message
    names = [f.name for f in dataclasses.fields(message)  # type: ignore[arg-type]
             if f.name not in ("container", "sub_command", "direction")]
    name = data.draw(st.sampled_from(names))
    value = getattr(message, name)
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        # A part (tier, port, window, socket) with one field out of its range or type.
        i = data.draw(st.integers(0, len(value) - 1))
        part_field = data.draw(st.sampled_from(dataclasses.fields(value[i])))
        part_bad = data.draw(st.sampled_from([-1, 1 << 16, "1", None, "24:61", "1:2", b"\0"]))
        bad: object = (*value[:i], dataclasses.replace(  # type: ignore[type-var]
            value[i], **{part_field.name: part_bad}), *value[i + 1:])
    elif isinstance(value, str):
        bad = data.draw(st.sampled_from(["x" * 30, "\u4e2d", 5]))
    elif isinstance(value, bytes):
        bad = data.draw(st.sampled_from([value + b"\0", value[:-1], "ab", 7, bytearray(value)]))
    else:
        bad = data.draw(st.sampled_from([-1, 1 << 16, 1 << 40, "1", None, True, b"\0"]))
    broken = dataclasses.replace(frame, message=dataclasses.replace(  # type: ignore[type-var]
        message, **{name: bad}))

    assert _encoded(broken.encode) == _encoded(lambda: reference_encode(broken))


def _encoded(encode: object) -> object:
    try:
        return encode()  # type: ignore[operator]
    except LocalProtocolError:
        return "refused"


_VALUES = st.one_of(st.none(), st.integers(0, 0x1FFFF), st.integers(-2, -1))


@given(st.builds(PortGroup, port=_VALUES, status=_VALUES, business_no=_VALUES,
                 voltage_dv=_VALUES, power_dw=_VALUES, current_ma=_VALUES, energy_wh=_VALUES,
                 duration_min=_VALUES, unknown=st.lists(st.builds(
                     BkvItem, key=st.integers(0, 300), value=st.binary(max_size=3)),
                     max_size=1).map(tuple)))
def test_port_group_template_writes_the_grammar_items(group: PortGroup) -> None:
    try:
        expected: object = grammar_items_to_bytes(_plain_items(group, _PORT_TAGS_ORDER))
    except Exception:  # the item rules (LocalProtocolError) or construct
        expected = "refused"
    try:
        actual: object = _port_group_bytes(group)
    except LocalProtocolError:
        actual = "refused"
    assert actual == expected


@given(st.lists(st.tuples(st.one_of(st.integers(0, 0x1FF), st.text("ab", max_size=2)),
                          st.binary(max_size=200)), max_size=5))
def test_item_writer_agrees_with_grammar(items: list[tuple[int | str, bytes]]) -> None:
    assert items_to_bytes(items) == grammar_items_to_bytes(items)  # type: ignore[arg-type]


@given(bkv_frames(), st.data())
def test_fast_frame_encoder_refuses_what_the_grammar_refuses(frame: BkvFrame,
                                                             data: st.DataObject) -> None:
    # The envelope fields (and a GN message's container) out of range or of another
    # type: the whole-frame encoder must give the grammar's bytes or refuse alike.
    name = data.draw(st.sampled_from(["gateway_id", "seq", "direction_byte", "container",
                                      "tier_durations_min"]))
    bad = data.draw(st.sampled_from({
        "gateway_id": ["0011223344556", "00112233445566aa", "00 11 22 33 44 55 66",
                       "zz112233445566", 7, "ABCDEF01234567"],
        "seq": [-1, 1 << 32, "1", None, True, (1 << 32) - 1],
        "direction_byte": [-1, 256, "1", True, 0, 1, 7],
        "container": [-1, 1 << 16, "1", None, 0x0005, 0x1234],
        # One tier duration (a u16 in a counted list) out of range or of another type.
        "tier_durations_min": [-1, 1 << 16, "1", None, True, 1.0, 0xFFFF],
    }[name]))
    if name == "tier_durations_min":
        durations = getattr(frame.message, name, None)
        if not durations:
            return
        i = data.draw(st.integers(0, len(durations) - 1))
        bad = (*durations[:i], bad, *durations[i + 1:])
        if data.draw(st.booleans()):
            bad = bad * 100  # more tiers than the one-byte count holds
    if name in ("container", "tier_durations_min"):
        if not hasattr(frame.message, name):
            return
        broken = dataclasses.replace(frame, message=dataclasses.replace(  # type: ignore[type-var]
            frame.message, **{name: bad}))
    else:
        broken = dataclasses.replace(frame, **{name: bad})

    def outcome(encode: Callable[[], bytes]) -> object:
        try:
            return encode()
        except Exception as err:  # the same kind of error, whatever it is
            return type(err)

    assert outcome(broken.encode) == outcome(lambda: reference_encode(broken))


@given(bkv_frames(), st.data())
def test_one_pass_packet_writer_writes_the_item_list(frame: BkvFrame,
                                                     data: st.DataObject) -> None:
    # For any packet, with its items in any recorded order (repeats, unknown keys,
    # names that are not tags) and a field of an unusual value: the one-pass writer
    # gives the bytes of packet_to_items + items_to_bytes, or leaves the packet to them.
    packet: Any = frame.message
    if type(packet) not in _FAST_SPECS:
        return
    tags = list(BKV_PACKETS[_PACKET_KEYS[type(packet)]][1])
    # Unknown items the one-pass writer takes (one-byte keys, short values).
    extra = data.draw(st.lists(st.builds(
        BkvItem, key=st.integers(0x04, 0xFF).filter(lambda k: k not in tags),
        value=st.binary(max_size=5)), max_size=3))
    packet = dataclasses.replace(packet, unknown=(*packet.unknown, *extra))
    keys = [item.key for item in packet.unknown]
    order = data.draw(st.lists(st.sampled_from([*tags, *keys, 0x01, 0xEE, "x"]),
                               max_size=12))
    packet = dataclasses.replace(packet, item_order=tuple(order))
    names = [f.name for f in dataclasses.fields(packet)
             if f.name not in ("item_order", "unknown", "sockets", "fee_tiers", "ports")]
    if names and data.draw(st.booleans()):
        bad = data.draw(st.sampled_from([True, -1, 1 << 70, 1 << 1100, b"x" * 130, "1",
                                         BcdTime(b"\x20\x25"), None, 0]))
        packet = dataclasses.replace(packet, **{data.draw(st.sampled_from(names)): bad})

    def general() -> object:
        try:
            return items_to_bytes(packet_to_items(packet, GATEWAY))
        except Exception as err:  # the general path's error, whatever it is
            return type(err)

    try:
        fast = fast_packet_bytes(packet, GATEWAY)
    except Exception:  # the caller then takes the general path
        return
    if fast is not None:
        assert fast == general()
