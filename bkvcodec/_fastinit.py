# Fast frozen dataclasses: cheap to create and cheap to instantiate.
#
# ``frozen_dataclass`` makes the same class as
# ``@dataclass(frozen=True, slots=True, kw_only=True)`` and ``frozen_message`` the
# same with an ``__init__`` without annotations, at a fraction of the creation
# cost. The standard decorator compiles six small functions per class (__init__,
# __repr__, __eq__, __hash__, __setattr__, __delattr__); with some 200 message,
# event and command classes that was most of ``import bkvcodec``. Here only
# ``__init__`` is generated code (its signature must be the real one, for users,
# the documentation and the pinned public surface), compiled once per shape of
# class and given each class's parameter names with ``CodeType.replace``; the
# others are closures over the class's field names with the standard ones'
# results: the same repr, equality and hash over the same fields,
# FrozenInstanceError on assignment or deletion, pickling through
# __getstate__/__setstate__. ``dataclasses`` itself still does the fields and the
# slots, so the class is a dataclass in every respect it looks at (``fields``,
# ``__dataclass_params__``, ``replace``, ``asdict``); tests/test_import_time.py
# compares the classes with standard ones. ``frozen_record`` is the same for
# ``@dataclass(frozen=True, slots=True)`` (positional fields).
# For mypy the decorators are ``dataclass_transform``s (frozen; keyword-only but for
# ``frozen_record``).
#
# The generated __init__ is faster too. A frozen dataclass's own stores each field
# with a call to object.__setattr__ (it must get past the __setattr__ that makes
# the instance frozen), about 0.13 µs a field; for a 13-field message that costs
# more than the whole struct parse. This one writes the slots through their member
# descriptors, about 0.05 µs a field, then calls ``__post_init__`` if there is one.
from __future__ import annotations

import dataclasses
import inspect
import reprlib
import sys
from collections.abc import Callable
from operator import attrgetter
from types import CellType, CodeType, FunctionType
from typing import TypeVar, dataclass_transform

__all__ = ["frozen_dataclass", "frozen_message", "frozen_record", "positional_builder",
           "slot_filler"]

T = TypeVar("T")

#: The classes made by frozen_dataclass and frozen_message.
_MADE: set[type] = set()


