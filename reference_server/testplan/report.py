# The test plan's report: one row per plan item with its verdict, the measured
# figure and the target, written as Markdown (for people) and JSON (for tools).
from __future__ import annotations

import enum
import json
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

__all__ = ["Item", "Report", "Verdict"]


class Verdict(enum.Enum):
    """The outcome of one plan item."""

    PASS = "pass"
    FAIL = "fail"
    #: Cannot be run here (e.g. it needs the server's internals in attach mode).
    SKIP = "skip"
    #: The run was interrupted before the item was checked.
    NOT_RUN = "not_run"


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One row: a plan item and what was found.

    Attributes:
        item_id: The plan's numbering (``TC001``, ``matrix 3.2``, ``8.9 reliability`` …).
        title: What the item checks, in the plan's words.
        verdict: Pass, fail or skip.
        measured: The figure found (``"3.2 s"``, ``"1.4 %"``), or what happened.
        target: The plan's criterion (``"< 5 s"``), or the expected behaviour.
        detail: Why it failed, or notes.
        seconds: Wall-clock time the item took.
    """

    item_id: str
    title: str
    verdict: Verdict
    measured: str = ""
    target: str = ""
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """The rows in run order, and facts about the run."""

    items: list[Item] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    settings: dict[str, object] = field(default_factory=dict)
    #: The run was stopped (Ctrl-C) before every item was checked.
    interrupted: bool = False

    def add(self, item: Item) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[Item]) -> None:
        self.items.extend(items)

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.verdict is Verdict.FAIL]

    @property
    def passed(self) -> bool:
        """True when no item failed and the run was not interrupted (skips do not
        fail a run)."""
        return not self.failed and not self.interrupted

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for i in self.items if i.verdict is v) for v in Verdict}

    def outcome(self) -> str:
        """``PASSED``, ``FAILED`` or ``INTERRUPTED``."""
        if self.interrupted:
            return "INTERRUPTED"
        return "PASSED" if self.passed else "FAILED"

    def summary(self) -> str:
        """The counts in words: ``79 passed, 0 failed, 2 skipped`` (and not run)."""
        counts = self.counts()
        text = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        return text + (f", {counts['not_run']} not run" if counts["not_run"] else "")

    def to_json(self) -> str:
        return json.dumps({
            "started_at": round(self.started_at, 3),
            "machine": platform.platform(),
            "python": platform.python_version(),
            "settings": self.settings,
            "counts": self.counts(),
            "passed": self.passed,
            "interrupted": self.interrupted,
            "items": [{**asdict(i), "verdict": i.verdict.value} for i in self.items],
        }, ensure_ascii=False, indent=2)

    def to_markdown(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started_at))
        lines = [
            "# Test plan report", "",
            f"Run at {when} on {platform.platform()}, Python {platform.python_version()}.",
            "", f"**{self.outcome()}**: {self.summary()}.", "",
        ]
        if self.settings:
            lines += ["Settings: " + ", ".join(f"`{k}` = {v}" for k, v in self.settings.items()),
                      ""]
        lines += ["| item | check | result | measured | target | notes |",
                  "|---|---|---|---|---|---|"]
        for i in self.items:
            mark = {"pass": "pass", "fail": "**FAIL**", "skip": "skip",
                    "not_run": "not run"}[i.verdict.value]
            lines.append(f"| {_cell(i.item_id)} | {_cell(i.title)} | {mark} | "
                         f"{_cell(i.measured)} | {_cell(i.target)} | {_cell(i.detail)} |")
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
