# What the storage layer takes and gives: frozen dataclasses, one per table row
# (…Record) or per kind of write (New…, DeviceTouch, CmdLogEntry), and the enums of
# the status columns. Field names are the column names, so a record reads like the
# row the plan's SQL sees. Units are the database's (api.md §3): cents, 0.01 kWh,
# 0.1 W, 0.1 V, mA, seconds, Unix seconds (UTC); the one exception is
# ports.power_w, whole watts as its name and the plan's SQL (§5.6, TC005) say.
#
# The library's own vocabulary is reused where it exists (OrderState, EndReason,
# ChargeMode, PortState, ProtocolFamily, Direction), so what the gateway gets from a
# ChargingSession is stored without translation tables.
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bkvcodec import OrderState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bkvcodec import ChargeMode, Direction, EndReason, PortState, ProtocolFamily, TariffKind

__all__ = [
    "OPEN_ORDER_STATES",
    "CardLedgerEntry",
    "CardRecord",
    "CardSettlement",
    "CardStatus",
    "CmdLogEntry",
    "CmdLogRecord",
    "CommandRecord",
    "CommandStatus",
    "DeliveryRecord",
    "DeliveryStatus",
    "DeviceIdentity",
    "DeviceRecord",
    "DeviceTouch",
    "EventRecord",
    "IdempotencyRecord",
    "LedgerKind",
    "NewCommand",
    "NewEvent",
    "NewOrder",
    "OrderRecord",
    "PortRecord",
    "ProgressSample",
    "StorageStatistics",
    "dump_json",
    "load_json_object",
]


class CommandStatus(enum.Enum):
    """A downlink command's life (``GET /commands/{id}``)."""

    #: Persisted, waiting to be sent (the device may be offline).
    QUEUED = "queued"
    #: Written to the device; waiting for its answer.
    SENT = "sent"
    #: The device accepted it (terminal).
    ACKED = "acked"
    #: The device refused it or never answered (terminal).
    FAILED = "failed"
    #: ``command_ttl`` passed before it could be sent (terminal).
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """True for ``acked``, ``failed`` and ``expired``."""
        return self not in (CommandStatus.QUEUED, CommandStatus.SENT)


class DeliveryStatus(enum.Enum):
    """A webhook delivery's state."""

    #: Not yet delivered; retried at ``next_attempt_at``.
    PENDING = "pending"
    #: A 2xx answer arrived.
    DELIVERED = "delivered"
    #: Retried for the whole retry window without success.
    DEAD = "dead"


class CardStatus(enum.Enum):
    """A card's state in the card registry."""

    #: May start charges.
    ACTIVE = "active"
    #: Refused at the device.
    BLOCKED = "blocked"


#: Order states in which the order holds its port.
OPEN_ORDER_STATES: frozenset[OrderState] = frozenset(
    {OrderState.PENDING, OrderState.CHARGING, OrderState.STOPPING})


