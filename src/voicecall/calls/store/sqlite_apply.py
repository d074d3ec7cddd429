"""What one prepared write does to the SQLite database: its statements, run by the writer
thread inside the batch's transaction (:mod:`voicecall.calls.store.sqlite`). No I/O of its
own beyond the connection it is given."""

from __future__ import annotations

import sqlite3

from voicecall.calls.store import codec
from voicecall.calls.store import sqlite_sql as stmt

__all__ = ["Write", "apply_one", "statements"]

Write = (
    codec.PreparedCommit
    | codec.CallerNote
    | codec.ForgetCaller
    | codec.BlockWrite
    | codec.UnblockWrite
    | codec.AuditWrite
    | codec.AmendLines
    | codec.Statement
)


def statements(prepared: Write) -> int:
    """How many statements ``prepared`` runs (one runs without a savepoint)."""
    if isinstance(prepared, codec.CallerNote):
        return 3  # read, upsert, prune: under a savepoint
    if isinstance(
        prepared, codec.ForgetCaller | codec.BlockWrite | codec.UnblockWrite | codec.Statement
    ):
        return 1
    if isinstance(prepared, codec.AuditWrite):
        return 1 if prepared.prune_before is None else 2
    if isinstance(prepared, codec.AmendLines):
        return 2 if len(prepared.rows) > 1 else 1
    return (
        (prepared.event is not None)
        + 2 * (prepared.call is not None)
        + (2 if len(prepared.transcript) > 1 else len(prepared.transcript))
        + (prepared.spec is not None)
        + (prepared.outbox is not None)
    )


def apply_one(conn: sqlite3.Connection, prepared: Write) -> bool:
    """Run one prepared write's statements in the open transaction; False when it changed
    nothing (a duplicate event, an unknown row)."""
    if isinstance(prepared, codec.CallerNote):
        row = conn.execute(stmt.SELECT_NOTES, (prepared.caller,)).fetchone()
        old = codec.decode_notes(row[0]) if row is not None else []
        notes = codec.append_note(old, prepared.note, prepared.max_entries)
        conn.execute(stmt.UPSERT_NOTES, (prepared.caller, codec.encode_notes(notes), prepared.now))
        conn.execute(stmt.PRUNE_CALLERS, (prepared.caller, prepared.max_callers - 1))
        return True
    if isinstance(prepared, codec.ForgetCaller):
        return conn.execute(stmt.DELETE_CALLER, (prepared.caller,)).rowcount > 0
    if isinstance(prepared, codec.BlockWrite):
        params = (prepared.number, prepared.reason, prepared.created_at)
        return conn.execute(stmt.INSERT_BLOCKED, params).rowcount > 0
    if isinstance(prepared, codec.UnblockWrite):
        return conn.execute(stmt.DELETE_BLOCKED, (prepared.number,)).rowcount > 0
    if isinstance(prepared, codec.AuditWrite):
        conn.execute(stmt.INSERT_AUDIT, prepared.row)
        if prepared.prune_before is not None:
            conn.execute(stmt.PRUNE_AUDIT, (prepared.prune_before,))
        return True
    if isinstance(prepared, codec.AmendLines):
        return sum(conn.execute(stmt.AMEND_TRANSCRIPT, row).rowcount for row in prepared.rows) > 0
    if isinstance(prepared, codec.Statement):
        return conn.execute(stmt.EXTRA_WRITES[prepared.key], prepared.params).rowcount > 0
    if prepared.event is not None:
        cur = conn.execute(stmt.INSERT_EVENT, prepared.event)
        if cur.rowcount == 0:
            return False  # duplicate: nothing else is written
    if prepared.call is not None:
        row = prepared.call
        conn.execute(stmt.UPSERT_CALL, row)
        keys = tuple(row[i] for i in stmt.CALL_KEY_POSITIONS)
        conn.execute(stmt.SET_CALL_KEYS, (*keys, row[0], *keys))
    if prepared.transcript:
        conn.executemany(stmt.INSERT_TRANSCRIPT, prepared.transcript)
    if prepared.spec is not None:
        conn.execute(stmt.INSERT_SPEC, prepared.spec)
    if prepared.outbox is not None:
        conn.execute(stmt.INSERT_OUTBOX, prepared.outbox)
    return True
