"""The identifying stream decoder (``_decoder.py``): BKV, AP3000 and the AP3000 modem's
non-frame items on one connection, in any chunking, with noise, and connections that
never match any protocol."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import (
    Direction,
    FrameDecoder,
    FrameRejected,
    IncompleteFrame,
    LocalProtocolError,
    ProtocolFamily,
    StreamItem,
    UnidentifiedStream,
)
from bkvcodec.ap3000 import (
    Ap3000Frame,
    Ap3000Heartbeat,
    Ap3000TimeRequest,
    IccidAnnouncement,
    LinkKeepAlive,
)
from bkvcodec.bkv import BcdTime, BkvFrame, HeartbeatAck
from bkvcodec.errors import ChecksumMismatch
from bkvcodec.testing import mixed_streams

from .helpers import load_vectors

AP3000 = {case["id"]: bytes.fromhex(case["hex"]) for case in load_vectors("ap3000")["vectors"]}
HEARTBEAT = AP3000["doc-21-up-heartbeat"]
TIME_REQUEST = AP3000["cap-22-up-time-request-04A228CD"]
ICCID = b"898604D9162390488297"
BKV_ACK = BkvFrame(gateway_id="82200520004869",
                   message=HeartbeatAck(time=BcdTime(bytes.fromhex("20200730164545"))))
BKV = BKV_ACK.encode()

Sent = BkvFrame | Ap3000Frame | IccidAnnouncement | LinkKeepAlive


def _up(data: bytes) -> Ap3000Frame:
    return Ap3000Frame.decode(data, Direction.UP)


def _expected(sent: list[Sent], protocol: ProtocolFamily | None = None) -> list[Sent]:
    """What the decoder reports for *sent*: every frame; the modem items when the
    connection is AP3000 (named, or its first frame is AP3000)."""
    first = next((item for item in sent if isinstance(item, BkvFrame | Ap3000Frame)), None)
    ap3000 = protocol is ProtocolFamily.AP3000 or (
        protocol is None and isinstance(first, Ap3000Frame))
    return [item for item in sent
            if isinstance(item, BkvFrame | Ap3000Frame) or ap3000]


def _feed_in_pieces(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[StreamItem]:
    out: list[StreamItem] = []
    pos = 0
    for size in cuts:
        out += decoder.feed(data[pos:pos + size])
        pos += size
    return out + decoder.feed(data[pos:])


@given(mixed_streams(), st.lists(st.integers(1, 40), max_size=20))
def test_mixed_stream_in_any_chunking(stream: tuple[list[Sent], bytes], cuts: list[int]) -> None:
    sent, data = stream
    whole = FrameDecoder()
    split = FrameDecoder()

    expected = whole.feed(data)
    actual = _feed_in_pieces(split, data, cuts)

    assert _expected(sent) == expected == actual
    assert whole.statistics() == split.statistics()
    assert 0 == split.statistics().pending_bytes
    first = next((item for item in sent if isinstance(item, BkvFrame | Ap3000Frame)), None)
    protocol = (None if first is None else ProtocolFamily.BKV if isinstance(first, BkvFrame)
                else ProtocolFamily.AP3000)
    assert protocol is split.protocol is split.statistics().protocol


@given(mixed_streams(direction=Direction.DOWN), st.lists(st.integers(1, 40), max_size=20))
def test_mixed_stream_with_the_protocol_named(stream: tuple[list[Sent], bytes],
                                              cuts: list[int]) -> None:
    sent, data = stream
    decoder = FrameDecoder(direction=Direction.DOWN, protocol=ProtocolFamily.AP3000)

    assert sent == _feed_in_pieces(decoder, data, cuts)


@given(st.lists(st.binary(max_size=60), max_size=12))
def test_noise_gives_only_known_items(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_size=64)

    for chunk in chunks:
        for item in decoder.feed(chunk):
            assert isinstance(item, (BkvFrame, Ap3000Frame, IccidAnnouncement, LinkKeepAlive,
                                     FrameRejected, UnidentifiedStream))
        assert decoder.statistics().pending_bytes <= 64 + len(chunk)
    for tail in decoder.end():
        assert isinstance(tail, IncompleteFrame)


@given(st.binary(min_size=1, max_size=300), st.lists(st.integers(1, 30), max_size=12))
def test_noise_in_any_chunking_gives_the_same_items(noise: bytes, cuts: list[int]) -> None:
    data = noise + HEARTBEAT + noise + BKV
    whole = FrameDecoder(identify_limit=200)
    split = FrameDecoder(identify_limit=200)

    assert whole.feed(data) == _feed_in_pieces(split, data, cuts)
    assert whole.statistics() == split.statistics()


def test_connection_start_iccid_frames_link() -> None:
    decoder = FrameDecoder()

    items = decoder.feed(ICCID + HEARTBEAT + TIME_REQUEST + b"link")

    assert [IccidAnnouncement(iccid=ICCID.decode()), _up(HEARTBEAT), _up(TIME_REQUEST),
            LinkKeepAlive()] == items
    assert ProtocolFamily.AP3000 is decoder.protocol
    assert 2 == decoder.statistics().non_frame_items


def test_modem_items_wait_for_the_first_frame() -> None:
    decoder = FrameDecoder()

    assert [] == decoder.feed(ICCID + b"link")
    assert [IccidAnnouncement(iccid=ICCID.decode()), LinkKeepAlive(), _up(HEARTBEAT)] == (
        decoder.feed(HEARTBEAT))


def test_modem_items_are_reported_at_once_when_the_protocol_is_named() -> None:
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)

    assert [IccidAnnouncement(iccid=ICCID.decode())] == decoder.feed(ICCID)
    assert [LinkKeepAlive()] == decoder.feed(b"link")


def test_modem_look_alikes_on_a_bkv_connection_are_noise() -> None:
    decoder = FrameDecoder()

    items = decoder.feed(b"link" + b"DNY\x30\x00" + BKV + b"link" + ICCID + b"DNY\x01" + BKV)

    assert [BKV_ACK, BKV_ACK] == items
    assert ProtocolFamily.BKV is decoder.protocol
    assert 0 == decoder.statistics().rejected


def test_bkv_and_ap3000_frames_interleaved() -> None:
    decoder = FrameDecoder()

    items = decoder.feed(BKV + HEARTBEAT + BKV + TIME_REQUEST)

    assert [BKV_ACK, _up(HEARTBEAT), BKV_ACK, _up(TIME_REQUEST)] == items
    assert ProtocolFamily.BKV is decoder.protocol


@pytest.mark.parametrize("cut", range(1, len(ICCID) + len(HEARTBEAT)))
def test_iccid_followed_by_a_frame_split_anywhere(cut: int) -> None:
    data = ICCID + HEARTBEAT
    decoder = FrameDecoder()

    items = decoder.feed(data[:cut]) + decoder.feed(data[cut:])

    assert [IccidAnnouncement(iccid=ICCID.decode()), _up(HEARTBEAT)] == items


def test_iccid_must_start_a_run_of_hex_digits() -> None:
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)

    assert [] == decoder.feed(b"1" + ICCID + b"\r\n")
    assert [IccidAnnouncement(iccid=ICCID.decode())] == decoder.feed(b"\r\n" + ICCID)


def test_a_d_that_begins_a_header_is_not_an_iccid_digit() -> None:
    nineteen = b"8986044D9162390488"  # 18 digits then the header's D: only 19 before DNY
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)

    items = decoder.feed(nineteen + b"1" + HEARTBEAT)

    assert [_up(HEARTBEAT)] == items


def test_modem_noise_before_the_first_frame_does_not_hold_it() -> None:
    # A BKV-looking header whose length promises 32 KiB must not make the decoder wait
    # when a valid AP3000 frame follows inside the declared span.
    decoder = FrameDecoder()

    items = decoder.feed(b"\xfc\xff\x7f\x00" + ICCID + HEARTBEAT)

    assert [IccidAnnouncement(iccid=ICCID.decode()), _up(HEARTBEAT)] == items
    assert 0 == decoder.statistics().pending_bytes


def test_dny_noise_before_a_bkv_frame_does_not_hold_it() -> None:
    decoder = FrameDecoder()

    items = decoder.feed(b"DNY\x00\x01" + BKV)

    assert [BKV_ACK] == items


def test_ap3000_checksum_failure_resyncs_on_the_next_byte() -> None:
    bad = bytearray(HEARTBEAT)
    bad[-1] ^= 0x01
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000)

    items = decoder.feed(bytes(bad) + HEARTBEAT)

    assert isinstance(items[0], FrameRejected)
    assert isinstance(items[0].error, ChecksumMismatch)
    assert _up(HEARTBEAT) == items[1]


def test_never_matching_connection_is_reported_once() -> None:
    decoder = FrameDecoder(identify_limit=100)
    request = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"

    items = decoder.feed(request * 4) + decoder.feed(request * 4)

    assert [UnidentifiedStream(examined=100, head=request[:32])] == items
    assert decoder.protocol is None
    assert 0 == decoder.statistics().pending_bytes


def test_unidentified_report_comes_before_a_late_frame() -> None:
    decoder = FrameDecoder(identify_limit=10)

    items = decoder.feed(b"\x00" * 20 + HEARTBEAT)

    assert [UnidentifiedStream(examined=10, head=(b"\x00" * 20 + HEARTBEAT)[:32]),
            _up(HEARTBEAT)] == items
    assert ProtocolFamily.AP3000 is decoder.protocol


def test_held_items_are_dropped_once_the_connection_is_reported() -> None:
    decoder = FrameDecoder(identify_limit=30)

    items = decoder.feed(ICCID + b"\x00" * 20 + HEARTBEAT)

    assert [UnidentifiedStream(examined=30, head=ICCID + b"\x00" * 12), _up(HEARTBEAT)] == items


def test_direction_selects_the_ap3000_layouts() -> None:
    up = FrameDecoder()
    down = FrameDecoder(direction=Direction.DOWN)
    data = AP3000["doc-21-down-heartbeat-reply"]

    up_item, = up.feed(data)
    down_item, = down.feed(data)

    assert isinstance(up_item, FrameRejected)  # 1 byte is too short for a heartbeat
    assert isinstance(down_item, Ap3000Frame)
    assert Direction.DOWN is down_item.direction


def test_end_reports_an_unfinished_ap3000_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(HEARTBEAT[:10])

    assert [IncompleteFrame(data=HEARTBEAT[:10])] == decoder.end()
    with pytest.raises(LocalProtocolError):
        decoder.feed(b"")


def test_identify_limit_must_be_positive() -> None:
    with pytest.raises(LocalProtocolError):
        FrameDecoder(identify_limit=0)


def test_time_request_frames_decode() -> None:
    frame = _up(TIME_REQUEST)

    assert isinstance(frame.message, Ap3000TimeRequest)
    assert "04A228CD" == frame.phy_id


def test_heartbeat_frame_type() -> None:
    assert isinstance(_up(HEARTBEAT).message, Ap3000Heartbeat)
