# The OpenAPI 3.1 document of the HTTP API, served at /openapi.json and rendered by
# the docs build.
#
# Paths and operations come from the route table (routes.py) and request bodies and
# query parameters from the validation specs (parse.py), so what is documented is
# what is routed and enforced. The response ``data`` shapes are written out here;
# a test compares them with what views.py produces. Pure: no application needed.
from __future__ import annotations

from typing import TYPE_CHECKING

from bkvcodec import __version__

from .auth import API_KEY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from .commandbody import COMMAND_BODIES, NETWORK_SOCKET_BODY
from .envelope import REQUEST_ID_HEADER
from .fields import BodySpec
from .idempotency import IDEMPOTENCY_REPLAYED_HEADER
from .parse import (
    ADJUST_BODY,
    CARD_BODY,
    CARD_STATUS_BODY,
    CHARGE_BODY,
    DEVICE_BODY,
    FIRMWARE_OTA_BODY,
    FTP_OTA_BODY,
    IDEMPOTENCY_KEY_HEADER,
    PARAMS_BODY,
    POWER_TIER_BODY,
    STOP_BODY,
    TOPUP_BODY,
)
from .routes import PATH_PARAMETERS, ROUTES, RouteSpec, path_parameters, route_role

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DATA_SCHEMAS", "openapi_document"]

_REF = "#/components/schemas/"

_TYPES = {"int": "integer", "num": "number", "str": "string", "bool": "boolean",
          "obj": "object", "list": "array"}


def _t(kind: str, description: str = "") -> dict[str, object]:
    """A property schema from a short kind: ``int``, ``str?`` (nullable), …"""
    base = kind.rstrip("?")
    json_type = _TYPES[base]
    schema: dict[str, object] = {"type": [json_type, "null"] if kind.endswith("?")
                                 else json_type}
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, object]:
    return {"$ref": _REF + name}


