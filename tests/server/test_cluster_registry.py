"""The cluster's Redis parts on a real Redis: ownership claims under epochs, the
sweeper's lease, and the nodes' mailboxes with their take-over."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from reference_server.cluster import Owner, OwnershipRegistry
from reference_server.cluster.client import Redis, connect
from reference_server.cluster.mailbox import Mailbox

from .services import cluster_name, redis_url

pytestmark = pytest.mark.trio


@pytest.fixture
async def redis() -> AsyncIterator[Redis[str]]:
    client = connect(redis_url())
    async with client:
        yield client


async def test_each_claim_takes_a_higher_epoch_and_names_the_owner_it_replaced(
        redis: Redis[str]) -> None:
    prefix = cluster_name()
    a = OwnershipRegistry(redis, "a", prefix=prefix)
    b = OwnershipRegistry(redis, "b", prefix=prefix)
    assert await a.owner("dev") is None
    assert await a.claim("dev") == (1, None)
    assert await b.claim("dev") == (2, Owner("a", 1))
    assert await a.owner("dev") == Owner("b", 2)
    assert await a.owners(["dev", "other"]) == [Owner("b", 2), None]


async def test_a_refresh_or_release_under_an_old_epoch_is_refused(
        redis: Redis[str]) -> None:
    prefix = cluster_name()
    a = OwnershipRegistry(redis, "a", prefix=prefix, owner_ttl=30)
    b = OwnershipRegistry(redis, "b", prefix=prefix)
    epoch_a, _ = await a.claim("one")
    await a.claim("two")
    await b.claim("one")
    # a still thinks it owns "one": its refresh tells it otherwise and leaves b's claim.
    assert await a.refresh([("one", epoch_a), ("two", 1)]) == ["one"]
    assert not await a.release("one", epoch_a)
    assert await a.owner("one") == Owner("b", 2)
    assert await redis.pttl(a.owner_key("two")) > 25_000
    assert await a.release("two", 1)
    assert await a.owner("two") is None


async def test_liveness_lapses_without_refresh(redis: Redis[str]) -> None:
    prefix = cluster_name()
    a = OwnershipRegistry(redis, "a", prefix=prefix, node_ttl=0.3)
    await a.announce("")
    assert await a.alive("a")
    assert await a.live_nodes() == ["a"]
    await trio.sleep(0.5)
    assert not await a.alive("a")
    await a.announce("")
    await a.retire()
    assert not await a.alive("a")


async def test_one_sweeper_at_a_time(redis: Redis[str]) -> None:
    prefix = cluster_name()
    a = OwnershipRegistry(redis, "a", prefix=prefix)
    b = OwnershipRegistry(redis, "b", prefix=prefix)
    assert await a.hold_sweeper_lease(0.3)
    assert not await b.hold_sweeper_lease(0.3)
    assert await a.hold_sweeper_lease(0.3)  # extended
    await trio.sleep(0.5)
    assert await b.hold_sweeper_lease(0.3)


async def test_a_mailbox_keeps_what_its_node_read_and_did_not_finish(
        redis: Redis[str]) -> None:
    prefix = cluster_name()
    a, b = Mailbox(redis, "a", prefix=prefix), Mailbox(redis, "b", prefix=prefix)
    await a.open()
    await b.open()
    first = await b.post("a", {"kind": "call", "phy_id": "dev-1", "call": "1"})
    await b.post("a", {"kind": "call", "phy_id": "dev-2", "call": "2"})
    received = await a.receive(count=10, block_ms=100)
    assert [f["call"] for _, f in received] == ["1", "2"]
    await a.done(received[1][0])
    # A restart of node a finds the message it read and never acknowledged.
    again = Mailbox(redis, "a", prefix=prefix)
    await again.open()
    assert [entry for entry, _ in await again.unfinished()] == [first]


async def test_a_dead_nodes_messages_about_a_device_are_taken_over(
        redis: Redis[str]) -> None:
    prefix = cluster_name()
    dead, heir = Mailbox(redis, "dead", prefix=prefix), Mailbox(redis, "heir", prefix=prefix)
    await dead.open()
    await heir.open()
    await heir.post("dead", {"kind": "call", "phy_id": "dev-1", "call": "read"})
    await dead.receive(count=1, block_ms=100)  # read, never finished
    await heir.post("dead", {"kind": "call", "phy_id": "dev-1", "call": "unread"})
    await heir.post("dead", {"kind": "call", "phy_id": "dev-2", "call": "other"})
    taken = await heir.take_over("dead", "dev-1")
    assert [f["call"] for _, f in taken] == ["read", "unread"]
    for entry, _ in taken:
        await heir.done(entry, node="dead")
    assert [f["call"] for _, f in await heir.take_over("dead", "dev-2")] == ["other"]
    assert await heir.take_over("dead", "dev-1") == []


async def test_replies_reach_the_node_that_asked(redis: Redis[str]) -> None:
    prefix = cluster_name()
    a, b = Mailbox(redis, "a", prefix=prefix), Mailbox(redis, "b", prefix=prefix)
    await a.open()
    await b.reply("a", {"call_id": "x", "status": "ok"})
    assert await a.replies(block_ms=100) == [{"call_id": "x", "status": "ok"}]
    assert await a.replies(block_ms=10) == []
