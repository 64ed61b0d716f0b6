"""``import bkvcodec`` stays light: the design that keeps it under 100 ms, pinned.

Most of the import used to be the ``dataclasses`` module compiling six small
functions for each of some 200 frozen message, event and command classes. They are
made by ``frozen_dataclass`` / ``frozen_message`` instead, which compile only
``__init__``. These tests check that no class of the package is made the expensive
way again, and that the classes made the cheap way behave exactly like standard
``@dataclass(frozen=True, slots=True, kw_only=True)`` ones. No timing here:
``bench/bench_import.py`` measures.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import pickle
import subprocess
import sys
import typing
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from bkvcodec._fastinit import frozen_dataclass, frozen_message, frozen_record

# The audit hook sees every compile() of generated source during the import and
# who asked for it: dataclasses' _create_fn is the expensive path.
_PROBE = """
import dataclasses, sys
from_dataclasses = []
compiled = 0
def hook(event, args):
    global compiled
    if event != "compile" or args[1] != "<string>":
        return
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_process_class" and (
                frame.f_code.co_filename == dataclasses.__file__):
            cls = frame.f_locals["cls"]
            from_dataclasses.append(f"{cls.__module__}.{cls.__qualname__}")
            return
        if frame.f_code.co_filename.endswith("_fastinit.py"):
            compiled += 1
            return
        frame = frame.f_back
sys.addaudithook(hook)
DEFERRED = DEFERRED_NAMES
import bkvcodec
from bkvcodec import _fastinit
deferred = [m for m in DEFERRED if m in sys.modules]
import json
print(json.dumps({"from_dataclasses": sorted(set(from_dataclasses)), "compiled": compiled,
                  "made": len(_fastinit._MADE),
                  "modules": sorted(m for m in sys.modules if m.startswith("bkvcodec")),
                  "deferred": deferred}))
