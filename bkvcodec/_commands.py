# The protocol-neutral commands a server sends to a device through a connection.
#
# Each command names the device it is for and carries the caller's command_id;
# every outcome event (CommandAcknowledged, CommandRejected, CommandTimedOut)
# carries the same id. Quantities are in the contract's units, as for events.
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import field

from ._ap3000.codec import check_downlink as check_ap3000_downlink
from ._ap3000.messages import Ap3000Message
from ._bkv.codec import check_downlink as check_bkv_downlink
from ._bkv.messages import BkvMessage
from ._errors import LocalProtocolError
from ._events import ChargeMode
from ._fastinit import frozen_dataclass

__all__ = [
    "Command", "FirmwareTarget", "ModifyCharge", "NetworkSocketSpec", "PowerTierSpec",
    "QueryParams", "QueryStatus", "SendFirmware", "SendMessage", "SetNetworkList", "SetParams",
    "StartCharging", "StartOta", "StopCharging",
]


@frozen_dataclass
class Command:
    """The base of every command a :class:`ServerConnection` sends.

    Attributes:
        command_id: The caller's id for the command; the events about its
            outcome carry it.
        phy_id: The device the command is for.

    .. versionadded:: 0.1.0
    """

    command_id: str
    phy_id: str

    def __post_init__(self) -> None:
        _check(bool(self.command_id), "command_id must not be empty")
        _check(bool(self.phy_id), "phy_id must not be empty")


def _check(condition: bool, problem: str) -> None:
    """Raise the error a command with an impossible value gets at construction."""
    if not condition:
        raise LocalProtocolError(problem)


def _check_count(name: str, value: int | None, *, low: int = 1,
                 high: int = 0xFFFF_FFFF) -> None:
    if value is not None:
        _check(low <= value <= high, f"{name} must be {low}-{high}, not {value}")


def _check_order_no(order_no: str | None) -> None:
    # Empty only in what a BKV device receives (BKV frames carry no order number);
    # 32 hex digits for an order an AP3000 unit numbered itself (a card start).
    if order_no is None or (len(order_no) == 32 and order_no.isalnum()
                            and all(c in "0123456789abcdefABCDEF" for c in order_no)):
        return
    _check(order_no.isascii() and len(order_no) <= 16,
           f"order_no must be at most 16 ASCII characters (or 32 hex digits), "
           f"not {order_no!r}")


@frozen_dataclass
class PowerTierSpec:
    """One power tier of a power-tier order (``power_tiers``)."""

    max_power_w: int
    price_cents: int
    minutes: int

    def __post_init__(self) -> None:
        _check_count("max_power_w", self.max_power_w)
        _check_count("price_cents", self.price_cents, low=0)
        _check_count("minutes", self.minutes)


@frozen_dataclass
class StartCharging(Command):
    """Start an order on a port.

    Attributes:
        mode: 1 time (``duration_s``), 2 energy (``energy_wh``), 3 power tiers,
            4 until full.
        amount_cents: Prepaid amount (announced by some devices, billed by
            power-tier orders).
        order_no: The order number (16 ASCII characters).
    """

    port_no: int
    order_no: str
    mode: ChargeMode
    socket_no: int = 1
    duration_s: int | None = None
    energy_wh: int | None = None
    power_tiers: tuple[PowerTierSpec, ...] = ()
    amount_cents: int | None = None

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check_count("port_no", self.port_no, high=255)
        _check_count("socket_no", self.socket_no, high=255)
        _check_order_no(self.order_no)
        _check_count("duration_s", self.duration_s)
        _check_count("energy_wh", self.energy_wh)
        _check_count("amount_cents", self.amount_cents, low=0)
        if self.mode is ChargeMode.TIME:
            _check(self.duration_s is not None, "a time order needs duration_s")
        elif self.mode is ChargeMode.ENERGY:
            _check(self.energy_wh is not None, "an energy order needs energy_wh")
        elif self.mode is ChargeMode.POWER_TIERS:
            _check(1 <= len(self.power_tiers) <= 5, "a power-tier order needs 1 to 5 tiers")
        if self.mode is not ChargeMode.POWER_TIERS:
            _check(not self.power_tiers, "power_tiers are for power-tier orders")


@frozen_dataclass
class StopCharging(Command):
    """Stop the order running on a port."""

    port_no: int
    socket_no: int = 1
    order_no: str | None = None

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check_count("port_no", self.port_no, high=255)
        _check_count("socket_no", self.socket_no, high=255)
        _check_order_no(self.order_no)


@frozen_dataclass
class QueryStatus(Command):
    """Ask the device to report its status now."""

    socket_no: int = 1


@frozen_dataclass
class SetParams(Command):
    """Set device parameters, by the field names of the protocol's messages.

    On AP3000 the names pick the command: the fields of ``0x83``, ``0x84``, ``0x85``,
    ``0x86`` or ``0x97`` (``{"max_charge_duration_s": …, "overload_power_0p1w": …}`` is
    a ``0x85``), every mandatory field of that command included; the ``0x86`` card keys
    are the six key bytes read big-endian.

    Raises:
        LocalProtocolError: From :meth:`~bkvcodec.ServerConnection.send`: a name the protocol
            lacks, names of two commands, a missing field, or a value out of range;
            the message names the fields.
    """

    params: Mapping[str, int] = field(default_factory=dict)
    socket_no: int = 1

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check(bool(self.params), "SetParams needs at least one parameter")
        for name, value in self.params.items():
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                   f"parameter {name} must be a whole number >= 0, not {value!r}")


