"""X-Twilio-Signature: vectors, the official `twilio` package as oracle, field lessons."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from urllib.parse import quote, urlparse

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from voicecall.twilio.signature import (
    VerifyReason,
    _params_bytes,
    compute_signature,
    rebuild_public_url,
    signed_url_variants,
    verify_json_signature,
    verify_signature,
    verify_websocket_signature,
    websocket_url,
)

TOKEN = "12345"


class MultiDict:
    """The shape the oracle accepts for repeated keys (Flask/werkzeug style ``getall``)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self.pairs])

    def __len__(self) -> int:
        return len(self.pairs)

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


VECTOR_1 = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]
VECTOR_2 = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]


# -- the reference vectors ------------------------------------------------------------------------


def test_vector_1() -> None:
    url = "https://example.com/myapp.php?foo=1&bar=2"
    assert compute_signature(url, VECTOR_1, TOKEN) == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    assert verify_signature(url, VECTOR_1, "L/OH5YylLD5NRKLltdqwSvS0BnU=", TOKEN).ok


def test_vector_2_and_port_variant() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    url_443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert compute_signature(url, VECTOR_2, TOKEN) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert compute_signature(url_443, VECTOR_2, TOKEN) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    # Either signature verifies from either URL: the port is tried both ways.
    for seen in (url, url_443):
        for sig in ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", "kvajT1Ptam85bY51eRf/AJRuM3w="):
            assert verify_signature(seen, VECTOR_2, sig, TOKEN).ok, (seen, sig)


def test_body_sha256_vector() -> None:
    body = b'{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}'
    digest = "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"
    assert hashlib.sha256(body).hexdigest() == digest
    url = f"https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={digest}"
    sig = RequestValidator(TOKEN).compute_signature(url, {})
    assert compute_signature(url, [], TOKEN) == sig
    result = verify_json_signature(url, body, sig, TOKEN)
    assert result.ok and result.reason is VerifyReason.OK
    assert RequestValidator(TOKEN).validate(url, body.decode(), sig)
    tampered = verify_json_signature(url, body.replace(b"3030", b"3031"), sig, TOKEN)
    assert not tampered.ok and tampered.reason is VerifyReason.BODY_HASH_MISMATCH
    assert not RequestValidator(TOKEN).validate(url, body.decode().replace("3030", "3031"), sig)


def test_json_without_body_hash_is_rejected() -> None:
    url = "https://mycompany.com/hook"
    sig = compute_signature(url, [], TOKEN)
    result = verify_json_signature(url, b"{}", sig, TOKEN)
    assert result.reason is VerifyReason.BODY_HASH_MISSING and not result


def test_secretstr_token_accepted() -> None:
    url = "https://example.com/myapp.php?foo=1&bar=2"
    assert compute_signature(url, VECTOR_1, SecretStr(TOKEN)) == "L/OH5YylLD5NRKLltdqwSvS0BnU="


# -- the oracle -----------------------------------------------------------------------------------

# Names close to each other in every order that matters: case, punctuation, prefixes, unicode.
names = st.one_of(
    st.sampled_from(["a", "A", "B", "b", "_", "a_", "aB", "Ab", "Digits", "digits", "é", "e", "Z"]),
    st.text(min_size=1, max_size=6),
)
values = st.one_of(
    st.sampled_from(["", "1", "10", "2", " ", "+1415", "é", "ü"]), st.text(max_size=8)
)
pairs_st = st.lists(st.tuples(names, values), max_size=8)

# URLs that round-trip through urllib's urlparse/geturl (the oracle rebuilds them that way).
path_seg = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x2FFF),
    min_size=1,
    max_size=8,
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(
        st.sampled_from(["example.com", "a.b.example.org", "127.0.0.1", "xn--bcher-kva.ch"])
    )
    port = draw(st.sampled_from(["", ":443", ":80", ":8443", ":3000"]))
    segs = draw(st.lists(path_seg, min_size=0, max_size=3))
    encode = draw(st.booleans())
    path = "/" + "/".join(quote(s) if encode else s for s in segs)
    query_pairs = draw(st.lists(st.tuples(names, values), max_size=3))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query_pairs)
    return f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")


