"""When is the caller's turn over? A short silence plus what the words so far say. Pure.

A fixed long silence is slow (every answer waits for it); a short one cuts people off in the
middle of a sentence. So the silence needed depends on the partial transcript of the turn:

- **complete** ("Two people, please.", "Yes.") → ``hangover_ms`` of silence (400 ms: a comma
  inside a turn is 160–260 ms of silence in espeak and Piper speech, a full stop before the next
  sentence up to ~340 ms; 300 ms split the demo host's "… it's booked. [pause] Thank you, …");
- **lead-in** (only a greeting or a discourse marker: "Hi!", "Well,", "Okay so") → ``lead_in_ms``:
  people pause after "Hi!" and go on ("Hi! I would like …");
- **incomplete** (ends in a preposition, article, conjunction, a filler like "um", a trailing
  comma or ellipsis, an unfinished number or list: "I'd like a table for …") →
  ``incomplete_ms``, the cap: a thinking pause is not an answer. Whisper tends to finish a
  cut-off phrase with an invented pronoun ("a table for" → "a table for it."), so a preposition
  followed by it/that/this/them counts as unfinished too: "Thanks for that." waits the cap, a
  reply in the middle of a sentence would be worse. The cap is 2 s: the benchmark's thinking
  pauses are 0.6–1.0 s of inserted silence plus ~0.4 s of the speaker's own trailing silence,
  so 1.3 s answered "My phone number is …" [1.4 s of silence] in the middle;
- **unsure** (two or more words and no full stop, question or exclamation mark: Whisper ends
  what sounds finished with one, "My number is five five five" came back unpunctuated; but so
  did "Seven o'clock works for me" now and then; digits read out without one, "five five
  five", "555 12", likewise: people pause between groups, but Whisper leaves a whole number
  unpunctuated as often) → ``unsure_ms``: longer than a lead-in, shorter than the cap,
  because the evidence is weaker than a trailing "for".

What the plain words cannot catch: a tiny.en transcript that turns a cut-off phrase into a
finished one ("We will arrive at around" → "We will arrive at our own.", "We need it for Friday
and" → "We need it for Friday."). Local Whisper reads such a transcript a second time, primed to
keep unfinished words; :func:`cut_short` compares the two readings, and a turn whose second
reading ends unfinished waits the cap (``EndOfTurn.heard(..., cut_short=True)``), as does one
where Whisper gave one of :data:`CONJUNCTIONS` a real chance instead of its full stop. Prosody
does not help on synthetic speech: espeak-ng ends a half sentence with the same final fall as a
whole one (measured, 110 → 80 Hz on both).

An audio model alone cannot tell these apart (smart-turn v3.2 scored a complete and a cut-off
espeak sentence alike, 0.95 vs 0.98); the words can.

:class:`EndOfTurn` is fed events on the stream's audio clock (ms since the stream started, so
it is deterministic and testable without a clock) and answers with actions:

- :meth:`EndOfTurn.pause` (the VAD noticed silence that began at ``end_ms``) → :class:`Transcribe`:
  transcribe the turn's audio up to there now, so the text is ready when the silence is long
  enough to decide;
- :meth:`EndOfTurn.voice` (speech again): the turn goes on, the text so far is stale;
- :meth:`EndOfTurn.heard` (a transcript of the turn's audio up to ``upto_ms``);
- :meth:`EndOfTurn.tick` (time passed) → :class:`Commit` once the silence after the last speech
  is long enough for what the transcript says. A turn is never committed while the caller
  speaks, nor on a transcript that does not cover all of the turn's speech.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CONJUNCTIONS",
    "Commit",
    "Completeness",
    "EndOfTurn",
    "Transcribe",
    "TurnPolicy",
    "cut_short",
    "judge",
    "normalize",
]


class Completeness(enum.Enum):
    COMPLETE = "complete"
    LEAD_IN = "lead_in"
    UNSURE = "unsure"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class TurnPolicy:
    """How much silence ends a turn, by what its words so far say (ms)."""

    hangover_ms: int = 400
    """A complete-sounding turn ends after this much silence."""
    lead_in_ms: int = 700
    """Only a greeting or discourse marker so far ("Hi!", "Well,"): wait this long."""
    incomplete_ms: int = 2000
    """Unfinished words ("… a table for", "um", a trailing comma): the cap."""
    unsure_ms: int = 1200
    """Words without a sentence end from Whisper ("Two people please"): between the two."""
    resume_ms: int = 1500
    """Speech starting this soon after a committed turn's speech end is heard together with
    that turn (local Whisper: the turn is transcribed again, with what follows); 0: never."""

    def __post_init__(self) -> None:
        if self.hangover_ms < 0 or self.resume_ms < 0:
            raise ValueError("hangover_ms and resume_ms must be >= 0")
        if not self.hangover_ms <= self.lead_in_ms <= self.incomplete_ms:
            raise ValueError("hangover_ms <= lead_in_ms <= incomplete_ms must hold")
        if not self.hangover_ms <= self.unsure_ms <= self.incomplete_ms:
            raise ValueError("hangover_ms <= unsure_ms <= incomplete_ms must hold")

    def wait_ms(self, completeness: Completeness) -> int:
        if completeness is Completeness.COMPLETE:
            return self.hangover_ms
        if completeness is Completeness.LEAD_IN:
            return self.lead_in_ms
        if completeness is Completeness.UNSURE:
            return self.unsure_ms
        return self.incomplete_ms


@dataclass(frozen=True, slots=True)
class Transcribe:
    """Transcribe the turn's audio up to ``upto_ms`` now (the caller paused there)."""

    upto_ms: int


