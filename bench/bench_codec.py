"""Codec speed against hand-written ``struct`` code: decode and encode per message kind.

For every message kind of the golden vectors it times ``BkvFrame.decode`` /
``Ap3000Frame.decode`` and ``frame.encode()`` against a careful hand-written ``struct``
decoder and encoder of the same frames (the ``baseline``), which check the same envelope
rules and work on plain tuples and dicts instead of typed messages. The baseline encoder
is checked to give the same bytes as the codec for every vector before anything is timed.

The two sides are timed interleaved (codec, baseline, codec, baseline, ... per kind), with
the garbage collector off, and each figure is the median of the rounds, so that the ratio
holds on a noisy machine. ``ratio`` is codec time / baseline time (lower is better);
targets: geometric mean over the kinds ≤ 1.0 and no kind above 1.3, for decode and for
encode. Last comes the stream decoder fed 4 KiB reads of a mixed capture (MB/s).

Run: ``python bench/bench_codec.py [--seconds 0.2] [--rounds 9] [--json FILE]``. Numbers
depend on the machine; compare runs on the same one.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import struct
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bkvcodec import Direction, FrameDecoder, message_name
from bkvcodec.ap3000 import Ap3000Frame
from bkvcodec.bkv import BkvFrame

VECTOR_DIR = Path(__file__).resolve().parent.parent / "tests" / "vectors"
GEOMEAN_TARGET = 1.0
WORST_TARGET = 1.3

# --- the baseline: what a careful programmer would write by hand -----------------------
_HEAD = struct.Struct(">2sHHIB7s")
_HEARTBEAT = struct.Struct(">20s8sB")
_M17 = struct.Struct(">B2sBBBBHHHHH")
_PORT = struct.Struct(">BBHHHHHH")
_TIER = struct.Struct(">HHH")
_SOCKET_HEAD = struct.Struct(">B2sBB")
# (sub-command, uplink) -> layout of the fixed part.
_GN_FLAT = {
    (0x07, False): struct.Struct(">BBBBHH"), (0x07, True): struct.Struct(">BBBH"),
    (0x02, True): _M17, (0x0F, True): struct.Struct(">BBB"),
    (0x0C, False): struct.Struct(">BB"), (0x0C, True): struct.Struct(">B2sBBBBHHHHH6sBBHHB"),
    (0x1A, True): struct.Struct(">BB6s"), (0x1A, False): struct.Struct(">BB6sI"),
    (0x09, False): struct.Struct(">B6s"), (0x09, True): struct.Struct(">B"),
    (0x08, True): struct.Struct(">B"), (0x08, False): struct.Struct(">B"),
    (0x1D, False): struct.Struct(">B"),
    (0x0B, True): struct.Struct(">BBHB6s20s"), (0x0B, False): struct.Struct(">BBHBBHH"),
    (0x17, False): struct.Struct(">BBBHB"),
}
_GN_EXTENDED = {0x17, 0x08, 0x0C}


def _items(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos, end = 0, len(data)
    while pos < end:
        length = data[pos]
        if length & 0x80:
            length = ((length & 0x7F) << 7) | data[pos + 1]
            pos += 1
        if pos + 1 + length > end:
            raise ValueError("item overrun")
        out.append((data[pos + 2], data[pos + 3:pos + 1 + length]))
        pos += 1 + length
    return out


def baseline_decode(data: bytes) -> tuple[Any, ...]:
    header, length, command, seq, flag, gateway = _HEAD.unpack_from(data)
    total = length + 4
    if header not in (b"\xfc\xfe", b"\xfc\xff") or len(data) != total:
        raise ValueError("bad frame")
    if data[total - 2:] != b"\xfc\xee" or sum(data[2:total - 3]) & 0xFF != data[total - 3]:
        raise ValueError("bad frame")
    payload = data[18:total - 3]
    body: Any
    if command == 0 and header == b"\xfc\xfe":
        iccid, firmware, rssi = _HEARTBEAT.unpack(payload)
        body = (iccid.decode(), firmware.rstrip(b"\0").decode(), rssi)
    elif command == 0:
        body = payload.hex()
    elif command in (0x05, 0x15):
        inner, sub = struct.unpack_from(">HB", payload)
        params = payload[3:]
        if sub == 0x1C:
            body = (sub, params[0], params[1:3], params[3], params[4],
                    list(_PORT.iter_unpack(params[5:])))
        elif (sub, header == b"\xfc\xfe") in _GN_FLAT:
            layout = _GN_FLAT[sub, header == b"\xfc\xfe"]
            body = (sub, *layout.unpack_from(params))
            if sub == 0x17:
                body = (*body, list(_TIER.iter_unpack(params[6:6 + 6 * params[5]])))
            if sub == 0x08 and header == b"\xfc\xff":
                body = (sub, params[0], [(params[i], params[i + 1:i + 7].hex())
                                         for i in range(1, len(params), 7)])
        else:
            body = (sub, params)
    else:
        body = {}
        for tag, value in _items(payload):
            if tag == 0x94:
                cluster: dict[int, Any] = {}
                for inner_tag, inner in _items(value):
                    if inner_tag == 0x5B:
                        cluster.setdefault(0x5B, []).append(
                            {t: int.from_bytes(v, "big") for t, v in _items(inner)})
                    else:
                        cluster[inner_tag] = int.from_bytes(inner, "big")
                body.setdefault(0x94, []).append(cluster)
            else:
                body[tag] = int.from_bytes(value, "big") if len(value) <= 8 else value
    return header, command, seq, flag, gateway.hex(), body


# Item value sizes the encoder writes (the tag table of the protocol); others: minimal.
_ITEM_SIZES = {
    0x01: 2, 0x02: 8, 0x03: 7, 0x06: 7, 0x2E: 7, 0x3E: 2, 0x83: 6, 0x84: 6,
    **dict.fromkeys((0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x10, 0x11, 0x14, 0x21, 0x22, 0x23, 0x24,
                     0x4E, 0x4F, 0x50, 0x51, 0x59, 0x85, 0x86, 0x88, 0x93, 0x95), 2),
    0x68: 4,
}


def _item(tag: int, value: bytes) -> bytes:
    length = 2 + len(value)
    if length < 0x80:
        return bytes((length, 1, tag)) + value
    return bytes((0x80 | (length >> 7), length & 0x7F, 1, tag)) + value


def _uint_item(tag: int, value: int) -> bytes:
    size = max(_ITEM_SIZES.get(tag, 1), (value.bit_length() + 7) // 8)
    return bytes((2 + size, 1, tag)) + value.to_bytes(size, "big")


def _encode_items(items: dict[int, Any]) -> bytes:
    out = []
    for tag, value in items.items():
        if tag == 0x94 or tag == 0x5B:
            out.extend(_item(tag, _encode_items(v)) for v in value)
        elif isinstance(value, int):
            out.append(_uint_item(tag, value))
        else:
            out.append(_item(tag, value))
    return b"".join(out)


def _gn_params(up: bool, body: tuple[Any, ...]) -> bytes:
    sub = body[0]
    if sub == 0x1C:
        return _SOCKET_HEAD.pack(*body[1:5]) + b"".join(_PORT.pack(*p) for p in body[5])
    layout = _GN_FLAT.get((sub, up))
    if layout is None:
        params: bytes = body[1]
        return params
    if sub == 0x17:
        return layout.pack(*body[1:6]) + b"".join(_TIER.pack(*t) for t in body[6])
    if sub == 0x08 and not up:
        return bytes((body[1],)) + b"".join(
            bytes((no,)) + bytes.fromhex(mac) for no, mac in body[2])
    return layout.pack(*body[1:])


def baseline_encode(decoded: tuple[Any, ...]) -> bytes:
    """The frame of a :func:`baseline_decode` result, written with ``struct``."""
    header, command, seq, flag, gateway, body = decoded
    up = header == b"\xfc\xfe"
    if command == 0 and up:
        iccid, firmware, rssi = body
        payload = _HEARTBEAT.pack(iccid.encode(), firmware.encode(), rssi)
    elif command == 0:
        payload = bytes.fromhex(body)
    elif command in (0x05, 0x15):
        params = _gn_params(up, body)
        payload = struct.pack(">HB", len(params), body[0]) + params
    else:
        payload = _encode_items(body)
    frame = _HEAD.pack(header, len(payload) + 17, command, seq, flag, bytes.fromhex(gateway))
    frame += payload
    return frame + bytes((sum(frame[2:]) & 0xFF,)) + b"\xfc\xee"


# AP3000: little-endian header, 16-bit sum checksum, then the data. Every layout is
# read into a tuple of its fields (text stays NUL-padded bytes), then the bytes after
# them. A layout's optional fields (newer firmware appends them) are read as far as
# the data goes: one struct per number of optional fields present, longest first.
_DNY_HEAD = struct.Struct("<3sHIHB")
# command -> "mandatory optional1 optional2 ...", struct codes after "<".
_DNY_UP_FORMATS = {
    0x00: "B", 0x03: "HHHBB4sB16s H I H", 0x04: "BB4sH16s", 0x05: " B H I",
    0x06: "BBHHBHHHH16s H H H H B B I H", 0x11: "HBIBB20sBH 15s 24s", 0x12: "",
    0x17: "BBHHIHIBBB B B B B", 0x20: "HBBBB H", 0x22: "", 0x34: "B", 0x41: "BII",
    0x42: "BBB", 0x43: "HHHBB4sB16s", 0x44: "BB16s", 0x72: "B16s", 0x82: "B 16s B H",
    0x83: "B", 0x84: "B", 0x85: "B", 0x86: "B", 0x87: "B", 0x88: "B", 0x89: "B",
    0x8A: "B", 0x8B: "B", 0x8C: "B", 0x8D: "B", 0x8E: "B", 0x8F: "B",
    0x90: "HHBHHH", 0x91: "HHHBHHHHHHBBBB", 0x92: "HH H H", 0x93: "B6s6s", 0x95: "B",
    0x96: "B", 0x97: "B", 0x98: "B", 0xE0: "BH", 0xE1: "BH", 0xE2: "BH", 0xF8: "BH",
}
_DNY_DOWN_FORMATS = {
    0x01: "B", 0x02: "4sBBIB", 0x03: "B", 0x04: "BB", 0x12: "I", 0x20: "B", 0x21: "B",
    0x22: "I", 0x34: "HBB46s", 0x72: "B16s", 0x81: "", 0x82: "BIBBH16s H H B B H B B B B B",
    0x83: "HHBHHH", 0x84: "HHHBHHHHHHBBBB", 0x85: "HH H H", 0x86: "B6s6s", 0x87: "",
    0x88: "", 0x8A: "BBH", 0x8B: "HB", 0x8C: "HB", 0x8D: "B", 0x8E: "B3s72s", 0x8F: "B",
    0x90: "", 0x91: "", 0x92: "", 0x93: "", 0x95: "200s", 0x96: "B", 0x97: "B",
    0x98: "BB", 0xE0: "HH200s", 0xE1: "HH200s", 0xE2: "HH200s", 0xE4: "", 0xF8: "HH256s",
}


def _dny_layouts(formats: dict[int, str]) -> dict[int, tuple[struct.Struct, ...]]:
    """command -> the structs for all, ..., none of the optional fields, longest first."""
    out = {}
    for command, text in formats.items():
        mandatory, *optional = text.split(" ")
        out[command] = tuple(struct.Struct("<" + mandatory + "".join(optional[:k]))
                             for k in range(len(optional), -1, -1))
    return out


_DNY_UP = _dny_layouts(_DNY_UP_FORMATS)
_DNY_DOWN = _dny_layouts(_DNY_DOWN_FORMATS)
# (command, up) -> {number of fields: struct}, for the encoder.
_DNY_PACKERS = {(command, up): {len(s.unpack(bytes(s.size))): s for s in layouts}
                for up, table in ((True, _DNY_UP), (False, _DNY_DOWN))
                for command, layouts in table.items()}
_DNY_CARD_SWIPE = struct.Struct("<4sBBH")
_DNY_SLAVE = struct.Struct("<BBHI")


def baseline_decode_ap3000(data: bytes, up: bool = True) -> tuple[Any, ...]:
    header, length, physical_id, message_id, command = _DNY_HEAD.unpack_from(data)
    if header != b"DNY" or len(data) != length + 5:
        raise ValueError("bad frame")
    if sum(data[:-2]) & 0xFFFF != data[-2] | data[-1] << 8:
        raise ValueError("bad frame")
    payload = data[12:-2]
    n = len(payload)
    body: Any = payload
    layouts = (_DNY_UP if up else _DNY_DOWN).get(command)
    if layouts is not None:
        for layout in layouts:
            if n >= layout.size:
                body = (layout.unpack_from(payload), payload[layout.size:])
                break
    elif up and command == 0x21:  # heartbeat: voltage, n, n statuses, signal, temperature
        count = payload[2]
        body = (payload[0] | payload[1] << 8, list(payload[3:3 + count]),
                payload[3 + count], payload[4 + count], payload[5 + count:])
    elif up and command == 0x02:  # card swipe: then timestamp, length, second card number
        values = _DNY_CARD_SWIPE.unpack_from(payload)
        end = 8
        if n >= 12:
            values += (int.from_bytes(payload[8:12], "little"),)
            end = 12
            if n >= 13:
                values += (payload[12],)
                end = 13
                if n >= 13 + payload[12]:
                    end = 13 + payload[12]
                    values += (payload[13:end],)
        body = (values, payload[end:])
    elif up and command == 0x35:  # slave versions: count, 8-byte entries
        end = 1 + 8 * payload[0]
        body = (list(_DNY_SLAVE.iter_unpack(payload[1:end])), payload[end:])
    elif not up and command == 0x89:  # play voice: interrupt, count, prompt ids
        end = 2 + payload[1]
        body = (payload[0], payload[2:end], payload[end:])
    return f"{physical_id:08X}", message_id, command, body


_DNY_HEARTBEAT_HEAD = struct.Struct("<HB")


def baseline_encode_ap3000(decoded: tuple[Any, ...], up: bool = True) -> bytes:
    """The frame of a :func:`baseline_decode_ap3000` result, written with ``struct``."""
    physical_id, message_id, command, body = decoded
    if isinstance(body, bytes):
        payload = body
    elif up and command == 0x21:
        voltage, statuses, signal, temperature, rest = body
        payload = (_DNY_HEARTBEAT_HEAD.pack(voltage, len(statuses)) + bytes(statuses)
                   + bytes((signal, temperature)) + rest)
    elif up and command == 0x02:
        values, rest = body
        payload = _DNY_CARD_SWIPE.pack(*values[:4])
        if len(values) > 4:
            payload += values[4].to_bytes(4, "little")
        if len(values) > 5:
            payload += bytes((values[5],))
        if len(values) > 6:
            payload += values[6]
        payload += rest
    elif up and command == 0x35:
        entries, rest = body
        payload = bytes((len(entries),)) + b"".join(
            _DNY_SLAVE.pack(*entry) for entry in entries) + rest
    elif not up and command == 0x89:
        interrupt, ids, rest = body
        payload = bytes((interrupt, len(ids))) + ids + rest
    else:
        values, rest = body
        payload = _DNY_PACKERS[command, up][len(values)].pack(*values) + rest
    frame = _DNY_HEAD.pack(b"DNY", len(payload) + 9, int(physical_id, 16), message_id,
                           command) + payload
    return frame + (sum(frame) & 0xFFFF).to_bytes(2, "little")


# --- measurement ------------------------------------------------------------------------------

def _per_call(fn: Callable[[Any], object], args: list[Any], loops: int) -> float:
    """Seconds per call of *fn* over *args*, *loops* passes."""
    start = time.perf_counter()
    for _ in range(loops):
        for arg in args:
            fn(arg)
    return (time.perf_counter() - start) / (loops * len(args))


def compare(ours: Callable[[Any], object], ours_args: list[Any],
            base: Callable[[Any], object], base_args: list[Any],
            seconds: float, rounds: int) -> tuple[float, float]:
    """Median seconds per call of *ours* and *base*, timed interleaved, GC off.

    Each of the *rounds* times one side for about ``seconds / rounds``, then the other.
    """
    per_round = seconds / rounds
    _per_call(ours, ours_args, 1)  # warm up, then calibrate
    one_pass = _per_call(ours, ours_args, 5) * len(ours_args)
    loops = max(1, int(per_round / max(one_pass, 1e-9)))
    ours_times, base_times = [], []
    gc.collect()
    gc.disable()
    try:
        _per_call(base, base_args, 1)
        for _ in range(rounds):
            ours_times.append(_per_call(ours, ours_args, loops))
            base_times.append(_per_call(base, base_args, loops))
    finally:
        gc.enable()
    return statistics.median(ours_times), statistics.median(base_times)


class Row:
    def __init__(self, name: str, frames: list[bytes], decode: Callable[[bytes], Any],
                 baseline_decode: Callable[[bytes], Any],
                 baseline_encode: Callable[[Any], bytes]) -> None:
        self.name = name
        self.frames = frames
        self.decode = decode
        self.baseline_decode = baseline_decode
        self.baseline_encode = baseline_encode


def _rows() -> list[Row]:
    vectors = json.loads((VECTOR_DIR / "bkv.json").read_text())["vectors"]
    ap3000 = json.loads((VECTOR_DIR / "ap3000.json").read_text())["vectors"]
    rows: list[Row] = []
    bkv_kinds: dict[str, list[bytes]] = defaultdict(list)
    for case in vectors:
        data = bytes.fromhex(case["hex"])
        bkv_kinds[message_name(BkvFrame.decode(data).message)].append(data)
    for name, frames in sorted(bkv_kinds.items()):
        rows.append(Row(f"bkv {name}", frames, BkvFrame.decode, baseline_decode,
                        baseline_encode))
    for direction in Direction:
        kinds: dict[str, list[bytes]] = defaultdict(list)
        for case in ap3000:
            if case["direction"] != direction.value:
                continue
            data = bytes.fromhex(case["hex"])
            kinds[message_name(Ap3000Frame.decode(data, direction).message)].append(data)
        up = direction is Direction.UP
        for name, frames in sorted(kinds.items()):
            def decode(data: bytes, direction: Direction = direction) -> object:
                return Ap3000Frame.decode(data, direction)

            def base_decode(data: bytes, up: bool = up) -> object:
                return baseline_decode_ap3000(data, up)

            def base_encode(decoded: tuple[Any, ...], up: bool = up) -> bytes:
                return baseline_encode_ap3000(decoded, up)
            rows.append(Row(f"ap3000 {name}", frames, decode, base_decode, base_encode))
    return rows


def _verdict(geomean: float, worst: float) -> str:
    ok = geomean <= GEOMEAN_TARGET and worst <= WORST_TARGET
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="time per kind, side and operation, split over the rounds")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    rows = _rows()
    # The comparison is honest only if both encoders write the same frames.
    for row in rows:
        for data in row.frames:
            ours = row.decode(data).encode()
            base = row.baseline_encode(row.baseline_decode(data))
            if ours != base:
                sys.exit(f"{row.name}: the baseline encoder writes {base.hex()}, the codec "
                         f"{ours.hex()}")

    print(f"bkvcodec codec benchmark — Python {platform.python_version()} on "
          f"{platform.machine()}, {platform.processor() or platform.system()}; median of "
          f"{args.rounds} interleaved rounds, GC off")
    print(f"{'message':34} {'bytes':>5} │ {'decode µs':>9} {'baseline':>8} {'ratio':>6} │"
          f" {'encode µs':>9} {'baseline':>8} {'ratio':>6}")
    results: list[dict[str, Any]] = []
    for row in rows:
        decoded = [row.decode(f) for f in row.frames]
        plain = [row.baseline_decode(f) for f in row.frames]
        dec, dec_base = compare(row.decode, row.frames, row.baseline_decode, row.frames,
                                args.seconds, args.rounds)
        enc, enc_base = compare(type(decoded[0]).encode, decoded, row.baseline_encode, plain,
                                args.seconds, args.rounds)
        size = sum(map(len, row.frames)) // len(row.frames)
        results.append({
            "kind": row.name, "bytes": size,
            "decode_us": dec * 1e6, "decode_baseline_us": dec_base * 1e6,
            "decode_ratio": dec / dec_base,
            "encode_us": enc * 1e6, "encode_baseline_us": enc_base * 1e6,
            "encode_ratio": enc / enc_base,
        })
        print(f"{row.name:34} {size:5d} │ {dec * 1e6:9.2f} {dec_base * 1e6:8.2f} "
              f"{dec / dec_base:6.2f} │ {enc * 1e6:9.2f} {enc_base * 1e6:8.2f} "
              f"{enc / enc_base:6.2f}")

    vectors = json.loads((VECTOR_DIR / "bkv.json").read_text())["vectors"]
    ap3000 = json.loads((VECTOR_DIR / "ap3000.json").read_text())["vectors"]
    up_ap3000 = [c for c in ap3000 if c["direction"] == "up"]
    streams: dict[str, float] = {}
    for label, cases in (("BKV", vectors), ("AP3000 uplink", up_ap3000)):
        capture = b"".join(bytes.fromhex(c["hex"]) for c in cases) * 200
        chunks = [capture[i:i + 4096] for i in range(0, len(capture), 4096)]

        def stream(_: object, chunks: list[bytes] = chunks) -> None:
            decoder = FrameDecoder()
            for chunk in chunks:
                decoder.feed(chunk)

        per_run, _unused = compare(stream, [None], stream, [None], args.seconds * 2,
                                   args.rounds)
        streams[label] = len(capture) / per_run / 1e6
        print(f"stream decoder, {label}: {streams[label]:.2f} MB/s "
              f"({len(cases) * 200 / per_run:,.0f} frames/s, 4 KiB reads)")

    summary: dict[str, Any] = {}
    for op in ("decode", "encode"):
        ratios = [r[f"{op}_ratio"] for r in results]
        geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        worst = max(results, key=lambda r: r[f"{op}_ratio"])
        verdict = _verdict(geomean, worst[f"{op}_ratio"])
        summary[op] = {"geomean": geomean, "worst_kind": worst["kind"],
                       "worst_ratio": worst[f"{op}_ratio"], "verdict": verdict}
        print(f"{op}: geometric mean {geomean:.2f}× (target ≤ {GEOMEAN_TARGET}), worst "
              f"{worst[f'{op}_ratio']:.2f}× {worst['kind']} (target ≤ {WORST_TARGET}): "
              f"{verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "python": platform.python_version(), "rounds": args.rounds,
            "seconds": args.seconds, "kinds": results, "summary": summary,
            "stream_mb_s": streams}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
