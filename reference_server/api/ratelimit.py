# Token buckets for the API's rate limits (api.md §6.2, §11.3): one bucket per API
# key for every route (charged once the request authenticated), one per device for
# the command endpoints, and one per remote address for failed authentications.
#
# A bucket holds up to ``burst`` tokens and gains ``rate`` tokens per second; a
# request takes one or is refused with the time until the next token. The time is
# passed in (a monotonic clock, trio.current_time() in the server), so this module
# is pure and tests need no sleeping.
#
# Memory is bounded: buckets live in an LRU-ordered dict. A bucket that has been
# idle long enough to refill completely is indistinguishable from a new one, so it
# is dropped as soon as it reaches the old end of the order; beyond ``max_buckets``
# the least recently used bucket is dropped even if not full, which at worst gives
# that key a fresh burst (never a lockout). An attacker cycling through keys thus
# costs O(max_buckets) memory, not unbounded.
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["TokenBucketLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Per-key token buckets.

    Args:
        rate: Tokens added per second (> 0).
        burst: Bucket size: requests allowed at once after a quiet period (≥ 1).
        max_buckets: Most buckets kept; the least recently used goes first.

    Raises:
        ValueError: A non-positive rate, burst or size.
    """

    def __init__(self, rate: float, burst: int, *, max_buckets: int = 10_000) -> None:
        if rate <= 0 or burst < 1 or max_buckets < 1:
            raise ValueError("rate, burst and max_buckets must be positive")
        self.rate = float(rate)
        self.burst = burst
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        # Seconds after which an untouched bucket is full again.
        self._refill_time = burst / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str, now: float) -> int | None:
        """Take one token from *key*'s bucket.

        Returns:
            None if the request may proceed, else the whole seconds (≥ 1) after
            which a token will be there (for ``Retry-After``).
        """
        self._evict(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(key)
            # max(): a clock that steps back must not mint tokens.
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = max(bucket.updated, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def check(self, key: str, now: float) -> int | None:
        """Whether *key*'s bucket holds a token, without taking it.

        Returns:
            None if it does, else the whole seconds (≥ 1) until it will.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens = min(float(self.burst),
                     bucket.tokens + max(0.0, now - bucket.updated) * self.rate)
        if tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            key, oldest = next(iter(buckets.items()))
            refilled = now - oldest.updated >= self._refill_time
            if not refilled and len(buckets) < self.max_buckets:
                break
            del buckets[key]
