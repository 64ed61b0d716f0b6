# Fast __init__ for the frozen message dataclasses.
#
# A frozen dataclass's generated __init__ stores each field with a call to
# object.__setattr__ (it must get past the __setattr__ that makes the instance
# frozen), about 0.13 µs a field; for a 13-field message that costs more than the
# whole struct parse. ``fast_init`` replaces that __init__ with one of the same
# signature (keyword-only, same defaults) that writes the slots through their
# member descriptors, about 0.05 µs a field. Instances stay frozen: assignment
# still raises FrozenInstanceError. Apply it on top of
# ``@dataclass(frozen=True, slots=True, kw_only=True)``.
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

__all__ = ["fast_init", "positional_builder"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen slots dataclass *cls* a faster ``__init__`` with the same signature."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    namespace: dict[str, object] = {}
    params = []
    body = []
    for i, field in enumerate(fields):
        if field.default is not dataclasses.MISSING:
            namespace[f"default{i}"] = field.default
            params.append(f"{field.name}=default{i}")
        elif field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name}: default_factory is not supported")
        else:
            params.append(field.name)
        namespace[f"set{i}"] = getattr(cls, field.name).__set__
        body.append(f"    set{i}(self, {field.name})")
    source = f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    setattr(cls, "__init__", init)  # noqa: B010 - mypy forbids assigning a method
    return cls


def positional_builder(cls: type[T]) -> Callable[..., T]:
    """A function ``build(*values) -> cls`` taking every field positionally, in
    declaration order, for decoders that unpack a whole struct at once.

    It fills an instance of a private twin class with the same ``__slots__``
    (plain slot stores, no descriptor calls), then assigns ``__class__``, which
    CPython allows between classes of identical layout: about four times faster
    than writing through the frozen class's descriptors. A self-check at import
    time falls back to the descriptor writes if the interpreter refuses.
    """
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if tuple(getattr(cls, "__slots__", ())) == tuple(names):
        twin = type(f"_{cls.__name__}Filler", (), {"__slots__": tuple(names)})
        lines = [f"def build({', '.join(names)}):", "    self = new(twin)"]
        lines += [f"    self.{name} = {name}" for name in names]
        lines += ["    self.__class__ = cls", "    return self"]
        build = _compile(lines, {"new": object.__new__, "twin": twin, "cls": cls})
        try:
            probe: object = build(*range(len(names)))
        except TypeError:
            probe = None
        if type(probe) is cls and [getattr(probe, n) for n in names] == list(range(len(names))):
            return build
    namespace: dict[str, object] = {"new": object.__new__, "cls": cls}
    lines = [f"def build({', '.join(names)}):", "    self = new(cls)"]
    for i, name in enumerate(names):
        namespace[f"set{i}"] = getattr(cls, name).__set__
        lines.append(f"    set{i}(self, {name})")
    lines.append("    return self")
    return _compile(lines, namespace)


def _compile(lines: list[str], namespace: dict[str, object]) -> Callable[..., T]:
    exec("\n".join(lines), namespace)
    build = namespace["build"]
    assert callable(build)
    return build
