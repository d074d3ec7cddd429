"""The durable store interface the call manager sees.

Contract (one test suite runs it against every backend):

* ``commit`` is atomic: the event's dedupe key, the call row and any transcript lines are written
  in one transaction, or nothing is. If the dedupe key already exists nothing is written and it
  returns ``False``: the caller acknowledges the duplicate without any side effect.
* Transcript lines are appended, never overwritten: a commit carrying a ``(call_id, seq)`` that
  is already stored fails with ``StoreError`` and writes nothing. ``amend_lines`` is the one
  deliberate change (a bot line cut off by the caller keeps what they heard).
* Writes are durable when the awaited call returns (a webhook is answered 2xx only after that).
  Backend failures raise :class:`voicecall.errors.StoreError`; driver exceptions never escape.
* Store growth per event is constant: the call row is updated in place; events and transcript
  lines are appended as small rows.
* Secrets are never written (the store only ever sees call data and caller memory).
* Caller memory (``caller_notes``/``remember_caller``/``forget_caller``) goes through the same
  writer as ``commit``: durable when the awaited call returns, ordered with every other write,
  and read back by any instance on the same database (a standby that takes over recalls what the
  previous active instance remembered).
* Outbound safety (migration 3): the do-not-call list (``block_number``/``unblock_number``/
  ``blocked_number``/``blocked_numbers``), the audit trail of placed and refused calls
  (``record_audit``/``audit``, newest first, pruned by age on write) and the counts the outbound
  policy needs (``outbound_counts``: calls to a number in the last 24 h, calls in the last hour,
  talk time in the last 24 h, from the stored outbound call rows). Same writer, same guarantees.
* What is kept beside a call (migration 4) never widens the ``calls`` row: a call's request
  (:class:`CallSpec`) is committed with the call's first row, its report outbox row with the
  commit that ends it (both in that same transaction, both ``ON CONFLICT DO NOTHING``), its final
  result once (a second one is refused, ``False``), the owner's questions as rows that are
  settled only from ``pending``. The checks run here once; backends hold the SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from voicecall.calls.extras import (
    CallResult,
    CallSpec,
    OwnerQuestion,
    QuestionStatus,
    RecordingRef,
    ReportDelivery,
)
from voicecall.calls.model import CallRecord, TranscriptEntry
from voicecall.calls.policy import OutboundCounts
from voicecall.calls.store import codec, recording_sql

DAY_SECONDS = 86_400.0
HOUR_SECONDS = 3_600.0


@dataclass(frozen=True, slots=True)
class EventRow:
    """A processed provider event, kept for dedupe and history."""

    dedupe_key: str
    call_id: str
    kind: str
    at: float
    detail: str | None = None  # short, non-secret (e.g. "ringing", "seq=3")


@dataclass(frozen=True, slots=True)
class BlockedNumber:
    """An entry of the do-not-call list."""

    number: str
    reason: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One placed or refused outbound call. ``token_fingerprint`` is a short non-reversible
    fingerprint of the API token used (never the token); ``rule``/``detail`` say why a call was
    refused; ``id`` is assigned by the store (increasing)."""

    at: float
    number: str
    surface: str
    outcome: str  # "placed" | "refused"
    token_fingerprint: str | None = None
    call_id: str | None = None
    rule: str | None = None
    detail: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class CallPage:
    calls: list[CallRecord]
    next_cursor: str | None


