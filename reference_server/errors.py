# The errors the server's operations raise, each carrying its HTTP answer
# (api.md §6: status, machine code, message, optional data). The API layer turns
# any ServiceError into the error envelope; nothing else needs to know HTTP.
from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CardExists", "CardNotFound", "CommandNotFound", "DeviceNotFound", "DeviceRejected",
    "EventNotFound", "InsufficientBalance", "InvalidArgument", "InvalidCommand", "NoIdlePort",
    "OrderNotFound", "PortBusy", "PortFault", "PortNotFound", "ServiceError", "Unavailable",
]


class ServiceError(Exception):
    """An operation failed in a way the caller can act on.

    Attributes:
        status: The HTTP status (also the envelope's ``code``).
        error: The machine-readable code (``device_not_found`` …).
        message: Words for people.
        data: Extra fields for the envelope's ``data``, if any.
    """

    status = 500
    error = "internal"

    def __init__(self, message: str, data: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = dict(data) if data is not None else None


class InvalidArgument(ServiceError):
    """A request field is missing, of the wrong type or out of range."""

    status = 400
    error = "invalid_argument"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", {"field": field})
        self.field = field


class DeviceNotFound(ServiceError):
    """No device with this ``phy_id`` ever connected."""

    status = 404
    error = "device_not_found"

    def __init__(self, phy_id: str) -> None:
        super().__init__(f"device {phy_id} not found", {"device_phy_id": phy_id})


class _NotFound(ServiceError):
    status = 404
    what = "thing"

    def __init__(self, key: str) -> None:
        super().__init__(f"{self.what} {key} not found")


class OrderNotFound(_NotFound):
    """No order with this number (or none running on the port, for a stop)."""

    error = "order_not_found"
    what = "order"


class CommandNotFound(_NotFound):
    """No command with this id."""

    error = "command_not_found"
    what = "command"


class EventNotFound(_NotFound):
    """No recorded event with this id."""

    error = "event_not_found"
    what = "event"


class CardNotFound(_NotFound):
    """No card with this number in the registry."""

    error = "card_not_found"
    what = "card"


class CardExists(ServiceError):
    """``POST /cards`` for a card that is registered already; its
    balance changes only through top-ups and adjustments."""

    status = 409
    error = "card_exists"

    def __init__(self, card_no: str) -> None:
        super().__init__(f"card {card_no} already exists; change its balance with "
                         "/topup or /adjust", {"card_no": card_no})


class InsufficientBalance(ServiceError):
    """A decrease asks for more than the card has available (the balance less what
    open orders hold)."""

    status = 409
    error = "insufficient_balance"

    def __init__(self, card_no: str, requested_cents: int, available_cents: int) -> None:
        super().__init__(f"card {card_no} has {available_cents} cents available",
                         {"card_no": card_no, "requested_cents": requested_cents,
                          "available_cents": available_cents})


class PortBusy(ServiceError):
    """The port already runs an order (busy-port policy ``reject``)."""

    status = 409
    error = "port_busy"

    def __init__(self, current_order: str, port_no: int, status: str) -> None:
        super().__init__("port is busy", {"current_order": current_order, "port_no": port_no,
                                          "status": status})


class NoIdlePort(ServiceError):
    """``port_no`` 255 was asked for and no port is idle, fault-free and online."""

    status = 409
    error = "port_busy"

    def __init__(self, phy_id: str) -> None:
        super().__init__(f"device {phy_id} has no idle port", {"port_no": 255,
                                                               "current_order": None,
                                                               "status": "busy"})


class PortFault(ServiceError):
    """The port reports a fault; no charge can start on it."""

    status = 422
    error = "port_fault"

    def __init__(self, port_no: int, fault_code: int) -> None:
        super().__init__(f"port {port_no} is faulted (fault_code {fault_code})",
                         {"port_no": port_no, "fault_code": fault_code})


class PortNotFound(ServiceError):
    """The device announced fewer ports than the one asked for; it would refuse."""

    status = 422
    error = "port_not_found"

    def __init__(self, port_no: int, port_count: int) -> None:
        super().__init__(f"port {port_no} does not exist: the device has {port_count} ports",
                         {"port_no": port_no, "port_count": port_count})


class DeviceRejected(ServiceError):
    """The device's protocol cannot carry the request (e.g. an OTA form it lacks)."""

    status = 422
    error = "device_rejected"


class InvalidCommand(ServiceError):
    """The library refuses the command: a value it cannot carry, a field it needs, a
    command the device's protocol lacks; the message is the library's."""

    status = 422
    error = "invalid_command"

    def __init__(self, kind: str, problem: str) -> None:
        super().__init__(f"{kind}: {problem}", {"kind": kind})
        self.kind = kind


class Unavailable(ServiceError):
    """The server is starting or stopping, or (on a cluster) the node that holds the
    device did not answer in time."""

    status = 503
    error = "unavailable"