@dataclass(frozen=True, slots=True)
class Commit:
    """The turn is over: ``text`` is what the caller said."""

    text: str
    speech_end_ms: int
    """When the caller's last speech ended (stream clock)."""
    decided_ms: int
    """When the end of the turn was decided (stream clock)."""
    completeness: Completeness
    resumed: bool = False
    """The turn went on from the one committed before it, whose words ``text`` hears again
    (set by the Whisper cutter, see ``speech/stt/whisper.py``)."""


# -- the words ------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD: Final = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# a sentence does not end on these: prepositions, articles, determiners, conjunctions,
# auxiliaries, pronoun subjects, fillers
_UNFINISHED: Final = _words(
    """
    a an the my your our their its
    for to of in on at by with from into onto about as than like near after before until
    between during without under toward towards per via around approximately roughly
    across against among beside despite except upon within versus plus
    and or but nor because if when whereas although unless since whether while whose
    every each either neither another
    i'd i'll i'm we're you're they're it's there's i'd we'd i've we've
    i we they he she
    um uh er erm hmm uhm mm ah eh
    """
)
# a whole turn made of these alone is a lead-in: people go on after them
_LEAD_IN: Final = _words(
    """
    hi hello hey hiya yo good morning afternoon evening day well so okay ok alright right
    oh listen look actually yeah yes hmm um uh er erm excuse me sorry
    """
)
# … unless the turn is a plain answer: these words alone answer a question
_ANSWERS: Final = _words("yes yeah yep no nope okay ok alright right sure sorry")
_NUMBER_WORDS: Final = _words(
    """
    zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred thousand double triple
    """
)
# "is"/"are" at the end: complete after a pronoun ("Yes, it is."), unfinished after a noun
# ("My phone number is")
_LINKING: Final = _words("is are was were am")
_PRONOUNS: Final = _words("it that this there i you we they he she who which what")
_SUBJECTS: Final = _words("i we they he she")
# a slot announced but not filled: "under the name", "my number"
_DETERMINERS: Final = _words("the a my your our his her their")
_SLOTS: Final = _words("name number address email phone surname")
# Whisper finishes a cut-off phrase with a made-up pronoun: "a table for" → "a table for it."
_PREPOSITIONS: Final = _words("for to of in on at with from about into onto like near")
_FILLED_IN: Final = _words("it that this them")
_TERMINAL: Final = re.compile(r"[.?!]['\"”’)]*\s*$")
_TRAILING_OPEN: Final = re.compile(r"(?:,|;|:|-|–|—|\.\.\.|…)\s*$")


def normalize(text: str) -> str:
    """Lower-case words only: what two transcripts must share to say the same thing."""
    return " ".join(_WORD.findall(text.lower().replace("’", "'")))


def _is_number(word: str) -> bool:
    return word.isdigit() or word in _NUMBER_WORDS


def judge(text: str) -> Completeness:
    """What a (partial) transcript says about the turn being over."""
    stripped = text.strip()
    words = normalize(stripped).split()
    if not words:
        return Completeness.COMPLETE  # nothing said (noise): nothing to wait for
    if _TRAILING_OPEN.search(stripped):
        return Completeness.INCOMPLETE  # "eggs, milk," / "so…" / "the code is 4 -"
    if words[-1] in _UNFINISHED and not (
        words[-1] in _SUBJECTS and len(words) >= 2 and words[-2] in _LINKING
    ):  # "… and she" is unfinished, "Yes, this is she." is not
        return Completeness.INCOMPLETE
    if len(words) >= 2 and words[-1] in _LINKING and words[-2] not in _PRONOUNS:
        return Completeness.INCOMPLETE  # "My phone number is"
    if len(words) >= 3 and words[-1] in _SLOTS and words[-2] in _DETERMINERS:
        return Completeness.INCOMPLETE  # "Could you book it under the name"
    if len(words) >= 3 and words[-1] in _FILLED_IN and words[-2] in _PREPOSITIONS:
        return Completeness.INCOMPLETE  # maybe invented: waiting costs less than cutting in
    ended = bool(_TERMINAL.search(stripped))
    if not ended and len(words) >= 3 and all(_is_number(w) for w in words[-3:]):
        return Completeness.UNSURE  # reading out digits: "five five five one two" (Whisper
        # leaves a whole number unpunctuated as often: "My phone is time time time 1 2 3 4")
    raw = [t.strip(".,!?") for t in stripped.split()[-2:]]
    if not ended and len(raw) == 2 and all(t.isdigit() for t in raw):
        return Completeness.UNSURE  # "555 12" (but not "7:30", nor "… 1 2 3 4.")
    if len(words) >= 2 and not _TERMINAL.search(stripped) and not all(w in _LEAD_IN for w in words):
        return Completeness.UNSURE  # Whisper punctuates what sounds finished
    if all(w in _LEAD_IN for w in words) and not (
        len(words) == 1 and words[0] in _ANSWERS and not stripped.endswith(",")
    ):
        return Completeness.LEAD_IN
    return Completeness.COMPLETE


