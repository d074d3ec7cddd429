"""Store throughput and commit latency with N concurrent writers, per backend.

Each commit is what a status webhook costs: a small event (fresh dedupe key) plus an in-place
update of its call row. Writers loop over their own calls; every commit is awaited (persisted
before the next one from that writer starts), as the webhook handler does.

Run::

    .venv/bin/python bench/store.py
    .venv/bin/python bench/store.py --backends sqlite,sqlite-normal --writers 1,64 --commits 20000
    .venv/bin/python bench/store.py --pg-url postgresql://postgres@127.0.0.1:5432/test

``sqlite`` is the default ``synchronous=FULL``; ``sqlite-normal`` is ``synchronous=NORMAL``.
SQLite files go to a temporary directory (``--dir`` to put them on another disk). PostgreSQL
runs in a throw-away schema that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from voicecall.calls.model import CallMode, CallRecord, CallState, Direction
from voicecall.calls.store.base import EventRow, Store
from voicecall.calls.store.postgres import PostgresStore
from voicecall.calls.store.sqlite import SQLiteStore


@asynccontextmanager
async def opened(backend: str, pg_url: str, directory: str | None) -> AsyncIterator[Store]:
    if backend.startswith("sqlite"):
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            sync = "NORMAL" if backend == "sqlite-normal" else "FULL"
            store: Store = SQLiteStore(os.path.join(tmp, "bench.db"), synchronous=sync)
            await store.open()
            try:
                yield store
            finally:
                await store.close()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    sep = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{sep}options={urllib.parse.quote(f'-csearch_path={schema}')}"
    store = PostgresStore(url)
    try:
        await store.open()
        try:
            yield store
        finally:
            await store.close()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


async def run(store: Store, writers: int, commits: int) -> tuple[float, list[float]]:
    per_writer = max(1, commits // writers)
    latencies: list[float] = []
    run_id = uuid.uuid4().hex[:8]

    async def writer(w: int) -> None:
        call = CallRecord(
            f"{run_id}-{w}",
            Direction.OUTBOUND,
            CallMode.CONVERSATION,
            "+15005550006",
            "+14155550100",
            state=CallState.ACTIVE,
            provider_call_id=f"CA{run_id}{w:024d}",
            created_at=time.time(),
        )
        for i in range(per_writer):
            update = call.copy(last_sequence=i, updated_at=time.time())
            ev = EventRow(f"{call.call_id}:{i}", call.call_id, "media-seq", time.time(), "seq")
            t0 = time.perf_counter()
            ok = await store.commit(update, event=ev)
            latencies.append(time.perf_counter() - t0)
            assert ok

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return time.perf_counter() - t0, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,sqlite-normal,postgres")
    parser.add_argument("--writers", default="1,16,64,256")
    parser.add_argument("--commits", type=int, default=10_000, help="per run (split over writers)")
    parser.add_argument("--dir", default=None, help="where SQLite files go (default: $TMPDIR)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    print(f"# {platform.python_implementation()} {platform.python_version()},", end=" ")
    print(f"{os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"{'backend':<12} {'writers':>7} {'commits':>8} {'commits/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'batches':>8}"
    )
    for backend in args.backends.split(","):
        for writers in (int(w) for w in args.writers.split(",")):
            try:
                async with opened(backend, args.pg_url, args.dir) as store:
                    await run(store, writers, min(args.commits, 500))  # warm-up
                    stats0 = getattr(store, "stats", None)
                    elapsed, lat = await run(store, writers, args.commits)
                    stats1 = getattr(store, "stats", None)
            except (psycopg.Error, OSError) as exc:
                print(f"{backend:<12} skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                break
            batches = "-"
            if stats0 is not None and stats1 is not None:
                batches = str(stats1.batches - stats0.batches)
            print(
                f"{backend:<12} {writers:>7} {len(lat):>8} {len(lat) / elapsed:>10.0f} "
                f"{pct(lat, 50) * 1e3:>8.2f} {pct(lat, 99) * 1e3:>8.2f} {batches:>8}"
            )
    print("# reproduce:", shlex.join([".venv/bin/python", "bench/store.py", *sys.argv[1:]]))


if __name__ == "__main__":
    asyncio.run(main())
