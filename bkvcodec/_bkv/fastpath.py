# Hand-tuned decoding of BKV-family payloads: the GN sub-command layouts, the
# BKV item walk and the BKV packets (command 0x1000). This is the same byte layout
# as ``grammar.py``, read with ``struct`` instead of construct because the
# interpreted grammar is 10-60 times slower (bench/bench_codec.py).
# ``tests/test_bkv_roundtrip.py`` and ``tests/test_bkv_fastpath.py`` check on
# generated, real and malformed payloads that the readings agree, errors included.
#
# Rules shared with the grammar: bytes after the documented fields go to
# ``extra``; repeated records (ports, sockets) are read while whole records
# remain; a count byte (tiers, windows) that promises more records than the
# bytes hold is a PayloadInconsistent error, except for the optional power part
# of a card order, which is then absent.
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import starmap
from struct import Struct

from .._errors import BkvItemInvalid, BkvItemOverrun, PayloadInconsistent, PayloadTooShort
from .._fastinit import positional_builder
from .._types import BcdTime, BinaryTime, Direction
from .messages import (
    BkvItem,
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
    FeeTier,
    NetworkAdd,
    NetworkAddAck,
    NetworkRefresh,
    NetworkRefreshAck,
    NetworkSocket,
    PortGroup,
    PortReport,
    PowerChargeEnd,
    PowerControl,
    PowerTier,
    SocketCluster,
    SocketStatus,
    StatusQuery,
    VoiceConfig,
    VoiceConfigAck,
    VoiceWindow,
)
from .packets import (
    _PORT_TAGS,
    _TAGS,
    BKV_PACKETS,
    TAG_CMD,
    TAG_FEE_TIERS,
    TAG_GATEWAY,
    TAG_SEQ,
    TAG_SOCKET_CLUSTER,
    BkvPacket,
    RawItem,
    _Kind,
    packet_from_items,
)

__all__ = ["GN_DECODERS", "GN_FIXED", "U16_ARRAYS", "GnMessage", "fast_packet", "split_items"]

GnMessage = (
    NetworkRefresh | NetworkRefreshAck | NetworkAdd | NetworkAddAck | StatusQuery
    | SocketStatus | ChargeControl | ChargeControlAck | ChargeEnd | PowerControl
    | PowerChargeEnd | CardSwipe | CardOrder | CardOrderAck | CardChargeEnd | ChargeEndAck
    | CardBalanceQuery | CardBalanceReply | VoiceConfig | VoiceConfigAck
)

#: The measurement block "M17" shared by 0x02, 0x18 and 0x0C.
_M17_LAYOUT = "B2sBBBBHHHHH"
_M17 = Struct(">" + _M17_LAYOUT)
_M17_SIZE = _M17.size
_PORT = Struct(">BBHHHHHH")
_TIER = Struct(">HHH")
_END_TIME = Struct(">HBBBBB")


def _need(name: str, params: bytes, size: int) -> None:
    if len(params) < size:
        raise PayloadTooShort(name, size, len(params))


def _count(name: str, params: bytes, at: int, size: int) -> int:
    """The record count at *at*, checked against the bytes that follow it."""
    count = params[at]
    if at + 1 + count * size > len(params):
        raise PayloadInconsistent(
            name, f"count {count} needs {count * size} bytes, {len(params) - at - 1} remain")
    return count


_power_tier_new = positional_builder(PowerTier)


def _tiers(params: bytes, at: int, count: int) -> tuple[PowerTier, ...]:
    return tuple(starmap(_power_tier_new, _TIER.iter_unpack(params[at:at + 6 * count])))


#: Structs of n big-endian u16, by n (counts are one byte).
U16_ARRAYS = tuple(Struct(f">{n}H") for n in range(256))


def _durations(params: bytes, at: int, count: int) -> tuple[int, ...]:
    return U16_ARRAYS[count].unpack_from(params, at)


