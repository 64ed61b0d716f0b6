"""Properties of the AP3000 codec over generated messages: encode then decode is identity
for every message kind, the JSON form round-trips, and the fast decoders agree with the
construct grammar on generated, resized, mutated and random frames."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bkvcodec import Direction, RemoteProtocolError, frame_from_json, frame_to_json, message_name
from bkvcodec._ap3000.codec import checksum, reference_decode
from bkvcodec._ap3000.messages import MESSAGE_TYPES
from bkvcodec.ap3000 import (
    Ap3000Frame,
    Ap3000FrameSizeWarning,
    Ap3000Message,
    UnknownAp3000Command,
)
from bkvcodec.errors import PayloadError
from bkvcodec.testing import ap3000_frame_bytes, ap3000_frames, ap3000_messages

# Under ``python -bb`` Hypothesis's own data cache can compare a key holding bytes
# with one holding an int when two hashes collide; that is not the code under test.

_KINDS = sorted((command, direction.value) for command, direction, _ in MESSAGE_TYPES.values())
_directions = st.sampled_from(list(Direction))


def _frame(message: Ap3000Message) -> Ap3000Frame:
    return Ap3000Frame(physical_id=0x04A26CF3, message_id=0x1234, message=message)


@pytest.mark.parametrize(("command", "direction"), _KINDS,
                         ids=[f"{c:02X}-{d}" for c, d in _KINDS])
@settings(max_examples=15)
@given(data=st.data())
def test_every_message_kind_round_trips(command: int, direction: str,
                                        data: st.DataObject) -> None:
    from bkvcodec.testing import _AP3000_BY_KEY

    message = data.draw(_AP3000_BY_KEY[(command, Direction(direction))])
    frame = _frame(message)
    encoded = frame.encode()

    assert frame == Ap3000Frame.decode(encoded, Direction(direction))
    assert frame == reference_decode(encoded, Direction(direction))
    assert (command, Direction(direction)) == (frame.command, frame.direction)
    assert encoded == frame_from_json(frame_to_json(frame, encoded)).encode()


@given(ap3000_frames())
def test_decode_encode_is_identity(frame: Ap3000Frame) -> None:
    data = frame.encode()

    assert frame == Ap3000Frame.decode(data, frame.direction)
    assert data == Ap3000Frame.decode(data, frame.direction).encode()


@given(ap3000_frames())
def test_grammar_decoder_agrees_on_valid_frames(frame: Ap3000Frame) -> None:
    data = frame.encode()

    assert Ap3000Frame.decode(data, frame.direction) == reference_decode(data, frame.direction)


@given(ap3000_frames())
def test_json_form_round_trips(frame: Ap3000Frame) -> None:
    data = frame.encode()

    assert data == frame_from_json(frame_to_json(frame, data)).encode()


def _outcome(data: bytes, direction: Direction, fast: bool) -> object:
    try:
        if fast:
            return Ap3000Frame.decode(data, direction)
        return reference_decode(data, direction)
    except RemoteProtocolError:
        return "rejected"


def _reframe(data: bytearray) -> bytes:
    """*data* (a frame whose data field was resized) with its length and checksum fixed."""
    length = len(data) - 5
    data[3:5] = length.to_bytes(2, "little")
    data[-2:] = checksum(bytes(data), len(data) - 2).to_bytes(2, "little")
    return bytes(data)


@st.composite
def _resized(draw: st.DrawFn) -> tuple[bytes, Direction]:
    """A valid frame whose data is cut short or extended, re-framed correctly: every
    optional-tail boundary and every payload_too_short case."""
    direction = draw(_directions)
    data = bytearray(draw(ap3000_frame_bytes(direction)))
    body, tail = data[:-2], data[-2:]
    cut = draw(st.integers(12, len(body)))
    body = body[:cut] + draw(st.binary(max_size=draw(st.sampled_from([0, 0, 3, 20]))))
    return _reframe(body + tail), direction


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[bytes, Direction]:
    direction = draw(_directions)
    data = bytearray(draw(ap3000_frame_bytes(direction)))
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    # Keep length and checksum right half of the time, so that payload decoding is reached.
    if draw(st.booleans()) and len(data) >= 14 and data[:3] == b"DNY":
        if data[3] | data[4] << 8 == len(data) - 5:
            data[-2:] = checksum(bytes(data), len(data) - 2).to_bytes(2, "little")
    return bytes(data), direction


@given(st.one_of(_resized(), _mutated(), st.tuples(st.binary(max_size=64), _directions)))
@example((bytes.fromhex("444E590E00A18601060101218E08100100F102"), Direction.UP))
@example((bytes.fromhex("444E5909003B37AB04B9002000EF02"), Direction.UP))
def test_fast_decoder_agrees_with_grammar_on_any_bytes(case: tuple[bytes, Direction]) -> None:
    data, direction = case

    assert _outcome(data, direction, False) == _outcome(data, direction, True)


@given(_resized())
def test_payload_errors_are_payload_too_short(case: tuple[bytes, Direction]) -> None:
    data, direction = case
    try:
        frame = Ap3000Frame.decode(data, direction)
    except PayloadError as err:
        assert "payload_too_short" == err.code
    else:
        assert data == frame.encode()


@given(st.binary(max_size=80), _directions)
def test_one_shot_decode_raises_only_library_errors(data: bytes, direction: Direction) -> None:
    for candidate in (data, b"DNY" + data, b"DNY" + len(data).to_bytes(2, "little") + data):
        try:
            Ap3000Frame.decode(candidate, direction)
        except RemoteProtocolError:
            pass


@given(ap3000_messages())
def test_every_message_has_a_name(message: Ap3000Message) -> None:
    name = message_name(message)

    assert name.islower()
    if not isinstance(message, UnknownAp3000Command):
        assert name == MESSAGE_TYPES[type(message)][2]


def test_unknown_commands_decode_as_raw_data() -> None:
    data = bytes.fromhex("444E590C00F36CA2040100230102039E02")
    data = _reframe(bytearray(data))

    frame = Ap3000Frame.decode(data, Direction.UP)

    assert UnknownAp3000Command(direction=Direction.UP, command=0x23,
                                data=bytes.fromhex("010203")) == frame.message
    assert data == frame.encode()
    assert "unknown" == frame_to_json(frame)["message"]


def test_frames_above_the_documented_size_warn() -> None:
    big = UnknownAp3000Command(direction=Direction.DOWN, command=0xF9, data=bytes(300))

    with pytest.warns(Ap3000FrameSizeWarning):
        data = _frame(big).encode()

    assert 309 == data[3] | data[4] << 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from bkvcodec.ap3000 import Ap3000LegacyFirmwarePacket

        legacy = _frame(Ap3000LegacyFirmwarePacket(total_packets=1, packet_no=1,
                                                   firmware=bytes(256))).encode()
    assert 269 == legacy[3] | legacy[4] << 8
