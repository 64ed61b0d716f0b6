# AP3000 value sets and value helpers (ap3000.md §2.3, §3).
#
# Messages keep every field as the raw wire integer or bytes: vendors extend the
# value sets with new firmware, and a decoder that mapped unknown codes to an
# error would lose frames. The closed sets of ap3000.md §3 are given here as
# IntEnums that callers apply when they want names (``Ap3000StopReason(code)``,
# which raises ValueError for a code outside the table). The helpers convert the
# composite values: the physical ID (§2.3), card numbers (§3.6) and the order
# numbers a device builds for offline starts (§3.7).
from __future__ import annotations

import enum
import re

from .._errors import LocalProtocolError
from .._fastinit import frozen_dataclass
from .._types import BcdTime

__all__ = [
    "Ap3000AccountStatus", "Ap3000CardType", "Ap3000ChargeResult", "Ap3000DeviceType",
    "Ap3000FirmwareResult", "Ap3000OfflineOrder", "Ap3000PortStatus", "Ap3000RateMode",
    "Ap3000StartMode", "Ap3000StopReason", "Ap3000WorkMode", "card_id_decimal",
    "decode_order_no", "encode_order_no", "format_phy_id", "make_physical_id", "parse_phy_id",
]


class Ap3000PortStatus(enum.IntEnum):
    """Port status codes of ``port_status`` in 0x01, 0x21 and 0x06.

    .. versionadded:: 0.1.0
    """

    #: Idle.
    IDLE = 0x00
    #: Charging.
    CHARGING = 0x01
    #: Charger plugged in, not charging (not started); in 0x06 of charging cabinets:
    #: scanned, waiting for a charger.
    PLUGGED_NOT_STARTED = 0x02
    #: Charger plugged in, not charging (battery full).
    PLUGGED_FULL = 0x03
    #: The port cannot meter.
    CANNOT_METER = 0x04
    #: Float charging.
    FLOAT_CHARGING = 0x05
    #: Memory damaged.
    MEMORY_DAMAGED = 0x06
    #: Socket contact stuck.
    CONTACT_STUCK = 0x07
    #: Bad contact or blown fuse.
    BAD_CONTACT_OR_FUSE = 0x08
    #: Relay welded (detected by algorithm).
    RELAY_WELDED = 0x09
    #: Plug-detection (Hall) sensor broken.
    HALL_SENSOR_BROKEN = 0x0A
    #: Pre-check found the relay broken or the fuse blown.
    PRECHECK_RELAY_OR_FUSE = 0x0B
    #: Pre-check found a load short-circuit (0x0C is not assigned).
    PRECHECK_SHORT_CIRCUIT = 0x0D
    #: Filtering pre-check found the relay welded.
    PRECHECK_RELAY_WELDED = 0x0E
    #: Card-reader chip broken.
    CARD_READER_BROKEN = 0x0F
    #: Detection circuit fault.
    DETECTION_CIRCUIT_FAULT = 0x10

    @property
    def is_fault(self) -> bool:
        """True for the fault codes, every code from 0x04 up except float charging."""
        return self >= 0x04 and self is not Ap3000PortStatus.FLOAT_CHARGING


