"""Scripted parties on the line (pure): what they say, when, and how they react.

A :class:`Callee` is a small state machine fed with what it hears and when (``now`` is the
emulator's clock, seconds) and producing a schedule of :class:`Sound`\\ s: speech (text, or a WAV
file), beeps, hold music, and a time to hang up. Two transports read the same schedule:

* TwiML calls (``<Say>``/``<Gather>``, no stream): the call simulator tells the callee what it
  said (``<Say>`` text is known) and when it yields the floor (a ``<Gather>`` starts listening);
  a ``<Gather>`` then takes the first speech sound that overlaps its listening window.
* Media Streams: the stream driver plays the sounds as audio when they fall due, feeds the bot's
  audio back (for recording and keypad tones) and, for callees that understand speech, the
  bot's transcribed turns.

Kinds: :mod:`~voicecall.emulator.human` (answers by keywords), :mod:`~voicecall.emulator.ivr`
(menus, hold music, then a human), :mod:`~voicecall.emulator.voicemail` (greeting, beep,
records). The classic reply-list scripts of :mod:`~voicecall.emulator.scripts` are not callees.

Sounds can be *provisional*: an IVR schedules its prompts, repeats and hold music ahead of time;
a key pressed at ``t`` cancels everything scheduled after ``t`` (the sound playing at ``t`` is
cut there) and schedules anew. Timeline notes are only released for what has happened
(:meth:`Callee.advance`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Callee", "Note", "Sound", "Timing"]

_SOUND_IDS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long things take: speech runs at ``words_per_minute`` (at least ``min_speech``)."""

    words_per_minute: float = 150.0
    min_speech: float = 0.3
    reply_delay: float = 0.4

    def speech_seconds(self, text: str) -> float:
        return max(self.min_speech, len(text.split()) * 60.0 / self.words_per_minute)


@dataclass(slots=True)
class Sound:
    start: float
    end: float
    kind: str  # speech | beep | music | tone
    text: str = ""  # speech: the words; others: a label
    wav: str | None = None  # speech from a recording
    frequency_hz: float = 0.0  # beep / tone
    style: str = ""  # music style
    consumed: bool = False  # taken by a <Gather>/<Record>
    cut: bool = False  # stopped early (a key was pressed)
    id: int = field(default_factory=lambda: next(_SOUND_IDS))

    @property
    def is_speech(self) -> bool:
        return self.kind == "speech"

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end, "kind": self.kind}
        if self.text:
            out["text"] = self.text
        if self.wav is not None:
            out["wav"] = self.wav
        if self.frequency_hz:
            out["frequency_hz"] = self.frequency_hz
        if self.style:
            out["style"] = self.style
        if self.cut:
            out["cut"] = True
        return out


@dataclass(frozen=True, slots=True)
class Note:
    """A timeline entry the callee wants recorded (``kind`` is prefixed ``callee-``)."""

    at: float
    kind: str
    data: dict[str, Any]


class Callee:
    """Base class: a schedule of sounds, a hang-up time, notes for the timeline."""

    kind: ClassVar[str] = "callee"
    listens: bool = False  # needs the bot's words (speech recognition on streams)
    hears_keys: bool = False  # needs keypad tones detected in the bot's audio
    records: bool = False  # wants the bot's audio

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.sounds: list[Sound] = []
        self.hangup_at: float | None = None
        self.answered_at: float | None = None
        self._notes: list[Note] = []

    # ------------------------------------------------------------------ outputs

    def note(self, at: float, kind: str, **data: Any) -> None:
        self._notes.append(Note(at, kind, data))

    def drain_notes(self, now: float) -> list[Note]:
        """Notes up to ``now`` (later ones stay: they may still be cancelled)."""
        self.advance(now)
        ready = [n for n in self._notes if n.at <= now]
        self._notes = [n for n in self._notes if n.at > now]
        return sorted(ready, key=lambda n: n.at)

    def speak(
        self, at: float, text: str, *, wav: str | None = None, seconds: float | None = None
    ) -> Sound:
        length = seconds if seconds is not None else self.timing.speech_seconds(text)
        sound = Sound(at, at + length, "speech", text=text, wav=wav)
        self.sounds.append(sound)
        return sound

    def add(self, sound: Sound) -> Sound:
        self.sounds.append(sound)
        return sound

    def cancel_after(self, t: float) -> None:
        """Drop sounds that start after ``t``; cut the one playing at ``t``."""
        kept: list[Sound] = []
        for s in self.sounds:
            if s.start > t:
                continue
            if s.end > t:
                s.end, s.cut = t, True
            kept.append(s)
        self.sounds[:] = kept  # in place: a sub-callee may share the list
        self._notes = [n for n in self._notes if n.at <= t]
        if self.hangup_at is not None and self.hangup_at > t:
            self.hangup_at = None

    def sounds_between(self, start: float, end: float) -> list[Sound]:
        self.ensure(end)
        return [s for s in self.sounds if s.start < end and s.end > start]

    def speech_for(self, listen_start: float, deadline: float) -> Sound | None:
        """The first speech not taken yet that overlaps ``[listen_start, deadline]``; taken."""
        self.ensure(deadline)
        for s in sorted(self.sounds, key=lambda s: s.start):
            if s.is_speech and not s.consumed and s.start <= deadline and s.end > listen_start:
                s.consumed = True
                return s
        return None

    # ------------------------------------------------------------------ inputs (override)

    def answered(self, now: float) -> None:
        self.answered_at = now

    def heard_text(self, now: float, text: str, end: float) -> None:
        """The bot said ``text`` from ``now`` to ``end`` (``<Say>``, or a transcribed turn)."""

    def turn_ended(self, now: float, at: float | None = None) -> None:
        """The bot yielded the floor at ``at`` (default ``now``); the callee may reply."""

    def heard_digit(self, now: float, digit: str) -> None:
        """A keypad digit reached the callee (``<Play digits>``, ``SendDigits``, in-band)."""

    def heard_audio(self, now: float, ulaw: bytes, voiced: bool) -> None:
        """A frame of the bot's audio as the callee heard it (Media Streams)."""

    def advance(self, now: float) -> None:
        """Commit what happened up to ``now`` (releases notes, extends schedules)."""
        self.ensure(now)

    def ensure(self, until: float) -> None:
        """Make sure the schedule is known up to ``until`` (provisional beyond ``now``)."""

    def finished(self, now: float) -> None:
        """The call is over."""

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "sounds": [s.to_dict() for s in self.sounds]}
