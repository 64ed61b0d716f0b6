"""The public strategies of bkvcodec.testing: valid streams decode to what was sent,
and each malformed-frame case gets the typed error (or the stream behaviour) that
its mutation documents."""
from __future__ import annotations

import importlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bkvcodec import (
    Direction,
    FrameDecoder,
    FrameRejected,
    IncompleteFrame,
    ProtocolFamily,
    RemoteProtocolError,
    ServerConnection,
)
from bkvcodec.ap3000 import Ap3000Frame, UnknownAp3000Command
from bkvcodec.bkv import BkvFrame, UnknownBkvPacket, UnknownCommand, UnknownGnMessage
from bkvcodec.testing import (
    MalformedFrame,
    Mutation,
    ap3000_frames,
    ap3000_streams,
    assert_valid_frames,
    bkv_frames,
    bkv_streams,
    chunked,
    device_traffic,
    malformed_ap3000_frames,
    malformed_bkv_frames,
    vector_bytes,
)

BKV_MUTATIONS = [m for m in Mutation if m is not Mutation.LENGTH_ABOVE_MAXIMUM]
AP3000_MUTATIONS = [m for m in Mutation if m not in (Mutation.WRONG_TRAILER,
                                                     Mutation.UNKNOWN_TAG)]
DROP_ONE_BYTE_BKV = {Mutation.WRONG_TRAILER, Mutation.LENGTH_TOO_SHORT,
                     Mutation.LENGTH_BELOW_MINIMUM}
DROP_ONE_BYTE_AP3000 = {Mutation.BAD_CHECKSUM, Mutation.LENGTH_TOO_SHORT,
                        Mutation.LENGTH_BELOW_MINIMUM, Mutation.LENGTH_ABOVE_MAXIMUM}
UNKNOWN_BKV = (UnknownCommand, UnknownGnMessage, UnknownBkvPacket)


def _decode(case: MalformedFrame) -> BkvFrame | Ap3000Frame:
    if case.protocol is ProtocolFamily.BKV:
        return BkvFrame.decode(case.data)
    return Ap3000Frame.decode(case.data, case.direction)


def _check_one_shot(case: MalformedFrame, mutation: Mutation) -> None:
    assert mutation == case.mutation
    if case.error is None:
        frame = _decode(case)
        message = frame.message
        if mutation is Mutation.UNKNOWN_TAG:
            assert message.unknown  # type: ignore[union-attr]
        else:
            assert isinstance(message, (*UNKNOWN_BKV, UnknownAp3000Command))
        assert case.data == frame.encode()
        return
    with pytest.raises(RemoteProtocolError) as info:
        _decode(case)

    assert case.error is type(info.value)


@pytest.mark.parametrize("mutation", BKV_MUTATIONS, ids=lambda m: m.value)
@settings(max_examples=40)
@given(data=st.data())
def test_malformed_bkv_one_shot_error(mutation: Mutation, data: st.DataObject) -> None:
    _check_one_shot(data.draw(malformed_bkv_frames([mutation])), mutation)


@pytest.mark.parametrize("mutation", AP3000_MUTATIONS, ids=lambda m: m.value)
@settings(max_examples=40)
@given(data=st.data())
def test_malformed_ap3000_one_shot_error(mutation: Mutation, data: st.DataObject) -> None:
    _check_one_shot(data.draw(malformed_ap3000_frames(mutations=[mutation])), mutation)


def _no_bkv_header(data: bytes) -> bool:
    return b"\xfc\xfe" not in data and b"\xfc\xff" not in data


@settings(max_examples=300)
@given(malformed_bkv_frames(), bkv_frames())
def test_malformed_bkv_in_a_stream(case: MalformedFrame, good: BkvFrame) -> None:
    decoder = FrameDecoder(protocol=ProtocolFamily.BKV, max_frame_size=0x10003)
    mutation = case.mutation

    items = decoder.feed(case.data)

    if mutation in (Mutation.TRUNCATED, Mutation.LENGTH_TOO_LONG):
        assert [] == items
        assert [IncompleteFrame(data=case.data)] == decoder.end()
    elif mutation in (Mutation.BAD_CHECKSUM, Mutation.BAD_PAYLOAD):
        assert [case.error] == [type(i.error) for i in items if isinstance(i, FrameRejected)]
        assert [good] == decoder.feed(good.encode())
    elif mutation in DROP_ONE_BYTE_BKV:
        assert isinstance(items[0], FrameRejected)
        assert case.error is type(items[0].error)
        if _no_bkv_header(case.data[1:]):
            assert good == decoder.feed(good.encode())[-1]
    elif mutation is Mutation.BAD_MAGIC:
        if _no_bkv_header(case.data):
            assert [] == items
            assert [good] == decoder.feed(good.encode())
    elif mutation is Mutation.TRAILING_BYTES:
        assert case.original is not None
        assert BkvFrame.decode(case.original) == items[0]
    else:
        assert [BkvFrame.decode(case.data)] == items


