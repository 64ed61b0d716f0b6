"""reference_server: the thin trio server around bkvcodec.

It wires the sans-IO library to device TCP connections, the third-party HTTP API,
SQLite and webhooks (described in the contract page of the documentation). bkvcodec never
imports it.
It is its own distribution, ``bkvcodec-server`` (``reference_server/pyproject.toml``).
"""
from ._version import __version__

__all__ = ["__version__"]
