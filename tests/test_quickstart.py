"""The quickstart's command sequence, run as the page shows it (on free ports instead
of the defaults): the webhook receiver, the reference server, the simulator, a charge
started over HTTP, the webhooks it causes, and a clean shutdown. If this test needs
changing, docs/quickstart.rst does too."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret"
AP3000_UNIT = "05E4E1C1"  # the simulator's first generated AP3000 id, as on the page
BKV_GATEWAY = "82900000000001"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Process:
    """A child process whose standard output is collected line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env={**os.environ, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        self.lines: list[str] = []
        self.errors: list[str] = []
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._threads = [
            threading.Thread(target=self._collect, args=(self.popen.stdout, self.lines),
                             daemon=True),
            threading.Thread(target=self._collect, args=(self.popen.stderr, self.errors),
                             daemon=True)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _collect(stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
        stream.close()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20, *,
                 stderr: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.errors if stderr else self.lines):
                if predicate(line):
                    return line
            assert self.popen.poll() is None, "\n".join(self.lines + self.errors[-20:])
            time.sleep(0.05)
        raise AssertionError("timed out; output:\n" + "\n".join(
            self.lines[-20:] + self.errors[-20:]))

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        return code


@contextmanager
def running(args: list[str], cwd: Path, env: dict[str, str] | None = None,
            sig: int = signal.SIGINT) -> Iterator[Process]:
    process = Process(args, cwd, env or {})
    try:
        yield process
    finally:
        process.stop(sig)


def call(method: str, url: str, key: str, body: object = None) -> Any:
    request = urllib.request.Request(
        url, method=method, headers={"X-Api-Key": key, "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def online(api: str, key: str, phy_id: str) -> bool:
    try:
        return bool(call("GET", f"{api}/devices/{phy_id}", key)["data"]["online"])
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 404:  # not registered yet
            return False
        raise


def until(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_quickstart_sequence(tmp_path: Path) -> None:
    tcp, http, hook = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{http}/api/v1/third"

    with running([str(ROOT / "examples" / "webhook_receiver.py"), "--port", str(hook)],
                 tmp_path, {"IOT_WEBHOOK_SECRET": SECRET}, signal.SIGTERM) as receiver:
        receiver.wait_for(lambda line: line.startswith("listening on port"))
        server_env = {"IOT_WEBHOOK_URL": f"http://127.0.0.1:{hook}/webhook",
                      "IOT_WEBHOOK_SECRET": SECRET}
        server = Process(["-m", "reference_server", "--tcp-port", str(tcp),
                          "--http-port", str(http)], tmp_path, server_env)
        try:
            line = server.wait_for(lambda text: "X-Api-Key" in text)
            key = line.rsplit(" ", 1)[1]
            server.wait_for(lambda text: '"listener": "http"' in text, stderr=True)
            with running(["-m", "reference_server", "simulate", "--server",
                          f"127.0.0.1:{tcp}", "--bkv", "1", "--ap3000", "1",
                          "--ap3000-ports", "4", "--plugged", "1", "--speed", "60"],
                         tmp_path):
                until(lambda: all(online(api, key, phy_id)
                                  for phy_id in (AP3000_UNIT, BKV_GATEWAY)))
                started = call("POST", f"{api}/devices/{AP3000_UNIT}/charge", key, {
                    "port_no": 1, "charge_mode": 1, "duration": 300, "amount": 100})
                order_no = started["data"]["order_no"]
                order = until(lambda: (lambda o: o if o["status"] == "completed" else None)(
                    call("GET", f"{api}/orders/{order_no}", key)["data"]))
                receiver.wait_for(lambda text: text.endswith("event received: order.completed"))
        finally:
            server_code = server.stop()

        forged = urllib.request.Request(f"http://127.0.0.1:{hook}/webhook", method="POST",
                                        data=b'{"event_id": "forged"}')
        try:
            urllib.request.urlopen(forged, timeout=10)
            refused = None
        except urllib.error.HTTPError as error:
            refused = error.code
            error.close()

    assert "completed" == order["status"]
    assert 300 == order["duration_sec"]
    assert "normal" == order["end_reason"]
    received = "\n".join(receiver.lines)
    for event_type in ("device.online", "device.registered", "order.created",
                       "charging.started", "charging.progress", "charging.ended",
                       "order.completed"):
        assert f"event received: {event_type}" in received
    assert f'"order_no": "{order_no}"' in received
    assert 401 == refused
    assert 0 == server_code
    assert any('"msg": "stopped"' in line for line in server.errors)
    assert (tmp_path / "data" / "iot.db").exists()
