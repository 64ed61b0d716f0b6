"""A device server on trio: one :class:`bkvcodec.ServerConnection` per TCP
connection, served by ``trio.serve_tcp``.

The connection identifies the protocol (BKV/GN or AP3000), answers heartbeats,
registrations and status reports by itself, and reports the rest as events.
``device_events.handle_read`` stores them (here: prints them) and only then
acknowledges the settlements the connection held, and asks each device for its
status once per connection, to show how commands go out:
:meth:`~bkvcodec.ServerConnection.send` queues them, the connection paces and
retransmits them on its own timers (each read waits at most until
:meth:`~bkvcodec.ServerConnection.next_deadline`), and every byte to write comes out
of :meth:`~bkvcodec.ServerConnection.data_to_send`.

Run it, then point devices at it::

    python examples/trio_server.py --port 7065
    python -m reference_server simulate --server 127.0.0.1:7065 --bkv 1 --ap3000 1

``reference_server/gateway.py`` is the full version of this handler: idle and write
timeouts, one connection per device, commands from the HTTP API.
"""
from __future__ import annotations

import argparse
import math
import time

import trio
from device_events import EventHandler, handle_read, print_event

from bkvcodec import ConnectionEvent, ServerConnection


async def handle_device(stream: trio.SocketStream,
                        on_event: EventHandler = print_event) -> None:
    """Serve one device connection until the device closes it."""
    conn = ServerConnection()
    queried: set[str] = set()
    ended: list[ConnectionEvent] = []
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
                ended = conn.receive_eof()
                break
            else:
                events = conn.receive_data(data, time.time())
            handle_read(conn, events, time.time(), on_event, queried)
            output = conn.data_to_send()
            if output:
                try:
                    await stream.send_all(output)
                except trio.BrokenResourceError:
                    ended = conn.send_failed()
                    break
    finally:
        # Commands whose outcome is unknown, answers the device never heard.
        for event in ended:
            on_event(event)
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
