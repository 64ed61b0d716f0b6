# Webhook delivery (api.md §6.4): the worker that empties the outbox.
#
# The outbox in SQLite is the only queue. Services record an event and its
# pending delivery in the same transaction as the state change, then call
# wake(); this worker claims the deliveries that are due, posts each in its own
# task and records the outcome. Nothing lives only in memory, so neither a
# receiver that is down nor a restart loses an event.
#
# Ordering comes from the claim: storage hands out at most one delivery per device
# and never a device's later event while an earlier one is pending (the one in
# flight included). Different devices are posted concurrently, at most
# MAX_IN_FLIGHT at a time.
#
# A claim leases its rows (next_attempt_at = now + lease). An attempt cut short by
# shutdown or a crash therefore leaves a pending row that comes due again when the
# lease runs out: delivery is at least once, and receivers drop repeats by
# event_id. Once a POST has been answered, its outcome is written under a short
# shield, so an ordinary shutdown does not turn a 2xx into a repeat. A 2xx is
# written by the dispatcher's next pass together with its claim (one database call
# a pass, not one a delivery), and at shutdown; a failure is written at once.
#
# Times in the database are whole Unix seconds from the injected clock; waits
# between passes are trio sleeps. The worker knows the retry times it sets
# itself; it polls every _POLL_INTERVAL for those it cannot know (rows leased or
# scheduled by an earlier run, redeliveries not followed by wake()).
from __future__ import annotations

import json
import math
import secrets
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import trio

from bkvcodec import __version__, sign

from .webhook_client import HttpxPoster, Poster, poster_for

if TYPE_CHECKING:
    from .config import Config
    from .logs import Logger
    from .metrics import Metrics
    from .storage import AsyncDatabase, DeliveryRecord, EventRecord

__all__ = ["MAX_IN_FLIGHT", "WebhookDeliverer", "backoff_delay", "webhook_request"]

#: Deliveries posted at once (each to a different device, or to no device).
MAX_IN_FLIGHT = 16

# A claim's lease is the attempt's timeout plus this margin for recording the
# outcome; only then may the row be handed out again. It is also how long a row
# claimed by a crashed process waits before the next run retries it.
_LEASE_MARGIN = 30
# How often the worker looks for due rows it was not told about (see the top).
_POLL_INTERVAL = 5.0
# How long a shutdown waits for the outcome of an answered POST to be written.
_RECORD_GRACE = 5.0
# Longest error text stored in last_error and logged.
_MAX_ERROR_CHARS = 200


def backoff_delay(failures: int, cap: int) -> int:
    """Seconds to wait after the *failures*-th failed attempt in a row: 1, 2, 4 …
    at most *cap*.

    >>> [backoff_delay(n, 5) for n in range(1, 6)]
    [1, 2, 4, 5, 5]
    """
    exponent = max(failures - 1, 0)
    # Shifting by more than the cap's bit length only gives a bigger number than the
    # cap; bounding the shift keeps a day of failures from building a huge int.
    return min(1 << min(exponent, cap.bit_length()), cap)


