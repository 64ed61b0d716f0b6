# The streaming decoder: TCP bytes in, whole frames out, for every protocol
# family the library knows (bkv.md §2.7, ap3000.md §2.7).
#
# One decoder serves a connection whatever speaks on it. It searches the stream
# for anything it recognises: a BKV header (``fc fe`` / ``fc ff``), an AP3000
# header (``DNY``), or one of the AP3000 modem's plain-text items (``link``, and
# an ICCID: 20 hex digits starting with ``89`` that begin at a boundary, i.e.
# not in the middle of a longer run of hex digits). Bytes that match nothing are
# skipped.
#
# Identification. The first frame that passes its framing checks identifies the
# connection's protocol (:attr:`bkvcodec.FrameDecoder.protocol`), unless the caller named
# it up front. Valid frames of either family are always decoded, so a mixed
# stream, or a capture that starts in the middle, decodes correctly. What only
# noise can produce is attributed to a family and reported only while it fits:
# rejected headers and modem items of the other family are skipped silently once
# the protocol is known. Before that, BKV rejections are reported at once (the
# behaviour BKV callers rely on) while AP3000 rejections and modem items are held
# until an AP3000 frame confirms the protocol (then they are reported, in order,
# before that frame) or a BKV frame rules it out (then they are skipped). A
# connection that has consumed ``identify_limit`` bytes without identifying
# anything is reported once with an UnidentifiedStream item, and nothing more is
# held for it.
#
# Buffering. The decoder keeps one buffer and a read position. As soon as a
# header's length field is in, the length is checked against the protocol's
# rules and ``max_frame_size`` and refused right there (so a lying length cannot
# make it buffer); then it waits for the whole frame, checks trailer and
# checksum, and hands exactly one frame to the payload decoder. Between frames at
# most a possible start of something is kept: ``fc``, ``D``/``DN``,
# ``l``/``li``/``lin`` or up to 21 bytes of a would-be ICCID. Every byte is
# examined a bounded number of times, and after each ``feed`` at most one
# incomplete frame (no more than ``max_frame_size`` bytes) stays buffered.
#
# A header of a family other than the connection's protocol (before
# identification: of either family) is taken for noise, and its first byte
# skipped, when a valid frame of the other family lies inside the frame it
# declares. Without this, modem noise such as ``fc ff 7f 00`` at the start of an
# AP3000 connection would hold every frame that follows until 32 KiB arrived.
# The rule looks only inside the declared frame, so the decision does not depend
# on how the stream was split into reads; what was searched while waiting for a
# long frame is remembered, so the search stays linear.
#
# A bad frame never stops the stream: it becomes a FrameRejected item and
# decoding resumes. When the length cannot be trusted (a BKV frame without its
# trailer; any AP3000 frame whose checksum fails, ap3000.md §2.7 step 4) only
# one byte is dropped before searching again; when the frame is sound but its
# checksum (BKV) or payload is wrong, the whole declared frame is dropped.
from __future__ import annotations

import re
from typing import TypeAlias

from ._ap3000.codec import Ap3000Frame, checksum, decode_checked
from ._ap3000.grammar import MAX_LENGTH, MIN_LENGTH
from ._ap3000.nonframe import ICCID_LENGTH, IccidAnnouncement, LinkKeepAlive, decode_non_frame
from ._bkv.codec import BkvFrame, check_envelope
from ._bkv.codec import decode_checked as bkv_decode_checked
from ._bkv.grammar import ENVELOPE_OVERHEAD
from ._errors import (
    BadLength,
    BadMagic,
    BadTrailer,
    ChecksumMismatch,
    FrameError,
    FrameTooLong,
    LengthTooLarge,
    LengthTooSmall,
    LocalProtocolError,
    PayloadError,
    RemoteProtocolError,
)
from ._events import Event
from ._fastinit import frozen_dataclass
from ._types import Direction, ProtocolFamily

__all__ = ["DecoderStatistics", "FrameDecoder", "FrameRejected", "IncompleteFrame",
           "StreamItem", "UnidentifiedStream"]

