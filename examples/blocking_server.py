"""A minimal blocking server for BKV and AP3000 devices, with nothing but the
standard library's sockets around a :class:`bkvcodec.ServerConnection`.

The connection identifies the protocol, answers heartbeats, status reports and
settlements by itself, and reports the rest as events, which this example prints.
Run it, then point a device (or ``python -m reference_server simulate``) at port
7065. One connection at a time; a real server uses a thread or a task per
connection, and the same objects work unchanged under asyncio or trio.
"""
from __future__ import annotations

import socket
import time

from bkvcodec import FrameRejected, ServerConnection


def serve(port: int = 7065) -> None:
    with socket.create_server(("", port)) as server:
        while True:
            sock, peer = server.accept()
            with sock:
                conn = ServerConnection()
                while data := sock.recv(4096):
                    for event in conn.receive_data(data, time.time()):
                        if isinstance(event, FrameRejected):
                            print(peer, "rejected:", event.error.code)
                        else:
                            print(peer, event)
                    sock.sendall(conn.data_to_send())
                conn.receive_eof()


if __name__ == "__main__":
    serve()
