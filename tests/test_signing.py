"""Request and webhook signatures (api.md §6.1, §6.4, §10.5): sign, verify, and the
webhook envelope checks of verify_webhook."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bkvcodec import (
    BkvError,
    SignatureError,
    WebhookEvent,
    canonical_text,
    sign,
    verify_signature,
    verify_webhook,
)

SECRET = "s3cret"
PATH = "/hooks/iot"
NOW = 1_700_000_000
NONCE = "9f86d081884c7d65"

ENVELOPE: dict[str, object] = {
    "event_id": "order.completed-THD1729407600001-1729411200",
    "event_type": "order.completed",
    "device_phy_id": "82210225000520",
    "timestamp": 1729411200,
    "nonce": NONCE,
    "data": {"order_no": "THD1729407600001", "end_reason_msg": "用户拔出插头"},
}


def signed_headers(body: bytes, *, secret: str = SECRET, method: str = "POST",
                   path: str = PATH, timestamp: str = str(NOW),
                   nonce: str = NONCE) -> dict[str, str]:
    return {"X-Timestamp": timestamp, "X-Nonce": nonce,
            "X-Signature": sign(secret, method, path, timestamp, nonce, body)}


def envelope_body(**changes: object) -> bytes:
    return json.dumps({**ENVELOPE, **changes}, ensure_ascii=False).encode()


def signature_error(secret: str, method: str, path: str, headers: dict[str, str],
                    body: bytes, *, now: float = NOW) -> str:
    """The reason of the SignatureError that verify_signature raises."""
    with pytest.raises(SignatureError) as info:
        verify_signature(secret, method, path, headers, body, now=now)
    return info.value.reason


# --- the canonical text and the signature ---------------------------------------------------

def test_canonical_text_joins_the_parts_and_hashes_the_body() -> None:
    body = b'{"a":1}'

    text = canonical_text("post", PATH, "1700000000", "n-1", body)

    assert (b"POST\n/hooks/iot\n1700000000\nn-1\n"
            + hashlib.sha256(body).hexdigest().encode()) == text


def test_sign_is_hex_hmac_sha256_of_the_canonical_text() -> None:
    expected = hmac.new(b"s3cret", canonical_text("POST", "/hooks/iot", "1700000000", "n-1",
                                                  b"{}"), hashlib.sha256).hexdigest()

    assert expected == sign("s3cret", "POST", "/hooks/iot", "1700000000", "n-1", b"{}")
    assert expected.startswith("b78fa3b9b782b79b")  # the docstring's example


def test_signature_error_is_a_bkv_error_with_a_code_and_a_reason() -> None:
    err = SignatureError("bad_signature", "the signature does not match")

    assert isinstance(err, BkvError)
    assert "signature_error" == err.code == SignatureError.code
    assert "bad_signature" == err.reason
    assert "the signature does not match" == str(err)


# --- verify_signature -----------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])
paths = st.text(st.characters(codec="ascii", exclude_characters="\n?#"), max_size=40).map(
    lambda p: "/" + p)
nonces = st.text(st.characters(codec="ascii", exclude_characters="\n"), min_size=1,
                 max_size=32).filter(str.strip)
secrets_ = st.text(min_size=1, max_size=40)
timestamps = st.integers(min_value=0, max_value=2**40)


@given(secret=secrets_, method=methods, path=paths, nonce=nonces, timestamp=timestamps,
       body=st.binary(max_size=256))
def test_sign_then_verify_round_trips(secret: str, method: str, path: str, nonce: str,
                                      timestamp: int, body: bytes) -> None:
    headers = signed_headers(body, secret=secret, method=method, path=path,
                             timestamp=str(timestamp), nonce=nonce)

    assert nonce == verify_signature(secret, method, path, headers, body, now=timestamp)


@given(body=st.binary(max_size=64), other=st.binary(max_size=64))
def test_a_changed_body_fails(body: bytes, other: bytes) -> None:
    headers = signed_headers(body)

    if other != body:
        assert "bad_signature" == signature_error(SECRET, "POST", PATH, headers, other)


@given(other=paths)
def test_a_changed_path_fails(other: str) -> None:
    headers = signed_headers(b"{}")

    if other != PATH:
        assert "bad_signature" == signature_error(SECRET, "POST", other, headers, b"{}")


@given(other=methods)
def test_a_changed_method_fails(other: str) -> None:
    headers = signed_headers(b"{}")

    if other != "POST":
        assert "bad_signature" == signature_error(SECRET, other, PATH, headers, b"{}")


def test_the_method_is_compared_without_case() -> None:
    headers = signed_headers(b"{}", method="post")

    assert NONCE == verify_signature(SECRET, "POST", PATH, headers, b"{}", now=NOW)


@given(other=nonces)
def test_a_changed_nonce_fails(other: str) -> None:
    headers = {**signed_headers(b"{}"), "X-Nonce": other}

    if other != NONCE:
        assert "bad_signature" == signature_error(SECRET, "POST", PATH, headers, b"{}")


@given(shift=st.integers(min_value=-300, max_value=300).filter(bool))
def test_a_changed_timestamp_fails_even_when_fresh(shift: int) -> None:
    headers = {**signed_headers(b"{}"), "X-Timestamp": str(NOW + shift)}

    assert "bad_signature" == signature_error(SECRET, "POST", PATH, headers, b"{}")


@given(other=secrets_)
def test_another_secret_fails(other: str) -> None:
    headers = signed_headers(b"{}")

    if other != SECRET:
        assert "bad_signature" == signature_error(other, "POST", PATH, headers, b"{}")


@pytest.mark.parametrize("age", [-301, 301, 10**6])
def test_a_stale_timestamp_fails(age: int) -> None:
    headers = signed_headers(b"{}")

    assert "stale_timestamp" == signature_error(SECRET, "POST", PATH, headers, b"{}",
                                                now=NOW + age)


@pytest.mark.parametrize("age", [-300, 0, 300])
def test_a_timestamp_within_the_skew_passes(age: int) -> None:
    headers = signed_headers(b"{}")

    assert NONCE == verify_signature(SECRET, "POST", PATH, headers, b"{}", now=NOW + age)


def test_max_skew_is_configurable() -> None:
    headers = signed_headers(b"{}")

    with pytest.raises(SignatureError) as info:
        verify_signature(SECRET, "POST", PATH, headers, b"{}", now=NOW + 11, max_skew=10)

    assert "stale_timestamp" == info.value.reason


@pytest.mark.parametrize("timestamp", ["", "soon", "1.5e9", "0x10"])
def test_a_timestamp_that_is_not_unix_seconds_fails(timestamp: str) -> None:
    headers = signed_headers(b"{}", timestamp=timestamp)

    code = signature_error(SECRET, "POST", PATH, headers, b"{}")

    assert ("missing_header" if not timestamp else "stale_timestamp") == code


@pytest.mark.parametrize("name", ["X-Timestamp", "X-Nonce", "X-Signature"])
def test_a_missing_header_fails(name: str) -> None:
    headers = signed_headers(b"{}")
    del headers[name]

    assert "missing_header" == signature_error(SECRET, "POST", PATH, headers, b"{}")


@pytest.mark.parametrize("name", ["X-Timestamp", "X-Nonce", "X-Signature"])
def test_an_empty_header_counts_as_missing(name: str) -> None:
    headers = {**signed_headers(b"{}"), name: ""}

    assert "missing_header" == signature_error(SECRET, "POST", PATH, headers, b"{}")


@given(cases=st.lists(st.booleans(), min_size=32, max_size=32))
def test_header_names_match_without_case(cases: list[bool]) -> None:
    flips = iter(cases)

    def recase(name: str) -> str:
        return "".join(c.upper() if next(flips) else c.lower() for c in name)

    headers = {recase(name): value for name, value in signed_headers(b"{}").items()}

    assert NONCE == verify_signature(SECRET, "POST", PATH, headers, b"{}", now=NOW)


def test_the_signature_may_be_upper_case_hex_with_spaces_around() -> None:
    headers = signed_headers(b"{}")
    headers["X-Signature"] = f" {headers['X-Signature'].upper()} "

    assert NONCE == verify_signature(SECRET, "POST", PATH, headers, b"{}", now=NOW)


def test_other_headers_are_ignored() -> None:
    headers = {**signed_headers(b"{}"), "Content-Type": "application/json", "X-Event-Id": "e"}

    assert NONCE == verify_signature(SECRET, "POST", PATH, headers, b"{}", now=NOW)


# --- verify_webhook -------------------------------------------------------------------------

def test_verify_webhook_returns_the_event() -> None:
    body = envelope_body()

    event = verify_webhook(SECRET, "POST", PATH, signed_headers(body), body, now=NOW)

    assert WebhookEvent(event_id="order.completed-THD1729407600001-1729411200",
                        event_type="order.completed", device_phy_id="82210225000520",
                        timestamp=1729411200, nonce=NONCE,
                        data={"order_no": "THD1729407600001",
                              "end_reason_msg": "用户拔出插头"}) == event


@pytest.mark.parametrize("phy_id", [None, "absent"])
def test_an_event_need_not_name_a_device(phy_id: str | None) -> None:
    envelope = {k: v for k, v in ENVELOPE.items() if k != "device_phy_id"}
    if phy_id is None:
        envelope["device_phy_id"] = None
    body = json.dumps(envelope).encode()

    event = verify_webhook(SECRET, "POST", PATH, signed_headers(body), body, now=NOW)

    assert event.device_phy_id is None


def test_verify_webhook_checks_the_signature_first() -> None:
    body = b"not json"
    headers = signed_headers(b"something else")

    with pytest.raises(SignatureError) as info:
        verify_webhook(SECRET, "POST", PATH, headers, body, now=NOW)

    assert "bad_signature" == info.value.reason


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe{}", b"[1, 2]", b'"text"',
                                  b"null", b"42"])
def test_a_signed_body_that_is_no_json_object_is_bad_body(body: bytes) -> None:
    with pytest.raises(SignatureError) as info:
        verify_webhook(SECRET, "POST", PATH, signed_headers(body), body, now=NOW)

    assert "bad_body" == info.value.reason


@pytest.mark.parametrize("key", ["event_id", "event_type", "timestamp", "nonce", "data"])
def test_an_envelope_without_a_field_is_bad_body(key: str) -> None:
    body = json.dumps({k: v for k, v in ENVELOPE.items() if k != key}).encode()

    with pytest.raises(SignatureError) as info:
        verify_webhook(SECRET, "POST", PATH, signed_headers(body), body, now=NOW)

    assert "bad_body" == info.value.reason
    assert key in str(info.value)


@pytest.mark.parametrize(("key", "value"), [
    ("event_id", 7), ("event_id", None),
    ("event_type", ["order.completed"]),
    ("timestamp", "1729411200"), ("timestamp", 1729411200.5), ("timestamp", None),
    ("nonce", 123),
    ("data", [1, 2]), ("data", "text"), ("data", None),
    ("device_phy_id", 82210225000520),
])
def test_an_envelope_field_of_the_wrong_type_is_bad_body(key: str, value: object) -> None:
    body = envelope_body(**{key: value})

    with pytest.raises(SignatureError) as info:
        verify_webhook(SECRET, "POST", PATH, signed_headers(body), body, now=NOW)

    assert "bad_body" == info.value.reason


@given(data=st.dictionaries(st.text(max_size=10),
                            st.one_of(st.none(), st.booleans(), st.integers(),
                                      st.text(max_size=10)), max_size=5),
       event_id=st.text(min_size=1, max_size=40), nonce=nonces)
def test_verify_webhook_round_trips_any_envelope(data: dict[str, object], event_id: str,
                                                 nonce: str) -> None:
    body = envelope_body(data=data, event_id=event_id, nonce=nonce)

    event = verify_webhook(SECRET, "POST", PATH, signed_headers(body, nonce=nonce), body,
                           now=NOW)

    assert (event_id, nonce, data) == (event.event_id, event.nonce, event.data)