def _fixed(cls: type[GnMessage], name: str, layout: str) -> Callable[[bytes, int], GnMessage]:
    """The decoder of a message whose fields are one struct layout, then ``extra``."""
    fixed = Struct(">" + layout)
    size, unpack, build = fixed.size, fixed.unpack_from, positional_builder(cls)

    def decode(p: bytes, container: int) -> GnMessage:
        if len(p) < size:
            raise PayloadTooShort(name, size, len(p))
        return build(*unpack(p), p[size:], container)
    return decode


_network_socket_new = positional_builder(NetworkSocket)
_network_refresh_new = positional_builder(NetworkRefresh)


def _network_refresh(p: bytes, container: int) -> NetworkRefresh:
    _need("network_refresh", p, 1)
    whole = 1 + (len(p) - 1) // 7 * 7
    socket = _network_socket_new
    sockets = tuple([socket(p[i], p[i + 1:i + 7]) for i in range(1, whole, 7)])
    return _network_refresh_new(p[0], sockets, p[whole:], container)


_port_report_new = positional_builder(PortReport)
_socket_status_new = positional_builder(SocketStatus)


def _socket_status(sub_command: int) -> Callable[[bytes, int], SocketStatus]:
    def decode(p: bytes, container: int) -> SocketStatus:
        _need("socket_status", p, 5)
        whole = 5 + (len(p) - 5) // 14 * 14
        ports = tuple(starmap(_port_report_new, _PORT.iter_unpack(p[5:whole])))
        return _socket_status_new(p[0], p[1:3], p[3], p[4], ports, sub_command, p[whole:],
                                  container)
    return decode


_power_control_new = positional_builder(PowerControl)
_card_order_new = positional_builder(CardOrder)


def _power_control(p: bytes, container: int) -> PowerControl:
    _need("power_control", p, 6)
    count = _count("power_control", p, 5, 6)
    end = 6 + 6 * count
    return _power_control_new(p[0], p[1], p[2], (p[3] << 8) | p[4], _tiers(p, 6, count),
                              p[end:], container)


_power_charge_end_new = positional_builder(PowerChargeEnd)


def _power_charge_end(p: bytes, container: int) -> PowerChargeEnd:
    _need("power_charge_end", p, 30)
    count = _count("power_charge_end", p, 29, 2)
    end = 30 + 2 * count
    return _power_charge_end_new(
        *_M17.unpack_from(p), BinaryTime(*_END_TIME.unpack_from(p, 17)), p[24],
        (p[25] << 8) | p[26], (p[27] << 8) | p[28], _durations(p, 30, count), p[end:],
        container)


def _card_order(p: bytes, container: int) -> CardOrder:
    _need("card_order", p, 10)
    amount: int | None = None
    tiers: tuple[PowerTier, ...] = ()
    end = 10
    if len(p) >= 13 and 13 + 6 * p[12] <= len(p):
        amount = (p[10] << 8) | p[11]
        tiers = _tiers(p, 13, p[12])
        end = 13 + 6 * p[12]
    return _card_order_new(p[0], p[1], (p[2] << 8) | p[3], p[4], p[5], (p[6] << 8) | p[7],
                           (p[8] << 8) | p[9], amount, tiers, p[end:], container)


_card_charge_end_new = positional_builder(CardChargeEnd)


def _card_charge_end(p: bytes, container: int) -> CardChargeEnd:
    _need("card_charge_end", p, 30)
    count = _count("card_charge_end", p, 29, 2)
    end = 30 + 2 * count
    return _card_charge_end_new(
        *_M17.unpack_from(p), p[17:23], p[23], p[24], (p[25] << 8) | p[26],
        (p[27] << 8) | p[28], _durations(p, 30, count), p[end:], container)


def _voice_config(p: bytes, container: int) -> VoiceConfig:
    _need("voice_config", p, 5)
    count = _count("voice_config", p, 4, 4)
    windows = tuple(
        VoiceWindow(start=f"{p[i]:02d}:{p[i + 1]:02d}", end=f"{p[i + 2]:02d}:{p[i + 3]:02d}")
        for i in range(5, 5 + 4 * count, 4))
    return VoiceConfig(socket_no=p[0], port=p[1], buzzer_on=p[2], voice_on=p[3],
                       windows=windows, extra=p[5 + 4 * count:], container=container)


