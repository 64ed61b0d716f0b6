"""Sphinx configuration for the bkvcodec documentation."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import make_state_diagram  # noqa: E402

import bkvcodec  # noqa: E402

make_state_diagram.write()

project = "bkvcodec"
author = "bkvcodec developers"
copyright = "2026, bkvcodec developers"
release = bkvcodec.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "myst_parser",
    "catalogue",
    "serverdocs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated"]
templates_path: list[str] = []
html_theme = "furo"
html_title = f"bkvcodec {release}"

nitpicky = True
# The Python standard library's inventory cannot be fetched in CI (no network),
# so references to its names are not checked.
nitpick_ignore_regex = [
    ("py:class", r"(int|str|bytes|bool|object|float|None|type|list|dict|tuple)"),
    ("py:class", r"(datetime|enum|collections\.abc|typing|hypothesis)\..*"),
    ("py:class", r"(ClassVar|TypeAlias|Sequence|Mapping|Iterable)"),
    ("py:class", r"hypothesis\.strategies\..*|SearchStrategy|DrawFn"),
    ("py:obj", r"typing\..*"),
    ("py:class", r"st\.(SearchStrategy|DrawFn)|m\.BkvMessage|a\.Ap3000Message"),
]

autodoc_member_order = "bysource"
# Signatures show ``StreamItem``, not ``bkvcodec.StreamItem``, when the name links.
python_use_unqualified_type_names = True
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_type_aliases = {
    "BkvMessage": "bkvcodec.bkv.BkvMessage", "m.BkvMessage": "bkvcodec.bkv.BkvMessage",
    "Ap3000Message": "bkvcodec.ap3000.Ap3000Message",
    "a.Ap3000Message": "bkvcodec.ap3000.Ap3000Message",
    "StreamItem": "bkvcodec.StreamItem", "ConnectionEvent": "bkvcodec.ConnectionEvent",
    "Command": "bkvcodec.Command", "DeviceInput": "bkvcodec.DeviceInput",
    "DeviceOutput": "bkvcodec.DeviceOutput", "OrderEvent": "bkvcodec.OrderEvent",
    "JsonItem": "bkvcodec.Frame", "Frame": "bkvcodec.Frame",
}
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
myst_heading_anchors = 2


# Sphinx writes an alias of autodoc_type_aliases that sits inside another type
# (``list[StreamItem]``, ``BkvMessage | None``) as ``TypeAliasForwardRef('…')``; put
# the alias's name back, so that signatures show it and link to it.
_FORWARD_REF = re.compile(r"TypeAliasForwardRef\('([\w.]+)'\)")


def _unwrap_aliases(app: Any, what: str, name: str, obj: object, options: object,
                    signature: str | None, return_annotation: str | None
                    ) -> tuple[str | None, str | None]:
    def fix(text: str | None) -> str | None:
        return None if text is None else _FORWARD_REF.sub(r"\1", text)
    return fix(signature), fix(return_annotation)


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _unwrap_aliases)
