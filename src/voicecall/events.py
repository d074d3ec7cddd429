"""Normalized provider events: what a verified webhook (or stream) means, provider-neutral.

Every event carries a ``dedupe_key`` derived only from signed material (CallSid, CallStatus,
SequenceNumber, the request kind, the turn token), never from random ids or unsigned headers, so
a duplicate or replayed delivery maps to the same key and is acknowledged without effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voicecall.calls.model import Direction, EndReason


class EventKind(StrEnum):
    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    SPEECH = "speech"
    DTMF = "dtmf"
    ENDED = "ended"
    AMD = "amd"  # answering-machine detection decided (``answered_by``)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One normalized event about one call.

    ``call_id`` is voicecall's id when the provider request carried it (outbound calls), else
    ``None`` (inbound: the manager creates the call from ``provider_call_id``).
    ``sequence`` orders status callbacks (Twilio's SequenceNumber); ``None`` when the provider
    gives none. ``turn`` is the conversation turn a speech/dtmf result answers.
    """

    kind: EventKind
    dedupe_key: str
    provider_call_id: str
    call_id: str | None = None
    direction: Direction | None = None
    from_number: str | None = None
    to_number: str | None = None
    sequence: int | None = None
    timestamp: float | None = None
    end_reason: EndReason | None = None
    transcript: str | None = None
    confidence: float | None = None
    digits: str | None = None
    turn: int | None = None
    duration_seconds: int | None = None
    answered_by: str | None = None
