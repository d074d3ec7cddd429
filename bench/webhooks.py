"""Signed status callbacks against `voicecall serve` on loopback: verified and persisted (SQLite)
before the reply. Reports throughput and p50/p99 latency with the server pinned to one core, and
the same for a do-nothing ASGI endpoint on the same stack (uvicorn + httptools + uvloop) as the
ceiling.

    .venv/bin/python bench/webhooks.py [--seconds 10] [--connections 32] [--calls 200]

Load runs on loopback only, bounded in count and time. The load generator is a minimal
pipelining-free HTTP/1.1 client on raw asyncio streams (keep-alive, one request in flight per
connection) so that it is not the bottleneck; requests and signatures are prepared before timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voicecall.twilio.signature import compute_signature

SID = "AC" + "b" * 32
TOKEN = "bench-auth-token"
OUR_NUMBER = "+14155550199"

NOOP_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"}); return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/xml"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if shutil.which("taskset") else cmd


@dataclass
class Request:
    raw: bytes


def build_request(port: int, path_qs: str, params: list[tuple[str, str]]) -> Request:
    url = f"http://127.0.0.1:{port}{path_qs}"
    body = urlencode(params).encode()
    sig = compute_signature(url, params, TOKEN)
    head = (
        f"POST {path_qs} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return Request(head + body)


def voice_params(call_sid: str, caller: str) -> list[tuple[str, str]]:
    return [
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", OUR_NUMBER),
        ("Caller", caller),
        ("Direction", "inbound"),
        ("From", caller),
        ("To", OUR_NUMBER),
    ]


def status_params(call_sid: str, caller: str, seq: int) -> list[tuple[str, str]]:
    return [
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "in-progress"),
        ("Called", OUR_NUMBER),
        ("Caller", caller),
        ("CallbackSource", "call-progress-events"),
        ("Direction", "inbound"),
        ("From", caller),
        ("SequenceNumber", str(seq)),
        ("Timestamp", "Tue, 24 Nov 2026 03:00:00 +0000"),
        ("To", OUR_NUMBER),
    ]


async def send_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: Request) -> int:
    writer.write(req.raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


@contextlib.contextmanager
def client_gc_paused() -> Iterator[None]:
    """No garbage collection in the load client while it measures: its heap (100,000 prepared
    requests, every latency) made full collections of 55–65 ms, which stalled the open loop and
    were counted as the server's latency (p99 30–48 ms on 2026-12-04, for either server)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def closed_loop(
    port: int, requests: list[Request], connections: int, seconds: float
) -> tuple[int, list[float], dict[int, int]]:
    with client_gc_paused():
        return await _closed_loop(port, requests, connections, seconds)


async def _closed_loop(
    port: int, requests: list[Request], connections: int, seconds: float
) -> tuple[int, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    it = iter(requests)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                try:
                    req = next(it)
                except StopIteration:
                    return
                t0 = time.perf_counter()
                st = await send_one(reader, writer, req)
                latencies.append(time.perf_counter() - t0)
                statuses[st] = statuses.get(st, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return int(len(latencies) / elapsed), latencies, statuses


async def open_loop(
    port: int, requests: list[Request], rate: float, seconds: float, connections: int
) -> tuple[list[float], dict[int, int]]:
    """Send at a fixed rate (latency measured from the scheduled send time)."""
    with client_gc_paused():
        return await _open_loop(port, requests, rate, seconds, connections)


async def _open_loop(
    port: int, requests: list[Request], rate: float, seconds: float, connections: int
) -> tuple[list[float], dict[int, int]]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int, req: Request) -> None:
        scheduled = start + i / rate
        conn = await pool.get()
        try:
            st = await send_one(conn[0], conn[1], req)
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)
        statuses[st] = statuses.get(st, 0) + 1

    tasks = []
    for i in range(min(total, len(requests))):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, requests[i])))
    await asyncio.gather(*tasks)
    while not pool.empty():
        _, w = pool.get_nowait()
        w.close()
    return latencies, statuses


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


async def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit("server did not start")


