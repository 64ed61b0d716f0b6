# The BKV family's messages as plain frozen dataclasses: one class per message of
# bkv.md §9, no behaviour, no construct. Field names are the ones of the protocol
# reference and the vector files; the suffix names the unit of the raw integer
# (``_dv`` 0.1 V, ``_dw`` 0.1 W, ``_ma`` mA, ``_wh`` Wh, ``_min``, ``_s``, ``_fen``
# 0.01 CNY). Nothing is scaled: the layer above converts units.
#
# GN messages (commands 0x0005/0x0015) have fixed layouts; bytes a newer firmware
# appends after the documented fields are kept in ``extra`` rather than dropped.
# BKV packets (command 0x1000) are item lists: every named item is an optional
# field (None when absent), items without a name are kept in ``unknown``.
from __future__ import annotations

from dataclasses import field
from typing import TypeAlias

from .._fastinit import frozen_message
from .._types import BcdTime, BinaryTime, Direction

__all__ = [
    "GN_CONTROL",
    "GN_NETWORK",
    "Bkv1013Report",
    "BkvItem",
    "BkvMessage",
    "CardBalanceQuery",
    "CardBalanceReply",
    "CardChargeEnd",
    "CardOrder",
    "CardOrderAck",
    "CardSwipe",
    "ChargeControl",
    "ChargeControlAck",
    "ChargeEnd",
    "ChargeEndAck",
    "ExceptionReport",
    "ExceptionReportAck",
    "FeeChargeEnd",
    "FeeChargeEndAck",
    "FeeControl",
    "FeeControlAck",
    "FeeTier",
    "Heartbeat",
    "HeartbeatAck",
    "NetworkAdd",
    "NetworkAddAck",
    "NetworkRefresh",
    "NetworkRefreshAck",
    "NetworkSocket",
    "OtaUpgrade",
    "ParamQuery",
    "ParamQueryReply",
    "ParamSet",
    "ParamSetAck",
    "PortGroup",
    "PortReport",
    "PowerChargeEnd",
    "PowerControl",
    "PowerTier",
    "SocketCluster",
    "SocketStatus",
    "StatusQuery",
    "StatusReport",
    "StatusReportAck",
    "UnknownBkvPacket",
    "UnknownCommand",
    "UnknownGnMessage",
    "VoiceConfig",
    "VoiceConfigAck",
    "VoiceWindow",
]

#: GN container command for network management.
GN_NETWORK = 0x0005
#: GN container command for control and reports.
GN_CONTROL = 0x0015



# --- parts -------------------------------------------------------------------------

@frozen_message
class BkvItem:
    """One BKV item kept as data.

    Attributes:
        key: The numeric key ("tag"), or the text of a text key.
        value: The raw value bytes.
    """

    key: int | str
    value: bytes


@frozen_message
class PortReport:
    """One port's readings in a GN socket status (``0x1C``, 14 bytes)."""

    port: int  #: 0 = hole A, 1 = hole B.
    status: int  #: Status byte (see :class:`BkvPortStatus`).
    business_no: int  #: Session number, 0 when idle.
    voltage_dv: int
    power_dw: int
    current_ma: int
    energy_wh: int  #: Energy of the running session.
    duration_min: int  #: Minutes of the running session.


@frozen_message
class NetworkSocket:
    """A socket in a network list: its number under the gateway and its MAC."""

    socket_no: int
    mac: bytes  #: 6 bytes, printed on the back of the socket.


@frozen_message
class PowerTier:
    """A power tier of ``0x17`` / ``0x0B`` (6 bytes)."""

    max_power_dw: int  #: Upper power bound of the tier.
    price_fen: int  #: Price of one block.
    duration_min: int  #: Length of one block.


@frozen_message
class VoiceWindow:
    """A time window of ``0x1B`` in which the device may make sounds."""

    start: str  #: ``hh:mm``.
    end: str  #: ``hh:mm``.


@frozen_message
class FeeTier:
    """A fee tier of BKV tag ``0x83`` (6 bytes)."""

    end: str  #: Time of day the tier ends, ``hh:mm``.
    electricity_price_fen: int  #: Electricity price per kWh.
    service_price_fen: int  #: Service price per kWh (``service_fee_mode`` 1).