class Store(ABC):
    """Abstract durable store. Implementations: SQLite (default), PostgreSQL."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and run pending schema migrations."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def commit(
        self,
        call: CallRecord | None,
        *,
        event: EventRow | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        spec: CallSpec | None = None,
        outbox: ReportDelivery | None = None,
    ) -> bool:
        """Atomically record ``event``, upsert ``call`` and append ``transcript`` (each optional);
        with ``call``, also insert its ``spec`` (a new call's request) and its report ``outbox``
        row (the commit that ends it), each unless one is stored already.

        Returns ``False`` (and writes nothing) when ``event.dedupe_key`` was already recorded.
        """

    async def amend_lines(self, lines: Sequence[TranscriptEntry]) -> bool:
        """Change the text (and ``final`` flag) of lines already stored, e.g. a bot line the
        caller cut off; ``True`` if any of them existed. The only way a stored line changes:
        ``commit`` refuses a line whose ``(call_id, seq)`` exists (``StoreError``)."""
        if not lines:
            return False
        return await self._amend_lines(codec.prepare_amend(lines))

    @abstractmethod
    async def _amend_lines(self, write: codec.AmendLines) -> bool: ...

    @abstractmethod
    async def get_call(self, call_id: str) -> CallRecord | None: ...

    @abstractmethod
    async def get_call_by_provider_id(self, provider_call_id: str) -> CallRecord | None: ...

    @abstractmethod
    async def list_active(self) -> list[CallRecord]:
        """Every call not in a terminal state (used at start-up to reconcile)."""

    @abstractmethod
    async def list_calls(
        self, *, limit: int = 50, cursor: str | None = None, active: bool | None = None
    ) -> CallPage:
        """Newest first. ``cursor`` is opaque (from a previous page's ``next_cursor``)."""

    @abstractmethod
    async def transcript(self, call_id: str) -> list[TranscriptEntry]: ...

    async def call_ids_with_prefix(self, prefix: str, *, limit: int = 2) -> list[str]:
        """Up to ``limit`` call ids that start with ``prefix`` (case-sensitive), in id order.

        Resolves a short id a person typed: one id means it is unique, two that it is ambiguous.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if not prefix or codec.unstorable(prefix):
            return []
        return await self._call_ids_with_prefix(prefix, limit)

    @abstractmethod
    async def has_event(self, dedupe_key: str) -> bool: ...

    @abstractmethod
    async def events(self, call_id: str) -> list[EventRow]: ...

    async def caller_notes(self, caller: str) -> list[str]:
        """The notes remembered about ``caller``, oldest first (``[]`` if none)."""
        return [] if codec.unstorable(caller) else await self._caller_notes(caller)

    async def remember_caller(
        self,
        caller: str,
        note: str,
        *,
        max_entries: int,
        max_chars: int,
        max_callers: int,
        now: float,
    ) -> None:
        """Append ``note`` (cut to ``max_chars``) to ``caller``'s notes, atomically.

        Keeps the newest ``max_entries`` notes of the caller and sets its ``updated_at`` to
        ``now``; then, if more than ``max_callers`` callers are remembered, drops the least
        recently updated *other* callers (the caller just written is always kept). Bounds below 1
        or an empty caller are a ``ValueError``; NUL characters a ``StoreError``.
        """
        await self._remember_caller(
            codec.prepare_caller_note(
                caller,
                note,
                max_entries=max_entries,
                max_chars=max_chars,
                max_callers=max_callers,
                now=now,
            )
        )

    async def forget_caller(self, caller: str) -> bool:
        """Drop everything remembered about ``caller``; ``True`` if there was something."""
        return False if codec.unstorable(caller) else await self._forget_caller(caller)

    # -- outbound safety ------------------------------------------------------------------

    async def block_number(self, number: str, *, reason: str | None, now: float) -> bool:
        """Put ``number`` on the do-not-call list; ``True`` if it was not on it (an existing
        entry keeps its reason and time). Reasons longer than
        :data:`codec.MAX_BLOCK_REASON_CHARS` are a ``ValueError``; NUL a ``StoreError``."""
        return await self._block_number(codec.prepare_block(number, reason, now))

    async def unblock_number(self, number: str) -> bool:
        """Take ``number`` off the do-not-call list; ``True`` if it was on it."""
        if codec.unstorable(number):
            return False
        return await self._unblock_number(codec.prepare_unblock(number))

    async def blocked_number(self, number: str) -> BlockedNumber | None:
        """The do-not-call entry of ``number``, or ``None``."""
        return None if codec.unstorable(number) else await self._blocked_number(number)

    async def blocked_numbers(self) -> list[BlockedNumber]:
        """The whole do-not-call list, oldest entry first."""
        return await self._blocked_numbers()

    async def record_audit(self, entry: AuditEntry, *, keep_seconds: float | None = None) -> None:
        """Append ``entry`` to the audit trail; with ``keep_seconds``, entries older than
        ``entry.at - keep_seconds`` are deleted in the same transaction."""
        cut = None if keep_seconds is None else entry.at - keep_seconds
        await self._record_audit(codec.prepare_audit(entry, cut))

    async def audit(self, *, limit: int = 50, before: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first; ``before``: only entries with a smaller ``id``."""
        return await self._audit(codec.check_limit(limit), codec.check_before(before))

    async def outbound_counts(self, number: str, *, now: float) -> OutboundCounts:
        """Outbound calls to ``number`` created in the last 24 hours, all outbound calls created
        in the last hour, and the talk time (answer to end, or to ``now`` while up) of the
        outbound calls created in the last 24 hours."""
        if codec.unstorable(number):
            raise ValueError("number contains a NUL character")
        at = float(now)
        return await self._outbound_counts(number, at - DAY_SECONDS, at - HOUR_SECONDS, at)

    # -- beside a call: request, result, owner questions, report outbox ----------------------

    async def call_spec(self, call_id: str) -> CallSpec | None:
        """What was asked for the call beyond its row (``None``: a plain call)."""
        if codec.unstorable(call_id):
            return None
        rows = await self._query("spec", (call_id,))
        return codec.row_to_spec(rows[0]) if rows else None

    async def put_result(self, result: CallResult) -> bool:
        """Store a call's final summary/outcome; ``False`` (nothing written) if it has one."""
        return await self._execute(codec.prepare_result(result))

    async def call_result(self, call_id: str) -> CallResult | None:
        if codec.unstorable(call_id):
            return None
        rows = await self._query("result", (call_id,))
        return codec.row_to_result(rows[0]) if rows else None

    async def unfinished_outcomes(self) -> list[str]:
        """Ended task calls whose outcome was never stored (e.g. the server died meanwhile),
        oldest first."""
        rows = await self._query("unfinished_outcomes", codec.TERMINAL_STATE_VALUES)
        return [str(r[0]) for r in rows]

    async def put_question(self, question: OwnerQuestion) -> None:
        """Store a new question (``StoreError`` if the call already has one with its ``seq``)."""
        if question.status is not QuestionStatus.PENDING:
            raise ValueError("a new question is pending")
        await self._execute(codec.Statement("put_question", codec.question_to_row(question)))

    async def settle_question(
        self,
        call_id: str,
        seq: int,
        status: QuestionStatus,
        *,
        answer: str | None = None,
        at: float,
    ) -> bool:
        """Settle a pending question; ``False`` if it was not pending (already settled)."""
        return await self._execute(codec.prepare_settle(call_id, seq, status, answer, at))

    async def cancel_questions(self, *, at: float, call_id: str | None = None) -> bool:
        """Cancel the pending questions of one call (or of every call, at start-up: nobody waits
        for their answers any more); ``True`` if there were any."""
        if call_id is None:
            return await self._execute(codec.Statement("cancel_all_questions", (float(at),)))
        return await self._execute(codec.Statement("cancel_questions", (float(at), call_id)))

    async def questions(self, call_id: str) -> list[OwnerQuestion]:
        """The call's questions to the owner, in the order they were asked."""
        if codec.unstorable(call_id):
            return []
        return [codec.row_to_question(r) for r in await self._query("questions", (call_id,))]

    async def put_report(self, report: ReportDelivery) -> bool:
        """Record a delivery attempt on the call's outbox row (its ``body`` is kept once set);
        ``False`` if the row does not exist."""
        return await self._execute(codec.prepare_report_update(report))

    async def report(self, call_id: str) -> ReportDelivery | None:
        if codec.unstorable(call_id):
            return None
        rows = await self._query("report", (call_id,))
        return codec.row_to_report(rows[0]) if rows else None

    async def pending_reports(self) -> list[ReportDelivery]:
        """Every report not delivered (or given up on) yet, soonest attempt first."""
        return [codec.row_to_report(r) for r in await self._query("pending_reports", ())]

    # -- call recordings (migration 5) -------------------------------------------------------

    async def put_recording(self, ref: RecordingRef) -> bool:
        """Insert or update a call's recording reference (fields given as ``None`` keep what
        is stored); ``False`` when it was deleted (a deleted recording stays deleted)."""
        if codec.unstorable(ref.call_id):
            raise ValueError("call_id contains a NUL character")
        return await self._execute(codec.Statement("put_recording", recording_sql.to_row(ref)))

    async def recording(self, call_id: str) -> RecordingRef | None:
        if codec.unstorable(call_id):
            return None
        rows = await self._query("recording", (call_id,))
        return recording_sql.from_row(rows[0]) if rows else None

    async def recordings_before(self, before: float, *, limit: int = 500) -> list[RecordingRef]:
        """Recordings (not deleted) started before ``before``, oldest first."""
        rows = await self._query("recordings_before", (float(before), codec.check_limit(limit)))
        return [recording_sql.from_row(r) for r in rows]

    async def open_recordings(self) -> list[RecordingRef]:
        """Recordings still marked as being written (at start-up: a crash left them so)."""
        return [recording_sql.from_row(r) for r in await self._query("recordings_open", ())]

    async def delete_recording(self, call_id: str, *, at: float) -> bool:
        """Mark a recording deleted (its path and URL forgotten); ``False`` if there was none."""
        if codec.unstorable(call_id):
            return False
        return await self._execute(codec.Statement("delete_recording", (float(at), call_id)))

    # -- latency records of bot replies (voice/latency.py) ----------------------------------

    async def set_latency(self, call_id: str, seq: int, latency: dict[str, Any]) -> bool:
        """Attach a latency record to a stored line; ``False`` if the line does not exist."""
        return await self._execute(codec.prepare_latency(call_id, seq, latency))

    async def recent_latency(
        self, *, limit: int, call_id: str | None = None
    ) -> list[tuple[str, int, float, dict[str, Any]]]:
        """The newest ``limit`` latency records, newest first, as ``(call_id, seq, at,
        record)``; only one call's with ``call_id``."""
        codec.check_limit(limit)
        if call_id is None:
            rows = await self._query("recent_latency", (limit,))
        elif codec.unstorable(call_id):
            return []
        else:
            rows = await self._query("call_latency", (call_id, limit))
        return [codec.row_to_turn_latency(r) for r in rows]

    @abstractmethod
    async def _execute(self, statement: codec.Statement) -> bool:
        """Run one prepared single-statement write through the writer (durable on return);
        ``True`` if it changed a row."""

    @abstractmethod
    async def _query(self, key: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Run the backend's read ``key`` with ``params``."""

    # Backends implement only the I/O; the checks above run once, before it, for both.

    @abstractmethod
    async def _block_number(self, write: codec.BlockWrite) -> bool: ...

    @abstractmethod
    async def _unblock_number(self, write: codec.UnblockWrite) -> bool: ...

    @abstractmethod
    async def _blocked_number(self, number: str) -> BlockedNumber | None: ...

    @abstractmethod
    async def _blocked_numbers(self) -> list[BlockedNumber]: ...

    @abstractmethod
    async def _record_audit(self, write: codec.AuditWrite) -> None: ...

    @abstractmethod
    async def _audit(self, limit: int, before: int | None) -> list[AuditEntry]: ...

    @abstractmethod
    async def _outbound_counts(
        self, number: str, day_start: float, hour_start: float, now: float
    ) -> OutboundCounts: ...

    @abstractmethod
    async def _call_ids_with_prefix(self, prefix: str, limit: int) -> list[str]: ...

    @abstractmethod
    async def _caller_notes(self, caller: str) -> list[str]: ...

    @abstractmethod
    async def _remember_caller(self, write: codec.CallerNote) -> None: ...

    @abstractmethod
    async def _forget_caller(self, caller: str) -> bool: ...


def open_store_from_url(url: str, *, sqlite_synchronous: str = "full") -> Store:
    """Return a (not yet opened) store for ``sqlite:///path`` or ``postgresql://…``
    (``sqlite_synchronous``: ``full`` or ``normal``, see ``[store] sqlite_synchronous``)."""
    if url.startswith("sqlite:///"):
        from voicecall.calls.store.sqlite import SQLiteStore

        modes: dict[str, Literal["FULL", "NORMAL"]] = {"full": "FULL", "normal": "NORMAL"}
        if sqlite_synchronous not in modes:
            raise ValueError("sqlite_synchronous must be 'full' or 'normal'")
        return SQLiteStore(url.removeprefix("sqlite:///"), synchronous=modes[sqlite_synchronous])
    if url.startswith(("postgresql://", "postgres://")):
        from voicecall.calls.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store url {url!r}")
