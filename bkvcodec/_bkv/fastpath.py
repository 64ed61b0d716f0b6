# Hand-tuned decoding of BKV-family payloads: the GN sub-command layouts and the
# BKV item walk. This is the same byte layout as ``grammar.py``, read with
# ``struct`` instead of construct because the interpreted grammar is 10-60 times
# slower (bench/bench_codec.py). ``tests/test_bkv_fastpath.py`` checks on
# generated, real and malformed payloads that both readings agree.
#
# Rules shared with the grammar: bytes after the documented fields go to
# ``extra``; repeated records (ports, sockets) are read while whole records
# remain; a count byte (tiers, windows) that promises more records than the
# bytes hold is a PayloadInconsistent error, except for the optional power part
# of a card order, which is then absent.
from __future__ import annotations

from collections.abc import Callable
from struct import Struct

from .._errors import BkvItemInvalid, BkvItemOverrun, PayloadInconsistent, PayloadTooShort
from .._fastinit import positional_builder
from .._types import BinaryTime, Direction
from .messages import (
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
    NetworkAdd,
    NetworkAddAck,
    NetworkRefresh,
    NetworkRefreshAck,
    NetworkSocket,
    PortReport,
    PowerChargeEnd,
    PowerControl,
    PowerTier,
    SocketStatus,
    StatusQuery,
    VoiceConfig,
    VoiceConfigAck,
    VoiceWindow,
)
from .packets import RawItem

__all__ = ["GN_DECODERS", "GnMessage", "split_items"]

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
    return tuple(_power_tier_new(*tier) for tier in _TIER.iter_unpack(params[at:at + 6 * count]))


def _durations(params: bytes, at: int, count: int) -> tuple[int, ...]:
    return Struct(f">{count}H").unpack_from(params, at) if count else ()


def _fixed(cls: type[GnMessage], name: str, layout: str) -> Callable[[bytes, int], GnMessage]:
    """The decoder of a message whose fields are one struct layout, then ``extra``."""
    fixed = Struct(">" + layout)
    size, unpack, build = fixed.size, fixed.unpack_from, positional_builder(cls)

    def decode(p: bytes, container: int) -> GnMessage:
        if len(p) < size:
            raise PayloadTooShort(name, size, len(p))
        return build(*unpack(p), p[size:], container)
    return decode


def _network_refresh(p: bytes, container: int) -> NetworkRefresh:
    _need("network_refresh", p, 1)
    whole = 1 + (len(p) - 1) // 7 * 7
    sockets = tuple(NetworkSocket(socket_no=p[i], mac=p[i + 1:i + 7]) for i in range(1, whole, 7))
    return NetworkRefresh(channel=p[0], sockets=sockets, extra=p[whole:], container=container)


_port_report_new = positional_builder(PortReport)


def _socket_status(sub_command: int) -> Callable[[bytes, int], SocketStatus]:
    def decode(p: bytes, container: int) -> SocketStatus:
        _need("socket_status", p, 5)
        whole = 5 + (len(p) - 5) // 14 * 14
        ports = tuple(_port_report_new(*v) for v in _PORT.iter_unpack(p[5:whole]))
        return SocketStatus(socket_no=p[0], socket_version=p[1:3], temperature_c=p[3],
                            rssi=p[4], ports=ports, sub_command=sub_command,
                            extra=p[whole:], container=container)
    return decode


def _power_control(p: bytes, container: int) -> PowerControl:
    _need("power_control", p, 6)
    count = _count("power_control", p, 5, 6)
    end = 6 + 6 * count
    return PowerControl(socket_no=p[0], port=p[1], switch=p[2], amount_fen=(p[3] << 8) | p[4],
                        tiers=_tiers(p, 6, count), extra=p[end:], container=container)


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
    return CardOrder(socket_no=p[0], port=p[1], business_no=(p[2] << 8) | p[3], switch=p[4],
                     mode=p[5], duration_min=(p[6] << 8) | p[7], energy_wh=(p[8] << 8) | p[9],
                     amount_fen=amount, tiers=tiers, extra=p[end:], container=container)


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


#: Fast decoders by (sub-command, direction); the same keys as grammar.GN_LAYOUTS.
GN_DECODERS: dict[tuple[int, Direction], Callable[[bytes, int], GnMessage]] = {
    (0x08, Direction.DOWN): _network_refresh,
    (0x08, Direction.UP): _fixed(NetworkRefreshAck, "network_refresh_ack", "B"),
    (0x09, Direction.DOWN): _fixed(NetworkAdd, "network_add", "B6s"),
    (0x09, Direction.UP): _fixed(NetworkAddAck, "network_add_ack", "B"),
    (0x1D, Direction.DOWN): _fixed(StatusQuery, "status_query", "B"),
    (0x1C, Direction.UP): _socket_status(0x1C),
    (0x1D, Direction.UP): _socket_status(0x1D),
    (0x07, Direction.DOWN): _fixed(ChargeControl, "charge_control", "BBBBHH"),
    (0x07, Direction.UP): _fixed(ChargeControlAck, "charge_control_ack", "BBBH"),
    (0x02, Direction.UP): _fixed(ChargeEnd, "charge_end", _M17_LAYOUT),
    (0x17, Direction.DOWN): _power_control,
    (0x18, Direction.UP): _power_charge_end,
    (0x0B, Direction.UP): _fixed(CardSwipe, "card_swipe", "BBHB6s20s"),
    (0x0B, Direction.DOWN): _card_order,
    (0x0F, Direction.UP): _fixed(CardOrderAck, "card_order_ack", "BBB"),
    (0x0C, Direction.UP): _card_charge_end,
    (0x0C, Direction.DOWN): _fixed(ChargeEndAck, "charge_end_ack", "BB"),
    (0x1A, Direction.UP): _fixed(CardBalanceQuery, "card_balance_query", "BB6s"),
    (0x1A, Direction.DOWN): _fixed(CardBalanceReply, "card_balance_reply", "BB6sI"),
    (0x1B, Direction.DOWN): _voice_config,
    (0x1B, Direction.UP): _fixed(VoiceConfigAck, "voice_config_ack", "BBB"),
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
