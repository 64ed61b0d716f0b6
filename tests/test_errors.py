"""The error tree: every error has a class-level ``code`` (issue 11)."""
from __future__ import annotations

import re

import pytest

import bkvcodec
from bkvcodec import BkvError, ChecksumMismatch, RemoteProtocolError, SignatureError, Truncated


def _tree(cls: type[BkvError]) -> list[type[BkvError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _tree(sub)
    return out


PUBLIC = sorted({cls for cls in _tree(BkvError) if not cls.__name__.startswith("_")},
                key=lambda cls: cls.__name__)


def test_every_public_error_is_exported() -> None:
    assert all(getattr(bkvcodec, cls.__name__) is cls for cls in PUBLIC)


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_every_error_has_a_snake_case_class_code(cls: type[BkvError]) -> None:
    assert "code" in vars(BkvError)
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", cls.code), cls.code


def test_codes_are_distinct_except_the_two_groups() -> None:
    # FrameError and PayloadError group the leaves; they are never raised themselves
    # and keep RemoteProtocolError's code.
    grouped = {bkvcodec.FrameError, bkvcodec.PayloadError}
    codes = [cls.code for cls in PUBLIC if cls not in grouped]

    assert len(codes) == len(set(codes))
    assert all(cls.code == RemoteProtocolError.code for cls in grouped)


@pytest.mark.parametrize("error", [
    Truncated(10, 4), ChecksumMismatch(1, 2), bkvcodec.Incomplete(14, 3),
    SignatureError("bad_body", "the body is not JSON")])
def test_code_reads_through_the_base_class(error: BkvError) -> None:
    try:
        raise error
    except BkvError as err:
        assert type(error).code == err.code
        assert "code" not in vars(err)  # a class attribute, not set per instance
