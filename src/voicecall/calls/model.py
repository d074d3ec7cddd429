"""The call record and its vocabulary: states, end reasons, directions, transcript lines.

These are plain values shared by the state machine, the manager, the store and the API.
"""

from __future__ import annotations

import dataclasses
import operator
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CallState(StrEnum):
    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    ACTIVE = "active"
    SPEAKING = "speaking"
    LISTENING = "listening"
    ENDING = "ending"  # an end was asked for: the goodbye plays, then the call hangs up
    # terminal
    COMPLETED = "completed"
    HANGUP_USER = "hangup-user"
    HANGUP_BOT = "hangup-bot"
    TIMEOUT = "timeout"
    ERROR = "error"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    TRANSFERRED = "transferred"  # handed over to another number (telephony/transfer.py)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        CallState.COMPLETED,
        CallState.HANGUP_USER,
        CallState.HANGUP_BOT,
        CallState.TIMEOUT,
        CallState.ERROR,
        CallState.FAILED,
        CallState.NO_ANSWER,
        CallState.BUSY,
        CallState.VOICEMAIL,
        CallState.TRANSFERRED,
    }
)


class EndReason(StrEnum):
    """Why a call ended (the normalized ``ended`` event's reason and the record's end_reason)."""

    COMPLETED = "completed"
    HANGUP_USER = "hangup-user"
    HANGUP_BOT = "hangup-bot"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    ERROR = "error"
    VOICEMAIL = "voicemail"
    REJECTED = "rejected"
    TRANSFERRED = "transferred"


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class CallMode(StrEnum):
    NOTIFY = "notify"
    CONVERSATION = "conversation"
    TASK = "task"


class Speaker(StrEnum):
    BOT = "bot"
    USER = "user"


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    call_id: str
    seq: int
    speaker: Speaker
    text: str
    at: float
    final: bool = True
    turn: int | None = None
    latency: dict[str, Any] | None = None
    """A bot reply's latency record (voice/latency.py ``TurnLatency.to_json``), set after its
    first frame was sent; ``None`` on other lines and replies not measured."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "speaker": self.speaker.value,
            "text": self.text,
            "at": self.at,
            "final": self.final,
            "turn": self.turn,
            "latency": self.latency,
        }


def _public_transfer(raw: Any) -> dict[str, Any] | None:
    """A call's last transfer as clients see it (its webhook routing token left out)."""
    if not isinstance(raw, dict):
        return None
    return {k: v for k, v in raw.items() if k != "token"}


def new_call_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class CallRecord:
    """One call's durable state: a small fixed-size row (history lives in separate tables)."""

    call_id: str
    direction: Direction
    mode: CallMode
    from_number: str | None
    to_number: str | None
    state: CallState = CallState.INITIATED
    provider: str = "twilio"
    provider_call_id: str | None = None
    end_reason: EndReason | None = None
    message: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    # outbound: set (and stored) *before* the provider's create request is sent, so a restart
    # knows the dial may have happened and never dials again
    dial_started_at: float | None = None
    turn: int = 0
    last_sequence: int = -1
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    def copy(self, **changes: Any) -> CallRecord:
        """``dataclasses.replace(self, **changes)`` (same result, same TypeError for an unknown
        field), at a third of its cost: every webhook copies the record at least once."""
        new = CallRecord(*_record_values(self))
        for name, value in changes.items():
            if name not in _RECORD_FIELDS:
                raise TypeError(f"CallRecord has no field {name!r}")
            object.__setattr__(new, name, value)
        return new

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "direction": self.direction.value,
            "mode": self.mode.value,
            "from": self.from_number,
            "to": self.to_number,
            "state": self.state.value,
            "end_reason": self.end_reason.value if self.end_reason else None,
            "provider": self.provider,
            "provider_call_id": self.provider_call_id,
            "message": self.message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "turn": self.turn,
            "error": self.error,
            # the last transfer of the call and its result (telephony/transfer.py), if any
            "transfer": _public_transfer(self.metadata.get("transfer")),
        }


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(CallRecord))
# every field's value in declaration order, read in one C call (the positional __init__ order)
_record_values = operator.attrgetter(*(f.name for f in dataclasses.fields(CallRecord)))
