# The HTTP API's route table (api.md §6.3, §10.10): one row per (method, path),
# saying what the route takes, what it answers and which checks guard it.
#
# The table is the single source for both the Starlette routes (app.py maps each
# row's ``name`` to its handler and refuses to start if one is missing) and the
# OpenAPI document (openapi.py renders the rows), so the two cannot drift; a test
# compares them. The table holds no code, so the document can be built without
# an application (for the docs).
#
# Roles (api.md §11.4): ROUTE_ROLES names the role each authenticated route needs,
# one line per route name. A route missing from it needs ``admin``, so a route added
# without a thought about its role is closed to every narrower key, never open.
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .commandbody import COMMAND_BODIES, ORDER_KINDS
from .fields import BodySpec, QuerySpec
from .parse import (
    ADJUST_BODY,
    AFTER_QUERY,
    CARD_BODY,
    CARD_STATUS_BODY,
    CHARGE_BODY,
    CREATED_FROM_QUERY,
    CREATED_TO_QUERY,
    CURSOR_QUERY,
    DEVICE_BODY,
    DEVICE_PHY_ID_QUERY,
    FIRMWARE_OTA_BODY,
    FTP_OTA_BODY,
    LIMIT_QUERY,
    ONLINE_QUERY,
    PARAMS_BODY,
    PROTOCOL_QUERY,
    SOCKET_NO_QUERY,
    STATUS_QUERY,
    STOP_BODY,
    TOPUP_BODY,
)

if TYPE_CHECKING:
    from ..config import Role

__all__ = ["API_PREFIX", "COMMAND_ROLES", "PATH_PARAMETERS", "ROUTES", "ROUTE_ROLES",
           "RouteSpec", "admitting_roles", "path_parameters", "route_role"]

#: Base path of the third-party API.
API_PREFIX = "/api/v1/third"

#: Words for each path parameter.
PATH_PARAMETERS: dict[str, str] = {
    "phy_id": "The device's printed id (BKV/GN: 14 hex digits).",
    "order_no": "The order number (THD + 10-digit Unix seconds + 3-digit sequence).",
    "command_id": "A command id, as returned by the params, ota and commands endpoints.",
    "card_no": "The card number.",
    "event_id": "A recorded event's id.",
}

_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    """One route.

    Attributes:
        name: The handler's name and the document's ``operationId``.
        method: ``GET`` or ``POST``.
        path: The full path template (Starlette and OpenAPI agree on ``{name}``).
        summary: One line for the document.
        tag: The document's group.
        auth: Requires ``X-Api-Key`` (and a signature for signing keys).
        device_command: Counts against the per-device rate limit.
        idempotent: Honours the ``Idempotency-Key`` header.
        bodies: The accepted JSON bodies (several: any one of them).
        query: The query parameters.
        data: The components schema of the envelope's ``data``; None for a raw
            (not enveloped) answer.
        raw_media_type: The media type of a raw answer.
        errors: Error statuses particular to the route (auth, rate-limit, body and
            validation errors are added from the flags above).
        description: More words for the document.
        success_status: The HTTP status of a success (201 for a creation).
    """

    name: str
    method: str
    path: str
    summary: str
    tag: str
    auth: bool = True
    device_command: bool = False
    idempotent: bool = False
    bodies: tuple[BodySpec, ...] = ()
    query: tuple[QuerySpec, ...] = ()
    data: str | None = None
    raw_media_type: str | None = None
    errors: tuple[int, ...] = ()
    description: str = ""
    success_status: int = 200


