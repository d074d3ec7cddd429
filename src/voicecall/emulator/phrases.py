"""Keyword matching for scripted callees (pure): what did the bot say, in words?

Transcripts come from speech recognition (faster-whisper tiny.en hearing Piper or espeak-ng), so
the same words arrive in many spellings: "7:30", "7.30", "730", "seven thirty", "Seven-thirty".
:func:`normalize` turns any text into a list of plain lower-case word tokens in one canonical
spelling (numbers up to 99 become words, clock times become ``hour minute`` words), and
:func:`contains` looks for a phrase (normalised the same way) as a run of whole tokens. So a rule
written ``seven thirty`` matches all of the spellings above, and ``seven`` does not match
``seventy``.

Untrusted input (a transcript) never raises: anything that is not a letter, digit or apostrophe
separates tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["ANYTHING", "contains", "matches_any", "normalize", "number_words"]

ANYTHING: Final = "*"

_ONES: Final = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS: Final = [
    "_",
    "_",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
]

_CLOCK: Final = re.compile(r"(?<![0-9])([0-9]{1,2})\s*[:.h]\s*([0-5][0-9])(?![0-9])")
_DIGIT_LETTER: Final = re.compile(r"(?<=[0-9])(?=[a-z])|(?<=[a-z])(?=[0-9])")
_ABBREV: Final = re.compile(r"\b([ap])\s*\.\s*m\b\.?")
_TOKEN: Final = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def number_words(n: int) -> list[str]:
    """0-99 as words (``45`` -> ``forty five``); larger numbers stay digits."""
    if n < 0 or n > 99:
        return [str(n)]
    if n < 20:
        return [_ONES[n]]
    tens, ones = divmod(n, 10)
    return [_TENS[tens]] if ones == 0 else [_TENS[tens], _ONES[ones]]


def _clock(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 24:
        return match.group(0).replace(":", " ").replace(".", " ")
    if minute == 0:
        return f" {hour} o'clock "
    return f" {hour} {minute:d} " if minute >= 10 else f" {hour} oh {minute} "


def _digits(token: str) -> list[str]:
    if len(token) in (3, 4) and token.isdigit():
        hour, minute = int(token[:-2]), int(token[-2:])
        if 1 <= hour <= 23 and 10 <= minute < 60 and not token.startswith("0"):
            # "730" / "1930": a clock time as recognisers often write it ("100" stays a number)
            return number_words(hour) + number_words(minute)
    if token.isdigit() and len(token) <= 2:
        return number_words(int(token))
    return [token]


def normalize(text: str) -> list[str]:
    """Canonical word tokens of ``text`` (never raises)."""
    s = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    s = _ABBREV.sub(lambda m: f" {m.group(1)}m ", s)
    s = _CLOCK.sub(_clock, s)
    s = _DIGIT_LETTER.sub(" ", s)
    s = s.replace("-", " ")
    out: list[str] = []
    for token in _TOKEN.findall(s):
        out.extend(_digits(token) if token[0].isdigit() else [token])
    return out


def contains(tokens: Sequence[str], phrase: str) -> bool:
    """True when ``phrase`` (normalised) occurs in ``tokens`` as a run of whole tokens.

    ``*`` matches any non-empty text.
    """
    if phrase.strip() == ANYTHING:
        return bool(tokens)
    needle = normalize(phrase)
    if not needle:
        return False
    n = len(needle)
    return any(list(tokens[i : i + n]) == needle for i in range(len(tokens) - n + 1))


def matches_any(tokens: Sequence[str], phrases: Iterable[str]) -> bool:
    return any(contains(tokens, p) for p in phrases)
