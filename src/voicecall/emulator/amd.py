"""Answering machine detection as Twilio does it, on the callee's scheduled sounds (pure).

Twilio listens to the first seconds after answer and returns ``AnsweredBy``:

* ``MachineDetection=Enable``: ``human``, ``machine_start``, ``fax`` or ``unknown``, as soon as
  it knows.
* ``MachineDetection=DetectMessageEnd``: waits for a machine's greeting to end:
  ``machine_end_beep`` (a beep followed it), ``machine_end_silence`` (silence did),
  ``machine_end_other`` (something else, or the end could not be found before the timeout);
  a person is still ``human`` quickly.

The emulator's model, with Twilio's tuning parameters (defaults in brackets):

* Speech (and music) sounds closer than ``MachineDetectionSpeechEndThreshold`` (1200 ms) form one
  burst of activity; beeps do not count as activity.
* Nothing within ``MachineDetectionSilenceTimeout`` (5000 ms) of answer: ``unknown`` then.
* A first burst shorter than ``MachineDetectionSpeechThreshold`` (2400 ms): ``human``, decided
  ``SpeechEndThreshold`` after it ends (a person says "Hello?" and waits).
* Longer: a machine. ``Enable`` says ``machine_start`` once the threshold is reached;
  ``DetectMessageEnd`` waits for the burst's end: a beep starting within ``SpeechEndThreshold``
  of it gives ``machine_end_beep`` at the beep's end; hold music in it gives
  ``machine_end_other``; otherwise ``machine_end_silence`` after ``SpeechEndThreshold`` of quiet.
* Anything not decided within ``MachineDetectionTimeout`` (30 s): ``machine_end_other`` when a
  machine was recognised (``DetectMessageEnd``), else ``unknown``.

``MachineDetectionDuration`` is the time from answer to the decision, in milliseconds.
Classic reply-list scripts declare their result instead (:func:`declared`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voicecall.emulator.callee import Sound
from voicecall.emulator.simtypes import Purpose, SimAction

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim

__all__ = ["AmdResult", "AmdRun", "AmdSettings", "declared", "detect"]


@dataclass(frozen=True, slots=True)
class AmdSettings:
    mode: str = "Enable"  # Enable | DetectMessageEnd
    timeout: float = 30.0  # s
    speech_threshold: float = 2.4  # s
    speech_end_threshold: float = 1.2  # s
    silence_timeout: float = 5.0  # s

    @property
    def message_end(self) -> bool:
        return self.mode == "DetectMessageEnd"


@dataclass(frozen=True, slots=True)
class AmdResult:
    answered_by: str
    at: float  # when Twilio decides (emulator clock)
    duration_ms: int  # MachineDetectionDuration


def _result(answered_by: str, answered_at: float, t: float, s: AmdSettings) -> AmdResult:
    if t - answered_at > s.timeout:
        t = answered_at + s.timeout
    return AmdResult(answered_by, t, round((t - answered_at) * 1000))


def detect(sounds: Iterable[Sound], answered_at: float, s: AmdSettings) -> AmdResult:
    """What Twilio's AMD says about a callee that makes ``sounds`` after answering."""
    timeline = sorted(
        (x for x in sounds if x.end > answered_at and x.seconds > 0), key=lambda x: x.start
    )
    active = [x for x in timeline if x.kind in {"speech", "music"}]
    beeps = [x for x in timeline if x.kind in {"beep", "tone"}]
    if not active or active[0].start - answered_at > s.silence_timeout:
        return _result("unknown", answered_at, answered_at + s.silence_timeout, s)
    a0, a1 = max(active[0].start, answered_at), active[0].end
    music = active[0].kind == "music"
    for x in active[1:]:
        if x.start - a1 >= s.speech_end_threshold:
            break
        a1 = max(a1, x.end)
        music = music or x.kind == "music"
    deadline = answered_at + s.timeout
    if a1 - a0 < s.speech_threshold:
        return _result("human", answered_at, a1 + s.speech_end_threshold, s)
    if not s.message_end:
        return _result("machine_start", answered_at, a0 + s.speech_threshold, s)
    if a0 + s.speech_threshold > deadline:
        return _result("unknown", answered_at, deadline, s)
    beep = next((b for b in beeps if a1 - 0.05 <= b.start <= a1 + s.speech_end_threshold), None)
    if beep is not None:
        end = beep.end
        kind = "machine_end_beep"
    elif music:
        end, kind = a1 + s.speech_end_threshold, "machine_end_other"
    else:
        end, kind = a1 + s.speech_end_threshold, "machine_end_silence"
    if end > deadline:
        return _result("machine_end_other", answered_at, deadline, s)
    return _result(kind, answered_at, end, s)


