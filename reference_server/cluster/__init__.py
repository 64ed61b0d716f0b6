# Running the server as several nodes: ownership of devices in Redis (registry.py),
# per-node mailboxes as Redis streams (mailbox.py), and a node's life and duties
# (node.py). Only imported when ``redis_url`` is configured.
"""Several server processes as one: device ownership, mailboxes and forwarded calls.

See the server guide's "Running on many machines".
"""
from __future__ import annotations

from .node import (
    CallMoved,
    ClusterNode,
    ClusterSettings,
    NodeHooks,
    OwnerUnavailable,
    default_node_id,
)
from .registry import Owner, OwnershipRegistry

__all__ = ["CallMoved", "ClusterNode", "ClusterSettings", "NodeHooks", "Owner",
           "OwnerUnavailable", "OwnershipRegistry", "default_node_id"]
