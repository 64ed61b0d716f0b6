"""The example servers of the documentation work: each is started on a free port and
a device-role connection from the library talks to it over a real TCP socket."""
from __future__ import annotations

import asyncio
import time

import pytest
import trio

from bkvcodec import (
    ConnectionEvent,
    DeviceConnection,
    DeviceHeartbeat,
    DeviceInput,
    DeviceRegistered,
    FrameRejected,
    ProtocolFamily,
    QueryStatus,
    ServerAnswered,
)

from .helpers import load_example

DEVICES = [
    pytest.param(ProtocolFamily.BKV, "82210225000520", id="bkv"),
    pytest.param(ProtocolFamily.AP3000, "04A228CD", id="ap3000"),
]


class Device:
    """A device-role connection and what it has received so far."""

    def __init__(self, protocol: ProtocolFamily, phy_id: str) -> None:
        self.conn = DeviceConnection(protocol=protocol, phy_id=phy_id)
        self.phy_id = phy_id
        self.protocol = protocol
        self.received: list[DeviceInput] = []

    def hello(self) -> bytes:
        """The greeting, then a registration (AP3000) or a heartbeat (BKV, whose first
        heartbeat registers the gateway)."""
        if self.protocol is ProtocolFamily.AP3000:
            self.conn.send(DeviceRegistered(phy_id=self.phy_id, protocol=self.protocol),
                           time.time())
            return self.conn.data_to_send()
        return self.conn.data_to_send() + self.heartbeat()

    def heartbeat(self) -> bytes:
        self.conn.send(DeviceHeartbeat(phy_id=self.phy_id, protocol=self.protocol,
                                       rssi=17, voltage_dv=2275), time.time())
        return self.conn.data_to_send()

    def feed(self, data: bytes) -> bytes:
        """Take the server's bytes; return the bytes to write."""
        self.received += self.conn.receive_data(data, time.time())
        return self.conn.data_to_send()

    def answers(self) -> int:
        return sum(isinstance(i, ServerAnswered) for i in self.received)

    def queried(self) -> bool:
        return any(isinstance(i, QueryStatus) for i in self.received)


def check(device: Device, events: list[ConnectionEvent]) -> None:
    kinds = [type(e).__name__ for e in events]

    # Registered, asked for its status, and two frames answered (the registration or
    # first heartbeat, then a heartbeat).
    assert ["DeviceRegistered"] == [k for k in kinds if k == "DeviceRegistered"]
    assert "DeviceHeartbeat" in kinds
    assert kinds.index("DeviceRegistered") < len(kinds) - 1 - kinds[::-1].index(
        "DeviceHeartbeat")
    assert device.answers() >= 2
    [query] = [i for i in device.received if isinstance(i, QueryStatus)]
    assert device.phy_id == query.phy_id
    assert all(not isinstance(e, FrameRejected) for e in events)


@pytest.mark.parametrize(("protocol", "phy_id"), DEVICES)
def test_asyncio_server_answers_and_queries_a_device(protocol: ProtocolFamily,
                                                     phy_id: str) -> None:
    example = load_example("asyncio_server")
    device = Device(protocol, phy_id)
    events: list[ConnectionEvent] = []

    async def scenario() -> None:
        server = await example.start(0, "127.0.0.1", on_event=events.append)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(device.hello())
            async with asyncio.timeout(10):
                # Registration answered and a status query received; then a heartbeat.
                while not (device.answers() >= 1 and device.queried()):
                    writer.write(device.feed(await reader.read(4096)))
                writer.write(device.heartbeat())
                while device.answers() < 2:
                    data = await reader.read(4096)
                    assert data, "the server closed the connection"
                    writer.write(device.feed(data))
            # Hang up; the server sees the end of the stream and closes its side.
            writer.write_eof()
            async with asyncio.timeout(10):
                assert b"" == await reader.read()
            writer.close()
            await writer.wait_closed()

    asyncio.run(scenario())

    check(device, events)


@pytest.mark.trio
@pytest.mark.parametrize(("protocol", "phy_id"), DEVICES)
async def test_trio_server_answers_and_queries_a_device(protocol: ProtocolFamily,
                                                        phy_id: str) -> None:
    example = load_example("trio_server")
    device = Device(protocol, phy_id)
    events: list[ConnectionEvent] = []

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(lambda task_status: example.serve(
            0, on_event=events.append, task_status=task_status))
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(device.hello())
                # Registration answered and a status query received; then a heartbeat.
                while not (device.answers() >= 1 and device.queried()):
                    await stream.send_all(device.feed(await stream.receive_some(4096)))
                await stream.send_all(device.heartbeat())
                while device.answers() < 2:
                    data = await stream.receive_some(4096)
                    assert data, "the server closed the connection"
                    await stream.send_all(device.feed(data))
                # Hang up; the server sees the end of the stream and closes its side.
                await stream.send_eof()
                while await stream.receive_some(4096):
                    pass
        nursery.cancel_scope.cancel()

    check(device, events)

