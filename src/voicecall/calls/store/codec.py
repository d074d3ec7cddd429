"""Row <-> value conversion shared by the SQLite and PostgreSQL stores (pure, no I/O).

Both backends store the same columns in the same order; the backend modules only differ in SQL
dialect and driver. Everything that turns a :class:`CallRecord`, :class:`EventRow` or
:class:`TranscriptEntry` into bind parameters, or a fetched row back into a value, lives here, as
does the opaque pagination cursor.

Rows read back are checked: an unknown enum value or malformed metadata raises
:class:`StoreError` naming the column (never the whole row, which holds phone numbers).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from voicecall.calls.extras import (
    CallResult,
    CallSpec,
    OwnerQuestion,
    QuestionStatus,
    ReportDelivery,
    ReportState,
)
from voicecall.calls.model import (
    TERMINAL_STATES,
    CallMode,
    CallRecord,
    CallState,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
)
from voicecall.calls.store import base  # base uses codec too: attribute access at call time only
from voicecall.errors import StoreError

#: Column order of the ``calls`` table as used by every statement (``call_id`` first).
CALL_COLUMNS: tuple[str, ...] = (
    "call_id",
    "direction",
    "mode",
    "from_number",
    "to_number",
    "state",
    "provider",
    "provider_call_id",
    "end_reason",
    "message",
    "created_at",
    "updated_at",
    "answered_at",
    "ended_at",
    "dial_started_at",
    "turn",
    "last_sequence",
    "error",
    "metadata",
)

#: Column order of the ``events`` table (without the backend's insertion-order column).
EVENT_COLUMNS: tuple[str, ...] = ("dedupe_key", "call_id", "kind", "at", "detail")

#: Column order of the ``transcript`` table.
TRANSCRIPT_COLUMNS: tuple[str, ...] = ("call_id", "seq", "speaker", "text", "at", "final", "turn")
#: What a read selects: the written columns, then ``latency`` (set later, by ``set_latency``).
TRANSCRIPT_READ_COLUMNS: tuple[str, ...] = (*TRANSCRIPT_COLUMNS, "latency")

#: ``list_calls`` page size bounds.
MAX_PAGE_SIZE = 1000

#: States in the order they are passed as bind parameters for the ``active`` filters.
TERMINAL_STATE_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in TERMINAL_STATES))
ACTIVE_STATE_VALUES: tuple[str, ...] = tuple(
    sorted(s.value for s in CallState if s not in TERMINAL_STATES)
)

Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """One ``Store.commit`` call turned into bind parameters, ready for a writer."""

    event: tuple[Any, ...] | None
    call: tuple[Any, ...] | None
    transcript: tuple[tuple[Any, ...], ...]
    spec: tuple[Any, ...] | None = None
    outbox: tuple[Any, ...] | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.event is None
            and self.call is None
            and not self.transcript
            and self.spec is None
            and self.outbox is None
        )


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def encode_metadata(metadata: dict[str, Any]) -> str:
    if not isinstance(metadata, dict):
        raise StoreError("call metadata must be a dict")
    try:
        return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # The message names the problem (e.g. "Object of type bytes is not JSON serializable"),
        # not the value.
        raise StoreError(f"call metadata is not JSON-serializable: {exc}") from None


def call_to_row(call: CallRecord) -> tuple[Any, ...]:
    if not isinstance(call, CallRecord):
        raise TypeError(f"expected CallRecord, got {type(call).__name__}")
    return (
        call.call_id,
        Direction(call.direction).value,
        CallMode(call.mode).value,
        call.from_number,
        call.to_number,
        CallState(call.state).value,
        call.provider,
        call.provider_call_id,
        None if call.end_reason is None else EndReason(call.end_reason).value,
        call.message,
        float(call.created_at),
        float(call.updated_at),
        _opt_float(call.answered_at),
        _opt_float(call.ended_at),
        _opt_float(call.dial_started_at),
        int(call.turn),
        int(call.last_sequence),
        call.error,
        encode_metadata(call.metadata),
    )


_E = TypeVar("_E", bound=Enum)


def _enum(enum: type[_E], value: Any, column: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        raise StoreError(f"unreadable stored value in column {column!r}") from None


def row_to_call(row: Row) -> CallRecord:
    if len(row) != len(CALL_COLUMNS):
        raise StoreError("unexpected column count in calls row")
    try:
        metadata = json.loads(row[18])
    except (TypeError, ValueError):
        raise StoreError("unreadable stored value in column 'metadata'") from None
    if not isinstance(metadata, dict):
        raise StoreError("unreadable stored value in column 'metadata'")
    return CallRecord(
        call_id=row[0],
        direction=_enum(Direction, row[1], "direction"),
        mode=_enum(CallMode, row[2], "mode"),
        from_number=row[3],
        to_number=row[4],
        state=_enum(CallState, row[5], "state"),
        provider=row[6],
        provider_call_id=row[7],
        end_reason=None if row[8] is None else _enum(EndReason, row[8], "end_reason"),
        message=row[9],
        created_at=float(row[10]),
        updated_at=float(row[11]),
        answered_at=_opt_float(row[12]),
        ended_at=_opt_float(row[13]),
        dial_started_at=_opt_float(row[14]),
        turn=int(row[15]),
        last_sequence=int(row[16]),
        error=row[17],
        metadata=metadata,
    )


def event_to_row(event: base.EventRow) -> tuple[Any, ...]:
    if not isinstance(event, base.EventRow):
        raise TypeError(f"expected EventRow, got {type(event).__name__}")
    return (event.dedupe_key, event.call_id, event.kind, float(event.at), event.detail)


def row_to_event(row: Row) -> base.EventRow:
    return base.EventRow(
        dedupe_key=row[0], call_id=row[1], kind=row[2], at=float(row[3]), detail=row[4]
    )


def transcript_to_row(entry: TranscriptEntry) -> tuple[Any, ...]:
    if not isinstance(entry, TranscriptEntry):
        raise TypeError(f"expected TranscriptEntry, got {type(entry).__name__}")
    return (
        entry.call_id,
        int(entry.seq),
        Speaker(entry.speaker).value,
        entry.text,
        float(entry.at),
        bool(entry.final),
        None if entry.turn is None else int(entry.turn),
    )


def row_to_transcript(row: Row) -> TranscriptEntry:
    return TranscriptEntry(
        call_id=row[0],
        seq=int(row[1]),
        speaker=_enum(Speaker, row[2], "speaker"),
        text=row[3],
        at=float(row[4]),
        final=bool(row[5]),
        turn=None if row[6] is None else int(row[6]),
        latency=decode_latency(row[7]) if len(row) > 7 else None,
    )


def decode_latency(raw: object) -> dict[str, Any] | None:
    """A stored latency record (JSON text); an unreadable one reads as ``None``."""
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def prepare_latency(call_id: str, seq: int, latency: dict[str, Any]) -> Statement:
    """Set a stored line's latency record (JSON, finite numbers only)."""
    text = json.dumps(latency, allow_nan=False, separators=(",", ":"), sort_keys=True)
    return Statement("set_latency", (text, call_id, int(seq)))