@given(url=st.text(max_size=40), params=pairs_st, token=st.text(min_size=1, max_size=12))
def test_compute_signature_equals_oracle(
    url: str, params: list[tuple[str, str]], token: str
) -> None:
    assume(all(ch < "\ud800" or ch > "\udfff" for s in (url, token) for ch in s))
    assume(all(not any("\ud800" <= ch <= "\udfff" for ch in k + v) for k, v in params))
    oracle = RequestValidator(token).compute_signature(url, MultiDict(params))
    assert compute_signature(url, params, token) == oracle


@settings(max_examples=200)
@given(url=urls(), params=pairs_st, token=st.text(min_size=1, max_size=12))
def test_oracle_and_we_accept_each_other(
    url: str, params: list[tuple[str, str]], token: str
) -> None:
    assume(urlparse(url).geturl() == url)
    oracle = RequestValidator(token)
    ours = compute_signature(url, params, token)
    assert oracle.validate(url, MultiDict(params), ours)
    theirs = oracle.compute_signature(url, MultiDict(params))
    assert verify_signature(url, params, theirs, token).ok


def test_repeated_identical_pairs_match_oracle_dedupe() -> None:
    """Divergence note: identical repeated pairs count once (the oracle's ``set``); we also
    accept the signature where each occurrence counts, in verify only."""
    url = "https://example.com/hook"
    params = [("a", "1"), ("a", "1"), ("a", "0"), ("b", "")]
    oracle = RequestValidator(TOKEN).compute_signature(url, MultiDict(params))
    assert compute_signature(url, params, TOKEN) == oracle
    # Hand-computed: sorted distinct pairs, name+value concatenated.
    expected = base64.b64encode(
        hmac.new(TOKEN.encode(), (url + "a0a1b").encode(), hashlib.sha1).digest()
    ).decode()
    assert oracle == expected
    every_occurrence = base64.b64encode(
        hmac.new(TOKEN.encode(), (url + "a0a1a1b").encode(), hashlib.sha1).digest()
    ).decode()
    assert every_occurrence != oracle
    assert verify_signature(url, params, every_occurrence, TOKEN).ok
    assert verify_signature(url, params, oracle, TOKEN).ok


def test_repeated_key_values_sorted_not_in_arrival_order() -> None:
    url = "https://example.com/hook"
    a = compute_signature(url, [("k", "2"), ("k", "10"), ("k", "1")], TOKEN)
    b = compute_signature(url, [("k", "1"), ("k", "10"), ("k", "2")], TOKEN)
    assert a == b
    manual = base64.b64encode(
        hmac.new(TOKEN.encode(), (url + "k1k10k2").encode(), hashlib.sha1).digest()
    ).decode()
    assert a == manual


# -- field lessons --------------------------------------------------------------------------------


