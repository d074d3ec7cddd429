"""What a re-heard caller turn adds to the line already stored for it. Pure.

When the caller goes on right after a turn was committed (within ``resume_ms``, before the
bot's reply was heard; see docs/realtime.md), local Whisper hears the whole sentence again:
the early line "Thank you, we look forward to seeing you." is followed by a final "Thank you, we
look forward to seeing you. Goodbye!". Stored as it is, the caller's words appear twice in the
transcript, the report and the model's context. :func:`continuation` gives what the new reading
adds ("Goodbye!"):

* when it repeats the stored line word for word (case, punctuation, hyphens and apostrophes
  aside): the stored line's words plus the continuation are exactly the new reading's words;
* when it heard a few of the earlier words differently ("table F-730 to high, it's worked" →
  "table F-730 to I-IT's work") but ends the stored line's part on the same last words: the
  stored words it re-heard (at most a third of them) are taken as the same words heard
  otherwise, and only what follows the stored line's end is new. Every word of the new reading
  before the continuation stands for a word of the stored line (a word heard the same, or one of
  a run of words heard otherwise that is no longer than the stored run): no word that only the
  new reading has is dropped.

Otherwise it gives ``None`` and the whole new reading is stored: when the new reading changed
how the stored line ends or added words inside it ("at our own." → "at around half past
seven.": the better reading), or adds nothing.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Final

__all__ = ["continuation", "words"]

# a word: letters and digits, with apostrophes inside ("it's", "o’clock"); everything else
# (spaces, punctuation, hyphens) separates words
_WORD: Final = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_APOSTROPHES: Final = str.maketrans("", "", "'’")
_BETWEEN: Final = " \t\r\n.,;:!?-–—…"


def _norm(word: str) -> str:
    return word.translate(_APOSTROPHES).casefold()


def words(text: str) -> list[str]:
    """The words of ``text`` as compared here (case-folded, apostrophes removed)."""
    return [_norm(m.group()) for m in _WORD.finditer(text)]


def continuation(stored: str, reheard: str) -> str | None:
    """The part of ``reheard`` after the words of ``stored``, in ``reheard``'s own writing,
    when ``reheard`` re-hears ``stored`` (word for word, or with a few words heard otherwise;
    see the module) and has more; else ``None``."""
    before = words(stored)
    if not before:
        return None
    matches = list(_WORD.finditer(reheard))
    after = [_norm(m.group()) for m in matches]
    if after[: len(before)] == before:
        end: int | None = len(before) if len(after) > len(before) else None
    else:
        end = _end_of_reheard(before, after)
    if end is None:
        return None
    # from the end of the last repeated word, without the punctuation that closed it
    return reheard[matches[end - 1].end() :].lstrip(_BETWEEN).rstrip()


# the stored line's last words that the new reading must repeat as they were, and the share of
# its words that may have been heard otherwise
_SAME_ENDING_WORDS: Final = 2
_MAX_REHEARD_SHARE: Final = 1 / 3


def _end_of_reheard(before: list[str], after: list[str]) -> int | None:
    """Where the stored words ``before`` end in ``after``, a new reading of them heard partly
    otherwise, when only new words follow there; else ``None``."""
    if len(before) < _SAME_ENDING_WORDS + 1:
        return None  # too short to tell a word heard otherwise from a new sentence
    otherwise = 0
    end = None
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if i1 == len(before):  # past the stored line: only what the new reading adds
            if tag != "insert":
                return None
            continue
        if tag == "insert" or (tag == "replace" and j2 - j1 > i2 - i1):
            return None  # words only the new reading has, inside the stored line's part
        if tag != "equal":
            otherwise += i2 - i1
        elif i2 == len(before) and i2 - i1 >= _SAME_ENDING_WORDS:
            end = j2
    if end is None or end == len(after) or otherwise > len(before) * _MAX_REHEARD_SHARE:
        return None
    return end
