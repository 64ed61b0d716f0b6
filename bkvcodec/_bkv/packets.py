# BKV packets (command 0x1000): the mapping between a flat list of BKV items and
# the typed packet classes, in both directions (bkv.md §6.2-§6.6).
#
# The item framing itself (LEN, KS, KEY, VALUE) is done by the fast item walker
# when decoding and by items_to_bytes when encoding (grammar_items_to_bytes is the
# construct reference). Otherwise this module only knows tags: which tag has
# which field name and value encoding (the tag table of §6.3, in one place),
# which tags each command carries and in what order, and how the nested socket
# clusters (0x94) and port groups (0x5B) nest. Items whose tag has no name in a
# packet are kept in ``unknown``; a value that does not fit its tag's encoding (a
# BCD time of the wrong size, say) is kept there too rather than failing the frame.
from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from struct import Struct
from struct import error as StructError
from typing import Any, TypeAlias

from .._errors import LocalProtocolError, PayloadInconsistent
from .._fastinit import positional_builder
from .._types import BcdTime, Direction
from .grammar import BKV_ITEMS
from .messages import (
    Bkv1013Report,
    BkvItem,
    ExceptionReport,
    ExceptionReportAck,
    FeeChargeEnd,
    FeeChargeEndAck,
    FeeControl,
    FeeControlAck,
    FeeTier,
    ParamQuery,
    ParamQueryReply,
    ParamSet,
    ParamSetAck,
    PortGroup,
    SocketCluster,
    StatusReport,
    StatusReportAck,
    UnknownBkvPacket,
)

__all__ = ["BKV_PACKETS", "BkvPacket", "RawItem", "fast_packet_bytes", "packet_from_items",
           "packet_to_items"]

BkvPacket: TypeAlias = (
    StatusReport | StatusReportAck | FeeChargeEnd | FeeChargeEndAck | FeeControl
    | FeeControlAck | ExceptionReport | ExceptionReportAck | ParamSet | ParamSetAck
    | ParamQuery | ParamQueryReply | Bkv1013Report | UnknownBkvPacket
)

#: One item as (key, value bytes).
RawItem: TypeAlias = tuple[int | str, bytes]
#: A function that splits a container's bytes into items (the fast walker).
ItemSplitter: TypeAlias = Callable[[bytes], list[RawItem]]

TAG_CMD, TAG_SEQ, TAG_GATEWAY = 0x01, 0x02, 0x03
TAG_FEE_TIERS, TAG_PORT_GROUP, TAG_SOCKET_CLUSTER = 0x83, 0x5B, 0x94


class _Kind(enum.Enum):
    UINT = enum.auto()
    BYTES = enum.auto()
    BCD = enum.auto()


