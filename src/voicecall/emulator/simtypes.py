"""The call simulator's vocabulary (pure): statuses, the call's spec, timing, and actions.

:class:`~voicecall.emulator.sim.CallSim` returns lists of these actions; the I/O layer
(:mod:`~voicecall.emulator.runtime`, or :mod:`~voicecall.emulator.vtime` in virtual time)
performs them and reports back:

* :class:`HttpRequest` - a webhook (TwiML expected back when ``purpose.expects_twiml``).
* :class:`StartTimer` - call ``timer_fired(name, token)`` at ``at``; stale tokens are ignored.
* :class:`OpenStream` / :class:`CloseStream` - Media Streams WebSockets.
* :class:`FetchMedia` - download a ``<Play>`` URL; answer with ``media_fetched``.
* :class:`StartLeg` / :class:`EndLeg` - a ``<Dial>`` child call to create / to hang up; the child
  reports its progress to its parent through :class:`LegEvent` actions (route them to
  ``parent.leg_event``).
* :class:`JoinConference` / :class:`LeaveConference` - ``<Dial><Conference>`` membership; when a
  room ends, tell its remaining members (``conference_ended``).
* :class:`RecordingReady` - a recording started or changed (serve it on the Recordings resource;
  ``status`` says whether it is ``in-progress``, ``completed`` or ``absent``).
* :class:`CallFinished` - the call reached a terminal status; nothing more will happen.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from voicecall.emulator.forms import Params
from voicecall.emulator.twiml import Conference, Stream

if TYPE_CHECKING:
    from voicecall.emulator.recording import Recording

__all__ = [
    "AMD_RESULTS",
    "API_VERSION",
    "PRE_ANSWER",
    "TERMINAL",
    "CallFinished",
    "CallSpec",
    "CallStatus",
    "CloseStream",
    "Direction",
    "EndLeg",
    "FetchMedia",
    "HeardItem",
    "HttpRequest",
    "InvalidCallState",
    "JoinConference",
    "LeaveConference",
    "LegEvent",
    "OpenStream",
    "Purpose",
    "RecordingReady",
    "SimAction",
    "SimConfig",
    "StartLeg",
    "StartTimer",
    "rfc2822",
]

API_VERSION = "2010-04-01"
AMD_RESULTS = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)


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
PRE_ANSWER = frozenset({CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING})

# Which status-callback event a status belongs to.
EVENT_OF: Mapping[CallStatus, str] = {
    CallStatus.INITIATED: "initiated",
    CallStatus.RINGING: "ringing",
    CallStatus.IN_PROGRESS: "answered",
    **{s: "completed" for s in TERMINAL},
}


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND_API = "outbound-api"
    OUTBOUND_DIAL = "outbound-dial"


class Purpose(StrEnum):
    STATUS_CALLBACK = "status-callback"
    TWIML = "twiml"  # Url of a created call / voice URL / REST update Url / <Number url> whisper
    GATHER_ACTION = "gather-action"
    REDIRECT = "redirect"
    CONNECT_ACTION = "connect-action"
    DIAL_ACTION = "dial-action"
    RECORD_ACTION = "record-action"
    AMD_STATUS = "amd-status"  # AsyncAmdStatusCallback
    RECORDING_STATUS = "recording-status"  # recordingStatusCallback / RecordingStatusCallback
    GATHER_PARTIAL = "gather-partial"  # <Gather partialResultCallback>: interim speech results

    @property
    def expects_twiml(self) -> bool:
        return self not in _NO_TWIML


_NO_TWIML = frozenset(
    {
        Purpose.STATUS_CALLBACK,
        Purpose.AMD_STATUS,
        Purpose.RECORDING_STATUS,
        Purpose.GATHER_PARTIAL,
    }
)


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
    initiate_delay: float = 0.05  # queued -> initiated
    ring_delay: float = 0.1  # initiated -> ringing
    speech_auto_endpoint: float = 0.8  # silence Twilio waits with speechTimeout="auto"
    dtmf_digit_seconds: float = 0.25
    ring_timeout_buffer: float = 5.0  # Twilio adds ~5 s to an API call's ring Timeout
    app_error_status: CallStatus = CallStatus.FAILED
    app_error_text: str = "We are sorry, an application error has occurred. Goodbye."
    api_base_url: str = "https://api.twilio.com"  # for RecordingUrl

    def __post_init__(self) -> None:
        if self.words_per_minute <= 0:
            raise ValueError("words_per_minute must be > 0")
        if self.app_error_status not in TERMINAL:
            raise ValueError("app_error_status must be a terminal status")
        if self.ring_timeout_buffer < 0:
            raise ValueError("ring_timeout_buffer must be >= 0")


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What the REST create request, an inbound dial, or a ``<Dial>`` asked for."""

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
    send_digits: str | None = None
    parent_call_sid: str | None = None
    # answering machine detection
    machine_detection: str | None = None  # Enable | DetectMessageEnd
    machine_detection_timeout: int = 30  # s
    machine_detection_speech_threshold: int = 2400  # ms
    machine_detection_speech_end_threshold: int = 1200  # ms
    machine_detection_silence_timeout: int = 5000  # ms
    async_amd: bool = False
    async_amd_status_callback: str | None = None
    async_amd_status_callback_method: str = "POST"
    # recording (Record=true)
    record: bool = False
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_events: frozenset[str] = frozenset({"completed"})
    recording_channels: str = "mono"
    recording_track: str = "both"

    def __post_init__(self) -> None:
        if self.direction is Direction.OUTBOUND_DIAL:
            if self.twiml is not None or self.parent_call_sid is None:
                raise ValueError("a dialled leg has a parent and at most a whisper url")
        elif (self.url is None) == (self.twiml is None):
            raise ValueError("exactly one of url and twiml")
        methods = {
            self.method,
            self.status_callback_method,
            self.async_amd_status_callback_method,
            self.recording_status_callback_method,
        }
        if not methods <= {"GET", "POST"}:
            raise ValueError("methods are GET or POST")
        if not 1 <= self.timeout <= 600:
            raise ValueError("timeout must be within 1..600")
        if self.time_limit < 1:
            raise ValueError("time_limit must be >= 1")
        unknown = self.status_callback_events - {"initiated", "ringing", "answered", "completed"}
        if unknown:
            raise ValueError(f"unknown status callback events {sorted(unknown)}")
        if self.machine_detection not in (None, "Enable", "DetectMessageEnd"):
            raise ValueError("machine_detection is Enable or DetectMessageEnd")
        if self.recording_channels not in {"mono", "dual"}:
            raise ValueError("recording_channels is mono or dual")
        if self.recording_track not in {"inbound", "outbound", "both"}:
            raise ValueError("recording_track is inbound, outbound or both")

    @property
    def amd(self) -> bool:
        """Machine detection runs (Twilio ignores it when SendDigits is given)."""
        return self.machine_detection is not None and not self.send_digits


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
class FetchMedia:
    request_id: int
    url: str


