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
:mod:`~voicecall.emulator.amd`; the party on the line in :mod:`~voicecall.emulator.callee`. The
call's parts have theirs too: the document and its verbs in :mod:`~voicecall.emulator.documents`,
the way to the answer in :mod:`~voicecall.emulator.progress`, status callbacks in
:mod:`~voicecall.emulator.status_callbacks`, requests and timers in
:mod:`~voicecall.emulator.sim_requests` and :mod:`~voicecall.emulator.sim_timers`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

from voicecall.emulator import amd
from voicecall.emulator.callee import Callee, Timing
from voicecall.emulator.dial import DialRun
from voicecall.emulator.documents import DocumentRun
from voicecall.emulator.gather import GatherRun
from voicecall.emulator.ids import IdSource
from voicecall.emulator.lifecycle import Lifecycle
from voicecall.emulator.parts import SimParts
from voicecall.emulator.progress import ProgressRun
from voicecall.emulator.prompts import PromptRun
from voicecall.emulator.recording import CallRecorder, Recording, RecordRun
from voicecall.emulator.scripts import DEFAULT_SCRIPT, CalleeScript, Reply, SilenceReply
from voicecall.emulator.sim_requests import Requests
from voicecall.emulator.sim_timers import Timers
from voicecall.emulator.simtypes import (
    API_VERSION,
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
    OpenStream,
    Purpose,
    SimAction,
    SimConfig,
    StartTimer,
    rfc2822,
)
from voicecall.emulator.streams import StreamRun
from voicecall.emulator.twiml import Prompt

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
        self.parts = parts = SimParts(
            requests=Requests(),
            timers=Timers(),
            streams=StreamRun(self),
            gather=GatherRun(self),
            prompts=PromptRun(self),
            amd=amd.AmdRun(self),
            record=RecordRun(self),
            dial=DialRun(self),
            recorder=CallRecorder(self),
        )
        self.documents = DocumentRun(self, parts)
        self.lifecycle = Lifecycle(self, parts)
        self._progress = ProgressRun(self)
        self._reply_index = 0
        self._started = False
        #: when the script's ``hangup_after_ms`` ends the answered call
        self.hangup_after: float | None = None
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
        return self.parts.streams.open

    @property
    def dialled_leg(self) -> str | None:
        """The child call this call is bridged to by a running ``<Dial>``."""
        return self.parts.dial.bridged_to

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
            out = self.lifecycle.status_callbacks.due(now)
            out += self.fetch(now, Purpose.TWIML, self._url or "", self._method, ())
            return out
        return self._progress.begin(now)

    def timer_fired(self, name: str, token: int, now: float) -> list[SimAction]:
        if self.is_over or not self.parts.timers.take(name, token):
            return []
        if name == "progress":
            return self._progress.fired(now)
        if name == "verb":
            return self.verb_done(now)
        if name == "gather":
            return self.parts.gather.input_done(now)
        if name == "gather-partial":
            return self.parts.gather.partial_due(now)
        if name == "record":
            return self.parts.record.done(now)
        if name == "amd":
            return self.parts.amd.done(now)
        if name == "callee-hangup":
            self.record(now, "callee-hangup")
            return self.lifecycle.end(now, CallStatus.COMPLETED)
        if name == "time-limit":
            self.record(now, "time-limit", seconds=self.spec.time_limit)
            return self.lifecycle.end(now, CallStatus.COMPLETED)
        return []

    def http_response(
        self, request_id: int, status_code: int, body: bytes | str, now: float
    ) -> list[SimAction]:
        pending = self.parts.requests.answered(request_id)
        if pending is None or self.is_over:
            return []
        if not 200 <= status_code < 300:
            return self.lifecycle.app_error(
                now, 11200, f"HTTP {status_code} from {pending.purpose.value} {pending.url}"
            )
        return self.documents.load(now, body, pending.purpose.value, pending.url)

    def http_failed(self, request_id: int, reason: str, now: float) -> list[SimAction]:
        """The webhook could not be delivered (connect failure / timeout, after retries)."""
        pending = self.parts.requests.answered(request_id)
        if pending is None or self.is_over:
            return []
        code = 11205 if "connect" in reason.lower() else 11200
        return self.lifecycle.app_error(
            now, code, f"{pending.purpose.value} {pending.url}: {reason}"
        )

    def media_fetched(
        self, request_id: int, ulaw: bytes | None, now: float, error: str | None = None
    ) -> list[SimAction]:
        """The audio of a ``<Play>`` URL (8 kHz μ-law), or ``None`` and why it failed."""
        if self.is_over:
            return []
        return self.parts.prompts.media_fetched(request_id, ulaw, now, error)

    def hangup(self, now: float, requested: CallStatus) -> list[SimAction]:
        """REST update ``Status=completed|canceled``. Raises :class:`InvalidCallState`."""
        if requested not in (CallStatus.COMPLETED, CallStatus.CANCELED):
            raise ValueError("requested must be completed or canceled")
        if self.is_over:
            raise InvalidCallState(f"call is {self.status.value}")
        self.record(now, "rest-hangup", requested=requested.value)
        if self.status in PRE_ANSWER:
            return self.lifecycle.end(now, CallStatus.CANCELED)
        if requested is CallStatus.CANCELED:
            # Twilio: canceled only affects queued/ringing calls; an answered call goes on.
            return []
        return self.lifecycle.end(now, CallStatus.COMPLETED)

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
        out = self.documents.abandon(now, "redirected")
        if twiml is not None:
            return out + self.documents.load(now, twiml, "inline", None)
        return out + self.fetch(now, Purpose.TWIML, url or "", method, ())

    def stream_ended(self, stream_sid: str, now: float, reason: str = "closed") -> list[SimAction]:
        """The stream's WebSocket closed (either side) or could not be opened."""
        if self.is_over:
            return []
        return self.parts.streams.ended(now, stream_sid, reason)

    def leg_event(
        self, child_sid: str, event: str, status: CallStatus, duration: int, now: float
    ) -> list[SimAction]:
        """A ``<Dial>`` child call answered, was bridged, or ended."""
        if self.is_over:
            return [EndLeg(child_sid, "the caller is gone")] if event != "ended" else []
        return self.parts.dial.leg_event(now, child_sid, event, status, duration)

    def conference_ended(self, room: str, now: float, reason: str = "ended") -> list[SimAction]:
        """The call's conference room ended (or turned it away)."""
        if self.is_over:
            return []
        return self.parts.dial.conference_ended(now, room, reason)

    def script_failed(self, now: float, message: str) -> list[SimAction]:
        """The callee's script cannot play this call (e.g. it must hear a stream and speech
        recognition is missing): recorded as ``script-error``, the call ends ``failed``."""
        if self.is_over:
            return []
        self.script_error = message
        self.record(now, "script-error", message=message)
        return self.lifecycle.end(now, CallStatus.FAILED)

    def callee_update(self, now: float) -> list[SimAction]:
        """The callee was fed from outside (a Media Stream): record its notes, arm its hang-up."""
        if self.is_over:
            return []
        return self.callee_sync(now)

    # ------------------------------------------------------------------ helpers for verbs

    def new_request_id(self) -> int:
        return self.parts.requests.new_id()

    def prompt_cut(self, now: float) -> None:
        """A key stopped a ``<Gather>`` prompt: the rest of its prompts are skipped."""
        self.parts.gather.prompt_cut(now)

    def timer(self, name: str, at: float) -> StartTimer:
        return self.parts.timers.start(name, at)

    def resolve(self, url: str) -> str:
        base = self.document_url
        return urljoin(base, url) if base else url

    @property
    def document_url(self) -> str | None:
        doc = self.documents.current
        return doc.url if doc is not None else self._url

    def leave_document(self) -> None:
        """The document is done with (its action's TwiML will replace it)."""
        self.documents.current = None

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
        return [self.parts.requests.fetch(purpose, url, method, [*self.voice_params(), *extra])]

    def notify(
        self, purpose: Purpose, url: str, method: str, params: Sequence[tuple[str, str]]
    ) -> HttpRequest:
        """A webhook that expects no TwiML (callbacks)."""
        return self.parts.requests.notify(purpose, url, method, params)

    def callee_sync(self, now: float) -> list[SimAction]:
        """Record the callee's notes; (re)arm the timer for when it hangs up."""
        callee = self.callee
        if callee is not None:
            for note in callee.drain_notes(now):
                self.record(note.at, note.kind, **note.data)
        callee_at = None if callee is None else callee.hangup_at
        candidates = [t for t in (self.hangup_after, callee_at) if t is not None]
        at = min(candidates) if candidates else None
        if at == self._callee_hangup_armed or self.status in PRE_ANSWER:
            return []
        if at is None:  # the callee changed its mind (a key re-planned an IVR)
            self.parts.timers.cancel("callee-hangup")
            self._callee_hangup_armed = None
            return []
        self._callee_hangup_armed = at
        return [self.timer("callee-hangup", max(at, now))]

    # ------------------------------------------------------------------ lifecycle

    def first_document(self, now: float) -> list[SimAction]:
        if self.spec.direction is Direction.OUTBOUND_DIAL:
            if self._url is None:
                return self.lifecycle.bridge(now)
            return self.fetch(now, Purpose.TWIML, self._url, self._method, ())
        if self._twiml is not None:
            return self.documents.load(now, self._twiml, "inline", None)
        return self.fetch(now, Purpose.TWIML, self._url or "", self._method, ())

    # ------------------------------------------------------------------ documents

    def advance(self, now: float) -> list[SimAction]:
        """The current verb is done: run the next ones."""
        return self.documents.advance(now)

    def play_prompt(
        self, now: float, verb: Prompt, stop_at: float | None = None
    ) -> list[SimAction]:
        """Play ``verb`` to the callee; a ``verb`` timer fires when it is over."""
        return self.parts.prompts.play(now, verb, stop_at)

    def verb_done(self, now: float) -> list[SimAction]:
        return self.documents.verb_done(now)
