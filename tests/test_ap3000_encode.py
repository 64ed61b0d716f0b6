"""The hand-written AP3000 envelope of ``Ap3000Frame.encode`` against the grammar's."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import LocalProtocolError
from bkvcodec._ap3000.codec import reference_encode
from bkvcodec.ap3000 import Ap3000Frame
from bkvcodec.testing import ap3000_frames


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
