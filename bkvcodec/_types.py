# Value types shared by every protocol family: which way a frame travels and the
# two date-time encodings devices put on the wire. They keep the wire value
# exactly (a device clock may send impossible dates; a codec that refused them
# would lose the frame they arrive in) and convert on request.
from __future__ import annotations

import datetime
import enum

from ._fastinit import frozen_record

__all__ = ["BcdTime", "BinaryTime", "Direction", "ProtocolFamily"]


class Direction(enum.Enum):
    """Which way a frame travels."""

    #: Device (gateway) to server.
    UP = "up"
    #: Server to device (gateway).
    DOWN = "down"


def _to_datetime(parts: tuple[int, int, int, int, int, int],
                 tzinfo: datetime.tzinfo | None) -> datetime.datetime:
    year, month, day, hour, minute, second = parts
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=tzinfo)


@frozen_record
class BcdTime:
    """A 7-byte BCD date-time ``YY YY MM DD hh mm ss`` (BKV heartbeat reply,
    tags ``0x06`` and ``0x2E``).

    ``str()`` gives the 14 hex digits of the wire bytes, which for a valid
    value read ``YYYYMMDDhhmmss``.

    Attributes:
        raw: The 7 wire bytes.

    .. versionadded:: 0.1.0
    """

    raw: bytes

    @classmethod
    def from_datetime(cls, value: datetime.datetime) -> BcdTime:
        """Encode the wall-clock fields of *value* (its time zone is not converted)."""
        digits = value.strftime("%Y%m%d%H%M%S")
        return cls(bytes.fromhex(digits))

    def to_datetime(self, tzinfo: datetime.tzinfo | None = None) -> datetime.datetime:
        """The value as a :class:`datetime.datetime` in *tzinfo*.

        Raises:
            ValueError: The bytes are not BCD or not a real date.
        """
        text = self.raw.hex()
        if len(self.raw) != 7 or not text.isdigit():
            raise ValueError(f"not a 7-byte BCD date-time: {text}")
        return _to_datetime(
            (int(text[0:4]), int(text[4:6]), int(text[6:8]),
             int(text[8:10]), int(text[10:12]), int(text[12:14])), tzinfo)

    def __str__(self) -> str:
        return self.raw.hex()

    def __repr__(self) -> str:
        """``BcdTime(2025-10-20 14:00:35)``: the wire digits as a date and time (even
        an impossible one); bytes that are not 7 BCD bytes as ``raw=bytes.fromhex(…)``."""
        text = self.raw.hex()
        if len(self.raw) != 7 or not text.isdigit():
            return f"BcdTime(raw=bytes.fromhex({text!r}))"
        return (f"BcdTime({text[0:4]}-{text[4:6]}-{text[6:8]} "
                f"{text[8:10]}:{text[10:12]}:{text[12:14]})")


@frozen_record
class BinaryTime:
    """A binary date-time: u16 year then month, day, hour, minute, second as
    bytes (the GN ``0x18`` end time).

    ``str()`` gives ``YYYYMMDDhhmmss``.

    .. versionadded:: 0.1.0
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int

    @classmethod
    def from_datetime(cls, value: datetime.datetime) -> BinaryTime:
        """Take the wall-clock fields of *value* (its time zone is not converted)."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)

    def to_datetime(self, tzinfo: datetime.tzinfo | None = None) -> datetime.datetime:
        """The value as a :class:`datetime.datetime` in *tzinfo*.

        Raises:
            ValueError: The fields are not a real date.
        """
        return _to_datetime(
            (self.year, self.month, self.day, self.hour, self.minute, self.second), tzinfo)

    def __str__(self) -> str:
        return (f"{self.year:04d}{self.month:02d}{self.day:02d}"
                f"{self.hour:02d}{self.minute:02d}{self.second:02d}")


class ProtocolFamily(enum.Enum):
    """A protocol family the stream decoder recognises (see
    :attr:`FrameDecoder.protocol <bkvcodec.FrameDecoder.protocol>`).

    .. versionadded:: 0.1.0
    """

    #: The BKV gateway protocol with its GN sub-protocol (``fc fe`` / ``fc ff`` frames).
    BKV = "bkv"
    #: The AP3000 device protocol (``DNY`` frames, the modem's ICCID and ``link``).
    AP3000 = "ap3000"


#: The time zone BKV devices keep (UTC+8), the default for time replies.
CHINA_STANDARD_TIME = datetime.timezone(datetime.timedelta(hours=8), "CST")
