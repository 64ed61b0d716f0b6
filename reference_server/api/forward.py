# Device calls on a cluster: a call about a device runs on the node that owns the
# device (its state lives there), whichever node the client reached.
#
# The receiving node authenticates and admits the call as usual (key, signature,
# nonce, rate limits), then hands it to the owner's mailbox: the route, the path
# and query, the key's NAME, the idempotency key and the body. The owner runs the
# route's handler on it without admitting it again (a nonce is single-use, and it
# was already spent here), and the answer comes back byte for byte. So idempotency
# keys, the order's transaction and the per-device rules all apply on one node, the
# owner, however many nodes take requests.
from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ServiceError, Unavailable
from .envelope import error_response
from .handlers import HANDLERS, Call
from .idempotency import IDEMPOTENCY_REPLAYED_HEADER

if TYPE_CHECKING:
    from .context import ApiContext
    from .routes import RouteSpec

__all__ = ["forward_to_owner", "run_forwarded"]

#: Owner look-ups a call makes when the device moves under it.
_MOVES = 3
#: The request headers a handler reads, carried along.
_CARRIED_HEADERS = ("content-type", "idempotency-key")
#: The answer headers carried back.
_ANSWER_HEADERS = ("content-type", IDEMPOTENCY_REPLAYED_HEADER.lower(), "retry-after")


async def forward_to_owner(context: ApiContext, spec: RouteSpec, call: Call
                           ) -> Response | None:
    """Run *call* on the device's owner if that is another node.

    Returns:
        The owner's answer, or None when this node is the owner or there is none
        alive (the call then runs here, which claims the device).

    Raises:
        Unavailable: The owner did not answer in time (its mailbox keeps the call,
            and the node that takes the device over runs it), or the device kept
            moving.
    """
    from ..cluster import CallMoved, OwnerUnavailable

    cluster = context.cluster
    assert cluster is not None
    phy_id = call.path("phy_id")
    for _ in range(_MOVES):
        node = await cluster.owner_elsewhere(phy_id)
        if node is None:
            return None
        try:
            reply = await cluster.forward(node, phy_id, _describe(spec, call))
        except CallMoved:
            continue
        except OwnerUnavailable:
            raise Unavailable(f"the node holding device {phy_id} did not answer in time; "
                              "the call stays queued for it") from None
        return _answer(reply)
    raise Unavailable(f"device {phy_id} kept moving between nodes; try again")


async def run_forwarded(context: ApiContext, text: str) -> str:
    """Run a call another node forwarded here; the answer, as that node returns it."""
    described = json.loads(text)
    name = str(described["route"])
    key = next((k for k in context.config.api_keys if k.name == described["key"]), None)
    if key is None:
        raise ValueError(f"forwarded call with an unknown key {described['key']!r}")
    body = base64.b64decode(described["body"])
    scope = {
        "type": "http", "http_version": "1.1", "scheme": "http", "root_path": "",
        "method": described["method"], "path": described["path"],
        "raw_path": described["path"].encode(), "query_string": described["query"].encode(),
        "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in described["headers"].items()],
        "path_params": described["path_params"], "client": None, "server": None,
    }
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    call = Call(request=Request(scope, receive), key=key, body=body,
                now=int(described["now"]), request_id=str(described["request_id"]))
    try:
        response = await HANDLERS[name](context, call)
    except ServiceError as err:
        response = error_response(err, request_id=call.request_id, timestamp=call.now)
    headers = {k: v for k, v in response.headers.items() if k in _ANSWER_HEADERS}
    return json.dumps({"status": response.status_code, "headers": headers,
                       "body": base64.b64encode(response.body).decode()})


def _describe(spec: RouteSpec, call: Call) -> str:
    request = call.request
    assert call.key is not None  # device calls are authenticated
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    return json.dumps({
        "route": spec.name, "method": request.method, "path": path.partition("?")[0],
        "query": request.url.query, "path_params": dict(request.path_params),
        "headers": {h: request.headers[h] for h in _CARRIED_HEADERS if h in request.headers},
        "key": call.key.name, "body": base64.b64encode(call.body).decode(),
        "now": call.now, "request_id": call.request_id,
    }, separators=(",", ":"))


def _answer(reply: str) -> Response:
    answer = json.loads(reply)
    return Response(content=base64.b64decode(answer["body"]), status_code=int(answer["status"]),
                    headers=dict(answer["headers"]))
