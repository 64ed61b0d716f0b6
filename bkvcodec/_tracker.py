# Command bookkeeping shared by every protocol: message ids, one command in
# flight per device, minimum spacing between commands on a connection,
# retransmission with the same message id, and the final outcome of each
# command. A reply to the device's own frame that the device acknowledges (a
# BKV card order answering a swipe) is written at once, neither paced nor queued
# behind the device's command in flight: the device waits for it with a timeout
# of its own. It is tracked beside the commands, for its acknowledgement and
# retransmission. Protocol rules (ap3000.md §7.2, bkv.md §10) are data: a
# CommandTiming per protocol. Sans-IO like everything else: time is passed in,
# bytes come out.
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

from ._errors import LocalProtocolError
from ._fastinit import frozen_dataclass

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

#: Most :class:`CommandSent` records a connection keeps for
#: :meth:`~bkvcodec.ServerConnection.commands_sent`; older ones are forgotten.
MAX_COMMANDS_SENT = 1024

__all__ = ["MAX_COMMANDS_SENT", "MAX_PENDING_CARDS", "CommandSent", "CommandTiming",
           "CommandTracker", "InFlight", "MessageIds", "remember"]


@frozen_dataclass
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


@frozen_dataclass
class CommandSent:
    """A command's frame was added to :meth:`~bkvcodec.ServerConnection.data_to_send`
    (see :meth:`~bkvcodec.ServerConnection.commands_sent`).

    A command waiting behind the device's command in flight, or for the
    protocol's spacing, is written later than :meth:`~bkvcodec.ServerConnection.send`
    (while the connection handles the answer to the first, or in
    :meth:`~bkvcodec.ServerConnection.handle_timeout`); this record says when, and
    with which message id.

    Attributes:
        command_id: The command's ``command_id``.
        phy_id: The device it was sent to.
        message_id: The id the frame carries: the AP3000 message id, the BKV
            frame sequence number.
        attempt: 1 for the first write of the frame, 2 and up for its
            retransmissions (the same message id).

    .. versionadded:: 0.1.0
    """

    command_id: str
    phy_id: str
    message_id: int
    attempt: int


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
    #: The frame's message id (0 for a tracked reply, which is not reported).
    message_id: int = 0


@dataclass(slots=True)
class _Queued:
    command_id: str
    phy_id: str
    #: None for a command the protocol never answers: done once written.
    key: Hashable | None
    data: bytes
    timing: CommandTiming
    message_id: int


class CommandTracker:
    """Queues, paces, retransmits and resolves commands for one connection."""

    def __init__(self, timing: CommandTiming) -> None:
        self.timing = timing
        # Lists, not deques: a server holds one tracker per connection, mostly
        # empty, and an empty deque costs ten times an empty list.
        self._queue: list[_Queued] = []
        self._in_flight: dict[str, InFlight] = {}
        self._written_unanswered: list[InFlight] = []
        #: Tracked replies (see :meth:`reply`), by command id.
        self._replies: dict[str, InFlight] = {}
        self._last_write: float | None = None
        #: The command frames written, oldest first (see :meth:`take_sent`).
        self._sent: list[CommandSent] = []

    def submit(self, command_id: str, phy_id: str, key: Hashable | None, data: bytes,
               now: float, timing: CommandTiming | None = None, *,
               message_id: int) -> bytes:
        """Queue a command; return the bytes that may be written now.

        *key* identifies the device's reply; None for a command the protocol never
        answers, which is done once written (see :meth:`take_written_unanswered`).
        *timing* overrides the connection's reply timeout and retransmissions
        for this command (AP3000 firmware packets wait 30 s and are resent 3 times).
        *message_id* is the id the frame carries, reported by :meth:`take_sent`
        when the frame is written.
        """
        self._queue.append(_Queued(command_id, phy_id, key, data, timing or self.timing,
                                   message_id))
        return self._pump(now)

    def take_sent(self) -> list[CommandSent]:
        """The command frames written since the last call, in write order (at most
        :data:`MAX_COMMANDS_SENT`, the newest). Tracked replies are not included."""
        sent, self._sent = self._sent, []
        return sent

    def _record_sent(self, sent: CommandSent) -> None:
        self._sent.append(sent)
        if len(self._sent) > MAX_COMMANDS_SENT:
            del self._sent[0]

    def reply(self, command_id: str, phy_id: str, key: Hashable | None, data: bytes,
              now: float) -> bytes:
        """Write a reply to the device's own frame at once; return its bytes.

        Unlike :meth:`submit`, the reply is not paced and does not wait for the
        device's command in flight. With a *key* it is tracked like a command
        (acknowledgement, retransmission, timeout) without occupying the device's
        command slot.
        """
        if key is not None:
            self._replies[command_id] = InFlight(command_id, phy_id, key, data, 1,
                                                 now + self.timing.reply_timeout_s,
                                                 self.timing)
        return data

    def resolve(self, key: Hashable, now: float) -> tuple[InFlight | None, bytes]:
        """The in-flight command a reply with *key* answers (or None), and the bytes
        of the next command that may go now that it is done."""
        for phy_id, pending in self._in_flight.items():
            if pending.key == key:
                del self._in_flight[phy_id]
                return pending, self._pump(now)
        for command_id, pending in self._replies.items():
            if pending.key == key:
                del self._replies[command_id]
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
        for table in (self._in_flight, self._replies):
            for name, pending in list(table.items()):
                if pending.deadline > now:
                    continue
                if pending.attempts > pending.timing.max_retransmissions:
                    del table[name]
                    failed.append(pending)
                    continue
                pending.attempts += 1
                pending.deadline = now + pending.timing.reply_timeout_s
                if table is self._in_flight:
                    self._last_write = now
                    self._record_sent(CommandSent(
                        command_id=pending.command_id, phy_id=pending.phy_id,
                        message_id=pending.message_id, attempt=pending.attempts))
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
        if not (self._in_flight or self._replies or self._written_unanswered or self._queue):
            return None  # the usual case, looked at after every read
        deadlines = [pending.deadline for pending in self._in_flight.values()]
        deadlines += [pending.deadline for pending in self._replies.values()]
        deadlines += [done.deadline for done in self._written_unanswered]
        if (any(q.phy_id not in self._in_flight for q in self._queue)
                and self._last_write is not None):
            deadlines.append(self._last_write + self.timing.min_spacing_s)
        return min(deadlines, default=None)

    def drop(self) -> list[tuple[str, str]]:
        """Forget every command (the connection closed); return their devices and ids."""
        dropped = [(p.phy_id, p.command_id) for p in self._in_flight.values()]
        dropped += [(p.phy_id, p.command_id) for p in self._replies.values()]
        dropped += [(q.phy_id, q.command_id) for q in self._queue]
        self._in_flight.clear()
        self._replies.clear()
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
            self._record_sent(CommandSent(command_id=queued.command_id, phy_id=queued.phy_id,
                                          message_id=queued.message_id, attempt=1))
            if queued.key is None:
                self._written_unanswered.append(InFlight(
                    queued.command_id, queued.phy_id, None, queued.data, 1, now,
                    queued.timing, queued.message_id))
                continue
            self._in_flight[queued.phy_id] = InFlight(
                queued.command_id, queued.phy_id, queued.key, queued.data, 1,
                now + queued.timing.reply_timeout_s, queued.timing, queued.message_id)
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
