"""Versioned schema migrations for both store backends (data only; the backends apply them).

Rules every backend follows:

* The applied versions are rows of ``schema_version`` (created on first open). The current
  version is the highest row.
* Each pending migration runs in its own transaction together with the insert of its
  ``schema_version`` row, under the backend's write lock (SQLite ``BEGIN IMMEDIATE``,
  PostgreSQL ``pg_advisory_xact_lock``), and the current version is re-read under that lock, so
  several processes opening the same database at once apply each migration exactly once.
* A database whose version is higher than :data:`LATEST_VERSION` was written by a newer voicecall;
  it is refused with a :class:`StoreError` and left untouched.
* Migrations are append-only: never edit a released one, add the next version.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicecall.errors import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


SQLITE_SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY NOT NULL,"
    " description TEXT NOT NULL,"
    " applied_at REAL NOT NULL)"
)

POSTGRES_SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version integer PRIMARY KEY,"
    " description text NOT NULL,"
    " applied_at double precision NOT NULL)"
)

_SQLITE_V1 = (
    """
    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY NOT NULL,
        direction TEXT NOT NULL,
        mode TEXT NOT NULL,
        from_number TEXT,
        to_number TEXT,
        state TEXT NOT NULL,
        provider TEXT NOT NULL,
        provider_call_id TEXT,
        end_reason TEXT,
        message TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        dial_started_at REAL,
        turn INTEGER NOT NULL,
        last_sequence INTEGER NOT NULL,
        error TEXT,
        metadata TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX calls_provider_call_id ON calls (provider_call_id)"
    " WHERE provider_call_id IS NOT NULL",
    "CREATE INDEX calls_state ON calls (state)",
    "CREATE INDEX calls_created ON calls (created_at, call_id)",
    """
    CREATE TABLE events (
        dedupe_key TEXT PRIMARY KEY NOT NULL,
        call_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        detail TEXT
    )
    """,
    "CREATE INDEX events_call ON events (call_id)",
    """
    CREATE TABLE transcript (
        call_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        at REAL NOT NULL,
        final INTEGER NOT NULL,
        turn INTEGER,
        PRIMARY KEY (call_id, seq)
    ) WITHOUT ROWID
    """,
)

