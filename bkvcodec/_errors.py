# The error tree of bkvcodec.
#
# Every failure the library reports is a BkvError. Protocol failures split by who
# erred: the caller (LocalProtocolError, e.g. a value that does not fit its wire
# field) or the device (RemoteProtocolError, e.g. a frame with a bad checksum).
# Remote errors split again into framing errors (the bytes are not a frame; a
# stream decoder resynchronises past them) and payload errors (the envelope is
# valid, the message inside it is not). Each leaf has a stable machine-readable
# ``code`` (the names used by the protocol references' malformed vectors) and
# carries the numbers that explain it.
#
# construct's own exceptions never cross the package boundary: the grammar layer
# converts them into one of these classes.
from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadLength",
    "BadMagic",
    "BadTrailer",
    "BkvError",
    "BkvItemInvalid",
    "BkvItemOverrun",
    "ChecksumMismatch",
    "FrameError",
    "FrameTooLong",
    "Incomplete",
    "InnerLengthMismatch",
    "LengthTooLarge",
    "LengthTooSmall",
    "LocalProtocolError",
    "NoHeader",
    "PayloadError",
    "PayloadInconsistent",
    "PayloadTooShort",
    "ProtocolError",
    "RemoteProtocolError",
    "TrailingBytes",
    "Truncated",
]


class BkvError(Exception):
    """Base class of every error raised by :mod:`bkvcodec`.

    Errors compare equal when they are of the same class with the same data,
    so that two decoders' rejections can be compared.

    Attributes:
        code: A stable snake_case name for the failure, fit for logs and
            metrics: the one the protocols' test vectors use for protocol
            errors (for example ``"checksum_mismatch"``), ``"signature_error"``
            for a :class:`~bkvcodec.SignatureError`. Every class of the tree
            has one, so ``except BkvError as err: err.code`` always works.
    """

    code: ClassVar[str] = "bkv_error"

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and self.args == other.args
                and vars(self) == vars(other))

    def __hash__(self) -> int:
        return hash((type(self), self.args))


class ProtocolError(BkvError):
    """A protocol rule was broken; never raised itself, only its two subclasses.

    Attributes:
        code: A stable snake_case name for the failure, the one used in the
            protocols' test vectors (for example ``"checksum_mismatch"``).
    """

    code: ClassVar[str] = "protocol_error"

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise a subclass")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol cannot express.

    Raised by encoders (a value that does not fit its field, a message sent in
    the wrong direction) and by connection objects used out of order.
    """

    code: ClassVar[str] = "local_protocol_error"


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol."""

    code: ClassVar[str] = "remote_protocol_error"


class FrameError(RemoteProtocolError):
    """The bytes do not form a valid frame (framing layer).

    A stream decoder reports the frame as rejected and resynchronises.
    """


class Truncated(FrameError):
    """The buffer ends before the frame its header declares.

    Attributes:
        needed: Bytes the frame needs in total (the size of an empty frame, 21
            for BKV, when not even the length field is in).
        available: Bytes present.
    """

    code: ClassVar[str] = "truncated"

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"frame needs {needed} bytes, {available} available")
        self.needed = needed
        self.available = available


class BadMagic(FrameError):
    """The buffer does not start with a frame header.

    Attributes:
        found: The bytes found where the header should be.
    """

    code: ClassVar[str] = "bad_magic"

    def __init__(self, found: bytes) -> None:
        super().__init__(f"no frame header at the start (found {found.hex()})")
        self.found = found


class BadLength(FrameError):
    """The declared length is impossible (smaller than an empty frame).

    Attributes:
        length: The value of the length field.
        minimum: The smallest legal value.
    """

    code: ClassVar[str] = "bad_length"

    def __init__(self, length: int, minimum: int) -> None:
        super().__init__(f"length field {length} is below the minimum {minimum}")
        self.length = length
        self.minimum = minimum


class FrameTooLong(FrameError):
    """The declared frame size exceeds the configured limit.

    Attributes:
        length: The frame size the header declares, in bytes.
        limit: The configured maximum frame size.
    """

    code: ClassVar[str] = "frame_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"declared frame size {length} exceeds the limit {limit}")
        self.length = length
        self.limit = limit


class BadTrailer(FrameError):
    """The bytes at the declared end of the frame are not the trailer.

    Attributes:
        found: The two bytes found at the trailer position.
    """

    code: ClassVar[str] = "bad_trailer"

    def __init__(self, found: bytes) -> None:
        super().__init__(f"no trailer at the declared end (found {found.hex()})")
        self.found = found


