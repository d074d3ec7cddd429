from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.errors import InvalidPhoneNumber
from voicecall.phone import is_allowed, normalize_caller_id, parse_e164


def test_parse_valid() -> None:
    assert parse_e164(" +1 415 555 0100 ") == "+14155550100"
    assert parse_e164("+442071838750") == "+442071838750"


@pytest.mark.parametrize("raw", ["", "   ", "4155550100", "+1", "+999123", "hello", "+1415555010O"])
def test_parse_invalid(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        parse_e164(raw)


def test_allowlist_exact_only() -> None:
    allow = ["+15550005678", "+14155550100"]
    assert is_allowed("+14155550100", allow)
    # suffix match in either direction must fail (field lesson)
    assert not is_allowed("5678", allow)
    assert not is_allowed("+15550005678"[:-1], allow)
    assert not is_allowed("+115550005678", allow)


@pytest.mark.parametrize(
    "caller", [None, "", "anonymous", "Anonymous", "restricted", "+266696687", "unknown"]
)
def test_anonymous_never_matches(caller: str | None) -> None:
    assert normalize_caller_id(caller) is None
    assert not is_allowed(caller, ["+14155550100", "+266696687"])


@given(st.text(max_size=40))
def test_normalize_never_raises(text: str) -> None:
    result = normalize_caller_id(text)
    assert result is None or result.startswith("+")