# Anything the decoder recognises; a match of the last branch is an ICCID only at
# a boundary (checked in code).
_START = re.compile(rb"\xfc[\xfe\xff]|DNY|link|89[0-9A-Fa-f]{18}")
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
_BKV_SECOND = (0xFE, 0xFF)
_D, _N, _Y, _L = 0x44, 0x4E, 0x59, 0x6C
_HEAD_KEPT = 32
#: What _search returns for a frame header.
_HEADER = object()
_BKV = ProtocolFamily.BKV
_AP3000 = ProtocolFamily.AP3000


Frame: TypeAlias = BkvFrame | Ap3000Frame | IccidAnnouncement | LinkKeepAlive
"""One decoded frame of either protocol, or one of the AP3000 modem's text items."""


def decode(data: bytes, direction: Direction | None = None) -> Frame:
    """Decode one captured frame of either protocol.

    For a whole TCP stream, split and merged reads and garbage, use
    :class:`FrameDecoder` instead.

    Args:
        data: Exactly one frame: a BKV frame (``fcfe``/``fcff``), an AP3000 ``DNY``
            frame, or an AP3000 modem's ICCID or ``link`` text.
        direction: Which way an AP3000 frame travelled (a request and its reply
            share the command byte); :attr:`bkvcodec.Direction.UP` when None. BKV frames
            carry their direction in their magic.

    Raises:
        FrameError: *data* is not one well-formed frame (:class:`~bkvcodec.errors.BadMagic` when
            it starts like neither protocol).
        PayloadError: The envelope is valid but its payload is not.

    .. versionadded:: 0.1.0
    """
    if data[:2] in (b"\xfc\xfe", b"\xfc\xff"):
        return BkvFrame.decode(data)
    if data[:3] == b"DNY":
        return Ap3000Frame.decode(data, direction or Direction.UP)
    item = decode_non_frame(data)
    if item is None:
        raise BadMagic(data[:3])
    return item


def encode(frame: Frame) -> bytes:
    """The bytes of *frame* (the inverse of :func:`decode`).

    Raises:
        LocalProtocolError: A value does not fit its field.

    .. versionadded:: 0.1.0
    """
    return frame.encode()


@frozen_dataclass
class FrameRejected(Event):
    """A frame the decoder found but could not accept.

    Attributes:
        phy_id: Always None: nothing in a rejected frame is trusted.
        error: Why: a :class:`~bkvcodec.errors.FrameError` (the bytes are no valid frame) or a
            :class:`~bkvcodec.errors.PayloadError` (valid envelope, invalid message). Never act
            on or acknowledge a rejected frame.
        data: The rejected bytes, as declared by the frame's length (at most
            ``max_frame_size`` bytes; the header alone when the length itself
            was refused).

    .. versionadded:: 0.1.0
    """

    phy_id: None = None
    error: RemoteProtocolError
    data: bytes


@frozen_dataclass
class IncompleteFrame:
    """The input ended inside a frame (returned by :meth:`bkvcodec.FrameDecoder.end`).

    Attributes:
        data: The bytes of the unfinished frame.

    .. versionadded:: 0.1.0
    """

    data: bytes


@frozen_dataclass
class UnidentifiedStream(Event):
    """The connection has sent ``identify_limit`` bytes (see :class:`FrameDecoder`)
    without a single frame or modem item of any known protocol. Reported once;
    decoding goes on, and the peer is probably not a charging device (a port
    scanner, a TLS client, a device of an unknown protocol).

    Attributes:
        phy_id: Always None: no frame named a device.
        examined: Bytes consumed without a valid frame: the decoder's
            ``identify_limit`` (the report is made when the limit is reached,
            wherever the reads happened to end).
        head: The first bytes of the connection (at most 32), for the log.

    .. versionadded:: 0.1.0
    """

    phy_id: None = None
    examined: int
    head: bytes


StreamItem: TypeAlias = (
    BkvFrame | Ap3000Frame | IccidAnnouncement | LinkKeepAlive | FrameRejected
    | UnidentifiedStream
)
"""Everything :meth:`bkvcodec.FrameDecoder.feed` returns."""


