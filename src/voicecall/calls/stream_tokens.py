"""Per-call Media Streams tokens: HMAC-bound to the CallSid, expiring, single use. Pure.

A token is ``{generation}.{expires}.{mac}`` where ``mac`` is HMAC-SHA256 over the CallSid, our
call id, the generation and the expiry, under a key derived from a server secret. It travels in
a ``<Parameter>`` of ``<Stream>`` (never the URL: Twilio drops stream query strings) and comes
back in the ``start`` frame's ``customParameters``.

* **Bound**: a token minted for one call cannot open a stream for another (the MAC covers the
  CallSid the ``start`` frame names).
* **Expiring**: ``expires`` is covered by the MAC.
* **Single use**: the call record remembers the generation already used.
* **Not re-minted by replays**: the generation is part of the call record and only advances when
  the server itself sees the stream drop, so replaying a signed webhook returns the same token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

TOKEN_TTL_SECONDS = 60.0


def derive_key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"voicecall media-stream token v1", hashlib.sha256).digest()


def _mac(key: bytes, call_sid: str, call_id: str, generation: int, expires: int) -> str:
    msg = f"{call_sid}|{call_id}|{generation}|{expires}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:40]


def mint(key: bytes, *, call_sid: str, call_id: str, generation: int, expires: int) -> str:
    return f"{generation}.{expires}.{_mac(key, call_sid, call_id, generation, expires)}"


def _is_uint(text: str) -> bool:
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class Claim:
    ok: bool
    generation: int = -1
    reason: str = ""


def check(
    key: bytes,
    token: str,
    *,
    call_sid: str,
    call_id: str,
    now: float,
    current_generation: int,
    used_generation: int,
) -> Claim:
    """Verify ``token`` for ``call_sid``; never raises on garbage."""
    # ASCII only: str.isdigit() and int() also take other scripts' digits ("\u0661" is 1), and
    # hmac.compare_digest raises on non-ASCII text
    ok = isinstance(token, str) and len(token) <= 128 and token.isascii()
    parts = token.split(".") if ok else []
    if len(parts) != 3 or not _is_uint(parts[0]) or not _is_uint(parts[1]):
        return Claim(False, reason="malformed token")
    generation, expires = int(parts[0]), int(parts[1])
    expected = _mac(key, call_sid, call_id, generation, expires)
    if not hmac.compare_digest(expected, parts[2]):
        return Claim(False, reason="token does not belong to this call")
    if now > expires:
        return Claim(False, reason="token expired")
    if generation != current_generation:
        return Claim(False, reason="token superseded")
    if generation <= used_generation:
        return Claim(False, reason="token already used")
    return Claim(True, generation=generation)
