# Cursor pagination for list endpoints (api.md §10.7): ``limit`` (default 50, at
# most 500) and an opaque ``cursor``. A cursor is keyset-based: it names the list
# and the row id where the previous page stopped, so pages stay stable while rows
# are added (no OFFSET scans, no skipped or repeated rows). On the wire it is
# base64url text; clients must treat it as opaque. The list name inside means a
# cursor of one list is rejected by another instead of silently misread.
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._errors import InvalidPage

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "check_limit", "decode_cursor",
           "encode_cursor"]

#: ``limit`` when the request gives none.
DEFAULT_LIMIT = 50
#: The largest ``limit`` accepted.
MAX_LIMIT = 500

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items and the cursor of the next page (None at the end)."""

    items: tuple[T, ...]
    next_cursor: str | None


def check_limit(limit: int) -> int:
    """Return *limit* if it is within 1–:data:`MAX_LIMIT`.

    Raises:
        InvalidPage: It is not (``field`` = ``"limit"``).
    """
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidPage("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def encode_cursor(list_name: str, last_id: int) -> str:
    """The opaque cursor for the page after row *last_id* of *list_name*."""
    raw = f"{list_name}:{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(list_name: str, cursor: str) -> int:
    """The row id inside *cursor*, which must belong to *list_name*.

    Raises:
        InvalidPage: The cursor is malformed or from another list
            (``field`` = ``"cursor"``).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise InvalidPage("cursor", "not a cursor of this list") from err
    name, sep, number = raw.partition(":")
    if name != list_name or not sep or not number.isdecimal() or len(number) > 19:
        raise InvalidPage("cursor", "not a cursor of this list")
    return int(number)