class Ap3000StopReason(enum.IntEnum):
    """Why charging stopped: ``stop_reason`` of 0x03 and 0x43.

    There is no code 0. Codes 0x10-0x18 mostly concern charging cabinets.

    .. versionadded:: 0.1.0
    """

    #: Full, stopped by itself.
    FULL = 0x01
    #: Maximum charging time reached.
    MAX_DURATION = 0x02
    #: Preset duration reached.
    PRESET_DURATION = 0x03
    #: Preset energy reached.
    PRESET_ENERGY = 0x04
    #: User unplugged.
    UNPLUGGED = 0x05
    #: Load too high.
    LOAD_TOO_HIGH = 0x06
    #: Stopped by a server command (0x82 stop).
    SERVER_STOP = 0x07
    #: Dynamic overload.
    DYNAMIC_OVERLOAD = 0x08
    #: Power too low.
    POWER_TOO_LOW = 0x09
    #: Ambient temperature too high.
    AMBIENT_TEMPERATURE = 0x0A
    #: Port temperature too high.
    PORT_TEMPERATURE = 0x0B
    #: Over-current.
    OVER_CURRENT = 0x0C
    #: User unplugged (possibly a stuck contact).
    UNPLUGGED_STUCK_CONTACT = 0x0D
    #: No power (bad contact or blown fuse).
    NO_POWER = 0x0E
    #: Pre-check found the relay broken or the fuse blown.
    PRECHECK_RELAY_OR_FUSE = 0x0F
    #: Water immersion.
    WATER_IMMERSION = 0x10
    #: Fire suppression at this port.
    FIRE_SUPPRESSION_THIS_PORT = 0x11
    #: Fire suppression at another port.
    FIRE_SUPPRESSION_OTHER_PORT = 0x12
    #: Cabinet opened with the user password.
    CABINET_OPENED_BY_USER = 0x13
    #: Cabinet door not closed.
    CABINET_DOOR_OPEN = 0x14
    #: Stopped by an external operation.
    EXTERNAL_OPERATION = 0x15
    #: Stopped by a card swipe.
    CARD_SWIPE = 0x16
    #: Forced stop by the server (cabinet door).
    SERVER_FORCED_STOP = 0x17
    #: Fire-protection system.
    FIRE_PROTECTION = 0x18
    #: Memory error.
    MEMORY_ERROR = 0x19
    #: Over-voltage.
    OVER_VOLTAGE = 0x1A
    #: Under-voltage.
    UNDER_VOLTAGE = 0x1B
    #: Low-power cut-off.
    LOW_POWER_CUTOFF = 0x1C


class Ap3000StartMode(enum.IntEnum):
    """How an order started: ``start_mode`` of 0x03, 0x04, 0x06, 0x43.

    .. versionadded:: 0.1.0
    """

    #: Started offline with a card; the device built the order number.
    OFFLINE_CARD = 0
    #: Started online by the server (0x82).
    ONLINE = 1
    #: Started with a verification code (keypad or screen models).
    VERIFICATION_CODE = 3


class Ap3000RateMode(enum.IntEnum):
    """``rate_mode`` of the 0x02 reply and of 0x82.

    .. versionadded:: 0.1.0
    """

    #: By time; money in fen.
    TIME = 0
    #: Monthly subscription; ``balance_or_expiry`` is a Unix expiry time.
    MONTHLY = 1
    #: By energy.
    ENERGY = 2
    #: Per use.
    PER_USE = 3


class Ap3000CardType(enum.IntEnum):
    """``card_type`` of 0x02.

    .. versionadded:: 0.1.0
    """

    #: Known card, read with the user-card key.
    KNOWN = 0
    #: New card, read with the new-card key.
    NEW = 1
    #: Balance card (withdrawn).
    BALANCE = 2
    #: UID only.
    UID_ONLY = 3
    #: Social-security card; its number is in ``card_no2``.
    SOCIAL_SECURITY = 4


