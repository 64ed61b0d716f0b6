"""Sphinx directive ``.. bkv-catalogue::``: the BKV message catalogue, generated from
the codec's own dispatch tables so that the documentation cannot drift from the code."""
from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from bkvcodec import message_name
from bkvcodec._bkv.codec import _GN_CLASSES
from bkvcodec._bkv.packets import BKV_PACKETS


def _rows() -> list[tuple[str, str, str, str]]:
    from bkvcodec import Heartbeat, HeartbeatAck, OtaUpgrade

    rows = [
        ("``0x0000``", "", "up", Heartbeat.__name__),
        ("``0x0000``", "", "down", HeartbeatAck.__name__),
        ("``0x0007``", "", "down", OtaUpgrade.__name__),
    ]
    for cls, (sub, direction) in sorted(_GN_CLASSES.items(), key=lambda kv: kv[1][0]):
        container = cls.__dataclass_fields__["container"].default
        rows.append((f"``0x{container:04X}``", f"sub ``0x{sub:02X}``", direction.value,
                     cls.__name__))
    for (bkv_cmd, direction), (cls, _) in sorted(BKV_PACKETS.items(),
                                                 key=lambda kv: kv[0][0]):
        rows.append(("``0x1000``", f"bkv ``0x{bkv_cmd:04X}``", direction.value, cls.__name__))
    return rows


class BkvCatalogue(SphinxDirective):
    """Render the catalogue as a table."""

    def run(self) -> list[nodes.Node]:
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 12 14 8 26 22",
            "",
            "   * - command",
            "     - key",
            "     - direction",
            "     - class",
            "     - name (JSON ``message``)",
        ]
        import bkvcodec

        for command, key, direction, name in _rows():
            cls = getattr(bkvcodec, name)
            lines += [f"   * - {command}", f"     - {key}", f"     - {direction}",
                      f"     - :class:`~bkvcodec.{name}`", f"     - ``{message_name(cls)}``"]
        container = nodes.section()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("bkv-catalogue", BkvCatalogue)
    return {"parallel_read_safe": True}
