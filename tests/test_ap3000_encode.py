"""The hand-written AP3000 envelope of ``Ap3000Frame.encode`` against the grammar's."""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import LocalProtocolError
from bkvcodec._ap3000.codec import reference_encode
from bkvcodec._ap3000.grammar import LAYOUTS, Layout
from bkvcodec._ap3000.messages import MESSAGE_TYPES
from bkvcodec.ap3000 import Ap3000CardSwipe, Ap3000Frame, Ap3000Message
from bkvcodec.testing import _AP3000_BY_KEY, ap3000_frames


@given(ap3000_frames())
def test_fast_envelope_agrees_with_grammar(frame: Ap3000Frame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert frame.encode() == reference_encode(frame)


@given(ap3000_frames(), st.sampled_from([-1, 1 << 32, "1"]), st.booleans())
def test_ids_out_of_range_are_refused(frame: Ap3000Frame, bad: object, physical: bool
                                      ) -> None:
    fields = {"physical_id": bad} if physical else {
        "message_id": bad if bad != 1 << 32 else 1 << 16}
    broken = Ap3000Frame(**{"physical_id": frame.physical_id, "message_id": frame.message_id,
                            "message": frame.message, **fields})  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        broken.encode()


def _encoded(encode: object) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return encode()  # type: ignore[operator]
    except LocalProtocolError:
        return "refused"


@given(ap3000_frames(), st.data())
def test_fast_data_encoder_writes_and_refuses_as_the_grammar(frame: Ap3000Frame,
                                                             data: st.DataObject) -> None:
    message = frame.message
    names = [f.name for f in dataclasses.fields(message)  # type: ignore[arg-type]
             if f.name != "direction"]
    if names and data.draw(st.booleans()):
        name = data.draw(st.sampled_from(names))
        value = getattr(message, name)
        if isinstance(value, tuple) and value:
            # One element (a port code, a slave version) out of its range or type.
            i = data.draw(st.integers(0, len(value) - 1))
            if dataclasses.is_dataclass(value[i]):
                part_field = data.draw(st.sampled_from(dataclasses.fields(value[i])))
                part: object = dataclasses.replace(  # type: ignore[type-var]
                    value[i], **{part_field.name: data.draw(st.sampled_from(
                        [-1, 1 << 32, "1", None]))})
            else:
                part = data.draw(st.sampled_from([-1, 256, "1", None, True]))
            bad: object = (*value[:i], part, *value[i + 1:])
        elif isinstance(value, str):
            bad = data.draw(st.sampled_from(["x" * 40, "\u00e9", "\u4e2d", 5, None]))
        elif isinstance(value, bytes):
            bad = data.draw(st.sampled_from([value + b"\0", value[:-1], "ab", 7,
                                             bytearray(value), None]))
        else:
            bad = data.draw(st.sampled_from([-1, 1 << 8, 1 << 16, 1 << 40, "1", None, True,
                                             1.0, b"\0"]))
        try:
            message = dataclasses.replace(message, **{name: bad})  # type: ignore[type-var]
        except (TypeError, ValueError):
            return
        frame = dataclasses.replace(frame, message=message)

    assert _encoded(frame.encode) == _encoded(lambda: reference_encode(frame))


_maybe_u8 = st.one_of(st.none(), st.integers(0, 255), st.sampled_from([-1, 256, True]))


@given(st.one_of(st.none(), st.integers(0, (1 << 32) - 1), st.just(1 << 32)),
       _maybe_u8, st.one_of(st.none(), st.binary(max_size=20), st.just("ab")),
       st.binary(max_size=3))
def test_card_swipe_encoder_writes_and_refuses_as_the_grammar(
        timestamp: int | None, card_no2_len: int | None, card_no2: bytes | None,
        extra: bytes) -> None:
    # Every combination of the optional tail, card_no2_len agreeing with card_no2
    # or not: the same bytes, or the same error, as the grammar.
    message = Ap3000CardSwipe(card_id=b"\x01\x02\x03\x04", card_type=1, port=2,
                              card_balance_fen=300, timestamp=timestamp,
                              card_no2_len=card_no2_len, card_no2=card_no2,
                              extra=extra)
    frame = Ap3000Frame(physical_id=0x04A26CF3, message_id=7, message=message)

    def outcome(encode: Callable[[], bytes]) -> object:
        try:
            return encode()
        except LocalProtocolError as err:
            return str(err)

    assert outcome(frame.encode) == outcome(lambda: reference_encode(frame))


_WITH_TAILS = sorted(
    ((cls, layout) for cls, (command, direction, _) in MESSAGE_TYPES.items()
     if (layout := LAYOUTS[(command, direction)]).optional and layout.plain() is not None),
    key=lambda pair: pair[0].__name__)


@pytest.mark.parametrize(("cls", "layout"), _WITH_TAILS,
                         ids=[cls.__name__ for cls, _ in _WITH_TAILS])
@given(data=st.data())
def test_optional_fields_left_unset_are_written_as_the_grammar_writes_them(
        cls: type[Ap3000Message], layout: Layout, data: st.DataObject) -> None:
    # Any optional field unset, even before one that is set: the whole-frame encoder
    # writes the neutral values the grammar writes.
    command, direction, _ = MESSAGE_TYPES[cls]
    message = data.draw(_AP3000_BY_KEY[(command, direction)])
    unset = {f.name: None for f in layout.optional if data.draw(st.booleans())}
    message = dataclasses.replace(message, **unset)  # type: ignore[type-var]
    frame = Ap3000Frame(physical_id=0x04A26CF3, message_id=7, message=message)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _encoded(frame.encode) == _encoded(lambda: reference_encode(frame))