def _sign(data: str, token: str = TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_byte_order_not_locale_order() -> None:
    """Field lesson: a locale-aware compare put `a` before `B`; Twilio uses byte order."""
    url = "https://example.com/hook"
    params = [("a", "1"), ("B", "2"), ("_", "3"), ("É", "4"), ("Z", "5")]
    byte_order = url + "B2Z5_3a1É4"
    assert compute_signature(url, params, TOKEN) == _sign(byte_order)
    locale_like = url + "".join(k + v for k, v in sorted(params, key=lambda p: p[0].casefold()))
    assert locale_like != byte_order
    assert not verify_signature(url, params, _sign(locale_like), TOKEN).ok
    assert verify_signature(url, params, _sign(byte_order), TOKEN).ok


def test_name_prefix_sorts_before_longer_name() -> None:
    """twilio-go bug: sorting concatenated name+value put `ReasonC…` before `ReasonP…`."""
    url = "https://example.com/hook"
    params = [("ReasonConferenceEnded", "x"), ("Reason", "Participant")]
    assert compute_signature(url, params, TOKEN) == _sign(
        url + "ReasonParticipantReasonConferenceEndedx"
    )


def test_query_string_is_part_of_the_signed_url() -> None:
    """Field lesson: dropping the query string rejected every valid signature."""
    full = "https://example.com/twilio/voice?callId=abc&kind=status"
    sig = compute_signature(full, VECTOR_1, TOKEN)
    assert verify_signature(full, VECTOR_1, sig, TOKEN).ok
    assert verify_signature("https://example.com/twilio/voice", VECTOR_1, sig, TOKEN).reason is (
        VerifyReason.MISMATCH
    )


def test_https_port_dropped_by_twilio_still_verifies() -> None:
    """Field lesson: the server sees :8443 but Twilio signed the URL without the port."""
    signed = "https://voice.example.com/twilio/voice?kind=voice"
    seen = "https://voice.example.com:8443/twilio/voice?kind=voice"
    sig = compute_signature(signed, VECTOR_1, TOKEN)
    result = verify_signature(seen, VECTOR_1, sig, TOKEN)
    assert result.ok and result.matched_url == signed


def test_http_port_kept() -> None:
    url = "http://127.0.0.1:8080/twilio/voice"
    sig = compute_signature(url, VECTOR_1, TOKEN)
    assert verify_signature(url, VECTOR_1, sig, TOKEN).ok
    # ...and a default port the server saw explicitly is also tried without it / with it.
    sig80 = compute_signature("http://example.com/x", VECTOR_1, TOKEN)
    assert verify_signature("http://example.com:80/x", VECTOR_1, sig80, TOKEN).ok
    assert verify_signature("http://example.com/x", VECTOR_1, sig80, TOKEN).ok


def test_url_variants() -> None:
    assert signed_url_variants("https://h/p?q=1") == ("https://h/p?q=1", "https://h:443/p?q=1")
    assert signed_url_variants("https://h:8443/p") == ("https://h:8443/p", "https://h/p")
    assert signed_url_variants("http://h") == ("http://h", "http://h:80")
    assert signed_url_variants("wss://h/s") == ("wss://h/s", "wss://h:443/s")
    assert signed_url_variants("http://[::1]:8080/x") == ("http://[::1]:8080/x", "http://[::1]/x")
    assert signed_url_variants("http://u:p@h:81/x") == ("http://u:p@h:81/x", "http://u:p@h/x")
    assert signed_url_variants("not a url") == ("not a url",)


@pytest.mark.parametrize(
    ("mutate", "what"),
    [
        (lambda u, p, t: (u + "&x=1", p, t), "url"),
        (lambda u, p, t: (u.replace("example", "exampie"), p, t), "host"),
        (lambda u, p, t: (u, [*p[:-1], ("To", "+18005551213")], t), "param value"),
        (lambda u, p, t: (u, [*p, ("Extra", "")], t), "added empty param"),
        (lambda u, p, t: (u, p[1:], t), "removed param"),
        (lambda u, p, t: (u, [(k.lower(), v) for k, v in p], t), "name case"),
        (lambda u, p, t: (u, p, t + "6"), "token"),
    ],
)
def test_tampering_rejected(mutate: object, what: str) -> None:
    url = "https://example.com/myapp.php?foo=1&bar=2"
    sig = compute_signature(url, VECTOR_1, TOKEN)
    u, p, t = mutate(url, list(VECTOR_1), TOKEN)  # type: ignore[operator]
    result = verify_signature(u, p, sig, t)
    assert not result.ok and result.reason is VerifyReason.MISMATCH, what


@pytest.mark.parametrize("sig", [None, "", "   "])
def test_missing_signature(sig: str | None) -> None:
    result = verify_signature("https://example.com/", VECTOR_1, sig, TOKEN)
    assert not result and result.reason is VerifyReason.MISSING


@given(
    url=st.text(max_size=60),
    params=st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=5),
    sig=st.one_of(st.none(), st.text(max_size=40)),
    token=st.text(max_size=10),
    body=st.binary(max_size=30),
)
def test_verification_never_raises(
    url: str, params: list[tuple[str, str]], sig: str | None, token: str, body: bytes
) -> None:
    for result in (
        verify_signature(url, params, sig, token),
        verify_json_signature(url, body, sig, token),
        verify_websocket_signature(url, sig, token),
    ):
        assert isinstance(result.ok, bool)


