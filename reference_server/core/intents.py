# Intents: what the core wants done once a change is committed.
#
# The core decides; the shell (service.py) acts. An intent names its device and
# command by id, not by object, so the shell acts on what is current when the
# commit has happened: a device released to another node meanwhile is no longer
# served here, and its intents are dropped.
from __future__ import annotations

from dataclasses import dataclass

from bkvcodec import Command

from ..storage._records import CardSettlement

__all__ = ["AnswerCard", "CloseLink", "Dispatch", "Intent", "ReportCardDebit", "Send"]


@dataclass(frozen=True, slots=True)
class Send:
    """Hand a stored command to its device's connection, if it has one."""

    command_id: str
    command: Command


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The device came online: send what waits for it, oldest first."""

    phy_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerCard:
    """Answer a card swipe. With *command_id* (a BKV card answer that starts the
    charge), the answer is the order's start command: once written, the order's
    session learns it was sent."""

    phy_id: str
    request_id: int
    accept: bool
    balance_cents: int
    order_no: str | None = None
    command_id: str | None = None
    duration_s: int | None = None
    energy_wh: int | None = None


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the connection that carries the device: the one with *link_id*, the
    device's when the decision was made (a connection the device opened since is
    left alone); None: whichever carries it."""

    phy_id: str
    link_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ReportCardDebit:
    """Report a card debit that fell short (metrics and an error line). *settled*
    is filled in by the commit's write: the outcome is known only afterwards."""

    card_no: str
    order_no: str
    billed_cents: int
    settled: list[CardSettlement | None]


Intent = Send | Dispatch | AnswerCard | CloseLink | ReportCardDebit