def _object(description: str, properties: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
    # Every property is always present (null when unknown), so all are required.
    return {"type": "object", "description": description,
            "properties": {k: dict(v) for k, v in properties.items()},
            "required": list(properties)}


def _page(description: str, item: str) -> dict[str, object]:
    return _object(description, {
        "items": {"type": "array", "items": _ref(item)},
        "next_cursor": _t("str?", "Pass as cursor for the next page; null at the end.")})


_DEVICE_FIELDS: dict[str, dict[str, object]] = {
    "device_phy_id": _t("str"),
    "protocol": {"type": "string", "enum": ["bkv", "ap3000"]},
    "online": _t("bool"),
    "last_seen_at": _t("int?", "Unix s of the last frame."),
    "remote_addr": _t("str?"),
    "firmware": _t("str?"),
    "iccid": _t("str?"),
    "rssi": _t("int?", "Raw signal value the device reports."),
    "created_at": _t("int"),
    "updated_at": _t("int"),
}

#: The ``data`` schemas of the answers, by components name.
DATA_SCHEMAS: dict[str, dict[str, object]] = {
    "ChargeResult": {**_object("The created order.", {
        "order_no": _t("str"), "device_phy_id": _t("str"), "socket_no": _t("int"),
        "port_no": _t("int", "The port used (the chosen one for port_no 255)."),
        "status": _t("str", "pending"), "device_online": _t("bool"),
        "old_order": _t("str", "Only when busy_port_policy replace settled an order."),
        "new_order": _t("str", "Only with old_order.")}),
        "required": ["order_no", "device_phy_id", "socket_no", "port_no", "status",
                     "device_online"]},
    "Port": _object("One charging point.", {
        "socket_no": _t("int"), "port_no": _t("int"),
        "status": {"type": "integer", "enum": [0, 1, 2, 3],
                   "description": "0 idle, 1 charging, 2 fault, 3 offline."},
        "status_name": {"type": "string", "enum": ["idle", "charging", "fault", "offline"]},
        "power_w": _t("int", "W."), "voltage_v": _t("num?", "V."),
        "fault_code": _t("int", "The protocol's raw fault value; 0 = none."),
        "order_no": _t("str?"), "updated_at": _t("int")}),
    "DeviceSummary": _object("A device without its ports.", _DEVICE_FIELDS),
    "Device": _object("A device with its ports.", {
        **_DEVICE_FIELDS, "ports": {"type": "array", "items": _ref("Port")},
        "node": _t("str?", "On a cluster of servers, the node that holds the device "
                          "now; null when none does, or when the server runs alone.")}),
    "DevicePage": _page("One page of devices, in creation order.", "DeviceSummary"),
    "Order": _object("An order: its identity, state, meters, money, timestamps and settlement.", {
        "order_no": _t("str"), "device_phy_id": _t("str"), "socket_no": _t("int"),
        "port_no": _t("int"),
        "status": {"type": "string", "enum": ["pending", "charging", "stopping", "completed",
                                              "failed", "cancelled", "exception"]},
        "charge_mode": _t("int", "1 time, 2 energy, 3 power tiers, 4 until full."),
        "tariff": {"type": "string", "enum": ["energy", "time", "tiers", "flat"],
                   "description": "How the order is billed."},
        "start_time": _t("int?", "Unix s."), "end_time": _t("int?", "Unix s."),
        "duration_sec": _t("int", "Seconds, as the device reports."),
        "total_kwh": _t("num", "kWh, 2 decimals."),
        "current_power": _t("num", "W, 1 decimal."), "peak_power": _t("num", "W, 1 decimal."),
        "amount": _t("int?", "Prepaid, cents."),
        "price_per_kwh": _t("int", "Cents per kWh."),
        "service_fee": _t("int", "Per mille."),
        "requested_duration_sec": _t("int?"), "requested_energy_wh": _t("int?"),
        "power_tiers": {"type": ["array", "null"], "items": _ref("PowerTier")},
        "end_reason": _t("str?", "normal, full, insufficient_balance, remote_stop, fault, "
                                 "timeout, user_stop, no_confirmation, device_lost_order, "
                                 "command_expired; device_rejected (no stored code) when "
                                 "the device refused the start."),
        "end_reason_name": _t("str?", "The same name as end_reason."),
        "end_reason_code": _t("int?", "The stored code."),
        "end_reason_msg": _t("str?", "In words."),
        "end_reason_raw": _t("int?", "The protocol's own reason code (for a refused "
                                     "start, the device's result code)."),
        "end_detail": _t("str?", "Why a failed order failed: for a start the device "
                                 "refused, the device's reason (end_reason "
                                 "device_rejected, end_reason_code null)."),
        "final_amount": _t("num?", "Yuan, 2 decimals."),
        "final_amount_cents": _t("int?"), "refund_cents": _t("int?"),
        "energy_fee_cents": _t("int?"), "service_fee_cents": _t("int?"),
        "device_amount_cents": _t("int?", "What the device itself billed, if it bills."),
        "card_no": _t("str?"), "stop_reason": _t("str?"),
        "key_name": _t("str?", "The API key that created it; null for a card swipe."),
        "created_at": _t("int"), "updated_at": _t("int")}),
    "OrderPage": _page("One page of orders, newest first.", "Order"),
    "ProgressSample": _object("One progress report.", {
        "time": _t("int", "Unix s of receipt."), "duration_sec": _t("int"),
        "total_kwh": _t("num", "kWh."), "power": _t("num", "W."),
        "voltage": _t("num?", "V."), "current": _t("num?", "A.")}),
    "Progress": _object("An order's progress samples, oldest first.", {
        "order_no": _t("str"), "items": {"type": "array", "items": _ref("ProgressSample")}}),
    "Command": _object("A downlink command.", {
        "id": _t("str"), "command_id": _t("str", "The same as id."),
        "device_phy_id": _t("str"), "kind": _t("str"),
        "status": {"type": "string", "enum": ["queued", "sent", "acked", "failed", "expired"]},
        "reason": _t("str?", "Why it failed or expired."),
        "result": {"description": "The device's answer (parameter queries), or null."},
        "attempts": _t("int"),
        "msg_id": _t("int?", "The wire message id it was sent with (BKV frame sequence "
                             "number, AP3000 message id) of its first frame on its "
                             "latest connection; null until it is written."),
        "order_no": _t("str?"), "created_at": _t("int"),
        "sent_at": _t("int?"), "finished_at": _t("int?"), "expires_at": _t("int"),
        "key_name": _t("str?", "The API key that asked for it; null when the server "
                               "or a device did.")}),
    "Card": _object("A card of the registry.", {
        "card_no": _t("str"), "balance_cents": _t("int"), "balance": _t("num", "Yuan."),
        "held_cents": _t("int", "Reserved by open card orders (their holds)."),
        "available_cents": _t("int", "balance_cents − held_cents: what a swipe may be "
                                     "authorised for."),
        "status": {"type": "string", "enum": ["active", "blocked"]},
        "charge_mode": _t("int?"), "duration": _t("int?"), "energy_wh": _t("int?"),
        "created_at": _t("int"), "updated_at": _t("int")}),
    "LedgerEntry": _object("An append-only entry of a card's ledger.", {
        "entry_id": _t("int", "Increasing; the ledger's order."),
        "kind": {"type": "string", "enum": ["topup", "hold", "release", "debit", "adjust"]},
        "amount_cents": _t("int", "Positive; signed for adjust."),
        "order_no": _t("str?", "The order of a hold, release or debit."),
        "key_name": _t("str?", "The API key that asked (null for swipes and settlements)."),
        "reason": _t("str?"), "created_at": _t("int")}),
    "LedgerPage": _page("One page of a card's ledger, oldest entry first.", "LedgerEntry"),
    "Event": _object("A recorded event in the webhook envelope's shape.", {
        "seq": _t("int", "Position in the outbox."), "event_id": _t("str"),
        "event_type": _t("str"), "device_phy_id": _t("str?"), "order_no": _t("str?"),
        "timestamp": _t("int", "When it happened, Unix s."), "data": _t("obj")}),
    "EventPage": _object("Events after the given sequence number.", {
        "items": {"type": "array", "items": _ref("Event")},
        "next_after": _t("int", "The last seq returned (the given after if none).")}),
    "DeviceIdentity": _object("A device id's provisioning and ICCID binding.", {
        "device_phy_id": _t("str"),
        "provisioned": _t("bool", "Served under device_policy known."),
        "protocol": _t("str?"), "bound_iccid": _t("str?", "The SIM the device is bound to."),
        "created_at": _t("int?"), "updated_at": _t("int?")}),
    "DecodedFrame": _object("One item the library found in logged bytes.", {
        "protocol": {"type": ["string", "null"], "enum": ["bkv", "ap3000", None]},
        "command": _t("str?", "The envelope command, e.g. 0x1000; null for items that "
                              "are no frame."),
        "message": _t("str", "The library's class name: Heartbeat, ChargeControl, …; "
                             "FrameRejected when the bytes are no valid frame."),
        "fields": _t("obj", "The message's fields: enums by lower-case name, bytes in "
                            "hex.")}),
    "LoggedFrame": _object("One read from or write to the device.", {
        "id": _t("int", "Increasing with time."), "device_phy_id": _t("str?"),
        "direction": {"type": "string", "enum": ["up", "down"]},
        "cmd": _t("str", "The commands as logged, comma-separated."),
        "hex": _t("str", "The bytes."), "created_at": _t("int", "Unix s."),
        "frames": {"type": "array", "items": _ref("DecodedFrame")}}),
    "FrameLog": _object("A device's recent frames, newest first.", {
        "device_phy_id": _t("str"),
        "items": {"type": "array", "items": _ref("LoggedFrame")}}),
    "CommandList": _object("A device's pending commands, oldest first.", {
        "device_phy_id": _t("str"),
        "items": {"type": "array", "items": _ref("Command")}}),
    "Health": _object("Liveness.", {"status": _t("str", "ok")}),
    "Readiness": _object("Readiness.", {"ready": _t("bool"), "service": _t("bool"),
                                        "database": _t("bool")}),
}

_ENVELOPE = _object("Every JSON answer.", {
    "code": _t("int", "0 on success."), "message": _t("str"),
    "data": {"description": "The answer; see each operation."},
    "request_id": _t("str", "Also in the X-Request-Id header."),
    "timestamp": _t("int", "Unix s.")})

_ERROR_ENVELOPE = _object("An error: code = the HTTP status.", {
    "code": _t("int", "The HTTP status."), "message": _t("str"),
    "error": _t("str", "Machine code: invalid_argument, unauthorized, not_found, "
                       "device_not_found, order_not_found, command_not_found, "
                       "event_not_found, card_not_found, method_not_allowed, port_busy, "
                       "card_exists, insufficient_balance, request_timeout, "
                       "payload_too_large, port_fault, port_not_found, device_rejected, "
                       "idempotency_key_reused, rate_limited, internal, unavailable."),
    "data": {"type": ["object", "null"],
             "description": "Details; invalid_argument names the field in data.field."},
    "request_id": _t("str"), "timestamp": _t("int")})

_BODIES: tuple[BodySpec, ...] = (CHARGE_BODY, POWER_TIER_BODY, STOP_BODY, PARAMS_BODY,
                                 FTP_OTA_BODY, FIRMWARE_OTA_BODY, CARD_BODY, TOPUP_BODY,
                                 ADJUST_BODY, CARD_STATUS_BODY, DEVICE_BODY,
                                 *COMMAND_BODIES.values(), NETWORK_SOCKET_BODY)

_ERROR_TEXT: Mapping[int, str] = {
    400: "invalid_argument: a field is missing, mistyped or out of range (data.field).",
    401: "unauthorized: missing or unknown X-Api-Key, or a bad signature (data.reason).",
    403: "forbidden: the key lacks the route's role (data.required_role; x-required-role).",
    404: "Not found (device_not_found, order_not_found, …).",
    405: "method_not_allowed.",
    409: "port_busy (data: current_order, port_no, status); card_exists; "
         "insufficient_balance (data: requested_cents, available_cents).",
    408: "request_timeout: the body did not arrive within 30 s.",
    413: "payload_too_large: the body is over max_body_bytes (64 KiB).",
    422: "port_fault, port_not_found (data: port_no, port_count), device_rejected or "
         "idempotency_key_reused.",
    429: "rate_limited: per-key, per-device or failed-authentication limit (data.scope); "
         "see Retry-After.",
    500: "internal: a server bug; quote the request_id.",
    503: "unavailable: the server is starting or stopping.",
}

_SECURITY_SCHEMES: dict[str, object] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
               "description": "Every /api/v1/third route."},
    "Timestamp": {"type": "apiKey", "in": "header", "name": TIMESTAMP_HEADER,
                  "description": "Unix seconds, within signature_max_skew (300 s). Required "
                                 "with a signing key; checked when sent with any key."},
    "Nonce": {"type": "apiKey", "in": "header", "name": NONCE_HEADER,
              "description": "Not used by this key within nonce_ttl (10 min). Required with a "
                             "signing key; checked when sent with any key."},
    "Signature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
                  "description": "Required with a signing key: hex HMAC-SHA256(secret, "
                                 "METHOD\\nPATH\\nX-Timestamp\\nX-Nonce\\nhex(sha256(body))); "
                                 "PATH as sent, without the query string."},
}

