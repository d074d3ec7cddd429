"""X-Twilio-Signature: compute and verify, and rebuild the URL Twilio signed. Pure functions.

Twilio signs ``url + name1 + value1 + name2 + value2 …`` (form parameters sorted by name, then by
value, in byte order) with HMAC-SHA1 keyed by the account's Auth Token, and sends the Base64
digest in ``X-Twilio-Signature``. Everything here is a pure function of its arguments: no clock,
no request object, no I/O. Verification never raises on garbage input; it returns a
:class:`VerifyResult` saying why it failed.

Decisions (each pinned by a test in ``tests/wire/test_signature.py``):

* **Sorting** is by UTF-8 bytes of the name, then of the value (byte order, never a
  locale-aware collation: that bug rejected valid signatures in the field). For ``str`` this is
  the same order as code-point order, which is what the official ``twilio`` package uses.
* **Repeated identical pairs** (``a=1&a=1``) contribute once. This matches the official
  ``twilio`` package (``sorted(set(values))``, twilio-python PR #617, made to match Twilio's
  servers). :func:`verify_signature` also accepts the variant where every occurrence
  contributes, so either reading of the rule verifies; :func:`compute_signature` produces the
  oracle's.
* **Port rule**: Twilio signs HTTPS voice webhooks *without* the port and HTTP ones with it, so
  a validator tries the URL as given, with any explicit port removed, and with the scheme's
  default port added (https/wss 443, http/ws 80).
* **JSON bodies**: the URL carries ``bodySHA256=<hex>``; the signature covers the URL only and
  the raw body must hash to that value (:func:`verify_json_signature`).
* **WebSocket upgrade** (Media Streams): signed like a GET with no parameters over the ``wss://``
  URL; the URL with a trailing ``/`` is tried too (:func:`verify_websocket_signature`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import unquote

__all__ = [
    "SIGNATURE_HEADER",
    "SecretLike",
    "VerifyReason",
    "VerifyResult",
    "compute_signature",
    "rebuild_public_url",
    "signed_url_variants",
    "verify_json_signature",
    "verify_signature",
    "verify_websocket_signature",
    "websocket_url",
]

SIGNATURE_HEADER = "x-twilio-signature"

_DEFAULT_PORTS = {"https": "443", "wss": "443", "http": "80", "ws": "80"}
_FORWARDED_PROTOS = frozenset({"http", "https", "ws", "wss"})
# Characters that may not appear in a host taken from a header (they would change the URL's
# structure: path, query, fragment, userinfo) or that no real host contains.
_BAD_HOST_CHARS = frozenset("/?#@\\ \t\r\n\x00,")


class SecretLike(Protocol):
    """Anything holding a secret the way :class:`pydantic.SecretStr` does."""

    def get_secret_value(self) -> str: ...


class VerifyReason(StrEnum):
    OK = "ok"
    MISSING = "missing"  # no (or an empty) X-Twilio-Signature header
    MISMATCH = "mismatch"  # the signature matches no accepted URL variant
    BODY_HASH_MISSING = "body-hash-missing"  # JSON body but no bodySHA256 in the URL
    BODY_HASH_MISMATCH = "body-hash-mismatch"  # signed URL fine, body does not hash to it


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a verification. ``matched_url`` is the URL variant that verified."""

    ok: bool
    reason: VerifyReason
    matched_url: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _token_bytes(auth_token: str | SecretLike) -> bytes:
    raw = auth_token if isinstance(auth_token, str) else auth_token.get_secret_value()
    return raw.encode("utf-8", "surrogatepass")


def _enc(s: str) -> bytes:
    # surrogatepass: a lone surrogate (only possible from a caller, never from parse_form) must
    # not make verification raise; it simply will not match.
    return s.encode("utf-8", "surrogatepass")


def _params_bytes(params: Iterable[tuple[str, str]], *, dedupe: bool) -> bytes:
    # Sorting the ``str`` pairs gives the same order as sorting their UTF-8 bytes (UTF-8, also
    # with surrogatepass, preserves code-point order), and the encoding is injective, so
    # deduplicating before encoding is the same too: encode once, at the end.
    pairs = sorted(set(params) if dedupe else params)
    return _enc("".join([name + value for name, value in pairs]))


def _signing_bytes(url: str, params: Iterable[tuple[str, str]], *, dedupe: bool) -> bytes:
    return _enc(url) + _params_bytes(params, dedupe=dedupe)


def _digest(token: bytes, data: bytes) -> str:
    # Not hmac.digest(): its one-shot C path releases the GIL on every call, and on the pinned
    # server that hands the core to the SQLite writer thread mid-request.
    return base64.b64encode(hmac.new(token, data, hashlib.sha1).digest()).decode("ascii")