class Ap3000AccountStatus(enum.IntEnum):
    """``account_status`` of the 0x02 reply; each makes the device
    play a matching voice prompt.

    .. versionadded:: 0.1.0
    """

    #: OK.
    OK = 0x00
    #: Card not registered.
    NOT_REGISTERED = 0x01
    #: Bind the card (swipe again).
    BIND_CARD = 0x02
    #: Unbind the card (swipe again).
    UNBIND_CARD = 0x03
    #: Monthly user, already charging.
    MONTHLY_ALREADY_CHARGING = 0x04
    #: Monthly user, use-count limit reached.
    MONTHLY_COUNT_LIMIT = 0x05
    #: Insufficient balance.
    INSUFFICIENT_BALANCE = 0x06
    #: Monthly subscription expired.
    MONTHLY_EXPIRED = 0x07
    #: Port fault.
    PORT_FAULT = 0x08
    #: Clear the balance card and convert it to a user card.
    CONVERT_BALANCE_CARD = 0x09
    #: Monthly user, time limit reached.
    MONTHLY_TIME_LIMIT = 0x0A
    #: The card belongs to another operator.
    OTHER_OPERATOR = 0x0B
    #: Device not registered.
    DEVICE_NOT_REGISTERED = 0x0C
    #: Buy a monthly plan.
    BUY_MONTHLY_PLAN = 0x0D
    #: Cross-area charging, insufficient balance.
    CROSS_AREA_INSUFFICIENT = 0x0E
    #: Monthly device, cannot be used.
    MONTHLY_DEVICE_UNUSABLE = 0x0F
    #: Monthly device, not usable across areas.
    MONTHLY_DEVICE_CROSS_AREA = 0x10
    #: Temporary device, cannot be used.
    TEMPORARY_DEVICE_UNUSABLE = 0x11
    #: Temporary device, not usable across areas.
    TEMPORARY_DEVICE_CROSS_AREA = 0x12


class Ap3000ChargeResult(enum.IntEnum):
    """``result`` of the 0x82 reply. Only 0, 3 and 9 mean the
    order runs.

    .. versionadded:: 0.1.0
    """

    #: Success (started or stopped).
    SUCCESS = 0x00
    #: No charger plugged into the port.
    NO_CHARGER = 0x01
    #: The port is already in the requested state.
    ALREADY_IN_STATE = 0x02
    #: Port fault (executed).
    PORT_FAULT = 0x03
    #: No such port.
    NO_SUCH_PORT = 0x04
    #: Several ports have chargers waiting (answer to port 0xFF).
    SEVERAL_PORTS_WAITING = 0x05
    #: Total power of the multi-port unit too high.
    TOTAL_POWER_TOO_HIGH = 0x06
    #: Memory damaged.
    MEMORY_DAMAGED = 0x07
    #: Pre-check found the relay broken or the fuse blown.
    PRECHECK_RELAY_OR_FUSE = 0x08
    #: Pre-check found the relay welded (executed).
    PRECHECK_RELAY_WELDED = 0x09
    #: Pre-check found a load short-circuit.
    PRECHECK_SHORT_CIRCUIT = 0x0A
    #: Smoke alarm.
    SMOKE_ALARM = 0x0B
    #: Over-voltage.
    OVER_VOLTAGE = 0x0C
    #: Under-voltage.
    UNDER_VOLTAGE = 0x0D
    #: No response.
    NO_RESPONSE = 0x0E

    @property
    def executed(self) -> bool:
        """True when the device carried the command out (0x00, 0x03, 0x09)."""
        return self in (Ap3000ChargeResult.SUCCESS, Ap3000ChargeResult.PORT_FAULT,
                        Ap3000ChargeResult.PRECHECK_RELAY_WELDED)


class Ap3000FirmwareResult(enum.IntEnum):
    """``result`` of the firmware-packet replies 0xE0-0xE2.

    .. versionadded:: 0.1.0
    """

    #: OK, send the next packet.
    OK = 0
    #: Packet error, resend (the vendor does not say which packet).
    PACKET_ERROR = 1
    #: The image checksum is wrong.
    IMAGE_CHECKSUM = 2
    #: Wrong device type.
    WRONG_DEVICE_TYPE = 3
    #: The verification packet is missing.
    VERIFICATION_MISSING = 4
    #: The "packet 0" device-type check failed; upgrade refused.
    PACKET0_REFUSED = 5


class Ap3000DeviceType(enum.IntEnum):
    """Type codes in the top byte of the physical ID.

    Not exhaustive in practice (a vendor example uses 0x76); frames keep the raw
    code in :attr:`Ap3000Frame.device_type_code <bkvcodec.ap3000.Ap3000Frame.device_type_code>`.

    .. versionadded:: 0.1.0
    """

    #: Single-port socket.
    SINGLE_PORT_SOCKET = 0x03
    #: Dual-port socket.
    DUAL_PORT_SOCKET = 0x04
    #: 10-port pile.
    PILE_10_PORT = 0x05
    #: 16-port pile.
    PILE_16_PORT = 0x06
    #: 12-port pile.
    PILE_12_PORT = 0x07
    #: Host (main unit).
    HOST = 0x09
    #: Host with leakage protection.
    HOST_WITH_LEAKAGE_PROTECTION = 0x0A