#: The GN messages whose fields are one struct layout (then ``extra``, then the
#: container): class, name and layout by (sub-command, direction).
GN_FIXED: dict[tuple[int, Direction], tuple[type[GnMessage], str, str]] = {
    (0x08, Direction.UP): (NetworkRefreshAck, "network_refresh_ack", "B"),
    (0x09, Direction.DOWN): (NetworkAdd, "network_add", "B6s"),
    (0x09, Direction.UP): (NetworkAddAck, "network_add_ack", "B"),
    (0x1D, Direction.DOWN): (StatusQuery, "status_query", "B"),
    (0x07, Direction.DOWN): (ChargeControl, "charge_control", "BBBBHH"),
    (0x07, Direction.UP): (ChargeControlAck, "charge_control_ack", "BBBH"),
    (0x02, Direction.UP): (ChargeEnd, "charge_end", _M17_LAYOUT),
    (0x0B, Direction.UP): (CardSwipe, "card_swipe", "BBHB6s20s"),
    (0x0F, Direction.UP): (CardOrderAck, "card_order_ack", "BBB"),
    (0x0C, Direction.DOWN): (ChargeEndAck, "charge_end_ack", "BB"),
    (0x1A, Direction.UP): (CardBalanceQuery, "card_balance_query", "BB6s"),
    (0x1A, Direction.DOWN): (CardBalanceReply, "card_balance_reply", "BB6sI"),
    (0x1B, Direction.UP): (VoiceConfigAck, "voice_config_ack", "BBB"),
}

#: Fast decoders by (sub-command, direction); the same keys as grammar.GN_LAYOUTS.
GN_DECODERS: dict[tuple[int, Direction], Callable[[bytes, int], GnMessage]] = {
    (0x08, Direction.DOWN): _network_refresh,
    (0x1C, Direction.UP): _socket_status(0x1C),
    (0x1D, Direction.UP): _socket_status(0x1D),
    (0x17, Direction.DOWN): _power_control,
    (0x18, Direction.UP): _power_charge_end,
    (0x0B, Direction.DOWN): _card_order,
    (0x0C, Direction.UP): _card_charge_end,
    (0x1B, Direction.DOWN): _voice_config,
    **{key: _fixed(cls, name, layout) for key, (cls, name, layout) in GN_FIXED.items()},
}


def split_items(data: bytes) -> list[RawItem]:
    """Split a BKV item list into (key, value) pairs.

    Raises:
        BkvItemOverrun: An item runs past the end of *data*.
        BkvItemInvalid: An item's LEN is 0 or longer than 4 bytes, or its key
            is longer than the item.
    """
    items: list[RawItem] = []
    end = len(data)
    pos = 0
    while pos < end:
        start = pos
        byte = data[pos]
        length = byte & 0x7F
        pos += 1
        while byte & 0x80:
            if pos - start == 4:
                raise BkvItemInvalid(start, "LEN longer than 4 bytes")
            if pos == end:
                raise BkvItemOverrun(start, length << 7, 0)
            byte = data[pos]
            length = (length << 7) | (byte & 0x7F)
            pos += 1
        if length == 0:
            raise BkvItemInvalid(start, "LEN is 0")
        stop = pos + length
        if stop > end:
            raise BkvItemOverrun(start, length, end - pos)
        ks = data[pos]
        if ks == 1 and length > 1:  # the usual one-byte numeric key
            items.append((data[pos + 1], data[pos + 2:stop]))
        else:
            key_end = pos + 1 + (ks & 0x7F)
            if key_end > stop:
                raise BkvItemInvalid(start, "key longer than the item")
            raw_key = data[pos + 1:key_end]
            key: int | str = (raw_key.decode("latin-1") if ks & 0x80
                              else int.from_bytes(raw_key, "big"))
            items.append((key, data[key_end:stop]))
        pos = stop
    return items


# --- BKV packets (command 0x1000) ---------------------------------------------------------
# packets.packet_from_items with the per-item dispatch unrolled: one table per packet
# class maps a tag to its argument slot and value rule, and the nested socket clusters
# and port groups are walked in place when their items have the usual one-byte form
# (anything else goes to split_items, which raises the same errors).

