# Request validation for the HTTP API (api.md §6, §6.3, §10.7, §10.8): bytes in,
# typed request objects out, or InvalidArgument naming the field at fault.
#
# Strategy: the API's body fields and query parameters are declared here with the
# specs of fields.py; the parsers take every value through them, and openapi.py
# renders the same declarations, so the document cannot drift from what is
# enforced. The body is read with a byte limit and parsed as JSON whatever the
# Content-Type (NaN/Infinity refused: they are not JSON). Unknown fields are
# ignored (clients may send more than we read).
#
# Ranges here are the generic ones of the contract; device-specific limits (how
# many sockets a gateway has, the width of a protocol field) are the service's.
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import trio

from bkvcodec import ChargeMode, FirmwareTarget, OrderState, PowerTierSpec, ProtocolFamily

from ..requests import AUTO_PORT, ChargeRequest, FirmwareOta, FtpOta, OtaRequest, StopRequest
from ..storage import DEFAULT_LIMIT, MAX_LIMIT, CardStatus
from .envelope import PayloadTooLarge, RequestTimeout
from .fields import (
    BodySpec,
    BoolQuery,
    ChoiceField,
    ChoiceListQuery,
    FieldSpec,
    IntField,
    IntQuery,
    ObjectListField,
    ParamsField,
    StrField,
    StrQuery,
    invalid,
    json_type,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.requests import Request

__all__ = [
    "ADJUST_BODY",
    "AFTER_QUERY",
    "BODY_READ_TIMEOUT",
    "CARD_BODY",
    "CARD_STATUS_BODY",
    "CHARGE_BODY",
    "CREATED_FROM_QUERY",
    "CREATED_TO_QUERY",
    "CURSOR_QUERY",
    "DEVICE_BODY",
    "DEVICE_PHY_ID_QUERY",
    "FIRMWARE_OTA_BODY",
    "FTP_OTA_BODY",
    "IDEMPOTENCY_KEY_HEADER",
    "LIMIT_QUERY",
    "MAX_PATH_ID_LENGTH",
    "MODE_REQUIRES",
    "ONLINE_QUERY",
    "PARAMS_BODY",
    "POWER_TIER_BODY",
    "PROTOCOL_QUERY",
    "SOCKET_NO_QUERY",
    "STATUS_QUERY",
    "STOP_BODY",
    "TOPUP_BODY",
    "BalanceChange",
    "CardBody",
    "DeviceBody",
    "ParamsBody",
    "check_path_id",
    "idempotency_key",
    "parse_adjust",
    "parse_card",
    "parse_card_status",
    "parse_charge",
    "parse_device",
    "parse_firmware_ota",
    "parse_ftp_ota",
    "parse_json_object",
    "parse_ota",
    "parse_params",
    "parse_stop",
    "parse_topup",
    "read_body",
    "request_fingerprint",
]

#: Longest ``duration`` accepted: 7 days (devices cap it lower; the service checks).
MAX_DURATION_S = 7 * 24 * 3600
#: Largest ``energy_wh``: 1 MWh, far beyond any e-bike charge.
MAX_ENERGY_WH = 1_000_000
#: Seconds a request body may take to arrive.
BODY_READ_TIMEOUT = 30.0
#: Largest amount of money in cents (prepaid amounts, balances, top-ups): 1 million yuan.
MAX_CENTS = 100_000_000
#: Largest ``price_per_kwh`` in cents: 1000 yuan/kWh.
MAX_PRICE_PER_KWH = 100_000
#: Most entries in ``params`` and ``power_tiers``.
MAX_PARAMS = 64
MAX_POWER_TIERS = 16
#: Longest path identifier (``phy_id``, ``order_no``, ``card_no``, ids): longer ones
#: cannot exist, so they are "not found" without a database look-up.
MAX_PATH_ID_LENGTH = 64
#: The header carrying the idempotency key of ``POST …/charge``.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


# --- the bodies (api.md §6.3, §10.8) -------------------------------------------------------

_PORT_NO = IntField("port_no", 1, 16, "Port, 1-based (BKV: 1 = hole A, 2 = hole B); "
                    "255 = the server picks the lowest idle, fault-free port.",
                    also=(AUTO_PORT,))
_STOP_PORT_NO = IntField("port_no", 1, 16, "Port, 1-based (BKV: 1 = hole A, 2 = hole B).")
_SOCKET_NO = IntField("socket_no", 1, 250, "Socket under a BKV gateway (1–250); 1 for "
                      "single-socket devices. Default 1.")
_CHARGE_MODE = IntField("charge_mode", 1, 4,
                        "1 by time, 2 by energy, 3 by power tiers, 4 until full.")
_DURATION = IntField("duration", 1, MAX_DURATION_S,
                     "Seconds; required for charge_mode 1.")
_ENERGY_WH = IntField("energy_wh", 1, MAX_ENERGY_WH, "Wh; required for charge_mode 2.")
_AMOUNT = IntField("amount", 0, MAX_CENTS, "Prepaid amount in cents.")
_PRICE = IntField("price_per_kwh", 0, MAX_PRICE_PER_KWH,
                  "Cents per kWh; default from configuration.")
_SERVICE_FEE = IntField("service_fee", 0, 1000,
                        "Per-mille surcharge on the energy fee; default from configuration.")
_CARD_NO = StrField("card_no", 32, "Card number: decimal (AP3000) or 12 hex digits (BKV).",
                    pattern="^[0-9A-Za-z]+$")

_TIER_MAX_POWER = IntField("max_power_w", 1, 65535, "Upper power bound of the tier, W.")
_TIER_PRICE = IntField("price_cents", 0, MAX_CENTS, "Price of the tier, cents.")
_TIER_MINUTES = IntField("minutes", 1, 65535, "Minutes bought in the tier.")
POWER_TIER_BODY = BodySpec(
    "PowerTier", "One power tier of a charge_mode 3 order.",
    (_TIER_MAX_POWER, _TIER_PRICE, _TIER_MINUTES),
    required=("max_power_w", "price_cents", "minutes"))
_POWER_TIERS = ObjectListField("power_tiers", POWER_TIER_BODY, MAX_POWER_TIERS,
                               "Required (non-empty) for charge_mode 3.")

#: The field each charge mode requires, besides the always-required ones.
MODE_REQUIRES: Mapping[ChargeMode, FieldSpec] = {
    ChargeMode.TIME: _DURATION, ChargeMode.ENERGY: _ENERGY_WH,
    ChargeMode.POWER_TIERS: _POWER_TIERS}

CHARGE_BODY = BodySpec(
    "ChargeRequest", "POST /devices/{phy_id}/charge (money in cents).",
    (_PORT_NO, _SOCKET_NO, _CHARGE_MODE, _DURATION, _ENERGY_WH, _POWER_TIERS, _AMOUNT, _PRICE,
     _SERVICE_FEE, _CARD_NO),
    required=("port_no", "charge_mode"),
    all_of=tuple({"if": {"properties": {"charge_mode": {"const": int(mode)}},
                         "required": ["charge_mode"]},
                  "then": {"required": [spec.name]}}
                 for mode, spec in MODE_REQUIRES.items()))

_ORDER_NO = StrField("order_no", 32, "The order to stop; default: the order on the port.")
_REASON = StrField("reason", 64, "Free text kept for audit (e.g. user_cancelled).")
STOP_BODY = BodySpec("StopRequest", "POST /devices/{phy_id}/stop.",
                     (_STOP_PORT_NO, _SOCKET_NO, _ORDER_NO, _REASON), required=("port_no",))

# Up to 2**53 - 1 (exact in JSON): the AP3000 0x86 card keys are 48-bit integers.
_PARAMS = ParamsField("params", IntField("value", -(2**31), 2**53 - 1, "Parameter value."),
                      "Parameter names (the field names of the protocol's set messages, "
                      "as in the message catalogues of the docs) → integer values.",
                      max_items=MAX_PARAMS)
PARAMS_BODY = BodySpec("ParamsRequest", "POST /devices/{phy_id}/params.",
                       (_SOCKET_NO, _PARAMS), required=("params",))

_FTP_HOST = StrField("ftp_host", 253, "FTP server the gateway fetches the file from.")
_FILE_NAME = StrField("file_name", 255, "Firmware file on the FTP server.")
_FTP_PORT = IntField("ftp_port", 1, 65535, "FTP port; default 21.")
_FTP_TARGET = IntField("target", 0, 255, "What to upgrade; 1 (default) = the gateway.")
FTP_OTA_BODY = BodySpec("FtpOtaRequest", "BKV: the gateway fetches firmware by FTP.",
                        (_FTP_HOST, _FILE_NAME, _FTP_PORT, _FTP_TARGET),
                        required=("ftp_host", "file_name"))

_TARGETS: Mapping[str, FirmwareTarget] = {t.name.lower(): t for t in FirmwareTarget}
_IMAGE = StrField("image_base64", 1_000_000, "The firmware image, base64 (standard alphabet).")
_IMAGE_TARGET = ChoiceField("target", tuple(_TARGETS), "Unit to upgrade; default slave.")
_DEVICE_TYPE = IntField("device_type", 0, 255, "Device type for the verification packet.")
_FIRMWARE_VERSION = IntField("firmware_version", 0, 65535,
                             "Firmware version for the verification packet.")
FIRMWARE_OTA_BODY = BodySpec("FirmwareOtaRequest",
                             "AP3000: the server sends the image in packets.",
                             (_IMAGE, _IMAGE_TARGET, _DEVICE_TYPE, _FIRMWARE_VERSION),
                             required=("image_base64",))

_STATUSES: Mapping[str, CardStatus] = {s.value: s for s in CardStatus}
_CARD_KEY = StrField("card_no", 32, "Card number: decimal (AP3000) or 12 hex digits (BKV).",
                     pattern="^[0-9A-Za-z]+$")
_BALANCE = IntField("balance_cents", 0, MAX_CENTS, "Balance in cents.")
_CARD_STATUS = ChoiceField("status", tuple(_STATUSES), "Default active.")
_CARD_MODE = IntField("charge_mode", 1, 4, "Charge mode a swipe starts (default: server's).")
_CARD_DURATION = IntField("duration", 1, MAX_DURATION_S, "Seconds, for charge_mode 1.")
_CARD_ENERGY = IntField("energy_wh", 1, MAX_ENERGY_WH, "Wh, for charge_mode 2.")
CARD_BODY = BodySpec("CardRequest", "POST /cards: register a new card; "
                     "a positive balance_cents is its first top-up.",
                     (_CARD_KEY, _BALANCE, _CARD_STATUS, _CARD_MODE, _CARD_DURATION,
                      _CARD_ENERGY), required=("card_no", "balance_cents"))

_TOPUP_AMOUNT = IntField("amount_cents", 1, MAX_CENTS, "Cents added to the balance.")
_TOPUP_REASON = StrField("reason", 200, "Words kept in the ledger entry (e.g. a receipt).")
TOPUP_BODY = BodySpec("TopUpRequest", "POST /cards/{card_no}/topup.",
                      (_TOPUP_AMOUNT, _TOPUP_REASON), required=("amount_cents",))

_ADJUST_AMOUNT = IntField("amount_cents", -MAX_CENTS, MAX_CENTS,
                          "Signed correction in cents, not 0; a decrease may take only what "
                          "is available (the balance less what open orders hold).")
_ADJUST_REASON = StrField("reason", 200, "Why the balance is corrected (kept in the ledger).")
ADJUST_BODY = BodySpec("AdjustRequest", "POST /cards/{card_no}/adjust.",
                       (_ADJUST_AMOUNT, _ADJUST_REASON), required=("amount_cents", "reason"))

_NEW_CARD_STATUS = ChoiceField("status", tuple(_STATUSES), "blocked cards are refused at "
                               "the device; open orders run to their end.")
CARD_STATUS_BODY = BodySpec("CardStatusRequest", "POST /cards/{card_no}/status.",
                            (_NEW_CARD_STATUS,), required=("status",))

_DEVICE_ID = StrField("device_phy_id", MAX_PATH_ID_LENGTH,
                      "The device's printed id.", pattern="^[0-9A-Za-z]+$")
_DEVICE_PROTOCOL = ChoiceField("protocol", tuple(p.value for p in ProtocolFamily),
                               "The device's protocol (informational).")
_DEVICE_ICCID = StrField("iccid", 32, "The SIM's ICCID: binds the device to it (a SIM swap "
                                      "rebinds).", pattern="^[0-9A-Za-z]+$")
DEVICE_BODY = BodySpec("DeviceProvisioning",
                       "POST /devices: provision a device id.",
                       (_DEVICE_ID, _DEVICE_PROTOCOL, _DEVICE_ICCID),
                       required=("device_phy_id",))


# --- reading the body ----------------------------------------------------------------------

async def read_body(request: Request, limit: int, *,
                    timeout: float = BODY_READ_TIMEOUT) -> bytes:
    """The request body, read chunk by chunk and refused as soon as it passes *limit*.

    A declared ``Content-Length`` over the limit is refused before anything is
    read, so a large upload costs nothing. A body trickled in slowly holds a task
    and a descriptor, so the whole body must arrive within *timeout* seconds.

    Raises:
        PayloadTooLarge: The body is longer than *limit* bytes.
        RequestTimeout: The body did not arrive within *timeout*.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(timeout) as scope:
        # aclosing: leaving the loop early must close the generator here, not in a
        # finaliser later.
        async with contextlib.aclosing(request.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(limit)
                chunks.append(chunk)
    if scope.cancelled_caught:
        raise RequestTimeout(timeout)
    return b"".join(chunks)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, object]:
    """The body as a JSON object, whatever the ``Content-Type`` says (the plan's curl
    commands send JSON as form data). An empty body is an empty object, so that
    the error names the first missing field rather than the body.

    Raises:
        InvalidArgument: ``body`` is not JSON, or not an object.
    """
    if not raw.strip():
        return {}
    try:
        value: object = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        invalid("body", "is nested too deeply")
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        invalid("body", f"is not valid JSON ({err})")
    if not isinstance(value, dict):
        invalid("body", f"must be a JSON object, got {json_type(value)}")
    return {str(k): v for k, v in value.items()}


def request_fingerprint(path: str, body: Mapping[str, object]) -> str:
    """A hash of what a request asks for: its path and its parsed body, with keys
    sorted, so that key order and whitespace do not make two requests differ."""
    text = json.dumps([path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The ``Idempotency-Key`` header: 1–255 visible ASCII characters, or None.

    Raises:
        InvalidArgument: The header is present but malformed.
    """
    value = headers.get(IDEMPOTENCY_KEY_HEADER.lower())
    if value is None:
        return None
    if _IDEMPOTENCY_KEY.fullmatch(value) is None:
        invalid(IDEMPOTENCY_KEY_HEADER, "must be 1 to 255 visible ASCII characters")
    return value


def check_path_id(value: str) -> bool:
    """Whether a path identifier can exist at all (so that absurd ones are 404s
    without a look-up and never become rate-limiter keys)."""
    return 0 < len(value) <= MAX_PATH_ID_LENGTH


# --- the parsers ---------------------------------------------------------------------------

def parse_charge(phy_id: str, body: Mapping[str, object]) -> ChargeRequest:
    """``POST /devices/{phy_id}/charge`` → :class:`ChargeRequest`.

    Raises:
        InvalidArgument: A field is missing, mistyped or out of range.
    """
    port_no = _PORT_NO.require(body)
    socket_no = _SOCKET_NO.take(body)
    mode = ChargeMode(_CHARGE_MODE.require(body))
    duration = _DURATION.take(body)
    energy_wh = _ENERGY_WH.take(body)
    tiers = _POWER_TIERS.take(body)
    power_tiers = tuple(
        PowerTierSpec(max_power_w=_TIER_MAX_POWER.require(t, f"power_tiers[{i}]."),
                      price_cents=_TIER_PRICE.require(t, f"power_tiers[{i}]."),
                      minutes=_TIER_MINUTES.require(t, f"power_tiers[{i}]."))
        for i, t in enumerate(tiers or ()))
    given: Mapping[str, object] = {_DURATION.name: duration, _ENERGY_WH.name: energy_wh,
                                   _POWER_TIERS.name: tiers}
    needed = MODE_REQUIRES.get(mode)
    if needed is not None and given[needed.name] is None:
        invalid(needed.name, f"is required for charge_mode {int(mode)}")
    return ChargeRequest(
        phy_id=phy_id, port_no=port_no, socket_no=1 if socket_no is None else socket_no,
        charge_mode=mode, duration_s=duration, energy_wh=energy_wh, power_tiers=power_tiers,
        amount_cents=_AMOUNT.take(body), price_per_kwh=_PRICE.take(body),
        service_fee=_SERVICE_FEE.take(body), card_no=_CARD_NO.take(body))


def parse_stop(phy_id: str, body: Mapping[str, object]) -> StopRequest:
    """``POST /devices/{phy_id}/stop`` → :class:`StopRequest`.

    Raises:
        InvalidArgument: A field is missing, mistyped or out of range.
    """
    socket_no = _SOCKET_NO.take(body)
    return StopRequest(phy_id=phy_id, port_no=_STOP_PORT_NO.require(body),
                       socket_no=1 if socket_no is None else socket_no,
                       order_no=_ORDER_NO.take(body), reason=_REASON.take(body))


@dataclass(frozen=True, slots=True)
class ParamsBody:
    """``POST /devices/{phy_id}/params``, validated."""

    params: Mapping[str, int]
    socket_no: int = 1


def parse_params(body: Mapping[str, object]) -> ParamsBody:
    """``POST /devices/{phy_id}/params`` → parameter names and values.

    Raises:
        InvalidArgument: ``params`` is missing or not an object of integers.
    """
    params = _PARAMS.take(body)
    if params is None:
        invalid(_PARAMS.name, "is required")
    socket_no = _SOCKET_NO.take(body)
    return ParamsBody(params, 1 if socket_no is None else socket_no)


def parse_ota(body: Mapping[str, object]) -> OtaRequest:
    """``POST /devices/{phy_id}/ota``: the FTP form (BKV) or the image form (AP3000).

    Raises:
        InvalidArgument: Neither or both forms, or a bad field.
    """
    has_image = body.get(_IMAGE.name) is not None
    has_ftp = body.get(_FTP_HOST.name) is not None
    if has_image == has_ftp:
        invalid("body", "give either ftp_host and file_name (BKV) or image_base64 (AP3000)")
    return parse_ftp_ota(body) if has_ftp else parse_firmware_ota(body)


def parse_ftp_ota(body: Mapping[str, object]) -> FtpOta:
    """The fields of :data:`FTP_OTA_BODY` (BKV: the gateway fetches by FTP).

    Raises:
        InvalidArgument: A missing or bad field.
    """
    port = _FTP_PORT.take(body)
    target = _FTP_TARGET.take(body)
    return FtpOta(ftp_host=_FTP_HOST.require(body), file_name=_FILE_NAME.require(body),
                  ftp_port=21 if port is None else port, target=1 if target is None else target)


def parse_firmware_ota(body: Mapping[str, object]) -> FirmwareOta:
    """The fields of :data:`FIRMWARE_OTA_BODY` (AP3000: the image sent in packets).

    Raises:
        InvalidArgument: A missing, empty or badly encoded image, or a bad field.
    """
    encoded = _IMAGE.require(body)
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        invalid(_IMAGE.name, "is not valid base64")
    if not image:
        invalid(_IMAGE.name, "must not be empty")
    target_name = _IMAGE_TARGET.take(body)
    return FirmwareOta(
        image=image,
        target=FirmwareTarget.SLAVE if target_name is None else _TARGETS[target_name],
        device_type=_DEVICE_TYPE.take(body), firmware_version=_FIRMWARE_VERSION.take(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class CardBody:
    """``POST /cards``, validated."""

    card_no: str
    balance_cents: int
    status: CardStatus = CardStatus.ACTIVE
    charge_mode: ChargeMode | None = None
    duration: int | None = None
    energy_wh: int | None = None


def parse_card(body: Mapping[str, object]) -> CardBody:
    """``POST /cards`` → :class:`CardBody`.

    Raises:
        InvalidArgument: A field is missing, mistyped or out of range.
    """
    status = _CARD_STATUS.take(body)
    mode = _CARD_MODE.take(body)
    return CardBody(card_no=_CARD_KEY.require(body), balance_cents=_BALANCE.require(body),
                    status=CardStatus.ACTIVE if status is None else _STATUSES[status],
                    charge_mode=None if mode is None else ChargeMode(mode),
                    duration=_CARD_DURATION.take(body), energy_wh=_CARD_ENERGY.take(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceBody:
    """A validated ``POST /devices`` body."""

    device_phy_id: str
    protocol: ProtocolFamily | None
    iccid: str | None


def parse_device(body: Mapping[str, object]) -> DeviceBody:
    """``POST /devices`` → :class:`DeviceBody`.

    Raises:
        InvalidArgument: A field is missing, mistyped or out of range.
    """
    protocol = _DEVICE_PROTOCOL.take(body)
    return DeviceBody(device_phy_id=_DEVICE_ID.require(body),
                      protocol=None if protocol is None else ProtocolFamily(protocol),
                      iccid=_DEVICE_ICCID.take(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceChange:
    """``POST /cards/{card_no}/topup`` or ``…/adjust``, validated."""

    amount_cents: int
    reason: str | None


def parse_topup(body: Mapping[str, object]) -> BalanceChange:
    """``POST /cards/{card_no}/topup`` → the amount in cents and the reason, if any.

    Raises:
        InvalidArgument: ``amount_cents`` is missing or not a positive integer.
    """
    return BalanceChange(amount_cents=_TOPUP_AMOUNT.require(body),
                         reason=_TOPUP_REASON.take(body))


def parse_adjust(body: Mapping[str, object]) -> BalanceChange:
    """``POST /cards/{card_no}/adjust`` → a signed, non-zero amount and its reason.

    Raises:
        InvalidArgument: A field is missing or out of range, the amount is 0, or
            the reason is blank.
    """
    amount = _ADJUST_AMOUNT.require(body)
    if amount == 0:
        invalid(_ADJUST_AMOUNT.name, "must not be 0")
    reason = _ADJUST_REASON.require(body)
    if not reason.strip():
        invalid(_ADJUST_REASON.name, "must not be blank")
    return BalanceChange(amount_cents=amount, reason=reason)


def parse_card_status(body: Mapping[str, object]) -> CardStatus:
    """``POST /cards/{card_no}/status`` → the new status.

    Raises:
        InvalidArgument: ``status`` is missing or not ``active``/``blocked``.
    """
    status = _NEW_CARD_STATUS.take(body)
    if status is None:
        invalid(_NEW_CARD_STATUS.name, "is required")
    return _STATUSES[status]


# --- query parameters ----------------------------------------------------------------------

LIMIT_QUERY = IntQuery("limit", 1, MAX_LIMIT, DEFAULT_LIMIT, "Page size.")
CURSOR_QUERY = StrQuery("cursor", 200, "next_cursor of the previous page (opaque).")
ONLINE_QUERY = BoolQuery("online", "Only devices that are online (true) or offline (false).")
PROTOCOL_QUERY = ChoiceListQuery("protocol", tuple(p.value for p in ProtocolFamily),
                                 "Only devices of this protocol.", multiple=False)
DEVICE_PHY_ID_QUERY = StrQuery("device_phy_id", MAX_PATH_ID_LENGTH, "Only this device's orders.")
STATUS_QUERY = ChoiceListQuery("status", tuple(s.value for s in OrderState
                                               if s is not OrderState.NEW),
                               "Only orders in these states.")
CREATED_FROM_QUERY = IntQuery("from", 0, 2**53, None,
                              "Only orders created at or after this Unix time.")
CREATED_TO_QUERY = IntQuery("to", 0, 2**53, None, "Only orders created before this Unix time.")
SOCKET_NO_QUERY = IntQuery("socket_no", 1, 250, 1, "Socket under a BKV gateway; default 1.")
AFTER_QUERY = IntQuery("after", 0, 2**63 - 1, 0,
                       "Return events with a sequence number above this one.")
