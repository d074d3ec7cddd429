"""The emulated call: a pure, sans-I/O simulator of one Twilio call.

``CallSim`` owns one call's state. Inputs are method calls carrying ``now`` (seconds, on the
emulator's clock, whose zero is the Unix epoch so timestamps can be printed); outputs are lists of
actions for the I/O layer to perform:

* :class:`HttpRequest` - send a webhook. ``purpose`` says whether a TwiML document is expected
  back (feed it with :meth:`CallSim.http_response` / :meth:`CallSim.http_failed`) or it is a
  status callback (fire and forget).
* :class:`StartTimer` - call :meth:`CallSim.timer_fired` with ``name`` and ``token`` at ``at``.
  A stale timer (token no longer current) is ignored, so timers are never cancelled explicitly.
* :class:`OpenStream` / :class:`CloseStream` - Media Streams WebSockets; report their end with
  :meth:`CallSim.stream_ended`.
* :class:`CallFinished` - the call reached a terminal status; nothing more will happen.

Lifecycle (outbound-api)::

    queued -> initiated -> ringing -> in-progress -> completed
                 |            |-> busy | no-answer (ring Timeout) | canceled (REST)
                 `-> failed

Inbound calls start ``ringing``; the voice URL is fetched with ``CallStatus=ringing``; a first
``<Reject>`` ends them ``busy`` (reason ``busy``) or ``no-answer`` (reason ``rejected``) without
answering; any other document answers them.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin

from voicecall.emulator.forms import Params
from voicecall.emulator.ids import IdSource
from voicecall.emulator.scripts import (
    DEFAULT_SCRIPT,
    CalleeScript,
    DigitsReply,
    Outcome,
    Reply,
    SilenceReply,
    SpeechReply,
)
from voicecall.emulator.twiml import (
    Connect,
    Gather,
    Hangup,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
    Start,
    Stop,
    Stream,
    TwimlError,
    Unsupported,
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
    "HttpRequest",
    "InvalidCallState",
    "OpenStream",
    "Purpose",
    "SimAction",
    "SimConfig",
    "StartTimer",
    "rfc2822",
]

API_VERSION = "2010-04-01"


class CallStatus(StrEnum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.FAILED,
        CallStatus.CANCELED,
    }
)
_PRE_ANSWER = frozenset({CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING})

# Which status-callback event a status belongs to.
_EVENT_OF: Mapping[CallStatus, str] = {
    CallStatus.INITIATED: "initiated",
    CallStatus.RINGING: "ringing",
    CallStatus.IN_PROGRESS: "answered",
    **{s: "completed" for s in TERMINAL},
}


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND_API = "outbound-api"


class Purpose(StrEnum):
    STATUS_CALLBACK = "status-callback"
    TWIML = "twiml"  # Url of a created call / voice URL of a number / REST update Url
    GATHER_ACTION = "gather-action"
    REDIRECT = "redirect"
    CONNECT_ACTION = "connect-action"

    @property
    def expects_twiml(self) -> bool:
        return self is not Purpose.STATUS_CALLBACK


class InvalidCallState(Exception):
    """The requested change is not allowed in the call's current status (Twilio 21220)."""


