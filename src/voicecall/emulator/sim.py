"""The emulated call: a pure, sans-I/O simulator of one Twilio call.

``CallSim`` owns one call's state. Inputs are method calls carrying ``now`` (seconds, on the
emulator's clock, whose zero is the Unix epoch so timestamps can be printed); outputs are lists of
actions (:mod:`~voicecall.emulator.simtypes`) for the I/O layer to perform.

Lifecycle (outbound-api)::

    queued -> initiated -> ringing -> in-progress -> completed
                 |            |-> busy | no-answer (ring Timeout + ~5 s) | canceled (REST)
                 `-> failed

Inbound calls start ``ringing``; the voice URL is fetched with ``CallStatus=ringing``; a first
``<Reject>`` ends them ``busy`` (reason ``busy``) or ``no-answer`` (reason ``rejected``) without
answering; any other document answers them. ``<Dial>`` children (``outbound-dial``) ring like
API calls (``timeout`` without the buffer), run their whisper TwiML when answered, then stay
bridged until someone hangs up.

Verbs live in their own modules: :mod:`~voicecall.emulator.gather`,
:mod:`~voicecall.emulator.recording` (``<Record>``, ``Record=true``),
:mod:`~voicecall.emulator.dial` (``<Dial>``, ``<Conference>``); answering machine detection in
:mod:`~voicecall.emulator.amd`; the party on the line in :mod:`~voicecall.emulator.callee`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

from voicecall.emulator import amd
from voicecall.emulator.callee import Callee, Timing
from voicecall.emulator.dial import DialRun
from voicecall.emulator.gather import GatherRun
from voicecall.emulator.ids import IdSource
from voicecall.emulator.prompts import PromptRun
from voicecall.emulator.recording import CallRecorder, Recording, RecordRun
from voicecall.emulator.scripts import DEFAULT_SCRIPT, CalleeScript, Outcome, Reply, SilenceReply
from voicecall.emulator.simtypes import (
    API_VERSION,
    EVENT_OF,
    PRE_ANSWER,
    TERMINAL,
    CallFinished,
    CallSpec,
    CallStatus,
    CloseStream,
    Direction,
    EndLeg,
    HeardItem,
    HttpRequest,
    InvalidCallState,
    LegEvent,
    OpenStream,
    Purpose,
    SimAction,
    SimConfig,
    StartTimer,
    rfc2822,
)
from voicecall.emulator.streams import StreamRun
from voicecall.emulator.twiml import (
    Connect,
    Dial,
    Gather,
    Hangup,
    Pause,
    Play,
    Prompt,
    Record,
    Redirect,
    Reject,
    Say,
    Start,
    Stop,
    TwimlError,
    Verb,
    parse_twiml,
)

__all__ = [
    "API_VERSION",
    "TERMINAL",
    "CallFinished",
    "CallSim",
    "CallSpec",
    "CallStatus",
    "CloseStream",
    "Direction",
    "HeardItem",
    "HttpRequest",
    "InvalidCallState",
    "OpenStream",
    "Purpose",
    "SimAction",
    "SimConfig",
    "StartTimer",
    "rfc2822",
]

SAMPLE_RATE = 8000


@dataclass(slots=True)
class _Doc:
    verbs: tuple[Verb, ...]
    url: str | None  # where it came from (base for relative URLs, default Gather action)
    index: int = 0


@dataclass(slots=True)
class _Pending:
    purpose: Purpose
    url: str


class CallSim:
    """One call. Not thread-safe; drive it from one task."""

    def __init__(
        self,
        *,
        sid: str,
        account_sid: str,
        spec: CallSpec,
        script: CalleeScript = DEFAULT_SCRIPT,
        now: float,
        config: SimConfig | None = None,
        ids: IdSource | None = None,
    ) -> None:
        self.sid = sid
        self.account_sid = account_sid
        self.spec = spec
        self.script = script
        self.config = config or SimConfig()
        self.ids = ids or IdSource()
        inbound = spec.direction is Direction.INBOUND
        self.status = CallStatus.RINGING if inbound else CallStatus.QUEUED
        self.date_created = now
        self.date_updated = now
        self.start_time: float | None = None
        self.answer_time: float | None = None
        self.end_time: float | None = None
        self.answered_by: str | None = None
        self.amd_result: amd.AmdResult | None = None
        self.error: tuple[int, str] | None = None
        self.script_error: str | None = None
        self.timeline: list[dict[str, Any]] = []
        self.heard: list[HeardItem] = []
        self.callee_inputs: list[dict[str, Any]] = []
        self.gather_posts: list[dict[str, Any]] = []
        self.recordings: list[Recording] = []
        self.bridged = False  # a <Dial> child, connected to its caller
        self.timing = Timing(
            self.config.words_per_minute, self.config.min_say_seconds, script.reply_delay_ms / 1e3
        )
        self.callee: Callee | None = script.build_callee(self.timing)
        self._url = spec.url
        self._method = spec.method
        self._twiml = spec.twiml
        self._sequence = 0
        self._request_ids = 0
        self._pending: dict[int, _Pending] = {}
        self._timers: dict[str, int] = {}
        self._timer_tokens = 0
        self._progress_step = ""
        self._doc: _Doc | None = None
        self._streams = StreamRun(self)
        self._gather = GatherRun(self)
        self._prompts = PromptRun(self)
        self._amd = amd.AmdRun(self)
        self._record = RecordRun(self)
        self._dial = DialRun(self)
        self._recorder = CallRecorder(self)
        self._reply_index = 0
        self._started = False
        self._hangup_after: float | None = None
        self._callee_hangup_armed: float | None = None
        self.record(now, "created", direction=spec.direction.value, to=spec.to, from_=spec.from_)

    # ------------------------------------------------------------------ inspection

    @property
    def unused_replies(self) -> tuple[Reply, ...]:
        """Script replies not consumed by a ``<Gather>`` yet (used on Media Streams turns)."""
        return self.script.replies[self._reply_index :]

    @property
    def is_over(self) -> bool:
        return self.status in TERMINAL

    @property
    def parent_call_sid(self) -> str | None:
        return self.spec.parent_call_sid

    @property
    def duration(self) -> int | None:
        if self.end_time is None:
            return None
        if self.answer_time is None:
            return 0
        return math.floor(self.end_time - self.answer_time + 0.5)

    @property
    def streams(self) -> dict[str, OpenStream]:
        """The call's open Media Streams by stream sid."""
        return self._streams.open

    @property
    def dialled_leg(self) -> str | None:
        """The child call this call is bridged to by a running ``<Dial>``."""
        return self._dial.bridged_to

    def record(self, now: float, kind: str, **data: Any) -> None:
        """Append a timeline entry (the I/O layer adds its own: webhooks, REST requests)."""
        entry: dict[str, Any] = {"t": round(now - self.date_created, 6), "at": now, "kind": kind}
        entry.update(data)
        timeline = self.timeline
        if timeline and timeline[-1]["at"] > now:  # a note about the past: keep time order
            timeline.insert(bisect.bisect_right(timeline, now, key=lambda e: e["at"]), entry)
        else:
            timeline.append(entry)

    def common_params(self) -> list[tuple[str, str]]:
        """The parameters on every voice request."""
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.sid),
            ("CallStatus", self.status.value),
            ("Called", self.spec.to),
            ("Caller", self.spec.from_),
            ("Direction", self.spec.direction.value),
            ("From", self.spec.from_),
            ("To", self.spec.to),
        ]
        if self.spec.parent_call_sid is not None:
            params.append(("ParentCallSid", self.spec.parent_call_sid))
        return params

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[SimAction]:
        """Begin the call (after the REST create response was produced, or on dial-in)."""
        if self._started:
            return []
        self._started = True
        if self.spec.direction is Direction.INBOUND:
            self.start_time = now
            out = self._status_callback(now)
            out += self.fetch(now, Purpose.TWIML, self._url or "", self._method, ())
            return out
        self._progress_step = "initiate"
        return [self.timer("progress", now + self.config.initiate_delay)]

    def timer_fired(self, name: str, token: int, now: float) -> list[SimAction]:
        if self.is_over or self._timers.get(name) != token:
            return []
        del self._timers[name]
        if name == "progress":
            return self._progress(now)
        if name == "verb":
            return self.verb_done(now)
        if name == "gather":
            return self._gather.input_done(now)
        if name == "gather-partial":
            return self._gather.partial_due(now)
        if name == "record":
            return self._record.done(now)
        if name == "amd":
            return self._amd.done(now)
        if name == "callee-hangup":
            self.record(now, "callee-hangup")
            return self._end(now, CallStatus.COMPLETED)
        if name == "time-limit":
            self.record(now, "time-limit", seconds=self.spec.time_limit)
            return self._end(now, CallStatus.COMPLETED)
        return []

    def http_response(
        self, request_id: int, status_code: int, body: bytes | str, now: float
    ) -> list[SimAction]:
        pending = self._pending.pop(request_id, None)
        if pending is None or self.is_over:
            return []
        if not 200 <= status_code < 300:
            return self._app_error(
                now, 11200, f"HTTP {status_code} from {pending.purpose.value} {pending.url}"
            )
        try:
            parsed = parse_twiml(body)
        except TwimlError as exc:
            return self._app_error(now, exc.code, exc.message)
        for warning in parsed.warnings:
            self.record(now, "warning", code=12200, message=warning)
        self.record(
            now, "twiml", source=pending.purpose.value, url=pending.url, verbs=len(parsed.verbs)
        )
        return self._begin_doc(now, _Doc(parsed.verbs, pending.url))

    def http_failed(self, request_id: int, reason: str, now: float) -> list[SimAction]:
        """The webhook could not be delivered (connect failure / timeout, after retries)."""
        pending = self._pending.pop(request_id, None)
        if pending is None or self.is_over:
            return []
        code = 11205 if "connect" in reason.lower() else 11200
        return self._app_error(now, code, f"{pending.purpose.value} {pending.url}: {reason}")

    def media_fetched(
        self, request_id: int, ulaw: bytes | None, now: float, error: str | None = None
    ) -> list[SimAction]:
        """The audio of a ``<Play>`` URL (8 kHz μ-law), or ``None`` and why it failed."""
        if self.is_over:
            return []
        return self._prompts.media_fetched(request_id, ulaw, now, error)

    def hangup(self, now: float, requested: CallStatus) -> list[SimAction]:
        """REST update ``Status=completed|canceled``. Raises :class:`InvalidCallState`."""
        if requested not in (CallStatus.COMPLETED, CallStatus.CANCELED):
            raise ValueError("requested must be completed or canceled")
        if self.is_over:
            raise InvalidCallState(f"call is {self.status.value}")
        self.record(now, "rest-hangup", requested=requested.value)
        if self.status in PRE_ANSWER:
            return self._end(now, CallStatus.CANCELED)
        if requested is CallStatus.CANCELED:
            # Twilio: canceled only affects queued/ringing calls; an answered call goes on.
            return []
        return self._end(now, CallStatus.COMPLETED)

    def update_status_callback(self, now: float, url: str, method: str = "POST") -> None:
        """REST update with ``StatusCallback``: later events go there (same event list)."""
        if self.is_over:
            raise InvalidCallState(f"call is {self.status.value}")
        self.spec = replace(self.spec, status_callback=url, status_callback_method=method)
        self.record(now, "rest-status-callback", url=url, method=method)

    def redirect(
        self, now: float, *, url: str | None = None, method: str = "POST", twiml: str | None = None
    ) -> list[SimAction]:
        """REST update with ``Url`` or ``Twiml``. Raises :class:`InvalidCallState`."""
        if (url is None) == (twiml is None):
            raise ValueError("exactly one of url and twiml")
        if self.is_over:
            raise InvalidCallState(f"call is {self.status.value}")
        self.record(now, "rest-redirect", url=url, twiml=twiml is not None)
        if self.status in PRE_ANSWER and self.spec.direction is not Direction.INBOUND:
            # Not answered yet: the new instructions are used at answer.
            self._url, self._method, self._twiml = url, method, twiml
            return []
        out = self._abandon_doc(now, "redirected")
        if twiml is not None:
            return out + self._inline(now, twiml)
        return out + self.fetch(now, Purpose.TWIML, url or "", method, ())

    def stream_ended(self, stream_sid: str, now: float, reason: str = "closed") -> list[SimAction]:
        """The stream's WebSocket closed (either side) or could not be opened."""
        if self.is_over:
            return []
        return self._streams.ended(now, stream_sid, reason)

    def leg_event(
        self, child_sid: str, event: str, status: CallStatus, duration: int, now: float
    ) -> list[SimAction]:
        """A ``<Dial>`` child call answered, was bridged, or ended."""
        if self.is_over:
            return [EndLeg(child_sid, "the caller is gone")] if event != "ended" else []
        return self._dial.leg_event(now, child_sid, event, status, duration)

    def conference_ended(self, room: str, now: float, reason: str = "ended") -> list[SimAction]:
        """The call's conference room ended (or turned it away)."""
        if self.is_over:
            return []
        return self._dial.conference_ended(now, room, reason)

    def script_failed(self, now: float, message: str) -> list[SimAction]:
        """The callee's script cannot play this call (e.g. it must hear a stream and speech
        recognition is missing): recorded as ``script-error``, the call ends ``failed``."""
        if self.is_over:
            return []
        self.script_error = message
        self.record(now, "script-error", message=message)
        return self._end(now, CallStatus.FAILED)

    def callee_update(self, now: float) -> list[SimAction]:
        """The callee was fed from outside (a Media Stream): record its notes, arm its hang-up."""
        if self.is_over:
            return []
        return self.callee_sync(now)

    # ------------------------------------------------------------------ helpers for verbs

    def new_request_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    def prompt_cut(self, now: float) -> None:
        """A key stopped a ``<Gather>`` prompt: the rest of its prompts are skipped."""
        self._gather.prompt_cut(now)

    def timer(self, name: str, at: float) -> StartTimer:
        self._timer_tokens += 1
        self._timers[name] = self._timer_tokens
        return StartTimer(name, self._timer_tokens, at)

    def resolve(self, url: str) -> str:
        base = self._doc.url if self._doc is not None else self._url
        return urljoin(base, url) if base else url

    @property
    def document_url(self) -> str | None:
        return self._doc.url if self._doc is not None else self._url

    def leave_document(self) -> None:
        """The document is done with (its action's TwiML will replace it)."""
        self._doc = None

    def say_seconds(self, text: str) -> float:
        return self.timing.speech_seconds(text)

    def peek_reply(self) -> Reply:
        replies = self.script.replies
        return replies[self._reply_index] if self._reply_index < len(replies) else SilenceReply()

    def next_reply(self) -> Reply:
        reply = self.peek_reply()
        if self._reply_index < len(self.script.replies):
            self._reply_index += 1
        return reply

    def hear(self, start: float, end: float, kind: str, text: str, **extra: Any) -> HeardItem:
        item = HeardItem(start, end, kind, text, extra=extra)
        self.heard.append(item)
        return item

    def voice_params(self) -> list[tuple[str, str]]:
        params = self.common_params()
        if self.answered_by is not None:
            params.append(("AnsweredBy", self.answered_by))
            if self.amd_result is not None:
                params.append(("MachineDetectionDuration", str(self.amd_result.duration_ms)))
        return params

    def fetch(
        self,
        now: float,
        purpose: Purpose,
        url: str,
        method: str,
        extra: Sequence[tuple[str, str]],
    ) -> list[SimAction]:
        self._request_ids += 1
        rid = self._request_ids
        self._pending[rid] = _Pending(purpose, url)
        params = tuple(self.voice_params() + list(extra))
        return [HttpRequest(rid, purpose, url, method, params)]

    def notify(
        self, purpose: Purpose, url: str, method: str, params: Sequence[tuple[str, str]]
    ) -> HttpRequest:
        """A webhook that expects no TwiML (callbacks)."""
        self._request_ids += 1
        return HttpRequest(self._request_ids, purpose, url, method, tuple(params))

    def callee_sync(self, now: float) -> list[SimAction]:
        """Record the callee's notes; (re)arm the timer for when it hangs up."""
        callee = self.callee
        if callee is not None:
            for note in callee.drain_notes(now):
                self.record(note.at, note.kind, **note.data)
        callee_at = None if callee is None else callee.hangup_at
        candidates = [t for t in (self._hangup_after, callee_at) if t is not None]
        at = min(candidates) if candidates else None
        if at == self._callee_hangup_armed or self.status in PRE_ANSWER:
            return []
        if at is None:  # the callee changed its mind (a key re-planned an IVR)
            self._timers.pop("callee-hangup", None)
            self._callee_hangup_armed = None
            return []
        self._callee_hangup_armed = at
        return [self.timer("callee-hangup", max(at, now))]

    # ------------------------------------------------------------------ lifecycle

    def _set_status(self, now: float, status: CallStatus) -> list[SimAction]:
        self.status = status
        self.date_updated = now
        self.record(now, "status", status=status.value)
        return self._status_callback(now)

    def _status_callback(self, now: float) -> list[SimAction]:
        spec = self.spec
        event = EVENT_OF.get(self.status)
        if spec.status_callback is None or event is None:
            return []
        if event not in spec.status_callback_events:
            return []
        params = self.common_params()
        params += [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", str(self._sequence)),
            ("Timestamp", rfc2822(now)),
        ]
        if event == "completed":
            params.append(("CallDuration", str(self.duration or 0)))
            call_recording = self._recorder.done
            if call_recording is not None:  # Record=true: the recording goes with it
                params += [
                    ("RecordingUrl", call_recording.url),
                    ("RecordingSid", call_recording.sid),
                    ("RecordingDuration", str(call_recording.duration)),
                ]
        if self.answered_by is not None:
            params.append(("AnsweredBy", self.answered_by))
        self._sequence += 1
        return [
            self.notify(
                Purpose.STATUS_CALLBACK, spec.status_callback, spec.status_callback_method, params
            )
        ]

    def _ring_timeout(self) -> float:
        buffer = 0.0
        if self.spec.direction is Direction.OUTBOUND_API:
            buffer = self.config.ring_timeout_buffer
        return float(self.spec.timeout) + buffer

    def _progress(self, now: float) -> list[SimAction]:
        step = self._progress_step
        script = self.script
        if step == "initiate":
            self.start_time = now
            out = self._set_status(now, CallStatus.INITIATED)
            if script.outcome is Outcome.FAILED:
                return out + self._end(now, CallStatus.FAILED)
            self._progress_step = "ring"
            return [*out, self.timer("progress", now + self.config.ring_delay)]
        if step == "ring":
            out = self._set_status(now, CallStatus.RINGING)
            answer_after = script.answer_after_ms / 1000.0
            timeout = self._ring_timeout()
            if script.outcome is Outcome.ANSWER and answer_after < timeout:
                self._progress_step = "answer"
                return [*out, self.timer("progress", now + answer_after)]
            if script.outcome is Outcome.BUSY and answer_after < timeout:
                self._progress_step = "busy"
                return [*out, self.timer("progress", now + answer_after)]
            self._progress_step = "no-answer"
            return [*out, self.timer("progress", now + timeout)]
        if step == "busy":
            return self._end(now, CallStatus.BUSY)
        if step == "no-answer":
            return self._end(now, CallStatus.NO_ANSWER)
        if step == "answer":
            out = self._answer(now)
            if self.spec.amd and not self.spec.async_amd:
                return out  # Twilio runs no TwiML until detection is done
            return out + self.first_document(now)
        return []

    def first_document(self, now: float) -> list[SimAction]:
        if self.spec.direction is Direction.OUTBOUND_DIAL:
            if self._url is None:
                return self._bridge(now)
            return self.fetch(now, Purpose.TWIML, self._url, self._method, ())
        if self._twiml is not None:
            return self._inline(now, self._twiml)
        return self.fetch(now, Purpose.TWIML, self._url or "", self._method, ())

    def _answer(self, now: float) -> list[SimAction]:
        self.answer_time = now
        out = self._set_status(now, CallStatus.IN_PROGRESS)
        spec = self.spec
        if spec.direction is Direction.OUTBOUND_DIAL:
            out.append(
                LegEvent(spec.parent_call_sid or "", self.sid, "answered", CallStatus.IN_PROGRESS)
            )
        if self.callee is not None:
            self.callee.answered(now)
        if spec.send_digits:
            self.record(now, "send-digits", digits=spec.send_digits)
            self._prompts.digits_to_callee(now + 0.5, spec.send_digits)
        if spec.machine_detection and spec.send_digits:
            self.record(now, "amd-skipped", reason="SendDigits disables MachineDetection")
        if spec.amd:
            out += self._amd.start(now)
        if spec.record:
            out += self._recorder.start(now)
        if self.script.hangup_after_ms is not None:
            self._hangup_after = now + self.script.hangup_after_ms / 1000.0
        out.append(self.timer("time-limit", now + spec.time_limit))
        return out + self.callee_sync(now)

    def _bridge(self, now: float) -> list[SimAction]:
        """A ``<Dial>`` child's whisper is over (or there was none): connect the caller."""
        self.bridged = True
        self._doc = None
        self.record(now, "bridged", parent=self.spec.parent_call_sid)
        return [LegEvent(self.spec.parent_call_sid or "", self.sid, "bridged", self.status)]

    # ------------------------------------------------------------------ ending

    def _end(self, now: float, status: CallStatus) -> list[SimAction]:
        out: list[SimAction] = []
        out += self._streams.close_all("call ended")
        self.status = status  # requests made on the way out carry the final CallStatus
        out += self._record.call_ended(now)
        out += self._dial.call_ended(now)
        self._gather.abandon()
        self._pending.clear()
        self._prompts.abandon()
        self._timers.clear()
        self._doc = None
        self.end_time = now
        if self.start_time is None:
            self.start_time = now
        if self.callee is not None:
            self.callee.finished(now)
            for note in self.callee.drain_notes(now):
                self.record(note.at, note.kind, **note.data)
        out += self._recorder.finish(now)
        out += self._set_status(now, status)
        if self.spec.direction is Direction.OUTBOUND_DIAL:
            out.append(
                LegEvent(
                    self.spec.parent_call_sid or "", self.sid, "ended", status, self.duration or 0
                )
            )
        out.append(CallFinished(status))
        return out

    def _app_error(self, now: float, code: int, message: str) -> list[SimAction]:
        self.error = (code, message)
        self.record(now, "error", code=code, message=message)
        if self.status is CallStatus.IN_PROGRESS:
            text = self.config.app_error_text
            self.heard.append(HeardItem(now, now + self.say_seconds(text), "app-error", text))
        return self._end(now, self.config.app_error_status)

    # ------------------------------------------------------------------ documents

    def _inline(self, now: float, twiml: str) -> list[SimAction]:
        try:
            parsed = parse_twiml(twiml)
        except TwimlError as exc:
            return self._app_error(now, exc.code, exc.message)
        for warning in parsed.warnings:
            self.record(now, "warning", code=12200, message=warning)
        self.record(now, "twiml", source="inline", url=None, verbs=len(parsed.verbs))
        return self._begin_doc(now, _Doc(parsed.verbs, None))

    def _abandon_doc(self, now: float, reason: str) -> list[SimAction]:
        out: list[SimAction] = []
        for name in ("verb", "gather", "record"):
            self._timers.pop(name, None)
        self._pending = {k: v for k, v in self._pending.items() if not v.purpose.expects_twiml}
        self._prompts.abandon()
        self._gather.abandon()
        self._record.abandon()
        out += self._dial.abandon(now, reason)
        self._doc = None
        out += self._streams.abandon(reason)
        return out

    def _begin_doc(self, now: float, doc: _Doc) -> list[SimAction]:
        out: list[SimAction] = []
        if self.status is not CallStatus.IN_PROGRESS:
            # Inbound call still ringing: a first <Reject> refuses it unanswered.
            if doc.verbs and isinstance(doc.verbs[0], Reject):
                reject = doc.verbs[0]
                self.record(now, "verb", verb="Reject", reason=reject.reason)
                status = CallStatus.BUSY if reject.reason == "busy" else CallStatus.NO_ANSWER
                return self._end(now, status)
            out += self._answer(now)
        self._doc = doc
        self._gather.abandon()
        return out + self._run(now)

    def advance(self, now: float) -> list[SimAction]:
        """The current verb is done: run the next ones."""
        if self._doc is not None:
            self._doc.index += 1
        return self._run(now)

    def _run(self, now: float) -> list[SimAction]:
        """Execute verbs until one takes time or the document ends."""
        out: list[SimAction] = []
        while not self.is_over:
            doc = self._doc
            if doc is None:
                return out
            if doc.index >= len(doc.verbs):
                if self.spec.direction is Direction.OUTBOUND_DIAL and not self.bridged:
                    self.record(now, "whisper-ended")
                    return out + self._bridge(now)
                self.record(now, "document-ended")
                return out + self._end(now, CallStatus.COMPLETED)
            verb = doc.verbs[doc.index]
            step = self._execute(now, verb)
            if step is None:
                doc.index += 1
                continue
            return out + step
        return out

    def play_prompt(
        self, now: float, verb: Prompt, stop_at: float | None = None
    ) -> list[SimAction]:
        """Play ``verb`` to the callee; a ``verb`` timer fires when it is over."""
        return self._prompts.play(now, verb, stop_at)

    # ------------------------------------------------------------------ verbs

    def _execute(self, now: float, verb: Verb) -> list[SimAction] | None:
        """Start ``verb``; ``None`` means it finished at once (go on to the next)."""
        if isinstance(verb, Say | Play | Pause):
            return self.play_prompt(now, verb)
        if isinstance(verb, Gather):
            return self._gather.start(now, verb)
        if isinstance(verb, Record):
            return self._record.start(now, verb)
        if isinstance(verb, Dial):
            if self.spec.direction is Direction.OUTBOUND_DIAL:
                return self._app_error(now, 12100, "<Dial> in a dialled leg's whisper")
            return self._dial.start(now, verb)
        if isinstance(verb, Hangup | Reject):
            self.record(now, "verb", verb=type(verb).__name__)
            return self._end(now, CallStatus.COMPLETED)
        if isinstance(verb, Redirect):
            url = self.resolve(verb.url)
            self.record(now, "verb", verb="Redirect", url=url, method=verb.method)
            self._doc = None
            return self.fetch(now, Purpose.REDIRECT, url, verb.method, ())
        if isinstance(verb, Connect | Start | Stop):
            return self._streams.execute(now, verb)
        raise AssertionError(f"unhandled verb {verb!r}")  # pragma: no cover

    def verb_done(self, now: float) -> list[SimAction]:
        if self._gather.active:
            return self._gather.step(now)
        return self.advance(now)
