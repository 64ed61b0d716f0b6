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
# One task per connection, and it only reads: it waits for the socket to be
# readable and reads without a timeout of its own. The clocks of all connections
# are kept by one sweeper task: it closes connections silent past idle_timeout (or
# unidentified past unidentified_timeout) and, for the few connections with a
# protocol deadline (next_deadline(): a retransmission, a command waiting for the
# spacing), calls handle_timeout() when it is due, in a task of its own. Answers
# are written straight to the socket when it takes them whole; only a write that
# would block goes through the stream, under the write timeout. At 10,000 devices a
# timeout scope per read, a timer task per connection and trio's socket wrappers
# were most of a heartbeat's cost and memory (bench/RESULTS.md). A command may be
# written later than send(): behind the device's command in flight (written in the
# read that answers it) or the spacing (by the sweeper's timer). Every write
# hands the sink the commands it carried (ServerConnection.commands_sent()), with
# their wire message ids, once the bytes are written.
#
# Isolation: a connection's failure (garbage, a slow reader, a bug in a handler)
# closes that connection only. Reads are bounded by ``idle_timeout``, writes by
# ``write_timeout``, and the decoder bounds buffered bytes by max_frame_size.
#
# Identity (api.md §11.2): before a read's events reach the sink, _admit() checks
# each device id the connection names for the first time: the device policy
# (``known``: provisioned ids only), the ICCID binding, and whether the id is a
# second one on a connection that may carry only one (identity.py says which may
# carry several). A new connection naming a phy_id replaces the old one, which is
# closed (api.md §7: IP change, reconnect); when the old one carried a frame within
# offline_after and the new one comes from another address, that is a takeover:
# reported, and resolved by ``takeover_policy``. A refused read is not answered: the
# answers the library queued for it are discarded.
#
# Resources (api.md §11.3): connections over ``max_connections`` (in total) or
# ``max_connections_per_ip`` are closed at once; a connection without one valid
# frame within ``unidentified_timeout`` seconds or ``unidentified_max_bytes`` bytes
# is closed; the frame log stores at most ``frame_log_max_bytes`` of a connection
# per hour, and at most ``unidentified_max_bytes`` of reads that carried no frame.
from __future__ import annotations

import functools
import itertools
import os
import resource
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple, Protocol

import trio

from bkvcodec import (
    AnswerWithheld,
    Command,
    CommandAcknowledged,
    CommandDropped,
    CommandRejected,
    CommandSent,
    CommandTimedOut,
    ConnectionEvent,
    DeviceHeartbeat,
    Direction,
    FirmwareProgress,
    FrameRejected,
    ModemIdentified,
    ServerConnection,
    UnidentifiedStream,
)
from bkvcodec.ap3000 import format_phy_id

from .config import (
    PROTOCOL_OFFLINE_AFTER,
    DevicePolicy,
    FrameLogLevel,
    IccidBinding,
    TakeoverPolicy,
)
from .identity import MAX_IDS_PER_HOST, DeviceIdentities, is_ap3000_host
from .logs import Logger
from .metrics import Metrics
from .sockets import shared_port_socket

__all__ = ["DESCRIPTOR_RESERVE", "DeviceLink", "EventSink", "FrameHeader", "Gateway",
           "GatewaySettings", "GatewayStatistics", "default_max_connections", "frame_headers"]

#: Bytes taken from the socket per read (frames are small; a big one takes more reads).
_READ_SIZE = 16384
#: Longest wait of the sweeper between two looks at the connections' clocks (s).
_SWEEP_EVERY = 1.0
#: Connections the kernel queues for a shared listening socket (trio's default).
_BACKLOG = 65535
#: Descriptors kept for HTTP, SQLite and webhooks.
DESCRIPTOR_RESERVE = 256
#: The frame log's budget window (``frame_log_max_bytes`` per connection per hour).
_LOG_WINDOW = 3600.0
#: Events about this connection's own commands and answers, not a device's report:
#: they name no new device.
_CONNECTION_EVENTS = (AnswerWithheld, CommandAcknowledged, CommandRejected, CommandTimedOut,
                      CommandDropped, FirmwareProgress)


