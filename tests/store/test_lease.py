"""The store lease: one acting instance per store, standbys take over, a lost lease fences.

Run on both backends (SQLite: ``flock`` on ``<db>.lease``; PostgreSQL: a session advisory lock
on its own connection, in this test's own schema)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from voicecall.calls.lease import FileLease, PostgresLease, lease_for
from voicecall.calls.store.base import open_store_from_url
from voicecall.server.app import VoicecallApp

from .conftest import PG_ADMIN_URL, Backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from voicecall_server import TOKEN, loopback_socket, mock_settings, serve_asgi

AUTH = {"authorization": f"Bearer {TOKEN}"}


async def test_one_holder_at_a_time_and_release_hands_it_over(backend: Backend) -> None:
    a = lease_for(open_store_from_url(backend.url))
    b = lease_for(open_store_from_url(backend.url))
    assert isinstance(a, FileLease if backend.name == "sqlite" else PostgresLease)
    try:
        assert await a.try_acquire()
        assert await a.try_acquire()  # idempotent for the holder
        assert not await b.try_acquire()
        assert await a.held() and not await b.held()
        await a.release()
        assert not await a.held()
        assert await b.try_acquire()
        assert not await a.try_acquire()
    finally:
        await a.release()
        await b.release()


async def test_a_postgres_lease_dies_with_its_connection(backend: Backend) -> None:
    if backend.name != "postgres":
        pytest.skip("a SQLite flock lives as long as the process")
    a = lease_for(open_store_from_url(backend.url))
    b = lease_for(open_store_from_url(backend.url))
    try:
        assert await a.try_acquire()
        await kill_lease_holder(backend)
        assert not await a.held()  # the holder notices
        assert await b.try_acquire()  # and the lock was freed with the connection
    finally:
        await a.release()
        await b.release()


async def kill_lease_holder(backend: Backend) -> None:
    """Terminate the backend holding this schema's lease (a crash or a network partition)."""
    async with await psycopg.AsyncConnection.connect(PG_ADMIN_URL, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = %s",
            (backend.pg_schema,),
        )
        pids = [row[0] for row in await cur.fetchall()]
        assert pids, "no lease holder found"
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def wait_for(predicate: object, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_a_second_instance_is_a_standby_until_the_first_stops(
    backend: Backend, tmp_path: Path
) -> None:
    settings = mock_settings(tmp_path, store={"url": backend.url, "standby_poll_seconds": 0.1})
    first, second = VoicecallApp(settings), VoicecallApp(settings)
    async with httpx.AsyncClient(timeout=10) as http, serve_asgi(first, loopback_socket()) as url1:
        r = await http.post(
            f"{url1}/api/calls",
            json={"message": "Hello", "mode": "conversation"},
            headers=AUTH,
        )
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]
        async with serve_asgi(second, loopback_socket()) as url2:
            # the standby refuses everything but health and metrics, and says why
            health = await http.get(f"{url2}/healthz")
            assert (health.status_code, health.json()) == (503, {"status": "standby"})
            api = await http.get(f"{url2}/api/calls/{call_id}", headers=AUTH)
            assert api.status_code == 503
            assert api.headers["content-type"] == "application/problem+json"
            assert "standby" in api.json()["detail"]
            hook = await http.post(f"{url2}{settings.serve.webhook_path}", content=b"{}")
            assert hook.status_code == 503
            metrics = (await http.get(f"{url2}/metrics")).text
            assert "voicecall_store_lease_held 0.0" in metrics
            assert second.manager is None  # nothing acts on the store
            assert (await http.get(f"{url1}/healthz")).status_code == 200

            await first.shutdown()  # the active instance goes away

            async def taken_over() -> bool:
                return (await http.get(f"{url2}/healthz")).status_code == 200

            await wait_for(taken_over)
            # the new active instance restored the call from the store
            doc = await http.get(f"{url2}/api/calls/{call_id}", headers=AUTH)
            assert doc.status_code == 200 and doc.json()["call_id"] == call_id
            assert "voicecall_store_lease_held 1.0" in (await http.get(f"{url2}/metrics")).text


async def test_caller_memory_is_in_the_store_and_follows_the_lease(
    backend: Backend, tmp_path: Path
) -> None:
    caller = "+14155550100"
    old_file = tmp_path / "memory.json"  # written by a voicecall that kept memory in a file
    old_file.write_text(
        json.dumps({"version": 1, "callers": {caller: {"notes": ["from the file"], "updated": 1}}})
    )
    settings = mock_settings(
        tmp_path,
        store={"url": backend.url, "standby_poll_seconds": 0.1},
        responder={"kind": "scripted", "memory_path": str(old_file)},
    )
    first, second = VoicecallApp(settings), VoicecallApp(settings)
    try:
        await first.startup()
        assert first.manager is not None and first.manager.memory is not None
        # imported into the store once at activation; the file is not used any more
        assert await first.manager.memory.recall(caller) == ["from the file"]
        assert not old_file.exists() and (tmp_path / "memory.json.imported").exists()
        await first.manager.memory.remember(caller, "second call", now=2.0)

        await second.startup()
        assert second.manager is None  # standby
        await first.shutdown()

        async def taken_over() -> bool:
            return second.active

        await wait_for(taken_over)
        assert second.manager is not None and second.manager.memory is not None
        assert await second.manager.memory.recall(caller) == ["from the file", "second call"]
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_an_instance_that_loses_its_postgres_lease_stops_acting(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.name != "postgres":
        pytest.skip("a SQLite flock cannot be lost while the process lives")
    lost = asyncio.Event()
    settings = mock_settings(tmp_path, store={"url": backend.url, "standby_poll_seconds": 0.1})
    app = VoicecallApp(settings, on_lease_lost=lost.set)
    async with httpx.AsyncClient(timeout=10) as http, serve_asgi(app, loopback_socket()) as url:
        assert (await http.get(f"{url}/healthz")).status_code == 200
        await kill_lease_holder(backend)
        async with asyncio.timeout(15):
            await lost.wait()
        assert not app.active
        assert (await http.get(f"{url}/healthz")).status_code == 503
        r = await http.post(f"{url}/api/calls", json={"message": "Hi"}, headers=AUTH)
        assert r.status_code == 503  # fenced: no new call from an instance without the lease
