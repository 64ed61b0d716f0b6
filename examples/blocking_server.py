"""A minimal blocking server for BKV and AP3000 devices, with nothing but the
standard library's sockets around a :class:`bkvcodec.ServerConnection`.

The connection identifies the protocol, answers heartbeats and status reports by
itself, and reports the rest as events, which ``device_events.handle_read`` stores
(prints) before it acknowledges the settlements. Run it, then point a device (or
``python -m reference_server simulate``) at port 7065. One connection at a time and
no command timers; a real server uses a task per connection (see the asyncio and
trio examples), and the same objects work unchanged there.
"""
from __future__ import annotations

import socket
import time

from device_events import EventHandler, handle_read, print_event

from bkvcodec import ServerConnection


def serve_socket(listener: socket.socket, on_event: EventHandler = print_event) -> None:
    """Serve the connections *listener* accepts, one after the other, until it is
    shut down."""
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return  # the listening socket was shut down
        with sock:
            conn = ServerConnection()
            queried: set[str] = set()
            try:
                while data := sock.recv(4096):
                    events = conn.receive_data(data, time.time())
                    handle_read(conn, events, time.time(), on_event, queried)
                    sock.sendall(conn.data_to_send())
            except OSError:
                ended = conn.send_failed()
            else:
                ended = conn.receive_eof()
            for event in ended:
                on_event(event)


def serve(port: int = 7065) -> None:
    with socket.create_server(("", port)) as listener:
        serve_socket(listener)


if __name__ == "__main__":
    serve()
