"""The quickstart, run as printed: every ``$`` command of its console blocks, exactly
as the page shows it, from the folder it says (the repository's root, with the
virtual environment active), on the ports it prints. The one thing a reader adapts,
the API key the server generated, is the one thing substituted. If this test needs
changing, docs/quickstart.rst does too."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret"
AP3000_UNIT = "05E4E1C1"  # the simulator's first generated AP3000 id, as on the page
BKV_GATEWAY = "82900000000001"


class Process:
    """A child process whose standard output is collected line by line."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env,
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


PAGE = ROOT / "docs" / "quickstart.rst"
PORTS = (7055, 7065, 8888)  # as printed: HTTP, devices, the webhook receiver


def console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each ``.. code-block:: console`` of *text*: its commands with their output."""
    blocks: list[list[tuple[str, list[str]]]] = []
    lines = text.splitlines()
    for at, line in enumerate(lines):
        if line.strip() != ".. code-block:: console":
            continue
        body: list[str] = []
        for follower in lines[at + 1:]:
            if follower and not follower.startswith("   "):
                break
            body.append(follower[3:])
        commands: list[tuple[str, list[str]]] = []
        while body:
            line = body.pop(0)
            if not line.startswith("$ "):
                if commands and line.strip():
                    commands[-1][1].append(line)
                continue
            command = line[2:]
            while command.endswith("\\") and body:
                command = command[:-1].rstrip() + " " + body.pop(0).strip()
            commands.append((command, []))
        blocks.append(commands)
    return blocks


def _ports_free() -> bool:
    for port in PORTS:
        with socket.socket() as probe:
            # As the server and the receiver do: a port in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


class Shell:
    """The reader's shells: the folder, the active virtual environment, the variables."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                    "VIRTUAL_ENV": str(Path(bin_dir).parent), "PYTHONUNBUFFERED": "1"}
        for name in list(self.env):
            if name.startswith("IOT_"):
                del self.env[name]

    def run(self, command: str) -> str:
        done = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    def start(self, command: str) -> Process:
        # bash runs a single command in its own process (no fork), so Ctrl-C (SIGINT)
        # reaches the program itself, as in a terminal.
        return Process(["bash", "-c", command], self.cwd, self.env)


def _checkout(tmp_path: Path) -> Path:
    """The repository's root as the page's commands see it (``examples/``), with a
    ``data/`` of its own so that a developer's database is never touched."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    return folder


def test_decode_as_printed(tmp_path: Path) -> None:
    [[(command, printed)], *_] = console_blocks(PAGE.read_text(encoding="utf-8"))
    assert command.startswith("python -m bkvcodec decode ")

    out = Shell(_checkout(tmp_path)).run(command)

    assert json.loads(out) == json.loads("\n".join(printed))


def test_quickstart_as_printed(tmp_path: Path) -> None:
    if not _ports_free():
        pytest.skip(f"ports {PORTS} are in use; the page's commands need them")
    blocks = console_blocks(PAGE.read_text(encoding="utf-8"))
    section = [c for block in blocks[1:] for c in block]
    commands = [command for command, _ in section]
    assert commands[0].startswith("IOT_WEBHOOK_SECRET=s3cret python examples/webhook_receiver.py")
    shell = Shell(_checkout(tmp_path))
    api = "http://127.0.0.1:7055/api/v1/third"
    background: list[Process] = []
    receiver = server = None
    key = ""
    outputs: dict[str, str] = {}
    try:
        for command, printed in section:
            if command.startswith("export "):
                for word in shlex.split(command)[1:]:
                    name, _, value = word.partition("=")
                    shell.env[name] = value
            elif re.fullmatch(r"KEY=\S+", command):
                shell.env["KEY"] = key  # the reader pastes the key their server printed
            elif re.match(r"(\w+=\S+ )*python ", command):
                process = shell.start(command)
                background.append(process)
                if "webhook_receiver" in command:
                    receiver = process
                    receiver.wait_for(lambda line: line.startswith("listening on port 8888"))
                elif " simulate " in command:
                    # The reader waits until the receiver shows both devices.
                    until(lambda known=key: all(online(api, known, phy_id)
                                                for phy_id in (AP3000_UNIT, BKV_GATEWAY)))
                else:
                    server = process
                    line = server.wait_for(lambda text: "X-Api-Key" in text)
                    key = line.rsplit(" ", 1)[1]
                    server.wait_for(lambda text: '"listener": "http"' in text, stderr=True)
            else:
                assert command.startswith("curl "), command
                if "/orders" in command:
                    assert receiver is not None
                    receiver.wait_for(
                        lambda text: text.endswith("event received: order.completed"))
                outputs[command] = out = shell.run(command)
                if printed and printed[0].startswith('{"code":0'):
                    assert out.startswith('{"code":0'), (command, out)
                elif printed:
                    assert out.strip() == "\n".join(printed), (command, out)
    finally:
        codes = [process.stop() for process in reversed(background)]

    assert server is not None and receiver is not None
    assert codes[-2] == 0  # the server, stopped by Ctrl-C
    assert any('"msg": "stopped"' in line for line in server.errors)
    [orders] = [out for command, out in outputs.items() if "/orders" in command]
    [order] = json.loads(orders)["data"]["items"]
    assert order["status"] == "completed"
    assert order["duration_sec"] == 300
    assert order["end_reason"] == "normal"
    received = "\n".join(receiver.lines)
    for event_type in ("device.online", "device.registered", "order.created",
                       "charging.started", "charging.progress", "charging.ended",
                       "order.completed"):
        assert f"event received: {event_type}" in received
    assert (shell.cwd / "data" / "iot.db").exists()