def rfc2822(ts: float) -> str:
    """``Fri, 08 Jan 2016 17:18:38 +0000``."""
    return email.utils.format_datetime(datetime.fromtimestamp(int(ts), UTC))


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Timing knobs (seconds unless named otherwise). Defaults are plausible, not measured."""

    words_per_minute: float = 150.0
    min_say_seconds: float = 0.3
    play_seconds: float = 2.0  # the emulator does not download <Play> audio
    initiate_delay: float = 0.05  # queued -> initiated
    ring_delay: float = 0.1  # initiated -> ringing
    speech_auto_endpoint: float = 0.8  # silence Twilio waits with speechTimeout="auto"
    dtmf_digit_seconds: float = 0.25
    app_error_status: CallStatus = CallStatus.FAILED
    app_error_text: str = "We are sorry, an application error has occurred. Goodbye."

    def __post_init__(self) -> None:
        if self.words_per_minute <= 0:
            raise ValueError("words_per_minute must be > 0")
        if self.app_error_status not in TERMINAL:
            raise ValueError("app_error_status must be a terminal status")


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What the REST create request (or an inbound dial) asked for."""

    to: str
    from_: str
    direction: Direction = Direction.OUTBOUND_API
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    timeout: int = 60
    time_limit: int = 14_400
    record: bool = False
    machine_detection: str | None = None
    send_digits: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.twiml is None):
            raise ValueError("exactly one of url and twiml")
        if self.method not in {"GET", "POST"} or self.status_callback_method not in {"GET", "POST"}:
            raise ValueError("methods are GET or POST")
        if not 1 <= self.timeout <= 600:
            raise ValueError("timeout must be within 1..600")
        if self.time_limit < 1:
            raise ValueError("time_limit must be >= 1")
        unknown = self.status_callback_events - {"initiated", "ringing", "answered", "completed"}
        if unknown:
            raise ValueError(f"unknown status callback events {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    request_id: int
    purpose: Purpose
    url: str
    method: str
    params: Params


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    token: int
    at: float


@dataclass(frozen=True, slots=True)
class OpenStream:
    stream_sid: str
    stream: Stream
    bidirectional: bool


@dataclass(frozen=True, slots=True)
class CloseStream:
    stream_sid: str
    reason: str


@dataclass(frozen=True, slots=True)
class CallFinished:
    status: CallStatus


SimAction = HttpRequest | StartTimer | OpenStream | CloseStream | CallFinished


@dataclass(slots=True)
class _Doc:
    verbs: tuple[Verb, ...]
    url: str | None  # where it came from (base for relative URLs, default Gather action)
    index: int = 0


@dataclass(slots=True)
class _GatherState:
    verb: Gather
    prompt_index: int = 0
    listening: bool = False
    result: tuple[tuple[str, str], ...] | None = None  # params to post, None = no input


@dataclass(slots=True)
class _Pending:
    purpose: Purpose
    url: str


@dataclass(slots=True)
class HeardItem:
    start: float
    end: float
    kind: str  # say | play | digits | app-error
    text: str
    voice: str | None = None
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "text": self.text,
            "voice": self.voice,
            "language": self.language,
        }


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
        self._ids = ids or IdSource()
        inbound = spec.direction is Direction.INBOUND
        self.status = CallStatus.RINGING if inbound else CallStatus.QUEUED
        self.date_created = now
        self.date_updated = now
        self.start_time: float | None = None
        self.answer_time: float | None = None
        self.end_time: float | None = None
        self.answered_by: str | None = None
        self.error: tuple[int, str] | None = None
        self.timeline: list[dict[str, Any]] = []
        self.heard: list[HeardItem] = []
        self.callee_inputs: list[dict[str, Any]] = []
        self.gather_posts: list[dict[str, Any]] = []
        self.streams: dict[str, OpenStream] = {}
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
        self._gather: _GatherState | None = None
        self._connect: tuple[str, Connect] | None = None
        self._reply_index = 0
        self._started = False
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
    def duration(self) -> int | None:
        if self.end_time is None:
            return None
        if self.answer_time is None:
            return 0
        return math.floor(self.end_time - self.answer_time + 0.5)

    def record(self, now: float, kind: str, **data: Any) -> None:
        """Append a timeline entry (the I/O layer adds its own: webhooks, REST requests)."""
        entry: dict[str, Any] = {"t": round(now - self.date_created, 6), "at": now, "kind": kind}
        entry.update(data)
        self.timeline.append(entry)

    def common_params(self) -> list[tuple[str, str]]:
        """The parameters on every voice request."""
        status = self.status
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.sid),
            ("CallStatus", status.value),
            ("Called", self.spec.to),
            ("Caller", self.spec.from_),
            ("Direction", self.spec.direction.value),
            ("From", self.spec.from_),
            ("To", self.spec.to),
        ]

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[SimAction]:
        """Begin the call (after the REST create response was produced, or on dial-in)."""
        if self._started:
            return []
        self._started = True
        if self.spec.direction is Direction.INBOUND:
            self.start_time = now
            out = self._status_callback(now)
            out += self._fetch(now, Purpose.TWIML, self._url or "", self._method, ())
            return out
        self._progress_step = "initiate"
        return [self._timer("progress", now + self.config.initiate_delay)]

    def timer_fired(self, name: str, token: int, now: float) -> list[SimAction]:
        if self.is_over or self._timers.get(name) != token:
            return []
        del self._timers[name]
        if name == "progress":
            return self._progress(now)
        if name == "verb":
            return self._verb_done(now)
        if name == "gather":
            return self._gather_input_done(now)
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

    def hangup(self, now: float, requested: CallStatus) -> list[SimAction]:
        """REST update ``Status=completed|canceled``. Raises :class:`InvalidCallState`."""
        if requested not in (CallStatus.COMPLETED, CallStatus.CANCELED):
            raise ValueError("requested must be completed or canceled")
        if self.is_over:
            raise InvalidCallState(f"call is {self.status.value}")
        self.record(now, "rest-hangup", requested=requested.value)
        if self.status in _PRE_ANSWER:
            return self._end(now, CallStatus.CANCELED)
        if requested is CallStatus.CANCELED:
            # Twilio: canceled only affects queued/ringing calls; an answered call goes on.
            return []
        return self._end(now, CallStatus.COMPLETED)

    def redirect(
        self, now: float, *, url: str | None = None, method: str = "POST", twiml: str | None = None
    ) -> list[SimAction]:
        """REST update with ``Url`` or ``Twiml``. Raises :class:`InvalidCallState`."""
        if (url is None) == (twiml is None):
            raise ValueError("exactly one of url and twiml")
        if self.is_over:
            raise InvalidCallState(f"call is {self.status.value}")
        self.record(now, "rest-redirect", url=url, twiml=twiml is not None)
        if self.status in _PRE_ANSWER and self.spec.direction is Direction.OUTBOUND_API:
            # Not answered yet: the new instructions are used at answer.
            self._url, self._method, self._twiml = url, method, twiml
            return []
        out = self._abandon_doc(now, "redirected")
        if twiml is not None:
            return out + self._inline(now, twiml)
        return out + self._fetch(now, Purpose.TWIML, url or "", method, ())

    def stream_ended(self, stream_sid: str, now: float, reason: str = "closed") -> list[SimAction]:
        """The stream's WebSocket closed (either side) or could not be opened."""
        opened = self.streams.pop(stream_sid, None)
        if opened is None or self.is_over:
            return []
        self.record(now, "stream-ended", stream_sid=stream_sid, reason=reason)
        if self._connect is not None and self._connect[0] == stream_sid:
            connect = self._connect[1]
            self._connect = None
            if connect.action:
                url = self._resolve(connect.action)
                return self._fetch(now, Purpose.CONNECT_ACTION, url, connect.method, ())
            return self._advance(now)
        return []

    # ------------------------------------------------------------------ lifecycle

    def _timer(self, name: str, at: float) -> StartTimer:
        self._timer_tokens += 1
        self._timers[name] = self._timer_tokens
        return StartTimer(name, self._timer_tokens, at)

    def _set_status(self, now: float, status: CallStatus) -> list[SimAction]:
        self.status = status
        self.date_updated = now
        self.record(now, "status", status=status.value)
        return self._status_callback(now)

    def _status_callback(self, now: float) -> list[SimAction]:
        spec = self.spec
        event = _EVENT_OF.get(self.status)
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
        if self.answered_by is not None:
            params.append(("AnsweredBy", self.answered_by))
        self._sequence += 1
        self._request_ids += 1
        return [
            HttpRequest(
                self._request_ids,
                Purpose.STATUS_CALLBACK,
                spec.status_callback,
                spec.status_callback_method,
                tuple(params),
            )
        ]

    def _progress(self, now: float) -> list[SimAction]:
        step = self._progress_step
        script = self.script
        if step == "initiate":
            self.start_time = now
            out = self._set_status(now, CallStatus.INITIATED)
            if script.outcome is Outcome.FAILED:
                return out + self._end(now, CallStatus.FAILED)
            self._progress_step = "ring"
            return [*out, self._timer("progress", now + self.config.ring_delay)]
        if step == "ring":
            out = self._set_status(now, CallStatus.RINGING)
            answer_after = script.answer_after_ms / 1000.0
            timeout = float(self.spec.timeout)
            if script.outcome is Outcome.ANSWER and answer_after < timeout:
                self._progress_step = "answer"
                return [*out, self._timer("progress", now + answer_after)]
            if script.outcome is Outcome.BUSY and answer_after < timeout:
                self._progress_step = "busy"
                return [*out, self._timer("progress", now + answer_after)]
            self._progress_step = "no-answer"
            return [*out, self._timer("progress", now + timeout)]
        if step == "busy":
            return self._end(now, CallStatus.BUSY)
        if step == "no-answer":
            return self._end(now, CallStatus.NO_ANSWER)
        if step == "answer":
            out = self._answer(now)
            if self._twiml is not None:
                return out + self._inline(now, self._twiml)
            return out + self._fetch(now, Purpose.TWIML, self._url or "", self._method, ())
        return []

    def _answer(self, now: float) -> list[SimAction]:
        self.answer_time = now
        if self.spec.machine_detection and not self.spec.send_digits:
            self.answered_by = self.script.answered_by
        out = self._set_status(now, CallStatus.IN_PROGRESS)
        if self.spec.send_digits:
            self.record(now, "send-digits", digits=self.spec.send_digits)
        if self.spec.record:
            self.record(now, "recording-started", note="emulator records nothing")
        if self.script.hangup_after_ms is not None:
            out.append(self._timer("callee-hangup", now + self.script.hangup_after_ms / 1000.0))
        out.append(self._timer("time-limit", now + self.spec.time_limit))
        return out

    def _end(self, now: float, status: CallStatus) -> list[SimAction]:
        out: list[SimAction] = []
        for stream_sid in list(self.streams):
            out.append(CloseStream(stream_sid, "call ended"))
        self.streams.clear()
        self._connect = None
        self._pending.clear()
        self._timers.clear()
        self._doc = None
        self._gather = None
        self.end_time = now
        if self.start_time is None:
            self.start_time = now
        out += self._set_status(now, status)
        out.append(CallFinished(status))
        return out

    def _app_error(self, now: float, code: int, message: str) -> list[SimAction]:
        self.error = (code, message)
        self.record(now, "error", code=code, message=message)
        if self.status is CallStatus.IN_PROGRESS:
            text = self.config.app_error_text
            self.heard.append(HeardItem(now, now + self._say_seconds(text), "app-error", text))
        return self._end(now, self.config.app_error_status)

    # ------------------------------------------------------------------ documents

    def _resolve(self, url: str) -> str:
        base = self._doc.url if self._doc is not None else self._url
        return urljoin(base, url) if base else url

    def _voice_params(self) -> list[tuple[str, str]]:
        params = self.common_params()
        if self.answered_by is not None:
            params.append(("AnsweredBy", self.answered_by))
        return params

    def _fetch(
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
        params = tuple(self._voice_params() + list(extra))
        return [HttpRequest(rid, purpose, url, method, params)]

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
        self._timers.pop("verb", None)
        self._timers.pop("gather", None)
        self._pending = {k: v for k, v in self._pending.items() if not v.purpose.expects_twiml}
        self._gather = None
        self._doc = None
        if self._connect is not None:
            sid = self._connect[0]
            self._connect = None
            if self.streams.pop(sid, None) is not None:
                out.append(CloseStream(sid, reason))
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
        self._gather = None
        return out + self._run(now)

    def _advance(self, now: float) -> list[SimAction]:
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
                self.record(now, "document-ended")
                return out + self._end(now, CallStatus.COMPLETED)
            verb = doc.verbs[doc.index]
            step = self._execute(now, verb)
            if step is None:
                doc.index += 1
                continue
            return out + step
        return out

    def _say_seconds(self, text: str) -> float:
        words = len(text.split())
        return max(self.config.min_say_seconds, words * 60.0 / self.config.words_per_minute)

    def _prompt(self, now: float, verb: Say | Play | Pause) -> float:
        """Play a prompt to the callee; return how long it takes."""
        if isinstance(verb, Say):
            one = self._say_seconds(verb.text)
            seconds = one * verb.loop
            for i in range(min(verb.loop, 20)):
                start = now + i * one
                item = HeardItem(start, start + one, "say", verb.text, verb.voice, verb.language)
                self.heard.append(item)
            self.record(
                now,
                "verb",
                verb="Say",
                text=verb.text,
                voice=verb.voice,
                language=verb.language,
                loop=verb.loop,
                seconds=seconds,
            )
            return seconds
        if isinstance(verb, Play):
            if verb.digits is not None:
                seconds = sum(
                    0.5 if d == "w" else self.config.dtmf_digit_seconds for d in verb.digits
                )
                self.heard.append(HeardItem(now, now + seconds, "digits", verb.digits))
            else:
                seconds = self.config.play_seconds * verb.loop
                self.heard.append(HeardItem(now, now + seconds, "play", verb.url))
            self.record(
                now,
                "verb",
                verb="Play",
                url=verb.url,
                digits=verb.digits,
                loop=verb.loop,
                seconds=seconds,
            )
            return seconds
        self.record(now, "verb", verb="Pause", seconds=verb.length)
        return verb.length

    def _execute(self, now: float, verb: Verb) -> list[SimAction] | None:
        """Start ``verb``; ``None`` means it finished at once (go on to the next)."""
        if isinstance(verb, Say | Play | Pause):
            seconds = self._prompt(now, verb)
            return [self._timer("verb", now + seconds)]
        if isinstance(verb, Gather):
            self._gather = _GatherState(verb)
            self.record(
                now,
                "verb",
                verb="Gather",
                input=sorted(verb.input),
                action=verb.action,
                timeout=verb.timeout,
                speech_timeout=verb.speech_timeout,
                num_digits=verb.num_digits,
            )
            return self._gather_step(now)
        if isinstance(verb, Hangup | Reject):
            name = type(verb).__name__
            self.record(now, "verb", verb=name)
            return self._end(now, CallStatus.COMPLETED)
        if isinstance(verb, Redirect):
            url = self._resolve(verb.url)
            self.record(now, "verb", verb="Redirect", url=url, method=verb.method)
            self._doc = None
            return self._fetch(now, Purpose.REDIRECT, url, verb.method, ())
        if isinstance(verb, Connect):
            if verb.stream is None:
                self.record(now, "unsupported", verb=f"Connect/{verb.other}")
                return None
            sid = self._ids.sid("MZ")
            opened = OpenStream(sid, verb.stream, bidirectional=True)
            self.streams[sid] = opened
            self._connect = (sid, verb)
            self.record(
                now,
                "verb",
                verb="Connect/Stream",
                stream_sid=sid,
                url=verb.stream.url,
                parameters=dict(verb.stream.parameters),
            )
            return [opened]
        if isinstance(verb, Start):
            sid = self._ids.sid("MZ")
            opened = OpenStream(sid, verb.stream, bidirectional=False)
            self.streams[sid] = opened
            self.record(
                now,
                "verb",
                verb="Start/Stream",
                stream_sid=sid,
                url=verb.stream.url,
                track=verb.stream.track.value,
                name=verb.stream.name,
            )
            # Not waiting for the socket: <Start> forks and TwiML goes on at once.
            out: list[SimAction] = [opened]
            if self._doc is not None:
                self._doc.index += 1
            return out + self._run(now)
        if isinstance(verb, Stop):
            self.record(now, "verb", verb="Stop/Stream", name=verb.stream_name)
            closes: list[SimAction] = []
            for sid, opened in list(self.streams.items()):
                if opened.bidirectional:
                    continue
                if verb.stream_name is None or opened.stream.name == verb.stream_name:
                    del self.streams[sid]
                    closes.append(CloseStream(sid, "stopped by <Stop>"))
            if self._doc is not None:
                self._doc.index += 1
            return closes + self._run(now)
        if isinstance(verb, Unsupported):
            self.record(now, "unsupported", verb=verb.name)
            return None
        raise AssertionError(f"unhandled verb {verb!r}")  # pragma: no cover

    def _verb_done(self, now: float) -> list[SimAction]:
        if self._gather is not None:
            self._gather.prompt_index += 1
            return self._gather_step(now)
        return self._advance(now)

    # ------------------------------------------------------------------ gather

    def _next_reply(self) -> Reply:
        replies = self.script.replies
        if self._reply_index < len(replies):
            reply = replies[self._reply_index]
            self._reply_index += 1
            return reply
        return SilenceReply()

    def _gather_step(self, now: float) -> list[SimAction]:
        state = self._gather
        assert state is not None
        verb = state.verb
        if state.prompt_index < len(verb.prompts):
            seconds = self._prompt(now, verb.prompts[state.prompt_index])
            return [self._timer("verb", now + seconds)]
        # Prompts done: the callee answers (or not).
        state.listening = True
        reply = self._next_reply()
        delay = self.script.reply_delay_ms / 1000.0
        if isinstance(reply, SpeechReply) and "speech" in verb.input:
            start = now + delay
            wav_seconds = reply.seconds
            end = start + (self._say_seconds(reply.text) if wav_seconds is None else wav_seconds)
            tail = verb.speech_timeout
            tail = self.config.speech_auto_endpoint if tail is None else tail
            self.callee_inputs.append({"start": start, "end": end, "speech": reply.text})
            extra = {"wav": reply.wav} if reply.wav is not None else {}
            self.record(now, "callee-speech", start=start, end=end, text=reply.text, **extra)
            if not reply.text:  # a recording without a transcript: nothing recognised
                state.result = None
            else:
                state.result = (
                    ("SpeechResult", reply.text),
                    ("Confidence", f"{reply.confidence:.8f}".rstrip("0").rstrip(".") or "0"),
                )
            return [self._timer("gather", end + tail)]
        if isinstance(reply, DigitsReply) and "dtmf" in verb.input:
            return self._gather_digits(now + delay, reply.digits, verb)
        if not isinstance(reply, SilenceReply):
            # Said something the Gather was not listening for (speech to a dtmf-only Gather...).
            self.record(now, "callee-ignored-input", reply=repr(reply), input=sorted(verb.input))
        state.result = None
        return [self._timer("gather", now + verb.timeout)]

    def _gather_digits(self, start: float, digits: str, verb: Gather) -> list[SimAction]:
        state = self._gather
        assert state is not None
        t = start
        collected = ""
        for d in digits:
            t += 0.5 if d == "w" else self.config.dtmf_digit_seconds
            if d == "w":
                continue
            if verb.finish_on_key and d == verb.finish_on_key:
                break
            collected += d
            if verb.num_digits is not None and len(collected) >= verb.num_digits:
                break
        else:
            t += verb.timeout  # no terminator: Twilio waits `timeout` for another digit
        self.callee_inputs.append({"start": start, "end": t, "digits": digits})
        self.record(start, "callee-digits", digits=digits, collected=collected)
        state.result = (("Digits", collected),) if collected else None
        return [self._timer("gather", t)]

    def _gather_input_done(self, now: float) -> list[SimAction]:
        state = self._gather
        if state is None:
            return []
        self._gather = None
        verb = state.verb
        if state.result is None and not verb.action_on_empty_result:
            self.record(now, "gather-no-input")
            return self._advance(now)
        base = self._doc.url if self._doc is not None else self._url
        target = self._resolve(verb.action) if verb.action else base
        if not target:
            self.record(now, "gather-no-action-url", note="inline TwiML and no action")
            return self._advance(now)
        extra = list(state.result or ())
        self.gather_posts.append({"at": now, "url": target, "params": dict(extra)})
        self.record(now, "gather-result", url=target, **{k: v for k, v in extra})
        self._doc = None
        return self._fetch(now, Purpose.GATHER_ACTION, target, verb.method, extra)
