"""The webhook worker's HTTP client: keep-alive pooling, failures, TLS, proxies."""
from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import pytest
import trio
import trustme

from reference_server.webhook_client import (
    MAX_RESPONSE_BODY,
    ConnectError,
    HttpxPoster,
    PooledPoster,
    RemoteProtocolError,
    poster_for,
)

pytestmark = pytest.mark.trio

#: How the receiver answers one request: (status, extra headers, body), or None to
#: hang up without answering.
Answer = Callable[[h11.Request], Awaitable[tuple[int, list[tuple[str, str]], bytes] | None]]


async def ok(_request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, [], b'{"success": true}'


@dataclass
class Receiver:
    port: int
    answer: Answer
    requests: list[h11.Request] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    close_idle: bool = False


async def _serve_connection(receiver: Receiver, stream: trio.abc.Stream) -> None:
    receiver.connections += 1
    receiver.open_now += 1
    receiver.most_open = max(receiver.most_open, receiver.open_now)
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(bytes(data))
            elif isinstance(event, h11.Request):
                receiver.requests.append(event)
            elif isinstance(event, h11.EndOfMessage):
                answer = await receiver.answer(receiver.requests[-1])
                if answer is None:
                    return
                status, headers, body = answer
                await stream.send_all(
                    conn.send(h11.Response(status_code=status, headers=[
                        ("Content-Length", str(len(body))), *headers]))
                    + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                if conn.our_state is not h11.DONE or receiver.close_idle:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (h11.RemoteProtocolError, trio.BrokenResourceError):
        return
    finally:
        receiver.open_now -= 1
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def receiver_running(answer: Answer = ok, tls: ssl.SSLContext | None = None
                           ) -> AsyncIterator[Receiver]:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    receiver = Receiver(listener.socket.getsockname()[1], answer)

    async def handle(stream: trio.SocketStream) -> None:
        served: trio.abc.Stream = stream
        if tls is not None:
            served = trio.SSLStream(stream, tls, server_side=True)
        await _serve_connection(receiver, served)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, [listener])
        yield receiver
        nursery.cancel_scope.cancel()


def poster(receiver: Receiver, path: str = "/hook", *, max_connections: int = 4,
           ssl_context: ssl.SSLContext | None = None, scheme: str = "http",
           userinfo: str = "") -> PooledPoster:
    return PooledPoster(f"{scheme}://{userinfo}127.0.0.1:{receiver.port}{path}",
                        max_connections=max_connections, user_agent="test",
                        ssl_context=ssl_context)


async def test_sequential_posts_share_one_connection_and_send_the_request() -> None:
    async with receiver_running() as receiver:
        client = poster(receiver, "/hooks/iot?token=t")
        statuses = [await client.post(b'{"n": %d}' % n, {"X-Event-Id": f"e{n}"})
                    for n in range(20)]
        await client.aclose()

    assert [200] * 20 == statuses
    assert (1, 1) == (receiver.connections, client.connections_opened)
    first = receiver.requests[0]
    headers = dict(first.headers)
    assert (b"POST", b"/hooks/iot?token=t") == (first.method, first.target)
    assert (b"e0", b"8", b"test") == (headers[b"x-event-id"], headers[b"content-length"],
                                      headers[b"user-agent"])
    assert f"127.0.0.1:{receiver.port}".encode() == headers[b"host"]


async def test_concurrent_posts_stay_within_the_connection_limit() -> None:
    async def slow(_request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        await trio.sleep(0.01)
        return 204, [], b""

    async with receiver_running(slow) as receiver:
        client = poster(receiver, max_connections=3)
        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(client.post, b"{}", {})
        await client.aclose()

    assert 30 == len(receiver.requests)
    assert receiver.most_open <= 3 and client.connections_opened <= 3


async def test_an_answer_with_connection_close_ends_the_connection() -> None:
    async def closing(_request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [("Connection", "close")], b"{}"

    async with receiver_running(closing) as receiver:
        client = poster(receiver)
        statuses = [await client.post(b"{}", {}) for _ in range(3)]
        await client.aclose()

    assert ([200] * 3, 3) == (statuses, client.connections_opened)


async def test_an_idle_connection_the_receiver_closed_is_not_used() -> None:
    async with receiver_running() as receiver:
        receiver.close_idle = True  # answers, then hangs up without saying so
        client = poster(receiver)
        first = await client.post(b"{}", {})
        await trio.sleep(0.05)  # the receiver's FIN arrives
        second = await client.post(b"{}", {})
        await client.aclose()

    assert (200, 200, 2) == (first, second, client.connections_opened)


async def test_a_long_answer_is_not_read_to_the_end_and_its_connection_is_closed() -> None:
    async def long_body(_request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [], b"x" * (MAX_RESPONSE_BODY + 1)

    async with receiver_running(long_body) as receiver:
        client = poster(receiver)
        statuses = [await client.post(b"{}", {}) for _ in range(2)]
        await client.aclose()

    assert [200, 200] == statuses
    assert 2 == client.connections_opened


async def test_a_cancelled_post_does_not_leave_its_connection_in_the_pool() -> None:
    release = trio.Event()

    async def held(_request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        await release.wait()
        return 200, [], b""

    async with receiver_running(held) as receiver:
        client = poster(receiver)
        with trio.move_on_after(0.05):
            await client.post(b"{}", {})
        release.set()
        status = await client.post(b"{}", {})
        await client.aclose()

    assert (200, 2) == (status, client.connections_opened)


async def test_failures_are_typed_and_say_what_happened() -> None:
    async def hang_up(_request: h11.Request) -> None:
        return None

    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    closed_port = listener.socket.getsockname()[1]
    await listener.aclose()
    refused = PooledPoster(f"http://127.0.0.1:{closed_port}/", max_connections=1,
                           user_agent="test")
    with pytest.raises(ConnectError, match=f"cannot connect to 127.0.0.1:{closed_port}"):
        await refused.post(b"{}", {})

    async with receiver_running(hang_up) as receiver:
        with pytest.raises(RemoteProtocolError, match="without answering"):
            await poster(receiver).post(b"{}", {})

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"SSH-2.0-OpenSSH\r\n\r\n")
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(
            lambda task_status: trio.serve_tcp(garbage, 0, host="127.0.0.1",
                                               task_status=task_status))
        port = listener.socket.getsockname()[1]
        client = PooledPoster(f"http://127.0.0.1:{port}/", max_connections=1,
                              user_agent="test")
        with pytest.raises(RemoteProtocolError, match=r"not an HTTP/1\.1 answer"):
            await client.post(b"{}", {})
        nursery.cancel_scope.cancel()


async def test_https_checks_the_receivers_certificate() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async with receiver_running(tls=server_context) as receiver:
        client = poster(receiver, scheme="https", ssl_context=trusting)
        statuses = [await client.post(b"{}", {}) for _ in range(3)]
        await client.aclose()
        untrusting = poster(receiver, scheme="https", ssl_context=ssl.create_default_context())
        with pytest.raises(ConnectError, match=r"TLS handshake .* failed"):
            await untrusting.post(b"{}", {})

    assert ([200] * 3, 1) == (statuses, client.connections_opened)


async def test_credentials_in_the_url_are_sent_as_basic_authentication() -> None:
    async with receiver_running() as receiver:
        client = poster(receiver, userinfo="hook%40user:p%3Ass@")
        await client.post(b"{}", {})
        await client.aclose()

    headers = dict(receiver.requests[0].headers)
    assert b"Basic " + base64.b64encode(b"hook@user:p:ss") == headers[b"authorization"]
    assert f"127.0.0.1:{receiver.port}".encode() == headers[b"host"]


async def test_a_proxy_in_the_environment_is_left_to_httpx(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = "https://hooks.example.com/iot"

    direct = poster_for(url, max_connections=2, user_agent="test")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxied = poster_for(url, max_connections=2, user_agent="test")
    monkeypatch.setenv("NO_PROXY", "hooks.example.com")
    bypassed = poster_for(url, max_connections=2, user_agent="test")

    for made in (direct, proxied, bypassed):
        await made.aclose()

    assert (PooledPoster, HttpxPoster, PooledPoster) == (
        type(direct), type(proxied), type(bypassed))


async def test_only_http_urls_are_taken() -> None:
    with pytest.raises(ValueError, match="not an http"):
        PooledPoster("ftp://example.com/", max_connections=1, user_agent="test")