def compute_signature(
    url: str, params: Iterable[tuple[str, str]], auth_token: str | SecretLike
) -> str:
    """The Base64 HMAC-SHA1 signature Twilio sends for ``url`` and form ``params``.

    ``params`` is a multi-dict as pairs (repeated names allowed). Identical repeated pairs count
    once, as in the official ``twilio`` package.
    """
    return _digest(_token_bytes(auth_token), _signing_bytes(url, params, dedupe=True))


# -- URL variants ---------------------------------------------------------------------------------


def _split_url(url: str) -> tuple[str, str, str] | None:
    """``(scheme, netloc, rest)`` of an absolute URL, or ``None``. Never raises."""
    scheme, sep, after = url.partition("://")
    if not sep or not scheme:
        return None
    end = len(after)
    for ch in "/?#":
        i = after.find(ch)
        if i != -1 and i < end:
            end = i
    return scheme, after[:end], after[end:]


def _split_port(netloc: str) -> tuple[str, str | None]:
    """``(netloc without port, port)``; the port is ``None`` when there is none."""
    userinfo, at, hostport = netloc.rpartition("@")
    prefix = userinfo + at
    if hostport.startswith("["):  # IPv6 literal
        close = hostport.find("]")
        if close == -1:
            return netloc, None
        host, rest = hostport[: close + 1], hostport[close + 1 :]
        if rest.startswith(":") and (rest[1:].isdecimal() or rest == ":"):
            return prefix + host, rest[1:]
        return netloc, None
    host, colon, port = hostport.rpartition(":")
    if colon and (port.isdecimal() or port == "") and ":" not in host:
        return prefix + host, port
    return netloc, None


def signed_url_variants(url: str) -> tuple[str, ...]:
    """The URLs a validator should try: as given, without the port, with the default port.

    Order is deterministic and duplicates are removed. A URL that cannot be split (not absolute)
    yields only itself.
    """
    variants = [url]
    parts = _split_url(url)
    if parts is not None:
        scheme, netloc, rest = parts
        bare, port = _split_port(netloc)
        head = f"{scheme}://"
        if port is not None:
            variants.append(head + bare + rest)
        else:
            default = _DEFAULT_PORTS.get(scheme.lower())
            if default is not None and bare:
                variants.append(f"{head}{bare}:{default}{rest}")
    return tuple(dict.fromkeys(variants))


def _compare(expected: str, signature: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), _enc(signature))


def _check(
    urls: Sequence[str],
    params: Sequence[tuple[str, str]],
    signature: str | None,
    auth_token: str | SecretLike,
) -> VerifyResult:
    if signature is None or not signature.strip():
        return VerifyResult(False, VerifyReason.MISSING)
    sig = signature.strip()
    token = _token_bytes(auth_token)
    has_duplicates = len(set(params)) != len(params)
    dedupe_modes = (True, False) if has_duplicates else (True,)
    # the sorted parameters do not depend on the URL variant: build them once per mode
    param_bytes = [_params_bytes(params, dedupe=dedupe) for dedupe in dedupe_modes]
    first = _enc(urls[0]) if urls else b""
    if urls and _compare(_digest(token, first + param_bytes[0]), sig):
        # the usual case (the URL as requested, parameters deduplicated): one HMAC. Which
        # variant matched is no secret (the sender chose the URL); comparisons stay constant-time.
        return VerifyResult(True, VerifyReason.OK, urls[0])
    matched: str | None = None
    for candidate in urls:
        url_bytes = _enc(candidate)
        for tail in param_bytes:
            expected = _digest(token, url_bytes + tail)
            # Evaluate every variant (no early exit), so timing says nothing about which failed.
            if _compare(expected, sig) and matched is None:
                matched = candidate
    if matched is None:
        return VerifyResult(False, VerifyReason.MISMATCH)
    return VerifyResult(True, VerifyReason.OK, matched)


def verify_signature(
    url: str,
    params: Iterable[tuple[str, str]],
    signature: str | None,
    auth_token: str | SecretLike,
) -> VerifyResult:
    """Check ``X-Twilio-Signature`` for a form-encoded (or GET) webhook.

    ``url`` is the URL as Twilio requested it (see :func:`rebuild_public_url`), including the
    full query string; ``params`` the form fields (empty for GET). Constant-time comparison;
    never raises.
    """
    return _check(signed_url_variants(url), tuple(params), signature, auth_token)