def row_to_turn_latency(row: Row) -> tuple[str, int, float, dict[str, Any]]:
    """``recent_latency`` rows: (call_id, seq, at, record)."""
    return row[0], int(row[1]), float(row[2]), decode_latency(row[3]) or {}


def prepare_commit(
    call: CallRecord | None,
    event: base.EventRow | None,
    transcript: Sequence[TranscriptEntry],
    spec: CallSpec | None = None,
    outbox: ReportDelivery | None = None,
) -> PreparedCommit:
    """Validate and encode one commit. Raises ``StoreError``/``TypeError`` before any I/O.

    Text containing NUL characters and metadata that is not JSON-serializable are refused with
    ``StoreError`` (nothing is written), as is the same ``(call_id, seq)`` line given twice:
    transcript lines are only ever appended (:meth:`Store.amend_lines` changes one on purpose).
    """
    lines: dict[tuple[str, int], tuple[Any, ...]] = {}
    for entry in transcript:
        row = _no_nul(transcript_to_row(entry), TRANSCRIPT_COLUMNS)
        if (row[0], row[1]) in lines:
            raise StoreError(f"transcript line {row[1]} given twice in one commit")
        lines[(row[0], row[1])] = row
    if (spec is not None or outbox is not None) and call is None:
        raise ValueError("a call spec or report outbox row is committed with its call")
    return PreparedCommit(
        event=None if event is None else _no_nul(event_to_row(event), EVENT_COLUMNS),
        call=None if call is None else _no_nul(call_to_row(call), CALL_COLUMNS),
        transcript=tuple(lines.values()),
        spec=None if spec is None else spec_to_row(spec),
        outbox=None if outbox is None else report_to_row(outbox),
    )


