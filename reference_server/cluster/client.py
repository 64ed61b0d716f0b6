# The one place coredis is imported. Loading some of its modules compares bytes with
# str (a set constant holding both), which `python -bb` (the test suite's command
# line, which turns such comparisons in our code into errors) turns into an error at
# import; the warning is silenced for the import only, not for our code. coredis
# imports its patterns (the pipeline a script call uses) lazily, at the first call:
# they are imported here, under the same guard.
"""The Redis client the cluster uses (coredis, which runs on trio through anyio)."""
from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", BytesWarning)
    import coredis
    import coredis.patterns.lock
    import coredis.patterns.pipeline
    import coredis.patterns.streams
    from coredis import PureToken
    from coredis.exceptions import (
        ResponseError,
        StreamConsumerGroupError,
        StreamDuplicateConsumerGroupError,
    )

Redis = coredis.Redis

__all__ = ["PureToken", "Redis", "ResponseError", "StreamConsumerGroupError",
           "StreamDuplicateConsumerGroupError", "connect"]


def connect(url: str) -> coredis.Redis[str]:
    """A client for *url* (``redis://host:port/db``) that returns text."""
    client: coredis.Redis[str] = coredis.Redis.from_url(url, decode_responses=True)
    return client
