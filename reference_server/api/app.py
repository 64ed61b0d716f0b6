# The HTTP API as a Starlette application (api.md §6): the route table turned into
# routes, and the pipeline every request goes through.
#
#   RequestMiddleware   gives the request its id (envelope, X-Request-Id), times it
#                       into iot_api_request_seconds by route *template* (bounded
#                       label set), and turns any unexpected exception into a 500
#                       envelope plus an error log line (no traceback to the client).
#   exception handlers  ServiceError (the service's and the HTTP layer's refusals),
#                       Starlette's 404/405, and storage's InvalidPage → the error
#                       envelope (envelope.py owns its shape).
#   admit()             per route: the remote address's failed-authentication
#                       bucket → X-Api-Key → body read (bounded, stops at
#                       max_body_bytes) → signature and nonce → per-key token
#                       bucket → the route's role → path ids → per-device bucket
#                       for command routes. A request is charged to its key's
#                       bucket only once it authenticated (api.md §11.3): whoever
#                       has seen a signing key's X-Api-Key cannot spend its limit
#                       with unsigned requests. Every failed authentication takes a
#                       token from its remote address's bucket
#                       (rate_limit_auth_failures per minute); with the bucket
#                       empty, that address gets 429 before any check, so guessing
#                       stops paying. The body is read before the signature
#                       because the signature covers it.
#   handlers.py         the routes' own work.
#
# One Starlette Route per path, whatever its methods, so a wrong method gets a 405
# whose Allow header lists every method of the path.
from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import trio
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..config import ROLES
from ..errors import InvalidArgument, ServiceError
from ..logs import Logger
from ..storage import AsyncDatabase, InvalidPage
from .auth import Authenticator
from .context import ApiContext, ChargingOperations, DeviceCalls
from .envelope import (
    REQUEST_ID_HEADER,
    Forbidden,
    HttpError,
    InternalError,
    MethodNotAllowed,
    RateLimited,
    RouteNotFound,
    Unauthorized,
    encode_json,
    error_response,
    new_request_id,
    remember_request_id,
    request_id_of,
)
from .forward import forward_to_owner, run_forwarded
from .handlers import HANDLERS, NOT_FOUND, Call, Handler
from .idempotency import IdempotencyStore
from .openapi import openapi_document
from .parse import MAX_PATH_ID_LENGTH, check_path_id, read_body
from .ratelimit import TokenBucketLimiter
from .routes import ROUTES, RouteSpec, admitting_roles, route_role

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..config import Config
    from ..metrics import Metrics

__all__ = ["create_app", "forwarded_call_runner"]

#: Label of requests that matched no route (so unknown paths add no label values).
UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def create_app(*, config: Config, db: AsyncDatabase, service: ChargingOperations,
               metrics: Metrics, clock: Callable[[], float] = time.time,
               logger: Logger | None = None, cluster: DeviceCalls | None = None
               ) -> Starlette:
    """The third-party HTTP API plus ``/healthz``, ``/readyz``, ``/metrics`` and
    ``/openapi.json``, as an ASGI application.

    Args:
        config: API keys, rate limits, body limit, signature and idempotency TTLs.
        db: The database (read routes, cards, nonces, idempotency answers).
        service: The charging service (a
            :class:`~reference_server.service.ChargingService`).
        metrics: Receives the request latencies; served at ``/metrics``.
        clock: Wall-clock Unix time, for envelope timestamps, signature skew and
            TTLs. Rate limiting uses trio's monotonic clock instead.
        logger: Where request errors go; a new stderr logger at
            ``config.log_level`` when None.
        cluster: On a cluster of servers, the node: device calls (charge, stop,
            commands) are forwarded to the node that owns the device. Calls
            forwarded here run through :func:`forwarded_call_runner`.

    Raises:
        RuntimeError: A route of the table has no handler (a programming error).
    """
    if logger is None:
        logger = Logger("error" if config.log_level == "critical" else config.log_level,
                        log_format=config.log_format)
    context = ApiContext(
        config=config, db=db, service=service, metrics=metrics, clock=clock, logger=logger,
        auth=Authenticator(config.api_keys, db, max_skew=config.signature_max_skew,
                           nonce_ttl=config.nonce_ttl),
        key_limiter=TokenBucketLimiter(config.rate_limit_rps, config.rate_limit_burst),
        auth_failure_limiter=TokenBucketLimiter(config.rate_limit_auth_failures / 60,
                                                config.rate_limit_auth_failures),
        device_limiter=TokenBucketLimiter(config.device_command_rate,
                                          config.device_command_rate),
        idempotency=IdempotencyStore(db, ttl=config.idempotency_ttl, logger=logger),
        document=encode_json(openapi_document()),
        cluster=cluster,
    )
    app = Starlette(
        routes=_routes(context),
        middleware=[Middleware(RequestMiddleware, context=context)],
        exception_handlers={
            HTTPException: _http_exception_handler(context),
            ServiceError: _service_error_handler(context),
            InvalidPage: _invalid_page_handler(context),
            ClientDisconnect: _disconnect_handler(context),
        },
    )
    app.state.api_context = context
    return app


def forwarded_call_runner(app: Starlette) -> Callable[[str], Awaitable[str]]:
    """What runs the calls other nodes forward to this one, for an app of
    :func:`create_app`."""
    context: ApiContext = app.state.api_context

    async def run(call: str) -> str:
        return await run_forwarded(context, call)
    return run


# --- routes --------------------------------------------------------------------------------

