"""A scripted answering machine: greeting, beep, then it records what it hears (pure).

Script (the ``voicemail`` key of a callee script)::

    voicemail:
      greeting: "Hi, this is Sam. Leave a message after the tone."   # or greeting_wav: path
      greeting_delay_ms: 500          # from answer to the first word
      beep: {frequency_hz: 1000, duration_ms: 400}   # null: no beep (silence ends the greeting)
      beep_gap_ms: 300                # silence between the greeting and the beep
      max_message_ms: 120000          # the machine stops recording (and hangs up) after this
      max_silence_ms: 8000            # ... or after this long without the bot making a sound

The message is what the bot says after the beep: ``<Say>`` words on TwiML calls (with their
times), the bot's audio on Media Streams (transcribed with faster-whisper when the call ends, if
installed). :attr:`VoicemailCallee.message` holds it; the timeline gets ``callee-voicemail``.
Answering-machine detection (:mod:`~voicecall.emulator.amd`) hears the greeting and the beep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicecall.emulator.callee import Callee, Sound, Timing
from voicecall.emulator.strict import Fields, ScriptError
from voicecall.emulator.voices import VoiceError, load_wav

__all__ = ["Beep", "VoicemailCallee", "VoicemailMessage", "VoicemailSpec", "parse_voicemail"]

SAMPLE_RATE = 8000


@dataclass(frozen=True, slots=True)
class Beep:
    frequency_hz: float = 1000.0
    duration_ms: int = 400


DEFAULT_GREETING = "Hi, you have reached my voicemail. Please leave a message after the tone."


@dataclass(frozen=True, slots=True)
class VoicemailSpec:
    greeting: str = DEFAULT_GREETING
    greeting_wav: str | None = None
    greeting_seconds: float | None = None  # the WAV's length
    greeting_delay_ms: int = 500
    beep: Beep | None = field(default_factory=Beep)
    beep_gap_ms: int = 300
    max_message_ms: int = 120_000
    max_silence_ms: int = 8000

    def build(self, timing: Timing) -> VoicemailCallee:
        return VoicemailCallee(self, timing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "greeting": self.greeting,
            "greeting_wav": self.greeting_wav,
            "greeting_delay_ms": self.greeting_delay_ms,
            "beep": None
            if self.beep is None
            else {"frequency_hz": self.beep.frequency_hz, "duration_ms": self.beep.duration_ms},
            "beep_gap_ms": self.beep_gap_ms,
            "max_message_ms": self.max_message_ms,
            "max_silence_ms": self.max_silence_ms,
        }


def parse_voicemail(data: Any, where: str = "voicemail") -> VoicemailSpec:
    if data is True or data == {}:
        data = {}
    f = Fields(data, where)
    wav = f.text("greeting_wav")
    seconds: float | None = None
    if wav is not None:
        try:
            seconds = load_wav(wav).seconds
        except VoiceError as exc:
            raise ScriptError(f"{where}.greeting_wav: {exc}") from None
    greeting = f.text("greeting", DEFAULT_GREETING if wav is None else "")
    if wav is None and not (greeting or "").strip():
        raise ScriptError(f"{where}.greeting: must not be empty (or give greeting_wav)")
    beep: Beep | None = Beep()
    if "beep" in f.data:
        raw = f.raw("beep")
        if raw is None or raw is False:
            beep = None
        else:
            b = Fields(raw, f.path("beep"))
            beep = Beep(
                b.number("frequency_hz", 1000.0, minimum=200.0, maximum=3400.0),
                b.integer("duration_ms", 400, minimum=50, maximum=5000),
            )
            b.done()
    spec = VoicemailSpec(
        greeting=greeting or "",
        greeting_wav=wav,
        greeting_seconds=seconds,
        greeting_delay_ms=f.integer("greeting_delay_ms", 500, maximum=60_000),
        beep=beep,
        beep_gap_ms=f.integer("beep_gap_ms", 300, maximum=10_000),
        max_message_ms=f.integer("max_message_ms", 120_000, minimum=1000, maximum=3_600_000),
        max_silence_ms=f.integer("max_silence_ms", 8000, minimum=500, maximum=600_000),
    )
    f.done()
    return spec


@dataclass(slots=True)
class VoicemailMessage:
    """What the machine recorded after the beep."""

    start: float  # when recording began (the beep's end)
    words: list[dict[str, Any]] = field(default_factory=list)  # {"start", "end", "text"}
    audio: bytearray = field(default_factory=bytearray)  # μ-law from the stream, if any
    transcript: str | None = None  # of the audio (streams), when speech recognition ran
    end: float | None = None

    @property
    def text(self) -> str:
        """The message in words: ``<Say>`` text, else the audio's transcript."""
        said = " ".join(w["text"] for w in self.words)
        return said or (self.transcript or "")

    @property
    def seconds(self) -> float:
        if self.audio:
            return len(self.audio) / SAMPLE_RATE
        return 0.0 if self.end is None else max(0.0, self.end - self.start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "words": list(self.words),
            "text": self.text,
            "transcript": self.transcript,
            "audio_seconds": len(self.audio) / SAMPLE_RATE,
        }


class VoicemailCallee(Callee):
    kind = "voicemail"
    records = True

    def __init__(self, spec: VoicemailSpec, timing: Timing) -> None:
        super().__init__(timing)
        self.spec = spec
        self.message: VoicemailMessage | None = None
        self._last_activity: float = 0.0

    @property
    def recording_from(self) -> float | None:
        return None if self.message is None else self.message.start

    def answered(self, now: float) -> None:
        super().answered(now)
        spec = self.spec
        at = now + spec.greeting_delay_ms / 1000.0
        greeting = self.speak(
            at, spec.greeting, wav=spec.greeting_wav, seconds=spec.greeting_seconds
        )
        end = greeting.end + spec.beep_gap_ms / 1000.0
        if spec.beep is not None:
            beep = Sound(
                end,
                end + spec.beep.duration_ms / 1000.0,
                "beep",
                text="beep",
                frequency_hz=spec.beep.frequency_hz,
            )
            self.add(beep)
            end = beep.end
        self.message = VoicemailMessage(start=end)
        self._last_activity = end
        self._rearm()
        self.note(end, "callee-voicemail-recording", start=end)

    def _rearm(self) -> None:
        msg = self.message
        if msg is None or msg.end is not None:
            return
        spec = self.spec
        limit = msg.start + spec.max_message_ms / 1000.0
        self.hangup_at = min(limit, self._last_activity + spec.max_silence_ms / 1000.0)

    def heard_text(self, now: float, text: str, end: float) -> None:
        msg = self.message
        if msg is None or msg.end is not None or end <= msg.start or not text.strip():
            return
        msg.words.append({"start": max(now, msg.start), "end": end, "text": text.strip()})
        self._last_activity = max(self._last_activity, end)
        self._rearm()

    def heard_digit(self, now: float, digit: str) -> None:
        msg = self.message
        if msg is not None and msg.end is None and now >= msg.start:
            self._last_activity = max(self._last_activity, now)
            self._rearm()

    def heard_audio(self, now: float, ulaw: bytes, voiced: bool) -> None:
        msg = self.message
        if msg is None or msg.end is not None or now < msg.start:
            return
        msg.audio += ulaw
        if voiced:
            self._last_activity = max(self._last_activity, now)
            self._rearm()

    def finished(self, now: float) -> None:
        msg = self.message
        if msg is None or msg.end is not None:
            return
        msg.end = max(msg.start, min(now, self.hangup_at or now))
        self.note(now, "callee-voicemail", **msg.to_dict())

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["message"] = None if self.message is None else self.message.to_dict()
        return out
