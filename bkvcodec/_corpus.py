# The seed corpus of ``python -m bkvcodec corpus DIR``: inputs for coverage-guided
# fuzzers (atheris/libFuzzer, AFL++), one byte string per file.
#
# Strategy: start from the real frames embedded in ``_known_frames`` (the
# protocol references' vectors: valid frames, modem items, malformed inputs),
# then add frames of every message kind, streams and malformed frames drawn from
# the strategies of ``bkvcodec.testing``. Generation runs Hypothesis with a
# fixed seed, no example database and only the generate phase, so the same
# count and seed give the same files. The names say what each input is, and a
# byte string already written is not written twice. This module only computes
# the entries; the CLI writes them.
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from . import testing
from ._known_frames import KNOWN_FRAMES
from ._types import Direction

__all__ = ["corpus_entries"]

_T = TypeVar("_T")


def _examples(strategy: st.SearchStrategy[_T], count: int, random_seed: int) -> list[_T]:
    """Up to *count* values of *strategy*, the same ones for the same seed."""
    out: list[_T] = []
    if count < 1:
        return out

    @seed(random_seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              derandomize=False, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: _T) -> None:
        out.append(value)

    collect()
    return out[:count]


def _second(pair: tuple[object, bytes]) -> bytes:
    return pair[1]


def corpus_entries(count: int = 3, random_seed: int = 0) -> list[tuple[str, bytes]]:
    """The seed corpus, as (file name, bytes) pairs in a stable order.

    Args:
        count: Generated inputs per message kind, stream kind and mutation.
        random_seed: Seed of the generation.

    Returns:
        The real frames first, then the generated ones; no two with equal bytes.
    """
    entries: list[tuple[str, bytes]] = []
    seen: set[bytes] = set()

    def add(name: str, data: bytes) -> None:
        if data and data not in seen:
            seen.add(data)
            entries.append((name, data))

    for case in KNOWN_FRAMES:
        add(f"vector-{case.protocol}-{case.id}", bytes.fromhex(case.hex))
    names: dict[str, int] = {}
    for kind, frames in testing._frame_kinds():
        names[kind] = names.get(kind, 0) + 1
        label = kind if names[kind] == 1 else f"{kind}-{names[kind]}"
        for i, data in enumerate(_examples(frames, count, random_seed)):
            add(f"frame-{label}-{i:03d}", data)
    streams: list[tuple[str, st.SearchStrategy[bytes]]] = [
        ("bkv", testing.bkv_streams().map(_second)),
        ("ap3000-up", testing.ap3000_streams(Direction.UP).map(_second)),
        ("ap3000-down", testing.ap3000_streams(Direction.DOWN).map(_second)),
        ("mixed", testing.mixed_streams().map(_second)),
    ]
    for kind, stream in streams:
        for i, data in enumerate(_examples(stream, 4 * count, random_seed)):
            add(f"stream-{kind}-{i:03d}", data)
    malformed: list[tuple[str, Callable[[testing.Mutation], st.SearchStrategy[
            testing.MalformedFrame]]]] = [
        ("bkv", lambda mutation: testing.malformed_bkv_frames([mutation])),
        ("ap3000", lambda mutation: testing.malformed_ap3000_frames(mutations=[mutation])),
    ]
    for protocol, cases in malformed:
        for mutation in testing.Mutation:
            try:
                strategy = cases(mutation)
            except ValueError:  # the mutation does not apply to this protocol
                continue
            for i, broken in enumerate(_examples(strategy, count, random_seed)):
                add(f"malformed-{protocol}-{mutation.value}-{i:03d}", broken.data)
    return entries