@dataclass_transform(frozen_default=True, kw_only_default=True,
                     field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen_dataclass(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True, slots=True, kw_only=True)``, cheaper to create and
    with a faster ``__init__`` (annotated like the standard one)."""
    return _frozen(cls, annotate=True, kw_only=True)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen_record(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True, slots=True)`` (positional fields), cheaper to create
    and with a faster ``__init__``."""
    return _frozen(cls, annotate=True, kw_only=False)


@dataclass_transform(frozen_default=True, kw_only_default=True,
                     field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen_message(cls: type[T]) -> type[T]:
    """:func:`frozen_dataclass` with an ``__init__`` without annotations (the
    signature the wire messages have always had)."""
    return _frozen(cls, annotate=False, kw_only=True)


def _frozen(cls: type[T], *, annotate: bool, kw_only: bool) -> type[T]:
    own = dict(vars(cls))
    if "__setattr__" in own or "__delattr__" in own:
        raise TypeError(f"cannot overwrite attribute __setattr__ in class {cls.__name__}")
    # The standard decorator does the field bookkeeping and the slots; it generates
    # no method (frozen=False: __setattr__ and __delattr__ come below). It refuses
    # a non-frozen class over a frozen base, so the bases made here say "not
    # frozen" for that moment.
    for base in cls.__mro__[1:]:
        if base not in _MADE and not getattr(
                getattr(base, "__dataclass_params__", None), "frozen", True):
            raise TypeError("cannot inherit frozen dataclass from a non-frozen one")
    bases = [base for base in cls.__mro__[1:] if base in _MADE]
    for base in bases:
        base.__dataclass_params__.frozen = False  # type: ignore[attr-defined]
    try:
        cls = dataclasses.dataclass(
            init=False, repr=False, eq=False, slots=True, kw_only=kw_only)(cls)
    finally:
        for base in bases:
            base.__dataclass_params__.frozen = True  # type: ignore[attr-defined]
    _MADE.add(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = params.frozen = True
    names = tuple(f.name for f in fields)
    shown = tuple(f.name for f in fields if f.repr)
    compared = tuple(f.name for f in fields if f.compare)
    hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    methods = _methods(cls, names, shown, _key(compared), _key(hashed))
    # As the standard decorator: a __repr__ or __eq__ of the class body stays, and
    # so does an explicit __hash__ (not the None that defining __eq__ implies).
    keep: set[str] = {name for name in ("__repr__", "__eq__") if name in own}
    if own.get("__hash__", None) is not None or ("__hash__" in own and "__eq__" not in own):
        keep.add("__hash__")
    for name, method in methods.items():
        if name not in keep:
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)
    _set_fast_init(cls, annotate=annotate)
    if not own.get("__doc__"):
        # The standard decorator's docstring for a class without one.
        cls.__doc__ = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    return cls


def _key(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """The tuple of these fields of an instance (the standard methods compare tuples)."""
    if not names:
        return lambda self: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda self: (get(self),)
    return attrgetter(*names)


def _methods(cls: type, names: tuple[str, ...], shown: tuple[str, ...],
             compare_key: Callable[[object], tuple[object, ...]],
             hash_key: Callable[[object], tuple[object, ...]],
             ) -> dict[str, Callable[..., object]]:
    frozen_error = dataclasses.FrozenInstanceError
    # "(a={!r}, b={!r})": str.format does the reprs (field names hold no braces).
    form = "(" + ", ".join([f"{name}={{!r}}" for name in shown]) + ")"
    shown_values = _key(shown)

    @reprlib.recursive_repr()
    def __repr__(self: object) -> str:
        return self.__class__.__qualname__ + form.format(*shown_values(self))

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is self.__class__:
            return compare_key(self) == compare_key(other)
        return NotImplemented

    def __hash__(self: object) -> int:
        return hash(hash_key(self))

    def __setattr__(self: object, name: str, value: object) -> None:
        if type(self) is cls or name in names:
            raise frozen_error(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: object, name: str) -> None:
        if type(self) is cls or name in names:
            raise frozen_error(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    def __getstate__(self: object) -> list[object]:
        return [getattr(self, name) for name in names]

    def __setstate__(self: object, state: list[object]) -> None:
        for name, value in zip(names, state, strict=False):
            object.__setattr__(self, name, value)

    return {"__repr__": __repr__, "__eq__": __eq__, "__hash__": __hash__,
            "__setattr__": __setattr__, "__delattr__": __delattr__,
            "__getstate__": __getstate__, "__setstate__": __setstate__}


class _Factory:
    """The default of a field with a default_factory in a signature."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


#: Compiled __init__ bodies by shape (see _init_code).
_INIT_CODE: dict[tuple[tuple[tuple[bool, str], ...], bool], CodeType] = {}


def _init_code(shape: tuple[tuple[bool, str], ...], post_init: bool) -> CodeType:
    """The code of an __init__ for fields of this shape ((keyword-only, "required" /
    "default" / "factory") in field order), with parameters named ``p0``, ``p1`` ...
    Classes of the same shape share one compilation; each gets the code with its own
    parameter names (``CodeType.replace``), which costs a microsecond where compiling
    costs some 50."""
    key = (shape, post_init)
    code = _INIT_CODE.get(key)
    if code is not None:
        return code
    cells = ["_FACTORY"]
    positional: list[str] = []
    keyword: list[str] = []
    body = []
    for i, (kw_only, kind) in enumerate(shape):
        params = keyword if kw_only else positional
        if kind == "default":
            cells.append(f"_default{i}")
            params.append(f"p{i}=_default{i}")
        elif kind == "factory":
            # As the standard __init__: a marker default that shows as <factory>.
            cells.append(f"_factory{i}")
            params.append(f"p{i}=_FACTORY")
            body.append(f"if p{i} is _FACTORY: p{i} = _factory{i}()")
        else:
            params.append(f"p{i}")
        cells.append(f"_set{i}")
        body.append(f"_set{i}(self, p{i})")
    if post_init:
        body.append("self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = "\n".join([f"def __create__({', '.join(cells)}):",
                        f"  def __init__({signature}):",
                        *[f"    {line}" for line in body or ["pass"]],
                        "  return __init__"])
    local: dict[str, Callable[..., object]] = {}
    exec(source, {}, local)
    create = local["__create__"]
    code = next(const for const in create.__code__.co_consts if isinstance(const, CodeType))
    _INIT_CODE[key] = code
    return code


def _set_fast_init(cls: type, *, annotate: bool) -> None:
    fields = dataclasses.fields(cls)
    # What the __init__ uses reaches it as closure cells, so that its globals can be
    # the module's, as the standard one's are: typing.get_type_hints (and with it
    # the documentation) resolves the annotation strings there.
    cells: dict[str, object] = {"_FACTORY": _FACTORY}
    shape: list[tuple[bool, str]] = []
    positional: list[str] = []
    keyword: list[str] = []
    defaults: list[object] = []
    keyword_defaults: dict[str, object] = {}
    for i, field in enumerate(fields):
        if field.default is not dataclasses.MISSING:
            kind, default = "default", field.default
            cells[f"_default{i}"] = default
        elif field.default_factory is not dataclasses.MISSING:
            kind, default = "factory", _FACTORY
            cells[f"_factory{i}"] = field.default_factory
        else:
            kind, default = "required", dataclasses.MISSING
        cells[f"_set{i}"] = getattr(cls, field.name).__set__
        kw_only = field.kw_only is True
        shape.append((kw_only, kind))
        (keyword if kw_only else positional).append(field.name)
        if default is not dataclasses.MISSING:
            if kw_only:
                keyword_defaults[field.name] = default
            else:
                defaults.append(default)
    template = _init_code(tuple(shape), hasattr(cls, "__post_init__"))
    code = template.replace(co_varnames=("self", *positional, *keyword),
                            co_qualname=f"{cls.__qualname__}.__init__")
    module = sys.modules.get(cls.__module__)
    init = FunctionType(code, vars(module) if module is not None else {}, "__init__",
                        tuple(defaults) or None,
                        tuple(CellType(cells[name]) for name in code.co_freevars))
    init.__kwdefaults__ = keyword_defaults or None
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    if annotate:
        # The standard __init__'s annotations: the fields' (strings here) and None.
        init.__annotations__ = {
            **{field.name: field.type for field in fields}, "return": None}
    setattr(cls, "__init__", init)  # noqa: B010 - mypy forbids assigning a method


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
    twin = slot_filler(cls)
    if twin is not None:
        # One compilation per number of fields; each class gets the code with its
        # attribute names put in (attribute ``a3`` becomes the fourth field).
        template = _builder_code(len(names))
        attributes = dict(zip([f"a{i}" for i in range(len(names))], names, strict=True))
        code = template.replace(
            co_names=tuple(attributes.get(name, name) for name in template.co_names))
        build = FunctionType(code, {"new": object.__new__, "twin": twin, "cls": cls})
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


def slot_filler(cls: type) -> type | None:
    """A plain class with the same ``__slots__`` as the frozen dataclass *cls*, or
    None if the interpreter refuses the swap.

    ``obj = object.__new__(filler)``, plain attribute stores, then
    ``obj.__class__ = cls`` make an instance of *cls* (what :func:`positional_builder`
    does); a decoder whose hot path makes one object can do it inline and save the
    builder's call.
    """
    names = tuple(field.name for field in dataclasses.fields(cls))
    if tuple(getattr(cls, "__slots__", ())) != names:
        return None
    twin = type(f"_{cls.__name__}Filler", (), {"__slots__": names})
    probe: object = object.__new__(twin)
    for i, name in enumerate(names):
        setattr(probe, name, i)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    if type(probe) is not cls or [getattr(probe, n) for n in names] != list(range(len(names))):
        return None
    return twin


#: Compiled positional builders by number of fields.
_BUILDER_CODE: dict[int, CodeType] = {}


def _builder_code(count: int) -> CodeType:
    code = _BUILDER_CODE.get(count)
    if code is None:
        params = [f"p{i}" for i in range(count)]
        lines = [f"def build({', '.join(params)}):", "    self = new(twin)"]
        lines += [f"    self.a{i} = p{i}" for i in range(count)]
        lines += ["    self.__class__ = cls", "    return self"]
        code = _compile(lines, {}).__code__
        _BUILDER_CODE[count] = code
    return code


def _compile(lines: list[str], namespace: dict[str, object]) -> Callable[..., T]:
    exec("\n".join(lines), namespace)
    build = namespace["build"]
    assert callable(build)
    return build