@settings(max_examples=300)
@given(malformed_ap3000_frames(), st.data())
def test_malformed_ap3000_in_a_stream(case: MalformedFrame, data: st.DataObject) -> None:
    good = data.draw(ap3000_frames(case.direction))
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000, direction=case.direction)
    mutation = case.mutation

    items = decoder.feed(case.data)

    quiet = all(pattern not in case.data[1:] for pattern in (b"DNY", b"link"))
    if mutation in (Mutation.TRUNCATED, Mutation.LENGTH_TOO_LONG):
        assert [] == items
        assert [IncompleteFrame(data=case.data)] == decoder.end()
    elif mutation is Mutation.BAD_PAYLOAD:
        assert [case.error] == [type(i.error) for i in items if isinstance(i, FrameRejected)]
        assert [good] == decoder.feed(good.encode())
    elif mutation in DROP_ONE_BYTE_AP3000:
        assert isinstance(items[0], FrameRejected)
        assert case.error is type(items[0].error)
        if quiet:
            assert good == decoder.feed(good.encode())[-1]
    elif mutation is Mutation.BAD_MAGIC:
        if quiet and b"DNY" not in case.data:
            assert [] == [i for i in items if isinstance(i, FrameRejected | Ap3000Frame)]
            assert good == decoder.feed(good.encode())[-1]
    elif mutation is Mutation.TRAILING_BYTES:
        assert case.original is not None
        assert Ap3000Frame.decode(case.original, case.direction) == items[0]
    else:
        assert [Ap3000Frame.decode(case.data, case.direction)] == items


def test_mutations_that_do_not_apply_are_refused() -> None:
    with pytest.raises(ValueError, match="WRONG_TRAILER"):
        malformed_ap3000_frames(mutations=[Mutation.WRONG_TRAILER])
    with pytest.raises(ValueError, match="LENGTH_ABOVE_MAXIMUM"):
        malformed_bkv_frames([Mutation.LENGTH_ABOVE_MAXIMUM])
    with pytest.raises(ValueError, match="none"):
        malformed_bkv_frames([])


@given(chunked(st.binary(max_size=100)))
def test_chunks_join_to_the_data(chunks: list[bytes]) -> None:
    assert all(chunks)
    assert len(chunks) <= 16


@given(st.binary(max_size=100), st.data())
def test_chunked_keeps_every_byte(whole: bytes, data: st.DataObject) -> None:
    chunks = data.draw(chunked(whole, max_chunks=4))

    assert whole == b"".join(chunks)
    assert len(chunks) <= 4


@given(st.sampled_from(list(Direction)), st.data())
def test_ap3000_streams_decode_to_their_items(direction: Direction,
                                              data: st.DataObject) -> None:
    items, stream = data.draw(ap3000_streams(direction))
    decoder = FrameDecoder(protocol=ProtocolFamily.AP3000, direction=direction)

    out = [item for chunk in data.draw(chunked(stream)) for item in decoder.feed(chunk)]

    assert items == out
    assert [] == decoder.end()


@given(bkv_streams(), st.data())
def test_bkv_streams_decode_whatever_the_chunking(stream: tuple[list[BkvFrame], bytes],
                                                  data: st.DataObject) -> None:
    frames, whole = stream
    decoder = FrameDecoder()

    out = [item for chunk in data.draw(chunked(whole)) for item in decoder.feed(chunk)]

    assert frames == out


@given(vector_bytes(kinds=["vectors"], protocol=ProtocolFamily.BKV))
def test_bkv_vector_bytes_are_valid_frames(data: bytes) -> None:
    assert data == BkvFrame.decode(data).encode()


@given(vector_bytes(kinds=["malformed"], protocol=ProtocolFamily.AP3000))
def test_malformed_vector_bytes_are_not_one_ap3000_frame(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        Ap3000Frame.decode(data, Direction.UP)


def test_assert_valid_frames() -> None:
    up = BkvFrame(gateway_id="82210225000520", message=UnknownCommand(
        direction=Direction.UP, command=0x77, payload=b""))
    down = BkvFrame(gateway_id="82210225000520", message=UnknownCommand(
        direction=Direction.DOWN, command=0x77, payload=b""))

    assert [down, down] == assert_valid_frames(down.encode() * 2)
    assert [up] == assert_valid_frames(up.encode(), Direction.UP)
    for bad in (up.encode(), down.encode()[:-1], b"x" + down.encode(), b"link",
                down.encode()[:-3] + b"\0\xfc\xee"):
        with pytest.raises(AssertionError):
            assert_valid_frames(bad)


@settings(max_examples=200)
@given(device_traffic())
def test_server_connection_answers_any_traffic_with_valid_frames(chunks: list[bytes]) -> None:
    server = ServerConnection()
    answers = b""

    for i, chunk in enumerate(chunks):
        server.receive_data(chunk, 1729407600.0 + i)
        answers += server.data_to_send()
    server.receive_eof()

    assert_valid_frames(answers)


def test_importing_without_hypothesis_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "bkvcodec.testing")
    monkeypatch.setitem(sys.modules, "hypothesis", None)

    with pytest.raises(ImportError, match=r"pip install 'bkvcodec\[testing\]'"):
        importlib.import_module("bkvcodec.testing")
