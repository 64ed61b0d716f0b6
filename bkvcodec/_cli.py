# The command line: ``python -m bkvcodec decode|encode|corpus|sniff``. decode and encode
# read and write the JSON layout of the protocol references' vector files
# (``_jsonform``), so that a captured frame can be decoded, edited and encoded
# again from a shell; corpus writes a fuzzing seed corpus (``_corpus``, which
# needs hypothesis, so it is imported only for that command); sniff decodes a
# capture into JSON lines (``_sniff``, imported only for that command, and scapy only
# for pcap and pcapng files).
#
# An input line is a hex string, optionally after ``up`` or ``down``. The
# protocol is recognised from the bytes: ``DNY`` starts an AP3000 frame (decoded
# in the stated direction, ``up`` when none is given, because AP3000 frames do
# not say which way they travel), ``fc`` a BKV frame, ``link`` or 20 hex digits
# an AP3000 non-frame item. For bytes that start with none of these, the first
# frame header found inside them decides which protocol's error is reported
# (BKV's ``bad_magic`` or AP3000's ``no_header``); with no header at all, or
# with a direction word, the AP3000 rules apply.
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from ._ap3000.codec import Ap3000Frame
from ._ap3000.nonframe import decode_non_frame
from ._bkv.codec import BkvFrame
from ._errors import BkvError, LocalProtocolError, RemoteProtocolError
from ._jsonform import JsonObject, error_to_json, frame_from_json, frame_to_json
from ._types import Direction, ProtocolFamily
from ._version import __version__

__all__ = ["decode_text", "main"]

_DIRECTION_WORDS = {"up": Direction.UP, "down": Direction.DOWN, "uplink": Direction.UP,
                    "downlink": Direction.DOWN}
_BKV_MAGICS = (b"\xfc\xfe", b"\xfc\xff")


def _is_bkv(data: bytes, direction_given: bool) -> bool:
    """Whether *data*, which is no AP3000 frame or item, gets BKV's diagnosis."""
    if data[:1] == b"\xfc":
        return True
    if direction_given:
        return False
    dny = data.find(b"DNY")
    bkv = min((i for i in (data.find(magic) for magic in _BKV_MAGICS) if i >= 0), default=-1)
    return bkv >= 0 and (dny < 0 or bkv < dny)


def decode_text(text: str) -> JsonObject:
    """Decode one input: a hex frame, optionally after ``up`` or ``down``.

    BKV frames state their direction in their header and ignore the word;
    AP3000 frames are decoded in the stated direction (``up`` by default).
    """
    words = text.split()
    direction: Direction | None = None
    if words and words[0].lower() in _DIRECTION_WORDS:
        direction = _DIRECTION_WORDS[words[0].lower()]
        words = words[1:]
    try:
        data = bytes.fromhex("".join(words))
    except ValueError:
        return {"error": "invalid_hex", "detail": f"not a hex string: {text.strip()[:80]!r}"}
    if not data.startswith(b"DNY"):
        item = decode_non_frame(data)
        if item is not None:
            return frame_to_json(item)
        if _is_bkv(data, direction is not None):
            try:
                return frame_to_json(BkvFrame.decode(data), data)
            except RemoteProtocolError as err:
                return error_to_json(err, data)
    direction = direction or Direction.UP
    try:
        return frame_to_json(Ap3000Frame.decode(data, direction), data)
    except RemoteProtocolError as err:
        return error_to_json(err, data, direction)


def _encode_object(obj: object) -> JsonObject:
    if not isinstance(obj, dict):
        return {"error": "invalid_json", "detail": "expected a JSON object"}
    if "error" in obj:
        return {"error": "invalid_json", "detail": "a decode error cannot be encoded"}
    try:
        return {"hex": frame_from_json(obj).encode().hex()}
    except LocalProtocolError as err:
        return {"error": err.code, "detail": str(err)}


def _write(out: TextIO, obj: JsonObject, indent: int | None) -> None:
    out.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
    out.flush()


def _arguments(words: Sequence[str]) -> list[str]:
    """Command-line frames, a direction word joined to the frame after it."""
    out: list[str] = []
    pending = ""
    for word in words:
        if word.lower() in _DIRECTION_WORDS:
            pending = word + " "
            continue
        out.append(pending + word)
        pending = ""
    return out