#: The role each authenticated route needs, by route name: ``read``
#: for looking, ``operate`` for charging and device commands, ``cards`` for the card
#: registry, ``firmware`` for OTA, ``admin`` for provisioning, redelivery and keys.
ROUTE_ROLES: Mapping[str, Role] = {
    "start_charge": "operate",
    "stop_charge": "operate",
    "set_params": "operate",
    "query_params": "operate",
    "start_ota": "firmware",
    # The role depends on the kind (COMMAND_ROLES); this is the one the document names.
    "send_command": "operate",
    "get_command": "read",
    "get_device": "read",
    "list_devices": "read",
    "list_orders": "read",
    "get_order": "read",
    "get_order_progress": "read",
    "list_events": "read",
    "create_card": "cards",
    "get_card": "cards",
    "list_card_ledger": "cards",
    "top_up_card": "cards",
    "adjust_card": "cards",
    "set_card_status": "cards",
    "redeliver_event": "admin",
    "provision_device": "admin",
    "deprovision_device": "admin",
    "list_device_frames": "read",
    "list_pending_commands": "read",
}


#: The role each kind of ``POST /devices/{phy_id}/commands`` needs: firmware kinds
#: need ``firmware`` like ``/ota``, the others ``operate`` like ``/params``.
COMMAND_ROLES: Mapping[str, Role] = {
    **{kind: "operate" for kind in (*COMMAND_BODIES, *ORDER_KINDS)},
    "start_ota": "firmware",
    "send_firmware": "firmware",
}
#: Routes whose role depends on the body: admission lets in a key with any of the
#: roles, the handler checks the one the body asks for.
_ROLES_BY_BODY: Mapping[str, Mapping[str, Role]] = {"send_command": COMMAND_ROLES}


def admitting_roles(name: str) -> frozenset[Role]:
    """The roles of which a key needs one to be admitted to route *name*."""
    by_body = _ROLES_BY_BODY.get(name)
    return frozenset(by_body.values()) if by_body else frozenset({route_role(name)})


def route_role(name: str) -> Role:
    """The role route *name* needs: its :data:`ROUTE_ROLES` entry, else ``admin``."""
    return ROUTE_ROLES.get(name, "admin")


def path_parameters(path: str) -> list[str]:
    """The ``{name}`` parameters of a path template, in order."""
    return _PARAM.findall(path)


_P = API_PREFIX
_PAGE = (LIMIT_QUERY, CURSOR_QUERY)

