"""Every exception :mod:`bkvcodec` raises.

The base classes are also importable from :mod:`bkvcodec`; the leaves, which
carry the data of each failure (``ChecksumMismatch(expected, actual)`` …), live
here. Every error has a stable snake_case ``code``.

.. versionadded:: 0.1.0
"""
from __future__ import annotations

from ._errors import (
    BadLength,
    BadMagic,
    BadTrailer,
    BkvError,
    BkvItemInvalid,
    BkvItemOverrun,
    ChecksumMismatch,
    FrameError,
    FrameTooLong,
    Incomplete,
    InnerLengthMismatch,
    LengthTooLarge,
    LengthTooSmall,
    LocalProtocolError,
    NoHeader,
    PayloadError,
    PayloadInconsistent,
    PayloadTooShort,
    ProtocolError,
    RemoteProtocolError,
    TrailingBytes,
    Truncated,
)
from ._signing import SignatureError

__all__ = [
    "BadLength", "BadMagic", "BadTrailer", "BkvError", "BkvItemInvalid", "BkvItemOverrun",
    "ChecksumMismatch", "FrameError", "FrameTooLong", "Incomplete", "InnerLengthMismatch",
    "LengthTooLarge", "LengthTooSmall", "LocalProtocolError", "NoHeader", "PayloadError",
    "PayloadInconsistent", "PayloadTooShort", "ProtocolError", "RemoteProtocolError",
    "SignatureError", "TrailingBytes", "Truncated",
]