_bkv_item_new = positional_builder(BkvItem)
_port_group_new = positional_builder(PortGroup)
_cluster_new = positional_builder(SocketCluster)
_fee_tier_new = positional_builder(FeeTier)
_UINT, _BYTES, _BCD, _CLUSTERS, _FEE_TIERS = range(5)
_KIND_CODES = {_Kind.UINT: _UINT, _Kind.BYTES: _BYTES, _Kind.BCD: _BCD}
_PORT_SLOTS: dict[int | str, int] = {tag: i for i, tag in enumerate(_PORT_TAGS)}
_EMPTY: tuple[BkvItem, ...] = ()
#: f"{n:02d}" for every byte value (the hh and mm of a fee tier's end).
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(256))


def _simple_items(data: bytes) -> list[tuple[int, bytes]] | None:
    """The items of *data* when each has a one-byte LEN and a one-byte numeric key and
    all fit, else None (the caller then uses split_items)."""
    items = []
    pos, end = 0, len(data)
    while pos < end:
        length = data[pos]
        stop = pos + 1 + length
        if length < 2 or length & 0x80 or stop > end or data[pos + 1] != 1:
            return None
        items.append((data[pos + 2], data[pos + 3:stop]))
        pos = stop
    return items


# The port group every gateway sends: the eight port tags in order, each at its usual
# size; read with one unpack and one comparison of the item heads.
_PORT_TEMPLATE = Struct(">3sB3sB" + "3sH" * 6)
_PORT_HEADS = tuple(
    bytes((2 + size, 1, tag)) for tag, size in zip(_PORT_TAGS, (1, 1, 2, 2, 2, 2, 2, 2),
                                                   strict=True))
_PORT_TEMPLATE_SIZE = _PORT_TEMPLATE.size
# The usual head of a socket cluster: socket_no, socket_version, temperature_c, rssi.
_CLUSTER_TEMPLATE = Struct(">3sB3s2s3sB3sB")
_CLUSTER_HEADS = (b"\x03\x01\x4a", b"\x04\x01\x3e", b"\x03\x01\x07", b"\x03\x01\x96")
_CLUSTER_TEMPLATE_SIZE = _CLUSTER_TEMPLATE.size


def _fast_port_group(data: bytes) -> PortGroup:
    if len(data) == _PORT_TEMPLATE_SIZE:
        fields = _PORT_TEMPLATE.unpack(data)
        if fields[0::2] == _PORT_HEADS:
            return _port_group_new(*fields[1::2], _EMPTY)
    items: list[RawItem] | list[tuple[int, bytes]] | None = _simple_items(data)
    if items is None:
        items = split_items(data)
    values: list[object] = [None] * 8
    unknown: list[BkvItem] | None = None
    for key, raw in items:
        slot = _PORT_SLOTS.get(key)
        if slot is not None and values[slot] is None and raw:
            values[slot] = int.from_bytes(raw, "big")
        else:
            if unknown is None:
                unknown = []
            unknown.append(_bkv_item_new(key, raw))
    return _port_group_new(*values, _EMPTY if unknown is None else tuple(unknown))


def _fast_cluster(data: bytes) -> SocketCluster:
    if len(data) >= _CLUSTER_TEMPLATE_SIZE:
        head = _CLUSTER_TEMPLATE.unpack_from(data)
        if head[0::2] == _CLUSTER_HEADS:
            groups = _port_groups(data, _CLUSTER_TEMPLATE_SIZE)
            if groups is not None:
                return _cluster_new(*head[1::2], groups, _EMPTY)
    items: list[RawItem] | list[tuple[int, bytes]] | None = _simple_items(data)
    if items is None:
        items = split_items(data)
    socket_no = version = temperature = rssi = None
    ports: list[PortGroup] = []
    unknown: list[BkvItem] = []
    for key, raw in items:
        if key == 0x5B:
            ports.append(_fast_port_group(raw))
            continue
        if raw:
            if key == 0x4A and socket_no is None:
                socket_no = int.from_bytes(raw, "big")
                continue
            if key == 0x07 and temperature is None:
                temperature = int.from_bytes(raw, "big")
                continue
            if key == 0x96 and rssi is None:
                rssi = int.from_bytes(raw, "big")
                continue
        if key == 0x3E and version is None:
            version = raw
            continue
        unknown.append(_bkv_item_new(key, raw))
    return _cluster_new(socket_no, version, temperature, rssi, tuple(ports), tuple(unknown))


