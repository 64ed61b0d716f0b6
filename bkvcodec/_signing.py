# Request and webhook signatures of the third-party API (api.md §6.1, §6.4).
#
# Both directions sign the same canonical text,
#     METHOD \n PATH \n X-Timestamp \n X-Nonce \n hex(sha256(body))
# with HMAC-SHA256 and the shared secret, hex-encoded. The server signs webhooks
# and checks signed API requests with these functions; a platform's webhook
# receiver checks deliveries with verify_webhook(). Pure functions: the caller
# passes the current time and remembers nonces (replay protection needs storage,
# which a sans-IO library does not own).
#
# hashlib, hmac and json are imported where they are used: ``import bkvcodec``
# should not pay for what only a server or a webhook receiver needs.
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ._errors import BkvError
from ._fastinit import frozen_dataclass

__all__ = [
    "SignatureError",
    "WebhookEvent",
    "canonical_text",
    "sign",
    "verify_signature",
    "verify_webhook",
]

#: Largest accepted distance between ``X-Timestamp`` and now, seconds.
DEFAULT_MAX_SKEW = 300


class SignatureError(BkvError):
    """A signed request or webhook failed verification.

    Attributes:
        code: ``"signature_error"``, the code of the class (as every
            :class:`BkvError` has one).
        reason: Which check failed: ``missing_header``, ``stale_timestamp``,
            ``bad_signature`` or ``bad_body``.
    """

    code: ClassVar[str] = "signature_error"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def canonical_text(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The text that is signed: method, path, timestamp, nonce and body hash.

    Args:
        method: The HTTP method, upper-cased here.
        path: The URL path without scheme, host or query string.
        timestamp: The ``X-Timestamp`` header as sent (Unix seconds).
        nonce: The ``X-Nonce`` header as sent.
        body: The raw request body.
    """
    import hashlib

    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, timestamp, nonce, digest)).encode()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The hex HMAC-SHA256 signature of :func:`canonical_text` under *secret*.

    >>> from bkvcodec import sign
    >>> sign("s3cret", "POST", "/hooks/iot", "1700000000", "n-1", b"{}")[:16]
    'b78fa3b9b782b79b'
    """
    import hashlib
    import hmac

    text = canonical_text(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def verify_signature(secret: str, method: str, path: str, headers: Mapping[str, str],
                     body: bytes, *, now: float, max_skew: float = DEFAULT_MAX_SKEW) -> str:
    """Check the ``X-Timestamp``/``X-Nonce``/``X-Signature`` headers of a request.

    Header names are matched without regard to case. The nonce is returned so that
    the caller can refuse one it has seen before (replays).

    Returns:
        The request's nonce.

    Raises:
        SignatureError: A header is missing, the timestamp is more than
            *max_skew* seconds from *now*, or the signature does not match.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    values = []
    for name in ("x-timestamp", "x-nonce", "x-signature"):
        value = lowered.get(name)
        if not value:
            raise SignatureError("missing_header", f"the {name} header is missing")
        values.append(value)
    timestamp, nonce, signature = values
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError("stale_timestamp",
                             f"x-timestamp is not Unix seconds: {timestamp!r}") from None
    if abs(now - sent_at) > max_skew:
        raise SignatureError("stale_timestamp",
                             f"x-timestamp is {now - sent_at:+.0f} s from now "
                             f"(at most {max_skew:.0f} s allowed)")
    import hmac

    expected = sign(secret, method, path, timestamp, nonce, body)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise SignatureError("bad_signature", "the signature does not match")
    return nonce


@frozen_dataclass
class WebhookEvent:
    """A verified webhook delivery.

    Attributes:
        event_id: Unique and stable across retries: use it to drop duplicates.
        event_type: ``order.completed``, ``charging.progress``, ...
        device_phy_id: The device the event is about, if any.
        timestamp: When it happened (Unix seconds).
        nonce: The delivery's nonce.
        data: The event's fields.
    """

    event_id: str
    event_type: str
    device_phy_id: str | None
    timestamp: int
    nonce: str
    data: Mapping[str, object]


def verify_webhook(secret: str, method: str, path: str, headers: Mapping[str, str],
                   body: bytes, *, now: float,
                   max_skew: float = DEFAULT_MAX_SKEW) -> WebhookEvent:
    """Verify a webhook delivery and return its event.

    Args:
        secret: The webhook secret shared with the server.
        method: The request method (``POST``).
        path: The path the request was sent to, without the query string.
        headers: The request headers.
        body: The raw request body, exactly as received.
        now: The current Unix time, for the timestamp check.
        max_skew: Largest accepted distance of ``X-Timestamp`` from *now*.

    Raises:
        SignatureError: The signature or timestamp is wrong, or the body is not
            a webhook envelope.

    The receiver still has to drop event ids it has already processed: a
    delivery is retried until it is answered with a 2xx.
    """
    import json

    verify_signature(secret, method, path, headers, body, now=now, max_skew=max_skew)
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise SignatureError("bad_body", f"the body is not JSON: {err}") from None
    if not isinstance(envelope, dict):
        raise SignatureError("bad_body", "the body is not a JSON object")
    try:
        event_id = envelope["event_id"]
        event_type = envelope["event_type"]
        timestamp = envelope["timestamp"]
        nonce = envelope["nonce"]
        data = envelope["data"]
    except KeyError as err:
        raise SignatureError("bad_body", f"the envelope has no {err.args[0]!r}") from None
    phy_id = envelope.get("device_phy_id")
    if not (isinstance(event_id, str) and isinstance(event_type, str)
            and isinstance(timestamp, int) and isinstance(nonce, str)
            and isinstance(data, dict) and (phy_id is None or isinstance(phy_id, str))):
        raise SignatureError("bad_body", "the envelope's fields have the wrong types")
    return WebhookEvent(event_id=event_id, event_type=event_type, device_phy_id=phy_id,
                        timestamp=timestamp, nonce=nonce, data=data)
