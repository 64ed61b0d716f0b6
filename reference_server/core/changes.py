# Changes: the outcome of one decision, committed together by the shell.
#
# Memory never runs ahead of the database: the core updates its caches as it
# decides, and registers with the change how to put each update back. The shell
# commits the writes and events in one transaction; on a failure it runs the undo
# (newest first) and resumes the touched orders from their stored rows, and the
# intents are dropped with the rest.
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..storage._database import Database
from ..storage._records import NewEvent
from .intents import Intent

__all__ = ["Changes", "Op", "device_event", "new_id"]

#: A database write, run inside the change's transaction.
Op = Callable[[Database], object]


@dataclass(eq=False)
class Changes:
    """The writes of one state change, committed together, and what follows them."""

    ops: list[Op] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    #: What the shell does once the change is stored, in order.
    intents: list[Intent] = field(default_factory=list)
    #: Put the caches back as they were, if the commit fails (run newest first).
    undo: list[Callable[[], None]] = field(default_factory=list)
    #: The orders changed, by number: each puts its order back as its last stored
    #: row has it (called with the time of the rollback).
    touched: dict[str, Callable[[float], None]] = field(default_factory=dict)

    def write(self, op: Op) -> None:
        self.ops.append(op)

    def empty(self) -> bool:
        return not (self.ops or self.events or self.intents or self.undo or self.touched)

    def take(self) -> Changes:
        """Everything registered so far, leaving this one empty: a change is
        applied once, even if the object is committed again."""
        taken = Changes(self.ops, self.events, self.intents, self.undo, self.touched)
        self.ops, self.events, self.intents, self.undo = [], [], [], []
        self.touched = {}
        return taken


def device_event(event_type: str, phy_id: str, now: float,
                 data: Mapping[str, object]) -> NewEvent:
    """An outbox event about a device."""
    return NewEvent(event_id=f"{event_type}-{phy_id}-{new_id('e')}",
                    event_type=event_type, data={"device_phy_id": phy_id, **data},
                    created_at=int(now), device_phy_id=phy_id)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"
