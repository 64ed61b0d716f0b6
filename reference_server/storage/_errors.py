# The storage layer's exceptions. Each one tells the caller something it can act on
# (a port already has an order: answer 409; a bad cursor: answer 400 naming the
# field); anything else from sqlite3 is a bug or a broken disk and propagates as is.
from __future__ import annotations

__all__ = ["ActiveOrderExists", "CardExists", "DuplicateOrderNo", "InsufficientFunds",
           "InvalidPage", "SchemaTooNew", "StorageError"]


class StorageError(Exception):
    """Base class of the storage layer's own errors."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer server than this one.

    Attributes:
        found: The database's schema version.
        supported: The newest version this code knows.
    """

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(f"database schema version {found} is newer than this server "
                         f"supports ({supported}); refusing to open it")
        self.found = found
        self.supported = supported


class InvalidPage(StorageError, ValueError):
    """A list request's ``limit`` or ``cursor`` is invalid (an API 400).

    Attributes:
        field: ``"limit"`` or ``"cursor"``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class ActiveOrderExists(StorageError):
    """The port already has a ``pending`` or ``charging`` order.

    Attributes:
        order_no: The order that holds the port (None if it could not be read).
    """

    def __init__(self, order_no: str | None) -> None:
        super().__init__(f"the port already has an open order ({order_no})")
        self.order_no = order_no


class DuplicateOrderNo(StorageError):
    """An order with this number already exists.

    Attributes:
        order_no: The number.
    """

    def __init__(self, order_no: str) -> None:
        super().__init__(f"order {order_no} already exists")
        self.order_no = order_no


class CardExists(StorageError):
    """A card with this number is already registered (``POST /cards``: 409).

    Attributes:
        card_no: The number.
    """

    def __init__(self, card_no: str) -> None:
        super().__init__(f"card {card_no} already exists")
        self.card_no = card_no


class InsufficientFunds(StorageError):
    """A hold or a negative adjustment asks for more than the card has available
    (its balance less what open orders hold). Nothing was written.

    Attributes:
        card_no: The card.
        requested_cents: What was asked for.
        available_cents: What the card had available (None: no such card).
    """

    def __init__(self, card_no: str, requested_cents: int,
                 available_cents: int | None) -> None:
        super().__init__(f"card {card_no}: {requested_cents} cents asked for, "
                         f"{available_cents} available")
        self.card_no = card_no
        self.requested_cents = requested_cents
        self.available_cents = available_cents
