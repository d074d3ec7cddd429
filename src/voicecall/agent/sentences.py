"""Sentence splitting for speech, sans-I/O: feed text deltas, get back finished sentences.

:class:`SentenceSplitter` lets speech start on the first complete sentence while the rest of a
reply is still being generated; :func:`split_sentences` splits a complete text.
"""

from __future__ import annotations

import re

# Lower-case words that end with "." without ending a sentence.
ABBREVIATIONS = frozenset(
    re.findall(
        r"\S+",
        """mr mrs ms dr prof sr jr st mt vs etc approx dept inc ltd corp vol ave blvd jan feb apr
        jun jul aug sept oct nov mon tue thu fri""",
    )
)
# Abbreviations only before a number ("No. 5", "pp. 12"): "no." otherwise ends a sentence.
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "pp", "p", "fig", "ch", "art"})
_DOTTED = re.compile(r"^(?:[a-z]\.){1,4}[a-z]?$", re.IGNORECASE)  # e.g. i.e. a.m. U.S.
_ENDERS = ".!?…"
_CLOSERS = "\"')]}»”’"


class SentenceSplitter:
    """Sans-I/O: ``feed`` text deltas, get back the sentences they complete; ``flush`` at the end.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes/brackets) followed by
    whitespace, or at a line break. A period does not end a sentence after a known
    abbreviation ("Dr.", "etc."), a dotted abbreviation ("e.g.", "a.m."), a single-letter
    initial ("J. Smith") or inside a number ("3.14"). A run longer than ``max_chars`` with no
    sentence end is cut at its last comma or space so speech never waits for a huge sentence.
    """

    def __init__(self, *, max_chars: int = 250) -> None:
        self._buf = ""
        self._scan = 0
        self.max_chars = max_chars

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._find_end()
            if cut is None:
                break
            sentence = squash_spaces(self._buf[:cut])
            self._buf = self._buf[cut:]
            self._scan = 0
            if sentence:
                out.append(sentence)
        if len(self._buf) > self.max_chars:
            head = self._buf[: self.max_chars]
            at = max(head.rfind(", "), head.rfind("; "))
            at = at + 1 if at > self.max_chars // 3 else head.rfind(" ")
            if at <= 0:
                at = self.max_chars
            sentence = squash_spaces(self._buf[:at])
            self._buf = self._buf[at:]
            self._scan = 0
            if sentence:
                out.append(sentence)
        return out

    def flush(self) -> str | None:
        """The unfinished rest (``None`` if only whitespace), and reset."""
        rest = squash_spaces(self._buf)
        self._buf = ""
        self._scan = 0
        return rest or None

    def _find_end(self) -> int | None:
        buf = self._buf
        i = self._scan
        n = len(buf)
        while i < n:
            ch = buf[i]
            if ch == "\n":
                if buf[:i].strip():
                    return i + 1
                i += 1
                continue
            if ch in _ENDERS:
                j = i + 1
                while j < n and (buf[j] in _ENDERS or buf[j] in _CLOSERS):
                    j += 1
                if j >= n:
                    self._scan = i  # wait: we need the next character to decide
                    return None
                if buf[j].isspace() and not (ch == "." and self._is_abbreviation(i)):
                    return j
                i = j
                continue
            i += 1
        self._scan = n
        return None

    def _is_abbreviation(self, dot: int) -> bool:
        start = dot
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        word = self._buf[start:dot].lstrip("\"'([{«“‘")
        if not word:
            return False
        low = word.lower()
        if low in ABBREVIATIONS:
            return True
        if low in NUMBER_ABBREVIATIONS:
            rest = self._buf[dot + 1 :].lstrip()
            return bool(rest) and rest[0].isdigit()
        if len(word) == 1 and word.isalpha() and word.isupper():
            return True  # an initial: "J. Smith"
        return bool(_DOTTED.match(word))


def squash_spaces(text: str) -> str:
    """``text`` with every run of whitespace made one space, stripped."""
    return " ".join(text.split())


def split_sentences(text: str) -> list[str]:
    """All sentences of a complete text."""
    splitter = SentenceSplitter()
    out = splitter.feed(text)
    rest = splitter.flush()
    return [*out, rest] if rest else out
