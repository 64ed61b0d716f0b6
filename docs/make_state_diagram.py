"""Render the order state machine's transition table as a Graphviz diagram and an
RST table, so that the documentation shows exactly what ``bkvcodec._session`` does.

Run by ``docs/conf.py`` on every build; ``python docs/make_state_diagram.py`` prints
the DOT source.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bkvcodec import OrderState, SessionInput
from bkvcodec._session import _TRANSITIONS

GENERATED = Path(__file__).parent / "_generated"
# Inputs that only keep the state and do nothing are left out of the picture
# (they are in the table below it).
_TERMINAL_COLOUR = "#d9ead3"


def _label(effect: object) -> str:
    name = getattr(effect, "__qualname__", "")
    return name.split(".")[0].lstrip("_") if name else ""


def edges() -> dict[tuple[OrderState, OrderState], list[str]]:
    """Inputs grouped by (state, next state), for every transition that does something."""
    grouped: dict[tuple[OrderState, OrderState], list[str]] = defaultdict(list)
    for (state, kind), (effect, next_state) in _TRANSITIONS.items():
        if effect is None and next_state is state:
            continue
        grouped[(state, next_state)].append(kind.value)
    return grouped


def dot_source() -> str:
    """The state diagram in the DOT language."""
    lines = ["digraph order {", '  rankdir=LR; node [shape=box, style="rounded,filled", '
             'fillcolor="#ffffff", fontname="sans-serif"]; edge [fontname="sans-serif", '
             "fontsize=10];"]
    for state in OrderState:
        colour = _TERMINAL_COLOUR if state.is_terminal else "#ffffff"
        lines.append(f'  {state.value} [label="{state.value}", fillcolor="{colour}"];')
    for (state, next_state), inputs in sorted(edges().items(),
                                              key=lambda kv: (kv[0][0].value, kv[0][1].value)):
        label = "\\n".join(sorted(inputs))
        lines.append(f'  {state.value} -> {next_state.value} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def table_rst() -> str:
    """Every (state, input) pair of the table as an RST list-table."""
    rows = [".. list-table::", "   :header-rows: 1", "", "   * - state", "     - input",
            "     - side effect", "     - next state"]
    order = {kind: i for i, kind in enumerate(SessionInput)}
    for (state, kind), (effect, next_state) in sorted(
            _TRANSITIONS.items(), key=lambda kv: (list(OrderState).index(kv[0][0]),
                                                  order[kv[0][1]])):
        rows += [f"   * - ``{state.value}``", f"     - ``{kind.value}``",
                 f"     - {_label(effect) or '—'}", f"     - ``{next_state.value}``"]
    return "\n".join(rows) + "\n"


def write() -> None:
    """Write ``_generated/session.dot`` and ``_generated/session-table.rst``."""
    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "session.dot").write_text(dot_source(), encoding="utf-8")
    (GENERATED / "session-table.rst").write_text(table_rst(), encoding="utf-8")


if __name__ == "__main__":
    print(dot_source(), end="")
