"""The device gateway over real TCP sockets on loopback."""
from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from bkvcodec import (
    CommandSent,
    ConnectionEvent,
    DeviceConnection,
    DeviceHeartbeat,
    Direction,
    ProtocolFamily,
    QueryStatus,
)
from bkvcodec.bkv import BkvFrame, HeartbeatAck
from reference_server.gateway import DeviceLink, Gateway, GatewaySettings
from reference_server.logs import Logger

GATEWAY_ID = "82210225000520"


class Recorder:
    def __init__(self) -> None:
        self.events: list[ConnectionEvent] = []
        self.closed: list[list[str]] = []
        self.traffic_log: list[tuple[Direction, list[str]]] = []
        self.sent: list[CommandSent] = []
        self.traffic_devices: list[tuple[Direction, list[str], str | None]] = []
        self.changed = trio.Event()

    async def device_events(self, link: DeviceLink, events: list[ConnectionEvent]) -> None:
        self.events += events
        self.changed.set()
        self.changed = trio.Event()

    async def link_closed(self, link: DeviceLink, phy_ids: list[str],
                          dropped_commands: list[str]) -> None:
        self.closed.append(phy_ids)

    def traffic(self, link: DeviceLink, direction: Direction, data: bytes, kinds: list[str],
                phy_id: str | None, *, msg_id: int | None = None) -> None:
        self.traffic_log.append((direction, kinds))
        self.traffic_devices.append((direction, kinds, phy_id))

    def commands_sent(self, link: DeviceLink, sent: list[CommandSent]) -> None:
        self.sent += sent


@asynccontextmanager
async def running(settings: GatewaySettings | None = None
                  ) -> AsyncIterator[tuple[Gateway, Recorder, int]]:
    """A gateway on a free loopback port, cancelled when the block ends (even on failure)."""
    async with trio.open_nursery() as nursery:
        try:
            with trio.fail_after(10):  # a hang is a failure, not a stuck test run
                yield await _start(nursery, settings)
        finally:
            nursery.cancel_scope.cancel()


async def _start(nursery: trio.Nursery, settings: GatewaySettings | None = None
                 ) -> tuple[Gateway, Recorder, int]:

    recorder = Recorder()
    gateway = Gateway(recorder, Logger("debug", io.StringIO()), settings)
    listeners = await nursery.start(gateway.serve, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    return gateway, recorder, port


async def _heartbeat(port: int, device: DeviceConnection) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    device.send(DeviceHeartbeat(phy_id=GATEWAY_ID, protocol=ProtocolFamily.BKV), 0)
    await stream.send_all(device.data_to_send())
    return stream


@pytest.mark.trio
async def test_heartbeat_is_answered_and_reported() -> None:
    async with running() as (gateway, recorder, port):
        device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)

        stream = await _heartbeat(port, device)
        reply = await stream.receive_some(1024)

        assert isinstance(BkvFrame.decode(reply).message, HeartbeatAck)
        with trio.fail_after(5):
            while not recorder.events:
                await recorder.changed.wait()
        assert ["DeviceRegistered", "DeviceHeartbeat"] == [
            type(e).__name__ for e in recorder.events]
        assert gateway.is_online(GATEWAY_ID)
        await stream.aclose()
        # The gateway forgets the link first, then reports the close to the sink.
        with trio.fail_after(5):
            while gateway.is_online(GATEWAY_ID) or not recorder.closed:
                await trio.sleep(0.01)
        assert [[GATEWAY_ID]] == recorder.closed


@pytest.mark.trio
async def test_garbage_on_one_connection_does_not_disturb_another() -> None:
    async with running() as (_gateway, _recorder, port):
        noisy = await trio.open_tcp_stream("127.0.0.1", port)
        await noisy.send_all(b"\x16\x03\x01" + bytes(range(256)) * 8)
        device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)

        stream = await _heartbeat(port, device)

        assert isinstance(BkvFrame.decode(await stream.receive_some(1024)).message,
                          HeartbeatAck)
        await noisy.aclose()
        await stream.aclose()


@pytest.mark.trio
async def test_reconnect_replaces_the_old_connection() -> None:
    async with running() as (gateway, _recorder, port):
        device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)
        first = await _heartbeat(port, device)
        await first.receive_some(1024)

        second = await _heartbeat(port, device)
        await second.receive_some(1024)

        with trio.fail_after(5):
            assert b"" == await first.receive_some(1024)  # the old socket was closed
        assert gateway.is_online(GATEWAY_ID)
        await first.aclose()
        await second.aclose()