# call ids compare bytewise ("C" collation) so keyset pagination orders like SQLite's BINARY.
_POSTGRES_V1 = (
    """
    CREATE TABLE calls (
        call_id text COLLATE "C" PRIMARY KEY,
        direction text NOT NULL,
        mode text NOT NULL,
        from_number text,
        to_number text,
        state text NOT NULL,
        provider text NOT NULL,
        provider_call_id text,
        end_reason text,
        message text,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        answered_at double precision,
        ended_at double precision,
        dial_started_at double precision,
        turn bigint NOT NULL,
        last_sequence bigint NOT NULL,
        error text,
        metadata text NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX calls_provider_call_id ON calls (provider_call_id)"
    " WHERE provider_call_id IS NOT NULL",
    "CREATE INDEX calls_state ON calls (state)",
    "CREATE INDEX calls_created ON calls (created_at, call_id)",
    """
    CREATE TABLE events (
        id bigint GENERATED ALWAYS AS IDENTITY,
        dedupe_key text PRIMARY KEY,
        call_id text NOT NULL,
        kind text NOT NULL,
        at double precision NOT NULL,
        detail text
    )
    """,
    "CREATE INDEX events_call ON events (call_id)",
    """
    CREATE TABLE transcript (
        call_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        speaker text NOT NULL,
        text text NOT NULL,
        at double precision NOT NULL,
        final boolean NOT NULL,
        turn bigint,
        PRIMARY KEY (call_id, seq)
    )
    """,
)

# Per-caller memory (short summaries of earlier calls, keyed by the caller's E.164 number): notes
# is a JSON array of strings, oldest first; updated_at orders callers for pruning.
_SQLITE_V2 = (
    """
    CREATE TABLE caller_memory (
        caller TEXT PRIMARY KEY NOT NULL,
        notes TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX caller_memory_updated ON caller_memory (updated_at, caller)",
)

_POSTGRES_V2 = (
    """
    CREATE TABLE caller_memory (
        caller text COLLATE "C" PRIMARY KEY,
        notes jsonb NOT NULL,
        updated_at double precision NOT NULL
    )
    """,
    "CREATE INDEX caller_memory_updated ON caller_memory (updated_at, caller)",
)

# Outbound safety: the do-not-call list, the audit trail of placed and refused outbound calls
# (AUTOINCREMENT / identity: ids are never reused after old entries are pruned), and an index
# for the per-number call count of the outbound policy (the per-hour count and the talk-time
# budget range over calls_created).
_SQLITE_V3 = (
    """
    CREATE TABLE blocked_numbers (
        number TEXT PRIMARY KEY NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE outbound_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        number TEXT NOT NULL,
        surface TEXT NOT NULL,
        token_fingerprint TEXT,
        outcome TEXT NOT NULL,
        call_id TEXT,
        rule TEXT,
        detail TEXT
    )
    """,
    "CREATE INDEX outbound_audit_at ON outbound_audit (at)",
    "CREATE INDEX calls_outbound_to ON calls (to_number, created_at) WHERE direction = 'outbound'",
)

_POSTGRES_V3 = (
    """
    CREATE TABLE blocked_numbers (
        number text COLLATE "C" PRIMARY KEY,
        reason text,
        created_at double precision NOT NULL
    )
    """,
    """
    CREATE TABLE outbound_audit (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at double precision NOT NULL,
        number text NOT NULL,
        surface text NOT NULL,
        token_fingerprint text,
        outcome text NOT NULL,
        call_id text,
        rule text,
        detail text
    )
    """,
    "CREATE INDEX outbound_audit_at ON outbound_audit (at)",
    "CREATE INDEX calls_outbound_to ON calls (to_number, created_at) WHERE direction = 'outbound'",
)

# Task calls and end-of-call reports, beside the calls row that every status webhook rewrites:
# call_specs (what was asked: task, context, outcome_schema JSON, report_url), call_results (the
# final summary and outcome JSON, written once), call_questions (the owner consults) and
# report_outbox (one durable delivery per call, inserted in the transaction that ends the call).
_SQLITE_V4 = (
    """
    CREATE TABLE call_specs (
        call_id TEXT PRIMARY KEY NOT NULL,
        task TEXT,
        context TEXT,
        outcome_schema TEXT,
        report_url TEXT,
        created_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE call_results (
        call_id TEXT PRIMARY KEY NOT NULL,
        summary TEXT,
        outcome TEXT,
        outcome_error TEXT,
        at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE call_questions (
        call_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        question TEXT NOT NULL,
        asked_at REAL NOT NULL,
        status TEXT NOT NULL,
        answer TEXT,
        settled_at REAL,
        PRIMARY KEY (call_id, seq)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX call_questions_pending ON call_questions (status) WHERE status = 'pending'",
    """
    CREATE TABLE report_outbox (
        webhook_id TEXT PRIMARY KEY NOT NULL,
        call_id TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at REAL NOT NULL,
        body TEXT,
        last_status INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        delivered_at REAL
    )
    """,
    "CREATE INDEX report_outbox_pending ON report_outbox (next_at) WHERE state = 'pending'",
)

_POSTGRES_V4 = (
    """
    CREATE TABLE call_specs (
        call_id text COLLATE "C" PRIMARY KEY,
        task text,
        context text,
        outcome_schema text,
        report_url text,
        created_at double precision NOT NULL
    )
    """,
    """
    CREATE TABLE call_results (
        call_id text COLLATE "C" PRIMARY KEY,
        summary text,
        outcome text,
        outcome_error text,
        at double precision NOT NULL
    )
    """,
    """
    CREATE TABLE call_questions (
        call_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        question text NOT NULL,
        asked_at double precision NOT NULL,
        status text NOT NULL,
        answer text,
        settled_at double precision,
        PRIMARY KEY (call_id, seq)
    )
    """,
    "CREATE INDEX call_questions_pending ON call_questions (status) WHERE status = 'pending'",
    """
    CREATE TABLE report_outbox (
        webhook_id text COLLATE "C" PRIMARY KEY,
        call_id text COLLATE "C" NOT NULL UNIQUE,
        url text NOT NULL,
        state text NOT NULL,
        attempts bigint NOT NULL,
        next_at double precision NOT NULL,
        body text,
        last_status bigint,
        last_error text,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        delivered_at double precision
    )
    """,
    "CREATE INDEX report_outbox_pending ON report_outbox (next_at) WHERE state = 'pending'",
)

# Call recordings: one row per recorded call, where its audio is (a local WAV or Twilio's
# recording) and its state; the retention sweeper keeps a tombstone (status 'deleted').
_RECORDINGS = """
    CREATE TABLE call_recordings (
        call_id {text} PRIMARY KEY{notnull},
        source {text} NOT NULL,
        status {text} NOT NULL,
        path {text},
        sid {text},
        url {text},
        channels {int},
        duration_seconds {real},
        started_at {real} NOT NULL,
        updated_at {real} NOT NULL
    )
    """
_SQLITE_V5 = (
    _RECORDINGS.format(text="TEXT", notnull=" NOT NULL", int="INTEGER", real="REAL"),
    "CREATE INDEX call_recordings_started ON call_recordings (started_at)",
)
_POSTGRES_V5 = (
    _RECORDINGS.format(
        text='text COLLATE "C"', notnull="", int="bigint", real="double precision"
    ).replace('source text COLLATE "C"', "source text"),
    "CREATE INDEX call_recordings_started ON call_recordings (started_at)",
)
# a bot reply's latency record (JSON text, voice/latency.py), set once its first frame was sent
_SQLITE_V6 = ("ALTER TABLE transcript ADD COLUMN latency TEXT",)
_POSTGRES_V6 = ("ALTER TABLE transcript ADD COLUMN latency text",)

# Version 3 belongs to another change being built in parallel (the lead renumbers at merge if
# needed); until it lands here it is an empty step, so databases stay on one numbering.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "calls, events, transcript", _SQLITE_V1, _POSTGRES_V1),
    Migration(2, "caller_memory", _SQLITE_V2, _POSTGRES_V2),
    Migration(3, "blocked_numbers, outbound_audit", _SQLITE_V3, _POSTGRES_V3),
    Migration(
        4, "call_specs, call_results, call_questions, report_outbox", _SQLITE_V4, _POSTGRES_V4
    ),
    Migration(5, "call_recordings", _SQLITE_V5, _POSTGRES_V5),
    Migration(6, "transcript.latency", _SQLITE_V6, _POSTGRES_V6),
)


def latest_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


LATEST_VERSION = latest_version()


def check_sequence(migrations: tuple[Migration, ...]) -> None:
    """Versions must be 1, 2, 3, … with no gap (a programming error otherwise)."""
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            raise RuntimeError(f"migration #{index} has version {migration.version}")


def pending(current: int, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    """The migrations to apply to a database at ``current``; refuses a newer database."""
    check_sequence(migrations)
    latest = latest_version(migrations)
    if current > latest:
        raise StoreError(
            f"the database schema is version {current}, newer than this voicecall supports "
            f"(version {latest}); upgrade voicecall or point it at another database"
        )
    return [m for m in migrations if m.version > current]
