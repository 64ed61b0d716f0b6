"""Codec throughput: decode and encode per message kind, and stream decoding.

Prints one table. For every message kind of the golden vectors it measures
``BkvFrame.decode`` (frames/s), ``frame.encode()`` (frames/s), and a careful
hand-written ``struct`` decoder of the same frames (``baseline``), which checks the
same envelope rules and produces plain tuples and dicts instead of typed messages.
``ratio`` is baseline speed / bkvcodec speed: the target is ≤ 2.0. Last comes the
stream decoder fed 4 KiB reads of a mixed capture (MB/s).

Run: ``python bench/bench_codec.py [--seconds 0.2]``. Numbers depend on the
machine; compare runs on the same one.
"""
from __future__ import annotations

import argparse
import json
import platform
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

# --- the baseline: what a careful programmer would write by hand -----------------------
_HEAD = struct.Struct(">2sHHIB7s")
_HEARTBEAT = struct.Struct(">20s8sB")
_M17 = struct.Struct(">B2sBBBBHHHHH")
_PORT = struct.Struct(">BBHHHHHH")
_TIER = struct.Struct(">HHH")
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
            body = (params[0], params[1:3], params[3], params[4],
                    list(_PORT.iter_unpack(params[5:])))
        elif (sub, header == b"\xfc\xfe") in _GN_FLAT:
            layout = _GN_FLAT[sub, header == b"\xfc\xfe"]
            body = layout.unpack_from(params)
            if sub == 0x17:
                body = (*body, list(_TIER.iter_unpack(params[6:6 + 6 * params[5]])))
            if sub == 0x08 and header == b"\xfc\xff":
                body = (params[0], [(params[i], params[i + 1:i + 7].hex())
                                    for i in range(1, len(params), 7)])
        else:
            body = params
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


# AP3000 (ap3000.md §2.2): little-endian header, 16-bit sum checksum, then the data.
_DNY_HEAD = struct.Struct("<3sHIHB")
_DNY_LAYOUTS = {
    0x21: None,  # heartbeat: voltage, n, n statuses, signal, temperature
    0x06: struct.Struct("<BBHHBHHHH16s"),
    0x03: struct.Struct("<HHHBB4sB16s"),
    0x20: struct.Struct("<HBBBB"),
    0x82: struct.Struct("<B"),
}
_DNY_CONTROL = struct.Struct("<BIBBH16s")


def baseline_decode_ap3000(data: bytes, up: bool = True) -> tuple[Any, ...]:
    header, length, physical_id, message_id, command = _DNY_HEAD.unpack_from(data)
    if header != b"DNY" or len(data) != length + 5:
        raise ValueError("bad frame")
    if sum(data[:-2]) & 0xFFFF != data[-2] | data[-1] << 8:
        raise ValueError("bad frame")
    payload = data[12:-2]
    body: Any
    if not up:
        body = (_DNY_CONTROL.unpack_from(payload) if command == 0x82 and len(payload) >= 25
                else payload)
    elif command == 0x21:
        count = payload[2]
        body = (payload[0] | payload[1] << 8, list(payload[3:3 + count]),
                payload[3 + count], payload[4 + count])
    elif command in _DNY_LAYOUTS and len(payload) >= _DNY_LAYOUTS[command].size:  # type: ignore[union-attr]
        body = _DNY_LAYOUTS[command].unpack_from(payload)  # type: ignore[union-attr]
    else:
        body = payload
    return f"{physical_id:08X}", message_id, command, body


# --- measurement ------------------------------------------------------------------------------

def rate(fn: Callable[[Any], object], args: list[Any], seconds: float) -> float:
    """Calls per second of *fn* over *args*, best of five rounds."""
    best = 0.0
    rounds = max(1, int(2000 * seconds))
    for _ in range(5):
        start = time.perf_counter()
        count = 0
        deadline = start + seconds
        while True:
            for _ in range(rounds):
                for arg in args:
                    fn(arg)
            count += rounds * len(args)
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.2, help="time per measurement")
    args = parser.parse_args()

    vectors = json.loads((VECTOR_DIR / "bkv.json").read_text())["vectors"]
    ap3000 = json.loads((VECTOR_DIR / "ap3000.json").read_text())["vectors"]
    rows: list[tuple[str, list[bytes], Callable[[bytes], object], Callable[[bytes], object],
                     Callable[[Any], bytes]]] = []
    bkv_kinds: dict[str, list[bytes]] = defaultdict(list)
    for case in vectors:
        data = bytes.fromhex(case["hex"])
        bkv_kinds[message_name(BkvFrame.decode(data).message)].append(data)
    for name, frames in sorted(bkv_kinds.items()):
        rows.append((f"bkv {name}", frames, BkvFrame.decode, baseline_decode, BkvFrame.encode))
    for direction in Direction:
        kinds: dict[str, list[bytes]] = defaultdict(list)
        for case in ap3000:
            if case["direction"] != direction.value:
                continue
            data = bytes.fromhex(case["hex"])
            kinds[message_name(Ap3000Frame.decode(data, direction).message)].append(data)
        for name, frames in sorted(kinds.items()):
            def decode(data: bytes, direction: Direction = direction) -> object:
                return Ap3000Frame.decode(data, direction)

            def baseline(data: bytes, up: bool = direction is Direction.UP) -> object:
                return baseline_decode_ap3000(data, up)
            rows.append((f"ap3000 {name}", frames, decode, baseline, Ap3000Frame.encode))

    print(f"bkvcodec codec benchmark — Python {platform.python_version()} on "
          f"{platform.machine()}, {platform.processor() or platform.system()}")
    print(f"{'message':34} {'bytes':>5} {'decode/s':>10} {'baseline/s':>11} {'ratio':>6}"
          f" {'encode/s':>10}")
    worst = 0.0
    for name, frames, decode_fn, baseline_fn, encode_fn in rows:
        decoded = [decode_fn(f) for f in frames]
        ours = rate(decode_fn, frames, args.seconds)
        base = rate(baseline_fn, frames, args.seconds)
        enc = rate(encode_fn, decoded, args.seconds)
        ratio = base / ours
        worst = max(worst, ratio)
        size = sum(map(len, frames)) // len(frames)
        print(f"{name:34} {size:5d} {ours:10,.0f} {base:11,.0f} {ratio:6.2f} {enc:10,.0f}")

    up_ap3000 = [c for c in ap3000 if c["direction"] == "up"]
    for label, cases in (("BKV", vectors), ("AP3000 uplink", up_ap3000)):
        capture = b"".join(bytes.fromhex(c["hex"]) for c in cases) * 200
        chunks = [capture[i:i + 4096] for i in range(0, len(capture), 4096)]

        def stream(_: object, chunks: list[bytes] = chunks) -> None:
            decoder = FrameDecoder()
            for chunk in chunks:
                decoder.feed(chunk)

        runs = rate(stream, [None], args.seconds * 5)
        print(f"stream decoder, {label}: {runs * len(capture) / 1e6:.2f} MB/s "
              f"({runs * len(cases) * 200:,.0f} frames/s, 4 KiB reads)")
    print(f"worst decode ratio to hand-written struct: {worst:.2f} (target ≤ 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
