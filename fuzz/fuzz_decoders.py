"""Coverage-guided fuzzing of every bkvcodec decoder with atheris (libFuzzer).

Invariants, for any input bytes:

* ``one-shot``: ``BkvFrame.decode`` and ``Ap3000Frame.decode`` (both directions)
  return a frame or raise a :class:`bkvcodec.RemoteProtocolError`; a returned frame
  encodes, and the encoded bytes decode to an equal frame.
* ``stream``: ``FrameDecoder.feed`` never raises, whatever the chunking (the first
  byte of the input picks the read size), yields only its documented items, and
  keeps no more than ``max_frame_size`` bytes buffered after a read.
* ``connection``: ``ServerConnection.receive_data`` never raises on any input and
  always leaves the connection usable.
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
    from bkvcodec import (
        Ap3000Frame,
        BkvFrame,
        Direction,
        FrameDecoder,
        FrameRejected,
        IccidAnnouncement,
        LinkKeepAlive,
        RemoteProtocolError,
        ServerConnection,
        UnidentifiedStream,
    )
    from bkvcodec._cli import decode_text

STREAM_ITEMS = (BkvFrame, Ap3000Frame, IccidAnnouncement, LinkKeepAlive, FrameRejected,
                UnidentifiedStream)

MAX_FRAME = 512


def one_shot(data: bytes) -> None:
    try:
        frame = BkvFrame.decode(data)
    except RemoteProtocolError:
        pass
    else:
        again = BkvFrame.decode(frame.encode())
        if again != frame:
            raise AssertionError(f"re-encoding changed the frame: {frame!r} != {again!r}")
    for direction in Direction:
        try:
            ap3000 = Ap3000Frame.decode(data, direction)
        except RemoteProtocolError:
            continue
        again_ap3000 = Ap3000Frame.decode(ap3000.encode(), direction)
        if again_ap3000 != ap3000:
            raise AssertionError(f"re-encoding changed {ap3000!r} to {again_ap3000!r}")


def stream(data: bytes) -> None:
    if not data:
        return
    size = data[0] % 64 + 1
    decoder = FrameDecoder(max_frame_size=MAX_FRAME)
    for i in range(1, len(data), size):
        for item in decoder.feed(data[i:i + size]):
            if not isinstance(item, STREAM_ITEMS):
                raise AssertionError(f"unexpected item {item!r}")
        if decoder.statistics().pending_bytes > MAX_FRAME:
            raise AssertionError("decoder buffered more than max_frame_size")
    decoder.end()


def connection(data: bytes) -> None:
    if not data:
        return
    size = data[0] % 64 + 1
    conn = ServerConnection(max_frame_size=MAX_FRAME)
    for i in range(1, len(data), size):
        conn.receive_data(data[i:i + size], float(i))
        conn.data_to_send()
    conn.handle_timeout(1e9)


def cli(data: bytes) -> None:
    text = data.decode("latin-1")
    json.dumps(decode_text(text))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "one-shot": one_shot,
    "stream": stream,
    "connection": connection,
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
