"""The codec of what is kept beside a call (migration 4): call specs, results, owner
questions and the report outbox, row ↔ value (pure, no I/O). Their SQL is in
:mod:`~voicecall.calls.store.extras_sql`."""

from __future__ import annotations

from typing import Any

from voicecall.calls.extras import (
    CallResult,
    CallSpec,
    OwnerQuestion,
    QuestionStatus,
    ReportDelivery,
    ReportState,
)
from voicecall.calls.store.rows import (
    Row,
    Statement,
    enum_value,
    finite,
    json_text,
    json_value,
    no_nul,
    opt_float,
)
from voicecall.errors import StoreError

SPEC_COLUMNS: tuple[str, ...] = (
    "call_id",
    "task",
    "context",
    "outcome_schema",
    "report_url",
    "created_at",
)
RESULT_COLUMNS: tuple[str, ...] = ("call_id", "summary", "outcome", "outcome_error", "at")
QUESTION_COLUMNS: tuple[str, ...] = (
    "call_id",
    "seq",
    "question",
    "asked_at",
    "status",
    "answer",
    "settled_at",
)
REPORT_COLUMNS: tuple[str, ...] = (
    "webhook_id",
    "call_id",
    "url",
    "state",
    "attempts",
    "next_at",
    "body",
    "last_status",
    "last_error",
    "created_at",
    "updated_at",
    "delivered_at",
)


def spec_to_row(spec: CallSpec) -> tuple[Any, ...]:
    if not isinstance(spec, CallSpec):
        raise TypeError(f"expected CallSpec, got {type(spec).__name__}")
    schema = None if spec.outcome_schema is None else json_text(spec.outcome_schema, "schema")
    row = (
        spec.call_id,
        spec.task,
        spec.context,
        schema,
        spec.report_url,
        finite(spec.created_at, "created_at"),
    )
    return no_nul(row, SPEC_COLUMNS)


def row_to_spec(row: Row) -> CallSpec:
    schema = json_value(row[3], "outcome_schema")
    if schema is not None and not isinstance(schema, dict):
        raise StoreError("unreadable stored value in column 'outcome_schema'")
    return CallSpec(
        call_id=row[0],
        task=row[1],
        context=row[2],
        outcome_schema=schema,
        report_url=row[4],
        created_at=float(row[5]),
    )


def prepare_result(result: CallResult) -> Statement:
    """The one write of a call's final result (``outcome`` JSON; NULL when there is none)."""
    if not isinstance(result, CallResult):
        raise TypeError(f"expected CallResult, got {type(result).__name__}")
    if result.outcome_error is None:
        outcome: str | None = json_text(result.outcome, "outcome")
    elif result.outcome is None:
        outcome = None
    else:
        raise ValueError("a result has an outcome or an outcome_error, not both")
    row = (result.call_id, result.summary, outcome, result.outcome_error, finite(result.at, "at"))
    return Statement("put_result", no_nul(row, RESULT_COLUMNS))


def row_to_result(row: Row) -> CallResult:
    error = row[3]
    return CallResult(
        call_id=row[0],
        summary=row[1],
        outcome=None if error is not None else json_value(row[2], "outcome"),
        outcome_error=error,
        at=float(row[4]),
    )


def question_to_row(q: OwnerQuestion) -> tuple[Any, ...]:
    if not isinstance(q, OwnerQuestion):
        raise TypeError(f"expected OwnerQuestion, got {type(q).__name__}")
    if q.seq < 0:
        raise ValueError("seq must be >= 0")
    row = (
        q.call_id,
        int(q.seq),
        q.question,
        finite(q.asked_at, "asked_at"),
        QuestionStatus(q.status).value,
        q.answer,
        None if q.settled_at is None else finite(q.settled_at, "settled_at"),
    )
    return no_nul(row, QUESTION_COLUMNS)


def row_to_question(row: Row) -> OwnerQuestion:
    return OwnerQuestion(
        call_id=row[0],
        seq=int(row[1]),
        question=row[2],
        asked_at=float(row[3]),
        status=enum_value(QuestionStatus, row[4], "status"),
        answer=row[5],
        settled_at=opt_float(row[6]),
    )


def prepare_settle(
    call_id: str, seq: int, status: QuestionStatus, answer: str | None, at: float
) -> Statement:
    """Settle a *pending* question (answered, timeout or cancelled)."""
    status = QuestionStatus(status)
    if status is QuestionStatus.PENDING:
        raise ValueError("a question is settled as answered, timeout or cancelled")
    if (status is QuestionStatus.ANSWERED) != (answer is not None):
        raise ValueError("an answered question has an answer; others have none")
    params = (status.value, answer, finite(at, "at"), call_id, int(seq))
    return Statement("settle_question", no_nul(params, ("status", "answer", "at", "call", "seq")))


def report_to_row(r: ReportDelivery) -> tuple[Any, ...]:
    if not isinstance(r, ReportDelivery):
        raise TypeError(f"expected ReportDelivery, got {type(r).__name__}")
    if r.attempts < 0:
        raise ValueError("attempts must be >= 0")
    row = (
        r.webhook_id,
        r.call_id,
        r.url,
        ReportState(r.state).value,
        int(r.attempts),
        finite(r.next_at, "next_at"),
        r.body,
        None if r.last_status is None else int(r.last_status),
        r.last_error,
        finite(r.created_at, "created_at"),
        finite(r.updated_at, "updated_at"),
        None if r.delivered_at is None else finite(r.delivered_at, "delivered_at"),
    )
    return no_nul(row, REPORT_COLUMNS)


def row_to_report(row: Row) -> ReportDelivery:
    return ReportDelivery(
        webhook_id=row[0],
        call_id=row[1],
        url=row[2],
        state=enum_value(ReportState, row[3], "state"),
        attempts=int(row[4]),
        next_at=float(row[5]),
        body=row[6],
        last_status=None if row[7] is None else int(row[7]),
        last_error=row[8],
        created_at=float(row[9]),
        updated_at=float(row[10]),
        delivered_at=opt_float(row[11]),
    )


def prepare_report_update(r: ReportDelivery) -> Statement:
    """Record a delivery attempt (state, counters, the frozen body) on an existing row."""
    row = report_to_row(r)
    # SET state, attempts, next_at, body, last_status, last_error, updated_at, delivered_at
    # WHERE webhook_id
    return Statement("put_report", (*row[3:9], row[10], row[11], row[0]))
