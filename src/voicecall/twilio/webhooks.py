"""Twilio voice webhooks: typed requests and normalized events (the strict form parser is
:mod:`voicecall.twilio.forms`). Pure.

Three kinds of request reach voicecall, told apart by query parameters *we* put in the URL
(they are part of the signed URL, hence signed; see :func:`build_webhook_url`):

* ``kind=voice`` (or no ``kind``): Twilio fetches TwiML (call answered, or an inbound call).
* ``kind=status``: a status callback (``CallbackSource=call-progress-events``).
* ``kind=gather``: a ``<Gather>`` action with ``turn=<n>&tok=<turn token>``.
* ``kind=hold``: a keep-alive ``<Redirect>`` while the bot has nothing new to say (no event).
* ``kind=partial``: a ``<Gather>`` ``partialResultCallback`` with ``turn``/``tok`` (no event:
  it only tells the manager the caller has started an utterance on that turn).
* ``kind=amd``: the ``AsyncAmdStatusCallback`` of answering-machine detection (``AnsweredBy``,
  ``MachineDetectionDuration``; no ``CallStatus``): one AMD event.
* ``kind=recording``: a ``RecordingStatusCallback`` (``Record=true`` on create): the call's
  recording (``RecordingSid``, ``RecordingUrl``, ``RecordingStatus``, ``RecordingDuration``,
  ``RecordingChannels``); it carries no ``CallStatus``. No call event: its dedupe key is
  ``twilio:{CallSid}:recording:{RecordingSid}:{RecordingStatus}``.
* ``kind=line``: Twilio fetching a stored bot line (``seq``) and what follows it (``then``:
  ``listen``, ``hold`` or ``hangup``) — the redirect of a line whose TwiML is too long to
  send inline (Twilio's ``Twiml`` parameter holds 4,000 characters). No event.
* ``kind=whisper``: a warm transfer's ``<Number url>``: the dialled party answered and fetches
  what it hears first. ``CallSid`` is the *dialled leg's*; ``turn``/``tok`` name the transfer.
  No event (the transfer code answers it).
* ``kind=dial``: a transfer's ``<Dial action>`` with ``DialCallStatus``, ``DialCallSid``;
  ``turn``/``tok`` name the transfer. No event (deduplicated by the transfer code on
  ``twilio:{CallSid}:dial:{turn}:{tok}``).

Untrusted input never raises anything but :class:`~voicecall.errors.WebhookRejected` (HTTP 400).

Event mapping (:func:`to_events`), decided here and relied on by the call manager:

==========  ==============================  ====================================================
kind        CallStatus                      events
==========  ==============================  ====================================================
status      queued                          none (nothing happened yet worth a transition)
status      initiated / ringing             INITIATED / RINGING
status      in-progress                     ANSWERED (``answered_by`` carried: ``machine_*``
                                            lets the manager end the call as voicemail)
status      completed/busy/no-answer/       ENDED with end_reason completed / busy / no-answer /
            failed/canceled                 failed / canceled (``duration_seconds`` if sent)
voice       ringing                         RINGING (an inbound call: ``call_id`` is None)
voice       in-progress                     ANSWERED (outbound call answered, TwiML fetched)
voice       anything else                   none
amd         (none sent)                     AMD with ``answered_by`` (one of Twilio's words)
gather      (any)                           SPEECH if SpeechResult is non-blank, else DTMF if
                                            Digits is non-empty, else none; with ``turn``
==========  ==============================  ====================================================

Dedupe keys come only from signed material (CallSid, CallStatus, SequenceNumber, our query
parameters), never from ``I-Twilio-Idempotency-Token`` (unsigned) or randomness::

    twilio:{CallSid}:status:{SequenceNumber or "_"}:{CallStatus}
    twilio:{CallSid}:voice:{CallStatus}
    twilio:{CallSid}:gather:{turn}:{tok}:{digest of SpeechResult and Digits}
    twilio:{CallSid}:amd:{AnsweredBy}

(A redelivery carries the same words; a second run of the same ``<Gather>`` — a redirect that
timed out but reached Twilio — may hear new ones, which are kept, never taken for a duplicate.)

A voice fetch and the ``answered`` status callback both yield ANSWERED under different keys;
the state machine treats a repeated ANSWERED as a no-op.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import quote

from voicecall.calls.model import Direction, EndReason
from voicecall.errors import WebhookRejected
from voicecall.events import CallEvent, EventKind
from voicecall.textrules import caller_text
from voicecall.twilio.forms import (
    MAX_FORM_FIELDS,
    parse_form,
    parse_query,
)

__all__ = [
    "CALL_SID_RE",
    "MAX_FORM_FIELDS",
    "MAX_SPEECH_CHARS",
    "RECORDING_STATUSES",
    "CallDirection",
    "CallStatus",
    "WebhookKind",
    "WebhookRequest",
    "build_webhook_url",
    "parse_form",
    "parse_query",
    "parse_webhook",
    "to_events",
]

MAX_SPEECH_CHARS = 8192  # SpeechResult
MAX_FIELD_CHARS = 512  # every other text field we read
MAX_DIGITS_CHARS = 128
MAX_TOKEN_CHARS = 256

CALL_SID_RE = re.compile(r"CA[0-9a-f]{32}")
_ACCOUNT_SID_RE = re.compile(r"AC[0-9a-f]{32}")
_CALL_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.~-]{1,256}")
_UINT_RE = re.compile(r"[0-9]{1,9}")
_DIGITS_RE = re.compile(r"[0-9*#]*")


class WebhookKind(StrEnum):
    VOICE = "voice"
    STATUS = "status"
    GATHER = "gather"
    HOLD = "hold"  # a keep-alive <Redirect> while the bot has nothing new to say: no event
    PARTIAL = "partial"  # a <Gather> partialResultCallback: the caller is talking; no event
    LINE = "line"  # fetch of a bot line too long to send inline (``seq``, ``then``); no event
    AMD = "amd"  # the AsyncAmdStatusCallback: AnsweredBy (no CallStatus)
    RECORDING = "recording"  # a RecordingStatusCallback: the call's recording; no call event
    WHISPER = "whisper"  # a warm transfer's target leg fetches its whisper (``turn``, ``tok``)
    DIAL = "dial"  # a transfer's <Dial action>: DialCallStatus (``turn``, ``tok``)


#: Twilio's ``AnsweredBy`` words
ANSWERED_BY = frozenset(
    {
        "human",
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_other",
        "fax",
        "unknown",
    }
)


#: what ``RecordingStatus`` may say
RECORDING_STATUSES = frozenset({"in-progress", "completed", "absent", "failed"})
RECORDING_SID_RE = re.compile(r"RE[0-9a-f]{32}")


#: the kinds whose URL names a turn (or a transfer) with its token
_TURN_KINDS = frozenset(
    {WebhookKind.GATHER, WebhookKind.PARTIAL, WebhookKind.WHISPER, WebhookKind.DIAL}
)
#: ``DialCallStatus`` values (Twilio)
DIAL_STATUSES = frozenset({"completed", "answered", "busy", "no-answer", "failed", "canceled"})

#: what follows a bot line fetched with ``kind=line``
LINE_THEN = frozenset({"listen", "hold", "hangup"})


class CallStatus(StrEnum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND_API = "outbound-api"
    OUTBOUND_DIAL = "outbound-dial"

    @property
    def normalized(self) -> Direction:
        return Direction.INBOUND if self is CallDirection.INBOUND else Direction.OUTBOUND


_END_REASONS: dict[CallStatus, EndReason] = {
    CallStatus.COMPLETED: EndReason.COMPLETED,
    CallStatus.BUSY: EndReason.BUSY,
    CallStatus.NO_ANSWER: EndReason.NO_ANSWER,
    CallStatus.FAILED: EndReason.FAILED,
    CallStatus.CANCELED: EndReason.CANCELED,
}
_STATUS_EVENTS: dict[CallStatus, EventKind] = {
    CallStatus.INITIATED: EventKind.INITIATED,
    CallStatus.RINGING: EventKind.RINGING,
    CallStatus.IN_PROGRESS: EventKind.ANSWERED,
    **dict.fromkeys(_END_REASONS, EventKind.ENDED),
}
_VOICE_EVENTS: dict[CallStatus, EventKind] = {
    CallStatus.RINGING: EventKind.RINGING,
    CallStatus.IN_PROGRESS: EventKind.ANSWERED,
}


def _reject(message: str) -> WebhookRejected:
    return WebhookRejected(message, http_status=400)


# -- our webhook URLs -----------------------------------------------------------------------------


def build_webhook_url(
    base_url: str,
    *,
    call_id: str | None,
    kind: str,
    turn: int | None = None,
    token: str | None = None,
    seq: int | None = None,
    then: str | None = None,
) -> str:
    """``base_url`` plus our signed routing parameters, in a fixed (alphabetical) order.

    Parameters are emitted in byte order (``callId``, ``kind``, ``seq``, ``then``, ``tok``,
    ``turn``): Twilio has
    been seen to re-sort query parameters before requesting a URL, and a sorted URL is immune
    to that. A fragment on ``base_url`` (Twilio's ``#rc=…`` retry settings) stays at the end.
    """
    webhook_kind = WebhookKind(kind)
    if call_id is not None and not _CALL_ID_RE.fullmatch(call_id):
        raise ValueError("call_id must match [A-Za-z0-9_.-]{1,128}")
    if (turn is None) != (token is None):
        raise ValueError("turn and token go together")
    if webhook_kind in _TURN_KINDS and turn is None:
        raise ValueError(f"a {webhook_kind.value} URL needs turn and token")
    if turn is not None and turn < 0:
        raise ValueError("turn must be >= 0")
    if token is not None and not _TOKEN_RE.fullmatch(token):
        raise ValueError("token must match [A-Za-z0-9_.~-]{1,256}")
    if webhook_kind is WebhookKind.LINE and (call_id is None or seq is None or then is None):
        raise ValueError("a line URL needs call_id, seq and then")
    if seq is not None and seq < 0:
        raise ValueError("seq must be >= 0")
    if then is not None and then not in LINE_THEN:
        raise ValueError(f"then must be one of {sorted(LINE_THEN)}")
    params: list[tuple[str, str]] = []
    if call_id is not None:
        params.append(("callId", call_id))
    params.append(("kind", webhook_kind.value))
    if seq is not None:
        params.append(("seq", str(seq)))
    if then is not None:
        params.append(("then", then))
    if token is not None and turn is not None:
        params.append(("tok", token))
        params.append(("turn", str(turn)))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    head, hash_, fragment = base_url.partition("#")
    sep = "&" if "?" in head else "?"
    if head.endswith(("?", "&")):
        sep = ""
    return f"{head}{sep}{query}{hash_}{fragment}"


# -- the typed request ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A parsed Twilio voice webhook. Build it with :func:`parse_webhook`."""

    kind: WebhookKind
    call_sid: str
    call_status: CallStatus | None  # None only on kind=recording (those carry none)
    call_id: str | None = None
    turn: int | None = None
    turn_token: str | None = None
    account_sid: str | None = None
    direction: CallDirection | None = None
    from_: str | None = None
    to: str | None = None
    caller: str | None = None
    called: str | None = None
    sequence_number: int | None = None
    timestamp: float | None = None
    call_duration: int | None = None
    answered_by: str | None = None
    line_seq: int | None = None
    then: str | None = None
    speech_result: str | None = None
    confidence: float | None = None
    digits: str | None = None
    callback_source: str | None = None
    recording_sid: str | None = None
    recording_url: str | None = None
    recording_status: str | None = None
    recording_duration: int | None = None
    recording_channels: int | None = None
    dial_call_status: str | None = None
    dial_call_sid: str | None = None


class _Fields:
    """Single-valued access to a multi-dict: a name repeated with different values is refused."""

    def __init__(self, pairs: Sequence[tuple[str, str]], where: str) -> None:
        self._where = where
        self._values: dict[str, str] = dict(pairs)
        if len(self._values) == len(pairs):  # no name repeated (the usual case)
            return
        self._values = {}
        for name, value in pairs:
            previous = self._values.setdefault(name, value)
            if previous != value:
                raise _reject(f"{where} field {name} repeated with different values")

    def text(self, name: str, *, limit: int = MAX_FIELD_CHARS) -> str | None:
        value = self._values.get(name)
        if value is not None and len(value) > limit:
            raise _reject(f"{self._where} field {name} longer than {limit} characters")
        return value

    def label(self, name: str) -> str | None:
        """A short label (a number, ``AnsweredBy``): any control character is refused (400)."""
        value = self.text(name)
        if value is not None and not value.isprintable():
            raise _reject(f"{self._where} field {name} contains a control character")
        return value

    def said(self, name: str, *, limit: int) -> str | None:
        """What a caller said (``SpeechResult``, ``Digits``): control characters stripped, never
        refused for them (a refusal would fail every retry and drop what was said)."""
        value = self.text(name, limit=limit)
        return None if value is None else caller_text(value)

    def uint(self, name: str) -> int | None:
        value = self.text(name)
        if value is None or value == "":
            return None
        if not _UINT_RE.fullmatch(value):
            raise _reject(f"{self._where} field {name} is not a non-negative integer")
        return int(value)


# The form Twilio sends ("Fri, 08 Jan 2016 17:18:38 +0000"), read without the general
# RFC 2822 parser; anything else (other zones, layouts, invalid dates) takes the general path.
_UTC_TIMESTAMP_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([1-9][0-9]{3}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) [+-]0000"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def _parse_timestamp(value: str | None) -> float | None:
    if not value:
        return None
    match = _UTC_TIMESTAMP_RE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=UTC,
            ).timestamp()
        except ValueError:
            pass  # e.g. 31 Feb: the general parser decides (it refuses it too)
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000": UTC with the zone unknown; never local time
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _parse_confidence(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise _reject("Confidence is not a number") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise _reject("Confidence is not within 0..1")
    return number


def parse_webhook(
    query: Sequence[tuple[str, str]], form: Sequence[tuple[str, str]]
) -> WebhookRequest:
    """Validate and type one webhook from its (verified) query and form parameters.

    Raises only :class:`WebhookRejected` (400): bad ``CallSid``, unknown ``CallStatus`` or
    ``Direction``, non-numeric ``SequenceNumber``/``CallDuration``, a field over its size cap,
    a gather request without ``turn``/``tok``, or a routing parameter that is malformed.
    An unparsable ``Timestamp`` becomes ``None`` (it only orders, it never decides).
    """
    q = _Fields(query, "query")
    f = _Fields(form, "form")

    kind_raw = q.text("kind")
    try:
        kind = WebhookKind(kind_raw) if kind_raw else WebhookKind.VOICE
    except ValueError:
        raise _reject("unknown webhook kind") from None

    call_id = q.text("callId")
    if call_id is not None and not _CALL_ID_RE.fullmatch(call_id):
        raise _reject("malformed callId")
    turn = q.uint("turn")
    turn_token = q.text("tok", limit=MAX_TOKEN_CHARS)
    if turn_token is not None and not _TOKEN_RE.fullmatch(turn_token):
        raise _reject("malformed turn token")
    if kind in _TURN_KINDS and (turn is None or turn_token is None):
        raise _reject(f"{kind.value} webhook without turn and tok")
    line_seq = q.uint("seq")
    then = q.text("then")
    if then is not None and then not in LINE_THEN:
        raise _reject("unknown then")
    if kind is WebhookKind.LINE and (call_id is None or line_seq is None or then is None):
        raise _reject("line webhook without callId, seq and then")

    call_sid = f.text("CallSid")
    if call_sid is None or not CALL_SID_RE.fullmatch(call_sid):
        raise _reject("missing or malformed CallSid")
    status_raw = f.text("CallStatus")
    call_status: CallStatus | None = None
    if kind is WebhookKind.AMD and status_raw is None:
        status_raw = CallStatus.IN_PROGRESS.value  # the AMD callback carries no CallStatus
    if kind is not WebhookKind.RECORDING or status_raw is not None:
        try:
            call_status = CallStatus(status_raw or "")
        except ValueError:
            raise _reject("missing or unknown CallStatus") from None
    answered_by = f.label("AnsweredBy")
    if answered_by is not None and answered_by not in ANSWERED_BY:
        if kind is WebhookKind.AMD:
            raise _reject("unknown AnsweredBy")
        answered_by = None  # a status callback is never refused for a word we do not know
    if kind is WebhookKind.AMD and answered_by is None:
        raise _reject("amd webhook without AnsweredBy")
    recording_sid = f.text("RecordingSid")
    recording_status = f.text("RecordingStatus")
    if kind is WebhookKind.RECORDING:
        if call_id is None:
            raise _reject("recording webhook without callId")
        if recording_sid is None or not RECORDING_SID_RE.fullmatch(recording_sid):
            raise _reject("missing or malformed RecordingSid")
        if recording_status not in RECORDING_STATUSES:
            raise _reject("missing or unknown RecordingStatus")
    # "-1": Twilio's "no duration" (absent, failed)
    no_duration = f.text("RecordingDuration") == "-1"
    account_sid = f.text("AccountSid")
    if account_sid is not None and not _ACCOUNT_SID_RE.fullmatch(account_sid):
        raise _reject("malformed AccountSid")
    direction_raw = f.text("Direction")
    try:
        direction = CallDirection(direction_raw) if direction_raw else None
    except ValueError:
        raise _reject("unknown Direction") from None
    digits = f.said("Digits", limit=MAX_DIGITS_CHARS)
    if digits is not None and not _DIGITS_RE.fullmatch(digits):
        raise _reject("Digits contains characters other than 0-9 * #")
    dial_status = f.text("DialCallStatus") or None
    if dial_status is not None and dial_status not in DIAL_STATUSES:
        raise _reject("unknown DialCallStatus")
    dial_sid = f.text("DialCallSid") or None
    if dial_sid is not None and not CALL_SID_RE.fullmatch(dial_sid):
        raise _reject("malformed DialCallSid")
    if kind is WebhookKind.DIAL and dial_status is None:
        raise _reject("dial webhook without DialCallStatus")

    return WebhookRequest(
        kind=kind,
        call_sid=call_sid,
        call_status=call_status,
        call_id=call_id,
        turn=turn,
        turn_token=turn_token,
        account_sid=account_sid,
        direction=direction,
        from_=f.label("From"),
        to=f.label("To"),
        caller=f.label("Caller"),
        called=f.label("Called"),
        sequence_number=f.uint("SequenceNumber"),
        timestamp=_parse_timestamp(f.text("Timestamp")),
        call_duration=f.uint("CallDuration"),
        answered_by=answered_by,
        line_seq=line_seq,
        then=then,
        speech_result=f.said("SpeechResult", limit=MAX_SPEECH_CHARS),
        confidence=_parse_confidence(f.text("Confidence")),
        digits=digits,
        callback_source=f.label("CallbackSource"),
        recording_sid=recording_sid,
        recording_url=f.text("RecordingUrl"),
        recording_status=recording_status,
        recording_duration=None if no_duration else f.uint("RecordingDuration"),
        recording_channels=f.uint("RecordingChannels"),
        dial_call_status=dial_status,
        dial_call_sid=dial_sid,
    )


# -- normalized events ----------------------------------------------------------------------------


def _event(
    req: WebhookRequest,
    kind: EventKind,
    dedupe_key: str,
    *,
    end_reason: EndReason | None = None,
    duration_seconds: int | None = None,
    transcript: str | None = None,
    confidence: float | None = None,
    digits: str | None = None,
    turn: int | None = None,
) -> CallEvent:
    return CallEvent(
        kind=kind,
        dedupe_key=dedupe_key,
        provider_call_id=req.call_sid,
        call_id=req.call_id,
        direction=req.direction.normalized if req.direction is not None else None,
        from_number=req.from_ or None,
        to_number=req.to or None,
        sequence=req.sequence_number,
        timestamp=req.timestamp,
        end_reason=end_reason,
        transcript=transcript,
        confidence=confidence,
        digits=digits,
        turn=turn,
        duration_seconds=duration_seconds,
        answered_by=req.answered_by or None,
    )


def to_events(req: WebhookRequest) -> list[CallEvent]:
    """The normalized events one webhook means (see the module docstring's table)."""
    sid = req.call_sid
    if req.call_status is None or req.kind is WebhookKind.RECORDING:
        return []  # a recording's status says nothing about the call's
    if req.kind is WebhookKind.STATUS:
        kind = _STATUS_EVENTS.get(req.call_status)
        if kind is None:
            return []
        seq = "_" if req.sequence_number is None else str(req.sequence_number)
        key = f"twilio:{sid}:status:{seq}:{req.call_status.value}"
        if kind is EventKind.ENDED:
            return [
                _event(
                    req,
                    kind,
                    key,
                    end_reason=_END_REASONS[req.call_status],
                    duration_seconds=req.call_duration,
                )
            ]
        return [_event(req, kind, key)]
    if req.kind is WebhookKind.AMD:
        return [_event(req, EventKind.AMD, f"twilio:{sid}:amd:{req.answered_by}")]
    if req.kind in (
        WebhookKind.HOLD,
        WebhookKind.PARTIAL,
        WebhookKind.LINE,
        WebhookKind.WHISPER,
        WebhookKind.DIAL,
    ):
        return []  # a partial result is not stored: it only says the caller is talking
    if req.kind is WebhookKind.VOICE:
        kind = _VOICE_EVENTS.get(req.call_status)
        if kind is None:
            return []
        return [_event(req, kind, f"twilio:{sid}:voice:{req.call_status.value}")]
    # GATHER: parse_webhook guarantees turn and token. The key names what was said, too: a
    # redelivery carries the same words, but the same <Gather> may run twice (a redirect that
    # timed out yet reached Twilio), and its second answer is new speech that must be kept.
    speech = (req.speech_result or "").strip()
    said = hashlib.blake2b(
        f"{speech}\x00{req.digits or ''}".encode(), digest_size=8
    ).hexdigest()
    key = f"twilio:{sid}:gather:{req.turn}:{req.turn_token}:{said}"
    if speech:
        return [
            _event(
                req,
                EventKind.SPEECH,
                key,
                transcript=speech,
                confidence=req.confidence,
                turn=req.turn,
            )
        ]
    if req.digits:
        return [_event(req, EventKind.DTMF, key, digits=req.digits, turn=req.turn)]
    return []
