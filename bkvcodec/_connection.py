# Server-role device connections: one object per TCP connection, bytes and time
# in, protocol-neutral events out, and every byte to write through
# data_to_send() (the h2/wsproto model).
#
# The connection owns a FrameDecoder (which identifies the protocol from the
# first bytes), a CommandTracker (pacing, retransmission, outcomes) and, once
# the protocol is known, that protocol's rules object, which knows how frames
# map to events, which uplinks must be answered and how commands are encoded.
# Answers the protocol requires are queued at once, except the answers that
# tell a device it may forget a report (settlements): those can be held until
# the application has stored the report and calls acknowledge(). Nothing here
# reads a clock or a socket.
from __future__ import annotations

import datetime
from collections.abc import Collection, Hashable, Mapping
from typing import ClassVar

from ._ap3000.server import AP3000_END_REASONS, Ap3000ServerRules
from ._ap3000.timing import AP3000_TIMING, Ap3000Timing
from ._bkv.server import BKV_END_REASONS, BKV_TIMING, BkvServerRules
from ._commands import Command, StopCharging
from ._decoder import FrameDecoder, FrameRejected, UnidentifiedStream
from ._errors import LocalProtocolError
from ._events import (
    AnswerWithheld,
    CardPresented,
    CommandAcknowledged,
    CommandDropped,
    CommandTimedOut,
    EndReason,
    Event,
    SettlementReported,
    StartConfirmed,
)
from ._roles import ConnectionEvent, ServerRules
from ._tracker import (
    CommandSent,
    CommandTiming,
    CommandTracker,
    InFlight,
    MessageIds,
    remember,
)
from ._types import CHINA_STANDARD_TIME, Direction, ProtocolFamily

__all__ = ["ServerConnection"]


