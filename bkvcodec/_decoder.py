# The streaming decoder: TCP bytes in, whole frames out (bkv.md §2.7).
#
# TCP splits and merges frames at will, and devices on bad links send noise. The
# decoder keeps one buffer and a read position. It searches for a header, reads
# the declared length as soon as the four header bytes are in and refuses it
# right there if it exceeds ``max_frame_size`` (so a lying length cannot make it
# buffer), waits for the whole frame, then checks trailer and checksum and hands
# exactly one frame to the payload decoder. Every byte is examined a bounded
# number of times, and after each ``feed`` at most one incomplete frame (no more
# than ``max_frame_size`` bytes) stays buffered.
#
# A bad frame never stops the stream: it becomes a FrameRejected item and
# decoding resumes. When the trailer is missing the length cannot be trusted, so
# only one byte is dropped before searching again; when only the checksum or
# the payload is wrong, the whole declared frame is dropped.
from __future__ import annotations

from dataclasses import dataclass

from ._bkv.codec import BkvFrame, check_envelope, decode_checked
from ._bkv.grammar import ENVELOPE_OVERHEAD
from ._errors import (
    BadLength,
    BadTrailer,
    FrameError,
    FrameTooLong,
    LocalProtocolError,
    PayloadError,
    RemoteProtocolError,
)

__all__ = ["DecoderStatistics", "FrameDecoder", "FrameRejected", "IncompleteFrame"]

_MAGIC_LEAD = 0xFC
_MAGIC_SECOND = (0xFE, 0xFF)


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameRejected:
    """A frame the decoder found but could not accept.

    Attributes:
        error: Why: a :class:`FrameError` (the bytes are no valid frame) or a
            :class:`PayloadError` (valid envelope, invalid message). Never act
            on or acknowledge a rejected frame.
        data: The rejected bytes, as declared by the frame's length (at most
            ``max_frame_size`` bytes; the header alone when the length itself
            was refused).

    .. versionadded:: 0.1.0
    """

    error: RemoteProtocolError
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class IncompleteFrame:
    """The input ended inside a frame (returned by :meth:`FrameDecoder.end`).

    Attributes:
        data: The bytes of the unfinished frame.

    .. versionadded:: 0.1.0
    """

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DecoderStatistics:
    """Counters of a :class:`FrameDecoder`.

    Attributes:
        frames: Frames decoded.
        rejected: Frames rejected (:class:`FrameRejected` items returned).
        skipped_bytes: Bytes discarded while searching for a header.
        pending_bytes: Bytes buffered now, waiting for the rest of a frame.

    .. versionadded:: 0.1.0
    """

    frames: int
    rejected: int
    skipped_bytes: int
    pending_bytes: int


class FrameDecoder:
    """Reassembles BKV-family frames from a byte stream.

    Feed it whatever the socket returned; it returns every frame completed by
    those bytes, in order, and every frame it had to reject::

        decoder = FrameDecoder()
        for item in decoder.feed(chunk):
            if isinstance(item, BkvFrame):
                ...
            else:  # FrameRejected
                log(item.error.code)

    Args:
        max_frame_size: The largest frame accepted, in bytes. A header that
            declares more is rejected (:class:`FrameTooLong`) before anything is
            buffered. Real frames are below 200 bytes; a gateway with 250
            sockets could report about 26 KiB in one ``0x1017`` packet. The
            default, 32 KiB, admits that and bounds the memory one connection
            can hold to about the same.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, max_frame_size: int = 32 * 1024) -> None:
        if max_frame_size < ENVELOPE_OVERHEAD:
            raise LocalProtocolError(
                f"max_frame_size must be at least {ENVELOPE_OVERHEAD}, got {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._frames = 0
        self._rejected = 0
        self._skipped = 0
        self._ended = False

    def feed(self, data: bytes) -> list[BkvFrame | FrameRejected]:
        """Add *data* to the stream; return the frames (and rejections) it completes.

        Raises:
            LocalProtocolError: :meth:`end` was called before.
        """
        if self._ended:
            raise LocalProtocolError("feed() after end()")
        buffer = self._buffer
        buffer += data
        out: list[BkvFrame | FrameRejected] = []
        pos = 0
        size = len(buffer)
        while True:
            start = self._find_header(buffer, pos, size)
            self._skipped += start - pos
            pos = start
            if size - pos < 4:
                break
            total = ((buffer[pos + 2] << 8) | buffer[pos + 3]) + 4
            if total > self.max_frame_size or total < ENVELOPE_OVERHEAD:
                error: FrameError = (FrameTooLong(total, self.max_frame_size)
                                     if total >= ENVELOPE_OVERHEAD
                                     else BadLength(total - 4, ENVELOPE_OVERHEAD - 4))
                out.append(self._reject(error, bytes(buffer[pos:pos + 4])))
                pos += 1
                continue
            if size - pos < total:
                break
            frame = bytes(buffer[pos:pos + total])
            try:
                check_envelope(frame)
            except FrameError as err:
                out.append(self._reject(err, frame))
                pos += 1 if isinstance(err, BadTrailer) else total
                continue
            pos += total
            try:
                out.append(decode_checked(frame))
            except PayloadError as err:
                out.append(self._reject(err, frame))
                continue
            self._frames += 1
        del buffer[:pos]
        return out

    def end(self) -> list[IncompleteFrame]:
        """Mark the end of the stream; return the unfinished frame, if any.

        Skipped noise is not reported (see :meth:`statistics`). Later calls to
        :meth:`feed` raise :class:`LocalProtocolError`.
        """
        self._ended = True
        if bytes(self._buffer[:2]) in (b"\xfc\xfe", b"\xfc\xff"):
            return [IncompleteFrame(data=bytes(self._buffer))]
        return []

    def statistics(self) -> DecoderStatistics:
        """The decoder's counters."""
        return DecoderStatistics(frames=self._frames, rejected=self._rejected,
                                 skipped_bytes=self._skipped,
                                 pending_bytes=len(self._buffer))

    def _reject(self, error: RemoteProtocolError, data: bytes) -> FrameRejected:
        self._rejected += 1
        return FrameRejected(error=error, data=data)

    @staticmethod
    def _find_header(buffer: bytearray, pos: int, size: int) -> int:
        """The offset of the next header at or after *pos*; when there is none,
        *size*, or *size* - 1 if the last byte may begin one."""
        while True:
            found = buffer.find(_MAGIC_LEAD, pos)
            if found < 0:
                return size
            if found + 1 == size or buffer[found + 1] in _MAGIC_SECOND:
                return found
            pos = found + 1