def _port_groups(data: bytes, pos: int) -> tuple[PortGroup, ...] | None:
    """The port groups from *pos* to the end of *data* when every item there is a port
    group with a one-byte LEN and key, else None."""
    groups = []
    end = len(data)
    while pos < end:
        length = data[pos]
        stop = pos + 1 + length
        if length < 2 or length & 0x80 or stop > end or data[pos + 1] != 1 \
                or data[pos + 2] != 0x5B:
            return None
        groups.append(_fast_port_group(data[pos + 3:stop]))
        pos = stop
    return tuple(groups)


class _PacketSpec:
    """How the items of one packet class fill its constructor's arguments."""

    __slots__ = ("build", "defaults", "seq_slot", "slots")

    def __init__(self, cls: type[BkvPacket], tags: tuple[int, ...]) -> None:
        names = [f.name for f in dataclasses.fields(cls)]
        self.build = positional_builder(cls)
        self.defaults: list[object] = [
            f.default for f in dataclasses.fields(cls)]
        self.seq_slot = names.index("bkv_seq")
        self.slots: dict[int | str, tuple[int, int]] = {}
        for tag in tags:
            if tag == TAG_SOCKET_CLUSTER:
                self.slots[tag] = (names.index("sockets"), _CLUSTERS)
            elif tag == TAG_FEE_TIERS:
                self.slots[tag] = (names.index("fee_tiers"), _FEE_TIERS)
            else:
                name, kind, _ = _TAGS[tag]
                self.slots[tag] = (names.index(name), _KIND_CODES[kind])


_PACKET_SPECS: dict[tuple[int, Direction], _PacketSpec] = {
    key: _PacketSpec(cls, tags) for key, (cls, tags) in BKV_PACKETS.items()}


def fast_packet(payload: bytes, direction: Direction, gateway_id: bytes) -> BkvPacket:
    """The typed packet of a 0x1000 *payload*: the result and errors of
    ``packet_from_items(split_items(payload), direction, gateway_id, split_items)``.

    Packets whose items all have a one-byte LEN and a one-byte numeric key (what
    gateways send) are read in one pass; any other goes to the general reading.
    """
    end = len(payload)
    length = payload[0] if end else 0
    if not 3 <= length <= 10 or length >= end or payload[1] != 1 or payload[2] != TAG_CMD:
        return _general_packet(payload, direction, gateway_id)
    pos = 1 + length
    spec = _PACKET_SPECS.get((int.from_bytes(payload[3:pos], "big"), direction))
    if spec is None:
        return _general_packet(payload, direction, gateway_id)
    values = spec.defaults.copy()
    slots = spec.slots
    unknown: list[BkvItem] = []
    order: list[int | str] = []
    lists: dict[int, list[object]] | None = None
    clusters: list[tuple[int, bytes]] | None = None
    header = 0  # 0: bkv_seq or the gateway item may come, 1: the gateway item, 2: neither
    while pos < end:
        length = payload[pos]
        stop = pos + 1 + length
        if length < 2 or length & 0x80 or stop > end or payload[pos + 1] != 1:
            return _general_packet(payload, direction, gateway_id)
        key = payload[pos + 2]
        raw = payload[pos + 3:stop]
        pos = stop
        if header < 2:
            if header == 0 and key == TAG_SEQ and raw:
                values[spec.seq_slot] = int.from_bytes(raw, "big")
                header = 1
                continue
            header = 2
            if key == TAG_GATEWAY:
                if raw != gateway_id:
                    values[spec.seq_slot + 1] = raw.hex()
                continue
        order.append(key)
        entry = slots.get(key)
        if entry is not None:
            slot, kind = entry
            if kind == _UINT:
                if raw and values[slot] is None:
                    values[slot] = int.from_bytes(raw, "big")
                    continue
            elif kind == _BYTES:
                if values[slot] is None:
                    values[slot] = raw
                    continue
            elif kind == _BCD:
                if len(raw) == 7 and values[slot] is None:
                    values[slot] = BcdTime(raw)
                    continue
            elif kind == _CLUSTERS:
                # Read after the walk: a bad item further on is the error to raise first.
                if clusters is None:
                    clusters = []
                clusters.append((slot, raw))
                continue
            elif not len(raw) % 6:  # _FEE_TIERS
                if lists is None:
                    lists = {}
                tiers = lists.setdefault(slot, [])
                for i in range(0, len(raw), 6):
                    tiers.append(_fee_tier_new(
                        _TWO_DIGITS[raw[i]] + ":" + _TWO_DIGITS[raw[i + 1]],
                        (raw[i + 2] << 8) | raw[i + 3], (raw[i + 4] << 8) | raw[i + 5]))
                continue
        unknown.append(_bkv_item_new(key, raw))
    if clusters is not None:
        values[clusters[0][0]] = tuple(_fast_cluster(raw) for _, raw in clusters)
    if lists is not None:
        for slot, parts in lists.items():
            values[slot] = tuple(parts)
    values[-2] = tuple(unknown)
    values[-1] = tuple(order)
    packet: BkvPacket = spec.build(*values)
    return packet