@given(
    params=pairs_st, token=st.text(min_size=1, max_size=8), other=st.text(min_size=1, max_size=8)
)
def test_wrong_token_never_verifies(params: list[tuple[str, str]], token: str, other: str) -> None:
    assume(token != other)
    assume(all(not any("\ud800" <= ch <= "\udfff" for ch in k + v) for k, v in params))
    url = "https://example.com/hook?kind=status"
    sig = compute_signature(url, params, token)
    assert not verify_signature(url, params, sig, other).ok


# -- WebSocket upgrade ----------------------------------------------------------------------------


def test_websocket_signature_trailing_slash_and_port() -> None:
    signed = "wss://voice.example.com/twilio/stream/"
    sig = RequestValidator(TOKEN).compute_signature(signed, {})
    assert verify_websocket_signature("wss://voice.example.com/twilio/stream", sig, TOKEN).ok
    assert verify_websocket_signature("wss://voice.example.com:8443/twilio/stream", sig, TOKEN).ok
    assert verify_websocket_signature(signed, sig, TOKEN).ok
    assert not verify_websocket_signature("wss://voice.example.com/twilio/other", sig, TOKEN).ok
    # Signed over wss://, so the https:// spelling of the same URL does not verify.
    assert not verify_websocket_signature("https://voice.example.com/twilio/stream/", sig, TOKEN).ok
    assert websocket_url("https://voice.example.com/twilio/stream") == (
        "wss://voice.example.com/twilio/stream"
    )
    assert websocket_url("http://127.0.0.1:8000/s") == "ws://127.0.0.1:8000/s"
    assert websocket_url("wss://x/s") == "wss://x/s"


# -- rebuilding the URL Twilio saw ----------------------------------------------------------------


def _rebuild(**kw: object) -> str:
    args: dict[str, object] = {
        "public_url": None,
        "path": "/twilio/voice",
        "query_string": "callId=abc&kind=voice",
        "headers": {},
        "client_host": "203.0.113.9",
        "trusted_proxies": (),
        "scheme": "http",
        "host_header": "internal:8000",
    }
    args.update(kw)
    return rebuild_public_url(**args)  # type: ignore[arg-type]


def test_public_url_origin_with_request_path_and_raw_query() -> None:
    url = _rebuild(
        public_url="https://voice.example.com",
        query_string="callId=a%2Fb&kind=voice&x=%C3%A9+y",
        headers={"x-forwarded-host": "evil.example"},
    )
    assert url == "https://voice.example.com/twilio/voice?callId=a%2Fb&kind=voice&x=%C3%A9+y"
    assert _rebuild(public_url="https://voice.example.com:8443/ignored/") == (
        "https://voice.example.com:8443/twilio/voice?callId=abc&kind=voice"
    )
    assert _rebuild(query_string="") == "http://internal:8000/twilio/voice"


def test_forged_forwarded_host_from_untrusted_client_ignored() -> None:
    """Field lesson: X-Forwarded-Host trusted from anyone lets an attacker pick the URL."""
    headers = {"x-forwarded-host": "attacker.example", "x-forwarded-proto": "https"}
    url = _rebuild(headers=headers, client_host="198.51.100.7", trusted_proxies=("10.0.0.0/8",))
    assert url == "http://internal:8000/twilio/voice?callId=abc&kind=voice"
    # A signature the attacker made for their own host does not verify at our URL.
    forged = compute_signature(
        "https://attacker.example/twilio/voice?callId=abc&kind=voice", VECTOR_1, TOKEN
    )
    assert not verify_signature(url, VECTOR_1, forged, TOKEN).ok