class Ap3000WorkMode(enum.IntFlag):
    """Bits of ``work_mode`` in 0x01 and 0x20. A clear bit means
    the opposite: networked, RN8209 metering chip, no pre-check, optocoupler.

    .. versionadded:: 0.1.0
    """

    #: Card-only (offline) operation.
    CARD_ONLY = 0x01
    #: BL0939 metering chip.
    BL0939_METERING = 0x02
    #: Short-circuit pre-check present.
    SHORT_CIRCUIT_PRECHECK = 0x04
    #: Lamp-mode plug detection.
    LAMP_MODE = 0x08


# --- physical ID (§2.3) -----------------------------------------------------------------------

_PHY_ID = re.compile(r"[0-9A-Fa-f]{8}")


def format_phy_id(physical_id: int) -> str:
    """The printed form of a physical ID: 8 upper-case hex digits, type code first, for example
    ``"04CEAA40"``.

    Args:
        physical_id: The 32-bit value of the wire field.

    Returns:
        The ``phy_id`` string.

    Raises:
        ValueError: *physical_id* does not fit 32 bits.

    .. versionadded:: 0.1.0
    """
    if not 0 <= physical_id <= 0xFFFF_FFFF:
        raise ValueError(f"physical ID {physical_id} does not fit 32 bits")
    return f"{physical_id:08X}"


def parse_phy_id(phy_id: str) -> int:
    """The 32-bit value of a printed physical ID (the inverse of :func:`format_phy_id`).

    Args:
        phy_id: 8 hex digits, type code first (``"04CEAA40"``).

    Returns:
        The value of the wire field (sent little-endian).

    Raises:
        ValueError: *phy_id* is not 8 hex digits.

    .. versionadded:: 0.1.0
    """
    if not _PHY_ID.fullmatch(phy_id):
        raise ValueError(f"a phy_id is 8 hex digits, got {phy_id!r}")
    return int(phy_id, 16)


def make_physical_id(device_type_code: int, device_number: int) -> int:
    """The physical ID of a unit from its type code and label number.

    Args:
        device_type_code: The type code (:class:`Ap3000DeviceType` or another byte).
        device_number: The decimal number printed under the QR code (0-16777215).

    Returns:
        ``device_type_code << 24 | device_number``.

    Raises:
        ValueError: A part is out of range.

    .. versionadded:: 0.1.0
    """
    if not 0 <= device_type_code <= 0xFF or not 0 <= device_number <= 0xFF_FFFF:
        raise ValueError(f"type code {device_type_code} / number {device_number} out of range")
    return (device_type_code << 24) | device_number


def card_id_decimal(card_id: bytes) -> int:
    """The decimal card number printed on vendor cards: the UID read big-endian
    (``7A 8D 05 DD`` → 2056062429).

    Args:
        card_id: The card UID in wire order.

    Returns:
        The card number.

    .. versionadded:: 0.1.0
    """
    return int.from_bytes(card_id, "big")


# --- offline order numbers (§3.7) --------------------------------------------------------------

def _bcd_digits(raw: bytes) -> str:
    text = raw.hex()
    if not text.isdigit():
        raise ValueError(f"not BCD: {text}")
    return text