# tag -> (field name, value encoding, size written by the encoder), bkv.md §6.3.
_TAGS: dict[int, tuple[str, _Kind, int]] = {
    0x06: ("time", _Kind.BCD, 7),
    0x07: ("temperature_c", _Kind.UINT, 1),
    0x08: ("port", _Kind.UINT, 1),
    0x09: ("status", _Kind.UINT, 1),
    0x0A: ("business_no", _Kind.UINT, 2),
    0x0B: ("power_dw", _Kind.UINT, 2),
    0x0C: ("current_ma", _Kind.UINT, 2),
    0x0D: ("energy_wh", _Kind.UINT, 2),
    0x0E: ("duration_min", _Kind.UINT, 2),
    0x0F: ("ack", _Kind.UINT, 1),
    0x10: ("over_current_limit_ma", _Kind.UINT, 2),
    0x11: ("power_limit_dw", _Kind.UINT, 2),
    0x12: ("charge_mode", _Kind.UINT, 1),
    0x13: ("switch", _Kind.UINT, 1),
    0x14: ("duration_limit_min", _Kind.UINT, 2),
    0x21: ("full_charge_delay_s", _Kind.UINT, 2),
    0x22: ("no_load_delay_s", _Kind.UINT, 2),
    0x23: ("full_power_threshold_dw", _Kind.UINT, 2),
    0x24: ("no_load_power_threshold_dw", _Kind.UINT, 2),
    0x25: ("high_temp_threshold_c", _Kind.UINT, 1),
    0x2E: ("end_time", _Kind.BCD, 7),
    0x2F: ("end_reason", _Kind.UINT, 1),
    0x3E: ("socket_version", _Kind.BYTES, 2),
    0x47: ("control_type", _Kind.UINT, 1),
    0x4A: ("socket_no", _Kind.UINT, 1),
    0x4B: ("socket_event_status", _Kind.UINT, 1),
    0x4C: ("port1_event_status", _Kind.UINT, 1),
    0x4D: ("port2_event_status", _Kind.UINT, 1),
    0x4E: ("over_voltage_dv", _Kind.UINT, 2),
    0x4F: ("under_voltage_dv", _Kind.UINT, 2),
    0x50: ("port1_leak_current", _Kind.UINT, 2),
    0x51: ("port2_leak_current", _Kind.UINT, 2),
    0x52: ("port1_over_temp_c", _Kind.UINT, 1),
    0x53: ("port2_over_temp_c", _Kind.UINT, 1),
    0x54: ("socket_event_reason", _Kind.UINT, 1),
    0x55: ("port1_event_reason", _Kind.UINT, 1),
    0x56: ("port2_event_reason", _Kind.UINT, 1),
    0x57: ("port1_status", _Kind.UINT, 1),
    0x58: ("port2_status", _Kind.UINT, 1),
    0x59: ("max_charge_time_min", _Kind.UINT, 2),
    0x60: ("trickle_threshold_pct", _Kind.UINT, 1),
    0x68: ("key_base_amount", _Kind.UINT, 4),
    0x80: ("service_fee_mode", _Kind.UINT, 1),
    0x84: ("tier_usage", _Kind.BYTES, 6),
    0x85: ("electricity_fee_fen", _Kind.UINT, 2),
    0x86: ("service_fee_fen", _Kind.UINT, 2),
    0x88: ("payment_fen", _Kind.UINT, 2),
    0x89: ("fee_tier_count", _Kind.UINT, 1),
    0x93: ("anti_pulse_time", _Kind.UINT, 2),
    0x95: ("voltage_dv", _Kind.UINT, 2),
    0x96: ("rssi", _Kind.UINT, 1),
}

# (bkv_cmd, direction) -> (class, named tags in the order the samples use), §6.5.
BKV_PACKETS: dict[tuple[int, Direction], tuple[type[BkvPacket], tuple[int, ...]]] = {
    (0x1017, Direction.UP): (StatusReport, (TAG_SOCKET_CLUSTER,)),
    (0x1017, Direction.DOWN): (StatusReportAck, (0x0F,)),
    (0x1004, Direction.UP): (FeeChargeEnd, (
        0x07, 0x4A, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x2E, 0x2F, 0x12, 0x85, 0x86,
        0x89, 0x84)),
    (0x1004, Direction.DOWN): (FeeChargeEndAck, (0x0F, 0x4A, 0x08)),
    (0x1007, Direction.DOWN): (FeeControl, (
        0x4A, 0x08, 0x13, 0x12, 0x47, 0x14, 0x88, 0x80, 0x89, TAG_FEE_TIERS)),
    (0x1007, Direction.UP): (FeeControlAck, (0x0F, 0x4A, 0x08, 0x0A)),
    (0x1010, Direction.UP): (ExceptionReport, (
        0x4A, 0x54, 0x4B, 0x55, 0x4C, 0x56, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0x53, 0x57,
        0x58)),
    (0x1010, Direction.DOWN): (ExceptionReportAck, (0x4A, 0x0F)),
    (0x1011, Direction.DOWN): (ParamSet, (0x4A, 0x21, 0x22, 0x23, 0x24, 0x25, 0x11, 0x59)),
    (0x1011, Direction.UP): (ParamSetAck, (0x4A, 0x0F)),
    (0x1012, Direction.DOWN): (ParamQuery, (0x4A,)),
    (0x1012, Direction.UP): (ParamQueryReply, (
        0x4A, 0x0F, 0x23, 0x60, 0x21, 0x24, 0x22, 0x59, 0x25, 0x11, 0x10, 0x68, 0x93)),
    (0x1013, Direction.UP): (Bkv1013Report, (0x4A, 0x08, 0x06)),
}
_PACKET_KEYS: dict[type[BkvPacket], tuple[int, Direction]] = {
    cls: key for key, (cls, _) in BKV_PACKETS.items()}
_PACKET_TAGS: dict[type[BkvPacket], tuple[int, ...]] = {
    cls: tags for cls, tags in BKV_PACKETS.values()}
_PACKET_TAGS[UnknownBkvPacket] = ()

