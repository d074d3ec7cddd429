"""The SQL of what is kept beside a call (migration 4), shared by both backends.

Written once with ``%s`` placeholders; :func:`for_sqlite` turns them into ``?`` and
:func:`for_postgres_write` wraps a write so that it answers whether it changed a row (the shape
the PostgreSQL writer expects). None of these statements contains a literal ``%``.
"""

from __future__ import annotations

from voicecall.calls.store import codec, recording_sql

_SPEC_COLS = ", ".join(codec.SPEC_COLUMNS)
_RESULT_COLS = ", ".join(codec.RESULT_COLUMNS)
_QUESTION_COLS = ", ".join(codec.QUESTION_COLUMNS)
_REPORT_COLS = ", ".join(codec.REPORT_COLUMNS)


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


WRITES: dict[str, str] = {
    "put_result": f"INSERT INTO call_results ({_RESULT_COLS})"  # noqa: S608 - constants
    f" VALUES ({_marks(len(codec.RESULT_COLUMNS))}) ON CONFLICT (call_id) DO NOTHING",
    "put_question": f"INSERT INTO call_questions ({_QUESTION_COLS})"  # noqa: S608
    f" VALUES ({_marks(len(codec.QUESTION_COLUMNS))})",
    "settle_question": "UPDATE call_questions SET status = %s, answer = %s, settled_at = %s"
    " WHERE call_id = %s AND seq = %s AND status = 'pending'",
    "cancel_questions": "UPDATE call_questions SET status = 'cancelled', settled_at = %s"
    " WHERE call_id = %s AND status = 'pending'",
    "cancel_all_questions": "UPDATE call_questions SET status = 'cancelled', settled_at = %s"
    " WHERE status = 'pending'",
    # the body is frozen by the first attempt that sets it: every retry sends the same bytes
    "set_latency": "UPDATE transcript SET latency = %s WHERE call_id = %s AND seq = %s",
    "put_report": "UPDATE report_outbox SET state = %s, attempts = %s, next_at = %s,"
    " body = COALESCE(body, %s), last_status = %s, last_error = %s, updated_at = %s,"
    " delivered_at = %s WHERE webhook_id = %s",
}

_TERMINAL = _marks(len(codec.TERMINAL_STATE_VALUES))

READS: dict[str, str] = {
    "spec": f"SELECT {_SPEC_COLS} FROM call_specs WHERE call_id = %s",  # noqa: S608
    "result": f"SELECT {_RESULT_COLS} FROM call_results WHERE call_id = %s",  # noqa: S608
    "questions": f"SELECT {_QUESTION_COLS} FROM call_questions"  # noqa: S608
    " WHERE call_id = %s ORDER BY seq",
    "recent_latency": "SELECT call_id, seq, at, latency FROM transcript"
    " WHERE latency IS NOT NULL ORDER BY at DESC, call_id, seq DESC LIMIT %s",
    "call_latency": "SELECT call_id, seq, at, latency FROM transcript"
    " WHERE call_id = %s AND latency IS NOT NULL ORDER BY seq DESC LIMIT %s",
    "report": f"SELECT {_REPORT_COLS} FROM report_outbox WHERE call_id = %s",  # noqa: S608
    "pending_reports": f"SELECT {_REPORT_COLS} FROM report_outbox"  # noqa: S608
    " WHERE state = 'pending' ORDER BY next_at, webhook_id",
    "unfinished_outcomes": "SELECT s.call_id FROM call_specs s JOIN calls c"  # noqa: S608
    f" ON c.call_id = s.call_id WHERE s.task IS NOT NULL AND c.state IN ({_TERMINAL})"
    " AND NOT EXISTS (SELECT 1 FROM call_results r WHERE r.call_id = s.call_id)"
    " ORDER BY c.ended_at, s.call_id",
}

# inside commit(): a new call's request, the ending call's report outbox row
INSERT_SPEC = (
    f"INSERT INTO call_specs ({_SPEC_COLS})"  # noqa: S608
    f" VALUES ({_marks(len(codec.SPEC_COLUMNS))}) ON CONFLICT (call_id) DO NOTHING"
)
INSERT_OUTBOX = (
    f"INSERT INTO report_outbox ({_REPORT_COLS})"  # noqa: S608
    f" VALUES ({_marks(len(codec.REPORT_COLUMNS))}) ON CONFLICT DO NOTHING"
)

SPEC_PG_TYPES = ("text", "text", "text", "text", "text", "float8")
REPORT_PG_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "int8",
    "float8",
    "text",
    "int8",
    "text",
    "float8",
    "float8",
    "float8",
)


def for_sqlite(sql: str) -> str:
    return sql.replace("%s", "?")


def for_postgres_write(sql: str) -> str:
    return f"WITH w AS ({sql} RETURNING 1) SELECT EXISTS (SELECT 1 FROM w)"  # noqa: S608


# call recordings (migration 5): their statements live beside their codec
WRITES.update(recording_sql.WRITES)
READS.update(recording_sql.READS)
