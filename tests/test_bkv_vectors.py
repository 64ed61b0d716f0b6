"""Every golden BKV vector through the library API: decode, encode, reference grammar."""
from __future__ import annotations

from typing import Any

import pytest

from bkvcodec import (
    FrameDecoder,
    FrameRejected,
    IncompleteFrame,
    RemoteProtocolError,
    frame_to_json,
)
from bkvcodec._bkv.codec import reference_decode, reference_encode
from bkvcodec._cli import decode_text
from bkvcodec._jsonform import error_to_json
from bkvcodec.bkv import BkvFrame

from .helpers import contains, load_vectors, vector_params

VECTORS = load_vectors("bkv")
BY_ID = {case["id"]: case for case in VECTORS["vectors"]}


@pytest.mark.parametrize("case", vector_params("bkv", "vectors"))
def test_vector_decodes_to_expected_fields(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])

    frame = BkvFrame.decode(data)

    assert contains(frame_to_json(frame, data), case["expect"]) is None


@pytest.mark.parametrize("case", vector_params("bkv", "vectors"))
def test_vector_encodes_to_the_same_bytes(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    frame = BkvFrame.decode(data)

    assert data == frame.encode()
    assert data == reference_encode(frame)
    assert frame == BkvFrame.decode(frame.encode())


@pytest.mark.parametrize("case", vector_params("bkv", "vectors"))
def test_vector_reference_grammar_agrees(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])

    assert BkvFrame.decode(data) == reference_decode(data)


@pytest.mark.parametrize("case", vector_params("bkv", "vectors"))
def test_vector_json_form_encodes_back(case: dict[str, Any]) -> None:
    from bkvcodec import frame_from_json

    data = bytes.fromhex(case["hex"])
    frame = BkvFrame.decode(data)

    assert data == frame_from_json(frame_to_json(frame, data)).encode()


@pytest.mark.parametrize("case", vector_params("bkv", "malformed"))
def test_malformed_one_shot(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expect = case["expect"]["decode_frame"]

    with pytest.raises(RemoteProtocolError) as info:
        BkvFrame.decode(data)

    answer = error_to_json(info.value, data)
    if expect["error"] is None:
        # bkv.md's payload-error form ({"error": null, "envelope_ok": true,
        # "payload_error": code}) is written like an AP3000 payload error: the
        # code in "error", "frame_valid" and the frame's header fields.
        assert {"error": expect["payload_error"], "frame_valid": expect["envelope_ok"],
                "gateway_id": data[11:18].hex(), "command": int.from_bytes(data[4:6], "big")} == {
            k: answer[k] for k in ("error", "frame_valid", "gateway_id", "command")}
    else:
        assert contains(answer, expect) is None
    assert answer == decode_text(case["hex"])


@pytest.mark.parametrize("case", vector_params("bkv", "malformed"))
def test_malformed_stream(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expect = case["expect"]["stream"]
    decoder = FrameDecoder()

    items = decoder.feed(data)
    tail = decoder.end()

    frames = [item for item in items if isinstance(item, BkvFrame)]
    rejected = [item for item in items if isinstance(item, FrameRejected)]
    assert [BkvFrame.decode(bytes.fromhex(BY_ID[i]["hex"])) for i in expect["frames"]] == frames
    assert expect["rejected"] == len(rejected)
    stats = decoder.statistics()
    assert expect["pending_bytes"] == stats.pending_bytes
    assert ([IncompleteFrame(data=data)] if expect["pending_bytes"] else []) == tail
    if "skipped_bytes" in expect:
        assert expect["skipped_bytes"] == stats.skipped_bytes


@pytest.mark.parametrize("case", vector_params("bkv", "malformed"))
def test_malformed_stream_byte_by_byte(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    whole = FrameDecoder()
    split = FrameDecoder()

    expected = whole.feed(data)
    actual = [item for i in range(len(data)) for item in split.feed(data[i:i + 1])]

    assert expected == actual
    assert whole.statistics() == split.statistics()


def test_bcd_time_repr_reads_as_a_date() -> None:
    from bkvcodec.bkv import BcdTime, HeartbeatAck

    ack = HeartbeatAck(time=BcdTime(bytes.fromhex("20251020140035")))

    assert repr(ack) == "HeartbeatAck(time=BcdTime(2025-10-20 14:00:35))"
    # Impossible dates read as the wire says; bytes that are not BCD stay bytes.
    assert repr(BcdTime(bytes.fromhex("20251340256199"))) == "BcdTime(2025-13-40 25:61:99)"
    assert repr(BcdTime(b"\x20\x25\x1a")) == "BcdTime(raw=bytes.fromhex('20251a'))"