# Nominal decision times (s after answer) for scripts that declare their AMD result.
_DECLARED_AFTER = {
    "human": 2.0,
    "machine_start": 3.0,
    "machine_end_beep": 8.0,
    "machine_end_silence": 9.0,
    "machine_end_other": 9.0,
    "fax": 1.5,
}


def declared(answered_by: str, answered_at: float, s: AmdSettings) -> AmdResult:
    """A classic script's declared result (``answered_by``), with a plausible delay.

    ``Enable`` never reports the end of a message: a declared ``machine_end_*`` reads
    ``machine_start`` there.
    """
    if not s.message_end and answered_by.startswith("machine_end"):
        answered_by = "machine_start"
    after = _DECLARED_AFTER.get(answered_by)
    if after is None:  # unknown
        after = min(s.timeout, s.silence_timeout)
    return _result(answered_by, answered_at, answered_at + after, s)


class AmdRun:
    """Detection on one call: started at answer, decided by the ``amd`` timer.

    Synchronous (default): no TwiML runs until the decision; then the voice URL is fetched with
    ``AnsweredBy`` and ``MachineDetectionDuration``. ``AsyncAmd``: the TwiML runs at answer and
    the decision is posted to ``AsyncAmdStatusCallback`` (warning 21262 when there is none).
    """

    def __init__(self, sim: CallSim) -> None:
        self.sim = sim

    def settings(self) -> AmdSettings:
        spec = self.sim.spec
        return AmdSettings(
            mode=spec.machine_detection or "Enable",
            timeout=float(spec.machine_detection_timeout),
            speech_threshold=spec.machine_detection_speech_threshold / 1000.0,
            speech_end_threshold=spec.machine_detection_speech_end_threshold / 1000.0,
            silence_timeout=spec.machine_detection_silence_timeout / 1000.0,
        )

    def start(self, now: float) -> list[SimAction]:
        settings = self.settings()
        if self.sim.callee is not None:
            horizon = now + settings.timeout
            result = detect(self.sim.callee.sounds_between(now, horizon), now, settings)
        else:
            result = declared(self.sim.script.answered_by or "human", now, settings)
        self.sim.amd_result = result
        self.sim.record(now, "amd-started", mode=settings.mode, async_amd=self.sim.spec.async_amd)
        return [self.sim.timer("amd", result.at)]

    def done(self, now: float) -> list[SimAction]:
        result = self.sim.amd_result
        assert result is not None
        self.sim.answered_by = result.answered_by
        self.sim.record(now, "amd", answered_by=result.answered_by, duration_ms=result.duration_ms)
        spec = self.sim.spec
        if not spec.async_amd:
            return self.sim.first_document(now)
        if spec.async_amd_status_callback is None:
            self.sim.record(now, "warning", code=21262, message="AsyncAmd without a callback URL")
            return []
        params = [
            ("AccountSid", self.sim.account_sid),
            ("CallSid", self.sim.sid),
            ("AnsweredBy", result.answered_by),
            ("MachineDetectionDuration", str(result.duration_ms)),
        ]
        url = self.sim.resolve(spec.async_amd_status_callback)
        return [
            self.sim.notify(Purpose.AMD_STATUS, url, spec.async_amd_status_callback_method, params)
        ]
