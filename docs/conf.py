"""Sphinx configuration for the bkvcodec documentation."""
from __future__ import annotations

import sys
from pathlib import Path

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
    # Sphinx's own stand-in for a type alias it has already expanded.
    ("py:class", r"TypeAliasForwardRef"),
    ("py:class", r"st\.(SearchStrategy|DrawFn)|m\.BkvMessage|a\.Ap3000Message"),
]

autodoc_member_order = "bysource"
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
