"""The pure parts of the benchmark's load generator (``bench/loadgen.py``): the frames it
encodes once and patches, and how it recognises the server's answer without decoding."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bkvcodec import (
    ChargeMode,
    DeviceHeartbeat,
    Direction,
    ModemIdentified,
    ProtocolFamily,
    ServerConnection,
    StartCharging,
)
from bkvcodec.ap3000 import Ap3000Frame, Ap3000Heartbeat
from bkvcodec.bkv import BkvFrame, Heartbeat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from loadgen import AnswerScanner, DeviceFrames, device_identity

T0 = 1_796_590_000.0
UP = Direction.UP
DEVICES = [device_identity(0, 2), device_identity(1, 2)]


def answered(frames: DeviceFrames, server: ServerConnection, data: bytes) -> bytes:
    """What the server writes back for *data* (the heartbeat's answer)."""
    events = server.receive_data(data, T0)
    assert any(isinstance(e, DeviceHeartbeat) and e.phy_id == frames.phy_id for e in events)
    return server.data_to_send()


def test_identities_mix_the_protocols() -> None:
    assert [p for p, _ in DEVICES] == [ProtocolFamily.BKV, ProtocolFamily.AP3000]


@pytest.mark.parametrize(("protocol", "phy_id"), DEVICES)
def test_hello_registers_the_device(protocol: ProtocolFamily, phy_id: str) -> None:
    frames = DeviceFrames(protocol, phy_id)
    events = ServerConnection().receive_data(frames.hello, T0)
    heartbeats = [e for e in events if isinstance(e, DeviceHeartbeat)]
    assert [h.phy_id for h in heartbeats] == [phy_id]
    if protocol is ProtocolFamily.AP3000:
        assert isinstance(events[0], ModemIdentified)


def test_bkv_heartbeat_is_the_library_frame() -> None:
    frames = DeviceFrames(*DEVICES[0])
    data, message_id = frames.heartbeat()
    assert message_id is None
    frame = BkvFrame.decode(data)
    assert isinstance(frame.message, Heartbeat)
    assert frame.gateway_id == DEVICES[0][1] and frame.seq == 0
    assert frames.heartbeat()[0] == data


def test_ap3000_heartbeats_carry_rising_message_ids_and_valid_checksums() -> None:
    frames = DeviceFrames(*DEVICES[1])
    first = frames.first_message_id()
    assert first == Ap3000Frame.decode(frames.hello[-len(frames.heartbeat()[0]):], UP).message_id
    frames.message_id = 0xFFFA  # across the high byte's carry and the wrap to 0
    seen = []
    for _ in range(10):
        data, message_id = frames.heartbeat()
        frame = Ap3000Frame.decode(data, UP)  # checks the checksum
        assert isinstance(frame.message, Ap3000Heartbeat)
        assert frame.phy_id == DEVICES[1][1] and frame.message_id == message_id
        seen.append(message_id)
    assert seen == [0xFFFB, 0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF, 0, 1, 2, 3, 4]


@pytest.mark.parametrize(("protocol", "phy_id"), DEVICES)
def test_a_real_answer_is_recognised_whole_and_in_pieces(protocol: ProtocolFamily,
                                                         phy_id: str) -> None:
    frames = DeviceFrames(protocol, phy_id)
    server = ServerConnection()
    scanner = AnswerScanner(frames)
    scanner.expected_id = frames.first_message_id()
    assert scanner.feed(answered(frames, server, frames.hello)) == 1
    for _ in range(3):
        data, scanner.expected_id = frames.heartbeat()
        answer = answered(frames, server, data)
        assert scanner.feed(answer[:3]) == 0
        assert scanner.feed(answer[3:]) == 1
    assert scanner.garbage == 0 and scanner.others == []


@pytest.mark.parametrize(("protocol", "phy_id"), DEVICES)
def test_garbage_and_near_misses_are_not_answers(protocol: ProtocolFamily,
                                                 phy_id: str) -> None:
    frames = DeviceFrames(protocol, phy_id)
    server = ServerConnection()
    server.receive_data(frames.hello, T0)
    server.data_to_send()
    data, expected = frames.heartbeat()
    answer = answered(frames, server, data)
    scanner = AnswerScanner(frames)
    scanner.expected_id = expected
    corrupt = bytearray(answer)
    corrupt[len(answer) // 2] ^= 0x01  # the checksum no longer matches
    assert scanner.feed(bytes(corrupt)) == 0
    assert scanner.feed(b"\x00garbage\xfc\xffDNY" + b"\x55" * 40) == 0
    assert scanner.garbage > 0
    # Another device's answer, and (AP3000) the answer to an earlier message id.
    other = DeviceFrames(*device_identity(2 if protocol is ProtocolFamily.BKV else 3, 2))
    assert other.protocol is protocol
    other_server = ServerConnection()
    other_server.receive_data(other.hello, T0)
    fresh = AnswerScanner(frames)
    fresh.expected_id = expected
    assert fresh.feed(other_server.data_to_send()) == 0
    assert len(fresh.others) == 1 and fresh.garbage == 0
    if protocol is ProtocolFamily.AP3000:
        assert expected is not None
        fresh.expected_id = (expected + 1) & 0xFFFF
        assert fresh.feed(answer) == 0
    # The real answer after all that garbage is still found.
    scanner.feed(b"")
    assert scanner.feed(answer) == 1


@pytest.mark.parametrize(("protocol", "phy_id"), DEVICES)
def test_a_command_is_kept_for_the_full_device(protocol: ProtocolFamily, phy_id: str) -> None:
    frames = DeviceFrames(protocol, phy_id)
    server = ServerConnection()
    server.receive_data(frames.hello, T0)
    server.data_to_send()
    server.send(StartCharging(command_id="c1", phy_id=phy_id, port_no=1, duration_s=600,
                              order_no="THD1729407600001", mode=ChargeMode.TIME), T0)
    command = server.data_to_send()
    assert command
    scanner = AnswerScanner(frames)
    scanner.expected_id = frames.first_message_id()
    assert scanner.feed(command) == 0
    assert scanner.others == [command] and scanner.garbage == 0
