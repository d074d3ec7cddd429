"""The emulator's own signing, checked against the protocol vectors and twilio's validator."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from voicecall.emulator.forms import decode_form, encode_form
from voicecall.emulator.signing import (
    compute_signature,
    new_idempotency_token,
    sign_form_request,
    sign_websocket_upgrade,
    url_to_sign,
)
from voicecall.emulator.webhooks import prepare_request

VECTOR_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]


def test_reference_vectors():
    url = "https://example.com/myapp.php?foo=1&bar=2"
    assert sign_form_request("12345", url, VECTOR_PARAMS) == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    params = [(k, v.replace("5310", "5309")) for k, v in VECTOR_PARAMS]
    url2 = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign_form_request("12345", url2, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    # compute_signature signs verbatim: the :443 form gives the other vector ...
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", with_port, params) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    # ... but a request to it is signed without the port (the https port rule)
    assert sign_form_request("12345", with_port, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_port_rule():
    assert url_to_sign("https://h.example:8443/a?b=1") == "https://h.example/a?b=1"
    assert url_to_sign("wss://h.example:8443/s") == "wss://h.example/s"
    assert url_to_sign("http://127.0.0.1:8080/a?b=1") == "http://127.0.0.1:8080/a?b=1"
    assert url_to_sign("ws://127.0.0.1:9/s") == "ws://127.0.0.1:9/s"
    assert url_to_sign("https://h/a#rc=2") == "https://h/a"
    assert url_to_sign("https://[::1]:443/x") == "https://[::1]/x"


def test_params_sorted_in_byte_order_not_locale_order():
    # "Z" (0x5A) sorts before "a" (0x61) in byte order; a case-insensitive sort would flip them.
    params = [("a", "1"), ("Z", "2")]
    sig = sign_form_request("tok", "https://h/x", params)
    assert sig == compute_signature("tok", "https://h/xZ2a1")
    assert RequestValidator("tok").validate("https://h/x", {"a": "1", "Z": "2"}, sig)


def test_query_string_is_signed():
    a = sign_form_request("tok", "https://h/x?q=1", [])
    b = sign_form_request("tok", "https://h/x", [])
    assert a != b


def test_repeated_keys_contribute_every_value():
    sig = sign_form_request("tok", "https://h/x", [("E", "b"), ("E", "a")])
    assert sig == compute_signature("tok", "https://h/xEaEb")


def test_idempotency_tokens_are_fresh():
    assert len({new_idempotency_token() for _ in range(100)}) == 100


def test_prepared_request_retries_share_token_and_signature():
    p = prepare_request("tok", "POST", "http://127.0.0.1:5/x#rc=3&rp=all", (("A", "1"),))
    assert p.url == "http://127.0.0.1:5/x"
    assert p.policy.retries == 3
    assert p.policy.on == frozenset({"4xx", "5xx", "ct", "rt"})
    assert p.body == b"A=1"
    assert RequestValidator("tok").validate(p.url, {"A": "1"}, p.signature)


def test_get_webhooks_sign_the_query_string():
    p = prepare_request("tok", "GET", "http://127.0.0.1:5/x?keep=1", (("CallSid", "CA1"),))
    assert p.url == "http://127.0.0.1:5/x?keep=1&CallSid=CA1"
    assert p.body is None
    assert RequestValidator("tok").validate(p.url, {}, p.signature)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_name = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
# IPv6 literals are left out: the oracle's remove_port() splits "[::1]:9" on the first colon.
_host = st.sampled_from(["example.com", "api.example.org:8443", "127.0.0.1:8080", "h:443", "h:80"])
_path = st.text(st.sampled_from("abcxyz/-_.~%20"), max_size=15)
_query = st.one_of(st.just(""), st.text(st.sampled_from("ab=&1+%2C"), max_size=15))


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t),
    scheme=st.sampled_from(["http", "https"]),
    host=_host,
    path=_path,
    query=_query,
    params=st.dictionaries(_name, _text, max_size=8),
)
def test_twilio_validator_accepts_every_form_signature(token, scheme, host, path, query, params):
    url = f"{scheme}://{host}/{path}" + (f"?{query}" if query else "")
    pairs = list(params.items())
    sig = sign_form_request(token, url, pairs)
    assert RequestValidator(token).validate(url, params, sig)
    # and a different token is refused
    assert not RequestValidator(token + "x").validate(url, params, sig)


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(min_size=1, max_size=40),
    scheme=st.sampled_from(["ws", "wss"]),
    host=_host,
    path=_path,
)
def test_twilio_validator_accepts_every_websocket_signature(token, scheme, host, path):
    url = f"{scheme}://{host}/{path}"
    sig = sign_websocket_upgrade(token, url)
    assert RequestValidator(token).validate(url, {}, sig)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_name, _text), max_size=10))
def test_form_encoding_round_trips_with_repeats(pairs):
    assert list(decode_form(encode_form(pairs))) == pairs
