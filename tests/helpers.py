"""Shared test helpers: the golden vectors and a containment check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent / "vectors"


def load_vectors(protocol: str) -> dict[str, Any]:
    """The vector file ``tests/vectors/<protocol>.json``."""
    return json.loads((VECTOR_DIR / f"{protocol}.json").read_text(encoding="utf-8"))


def vector_params(protocol: str, kind: str) -> list[Any]:
    """pytest parameters (id = vector id) for one list of a vector file."""
    import pytest

    return [pytest.param(case, id=case["id"]) for case in load_vectors(protocol).get(kind, [])]


def contains(answer: Any, expect: Any, path: str = "") -> str | None:
    """None when *expect* is contained in *answer*, else where they first differ.

    The rule of ``shared/tools/check_vectors.py``: every key of an expected
    object is present with an equal value; lists compare element-wise; hex
    strings compare case-insensitively.
    """
    if isinstance(expect, dict):
        if not isinstance(answer, dict):
            return f"{path or '.'}: expected an object, got {answer!r}"
        for key, value in expect.items():
            if key not in answer:
                return f"{path}.{key}: missing"
            where = contains(answer[key], value, f"{path}.{key}")
            if where:
                return where
        return None
    if isinstance(expect, list):
        if not isinstance(answer, list) or len(answer) != len(expect):
            return f"{path}: expected a list of {len(expect)}, got {answer!r}"
        for i, (a, e) in enumerate(zip(answer, expect, strict=True)):
            where = contains(a, e, f"{path}[{i}]")
            if where:
                return where
        return None
    if isinstance(expect, str) and isinstance(answer, str):
        return None if answer.lower() == expect.lower() else f"{path}: {expect!r} != {answer!r}"
    if answer == expect and type(answer) is type(expect):
        return None
    return f"{path}: expected {expect!r}, got {answer!r}"


class DevicePair:
    """A server-role and a device-role connection wired together in memory.

    Every byte one side produces is fed to the other at once; the events each
    side reported are collected in :attr:`server_events` and :attr:`device_inputs`.
    """

    def __init__(self, protocol: Any, phy_id: str) -> None:
        from bkvcodec._connection import ServerConnection
        from bkvcodec._device import DeviceConnection

        self.server = ServerConnection(protocol=protocol)
        self.device = DeviceConnection(protocol=protocol, phy_id=phy_id)
        self.server_events: list[Any] = []
        self.device_inputs: list[Any] = []
        self.wire_up: list[bytes] = []
        self.wire_down: list[bytes] = []

    def _to_server(self, data: bytes, now: float) -> list[Any]:
        if not data:
            return []
        self.wire_up.append(data)
        events = self.server.receive_data(data, now)
        self.server_events += events
        self._to_device(self.server.data_to_send(), now)
        return events

    def _to_device(self, data: bytes, now: float) -> list[Any]:
        if not data:
            return []
        self.wire_down.append(data)
        inputs = self.device.receive_data(data, now)
        self.device_inputs += inputs
        self._to_server(self.device.data_to_send(), now)
        return inputs

    def connect(self, now: float) -> list[Any]:
        """Deliver the device's greeting (AP3000: its ICCID)."""
        return self._to_server(self.device.data_to_send(), now)

    def device_sends(self, event: Any, now: float) -> list[Any]:
        """The device reports *event*; return what the server made of it."""
        return self._to_server(self.device.send(event, now), now)

    def server_sends(self, command: Any, now: float) -> list[Any]:
        """The server sends *command*; return what the device received."""
        return self._to_device(self.server.send(command, now), now)

    def tick(self, now: float) -> list[Any]:
        """Let the server's timers run up to *now*."""
        events = self.server.handle_timeout(now)
        self.server_events += events
        self._to_device(self.server.data_to_send(), now)
        return events
