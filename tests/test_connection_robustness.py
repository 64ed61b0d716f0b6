"""No uplink, however odd, can make a connection raise or stop: every valid frame of
every kind, and arbitrary bytes, through server- and device-role connections."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bkvcodec import DeviceConnection, Direction, ProtocolFamily, ServerConnection
from bkvcodec._ap3000.codec import Ap3000Frame
from bkvcodec.bkv import BkvFrame
from bkvcodec.testing import ap3000_frames, bkv_frames

T0 = 1729407600.0


def _up(frame: BkvFrame | Ap3000Frame) -> bool:
    return frame.direction is Direction.UP


@settings(max_examples=60)
@given(st.lists(bkv_frames().filter(_up), min_size=1, max_size=4))
def test_server_survives_any_bkv_uplink(frames: list[BkvFrame]) -> None:
    server = ServerConnection()

    for i, frame in enumerate(frames):
        server.receive_data(frame.encode(), T0 + i)
        server.data_to_send()
    server.handle_timeout(T0 + 100)


@given(st.lists(ap3000_frames(direction=Direction.UP), min_size=1, max_size=6))
def test_server_survives_any_ap3000_uplink(frames: list[Ap3000Frame]) -> None:
    server = ServerConnection()

    for i, frame in enumerate(frames):
        server.receive_data(frame.encode(), T0 + i)
        server.data_to_send()


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_server_survives_noise(chunks: list[bytes]) -> None:
    server = ServerConnection()

    for i, chunk in enumerate(chunks):
        server.receive_data(chunk, T0 + i)


@settings(max_examples=60)
@given(st.lists(bkv_frames().filter(lambda f: not _up(f)), min_size=1, max_size=4))
def test_bkv_device_survives_any_downlink(frames: list[BkvFrame]) -> None:
    device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id="82210225000520")

    for i, frame in enumerate(frames):
        device.receive_data(frame.encode(), T0 + i)


@given(st.lists(ap3000_frames(direction=Direction.DOWN), min_size=1, max_size=6))
def test_ap3000_device_survives_any_downlink(frames: list[Ap3000Frame]) -> None:
    device = DeviceConnection(protocol=ProtocolFamily.AP3000, phy_id="04A228CD")

    for i, frame in enumerate(frames):
        device.receive_data(frame.encode(), T0 + i)