def _query_value(url: str, name: str) -> str | None:
    """First value of ``name`` in the query string of ``url`` (no fragment). Never raises."""
    query = url.partition("#")[0].partition("?")[2]
    for field in query.split("&"):
        key, _, value = field.partition("=")
        if unquote(key.replace("+", " ")) == name:
            return unquote(value.replace("+", " "))
    return None


def verify_json_signature(
    url: str, body: bytes, signature: str | None, auth_token: str | SecretLike
) -> VerifyResult:
    """Check a webhook with a JSON body: signature over the URL only, then ``bodySHA256``."""
    result = _check(signed_url_variants(url), (), signature, auth_token)
    if not result.ok:
        return result
    claimed = _query_value(url, "bodySHA256")
    if claimed is None:
        return VerifyResult(False, VerifyReason.BODY_HASH_MISSING)
    actual = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(actual.encode("ascii"), _enc(claimed.strip().lower())):
        return VerifyResult(False, VerifyReason.BODY_HASH_MISMATCH)
    return result


def _with_trailing_slash(url: str) -> str:
    before_fragment, hash_, fragment = url.partition("#")
    path, q, query = before_fragment.partition("?")
    if path.endswith("/"):
        return url
    return f"{path}/{q}{query}{hash_}{fragment}"


def verify_websocket_signature(
    wss_url: str, signature: str | None, auth_token: str | SecretLike
) -> VerifyResult:
    """Check the signature of a Media Streams WebSocket upgrade (GET, no parameters).

    Tries ``wss_url`` and ``wss_url`` with a trailing ``/``, each with the port variants.
    """
    urls: list[str] = []
    for base in (wss_url, _with_trailing_slash(wss_url)):
        urls.extend(signed_url_variants(base))
    return _check(tuple(dict.fromkeys(urls)), (), signature, auth_token)


def websocket_url(url: str) -> str:
    """``https://`` → ``wss://`` and ``http://`` → ``ws://``; other URLs unchanged."""
    lowered = url[:8].lower()
    if lowered.startswith("https://"):
        return "wss://" + url[8:]
    if lowered.startswith("http://"):
        return "ws://" + url[7:]
    return url


# -- rebuilding the public URL --------------------------------------------------------------------


def _is_trusted(client_host: str | None, trusted_proxies: Sequence[str]) -> bool:
    if not client_host or not trusted_proxies:
        return False
    try:
        client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            client_host.strip("[]")
        )
    except ValueError:
        client_ip = None
    for entry in trusted_proxies:
        entry = entry.strip()
        if not entry:
            continue
        if client_ip is None:
            if entry == client_host:  # a non-IP peer name (e.g. a unix socket label)
                return True
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if entry == client_host:
                return True
            continue
        if client_ip.version == network.version and client_ip in network:
            return True
    return False


def _first_forwarded(value: str | None) -> str | None:
    if value is None:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def _sane_host(host: str | None) -> str | None:
    if not host or len(host) > 255 or any(ch in _BAD_HOST_CHARS for ch in host):
        return None
    return host


def rebuild_public_url(
    *,
    public_url: str | None,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    client_host: str | None,
    trusted_proxies: Sequence[str],
    scheme: str,
    host_header: str | None,
) -> str:
    """The URL as Twilio saw it, to be verified.

    * ``public_url`` configured: its scheme and host (and port) are the origin; only the path
      and raw query string come from the request, verbatim (never re-encoded). The path of
      ``public_url`` itself is not used: pass the full request path (ASGI ``root_path`` +
      ``path``).
    * Else ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` (first value of each) are honoured only
      when ``client_host`` is in ``trusted_proxies`` (IP addresses or CIDR networks); anyone can
      send those headers, and trusting them lets an attacker choose the URL that is verified.
    * Else the ``Host`` header (``host_header``, or ``headers["host"]``) and ``scheme``.

    ``headers`` must have lower-case names.
    """
    suffix = path + (f"?{query_string}" if query_string else "")
    if public_url:
        parts = _split_url(public_url.strip())
        if parts is not None:
            pub_scheme, pub_netloc, _ = parts
            return f"{pub_scheme.lower()}://{pub_netloc}{suffix}"
    out_scheme = scheme.lower()
    host = _sane_host(host_header if host_header is not None else headers.get("host")) or ""
    if _is_trusted(client_host, trusted_proxies):
        proto = _first_forwarded(headers.get("x-forwarded-proto"))
        if proto is not None and proto.lower() in _FORWARDED_PROTOS:
            out_scheme = proto.lower()
        fwd_host = _sane_host(_first_forwarded(headers.get("x-forwarded-host")))
        if fwd_host is not None:
            host = fwd_host
    return f"{out_scheme}://{host}{suffix}"