@frozen_dataclass
class DecoderStatistics:
    """Counters of a :class:`FrameDecoder`.

    Attributes:
        frames: Frames decoded (both families).
        rejected: Frames rejected (:class:`FrameRejected` items returned).
        skipped_bytes: Bytes discarded while searching for a header.
        pending_bytes: Bytes buffered now, waiting for the rest of a frame.
        non_frame_items: AP3000 modem items decoded (ICCID, ``link``).
        protocol: The protocol identified, or None (:attr:`bkvcodec.FrameDecoder.protocol`).

    .. versionadded:: 0.1.0
    """

    frames: int
    rejected: int
    skipped_bytes: int
    pending_bytes: int
    non_frame_items: int = 0
    protocol: ProtocolFamily | None = None


def _ap3000_frame_in(buffer: bytearray, start: int, end: int) -> bool:
    """Whether a whole AP3000 frame with a valid checksum lies in buffer[start:end]."""
    found = buffer.find(b"DNY", start, end)
    while found >= 0:
        if found + 5 <= end:
            length = buffer[found + 3] | buffer[found + 4] << 8
            stop = found + length + 5
            if MIN_LENGTH <= length <= MAX_LENGTH and stop <= end:
                frame = bytes(buffer[found:stop])
                if checksum(frame, stop - found - 2) == frame[-2] | frame[-1] << 8:
                    return True
        found = buffer.find(b"DNY", found + 1, end)
    return False


def _bkv_frame_in(buffer: bytearray, start: int, end: int, limit: int) -> bool:
    """Whether a whole BKV frame with a valid trailer and checksum lies in
    buffer[start:end]."""
    found = buffer.find(0xFC, start, end)
    while found >= 0:
        if found + 4 <= end and buffer[found + 1] in _BKV_SECOND:
            stop = found + ((buffer[found + 2] << 8) | buffer[found + 3]) + 4
            if ENVELOPE_OVERHEAD <= stop - found <= limit and stop <= end:
                try:
                    check_envelope(bytes(buffer[found:stop]))
                except FrameError:
                    pass
                else:
                    return True
        found = buffer.find(0xFC, found + 1, end)
    return False


