"""PostgreSQL store: psycopg 3 async, one batching writer connection plus a tiny read pool.

Design (``psycopg_pool`` is not a dependency, so the pooling here is deliberately small):

* **Writes** go through one dedicated connection driven by a writer task. ``commit()`` queues a
  job and awaits its future. The writer takes every job queued so far (up to ``max_batch``) and
  sends them in pipeline mode inside one transaction: ``BEGIN``, one statement per job, ``COMMIT``
  cost a single network round trip and a single WAL flush (group commit). Futures are resolved
  only after ``COMMIT`` has returned (persist before acknowledge). If anything in the batch
  fails, the transaction is rolled back and the jobs are retried one transaction each, so a
  failing job only fails its own caller.
* Each job is one statement: data-modifying CTEs insert the event with
  ``ON CONFLICT (dedupe_key) DO NOTHING`` and upsert the call row and transcript lines only
  ``WHERE EXISTS`` the event row was inserted, so a duplicate writes nothing and returns false.
* Caller memory (``remember_caller``, ``forget_caller``) is one statement per job on the same
  writer, so it is ordered with every other write and acknowledged only once committed.
* **Reads** use a pool of ``read_pool_size`` autocommit connections (an ``asyncio.Queue`` of
  them); a connection found broken is replaced and the read retried once.
* **Migrations** run once per open, each in its own transaction holding
  ``pg_advisory_xact_lock`` (keyed on the current schema), so instances starting together do not
  race. The schema comes from the connection's ``search_path`` (e.g. ``?options=-csearch_path%3Dx``
  in the URL).
* The URL is never logged or put in an error: errors name ``host:port/dbname`` only, and any
  driver message is scrubbed of the password.

The store is bound to the event loop that called :meth:`open`. If the connection is lost, a
batch in flight fails with :class:`StoreError`; the next batch reconnects. A ``COMMIT`` whose
answer was lost may in fact have been applied; retrying is safe because commits are idempotent
(dedupe key, upserts).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from voicecall.calls.extras import CallSpec, ReportDelivery
from voicecall.calls.model import CallRecord, TranscriptEntry
from voicecall.calls.policy import OutboundCounts
from voicecall.calls.store import codec, extras_sql, migrations
from voicecall.calls.store.base import AuditEntry, BlockedNumber, CallPage, EventRow, Store
from voicecall.errors import StoreError

_COLS = ", ".join(codec.CALL_COLUMNS)
_SELECT_CALL = f"SELECT {_COLS} FROM calls"  # noqa: S608 - column names are constants

_CALL_TYPES: dict[str, str] = {
    "created_at": "float8",
    "updated_at": "float8",
    "answered_at": "float8",
    "ended_at": "float8",
    "dial_started_at": "float8",
    "turn": "int8",
    "last_sequence": "int8",
}
_TRANSCRIPT_ARRAY_TYPES = ("text", "int8", "text", "text", "float8", "bool", "int8")
_ADVISORY_CLASS = 0x766F6963  # "voic": first key of pg_advisory_xact_lock(int, int)


def _commit_sql(
    has_event: bool,
    has_call: bool,
    has_transcript: bool,
    has_spec: bool = False,
    has_outbox: bool = False,
) -> str:
    ctes: list[str] = []
    gate = "true"
    if has_event:
        ctes.append(
            f"ev AS (INSERT INTO events ({', '.join(codec.EVENT_COLUMNS)})"  # noqa: S608
            " VALUES (%s, %s, %s, %s::float8, %s)"
            " ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1)"
        )
        gate = "EXISTS (SELECT 1 FROM ev)"
    if has_call:
        values = ", ".join(f"%s::{_CALL_TYPES.get(c, 'text')}" for c in codec.CALL_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in codec.CALL_UPDATE_COLUMNS)
        ctes.append(
            f"c AS (INSERT INTO calls ({_COLS}) SELECT {values} WHERE {gate}"
            f" ON CONFLICT (call_id) DO UPDATE SET {updates})"
        )
    if has_transcript:
        # no ON CONFLICT: a line that exists fails the statement (lines are never overwritten)
        arrays = ", ".join(f"%s::{t}[]" for t in _TRANSCRIPT_ARRAY_TYPES)
        ctes.append(
            f"t AS (INSERT INTO transcript ({', '.join(codec.TRANSCRIPT_COLUMNS)})"  # noqa: S608
            f" SELECT * FROM unnest({arrays}) WHERE {gate})"
        )
    if has_spec:
        values = ", ".join(f"%s::{t}" for t in extras_sql.SPEC_PG_TYPES)
        ctes.append(
            f"s AS (INSERT INTO call_specs ({', '.join(codec.SPEC_COLUMNS)})"
            f" SELECT {values} WHERE {gate} ON CONFLICT (call_id) DO NOTHING)"
        )
    if has_outbox:
        values = ", ".join(f"%s::{t}" for t in extras_sql.REPORT_PG_TYPES)
        ctes.append(
            f"o AS (INSERT INTO report_outbox ({', '.join(codec.REPORT_COLUMNS)})"
            f" SELECT {values} WHERE {gate} ON CONFLICT DO NOTHING)"
        )
    return f"WITH {', '.join(ctes)} SELECT {gate}"


_COMMIT_SQL: dict[tuple[bool, bool, bool, bool, bool], str] = {
    (e, c, t, s, o): _commit_sql(e, c, t, s, o)
    for e, c, t, s, o in itertools.product((False, True), repeat=5)
    if (e or c or t) and (c or not (s or o))
}


def _commit_params(prepared: codec.PreparedCommit) -> tuple[str, list[Any]]:
    key = (
        prepared.event is not None,
        prepared.call is not None,
        bool(prepared.transcript),
        prepared.spec is not None,
        prepared.outbox is not None,
    )
    params: list[Any] = []
    if prepared.event is not None:
        params.extend(prepared.event)
    if prepared.call is not None:
        params.extend(prepared.call)
    if prepared.transcript:
        params.extend(list(column) for column in zip(*prepared.transcript, strict=True))
    if prepared.spec is not None:
        params.extend(prepared.spec)
    if prepared.outbox is not None:
        params.extend(prepared.outbox)
    return _COMMIT_SQL[key], params


_EXTRA_WRITES = {k: extras_sql.for_postgres_write(v) for k, v in extras_sql.WRITES.items()}
_EXTRA_READS = dict(extras_sql.READS)


_AMEND_SQL = (
    "WITH a AS (UPDATE transcript AS t SET text = u.text, final = u.final"
    " FROM unnest(%s::text[], %s::bool[], %s::text[], %s::int8[]) AS u(text, final, call_id, seq)"
    " WHERE t.call_id = u.call_id AND t.seq = u.seq RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM a)"
)

# Caller memory: append the note and keep the newest max_entries in one statement (the row is
# locked by the upsert, so concurrent notes for one caller never lose each other), then drop the
# other callers beyond the newest max_callers - 1. Sibling CTEs share one snapshot: the prune
# cannot see (or delete) the row written next to it, hence "other callers".
_REMEMBER_SQL = (
    "WITH up AS (INSERT INTO caller_memory AS m (caller, notes, updated_at)"
    " VALUES (%s::text, jsonb_build_array(%s::text), %s::float8)"
    " ON CONFLICT (caller) DO UPDATE SET"
    " notes = (SELECT jsonb_agg(x.e ORDER BY x.i)"
    " FROM jsonb_array_elements(m.notes || EXCLUDED.notes) WITH ORDINALITY AS x(e, i)"
    " WHERE x.i > jsonb_array_length(m.notes) + 1 - %s::int),"
    " updated_at = EXCLUDED.updated_at"
    " RETURNING 1),"
    " pruned AS (DELETE FROM caller_memory WHERE caller IN (SELECT caller FROM caller_memory"
    " WHERE caller <> %s::text ORDER BY updated_at DESC, caller DESC OFFSET %s::int))"
    " SELECT EXISTS (SELECT 1 FROM up)"
)
_FORGET_SQL = (
    "WITH d AS (DELETE FROM caller_memory WHERE caller = %s RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM d)"
)


_BLOCK_SQL = (
    "WITH ins AS (INSERT INTO blocked_numbers (number, reason, created_at)"
    " VALUES (%s::text, %s::text, %s::float8) ON CONFLICT (number) DO NOTHING RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM ins)"
)
_UNBLOCK_SQL = (
    "WITH d AS (DELETE FROM blocked_numbers WHERE number = %s RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM d)"
)
_SELECT_BLOCKED = f"SELECT {', '.join(codec.BLOCKED_COLUMNS)} FROM blocked_numbers"  # noqa: S608
_AUDIT_VALUES = "%s::float8, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text"
_AUDIT_SQL = (
    f"INSERT INTO outbound_audit ({', '.join(codec.AUDIT_COLUMNS[1:])})"  # noqa: S608
    f" VALUES ({_AUDIT_VALUES}) RETURNING true"
)
# the prune is a sibling CTE: it cannot see (or delete) the row inserted next to it
_AUDIT_PRUNE_SQL = (
    f"WITH ins AS (INSERT INTO outbound_audit ({', '.join(codec.AUDIT_COLUMNS[1:])})"  # noqa: S608
    f" VALUES ({_AUDIT_VALUES}) RETURNING 1),"
    " pruned AS (DELETE FROM outbound_audit WHERE at < %s::float8)"
    " SELECT EXISTS (SELECT 1 FROM ins)"
)
_SELECT_AUDIT = f"SELECT {', '.join(codec.AUDIT_COLUMNS)} FROM outbound_audit"  # noqa: S608
_OUTBOUND_COUNTS = (
    "SELECT"
    " (SELECT count(*) FROM calls WHERE direction = 'outbound' AND to_number = %s::text"
    "  AND created_at >= %s::float8),"
    " (SELECT count(*) FROM calls WHERE direction = 'outbound' AND created_at >= %s::float8),"
    " (SELECT coalesce(sum(greatest(coalesce(ended_at, %s::float8) - answered_at, 0)), 0)"
    "  FROM calls WHERE direction = 'outbound' AND answered_at IS NOT NULL"
    "  AND created_at >= %s::float8)"
)


def redact_url(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL: safe to show (no user, password, options)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "postgresql://<unparsable url>"
    db = parts.path.lstrip("/") or "postgres"
    return f"postgresql://{host}:{port}/{db}"


@dataclass(frozen=True, slots=True)
class WriterStats:
    submitted: int
    batches: int
    items: int


@dataclass(slots=True)
class _Job:
    sql: str
    params: list[Any]
    future: asyncio.Future[bool]


_STOP = object()


class PostgresStore(Store):
    """PostgreSQL backend for ``postgresql://user[:password]@host[:port]/dbname[?options]``."""

    def __init__(
        self,
        url: str,
        *,
        read_pool_size: int = 2,
        max_batch: int = 512,
        connect_timeout: float = 10.0,
    ) -> None:
        if read_pool_size < 1 or max_batch < 1:
            raise ValueError("read_pool_size and max_batch must be >= 1")
        self._url = url
        self._where = redact_url(url)
        self._secrets = self._secret_parts(url)
        self._read_pool_size = read_pool_size
        self._max_batch = max_batch
        self._connect_timeout = connect_timeout
        self._writer_conn: psycopg.AsyncConnection[Any] | None = None
        self._readers: asyncio.Queue[psycopg.AsyncConnection[Any] | None] | None = None
        self._queue: asyncio.Queue[object] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._open = False
        self._submitted = 0
        self._batches = 0
        self._items = 0

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    @property
    def url(self) -> str:
        """The connection URL (it may carry a password: never log it; see ``redact_url``)."""
        return self._url

    @property
    def stats(self) -> WriterStats:
        return WriterStats(self._submitted, self._batches, self._items)

    # -- errors ----------------------------------------------------------------------------

    @staticmethod
    def _secret_parts(url: str) -> list[str]:
        secrets = [url]
        try:
            password = urllib.parse.urlsplit(url).password
        except ValueError:
            password = None
        if password:
            secrets.extend({password, urllib.parse.unquote(password)})
        return sorted(secrets, key=len, reverse=True)

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return StoreError(
            f"PostgreSQL store {self._where}: {doing} failed: {type(exc).__name__}: {message}"
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise self._error(exc, "connect") from None

    async def open(self) -> None:
        if self._open:
            return
        writer = await self._connect()
        readers: list[psycopg.AsyncConnection[Any]] = []
        try:
            await self._migrate(writer)
            for _ in range(self._read_pool_size):
                readers.append(await self._connect())
        except BaseException:
            for conn in (writer, *readers):
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        self._writer_conn = writer
        self._readers = asyncio.Queue()
        for conn in readers:
            self._readers.put_nowait(conn)
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._writer_loop(), name="voicecall-pg-writer")
        self._open = True

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        assert self._queue is not None and self._readers is not None
        self._queue.put_nowait(_STOP)
        if self._writer_task is not None:
            with contextlib.suppress(Exception):
                await self._writer_task
        self._writer_task = None
        conns: list[psycopg.AsyncConnection[Any] | None] = [self._writer_conn]
        for _ in range(self._read_pool_size):
            conns.append(await self._readers.get())
        for conn in conns:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._writer_conn = None

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        all_migrations = migrations.MIGRATIONS
        try:
            while True:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                        (_ADVISORY_CLASS,),
                    )
                    schema = await (await conn.execute("SELECT current_schema()")).fetchone()
                    if schema is None or schema[0] is None:
                        raise StoreError(
                            f"PostgreSQL store {self._where}: no schema on the search_path"
                        )
                    await conn.execute(migrations.POSTGRES_SCHEMA_VERSION_TABLE)
                    cur = await conn.execute("SELECT max(version) FROM schema_version")
                    row = await cur.fetchone()
                    current = int(row[0]) if row and row[0] is not None else 0
                    todo = migrations.pending(current, all_migrations)
                    if not todo:
                        return
                    step = todo[0]
                    for statement in step.postgres:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_version (version, description, applied_at)"
                        " VALUES (%s, %s, %s)",
                        (step.version, step.description, time.time()),
                    )
        except psycopg.Error as exc:
            raise self._error(exc, "schema migration") from None

    # -- writer ----------------------------------------------------------------------------

    async def _writer_loop(self) -> None:
        assert self._queue is not None
        q = self._queue
        while True:
            first = await q.get()
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            batch = [first]
            stop = False
            while len(batch) < self._max_batch and not q.empty():
                nxt = q.get_nowait()
                if nxt is _STOP:
                    stop = True
                    break
                assert isinstance(nxt, _Job)
                batch.append(nxt)
            try:
                outcomes = await self._apply_batch(batch)
            except Exception as exc:  # a bug here must not leave callers waiting forever
                outcomes = [self._error(exc, "commit") for _ in batch]
            self._batches += 1
            self._items += len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)
            if stop:
                return

    async def _writer_connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._writer_conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            self._writer_conn = None
            conn = self._writer_conn = await self._connect()
        return conn

    async def _apply_batch(self, batch: list[_Job]) -> list[bool | BaseException]:
        try:
            conn = await self._writer_connection()
        except StoreError as exc:
            return [StoreError(exc.message) for _ in batch]
        try:
            results: list[bool | BaseException] = []
            async with conn.transaction(), conn.pipeline() as pipeline:
                cursors = []
                for job in batch:
                    cur = conn.cursor()
                    await cur.execute(job.sql, job.params)
                    cursors.append(cur)
                await pipeline.sync()
                for cur in cursors:
                    row = await cur.fetchone()
                    results.append(bool(row and row[0]))
            return results
        except psycopg.Error as exc:
            if conn.broken or conn.closed or len(batch) == 1:
                return [self._error(exc, "commit") for _ in batch]
        # Something in the batch failed and it was rolled back: give each job its own
        # transaction so only the failing one fails.
        return [await self._apply_one(conn, job) for job in batch]

    async def _apply_one(
        self, conn: psycopg.AsyncConnection[Any], job: _Job
    ) -> bool | BaseException:
        try:
            async with conn.transaction():
                cur = await conn.execute(job.sql, job.params)
                row = await cur.fetchone()
            return bool(row and row[0])
        except psycopg.Error as exc:
            return self._error(exc, "commit")

    # -- reads -----------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read on a pooled connection; a connection found dead is replaced and the
        read retried once (reads are side-effect free, unlike commits)."""
        if not self._open or self._readers is None:
            raise StoreError("PostgreSQL store is not open")
        pool = self._readers
        conn = await pool.get()
        try:
            for attempt in (1, 2):
                if conn is None or conn.closed or conn.broken:
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    conn = await self._connect()
                try:
                    cur = await conn.execute(sql, params)
                    return await cur.fetchall()
                except psycopg.Error as exc:
                    if attempt == 1 and conn.broken:
                        continue
                    raise self._error(exc, "read") from None
            raise AssertionError("unreachable")
        finally:
            pool.put_nowait(conn)

    # -- Store API -------------------------------------------------------------------------

    async def commit(
        self,
        call: CallRecord | None,
        *,
        event: EventRow | None = None,
        transcript: Sequence[TranscriptEntry] = (),
        spec: CallSpec | None = None,
        outbox: ReportDelivery | None = None,
    ) -> bool:
        prepared = codec.prepare_commit(call, event, transcript, spec, outbox)
        if not self._open or self._queue is None:
            raise StoreError("PostgreSQL store is not open")
        if prepared.is_empty:
            return True
        sql, params = _commit_params(prepared)
        return await self._submit(sql, params)

    async def _submit(self, sql: str, params: list[Any]) -> bool:
        """Queue one statement for the writer; resolves after its transaction committed."""
        if not self._open or self._queue is None:
            raise StoreError("PostgreSQL store is not open")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._submitted += 1
        self._queue.put_nowait(_Job(sql, params, future))
        return await future

    async def get_call(self, call_id: str) -> CallRecord | None:
        if codec.unstorable(call_id):
            return None
        rows = await self._fetch(f"{_SELECT_CALL} WHERE call_id = %s", (call_id,))
        return codec.row_to_call(rows[0]) if rows else None

    async def get_call_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        if codec.unstorable(provider_call_id):
            return None
        rows = await self._fetch(f"{_SELECT_CALL} WHERE provider_call_id = %s", (provider_call_id,))
        return codec.row_to_call(rows[0]) if rows else None

    async def list_active(self) -> list[CallRecord]:
        rows = await self._fetch(
            f"{_SELECT_CALL} WHERE state = ANY(%s) ORDER BY created_at, call_id",
            (list(codec.ACTIVE_STATE_VALUES),),
        )
        return [codec.row_to_call(r) for r in rows]

    async def list_calls(
        self, *, limit: int = 50, cursor: str | None = None, active: bool | None = None
    ) -> CallPage:
        codec.check_limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if active is True:
            where.append("state = ANY(%s)")
            params.append(list(codec.ACTIVE_STATE_VALUES))
        elif active is False:
            where.append("state = ANY(%s)")
            params.append(list(codec.TERMINAL_STATE_VALUES))
        if cursor is not None:
            created_at, call_id = codec.decode_cursor(cursor)
            where.append("(created_at, call_id) < (%s::float8, %s::text)")
            params.extend((created_at, call_id))
        sql = _SELECT_CALL
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, call_id DESC LIMIT %s"
        params.append(limit + 1)
        rows = await self._fetch(sql, params)
        calls = [codec.row_to_call(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = calls[-1]
            next_cursor = codec.encode_cursor(last.created_at, last.call_id)
        return CallPage(calls=calls, next_cursor=next_cursor)

    async def _call_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        rows = await self._fetch(
            "SELECT call_id FROM calls WHERE left(call_id, %s::int) = %s ORDER BY call_id LIMIT %s",
            (len(prefix), prefix, limit),
        )
        return [str(r[0]) for r in rows]

    async def transcript(self, call_id: str) -> list[TranscriptEntry]:
        if codec.unstorable(call_id):
            return []
        rows = await self._fetch(
            f"SELECT {', '.join(codec.TRANSCRIPT_READ_COLUMNS)} FROM transcript"  # noqa: S608
            " WHERE call_id = %s ORDER BY seq",
            (call_id,),
        )
        return [codec.row_to_transcript(r) for r in rows]

    async def has_event(self, dedupe_key: str) -> bool:
        if codec.unstorable(dedupe_key):
            return False
        rows = await self._fetch("SELECT 1 FROM events WHERE dedupe_key = %s", (dedupe_key,))
        return bool(rows)

    async def events(self, call_id: str) -> list[EventRow]:
        if codec.unstorable(call_id):
            return []
        rows = await self._fetch(
            f"SELECT {', '.join(codec.EVENT_COLUMNS)} FROM events"  # noqa: S608
            " WHERE call_id = %s ORDER BY at, id",
            (call_id,),
        )
        return [codec.row_to_event(r) for r in rows]

    async def _caller_notes(self, caller: str) -> list[str]:
        rows = await self._fetch("SELECT notes FROM caller_memory WHERE caller = %s", (caller,))
        return codec.decode_notes(rows[0][0]) if rows else []

    async def _remember_caller(self, w: codec.CallerNote) -> None:
        params: list[Any] = [w.caller, w.note, w.now, w.max_entries, w.caller, w.max_callers - 1]
        await self._submit(_REMEMBER_SQL, params)

    async def _forget_caller(self, caller: str) -> bool:
        return await self._submit(_FORGET_SQL, [caller])

    async def _block_number(self, w: codec.BlockWrite) -> bool:
        return await self._submit(_BLOCK_SQL, [w.number, w.reason, w.created_at])

    async def _unblock_number(self, w: codec.UnblockWrite) -> bool:
        return await self._submit(_UNBLOCK_SQL, [w.number])

    async def _blocked_number(self, number: str) -> BlockedNumber | None:
        rows = await self._fetch(f"{_SELECT_BLOCKED} WHERE number = %s", (number,))
        return codec.row_to_blocked(rows[0]) if rows else None

    async def _blocked_numbers(self) -> list[BlockedNumber]:
        rows = await self._fetch(f"{_SELECT_BLOCKED} ORDER BY created_at, number", ())
        return [codec.row_to_blocked(r) for r in rows]

    async def _record_audit(self, w: codec.AuditWrite) -> None:
        if w.prune_before is None:
            await self._submit(_AUDIT_SQL, list(w.row))
        else:
            await self._submit(_AUDIT_PRUNE_SQL, [*w.row, w.prune_before])

    async def _audit(self, limit: int, before: int | None) -> list[AuditEntry]:
        if before is None:
            rows = await self._fetch(f"{_SELECT_AUDIT} ORDER BY id DESC LIMIT %s", (limit,))
        else:
            rows = await self._fetch(
                f"{_SELECT_AUDIT} WHERE id < %s ORDER BY id DESC LIMIT %s", (before, limit)
            )
        return [codec.row_to_audit(r) for r in rows]

    async def _outbound_counts(
        self, number: str, day_start: float, hour_start: float, now: float
    ) -> OutboundCounts:
        rows = await self._fetch(_OUTBOUND_COUNTS, (number, day_start, hour_start, now, day_start))
        return OutboundCounts(int(rows[0][0]), int(rows[0][1]), float(rows[0][2]))

    async def _amend_lines(self, write: codec.AmendLines) -> bool:
        return await self._submit(_AMEND_SQL, [list(col) for col in zip(*write.rows, strict=True)])

    async def _execute(self, statement: codec.Statement) -> bool:
        return await self._submit(_EXTRA_WRITES[statement.key], list(statement.params))

    async def _query(self, key: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        return await self._fetch(_EXTRA_READS[key], params)
