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


def test_a_few_earlier_words_heard_otherwise_are_not_stored_again() -> None:
    # the voice demo's host, stored early and re-heard with its goodbye (2026-12-05)
    stored = (
        "Wonderful, table F-730 to high, it's worked. Thank you. We look forward to seeing you."
    )
    reheard = (
        "Wonderful, Table F-730 to I-IT's work. Thank you. We look forward to seeing you. Goodbye."
    )
    assert continuation(stored, reheard) == "Goodbye."
    # a word the first reading missed, or one it heard more of, is not a word heard otherwise
    assert continuation("a table for two at seven", "a table for 2 at seven tonight") == "tonight"
    assert continuation("a table for two at seven", "a table for two people at seven, ok") is None
    assert continuation("we need it on Friday", "we need it on fri day and Saturday") is None
    # the first reading had a word the new one lacks: the stored line keeps it
    assert continuation("so we need it on Friday", "we need it on Friday and Saturday") == (
        "and Saturday"
    )


def test_none_when_the_ending_changed_or_too_much_was_heard_otherwise() -> None:
    assert continuation("We will arrive at our own.", "We will arrive at around seven.") is None
    assert continuation("We will arrive at our own.", "We will arrive at your own pace.") is None
    assert continuation("one two three four five six", "1 2 3 four five six seven") is None
    assert continuation("one two three four", "1 2 three four five") is None  # half otherwise
    assert continuation("one two three", "1 two three four") == "four"  # a third: the same line
    assert continuation("see you", "sea you soon") is None  # too short to tell
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


_letters = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
_digits = st.text(alphabet="0123456789", min_size=1, max_size=4)


@given(st.data())
def test_words_heard_otherwise_leave_exactly_the_new_words(data: st.DataObject) -> None:
    stored = data.draw(st.lists(_letters, min_size=3, max_size=12, unique=True))
    more = data.draw(
        st.lists(_letters.filter(lambda w: w not in stored), min_size=1, max_size=5, unique=True)
    )
    # up to a third of the stored words, none of the last two, heard as other (digit) words
    heard = list(stored)
    places = data.draw(
        st.lists(st.integers(0, len(stored) - 3), max_size=len(stored) // 3, unique=True)
    )
    for i in places:
        heard[i] = data.draw(_digits)
    rest = continuation(" ".join(stored) + ".", " ".join(heard + more) + "!")
    assert rest == " ".join(more) + "!"


def _nothing_dropped_nothing_made_up(stored: str, reheard: str) -> None:
    rest = continuation(stored, reheard)
    if rest is None:
        return
    assert rest and reheard.rstrip().endswith(rest)
    said, new = words(reheard), words(rest)
    assert new and said[len(said) - len(new) :] == new
    # every word of the new reading before the continuation stands for a stored word, and the
    # stored line's ending was heard the same
    before, said_before = words(stored), said[: len(said) - len(new)]
    assert len(said_before) <= len(before)
    assert said_before[-2:] == before[-2:]


@given(st.text(max_size=60), st.text(max_size=80))
def test_nothing_is_ever_dropped_and_nothing_made_up(stored: str, reheard: str) -> None:
    _nothing_dropped_nothing_made_up(stored, reheard)


_near = st.lists(st.sampled_from(["we", "see", "you", "soon", "bye", "1", "2"]), max_size=12)


@given(_near, _near)
def test_nothing_dropped_from_readings_of_the_same_few_words(
    stored: list[str], reheard: list[str]
) -> None:
    _nothing_dropped_nothing_made_up(" ".join(stored), ", ".join(reheard) + ".")