@dataclass(frozen=True, slots=True)
class StartLeg:
    """Create and start the child call ``sid`` (``spec.parent_call_sid`` is the caller)."""

    sid: str
    spec: CallSpec


@dataclass(frozen=True, slots=True)
class EndLeg:
    """Hang up (or cancel) the child call ``sid``."""

    sid: str
    reason: str


@dataclass(frozen=True, slots=True)
class LegEvent:
    """A child call tells its parent how it is going (route to ``parent.leg_event``)."""

    parent_sid: str
    child_sid: str
    event: str  # answered | bridged | ended
    status: CallStatus
    duration: int = 0


@dataclass(frozen=True, slots=True)
class JoinConference:
    room: str
    call_sid: str
    conference: Conference


@dataclass(frozen=True, slots=True)
class LeaveConference:
    room: str
    call_sid: str


@dataclass(frozen=True, slots=True)
class RecordingReady:
    recording: Recording


@dataclass(frozen=True, slots=True)
class CallFinished:
    status: CallStatus


SimAction = (
    HttpRequest
    | StartTimer
    | OpenStream
    | CloseStream
    | FetchMedia
    | StartLeg
    | EndLeg
    | LegEvent
    | JoinConference
    | LeaveConference
    | RecordingReady
    | CallFinished
)


@dataclass(slots=True)
class HeardItem:
    """Something the callee heard from the call (the app's side)."""

    start: float
    end: float
    kind: str  # say | play | digits | beep | app-error
    text: str
    voice: str | None = None
    language: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "text": self.text,
            "voice": self.voice,
            "language": self.language,
            **self.extra,
        }