class ServerConnection:
    """The server's side of one device connection.

    Feed it what the socket reads; it answers what the protocol requires and
    reports everything else as events. Every byte to write, answers and
    commands alike, comes out of :meth:`data_to_send`::

        conn = ServerConnection()
        for event in conn.receive_data(data, now):
            if isinstance(event, SettlementReported):
                store(event)              # commit first ...
                conn.acknowledge(event)   # ... then let the device forget it
        sock.sendall(conn.data_to_send())

    Commands (subclasses of :class:`Command`) go through :meth:`send`, which
    keeps one command in flight per device with the protocol's spacing,
    retransmits with the same message id, and reports each command's outcome as
    :class:`CommandAcknowledged`, :class:`CommandRejected`,
    :class:`CommandTimedOut` or, when the connection ends first,
    :class:`CommandDropped`. Call :meth:`handle_timeout` at :meth:`next_deadline`.

    Args:
        timezone: The zone of the time BKV heartbeat replies carry (devices
            keep China Standard Time). AP3000 uses Unix time.
        max_frame_size: Passed to the :class:`FrameDecoder`.
        protocol: Expect this protocol instead of identifying it.
        hold: The report kinds whose answer waits for :meth:`acknowledge`
            (a subset of :attr:`HOLDABLE`; settlements by default). Pass an
            empty set to answer everything at once.
        message_ids: Where command message ids come from. Share one instance
            between the connections of a process and seed it after a restart,
            so that a device never sees an id twice.
        bkv_timing: Reply timeout, retransmissions and spacing of BKV commands.
        ap3000_timing: The AP3000 timing rules (reply timeout, retransmissions,
            spacing, firmware packets).
        bkv_end_reasons: GN ``0x18`` / BKV tag ``0x2F`` end-reason codes mapped to
            the contract's end reasons.
        ap3000_end_reasons: AP3000 stop reasons mapped to end reasons.
        max_held: Most answers held at once. A device repeats an unanswered
            report, so an application that never acknowledges would hold more and
            more: past this many, the oldest held answer is given up and reported
            as an :class:`AnswerWithheld` (the device repeats the report later).

    Raises:
        LocalProtocolError: *hold* names a kind that cannot be held.

    .. versionadded:: 0.1.0
    """

    #: The reports whose answer can be held until :meth:`acknowledge`: those a
    #: device repeats until answered and forgets once answered (AP3000 ``0x03`` and
    #: ``0x04``; BKV and GN charge ends). Heartbeats, time requests and
    #: registrations are always answered at once.
    HOLDABLE: ClassVar[frozenset[type[Event]]] = frozenset({SettlementReported,
                                                            StartConfirmed})

    def __init__(self, *, timezone: datetime.tzinfo = CHINA_STANDARD_TIME,
                 max_frame_size: int = 32 * 1024,
                 protocol: ProtocolFamily | None = None,
                 hold: Collection[type[Event]] = frozenset({SettlementReported}),
                 message_ids: MessageIds | None = None,
                 bkv_timing: CommandTiming = BKV_TIMING,
                 ap3000_timing: Ap3000Timing = AP3000_TIMING,
                 bkv_end_reasons: Mapping[int, EndReason] = BKV_END_REASONS,
                 ap3000_end_reasons: Mapping[int, EndReason] = AP3000_END_REASONS,
                 max_held: int = 256) -> None:
        not_holdable = sorted(kind.__name__ for kind in set(hold) - self.HOLDABLE)
        if not_holdable:
            raise LocalProtocolError(f"answers to {', '.join(not_holdable)} cannot be held")
        if max_held < 1:
            raise LocalProtocolError(f"max_held must be at least 1, not {max_held}")
        self.timezone = timezone
        self.hold = frozenset(hold)
        self.max_held = max_held
        self._settings = _RulesSettings(
            timezone=timezone, message_ids=message_ids, bkv_timing=bkv_timing,
            ap3000_timing=ap3000_timing, bkv_end_reasons=bkv_end_reasons,
            ap3000_end_reasons=ap3000_end_reasons)
        self._decoder = FrameDecoder(max_frame_size=max_frame_size, direction=Direction.UP,
                                     protocol=protocol)
        self._out = bytearray()
        self._rules: ServerRules | None = None
        self._tracker: CommandTracker | None = None
        self._context: _Context | None = None
        self._waiting: list[Command] = []
        self._cards: dict[int, CardPresented] = {}
        self._closed = False
        self.phy_ids: set[str] = set()

    @property
    def protocol(self) -> ProtocolFamily | None:
        """The connection's protocol, once identified."""
        return self._decoder.protocol

    # --- input ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[ConnectionEvent]:
        """Process bytes read from the device at time *now* (seconds).

        Raises:
            LocalProtocolError: The connection has ended (:meth:`receive_eof`,
                :meth:`send_failed`).
        """
        self._check_open("receive_data")
        events: list[ConnectionEvent] = []
        for item in self._decoder.feed(data):
            if isinstance(item, FrameRejected | UnidentifiedStream):
                events.append(item)
                continue
            rules = self._ensure_rules()
            if rules is None:
                continue
            assert self._context is not None
            produced = rules.on_frame(item, now, self._context)
            for event in produced:
                if event.phy_id is not None:
                    self.phy_ids.add(event.phy_id)
                if isinstance(event, CardPresented):
                    remember(self._cards, event.request_id, event)
            events += produced
        if self._waiting and self._rules is not None:
            waiting, self._waiting = self._waiting, []
            for command in waiting:
                self._submit(command, now)
        if self._context is not None:
            events += [AnswerWithheld(phy_id=event.phy_id, event=event)
                       for event in self._context.given_up() if event.phy_id is not None]
        return events + self._written_unanswered()

    def receive_eof(self) -> list[ConnectionEvent]:
        """The device closed the connection.

        Returns:
            A :class:`CommandDropped` for every command queued or in flight, and
            an :class:`AnswerWithheld` for every held answer.
        """
        self._check_open("receive_eof")
        return self._end(written=True)

    def send_failed(self) -> list[ConnectionEvent]:
        """The bytes last taken from :meth:`data_to_send` were not (all) written:
        the connection is unusable.

        Returns:
            As :meth:`receive_eof`, plus an :class:`AnswerWithheld` for every
            acknowledged answer that was in those bytes.
        """
        self._check_open("send_failed")
        return self._end(written=False)

    # --- output --------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Every byte the connection wants written, in order; empties the buffer."""
        data = bytes(self._out)
        self._out.clear()
        if self._context is not None:
            self._context.taken()
        return data

    def commands_sent(self) -> list[CommandSent]:
        """The commands whose frames were added to :meth:`data_to_send` since the last
        call, in write order; empties the list, like :meth:`data_to_send`.

        A command's frame is not always written by :meth:`send`: one waiting behind
        the device's command in flight goes while :meth:`receive_data` handles the
        answer to that command, one waiting for the protocol's spacing or for the
        protocol to be identified goes in :meth:`handle_timeout` or
        :meth:`receive_data`, and retransmissions go in :meth:`handle_timeout`.
        Call this after each :meth:`data_to_send` to learn which command was
        written when, with which message id::

            conn.send(start, now)
            conn.send(query, now)            # waits behind the start
            sock.sendall(conn.data_to_send())
            conn.commands_sent()             # [CommandSent(command_id=start.command_id,
                                             #   ..., message_id=7, attempt=1)]
            ...                              # the device answers the start:
            conn.receive_data(data, now)
            sock.sendall(conn.data_to_send())
            conn.commands_sent()             # [CommandSent(command_id=query.command_id,
                                             #   ..., message_id=8, attempt=1)]

        Every frame of a command counts, with ``attempt`` 2 and up for its
        retransmissions: commands the protocol never answers (a BKV OTA order,
        acknowledged once written) too, and each packet of a
        :class:`SendFirmware` (AP3000), under the command's id with the packet's
        own message id. Answers to the device's own frames, card answers included
        (:meth:`answer_card`), are not commands and are not reported. Records
        whose bytes never left the buffer because the connection ended are
        forgotten with those bytes.

        The connection keeps at most the last 1024 records, forgetting the
        oldest: a caller that never asks does not grow its memory, and one that
        asks after every :meth:`data_to_send` loses none.

        .. versionadded:: 0.1.0
        """
        return [] if self._tracker is None else self._tracker.take_sent()

    def send(self, command: Command, now: float) -> None:
        """Send a command to a device on this connection; its frame comes out of
        :meth:`data_to_send` unless it waits behind another command or for the
        protocol to be identified (:meth:`commands_sent` says when it was written).

        Raises:
            LocalProtocolError: The command cannot be expressed in the
                connection's protocol, or the connection has ended.
        """
        self._check_open("send")
        if self._ensure_rules() is None:
            self._waiting.append(command)
        else:
            self._submit(command, now)

    def acknowledge(self, event: Event) -> None:
        """Answer a report whose answer was held (see *hold*): call it once the
        report is stored. The answer comes out of :meth:`data_to_send`.

        Raises:
            LocalProtocolError: No answer to *event* (this very object) is held.
        """
        if self._context is None or not self._context.release(event):
            raise LocalProtocolError(f"no answer is held for {type(event).__name__}")

    def held(self) -> list[Event]:
        """The reports whose answer is held, oldest first."""
        return [] if self._context is None else self._context.held_events()

    def answer_card(self, request_id: int, *, accept: bool, now: float,
                    command_id: str | None = None, order_no: str | None = None,
                    balance_cents: int = 0, duration_s: int | None = None,
                    energy_wh: int | None = None,
                    refusal_code: int | None = None) -> None:
        """Answer a :class:`CardPresented`; the answer comes out of
        :meth:`data_to_send` at once.

        The answer is a reply to the device's own frame: it is neither paced
        (``min_spacing_s``) nor queued behind a command in flight to the device,
        whose card timeout is short. An answer the device acknowledges (a BKV
        card order) is still tracked: retransmitted, and reported as
        :class:`CommandAcknowledged` or :class:`CommandTimedOut` under
        *command_id*.

        Args:
            request_id: The event's ``request_id``.
            accept: Let the card charge (or, for a balance query, say the card
                is valid).
            command_id: Id under which the answer's outcome is reported, when
                the protocol acknowledges it (BKV card orders).
            order_no: The order the charge belongs to, when accepted.
            balance_cents: The card's balance, announced by the device.
            duration_s: Time limit of an accepted charge.
            energy_wh: Energy limit of an accepted charge.
            refusal_code: The protocol's refusal code (AP3000 account status),
                when refusing.

        Raises:
            LocalProtocolError: No such pending card request.
        """
        event = self._cards.pop(request_id, None)
        if event is None or self._rules is None or self._tracker is None:
            raise LocalProtocolError(f"no card request {request_id} on this connection")
        data, key = self._rules.answer_card(
            event, accept=accept, command_id=command_id or f"card-{request_id}",
            order_no=order_no, now=now, balance_cents=balance_cents, duration_s=duration_s,
            energy_wh=energy_wh, refusal_code=refusal_code)
        # Written at once, whatever command is in flight or paced: the device
        # waits for this answer with a timeout of its own (issue 12, story 10).
        self._out += self._tracker.reply(command_id or f"card-{request_id}", event.phy_id,
                                         key, data, now)

    # --- time ---------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called, or None."""
        return None if self._tracker is None else self._tracker.next_deadline()

    def handle_timeout(self, now: float) -> list[ConnectionEvent]:
        """Retransmit, pace and time out commands due at *now*."""
        if self._tracker is None or self._closed:
            return []
        failed, data = self._tracker.expire(now)
        self._out += data
        events: list[ConnectionEvent] = [
            CommandTimedOut(command_id=p.command_id, phy_id=p.phy_id, attempts=p.attempts)
            for p in failed]
        return events + self._written_unanswered()

    # --- internals ------------------------------------------------------------------

    def _check_open(self, method: str) -> None:
        if self._closed:
            raise LocalProtocolError(f"{method}() after the connection ended")

    def _written_unanswered(self) -> list[ConnectionEvent]:
        """Outcomes of the commands the protocol never answers: done once written."""
        if self._tracker is None:
            return []
        return [CommandAcknowledged(command_id=p.command_id, phy_id=p.phy_id)
                for p in self._tracker.take_written_unanswered()]

    def _end(self, *, written: bool) -> list[ConnectionEvent]:
        # Bytes still in the buffer were never handed out, so never written.
        delivered = written and not self._out
        self._closed = True
        self._decoder.end()
        self._out.clear()
        if self._tracker is not None:
            self._tracker.take_sent()  # their bytes were just thrown away
        events: list[ConnectionEvent] = [
            CommandDropped(phy_id=command.phy_id, command_id=command.command_id)
            for command in self._waiting]
        if delivered:
            events += self._written_unanswered()
        elif self._tracker is not None:  # not written, or perhaps in the write that failed
            events += [CommandDropped(phy_id=p.phy_id, command_id=p.command_id)
                       for p in self._tracker.take_written_unanswered()]
        self._waiting.clear()
        if self._tracker is not None:
            events += [CommandDropped(phy_id=phy_id, command_id=command_id)
                       for phy_id, command_id in self._tracker.drop()]
        if self._context is not None:
            events += [AnswerWithheld(phy_id=event.phy_id, event=event)
                       for event in self._context.unanswered(written=written)
                       if event.phy_id is not None]
        return events

    def _ensure_rules(self) -> ServerRules | None:
        if self._rules is None:
            protocol = self._decoder.protocol
            if protocol is None:
                return None
            self._rules = self._settings.rules_for(protocol)
            self._tracker = CommandTracker(self._rules.timing)
            self._context = _Context(self._out, self._tracker, self.hold, self.max_held)
        return self._rules

    def _submit(self, command: Command, now: float) -> None:
        assert self._rules is not None and self._tracker is not None
        data, key = self._rules.encode(command, now)
        # encode() took exactly one id for the command's device.
        message_id = self._rules.message_ids.last(command.phy_id)
        assert message_id is not None
        if isinstance(command, StopCharging):
            self._rules.stop_sent(command)
        self._out += self._tracker.submit(command.command_id, command.phy_id, key, data, now,
                                          self._rules.command_timing(command),
                                          message_id=message_id)


