"""The error tree: every error has a class-level ``code``."""
from __future__ import annotations

import re

import pytest

import bkvcodec.errors
from bkvcodec import BkvError, RemoteProtocolError, SignatureError
from bkvcodec.errors import ChecksumMismatch, Incomplete, Truncated


def _tree(cls: type[BkvError]) -> list[type[BkvError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _tree(sub)
    return out


PUBLIC = sorted({cls for cls in _tree(BkvError) if not cls.__name__.startswith("_")},
                key=lambda cls: cls.__name__)


def test_every_public_error_is_exported() -> None:
    assert all(getattr(bkvcodec.errors, cls.__name__) is cls for cls in PUBLIC)


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_every_error_has_a_snake_case_class_code(cls: type[BkvError]) -> None:
    assert "code" in vars(BkvError)
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", cls.code), cls.code


def test_codes_are_distinct_except_the_two_groups() -> None:
    # FrameError and PayloadError group the leaves; they are never raised themselves
    # and keep RemoteProtocolError's code.
    grouped = {bkvcodec.errors.FrameError, bkvcodec.errors.PayloadError}
    codes = [cls.code for cls in PUBLIC if cls not in grouped]

    assert len(codes) == len(set(codes))
    assert all(cls.code == RemoteProtocolError.code for cls in grouped)


@pytest.mark.parametrize("error", [
    Truncated(10, 4), ChecksumMismatch(1, 2), Incomplete(14, 3),
    SignatureError("bad_body", "the body is not JSON")])
def test_code_reads_through_the_base_class(error: BkvError) -> None:
    try:
        raise error
    except BkvError as err:
        assert type(error).code == err.code
        assert "code" not in vars(err)  # a class attribute, not set per instance


# --- the JSON form of errors: one set of names for both protocols ----------------------------

VALID_AP3000 = "444E5913003B37AB04B900207E00021421000000E4009104"
SAME_CONDITION = {
    # condition: (BKV input, AP3000 input, BKV code, AP3000 code)
    "short frame": ("fcfe002e0000000000000182200520004869383938363034363331313230",
                    "444E590D00CD28A20479082263EE5C68", "truncated", "incomplete"),
    "no header": ("fcfd0018000000000000008220052000486920200730164545a7fcee",
                  "58585858CD28A204", "bad_magic", "no_header"),
    "length too small": ("fcfe000100", "444E59050040AACE0421CD02", "bad_length",
                         "length_too_small"),
    "checksum": ("fcff001c0015001c9a5100860044594530050008070200010100f00000c8fcee",
                 "444E590A00F36CA204A0C096010604", "checksum_mismatch", "checksum_mismatch"),
    "trailing bytes": ("fcff0018000000000000008220052000486920200730164545a7fceefcff",
                       VALID_AP3000 + "00", "trailing_bytes", "trailing_bytes"),
}


@pytest.mark.parametrize("condition", SAME_CONDITION)
def test_same_condition_same_json_names(condition: str) -> None:
    from bkvcodec._cli import decode_text

    bkv_hex, ap3000_hex, bkv_code, ap3000_code = SAME_CONDITION[condition]
    bkv, ap3000 = decode_text(bkv_hex), decode_text(ap3000_hex)

    assert (bkv_code, ap3000_code) == (bkv["error"], ap3000["error"])
    assert bkv.keys() == ap3000.keys()
    for answer in (bkv, ap3000):
        hex_values = [v for v in answer.values() if isinstance(v, str) and v != answer["detail"]
                      and v != answer["error"]]
        assert all(v == v.lower() for v in hex_values), answer


def test_frame_size_limits_have_the_same_json_names() -> None:
    from bkvcodec._jsonform import error_to_json
    from bkvcodec.errors import FrameTooLong, LengthTooLarge

    bkv = error_to_json(FrameTooLong(40000, 32768))
    ap3000 = error_to_json(LengthTooLarge(4095, 1024))

    assert {"error", "length", "limit", "detail"} == bkv.keys() == ap3000.keys()


def test_payload_errors_carry_the_header_of_their_protocol() -> None:
    from bkvcodec._cli import decode_text

    bkv = decode_text("fcff002f100000000000008223121400270004010110170a010200000000000000000901"
                      "038223121400270005010f0180fcee")
    ap3000 = decode_text("up 444E590E00A18601060101218E08100100F102")

    assert {"error": "bkv_item_overrun", "frame_valid": True, "gateway_id": "82231214002700",
            "seq": 0, "command": 0x1000, "direction": 0} == {
        k: bkv[k] for k in ("error", "frame_valid", "gateway_id", "seq", "command", "direction")}
    assert {"error": "payload_too_short", "frame_valid": True, "physical_id": "060186A1",
            "message_id": 257, "command": 0x21, "direction": "up"} == {
        k: ap3000[k] for k in ("error", "frame_valid", "physical_id", "message_id", "command",
                               "direction")}


def test_ap3000_json_hex_is_lower_case_and_reads_back_in_either_case() -> None:
    from bkvcodec import frame_from_json
    from bkvcodec._cli import decode_text

    answer = decode_text(f"up {VALID_AP3000}")

    assert "7e00021421000000e400" == answer["data_hex"]
    assert "e400" == answer["fields"]["extra_hex"]  # type: ignore[index]
    assert "04AB373B" == answer["physical_id"]  # an identifier, printed as api.md §2 says
    upper = {**answer, "data_hex": "7E00021421000000E400",
             "fields": {**answer["fields"], "extra_hex": "E400"}}  # type: ignore[dict-item]
    assert VALID_AP3000.lower() == frame_from_json(upper).encode().hex()
