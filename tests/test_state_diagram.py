"""The documentation's state diagram covers the whole transition table."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

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


def test_the_committed_svg_is_drawn_from_the_current_table() -> None:
    # The SVG records the digest of the DOT source it was drawn from; regenerate it
    # with `python docs/make_state_diagram.py --svg` (needs Graphviz) when this fails.
    committed = make_state_diagram.SVG.read_text(encoding="utf-8")

    assert make_state_diagram.recorded_digest(committed) == make_state_diagram.source_digest()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_the_committed_svg_is_what_graphviz_draws() -> None:
    committed = make_state_diagram.SVG.read_text(encoding="utf-8")

    drawn = make_state_diagram.render_svg()

    # Layout details may differ between Graphviz releases; every state and label is there.
    for line in make_state_diagram.dot_source().splitlines()[2:-1]:
        name = line.split()[0]
        assert f"<title>{name}</title>" in committed
        assert f"<title>{name}</title>" in drawn
    assert committed.count("<g id=\"edge") == drawn.count("<g id=\"edge")