def _routes(context: ApiContext) -> list[BaseRoute]:
    missing = sorted({r.name for r in ROUTES} - set(HANDLERS))
    if missing:
        raise RuntimeError(f"routes without a handler: {', '.join(missing)}")
    by_path: dict[str, dict[str, RouteSpec]] = {}
    for spec in ROUTES:
        by_path.setdefault(spec.path, {})[spec.method] = spec
    return [Route(path, _endpoint(context, specs), methods=list(specs))
            for path, specs in by_path.items()]


def _endpoint(context: ApiContext,
              specs: Mapping[str, RouteSpec]) -> Callable[[Request], Awaitable[Response]]:
    handlers: dict[str, tuple[RouteSpec, Handler]] = {
        method: (spec, HANDLERS[spec.name]) for method, spec in specs.items()}

    async def endpoint(request: Request) -> Response:
        # Starlette answers HEAD with the GET route; the body is dropped on the way out.
        method = "GET" if request.method == "HEAD" else request.method
        spec, handler = handlers[method]
        call = await admit(context, spec, request)
        if spec.device_command and context.cluster is not None:
            answer = await forward_to_owner(context, spec, call)
            if answer is not None:
                return answer
        return await handler(context, call)

    return endpoint


async def admit(context: ApiContext, spec: RouteSpec, request: Request) -> Call:
    """Run the checks that guard *spec* and return the admitted call.

    Raises:
        Unauthorized, RateLimited, PayloadTooLarge, Forbidden: From the checks; a
            ``ServiceError`` "not found" for an impossible path id.
    """
    now = context.clock()
    request_id = request_id_of(request.scope)
    if not spec.auth:
        return Call(request=request, key=None, body=b"", now=int(now), request_id=request_id)
    address = request.client.host if request.client is not None else "unknown"
    locked_for = context.auth_failure_limiter.check(address, trio.current_time())
    if locked_for is not None:
        raise RateLimited("auth_failures", locked_for)
    try:
        key = context.auth.identify(request.headers)
        body = await read_body(request, context.config.max_body_bytes)
        await context.auth.verify(key, request.method, _signed_path(request.scope),
                                  request.headers, body, now=now)
    except Unauthorized:
        context.auth_failure_limiter.acquire(address, trio.current_time())
        raise
    _take_token(context.key_limiter, key.name, "api_key")
    if not admitting_roles(spec.name) & key.roles:
        raise Forbidden(route_role(spec.name), [r for r in ROLES if r in key.roles])
    for name, value in request.path_params.items():
        if not check_path_id(str(value)):
            raise NOT_FOUND[name](str(value)[:MAX_PATH_ID_LENGTH] + "…")
    if spec.device_command:
        _take_token(context.device_limiter, str(request.path_params["phy_id"]), "device")
    return Call(request=request, key=key, body=body, now=int(now), request_id=request_id)


def _take_token(limiter: TokenBucketLimiter, key: str, scope: str) -> None:
    retry_after = limiter.acquire(key, trio.current_time())
    if retry_after is not None:
        raise RateLimited(scope, retry_after)


def _signed_path(scope: Scope) -> str:
    # The path as the client sent it (percent-escapes kept), without the query:
    # that is the string a client has in hand when it signs (api.md §10.5).
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").partition("?")[0]
    return str(scope["path"])


# --- errors --------------------------------------------------------------------------------

_ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def _service_error_handler(context: ApiContext) -> _ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return error_response(exc, request_id=request_id_of(request.scope),
                              timestamp=context.now())
    return handle


def _http_exception_handler(context: ApiContext) -> _ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: ServiceError
        if exc.status_code == 404:
            error = RouteNotFound(request.url.path[:200])
        elif exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            error = MethodNotAllowed(request.method, allow)
        else:
            error = HttpError(exc.status_code, "http_error", exc.detail)
        return error_response(error, request_id=request_id_of(request.scope),
                              timestamp=context.now())
    return handle


def _invalid_page_handler(context: ApiContext) -> _ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidPage)
        problem = str(exc).removeprefix(f"{exc.field}: ")
        return error_response(InvalidArgument(exc.field, problem),
                              request_id=request_id_of(request.scope), timestamp=context.now())
    return handle


def _disconnect_handler(context: ApiContext) -> _ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> Response:
        # The client left while sending its body; nobody will read this answer.
        error = InvalidArgument("body", "the client disconnected before sending it all")
        return error_response(error, request_id=request_id_of(request.scope),
                              timestamp=context.now())
    return handle


# --- per-request bookkeeping ---------------------------------------------------------------

class RequestMiddleware:
    """Request id, latency metric and the last-resort 500 for every HTTP request.

    Args:
        app: The wrapped application.
        context: The API's shared dependencies.
    """

    def __init__(self, app: ASGIApp, *, context: ApiContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        remember_request_id(scope, request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            self.context.logger.error(
                "api request failed", request_id=request_id, method=scope.get("method"),
                route=_route_label(scope), error=type(exc).__name__,
                traceback=traceback.format_exc())
            if not response_started:
                response = error_response(InternalError(), request_id=request_id,
                                          timestamp=self.context.now())
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = str(scope.get("method", ""))
            self.context.metrics.api_latency.labels(
                method=method if method in _KNOWN_METHODS else "OTHER",
                route=_route_label(scope), status=str(status)).observe(elapsed)
            self.context.logger.debug("api request", request_id=request_id, method=method,
                                      route=_route_label(scope), status=status,
                                      ms=round(elapsed * 1000, 1))


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE
