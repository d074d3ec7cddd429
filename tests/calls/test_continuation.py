"""What a re-heard caller turn adds to the line already stored (calls/continuation.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.continuation import continuation, words


def test_the_new_words_in_the_new_readings_own_writing() -> None:
    stored = "Wonderful, Table F-730 to High. It's worked. We look forward to seeing you."
    reheard = "Wonderful, table F 730 to high, it’s worked. We look forward to seeing you. Goodbye."
    assert continuation(stored, reheard) == "Goodbye."
    assert continuation("We need it for Friday.", "We need it for Friday and Saturday night.") == (
        "and Saturday night."
    )
    assert continuation("Thank you.", 'Thank you. "Goodbye," she said.') == '"Goodbye," she said.'


def test_none_when_a_word_changed_or_nothing_was_added() -> None:
    assert continuation("We will arrive at our own.", "We will arrive at around seven.") is None
    assert continuation("Yes.", "Yes!") is None  # nothing new
    assert continuation("Yes, please.", "Yes.") is None  # fewer words
    assert continuation("", "Hello.") is None  # nothing stored to repeat
    assert continuation("...", "Hello.") is None
    assert continuation("four", "for you") is None


def test_apostrophes_case_and_hyphens_do_not_make_a_word_new() -> None:
    assert continuation("its", "It's fine") == "fine"
    assert continuation("F-730", "f 730, please") == "please"


_word = st.text(alphabet=st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=8)
_sep = st.sampled_from([" ", ", ", ". ", " - ", "; ", "! ", "? "])


@st.composite
def _sentence(draw: st.DrawFn, min_words: int = 1) -> str:
    ws = draw(st.lists(_word, min_size=min_words, max_size=8))
    out = ws[0]
    for w in ws[1:]:
        out += draw(_sep) + w
    return out + draw(st.sampled_from(["", ".", "!", "?"]))


@given(_sentence(), _sentence())
def test_a_continuation_is_exactly_the_new_words(stored: str, more: str) -> None:
    reheard = stored + " " + more
    rest = continuation(stored, reheard)
    assert rest is not None
    assert words(rest) == words(more)
    assert reheard.endswith(rest)


@given(st.text(max_size=60), st.text(max_size=80))
def test_nothing_is_ever_dropped_and_nothing_made_up(stored: str, reheard: str) -> None:
    rest = continuation(stored, reheard)
    if rest is None:
        return
    # what the stored line and the continuation say together is what the new reading says
    assert words(stored) + words(rest) == words(reheard)
    assert rest and reheard.rstrip().endswith(rest)
