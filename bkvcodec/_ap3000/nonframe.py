# The two plain-text messages an AP3000 unit's modem puts on the TCP stream
# between DNY frames (ap3000.md §2.1): the SIM's ICCID right after connecting,
# and ``link`` after 30 s without traffic. Neither gets an answer.
#
# An ICCID is recognised as 20 ASCII hex digits starting with ``89`` (the
# telecom prefix of ITU-T E.118 that every SIM carries; ap3000.md: "in practice
# starting 8986"). Requiring the prefix keeps runs of hex digits in line noise
# from reading as ICCIDs. The stream decoder adds a boundary rule (see
# ``_decoder.py``); this module holds the items and the one-shot check.
from __future__ import annotations

from .._fastinit import frozen_dataclass

__all__ = ["ICCID_LENGTH", "LINK", "IccidAnnouncement", "LinkKeepAlive", "decode_non_frame",
           "is_iccid"]

#: The keep-alive text, ``6C 69 6E 6B``.
LINK = b"link"
#: Characters in an ICCID.
ICCID_LENGTH = 20
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def is_iccid(data: bytes) -> bool:
    """True when *data* is exactly an ICCID: 20 hex digits starting with ``89``."""
    return (len(data) == ICCID_LENGTH and data.startswith(b"89")
            and all(byte in _HEX_DIGITS for byte in data))


@frozen_dataclass
class IccidAnnouncement:
    """The SIM's ICCID, sent by an AP3000 unit's modem once after the TCP
    connection opens. Not a frame; no answer.

    Attributes:
        iccid: 20 ASCII hex digits, as sent (``"898604D9162390488297"``).

    .. versionadded:: 0.1.0
    """

    iccid: str

    def encode(self) -> bytes:
        """The bytes the modem sends.

        Raises:
            ValueError: :attr:`iccid` is not 20 hex digits starting with ``89``.
        """
        data = self.iccid.encode("ascii", "replace")
        if not is_iccid(data):
            raise ValueError(f"not an ICCID: {self.iccid!r}")
        return data


@frozen_dataclass
class LinkKeepAlive:
    """The modem's keep-alive ``link``, sent after 30 s without traffic. Not a frame; no answer.

    .. versionadded:: 0.1.0
    """

    def encode(self) -> bytes:
        """The bytes the modem sends: ``b"link"``."""
        return LINK


def decode_non_frame(data: bytes) -> IccidAnnouncement | LinkKeepAlive | None:
    """*data* as exactly one non-frame item, or None when it is not one."""
    if data == LINK:
        return LinkKeepAlive()
    if is_iccid(data):
        return IccidAnnouncement(iccid=data.decode("ascii"))
    return None
