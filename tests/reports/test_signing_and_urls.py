"""Standard Webhooks signatures checked against the ``standardwebhooks`` package (the oracle),
and the SSRF guard on report URLs (pure; resolution is given)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.config import load_config
from voicecall.errors import ConfigError
from voicecall.reports import signing, urls

KEY = bytes(range(32))
SECRET = signing.new_secret(KEY)


def test_secret_round_trip_and_refusals() -> None:
    assert signing.parse_secret(SECRET) == KEY
    unpadded = SECRET.rstrip("=")
    assert signing.parse_secret(unpadded) == KEY
    for bad, why in (
        ("abc", "must start with whsec_"),
        ("whsec_!!!!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24-64 random bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24-64 random bytes"),
    ):
        with pytest.raises(ValueError, match=why):
            signing.parse_secret(bad)


def test_a_bad_reports_secret_is_one_config_line_without_the_secret() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(env={}, overrides={"reports": {"secret": "whsec_c2hvcnQ="}})
    assert exc.value.problems == ["reports.secret: must hold 24-64 random bytes (it has 5)"]
    with pytest.raises(ConfigError) as exc:
        load_config(env={}, overrides={"reports": {"url": "ftp://x/y"}})
    assert exc.value.problems[0].startswith("reports.url: must be an http(s) URL")
    ok = load_config(env={}, overrides={"reports": {"secret": SECRET}})
    assert ok.reports.secret is not None and SECRET not in repr(ok)


@settings(max_examples=200)
@given(
    msg_id=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40
    ),
    timestamp=st.integers(min_value=1, max_value=4_000_000_000),
    body=st.binary(max_size=2048),
    key=st.binary(min_size=24, max_size=64),
)
def test_signatures_match_the_standardwebhooks_package(
    msg_id: str, timestamp: int, body: bytes, key: bytes
) -> None:
    ours = signing.signature(key, msg_id, timestamp, body)
    oracle = standardwebhooks.Webhook(key).sign(
        msg_id, datetime.fromtimestamp(timestamp, UTC), body
    )
    assert ours == oracle
    headers = signing.headers(key, msg_id, timestamp, body)
    assert signing.verify(key, headers, body, now=timestamp)


def test_the_oracle_verifies_our_headers_and_rejects_tampering() -> None:
    now = int(datetime.now(UTC).timestamp())
    body = b'{"type":"call.ended","data":{"call_id":"c1"}}'
    headers = signing.headers(KEY, "msg_c1", now, body)
    assert standardwebhooks.Webhook(SECRET).verify(body, headers)["data"]["call_id"] == "c1"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body + b" ", headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body, {**headers, "webhook-id": "msg_c2"})
    assert not signing.verify(KEY, headers, body, now=now + 301)  # too old
    assert not signing.verify(KEY, {**headers, "webhook-timestamp": "x"}, body, now=now)
    unsigned = signing.headers(None, "msg_c1", now, body)
    assert "webhook-signature" not in unsigned and unsigned["webhook-id"] == "msg_c1"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.7", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("0.0.0.0", "not"),
        ("224.0.0.1", "not"),
        ("100.64.0.1", "not a public address"),
    ],
)
def test_refused_addresses(address: str, why: str) -> None:
    reason = urls.refusal(address)
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert urls.refusal(address) is None


def resolver(answers: dict[str, list[str]]) -> urls.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


async def test_resolution_pins_the_checked_address_and_keeps_host_and_sni() -> None:
    target = await urls.resolve(
        "https://hooks.example.com:8443/calls?x=1",
        allow_private=False,
        resolver=resolver({"hooks.example.com": ["93.184.216.34"]}),
    )
    assert target.url == "https://93.184.216.34:8443/calls?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.sni_hostname == "hooks.example.com"
    six = await urls.resolve(
        "http://v6.example/", allow_private=False, resolver=resolver({"v6.example": ["2606::1"]})
    )
    assert six.url == "http://[2606::1]/" and six.sni_hostname is None


async def test_one_private_answer_among_public_ones_is_refused() -> None:
    rebinding = resolver({"evil.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(urls.UrlRefused, match="loopback"):
        await urls.resolve("http://evil.example/", allow_private=False, resolver=rebinding)
    ok = await urls.resolve("http://evil.example/", allow_private=True, resolver=rebinding)
    assert ok.address == "93.184.216.34"
    with pytest.raises(urls.UrlRefused, match="does not resolve"):
        await urls.resolve("http://nowhere.example/", allow_private=True, resolver=resolver({}))


@given(st.text(max_size=300))
def test_check_syntax_of_untrusted_text_is_a_url_or_a_refusal(text: str) -> None:
    try:
        out = urls.check_syntax(text)
    except urls.UrlRefused as exc:
        assert str(exc).startswith("report_url: ")
    else:
        assert out.startswith(("http://", "https://"))
