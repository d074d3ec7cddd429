"""The default durable store: one SQLite file, stdlib ``sqlite3``, WAL, group commit.

Design
------
* **One writer thread** owns the only write connection. ``commit()`` encodes its arguments on
  the caller's event loop, puts a job on a queue and awaits a future. The writer takes every job
  queued so far (up to ``max_batch``) and applies them in **one transaction**, each job inside its
  own ``SAVEPOINT`` so one failing job (or a duplicate dedupe key) leaves the others intact. Only
  after ``COMMIT`` has returned are the callers' futures resolved: persist before acknowledge.
  Under concurrency many commits share one transaction (group commit); a lone commit still takes
  a single short transaction.
* Caller-memory writes (``remember_caller``, ``forget_caller``) are jobs on the same queue: a
  caller's notes are read, appended to, trimmed and written back inside the writer's
  transaction, so two notes for one caller never lose each other, and they are acknowledged only
  once committed, like ``commit()``.
* **Reads** run on a separate read-only connection in a dedicated reader thread; WAL lets them
  proceed while the writer commits, and they always see every acknowledged commit.
* **Durability**: ``journal_mode=WAL`` with ``synchronous=FULL`` (default): the WAL is fsynced
  at every commit, so an acknowledged commit survives a process kill (``kill -9``, OOM) *and* a
  power loss or kernel crash. Group commit amortizes that one fsync over the whole batch; measured
  with ``bench/store.py`` on the 2-core dev VM (fsync ~0.2 ms) FULL costs about half the
  throughput of a lone writer (~1.7-2k vs ~2.7-3.8k commits/s) but little under concurrency
  (16 writers: ~9-12k vs ~13k/s; 64 writers: ~12-13k/s both), well above the 5k/s target.
  ``synchronous="NORMAL"`` skips the per-commit fsync: still safe against a process crash
  (committed transactions are in the WAL in the OS page cache before ``commit()`` returns), but
  after a power loss the last transactions before the outage may be rolled back (never a corrupt
  file) although their webhooks were already acknowledged. Choose it only where the disk's fsync
  is very slow and that window is acceptable.
* **Checkpoints** run in their own thread on their own connection (``PASSIVE``, every
  ``checkpoint_interval`` seconds), never inside a commit:
  SQLite's automatic checkpoint (every 1,000 WAL pages) ran in whichever commit crossed the
  mark, and that batch's callers waited for
  the copy into the database file and its fsync (the tail of webhook latency). A passive
  checkpoint lets the writer go on committing meanwhile; committed transactions are durable in
  the WAL before it runs, so checkpoints change nothing about durability. The last connection
  to close checkpoints what is left (SQLite does that itself).
* **The WAL stays small under sustained load.** SQLite starts the WAL file over only when a
  write transaction begins after a *complete* checkpoint. Under a steady stream of commits the
  background pass never catches up with the frames appended meanwhile, so the WAL grew without
  bound (350 MB after 8 s at 4,800 webhooks/s) and, once the load stopped, the first commit
  after the reset truncated it back to ``journal_size_limit``: a 120 ms stall for whichever
  webhooks were waiting. So when a background pass finds more than ``tail_frames`` pages in
  the WAL (4,096 pages, 16 MiB with 4 KiB pages), the writer thread, right after it has
  answered its current batch (nobody of that batch waits), checkpoints the few frames appended
  since; its next transaction then starts the WAL over. The file stays below
  ``tail_frames`` plus one interval's pages (about 9,000 at full load: ~50 MB in all), under
  ``journal_size_limit`` (64 MiB), so it is never truncated. The writer's catch-up costs
  1-5 ms (its copy and the database fsync), so it runs only every few seconds at moderate
  load, and at most once per interval when saturated.
* ``busy_timeout`` makes a second process sharing the file wait for the write lock instead of
  failing at once. Schema migrations run under ``BEGIN IMMEDIATE``
  (see :mod:`voicecall.calls.store.migrations`).
* The file and its parent directories are created on open; a new file gets mode 0600 (the
  ``-wal``/``-shm`` files inherit it from SQLite).
* Every ``sqlite3.Error`` (and ``OSError`` while preparing the path) becomes
  :class:`voicecall.errors.StoreError`.

A store object is bound to no event loop: futures are resolved on the loop of each caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from voicecall.calls.extras import CallSpec, ReportDelivery
from voicecall.calls.model import CallRecord, TranscriptEntry
from voicecall.calls.policy import OutboundCounts
from voicecall.calls.store import codec, migrations
from voicecall.calls.store import sqlite_apply as apply
from voicecall.calls.store import sqlite_sql as stmt
from voicecall.calls.store.base import AuditEntry, BlockedNumber, CallPage, EventRow, Store
from voicecall.errors import StoreError

Synchronous = Literal["NORMAL", "FULL"]
_T = TypeVar("_T")

_STOP = object()


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of the writer thread (for metrics and tests)."""

    submitted: int  # commit() calls queued
    batches: int  # transactions committed or attempted
    items: int  # jobs applied in those transactions