class FrameDecoder:
    """Reassembles frames from a byte stream, recognising the protocol.

    Feed it whatever the socket returned; it returns every item completed by
    those bytes, in order: :class:`~bkvcodec.bkv.BkvFrame` and
    :class:`~bkvcodec.ap3000.Ap3000Frame` objects, the AP3000 modem's
    :class:`~bkvcodec.ap3000.IccidAnnouncement` and :class:`~bkvcodec.ap3000.LinkKeepAlive`,
    a :class:`FrameRejected` for every frame it had to refuse, and (once) an
    :class:`UnidentifiedStream` if nothing known shows up::

        decoder = FrameDecoder()
        for item in decoder.feed(chunk):
            if isinstance(item, BkvFrame | Ap3000Frame):
                ...
            elif isinstance(item, FrameRejected):
                log(item.error.code)

    Args:
        max_frame_size: The largest frame accepted, in bytes. A header that
            declares more is rejected (:class:`~bkvcodec.errors.FrameTooLong`) before anything is
            buffered. Real frames are below 200 bytes; a gateway with 250
            sockets could report about 26 KiB in one ``0x1017`` packet. The
            default, 32 KiB, admits that and bounds the memory one connection
            can hold to about the same. AP3000 frames are limited to 1029 bytes
            by their own rule (:class:`~bkvcodec.errors.LengthTooLarge`).
        direction: Which way the AP3000 frames on this stream travel; it selects
            their data layouts (AP3000 frames do not say). The default,
            :attr:`bkvcodec.Direction.UP`, is a server reading what devices send. BKV
            frames carry their direction and ignore it.
        protocol: The protocol the connection is expected to speak, or None
            (the default) to identify it from the first valid frame. Naming it
            reports that family's rejections and modem items (the ICCID an
            AP3000 modem sends first) at once instead of holding them until the
            first frame confirms the protocol.
        identify_limit: Bytes the connection may send without one valid frame
            before an :class:`UnidentifiedStream` is reported. Devices send a
            frame within their first few dozen bytes; the default, 1024, leaves
            room for modem noise.

    Raises:
        LocalProtocolError: *max_frame_size* is below the smallest BKV frame (21),
            or *identify_limit* is not positive.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, max_frame_size: int = 32 * 1024,
                 direction: Direction = Direction.UP, protocol: ProtocolFamily | None = None,
                 identify_limit: int = 1024) -> None:
        if max_frame_size < ENVELOPE_OVERHEAD:
            raise LocalProtocolError(
                f"max_frame_size must be at least {ENVELOPE_OVERHEAD}, got {max_frame_size}")
        if identify_limit < 1:
            raise LocalProtocolError(f"identify_limit must be positive, got {identify_limit}")
        self.max_frame_size = max_frame_size
        self.direction = direction
        self.identify_limit = identify_limit
        self._buffer = bytearray()
        self._frames = 0
        self._rejected = 0
        self._skipped = 0
        self._items = 0
        self._ended = False
        self._protocol: ProtocolFamily | None = protocol
        self._pending: list[tuple[FrameRejected | IccidAnnouncement | LinkKeepAlive, int]] = []
        self._unidentified = 0
        self._reported = False
        self._head = b""
        self._consumed = 0  # bytes deleted from the front of the buffer so far
        self._searched = (-1, 0)  # (stream offset of a BKV header, searched up to)

    @property
    def protocol(self) -> ProtocolFamily | None:
        """The connection's protocol, the one named to the constructor or else that
        of the first valid frame; None until then."""
        return self._protocol

    def feed(self, data: bytes) -> list[StreamItem]:
        """Add *data* to the stream; return the items it completes.

        Args:
            data: The next bytes of the stream, as the socket returned them.

        Returns:
            The frames, modem items and rejections completed by *data*, in
            stream order.

        Raises:
            LocalProtocolError: :meth:`end` was called before.
        """
        if self._ended:
            raise LocalProtocolError("feed() after end()")
        if len(self._head) < _HEAD_KEPT:
            self._head += bytes(data[:_HEAD_KEPT - len(self._head)])
        buffer = self._buffer
        buffer += data
        out: list[StreamItem] = []
        pos = 0
        size = len(buffer)
        while pos < size:
            lead = buffer[pos]
            if lead == _D and buffer[pos + 1:pos + 3] == b"NY":
                step = self._ap3000(buffer, pos, size, out)
            elif lead == 0xFC and pos + 1 < size and buffer[pos + 1] in _BKV_SECOND:
                step = self._bkv(buffer, pos, size, out)
            else:
                start, found = self._search(buffer, pos, size)
                if start > pos:
                    self._skip(start - pos, out)
                    pos = start
                if found is None:  # nothing complete: wait for more bytes
                    break
                if found is _HEADER:  # a frame header at the new position
                    continue
                step = self._item(found, out)
            if step == 0:
                break
            pos += step
        del buffer[:pos]
        self._consumed += pos
        return out

    def end(self) -> list[IncompleteFrame]:
        """Mark the end of the stream; return the unfinished frame, if any.

        Skipped noise is not reported (see :meth:`statistics`). Later calls to
        :meth:`feed` raise :class:`LocalProtocolError`.

        Returns:
            An :class:`IncompleteFrame` when the stream ended inside a frame.
        """
        self._ended = True
        head = bytes(self._buffer[:3])
        if head[:2] in (b"\xfc\xfe", b"\xfc\xff") or head == b"DNY":
            return [IncompleteFrame(data=bytes(self._buffer))]
        return []

    def statistics(self) -> DecoderStatistics:
        """The decoder's counters.

        Returns:
            A snapshot of the counters.
        """
        return DecoderStatistics(frames=self._frames, rejected=self._rejected,
                                 skipped_bytes=self._skipped,
                                 pending_bytes=len(self._buffer),
                                 non_frame_items=self._items, protocol=self._protocol)

    # --- one step each: return the bytes consumed, or 0 to wait for more ----------------

    def _bkv(self, buffer: bytearray, pos: int, size: int, out: list[StreamItem]) -> int:
        if size - pos < 4:
            return 0
        total = ((buffer[pos + 2] << 8) | buffer[pos + 3]) + 4
        if total > self.max_frame_size or total < ENVELOPE_OVERHEAD:
            error: FrameError = (FrameTooLong(total, self.max_frame_size)
                                 if total >= ENVELOPE_OVERHEAD
                                 else BadLength(total - 4, ENVELOPE_OVERHEAD - 4))
            return self._reject(_BKV, error, bytes(buffer[pos:pos + 4]), 1, out)
        if self._protocol is not _BKV and self._ap3000_frame_inside(buffer, pos, total, size):
            self._skip(1, out)  # noise: a valid AP3000 frame lies inside
            return 1
        if size - pos < total:
            return 0
        frame = bytes(buffer[pos:pos + total])
        try:
            check_envelope(frame)
        except FrameError as err:
            step = 1 if isinstance(err, BadTrailer) else total
            return self._reject(_BKV, err, frame, step, out)
        self._identified(_BKV, out)
        try:
            out.append(bkv_decode_checked(frame))
        except PayloadError as err:
            self._rejected += 1
            out.append(FrameRejected(error=err, data=frame))
            return total
        self._frames += 1
        return total

    def _ap3000_frame_inside(self, buffer: bytearray, pos: int, total: int, size: int) -> bool:
        """Whether a valid AP3000 frame lies inside the BKV frame declared at *pos*.

        A BKV frame may declare up to ``max_frame_size`` bytes and be waited for
        over many reads, so the part already searched is remembered: a frame found
        later can only start within the last 1029 bytes searched.
        """
        start = pos + 1
        here = self._consumed + pos
        if self._searched[0] == here:
            start = max(start, self._searched[1] - self._consumed - (MAX_LENGTH + 5))
        end = min(size, pos + total)
        self._searched = (here, self._consumed + end)
        return _ap3000_frame_in(buffer, start, end)

    def _ap3000(self, buffer: bytearray, pos: int, size: int, out: list[StreamItem]) -> int:
        if size - pos < 5:
            return 0
        length = buffer[pos + 3] | buffer[pos + 4] << 8
        total = length + 5
        error: FrameError | None = None
        if length < MIN_LENGTH:
            error = LengthTooSmall(length, MIN_LENGTH)
        elif length > MAX_LENGTH:
            error = LengthTooLarge(length, MAX_LENGTH)
        elif total > self.max_frame_size:
            error = FrameTooLong(total, self.max_frame_size)
        if error is not None:
            return self._reject(_AP3000, error, bytes(buffer[pos:pos + 5]), 1, out)
        if self._protocol is not _AP3000 and _bkv_frame_in(buffer, pos + 1, min(size, pos + total),
                                                           self.max_frame_size):
            self._skip(1, out)  # noise: a valid BKV frame lies inside
            return 1
        if size - pos < total:
            return 0
        frame = bytes(buffer[pos:pos + total])
        expected = checksum(frame, total - 2)
        actual = frame[total - 2] | frame[total - 1] << 8
        if expected != actual:
            # The length may be what is corrupt: drop one byte (ap3000.md §2.7 step 4).
            return self._reject(_AP3000, ChecksumMismatch(expected, actual), frame, 1, out)
        self._identified(_AP3000, out)
        try:
            out.append(decode_checked(frame, total, self.direction))
        except PayloadError as err:
            self._rejected += 1
            out.append(FrameRejected(error=err, data=frame))
            return total
        self._frames += 1
        return total

    def _search(self, buffer: bytearray, pos: int,
                size: int) -> tuple[int, IccidAnnouncement | LinkKeepAlive | object | None]:
        """Find the next thing that starts at or after *pos*.

        Returns (start, found): a frame header at *start* (found is _HEADER), a
        modem item there (found is the item), or the earliest byte that may begin
        something once more data comes (found is None; *start* is *size* when
        nothing may). Bytes before *start* are skipped by the caller.
        """
        search_from = pos
        while True:
            match = _START.search(buffer, search_from)
            if match is None:
                return self._tail(buffer, pos, size), None
            start = match.start()
            lead = buffer[start]
            if lead == _L:
                return start, LinkKeepAlive()
            if lead != 0x38:
                return start, _HEADER
            # An ICCID candidate: it must begin a run of hex digits, and its last
            # digit must not be the D of a DNY header that follows.
            if start > pos and buffer[start - 1] in _HEX_DIGITS:
                search_from = start + 1
                continue
            end = start + ICCID_LENGTH
            if buffer[end - 1] == _D:
                if size - end < 2 and buffer[end:size] == b"NY"[:size - end]:
                    return start, None
                if buffer[end:end + 2] == b"NY":
                    search_from = start + 1
                    continue
            return start, IccidAnnouncement(iccid=bytes(buffer[start:end]).decode("ascii"))

    def _item(self, item: object, out: list[StreamItem]) -> int:
        assert isinstance(item, IccidAnnouncement | LinkKeepAlive)
        size = len(item.encode())
        self._report(_AP3000, item, size, out)
        return size

    @staticmethod
    def _tail(buffer: bytearray, pos: int, size: int) -> int:
        """The earliest offset from which the end of the buffer may still become
        something: a header, ``link`` or an ICCID; *size* when none."""
        keep = size
        last = buffer[size - 1]
        if last == 0xFC or last == _D or last == _L:
            keep = size - 1
        if size - pos >= 2:
            pair = bytes(buffer[size - 2:size])
            if pair in (b"DN", b"li"):
                keep = size - 2
        if size - pos >= 3 and buffer[size - 3:size] == b"lin":
            keep = size - 3
        run = size
        while run > pos and run > size - ICCID_LENGTH and buffer[run - 1] in _HEX_DIGITS:
            run -= 1
        if (run < size and (run == pos or buffer[run - 1] not in _HEX_DIGITS)
                and b"89".startswith(bytes(buffer[run:run + 2]))):
            keep = min(keep, run)
        return keep

    def _identified(self, protocol: ProtocolFamily, out: list[StreamItem]) -> None:
        """A valid frame of *protocol* arrived: identify the connection by it and
        settle what was held for AP3000."""
        if self._protocol is not None:
            return
        self._protocol = protocol
        pending, self._pending = self._pending, []
        for item, size in pending:
            if protocol is _AP3000:
                self._emit(item, out)
            else:
                self._skipped += size

    def _report(self, family: ProtocolFamily,
                item: FrameRejected | IccidAnnouncement | LinkKeepAlive, size: int,
                out: list[StreamItem]) -> None:
        """Report *item*, which only *family* can produce and which consumed *size*
        bytes: now, later (held) or never (skipped), see the header comment."""
        if self._protocol is family or (self._protocol is None and family is _BKV):
            self._emit(item, out)
        elif self._protocol is None and not self._reported:
            self._pending.append((item, size))
        else:
            self._skipped += size
        self._dropped(size, out)

    def _emit(self, item: FrameRejected | IccidAnnouncement | LinkKeepAlive,
              out: list[StreamItem]) -> None:
        if isinstance(item, FrameRejected):
            self._rejected += 1
        else:
            self._items += 1
        out.append(item)

    def _skip(self, count: int, out: list[StreamItem]) -> None:
        self._skipped += count
        self._dropped(count, out)

    def _dropped(self, count: int, out: list[StreamItem]) -> None:
        """*count* bytes were consumed without a valid frame."""
        if self._protocol is not None or self._reported:
            return
        self._unidentified += count
        if self._unidentified >= self.identify_limit:
            self._reported = True
            out.append(UnidentifiedStream(examined=self.identify_limit, head=self._head))
            self._skipped += sum(size for _, size in self._pending)
            self._pending = []

    def _reject(self, family: ProtocolFamily, error: RemoteProtocolError, data: bytes,
                step: int, out: list[StreamItem]) -> int:
        self._report(family, FrameRejected(error=error, data=data), step, out)
        return step