def report(name: str, rps: int, lat: list[float], statuses: dict[int, int]) -> None:
    print(
        f"  {name:34} {rps:>7,}/s  p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms"
        f"  statuses {statuses}"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1000.0, help="open-loop rate for the p99 figure")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vc-bench-"))
    port = free_port()
    cfg = tmp / "voicecall.toml"
    cfg.write_text(
        f'provider = "twilio"\nfrom_number = "{OUR_NUMBER}"\n'
        f'public_url = "http://127.0.0.1:{port}"\ninbound_policy = "open"\n'
        f"max_concurrent_calls = {args.calls + 10}\nmax_duration_seconds = 14400\n"
        f'[twilio]\naccount_sid = "{SID}"\nauth_token = "{TOKEN}"\n'
        f'api_base_url = "http://127.0.0.1:9"\n'
        f"[serve]\nport = {port}\n"
        f'[store]\nurl = "sqlite:///{tmp / "bench.db"}"\n'
    )
    budget = int(max(args.seconds * 12_000, args.rate * args.seconds) * 1.2)
    callers = [f"+1415555{1000 + i:04d}" for i in range(args.calls)]
    sids = [f"CA{i:032x}" for i in range(args.calls)]
    path = "/voice/webhook"
    setup = [
        build_request(port, path, voice_params(s, c)) for s, c in zip(sids, callers, strict=True)
    ]
    print(f"preparing {budget:,} signed callbacks ...")
    load = [
        build_request(
            port,
            path + "?kind=status",
            status_params(sids[i % args.calls], callers[i % args.calls], i // args.calls + 1),
        )
        for i in range(budget)
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        pinned(
            [
                sys.executable,
                "-m",
                "voicecall.cli",
                "serve",
                "--config",
                str(cfg),
                "--log-level",
                "warning",
            ],
            0,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        await wait_up(port, proc)
        rps, lat, st = await closed_loop(port, setup, 8, 60)
        assert st == {200: args.calls}, st
        print(
            f"voicecall serve (1 core, SQLite, verified + deduplicated + persisted), "
            f"{args.calls} calls:"
        )
        db = tmp / "bench.db"
        size0 = db.stat().st_size + (tmp / "bench.db-wal").stat().st_size
        half = len(load) // 2
        rps, lat, st = await closed_loop(port, load[:half], args.connections, args.seconds)
        report(f"closed loop, {args.connections} connections", rps, lat, st)
        sent = sum(st.values())
        rest = load[sent:]
        olat, ost = await open_loop(port, rest, args.rate, min(args.seconds, 5), args.connections)
        report(f"open loop at {args.rate:,.0f}/s", int(args.rate), olat, ost)
        events = sent + sum(ost.values())
        await asyncio.sleep(0.5)
        size1 = db.stat().st_size + (tmp / "bench.db-wal").stat().st_size
        import sqlite3

        con = sqlite3.connect(str(db))
        rows = con.execute("select count(*) from events").fetchone()[0]
        con.close()
        print(
            f"  stored events: {rows:,} (sent {events + args.calls:,}); "
            f"store growth ≈ {(size1 - size0) / max(events, 1):.0f} bytes/event (file + WAL)"
        )
    finally:
        proc.terminate()
        proc.wait(10)
    noop = tmp / "noop_app.py"
    noop.write_text(NOOP_APP)
    port2 = free_port()
    proc = subprocess.Popen(
        pinned(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "noop_app:app",
                "--port",
                str(port2),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            0,
        ),
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        await wait_up(port2, proc)
        ceiling = [
            Request(r.raw.replace(f"127.0.0.1:{port}".encode(), f"127.0.0.1:{port2}".encode()))
            for r in load[:half]
        ]
        print("do-nothing ASGI endpoint (same stack, 1 core):")
        rps, lat, st = await closed_loop(port2, ceiling, args.connections, args.seconds)
        report(f"closed loop, {args.connections} connections", rps, lat, st)
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("reproduce: .venv/bin/python bench/webhooks.py " + " ".join(sys.argv[1:]))
    _ = statistics


if __name__ == "__main__":
    asyncio.run(main())
