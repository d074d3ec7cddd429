"""SQLite-only behaviour: files, pragmas, group commit, broken databases, failed migrations."""

from __future__ import annotations

import asyncio
import collections
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from voicecall.calls.model import CallMode, CallRecord, CallState, Direction
from voicecall.calls.store import migrations
from voicecall.calls.store.base import EventRow
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.errors import StoreError

_FAKES = str(Path(__file__).resolve().parents[1] / "fakes")


def _call(call_id: str, turn: int = 0) -> CallRecord:
    return CallRecord(call_id, Direction.INBOUND, CallMode.CONVERSATION, "+1", "+2", turn=turn)


def _versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    finally:
        conn.close()


async def test_creates_parent_directories_and_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "calls.db"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        assert await store.commit(_call("c1"))
    finally:
        await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sibling in (path.with_name("calls.db-wal"), path.with_name("calls.db-shm")):
        if sibling.exists():
            assert stat.S_IMODE(sibling.stat().st_mode) & 0o077 == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not an SQLite database, just some text\n" * 100)
    with pytest.raises(StoreError, match="SQLite store"):
        await SQLiteStore(str(path)).open()
    # left as it was
    assert path.read_bytes().startswith(b"this is not")


async def test_a_directory_in_place_of_the_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError):
        await SQLiteStore(str(tmp_path / "dir.db")).open()


async def test_an_unwritable_parent_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        await SQLiteStore(str(blocker / "sub" / "calls.db")).open()


def test_memory_and_uri_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="memory"):
        SQLiteStore(":memory:")
    with pytest.raises(ValueError):
        SQLiteStore("file:x.db?mode=memory")
    with pytest.raises(ValueError):
        SQLiteStore("x.db", synchronous="OFF")  # type: ignore[arg-type]


async def test_queued_commits_share_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path))
    await store.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        # hold the write lock so the writer stalls on its first BEGIN while 60 commits queue up
        blocker.execute("BEGIN IMMEDIATE")
        tasks = [
            asyncio.create_task(
                store.commit(_call(f"c{i}", i), event=EventRow(f"k{i % 50}", f"c{i}", "x", 1.0))
            )
            for i in range(60)
        ]
        await asyncio.sleep(0)  # every task runs up to its await: all 60 are queued
        assert store.stats.submitted == 60
        before = store.stats.batches
        blocker.execute("COMMIT")
        results = await asyncio.gather(*tasks)
    finally:
        blocker.close()
        await store.close()
    # keys k0..k9 were used twice: the later ones are duplicates
    assert results == [True] * 50 + [False] * 10
    assert store.stats.items == 60
    assert store.stats.batches - before <= 2
    assert store.careful_batches == 0  # a duplicate is no failure: no savepoints were needed


async def test_a_failing_job_sends_its_batch_the_careful_way(tmp_path: Path) -> None:
    # the batch runs without savepoints first; one job failing (a provider_call_id taken)
    # rolls it all back and it is applied again with a savepoint per job
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path))
    await store.open()
    assert await store.commit(_call("owner").copy(provider_call_id="CA-taken"))
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        jobs = [_call(f"c{i}") for i in range(5)]
        jobs[2] = jobs[2].copy(provider_call_id="CA-taken")
        tasks = [
            asyncio.create_task(store.commit(c, event=EventRow(f"k{i}", c.call_id, "x", 1.0)))
            for i, c in enumerate(jobs)
        ]
        await asyncio.sleep(0)
        blocker.execute("COMMIT")
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        blocker.close()
    try:
        assert isinstance(results[2], StoreError)
        assert results[:2] + results[3:] == [True] * 4
        assert store.careful_batches == 1
        assert not await store.has_event("k2") and await store.get_call("c2") is None
        assert all([await store.has_event(f"k{i}") for i in (0, 1, 3, 4)])
    finally:
        await store.close()


async def test_writer_waits_for_another_process_lock_then_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path), busy_timeout_ms=50)
    await store.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            await store.commit(_call("c1"))
        blocker.execute("ROLLBACK")
        # the store is still usable afterwards
        assert await store.commit(_call("c1"))
        assert await store.get_call("c1") == _call("c1")
    finally:
        blocker.close()
        await store.close()


async def test_normal_synchronous_mode_works(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "calls.db"), synchronous="NORMAL")
    await store.open()
    try:
        assert await store.commit(_call("c1"), event=EventRow("k", "c1", "x", 1.0))
        assert await store.has_event("k")
    finally:
        await store.close()


async def test_a_failing_migration_is_rolled_back_entirely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.close()

    released = migrations.MIGRATIONS
    latest = migrations.LATEST_VERSION
    broken = migrations.Migration(
        latest + 1,
        "half good, half broken",
        ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL"),
        (),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*released, broken))
    with pytest.raises(StoreError, match="SQLite store"):
        await SQLiteStore(str(path)).open()
    assert _versions(path) == list(range(1, latest + 1))
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "extra" not in tables

    fixed = migrations.Migration(latest + 1, "fixed", ("CREATE TABLE extra (x INTEGER)",), ())
    monkeypatch.setattr(migrations, "MIGRATIONS", (*released, fixed))
    for _ in range(2):
        store = SQLiteStore(str(path))
        await store.open()
        await store.close()
    assert _versions(path) == list(range(1, latest + 2))


async def test_close_is_idempotent_and_reopen_works(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "calls.db"))
    await store.open()
    await store.open()
    assert await store.commit(_call("c1"))
    await store.close()
    await store.close()
    await store.open()
    try:
        assert await store.get_call("c1") == _call("c1")
    finally:
        await store.close()


