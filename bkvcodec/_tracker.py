# Command bookkeeping shared by every protocol: message ids, one command in
# flight per device, minimum spacing between commands on a connection,
# retransmission with the same message id, and the final outcome of each
# command. Protocol rules (ap3000.md §7.2, bkv.md §10) are data: a
# CommandTiming per protocol. Sans-IO like everything else: time is passed in,
# bytes come out.
from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

from ._errors import LocalProtocolError

K = TypeVar("K")
V = TypeVar("V")

#: Card requests a connection keeps waiting for an answer; a device that swipes
#: faster than the application answers loses its oldest requests (it times out and
#: the holder swipes again), never the connection's memory.
MAX_PENDING_CARDS = 64


def remember(table: dict[K, V], key: K, value: V, limit: int = MAX_PENDING_CARDS) -> None:
    """Put *key* in *table*, forgetting the oldest entries beyond *limit*."""
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]

__all__ = ["MAX_PENDING_CARDS", "CommandTiming", "CommandTracker", "InFlight", "MessageIds",
           "remember"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandTiming:
    """How a connection paces and retries the commands it sends.

    Attributes:
        reply_timeout_s: Wait this long for a reply before retransmitting.
        max_retransmissions: Retransmissions of an unanswered command, with
            the same message id; after the last one times out the command has
            timed out.
        min_spacing_s: Minimum gap between two commands on one connection.
            Replies to the device's own frames are not subject to it.

    .. versionadded:: 0.1.0
    """

    reply_timeout_s: float = 15.0
    max_retransmissions: int = 1
    min_spacing_s: float = 0.5


@dataclass(slots=True)
class InFlight:
    """A command written to the device and awaiting its reply."""

    command_id: str
    phy_id: str
    key: Hashable
    data: bytes
    attempts: int
    deadline: float
    timing: CommandTiming


@dataclass(slots=True)
class _Queued:
    command_id: str
    phy_id: str
    #: None for a command the protocol never answers: done once written.
    key: Hashable | None
    data: bytes
    timing: CommandTiming


class CommandTracker:
    """Queues, paces, retransmits and resolves commands for one connection."""

    def __init__(self, timing: CommandTiming) -> None:
        self.timing = timing
        self._queue: deque[_Queued] = deque()
        self._in_flight: dict[str, InFlight] = {}
        self._written_unanswered: list[InFlight] = []
        self._last_write: float | None = None

    def submit(self, command_id: str, phy_id: str, key: Hashable | None, data: bytes,
               now: float, timing: CommandTiming | None = None) -> bytes:
        """Queue a command; return the bytes that may be written now.

        *key* identifies the device's reply; None for a command the protocol never
        answers, which is done once written (see :meth:`take_written_unanswered`).
        *timing* overrides the connection's reply timeout and retransmissions
        for this command (AP3000 firmware packets wait 30 s and are resent 3 times).
        """
        self._queue.append(_Queued(command_id, phy_id, key, data, timing or self.timing))
        return self._pump(now)

    def resolve(self, key: Hashable, now: float) -> tuple[InFlight | None, bytes]:
        """The in-flight command a reply with *key* answers (or None), and the bytes
        of the next command that may go now that it is done."""
        for phy_id, pending in self._in_flight.items():
            if pending.key == key:
                del self._in_flight[phy_id]
                return pending, self._pump(now)
        return None, b""

    def in_flight(self, phy_id: str) -> InFlight | None:
        """The command in flight to *phy_id*, if any."""
        return self._in_flight.get(phy_id)

    def expire(self, now: float) -> tuple[list[InFlight], bytes]:
        """Retransmit or give up on overdue commands; send what became eligible.

        Returns:
            The commands that timed out for good, and the bytes to write.
        """
        out = bytearray()
        failed: list[InFlight] = []
        for phy_id, pending in list(self._in_flight.items()):
            if pending.deadline > now:
                continue
            if pending.attempts > pending.timing.max_retransmissions:
                del self._in_flight[phy_id]
                failed.append(pending)
                continue
            pending.attempts += 1
            pending.deadline = now + pending.timing.reply_timeout_s
            self._last_write = now
            out += pending.data
        out += self._pump(now)
        return failed, bytes(out)

    def take_written_unanswered(self) -> list[InFlight]:
        """The commands without a reply written since the last call: they are done."""
        done, self._written_unanswered = self._written_unanswered, []
        return done

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`expire` has work to do (or an unanswered command
        was written and its outcome is due)."""
        deadlines = [pending.deadline for pending in self._in_flight.values()]
        deadlines += [done.deadline for done in self._written_unanswered]
        if any(q.phy_id not in self._in_flight for q in self._queue) and self._last_write:
            deadlines.append(self._last_write + self.timing.min_spacing_s)
        return min(deadlines, default=None)

    def drop(self) -> list[tuple[str, str]]:
        """Forget every command (the connection closed); return their devices and ids."""
        dropped = [(p.phy_id, p.command_id) for p in self._in_flight.values()]
        dropped += [(q.phy_id, q.command_id) for q in self._queue]
        self._in_flight.clear()
        self._queue.clear()
        return dropped

    def _pump(self, now: float) -> bytes:
        """Write queued commands whose device is free, respecting the spacing."""
        out = bytearray()
        for queued in list(self._queue):
            if queued.phy_id in self._in_flight:
                continue
            if (self._last_write is not None
                    and now < self._last_write + self.timing.min_spacing_s):
                break
            self._queue.remove(queued)
            self._last_write = now
            out += queued.data
            if queued.key is None:
                self._written_unanswered.append(InFlight(
                    queued.command_id, queued.phy_id, None, queued.data, 1, now,
                    queued.timing))
                continue
            self._in_flight[queued.phy_id] = InFlight(
                queued.command_id, queued.phy_id, queued.key, queued.data, 1,
                now + queued.timing.reply_timeout_s, queued.timing)
        return bytes(out)


class MessageIds:
    """The message id (AP3000) or frame sequence number (BKV) each device's
    commands get next.

    A device may drop a command whose id it has seen before, so ids must not
    repeat across reconnects: give every :class:`ServerConnection` of a process
    the same instance, and after a restart :meth:`seed` each device with the last
    id you stored (read it with :meth:`last` after sending).

    Args:
        modulus: Ids run from 1 to ``modulus - 1`` and wrap around (``0x10000``
            for AP3000's 16-bit message ids, ``0x1_0000_0000`` for BKV).

    .. versionadded:: 0.1.0
    """

    def __init__(self, modulus: int = 0x10000) -> None:
        if modulus < 2:
            raise LocalProtocolError(f"modulus must be at least 2, not {modulus}")
        self.modulus = modulus
        self._last: dict[str, int] = {}

    def seed(self, phy_id: str, last_used: int) -> None:
        """The next id for *phy_id* follows *last_used*."""
        self._last[phy_id] = last_used % self.modulus

    def last(self, phy_id: str) -> int | None:
        """The last id handed out for *phy_id*, or None."""
        return self._last.get(phy_id)

    def next(self, phy_id: str) -> int:
        """A new id for *phy_id* (never 0)."""
        value = self._last.get(phy_id, 0) % (self.modulus - 1) + 1
        self._last[phy_id] = value
        return value
