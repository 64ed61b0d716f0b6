"""A device server on asyncio: one :class:`bkvcodec.ServerConnection` per TCP
connection, driven by ``asyncio.start_server``.

The connection identifies the protocol (BKV/GN or AP3000), answers heartbeats,
registrations, status reports and settlements by itself, and reports the rest as
events, which this example prints. When a device registers, the server asks it for
its port status, to show how commands go out: :meth:`~bkvcodec.ServerConnection.send`
frames them, and the connection paces and retransmits them on its own timers, which
is why each read waits at most until :meth:`~bkvcodec.ServerConnection.next_deadline`.
Outcomes come back as ``CommandAcknowledged``, ``CommandRejected`` or
``CommandTimedOut`` events.

Run it, then point devices at it::

    python examples/asyncio_server.py --port 7065
    python -m reference_server simulate --server 127.0.0.1:7065 --bkv 1 --ap3000 1
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable

from bkvcodec import (
    ConnectionEvent,
    DeviceRegistered,
    FrameRejected,
    QueryStatus,
    ServerConnection,
)

#: What the server does with each event; a real server updates its database here.
EventHandler = Callable[[ConnectionEvent], None]

_command_ids = itertools.count(1)


def print_event(event: ConnectionEvent) -> None:
    if isinstance(event, FrameRejected):
        print("rejected:", event.error.code, flush=True)
    else:
        print(event, flush=True)


async def handle_device(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        on_event: EventHandler = print_event) -> None:
    """Serve one device connection until the device closes it."""
    conn = ServerConnection()
    try:
        while True:
            # Read until the connection's next timer (a retransmission, the spacing
            # between commands, a command's timeout) is due.
            deadline = conn.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout)
            except TimeoutError:
                events = conn.handle_timeout(time.time())
            else:
                if not data:
                    break
                events = conn.receive_data(data, time.time())
            # send() returns everything pending, answers included: write what it
            # returns, then whatever else is waiting, in that order.
            output = b""
            for event in events:
                on_event(event)
                if isinstance(event, DeviceRegistered):
                    output += conn.send(QueryStatus(command_id=f"status-{next(_command_ids)}",
                                                    phy_id=event.phy_id), time.time())
            output += conn.data_to_send()
            writer.write(output)
            await writer.drain()
    except ConnectionError:
        pass  # the device went away mid-write; its connection is over either way
    finally:
        dropped = conn.receive_eof()  # commands whose outcome is now unknown
        if dropped:
            print("connection closed; unanswered commands:", dropped, flush=True)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def start(port: int = 7065, host: str | None = None,
                on_event: EventHandler = print_event) -> asyncio.Server:
    """Start listening; the caller serves (``serve_forever``) and closes the server."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_device(reader, writer, on_event)

    return await asyncio.start_server(handler, host, port)


async def main(port: int) -> None:
    async with await start(port) as server:
        print("listening on port", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A bkvcodec device server on asyncio.")
    parser.add_argument("--port", type=int, default=7065)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        pass