class _RulesSettings:
    """What the protocol rules are built with, once the protocol is known."""

    def __init__(self, *, timezone: datetime.tzinfo, message_ids: MessageIds | None,
                 bkv_timing: CommandTiming, ap3000_timing: Ap3000Timing,
                 bkv_end_reasons: Mapping[int, EndReason],
                 ap3000_end_reasons: Mapping[int, EndReason]) -> None:
        self.timezone = timezone
        self.message_ids = message_ids
        self.bkv_timing = bkv_timing
        self.ap3000_timing = ap3000_timing
        self.bkv_end_reasons = bkv_end_reasons
        self.ap3000_end_reasons = ap3000_end_reasons

    def rules_for(self, protocol: ProtocolFamily) -> ServerRules:
        if protocol is ProtocolFamily.BKV:
            return BkvServerRules(
                self.timezone, timing=self.bkv_timing, end_reasons=self.bkv_end_reasons,
                message_ids=self.message_ids or MessageIds(modulus=0x1_0000_0000))
        return Ap3000ServerRules(timing=self.ap3000_timing, end_reasons=self.ap3000_end_reasons,
                                 message_ids=self.message_ids or MessageIds(modulus=0x10000))


class _Context:
    """What a protocol's rules may do to their connection (a :class:`RulesContext`),
    and the answers held for the application."""

    def __init__(self, out: bytearray, tracker: CommandTracker,
                 hold: frozenset[type[Event]], max_held: int) -> None:
        self._out = out
        self._tracker = tracker
        self._hold = hold
        self._max_held = max_held
        self._given_up: list[Event] = []
        #: Held answers by the identity of their event (events compare by value,
        #: and a device's repeated report is a second, equal event).
        self._held: dict[int, tuple[Event, bytes]] = {}
        #: Answers to holdable reports queued since the last data_to_send().
        self._queued: list[Event] = []
        #: Those taken by the last data_to_send(): lost if that write fails.
        self._taken: list[Event] = []

    def reply(self, data: bytes) -> None:
        """Queue an answer to an uplink (not paced: answers go at once)."""
        self._out += data

    def answer(self, event: Event, data: bytes) -> None:
        """The answer to a report the application may hold (see ``ServerConnection.HOLDABLE``)."""
        if type(event) in self._hold:
            self._held[id(event)] = (event, data)
            if len(self._held) > self._max_held:
                oldest = next(iter(self._held))
                self._given_up.append(self._held.pop(oldest)[0])
        else:
            self._out += data
            self._queued.append(event)

    def release(self, event: Event) -> bool:
        held = self._held.pop(id(event), None)
        if held is None or held[0] is not event:
            return False
        self._out += held[1]
        self._queued.append(event)
        return True

    def given_up(self) -> list[Event]:
        """Held answers dropped for *max_held* since the last call."""
        dropped, self._given_up = self._given_up, []
        return dropped

    def held_events(self) -> list[Event]:
        return [event for event, _ in self._held.values()]

    def taken(self) -> None:
        self._taken, self._queued = self._queued, []

    def unanswered(self, *, written: bool) -> list[Event]:
        """Events whose answer the device has not been sent when the connection ends."""
        lost = [event for event, _ in self._held.values()] + self._queued
        if not written:
            lost = self._taken + lost
        self._held.clear()
        self._queued.clear()
        self._taken.clear()
        return lost

    def resolve(self, key: Hashable, now: float) -> InFlight | None:
        """The command a device reply with *key* answers; frees its device."""
        pending, data = self._tracker.resolve(key, now)
        self._out += data
        return pending

    def in_flight(self, phy_id: str) -> InFlight | None:
        """The command in flight to *phy_id*."""
        return self._tracker.in_flight(phy_id)

    def submit(self, command_id: str, phy_id: str, key: Hashable, data: bytes, now: float,
               timing: CommandTiming | None = None, *, message_id: int) -> None:
        """Send a follow-up frame of a command (the next firmware packet), paced and
        tracked like a command."""
        self._out += self._tracker.submit(command_id, phy_id, key, data, now, timing,
                                          message_id=message_id)
