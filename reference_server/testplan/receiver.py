# The platform side of the test plan (test-plan.md §4.5): a webhook receiver that
# verifies every signature, keeps each event once by event_id and remembers when
# it arrived, so that checks can ask "did X arrive exactly once, in order, fast?".
from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bkvcodec import SignatureError, verify_webhook

from ..api import serve_http

__all__ = ["WEBHOOK_PATH", "Envelope", "Receiver", "data_of", "receiver_running"]

#: A received webhook body: ``event_id``, ``event_type``, ``device_phy_id``,
#: ``timestamp``, ``nonce`` and ``data``.
Envelope = dict[str, object]

#: The path deliveries are posted to (the plan's receiver uses ``/webhook``).
WEBHOOK_PATH = "/webhook"


@dataclass
class Receiver:
    """Collects verified deliveries.

    Attributes:
        secret: The webhook secret shared with the server.
        received: Each event's envelope, once, in arrival order.
        duplicates: Event ids delivered again after a 2xx (allowed, counted).
        bad_signatures: Deliveries refused with 401.
        failing: While True, every delivery is answered 500 (a receiver outage).
        arrived_at: Event id → ``time.perf_counter()`` of its first arrival.
    """

    secret: str
    received: list[Envelope] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    failing: bool = False
    arrived_at: dict[str, float] = field(default_factory=dict)
    _arrived: trio.Event = field(default_factory=trio.Event)

    async def endpoint(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            event = verify_webhook(self.secret, request.method, request.url.path,
                                   dict(request.headers), body, now=time.time())
        except SignatureError:
            self.bad_signatures += 1
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        if self.failing:
            return JSONResponse({"error": "receiver down"}, status_code=500)
        if event.event_id in self.arrived_at:
            self.duplicates.append(event.event_id)
        else:
            self.arrived_at[event.event_id] = time.perf_counter()
            envelope: Envelope = json.loads(body)
            self.received.append(envelope)
        self._arrived.set()
        self._arrived = trio.Event()
        return JSONResponse({"success": True})

    def of_type(self, event_type: str, *, order_no: str | None = None,
                device: str | None = None) -> list[Envelope]:
        """The received events of one type, optionally of one order or device."""
        return [e for e in self.received if e["event_type"] == event_type
                and _matches(e, order_no, device)]

    def types(self, *, order_no: str | None = None, device: str | None = None) -> list[str]:
        """The event types received, in order, optionally of one order or device."""
        return [str(e["event_type"]) for e in self.received if _matches(e, order_no, device)]

    async def wait_for(self, event_type: str, *, order_no: str | None = None,
                       device: str | None = None, count: int = 1) -> list[Envelope]:
        """Wait until *count* events of the type (and order/device) have arrived."""
        while len(found := self.of_type(event_type, order_no=order_no, device=device)) < count:
            await self._arrived.wait()
        return found

    async def wait_changed(self) -> None:
        """Wait for the next delivery."""
        await self._arrived.wait()


def data_of(envelope: Envelope) -> Mapping[str, object]:
    """The ``data`` object of a received envelope."""
    data = envelope.get("data")
    return data if isinstance(data, dict) else {}


def _matches(envelope: Envelope, order_no: str | None, device: str | None) -> bool:
    return ((order_no is None or data_of(envelope).get("order_no") == order_no)
            and (device is None or envelope.get("device_phy_id") == device))


@asynccontextmanager
async def receiver_running(secret: str, host: str = "127.0.0.1",
                           port: int = 0) -> AsyncIterator[tuple[Receiver, str]]:
    """Serve a :class:`Receiver`; yields it and the URL to configure as ``webhook_url``."""
    receiver = Receiver(secret)
    app = Starlette(routes=[Route(WEBHOOK_PATH, receiver.endpoint, methods=["POST"])])
    async with trio.open_nursery() as nursery:
        bound_host, bound_port = await nursery.start(serve_http, app, host, port)
        try:
            yield receiver, f"http://{bound_host}:{bound_port}{WEBHOOK_PATH}"
        finally:
            nursery.cancel_scope.cancel()