@frozen_message
class PortGroup:
    """A BKV port group (tag ``0x5B``) inside a socket cluster."""

    port: int | None = None
    status: int | None = None
    business_no: int | None = None
    voltage_dv: int | None = None
    power_dw: int | None = None
    current_ma: int | None = None
    energy_wh: int | None = None
    duration_min: int | None = None
    unknown: tuple[BkvItem, ...] = ()


@frozen_message
class SocketCluster:
    """A BKV socket cluster (tag ``0x94``) of a ``0x1017`` status report."""

    socket_no: int | None = None
    socket_version: bytes | None = None
    temperature_c: int | None = None
    rssi: int | None = None
    ports: tuple[PortGroup, ...] = ()
    unknown: tuple[BkvItem, ...] = ()


# --- envelope-level messages -------------------------------------------------------------

@frozen_message
class Heartbeat:
    """Gateway heartbeat, command ``0x0000`` up. Answer with :class:`HeartbeatAck`."""

    iccid: str  #: SIM ICCID, 20 ASCII characters (may contain letters).
    firmware: str  #: Gateway firmware, trailing NULs stripped.
    rssi: int  #: Signal strength, 0-31.


@frozen_message
class HeartbeatAck:
    """Server reply to a heartbeat, command ``0x0000`` down: the server clock.

    An answer the connection sends itself, not a command.
    """

    time: BcdTime


@frozen_message
class OtaUpgrade:
    """Firmware upgrade order, command ``0x0007`` down.

    A command (:class:`~bkvcodec.StartOta`); the gateway never answers it, so it is
    acknowledged once written.
    """

    target: int  #: 1 = the gateway itself.
    ftp_ip: str  #: Dotted IPv4 address of the FTP server.
    ftp_port: int
    file_name: str  #: At most 13 ASCII characters.


@frozen_message
class UnknownCommand:
    """A frame whose envelope command has no documented layout, kept raw."""

    direction: Direction
    command: int
    payload: bytes


# --- GN sub-commands (containers 0x0005 / 0x0015) ---------------------------------------------

@frozen_message
class NetworkRefresh:
    """Replace the gateway's socket list, sub-command ``0x08`` down.

    A command (:class:`~bkvcodec.SetNetworkList`), answered by :class:`NetworkRefreshAck`
    with the same seq.
    """

    channel: int  #: Radio channel 1-15.
    sockets: tuple[NetworkSocket, ...]
    extra: bytes = b""
    container: int = GN_NETWORK


@frozen_message
class NetworkRefreshAck:
    """Result of :class:`NetworkRefresh`, sub-command ``0x08`` up."""

    result: int  #: 1 = OK, 0 = failed.
    extra: bytes = b""
    container: int = GN_NETWORK


@frozen_message
class NetworkAdd:
    """Add one socket to the gateway's list, sub-command ``0x09`` down.

    A command (:class:`~bkvcodec.SetNetworkList` with ``add``), answered by
    :class:`NetworkAddAck` with the same seq.
    """

    socket_no: int
    mac: bytes
    extra: bytes = b""
    container: int = GN_NETWORK


@frozen_message
class NetworkAddAck:
    """Result of :class:`NetworkAdd`, sub-command ``0x09`` up."""

    result: int
    extra: bytes = b""
    container: int = GN_NETWORK


