"""Coverage-guided fuzzing of every bkvcodec decoder with atheris (libFuzzer).

Invariants, for any input bytes:

* ``one-shot``: ``BkvFrame.decode`` returns a frame or raises a
  :class:`bkvcodec.RemoteProtocolError`; a returned frame encodes, and the encoded
  bytes decode to an equal frame.
* ``stream``: ``FrameDecoder.feed`` never raises, whatever the chunking (the first
  byte of the input picks the read size), yields only frames and rejections, and
  keeps no more than ``max_frame_size`` bytes buffered after a read.
* ``cli``: the CLI's line decoder returns a JSON-serialisable object for any text.

Usage::

    python fuzz/fuzz_decoders.py TARGET [CORPUS_DIR ...] [libFuzzer flags]
    python fuzz/fuzz_decoders.py stream fuzz/corpus -max_total_time=60

``python fuzz/seed_corpus.py DIR`` writes a seed corpus from the golden vectors.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["bkvcodec"]):
    from bkvcodec import BkvFrame, FrameDecoder, FrameRejected, RemoteProtocolError
    from bkvcodec._cli import decode_text

MAX_FRAME = 512


def one_shot(data: bytes) -> None:
    try:
        frame = BkvFrame.decode(data)
    except RemoteProtocolError:
        return
    again = BkvFrame.decode(frame.encode())
    if again != frame:
        raise AssertionError(f"re-encoding changed the frame: {frame!r} != {again!r}")


def stream(data: bytes) -> None:
    if not data:
        return
    size = data[0] % 64 + 1
    decoder = FrameDecoder(max_frame_size=MAX_FRAME)
    for i in range(1, len(data), size):
        for item in decoder.feed(data[i:i + size]):
            if not isinstance(item, BkvFrame | FrameRejected):
                raise AssertionError(f"unexpected item {item!r}")
        if decoder.statistics().pending_bytes > MAX_FRAME:
            raise AssertionError("decoder buffered more than max_frame_size")
    decoder.end()


def cli(data: bytes) -> None:
    text = data.decode("latin-1")
    json.dumps(decode_text(text))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "one-shot": one_shot,
    "stream": stream,
    "cli": cli,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer args]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
