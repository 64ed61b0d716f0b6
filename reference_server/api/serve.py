# Serving the ASGI application with hypercorn's trio worker, as one task in the
# caller's nursery (STYLE.md: main() opens one nursery and starts every server).
#
# hypercorn binds the listening socket itself (config.bind) and reports what it
# bound through its own task_status as URLs ("http://127.0.0.1:41234"); we read the
# actual port back from that, so port 0 (any free port, for tests) works and the
# caller learns the real address. Its access log is off (the API times every
# request into /metrics and logs failures itself); its error log is forwarded to
# our JSON logger when one is given, else silenced.
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from ..sockets import shared_port_socket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypercorn.typing import Framework
    from starlette.types import ASGIApp

    from ..logs import Logger

__all__ = ["parse_bound_address", "serve_http"]

#: Seconds hypercorn waits for one read from a client socket.
_READ_TIMEOUT = 30


class _ForwardToLogger(logging.Handler):
    """Hands hypercorn's error-log records to our JSON logger."""

    def __init__(self, logger: Logger) -> None:
        super().__init__(logging.WARNING)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        self._logger.log(level, "http server: " + record.getMessage())


def _hypercorn_config(host: str, port: int, logger: Logger | None, *,
                      reuse_port: bool = False) -> HypercornConfig:
    config = HypercornConfig()
    if reuse_port:
        # hypercorn sets SO_REUSEPORT only for its own worker processes: a socket
        # bound here is handed over by its descriptor instead.
        config.bind = [f"fd://{shared_port_socket(host, port).detach()}"]
    else:
        # An IPv6 literal needs brackets to be told apart from its port.
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    if logger is None:
        config.errorlog = None
    else:
        # A logging.Logger outside the global registry: nothing else writes to it.
        error_log = logging.Logger("reference_server.http")
        error_log.addHandler(_ForwardToLogger(logger))
        config.errorlog = error_log
    config.include_server_header = False
    # A socket read (request line, headers, body) waits at most this long; the
    # whole body must also arrive within parse.BODY_READ_TIMEOUT (api.md §11.3).
    config.read_timeout = _READ_TIMEOUT
    return config


def parse_bound_address(url: str) -> tuple[str, int]:
    """``"http://[::1]:8080"`` → ``("::1", 8080)``: hypercorn's report of a bind.

    Raises:
        ValueError: The text has no host or port.
    """
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not a bound address: {url!r}")
    return parts.hostname, parts.port


async def serve_http(app: ASGIApp, host: str, port: int, *,
                     task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
                     shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                     logger: Logger | None = None, reuse_port: bool = False) -> None:
    """Serve *app* over HTTP/1.1 and h2c on *host*:*port* until cancelled or until
    *shutdown_trigger* returns (then open requests get hypercorn's graceful period).

    Use it with ``await nursery.start(serve_http, app, host, port)``, which returns
    the bound ``(host, port)`` once the socket accepts connections.

    Args:
        app: The ASGI application (:func:`create_app`).
        host: Address to bind (``0.0.0.0``, ``127.0.0.1``, ``::`` …).
        port: Port to bind; 0 picks a free one.
        task_status: Receives the bound ``(host, port)``.
        shutdown_trigger: Returns when the server should stop.
        logger: Receives hypercorn's own error messages; None silences them.
        reuse_port: Share the port with other processes (``SO_REUSEPORT``).

    Raises:
        OSError: The address cannot be bound.
    """
    config = _hypercorn_config(host, port, logger, reuse_port=reuse_port)

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        # Starlette types the ASGI scope loosely, hypercorn strictly; same protocol.
        await serve(cast("Framework", app), config, shutdown_trigger=shutdown_trigger,
                    task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        task_status.started(parse_bound_address(binds[0]))