CONJUNCTIONS: Final = ("and", "but", "or", "because", "nor", "plus")
"""Words that go on a sentence: a recognizer that weighs one of them where it put a full stop
may have dropped it (``speech/stt/whisper_decode.py``)."""

# what a verbatim-primed reading adds and the plain one does not: fillers the prompt invites
_FILLERS: Final = _words("um uh er erm hmm uhm mm ah eh so like")


def cut_short(text: str, verbatim: str) -> bool:
    """Did the recognizer drop an unfinished end? ``text`` is the plain transcript, ``verbatim``
    a second reading of the same audio primed to keep disfluencies (see
    ``speech/stt/whisper_decode.py``). True when ``text`` sounds finished, the second reading
    (fillers aside) ends unfinished, and the two agree up to its last two words: "We need it
    for Friday." / "we need it for Friday and..." or "We will arrive at a round." / "we will
    arrive at around". Not when the second reading only stops earlier ("My name is Sam." /
    "my name is, um...") or is another sentence altogether (no evidence about this one)."""
    if judge(text) is Completeness.INCOMPLETE:
        return False
    plain = [w for w in normalize(text).split() if w not in _FILLERS]  # compared alike
    second = [w for w in normalize(verbatim).split() if w not in _FILLERS]
    if not second or judge(" ".join(second)) is not Completeness.INCOMPLETE:
        return False
    if second == plain[: len(second)]:
        return False  # the plain reading heard more, not less
    agree = 0
    while agree < min(len(second), len(plain)) and second[agree] == plain[agree]:
        agree += 1
    return agree >= max(1, len(second) - 2)


# -- the turn ---------------------------------------------------------------------------------


class EndOfTurn:
    """One caller's turns on the stream clock: events in, :class:`Transcribe`/:class:`Commit`
    out. A new turn begins with the first speech after a commit."""

    def __init__(self, policy: TurnPolicy | None = None) -> None:
        self.policy: Final = policy or TurnPolicy()
        self.speaking = False
        self.open = False
        """A turn has begun and is not committed yet."""
        self.speech_end_ms: int | None = None
        self.text: str | None = None
        self.text_upto_ms = -1
        self.cut_short = False
        """The recognizer says the transcript's end may be cut short (see :func:`cut_short`)."""

    def voice(self, start_ms: int) -> None:
        """Speech (re)started at ``start_ms``: the turn goes on."""
        self.speaking = True
        self.open = True

    def pause(self, end_ms: int) -> Transcribe | None:
        """Silence began at ``end_ms`` (the VAD noticed it a little later)."""
        if not self.open:
            return None
        self.speaking = False
        self.speech_end_ms = end_ms
        return Transcribe(end_ms)

    def heard(self, text: str, upto_ms: int, *, cut_short: bool = False) -> None:
        """A transcript of the turn's audio up to ``upto_ms`` (the newest one wins);
        ``cut_short``: the recognizer heard an unfinished end it left out of ``text``, so the
        turn waits as for unfinished words."""
        if self.open and upto_ms >= self.text_upto_ms:
            self.text = text
            self.text_upto_ms = upto_ms
            self.cut_short = cut_short

    def judged(self) -> Completeness:
        """What the newest transcript says about the turn being over."""
        assert self.text is not None
        return Completeness.INCOMPLETE if self.cut_short else judge(self.text)

    @property
    def current(self) -> bool:
        """The transcript covers all of the turn's speech so far."""
        return (
            self.open
            and not self.speaking
            and self.text is not None
            and self.speech_end_ms is not None
            and self.text_upto_ms >= self.speech_end_ms
        )

    def due_ms(self) -> int | None:
        """When the turn will be committed if nothing else happens (``None``: not known)."""
        if not self.current:
            return None
        assert self.text is not None and self.speech_end_ms is not None
        return self.speech_end_ms + self.policy.wait_ms(self.judged())

    def tick(self, now_ms: int) -> Commit | None:
        """Time passed: the commit, once the silence suits what was said."""
        due = self.due_ms()
        if due is None or now_ms < due:
            return None
        assert self.text is not None and self.speech_end_ms is not None
        commit = Commit(self.text, self.speech_end_ms, now_ms, self.judged())
        self.reset()
        return commit

    def force(self, now_ms: int) -> Commit | None:
        """End the turn now (the stream is closing) with the newest transcript, if current."""
        if not self.current:
            self.reset()
            return None
        assert self.text is not None and self.speech_end_ms is not None
        commit = Commit(self.text, self.speech_end_ms, now_ms, self.judged())
        self.reset()
        return commit

    def reset(self) -> None:
        self.speaking = False
        self.open = False
        self.speech_end_ms = None
        self.text = None
        self.text_upto_ms = -1
        self.cut_short = False
