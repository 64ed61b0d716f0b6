"""Shared test helpers: the golden vectors and a containment check."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
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
    Like an application that stores each report before answering it, the pair
    acknowledges every held answer right after the read that produced it, unless
    *auto_acknowledge* is off.
    """

    def __init__(self, protocol: Any, phy_id: str, *, auto_acknowledge: bool = True,
                 **server_options: Any) -> None:
        from bkvcodec import DeviceConnection, ServerConnection

        self.auto_acknowledge = auto_acknowledge
        self.server = ServerConnection(protocol=protocol, **server_options)
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
        if self.auto_acknowledge:
            for event in self.server.held():
                self.server.acknowledge(event)
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
        self.device.send(event, now)
        return self._to_server(self.device.data_to_send(), now)

    def server_sends(self, command: Any, now: float) -> list[Any]:
        """The server sends *command*; return what the device received."""
        self.server.send(command, now)
        return self._to_device(self.server.data_to_send(), now)

    def tick(self, now: float) -> list[Any]:
        """Let the server's timers run up to *now*."""
        events = self.server.handle_timeout(now)
        self.server_events += events
        self._to_device(self.server.data_to_send(), now)
        return events


class OrderDesk:
    """The smallest server: routes a connection's events to the orders' sessions.

    It keeps what a real server keeps in its database (which order runs on which
    port, which command started it) and publishes the sessions' events in order.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}
        self.by_port: dict[tuple[str, int, int], str] = {}
        self.by_command: dict[str, str] = {}
        self.by_business: dict[tuple[str, int, int, int], str] = {}
        self.published: list[Any] = []

    def open(self, session: Any, now: float) -> None:
        self.sessions[session.order_no] = session
        self.by_port[(session.device_phy_id, session.socket_no, session.port_no)] = (
            session.order_no)
        self.published += session.start_requested(now)

    def command_sent(self, command_id: str, order_no: str, now: float) -> None:
        self.by_command[command_id] = order_no
        self.published += self.sessions[order_no].command_sent(now)

    def _order_for(self, event: Any) -> Any:
        order_no = getattr(event, "order_no", None)
        business = getattr(event, "business_no", None)
        key = (event.phy_id, event.socket_no, event.port_no)
        if order_no is None and business:
            order_no = self.by_business.get((*key, business))
        if order_no is None:
            order_no = self.by_port.get(key)
        return self.sessions.get(order_no) if order_no else None

    def handle(self, events: list[Any], now: float) -> None:
        from bkvcodec import (
            AlarmRaised,
            CommandAcknowledged,
            CommandRejected,
            CommandTimedOut,
            PortState,
            PortStatusReported,
            ProgressReported,
            SettlementReported,
            StartConfirmed,
        )

        for event in events:
            if isinstance(event, CommandAcknowledged | CommandRejected | CommandTimedOut):
                order_no = self.by_command.get(event.command_id)
                session = self.sessions.get(order_no) if order_no else None
                if session is None or session.state.is_terminal:
                    continue
                if isinstance(event, CommandAcknowledged):
                    if event.business_no:
                        self.by_business[(event.phy_id, session.socket_no, session.port_no,
                                          event.business_no)] = order_no
                    self.published += session.command_acked(now)
                elif session.state.value == "pending":
                    self.published += session.command_rejected(
                        now, getattr(event, "reason", "timed_out"))
                continue
            if isinstance(event, AlarmRaised) and event.port_no is not None:
                session = self._order_for(event)
                if session is not None and not session.state.is_terminal:
                    self.published += session.port_fault(now, event.fault_code,
                                                          event.fault_msg)
                continue
            if not isinstance(event, StartConfirmed | ProgressReported | SettlementReported
                              | PortStatusReported):
                continue
            session = self._order_for(event)
            if session is None:
                continue
            if isinstance(event, StartConfirmed):
                self.published += session.device_confirmed(now)
            elif isinstance(event, ProgressReported):
                self.published += session.progress(now, event.reading)
            elif isinstance(event, SettlementReported):
                self.published += session.settlement(now, event.reading,
                                                     end_reason=event.end_reason,
                                                     end_reason_raw=event.end_reason_raw)
            elif (event.state is PortState.IDLE
                  and session.state.value in ("charging", "stopping")):
                self.published += session.port_idle(now)

    def tick(self, now: float) -> None:
        for session in self.sessions.values():
            deadline = session.next_deadline()
            if deadline is not None and deadline <= now:
                self.published += session.handle_timeout(now)

    def types(self, order_no: str) -> list[str]:
        """The event types published for *order_no*, in order."""
        return [type(e).__name__ for e in self.published if e.order_no == order_no]


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts, not a package)."""
    if str(EXAMPLES) not in sys.path:  # the servers import their shared device_events
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