@frozen_message
class StatusQuery:
    """Ask for one socket's status, sub-command ``0x1D`` down.

    A command (:class:`~bkvcodec.QueryStatus`), answered by :class:`SocketStatus` with the
    same seq or, as a real gateway does, by a :class:`StatusReport` with seq 0.
    """

    socket_no: int
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class SocketStatus:
    """One socket's status, sub-command ``0x1C`` up (``0x1D`` accepted too)."""

    socket_no: int
    socket_version: bytes  #: 2 opaque bytes.
    temperature_c: int
    rssi: int
    ports: tuple[PortReport, ...]
    sub_command: int = 0x1C
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class ChargeControl:
    """Start or stop one port, sub-command ``0x07`` down.

    A command (:class:`~bkvcodec.StartCharging`, :class:`~bkvcodec.StopCharging`),
    answered by :class:`ChargeControlAck` with the same seq.
    """

    socket_no: int
    port: int
    switch: int  #: 1 = start, 0 = stop.
    mode: int  #: 1 = by time, 0 = by energy.
    duration_min: int  #: 1-900, by-time orders.
    energy_wh: int  #: By-energy orders; 0 for by-time orders.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class ChargeControlAck:
    """Result of :class:`ChargeControl`, sub-command ``0x07`` up, with the new session number."""

    result: int
    socket_no: int
    port: int
    business_no: int
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class ChargeEnd:
    """End of a scan-to-charge session, sub-command ``0x02`` up (the M17 block).

    Answer with :class:`ChargeEndAck`; an unanswered report is repeated about every 11 s.
    """

    socket_no: int
    socket_version: bytes
    temperature_c: int
    rssi: int
    port: int
    status: int  #: Status byte at the end of the session.
    business_no: int
    power_dw: int  #: Last instant power.
    current_ma: int
    energy_wh: int  #: Energy of the session.
    duration_min: int  #: Minutes charged.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class PowerControl:
    """Start a power-tier order, sub-command ``0x17`` down.

    A command (:class:`~bkvcodec.StartCharging` by power tiers). Its answer is not
    printed: a ``0x17`` uplink with the same seq is read in the :class:`ChargeControlAck`
    layout.
    """

    socket_no: int
    port: int
    switch: int
    amount_fen: int  #: Money paid.
    tiers: tuple[PowerTier, ...]  #: At most 5.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class PowerChargeEnd:
    """End of a power-tier session, sub-command ``0x18`` up (M17 block and billing)."""

    socket_no: int
    socket_version: bytes
    temperature_c: int
    rssi: int
    port: int
    status: int
    business_no: int
    power_dw: int
    current_ma: int
    energy_wh: int
    duration_min: int
    end_time: BinaryTime
    end_reason: int  #: Raw code
    amount_fen: int  #: Money spent.
    settlement_power_dw: int
    tier_durations_min: tuple[int, ...]  #: Minutes charged in each tier.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class CardSwipe:
    """A card presented at a port, sub-command ``0x0B`` up.

    Answer with :class:`CardOrder` (switch 0 refuses).
    """

    socket_no: int
    port: int
    business_no: int  #: Created by the gateway at swipe time.
    status: int
    card_no: bytes  #: 6 opaque bytes.
    offline_params: bytes  #: 20 bytes, zero for online cards.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class CardOrder:
    """The server's answer to a card swipe, sub-command ``0x0B`` down.

    Sent by :meth:`~bkvcodec.ServerConnection.answer_card`, or as a
    :class:`~bkvcodec.SendMessage` (by-power orders); tracked like a command, and answered
    by :class:`CardOrderAck` with the same seq. The power-mode part (``amount_fen`` and
    ``tiers``) is on the wire only when ``amount_fen`` is not None.
    """

    socket_no: int
    port: int
    business_no: int  #: Copied from the swipe.
    switch: int  #: 1 = charge, 0 = refuse.
    mode: int  #: 1 = by time, 3 = by power.
    duration_min: int
    energy_wh: int
    amount_fen: int | None = None
    tiers: tuple[PowerTier, ...] = ()
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class CardOrderAck:
    """Result of :class:`CardOrder`, sub-command ``0x0F`` up (echoes its seq)."""

    socket_no: int
    port: int
    result: int
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class CardChargeEnd:
    """End of a card session, sub-command ``0x0C`` up (M17 block, card, billing)."""

    socket_no: int
    socket_version: bytes
    temperature_c: int
    rssi: int
    port: int
    status: int
    business_no: int
    power_dw: int
    current_ma: int
    energy_wh: int
    duration_min: int
    card_no: bytes
    card_type: int  #: 0 = online card.
    billing_mode: int  #: 1 = by time, 2 = by energy, 3 = by power.
    amount_fen: int  #: Power mode only, else 0.
    settlement_power_dw: int
    tier_durations_min: tuple[int, ...]
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class ChargeEndAck:
    """Server reply to a charge end (``0x02``, ``0x0C``, ``0x18``), sub-command ``0x0C`` down.

    An answer the connection sends itself, not a command.
    """

    socket_no: int
    result: int  #: 1 = OK.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class CardBalanceQuery:
    """Balance request for a card, sub-command ``0x1A`` up."""

    socket_no: int
    port: int
    card_no: bytes
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class CardBalanceReply:
    """The card's balance, sub-command ``0x1A`` down.

    An answer, sent by :meth:`~bkvcodec.ServerConnection.answer_card`; not a command.
    """

    socket_no: int
    port: int
    card_no: bytes
    balance_fen: int
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class VoiceConfig:
    """Buzzer and voice settings, sub-command ``0x1B`` down.

    A command (:class:`~bkvcodec.SetParams` with ``buzzer_on`` and ``voice_on`` for an
    all-day window on port A, else :class:`~bkvcodec.SendMessage`), answered by
    :class:`VoiceConfigAck` with the same seq.
    """

    socket_no: int  #: 254 = every socket of the gateway.
    port: int
    buzzer_on: int
    voice_on: int
    windows: tuple[VoiceWindow, ...]  #: At most 2.
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class VoiceConfigAck:
    """Result of :class:`VoiceConfig`, sub-command ``0x1B`` up."""

    socket_no: int
    port: int
    result: int
    extra: bytes = b""
    container: int = GN_CONTROL


