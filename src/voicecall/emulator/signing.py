"""How the emulator signs what it sends, exactly like Twilio (pure).

This is the emulator's own implementation, written independently of the service's verifier
(``voicecall.twilio``) so that one shared mistake cannot pass both test suites; both are checked
against the official ``twilio`` package's ``RequestValidator``.

Rules (``twilio-protocol.md`` §3):

1. Start from the URL exactly as requested: scheme, host, path and the full query string.
   URL fragments (``#rc=2``) never reach the server and are not signed.
2. Append ``name + value`` for every form parameter, names sorted in byte order (case-sensitive),
   a repeated name contributing each of its values in sorted order.
3. HMAC-SHA1 keyed with the Auth Token, Base64.

Port rule: for ``https`` (and ``wss``) URLs Twilio signs the URL *without* the port; for ``http``
(and ``ws``) the URL is signed as requested, port kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "compute_signature",
    "new_idempotency_token",
    "sign_form_request",
    "sign_websocket_upgrade",
    "url_to_sign",
]

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"

_PORTLESS_SCHEMES = frozenset({"https", "wss"})


def _strip_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def url_to_sign(url: str) -> str:
    """The URL string Twilio feeds into the HMAC for a request to ``url``.

    Drops the fragment; for ``https``/``wss`` drops an explicit port (the port rule); keeps
    everything else (query string included) byte for byte.
    """
    url = _strip_fragment(url)
    parts = urlsplit(url)
    if parts.scheme.lower() in _PORTLESS_SCHEMES and parts.port is not None:
        netloc = parts.netloc
        userinfo, at, hostport = netloc.rpartition("@")
        if hostport.startswith("["):  # IPv6 literal: [::1]:443
            host = hostport[: hostport.index("]") + 1]
        else:
            host = hostport.rsplit(":", 1)[0]
        netloc = f"{userinfo}{at}{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return url


def _payload(url: str, params: Iterable[tuple[str, str]]) -> bytes:
    pairs = sorted(params, key=lambda kv: (kv[0].encode("utf-8"), kv[1].encode("utf-8")))
    chunks = [url]
    for name, value in pairs:
        chunks.append(name)
        chunks.append(value)
    return "".join(chunks).encode("utf-8")


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """HMAC-SHA1/Base64 over ``url`` (used verbatim) followed by the sorted parameters."""
    mac = hmac.new(auth_token.encode("utf-8"), _payload(url, params), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_form_request(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` for a form request (POST body or GET query) to ``url``.

    For a GET the parameters are already in the URL's query string: pass ``params=()``.
    """
    return compute_signature(auth_token, url_to_sign(url), params)


def sign_websocket_upgrade(auth_token: str, stream_url: str) -> str:
    """The ``X-Twilio-Signature`` on a Media Streams WebSocket upgrade.

    Signed like a GET over the stream URL exactly as written in the TwiML, no parameters.
    """
    return compute_signature(auth_token, url_to_sign(stream_url), ())


def new_idempotency_token() -> str:
    """A fresh ``I-Twilio-Idempotency-Token`` value (one per delivery; reused on its retries)."""
    return f"{secrets.token_hex(16)}-{secrets.token_hex(8)}"
