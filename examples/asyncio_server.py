"""A device server on asyncio: one :class:`bkvcodec.ServerConnection` per TCP
connection, driven by ``asyncio.start_server``.

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

    python examples/asyncio_server.py --port 7065
    python -m reference_server simulate --server 127.0.0.1:7065 --bkv 1 --ap3000 1
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from device_events import EventHandler, handle_read, print_event

from bkvcodec import ConnectionEvent, ServerConnection


async def handle_device(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
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
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout)
            except TimeoutError:
                events = conn.handle_timeout(time.time())
            else:
                if not data:
                    ended = conn.receive_eof()
                    break
                events = conn.receive_data(data, time.time())
            handle_read(conn, events, time.time(), on_event, queried)
            writer.write(conn.data_to_send())
            try:
                await writer.drain()
            except ConnectionError:
                ended = conn.send_failed()
                break
    finally:
        # Commands whose outcome is unknown, answers the device never heard.
        for event in ended:
            on_event(event)
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
