# Server-role device connections: one object per TCP connection, bytes and time
# in, protocol-neutral events and bytes out (the h11/h2 model).
#
# The connection owns a FrameDecoder (which identifies the protocol from the
# first bytes), a CommandTracker (ids, pacing, retransmission, outcomes) and, once
# the protocol is known, that protocol's rules object, which knows how frames
# map to events, which uplinks must be answered and how commands are encoded.
# Answers the protocol requires are queued at once; the caller collects every
# byte to write with data_to_send(). Nothing here reads a clock or a socket.
from __future__ import annotations

import datetime
from collections.abc import Hashable

from ._ap3000.server import Ap3000ServerRules
from ._bkv.server import BkvServerRules
from ._commands import Command, StopCharging
from ._decoder import FrameDecoder, FrameRejected, UnidentifiedStream
from ._errors import LocalProtocolError
from ._events import CardPresented, CommandTimedOut
from ._roles import ConnectionEvent, ServerRules
from ._tracker import CommandTiming, CommandTracker, InFlight
from ._types import CHINA_STANDARD_TIME, Direction, ProtocolFamily

__all__ = ["ServerConnection"]


class ServerConnection:
    """The server's side of one device connection.

    Feed it what the socket reads; it answers what the protocol requires by
    itself and reports everything else as events::

        conn = ServerConnection()
        events = conn.receive_data(data, now)
        sock.sendall(conn.data_to_send())

    Commands (:class:`StartCharging`, :class:`StopCharging`,
    :class:`QueryStatus`, :class:`SetParams`, :class:`QueryParams`,
    :class:`ModifyCharge`, :class:`StartOta`, :class:`SetNetworkList`,
    :class:`SendFirmware`) go through
    :meth:`send`, which assigns the message id, keeps one command in flight per
    device with the protocol's spacing, retransmits with the same id, and
    reports each command's outcome as :class:`CommandAcknowledged`,
    :class:`CommandRejected` or :class:`CommandTimedOut`. Call
    :meth:`handle_timeout` at :meth:`next_deadline`.

    Args:
        timezone: The zone of the time BKV heartbeat replies carry (devices
            keep China Standard Time). AP3000 uses Unix time.
        max_frame_size: Passed to the :class:`FrameDecoder`.
        protocol: Expect this protocol instead of identifying it.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, timezone: datetime.tzinfo = CHINA_STANDARD_TIME,
                 max_frame_size: int = 32 * 1024,
                 protocol: ProtocolFamily | None = None) -> None:
        self.timezone = timezone
        self._decoder = FrameDecoder(max_frame_size=max_frame_size, direction=Direction.UP,
                                     protocol=protocol)
        self._out = bytearray()
        self._rules: ServerRules | None = None
        self._tracker: CommandTracker | None = None
        self._context: _Context | None = None
        self._waiting: list[tuple[Command, float]] = []
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
            LocalProtocolError: The connection was closed with :meth:`receive_eof`.
        """
        if self._closed:
            raise LocalProtocolError("receive_data() after receive_eof()")
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
                phy_id = getattr(event, "phy_id", None)
                if isinstance(phy_id, str):
                    self.phy_ids.add(phy_id)
                if isinstance(event, CardPresented):
                    self._cards[event.request_id] = event
            events += produced
        if self._waiting and self._rules is not None:
            waiting, self._waiting = self._waiting, []
            for command, _ in waiting:
                self._submit(command, now)
        return events

    def receive_eof(self) -> list[str]:
        """The device closed the connection; return the ids of the commands that
        were queued or in flight (their outcome is unknown)."""
        self._closed = True
        self._decoder.end()
        dropped = [command.command_id for command, _ in self._waiting]
        if self._tracker is not None:
            dropped += self._tracker.drop()
        return dropped

    # --- output --------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Every byte the connection wants written, in order; empties the buffer."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def send(self, command: Command, now: float) -> bytes:
        """Send a command to a device on this connection.

        Returns:
            :meth:`data_to_send`: the command's frame unless it waits behind
            another command or for the protocol to be identified, plus any
            other pending output.

        Raises:
            LocalProtocolError: The command cannot be expressed in the
                connection's protocol, or the connection is closed.
        """
        if self._closed:
            raise LocalProtocolError("send() after receive_eof()")
        if self._ensure_rules() is None:
            self._waiting.append((command, now))
        else:
            self._submit(command, now)
        return self.data_to_send()

    def answer_card(self, request_id: int, *, accept: bool, now: float,
                    command_id: str | None = None, order_no: str | None = None,
                    balance_cents: int = 0, duration_s: int | None = None,
                    energy_wh: int | None = None,
                    refusal_code: int | None = None) -> bytes:
        """Answer a :class:`CardPresented`.

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

        Returns:
            :meth:`data_to_send`.

        Raises:
            LocalProtocolError: No such pending card request.
        """
        event = self._cards.pop(request_id, None)
        if event is None or self._rules is None:
            raise LocalProtocolError(f"no card request {request_id} on this connection")
        data, key = self._rules.answer_card(
            event, accept=accept, command_id=command_id or f"card-{request_id}",
            order_no=order_no, now=now, balance_cents=balance_cents, duration_s=duration_s,
            energy_wh=energy_wh, refusal_code=refusal_code)
        if key is None or self._tracker is None:
            self._out += data
        else:
            self._out += self._tracker.submit(command_id or f"card-{request_id}",
                                              event.phy_id, key, data, now)
        return self.data_to_send()

    # --- time ---------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called, or None."""
        return None if self._tracker is None else self._tracker.next_deadline()

    def handle_timeout(self, now: float) -> list[ConnectionEvent]:
        """Retransmit, pace and time out commands due at *now*."""
        if self._tracker is None:
            return []
        failed, data = self._tracker.expire(now)
        self._out += data
        return [CommandTimedOut(command_id=p.command_id, phy_id=p.phy_id, attempts=p.attempts)
                for p in failed]

    # --- internals ------------------------------------------------------------------

    def _ensure_rules(self) -> ServerRules | None:
        if self._rules is None:
            protocol = self._decoder.protocol
            if protocol is None:
                return None
            self._rules = _rules_for(protocol, self.timezone)
            self._tracker = CommandTracker(self._rules.timing)
            self._context = _Context(self._out, self._tracker)
        return self._rules

    def _submit(self, command: Command, now: float) -> None:
        assert self._rules is not None and self._tracker is not None
        data, key = self._rules.encode(command, now)
        if isinstance(command, StopCharging):
            self._rules.stop_sent(command)
        if key is None:  # a command without a reply (AP3000 0x81): nothing to track
            self._out += data
        else:
            self._out += self._tracker.submit(command.command_id, command.phy_id, key, data,
                                              now, self._rules.command_timing(command))


class _Context:
    """What a protocol's rules may do to their connection (a :class:`RulesContext`)."""

    def __init__(self, out: bytearray, tracker: CommandTracker) -> None:
        self._out = out
        self._tracker = tracker

    def reply(self, data: bytes) -> None:
        """Queue an answer to an uplink (not paced: answers go at once)."""
        self._out += data

    def resolve(self, key: Hashable, now: float) -> InFlight | None:
        """The command a device reply with *key* answers; frees its device."""
        pending, data = self._tracker.resolve(key, now)
        self._out += data
        return pending

    def in_flight(self, phy_id: str) -> InFlight | None:
        """The command in flight to *phy_id*."""
        return self._tracker.in_flight(phy_id)

    def submit(self, command_id: str, phy_id: str, key: Hashable, data: bytes, now: float,
               timing: CommandTiming | None = None) -> None:
        """Send a follow-up frame of a command (the next firmware packet), paced and
        tracked like a command."""
        self._out += self._tracker.submit(command_id, phy_id, key, data, now, timing)


def _rules_for(protocol: ProtocolFamily, timezone: datetime.tzinfo) -> ServerRules:
    if protocol is ProtocolFamily.BKV:
        return BkvServerRules(timezone)
    return Ap3000ServerRules()
