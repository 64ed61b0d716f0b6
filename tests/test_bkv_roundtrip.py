"""Properties of the BKV codec over generated messages: encode then decode is identity,
and the hand-tuned decoder agrees with the construct grammar on any input."""
from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from bkvcodec import RemoteProtocolError, frame_from_json, frame_to_json
from bkvcodec._bkv.codec import reference_decode, reference_encode
from bkvcodec.bkv import BkvFrame, BkvMessage

from .strategies import bkv_frame_bytes, bkv_frames, bkv_messages


@given(bkv_frames())
def test_decode_encode_is_identity(frame: BkvFrame) -> None:
    data = frame.encode()

    assert frame == BkvFrame.decode(data)


@given(bkv_frames())
def test_grammar_decoder_agrees_on_valid_frames(frame: BkvFrame) -> None:
    data = frame.encode()

    assert BkvFrame.decode(data) == reference_decode(data)


@given(bkv_frames())
def test_fast_encoder_agrees_with_grammar(frame: BkvFrame) -> None:
    assert reference_encode(frame) == frame.encode()


@given(bkv_frames())
def test_json_form_round_trips(frame: BkvFrame) -> None:
    data = frame.encode()

    assert data == frame_from_json(frame_to_json(frame, data)).encode()


def _outcome(decode: object, data: bytes) -> object:
    try:
        return decode(data)  # type: ignore[operator]
    except RemoteProtocolError:
        return "rejected"


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(bkv_frame_bytes()))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    # Keep the checksum right half of the time, so that payload decoding is reached.
    if draw(st.booleans()) and len(data) >= 21:
        total = ((data[2] << 8) | data[3]) + 4
        if total == len(data):
            data[-3] = sum(data[2:-3]) & 0xFF
    return bytes(data)


@given(st.one_of(_mutated(), st.binary(max_size=64)))
@example(bytes.fromhex("fcff001500000000000000822005200048690100fcee"))
def test_fast_decoder_agrees_with_grammar_on_any_bytes(data: bytes) -> None:
    assert _outcome(reference_decode, data) == _outcome(BkvFrame.decode, data)


@given(st.binary(max_size=80))
def test_one_shot_decode_raises_only_library_errors(data: bytes) -> None:
    try:
        BkvFrame.decode(b"\xfc\xfe" + data)
    except RemoteProtocolError:
        pass


@given(bkv_messages())
def test_every_message_has_a_name(message: BkvMessage) -> None:
    from bkvcodec import message_name

    assert message_name(message).islower()


def test_an_unknown_item_sharing_a_named_tag_keeps_its_place_among_unknown_items() -> None:
    # Found by the fuzz pass: 0x2E (end_time) first with a value that does not fit,
    # then other unknown items, then a valid 0x2E; and a valid 0x09 (status), then a
    # repeat. Encoding again must give the same unknown items in the same order.
    wire = bytes.fromhex(
        "fcfe007d100000000000018221022500052004010110040a0702000000000000000009010382"
        "21022500052003012e03070301014a0108000301099804010a003304010b000004010c000004"
        "0109000004010e000109012e2024082310172903012f08030112040401850000040186000003"
        "0189010801840001fbff0000dbfcee")
    frame = BkvFrame.decode(wire)

    again = BkvFrame.decode(frame.encode())

    assert frame == again
    assert [0x2E, 0x09] == [item.key for item in again.message.unknown
                            if item.key in (0x2E, 0x09)]
