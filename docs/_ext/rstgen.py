"""What the docs extensions share: turning generated reStructuredText into nodes."""
from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def parse(directive: SphinxDirective, lines: list[str]) -> list[nodes.Node]:
    """*lines* of reStructuredText, parsed in the directive's document."""
    container = nodes.section()
    container.document = directive.state.document
    directive.state.nested_parse(StringList(lines, "<generated>"), 0, container)
    return list(container.children)


def cell(text: str) -> str:
    """*text* as a table cell (an empty one stays a cell)."""
    return text.replace("|", "\\|") if text else " "