@dataclass(frozen=True, slots=True)
class AmendLines:
    """One validated ``amend_lines`` write: ``(text, final, call_id, seq)`` per line."""

    rows: tuple[tuple[str, bool, str, int], ...]


def prepare_amend(lines: Sequence[TranscriptEntry]) -> AmendLines:
    """Validate the new text of existing lines (NUL refused like everywhere else)."""
    rows: list[tuple[str, bool, str, int]] = []
    for entry in lines:
        row = _no_nul(transcript_to_row(entry), TRANSCRIPT_COLUMNS)
        rows.append((row[3], row[5], row[0], row[1]))
    return AmendLines(tuple(rows))


def unstorable(key: str) -> bool:
    """True for a lookup key no row can have (so reads answer "absent" without asking)."""
    return "\x00" in key


def _no_nul(row: tuple[Any, ...], columns: tuple[str, ...]) -> tuple[Any, ...]:
    """Refuse NUL characters in text (PostgreSQL cannot store them; both backends agree)."""
    for value, column in zip(row, columns, strict=True):
        if isinstance(value, str) and "\x00" in value:
            raise StoreError(f"text in column {column!r} contains a NUL character")
    return row


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError("limit must be an int")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


def encode_cursor(created_at: float, call_id: str) -> str:
    """Opaque cursor pointing just after the call ``(created_at, call_id)`` (newest first)."""
    raw = json.dumps([float(created_at), call_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of :func:`encode_cursor`; ``ValueError`` for anything it did not produce."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 2048:
        raise ValueError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("invalid cursor") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or isinstance(value[0], bool)
        or not isinstance(value[0], int | float)
        or not isinstance(value[1], str)
        or not math.isfinite(value[0])
    ):
        raise ValueError("invalid cursor")
    return float(value[0]), value[1]


# -- caller memory -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerNote:
    """One validated ``remember_caller`` write (the note already cut to ``max_chars``)."""

    caller: str
    note: str
    now: float
    max_entries: int
    max_callers: int


@dataclass(frozen=True, slots=True)
class ForgetCaller:
    """One validated ``forget_caller`` write."""

    caller: str


def prepare_caller_note(
    caller: str, note: str, *, max_entries: int, max_chars: int, max_callers: int, now: float
) -> CallerNote:
    """Validate one memory write before any I/O: bounds must be >= 1 and the caller non-empty
    (``ValueError``); NUL characters are refused with ``StoreError`` like everywhere else."""
    if not caller:
        raise ValueError("caller must be a non-empty number")
    for name, bound in (
        ("max_entries", max_entries),
        ("max_chars", max_chars),
        ("max_callers", max_callers),
    ):
        if bound < 1:
            raise ValueError(f"{name} must be >= 1")
    at = float(now)
    if not math.isfinite(at):
        raise ValueError("now must be a finite timestamp")
    _no_nul((caller, note), ("caller", "notes"))
    return CallerNote(caller, note[:max_chars], at, int(max_entries), int(max_callers))


def encode_notes(notes: Sequence[str]) -> str:
    return json.dumps(list(notes), ensure_ascii=False, separators=(",", ":"))


def decode_notes(value: Any) -> list[str]:
    """A stored ``caller_memory.notes`` value (JSON text on SQLite, jsonb on PostgreSQL)."""
    try:
        notes = json.loads(value) if isinstance(value, str | bytes) else value
    except ValueError:
        notes = None
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise StoreError("column 'notes' of caller_memory is not a JSON array of strings")
    return notes


def append_note(notes: Sequence[str], note: str, max_entries: int) -> list[str]:
    """``notes`` plus ``note`` at the end, keeping the newest ``max_entries``."""
    return [*notes, note][-max_entries:]


# -- outbound safety: do-not-call list and audit trail --------------------------------------------

#: Longest ``reason`` of a do-not-call entry, and ``detail`` of an audit entry, that is stored.
MAX_BLOCK_REASON_CHARS = 500
MAX_AUDIT_DETAIL_CHARS = 1000
AUDIT_OUTCOMES = frozenset({"placed", "refused"})
#: Column order of the ``outbound_audit`` table (``id`` first, assigned by the store).
AUDIT_COLUMNS: tuple[str, ...] = (
    "id",
    "at",
    "number",
    "surface",
    "token_fingerprint",
    "outcome",
    "call_id",
    "rule",
    "detail",
)
BLOCKED_COLUMNS: tuple[str, ...] = ("number", "reason", "created_at")


@dataclass(frozen=True, slots=True)
class BlockWrite:
    """One validated ``block_number`` write."""

    number: str
    reason: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class UnblockWrite:
    number: str


@dataclass(frozen=True, slots=True)
class AuditWrite:
    """One validated audit entry (bind parameters without ``id``) and the pruning cut-off."""

    row: tuple[Any, ...]
    prune_before: float | None


def _check_number_key(number: str) -> str:
    if not isinstance(number, str) or not number:
        raise ValueError("number must be a non-empty E.164 string")
    _no_nul((number,), ("number",))
    return number


def _finite(value: float, name: str) -> float:
    at = float(value)
    if not math.isfinite(at):
        raise ValueError(f"{name} must be a finite timestamp")
    return at


def prepare_block(number: str, reason: str | None, now: float) -> BlockWrite:
    """Validate a do-not-call entry before any I/O (``ValueError``; NUL: ``StoreError``)."""
    _check_number_key(number)
    if reason is not None:
        _no_nul((reason,), ("reason",))
        if len(reason) > MAX_BLOCK_REASON_CHARS:
            raise ValueError(f"reason is longer than {MAX_BLOCK_REASON_CHARS} characters")
    return BlockWrite(number, reason or None, _finite(now, "now"))


def prepare_unblock(number: str) -> UnblockWrite:
    return UnblockWrite(_check_number_key(number))


def prepare_audit(entry: base.AuditEntry, prune_before: float | None) -> AuditWrite:
    """Validate an audit entry before any I/O; the detail is cut to its maximum length."""
    if entry.outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(AUDIT_OUTCOMES)}")
    if not entry.surface:
        raise ValueError("surface must not be empty")
    _check_number_key(entry.number)
    detail = entry.detail[:MAX_AUDIT_DETAIL_CHARS] if entry.detail is not None else None
    row = (
        _finite(entry.at, "at"),
        entry.number,
        entry.surface,
        entry.token_fingerprint,
        entry.outcome,
        entry.call_id,
        entry.rule,
        detail,
    )
    _no_nul(row, AUDIT_COLUMNS[1:])
    cut = None if prune_before is None else _finite(prune_before, "prune_before")
    return AuditWrite(row, cut)


