"""The stream decoder: chunking, noise, limits and end of input."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import FrameDecoder, FrameRejected, IncompleteFrame, LocalProtocolError
from bkvcodec.bkv import BcdTime, BkvFrame, HeartbeatAck
from bkvcodec.errors import BadLength, FrameTooLong

from .strategies import bkv_streams

ACK = BkvFrame(gateway_id="82200520004869",
               message=HeartbeatAck(time=BcdTime(bytes.fromhex("20200730164545"))))


@given(bkv_streams(), st.lists(st.integers(1, 40), max_size=20))
def test_any_split_gives_the_same_frames(stream: tuple[list[BkvFrame], bytes],
                                         cuts: list[int]) -> None:
    frames, data = stream
    decoder = FrameDecoder()
    out = []
    pos = 0
    for size in cuts:
        out += decoder.feed(data[pos:pos + size])
        pos += size
    out += decoder.feed(data[pos:])

    assert frames == out
    assert decoder.statistics().frames == len(frames)


@given(st.lists(st.binary(max_size=50), max_size=10))
def test_noise_gives_only_frames_or_rejections(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_size=64)

    for chunk in chunks:
        for item in decoder.feed(chunk):
            assert isinstance(item, BkvFrame | FrameRejected)
        assert decoder.statistics().pending_bytes <= 64 + len(chunk)
    for tail in decoder.end():
        assert isinstance(tail, IncompleteFrame)


def test_length_above_limit_is_rejected_before_buffering() -> None:
    decoder = FrameDecoder(max_frame_size=100)

    items = decoder.feed(b"\xfc\xfe\xff\xff" + b"\0" * 10)

    assert [FrameRejected(error=FrameTooLong(65539, 100), data=b"\xfc\xfe\xff\xff")] == items
    assert 0 == decoder.statistics().pending_bytes


def test_impossible_length_is_rejected() -> None:
    decoder = FrameDecoder()

    items = decoder.feed(b"\xfc\xfe\x00\x05" + ACK.encode())

    assert [FrameRejected(error=BadLength(5, 17), data=b"\xfc\xfe\x00\x05"), ACK] == items


def test_frame_after_rejected_frame_is_decoded() -> None:
    bad = bytearray(ACK.encode())
    bad[-3] ^= 0xFF
    decoder = FrameDecoder()

    items = decoder.feed(bytes(bad) + ACK.encode())

    assert isinstance(items[0], FrameRejected)
    assert ACK == items[1]


def test_feed_after_end_is_a_local_error() -> None:
    decoder = FrameDecoder()
    decoder.end()

    with pytest.raises(LocalProtocolError):
        decoder.feed(b"")


def test_limit_must_admit_an_empty_frame() -> None:
    with pytest.raises(LocalProtocolError):
        FrameDecoder(max_frame_size=20)


def test_lone_lead_byte_is_kept_for_the_next_read() -> None:
    data = ACK.encode()
    decoder = FrameDecoder()

    assert [] == decoder.feed(b"\x00\x01" + data[:1])
    assert [ACK] == decoder.feed(data[1:])
    assert 2 == decoder.statistics().skipped_bytes
