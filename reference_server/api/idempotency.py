# Idempotency-Key for POST …/charge (api.md §6.3): a repeat of a request within
# idempotency_ttl gets the first answer again instead of creating a second order.
#
# Reservation: the first request holds an in-process lock on (API key name,
# Idempotency-Key) while it runs; a concurrent repeat waits on that lock, then
# finds the stored answer and replays it. An in-process lock suffices because the
# server is one process (api.md §1); the answers themselves are stored in the
# database, so replays survive a restart.
#
# What is stored: the complete answer (status and body bytes) of any request that
# reached the service and got a definite answer, success or a 4xx refusal
# (port_busy, device_not_found, …), because repeating such a request would get
# the same answer or, worse, a different one. Answers that say nothing about the
# request (5xx, and the 400/401/413/429 given before the service was asked) are
# not stored, so a retry after them is a real retry.
#
# One transaction with the order (api.md §11.4): run() hands the request a recorder;
# the charge handler calls it inside the order's own transaction, so the order and
# its stored answer commit together or not at all. Were they separate, a crash (or a
# failed write) between them would leave an order whose retry creates a second one.
# An answer the request did not record that way (a refusal: no order exists) is
# stored on its own afterwards.
#
# Conflicts: each stored answer keeps a fingerprint of the request (path and
# parsed body). The same key with a different fingerprint is refused with 422
# idempotency_key_reused (IdempotencyKeyReused explains the choice of status).
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from .envelope import IdempotencyKeyReused, json_response

if TYPE_CHECKING:
    from starlette.responses import Response

    from ..logs import Logger
    from ..storage import AsyncDatabase, Database

__all__ = ["IDEMPOTENCY_REPLAYED_HEADER", "AnswerRecorder", "IdempotencyStore", "KeyedLocks"]

#: Set to ``true`` on a replayed answer.
IDEMPOTENCY_REPLAYED_HEADER = "Idempotency-Replayed"

_K = TypeVar("_K", bound=Hashable)

#: Stores an answer inside the caller's open transaction (see run()).
AnswerRecorder = Callable[["Database", "Response"], None]


class KeyedLocks(Generic[_K]):
    """One trio.Lock per key, existing only while someone holds or waits for it
    (so the table never grows beyond the requests in flight)."""

    def __init__(self) -> None:
        self._locks: dict[_K, tuple[trio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: _K) -> AsyncIterator[None]:
        """Hold the lock of *key* for the ``async with`` block."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = trio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class IdempotencyStore:
    """Runs requests at most once per (API key name, Idempotency-Key).

    Args:
        db: Where answers are stored.
        ttl: How long an answer is replayed, seconds.
        logger: Where a failure to store an answer is reported.
    """

    def __init__(self, db: AsyncDatabase, *, ttl: int, logger: Logger) -> None:
        self._db = db
        self.ttl = ttl
        self._logger = logger
        self._locks: KeyedLocks[tuple[str, str]] = KeyedLocks()

    async def run(self, key_name: str, idem_key: str, fingerprint: str, now: int,
                  produce: Callable[[AnswerRecorder], Awaitable[Response]]) -> Response:
        """The stored answer for this key, or *produce*'s answer, stored.

        Args:
            key_name: The API key's name (keys of different clients never collide).
            idem_key: The ``Idempotency-Key`` header.
            fingerprint: What the request asks for (see ``request_fingerprint``).
            now: The current Unix time.
            produce: Runs the request with a recorder to call inside the
                transaction that makes its change; an answer it did not record
                that way is stored afterwards unless it is a 5xx.

        Raises:
            IdempotencyKeyReused: The key was used with another fingerprint.
        """
        async with self._locks.hold((key_name, idem_key)):
            stored = await self._db.get_idempotency(key_name, idem_key, now, ttl=self.ttl)
            if stored is not None:
                if stored.request_hash != fingerprint:
                    raise IdempotencyKeyReused()
                return json_response(stored.response_json.encode(), status=stored.status_code,
                                     headers={IDEMPOTENCY_REPLAYED_HEADER: "true"})
            recorded: list[Response] = []

            def record(db: Database, response: Response) -> None:
                db.put_idempotency(
                    key_name, idem_key, now, ttl=self.ttl, status_code=response.status_code,
                    response_json=bytes(response.body).decode(), request_hash=fingerprint)
                recorded.append(response)

            response = await produce(record)
            if response.status_code < 500 and not any(r is response for r in recorded):
                try:
                    await self._db.put_idempotency(
                        key_name, idem_key, now, ttl=self.ttl, status_code=response.status_code,
                        response_json=bytes(response.body).decode(), request_hash=fingerprint)
                except Exception as err:
                    # The request was answered: answering 500 now would invite a
                    # retry that may get another answer. Answer, and report it.
                    self._logger.error("idempotency answer not stored", key_name=key_name,
                                       error=type(err).__name__)
            return response
