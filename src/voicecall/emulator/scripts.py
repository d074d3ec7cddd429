"""Callee (and inbound caller) scripts: what the person on the emulated phone does (pure).

A script is a mapping (from Python, JSON or YAML)::

    answer_after_ms: 1500        # ring this long, then answer (default 1000)
    outcome: answer              # or busy | no-answer | failed (the call is never answered)
    answered_by: human           # AnsweredBy reported when MachineDetection was asked for
    reply_delay_ms: 400          # silence between the end of a prompt and the callee speaking
    replies:                     # one per <Gather>, in order
      - "I'd like a table for two"          # speech -> SpeechResult (+ Confidence)
      - {speech: "yes", confidence: 0.7}
      - {wav: "caller/yes.wav"}              # a recording (on streams); see below
      - {wav: "caller/table.wav", speech: "a table for two"}  # ... and its transcript
      - {digits: "1234#"}                   # DTMF -> Digits
      - {digits: "1", at_ms: 800}           # pressed 800 ms into the Gather (stops its <Say>)
      - null                                # stays silent for that Gather (same as {silence: true})
    say_at:                      # lines spoken at times after answer (Media Streams)
      - {at_ms: 2000, text: "hello?"}
      - {at_ms: 6000, wav: "caller/hello.wav"}
    voice: espeak                # how text is spoken on streams: espeak (default) or piper
    hangup_after_ms: 30000       # the callee hangs up this long after answering

WAV files (16-bit PCM, mono or stereo, any rate; resampled to 8 kHz μ-law) are read and checked
when the script is parsed, so a missing or unsupported file is a :class:`ScriptError` then, not a
silent gap mid-call. Relative paths are resolved against the emulator's working directory. On a
``<Gather>`` (no stream) a WAV reply lasts as long as the file; its ``speech`` text, if given, is
the SpeechResult, else the Gather hears nothing it can recognise (no input).

Instead of ``replies``/``say_at`` a script can describe a party that reacts to what it hears:
``human`` (answers by keywords, :mod:`~voicecall.emulator.human`), ``ivr`` (a phone menu,
:mod:`~voicecall.emulator.ivr`) or ``voicemail`` (greeting, beep, records;
:mod:`~voicecall.emulator.voicemail`); at most one of them. A ready-made scenario is named by
``scenario`` (``{"scenario": "restaurant"}``, or just the string ``"restaurant"``; see
:mod:`~voicecall.emulator.scenarios`), the other keys overriding its values.

Unknown keys are refused (:class:`ScriptError`), so a typo cannot silently change a test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from voicecall.emulator.callee import Callee, Timing
from voicecall.emulator.human import HumanSpec, parse_human
from voicecall.emulator.ivr import IvrSpec, parse_ivr
from voicecall.emulator.strict import ScriptError
from voicecall.emulator.voicemail import VoicemailSpec, parse_voicemail
from voicecall.emulator.voices import Voice, VoiceError, load_wav, piper_missing

__all__ = [
    "DEFAULT_SCRIPT",
    "CalleeScript",
    "DigitsReply",
    "Outcome",
    "Reply",
    "ScriptError",
    "SilenceReply",
    "SpeechReply",
    "TimedLine",
    "Voice",
    "parse_script",
]

_DTMF = frozenset("0123456789*#w")


class Outcome(StrEnum):
    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"


def _wav_seconds(path: str) -> float:
    try:
        return load_wav(path).seconds
    except VoiceError as exc:
        raise ScriptError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class SpeechReply:
    """Speech: ``text`` (spoken by the script's voice; the Gather's SpeechResult) and/or ``wav``
    (a recording played instead on streams). ``seconds`` is the WAV's length, when there is one.
    """

    text: str
    confidence: float = 0.92
    wav: str | None = None
    seconds: float | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.wav is None and not self.text.strip():
            raise ScriptError("a speech reply needs non-empty text (use null for silence)")
        if not 0.0 <= self.confidence <= 1.0:
            raise ScriptError("confidence must be within 0..1")
        if self.wav is not None:
            object.__setattr__(self, "seconds", _wav_seconds(self.wav))


@dataclass(frozen=True, slots=True)
class DigitsReply:
    digits: str
    at_ms: int | None = None  # pressed this long after the <Gather> starts (stops its prompt)

    def __post_init__(self) -> None:
        if not self.digits or not set(self.digits) <= _DTMF:
            raise ScriptError(f"digits must be made of 0-9 * # w, got {self.digits!r}")
        if self.at_ms is not None and not 0 <= self.at_ms <= 3_600_000:
            raise ScriptError("digits at_ms must be within 0..3600000")


@dataclass(frozen=True, slots=True)
class SilenceReply:
    pass


Reply = SpeechReply | DigitsReply | SilenceReply


@dataclass(frozen=True, slots=True)
class TimedLine:
    at_ms: int
    text: str = ""
    wav: str | None = None

    def __post_init__(self) -> None:
        if self.at_ms < 0:
            raise ScriptError("say_at.at_ms must be >= 0")
        if self.wav is None and not self.text.strip():
            raise ScriptError("a say_at line needs text or wav")
        if self.wav is not None:
            _wav_seconds(self.wav)


ANSWERED_BY = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)


@dataclass(frozen=True, slots=True)
class CalleeScript:
    answer_after_ms: int = 1000
    outcome: Outcome = Outcome.ANSWER
    answered_by: str | None = None  # classic scripts: the AMD result (default human)
    reply_delay_ms: int = 400
    replies: tuple[Reply, ...] = ()
    say_at: tuple[TimedLine, ...] = field(default=())
    hangup_after_ms: int | None = None
    voice: Voice = Voice.ESPEAK
    human: HumanSpec | None = None
    ivr: IvrSpec | None = None
    voicemail: VoicemailSpec | None = None
    scenario: str | None = None

    @property
    def kind(self) -> str:
        """``human`` / ``ivr`` / ``voicemail``, or ``replies`` for a classic script."""
        for name in ("human", "ivr", "voicemail"):
            if getattr(self, name) is not None:
                return name
        return "replies"

    def build_callee(self, timing: Timing) -> Callee | None:
        """A fresh callee for one call (None for classic reply-list scripts)."""
        spec = self.human or self.ivr or self.voicemail
        return None if spec is None else spec.build(timing)

    def __post_init__(self) -> None:
        if self.voice == Voice.PIPER:
            missing = piper_missing()
            if missing is not None:
                raise ScriptError(missing)
        if self.answer_after_ms < 0:
            raise ScriptError("answer_after_ms must be >= 0")
        if self.reply_delay_ms < 0:
            raise ScriptError("reply_delay_ms must be >= 0")
        if self.hangup_after_ms is not None and self.hangup_after_ms < 0:
            raise ScriptError("hangup_after_ms must be >= 0")
        if self.answered_by is not None and self.answered_by not in ANSWERED_BY:
            raise ScriptError(f"answered_by must be one of {sorted(ANSWERED_BY)}")
        kinds = [k for k in ("human", "ivr", "voicemail") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ScriptError(f"a script is one of human, ivr, voicemail (got {kinds})")
        if kinds and (self.replies or self.say_at):
            raise ScriptError(f"{kinds[0]} scripts react to what they hear: no replies/say_at")
        if kinds and self.answered_by is not None:
            raise ScriptError(
                f"answered_by: AMD hears what a {kinds[0]} script does; do not set it"
            )

    def to_dict(self) -> dict[str, Any]:
        replies: list[Any] = []
        for r in self.replies:
            if isinstance(r, SpeechReply):
                item: dict[str, Any] = {"confidence": r.confidence}
                if r.text:
                    item["speech"] = r.text
                if r.wav is not None:
                    item["wav"] = r.wav
                replies.append(item)
            elif isinstance(r, DigitsReply):
                d: dict[str, Any] = {"digits": r.digits}
                if r.at_ms is not None:
                    d["at_ms"] = r.at_ms
                replies.append(d)
            else:
                replies.append(None)
        return {
            "answer_after_ms": self.answer_after_ms,
            "outcome": self.outcome.value,
            "answered_by": self.answered_by,
            "reply_delay_ms": self.reply_delay_ms,
            "replies": replies,
            "say_at": [_line_dict(s) for s in self.say_at],
            "hangup_after_ms": self.hangup_after_ms,
            "voice": self.voice.value,
            "scenario": self.scenario,
            **{
                k: getattr(self, k).to_dict()
                for k in ("human", "ivr", "voicemail")
                if getattr(self, k) is not None
            },
        }


def _line_dict(line: TimedLine) -> dict[str, Any]:
    out: dict[str, Any] = {"at_ms": line.at_ms}
    if line.text:
        out["text"] = line.text
    if line.wav is not None:
        out["wav"] = line.wav
    return out


DEFAULT_SCRIPT = CalleeScript()

_KEYS = frozenset(
    {
        "answer_after_ms",
        "outcome",
        "answered_by",
        "reply_delay_ms",
        "replies",
        "say_at",
        "hangup_after_ms",
        "voice",
        "human",
        "ivr",
        "voicemail",
        "scenario",
    }
)


def _int(data: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScriptError(f"{key} must be a number of milliseconds")
    if value != value or value in (float("inf"), float("-inf")):
        raise ScriptError(f"{key} must be finite")
    return int(value)


def _reply(item: Any) -> Reply:
    if item is None:
        return SilenceReply()
    if isinstance(item, str):
        return SpeechReply(item)
    if isinstance(item, Mapping):
        keys = set(item)
        if keys == {"silence"}:
            return SilenceReply()
        if "digits" in keys and keys <= {"digits", "at_ms"}:
            digits = item["digits"]
            if isinstance(digits, int) and not isinstance(digits, bool):
                digits = str(digits)
            if not isinstance(digits, str):
                raise ScriptError("digits must be a string")
            return DigitsReply(digits, _int(item, "at_ms", None))
        if keys & {"speech", "wav"} and keys <= {"speech", "confidence", "wav"}:
            text = item.get("speech", "")
            conf = item.get("confidence", 0.92)
            wav = item.get("wav")
            if not isinstance(text, str):
                raise ScriptError("speech must be a string")
            if wav is not None and not isinstance(wav, str):
                raise ScriptError("wav must be a file path")
            if isinstance(conf, bool) or not isinstance(conf, int | float):
                raise ScriptError("confidence must be a number")
            return SpeechReply(text, float(conf), wav)
    raise ScriptError(f"cannot understand reply {item!r}")


def parse_script(source: CalleeScript | Mapping[str, Any] | str | bytes | None) -> CalleeScript:
    """Build a script from a mapping, a JSON or YAML text, or return it if already built."""
    if source is None:
        return DEFAULT_SCRIPT
    if isinstance(source, CalleeScript):
        return source
    data: Any
    if isinstance(source, str | bytes):
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        try:
            data = json.loads(text)
        except ValueError:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ScriptError(f"script is neither JSON nor YAML: {exc}") from None
        if data is None:
            return DEFAULT_SCRIPT
    else:
        data = source
    if isinstance(data, str) and data.strip():
        data = {"scenario": data.strip()}
    if not isinstance(data, Mapping):
        raise ScriptError("a script must be a mapping (or the name of a scenario)")
    if data.get("scenario") is not None:
        from voicecall.emulator.scenarios import scenario_data

        data = scenario_data(data)
    unknown = set(data) - _KEYS
    if unknown:
        raise ScriptError(f"unknown script keys: {sorted(map(str, unknown))}")
    outcome_raw = data.get("outcome", "answer")
    try:
        outcome = Outcome(outcome_raw)
    except ValueError:
        raise ScriptError(
            f"outcome must be one of {[o.value for o in Outcome]}, got {outcome_raw!r}"
        ) from None
    replies_raw = data.get("replies", [])
    if not isinstance(replies_raw, list):
        raise ScriptError("replies must be a list")
    say_raw = data.get("say_at", [])
    if not isinstance(say_raw, list):
        raise ScriptError("say_at must be a list")
    lines: list[TimedLine] = []
    for item in say_raw:
        if (
            not isinstance(item, Mapping)
            or "at_ms" not in item
            or not set(item) & {"text", "wav"}
            or not set(item) <= {"at_ms", "text", "wav"}
        ):
            raise ScriptError("say_at items are {at_ms: N, text: '...'} or {at_ms: N, wav: path}")
        at = _int(item, "at_ms", 0)
        text = item.get("text", "")
        wav = item.get("wav")
        if not isinstance(text, str):
            raise ScriptError("say_at text must be a string")
        if wav is not None and not isinstance(wav, str):
            raise ScriptError("say_at wav must be a file path")
        lines.append(TimedLine(at or 0, text, wav))
    voice_raw = data.get("voice", "espeak")
    try:
        voice = Voice(voice_raw)
    except ValueError:
        raise ScriptError(
            f"voice must be one of {[v.value for v in Voice]}, got {voice_raw!r}"
        ) from None
    answered_by = data.get("answered_by")
    if answered_by is not None and not isinstance(answered_by, str):
        raise ScriptError("answered_by must be a string")
    return CalleeScript(
        answer_after_ms=_int(data, "answer_after_ms", 1000) or 0,
        outcome=outcome,
        answered_by=answered_by,
        reply_delay_ms=_int(data, "reply_delay_ms", 400) or 0,
        replies=tuple(_reply(r) for r in replies_raw),
        say_at=tuple(sorted(lines, key=lambda line: line.at_ms)),
        hangup_after_ms=_int(data, "hangup_after_ms", None),
        voice=voice,
        human=parse_human(data["human"]) if data.get("human") is not None else None,
        ivr=parse_ivr(data["ivr"]) if data.get("ivr") is not None else None,
        voicemail=(
            parse_voicemail(data["voicemail"]) if data.get("voicemail") is not None else None
        ),
        scenario=data.get("scenario"),
    )