def default_max_connections() -> int:
    """The process's descriptor limit minus :data:`DESCRIPTOR_RESERVE` (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(soft - DESCRIPTOR_RESERVE, 1)


class _Verdict(Enum):
    """What becomes of one read (see Gateway._admit)."""

    SERVE = "serve"        #: answer it and hand its events on
    WITHHOLD = "withhold"  #: hand on what was admitted, but send no answers
    CLOSE = "close"        #: nothing of it: close the connection


class EventSink(Protocol):
    """What the gateway reports to (the order service)."""

    async def device_events(self, link: DeviceLink, events: list[ConnectionEvent]) -> None:
        """Events decoded on *link*; called in order, one batch per read."""

    async def link_closed(self, link: DeviceLink, phy_ids: list[str],
                          dropped_commands: list[str]) -> None:
        """*link* closed; *phy_ids* it carried are now offline unless they reconnected."""

    def traffic(self, link: DeviceLink, direction: Direction, data: bytes,
                kinds: list[str], phy_id: str | None, *, msg_id: int | None = None) -> None:
        """Bytes read from or written to *link*, with the kinds of what they carried
        and the message id of their first frame (the frame log)."""

    def commands_sent(self, link: DeviceLink, sent: list[CommandSent]) -> None:
        """The command frames a write to *link* just carried (first writes and
        retransmissions), in write order. Called right after the write; what it
        records is stored with the sink's next commit (the gateway follows a
        write outside a read with :meth:`device_events`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Limits of the gateway.

    Attributes:
        idle_timeout: Close a connection silent this long (seconds). AP3000 modems
            send ``link`` every 30 s, BKV gateways a heartbeat every 60 s.
        write_timeout: Close a connection whose peer does not take our bytes.
        max_frame_size: Passed to each connection's decoder.
        device_policy: ``open`` or ``known``.
        iccid_binding: ``pin`` or ``off``.
        takeover_policy: ``replace`` or ``keep``.
        offline_after: Seconds per protocol within which a connection that carried a
            frame counts as alive (takeover).
        max_connections: Most connections at once (None: no limit).
        max_connections_per_ip: Most connections per remote address (0: no limit).
        unidentified_timeout: Seconds a connection may go without a valid frame.
        unidentified_max_bytes: Bytes a connection may send without a valid frame;
            also the most bytes of frameless reads the frame log stores.
        frame_log_max_bytes: Bytes per connection per hour the frame log stores.
        frame_log_level: The level of the per-frame log lines (``BKV frame
            received`` …); their fields are computed only when it is enabled.
    """

    idle_timeout: float = 300.0
    write_timeout: float = 10.0
    max_frame_size: int = 32 * 1024
    device_policy: DevicePolicy = "open"
    iccid_binding: IccidBinding = "pin"
    takeover_policy: TakeoverPolicy = "replace"
    offline_after: Mapping[str, float] = field(
        default_factory=lambda: dict(PROTOCOL_OFFLINE_AFTER))
    max_connections: int | None = None
    max_connections_per_ip: int = 0
    unidentified_timeout: float = 30.0
    unidentified_max_bytes: int = 4096
    frame_log_max_bytes: int = 1024 * 1024
    frame_log_level: FrameLogLevel = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayStatistics:
    """Counters for /metrics."""

    connections: int
    devices: int
    accepted: int
    frames_in: int
    frames_rejected: int
    bytes_out: int
    refused: int


@dataclass(eq=False, slots=True)
class DeviceLink:
    """One live TCP connection and its sans-IO connection object."""

    link_id: int
    remote_addr: str
    stream: trio.SocketStream
    connection: ServerConnection
    opened_at: float
    #: The remote address without the port (takeovers, the per-address limit).
    host: str = ""
    #: Held by a write the socket did not take whole (made then: most connections
    #: never need one).
    send_lock: trio.Lock | None = None
    #: When the connection was accepted, and last read from (trio's clock).
    accepted_at: float = 0.0
    last_read: float = 0.0
    #: The socket's descriptor, for writes that need no wait.
    fd: int = -1
    closed: bool = False
    #: A write failed: what the connection last handed out may not have arrived.
    write_failed: bool = False
    #: The device ids this connection currently speaks for (in the order first seen).
    phy_ids: dict[str, None] = field(default_factory=dict)
    #: The ICCID the modem announced (AP3000), if any.
    iccid: str | None = None
    #: A valid frame arrived; until then the unidentified budgets apply.
    identified: bool = False
    unidentified_bytes: int = 0
    #: When the last read with a frame arrived (clock time).
    last_frame_at: float = 0.0
    garbage_logged: int = 0
    log_window_start: float = 0.0
    log_window_bytes: int = 0

    def close(self) -> None:
        """Stop serving this connection: the socket is closed now, which wakes its
        task's read (or a write waiting for room) with an error; the task then
        finishes what it was doing and ends. Nothing is written after this: a
        write checks ``closed`` before it touches the descriptor, which the
        system may give to a new connection."""
        self.closed = True
        self.stream.socket.close()

    @property
    def protocol(self) -> str | None:
        """``bkv`` or ``ap3000`` once identified."""
        protocol = self.connection.protocol
        return None if protocol is None else protocol.value


class Gateway:
    """Accepts device connections and routes their events and commands."""

    def __init__(self, sink: EventSink, logger: Logger, settings: GatewaySettings | None = None,
                 clock: Callable[[], float] = time.time, *,
                 identities: DeviceIdentities | None = None,
                 metrics: Metrics | None = None) -> None:
        self.sink = sink
        self.log = logger
        self.settings = settings or GatewaySettings()
        self.clock = clock
        #: Provisioned ids and ICCID bindings; without it every id is unprovisioned
        #: (refused under ``known``) and no ICCID is bound.
        self.identities = identities
        self.metrics = metrics if metrics is not None else Metrics()
        self._links: dict[str, DeviceLink] = {}
        self._open: set[DeviceLink] = set()
        self._per_host: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._accepted = 0
        self._frames_in = 0
        self._rejected = 0
        self._bytes_out = 0
        self._refused = 0
        self._connections_refused = 0
        #: Connections with a protocol deadline (see _sweep).
        self._timed: set[DeviceLink] = set()
        self._sweep_woken = trio.Event()
        self._nursery: trio.Nursery | None = None

    # --- public ----------------------------------------------------------------------

    async def serve(self, host: str, port: int, *, reuse_port: bool = False,
                    task_status: trio.TaskStatus[list[trio.SocketListener]]
                    = trio.TASK_STATUS_IGNORED) -> None:
        """Listen for devices until cancelled (with *reuse_port*, on a port other
        processes share: ``SO_REUSEPORT``)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._sweep)
            if reuse_port:
                shared = shared_port_socket(host or "0.0.0.0", port)
                shared.listen(_BACKLOG)
                opened = [trio.SocketListener(trio.socket.from_stdlib_socket(shared))]
                listeners = await nursery.start(trio.serve_listeners, self.handle, opened)
            else:
                listeners = await nursery.start(
                    functools.partial(trio.serve_tcp, self.handle, port, host=host or None))
            task_status.started(listeners)

    def is_online(self, phy_id: str) -> bool:
        """Whether a live connection carries *phy_id*."""
        return phy_id in self._links

    def connected_devices(self) -> list[str]:
        """The devices a live connection carries."""
        return list(self._links)

    def link_for(self, phy_id: str) -> DeviceLink | None:
        """The connection that last carried *phy_id*."""
        return self._links.get(phy_id)

    def disconnect(self, phy_id: str, reason: str) -> bool:
        """Close the connection that carries *phy_id* (e.g. its provisioning was
        withdrawn).

        Returns:
            False when no connection carries it.
        """
        link = self._links.get(phy_id)
        if link is None or link.closed:
            return False
        self.log.warning("connection will close", remote_addr=link.remote_addr,
                         device=phy_id, reason=reason)
        link.close()
        return True

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
        self._timer_moved(link)
        # Nothing to write when the command waits behind another one in flight or
        # for the spacing: the sink hears of it when it is written.
        await self._write(link, type(command).__name__, phy_id)
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
        self._timer_moved(link)
        await self._write(link, "CardAnswer", phy_id)
        return True

    def statistics(self) -> GatewayStatistics:
        """Current counters."""
        return GatewayStatistics(connections=len(self._open), devices=len(self._links),
                                 accepted=self._accepted, frames_in=self._frames_in,
                                 frames_rejected=self._rejected, bytes_out=self._bytes_out,
                                 refused=self._refused)

    # --- one connection -------------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one device connection until it closes or fails."""
        try:
            peer = stream.socket.getpeername()
            host, remote = str(peer[0]), f"{peer[0]}:{peer[1]}"
        except OSError:
            host = remote = "unknown"
        over = self._over_limit(host)
        if over is not None:
            self._refuse_connection(over, remote)
            await trio.aclose_forcefully(stream)
            return
        link = DeviceLink(link_id=next(self._ids), remote_addr=remote, stream=stream,
                          connection=ServerConnection(
                              max_frame_size=self.settings.max_frame_size),
                          opened_at=self.clock(), host=host,
                          fd=stream.socket.fileno())
        link.accepted_at = link.last_read = trio.current_time()
        self._accepted += 1
        self._open.add(link)
        self._per_host[host] = self._per_host.get(host, 0) + 1
        self.log.info("TCP connection accepted", remote_addr=remote, link=link.link_id)
        try:
            await self._read_loop(link)
        except Exception as err:  # one connection's failure must not spread
            self.log.error("connection failed", remote_addr=remote, error=repr(err))
        finally:
            await self._close(link)

    def _over_limit(self, host: str) -> str | None:
        """The limit a new connection from *host* would pass, if any."""
        limit = self.settings.max_connections
        if limit is not None and len(self._open) >= limit:
            return "max_connections"
        per_ip = self.settings.max_connections_per_ip
        if per_ip and self._per_host.get(host, 0) >= per_ip:
            return "max_connections_per_ip"
        return None

    def _refuse_connection(self, reason: str, remote: str) -> None:
        self.metrics.connections_refused.labels(reason).inc()
        self._connections_refused += 1
        # A flood must not flood the log: the first refusal, then every 1000th.
        count = self._connections_refused
        if count == 1 or count % 1000 == 0:
            self.log.warning("connection refused", remote_addr=remote, reason=reason,
                             refused_so_far=count)

    async def _read_loop(self, link: DeviceLink) -> None:
        settings = self.settings
        socket, fd = link.stream.socket, link.fd
        while not link.closed:
            try:
                await trio.lowlevel.wait_readable(socket)
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError) as err:
                if link.closed:
                    return  # closed by the gateway (link.close()), which said why
                # A reset or a socket that failed: a read error. A normal close
                # is an empty read (below).
                self.log.info("TCP read error", error=repr(err), remote_addr=link.remote_addr)
                self.log.info("connection will close", remote_addr=link.remote_addr,
                              reason="read error")
                return
            if not data:
                self.log.info("connection will close", remote_addr=link.remote_addr,
                              reason="closed by the device")
                return
            link.last_read = trio.current_time()
            now = self.clock()
            was_protocol = link.protocol
            events = link.connection.receive_data(data, now)
            if was_protocol is None and link.protocol is not None:
                self.log.info("Protocol identified", protocol=link.protocol,
                              remote_addr=link.remote_addr)
            if self.log.enabled(settings.frame_log_level):
                self._log_frames(link, data, "received")
            # Route the device to this link before answering, so that a command
            # sent right after the answer finds it.
            admitted, verdict = await self._admit(link, events, now)
            phy_id = next(iter(link.phy_ids), None)
            self._log_traffic(link, Direction.UP, data, [type(e).__name__ for e in events],
                              phy_id, frames=_has_frame(events), now=now)
            answers = link.connection.data_to_send()
            # The commands in *answers*: one that waited behind a command this read
            # answered is written now.
            answered = link.connection.commands_sent()
            if verdict is _Verdict.CLOSE:
                link.close()
                return
            if not link.identified:
                link.unidentified_bytes += len(data)
                if link.unidentified_bytes > settings.unidentified_max_bytes:
                    self._close_unidentified(link, "unidentified_bytes")
                    return
            if verdict is _Verdict.SERVE:
                await self._write_data(link, answers, answered, "reply", phy_id)
            elif answers:
                self.log.info("answers withheld for refused frames",
                              remote_addr=link.remote_addr, bytes=len(answers))
            if admitted:
                try:
                    await self.sink.device_events(link, admitted)
                except Exception as err:  # not stored: answer nothing, close this one
                    self.log.error("reports not stored; closing the connection unanswered",
                                   remote_addr=link.remote_addr, phy_id=phy_id,
                                   held=len(link.connection.held()), error=repr(err))
                    return
            # device_events returned: what it was given is committed. Answers held
            # for frames that were refused stay unanswered.
            held = [event for event in link.connection.held() if event.phy_id in link.phy_ids]
            if held:
                for event in held:
                    link.connection.acknowledge(event)
                await self._write(link, "acknowledgement", phy_id)
            if link.connection.next_deadline() is not None:
                self._timed.add(link)

    def _close_unidentified(self, link: DeviceLink, reason: str) -> None:
        self.metrics.connections_refused.labels(reason).inc()
        self.log.warning("connection will close", remote_addr=link.remote_addr,
                         reason=reason, bytes=link.unidentified_bytes)

    # --- identity (api.md §11.2) ------------------------------------------------------------

    async def _admit(self, link: DeviceLink, events: list[ConnectionEvent],
                     now: float) -> tuple[list[ConnectionEvent], _Verdict]:
        """Count what a read carried (at *now*) and decide what of it is served.

        Returns:
            The events to hand to the sink, and the read's verdict.
        """
        admitted: list[ConnectionEvent] = []
        verdict = _Verdict.SERVE
        refused: set[str] = set()  # one refusal per id and read, not per event
        for event in events:
            if isinstance(event, FrameRejected):
                self._rejected += 1
                self.log.warning("frame rejected", remote_addr=link.remote_addr,
                                 reason=event.error.code)
                admitted.append(event)
                continue
            if isinstance(event, UnidentifiedStream):
                self.log.warning("connection speaks no known protocol",
                                 remote_addr=link.remote_addr, head=event.head[:64].hex())
                admitted.append(event)
                continue
            if isinstance(event, ModemIdentified):
                link.iccid = event.iccid
                for carried in list(link.phy_ids):
                    if not await self._iccid_matches(link, carried, event.iccid):
                        return [], _Verdict.CLOSE
                admitted.append(event)
                continue
            self._frames_in += 1
            link.identified = True
            link.last_frame_at = now
            phy_id = event.phy_id
            if phy_id is None or phy_id in link.phy_ids:
                if (isinstance(event, DeviceHeartbeat) and event.iccid
                        and event.phy_id is not None
                        and not await self._iccid_matches(link, event.phy_id, event.iccid)):
                    return [], _Verdict.CLOSE
                admitted.append(event)
                continue
            if isinstance(event, _CONNECTION_EVENTS) or phy_id in refused:
                continue  # about a frame refused earlier: nothing to hand on
            if link.phy_ids and not self._may_add(link, phy_id):
                self._refuse_frame(link, phy_id, "second_id",
                                   "frame names a second device on one connection")
                refused.add(phy_id)
                verdict = _Verdict.WITHHOLD
                continue
            if not await self._admit_device(link, phy_id, _presented_iccid(link, phy_id, events),
                                            now):
                return [], _Verdict.CLOSE
            admitted.append(event)
        return admitted, verdict

    def _may_add(self, link: DeviceLink, phy_id: str) -> bool:
        """Whether *link*, which names other ids, may name *phy_id* too (an AP3000
        host relaying its slaves, identity.py)."""
        if link.protocol != "ap3000" or len(link.phy_ids) >= MAX_IDS_PER_HOST:
            return False
        return is_ap3000_host(phy_id) or any(is_ap3000_host(p) for p in link.phy_ids)

    async def _admit_device(self, link: DeviceLink, phy_id: str, iccid: str | None,
                            now: float) -> bool:
        """The first frame of *link* naming *phy_id*: route it here, or refuse it
        (False: close *link*)."""
        settings = self.settings
        identities = self.identities
        if settings.device_policy == "known" and (
                identities is None or not identities.provisioned(phy_id)):
            self._refuse_frame(link, phy_id, "unknown", "device not provisioned")
            return False
        if iccid is not None and not await self._iccid_matches(link, phy_id, iccid):
            return False
        old = self._links.get(phy_id)
        if old is not None and old is not link and not old.closed:
            window = settings.offline_after.get(link.protocol or "", 0.0)
            if old.host != link.host and now - old.last_frame_at <= window:
                action = settings.takeover_policy
                self.log.warning("device takeover", device=phy_id,
                                 old_remote_addr=old.remote_addr,
                                 remote_addr=link.remote_addr, action=action)
                await self._record("device.takeover", phy_id, {
                    "old_remote_addr": old.remote_addr, "remote_addr": link.remote_addr,
                    "action": action})
                if action == "keep":
                    self._refuse_frame(link, phy_id, "takeover_kept",
                                       "device is live on another connection")
                    return False
        self._links[phy_id] = link
        link.phy_ids[phy_id] = None
        if old is not None and old is not link:
            old.phy_ids.pop(phy_id, None)
            if not old.closed:
                self.log.info("connection replaced", phy_id=phy_id,
                              old_remote_addr=old.remote_addr, remote_addr=link.remote_addr)
                old.close()
        return True

    async def _iccid_matches(self, link: DeviceLink, phy_id: str, iccid: str) -> bool:
        """Check *iccid*, presented on *link* for *phy_id*, against the binding (the
        first one presented is bound). A mismatch raises ``device.identity_conflict``."""
        identities = self.identities
        if self.settings.iccid_binding != "pin" or identities is None:
            return True
        bound = identities.bound_iccid(phy_id)
        if bound is None:
            bound = await identities.bind(phy_id, iccid, link.connection.protocol)
        if bound == iccid:
            return True
        self._refuse_frame(link, phy_id, "identity_conflict", "ICCID does not match the device")
        await self._record("device.identity_conflict", phy_id, {
            "bound_iccid": bound, "presented_iccid": iccid, "remote_addr": link.remote_addr})
        return False

    def _refuse_frame(self, link: DeviceLink, phy_id: str, reason: str, words: str) -> None:
        self._refused += 1
        self.metrics.devices_refused.labels(reason).inc()
        self.log.warning("device refused", device=phy_id[:64], remote_addr=link.remote_addr,
                         reason=reason, detail=words)

    async def _record(self, event_type: str, phy_id: str, data: dict[str, object]) -> None:
        if self.identities is not None:
            try:
                await self.identities.record(event_type, phy_id, data)
            except Exception as err:  # the decision stands; the event is logged
                self.log.error("event not recorded", event_type=event_type, device=phy_id,
                               error=repr(err))

    # --- the frame log (api.md §11.3) ---------------------------------------------------------

    def _log_traffic(self, link: DeviceLink, direction: Direction, data: bytes,
                     kinds: list[str], phy_id: str | None, *, frames: bool,
                     now: float | None = None) -> None:
        """Hand *data* to the frame log within the connection's budgets."""
        settings = self.settings
        if not frames:
            room = settings.unidentified_max_bytes - link.garbage_logged
            if room <= 0:
                self.metrics.frame_log_skipped.labels("garbage").inc()
                return
            data = data[:room]
            link.garbage_logged += len(data)
        if now is None:
            now = self.clock()
        if now - link.log_window_start >= _LOG_WINDOW:
            link.log_window_start, link.log_window_bytes = now, 0
        if link.log_window_bytes + len(data) > settings.frame_log_max_bytes:
            self.metrics.frame_log_skipped.labels("budget").inc()
            return
        link.log_window_bytes += len(data)
        self.sink.traffic(link, direction, data, kinds, phy_id,
                          msg_id=_first_msg_id(data) if frames else None)

    def _log_frames(self, link: DeviceLink, data: bytes, verb: str) -> None:
        """One line per whole frame in *data* (``BKV frame received`` …)."""
        level = self.settings.frame_log_level
        for header in frame_headers(data):
            self.log.log(level, f"{header.protocol} frame {verb}", cmd=header.cmd,
                         gateway_id=header.device, msg_id=header.msg_id,
                         data_len=header.data_len, remote_addr=link.remote_addr)

    # --- the clocks of all connections --------------------------------------------------------

    async def _sweep(self) -> None:
        """Close silent connections, and run the protocol timers that are due."""
        settings = self.settings
        # A silent connection closes within a tenth of its limit (at most _SWEEP_EVERY).
        idle_every = min(_SWEEP_EVERY,
                         max(0.01, min(settings.idle_timeout, settings.unidentified_timeout) / 10))
        idle_at = trio.current_time() + idle_every
        while True:
            self._sweep_woken = trio.Event()
            if trio.current_time() >= idle_at:
                self._close_silent()
                idle_at = trio.current_time() + idle_every
            wait = idle_at - trio.current_time()
            now = self.clock()
            for link in list(self._timed):
                deadline = link.connection.next_deadline()
                if link.closed or deadline is None:
                    self._timed.discard(link)
                elif deadline <= now:
                    self._timed.discard(link)
                    assert self._nursery is not None  # serve() set it before starting us
                    self._nursery.start_soon(self._timer_due, link)
                else:
                    wait = min(wait, deadline - now)
            with trio.move_on_after(max(wait, 0.0)):
                await self._sweep_woken.wait()

    def _close_silent(self) -> None:
        settings = self.settings
        now = trio.current_time()
        idle_since = now - settings.idle_timeout
        unidentified_since = now - settings.unidentified_timeout
        # A link marked closed by a failed write still has its task until its socket
        # fails or falls silent, as any other; one whose socket is closed is ending.
        for link in list(self._open):
            if link.stream.socket.fileno() == -1:
                continue
            if not link.identified and link.accepted_at <= unidentified_since:
                self._close_unidentified(link, "unidentified_timeout")
                link.close()
            elif link.last_read <= idle_since:
                self.log.info("TCP read error", remote_addr=link.remote_addr,
                              error=f"read timeout error: silent for "
                                    f"{settings.idle_timeout:g} s")
                self.log.info("connection will close", remote_addr=link.remote_addr,
                              reason="idle")
                link.close()

    def _timer_moved(self, link: DeviceLink) -> None:
        """The connection may have an earlier protocol deadline now."""
        if link.connection.next_deadline() is not None:
            self._timed.add(link)
            self._sweep_woken.set()

    async def _timer_due(self, link: DeviceLink) -> None:
        if link.closed:
            return
        try:
            events = link.connection.handle_timeout(self.clock())
            # Retransmissions, and commands that waited for the spacing.
            sent = await self._write(link, "retransmission")
            if events or sent:  # the sink commits what it recorded of them
                await self.sink.device_events(link, events)
        except Exception as err:  # like a failure of the connection's own task
            self.log.error("connection failed", remote_addr=link.remote_addr, error=repr(err))
            link.close()
        else:
            self._timer_moved(link)

    async def _write(self, link: DeviceLink, kind: str,
                     phy_id: str | None = None) -> list[CommandSent]:
        """Write what the connection has for the device; return the commands written."""
        data = link.connection.data_to_send()
        return await self._write_data(link, data, link.connection.commands_sent(), kind,
                                      phy_id)

    async def _write_data(self, link: DeviceLink, data: bytes, sent: list[CommandSent],
                          kind: str, phy_id: str | None) -> list[CommandSent]:
        """Write *data*, which carries the command frames *sent*; hand those to the
        sink once written. Returns them (empty if nothing was written)."""
        if not data or link.closed:
            return []
        if phy_id is None:
            phy_id = _device_of(link, data)
        if self.log.enabled(self.settings.frame_log_level):
            self._log_frames(link, data, "sent")
        self._log_traffic(link, Direction.DOWN, data, [kind], phy_id, frames=True)
        lock = link.send_lock
        if lock is not None and lock.locked():  # another task's write waits: after it
            await lock.acquire()
            if link.closed:
                lock.release()
                return []
        else:
            # Straight to the socket: it nearly always takes a small answer whole,
            # with no wait and no trip through the scheduler. No await between the
            # checks above and the write: no other write can come in between.
            try:
                written = os.write(link.fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                link.closed = link.write_failed = True
                return []
            if written == len(data):
                self._bytes_out += len(data)
                if sent:
                    self.sink.commands_sent(link, sent)
                return sent
            data, self._bytes_out = data[written:], self._bytes_out + written
            if lock is None:
                lock = link.send_lock = trio.Lock()
            lock.acquire_nowait()
        try:
            with trio.move_on_after(self.settings.write_timeout) as scope:
                try:
                    await link.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    link.closed = link.write_failed = True
                    return []
            if scope.cancelled_caught:
                self.log.warning("connection will close", remote_addr=link.remote_addr,
                                 reason="write timeout")
                link.closed = link.write_failed = True
                return []
        finally:
            lock.release()
        self._bytes_out += len(data)
        if sent:
            self.sink.commands_sent(link, sent)
        return sent

    async def _close(self, link: DeviceLink) -> None:
        link.closed = True
        self._open.discard(link)
        left = self._per_host.get(link.host, 1) - 1
        if left > 0:
            self._per_host[link.host] = left
        else:
            self._per_host.pop(link.host, None)
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



class FrameHeader(NamedTuple):
    """The header fields of one BKV or AP3000 frame, for logs."""

    protocol: str  #: ``BKV`` or ``AP3000``
    cmd: str  #: The command code in hex (``0x1000``, ``0x21``).
    device: str  #: The gateway id (BKV) or the physical id (AP3000).
    msg_id: int  #: The frame's sequence number (BKV) or message id (AP3000).
    data_len: int  #: Bytes of payload.


_BKV_HEADERS = (b"\xfc\xfe", b"\xfc\xff")
_BKV_MIN = 21
_AP3000_HEADER = b"DNY"
_AP3000_MIN = 14
_MARKERS = (*_BKV_HEADERS, _AP3000_HEADER)


def frame_headers(data: bytes) -> Iterator[FrameHeader]:
    """The headers of the whole frames in *data*, read at their fixed offsets (no
    checksum check, no decoding: a log's look at bytes the connection decodes).

    Bytes that start no frame (an ICCID announcement, a keep-alive, the rest of a
    frame split across reads) are skipped.
    """
    at, end = 0, len(data)
    next_at = [0] * len(_MARKERS)  # where each marker is next found
    while at + _AP3000_MIN <= end:
        head = data[at:at + 2]
        if head in _BKV_HEADERS and at + _BKV_MIN <= end:
            size = int.from_bytes(data[at + 2:at + 4], "big") + 4
            if size >= _BKV_MIN and at + size <= end:
                yield FrameHeader("BKV", f"0x{int.from_bytes(data[at + 4:at + 6], 'big'):04x}",
                                  data[at + 11:at + 18].hex(),
                                  int.from_bytes(data[at + 6:at + 10], "big"), size - _BKV_MIN)
                at += size
                continue
        elif data[at:at + 3] == _AP3000_HEADER:
            size = int.from_bytes(data[at + 3:at + 5], "little") + 5
            if size >= _AP3000_MIN and at + size <= end:
                yield FrameHeader("AP3000", f"0x{data[at + 11]:02x}",
                                  format_phy_id(int.from_bytes(data[at + 5:at + 9], "little")),
                                  int.from_bytes(data[at + 9:at + 11], "little"),
                                  size - _AP3000_MIN)
                at += size
                continue
        # On to the next place a frame may start (searches, not a Python loop over
        # bytes). A marker's next place is searched for again only once passed, so
        # bytes full of one marker and none of another cost one pass, not one per
        # candidate.
        for n, marker in enumerate(_MARKERS):
            if next_at[n] <= at:
                found = data.find(marker, at + 1)
                next_at[n] = found if found >= 0 else end
        at = min(next_at)


def _first_msg_id(data: bytes) -> int | None:
    """The message id of the first whole frame in *data*: read in place when the
    data starts with one (nearly every read and write), else found by
    :func:`frame_headers`."""
    head = data[:2]
    end = len(data)
    if head in _BKV_HEADERS and end >= _BKV_MIN:
        size = int.from_bytes(data[2:4], "big") + 4
        if _BKV_MIN <= size <= end:
            return int.from_bytes(data[6:10], "big")
    elif head == b"DN" and data[:3] == _AP3000_HEADER and end >= _AP3000_MIN:
        size = int.from_bytes(data[3:5], "little") + 5
        if _AP3000_MIN <= size <= end:
            return int.from_bytes(data[9:11], "little")
    first = next(frame_headers(data), None)
    return None if first is None else first.msg_id


def _device_of(link: DeviceLink, data: bytes) -> str | None:
    """The device a write without a named device is for (a retransmission, a
    command released by the spacing): the connection's only device, else the
    device id in the first frame's header. ``frame_headers`` gives the AP3000
    physical id in its printed form and the BKV gateway id in lower-case hex,
    which is how both protocols' ``phy_id`` s are written."""
    if len(link.phy_ids) == 1:
        return next(iter(link.phy_ids))
    first = next(frame_headers(data), None)
    return None if first is None else first.device


def _has_frame(events: list[ConnectionEvent]) -> bool:
    """Whether a read's events include a decoded frame (not only garbage)."""
    return any(not isinstance(e, FrameRejected | UnidentifiedStream | ModemIdentified)
               for e in events)


def _presented_iccid(link: DeviceLink, phy_id: str,
                     events: list[ConnectionEvent]) -> str | None:
    """The ICCID presented for *phy_id*: the modem's announcement, else a heartbeat
    of the same read (BKV gateways send theirs first)."""
    if link.iccid is not None:
        return link.iccid
    for event in events:
        if isinstance(event, DeviceHeartbeat) and event.phy_id == phy_id and event.iccid:
            return event.iccid
    return None