@pytest.mark.trio
async def test_command_reaches_the_device() -> None:
    async with running() as (gateway, _recorder, port):
        device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)
        async with await _heartbeat(port, device) as stream:
            device.receive_data(await stream.receive_some(1024), 0)

            sent = await gateway.send(GATEWAY_ID, QueryStatus(command_id="q",
                                                              phy_id=GATEWAY_ID))
            received = device.receive_data(await stream.receive_some(1024), 1)
            offline = await gateway.send("04A228CD", QueryStatus(command_id="x",
                                                                 phy_id="04A228CD"))

        assert sent and not offline
        assert [QueryStatus(command_id=received[0].command_id, phy_id=GATEWAY_ID)] == received


@pytest.mark.trio
async def test_retransmissions_are_logged_with_their_device_and_reported_sent() -> None:
    now = [1_000.0]
    async with trio.open_nursery() as nursery:
        recorder = Recorder()
        gateway = Gateway(recorder, Logger("debug", io.StringIO()), clock=lambda: now[0])
        [listener] = await nursery.start(gateway.serve, "127.0.0.1", 0)
        port = listener.socket.getsockname()[1]
        device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)
        with trio.fail_after(5):
            async with await _heartbeat(port, device) as stream:
                device.receive_data(await stream.receive_some(1024), 0)
                await gateway.send(GATEWAY_ID, QueryStatus(command_id="q", phy_id=GATEWAY_ID))
                first = BkvFrame.decode(await stream.receive_some(1024))

                # Past the BKV reply timeout: the gateway's sweeper, which looks at the
                # clock at least once a second, resends.
                now[0] += 11
                again = BkvFrame.decode(await stream.receive_some(1024))
                while len(recorder.sent) < 2:
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()

    assert first == again
    assert [CommandSent(command_id="q", phy_id=GATEWAY_ID, message_id=first.seq, attempt=n)
            for n in (1, 2)] == recorder.sent
    assert (Direction.DOWN, ["retransmission"], GATEWAY_ID) in recorder.traffic_devices


@pytest.mark.trio
async def test_idle_connection_is_closed() -> None:
    async with running(GatewaySettings(idle_timeout=0.2)) as (_gateway, _recorder, port):
        stream = await trio.open_tcp_stream("127.0.0.1", port)

        with trio.fail_after(5):
            assert b"" == await stream.receive_some(1024)
        await stream.aclose()


@pytest.mark.trio
async def test_a_device_that_reads_nothing_costs_a_write_timeout_not_other_devices() -> None:
    settings = GatewaySettings(write_timeout=0.3, idle_timeout=1.0)
    async with running(settings) as (gateway, _recorder, port):
        stuck_device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)
        stuck = await _heartbeat(port, stuck_device)
        await stuck.receive_some(1024)
        link = gateway.link_for(GATEWAY_ID)
        assert link is not None
        # More than the socket buffers hold: the first write takes a part, the rest
        # waits for a reader that never comes.
        flood = b"\xfc" * (32 << 20)

        assert [] == await gateway._write_data(link, flood, [], "test", GATEWAY_ID)

        assert link.closed and link.write_failed
        other_id = "82210225000521"
        other_device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=other_id)
        other = await trio.open_tcp_stream("127.0.0.1", port)
        other_device.send(DeviceHeartbeat(phy_id=other_id, protocol=ProtocolFamily.BKV), 0)
        await other.send_all(other_device.data_to_send())
        assert isinstance(BkvFrame.decode(await other.receive_some(1024)).message, HeartbeatAck)
        # The stuck connection's task ends when it falls silent.
        with trio.fail_after(5):
            while gateway.is_online(GATEWAY_ID):
                await trio.sleep(0.05)
        await stuck.aclose()
        await other.aclose()


@pytest.mark.trio
async def test_a_write_behind_another_waits_for_it_and_both_arrive_whole() -> None:
    async with running() as (gateway, _recorder, port):
        device = DeviceConnection(protocol=ProtocolFamily.BKV, phy_id=GATEWAY_ID)
        stream = await _heartbeat(port, device)
        await stream.receive_some(1024)
        link = gateway.link_for(GATEWAY_ID)
        assert link is not None
        big, small = bytes(range(256)) * 16384, b"\x01\x02\x03"  # 4 MiB, then 3 bytes
        received = bytearray()

        async def read_all() -> None:
            while len(received) < len(big) + len(small):
                received.extend(await stream.receive_some(1 << 20))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway._write_data, link, big, [], "test", GATEWAY_ID)
            await trio.sleep(0.05)  # the big write is under way and waits for the reader
            nursery.start_soon(gateway._write_data, link, small, [], "test", GATEWAY_ID)
            nursery.start_soon(read_all)

        assert bytes(received) == big + small
        await stream.aclose()
