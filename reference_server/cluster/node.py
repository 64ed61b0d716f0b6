# One server process as a node of a cluster: its liveness, the devices it owns,
# its mailbox, calls forwarded to other nodes and the sweeper's round.
#
# The rule everything follows: a device's state (its open orders with their
# sessions, its commands in flight, its ports) lives on exactly one node, the
# device's owner, and only the owner changes it. The owner is the node that holds
# the device's socket; for a device without a socket, the node that last needed it
# (an API call, or the sweeper adopting it). So:
#
# * An API call about a device on node B, whose owner is A, is forwarded to A's
#   mailbox; A runs it as if it had come in itself and replies; B answers the
#   client. With no live owner, B claims the device and runs the call itself.
# * A device that connects to B while A owns it: B asks A to let go (A drops the
#   device's state and closes its socket if it still has one), then claims it under
#   a new epoch and loads the device's state from the database. A dead A cannot
#   answer: B waits only until A's liveness key has expired.
# * Timers (start timeout, lost order, offline) run on the owner, as on a single
#   server: the owner has the sessions in memory. A node that dies takes its timers
#   with it; the sweeper, one node elected by a lease, adopts every device that
#   the database shows online or with an open order and that no live node owns,
#   so its timers run again there.
# * The owner refreshes its claims in batches; a claim it finds taken (a newer
#   epoch) is dropped at once, with the socket.
#
# Messages (fields of a mailbox entry):
#   kind=call     call_id, phy_id, from, call (JSON: the API call to run)
#   kind=release  phy_id, epoch (the claim that asks), from, call_id
#   kind=changed  change (what shared state another node changed: "identities")
# Replies (fields of a reply entry): call_id, status ("ok", "moved", "failed"), body.
from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..logs import Logger
from .client import connect
from .mailbox import Mailbox, Message
from .registry import Owner, OwnershipRegistry

__all__ = ["CallMoved", "ClusterNode", "ClusterSettings", "NodeHooks", "OwnerUnavailable",
           "default_node_id"]

#: Seconds between two liveness refreshes (a fifth of the node TTL).
_ANNOUNCE_SHARE = 5
#: How many owner keys one refresh script handles.
_REFRESH_CHUNK = 2_000
#: Milliseconds a mailbox read waits for a message.
_BLOCK_MS = 1_000
#: Seconds the sweeper waits between rounds; its lease lasts three rounds.
_SWEEP_EVERY = 10.0
#: Seconds between two looks at the liveness of a node that is being waited for.
_LIVENESS_POLL = 0.5


