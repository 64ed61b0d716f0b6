"""Coverage-guided fuzzing of every bkvcodec decoder with atheris (libFuzzer).

Invariants, for any input bytes:

* ``one-shot``: ``BkvFrame.decode`` and ``Ap3000Frame.decode`` (both directions)
  return a frame or raise a :class:`bkvcodec.RemoteProtocolError`; a returned frame
  encodes, and the encoded bytes decode to an equal frame.
* ``stream``: ``FrameDecoder.feed`` never raises, whatever the chunking (the last
  byte of the input picks the read size, so that a seed frame is fed whole),
  yields only its documented items, and keeps no more than ``max_frame_size``
  bytes buffered after a read.
* ``connection``: ``ServerConnection.receive_data`` never raises on any input,
  always leaves the connection usable, and answers only valid downlink frames.
* ``cli``: the CLI's line decoder returns a JSON-serialisable object for any text.
* ``structured``: the same invariant as ``connection`` over the inputs of
  ``bkvcodec.testing.device_traffic()`` (valid streams, malformed frames, real
  frames, chunked), with libFuzzer steering Hypothesis's choices
  (``fuzz_one_input``); a test of the suite, run by a coverage-guided fuzzer.

Usage::

    python -m bkvcodec corpus fuzz/corpus          # the seed corpus
    python fuzz/fuzz_decoders.py TARGET [CORPUS_DIR ...] [libFuzzer flags]
    python fuzz/fuzz_decoders.py stream fuzz/corpus -max_total_time=60
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable

import atheris
from hypothesis import HealthCheck, given, settings

with atheris.instrument_imports(include=["bkvcodec"]):
    from bkvcodec import (
        Direction,
        FrameDecoder,
        FrameRejected,
        RemoteProtocolError,
        ServerConnection,
        UnidentifiedStream,
    )
    from bkvcodec._cli import decode_text
    from bkvcodec.ap3000 import Ap3000Frame, IccidAnnouncement, LinkKeepAlive
    from bkvcodec.bkv import BkvFrame
    from bkvcodec.testing import assert_valid_frames, device_traffic

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
    size = data[-1] % 64 + 1
    decoder = FrameDecoder(max_frame_size=MAX_FRAME)
    for i in range(0, len(data), size):
        for item in decoder.feed(data[i:i + size]):
            if not isinstance(item, STREAM_ITEMS):
                raise AssertionError(f"unexpected item {item!r}")
        if decoder.statistics().pending_bytes > MAX_FRAME:
            raise AssertionError("decoder buffered more than max_frame_size")
    decoder.end()


def connection(data: bytes) -> None:
    if not data:
        return
    size = data[-1] % 64 + 1
    serve([data[i:i + size] for i in range(0, len(data), size)])


def serve(chunks: list[bytes]) -> None:
    """Feed *chunks* to a server connection; its answers must be valid frames."""
    conn = ServerConnection(max_frame_size=MAX_FRAME)
    answers = b""
    for i, chunk in enumerate(chunks):
        conn.receive_data(chunk, float(i))
        answers += conn.data_to_send()
    conn.handle_timeout(1e9)
    answers += conn.data_to_send()
    assert_valid_frames(answers)


@settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(device_traffic())
def test_structured(chunks: list[bytes]) -> None:
    serve(chunks)


def structured(data: bytes) -> None:
    test_structured.hypothesis.fuzz_one_input(data)


def cli(data: bytes) -> None:
    text = data.decode("latin-1")
    json.dumps(decode_text(text))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "one-shot": one_shot,
    "stream": stream,
    "connection": connection,
    "cli": cli,
    "structured": structured,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer args]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
