# The device gateway: the trio shell around bkvcodec's sans-IO ServerConnection.
#
# One task per TCP connection (trio.serve_tcp). Each connection owns a
# ServerConnection: bytes read go in with the current time, the answers the
# protocol requires come out at once, and the protocol-neutral events go to the
# EventSink (the order service), which owns every decision. Settlements are
# answered only after the sink has committed them (store, then acknowledge): if
# the commit fails, the connection is closed without those answers (api.md §11.1);
# the device reconnects and repeats the report, which the sink, whose memory went
# back to what the database holds, then processes once. Other connections carry on. Commands reach a
# device through Gateway.send(), which encodes them on that device's connection.
# A timer task per connection calls handle_timeout() at next_deadline().
#
# Isolation: a connection's failure (garbage, a slow reader, a bug in a handler)
# closes that connection only. Reads are bounded by ``idle_timeout``, writes by
# ``write_timeout``, and the decoder bounds buffered bytes by max_frame_size.
# A new connection naming a phy_id replaces the old one, which is closed
# (api.md §7: IP change, reconnect).
from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from bkvcodec import (
    AnswerWithheld,
    Command,
    CommandDropped,
    ConnectionEvent,
    Direction,
    FrameRejected,
    ServerConnection,
    UnidentifiedStream,
)

from .logs import Logger

__all__ = ["DeviceLink", "EventSink", "Gateway", "GatewaySettings", "GatewayStatistics"]

_READ_SIZE = 65536


class EventSink(Protocol):
    """What the gateway reports to (the order service)."""

    async def device_events(self, link: DeviceLink, events: list[ConnectionEvent]) -> None:
        """Events decoded on *link*; called in order, one batch per read."""

    async def link_closed(self, link: DeviceLink, phy_ids: list[str],
                          dropped_commands: list[str]) -> None:
        """*link* closed; *phy_ids* it carried are now offline unless they reconnected."""

    def traffic(self, link: DeviceLink, direction: Direction, data: bytes,
                kinds: list[str], phy_id: str | None) -> None:
        """Bytes read from or written to *link*, with the kinds of what they carried
        (the frame log)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Limits of the gateway.

    Attributes:
        idle_timeout: Close a connection silent this long (seconds). AP3000 modems
            send ``link`` every 30 s, BKV gateways a heartbeat every 60 s.
        write_timeout: Close a connection whose peer does not take our bytes.
        max_frame_size: Passed to each connection's decoder.
    """

    idle_timeout: float = 300.0
    write_timeout: float = 10.0
    max_frame_size: int = 32 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayStatistics:
    """Counters for /metrics."""

    connections: int
    devices: int
    accepted: int
    frames_in: int
    frames_rejected: int
    bytes_out: int


@dataclass(eq=False)
class DeviceLink:
    """One live TCP connection and its sans-IO connection object."""

    link_id: int
    remote_addr: str
    stream: trio.abc.Stream
    connection: ServerConnection
    opened_at: float
    send_lock: trio.Lock = field(default_factory=trio.Lock)
    deadline_changed: trio.Event = field(default_factory=trio.Event)
    cancel_scope: trio.CancelScope | None = None
    closed: bool = False
    #: A write failed: what the connection last handed out may not have arrived.
    write_failed: bool = False
    #: The device ids this connection currently speaks for (in the order first seen).
    phy_ids: dict[str, None] = field(default_factory=dict)

    def close(self) -> None:
        """Stop serving this connection (its task closes the socket)."""
        self.closed = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    @property
    def protocol(self) -> str | None:
        """``bkv`` or ``ap3000`` once identified."""
        protocol = self.connection.protocol
        return None if protocol is None else protocol.value


