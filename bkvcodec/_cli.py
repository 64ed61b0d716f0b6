# The command line: ``python -m bkvcodec decode|encode``. It reads and writes the
# JSON layout of the protocol references' vector files (``_jsonform``), so that
# a captured frame can be decoded, edited and encoded again from a shell.
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from ._bkv.codec import BkvFrame
from ._errors import BkvError, LocalProtocolError, RemoteProtocolError
from ._jsonform import JsonObject, error_to_json, frame_from_json, frame_to_json

__all__ = ["decode_text", "main"]

_DIRECTION_WORDS = {"up", "down", "uplink", "downlink"}


def decode_text(text: str) -> JsonObject:
    """Decode one input: a hex frame, optionally after ``up`` or ``down``.

    The direction word is accepted for every protocol; BKV frames state their
    direction in their header and ignore it.
    """
    words = text.split()
    if words and words[0].lower() in _DIRECTION_WORDS:
        words = words[1:]
    try:
        data = bytes.fromhex("".join(words))
    except ValueError:
        return {"error": "invalid_hex", "detail": f"not a hex string: {text.strip()[:80]!r}"}
    try:
        return frame_to_json(BkvFrame.decode(data), data)
    except RemoteProtocolError as err:
        return error_to_json(err)


def _encode_object(obj: object) -> JsonObject:
    if not isinstance(obj, dict):
        return {"error": "invalid_json", "detail": "expected a JSON object"}
    try:
        return {"hex": frame_from_json(obj).encode().hex()}
    except LocalProtocolError as err:
        return {"error": err.code, "detail": str(err)}


def _write(out: TextIO, obj: JsonObject, indent: int | None) -> None:
    out.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
    out.flush()


def _lines(stream: TextIO) -> Iterable[str]:
    for line in stream:
        if line.strip():
            yield line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (1 when any input failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m bkvcodec",
        description="Decode and encode BKV/GN charging-station frames.")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="frames (hex) to JSON")
    decode.add_argument("frames", nargs="*", metavar="HEX",
                        help="frames to decode; with none, read stdin")
    decode.add_argument("--jsonl", action="store_true",
                        help="one hex frame per stdin line in, one JSON object per line out")
    encode = commands.add_parser("encode", help="JSON to frames (hex)")
    encode.add_argument("objects", nargs="*", metavar="JSON",
                        help="frames as JSON objects (the decode layout); with none, read stdin")
    encode.add_argument("--jsonl", action="store_true",
                        help="one JSON object per stdin line in, one result per line out")
    args = parser.parse_args(argv)

    failed = False
    out = sys.stdout
    if args.command == "decode":
        inputs = args.frames or _lines(sys.stdin)
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