def _lines(stream: TextIO) -> Iterable[str]:
    for line in stream:
        if line.strip():
            yield line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (1 when any input failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m bkvcodec",
        description="Decode and encode BKV/GN and AP3000 charging-station frames.")
    parser.add_argument("--version", action="version", version=f"bkvcodec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="frames (hex) to JSON")
    decode.add_argument("frames", nargs="*", metavar="HEX",
                        help="frames to decode ('up HEX' / 'down HEX' for AP3000 "
                             "direction); with none, read stdin")
    decode.add_argument("--jsonl", action="store_true",
                        help="one frame per stdin line in ([up|down] HEX), "
                             "one JSON object per line out")
    encode = commands.add_parser("encode", help="JSON to frames (hex)")
    encode.add_argument("objects", nargs="*", metavar="JSON",
                        help="frames as JSON objects (the decode layout); with none, read stdin")
    encode.add_argument("--jsonl", action="store_true",
                        help="one JSON object per stdin line in, one result per line out")
    corpus = commands.add_parser(
        "corpus", help="write a seed corpus for fuzzers (needs bkvcodec[testing])",
        description="Write one file per input: the vendors' real frames, "
                    "then generated frames of every message kind, streams and "
                    "malformed frames. The same --count and --seed give the same files.")
    corpus.add_argument("directory", metavar="DIR", type=Path,
                        help="where to write (created if missing)")
    corpus.add_argument("--count", type=int, default=3, metavar="N",
                        help="generated inputs per message kind, stream kind and "
                             "mutation (default 3; 0 writes only the real frames)")
    corpus.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the generation (default 0)")
    sniff = commands.add_parser(
        "sniff", help="decode a capture (pcap, pcapng, hex or JSON lines) to JSON lines",
        description="Decode every frame of a capture into one JSON line: a pcap or pcapng "
                    "file of TCP traffic (needs bkvcodec[sniff]; every connection is "
                    "reassembled and decoded in both directions), or text: lines of "
                    "'[TIME] [up|down] HEX', or JSON lines "
                    "{\"t\": TIME, \"dir\": \"up\", \"hex\": HEX, \"stream\": KEY}. "
                    "Bytes that are no frame are reported as garbage, partial and error "
                    "lines. A connection's direction is taken from --server-port, else from "
                    "the frames only a device or only a server sends, else from who opened "
                    "the connection, else from who spoke first.")
    sniff.add_argument("capture", metavar="FILE", help="the capture; - reads stdin")
    sniff.add_argument("--server-port", type=int, action="append", default=[],
                       metavar="PORT", help="the servers' TCP port; the side on it is the "
                                            "server (repeatable; the reliable way)")
    sniff.add_argument("--protocol", choices=[p.value for p in ProtocolFamily],
                       help="the protocol every connection speaks: its refused frames and "
                            "modem items are reported at once (default: recognised from "
                            "the first valid frame; valid frames of either protocol are "
                            "always decoded)")
    sniff.add_argument("--output", "-o", metavar="FILE", type=Path,
                       help="write the lines to FILE instead of stdout")
    args = parser.parse_args(argv)

    failed = False
    out = sys.stdout
    if args.command == "corpus":
        return _write_corpus(parser, args.directory, args.count, args.seed)
    if args.command == "sniff":
        return _sniff(args.capture, args.output, args.server_port, args.protocol)
    if args.command == "decode":
        inputs = _arguments(args.frames) or _lines(sys.stdin)
        for text in inputs:
            result = decode_text(text)
            failed |= "error" in result
            _write(out, result, None if args.jsonl else 2)
        return int(failed)

    texts = args.objects or (_lines(sys.stdin) if args.jsonl else [sys.stdin.read()])
    for text in texts:
        try:
            result = _encode_object(json.loads(text))
        except (json.JSONDecodeError, BkvError) as err:
            result = {"error": "invalid_json", "detail": str(err)}
        failed |= "error" in result
        if args.jsonl or "error" in result:
            _write(out, result, None)
        else:
            out.write(str(result["hex"]) + "\n")
    return int(failed)


def _write_corpus(parser: argparse.ArgumentParser, directory: Path, count: int,
                  seed: int) -> int:
    if count < 0:
        parser.error("--count must not be negative")
    try:
        # bkvcodec.testing first: without hypothesis, its error says what to install.
        importlib.import_module("bkvcodec.testing")
        from ._corpus import corpus_entries
    except ImportError as err:
        sys.stderr.write(f"{err}\n")
        return 2
    entries = corpus_entries(count, seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in entries:
        (directory / name).write_bytes(data)
    sys.stdout.write(f"wrote {len(entries)} files to {directory}\n")
    return 0


def _sniff(source: str, output: Path | None, server_ports: list[int],
           protocol: str | None) -> int:
    from ._sniff import SniffError, sniff

    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as err:
        sys.stderr.write(f"bkvcodec sniff: cannot read {source}: {err.strerror or err}\n")
        return 2
    family = None if protocol is None else ProtocolFamily(protocol)
    try:
        out = sys.stdout if output is None else output.open("w", encoding="utf-8")
    except OSError as err:
        sys.stderr.write(f"bkvcodec sniff: cannot write {output}: {err.strerror or err}\n")
        return 2
    try:
        sniff(data, out, server_ports=server_ports, protocol=family)
    except SniffError as err:
        sys.stderr.write(f"bkvcodec sniff: {source}: {err}\n")
        return err.status
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    return 0