class ChecksumMismatch(FrameError):
    """The checksum in the frame differs from the one computed over its bytes.

    Attributes:
        expected: The checksum computed over the received bytes.
        actual: The checksum the frame carries.
    """

    code: ClassVar[str] = "checksum_mismatch"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"checksum mismatch: computed {expected:#x}, frame says {actual:#x}")
        self.expected = expected
        self.actual = actual


class TrailingBytes(FrameError):
    """A one-frame decode found bytes after the end of the frame.

    Attributes:
        frame_length: Size of the frame at the start of the buffer.
        available: Size of the buffer.
    """

    code: ClassVar[str] = "trailing_bytes"

    def __init__(self, frame_length: int, available: int) -> None:
        super().__init__(
            f"{available - frame_length} bytes follow the {frame_length}-byte frame")
        self.frame_length = frame_length
        self.available = available


class PayloadError(RemoteProtocolError):
    """The envelope is valid but the message it carries is not."""


class BkvItemOverrun(PayloadError):
    """A BKV item declares more bytes than its container has left.

    Attributes:
        offset: Offset of the item within its container.
        declared: Bytes the item's LEN field covers.
        remaining: Bytes left in the container after the LEN field.
    """

    code: ClassVar[str] = "bkv_item_overrun"

    def __init__(self, offset: int, declared: int, remaining: int) -> None:
        super().__init__(
            f"BKV item at offset {offset} declares {declared} bytes, {remaining} remain")
        self.offset = offset
        self.declared = declared
        self.remaining = remaining


class BkvItemInvalid(PayloadError):
    """A BKV item is malformed in itself (LEN of 0, a key longer than the item,
    a LEN field longer than four bytes, a text key that is not ASCII).

    Attributes:
        offset: Offset of the item within its container.
        reason: What is wrong, in words.
    """

    code: ClassVar[str] = "bkv_item_invalid"

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"BKV item at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class InnerLengthMismatch(PayloadError):
    """A GN container's inner length disagrees with its payload size.

    Attributes:
        declared: The inner length field.
        actual: Parameter bytes present (payload size minus 3).
    """

    code: ClassVar[str] = "inner_length_mismatch"

    def __init__(self, declared: int, actual: int) -> None:
        super().__init__(f"inner length says {declared} bytes, {actual} present")
        self.declared = declared
        self.actual = actual


class PayloadTooShort(PayloadError):
    """A message lacks mandatory bytes.

    Attributes:
        message: The message name.
        needed: Bytes the mandatory fields take.
        available: Bytes present.
    """

    code: ClassVar[str] = "payload_too_short"

    def __init__(self, message: str, needed: int, available: int) -> None:
        super().__init__(f"{message} needs {needed} payload bytes, {available} present")
        self.message = message
        self.needed = needed
        self.available = available


class PayloadInconsistent(PayloadError):
    """A message's fields contradict each other (a count that does not match
    the data that follows, a fixed-size field of the wrong size).

    Attributes:
        message: The message name.
        reason: What is inconsistent, in words.
    """

    code: ClassVar[str] = "payload_inconsistent"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(f"{message}: {reason}")
        self.message = message
        self.reason = reason


# --- AP3000 ("DNY") framing errors (ap3000.md §2.7) ----------------------------------
# The AP3000 reference names its framing faults differently from BKV. Each one is a
# subclass of the BKV error that means the same thing, with the same attributes (and
# so the same names in the JSON form), so that ``except Truncated`` (and so on)
# catches both families, but carries the AP3000 ``code``. LengthTooLarge has no BKV
# parent (BKV's length field has no protocol limit) but FrameTooLong's attributes.


class NoHeader(BadMagic):
    """An AP3000 frame does not start with ``DNY`` (``no_header``).

    Attributes:
        found: The bytes found where ``DNY`` should be (at most three).

    .. versionadded:: 0.1.0
    """

    code: ClassVar[str] = "no_header"


class LengthTooSmall(BadLength):
    """An AP3000 length field below 9, the size of an empty frame's body
    (``length_too_small``).

    Attributes:
        length: The value of the length field.
        minimum: The smallest legal value (9).

    .. versionadded:: 0.1.0
    """

    code: ClassVar[str] = "length_too_small"


class LengthTooLarge(FrameError):
    """An AP3000 length field above the protocol limit of 1024
    (``length_too_large``).

    Attributes:
        length: The value of the length field.
        limit: The largest legal value (1024).

    .. versionadded:: 0.1.0
    """

    code: ClassVar[str] = "length_too_large"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"length field {length} is above the limit {limit}")
        self.length = length
        self.limit = limit


class Incomplete(Truncated):
    """The input ends before the AP3000 frame its header declares
    (``incomplete``).

    Attributes:
        needed: Bytes the frame needs in total (length + 5; 14 when even the
            length field is missing).
        available: Bytes present.

    .. versionadded:: 0.1.0
    """

    code: ClassVar[str] = "incomplete"
