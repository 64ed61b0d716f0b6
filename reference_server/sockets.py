# Listening sockets that several processes share (SO_REUSEPORT): the device
# gateway and the HTTP API of every worker of one machine bind the same ports.
"""Listening sockets shared between the server processes of one machine."""
from __future__ import annotations

import socket

__all__ = ["shared_port_socket"]


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to *host*:*port* with ``SO_REUSEPORT``: every process
    that binds the same way shares the port, the kernel spreading new connections
    over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
