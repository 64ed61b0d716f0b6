# One function per route of the table (routes.py), by the route's name. By the time
# a handler runs, the request has been admitted (app.py): the caller is
# authenticated, within its rate limits, and the body is read (bounded). A handler
# validates its input (parse.py), asks the database or the service, and shapes
# the answer (views.py) into the envelope. Refusals are raised as ServiceError
# subclasses and become error envelopes in one place (app.py).
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from starlette.responses import Response

from bkvcodec import OrderState, ProtocolFamily

from ..config import ROLES
from ..errors import (
    CardExists,
    CardNotFound,
    CommandNotFound,
    DeviceNotFound,
    EventNotFound,
    InsufficientBalance,
    OrderNotFound,
    ServiceError,
    Unavailable,
)
from ..metrics import CONTENT_TYPE
from ..storage import CardExists as StoredCardExists
from ..storage import InsufficientFunds
from .commandbody import parse_command
from .context import ApiContext
from .envelope import JSON_MEDIA_TYPE, Forbidden, error_response, success
from .frameview import frame_log_view
from .idempotency import AnswerRecorder
from .parse import (
    AFTER_QUERY,
    CREATED_FROM_QUERY,
    CREATED_TO_QUERY,
    CURSOR_QUERY,
    DEVICE_PHY_ID_QUERY,
    LIMIT_QUERY,
    ONLINE_QUERY,
    PROTOCOL_QUERY,
    SOCKET_NO_QUERY,
    STATUS_QUERY,
    idempotency_key,
    parse_adjust,
    parse_card,
    parse_card_status,
    parse_charge,
    parse_device,
    parse_json_object,
    parse_ota,
    parse_params,
    parse_stop,
    parse_topup,
    request_fingerprint,
)
from .routes import COMMAND_ROLES
from .views import (
    card_view,
    charge_result_view,
    command_view,
    device_summary_view,
    device_view,
    event_view,
    identity_view,
    ledger_entry_view,
    order_view,
    progress_view,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..config import ApiKey
    from ..requests import ChargeResult
    from ..storage import Database, DeviceRecord, OrderRecord

__all__ = ["HANDLERS", "NOT_FOUND", "Call", "Handler"]

#: How long /readyz waits for the database before calling it unready.
READY_DB_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One admitted request.

    Attributes:
        request: The Starlette request (headers, path and query parameters).
        key: The authenticated API key; None on unauthenticated routes.
        body: The raw body (empty on unauthenticated routes).
        now: Unix seconds when it was admitted.
        request_id: The id in the envelope and the ``X-Request-Id`` header.
    """

    request: Request
    key: ApiKey | None
    body: bytes
    now: int
    request_id: str

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    @property
    def query(self) -> Mapping[str, str]:
        """The query parameters (the last value of a repeated one)."""
        return self.request.query_params

    def json(self) -> dict[str, object]:
        """The body as a JSON object (see ``parse_json_object``)."""
        return parse_json_object(self.body)

    def ok(self, data: object, message: str = "ok") -> Response:
        """A success envelope."""
        return success(data, request_id=self.request_id, timestamp=self.now, message=message)

    def error(self, error: ServiceError) -> Response:
        """An error envelope (for answers that must be built here, e.g. to be stored)."""
        return error_response(error, request_id=self.request_id, timestamp=self.now)


Handler = Callable[[ApiContext, Call], Awaitable[Response]]

#: The "not found" error of each path parameter: an id that cannot exist (too long)
#: is refused with it before any look-up.
NOT_FOUND: Mapping[str, Callable[[str], ServiceError]] = {
    "phy_id": DeviceNotFound, "order_no": OrderNotFound, "command_id": CommandNotFound,
    "card_no": CardNotFound, "event_id": EventNotFound,
}


# --- charging and commands -----------------------------------------------------------------

async def start_charge(ctx: ApiContext, call: Call) -> Response:
    phy_id = call.path("phy_id")
    body = call.json()
    request = parse_charge(phy_id, body)
    idem_key = idempotency_key(call.request.headers)

    def answer(result: ChargeResult) -> Response:
        message = ("replaced previous order" if result.replaced_order is not None
                   else "charge started successfully")
        return call.ok(charge_result_view(result, phy_id), message)

    async def produce(record: AnswerRecorder | None) -> Response:
        # With an Idempotency-Key, the answer is built and stored inside the order's
        # transaction: the order and its idempotency record commit together.
        built: list[Response] = []

        def record_answer(db: Database, result: ChargeResult) -> None:
            assert record is not None
            response = answer(result)
            record(db, response)
            built.append(response)

        try:
            result = await ctx.service.start_charge(
                request, key_name=_key_name(call),
                record_answer=record_answer if record is not None else None)
        except ServiceError as err:
            # With an Idempotency-Key, a definite refusal is an answer to store.
            if idem_key is None or err.status >= 500:
                raise
            return call.error(err)
        return built[-1] if built else answer(result)

    if idem_key is None or call.key is None:
        return await produce(None)
    fingerprint = request_fingerprint(call.request.url.path, body)
    return await ctx.idempotency.run(call.key.name, idem_key, fingerprint, call.now, produce)


def _key_name(call: Call) -> str | None:
    return None if call.key is None else call.key.name


async def stop_charge(ctx: ApiContext, call: Call) -> Response:
    phy_id = call.path("phy_id")
    order = await ctx.service.stop_charge(parse_stop(phy_id, call.json()),
                                          key_name=_key_name(call))
    message = "order cancelled" if order.status is OrderState.CANCELLED else "stop requested"
    return call.ok(order_view(order, phy_id), message)


async def set_params(ctx: ApiContext, call: Call) -> Response:
    body = parse_params(call.json())
    command = await ctx.service.set_params(call.path("phy_id"), body.params,
                                           socket_no=body.socket_no, key_name=_key_name(call))
    return call.ok(command_view(command), "parameters queued")


async def query_params(ctx: ApiContext, call: Call) -> Response:
    socket_no = SOCKET_NO_QUERY.parse(call.query)
    command = await ctx.service.query_params(call.path("phy_id"),
                                             socket_no=1 if socket_no is None else socket_no,
                                             key_name=_key_name(call))
    return call.ok(command_view(command), "parameter query queued")


async def start_ota(ctx: ApiContext, call: Call) -> Response:
    command = await ctx.service.start_ota(call.path("phy_id"), parse_ota(call.json()),
                                          key_name=_key_name(call))
    return call.ok(command_view(command), "firmware update queued")


async def send_command(ctx: ApiContext, call: Call) -> Response:
    body = parse_command(call.path("phy_id"), call.json())
    role = "firmware" if body.changes_firmware else COMMAND_ROLES[body.kind]
    assert call.key is not None  # an authenticated route
    if role not in call.key.roles:
        raise Forbidden(role, [r for r in ROLES if r in call.key.roles])
    command = await ctx.service.send_command(call.path("phy_id"), body.kind, body.build,
                                             key_name=_key_name(call))
    return call.ok(command_view(command), f"{body.kind} queued")


async def get_command(ctx: ApiContext, call: Call) -> Response:
    command_id = call.path("command_id")
    command = await ctx.db.get_command(command_id)
    if command is None:
        raise CommandNotFound(command_id)
    return call.ok(command_view(command))


# --- devices -------------------------------------------------------------------------------

async def get_device(ctx: ApiContext, call: Call) -> Response:
    phy_id = call.path("phy_id")
    device = await ctx.db.get_device(phy_id)
    if device is None:
        raise DeviceNotFound(phy_id)
    ports = await ctx.db.list_ports(device.id)
    node = None if ctx.cluster is None else await ctx.cluster.owner_of(phy_id)
    return call.ok({**device_view(device, ports), "node": node})


async def list_devices(ctx: ApiContext, call: Call) -> Response:
    protocols = PROTOCOL_QUERY.parse(call.query)
    page = await ctx.db.list_devices(
        online=ONLINE_QUERY.parse(call.query),
        protocol=ProtocolFamily(protocols[0]) if protocols else None,
        limit=_limit(call), cursor=CURSOR_QUERY.parse(call.query))
    return call.ok({"items": [device_summary_view(d) for d in page.items],
                    "next_cursor": page.next_cursor})


async def provision_device(ctx: ApiContext, call: Call) -> Response:
    body = parse_device(call.json())
    identity, created = await ctx.service.provision_device(
        body.device_phy_id, protocol=body.protocol, iccid=body.iccid)
    response = call.ok(identity_view(identity.phy_id, identity),
                       "device provisioned" if created else "device updated")
    if created:
        response.status_code = 201
    return response


async def deprovision_device(ctx: ApiContext, call: Call) -> Response:
    phy_id = call.path("phy_id")
    await ctx.service.deprovision_device(phy_id)
    return call.ok(identity_view(phy_id, None), "device deprovisioned")


async def _device(ctx: ApiContext, call: Call) -> DeviceRecord:
    phy_id = call.path("phy_id")
    device = await ctx.db.get_device(phy_id)
    if device is None:
        raise DeviceNotFound(phy_id)
    return device


async def list_device_frames(ctx: ApiContext, call: Call) -> Response:
    device = await _device(ctx, call)
    entries = await ctx.db.list_cmd_logs(phy_id=device.phy_id, limit=_limit(call))
    return call.ok({"device_phy_id": device.phy_id,
                    "items": [frame_log_view(e) for e in entries]})


async def list_pending_commands(ctx: ApiContext, call: Call) -> Response:
    device = await _device(ctx, call)
    commands = await ctx.db.queued_commands(device.id, call.now, include_sent=True)
    return call.ok({"device_phy_id": device.phy_id,
                    "items": [command_view(c) for c in commands]})


# --- orders --------------------------------------------------------------------------------

async def _phy_ids(ctx: ApiContext, orders: Iterable[OrderRecord]) -> dict[int, str]:
    """The printed id of each order's device, looked up once per device."""
    found: dict[int, str] = {}
    for order in orders:
        if order.device_id not in found:
            device = await ctx.db.get_device_by_id(order.device_id)
            found[order.device_id] = "" if device is None else device.phy_id
    return found


async def get_order(ctx: ApiContext, call: Call) -> Response:
    order_no = call.path("order_no")
    order = await ctx.db.get_order(order_no)
    if order is None:
        raise OrderNotFound(order_no)
    phy_ids = await _phy_ids(ctx, (order,))
    return call.ok(order_view(order, phy_ids[order.device_id]))


async def list_orders(ctx: ApiContext, call: Call) -> Response:
    q = call.query
    page = await ctx.db.list_orders(
        device_phy_id=DEVICE_PHY_ID_QUERY.parse(q),
        statuses=[OrderState(s) for s in STATUS_QUERY.parse(q)],
        created_from=CREATED_FROM_QUERY.parse(q), created_to=CREATED_TO_QUERY.parse(q),
        limit=_limit(call), cursor=CURSOR_QUERY.parse(q))
    phy_ids = await _phy_ids(ctx, page.items)
    return call.ok({"items": [order_view(o, phy_ids[o.device_id]) for o in page.items],
                    "next_cursor": page.next_cursor})


async def get_order_progress(ctx: ApiContext, call: Call) -> Response:
    order_no = call.path("order_no")
    if await ctx.db.get_order(order_no) is None:
        raise OrderNotFound(order_no)
    samples = await ctx.db.list_progress(order_no)
    return call.ok({"order_no": order_no, "items": [progress_view(s) for s in samples]})


# --- cards ---------------------------------------------------------------------------------

async def _once(ctx: ApiContext, call: Call, body: Mapping[str, object],
                produce: Callable[[], Awaitable[Response]]) -> Response:
    """Run a state-changing request at most once per ``Idempotency-Key``:
    a repeat gets the first answer, a definite refusal included."""
    idem_key = idempotency_key(call.request.headers)
    if idem_key is None or call.key is None:
        return await produce()

    async def answer(_: AnswerRecorder) -> Response:
        # The answer is stored after the change commits; a crash in between cannot
        # credit twice, because the ledger keeps the Idempotency-Key with the entry.
        try:
            return await produce()
        except ServiceError as err:
            if err.status >= 500:
                raise
            return call.error(err)

    fingerprint = request_fingerprint(call.request.url.path, body)
    return await ctx.idempotency.run(call.key.name, idem_key, fingerprint, call.now, answer)


async def create_card(ctx: ApiContext, call: Call) -> Response:
    raw = call.json()
    body = parse_card(raw)

    async def produce() -> Response:
        try:
            card = await ctx.db.create_card(
                body.card_no, call.now, balance_cents=body.balance_cents, status=body.status,
                charge_mode=body.charge_mode, duration=body.duration,
                energy_wh=body.energy_wh, key_name=_key_name(call))
        except StoredCardExists as err:
            raise CardExists(err.card_no) from None
        return call.ok(card_view(card), "card created")

    return await _once(ctx, call, raw, produce)


async def get_card(ctx: ApiContext, call: Call) -> Response:
    card_no = call.path("card_no")
    card = await ctx.db.get_card(card_no)
    if card is None:
        raise CardNotFound(card_no)
    return call.ok(card_view(card))


async def list_card_ledger(ctx: ApiContext, call: Call) -> Response:
    card_no = call.path("card_no")
    if await ctx.db.get_card(card_no) is None:
        raise CardNotFound(card_no)
    page = await ctx.db.list_card_ledger(card_no, limit=_limit(call),
                                         cursor=CURSOR_QUERY.parse(call.query))
    return call.ok({"items": [ledger_entry_view(e) for e in page.items],
                    "next_cursor": page.next_cursor})


async def top_up_card(ctx: ApiContext, call: Call) -> Response:
    card_no = call.path("card_no")
    raw = call.json()
    body = parse_topup(raw)

    async def produce() -> Response:
        card = await ctx.db.top_up_card(card_no, body.amount_cents, call.now,
                                        key_name=_key_name(call), reason=body.reason,
                                        idem_key=idempotency_key(call.request.headers))
        if card is None:
            raise CardNotFound(card_no)
        return call.ok(card_view(card), "card topped up")

    return await _once(ctx, call, raw, produce)


async def adjust_card(ctx: ApiContext, call: Call) -> Response:
    card_no = call.path("card_no")
    raw = call.json()
    body = parse_adjust(raw)

    async def produce() -> Response:
        try:
            card = await ctx.db.adjust_card(card_no, body.amount_cents, call.now,
                                            reason=body.reason or "", key_name=_key_name(call),
                                            idem_key=idempotency_key(call.request.headers))
        except InsufficientFunds as err:
            raise InsufficientBalance(err.card_no, err.requested_cents,
                                      err.available_cents or 0) from None
        if card is None:
            raise CardNotFound(card_no)
        return call.ok(card_view(card), "card adjusted")

    return await _once(ctx, call, raw, produce)


async def set_card_status(ctx: ApiContext, call: Call) -> Response:
    card_no = call.path("card_no")
    raw = call.json()
    status = parse_card_status(raw)

    async def produce() -> Response:
        card = await ctx.db.set_card_status(card_no, status, call.now)
        if card is None:
            raise CardNotFound(card_no)
        return call.ok(card_view(card), f"card {status.value}")

    return await _once(ctx, call, raw, produce)


# --- events --------------------------------------------------------------------------------

async def list_events(ctx: ApiContext, call: Call) -> Response:
    after = AFTER_QUERY.parse(call.query) or 0
    events = await ctx.db.list_events(after=after, limit=_limit(call))
    return call.ok({"items": [event_view(e) for e in events],
                    "next_after": events[-1].seq if events else after})


async def redeliver_event(ctx: ApiContext, call: Call) -> Response:
    event = await ctx.service.redeliver(call.path("event_id"), key_name=_key_name(call))
    return call.ok(event_view(event), "event queued for delivery")


# --- operations ----------------------------------------------------------------------------

async def healthz(ctx: ApiContext, call: Call) -> Response:
    return call.ok({"status": "ok"})


async def readyz(ctx: ApiContext, call: Call) -> Response:
    service_ready = ctx.service.ready
    database_ready = False
    with trio.move_on_after(READY_DB_TIMEOUT):
        try:
            await ctx.db.schema_version()
            database_ready = True
        except Exception as err:
            ctx.logger.warning("readiness check: database failed", error=type(err).__name__)
    data = {"ready": service_ready and database_ready, "service": service_ready,
            "database": database_ready}
    if not data["ready"]:
        return call.error(Unavailable("not ready", data))
    return call.ok(data, "ready")


async def metrics(ctx: ApiContext, call: Call) -> Response:
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)


async def openapi(ctx: ApiContext, call: Call) -> Response:
    return Response(ctx.document, media_type=JSON_MEDIA_TYPE)


def _limit(call: Call) -> int:
    limit = LIMIT_QUERY.parse(call.query)
    assert limit is not None  # LIMIT_QUERY has a default
    return limit


#: Every route's handler, by the route's name in the table.
HANDLERS: Mapping[str, Handler] = {
    fn.__name__: fn for fn in (
        start_charge, stop_charge, set_params, query_params, start_ota, send_command,
        get_command, get_device, list_devices, provision_device, deprovision_device,
        list_device_frames, list_pending_commands, get_order,
        list_orders, get_order_progress,
        create_card, get_card, list_card_ledger, top_up_card, adjust_card, set_card_status,
        list_events, redeliver_event,
        healthz, readyz, metrics, openapi)
}
