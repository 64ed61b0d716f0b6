# The response envelope of the third-party API (api.md §6) and the errors that
# only the HTTP layer raises.
#
# Every JSON answer is one shape:
#     {"code": 0, "message": ..., "data": ..., "request_id": ..., "timestamp": <unix s>}
# and an error uses its HTTP status as ``code`` and adds ``"error": <machine code>``.
# Errors travel as exceptions: the service raises ServiceError subclasses
# (reference_server/errors.py), this module adds the HTTP-only ones (401, 413, 429,
# …) as ApiError subclasses that also carry response headers, and one function
# turns any of them into the envelope. Nothing else builds error bodies.
from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from starlette.responses import Response

from ..errors import ServiceError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.types import Scope

__all__ = [
    "JSON_MEDIA_TYPE", "REQUEST_ID_HEADER", "ApiError", "Forbidden", "HttpError",
    "IdempotencyKeyReused",
    "InternalError",
    "MethodNotAllowed", "PayloadTooLarge", "RateLimited", "RequestTimeout", "RouteNotFound",
    "Unauthorized",
    "encode_json", "envelope", "error_response", "json_response", "new_request_id",
    "remember_request_id",
    "request_id_of", "success",
]

JSON_MEDIA_TYPE = "application/json"
#: The response header echoing the request id (the envelope carries it too).
REQUEST_ID_HEADER = "X-Request-Id"
#: Where the request id lives in the ASGI scope, for the exception handlers.
_REQUEST_ID_KEY = "reference_server.request_id"


class ApiError(ServiceError):
    """An error of the HTTP layer; may set response headers (``Retry-After`` …)."""

    def __init__(self, message: str, data: Mapping[str, object] | None = None, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, data)
        self.headers: Mapping[str, str] = dict(headers or {})


class Unauthorized(ApiError):
    """Missing or unknown API key, or a signed request that fails.

    ``data.reason`` says which check failed (``missing_key``, ``unknown_key``,
    ``missing_header``, ``stale_timestamp``, ``bad_signature``, ``replayed_nonce``,
    ``bad_nonce``), never anything secret.
    """

    status = 401
    error = "unauthorized"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, {"reason": reason})
        self.reason = reason


class Forbidden(ApiError):
    """The key authenticated but lacks the route's role.

    ``data`` names the ``required_role`` and the key's ``roles``.
    """

    status = 403
    error = "forbidden"

    def __init__(self, required_role: str, roles: list[str]) -> None:
        super().__init__(f"this API key lacks the role {required_role!r}",
                         {"required_role": required_role, "roles": roles})


class RateLimited(ApiError):
    """A token bucket is empty; ``Retry-After`` says when to come
    back.

    Args:
        scope: ``api_key``, ``device`` or ``auth_failures`` (failed authentications
            from the remote address): which limit was hit.
        retry_after: Whole seconds, at least 1.
    """

    status = 429
    error = "rate_limited"

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"too many requests ({scope} limit); retry after {retry_after} s",
                         {"scope": scope, "retry_after": retry_after},
                         headers={"Retry-After": str(retry_after)})


class PayloadTooLarge(ApiError):
    """The body is over ``max_body_bytes`` (64 KiB).

    The connection is closed after the answer: the rest of the body is never read.
    """

    status = 413
    error = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes", {"limit": limit},
                         headers={"Connection": "close"})


class RequestTimeout(ApiError):
    """The body did not arrive within the body read timeout (30 s).

    The connection is closed after the answer.
    """

    status = 408
    error = "request_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s",
                         {"timeout_s": seconds}, headers={"Connection": "close"})


class IdempotencyKeyReused(ApiError):
    """An ``Idempotency-Key`` came back with a different request (another path or body).

    422, as the IETF Idempotency-Key draft recommends for a reused key: repeating
    it cannot succeed, and 409 stays the port-busy answer of this endpoint.
    """

    status = 422
    error = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for a different request")


class RouteNotFound(ApiError):
    """No route has this path."""

    status = 404
    error = "not_found"

    def __init__(self, path: str) -> None:
        super().__init__(f"no such endpoint: {path}")


class MethodNotAllowed(ApiError):
    """The path exists, the method does not; ``Allow`` lists the ones that do."""

    status = 405
    error = "method_not_allowed"

    def __init__(self, method: str, allow: str) -> None:
        super().__init__(f"method {method} not allowed here", {"allow": allow.split(", ")},
                         headers={"Allow": allow})


class HttpError(ApiError):
    """Any other HTTP-level refusal (a status the router produced)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class InternalError(ApiError):
    """A bug: the client learns nothing but the request id to quote."""

    status = 500
    error = "internal"

    def __init__(self) -> None:
        super().__init__("internal server error")


def new_request_id() -> str:
    """A fresh request id: ``req-`` and 16 random hex digits."""
    return "req-" + secrets.token_hex(8)


def remember_request_id(scope: Scope, request_id: str) -> None:
    """Store the request's id in its ASGI scope (done once, when it arrives)."""
    scope[_REQUEST_ID_KEY] = request_id


def request_id_of(scope: Scope) -> str:
    """The id given to this request when it arrived (a fresh one if none was)."""
    value = scope.get(_REQUEST_ID_KEY)
    if isinstance(value, str):
        return value
    request_id = new_request_id()
    scope[_REQUEST_ID_KEY] = request_id
    return request_id


def encode_json(value: object) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (they are not JSON)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def envelope(*, data: object, message: str, request_id: str, timestamp: int, code: int = 0,
             error: str | None = None) -> dict[str, object]:
    """The envelope object; ``error`` only on errors."""
    out: dict[str, object] = {"code": code, "message": message}
    if error is not None:
        out["error"] = error
    out.update(data=data, request_id=request_id, timestamp=timestamp)
    return out


def json_response(body: bytes, *, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """A response with an already-encoded JSON body."""
    return Response(content=body, status_code=status, media_type=JSON_MEDIA_TYPE,
                    headers=dict(headers or {}))


def success(data: object, *, request_id: str, timestamp: int, message: str = "ok",
            headers: Mapping[str, str] | None = None) -> Response:
    """A 200 answer with ``code`` 0."""
    body = envelope(data=data, message=message, request_id=request_id, timestamp=timestamp)
    return json_response(encode_json(body), headers=headers)


def error_response(error: ServiceError, *, request_id: str, timestamp: int) -> Response:
    """The error envelope for *error*, with its status and headers."""
    body = envelope(data=error.data, message=error.message, request_id=request_id,
                    timestamp=timestamp, code=error.status, error=error.error)
    headers = error.headers if isinstance(error, ApiError) else None
    return json_response(encode_json(body), status=error.status, headers=headers)