@frozen_dataclass
class QueryParams(Command):
    """Ask for the device's parameters; the answer is a :class:`ParamsReported`.

    Attributes:
        names: The parameters wanted, by the field names of the protocol's messages; the
            connection picks the query that reports them (AP3000 ``0x90``-``0x93``).
            Empty: the protocol's first parameter query (AP3000 ``0x90``, BKV
            ``0x1012``). Names that no single query reports are refused by
            :meth:`~bkvcodec.ServerConnection.send`. The answer reports every field of the
            query's reply, then :class:`~bkvcodec.CommandAcknowledged`.
    """

    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check(len(set(self.names)) == len(self.names), "names repeat a parameter")

    socket_no: int = 1


@frozen_dataclass
class ModifyCharge(Command):
    """Change the limit of the order running on a port (AP3000 ``0x8A``).

    Exactly one of ``duration_s`` and ``energy_wh`` is set. BKV gateways cannot
    modify a running order.

    Attributes:
        stop_when_full: With a time limit, also stop when the charger is full.
    """

    port_no: int
    duration_s: int | None = None
    energy_wh: int | None = None
    stop_when_full: bool = False
    socket_no: int = 1

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check_count("port_no", self.port_no, high=255)
        _check((self.duration_s is None) != (self.energy_wh is None),
               "ModifyCharge takes exactly one of duration_s, energy_wh")
        _check_count("duration_s", self.duration_s, low=0)
        _check_count("energy_wh", self.energy_wh, low=0)


@frozen_dataclass
class StartOta(Command):
    """Tell a BKV gateway to fetch a firmware file by FTP (BKV ``0x0007``).

    The gateway sends no answer: the command is written untracked and
    its effect shows as a new firmware version in later heartbeats. AP3000 firmware
    is transferred in packets, which this library does not drive yet.
    """

    ftp_host: str
    file_name: str
    ftp_port: int = 21
    target: int = 1

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check(bool(self.ftp_host) and bool(self.file_name),
               "StartOta needs ftp_host and file_name")
        _check_count("ftp_port", self.ftp_port, high=0xFFFF)


class FirmwareTarget(enum.Enum):
    """Which part of an AP3000 unit a :class:`SendFirmware` upgrades."""

    #: A slave or socket unit (``0xE0``).
    SLAVE = 0xE0
    #: Its power board (``0xE1``).
    POWER_BOARD = 0xE1
    #: A host (``0xE2``).
    HOST = 0xE2


@frozen_dataclass
class SendFirmware(Command):
    """Transfer a firmware image to an AP3000 unit in 200-byte packets (``0xE0``-``0xE2``).

    Each packet waits for the unit's answer (30 s, resent up to 3 times);
    :class:`FirmwareProgress` reports each accepted packet. With ``device_type``
    and ``firmware_version`` set, the verification packet the vendor recommends
    is appended. BKV gateways fetch firmware by FTP instead (:class:`StartOta`).
    """

    image: bytes
    target: FirmwareTarget = FirmwareTarget.SLAVE
    device_type: int | None = None
    firmware_version: int | None = None

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check(bool(self.image), "SendFirmware needs a non-empty image")
        _check_count("device_type", self.device_type, low=0, high=0xFF)
        _check_count("firmware_version", self.firmware_version, low=0, high=0xFFFF)


@frozen_dataclass
class NetworkSocketSpec:
    """A socket to network under a BKV gateway: its number and its MAC (12 hex digits)."""

    socket_no: int
    mac: str

    def __post_init__(self) -> None:
        _check_count("socket_no", self.socket_no, high=250)
        _check(len(self.mac) == 12 and all(c in "0123456789abcdefABCDEF" for c in self.mac),
               f"mac must be 12 hex digits, not {self.mac!r}")


@frozen_dataclass
class SetNetworkList(Command):
    """Replace a BKV gateway's socket list (GN ``0x08``), or add one socket (``0x09``)
    when ``add`` is set (then ``sockets`` holds exactly one).

    Attributes:
        channel: Radio channel 1-15 (ignored when adding).
    """

    sockets: tuple[NetworkSocketSpec, ...]
    channel: int = 1
    add: bool = False

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        _check_count("channel", self.channel, high=15)
        if self.add:
            _check(len(self.sockets) == 1, "adding a socket takes exactly one")


@frozen_dataclass
class SendMessage(Command):
    """Send one downlink message of the device's protocol, as a command: paced,
    retransmitted with the same message id and ending in one outcome like every
    command. For the commands no protocol-neutral class covers (AP3000 reboot,
    locate, EEPROM access, QR codes …; BKV voice settings …).

    The outcome's :attr:`bkvcodec.CommandAcknowledged.reply` is the device's answer. A
    message the protocol never answers is acknowledged (with no reply) once it is
    written; an AP3000 ``0x81`` is answered by the unit's next ``0x20``, ``0x01`` or
    ``0x21``.

    Attributes:
        message: A server-to-device message from :mod:`bkvcodec.bkv` or
            :mod:`bkvcodec.ap3000`.

    Raises:
        LocalProtocolError: *message* is an uplink, does not encode (a value out of
            its field's range), or breaks a limit the protocol states (AP3000:
            ``qr_text`` of ``0x8E`` over 71 characters, an EEPROM length over 32 …).

    .. versionadded:: 0.1.0
    """

    message: BkvMessage | Ap3000Message

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        if isinstance(self.message, Ap3000Message):
            check_ap3000_downlink(self.message)
        else:
            check_bkv_downlink(self.message)