ROUTES: tuple[RouteSpec, ...] = (
    # --- devices and their commands ---
    RouteSpec(name="start_charge", method="POST", path=f"{_P}/devices/{{phy_id}}/charge",
              summary="Start charging on a port", tag="charging", device_command=True,
              idempotent=True, bodies=(CHARGE_BODY,), data="ChargeResult",
              errors=(404, 409, 422, 503),
              description="Creates a pending order and queues its start command. An offline "
                          "device still gets the order; the command waits up to command_ttl. "
                          "409 port_busy when the port runs an order (busy_port_policy "
                          "reject); 422 port_not_found when the device announced fewer "
                          "ports than port_no (no order is created); with policy replace "
                          "the answer carries old_order and new_order. A repeat with the "
                          "same Idempotency-Key within idempotency_ttl replays the first "
                          "answer (header Idempotency-Replayed: true); the same key with "
                          "another body is 422 idempotency_key_reused."),
    RouteSpec(name="stop_charge", method="POST", path=f"{_P}/devices/{{phy_id}}/stop",
              summary="Stop the order on a port", tag="charging", device_command=True,
              bodies=(STOP_BODY,), data="Order", errors=(404, 503),
              description="The order becomes stopping (or cancelled if it never started)."),
    RouteSpec(name="get_device", method="GET", path=f"{_P}/devices/{{phy_id}}",
              summary="A device with its ports", tag="devices", data="Device", errors=(404,)),
    RouteSpec(name="list_devices", method="GET", path=f"{_P}/devices",
              summary="List devices", tag="devices",
              query=(ONLINE_QUERY, PROTOCOL_QUERY, *_PAGE), data="DevicePage"),
    RouteSpec(name="provision_device", method="POST", path=f"{_P}/devices",
              summary="Provision a device id", tag="devices", bodies=(DEVICE_BODY,),
              data="DeviceIdentity", success_status=201,
              description="Under device_policy known only provisioned ids are served. "
                          "An iccid given binds the device to that SIM, "
                          "replacing an earlier binding (a SIM swap). 201 when the id was "
                          "not provisioned before, 200 when it was (its fields updated). "
                          "The device row itself is created when the device connects."),
    RouteSpec(name="deprovision_device", method="DELETE", path=f"{_P}/devices/{{phy_id}}",
              summary="Withdraw a device id's provisioning and ICCID binding",
              tag="devices", data="DeviceIdentity", errors=(404, 503),
              description="The device's history (orders, events) is kept. Under "
                          "device_policy known its live connection is closed; its next "
                          "ICCID is bound afresh (iccid_binding pin)."),
    RouteSpec(name="set_params", method="POST", path=f"{_P}/devices/{{phy_id}}/params",
              summary="Queue a parameter change", tag="commands", device_command=True,
              bodies=(PARAMS_BODY,), data="Command", errors=(404, 422, 503),
              description="The device's answer arrives as webhook device.params_result and "
                          "at GET /commands/{command_id}."),
    RouteSpec(name="query_params", method="GET", path=f"{_P}/devices/{{phy_id}}/params",
              summary="Queue a parameter query", tag="commands", device_command=True,
              query=(SOCKET_NO_QUERY,), data="Command", errors=(404, 422, 503)),
    RouteSpec(name="start_ota", method="POST", path=f"{_P}/devices/{{phy_id}}/ota",
              summary="Queue a firmware update", tag="commands", device_command=True,
              bodies=(FTP_OTA_BODY, FIRMWARE_OTA_BODY), data="Command",
              errors=(404, 422, 503),
              description="BKV gateways fetch firmware by FTP (ftp_host, file_name); AP3000 "
                          "units get the image in packets (image_base64). 422 "
                          "device_rejected when the form does not fit the device."),
    RouteSpec(name="send_command", method="POST", path=f"{_P}/devices/{{phy_id}}/commands",
              summary="Queue any device command", tag="commands", device_command=True,
              bodies=tuple(COMMAND_BODIES.values()), data="Command", errors=(404, 422, 503),
              description="One body per kind: query_status, set_params, query_params, "
                          "modify_charge, set_network_list, send_message (role operate), "
                          "start_ota, send_firmware and a send_message that changes firmware "
                          "(role firmware). The command is stored, then sent "
                          "when the device is online; GET /commands/{command_id} gives its "
                          "outcome. A value the device's protocol cannot carry, a field the "
                          "command needs or a command the protocol lacks is 422 "
                          "invalid_command with the codec's message. An AP3000 set_params "
                          "naming only some fields of its set command is completed with the "
                          "device's last reported values; with none known the server first "
                          "queries the device, and the set fails (with the reason) if the "
                          "query is not answered within command_ttl. start_charging and "
                          "stop_charging are refused (422 invalid_command): orders start and "
                          "stop through /charge and /stop, which keep the order and its bill."),
    RouteSpec(name="get_command", method="GET", path=f"{_P}/commands/{{command_id}}",
              summary="A queued command and its outcome", tag="commands", data="Command",
              errors=(404,)),
    RouteSpec(name="list_device_frames", method="GET", path=f"{_P}/devices/{{phy_id}}/frames",
              summary="A device's recent frames, decoded, newest first", tag="devices",
              query=(LIMIT_QUERY,), data="FrameLog", errors=(404,),
              description="Each item is one logged read or write (the frame log keeps "
                          "cmd_log_retention and at most cmd_log_max_rows rows), with the "
                          "frames it held decoded. Frames are logged in batches, so the "
                          "newest second may be missing."),
    RouteSpec(name="list_pending_commands", method="GET",
              path=f"{_P}/devices/{{phy_id}}/commands",
              summary="A device's pending commands, oldest first", tag="devices",
              data="CommandList", errors=(404,),
              description="Commands not yet answered: queued (and not expired) or sent. "
                          "Finished ones stay readable at GET /commands/{command_id}."),
    # --- orders ---
    RouteSpec(name="list_orders", method="GET", path=f"{_P}/orders",
              summary="List orders, newest first", tag="orders",
              query=(DEVICE_PHY_ID_QUERY, STATUS_QUERY, CREATED_FROM_QUERY, CREATED_TO_QUERY,
                     *_PAGE),
              data="OrderPage"),
    RouteSpec(name="get_order", method="GET", path=f"{_P}/orders/{{order_no}}",
              summary="An order with its live progress and settlement", tag="orders",
              data="Order", errors=(404,)),
    RouteSpec(name="get_order_progress", method="GET",
              path=f"{_P}/orders/{{order_no}}/progress",
              summary="An order's progress samples", tag="orders", data="Progress",
              errors=(404,)),
    # --- cards ---
    RouteSpec(name="create_card", method="POST", path=f"{_P}/cards",
              summary="Register a card", tag="cards", idempotent=True, bodies=(CARD_BODY,),
              data="Card", errors=(409,),
              description="409 card_exists when the card is registered already: its balance "
                          "changes only through /topup and /adjust, each a ledger entry."),
    RouteSpec(name="get_card", method="GET", path=f"{_P}/cards/{{card_no}}",
              summary="A card: balance, held and available cents", tag="cards", data="Card",
              errors=(404,)),
    RouteSpec(name="list_card_ledger", method="GET", path=f"{_P}/cards/{{card_no}}/ledger",
              summary="A card's ledger, oldest entry first", tag="cards", query=_PAGE,
              data="LedgerPage", errors=(404,),
              description="Append-only entries: topup, adjust, and per card order a hold at "
                          "the swipe, then a debit of the bill and a release of the rest."),
    RouteSpec(name="top_up_card", method="POST", path=f"{_P}/cards/{{card_no}}/topup",
              summary="Add to a card's balance", tag="cards", idempotent=True,
              bodies=(TOPUP_BODY,), data="Card", errors=(404,),
              description="A repeat with the same Idempotency-Key credits once."),
    RouteSpec(name="adjust_card", method="POST", path=f"{_P}/cards/{{card_no}}/adjust",
              summary="Correct a card's balance, with a reason", tag="cards", idempotent=True,
              bodies=(ADJUST_BODY,), data="Card", errors=(404, 409),
              description="amount_cents is signed. A decrease beyond the available cents "
                          "(the balance less what open orders hold) is 409 "
                          "insufficient_balance."),
    RouteSpec(name="set_card_status", method="POST", path=f"{_P}/cards/{{card_no}}/status",
              summary="Block or unblock a card", tag="cards", idempotent=True,
              bodies=(CARD_STATUS_BODY,), data="Card", errors=(404,)),
    # --- events ---
    RouteSpec(name="list_events", method="GET", path=f"{_P}/events",
              summary="Recorded events in order (pull or replay)", tag="events",
              query=(AFTER_QUERY, LIMIT_QUERY), data="EventPage",
              description="Pass the previous page's next_after as after to continue."),
    RouteSpec(name="redeliver_event", method="POST", path=f"{_P}/events/{{event_id}}/redeliver",
              summary="Push one event to the webhook again", tag="events", data="Event",
              errors=(404, 503)),
    # --- operations (api.md §10.10: unauthenticated) ---
    RouteSpec(name="healthz", method="GET", path="/healthz", summary="The process is alive",
              tag="operations", auth=False, data="Health"),
    RouteSpec(name="readyz", method="GET", path="/readyz",
              summary="Ready: the service runs and the database answers", tag="operations",
              auth=False, data="Readiness", errors=(503,)),
    RouteSpec(name="metrics", method="GET", path="/metrics",
              summary="Prometheus metrics (text exposition format)", tag="operations",
              auth=False, raw_media_type="text/plain"),
    RouteSpec(name="openapi", method="GET", path="/openapi.json",
              summary="This document", tag="operations", auth=False,
              raw_media_type="application/json"),
)