def _general_packet(payload: bytes, direction: Direction, gateway_id: bytes) -> BkvPacket:
    """fast_packet for any item form (multi-byte LEN, long or text keys, errors)."""
    items = split_items(payload)
    if not items or items[0][0] != TAG_CMD or not 1 <= len(items[0][1]) <= 8:
        raise PayloadInconsistent("bkv_packet", "the packet does not start with item 0x01")
    bkv_cmd = int.from_bytes(items[0][1], "big")
    spec = _PACKET_SPECS.get((bkv_cmd, direction))
    if spec is None:
        return packet_from_items(items, direction, gateway_id, split_items)
    values = spec.defaults.copy()
    start = 1
    count = len(items)
    if count > 1 and items[1][0] == TAG_SEQ and items[1][1]:
        values[spec.seq_slot] = int.from_bytes(items[1][1], "big")
        start = 2
    if count > start and items[start][0] == TAG_GATEWAY:
        if items[start][1] != gateway_id:
            values[spec.seq_slot + 1] = items[start][1].hex()
        start += 1
    slots = spec.slots
    unknown: list[BkvItem] = []
    order: list[int | str] = []
    lists: dict[int, list[object]] | None = None
    for index in range(start, count):
        key, raw = items[index]
        order.append(key)
        entry = slots.get(key)
        if entry is not None:
            slot, kind = entry
            if kind == _UINT:
                if raw and values[slot] is None:
                    values[slot] = int.from_bytes(raw, "big")
                    continue
            elif kind == _BYTES:
                if values[slot] is None:
                    values[slot] = raw
                    continue
            elif kind == _BCD:
                if len(raw) == 7 and values[slot] is None:
                    values[slot] = BcdTime(raw)
                    continue
            elif kind == _CLUSTERS:
                if lists is None:
                    lists = {}
                lists.setdefault(slot, []).append(_fast_cluster(raw))
                continue
            elif not len(raw) % 6:  # _FEE_TIERS
                if lists is None:
                    lists = {}
                tiers = lists.setdefault(slot, [])
                for i in range(0, len(raw), 6):
                    tiers.append(_fee_tier_new(
                        _TWO_DIGITS[raw[i]] + ":" + _TWO_DIGITS[raw[i + 1]],
                        (raw[i + 2] << 8) | raw[i + 3], (raw[i + 4] << 8) | raw[i + 5]))
                continue
        unknown.append(_bkv_item_new(key, raw))
    if lists is not None:
        for slot, parts in lists.items():
            values[slot] = tuple(parts)
    values[-2] = tuple(unknown)
    values[-1] = tuple(order)
    packet: BkvPacket = spec.build(*values)
    return packet
