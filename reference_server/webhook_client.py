# The HTTP client the webhook worker posts with.
#
# The worker posts small JSON bodies to one URL, hundreds of times a second at
# 10,000 devices. httpx spent about 1 ms of CPU on each (its request models and
# httpcore's connection-pool bookkeeping; bench/RESULTS.md), in the thread that
# also serves the devices. PooledPoster keeps what a webhook needs, h11's
# HTTP/1.1 state machine over a few keep-alive trio streams, at about a tenth of
# that. Proxies are httpx's job: when the environment names one for the webhook
# URL, the worker posts through httpx instead (HttpxPoster).
from __future__ import annotations

import base64
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import h11
import httpx
import trio

__all__ = [
    "ConnectError",
    "HttpxPoster",
    "PooledPoster",
    "PostError",
    "Poster",
    "RemoteProtocolError",
    "poster_for",
]

#: Response bytes read to keep a connection; a longer answer closes it instead.
MAX_RESPONSE_BODY = 64 * 1024


class PostError(Exception):
    """A POST that got no HTTP answer."""


class ConnectError(PostError):
    """No connection (refused, unreachable, name unknown, TLS handshake failed)."""


class RemoteProtocolError(PostError):
    """The connection broke, or the answer was not HTTP/1.1."""


class Poster(Protocol):
    """Posts bodies to the webhook URL; the answer's status, or :exc:`PostError`."""

    async def post(self, body: bytes, headers: Mapping[str, str]) -> int: ...

    async def aclose(self) -> None: ...


def poster_for(url: str, *, max_connections: int, user_agent: str) -> Poster:
    """The poster for *url*: :class:`PooledPoster`, or :class:`HttpxPoster` when
    the environment names a proxy for it (``HTTPS_PROXY``, ``ALL_PROXY``, …)."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=max_connections),
                                   headers={"User-Agent": user_agent})
        return HttpxPoster(client, url, owned=True)
    return PooledPoster(url, max_connections=max_connections, user_agent=user_agent)


class HttpxPoster:
    """Posts with an :class:`httpx.AsyncClient` (closed by :meth:`aclose` if *owned*)."""

    def __init__(self, client: httpx.AsyncClient, url: str, *, owned: bool = False) -> None:
        self._client = client
        self._url = url
        self._owned = owned

    async def post(self, body: bytes, headers: Mapping[str, str]) -> int:
        response = await self._client.post(self._url, content=body, headers=dict(headers))
        return response.status_code

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


@dataclass(slots=True)
class _Connection:
    stream: trio.abc.Stream
    socket: trio.SocketStream  # under the TLS layer, if any
    http: h11.Connection


class PooledPoster:
    """POSTs to one URL over at most *max_connections* keep-alive HTTP/1.1
    connections (h11 on trio streams; TLS for ``https``).

    A connection goes back to the pool only after a complete exchange; one that
    was cancelled (a timeout), broke, or answered with ``Connection: close`` is
    closed. An idle connection the receiver closed meanwhile is noticed before
    it is used. Credentials in the URL are sent as HTTP basic authentication.
    """

    def __init__(self, url: str, *, max_connections: int, user_agent: str,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        self._host = parts.hostname
        tls = parts.scheme == "https"
        self._port = parts.port or (443 if tls else 80)
        self._tls = (ssl_context or ssl.create_default_context()) if tls else None
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.netloc.rpartition("@")[2]
        self._headers = [("Host", authority), ("User-Agent", user_agent)]
        if parts.username is not None:
            credentials = (f"{urllib.parse.unquote(parts.username)}:"
                           f"{urllib.parse.unquote(parts.password or '')}")
            self._headers.append(
                ("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode()))
        self._slots = trio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self.connections_opened = 0

    async def post(self, body: bytes, headers: Mapping[str, str]) -> int:
        async with self._slots:
            connection = await self._take_idle()
            if connection is None:
                connection = await self._connect()
            reusable = False
            try:
                status, reusable = await self._exchange(connection, body, headers)
            finally:
                if reusable:
                    self._idle.append(connection)
                else:
                    await trio.aclose_forcefully(connection.stream)
            return status

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await trio.aclose_forcefully(connection.stream)

    async def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            # Readable while idle: the receiver closed it (or sent junk); not usable.
            if not connection.socket.socket.is_readable():
                return connection
            await trio.aclose_forcefully(connection.stream)
        return None

    async def _connect(self) -> _Connection:
        where = f"{self._host}:{self._port}"
        try:
            sock = await trio.open_tcp_stream(self._host, self._port)
        except OSError as err:
            raise ConnectError(f"cannot connect to {where}: {err}") from err
        stream: trio.abc.Stream = sock
        if self._tls is not None:
            tls_stream = trio.SSLStream(sock, self._tls, server_hostname=self._host)
            try:
                await tls_stream.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError) as err:
                await trio.aclose_forcefully(sock)
                cause = err.__cause__ or err
                raise ConnectError(f"TLS handshake with {where} failed: {cause}") from err
            stream = tls_stream
        self.connections_opened += 1
        return _Connection(stream, sock, h11.Connection(h11.CLIENT))

    async def _exchange(self, connection: _Connection, body: bytes,
                        headers: Mapping[str, str]) -> tuple[int, bool]:
        """Send one request, read its answer; returns the status and whether the
        connection can carry another request."""
        http = connection.http
        request = h11.Request(method="POST", target=self._target, headers=[
            *self._headers, ("Content-Length", str(len(body))), *headers.items()])
        try:
            await connection.stream.send_all(
                http.send(request) + http.send(h11.Data(data=body))
                + http.send(h11.EndOfMessage()))
            status, complete = await self._read_answer(connection)
        except (trio.BrokenResourceError, OSError) as err:
            raise RemoteProtocolError(f"connection broken: {err.__cause__ or err}") from err
        except h11.ProtocolError as err:
            raise RemoteProtocolError(f"not an HTTP/1.1 answer: {err}") from err
        reusable = complete and http.our_state is h11.DONE and http.their_state is h11.DONE
        if reusable:
            http.start_next_cycle()
        return status, reusable

    @staticmethod
    async def _read_answer(connection: _Connection) -> tuple[int, bool]:
        http = connection.http
        status: int | None = None
        received = 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = bytes(await connection.stream.receive_some(65536))
                if not data and status is None:
                    raise RemoteProtocolError("the receiver closed the connection without "
                                              "answering")
                http.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += len(event.data)
                if received > MAX_RESPONSE_BODY and status is not None:
                    return status, False
            elif isinstance(event, h11.EndOfMessage) and status is not None:
                return status, True
            elif isinstance(event, h11.ConnectionClosed):
                raise RemoteProtocolError("the receiver closed the connection without "
                                          "answering")
