"""A device server on trio: one :class:`bkvcodec.ServerConnection` per TCP
connection, served by ``trio.serve_tcp``.

The connection identifies the protocol (BKV/GN or AP3000), answers heartbeats,
registrations, status reports and settlements by itself, and reports the rest as
events, which this example prints. When a device registers, the server asks it for
its port status, to show how commands go out: :meth:`~bkvcodec.ServerConnection.send`
frames them, and the connection paces and retransmits them on its own timers, which
is why each read waits at most until :meth:`~bkvcodec.ServerConnection.next_deadline`.
Outcomes come back as ``CommandAcknowledged``, ``CommandRejected`` or
``CommandTimedOut`` events.

Run it, then point devices at it::

    python examples/trio_server.py --port 7065
    python -m reference_server simulate --server 127.0.0.1:7065 --bkv 1 --ap3000 1

``reference_server/gateway.py`` is the full version of this handler: idle and write
timeouts, one connection per device, commands from the HTTP API.
"""
from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable

import trio

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


async def handle_device(stream: trio.SocketStream,
                        on_event: EventHandler = print_event) -> None:
    """Serve one device connection until the device closes it."""
    conn = ServerConnection()
    try:
        while True:
            # Read until the connection's next timer (a retransmission, the spacing
            # between commands, a command's timeout) is due.
            deadline = conn.next_deadline()
            timeout = math.inf if deadline is None else max(0.0, deadline - time.time())
            data: bytes | None = None
            with trio.move_on_after(timeout):
                data = await stream.receive_some(4096)
            if data is None:
                events = conn.handle_timeout(time.time())
            elif not data:
                break
            else:
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
            if output:
                await stream.send_all(output)
    except trio.BrokenResourceError:
        pass  # the device went away mid-write; its connection is over either way
    finally:
        dropped = conn.receive_eof()  # commands whose outcome is now unknown
        if dropped:
            print("connection closed; unanswered commands:", dropped, flush=True)
        await trio.aclose_forcefully(stream)


async def serve(port: int = 7065, *, on_event: EventHandler = print_event,
                task_status: trio.TaskStatus[list[trio.SocketListener]]
                = trio.TASK_STATUS_IGNORED) -> None:
    """Serve devices on *port* until cancelled; ``nursery.start(serve, 0)`` returns
    the listeners (and so the port the system chose)."""
    async def handler(stream: trio.SocketStream) -> None:
        await handle_device(stream, on_event)

    await trio.serve_tcp(handler, port, task_status=task_status)


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, port)
        print("listening on port", listeners[0].socket.getsockname()[1], flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A bkvcodec device server on trio.")
    parser.add_argument("--port", type=int, default=7065)
    try:
        trio.run(main, parser.parse_args().port)
    except KeyboardInterrupt:
        pass
