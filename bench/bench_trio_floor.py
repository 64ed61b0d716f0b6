"""The floor under the server's CPU per heartbeat: a bare trio echo server.

How much CPU does trio itself need to read one small message from one of many
connections and write a small answer, with nothing else to do? This script runs a
server that does only that, in its own process, with ``--connections`` clients
(a ``selectors`` loop in another process, cheap on purpose) sending a 50-byte
message at ``--rate`` messages a second spread over the connections, and prints the
server's CPU per message (user and kernel) over a steady window. Two servers:

* ``stream``: ``await stream.receive_some()`` / ``await stream.send_all()``, trio's
  ordinary high-level API;
* ``raw``: ``await trio.lowlevel.wait_readable(sock)``, then ``os.read`` and
  ``os.write`` on the descriptor, as the reference server's gateway reads and answers.

The reference server's CPU per heartbeat (``bench_load.py``) minus this figure is
what the protocol, the order service, the frame log and the webhooks cost.

Run::

    .venv/bin/python bench/bench_trio_floor.py                  # 10,000 connections, ~1 min
    .venv/bin/python bench/bench_trio_floor.py --connections 1000 --seconds 5   # smoke
"""
from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

import psutil

REPLY = b"r" * 28
MESSAGE = b"m" * 50


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(kind: str, port: int) -> None:
    import trio

    async def with_streams(stream: trio.SocketStream) -> None:
        while await stream.receive_some(65536):
            await stream.send_all(REPLY)

    async def with_descriptors(stream: trio.SocketStream) -> None:
        sock = stream.socket
        fd = sock.fileno()
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                if not os.read(fd, 16384):
                    return
            except BlockingIOError:
                continue
            os.write(fd, REPLY)

    handler = with_streams if kind == "stream" else with_descriptors
    print("listening", flush=True)
    async def main() -> None:
        await trio.serve_tcp(handler, port, host="127.0.0.1")

    trio.run(main)


def drive(port: int, connections: int, rate: float, seconds: float,
          connected: threading.Event) -> tuple[int, int]:
    """Open *connections*, then send *rate* messages a second round-robin over them
    for *seconds*; return (sent, answers read)."""
    selector = selectors.EpollSelector()
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    connected.set()
    started = time.perf_counter()
    sent = answered = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        while sent < int(elapsed * rate):
            socks[sent % connections].send(MESSAGE)
            sent += 1
        for key, _ in selector.select(0.001):
            key.fileobj.recv(4096)  # type: ignore[union-attr]
            answered += 1
    for sock in socks:
        sock.close()
    return sent, answered


def measure(kind: str, args: argparse.Namespace) -> dict[str, float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)],
                              stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        server.stdout.readline()
        time.sleep(0.3)
        process = psutil.Process(server.pid)
        # Warm-up: connect and send for a while before the window opens.
        warmup = args.seconds / 4
        result: dict[str, float] = {}

        def window() -> None:
            time.sleep(warmup)
            before = process.cpu_times()
            wall = time.perf_counter()
            time.sleep(args.seconds - warmup - 0.5)
            after = process.cpu_times()
            result["wall"] = time.perf_counter() - wall
            result["user"] = after.user - before.user
            result["system"] = after.system - before.system

        # The window starts once every connection is open.
        connected = threading.Event()
        sent_answered: list[tuple[int, int]] = []
        driver = threading.Thread(target=lambda: sent_answered.append(
            drive(port, args.connections, args.rate, args.seconds, connected)))
        driver.start()
        connected.wait(120)
        watcher = threading.Thread(target=window)
        watcher.start()
        watcher.join()
        driver.join()
        sent, answered = sent_answered[0]
        result["sent"], result["answered"] = sent, answered
        return result
    finally:
        server.kill()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=909.0,
                        help="messages per second over all connections (10,000 devices "
                             "at 11 s: 909)")
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--serve", choices=("stream", "raw"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    print(f"bench_trio_floor: {args.connections} connections, {args.rate:g} messages/s, "
          f"{args.seconds:g} s per server", flush=True)
    for kind in ("stream", "raw"):
        r = measure(kind, args)
        rate = args.rate
        per = (r["user"] + r["system"]) / r["wall"] / rate * 1e6
        print(f"  {kind:<6} server: {per:6.1f} µs CPU per message "
              f"(user {r['user'] / r['wall'] / rate * 1e6:.1f}, "
              f"kernel {r['system'] / r['wall'] / rate * 1e6:.1f}); "
              f"{100 * (r['user'] + r['system']) / r['wall']:.1f} % of one core; "
              f"answered {r['answered']:.0f} of {r['sent']:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