_CLUSTER_TAGS = (0x4A, 0x3E, 0x07, 0x96, TAG_PORT_GROUP)
_PORT_TAGS = (0x08, 0x09, 0x0A, 0x95, 0x0B, 0x0C, 0x0D, 0x0E)


# --- decoding ------------------------------------------------------------------------------

def _value(kind: _Kind, raw: bytes) -> object | None:
    """The field value of *raw*, or None when it does not fit the tag's encoding."""
    if kind is _Kind.UINT:
        return int.from_bytes(raw, "big") if raw else None
    if kind is _Kind.BCD:
        return BcdTime(raw) if len(raw) == 7 else None
    return raw


def _named_fields(items: Sequence[RawItem], tags: tuple[int, ...], split: ItemSplitter,
                  fields: dict[str, Any]) -> list[BkvItem]:
    """Fill *fields* from the items whose tag is in *tags*; return the rest."""
    unknown: list[BkvItem] = []
    for key, raw in items:
        if key in tags and _take(key, raw, split, fields):
            continue
        unknown.append(BkvItem(key=key, value=raw))
    return unknown


def _take(key: int | str, raw: bytes, split: ItemSplitter, fields: dict[str, Any]) -> bool:
    """Store item *key* in *fields*; False when it cannot be a named field."""
    if key == TAG_SOCKET_CLUSTER:
        fields.setdefault("sockets", []).append(_cluster(split(raw), split))
    elif key == TAG_PORT_GROUP:
        fields.setdefault("ports", []).append(_port_group(split(raw), split))
    elif key == TAG_FEE_TIERS:
        if len(raw) % 6:
            return False
        fields.setdefault("fee_tiers", []).extend(
            FeeTier(end=f"{raw[i]:02d}:{raw[i + 1]:02d}",
                    electricity_price_fen=int.from_bytes(raw[i + 2:i + 4], "big"),
                    service_price_fen=int.from_bytes(raw[i + 4:i + 6], "big"))
            for i in range(0, len(raw), 6))
    else:
        name, kind, _ = _TAGS[key]  # type: ignore[index]
        value = _value(kind, raw)
        if name in fields or value is None:
            return False
        fields[name] = value
    return True