@frozen_dataclass
class Ap3000OfflineOrder:
    """The fields of an order number a device built for an offline start.

    Card starts (``start_mode`` 0): BCD date-time (7 bytes), card UID (4), device
    number as 8 BCD digits (4), BCD of port + 30 (1). Verification-code starts
    (``start_mode`` 3): date-time (7), ``00``, 6-digit code in BCD (3), device
    number (4), BCD of port + 70 (1). The vendor calls the digits "decimal"
    without saying BCD; only BCD fits the sizes, so treat the reading as a helper
    and the order number itself as an opaque key.

    Attributes:
        started_at: When the order started (device clock, Beijing time).
        device_number: The device's label number.
        port: The 0-based wire port.
        card_id: The card UID (card starts), else None.
        verification_code: The six digits (verification-code starts), else None.

    .. versionadded:: 0.1.0
    """

    started_at: BcdTime
    device_number: int
    port: int
    card_id: bytes | None = None
    verification_code: str | None = None

    @classmethod
    def parse(cls, order_no: bytes) -> Ap3000OfflineOrder:
        """Read a 16-byte device-built order number.

        Args:
            order_no: The ``order_no`` bytes of 0x03, 0x04, 0x06 or 0x43.

        Returns:
            The decoded parts.

        Raises:
            ValueError: The bytes do not have either offline layout (for example
                an order number the server chose): not 16 bytes, not BCD, no real
                date, or a last byte that fits neither form.
        """
        if len(order_no) != 16:
            raise ValueError(f"an order number has 16 bytes, got {len(order_no)}")
        BcdTime(bytes(order_no[:7])).to_datetime()
        device_number = int(_bcd_digits(order_no[11:15]))
        tag = int(_bcd_digits(order_no[15:16]))
        started_at = BcdTime(bytes(order_no[:7]))
        if 30 <= tag < 70:
            return cls(started_at=started_at, device_number=device_number, port=tag - 30,
                       card_id=bytes(order_no[7:11]))
        if tag >= 70 and order_no[7] == 0:
            return cls(started_at=started_at, device_number=device_number, port=tag - 70,
                       verification_code=_bcd_digits(order_no[8:11]))
        raise ValueError(f"order number {order_no.hex()} is not device-built")

    def to_bytes(self) -> bytes:
        """The 16-byte order number.

        Raises:
            ValueError: A part does not fit its field (a port above 29, a device
                number above 8 digits, neither or both of card and code).
        """
        if (self.card_id is None) == (self.verification_code is None):
            raise ValueError("give exactly one of card_id and verification_code")
        if not 0 <= self.device_number <= 99_999_999 or len(self.started_at.raw) != 7:
            raise ValueError("device number or start time out of range")
        if self.card_id is not None:
            if len(self.card_id) != 4 or not 0 <= self.port <= 39:
                raise ValueError("card_id must be 4 bytes and port 0-39")
            middle, tag = self.card_id, self.port + 30
        else:
            code = str(self.verification_code)
            if not re.fullmatch(r"\d{6}", code) or not 0 <= self.port <= 29:
                raise ValueError("verification_code must be 6 digits and port 0-29")
            middle, tag = b"\0" + bytes.fromhex(code), self.port + 70
        return (self.started_at.raw + middle + bytes.fromhex(f"{self.device_number:08d}")
                + bytes.fromhex(f"{tag:02d}"))


def encode_order_no(order_no: str) -> bytes:
    """The 16-byte order field for *order_no*: ASCII text, NUL-padded, or the 32
    hex digits :func:`decode_order_no` gives for a device-built number.

    Raises:
        LocalProtocolError: Longer than 16 bytes or not ASCII.
    """
    if len(order_no) == 32 and all(c in "0123456789abcdefABCDEF" for c in order_no):
        return bytes.fromhex(order_no)
    try:
        raw = order_no.encode("ascii")
    except UnicodeError as err:
        raise LocalProtocolError(f"order number {order_no!r} is not ASCII") from err
    if len(raw) > 16:
        raise LocalProtocolError(f"order number {order_no!r} is longer than 16 bytes")
    return raw.ljust(16, b"\0")


def decode_order_no(raw: bytes) -> str:
    """The order number in a 16-byte field: ASCII text, or hex for device-built ones."""
    text = raw.rstrip(b"\0")
    if text and all(0x20 < b < 0x7F for b in text):
        return text.decode("ascii")
    return raw.hex().upper()
