# Who holds which device, in Redis: the nodes' liveness, the device ownership
# registry and the sweeper's lease. One job: the keys and the atomic scripts over
# them; what a node does with an answer is node.py's.
#
# Keys (prefix "bkv" by default; one Redis database may hold several clusters under
# different prefixes):
#   {p}:node:{node}      a node's liveness: set with a short TTL, refreshed every
#                        second; a node whose key is gone is dead (or cut off, which
#                        must be treated the same way).
#   {p}:owner:{phy_id}   "node epoch": the node that holds the device's state, with
#                        a TTL its owner refreshes in batches; gone = nobody holds it.
#   {p}:epochs           a hash phy_id → the last epoch given out. Every claim takes
#                        a new, higher epoch, so an owner's refresh or release that
#                        names an older epoch is refused: a node that lost a device
#                        while it was away cannot take it back by refreshing.
#   {p}:sweeper          the node that sweeps orphaned devices (a lease).
#
# The scripts take several keys: on a Redis Cluster they would need hash tags; the
# reference layout is one Redis server (or a primary with replicas).
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import Redis

__all__ = ["Owner", "OwnershipRegistry"]

_CLAIM = """
local previous = redis.call('GET', KEYS[1])
local epoch = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. epoch, 'PX', ARGV[3])
return {epoch, previous or ''}
"""

# Refreshes the owner keys still holding the value given for them; returns the
# 1-based positions of the others (lost: another node claimed, or the key expired).
_REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

# Deletes the owner keys still holding the value given for them.
_RELEASE = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""

# The sweeper's lease: taken when free, extended when ours.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Owner:
    """A device's owner: the node and the epoch of its claim."""

    node: str
    epoch: int

    @property
    def value(self) -> str:
        """The owner key's value."""
        return f"{self.node} {self.epoch}"

    @classmethod
    def parse(cls, value: str | None) -> Owner | None:
        """The owner of a key's value, None for a missing or malformed one."""
        if not value:
            return None
        node, _, epoch = value.rpartition(" ")
        return cls(node, int(epoch)) if node and epoch.isdigit() else None


class OwnershipRegistry:
    """Liveness, ownership and the sweeper's lease of one node.

    Args:
        redis: A client with ``decode_responses=True``.
        node_id: This node.
        prefix: The cluster's key prefix.
        node_ttl: Seconds without a liveness refresh before a node counts as dead.
        owner_ttl: Seconds an owner key lives without a refresh.
    """

    def __init__(self, redis: Redis[str], node_id: str, *, prefix: str = "bkv",
                 node_ttl: float = 5.0, owner_ttl: float = 60.0) -> None:
        self.redis = redis
        self.node_id = node_id
        self.prefix = prefix
        self.node_ttl_ms = int(node_ttl * 1000)
        self.owner_ttl_ms = int(owner_ttl * 1000)
        self._claim = redis.register_script(_CLAIM)
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)
        self._lease = redis.register_script(_LEASE)

    def owner_key(self, phy_id: str) -> str:
        return f"{self.prefix}:owner:{phy_id}"

    def _node_key(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    # --- liveness --------------------------------------------------------------------

    async def announce(self, info: str) -> None:
        """This node is alive (call more often than ``node_ttl``)."""
        await self.redis.set(self._node_key(self.node_id), info, px=self.node_ttl_ms)

    async def retire(self) -> None:
        """This node stops: it no longer counts as alive."""
        await self.redis.delete([self._node_key(self.node_id)])

    async def alive(self, node: str) -> bool:
        """Whether *node* refreshed its liveness within ``node_ttl``."""
        return bool(await self.redis.exists([self._node_key(node)]))

    async def live_nodes(self) -> list[str]:
        """Every node alive now."""
        prefix = self._node_key("")
        return [key[len(prefix):] async for key in self.redis.scan_iter(match=prefix + "*")]

    async def node_info(self, node: str) -> str | None:
        """What *node* announced, None when it is not alive."""
        return await self.redis.get(self._node_key(node))

    # --- ownership -------------------------------------------------------------------

    async def owner(self, phy_id: str) -> Owner | None:
        """The device's recorded owner (alive or not)."""
        return Owner.parse(await self.redis.get(self.owner_key(phy_id)))

    async def owners(self, phy_ids: Sequence[str]) -> list[Owner | None]:
        """The recorded owners of several devices, in order."""
        if not phy_ids:
            return []
        values = await self.redis.mget([self.owner_key(p) for p in phy_ids])
        return [Owner.parse(v) for v in values]

    async def claim(self, phy_id: str) -> tuple[int, Owner | None]:
        """Make this node the owner under a new epoch.

        Returns:
            The new epoch and the owner the claim replaced (None if there was none).
        """
        answer: list[int | str] = await self._claim(
            keys=[self.owner_key(phy_id), f"{self.prefix}:epochs"],
            args=[phy_id, self.node_id, self.owner_ttl_ms])
        epoch, previous = answer
        return int(epoch), Owner.parse(str(previous))

    async def refresh(self, owned: Sequence[tuple[str, int]]) -> list[str]:
        """Extend this node's claims on *owned* ``(phy_id, epoch)`` pairs.

        Returns:
            The devices this node no longer owns.
        """
        if not owned:
            return []
        lost: list[int] = await self._refresh(
            keys=[self.owner_key(phy_id) for phy_id, _ in owned],
            args=[self.owner_ttl_ms, *(Owner(self.node_id, e).value for _, e in owned)])
        return [owned[int(i) - 1][0] for i in lost]

    async def release(self, phy_id: str, epoch: int) -> bool:
        """Give the device up if this node still owns it under *epoch*."""
        return await self.release_many([(phy_id, epoch)]) == 1

    async def release_many(self, owned: Sequence[tuple[str, int]]) -> int:
        """Give up the claims on *owned* ``(phy_id, epoch)`` pairs still this node's;
        returns how many were."""
        if not owned:
            return 0
        released: int = await self._release(
            keys=[self.owner_key(phy_id) for phy_id, _ in owned],
            args=[Owner(self.node_id, epoch).value for _, epoch in owned])
        return released

    # --- the sweeper -----------------------------------------------------------------

    async def hold_sweeper_lease(self, seconds: float) -> bool:
        """Take or extend the sweeper's lease; False while another node holds it."""
        held: int = await self._lease(keys=[f"{self.prefix}:sweeper"],
                                 args=[self.node_id, int(seconds * 1000)])
        return bool(held)