def dump_json(data: object) -> str:
    """The compact, key-sorted JSON text stored in ``*_json`` columns."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_json_object(text: str) -> dict[str, object]:
    """Parse a ``*_json`` column that holds an object.

    Raises:
        ValueError: The text is not JSON or not an object.
    """
    value: object = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return {str(k): v for k, v in value.items()}


# --- devices and ports ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRecord:
    """A ``devices`` row: one charging device, created when it first registers.

    ``online`` is the server's view (a live connection and frames within
    ``offline_after``); ``rssi`` is the raw signal value the device reports.
    """

    id: int
    phy_id: str
    protocol: ProtocolFamily
    last_seen_at: int | None
    remote_addr: str | None
    firmware: str | None
    iccid: str | None
    rssi: int | None
    online: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceIdentity:
    """A ``device_identities`` row.

    Attributes:
        phy_id: The device's printed id.
        provisioned: Served under ``device_policy = known``.
        protocol: The protocol given when it was provisioned, if any.
        bound_iccid: The ICCID the device is bound to (``iccid_binding = pin``).
    """

    phy_id: str
    provisioned: bool
    protocol: ProtocolFamily | None
    bound_iccid: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceTouch:
    """One frame's worth of liveness for :meth:`Database.touch_devices`.

    Attributes:
        phy_id: The device.
        seen_at: When the frame arrived (``last_seen_at`` never moves backwards).
        rssi: Signal strength if the frame carried it, else unchanged.
    """

    phy_id: str
    seen_at: int
    rssi: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PortRecord:
    """A ``ports`` row: one charging point, written whole.

    ``power_w`` is in whole watts; ``voltage`` in 0.1 V; ``fault_code`` the
    protocol's raw fault value (0 = no fault); ``order_no`` the order on the port.
    """

    device_id: int
    socket_no: int
    port_no: int
    status: PortState
    power_w: int
    voltage: int | None
    fault_code: int
    order_no: str | None
    business_no: int | None
    updated_at: int


# --- orders --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class NewOrder:
    """What :meth:`Database.insert_order` needs; the order starts ``pending``.

    Units: ``amount`` cents (None: nothing prepaid), ``price_per_kwh`` cents,
    ``service_fee`` per mille, ``requested_duration_sec`` seconds,
    ``requested_energy_wh`` Wh; ``power_tiers_json`` the mode-3 tiers as given.
    ``tariff`` bills the order; None derives it with
    :meth:`bkvcodec.TariffKind.for_order`.
    """

    order_no: str
    device_id: int
    socket_no: int = 1
    port_no: int
    charge_mode: ChargeMode
    amount: int | None = None
    price_per_kwh: int = 0
    service_fee: int = 0
    requested_duration_sec: int | None = None
    requested_energy_wh: int | None = None
    power_tiers_json: str | None = None
    card_no: str | None = None
    business_no: int | None = None
    created_at: int
    #: The API key that asked for it (None: a card swipe at the device).
    key_name: str | None = None
    tariff: TariffKind | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRecord:
    """An ``orders`` row.

    Meters are the device's: ``duration_sec`` seconds used, ``total_kwh`` 0.01 kWh,
    ``current_power``/``peak_power`` 0.1 W. Money in cents: ``final_amount``,
    ``refund_amount``, ``energy_fee``, ``service_fee_amount`` (set at settlement),
    ``device_amount`` (what the device reported, for reconciliation only).
    ``end_reason`` is the contract's code, ``end_reason_raw`` the protocol's;
    ``end_detail`` why a failed order failed (a refused start: the device's reason,
    with no contract code, so ``end_reason`` is None);
    ``stop_reason`` the API caller's free text; ``start_time``/``end_time`` the
    server's receipt times; ``key_name`` the API key that created it (None for a
    card swipe); ``tariff`` the tariff that bills the order.
    """

    id: int
    order_no: str
    device_id: int
    socket_no: int
    port_no: int
    status: OrderState
    charge_mode: ChargeMode
    amount: int | None
    price_per_kwh: int
    service_fee: int
    duration_sec: int
    requested_duration_sec: int | None
    requested_energy_wh: int | None
    power_tiers_json: str | None
    total_kwh: int
    current_power: int
    peak_power: int
    final_amount: int | None
    refund_amount: int | None
    energy_fee: int | None
    service_fee_amount: int | None
    device_amount: int | None
    end_reason: EndReason | None
    end_reason_raw: int | None
    business_no: int | None
    card_no: str | None
    stop_reason: str | None
    start_time: int | None
    end_time: int | None
    created_at: int
    updated_at: int
    key_name: str | None = None
    tariff: TariffKind
    end_detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressSample:
    """An ``order_progress`` row: one progress report of an order.

    ``at`` server receipt time; ``duration_sec`` s; ``total_kwh`` 0.01 kWh;
    ``power`` 0.1 W; ``voltage`` 0.1 V; ``current`` mA (None when not reported).
    """

    order_no: str
    at: int
    duration_sec: int
    total_kwh: int
    power: int
    voltage: int | None = None
    current: int | None = None


# --- commands and the frame log ------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class NewCommand:
    """A downlink to persist before it is sent.

    Attributes:
        device_id: The device's row id.
        phy_id: The device's printed id (kept for the log and the API).
        kind: What the command does (``start``, ``stop``, ``params_set``, …).
        payload: The command's arguments, JSON-ready.
        created_at: Now.
        expires_at: When it expires if still queued (now + ``command_ttl``).
        order_no: The order it belongs to, if any.
        id: The command id; a random one when None.
        key_name: The API key that asked for it (None: the server or a device).
    """

    device_id: int
    phy_id: str
    kind: str
    payload: Mapping[str, object]
    created_at: int
    expires_at: int
    order_no: str | None = None
    id: str | None = None
    key_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRecord:
    """A ``commands`` row. ``msg_id`` is the wire message id of the last send (so a
    resend reuses it), ``attempts`` how often it was written, ``result_json`` the
    device's answer (parameter queries), ``reason`` why it failed or expired,
    ``key_name`` the API key that asked for it (None: the server or a device)."""

    id: str
    device_id: int
    phy_id: str
    kind: str
    payload_json: str
    status: CommandStatus
    reason: str | None
    result_json: str | None
    msg_id: int | None
    attempts: int
    order_no: str | None
    created_at: int
    sent_at: int | None
    finished_at: int | None
    expires_at: int
    key_name: str | None = None

    def payload(self) -> dict[str, object]:
        """``payload_json`` parsed."""
        return load_json_object(self.payload_json)


@dataclass(frozen=True, slots=True, kw_only=True)
class CmdLogEntry:
    """One frame in or out, for the bounded ``cmd_logs`` table.

    ``cmd`` is the command as logged (``"0x0000"``, ``"0x82"``); ``hex`` the whole
    frame; ``device_id``/``phy_id`` None before the device has identified itself.
    """

    direction: Direction
    cmd: str
    hex: str
    created_at: int
    device_id: int | None = None
    phy_id: str | None = None
    msg_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CmdLogRecord:
    """A ``cmd_logs`` row (stored direction ``UP``/``DOWN``)."""

    id: int
    device_id: int | None
    phy_id: str | None
    direction: Direction
    cmd: str
    msg_id: int | None
    hex: str
    created_at: int


# --- the outbox ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """An event to record in the outbox.

    ``event_id`` is unique and stable (a replay with the same id records nothing);
    ``data`` the envelope's ``data`` object; ``created_at`` when it happened.
    """

    event_id: str
    event_type: str
    data: Mapping[str, object]
    created_at: int
    device_phy_id: str | None = None
    order_no: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """An ``events`` row; ``seq`` orders all events, ``GET /events?after=seq``."""

    seq: int
    event_id: str
    event_type: str
    device_phy_id: str | None
    order_no: str | None
    payload_json: str
    created_at: int

    def data(self) -> dict[str, object]:
        """``payload_json`` parsed: the envelope's ``data``."""
        return load_json_object(self.payload_json)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """A ``webhook_deliveries`` row with its event."""

    event: EventRecord
    attempts: int
    status: DeliveryStatus
    next_attempt_at: int
    last_error: str | None
    delivered_at: int | None
    latency_ms: int | None


