"""Standard Webhooks signatures (https://www.standardwebhooks.com/), sans-I/O.

A message is signed with HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}`` using the
secret's bytes (``whsec_`` + base64); the ``webhook-signature`` header is ``v1,<base64>``
(several space-separated signatures are allowed when a secret is rotated). Checked against the
``standardwebhooks`` package in the tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: a receiver should refuse messages whose timestamp is further than this from its clock
TOLERANCE_SECONDS = 5 * 60


def parse_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret; ``ValueError`` saying what is wrong (never the
    secret itself)."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"must start with {PREFIX} (Standard Webhooks form)")
    raw = secret[len(PREFIX) :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {PREFIX} followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"must hold {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} random bytes (it has {len(key)})"
        )
    return key


def new_secret(raw: bytes) -> str:
    """A ``whsec_…`` secret for ``raw`` key bytes (e.g. ``secrets.token_bytes(32)``)."""
    return PREFIX + base64.b64encode(raw).decode("ascii")


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(key: bytes | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (no signature without a key)."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp))}
    if key is not None:
        out["webhook-signature"] = signature(key, msg_id, int(timestamp), body)
    return out


def verify(
    key: bytes,
    given: dict[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """Whether ``given`` headers carry a valid, timely signature of ``body`` (receiver side)."""
    low = {k.lower(): v for k, v in given.items()}
    msg_id = low.get("webhook-id")
    stamp = low.get("webhook-timestamp", "")
    sigs = low.get("webhook-signature", "")
    if not msg_id or not stamp.isdigit() or not sigs:
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    expected = signature(key, msg_id, int(stamp), body).encode()
    return any(hmac.compare_digest(expected, s.encode()) for s in sigs.split(" "))
