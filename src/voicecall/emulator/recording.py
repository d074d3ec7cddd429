"""Recordings (pure): ``<Record>``, ``Record=true`` on a call, and what a recording holds.

A :class:`Recording` is a list of :class:`Segment`\\ s on the call's clock: what the person said
(``callee`` channel: scripted speech, WAV replies, beeps, hold music) and what the call played to
them (``app`` channel: ``<Say>`` text, ``<Play>`` audio, keypad tones). The I/O layer renders it
to audio on demand (speech with espeak-ng, Media Streams audio as it was carried); see
:mod:`~voicecall.emulator.recordings`.

``<Record>`` (:class:`RecordRun`): an optional beep, then the callee's next speech (a script
reply, or what a scripted callee says when the bot yields the floor) until ``timeout`` seconds of
silence, a ``finishOnKey`` key, ``maxLength`` or the callee hanging up. Then the
``recordingStatusCallback`` (``RecordingStatus=completed``) and the ``action`` (Twilio's
``RecordingUrl``, ``RecordingSid``, ``RecordingDuration``, ``Digits``; without ``action`` the
current document's URL). Nothing heard: ``RecordingStatus=absent``, no action, next verb.

``Record=true`` (:class:`CallRecorder`): the whole call from answer to hang-up, source
``OutboundAPI``, with ``RecordingStatusCallback`` (+ ``Event`` / ``Method``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicecall.emulator.scripts import DigitsReply, SpeechReply
from voicecall.emulator.simtypes import API_VERSION, Purpose, RecordingReady, SimAction, rfc2822
from voicecall.emulator.twiml import Record

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim

__all__ = ["CallRecorder", "RecordRun", "Recording", "Segment"]

RECORD_BEEP_SECONDS = 0.4


@dataclass(slots=True)
class Segment:
    start: float  # emulator clock (seconds)
    end: float
    channel: str  # callee (inbound: the person) | app (outbound: what the call played)
    kind: str  # speech | say | play | digits | beep | music | tone
    text: str = ""
    wav: str | None = None
    url: str | None = None
    frequency_hz: float = 0.0
    style: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "channel": self.channel,
            "kind": self.kind,
        }
        for key in ("text", "wav", "url", "frequency_hz", "style"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


@dataclass(slots=True)
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    source: str  # RecordVerb | OutboundAPI | DialVerb
    start: float
    api_base_url: str = "https://api.twilio.com"
    channels: int = 1
    track: str = "both"
    end: float | None = None
    status: str = "in-progress"  # in-progress | completed | absent
    segments: list[Segment] = field(default_factory=list)
    digits: str | None = None  # <Record>: the key that ended it, or "hangup"
    trim: bool = False
    error_code: int = 0

    @property
    def span(self) -> tuple[float, float]:
        """The recorded time span (leading/trailing silence trimmed when asked)."""
        end = self.end if self.end is not None else self.start
        if self.trim and self.segments:
            return min(s.start for s in self.segments), max(s.end for s in self.segments)
        return self.start, max(self.start, end)

    @property
    def seconds(self) -> float:
        a, b = self.span
        return max(0.0, b - a)

    @property
    def duration(self) -> int:
        """Whole seconds, as ``RecordingDuration`` carries it."""
        return math.floor(self.seconds + 0.5)

    @property
    def text(self) -> str:
        """The words the person said in it."""
        return " ".join(s.text for s in self.segments if s.channel == "callee" and s.text)

    @property
    def path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{self.sid}"

    @property
    def url(self) -> str:
        """``RecordingUrl``: the media without an extension (append ``.wav``)."""
        return self.api_base_url.rstrip("/") + self.path

    def callback_params(self) -> list[tuple[str, str]]:
        params = [
            ("AccountSid", self.account_sid),
            ("CallSid", self.call_sid),
            ("RecordingSid", self.sid),
            ("RecordingUrl", self.url),
            ("RecordingStatus", self.status),
            ("RecordingDuration", str(self.duration if self.status == "completed" else 0)),
            ("RecordingChannels", str(self.channels)),
            ("RecordingStartTime", rfc2822(self.start)),
            ("RecordingSource", self.source),
        ]
        if self.source == "OutboundAPI":
            params.append(("RecordingTrack", self.track))
        if self.status == "absent":
            params.append(("ErrorCode", "0"))
        return params

    def to_dict(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "call_sid": self.call_sid,
            "source": self.source,
            "status": self.status,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "channels": self.channels,
            "digits": self.digits,
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
        }


def _callback(
    sim: CallSim, rec: Recording, url: str | None, method: str, events: frozenset[str]
) -> list[SimAction]:
    if url is None or rec.status not in events:
        return []
    return [sim.notify(Purpose.RECORDING_STATUS, sim.resolve(url), method, rec.callback_params())]


class RecordRun:
    """One ``<Record>`` verb at a time."""

    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self.verb: Record | None = None
        self.rec: Recording | None = None

    @property
    def active(self) -> bool:
        return self.verb is not None

    def abandon(self) -> None:
        self.verb, self.rec = None, None

    def start(self, now: float, verb: Record) -> list[SimAction]:
        sim = self.sim
        t0 = now
        if verb.play_beep:
            t0 = now + RECORD_BEEP_SECONDS
            sim.hear(now, t0, "beep", "beep")
        rec = Recording(
            sid=sim.ids.sid("RE"),
            account_sid=sim.account_sid,
            call_sid=sim.sid,
            source="RecordVerb",
            start=t0,
            api_base_url=sim.config.api_base_url,
            trim=verb.trim == "trim-silence",
        )
        self.verb, self.rec = verb, rec
        silence = verb.timeout if verb.timeout > 0 else float(verb.max_length)
        limit = t0 + verb.max_length
        end = t0 + silence
        callee = sim.callee
        if callee is not None:
            callee.turn_ended(t0)
            last = t0
            for s in sorted(callee.sounds_between(t0, limit), key=lambda s: s.start):
                if not s.is_speech or s.consumed or s.start > last + silence:
                    continue
                s.consumed = True
                rec.segments.append(
                    Segment(max(s.start, t0), s.end, "callee", "speech", s.text, s.wav)
                )
                last = max(last, s.end)
            end = last + silence if rec.segments else end
        else:
            reply = sim.next_reply()
            delay = sim.script.reply_delay_ms / 1000.0
            if isinstance(reply, SpeechReply):
                a = t0 + delay
                b = a + (reply.seconds or sim.say_seconds(reply.text))
                rec.segments.append(Segment(a, b, "callee", "speech", reply.text, reply.wav))
                end = b + silence
            elif isinstance(reply, DigitsReply):
                t = t0 + delay
                for d in reply.digits:
                    t += 0.5 if d == "w" else sim.config.dtmf_digit_seconds
                    if d != "w" and d in verb.finish_on_key:
                        end, rec.digits = t, d
                        break
                    if d != "w":
                        rec.segments.append(Segment(t - 0.1, t, "callee", "tone", d))
        end = min(end, limit)
        sim.record(
            now,
            "verb",
            verb="Record",
            recording_sid=rec.sid,
            until=end,
            max_length=verb.max_length,
            timeout=verb.timeout,
        )
        out = _callback(
            sim,
            rec,
            verb.recording_status_callback,
            verb.recording_status_callback_method,
            verb.recording_status_callback_events,
        )
        return [RecordingReady(rec), *out, sim.timer("record", end)]

    def _finish(self, now: float) -> tuple[Record, Recording, list[SimAction]]:
        verb, rec = self.verb, self.rec
        assert verb is not None and rec is not None
        self.verb, self.rec = None, None
        rec.end = now
        rec.segments = [s for s in rec.segments if s.start < now]
        for s in rec.segments:
            s.end = min(s.end, now)
        rec.status = "completed" if rec.segments else "absent"
        sim = self.sim
        sim.recordings.append(rec)
        sim.record(now, "recording", **rec.to_dict())
        out: list[SimAction] = [RecordingReady(rec)]
        out += _callback(
            sim,
            rec,
            verb.recording_status_callback,
            verb.recording_status_callback_method,
            verb.recording_status_callback_events,
        )
        return verb, rec, out

    def _action(self, now: float, verb: Record, rec: Recording) -> list[SimAction]:
        sim = self.sim
        target = sim.resolve(verb.action) if verb.action else sim.document_url
        if not target:
            return []
        extra = [
            ("RecordingUrl", rec.url),
            ("RecordingDuration", str(rec.duration)),
            ("RecordingSid", rec.sid),
        ]
        if rec.digits is not None:
            extra.append(("Digits", rec.digits))
        return sim.fetch(now, Purpose.RECORD_ACTION, target, verb.method, extra)

    def done(self, now: float) -> list[SimAction]:
        if self.verb is None:
            return []
        verb, rec, out = self._finish(now)
        sim = self.sim
        if rec.status == "absent":
            return out + sim.advance(now)
        action = self._action(now, verb, rec)
        if not action:
            sim.record(now, "record-no-action-url", note="inline TwiML and no action")
            return out + sim.advance(now)
        sim.leave_document()
        return out + action

    def call_ended(self, now: float) -> list[SimAction]:
        """The call ended mid-recording: it ends too (``Digits=hangup``); the action is still
        requested, its TwiML ignored."""
        if self.verb is None or self.rec is None:
            return []
        self.rec.digits = "hangup"
        verb, rec, out = self._finish(now)
        if rec.status == "completed":
            out += self._action(now, verb, rec)
        return out


class CallRecorder:
    """``Record=true``: the whole call, from answer to hang-up."""

    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self.rec: Recording | None = None
        self.done: Recording | None = None  # once the call is over

    def start(self, now: float) -> list[SimAction]:
        sim, spec = self.sim, self.sim.spec
        rec = Recording(
            sid=sim.ids.sid("RE"),
            account_sid=sim.account_sid,
            call_sid=sim.sid,
            source="OutboundAPI",
            start=now,
            api_base_url=sim.config.api_base_url,
            channels=2 if spec.recording_channels == "dual" else 1,
            track=spec.recording_track,
        )
        self.rec = rec
        sim.record(now, "recording-started", recording_sid=rec.sid, source=rec.source)
        return [
            RecordingReady(rec),
            *_callback(
                sim,
                rec,
                spec.recording_status_callback,
                spec.recording_status_callback_method,
                spec.recording_status_callback_events,
            ),
        ]

    def finish(self, now: float) -> list[SimAction]:
        rec, sim = self.rec, self.sim
        if rec is None:
            return []
        self.rec = None
        self.done = rec
        rec.end = now
        track = rec.track
        if track in {"both", "outbound"}:
            for h in sim.heard:
                if h.start < now and h.end > rec.start:
                    rec.segments.append(
                        Segment(
                            max(h.start, rec.start),
                            min(h.end, now),
                            "app",
                            h.kind,
                            h.text,
                            url=h.extra.get("url"),
                        )
                    )
        if track in {"both", "inbound"}:
            for item in sim.callee_inputs:
                if item["start"] < now:
                    kind = "speech" if "speech" in item else "tone"
                    text = item.get("speech") or item.get("digits") or ""
                    rec.segments.append(
                        Segment(
                            item["start"],
                            min(item["end"], now),
                            "callee",
                            kind,
                            text,
                            item.get("wav"),
                        )
                    )
            if sim.callee is not None:
                for s in sim.callee.sounds:
                    if s.start < now and s.end > rec.start:
                        rec.segments.append(
                            Segment(
                                max(s.start, rec.start),
                                min(s.end, now),
                                "callee",
                                s.kind,
                                s.text,
                                s.wav,
                                frequency_hz=s.frequency_hz,
                                style=s.style,
                            )
                        )
        rec.segments.sort(key=lambda s: s.start)
        rec.status = "completed"
        sim.recordings.append(rec)
        sim.record(now, "recording", **rec.to_dict())
        spec = sim.spec
        return [
            RecordingReady(rec),
            *_callback(
                sim,
                rec,
                spec.recording_status_callback,
                spec.recording_status_callback_method,
                spec.recording_status_callback_events,
            ),
        ]
