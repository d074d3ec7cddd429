"""What is kept beside a call's fixed-size row: its request, its result, the owner's questions and
the delivery of its end-of-call report (plain values shared by the store, the conversation and the
API).

They live in their own tables (migration 4), never in the ``calls`` row that every status webhook
rewrites: a task's text can be 4,000 characters and its context 8,000.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What was asked for a call beyond its calls row (written with the call's first commit).

    ``task``/``context``/``outcome_schema`` are set for task calls; ``report_url`` for any call
    that asked for its own end-of-call report destination.
    """

    call_id: str
    task: str | None = None
    context: str | None = None
    outcome_schema: dict[str, Any] | None = None
    report_url: str | None = None
    created_at: float = 0.0

    @property
    def is_task(self) -> bool:
        return self.task is not None


@dataclass(frozen=True, slots=True)
class CallResult:
    """A task call's final summary and outcome (written once, when the outcome is final).

    ``outcome`` is ``None`` exactly when ``outcome_error`` says why; a stored outcome always
    validated against the call's ``outcome_schema``.
    """

    call_id: str
    summary: str | None
    outcome: Any = None
    outcome_error: str | None = None
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "outcome": self.outcome,
            "outcome_error": self.outcome_error,
        }


class QuestionStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    TIMEOUT = "timeout"  # the owner did not answer in task.owner_timeout_seconds
    CANCELLED = "cancelled"  # the call ended, or the service restarted, before an answer


@dataclass(frozen=True, slots=True)
class OwnerQuestion:
    """A question the in-call agent asked the owner (``seq`` counts from 0 per call)."""

    call_id: str
    seq: int
    question: str
    asked_at: float
    status: QuestionStatus = QuestionStatus.PENDING
    answer: str | None = None
    settled_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "question": self.question,
            "asked_at": self.asked_at,
            "status": self.status.value,
            "answer": self.answer,
            "settled_at": self.settled_at,
        }


class ReportState(StrEnum):
    PENDING = "pending"  # not delivered yet (or waiting for the task's outcome)
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt of the schedule failed, or the URL was refused


@dataclass(frozen=True, slots=True)
class ReportDelivery:
    """The durable outbox row of one call's end-of-call report.

    Written in the same transaction as the call's end. ``webhook_id`` is the Standard Webhooks
    ``webhook-id``: the same on every attempt. ``body`` is fixed at the first attempt, so every
    retry sends the same bytes (only ``webhook-timestamp`` and the signature change).
    """

    webhook_id: str
    call_id: str
    url: str
    state: ReportState = ReportState.PENDING
    attempts: int = 0
    next_at: float = 0.0
    body: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    delivered_at: float | None = None

    def copy(self, **changes: Any) -> ReportDelivery:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The delivery state as the API shows it (never the body; the URL without query)."""
        return {
            "webhook_id": self.webhook_id,
            "url": shown_url(self.url),
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_at if self.state is ReportState.PENDING else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
        }


def shown_url(url: str) -> str:
    """A URL without its query string or fragment (they may carry a receiver's token)."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:cut] + ("?…" if cut < len(url) else "")


class RecordingSource(StrEnum):
    STREAM = "stream"  # our stereo WAV of the call's Media Streams (recording.dir)
    TWILIO = "twilio"  # Twilio's recording of a <Gather> call (Record=true)


class RecordingStatus(StrEnum):
    RECORDING = "recording"  # being written (stream) or asked of Twilio, not completed yet
    COMPLETED = "completed"
    ABSENT = "absent"  # Twilio recorded nothing
    FAILED = "failed"
    DELETED = "deleted"  # the retention sweeper deleted the audio (the row is a tombstone)


@dataclass(frozen=True, slots=True)
class RecordingRef:
    """Where a call's recording is (migration 5): a local WAV (``path``) or Twilio's
    (``sid``/``url``, the media at ``url`` + ``.wav``). One per call."""

    call_id: str
    source: RecordingSource
    status: RecordingStatus
    started_at: float
    updated_at: float
    path: str | None = None
    sid: str | None = None
    url: str | None = None
    channels: int | None = None
    duration_seconds: float | None = None

    def copy(self, **changes: Any) -> RecordingRef:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """What the API shows (never the local path: where files live is the server's)."""
        return {
            "source": self.source.value,
            "status": self.status.value,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "channels": self.channels,
            "recording_sid": self.sid,
            "recording_url": self.url,
        }