@pytest.mark.parametrize(
    ("client", "trusted"),
    [
        ("10.1.2.3", ("10.0.0.0/8",)),
        ("127.0.0.1", ("127.0.0.1",)),
        ("::1", ("::1/128",)),
        ("fd00::5", ("192.168.0.0/16", "fd00::/8")),
    ],
)
def test_forwarded_headers_from_trusted_proxy(client: str, trusted: tuple[str, ...]) -> None:
    headers = {"x-forwarded-host": "voice.example.com, inner", "x-forwarded-proto": "https,http"}
    url = _rebuild(headers=headers, client_host=client, trusted_proxies=trusted)
    assert url == "https://voice.example.com/twilio/voice?callId=abc&kind=voice"


@pytest.mark.parametrize("bad_host", ["evil.example/path?", "a@b", "x y", "", "h#frag", "a\\b"])
def test_trusted_proxy_with_malformed_forwarded_host_falls_back(bad_host: str) -> None:
    url = _rebuild(
        headers={"x-forwarded-host": bad_host, "x-forwarded-proto": "gopher"},
        client_host="10.0.0.1",
        trusted_proxies=("10.0.0.0/8",),
    )
    assert url == "http://internal:8000/twilio/voice?callId=abc&kind=voice"


def test_host_from_headers_when_no_host_argument() -> None:
    url = _rebuild(host_header=None, headers={"host": "h.example"}, scheme="https")
    assert url == "https://h.example/twilio/voice?callId=abc&kind=voice"


def test_rebuilt_url_behind_tls_proxy_verifies_twilio_signature() -> None:
    """End to end: Twilio signs https://public/...; we run on http://internal:8000 behind a
    trusted TLS-terminating proxy that forwards Host with its port."""
    signed = "https://voice.example.com/twilio/voice?callId=abc&kind=voice"
    sig = RequestValidator(TOKEN).compute_signature(signed, dict(VECTOR_1))
    url = _rebuild(
        headers={"x-forwarded-host": "voice.example.com:443", "x-forwarded-proto": "https"},
        client_host="10.0.0.2",
        trusted_proxies=("10.0.0.0/8",),
    )
    assert verify_signature(url, VECTOR_1, sig, TOKEN).ok


def test_divergence_wss_default_port_is_443() -> None:
    """Divergence note: the oracle's ``add_port`` uses 80 for every non-https scheme, so for a
    ``wss://`` URL it tries ``:80``; we try ``:443`` (the wss default). Both try the URL as is."""
    from twilio.request_validator import add_port

    assert add_port(urlparse("wss://h/s")) == "wss://h:80/s"
    assert "wss://h:443/s" in signed_url_variants("wss://h/s")
    sig = compute_signature("wss://h:443/s", [], TOKEN)
    assert verify_websocket_signature("wss://h/s", sig, TOKEN).ok
    assert not RequestValidator(TOKEN).validate("wss://h/s", {}, sig)


@given(
    params=st.lists(
        st.tuples(
            st.text(alphabet=st.characters(blacklist_categories=()), max_size=4),
            st.text(alphabet=st.characters(blacklist_categories=()), max_size=4),
        ),
        max_size=8,
    ),
    dedupe=st.booleans(),
)
def test_params_sorted_as_utf8_bytes_also_with_surrogates(
    params: list[tuple[str, str]], dedupe: bool
) -> None:
    """Sorting the ``str`` pairs equals sorting their UTF-8 (surrogatepass) bytes."""

    def enc(s: str) -> bytes:
        return s.encode("utf-8", "surrogatepass")

    pairs = [(enc(n), enc(v)) for n, v in params]
    if dedupe:
        pairs = list(set(pairs))
    expected = b"".join(n + v for n, v in sorted(pairs))
    assert _params_bytes(params, dedupe=dedupe) == expected