def test_repr_names_the_path_only(tmp_path: Path) -> None:
    path = str(tmp_path / "calls.db")
    assert repr(SQLiteStore(path)) == f"SQLiteStore({os.path.abspath(path)!r}, synchronous='FULL')"


async def test_checkpoints_run_in_the_background_not_in_commits(tmp_path: Path) -> None:
    # SQLite's automatic checkpoint (at 1,000 WAL pages) ran inside whichever commit crossed
    # the mark; now commits never checkpoint and a background thread copies the WAL into the
    # database file (PASSIVE), so the file alone holds what was committed a moment ago
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path), checkpoint_interval=0.05)
    await store.open()
    try:
        for i in range(20):
            await store.commit(_call(f"c{i}"), event=EventRow(f"k{i}", f"c{i}", "x", 1.0))
        before = store.checkpoints
        for _ in range(200):
            if store.checkpoints >= before + 2:
                break
            await asyncio.sleep(0.02)
        assert store.checkpoints >= before + 2
        # a copy of the database file without its WAL already has every committed row
        alone = tmp_path / "alone.db"
        alone.write_bytes(path.read_bytes())
        conn = sqlite3.connect(alone)
        try:
            assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 20
        finally:
            conn.close()
    finally:
        await store.close()
    wal = tmp_path / "calls.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the last close checkpointed the rest


def test_checkpoint_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="checkpoint_interval"):
        SQLiteStore("x.db", checkpoint_interval=0)


async def test_the_wal_starts_over_under_sustained_writes(tmp_path: Path) -> None:
    # Under a steady stream of commits the background pass never catches up with the frames
    # appended meanwhile, and SQLite restarts the WAL only after a complete checkpoint: the
    # WAL grew without bound (350 MB in 8 s at full load) and its truncation later stalled a
    # commit for 120 ms. The writer now checkpoints the tail once the WAL passes tail_frames.
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path), checkpoint_interval=0.02, tail_frames=32)
    await store.open()
    wal = tmp_path / "calls.db-wal"
    try:
        stop = asyncio.Event()

        async def writer(w: int) -> None:
            i = 0
            while not stop.is_set():
                await store.commit(
                    _call(f"w{w}-{i % 50}", turn=i), event=EventRow(f"w{w}-{i}", f"w{w}", "x", 1.0)
                )
                i += 1

        async def until_batches(n: int) -> None:
            for _ in range(6000):  # 60 s at most, writing without a pause all along
                if store.stats.batches >= n:
                    return
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(writer(w)) for w in range(8)]
        await until_batches(500)
        early = wal.stat().st_size
        await until_batches(5000)  # ten times as many transactions
        stop.set()
        await asyncio.gather(*tasks)
        assert store.stats.batches >= 5000
        assert store.tail_checkpoints >= 3
        # the WAL file is overwritten from its start after each restart: it stops growing
        # (without the restarts it held every frame committed: ten times the early size)
        assert wal.stat().st_size < 4 * early
    finally:
        await store.close()


def _wal_btrees(path: Path, start: int) -> collections.Counter[str]:
    """Which b-trees the WAL frames after byte ``start`` belong to (frame header: page number
    first; owners from the ``dbstat`` table)."""
    data = (path.parent / (path.name + "-wal")).read_bytes()
    frame = 24 + 4096
    first = 32 + max(0, start - 32) // frame * frame
    pages = [
        int.from_bytes(data[off : off + 4], "big")
        for off in range(first, len(data) - frame + 1, frame)
    ]
    conn = sqlite3.connect(path)
    try:
        owner = dict(
            (pageno, name) for name, pageno in conn.execute("SELECT name, pageno FROM dbstat")
        )
    finally:
        conn.close()
    return collections.Counter(owner.get(p, "?") for p in pages)


async def test_a_callback_that_changes_no_indexed_column_leaves_its_indexes_alone(
    tmp_path: Path,
) -> None:
    # SQLite rewrites an index whenever an UPDATE assigns one of its columns, even to the value
    # it already has: every status callback rewrote calls_state and calls_provider_call_id
    # (6.6 WAL pages per single-webhook commit, now 4.4).
    path = tmp_path / "calls.db"
    store = SQLiteStore(str(path), checkpoint_interval=3600)
    await store.open()
    try:
        call = _call("c1").copy(provider_call_id="CA1")
        assert await store.commit(call)
        wal = path.parent / "calls.db-wal"
        start = wal.stat().st_size
        for i in range(20):
            step = call.copy(turn=i + 1, updated_at=float(i))
            assert await store.commit(step, event=EventRow(f"e{i}", "c1", "status", float(i)))
        written = _wal_btrees(path, start)
        assert written["calls"] >= 20 and written["events"] >= 1, written
        assert written["calls_state"] == 0 and written["calls_provider_call_id"] == 0, written
        start = wal.stat().st_size
        assert await store.commit(call.copy(state=CallState.RINGING, turn=30))
        assert _wal_btrees(path, start)["calls_state"] >= 1
    finally:
        await store.close()


@pytest.mark.parametrize("asked", ["full", "normal"])
async def test_the_configured_synchronous_mode_reaches_the_app_s_store(
    tmp_path: Path, asked: str
) -> None:
    import sys

    from voicecall.calls.store.base import open_store_from_url
    from voicecall.server.app import VoicecallApp

    sys.path.insert(0, _FAKES)
    from voicecall_server import mock_settings

    app = VoicecallApp(mock_settings(tmp_path, store={"sqlite_synchronous": asked}))
    try:
        await app.startup()
        assert app.manager is not None
        store = app.manager.store
        assert f"synchronous={asked.upper()!r}" in repr(store)
        assert await store.commit(_call("c1"))
    finally:
        await app.shutdown()
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        open_store_from_url("sqlite:///x.db", sqlite_synchronous="off")
