"""The SQL text of the SQLite store (:mod:`voicecall.calls.store.sqlite`): one statement per
write or read it runs, built once from the codec's column lists. Column and table names are
constants; values are always bound parameters."""

from __future__ import annotations

from voicecall.calls.store import codec, extras_sql

COLS = ", ".join(codec.CALL_COLUMNS)
SELECT_CALL = f"SELECT {COLS} FROM calls"  # noqa: S608 - column names are constants
# a call is inserted whole; an existing one gets its unindexed columns here and its indexed
# ones from SET_CALL_KEYS, only when they changed (see codec.CALL_INDEXED_UPDATE_COLUMNS)
UPSERT_CALL = (
    f"INSERT INTO calls ({COLS}) VALUES ({', '.join('?' * len(codec.CALL_COLUMNS))})"  # noqa: S608
    " ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in codec.CALL_UPDATE_COLUMNS
        if c not in codec.CALL_INDEXED_UPDATE_COLUMNS
    )
)
SET_CALL_KEYS = (
    "UPDATE calls SET "  # noqa: S608 - column names are constants
    + ", ".join(f"{c} = ?" for c in codec.CALL_INDEXED_UPDATE_COLUMNS)
    + " WHERE call_id = ? AND ("
    + " OR ".join(f"{c} IS NOT ?" for c in codec.CALL_INDEXED_UPDATE_COLUMNS)
    + ")"
)
#: Where SET_CALL_KEYS's values are in a call row (codec.CALL_COLUMNS order).
CALL_KEY_POSITIONS = tuple(codec.CALL_COLUMNS.index(c) for c in codec.CALL_INDEXED_UPDATE_COLUMNS)
INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(codec.EVENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608
    " ON CONFLICT (dedupe_key) DO NOTHING"
)
# no ON CONFLICT: a line that exists makes the commit fail (lines are never overwritten)
INSERT_TRANSCRIPT = (
    f"INSERT INTO transcript ({', '.join(codec.TRANSCRIPT_COLUMNS)})"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
AMEND_TRANSCRIPT = "UPDATE transcript SET text = ?, final = ? WHERE call_id = ? AND seq = ?"
SELECT_NOTES = "SELECT notes FROM caller_memory WHERE caller = ?"
UPSERT_NOTES = (
    "INSERT INTO caller_memory (caller, notes, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (caller) DO UPDATE SET notes = excluded.notes, updated_at = excluded.updated_at"
)
# every other caller beyond the newest max_callers - 1 (the caller just written is kept)
PRUNE_CALLERS = (
    "DELETE FROM caller_memory WHERE caller IN (SELECT caller FROM caller_memory"
    " WHERE caller <> ? ORDER BY updated_at DESC, caller DESC LIMIT -1 OFFSET ?)"
)
DELETE_CALLER = "DELETE FROM caller_memory WHERE caller = ?"
INSERT_BLOCKED = (
    "INSERT INTO blocked_numbers (number, reason, created_at) VALUES (?, ?, ?)"
    " ON CONFLICT (number) DO NOTHING"
)
DELETE_BLOCKED = "DELETE FROM blocked_numbers WHERE number = ?"
SELECT_BLOCKED = f"SELECT {', '.join(codec.BLOCKED_COLUMNS)} FROM blocked_numbers"  # noqa: S608
INSERT_AUDIT = (
    f"INSERT INTO outbound_audit ({', '.join(codec.AUDIT_COLUMNS[1:])})"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
PRUNE_AUDIT = "DELETE FROM outbound_audit WHERE at < ?"
SELECT_AUDIT = f"SELECT {', '.join(codec.AUDIT_COLUMNS)} FROM outbound_audit"  # noqa: S608
OUTBOUND_COUNTS = (
    "SELECT"
    " (SELECT count(*) FROM calls WHERE direction = 'outbound' AND to_number = ?"
    "  AND created_at >= ?),"
    " (SELECT count(*) FROM calls WHERE direction = 'outbound' AND created_at >= ?),"
    " (SELECT total(max(coalesce(ended_at, ?) - answered_at, 0)) FROM calls"
    "  WHERE direction = 'outbound' AND answered_at IS NOT NULL AND created_at >= ?)"
)
INSERT_SPEC = extras_sql.for_sqlite(extras_sql.INSERT_SPEC)
INSERT_OUTBOX = extras_sql.for_sqlite(extras_sql.INSERT_OUTBOX)
EXTRA_WRITES = {k: extras_sql.for_sqlite(v) for k, v in extras_sql.WRITES.items()}
EXTRA_READS = {k: extras_sql.for_sqlite(v) for k, v in extras_sql.READS.items()}
TERMINAL_IN = ", ".join("?" * len(codec.TERMINAL_STATE_VALUES))
ACTIVE_IN = ", ".join("?" * len(codec.ACTIVE_STATE_VALUES))
