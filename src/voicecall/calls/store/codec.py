"""Row <-> value conversion shared by the SQLite and PostgreSQL stores (pure, no I/O).

Both backends store the same columns in the same order; the backend modules only differ in SQL
dialect and driver. Everything that turns a :class:`CallRecord`, :class:`EventRow` or
:class:`TranscriptEntry` into bind parameters, or a fetched row back into a value, lives here, as
does the opaque pagination cursor.

Rows read back are checked: an unknown enum value or malformed metadata raises
:class:`StoreError` naming the column (never the whole row, which holds phone numbers).

The per-table codecs live beside it and are re-exported here (``codec.X`` keeps working):
:mod:`~voicecall.calls.store.rows` (shared row checks, :class:`Statement`),
:mod:`~voicecall.calls.store.caller_codec` (caller memory),
:mod:`~voicecall.calls.store.outbound_codec` (do-not-call list, audit trail) and
:mod:`~voicecall.calls.store.extras_codec` (specs, results, questions, reports).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voicecall.calls.extras import CallSpec, ReportDelivery
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
from voicecall.calls.store.caller_codec import (
    CallerNote,
    ForgetCaller,
    append_note,
    decode_notes,
    encode_notes,
    prepare_caller_note,
)
from voicecall.calls.store.extras_codec import (
    QUESTION_COLUMNS,
    REPORT_COLUMNS,
    RESULT_COLUMNS,
    SPEC_COLUMNS,
    prepare_report_update,
    prepare_result,
    prepare_settle,
    question_to_row,
    report_to_row,
    row_to_question,
    row_to_report,
    row_to_result,
    row_to_spec,
    spec_to_row,
)
from voicecall.calls.store.outbound_codec import (
    AUDIT_COLUMNS,
    AUDIT_OUTCOMES,
    BLOCKED_COLUMNS,
    MAX_AUDIT_DETAIL_CHARS,
    MAX_BLOCK_REASON_CHARS,
    AuditWrite,
    BlockWrite,
    UnblockWrite,
    check_before,
    prepare_audit,
    prepare_block,
    prepare_unblock,
    row_to_audit,
    row_to_blocked,
)
from voicecall.calls.store.rows import Row, Statement, enum_value, no_nul, opt_float
from voicecall.errors import StoreError

__all__ = [
    "ACTIVE_STATE_VALUES",
    "AUDIT_COLUMNS",
    "AUDIT_OUTCOMES",
    "BLOCKED_COLUMNS",
    "CALL_COLUMNS",
    "CALL_IDENTITY_COLUMNS",
    "CALL_INDEXED_UPDATE_COLUMNS",
    "CALL_UPDATE_COLUMNS",
    "EVENT_COLUMNS",
    "MAX_AUDIT_DETAIL_CHARS",
    "MAX_BLOCK_REASON_CHARS",
    "MAX_PAGE_SIZE",
    "QUESTION_COLUMNS",
    "REPORT_COLUMNS",
    "RESULT_COLUMNS",
    "SPEC_COLUMNS",
    "TERMINAL_STATE_VALUES",
    "TRANSCRIPT_COLUMNS",
    "TRANSCRIPT_READ_COLUMNS",
    "AmendLines",
    "AuditWrite",
    "BlockWrite",
    "CallerNote",
    "ForgetCaller",
    "PreparedCommit",
    "Row",
    "Statement",
    "UnblockWrite",
    "append_note",
    "call_to_row",
    "check_before",
    "check_limit",
    "decode_cursor",
    "decode_latency",
    "decode_notes",
    "encode_cursor",
    "encode_metadata",
    "encode_notes",
    "event_to_row",
    "prepare_amend",
    "prepare_audit",
    "prepare_block",
    "prepare_caller_note",
    "prepare_commit",
    "prepare_latency",
    "prepare_report_update",
    "prepare_result",
    "prepare_settle",
    "prepare_unblock",
    "question_to_row",
    "report_to_row",
    "row_to_audit",
    "row_to_blocked",
    "row_to_call",
    "row_to_event",
    "row_to_question",
    "row_to_report",
    "row_to_result",
    "row_to_spec",
    "row_to_transcript",
    "row_to_turn_latency",
    "spec_to_row",
    "unstorable",
]

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

#: Columns a call has from its creation on and never changes (who, which way, when it was
#: created): a commit of an existing call leaves them as stored. Not rewriting them spares the
#: indexes on them (``calls_created``, ``calls_outbound_to``) a rewrite on every status
#: callback: about a third fewer WAL pages per webhook on SQLite.
CALL_IDENTITY_COLUMNS: frozenset[str] = frozenset(
    {"direction", "mode", "from_number", "to_number", "provider", "created_at"}
)
#: What a commit of an existing call updates (everything but its id and identity).
CALL_UPDATE_COLUMNS: tuple[str, ...] = tuple(
    c for c in CALL_COLUMNS[1:] if c not in CALL_IDENTITY_COLUMNS
)
#: Updated columns that have an index (``calls_state``, ``calls_provider_call_id``). SQLite
#: rewrites an index whenever an UPDATE assigns one of its columns, even to the value it has;
#: its store sets these only when they differ (most status callbacks change neither: 6.6 → 4.4
#: WAL pages per single-webhook commit). PostgreSQL compares values itself (HOT updates).
CALL_INDEXED_UPDATE_COLUMNS: tuple[str, ...] = ("state", "provider_call_id")

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
        opt_float(call.answered_at),
        opt_float(call.ended_at),
        opt_float(call.dial_started_at),
        int(call.turn),
        int(call.last_sequence),
        call.error,
        encode_metadata(call.metadata),
    )


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
        direction=enum_value(Direction, row[1], "direction"),
        mode=enum_value(CallMode, row[2], "mode"),
        from_number=row[3],
        to_number=row[4],
        state=enum_value(CallState, row[5], "state"),
        provider=row[6],
        provider_call_id=row[7],
        end_reason=None if row[8] is None else enum_value(EndReason, row[8], "end_reason"),
        message=row[9],
        created_at=float(row[10]),
        updated_at=float(row[11]),
        answered_at=opt_float(row[12]),
        ended_at=opt_float(row[13]),
        dial_started_at=opt_float(row[14]),
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
        speaker=enum_value(Speaker, row[2], "speaker"),
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
        row = no_nul(transcript_to_row(entry), TRANSCRIPT_COLUMNS)
        if (row[0], row[1]) in lines:
            raise StoreError(f"transcript line {row[1]} given twice in one commit")
        lines[(row[0], row[1])] = row
    if (spec is not None or outbox is not None) and call is None:
        raise ValueError("a call spec or report outbox row is committed with its call")
    return PreparedCommit(
        event=None if event is None else no_nul(event_to_row(event), EVENT_COLUMNS),
        call=None if call is None else no_nul(call_to_row(call), CALL_COLUMNS),
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
        row = no_nul(transcript_to_row(entry), TRANSCRIPT_COLUMNS)
        rows.append((row[3], row[5], row[0], row[1]))
    return AmendLines(tuple(rows))


def unstorable(key: str) -> bool:
    """True for a lookup key no row can have (so reads answer "absent" without asking)."""
    return "\x00" in key


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