#: Either a plain key, or a signing key with its three headers.
_SECURITY: list[dict[str, list[str]]] = [
    {"ApiKey": []}, {"ApiKey": [], "Timestamp": [], "Nonce": [], "Signature": []}]


def _error_response(status: int) -> dict[str, object]:
    out: dict[str, object] = {
        "description": _ERROR_TEXT.get(status, "An error."),
        "content": {"application/json": {"schema": _ref("ErrorEnvelope")}}}
    if status == 429:
        out["headers"] = {"Retry-After": {"description": "Whole seconds to wait (≥ 1).",
                                          "schema": {"type": "integer", "minimum": 1}}}
    return out


def _success_response(route: RouteSpec) -> dict[str, object]:
    if route.data is None:
        media = route.raw_media_type or "application/json"
        return {"description": route.summary, "content": {media: {"schema": {}}}}
    schema = {"allOf": [_ref("Envelope"),
                        {"type": "object", "properties": {"data": _ref(route.data)}}]}
    headers: dict[str, object] = {REQUEST_ID_HEADER: {"schema": {"type": "string"}}}
    if route.idempotent:
        headers[IDEMPOTENCY_REPLAYED_HEADER] = {
            "description": "true when this is the stored answer to an earlier request.",
            "schema": {"type": "string", "enum": ["true"]}}
    return {"description": route.summary, "headers": headers,
            "content": {"application/json": {"schema": schema}}}