"""


#: Standard modules ``import bkvcodec`` does not import (fractions pulls in decimal).
DEFERRED = ("fractions", "decimal", "json", "hmac")

#: The classes of ``import bkvcodec`` that the dataclasses module makes: mutable
#: bookkeeping (the cheap decorators are for frozen classes) and the AP3000 grammar's
#: two records. Add to it only a class that cannot be frozen.
STANDARD_DATACLASSES = {
    "bkvcodec._ap3000.device._Received", "bkvcodec._ap3000.grammar.Layout",
    "bkvcodec._ap3000.grammar.PlainField", "bkvcodec._bkv.device._Received",
    "bkvcodec._session._Input", "bkvcodec._tracker.InFlight", "bkvcodec._tracker._Queued",
}


def test_import_generates_no_dataclass_methods() -> None:
    probe_source = _PROBE.replace("DEFERRED_NAMES", repr(DEFERRED))
    result = subprocess.run([sys.executable, "-c", probe_source], capture_output=True,
                            text=True, check=True)
    probe = json.loads(result.stdout)
    # Every frozen class of the import is made the cheap way ...
    assert set(probe["from_dataclasses"]) <= STANDARD_DATACLASSES
    assert probe["made"] > 150
    # ... which compiles one __init__ per shape of class and one positional builder
    # per number of fields, shared (the standard decorator compiled six functions
    # for every class).
    assert 0 < probe["compiled"] < probe["made"] // 2
    # The wire messages are part of the import (decoding needs them).
    assert "bkvcodec._bkv.messages" in probe["modules"]
    assert "bkvcodec._ap3000.messages" in probe["modules"]
    # What only billing, signatures and webhooks need is imported when they run.
    assert probe["deferred"] == []


def test_every_frozen_slots_dataclass_of_the_package_is_made_cheaply() -> None:
    import bkvcodec.ap3000
    import bkvcodec.bkv
    import bkvcodec.errors
    import bkvcodec.testing  # noqa: F401
    from bkvcodec import _fastinit

    expensive = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("bkvcodec"):
            continue
        for obj in vars(module).values():
            if (inspect.isclass(obj) and obj.__module__ == name
                    and dataclasses.is_dataclass(obj) and "__slots__" in vars(obj)
                    and obj.__dataclass_params__.frozen and obj not in _fastinit._MADE):
                expensive.append(f"{name}.{obj.__qualname__}")
    assert expensive == [], "use frozen_dataclass / frozen_message (bkvcodec._fastinit)"


# --- the cheap classes are standard frozen dataclasses ----------------------------------------

calls: list[object] = []


@dataclass(frozen=True, slots=True, kw_only=True)
class StdBase:
    """A base."""

    a: int
    b: str = "x"


@dataclass(frozen=True, slots=True, kw_only=True)
class StdChild(StdBase):
    c: tuple[int, ...] = field(default=(), compare=False, repr=False)
    d: frozenset[int] = field(default_factory=frozenset)
    e: float | None = None

    def __post_init__(self) -> None:
        calls.append(("std", self.a))


@dataclass(frozen=True, slots=True, kw_only=True)
class StdEmpty:
    pass


@frozen_dataclass
class FastBase:
    """A base."""

    a: int
    b: str = "x"


@frozen_dataclass
class FastChild(FastBase):
    c: tuple[int, ...] = field(default=(), compare=False, repr=False)
    d: frozenset[int] = field(default_factory=frozenset)
    e: float | None = None

    def __post_init__(self) -> None:
        calls.append(("fast", self.a))


@frozen_dataclass
class FastEmpty:
    pass


@dataclass(frozen=True, slots=True)
class StdRecord:
    when: int
    label: str = ""

    def __repr__(self) -> str:
        return f"<{self.when}>"


@frozen_record
class FastRecord:
    when: int
    label: str = ""

    def __repr__(self) -> str:
        return f"<{self.when}>"


@frozen_message
class FastMessage:
    a: int
    b: str = "x"


PAIRS = [(StdBase, FastBase), (StdChild, FastChild), (StdEmpty, FastEmpty),
         (StdRecord, FastRecord)]


def _same(std: object, fast: object) -> bool:
    return str(std).replace("Std", "Fast") == str(fast)


@pytest.mark.parametrize(("std", "fast"), PAIRS)
def test_the_class_is_the_standard_one(std: type, fast: type) -> None:
    assert dataclasses.is_dataclass(fast)
    assert [(f.name, f.type, f.default, f.default_factory, f.init, f.repr, f.compare, f.hash,
             f.kw_only) for f in dataclasses.fields(std)] == [
        (f.name, f.type, f.default, f.default_factory, f.init, f.repr, f.compare, f.hash,
         f.kw_only) for f in dataclasses.fields(fast)]
    assert repr(std.__dataclass_params__) == repr(fast.__dataclass_params__)
    assert _same(inspect.signature(std), inspect.signature(fast))
    assert std.__init__.__annotations__ == fast.__init__.__annotations__
    # The annotation strings resolve in the class's module (the documentation needs it).
    assert typing.get_type_hints(std.__init__) == typing.get_type_hints(fast.__init__)
    assert std.__match_args__ == fast.__match_args__
    assert std.__slots__ == fast.__slots__
    assert _same(std.__doc__, fast.__doc__)
    assert [c.__name__ for c in std.__mro__] == [
        c.__name__.replace("Fast", "Std") for c in fast.__mro__]
    for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__",
                 "__getstate__", "__setstate__"):
        assert (name in vars(std)) == (name in vars(fast)), name
        if name in vars(std):
            assert vars(fast)[name].__qualname__.startswith(fast.__qualname__ + "."), name


NAN = float("nan")  # one object: equal to itself in a tuple, one hash


def _instances() -> list[tuple[object, object]]:
    return [
        (StdBase(a=1), FastBase(a=1)),
        (StdBase(a=2, b="y"), FastBase(a=2, b="y")),
        (StdChild(a=3, c=(1, 2), d=frozenset({4}), e=NAN),
         FastChild(a=3, c=(1, 2), d=frozenset({4}), e=NAN)),
        (StdChild(a=3), FastChild(a=3)),
        (StdEmpty(), FastEmpty()),
        (StdRecord(1, "a"), FastRecord(1, "a")),
    ]


def test_instances_behave_like_standard_ones() -> None:
    for std, fast in _instances():
        assert _same(repr(std), repr(fast))
        assert hash(std) == hash(fast)
        assert (std == std) and (fast == fast) and not (fast != fast)
        assert fast != std and fast.__eq__(std) is NotImplemented
        assert fast == copy.copy(fast) and fast == copy.deepcopy(fast)
        unpickled = pickle.loads(pickle.dumps(fast))
        assert type(unpickled) is type(fast) and repr(unpickled) == repr(fast)
        assert not hasattr(fast, "__dict__")
        for target in (std, fast):
            for f in dataclasses.fields(target):
                with pytest.raises(FrozenInstanceError):
                    setattr(target, f.name, 1)
                with pytest.raises(FrozenInstanceError):
                    delattr(target, f.name)
        # (Python 3.11's own raises TypeError here, from a super() call that fails.)
        with pytest.raises(FrozenInstanceError):
            fast.not_a_field = 1  # type: ignore[attr-defined]
        assert dataclasses.asdict(std) == dataclasses.asdict(fast)
        assert dataclasses.astuple(std) == dataclasses.astuple(fast)
        first = dataclasses.fields(fast)[:1]
        for f in first:
            changed = dataclasses.replace(fast, **{f.name: 9})
            assert getattr(changed, f.name) == 9 and type(changed) is type(fast)


def test_equality_and_hash_follow_the_field_flags() -> None:
    # c has compare=False: not in equality, hash or repr; d comes from its factory.
    assert FastChild(a=1, c=(1,)) == FastChild(a=1, c=(2,))
    assert hash(FastChild(a=1, c=(1,))) == hash(FastChild(a=1, c=(2,)))
    assert "c=" not in repr(FastChild(a=1, c=(1,)))
    assert FastChild(a=1).d == frozenset() and FastChild(a=1) != FastChild(a=2)
    assert FastChild(a=1) != FastBase(a=1)
    calls.clear()
    StdChild(a=5)
    FastChild(a=5)
    assert calls == [("std", 5), ("fast", 5)]
    with pytest.raises(TypeError):
        FastBase(1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        FastBase()  # type: ignore[call-arg]


def test_frozen_message_has_an_init_without_annotations() -> None:
    assert str(inspect.signature(FastMessage)) == "(*, a, b='x')"
    assert FastMessage(a=1) == FastMessage(a=1, b="x")
    assert repr(FastMessage(a=1)) == "FastMessage(a=1, b='x')"
    assert FastMessage.__dataclass_params__.frozen


def test_a_frozen_class_over_a_non_frozen_dataclass_is_refused() -> None:
    @dataclass
    class Loose:
        a: int = 0

    with pytest.raises(TypeError, match="non-frozen"):
        frozen_dataclass(type("Tight", (Loose,), {"__annotations__": {"b": "int"}, "b": 0}))
