# The nodes' mailboxes, in Redis streams: one stream per node, read by that node
# through a consumer group, and one reply stream per node. One job: moving
# messages; what they mean is node.py's.
#
# Why a stream per node and not one queue for all: a message for a device must
# reach the node that holds the device's socket. A shared queue popped by any node
# hands most messages to a node without the socket, which can only fail them or
# push them back. With a consumer group the stream keeps every message a node read
# but did not acknowledge (its pending entries); when the node dies, whoever takes
# its devices over claims those entries (take_over) instead of losing them.
#
# Keys: {p}:mailbox:{node} (stream, group "owner"), {p}:replies:{node} (stream,
# trimmed to the last few thousand replies: a reply is read within seconds or its
# caller has given up).
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .client import (
    PureToken,
    ResponseError,
    StreamConsumerGroupError,
    StreamDuplicateConsumerGroupError,
)

if TYPE_CHECKING:
    from coredis.response.types import StreamEntry

    from .client import Redis

__all__ = ["Mailbox", "Message"]

#: A message: its stream id and its fields.
Message = tuple[str, dict[str, str]]

_GROUP = "owner"
_REPLIES_KEPT = 10_000
#: How many entries of a dead node's mailbox one take-over looks at.
_TAKE_OVER_SCAN = 10_000


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _message(entry: StreamEntry) -> Message:
    return _text(entry.identifier), {_text(k): _text(v) for k, v in entry.field_values.items()}


class Mailbox:
    """This node's mailbox and reply stream, and posting to other nodes'.

    Args:
        redis: A client with ``decode_responses=True``.
        node_id: This node.
        prefix: The cluster's key prefix.
    """

    def __init__(self, redis: Redis[str], node_id: str, *, prefix: str = "bkv") -> None:
        self.redis = redis
        self.node_id = node_id
        self.prefix = prefix
        self._replies_seen = "$"

    def _box(self, node: str) -> str:
        return f"{self.prefix}:mailbox:{node}"

    def _replies(self, node: str) -> str:
        return f"{self.prefix}:replies:{node}"

    async def open(self) -> None:
        """Create this node's group (a restarted node keeps its pending entries)."""
        try:
            await self.redis.xgroup_create(self._box(self.node_id), _GROUP, identifier="0",
                                           mkstream=True)
        except StreamDuplicateConsumerGroupError:
            pass  # a restart: the group and its pending entries are still there
        # Replies posted before this start are for callers of an earlier life.
        last = await self.redis.xrevrange(self._replies(self.node_id), count=1)
        self._replies_seen = _text(last[0].identifier) if last else "0"

    async def post(self, node: str, fields: Mapping[str, str]) -> str:
        """Put a message into *node*'s mailbox; returns its id."""
        entry = await self.redis.xadd(self._box(node), dict(fields))
        assert entry is not None
        return _text(entry)

    async def receive(self, *, count: int, block_ms: int) -> list[Message]:
        """New messages of this node's mailbox (waits up to *block_ms*)."""
        answer = await self.redis.xreadgroup(_GROUP, self.node_id,
                                             streams={self._box(self.node_id): ">"},
                                             count=count, block=block_ms)
        return [_message(e) for entries in (answer or {}).values() for e in entries]

    async def unfinished(self) -> list[Message]:
        """The messages this node read in an earlier life and never acknowledged."""
        answer = await self.redis.xreadgroup(_GROUP, self.node_id,
                                             streams={self._box(self.node_id): "0"},
                                             count=_TAKE_OVER_SCAN)
        return [_message(e) for entries in (answer or {}).values() for e in entries
                if e.field_values]

    async def done(self, entry_id: str, *, node: str | None = None) -> None:
        """Acknowledge and drop a message (of this node's mailbox, or of *node*'s
        after a take-over)."""
        box = self._box(node or self.node_id)
        await self.redis.xack(box, _GROUP, [entry_id])
        await self.redis.xdel(box, [entry_id])

    async def take_over(self, node: str, phy_id: str) -> list[Message]:
        """Claim the unfinished messages about *phy_id* in dead *node*'s mailbox:
        those it read and never acknowledged, and those it never read.

        Acknowledge each with ``done(entry_id, node=node)`` once handled.
        """
        box = self._box(node)
        entries = await self.redis.xrange(box, count=_TAKE_OVER_SCAN)
        mine = [m[0] for m in map(_message, entries) if m[1].get("phy_id") == phy_id]
        if not mine:
            return []
        try:
            claimed = await self.redis.xclaim(box, _GROUP, self.node_id, 0, mine, force=True)
        except (StreamConsumerGroupError, ResponseError) as err:
            if "NOGROUP" not in str(err) and "No such key" not in str(err):
                raise
            return []
        return [_message(e) for e in claimed
                if not isinstance(e, (str, bytes)) and e.field_values]

    async def reply(self, node: str, fields: Mapping[str, str]) -> None:
        """Answer a caller on *node*."""
        await self.redis.xadd(self._replies(node), dict(fields), trim_strategy=PureToken.MAXLEN,
                              threshold=_REPLIES_KEPT, trim_operator=PureToken.APPROXIMATELY)

    async def replies(self, *, block_ms: int) -> list[dict[str, str]]:
        """Replies to this node's callers since the last call (waits up to *block_ms*)."""
        answer = await self.redis.xread({self._replies(self.node_id): self._replies_seen},
                                        count=500, block=block_ms)
        entries = [e for found in (answer or {}).values() for e in found]
        if entries:
            self._replies_seen = _text(entries[-1].identifier)
        return [_message(e)[1] for e in entries]
