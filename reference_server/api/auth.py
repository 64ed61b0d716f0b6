# Authentication of the third-party API (api.md §6.1).
#
# Two steps, because the second needs the body and the body is read only after the
# caller is known and within its rate limit:
#   identify()  X-Api-Key → the configured ApiKey. The SHA-256 of the sent value is
#               compared with every configured key's SHA-256 in constant time, and
#               with all of them always, so timing tells nothing about how much of
#               a guess was right or which key it was near. Hashes, because the
#               generated key is stored only as its hash (api.md §11.4).
#   verify()    for a key with a signing secret: X-Timestamp within
#               signature_max_skew, X-Signature = HMAC-SHA256 over the canonical text
#               (bkvcodec.verify_signature, path without the query string, as sent
#               on the wire), and X-Nonce not seen for this key within nonce_ttl
#               (remembered in the database, so a restart does not reopen a replay
#               window). For a key without a secret, X-Timestamp and X-Nonce are
#               optional but checked the same way when present (test-plan.md §3.1's
#               recommendation; its first example sends them unsigned).
# Every refusal is Unauthorized (401) with a reason code; no key, secret or
# signature is ever put into a message or a log line.
from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from bkvcodec import SignatureError, verify_signature

from .envelope import Unauthorized

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..config import ApiKey
    from ..storage import AsyncDatabase

__all__ = [
    "API_KEY_HEADER",
    "MAX_NONCE_LENGTH",
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Authenticator",
]

API_KEY_HEADER = "X-Api-Key"
TIMESTAMP_HEADER = "X-Timestamp"
NONCE_HEADER = "X-Nonce"
SIGNATURE_HEADER = "X-Signature"
#: Longest accepted nonce (a UUID is 36): nonces are stored, so they are bounded.
MAX_NONCE_LENGTH = 128


class Authenticator:
    """Checks API keys and request signatures.

    Args:
        keys: The configured API keys.
        db: Where nonces are remembered.
        max_skew: Largest accepted distance of ``X-Timestamp`` from now, seconds.
        nonce_ttl: How long a nonce stays used, seconds.
    """

    def __init__(self, keys: Sequence[ApiKey], db: AsyncDatabase, *, max_skew: int,
                 nonce_ttl: int) -> None:
        self._keys = [(k, k.digest()) for k in keys]
        self._db = db
        self.max_skew = max_skew
        self.nonce_ttl = nonce_ttl

    def identify(self, headers: Mapping[str, str]) -> ApiKey:
        """The key named by ``X-Api-Key``.

        Raises:
            Unauthorized: The header is missing or names no configured key.
        """
        sent = headers.get(API_KEY_HEADER.lower())
        if not sent:
            raise Unauthorized("missing_key", f"the {API_KEY_HEADER} header is required")
        # Header values arrive latin-1 decoded; encode back to the bytes sent.
        sent_digest = hashlib.sha256(sent.encode("latin-1", "replace")).digest()
        found: ApiKey | None = None
        for key, key_digest in self._keys:
            if hmac.compare_digest(sent_digest, key_digest) and found is None:
                found = key
        if found is None:
            raise Unauthorized("unknown_key", f"the {API_KEY_HEADER} is not valid")
        return found

    async def verify(self, key: ApiKey, method: str, path: str, headers: Mapping[str, str],
                     body: bytes, *, now: float) -> None:
        """Check the signature headers required (or sent) with *key*.

        Args:
            key: The key :meth:`identify` returned.
            method: The request method.
            path: The URL path as sent, without the query string.
            headers: The request headers (case-insensitive look-up).
            body: The raw body.
            now: The current Unix time.

        Raises:
            Unauthorized: A required header is missing, the timestamp is stale,
                the signature is wrong, or the nonce was used before.
        """
        nonce: str | None
        if key.secret is not None:
            try:
                nonce = verify_signature(key.secret, method, path, headers, body, now=now,
                                         max_skew=self.max_skew)
            except SignatureError as err:
                raise Unauthorized(err.reason, f"request signature rejected: {err}") from None
        else:
            self._check_timestamp(headers.get(TIMESTAMP_HEADER.lower()), now)
            nonce = headers.get(NONCE_HEADER.lower())
        if nonce is not None:
            await self._check_nonce(key, nonce, now)

    def _check_timestamp(self, value: str | None, now: float) -> None:
        if value is None:
            return
        try:
            sent_at = int(value.strip())
        except ValueError:
            raise Unauthorized("stale_timestamp",
                               f"{TIMESTAMP_HEADER} must be Unix seconds") from None
        if abs(now - sent_at) > self.max_skew:
            raise Unauthorized("stale_timestamp",
                               f"{TIMESTAMP_HEADER} is more than {self.max_skew} s from now")

    async def _check_nonce(self, key: ApiKey, nonce: str, now: float) -> None:
        if not 0 < len(nonce) <= MAX_NONCE_LENGTH:
            raise Unauthorized("bad_nonce",
                               f"{NONCE_HEADER} must be 1 to {MAX_NONCE_LENGTH} characters")
        fresh = await self._db.check_nonce(key.name, nonce, int(now), ttl=self.nonce_ttl)
        if not fresh:
            raise Unauthorized("replayed_nonce", f"this {NONCE_HEADER} was already used")