class Gateway:
    """Accepts device connections and routes their events and commands."""

    def __init__(self, sink: EventSink, logger: Logger, settings: GatewaySettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.log = logger
        self.settings = settings or GatewaySettings()
        self.clock = clock
        self._links: dict[str, DeviceLink] = {}
        self._open: set[DeviceLink] = set()
        self._ids = itertools.count(1)
        self._accepted = 0
        self._frames_in = 0
        self._rejected = 0
        self._bytes_out = 0

    # --- public ----------------------------------------------------------------------

    async def serve(self, host: str, port: int, *,
                    task_status: trio.TaskStatus[list[trio.SocketListener]]
                    = trio.TASK_STATUS_IGNORED) -> None:
        """Listen for devices until cancelled."""
        await trio.serve_tcp(self.handle, port, host=host or None,
                             task_status=task_status)

    def is_online(self, phy_id: str) -> bool:
        """Whether a live connection carries *phy_id*."""
        return phy_id in self._links

    def link_for(self, phy_id: str) -> DeviceLink | None:
        """The connection that last carried *phy_id*."""
        return self._links.get(phy_id)

    async def send(self, phy_id: str, command: Command) -> bool:
        """Encode *command* on the device's connection and write what is due.

        Returns:
            False when the device has no live connection (the caller keeps the
            command queued).

        Raises:
            LocalProtocolError: The device's protocol cannot express the command.
        """
        link = self._links.get(phy_id)
        if link is None or link.closed:
            return False
        link.connection.send(command, self.clock())
        link.deadline_changed.set()
        await self._write(link, link.connection.data_to_send(), type(command).__name__, phy_id)
        return True

    async def answer_card(self, phy_id: str, request_id: int, *, accept: bool,
                          command_id: str | None = None, order_no: str | None = None,
                          balance_cents: int = 0, duration_s: int | None = None,
                          energy_wh: int | None = None,
                          refusal_code: int | None = None) -> bool:
        """Pass a card decision to the device (see ``ServerConnection.answer_card``).

        Returns:
            False when the device is no longer connected.
        """
        link = self._links.get(phy_id)
        if link is None or link.closed:
            return False
        link.connection.answer_card(
            request_id, accept=accept, now=self.clock(), command_id=command_id,
            order_no=order_no, balance_cents=balance_cents, duration_s=duration_s,
            energy_wh=energy_wh, refusal_code=refusal_code)
        link.deadline_changed.set()
        await self._write(link, link.connection.data_to_send(), "CardAnswer", phy_id)
        return True

    def statistics(self) -> GatewayStatistics:
        """Current counters."""
        return GatewayStatistics(connections=len(self._open), devices=len(self._links),
                                 accepted=self._accepted, frames_in=self._frames_in,
                                 frames_rejected=self._rejected, bytes_out=self._bytes_out)

    # --- one connection -------------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one device connection until it closes or fails."""
        try:
            peer = stream.socket.getpeername()
            remote = f"{peer[0]}:{peer[1]}"
        except OSError:
            remote = "unknown"
        link = DeviceLink(link_id=next(self._ids), remote_addr=remote, stream=stream,
                          connection=ServerConnection(
                              max_frame_size=self.settings.max_frame_size),
                          opened_at=self.clock())
        self._accepted += 1
        self._open.add(link)
        self.log.info("TCP connection accepted", remote_addr=remote, link=link.link_id)
        try:
            async with trio.open_nursery() as nursery:
                link.cancel_scope = nursery.cancel_scope
                nursery.start_soon(self._timers, link)
                await self._read_loop(link)
                nursery.cancel_scope.cancel()
        except Exception as err:  # one connection's failure must not spread
            self.log.error("connection failed", remote_addr=remote, error=repr(err))
        finally:
            await self._close(link)

    async def _read_loop(self, link: DeviceLink) -> None:
        identified = False
        while not link.closed:
            data: bytes | bytearray = b""
            with trio.move_on_after(self.settings.idle_timeout) as scope:
                try:
                    data = await link.stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
                    self.log.info("TCP read error", error=repr(err), remote_addr=link.remote_addr)
                    return
            if scope.cancelled_caught:
                self.log.info("connection will close", remote_addr=link.remote_addr,
                              reason="idle")
                return
            if not data:
                self.log.info("TCP read error", error="EOF", remote_addr=link.remote_addr)
                return
            data = bytes(data)
            events = link.connection.receive_data(data, self.clock())
            if not identified and link.protocol is not None:
                identified = True
                self.log.info("Protocol identified", protocol=link.protocol,
                              remote_addr=link.remote_addr)
            # Route the device to this link before answering, so that a command
            # sent right after the answer finds it.
            phy_id = self._note(link, events)
            self.sink.traffic(link, Direction.UP, data, [type(e).__name__ for e in events],
                              phy_id)
            await self._write(link, link.connection.data_to_send(), "reply", phy_id)
            link.deadline_changed.set()
            if events:
                try:
                    await self.sink.device_events(link, events)
                except Exception as err:  # not stored: answer nothing, close this one
                    self.log.error("reports not stored; closing the connection unanswered",
                                   remote_addr=link.remote_addr, phy_id=phy_id,
                                   held=len(link.connection.held()), error=repr(err))
                    return
            # device_events returned: what it was given is committed.
            held = link.connection.held()
            if held:
                for event in held:
                    link.connection.acknowledge(event)
                await self._write(link, link.connection.data_to_send(), "acknowledgement",
                                  phy_id)

    def _note(self, link: DeviceLink, events: list[ConnectionEvent]) -> str | None:
        """Count and route what a read carried; returns the device it named, if any."""
        named: str | None = None
        for event in events:
            if isinstance(event, FrameRejected):
                self._rejected += 1
                self.log.warning("frame rejected", remote_addr=link.remote_addr,
                                 reason=event.error.code)
                continue
            if isinstance(event, UnidentifiedStream):
                self.log.warning("connection speaks no known protocol",
                                 remote_addr=link.remote_addr, head=event.head.hex())
                continue
            self._frames_in += 1
            phy_id = event.phy_id
            if phy_id is not None:
                named = phy_id
                old = self._links.get(phy_id)
                if old is not link:
                    self._links[phy_id] = link
                    link.phy_ids[phy_id] = None
                    if old is not None:
                        old.phy_ids.pop(phy_id, None)
                    if old is not None and not old.closed:
                        self.log.info("connection replaced", phy_id=phy_id,
                                      old_remote_addr=old.remote_addr,
                                      remote_addr=link.remote_addr)
                        old.close()
        return named

    async def _timers(self, link: DeviceLink) -> None:
        while not link.closed:
            deadline = link.connection.next_deadline()
            link.deadline_changed = trio.Event()
            if deadline is None:
                await link.deadline_changed.wait()
                continue
            with trio.move_on_after(max(0.0, deadline - self.clock())):
                await link.deadline_changed.wait()
                continue
            events = link.connection.handle_timeout(self.clock())
            await self._write(link, link.connection.data_to_send(), "retransmission")
            if events:
                await self.sink.device_events(link, events)

    async def _write(self, link: DeviceLink, data: bytes, kind: str,
                     phy_id: str | None = None) -> None:
        if not data or link.closed:
            return
        self.sink.traffic(link, Direction.DOWN, data, [kind], phy_id)
        async with link.send_lock:
            with trio.move_on_after(self.settings.write_timeout) as scope:
                try:
                    await link.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    link.closed = link.write_failed = True
                    return
            if scope.cancelled_caught:
                self.log.warning("connection will close", remote_addr=link.remote_addr,
                                 reason="write timeout")
                link.closed = link.write_failed = True
                return
        self._bytes_out += len(data)

    async def _close(self, link: DeviceLink) -> None:
        link.closed = True
        self._open.discard(link)
        gone = list(link.phy_ids)
        for phy_id in gone:
            del self._links[phy_id]
        link.phy_ids.clear()
        ended = (link.connection.send_failed() if link.write_failed
                 else link.connection.receive_eof())
        dropped = [event.command_id for event in ended if isinstance(event, CommandDropped)]
        withheld = [event for event in ended if isinstance(event, AnswerWithheld)]
        if withheld:
            self.log.info("connection closed with unanswered reports; the device repeats them",
                          remote_addr=link.remote_addr, reports=len(withheld))
        with trio.move_on_after(1, shield=True):
            await trio.aclose_forcefully(link.stream)
            try:
                await self.sink.link_closed(link, gone, dropped)
            except Exception as err:  # e.g. the database is locked: log, never spread
                self.log.error("connection end not stored", remote_addr=link.remote_addr,
                               phy_ids=gone, error=repr(err))