@frozen_message
class UnknownGnMessage:
    """A GN sub-command (in this direction) without a documented layout, kept raw."""

    direction: Direction
    sub_command: int
    params: bytes
    container: int = GN_CONTROL


# --- BKV packets (command 0x1000) ---------------------------------------------------------------
# Every packet starts with items 0x01 (bkv_cmd, implied by the class), 0x02
# (bkv_seq) and 0x03 (bkv_gateway_id; None means "the envelope's gateway id").
# ``item_order`` remembers the wire order of a decoded packet so that encoding it
# again gives the same bytes; it takes no part in equality.

def _order() -> tuple[int | str, ...]:
    return field(default=(), compare=False, repr=False)


@frozen_message
class StatusReport:
    """Socket and port status, BKV ``0x1017`` up.

    Answer with :class:`StatusReportAck`.
    """

    sockets: tuple[SocketCluster, ...] = ()
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class StatusReportAck:
    """Server reply to a status report, BKV ``0x1017`` down; not a command."""

    ack: int | None = None  #: 1 = OK.
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class FeeChargeEnd:
    """End of a fee-mode session, BKV ``0x1004`` up. Answer with :class:`FeeChargeEndAck`."""

    temperature_c: int | None = None
    socket_no: int | None = None
    port: int | None = None
    status: int | None = None
    business_no: int | None = None
    power_dw: int | None = None
    current_ma: int | None = None
    energy_wh: int | None = None
    duration_min: int | None = None
    end_time: BcdTime | None = None
    end_reason: int | None = None
    charge_mode: int | None = None
    electricity_fee_fen: int | None = None
    service_fee_fen: int | None = None
    fee_tier_count: int | None = None
    tier_usage: bytes | None = None  #: 6 bytes per tier, layout unverified.
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class FeeChargeEndAck:
    """Server reply to a fee-mode end, BKV ``0x1004`` down; not a command."""

    ack: int | None = None
    socket_no: int | None = None
    port: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class FeeControl:
    """Start or stop a fee-mode order, BKV ``0x1007`` down.

    A command (:class:`~bkvcodec.SendMessage`). Its answer is not documented: a
    :class:`FeeControlAck` echoing the seq is expected.
    """

    socket_no: int | None = None
    port: int | None = None
    switch: int | None = None
    charge_mode: int | None = None
    control_type: int | None = None
    payment_fen: int | None = None
    service_fee_mode: int | None = None  #: 0 = by time, 1 = by energy.
    fee_tier_count: int | None = None
    fee_tiers: tuple[FeeTier, ...] = ()
    duration_limit_min: int | None = None  #: Tag ``0x14``, seen in by-time orders of other servers.
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class FeeControlAck:
    """The gateway's answer to :class:`FeeControl`, BKV ``0x1007`` up (layout unverified)."""

    ack: int | None = None
    socket_no: int | None = None
    port: int | None = None
    business_no: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class ExceptionReport:
    """A socket event, BKV ``0x1010`` up. Answer with :class:`ExceptionReportAck`."""

    socket_no: int | None = None
    socket_event_reason: int | None = None
    socket_event_status: int | None = None
    port1_event_reason: int | None = None
    port1_event_status: int | None = None
    port2_event_reason: int | None = None
    port2_event_status: int | None = None
    over_voltage_dv: int | None = None
    under_voltage_dv: int | None = None
    port1_leak_current: int | None = None
    port2_leak_current: int | None = None
    port1_over_temp_c: int | None = None
    port2_over_temp_c: int | None = None
    port1_status: int | None = None
    port2_status: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class ExceptionReportAck:
    """Server reply to an exception report, BKV ``0x1010`` down; not a command."""

    socket_no: int | None = None
    ack: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class ParamSet:
    """Set socket parameters, BKV ``0x1011`` down; send only what changes.

    A command (:class:`~bkvcodec.SetParams`), answered by :class:`ParamSetAck` echoing
    the seq.
    """

    socket_no: int | None = None
    full_charge_delay_s: int | None = None
    no_load_delay_s: int | None = None
    full_power_threshold_dw: int | None = None
    no_load_power_threshold_dw: int | None = None
    high_temp_threshold_c: int | None = None
    power_limit_dw: int | None = None
    max_charge_time_min: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class ParamSetAck:
    """Result of :class:`ParamSet`, BKV ``0x1011`` up."""

    socket_no: int | None = None
    ack: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class ParamQuery:
    """Query socket parameters, BKV ``0x1012`` down.

    A command (:class:`~bkvcodec.QueryParams`), answered by :class:`ParamQueryReply`
    echoing the seq.
    """

    socket_no: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class ParamQueryReply:
    """Socket parameters, BKV ``0x1012`` up."""

    socket_no: int | None = None
    ack: int | None = None
    full_power_threshold_dw: int | None = None
    trickle_threshold_pct: int | None = None
    full_charge_delay_s: int | None = None
    no_load_power_threshold_dw: int | None = None
    no_load_delay_s: int | None = None
    max_charge_time_min: int | None = None
    high_temp_threshold_c: int | None = None
    power_limit_dw: int | None = None
    over_current_limit_ma: int | None = None
    key_base_amount: int | None = None
    anti_pulse_time: int | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class Bkv1013Report:
    """Undocumented BKV ``0x1013`` up, sent by real gateways after heartbeat replies. Not
    answered."""

    socket_no: int | None = None
    port: int | None = None
    time: BcdTime | None = None
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


