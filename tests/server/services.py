"""Real Redis (and PostgreSQL) for the cluster tests, on loopback.

``.ci/run`` starts both and exports their URLs (``BKV_TEST_REDIS_URL``,
``BKV_TEST_POSTGRES_URL``). Without a URL a test that needs the service is skipped
on a developer's machine, and fails under CI (``CI`` set): a CI run that silently
skipped the cluster tests would prove nothing.
"""
from __future__ import annotations

import os
import uuid

import pytest


def service_url(variable: str, what: str) -> str:
    """The URL in *variable*, or skip (fail under CI) naming *what* is missing."""
    url = os.environ.get(variable)
    if url:
        return url
    message = f"{what} is not available: set {variable} (.ci/run starts one)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def redis_url() -> str:
    """The test Redis server."""
    return service_url("BKV_TEST_REDIS_URL", "Redis")


def cluster_name() -> str:
    """A cluster name no other test shares (keys in Redis are prefixed by it)."""
    return f"test-{uuid.uuid4().hex[:12]}"
