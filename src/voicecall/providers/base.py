"""The small provider interface the call manager sees.

A provider turns the manager's provider-neutral *replies* (say this then hang up, ask this and
listen, reject…) into its own markup, verifies and parses its own webhooks into normalized
:class:`~voicecall.events.CallEvent` values, and performs the few REST operations a call needs.
Twilio is the first provider; Telnyx and Plivo fit the same shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from voicecall.calls.model import EndReason
from voicecall.errors import ProviderError
from voicecall.events import CallEvent

# --------------------------------------------------------------------------- replies (intents)


@dataclass(frozen=True, slots=True)
class Listen:
    """Where a caller's next utterance must be posted: the turn and its one-time token."""

    call_id: str
    turn: int
    token: str
    timeout_seconds: int = 10


@dataclass(frozen=True, slots=True)
class DialOut:
    """Connect the call to ``to`` (a transfer). ``whisper``: ``(call_id, seq, token)`` of a warm
    transfer: the target first fetches the whisper webhook (it hears the summary), and when the
    dial is over the provider posts the dial webhook with the same routing (its result); a cold
    transfer has neither."""

    to: str
    caller_id: str
    timeout_seconds: int = 30
    whisper: tuple[str, int, str] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the provider to do next on a call, provider-neutral.

    ``say`` is spoken first (if any); then exactly one of: ``listen`` for the caller's answer,
    ``stream`` (connect the media stream with ``stream_token``), ``hangup``, ``reject`` (inbound
    only, instead of answering), or nothing (``hold``: keep the line open for the next
    instruction, e.g. while the agent thinks).
    """

    say: str | None = None
    pause_after_seconds: float = 0.0
    listen: Listen | None = None
    hangup: bool = False
    reject: bool = False
    hold_call_id: str | None = None
    stream_call_id: str | None = None
    stream_token: str | None = None
    voice: str | None = None
    language: str | None = None
    #: ``(call_id, seq)``: ``say`` is this stored transcript line; a provider that cannot send
    #: the whole reply inline may have the call fetch it from the webhook (``kind=line``)
    line: tuple[str, int] | None = None
    #: keys to press first (``<Play digits>``: 0-9 * # w), then ``listen`` as usual
    digits: str | None = None
    #: connect the call to another number (a transfer); nothing else is said or done
    dial: DialOut | None = None

    @staticmethod
    def empty() -> Reply:
        return Reply()


# ----------------------------------------------------------------------------- webhooks


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An inbound webhook as the server saw it; ``url`` is already the public URL the provider
    signed (rebuilt from ``public_url`` or trusted proxy headers)."""

    method: str
    url: str
    query_string: str  # raw, as received (it is part of what the provider signed)
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class WebhookKind(StrEnum):
    VOICE = "voice"  # the provider asks what to do (TwiML fetch)
    STATUS = "status"  # a call-progress callback; the answer's body is ignored
    GATHER = "gather"  # a speech / DTMF result for a turn
    HOLD = "hold"  # a keep-alive redirect while the bot has nothing to say
    PARTIAL = "partial"  # a <Gather>'s partial speech result: the caller is talking
    LINE = "line"  # the provider fetches a stored bot line (too long to send inline)
    AMD = "amd"  # answering-machine detection's verdict (``answered_by``)
    RECORDING = "recording"  # a recording's status (the call's recording is ready, or absent)
    WHISPER = "whisper"  # a warm transfer's target answered: what it hears first (the summary)
    DIAL = "dial"  # a transfer's dial is over: ``dial_status`` says how


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """A provider's recording status callback: its recording of a call."""

    sid: str
    status: str  # in-progress | completed | absent | failed
    dedupe_key: str
    url: str | None = None
    duration_seconds: float | None = None
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    kind: WebhookKind
    provider_call_id: str
    call_id: str | None
    events: tuple[CallEvent, ...]
    inbound: bool
    from_number: str | None
    to_number: str | None
    turn: int | None = None
    token: str | None = None
    answered_by: str | None = None
    #: ``kind=line``: the transcript line to say and what follows it (listen, hold, hangup);
    #: ``kind=hold``: the line said by a call update that was just heard, if the hold follows one
    line_seq: int | None = None
    then: str | None = None
    #: ``kind=recording``: the provider's recording of the call
    recording: RecordingInfo | None = None
    #: ``kind=dial``: how the dial ended (``completed``, ``busy``, ``no-answer``, ``failed``,
    #: ``canceled``) and the dialled leg's call id
    dial_status: str | None = None
    dial_call_sid: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    status: int
    body: bytes
    content_type: str = "application/xml"


# ----------------------------------------------------------------------------- REST side


@dataclass(frozen=True, slots=True)
class DialRequest:
    call_id: str
    to: str
    from_: str
    ring_timeout_seconds: int
    time_limit_seconds: int | None = None
    #: answering-machine detection: ``None`` (off) or "DetectMessageEnd", verdict posted to our
    #: ``kind=amd`` webhook (async: the call's TwiML runs meanwhile)
    machine_detection: str | None = None
    #: the provider records the call (its recording status callback comes back signed)
    record: bool = False


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """The provider's view of a call: ``live`` or ended with ``end_reason``."""

    live: bool
    end_reason: EndReason | None = None
    answered: bool = False
    raw_status: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Provider(ABC):
    name: str
    #: the (lower-case) header carrying the webhook signature; requests without it are refused
    #: before their body is read
    signature_header: str
    #: the media type webhook bodies must declare (``Content-Type``, parameters aside); any
    #: other (or none) is refused with 415 before the body is read
    webhook_media_type: str
    #: a bot line said by :meth:`redirect` with ``hold`` after it is followed by a ``HOLD``
    #: webhook naming the line (``line_seq``) once it was heard; the next line update then waits
    #: for it (calls/lineorder.py). A provider that cannot tell leaves this ``False``.
    reports_lines_heard: bool = False

    # webhooks (pure)
    @abstractmethod
    def verify_webhook(self, request: HttpRequest) -> None:
        """Raise :class:`~voicecall.errors.WebhookRejected` (401 missing / 403 forged)."""

    @abstractmethod
    def parse_webhook(self, request: HttpRequest) -> ParsedWebhook:
        """Raise :class:`~voicecall.errors.WebhookRejected` (400) on malformed input."""

    def read_webhook(self, request: HttpRequest) -> ParsedWebhook:
        """Verify, then parse (providers may override to share work between the two)."""
        self.verify_webhook(request)
        return self.parse_webhook(request)

    @abstractmethod
    def render(self, reply: Reply) -> ProviderResponse: ...

    # REST (I/O)
    @abstractmethod
    async def initiate(self, request: DialRequest) -> str:
        """Place the call; return the provider's call id."""

    @abstractmethod
    async def hangup(self, provider_call_id: str) -> bool:
        """End the call. ``False`` when it was already over (idempotent, never raises for that)."""

    @abstractmethod
    async def redirect(self, provider_call_id: str, reply: Reply) -> None:
        """Replace what a live call is doing with ``reply`` (say, listen, hang up)."""

    @abstractmethod
    async def fetch_status(self, provider_call_id: str) -> RemoteStatus: ...

    async def recording_audio(self, recording_sid: str) -> bytes:
        """The provider's recording (``DialRequest.record``) as WAV bytes."""
        raise ProviderError(f"{self.name} keeps no recordings")

    async def delete_recording(self, recording_sid: str) -> bool:
        """Delete the provider's recording; ``False`` when it was already gone."""
        raise ProviderError(f"{self.name} keeps no recordings")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources (the shared HTTP client is owned by the app, not the provider)."""