@frozen_message
class UnknownBkvPacket:
    """A BKV packet whose command (in this direction) has no layout, kept as items."""

    direction: Direction
    bkv_cmd: int
    bkv_seq: int = 0
    bkv_gateway_id: str | None = None
    unknown: tuple[BkvItem, ...] = ()
    item_order: tuple[int | str, ...] = _order()


BkvMessage: TypeAlias = (
    Heartbeat | HeartbeatAck | OtaUpgrade | UnknownCommand
    | NetworkRefresh | NetworkRefreshAck | NetworkAdd | NetworkAddAck | StatusQuery
    | SocketStatus | ChargeControl | ChargeControlAck | ChargeEnd | PowerControl
    | PowerChargeEnd | CardSwipe | CardOrder | CardOrderAck | CardChargeEnd | ChargeEndAck
    | CardBalanceQuery | CardBalanceReply | VoiceConfig | VoiceConfigAck | UnknownGnMessage
    | StatusReport | StatusReportAck | FeeChargeEnd | FeeChargeEndAck | FeeControl
    | FeeControlAck | ExceptionReport | ExceptionReportAck | ParamSet | ParamSetAck
    | ParamQuery | ParamQueryReply | Bkv1013Report | UnknownBkvPacket
)
"""Every message a :class:`BkvFrame` can carry."""
