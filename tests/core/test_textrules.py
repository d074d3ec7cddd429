"""Text clients may send: the validator and the pattern published in OpenAPI agree."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from voicecall.textrules import SpokenText, matches_pattern, problem_in


class Body(BaseModel):
    message: SpokenText


# every character class that matters, often: controls, C1, blanks, surrogate-free text
_interesting = st.sampled_from(
    [
        "\x00",
        "\x07",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x1c",
        "\x7f",
        "\x85",
        "\xa0",
        " ",
        "\u2028",
        "\u3000",
        "\ufeff",
        "\u200b",
        "a",
        "é",
        "☎",
    ]
)
_texts = st.lists(
    st.one_of(_interesting, st.characters(exclude_categories=["Cs"])), max_size=12
).map("".join)


@given(_texts)
def test_pattern_and_validator_accept_the_same_strings(text: str) -> None:
    assert (problem_in(text) is None) == matches_pattern(text), repr(text)


def test_every_single_character_agrees() -> None:
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        assert (problem_in(ch) is None) == matches_pattern(ch), hex(code)
        assert (problem_in("x" + ch) is None) == matches_pattern("x" + ch), hex(code)


@pytest.mark.parametrize("text", ["Hello", "Two\nlines", "tab\there", " padded ", "☎ ✓"])
def test_ordinary_text_is_fine(text: str) -> None:
    assert Body(message=text).message == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a\x00b", "U+0000 at position 1"),
        ("\x1b[2J", "U+001B"),
        ("\x85", "U+0085"),
        ("   ", "whitespace"),
        ("\u3000\n", "whitespace"),
    ],
)
def test_bad_text_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        Body(message=text)
    (err,) = info.value.errors()
    assert err["loc"] == ("message",) and says in err["msg"]


@given(_texts)
def test_the_published_pattern_means_the_same_to_a_rust_regex_engine(text: str) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # what schemathesis validates with
    from voicecall.textrules import PATTERN

    validator = jsonschema_rs.validator_for({"type": "string", "pattern": PATTERN})
    assert validator.is_valid(text) == matches_pattern(text), repr(text)