def default_node_id() -> str:
    """``hostname-pid``: unique among the processes of a cluster."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """A node's cluster settings.

    Attributes:
        redis_url: The Redis server (``redis://host:port/db``).
        node_id: This node's unique name.
        prefix: The cluster's key prefix in Redis.
        node_ttl: Seconds of silence after which a node counts as dead.
        owner_ttl: Seconds an ownership claim lasts without a refresh.
        call_timeout: Seconds a forwarded call may take before the caller gives up.
        http_address: ``host:port`` of this node's API, announced to the others.
    """

    redis_url: str
    node_id: str
    prefix: str = "bkv"
    node_ttl: float = 5.0
    owner_ttl: float = 60.0
    call_timeout: float = 10.0
    http_address: str = ""


@dataclass(slots=True)
class NodeHooks:
    """What the node asks of the server it is part of.

    Attributes:
        run_call: Runs a forwarded API call here; returns the reply's body.
        release: Drops a device's state and closes its socket (another node
            claimed it, or this node's claim lapsed).
        owned: The devices this node owns, with the epochs of its claims.
        orphans: Devices the database shows online or with open orders.
        adopt: Takes a device without a socket over (the sweeper's adoption).
        changed: Another node changed shared state (``identities``): reload it.
    """

    run_call: Callable[[str], Awaitable[str]]
    release: Callable[[str], Awaitable[None]]
    owned: Callable[[], Sequence[tuple[str, int]]]
    orphans: Callable[[], Awaitable[Sequence[str]]]
    adopt: Callable[[str], Awaitable[None]]
    changed: Callable[[str], Awaitable[None]]


class OwnerUnavailable(Exception):
    """The node holding a device did not answer a forwarded call in time."""


class CallMoved(Exception):
    """The node asked no longer owns the device (it moved meanwhile)."""


class ClusterNode:
    """This process's membership of a cluster.

    Start :meth:`run` in a nursery (``await nursery.start(node.run, hooks)``);
    until it has started, nothing else may be called.

    Args:
        settings: The node's settings.
        logger: Where the node logs.
    """

    def __init__(self, settings: ClusterSettings, logger: Logger) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.log = logger
        self._registry: OwnershipRegistry | None = None
        self._mailbox: Mailbox | None = None
        self._hooks: NodeHooks | None = None
        self._waiting: dict[str, tuple[trio.Event, list[dict[str, str]]]] = {}
        self._nursery: trio.Nursery | None = None
        #: Claims being made, by device: a second claim of the same device waits.
        self._claiming: dict[str, trio.Event] = {}
        #: The previous owners of devices claimed and not yet loaded.
        self._left_by: dict[str, set[str]] = {}
        self.is_sweeper = False

    @property
    def registry(self) -> OwnershipRegistry:
        assert self._registry is not None, "ClusterNode.run() has not started"
        return self._registry

    @property
    def mailbox(self) -> Mailbox:
        assert self._mailbox is not None, "ClusterNode.run() has not started"
        return self._mailbox

    async def run(self, hooks: NodeHooks, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join the cluster and serve it until cancelled."""
        settings = self.settings
        self._hooks = hooks
        redis = connect(settings.redis_url)
        async with redis:
            self._registry = OwnershipRegistry(redis, self.node_id, prefix=settings.prefix,
                                               node_ttl=settings.node_ttl,
                                               owner_ttl=settings.owner_ttl)
            self._mailbox = Mailbox(redis, self.node_id, prefix=settings.prefix)
            await self._mailbox.open()
            await self.registry.announce(settings.http_address)
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._announce)
                    nursery.start_soon(self._replies)
                    nursery.start_soon(self._refresh)
                    nursery.start_soon(self._sweep)
                    for message in await self.mailbox.unfinished():
                        nursery.start_soon(self._handle, message)
                    nursery.start_soon(self._receive)
                    self.log.info("cluster node joined", node=self.node_id,
                                  prefix=settings.prefix)
                    task_status.started()
            finally:
                # Leaving at once spares the others waiting out the liveness TTL, and
                # the devices given up are adopted at the sweeper's next round; a
                # connection already torn down by the cancellation makes them wait.
                with trio.CancelScope(shield=True), trio.move_on_after(3):
                    await self._leave(list(hooks.owned()))

    async def _leave(self, owned: list[tuple[str, int]]) -> None:
        # A client of its own: the node's one is torn down with the cancelled tasks.
        try:
            farewell = connect(self.settings.redis_url)
            async with farewell:
                registry = OwnershipRegistry(farewell, self.node_id,
                                             prefix=self.settings.prefix)
                await registry.retire()
                for start in range(0, len(owned), _REFRESH_CHUNK):
                    await registry.release_many(owned[start:start + _REFRESH_CHUNK])
            self.log.info("cluster node left", devices_given_up=len(owned))
        except Exception as err:
            self.log.warning("left the cluster without saying so; the others wait out "
                             "its liveness", error=repr(err))

    # --- ownership, for the service ----------------------------------------------------

    async def claim(self, phy_id: str) -> int:
        """Become the device's owner; returns the claim's epoch.

        A live owner elsewhere is asked to let go first, and waited for until it
        confirms or its liveness lapses. What a dead owner left unfinished in its
        mailbox about the device runs here once the service has loaded the device
        (:meth:`loaded`).
        """
        while (busy := self._claiming.get(phy_id)) is not None:
            await busy.wait()
        self._claiming[phy_id] = done = trio.Event()
        try:
            previous = await self.registry.owner(phy_id)
            if previous is not None and previous.node != self.node_id:
                await self._ask_release(previous, phy_id)
            epoch, replaced = await self.registry.claim(phy_id)
            if (replaced is not None and replaced.node != self.node_id
                    and replaced != previous):
                # Another node claimed in between: it must let go too.
                await self._ask_release(replaced, phy_id)
            self._left_by[phy_id] = {o.node for o in (previous, replaced)
                                     if o is not None and o.node != self.node_id}
            if previous is None:  # a first connection: one line per device at debug
                self.log.debug("device claimed", device=phy_id, epoch=epoch)
            else:
                self.log.info("device claimed", device=phy_id, epoch=epoch,
                              previous=previous.node)
            return epoch
        finally:
            del self._claiming[phy_id]
            done.set()

    async def loaded(self, phy_id: str) -> None:
        """The service loaded the device it claimed: run here what its previous
        owner, if dead, left unfinished about it in its mailbox."""
        for node in self._left_by.pop(phy_id, ()):
            await self._take_over_messages(node, phy_id)

    async def broadcast(self, change: str) -> None:
        """Tell every other live node that *change* happened, and wait until they
        have taken it in (or ``call_timeout`` has passed): an API call that changed
        shared state answers once every node acts on the change."""
        async with trio.open_nursery() as nursery:
            for node in await self.registry.live_nodes():
                if node != self.node_id:
                    nursery.start_soon(functools.partial(
                        self._request, node, {"kind": "changed", "change": change,
                                              "phy_id": ""},
                        timeout=self.settings.call_timeout))

    async def owner_elsewhere(self, phy_id: str) -> str | None:
        """The live node other than this one that owns the device, if any."""
        owner = await self.registry.owner(phy_id)
        if owner is None or owner.node == self.node_id:
            return None
        return owner.node if await self.registry.alive(owner.node) else None

    async def owner_of(self, phy_id: str) -> str | None:
        """The live node that owns the device (this one included), if any."""
        owner = await self.registry.owner(phy_id)
        if owner is None:
            return None
        if owner.node == self.node_id or await self.registry.alive(owner.node):
            return owner.node
        return None

    # --- forwarded calls, for the API -------------------------------------------------

    async def forward(self, node: str, phy_id: str, call: str) -> str:
        """Run an API call on *node*, the device's owner; returns the reply's body.

        Raises:
            CallMoved: *node* no longer owns the device.
            OwnerUnavailable: *node* did not answer within ``call_timeout`` (its
                mailbox keeps the call; whoever takes the device over runs it).
        """
        reply = await self._request(node, {"kind": "call", "phy_id": phy_id, "call": call},
                                    timeout=self.settings.call_timeout, device=phy_id)
        if reply is None:
            raise OwnerUnavailable(node)
        if reply.get("status") == "moved":
            raise CallMoved(node)
        return reply.get("body", "")

    async def _request(self, node: str, fields: dict[str, str], *, timeout: float,
                       device: str | None = None) -> dict[str, str] | None:
        """Post to *node* and wait for its reply (None: none in time). Should *node*
        die meanwhile, the wait ends; with a *device*, this node first adopts it,
        which runs the message here (see loaded()), and the reply comes from here."""
        assert self._hooks is not None
        call_id = uuid.uuid4().hex
        event = trio.Event()
        slot: list[dict[str, str]] = []
        self._waiting[call_id] = (event, slot)
        try:
            await self.mailbox.post(node, {**fields, "call_id": call_id,
                                           "from": self.node_id})
            adopted = False
            with trio.move_on_after(timeout):
                while not event.is_set():
                    with trio.move_on_after(_LIVENESS_POLL):
                        await event.wait()
                    if not event.is_set() and not adopted \
                            and not await self.registry.alive(node):
                        if device is None:
                            break
                        adopted = True
                        self.log.warning("owner died during a call; taking the device over",
                                         device=device, node=node)
                        await self._hooks.adopt(device)
            return slot[0] if slot else None
        finally:
            del self._waiting[call_id]

    async def _ask_release(self, owner: Owner, phy_id: str) -> None:
        if not await self.registry.alive(owner.node):
            return
        # A node that dies meanwhile stops being waited for once its liveness lapses.
        reply = await self._request(owner.node, {"kind": "release", "phy_id": phy_id,
                                                 "epoch": str(owner.epoch)},
                                    timeout=self.settings.node_ttl * 2)
        if reply is None:
            self.log.warning("previous owner did not let go; claiming anyway",
                             device=phy_id, node=owner.node)

    async def _take_over_messages(self, node: str, phy_id: str) -> None:
        """Run here what *node* (no longer the owner) left unfinished about *phy_id*."""
        if await self.registry.alive(node):
            return  # it answered the release; it finishes or bounces its own messages
        messages = await self.mailbox.take_over(node, phy_id)
        for entry_id, fields in messages:
            if fields.get("kind") == "call" and self._nursery is not None:
                self._nursery.start_soon(self._handle, (entry_id, fields), node)
            else:
                await self.mailbox.done(entry_id, node=node)
        if messages:
            self.log.info("unfinished messages taken over", device=phy_id, node=node,
                          messages=len(messages))

    # --- the node's tasks ----------------------------------------------------------------

    async def _announce(self) -> None:
        while True:
            await trio.sleep(self.settings.node_ttl / _ANNOUNCE_SHARE)
            try:
                await self.registry.announce(self.settings.http_address)
            except Exception as err:  # Redis away: retried at the next beat
                self.log.error("cluster liveness not refreshed", error=repr(err))

    async def _receive(self) -> None:
        assert self._nursery is not None
        while True:
            try:
                messages = await self.mailbox.receive(count=100, block_ms=_BLOCK_MS)
            except Exception as err:
                self.log.error("mailbox read failed", error=repr(err))
                await trio.sleep(1)
                continue
            for message in messages:
                self._nursery.start_soon(self._handle, message)

    async def _handle(self, message: Message, from_box: str | None = None) -> None:
        """Handle one mailbox message; acknowledged once handled (a crash before
        leaves it pending, for the next owner)."""
        assert self._hooks is not None
        entry_id, fields = message
        kind, phy_id = fields.get("kind"), fields.get("phy_id", "")
        reply: dict[str, str] = {"call_id": fields.get("call_id", ""), "status": "ok"}
        try:
            if kind == "release":
                await self._hooks.release(phy_id)
            elif kind == "changed":
                await self._hooks.changed(fields.get("change", ""))
            elif kind == "call":
                owner = await self.owner_of(phy_id)
                if owner is not None and owner != self.node_id:
                    reply["status"] = "moved"
                else:
                    reply["body"] = await self._hooks.run_call(fields.get("call", ""))
            else:
                self.log.warning("unknown mailbox message dropped", kind=kind)
        except Exception as err:
            self.log.error("mailbox message failed", kind=kind, device=phy_id,
                           error=repr(err))
            reply["status"] = "failed"
        try:
            if fields.get("from"):
                await self.mailbox.reply(fields["from"], reply)
            await self.mailbox.done(entry_id, node=from_box)
        except Exception as err:
            self.log.error("mailbox reply failed", kind=kind, device=phy_id, error=repr(err))

    async def _replies(self) -> None:
        while True:
            try:
                replies = await self.mailbox.replies(block_ms=_BLOCK_MS)
            except Exception as err:
                self.log.error("reply stream read failed", error=repr(err))
                await trio.sleep(1)
                continue
            for reply in replies:
                waiting = self._waiting.get(reply.get("call_id", ""))
                if waiting is not None:
                    waiting[1].append(reply)
                    waiting[0].set()

    async def _refresh(self) -> None:
        assert self._hooks is not None
        while True:
            await trio.sleep(self.settings.owner_ttl / 4)
            owned = list(self._hooks.owned())
            try:
                lost: list[str] = []
                for start in range(0, len(owned), _REFRESH_CHUNK):
                    lost += await self.registry.refresh(owned[start:start + _REFRESH_CHUNK])
            except Exception as err:
                self.log.error("ownership not refreshed", error=repr(err))
                continue
            for phy_id in lost:
                self.log.warning("device claimed elsewhere; letting go", device=phy_id)
                await self._hooks.release(phy_id)

    async def _sweep(self) -> None:
        """The elected sweeper adopts devices that no live node owns but that have
        something to time: online in the database, or an open order."""
        assert self._hooks is not None
        while True:
            await trio.sleep(_SWEEP_EVERY)
            try:
                self.is_sweeper = await self.registry.hold_sweeper_lease(_SWEEP_EVERY * 3)
                if not self.is_sweeper:
                    continue
                candidates = list(await self._hooks.orphans())
                owners = await self.registry.owners(candidates)
                nodes = {o.node for o in owners if o is not None}
                alive = {n for n in nodes if await self.registry.alive(n)}
                for phy_id, owner in zip(candidates, owners, strict=True):
                    if owner is None or owner.node not in alive:
                        await self._hooks.adopt(phy_id)
            except Exception as err:
                self.log.error("sweep failed", error=repr(err))

