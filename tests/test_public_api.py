"""The public surface of bkvcodec, pinned.

``tests/public_api.txt`` lists every public name of every public module with its
signature (classes: constructor and public methods; functions; data: type). A
change to the public API must change that file too, so that it shows up as a
deliberate diff in review. After an intended change, regenerate it with::

    python tests/test_public_api.py
"""
from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import bkvcodec

PINNED = Path(__file__).with_name("public_api.txt")
PUBLIC_MODULES = ("bkvcodec", "bkvcodec.ap3000", "bkvcodec.bkv", "bkvcodec.errors",
                  "bkvcodec.testing")
#: The protocol-neutral top level stays small (the wire messages have their own modules).
MAX_TOP_LEVEL_NAMES = 90


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"


def _describe_class(qualified: str, cls: type) -> list[str]:
    bases = ", ".join(b.__name__ for b in cls.__bases__ if b is not object)
    head = f"class {qualified}({bases})" if bases else f"class {qualified}"
    if issubclass(cls, enum.Enum):
        return [head + ": " + ", ".join(f"{m.name}={m.value!r}" for m in cls)]
    lines = [head + _signature(cls)]
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, staticmethod | classmethod):
            kind = type(member).__name__
            lines.append(f"    {kind} {name}{_signature(member.__func__)}")
        elif inspect.isfunction(member):
            lines.append(f"    def {name}{_signature(member)}")
        elif isinstance(member, property):
            lines.append(f"    property {name}")
    return lines


def describe(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    lines = [f"module {module_name}"]
    for name in module.__all__:
        obj = getattr(module, name)
        qualified = f"{module_name}.{name}"
        if inspect.isclass(obj):
            lines += _describe_class(qualified, obj)
        elif inspect.isfunction(obj):
            lines.append(f"def {qualified}{_signature(obj)}")
        else:
            lines.append(f"data {qualified}: {type(obj).__name__}")
    return lines


def surface() -> str:
    return "\n".join(line for name in PUBLIC_MODULES for line in describe(name)) + "\n"


def test_the_public_surface_is_the_pinned_one() -> None:
    assert surface() == PINNED.read_text(encoding="utf-8"), (
        "the public API changed: if that is intended, run `python tests/test_public_api.py` "
        "and commit tests/public_api.txt with a CHANGELOG entry")


def test_every_other_module_is_private() -> None:
    public = set(PUBLIC_MODULES)
    for info in pkgutil.walk_packages(bkvcodec.__path__, "bkvcodec."):
        parts = info.name.split(".")
        if info.name not in public and not any(p.startswith("_") for p in parts[1:]):
            raise AssertionError(f"{info.name} is neither public nor private (_name)")


def test_all_is_sorted_and_complete() -> None:
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        exported = module.__all__
        assert len(set(exported)) == len(exported), name
        for attr in exported:
            assert hasattr(module, attr), f"{name}.{attr}"


def test_the_top_level_is_protocol_neutral_and_small() -> None:
    assert len(bkvcodec.__all__) <= MAX_TOP_LEVEL_NAMES
    assert not [n for n in bkvcodec.__all__ if n.startswith(("Ap3000", "Bkv")) and
                n != "BkvError"]


if __name__ == "__main__":
    PINNED.write_text(surface(), encoding="utf-8")
    print(f"wrote {PINNED} ({len(surface().splitlines())} lines)", file=sys.stderr)