def row_to_audit(row: Row) -> base.AuditEntry:
    return base.AuditEntry(
        id=int(row[0]),
        at=float(row[1]),
        number=row[2],
        surface=row[3],
        token_fingerprint=row[4],
        outcome=row[5],
        call_id=row[6],
        rule=row[7],
        detail=row[8],
    )


def row_to_blocked(row: Row) -> base.BlockedNumber:
    return base.BlockedNumber(number=row[0], reason=row[1], created_at=float(row[2]))


def check_before(before: int | None) -> int | None:
    """An audit page cursor: the ``id`` to list entries below (``None``: the newest)."""
    if before is None:
        return None
    if isinstance(before, bool) or not isinstance(before, int) or before < 1:
        raise ValueError("before must be a positive audit entry id")
    return before


# -- what is kept beside a call (migration 4) ---------------------------------------------------

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


def _json_text(value: Any, column: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{column} is not JSON-serializable: {exc}") from None


def _json_value(text: Any, column: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise StoreError(f"unreadable stored value in column {column!r}") from None


def spec_to_row(spec: CallSpec) -> tuple[Any, ...]:
    if not isinstance(spec, CallSpec):
        raise TypeError(f"expected CallSpec, got {type(spec).__name__}")
    schema = None if spec.outcome_schema is None else _json_text(spec.outcome_schema, "schema")
    row = (
        spec.call_id,
        spec.task,
        spec.context,
        schema,
        spec.report_url,
        _finite(spec.created_at, "created_at"),
    )
    return _no_nul(row, SPEC_COLUMNS)


def row_to_spec(row: Row) -> CallSpec:
    schema = _json_value(row[3], "outcome_schema")
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
        outcome: str | None = _json_text(result.outcome, "outcome")
    elif result.outcome is None:
        outcome = None
    else:
        raise ValueError("a result has an outcome or an outcome_error, not both")
    row = (result.call_id, result.summary, outcome, result.outcome_error, _finite(result.at, "at"))
    return Statement("put_result", _no_nul(row, RESULT_COLUMNS))


def row_to_result(row: Row) -> CallResult:
    error = row[3]
    return CallResult(
        call_id=row[0],
        summary=row[1],
        outcome=None if error is not None else _json_value(row[2], "outcome"),
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
        _finite(q.asked_at, "asked_at"),
        QuestionStatus(q.status).value,
        q.answer,
        None if q.settled_at is None else _finite(q.settled_at, "settled_at"),
    )
    return _no_nul(row, QUESTION_COLUMNS)


def row_to_question(row: Row) -> OwnerQuestion:
    return OwnerQuestion(
        call_id=row[0],
        seq=int(row[1]),
        question=row[2],
        asked_at=float(row[3]),
        status=_enum(QuestionStatus, row[4], "status"),
        answer=row[5],
        settled_at=_opt_float(row[6]),
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
    params = (status.value, answer, _finite(at, "at"), call_id, int(seq))
    return Statement("settle_question", _no_nul(params, ("status", "answer", "at", "call", "seq")))


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
        _finite(r.next_at, "next_at"),
        r.body,
        None if r.last_status is None else int(r.last_status),
        r.last_error,
        _finite(r.created_at, "created_at"),
        _finite(r.updated_at, "updated_at"),
        None if r.delivered_at is None else _finite(r.delivered_at, "delivered_at"),
    )
    return _no_nul(row, REPORT_COLUMNS)


def row_to_report(row: Row) -> ReportDelivery:
    return ReportDelivery(
        webhook_id=row[0],
        call_id=row[1],
        url=row[2],
        state=_enum(ReportState, row[3], "state"),
        attempts=int(row[4]),
        next_at=float(row[5]),
        body=row[6],
        last_status=None if row[7] is None else int(row[7]),
        last_error=row[8],
        created_at=float(row[9]),
        updated_at=float(row[10]),
        delivered_at=_opt_float(row[11]),
    )


def prepare_report_update(r: ReportDelivery) -> Statement:
    """Record a delivery attempt (state, counters, the frozen body) on an existing row."""
    row = report_to_row(r)
    # SET state, attempts, next_at, body, last_status, last_error, updated_at, delivered_at
    # WHERE webhook_id
    return Statement("put_report", (*row[3:9], row[10], row[11], row[0]))


@dataclass(frozen=True, slots=True)
class Statement:
    """One validated single-statement write: ``key`` names the SQL each backend holds for it;
    the writer answers whether it changed a row."""

    key: str
    params: tuple[Any, ...]