def webhook_request(event: EventRecord, *, path: str, secret: str | None, now: float,
                    nonce: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery attempt of *event*.

    The body is the compact JSON envelope. ``X-Timestamp`` is the attempt's time,
    so every retry is freshly signed with a fresh nonce; ``timestamp`` in the
    envelope stays the time the event happened.

    Args:
        event: The recorded event.
        path: The webhook URL's path, without scheme, host or query.
        secret: The webhook secret. None sends the delivery without
            ``X-Signature``: receivers then cannot tell it from a forgery, so
            configure a secret whenever the URL is reachable by others.
        now: The attempt's Unix time.
        nonce: A fresh random string.
    """
    envelope = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "device_phy_id": event.device_phy_id,
        "timestamp": event.created_at,
        "nonce": nonce,
        "data": event.data(),
    }
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        "X-Event-Id": event.event_id,
        "X-Event-Type": event.event_type,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
    }
    if secret is not None:
        headers["X-Signature"] = sign(secret, "POST", path, timestamp, nonce, body)
    return body, headers


class WebhookDeliverer:
    """Posts the outbox's pending deliveries to ``config.webhook_url``.

    Start :meth:`run` in the server's nursery; call :meth:`wake` after committing
    new events (or a redelivery) so that they go out at once.

    Args:
        db: The server's database (the outbox).
        config: Uses ``webhook_url``, ``webhook_secret``, ``webhook_timeout``,
            ``webhook_max_backoff`` and ``webhook_retry_window``.
        logger: Gets one line per failed attempt and per dead letter.
        metrics: ``webhook_deliveries`` by outcome, ``webhook_latency``.
        clock: Unix time, for the database, ``X-Timestamp`` and the retry window.
        client: An httpx client to post with (a test's mock transport, say; not
            closed here). When None, :meth:`run` posts with
            :func:`~reference_server.webhook_client.poster_for` and closes it when it
            ends.

    Delivery is at least once: an attempt cut short by a shutdown or crash is
    made again after its claim's lease (``webhook_timeout`` + 30 s), so
    receivers drop repeats by ``event_id``.

    .. note:: The retry window counts from the event's ``created_at`` (the
       outbox keeps no first-attempt time). A redelivered event older than the
       window therefore gets one attempt, and is dead again if that fails.
    """

    def __init__(self, db: AsyncDatabase, config: Config, logger: Logger, metrics: Metrics,
                 *, clock: Callable[[], float] = time.time,
                 client: httpx.AsyncClient | None = None) -> None:
        self._db = db
        self._config = config
        self._log = logger
        self._metrics = metrics
        self._clock = clock
        self._client = client
        self._lease = math.ceil(config.webhook_timeout) + _LEASE_MARGIN
        self._woken = trio.Event()
        self._running = False
        # Event seqs being posted now; a claim that returns one again (its lease
        # ran out while it was in flight) must not start a second attempt.
        self._in_flight: set[int] = set()
        # Retry times this worker has written, so that it wakes up for them.
        self._retry_times: set[int] = set()
        # (event_seq, delivered_at, latency_ms) of 2xx answers not yet marked: the
        # next pass marks them with its claim, in one database call.
        self._delivered: list[tuple[int, int, int]] = []
        url = config.webhook_url
        parts = urllib.parse.urlsplit(url or "")
        # The signed path (api.md §10.5); an empty path is requested as "/".
        self._path = parts.path or "/"
        # The URL as logged: no user info (a password) and no query (often a token).
        userinfo, _, host = parts.netloc.rpartition("@")
        self._shown_url = f"{parts.scheme}://{host}{self._path}"
        self._hidden = [text for text in (parts.query, userinfo) if text]

    def wake(self) -> None:
        """Look for due deliveries now instead of at the next planned pass.

        Synchronous and cheap; call it from any trio task after committing events.
        """
        self._woken.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Deliver until cancelled.

        Without a ``webhook_url`` this waits forever and touches nothing: events
        are only recorded (``GET /events`` still serves them).

        Raises:
            RuntimeError: :meth:`run` is already running.
        """
        if self._running:
            raise RuntimeError("this WebhookDeliverer is already running")
        self._running = True
        try:
            url = self._config.webhook_url
            if url is None:
                task_status.started()
                await trio.sleep_forever()
            poster: Poster
            if self._client is not None:
                poster = HttpxPoster(self._client, url)
            else:
                poster = poster_for(url, max_connections=MAX_IN_FLIGHT,
                                    user_agent=f"bkvcodec-reference-server/{__version__}")
            try:
                async with trio.open_nursery() as nursery:
                    task_status.started()
                    self._log.info("webhook delivery started", url=self._shown_url,
                                   signed=self._config.webhook_secret is not None)
                    await self._dispatch(nursery, poster)
            finally:
                with trio.move_on_after(_RECORD_GRACE, shield=True):
                    await self._settle()
                    await poster.aclose()
        finally:
            self._running = False

    async def _settle(self) -> None:
        """Mark the deliveries answered 2xx since the last pass (at shutdown)."""
        delivered, self._delivered = self._delivered, []
        if delivered:
            await self._db.settle_and_claim(delivered, int(self._clock()), limit=0)
            self._in_flight.difference_update(seq for seq, _, _ in delivered)

    async def _dispatch(self, nursery: trio.Nursery, poster: Poster) -> None:
        while True:
            # A new Event before reading the clock: a wake() from here on (a new
            # event, a finished attempt) ends the wait below, and a clock change
            # that came before it is seen by this pass.
            self._woken = trio.Event()
            now = self._clock()
            delivered, self._delivered = self._delivered, []
            # The delivered ones leave the in-flight set with this pass's mark.
            free = MAX_IN_FLIGHT - len(self._in_flight) + len(delivered)
            if free > 0 or delivered:
                try:
                    claimed = await self._db.settle_and_claim(
                        delivered, int(now), limit=max(free, 0), lease=self._lease)
                except BaseException:
                    self._delivered[:0] = delivered  # marked by the next pass
                    raise
                # Marked now: they leave the in-flight set only here, so no claim
                # made before their mark can start them again.
                self._in_flight.difference_update(seq for seq, _, _ in delivered)
                for delivery in claimed:
                    seq = delivery.event.seq
                    if seq not in self._in_flight:
                        self._in_flight.add(seq)
                        nursery.start_soon(self._attempt, poster, delivery)
            self._retry_times = {t for t in self._retry_times if t > now}
            wait = _POLL_INTERVAL
            if self._retry_times:
                wait = min(wait, min(self._retry_times) - self._clock())
            with trio.move_on_after(max(wait, 0.0)):
                await self._woken.wait()

    async def _attempt(self, poster: Poster, delivery: DeliveryRecord) -> None:
        try:
            # Shielded: a shutdown lets a started attempt finish and be recorded
            # (at most webhook_timeout + the grace), so a clean restart repeats
            # nothing.
            with trio.CancelScope(shield=True):
                status, error = await self._post(poster, delivery.event)
                with trio.move_on_after(_RECORD_GRACE):
                    await self._record(delivery, status, error)
        finally:
            if not any(seq == delivery.event.seq for seq, _, _ in self._delivered):
                self._in_flight.discard(delivery.event.seq)  # else when marked
            self.wake()  # the device's next event may be due, and a slot is free

    async def _post(self, poster: Poster,
                    event: EventRecord) -> tuple[int | None, str | None]:
        """One POST. Returns the HTTP status (None without an answer) and an error
        text (None when delivered)."""
        body, headers = webhook_request(event, path=self._path,
                                        secret=self._config.webhook_secret,
                                        now=self._clock(), nonce=secrets.token_hex(16))
        timeout = self._config.webhook_timeout
        try:
            # The whole exchange, not each read, must finish in time (api.md §6.4).
            with trio.fail_after(timeout):
                status = await poster.post(body, headers)
        except trio.TooSlowError:
            return None, f"no answer within {timeout} s"
        except Exception as err:  # whatever breaks one POST fails that attempt only
            return None, self._describe(err)
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"

    def _describe(self, err: Exception) -> str:
        """The error as stored and logged, without the URL's query or user info."""
        text = str(err).replace(self._config.webhook_url or "", self._shown_url)
        for hidden in self._hidden:
            text = text.replace(hidden, "<hidden>")
        return f"{type(err).__name__}: {text}" if text else type(err).__name__

    async def _record(self, delivery: DeliveryRecord, status: int | None,
                      error: str | None) -> None:
        event = delivery.event
        now = self._clock()
        if error is None:
            # Marked by the dispatcher's next pass, with its claim (woken at once);
            # a crash before that delivers the event again (at least once). The
            # row's lease keeps it from being claimed again meanwhile.
            latency = max(now - event.created_at, 0.0)
            self._delivered.append((event.seq, int(now), round(latency * 1000)))
            self._metrics.child(self._metrics.webhook_deliveries, "delivered").inc()
            self._metrics.webhook_latency.observe(latency)
            self._log.debug("webhook delivered", event_id=event.event_id, status=status,
                            attempt=delivery.attempts + 1, latency_ms=round(latency * 1000))
            return
        error = error[:_MAX_ERROR_CHARS]
        attempt = delivery.attempts + 1
        delay = backoff_delay(attempt, self._config.webhook_max_backoff)
        retry_at = math.ceil(now + delay)
        # Every attempt falls inside the window; one that would not is not made.
        if retry_at > event.created_at + self._config.webhook_retry_window:
            await self._db.mark_delivery_dead(event.seq, error=error)
            self._metrics.webhook_deliveries.labels(outcome="dead").inc()
            self._log.error("webhook delivery dead-lettered", event_id=event.event_id,
                            event_type=event.event_type, attempts=attempt, status=status,
                            error=error)
            return
        await self._db.mark_delivery_failed(event.seq, error=error, retry_at=retry_at)
        self._retry_times.add(retry_at)
        self._metrics.webhook_deliveries.labels(outcome="failed").inc()
        self._log.warning("webhook delivery failed", event_id=event.event_id,
                          event_type=event.event_type, attempt=attempt, status=status,
                          error=error, retry_in=delay, retry_at=retry_at)