@dataclass(slots=True)
class _Job:
    prepared: apply.Write
    future: asyncio.Future[bool]
    loop: asyncio.AbstractEventLoop


_Outcome = bool | BaseException


def _translate(exc: BaseException, doing: str) -> StoreError:
    # sqlite3 messages never contain data values ("UNIQUE constraint failed: calls.x"), so
    # they are safe to pass on.
    return StoreError(f"SQLite store: {doing} failed: {type(exc).__name__}: {exc}")


class SQLiteStore(Store):
    """SQLite backend. ``path`` is a filesystem path (``:memory:`` is not supported)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
        max_batch: int = 512,
        checkpoint_interval: float = 0.5,
        tail_frames: int = 4096,
    ) -> None:
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ValueError("SQLiteStore needs a filesystem path (not :memory: or a URI)")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if not checkpoint_interval > 0:
            raise ValueError("checkpoint_interval must be > 0")
        self._path = os.path.abspath(path)
        self._synchronous: Synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._max_batch = max_batch
        self._checkpoint_interval = float(checkpoint_interval)
        self._tail_frames = int(tail_frames)
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        # set by the background pass: the writer checkpoints the tail so the WAL can start over
        self._tail_due = threading.Event()
        self.checkpoints = 0
        """Passive checkpoints run so far (the background thread's count)."""
        self.tail_checkpoints = 0
        """The writer's catch-up checkpoints after a background pass (each lets the WAL restart)."""
        self.careful_batches = 0
        """Batches applied again with a savepoint per job because one of their jobs failed."""
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._open = False
        self._submitted = 0
        self._batches = 0
        self._items = 0

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r}, synchronous={self._synchronous!r})"

    @property
    def path(self) -> str:
        return self._path

    @property
    def stats(self) -> WriterStats:
        return WriterStats(self._submitted, self._batches, self._items)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._open:
            return
        try:
            self._prepare_path()
        except OSError as exc:
            raise StoreError(
                f"SQLite store: cannot create {self._path}: {exc.strerror or exc}"
            ) from None
        self._queue = queue.SimpleQueue()
        ready: ThreadFuture[None] = ThreadFuture()
        writer = threading.Thread(
            target=self._writer_main, args=(ready,), name="voicecall-sqlite-writer", daemon=True
        )
        writer.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            await asyncio.to_thread(writer.join)
            raise
        self._writer = writer
        self._checkpoint_stop = threading.Event()
        checkpointer = threading.Thread(
            target=self._checkpoint_main,
            args=(self._checkpoint_stop,),
            name="voicecall-sqlite-checkpoint",
            daemon=True,
        )
        checkpointer.start()
        self._checkpointer = checkpointer
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicecall-sqlite-read")
        self._open = True
        try:
            await self._read(lambda conn: conn.execute("SELECT 1").fetchone())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self._checkpoint_stop.set()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.join)
        self._queue.put(_STOP)
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(reader, self._close_read_conn)
            reader.shutdown(wait=False)
        if writer is not None:
            await asyncio.to_thread(writer.join)

    def _prepare_path(self) -> None:
        parent = os.path.dirname(self._path)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=True,
            cached_statements=64,
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
        return conn

    # -- writer thread ---------------------------------------------------------------------

    def _writer_main(self, ready: ThreadFuture[None]) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            ready.set_exception(_translate(exc, f"opening {self._path}"))
            return
        try:
            try:
                self._configure_writer(conn)
                self._migrate(conn)
            except sqlite3.Error as exc:
                ready.set_exception(_translate(exc, f"opening {self._path}"))
                return
            except StoreError as exc:
                ready.set_exception(exc)
                return
            try:
                ready.set_result(None)
            except InvalidStateError:  # open() was cancelled meanwhile: nobody will write
                return
            self._writer_loop(conn)
        finally:
            conn.close()

    def _configure_writer(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL answers SQLITE_BUSY at once, without the busy handler,
        # while another process opening the same file holds a lock: retry within busy_timeout.
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"SQLite store: cannot enable WAL mode on {self._path}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = OFF")
        # after a checkpoint, shrink a WAL that grew during a burst back to at most 64 MiB
        conn.execute("PRAGMA journal_size_limit = 67108864")
        # checkpoints are the checkpoint thread's job, never a commit's (see the module doc)
        conn.execute("PRAGMA wal_autocheckpoint = 0")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        all_migrations = migrations.MIGRATIONS
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(migrations.SQLITE_SCHEMA_VERSION_TABLE)
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                current = int(row[0]) if row and row[0] is not None else 0
                todo = migrations.pending(current, all_migrations)
                if not todo:
                    conn.execute("COMMIT")
                    return
                step = todo[0]
                for statement in step.sqlite:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (step.version, step.description, time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _writer_loop(self, conn: sqlite3.Connection) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                assert isinstance(nxt, _Job)
                batch.append(nxt)
            try:
                outcomes = self._apply_batch(conn, batch)
            except Exception as exc:  # a bug here must not leave callers waiting forever
                outcomes = [_translate(exc, "commit") for _ in batch]
            self._batches += 1
            self._items += len(batch)
            self._deliver(batch, outcomes)
            if stop:
                return
            if self._tail_due.is_set():
                self._tail_due.clear()
                self._checkpoint_tail(conn)

    def _checkpoint_tail(self, conn: sqlite3.Connection) -> None:
        """Copy the frames appended since the background pass (a few hundred pages at most):
        the checkpoint is then complete and the writer's next transaction restarts the WAL."""
        with contextlib.suppress(sqlite3.Error):  # the background pass runs again: next time
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy:
                self.tail_checkpoints += 1

    def _apply_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        """The batch in one transaction. First without a savepoint per job (two statements
        fewer per webhook: they are a fifth of the writer's work); if any job fails, the whole
        transaction is rolled back and the batch is applied again with a savepoint per job,
        so that the failing job writes nothing and spares the others."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [_translate(exc, "begin transaction") for _ in batch]
        try:
            outcomes: list[_Outcome] = [apply.apply_one(conn, job.prepared) for job in batch]
            conn.execute("COMMIT")
        except (sqlite3.Error, StoreError):
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self.careful_batches += 1
            return self._apply_careful(conn, batch)
        return outcomes

    def _apply_careful(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [_translate(exc, "begin transaction") for _ in batch]
        outcomes: list[_Outcome] = []
        try:
            for job in batch:
                prepared = job.prepared
                if apply.statements(prepared) == 1:
                    # one statement is atomic by itself: no savepoint round trips needed
                    try:
                        outcomes.append(apply.apply_one(conn, prepared))
                    except sqlite3.Error as exc:
                        outcomes.append(_translate(exc, "commit"))
                    continue
                conn.execute("SAVEPOINT item")
                try:
                    ok = apply.apply_one(conn, prepared)
                except (sqlite3.Error, StoreError) as exc:
                    conn.execute("ROLLBACK TO item")
                    outcomes.append(
                        exc if isinstance(exc, StoreError) else _translate(exc, "commit")
                    )
                else:
                    outcomes.append(ok)
                conn.execute("RELEASE item")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return [_translate(exc, "commit") for _ in batch]
        return outcomes

    @staticmethod
    def _deliver(batch: list[_Job], outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], _Outcome]]] = {}
        for job, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, pairs)

    # -- checkpoint thread -----------------------------------------------------------------

    def _checkpoint_main(self, stop: threading.Event) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error:
            return  # the writer opened the same file a moment ago; nothing useful to do
        try:
            while not stop.wait(self._checkpoint_interval):
                with contextlib.suppress(sqlite3.Error):  # busy or locked: next time
                    self._checkpoint_pass(conn)
        finally:
            conn.close()

    def _checkpoint_pass(self, conn: sqlite3.Connection) -> None:
        """One background pass. When the WAL holds more than ``tail_frames`` pages, the writer
        then checkpoints the tail itself, so that the WAL starts over (see the module doc)."""
        busy, log_frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        if not busy and log_frames > self._tail_frames:
            self._tail_due.set()

    # -- reader thread ---------------------------------------------------------------------

    def _read_connection(self) -> sqlite3.Connection:
        if self._read_conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._read_conn = conn
        return self._read_conn

    def _close_read_conn(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None

    def _run_read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            return fn(self._read_connection())
        except sqlite3.Error as exc:
            raise _translate(exc, "read") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        reader = self._reader
        if not self._open or reader is None:
            raise StoreError("SQLite store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(reader, self._run_read, fn)
        except RuntimeError as exc:  # executor shut down by a concurrent close()
            raise StoreError("SQLite store is closed") from exc

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
        if not self._open:
            raise StoreError("SQLite store is not open")
        if prepared.is_empty:
            return True
        return await self._submit(prepared)

    async def _submit(self, prepared: apply.Write) -> bool:
        """Queue one write for the writer thread; resolves after its transaction committed."""
        if not self._open:
            raise StoreError("SQLite store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._submitted += 1
        self._queue.put(_Job(prepared, future, loop))
        return await future

    async def get_call(self, call_id: str) -> CallRecord | None:
        if codec.unstorable(call_id):
            return None
        row = await self._read(
            lambda c: c.execute(f"{stmt.SELECT_CALL} WHERE call_id = ?", (call_id,)).fetchone()
        )
        return None if row is None else codec.row_to_call(row)

    async def get_call_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        if codec.unstorable(provider_call_id):
            return None
        row = await self._read(
            lambda c: c.execute(
                f"{stmt.SELECT_CALL} WHERE provider_call_id = ?", (provider_call_id,)
            ).fetchone()
        )
        return None if row is None else codec.row_to_call(row)

    async def list_active(self) -> list[CallRecord]:
        rows = await self._read(
            lambda c: c.execute(
                f"{stmt.SELECT_CALL} WHERE state IN ({stmt.ACTIVE_IN})"
                " ORDER BY created_at, call_id",
                codec.ACTIVE_STATE_VALUES,
            ).fetchall()
        )
        return [codec.row_to_call(r) for r in rows]

    async def list_calls(
        self, *, limit: int = 50, cursor: str | None = None, active: bool | None = None
    ) -> CallPage:
        codec.check_limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if active is True:
            where.append(f"state IN ({stmt.ACTIVE_IN})")
            params.extend(codec.ACTIVE_STATE_VALUES)
        elif active is False:
            where.append(f"state IN ({stmt.TERMINAL_IN})")
            params.extend(codec.TERMINAL_STATE_VALUES)
        if cursor is not None:
            created_at, call_id = codec.decode_cursor(cursor)
            where.append("(created_at, call_id) < (?, ?)")
            params.extend((created_at, call_id))
        sql = stmt.SELECT_CALL
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, call_id DESC LIMIT ?"
        params.append(limit + 1)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        calls = [codec.row_to_call(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = calls[-1]
            next_cursor = codec.encode_cursor(last.created_at, last.call_id)
        return CallPage(calls=calls, next_cursor=next_cursor)

    async def transcript(self, call_id: str) -> list[TranscriptEntry]:
        if codec.unstorable(call_id):
            return []
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {', '.join(codec.TRANSCRIPT_READ_COLUMNS)} FROM transcript"  # noqa: S608
                " WHERE call_id = ? ORDER BY seq",
                (call_id,),
            ).fetchall()
        )
        return [codec.row_to_transcript(r) for r in rows]

    async def _call_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        # substr, not LIKE: LIKE is case-insensitive in SQLite and treats % and _ as wildcards
        rows = await self._read(
            lambda c: c.execute(
                "SELECT call_id FROM calls WHERE substr(call_id, 1, ?) = ? ORDER BY call_id"
                " LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    async def has_event(self, dedupe_key: str) -> bool:
        if codec.unstorable(dedupe_key):
            return False
        row = await self._read(
            lambda c: c.execute(
                "SELECT 1 FROM events WHERE dedupe_key = ?", (dedupe_key,)
            ).fetchone()
        )
        return row is not None

    async def events(self, call_id: str) -> list[EventRow]:
        if codec.unstorable(call_id):
            return []
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {', '.join(codec.EVENT_COLUMNS)} FROM events"  # noqa: S608
                " WHERE call_id = ? ORDER BY at, rowid",
                (call_id,),
            ).fetchall()
        )
        return [codec.row_to_event(r) for r in rows]

    async def _caller_notes(self, caller: str) -> list[str]:
        row = await self._read(lambda c: c.execute(stmt.SELECT_NOTES, (caller,)).fetchone())
        return [] if row is None else codec.decode_notes(row[0])

    async def _remember_caller(self, write: codec.CallerNote) -> None:
        await self._submit(write)

    async def _forget_caller(self, caller: str) -> bool:
        return await self._submit(codec.ForgetCaller(caller))

    async def _block_number(self, write: codec.BlockWrite) -> bool:
        return await self._submit(write)

    async def _unblock_number(self, write: codec.UnblockWrite) -> bool:
        return await self._submit(write)

    async def _blocked_number(self, number: str) -> BlockedNumber | None:
        row = await self._read(
            lambda c: c.execute(f"{stmt.SELECT_BLOCKED} WHERE number = ?", (number,)).fetchone()
        )
        return None if row is None else codec.row_to_blocked(row)

    async def _blocked_numbers(self) -> list[BlockedNumber]:
        rows = await self._read(
            lambda c: c.execute(f"{stmt.SELECT_BLOCKED} ORDER BY created_at, number").fetchall()
        )
        return [codec.row_to_blocked(r) for r in rows]

    async def _record_audit(self, write: codec.AuditWrite) -> None:
        await self._submit(write)

    async def _audit(self, limit: int, before: int | None) -> list[AuditEntry]:
        where = "" if before is None else " WHERE id < ?"
        params: tuple[Any, ...] = (limit,) if before is None else (before, limit)
        rows = await self._read(
            lambda c: c.execute(
                f"{stmt.SELECT_AUDIT}{where} ORDER BY id DESC LIMIT ?", params
            ).fetchall()
        )
        return [codec.row_to_audit(r) for r in rows]

    async def _outbound_counts(
        self, number: str, day_start: float, hour_start: float, now: float
    ) -> OutboundCounts:
        params = (number, day_start, hour_start, now, day_start)
        row = await self._read(lambda c: c.execute(stmt.OUTBOUND_COUNTS, params).fetchone())
        return OutboundCounts(int(row[0]), int(row[1]), float(row[2]))

    async def _amend_lines(self, write: codec.AmendLines) -> bool:
        return await self._submit(write)

    async def _execute(self, statement: codec.Statement) -> bool:
        return await self._submit(statement)

    async def _query(self, key: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        sql = stmt.EXTRA_READS[key]
        rows: list[tuple[object, ...]] = await self._read(
            lambda c: c.execute(sql, tuple(params)).fetchall()
        )
        return rows


def _resolve(pairs: list[tuple[asyncio.Future[bool], _Outcome]]) -> None:
    for future, outcome in pairs:
        if future.done():  # the caller was cancelled; the write happened (or not) regardless
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