# --- cards, API bookkeeping ----------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class CardRecord:
    """A ``cards`` row: balance in cents, never negative, of
    which ``held_cents`` are reserved by open card orders; the charge settings a
    swipe starts with (None: the server's default). Both sums follow the card's
    ledger (:class:`CardLedgerEntry`)."""

    card_no: str
    balance_cents: int
    held_cents: int
    status: CardStatus
    charge_mode: ChargeMode | None
    duration: int | None
    energy_wh: int | None
    created_at: int
    updated_at: int

    @property
    def available_cents(self) -> int:
        """What a swipe may be authorised for: the balance less the holds."""
        return self.balance_cents - self.held_cents


class LedgerKind(enum.Enum):
    """What a card ledger entry does."""

    #: Money paid in (``POST /cards/{card_no}/topup``, a new card's balance).
    TOPUP = "topup"
    #: An order's authorised amount, reserved at the swipe.
    HOLD = "hold"
    #: The part of a hold an order did not spend, freed at its end.
    RELEASE = "release"
    #: An order's bill, taken from its hold at settlement.
    DEBIT = "debit"
    #: A correction with a reason (signed; ``POST /cards/{card_no}/adjust``).
    ADJUST = "adjust"


@dataclass(frozen=True, slots=True, kw_only=True)
class CardLedgerEntry:
    """A ``card_ledger`` row: one append-only change of a card's money.

    ``amount_cents`` is positive, except an ``adjust`` entry's, which is signed.
    ``key_name`` names the API key that asked (None for swipes and settlements).
    """

    entry_id: int
    card_no: str
    kind: LedgerKind
    amount_cents: int
    order_no: str | None
    key_name: str | None
    reason: str | None
    created_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CardSettlement:
    """What settling an order against its card's hold did.

    Attributes:
        billed_cents: The order's final amount.
        held_cents: The order's hold before the settlement.
        debited_cents: What was taken from the card (at most the bill).
        released_cents: What of the hold was freed.
        shortfall_cents: Billed but not collected (the hold and the card's
            available money did not cover the bill): an alarm, never silence.
        already_settled: The order was settled before; nothing was written.
    """

    billed_cents: int
    held_cents: int
    debited_cents: int
    released_cents: int
    shortfall_cents: int
    already_settled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyRecord:
    """An ``idempotency`` row: the first answer to a request with an
    ``Idempotency-Key``, replayed for repeats."""

    key_name: str
    idem_key: str
    status_code: int
    response_json: str
    request_hash: str | None
    created_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageStatistics:
    """What :meth:`Database.statistics` reports (for ``/metrics`` and logs).

    Counts are of rows now; ``last_event_seq`` is the newest outbox sequence
    number (the outbox is never counted: it only grows); ``file_bytes`` the main
    database file's size in pages (the WAL file not included).
    """

    schema_version: int
    devices: int
    devices_online: int
    open_orders: int
    commands_queued: int
    last_event_seq: int
    deliveries_pending: int
    deliveries_dead: int
    cmd_logs: int
    file_bytes: int