def _tuples(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if name in fields:
            fields[name] = tuple(fields[name])


_PORT_SLOTS: dict[int | str, int] = {tag: i for i, tag in enumerate(_PORT_TAGS)}
_port_group_new = positional_builder(PortGroup)
_cluster_new = positional_builder(SocketCluster)


def _port_group(items: list[RawItem], split: ItemSplitter) -> PortGroup:
    # The hot path of every status report: the tag rules of _take, unrolled.
    values: list[object] = [None] * len(_PORT_TAGS)
    unknown: list[BkvItem] = []
    for key, raw in items:
        slot = _PORT_SLOTS.get(key)
        if slot is not None and values[slot] is None and raw:
            values[slot] = int.from_bytes(raw, "big")
        else:
            unknown.append(BkvItem(key=key, value=raw))
    return _port_group_new(*values, tuple(unknown))


def _cluster(items: list[RawItem], split: ItemSplitter) -> SocketCluster:
    fields: dict[str, Any] = {}
    unknown = _named_fields(items, _CLUSTER_TAGS, split, fields)
    return _cluster_new(fields.get("socket_no"), fields.get("socket_version"),
                        fields.get("temperature_c"), fields.get("rssi"),
                        tuple(fields.get("ports", ())), tuple(unknown))


def packet_from_items(items: list[RawItem], direction: Direction, gateway_id: bytes,
                      split: ItemSplitter) -> BkvPacket:
    """The typed packet for the top-level *items* of a 0x1000 payload.

    *gateway_id* is the envelope's; a matching item 0x03 decodes as None.
    *split* walks nested item lists (0x94 clusters, 0x5B groups).

    Raises:
        PayloadInconsistent: The packet has no leading ``bkv_cmd`` item.
    """
    if not items or items[0][0] != TAG_CMD or not 1 <= len(items[0][1]) <= 8:
        raise PayloadInconsistent("bkv_packet", "the packet does not start with item 0x01")
    bkv_cmd = int.from_bytes(items[0][1], "big")
    rest = items[1:]
    fields: dict[str, Any] = {}
    if rest and rest[0][0] == TAG_SEQ and rest[0][1]:
        fields["bkv_seq"] = int.from_bytes(rest[0][1], "big")
        rest = rest[1:]
    if rest and rest[0][0] == TAG_GATEWAY:
        if rest[0][1] != gateway_id:
            fields["bkv_gateway_id"] = rest[0][1].hex()
        rest = rest[1:]
    cls, tags = BKV_PACKETS.get((bkv_cmd, direction), (UnknownBkvPacket, ()))
    unknown = _named_fields(rest, tags, split, fields)
    _tuples(fields, "sockets", "fee_tiers")
    if cls is UnknownBkvPacket:
        fields["direction"] = direction
        fields["bkv_cmd"] = bkv_cmd
    order = tuple(key for key, _ in rest)
    packet: BkvPacket = cls(**fields, unknown=tuple(unknown), item_order=order)
    return packet


# --- encoding ------------------------------------------------------------------------------

def _uint(name: str, value: int, size: int) -> bytes:
    if value < 0:
        raise LocalProtocolError(f"{name} must not be negative, got {value}")
    return value.to_bytes(max(size, (value.bit_length() + 7) // 8), "big")


def _encode_value(tag: int, value: object) -> bytes:
    name, kind, size = _TAGS[tag]
    if kind is _Kind.UINT:
        assert isinstance(value, int)
        return _uint(name, value, size)
    if kind is _Kind.BCD:
        assert isinstance(value, BcdTime)
        return value.raw
    assert isinstance(value, bytes)
    return value


def _named_items(obj: Any, tags: tuple[int, ...]) -> dict[int, list[RawItem]]:
    """The items for *obj*'s named fields, by tag (a tag may give several)."""
    out: dict[int, list[RawItem]] = {}
    for tag in tags:
        if tag == TAG_SOCKET_CLUSTER:
            sockets: tuple[SocketCluster, ...] = obj.sockets
            out[tag] = [(tag, items_to_bytes(_cluster_items(s))) for s in sockets]
        elif tag == TAG_PORT_GROUP:
            ports: tuple[PortGroup, ...] = obj.ports
            out[tag] = [(tag, _port_group_bytes(p)) for p in ports]
        elif tag == TAG_FEE_TIERS:
            tiers: tuple[FeeTier, ...] = obj.fee_tiers
            if tiers:
                out[tag] = [(tag, b"".join(_fee_tier(t) for t in tiers))]
        else:
            value = getattr(obj, _TAGS[tag][0])
            if value is not None:
                out[tag] = [(tag, _encode_value(tag, value))]
    return out


# A port group with all eight values set, each fitting its usual size, and nothing
# unknown: the items written by one pack (the bytes _plain_items would give).
_PORT_TEMPLATE = Struct(">3sB3sB" + "3sH" * 6)
_PORT_HEADS = tuple(bytes((2 + _TAGS[tag][2], 1, tag)) for tag in _PORT_TAGS)


def _port_group_bytes(group: PortGroup) -> bytes:
    if not group.unknown:
        values = (group.port, group.status, group.business_no, group.voltage_dv,
                  group.power_dw, group.current_ma, group.energy_wh, group.duration_min)
        if None not in values:
            try:
                return _PORT_TEMPLATE.pack(*(part for pair in zip(_PORT_HEADS, values,
                                                                   strict=True)
                                             for part in pair))
            except StructError:
                pass
    return items_to_bytes(_plain_items(group, _PORT_TAGS))


def _fee_tier(tier: FeeTier) -> bytes:
    hour, _, minute = tier.end.partition(":")
    try:
        return (bytes((int(hour), int(minute)))
                + tier.electricity_price_fen.to_bytes(2, "big")
                + tier.service_price_fen.to_bytes(2, "big"))
    except (ValueError, OverflowError) as err:
        raise LocalProtocolError(f"fee tier {tier} does not fit its 6 bytes: {err}") from err


def _plain_items(obj: PortGroup | SocketCluster, tags: tuple[int, ...]) -> list[RawItem]:
    named = _named_items(obj, tags)
    items = [item for tag in tags for item in named.get(tag, ())]
    items.extend((u.key, u.value) for u in obj.unknown)
    return items


def _cluster_items(cluster: SocketCluster) -> list[RawItem]:
    return _plain_items(cluster, _CLUSTER_TAGS)


def _goes_first(tag: int | str, upcoming: RawItem | None) -> bool:
    """Whether the next unknown item, *upcoming*, takes a slot of *tag* in
    ``item_order`` before the named field of that tag: it has the tag and the decoder
    refuses it even where the field is unset (a value that does not fit). A value
    that fits was a repeat, after the field. So decoding the packet again gives the
    same unknown items in the same order."""
    if upcoming is None or upcoming[0] != tag or not isinstance(tag, int):
        return False
    if tag == TAG_FEE_TIERS:
        return len(upcoming[1]) % 6 != 0
    entry = _TAGS.get(tag)
    return entry is not None and _value(entry[1], upcoming[1]) is None


def packet_to_items(packet: BkvPacket, gateway_id: bytes) -> list[RawItem]:
    """The top-level items of *packet*, header items first.

    Named items follow ``item_order`` (the wire order of a decoded packet) where
    it is known, then the command's sample order; unknown items keep their
    place in ``item_order`` or else come last.
    """
    tags: tuple[int, ...] = ()
    if isinstance(packet, UnknownBkvPacket):
        bkv_cmd = packet.bkv_cmd
    else:
        bkv_cmd, tags = _PACKET_KEYS[type(packet)][0], _PACKET_TAGS[type(packet)]
    gateway = (bytes.fromhex(packet.bkv_gateway_id) if packet.bkv_gateway_id is not None
               else gateway_id)
    items: list[RawItem] = [
        (TAG_CMD, _uint("bkv_cmd", bkv_cmd, 2)),
        (TAG_SEQ, _uint("bkv_seq", packet.bkv_seq, 8)),
        (TAG_GATEWAY, gateway),
    ]
    named = _named_items(packet, tags)
    unknown: list[RawItem | None] = [(item.key, item.value) for item in packet.unknown]
    for tag in packet.item_order:
        upcoming = next((item for item in unknown if item is not None), None)
        pending = named.get(tag) if isinstance(tag, int) else None
        if pending and not _goes_first(tag, upcoming):
            items.append(pending.pop(0))
            continue
        for i, item in enumerate(unknown):
            if item is not None and item[0] == tag:
                items.append(item)
                unknown[i] = None
                break
    for tag in tags:
        items.extend(named.get(tag, ()))
    items.extend(item for item in unknown if item is not None)
    return items


def items_to_bytes(items: list[RawItem]) -> bytes:
    """Serialise *items*; the same bytes as :func:`grammar_items_to_bytes`.

    Raises:
        LocalProtocolError: A key or value does not fit the item grammar.
    """
    out = bytearray()
    for key, value in items:
        if type(key) is int and 0 <= key <= 0xFF and len(value) < 0x7E:
            # The usual item: one-byte LEN, one-byte numeric key.
            out += bytes((len(value) + 2, 1, key))
            out += value
            continue
        ks, raw_key = _key(key)
        length = 1 + len(raw_key) + len(value)
        if length < 0x80:
            out.append(length)
        else:
            if length >= 1 << 28:
                raise LocalProtocolError(f"BKV item of {length} bytes exceeds the 4-byte LEN")
            groups = [length & 0x7F]
            while length := length >> 7:
                groups.append(0x80 | (length & 0x7F))
            out += bytes(reversed(groups))
        out.append(ks)
        out += raw_key
        out += value
    return bytes(out)


def grammar_items_to_bytes(items: list[RawItem]) -> bytes:
    """Serialise *items* with the construct item grammar (the reference encoder)."""
    return bytes(BKV_ITEMS.build({"items": [
        {"ks": ks, "key": raw_key, "value": value}
        for (ks, raw_key), (_, value) in ((_key(key), (key, value)) for key, value in items)]}))


def _key(key: int | str) -> tuple[int, bytes]:
    """The KS byte and the key bytes of *key*."""
    if isinstance(key, str):
        raw_key = key.encode("latin-1")
        if len(raw_key) > 0x7F:
            raise LocalProtocolError(f"BKV text key too long: {key!r}")
        return 0x80 | len(raw_key), raw_key
    if key < 0:
        raise LocalProtocolError(f"BKV key must not be negative, got {key}")
    raw_key = key.to_bytes(max(1, (key.bit_length() + 7) // 8), "big")
    if len(raw_key) > 0x7F:
        raise LocalProtocolError(f"BKV key too large: {key}")
    return len(raw_key), raw_key


# --- encoding without the item list ---------------------------------------------------------
#
# packet_to_items then items_to_bytes build a list of (tag, bytes) pairs and walk it
# again; for a packet whose values are of the usual types the same bytes can be written
# in one pass. Anything else (a value of another type, an item that needs the long LEN
# or a string key) gives None and the caller takes the general path, which gives the
# bytes or the error. The property tests compare both with the grammar.

_LIST_TAGS = (TAG_SOCKET_CLUSTER, TAG_PORT_GROUP, TAG_FEE_TIERS)
#: By packet class: the bkv_cmd item, then (tag, field name, is uint, is BCD, size) of
#: its named items (list-valued tags have their own branch).
_FAST_SPECS: dict[type[Any], tuple[bytes, tuple[tuple[int, str, bool, bool, int], ...]]] = {
    cls: (bytes((4, 1, TAG_CMD)) + key[0].to_bytes(2, "big"),
          tuple((tag, *((_TAGS[tag][0], _TAGS[tag][1] is _Kind.UINT,
                         _TAGS[tag][1] is _Kind.BCD, _TAGS[tag][2])
                        if tag not in _LIST_TAGS else ("", False, False, 0)))
                for tag in _PACKET_TAGS[cls]))
    for cls, key in _PACKET_KEYS.items()}


def _framed(tag: int, value: bytes) -> bytes:
    if len(value) < 0x7E:
        return bytes((len(value) + 2, 1, tag)) + value
    return items_to_bytes([(tag, value)])


def fast_packet_bytes(packet: Any, gateway_id: bytes) -> bytes | None:
    """``items_to_bytes(packet_to_items(packet, gateway_id))`` for a usual packet, or
    None (then use those)."""
    spec = _FAST_SPECS.get(type(packet))
    if spec is None:
        return None
    cmd_item, fields = spec
    # Unknown items as (key, item bytes); a key or value items_to_bytes would write in
    # its long form goes to the general path.
    unknown: list[tuple[int, bytes] | None] = []
    for item in packet.unknown:
        key, value = item.key, item.value
        if type(key) is not int or not 0 <= key <= 0xFF or type(value) is not bytes or len(
                value) >= 0x7E:
            return None
        unknown.append((key, bytes((len(value) + 2, 1, key)) + value))
    seq = packet.bkv_seq
    if type(seq) is not int or seq < 0:
        return None
    raw_seq = seq.to_bytes(max(8, (seq.bit_length() + 7) // 8), "big")
    gateway = (bytes.fromhex(packet.bkv_gateway_id) if packet.bkv_gateway_id is not None
               else gateway_id)
    if len(raw_seq) >= 0x7E or len(gateway) >= 0x7E:
        return None
    out = [cmd_item, bytes((len(raw_seq) + 2, 1, TAG_SEQ)), raw_seq,
           bytes((len(gateway) + 2, 1, TAG_GATEWAY)), gateway]
    named: dict[int, list[bytes]] = {}
    for tag, name, uint, bcd, size in fields:
        if tag == TAG_PORT_GROUP:
            named[tag] = [_framed(tag, _port_group_bytes(p)) for p in packet.ports]
            continue
        if tag == TAG_SOCKET_CLUSTER:
            named[tag] = [_framed(tag, items_to_bytes(_cluster_items(s)))
                          for s in packet.sockets]
            continue
        if tag == TAG_FEE_TIERS:
            tiers = packet.fee_tiers
            if tiers:
                named[tag] = [_framed(tag, b"".join([_fee_tier(t) for t in tiers]))]
            continue
        value = getattr(packet, name)
        if value is None:
            continue
        if uint:
            if type(value) is not int or value < 0:
                return None
            raw = value.to_bytes(max(size, (value.bit_length() + 7) // 8), "big")
        elif bcd:
            if type(value) is not BcdTime:
                return None
            raw = value.raw
        else:
            raw = value
        if type(raw) is not bytes or len(raw) >= 0x7E:
            return None
        named[tag] = [bytes((len(raw) + 2, 1, tag)) + raw]
    # packet_to_items's order: item_order first, then the rest in the command's order,
    # then the unknown items not placed.
    for tag in packet.item_order:
        upcoming = next((entry for entry in unknown if entry is not None), None)
        pending = named.get(tag) if isinstance(tag, int) else None
        if pending and not _goes_first(tag, None if upcoming is None
                                       else (upcoming[0], upcoming[1][3:])):
            out.append(pending.pop(0))
            continue
        for i, entry in enumerate(unknown):
            if entry is not None and entry[0] == tag:
                out.append(entry[1])
                unknown[i] = None
                break
    for tag in _PACKET_TAGS[type(packet)]:
        out.extend(named.get(tag, ()))
    out.extend([entry[1] for entry in unknown if entry is not None])
    return b"".join(out)
