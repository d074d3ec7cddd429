"""The end-of-call report document (pure): what the owner's endpoint receives when a call ends.

Shaped as a Standard Webhooks payload: ``{"type": "call.ended", "timestamp": …, "data": {…}}``
with the call's fields, its transcript, the task and its outcome and summary (task calls), the
owner's questions and the timings. It is a function of stored data only, so a report rebuilt
after a restart is the same document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from voicecall.calls.extras import CallResult, CallSpec, OwnerQuestion
from voicecall.calls.model import CallRecord, TranscriptEntry

EVENT_TYPE = "call.ended"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timings(record: CallRecord) -> dict[str, Any]:
    ring = None
    talk = None
    if record.answered_at is not None:
        ring = round(max(0.0, record.answered_at - record.created_at), 3)
        if record.ended_at is not None:
            talk = round(max(0.0, record.ended_at - record.answered_at), 3)
    total = None
    if record.ended_at is not None:
        total = round(max(0.0, record.ended_at - record.created_at), 3)
    return {
        "created_at": _iso(record.created_at),
        "answered_at": _iso(record.answered_at),
        "ended_at": _iso(record.ended_at),
        "ring_seconds": ring,
        "talk_seconds": talk,
        "total_seconds": total,
    }


def report_document(
    record: CallRecord,
    lines: Sequence[TranscriptEntry],
    *,
    spec: CallSpec | None,
    result: CallResult | None,
    questions: Sequence[OwnerQuestion] = (),
) -> dict[str, Any]:
    data: dict[str, Any] = {
        **record.to_json(),
        "transcript": [ln.to_json() for ln in lines],
        "timings": timings(record),
        "task": spec.task if spec is not None else None,
        "context": spec.context if spec is not None else None,
        "outcome_schema": spec.outcome_schema if spec is not None and spec.is_task else None,
        "outcome": result.outcome if result is not None else None,
        "summary": result.summary if result is not None else None,
        "outcome_error": result.outcome_error if result is not None else None,
        "questions": [q.to_json() for q in questions],
    }
    return {
        "type": EVENT_TYPE,
        "timestamp": _iso(record.ended_at if record.ended_at is not None else record.updated_at),
        "data": data,
    }


def encode(document: dict[str, Any]) -> str:
    """The body as sent (compact JSON, UTF-8 text)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
