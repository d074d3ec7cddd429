"""What a re-heard caller turn adds to the line already stored for it. Pure.

When the caller goes on right after a turn was committed (within ``resume_ms``, before the
bot's reply was heard; see docs/realtime.md), local Whisper hears the whole sentence again:
the early line "Thank you, we look forward to seeing you." is followed by a final "Thank you, we
look forward to seeing you. Goodbye!". Stored as it is, the caller's words appear twice in the
transcript, the report and the model's context. :func:`continuation` gives what the new reading
adds ("Goodbye!") when it repeats the stored line word for word (case, punctuation, hyphens and
apostrophes aside); when the new reading changed an earlier word ("at our own." → "at around half
past seven."), it gives ``None`` and the whole new reading is stored, since it is the better one.
Nothing is dropped either way: the stored line's words plus the continuation are exactly the
new reading's words.
"""

from __future__ import annotations

import re
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
    when ``reheard`` starts with all of ``stored``'s words and has more; else ``None``."""
    before = words(stored)
    if not before:
        return None
    matches = list(_WORD.finditer(reheard))
    if len(matches) <= len(before):
        return None
    if any(_norm(m.group()) != w for m, w in zip(matches, before, strict=False)):
        return None
    # from the end of the last repeated word, without the punctuation that closed it
    return reheard[matches[len(before) - 1].end() :].lstrip(_BETWEEN).rstrip()
