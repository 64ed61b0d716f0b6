"""Devices and attackers for the fault tests: library device connections over real
loopback TCP, each from a chosen local address (127.0.0.0/8), with its own ICCID."""
from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import trio

from bkvcodec import (
    DeviceConnection,
    DeviceHeartbeat,
    DeviceOutput,
    ProtocolFamily,
    ServerAnswered,
)
from tests.server.harness import Device, RunningServer

ICCID = "89860000000000000001"
OTHER_ICCID = "89860000000000000002"
#: The "other address" of takeover stories; loopback like every address here.
ATTACKER_ADDRESS = "127.0.0.2"


class Peer(Device):
    """A device-role connection from *local_address*, presenting *iccid*."""

    def __init__(self, protocol: ProtocolFamily, phy_id: str, *, iccid: str = ICCID,
                 local_address: str = "127.0.0.1") -> None:
        super().__init__(protocol, phy_id)
        self.iccid = iccid
        self.local_address = local_address

    async def connect(self, nursery: trio.Nursery, port: int) -> None:
        """Open the connection and send one heartbeat (not waiting for its answer)."""
        self.connection = DeviceConnection(protocol=self.protocol, phy_id=self.phy_id,
                                           iccid=self.iccid)
        self.stream = await trio.open_tcp_stream("127.0.0.1", port,
                                                 local_address=self.local_address)
        host, local_port = self.stream.socket.getsockname()[:2]
        #: How the server sees this connection's address (``remote_addr``).
        self.local_name = f"{host}:{local_port}"
        await self._write(self.connection.data_to_send())
        await nursery.start(self._read)
        await self.heartbeat()

    async def heartbeat(self) -> None:
        await self.send(DeviceHeartbeat(phy_id=self.phy_id, protocol=self.protocol))

    async def wait_closed(self) -> None:
        """Until the server has closed the connection."""
        while not self.closed_by_peer:
            await self.changed.wait()

    async def expect_answer(self) -> ServerAnswered:
        """Wait for (and take) the server's next answer."""
        return await self.expect(ServerAnswered)

    async def send_as(self, phy_id: str, event: DeviceOutput) -> None:
        """Send *event* encoded for another device id on this connection."""
        other = DeviceConnection(protocol=self.protocol, phy_id=phy_id, iccid=self.iccid)
        other.data_to_send()  # not the greeting (the modem's ICCID) a second time
        other.send(event, time.time())
        await self._write(other.data_to_send())

    def answers(self) -> int:
        """How many answers (heartbeat replies …) the server has sent so far."""
        return sum(isinstance(i, ServerAnswered) for i in self.inputs)


async def metric(server: RunningServer, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when absent)."""
    text = (await server.api.get("/metrics")).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                     if labels else "")
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


def rows(db_path: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    """Rows of *query* on the server's database, read by a second connection."""
    with closing(sqlite3.connect(db_path)) as db:
        return [tuple(r) for r in db.execute(query, args).fetchall()]


async def events_of(server: RunningServer, event_type: str) -> list[dict[str, object]]:
    """The recorded events of *event_type*, oldest first (their ``data``)."""
    response = await server.call("GET", "/events?after=0&limit=500")
    return [e["data"] for e in response.json()["data"]["items"]
            if e["event_type"] == event_type]
