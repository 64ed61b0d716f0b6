"""The documentation's state diagram covers the whole transition table."""
from __future__ import annotations

import sys
from pathlib import Path

from bkvcodec._session import _TRANSITIONS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs"))

import make_state_diagram


def test_diagram_shows_every_transition_that_does_something() -> None:
    dot = make_state_diagram.dot_source()

    for (state, kind), (effect, next_state) in _TRANSITIONS.items():
        if effect is None and next_state is state:
            continue
        assert f"{state.value} -> {next_state.value}" in dot
        assert kind.value in dot


def test_table_lists_every_pair() -> None:
    table = make_state_diagram.table_rst()

    rows = table.count("   * - ``")

    assert len(_TRANSITIONS) == rows