def _parameters(route: RouteSpec) -> list[dict[str, object]]:
    params: list[dict[str, object]] = [
        {"name": name, "in": "path", "required": True,
         "description": PATH_PARAMETERS[name], "schema": {"type": "string", "maxLength": 64}}
        for name in path_parameters(route.path)]
    params += [{"name": q.name, "in": "query", "required": False, "description": q.description,
                "schema": q.schema()} for q in route.query]
    if route.idempotent:
        params.append({"name": IDEMPOTENCY_KEY_HEADER, "in": "header", "required": False,
                       "description": "Replays the first answer for 24 h.",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
    return params


def _operation(route: RouteSpec) -> dict[str, object]:
    errors = set(route.errors)
    if route.auth:
        errors |= {401, 403, 429}
    if route.bodies:
        # Only a route that takes a body lists the body's limits. (The server reads
        # any request's body to check a signature, so a GET sent with an oversized or
        # trickled body is refused the same way; no client of the contract sends one.)
        errors |= {408, 413}
    if route.bodies or route.query or route.idempotent:
        errors |= {400}
    responses: dict[str, object] = {str(route.success_status): _success_response(route)}
    if route.success_status == 201:
        responses["200"] = _success_response(route)
    for status in sorted(errors):
        responses[str(status)] = _error_response(status)
    responses["default"] = _error_response(500)
    op: dict[str, object] = {"operationId": route.name, "summary": route.summary,
                             "tags": [route.tag], "responses": responses,
                             "security": _SECURITY if route.auth else []}
    if route.auth:
        role = route_role(route.name)
        op["x-required-role"] = role
        op["description"] = " ".join(
            filter(None, (route.description, f"Role: {role}.")))
    elif route.description:
        op["description"] = route.description
    params = _parameters(route)
    if params:
        op["parameters"] = params
    if route.bodies:
        schema = (_ref(route.bodies[0].name) if len(route.bodies) == 1
                  else {"oneOf": [_ref(b.name) for b in route.bodies]})
        op["requestBody"] = {
            "required": True,
            "description": "JSON, read as JSON whatever the Content-Type; at most 64 KiB.",
            "content": {"application/json": {"schema": schema}}}
    return op


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 document of every route (the one /openapi.json serves).

    .. versionadded:: 0.1.0
    """
    paths: dict[str, dict[str, object]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    schemas: dict[str, object] = {"Envelope": _ENVELOPE, "ErrorEnvelope": _ERROR_ENVELOPE}
    schemas.update(DATA_SCHEMAS)
    schemas.update({body.name: body.schema() for body in _BODIES})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bkvcodec reference server API",
            "version": __version__,
            "description": "The third-party HTTP API of the reference charging server "
                           "(see the contract page of the documentation). Every JSON answer "
                           "is the envelope "
                           "{code, message, data, request_id, timestamp}; errors add "
                           "error and use the HTTP status as code.",
        },
        "tags": [{"name": name} for name in dict.fromkeys(r.tag for r in ROUTES)],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }
