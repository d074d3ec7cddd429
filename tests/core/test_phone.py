from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.errors import InvalidPhoneNumber
from voicecall.phone import is_allowed, normalize_caller_id, parse_e164


def test_parse_valid() -> None:
    assert parse_e164("+14155550100") == "+14155550100"
    assert parse_e164("+442071838750") == "+442071838750"


@pytest.mark.parametrize("raw", ["", "   ", "4155550100", "+1", "+999123", "hello", "+1415555010O"])
def test_parse_invalid(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        parse_e164(raw)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        # letters were silently turned into digits: +1415ABC0100 was dialled as +14152220100
        ("+1415ABC0100", "contains letters"),
        ("+1800FLOWERS", "letters are not converted"),
        # anything after the number (an extension, text) is refused, not dropped
        ("+14155550123x", "'x' after the number"),
        ("+14155550123;ext=5", "after the number"),
        ("+14155550123\x00", "after the number"),
        # no spaces or punctuation repair; the message shows the E.164 form
        ("+1 415 555 0100", "did you mean +14155550100?"),
        ("+1 (415) 555-0100", "did you mean +14155550100?"),
        (" +14155550100", "spaces around"),
        ("+14155550100\n", "spaces around"),
        (" +1 415 555 0100 ", "spaces before the +"),
        # digits of other scripts are not digits to a phone network
        ("+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0660", "ASCII"),
        ("+1415555012345678", "at most 15 digits"),
        ("+0123456", "never start with 0"),
    ],
)
def test_e164_exactly_as_given(raw: str, says: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        parse_e164(raw, field="to")
    assert info.value.message.startswith("to: ")
    assert says in info.value.message


@given(st.text(alphabet="+0123456789 -().xA\u0661", max_size=20))
def test_parse_accepts_only_what_it_returns(raw: str) -> None:
    try:
        result = parse_e164(raw, field="to")
    except InvalidPhoneNumber as exc:
        assert exc.message.startswith("to: ")
    else:
        assert result == raw  # never repaired: what is dialled is what was written


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
