"""Soak: calls through the emulator under faults and kill -9, then check that nothing was lost.

Run:  .venv/bin/python bench/soak.py                              (30 minutes, SQLite, both voices)
      .venv/bin/python bench/soak.py --minutes 2 --store postgres --voice gather
      .venv/bin/python bench/soak.py --json soak.json --workdir /tmp/soak

What runs: the emulator in this process (REST faults on ``--rest-fault-rate`` of the requests:
429, 500 and timeouts; duplicated and reordered webhooks; Media Streams dropped mid-call) and one
``voicecall serve`` subprocess per voice (``gather``: <Say>/<Gather>; ``stream``: Media Streams
with espeak-ng and faster-whisper), each on its own config file and store (a SQLite file, or a
PostgreSQL schema on ``--pg``). Drivers place notify and conversation calls through the control
API (``continue``, ``speak``, ``end`` with a goodbye); every ``--kill-every`` seconds one server
gets SIGKILL and is started again on the same config.

At the end every call left up is ended, and the run fails (exit 1) unless:

* every stored call is terminal with an end reason;
* no line is lost: every message the API accepted (2xx) is a stored bot line, every line the
  emulator's callee heard (<Say>) is a stored bot line, every callee answer the server
  acknowledged (a 2xx to the Gather post) is a stored user line;
* no call was dialled twice (the emulator's calls per call id);
* the store is intact: ``PRAGMA integrity_check`` on SQLite; consistency queries on PostgreSQL
  (no transcript or event row without its call, no terminal call without reason or end time).

Progress is shown live (rich); the summary prints the figures and the command that reproduces
them. Figures of runs are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from voicecall.calls.model import TERMINAL_STATES
from voicecall.emulator.faults import FaultConfig
from voicecall.emulator.runtime import Emulator

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "50a4" * 8
AUTH_TOKEN = "soak-auth-token-" + "0123456789abcdef"
API_TOKEN = "soak-api-token-" + "fedcba9876543210"
FROM = "+14155550199"
TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
WORDS = [
    "apple",
    "river",
    "garden",
    "yellow",
    "window",
    "silver",
    "market",
    "planet",
    "orange",
    "summer",
    "pencil",
    "forest",
    "button",
    "candle",
    "monday",
    "violet",
]
CUT = "[cut off]"
UNSPOKEN = "[not spoken]"


def match_accepted(accepted: list[str], bot: Counter[str]) -> tuple[Counter[str], list[str]]:
    """Match each accepted line to one stored bot line, each stored line used once (pure).

    Strict forms only: the line itself; ``"[not spoken] <line>"`` (queued behind a cut line);
    ``"[cut off] <line>"`` (audio played, no word heard); ``"<heard> [cut off]"`` where the
    line starts with a non-empty ``<heard>``. Exact forms are tried first so a prefix match
    never takes a stored line that another accepted line names in full. Returns the
    figures and the accepted lines with no stored line (lost)."""
    figures: Counter[str] = Counter()
    unmatched = bot.copy()
    rest: list[str] = []
    for text in accepted:
        figures["lines accepted"] += 1
        for form, figure in (
            (text, None),
            (f"{UNSPOKEN} {text}", "lines accepted, stored as not spoken (cut before playing)"),
            (f"{CUT} {text}", "lines accepted, stored cut off (barge-in)"),
        ):
            if unmatched[form] > 0:
                unmatched[form] -= 1
                if figure:
                    figures[figure] += 1
                break
        else:
            rest.append(text)
    lost: list[str] = []
    for text in rest:
        # barge-in on a stream keeps what the caller heard: "Summer [cut off]"; the longest
        # heard prefix first
        cuts = sorted(
            (
                t
                for t, n in unmatched.items()
                if n > 0
                and t.endswith(f" {CUT}")
                and t[: -len(CUT)].strip()
                and text.startswith(t[: -len(CUT)].rstrip())
            ),
            key=len,
            reverse=True,
        )
        if cuts:
            unmatched[cuts[0]] -= 1
            figures["lines accepted, stored cut off (barge-in)"] += 1
            continue
        lost.append(text)
        figures["lines lost"] += 1
    return figures, lost


console = Console(stderr=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- stores


@dataclass
class StoreSpec:
    url: str
    sqlite_path: Path | None = None
    pg_schema: str | None = None
    pg_admin: str | None = None


def make_store(kind: str, name: str, workdir: Path, pg: str) -> StoreSpec:
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        return StoreSpec(f"sqlite:///{path}", sqlite_path=path)
    schema = f"soak_{uuid.uuid4().hex[:10]}_{name}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    options = urllib.parse.quote(f"-csearch_path={schema}")
    sep = "&" if "?" in pg else "?"
    return StoreSpec(f"{pg}{sep}options={options}", pg_schema=schema, pg_admin=pg)


def drop_store(spec: StoreSpec) -> None:
    if spec.pg_schema and spec.pg_admin:
        with psycopg.connect(spec.pg_admin, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {spec.pg_schema} CASCADE".encode())


def integrity(spec: StoreSpec) -> list[str]:
    """Problems found in the store (empty: intact)."""
    problems: list[str] = []
    queries = {
        "transcript rows without their call": "SELECT count(*) FROM transcript t "
        "WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = t.call_id)",
        "event rows without their call": "SELECT count(*) FROM events e "
        "WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = e.call_id)",
        "terminal calls without end reason or end time": "SELECT count(*) FROM calls "
        f"WHERE state IN ({', '.join(repr(s) for s in sorted(TERMINAL))}) "
        "AND (end_reason IS NULL OR ended_at IS NULL)",
        "audit entries of placed calls without their call": "SELECT count(*) FROM outbound_audit a "
        "WHERE a.outcome = 'placed' "
        "AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = a.call_id)",
    }
    if spec.sqlite_path is not None:
        conn = sqlite3.connect(f"file:{spec.sqlite_path}?mode=ro", uri=True)
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            if result != ["ok"]:
                problems.append(f"PRAGMA integrity_check: {'; '.join(result[:5])}")
            for what, sql in queries.items():
                n = conn.execute(sql).fetchone()[0]
                if n:
                    problems.append(f"{n} {what}")
        finally:
            conn.close()
        return problems
    with psycopg.connect(spec.url, autocommit=True) as conn:
        for what, sql in queries.items():
            row = conn.execute(sql.encode()).fetchone()
            if row and row[0]:
                problems.append(f"{row[0]} {what}")
        dup = conn.execute(
            b"SELECT count(*) FROM (SELECT provider_call_id FROM calls WHERE provider_call_id"
            b" IS NOT NULL GROUP BY provider_call_id HAVING count(*) > 1) d"
        ).fetchone()
        if dup and dup[0]:
            problems.append(f"{dup[0]} provider call ids on several calls")
    return problems


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    voice: str
    store: StoreSpec
    workdir: Path
    emulator_url: str
    max_calls: int
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    restart_seconds: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> Path:
        path = self.workdir / f"{self.name}.toml"
        voice = ""
        if self.voice == "stream":
            voice = (
                '[streaming]\nenabled = true\n[tts]\nprovider = "espeak"\n'
                '[stt]\nprovider = "whisper"\n'
            )
        path.write_text(
            f'provider = "twilio"\nfrom_number = "{FROM}"\n'
            f'public_url = "http://127.0.0.1:{self.port}"\n'
            f"max_concurrent_calls = {self.max_calls}\nmax_duration_seconds = 120\n"
            "ring_timeout_seconds = 10\ntranscript_timeout_seconds = 25\n"
            "[outbound]\nnotify_hangup_delay_seconds = 0.5\n"
            "max_calls_per_number_per_day = false\nmax_calls_per_hour = false\n"
            "max_minutes_per_day = false\n"
            f'[twilio]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{AUTH_TOKEN}"\n'
            f'api_base_url = "{self.emulator_url}"\nrequest_timeout_seconds = 5\n'
            f"[serve]\nport = {self.port}\n"
            f'[store]\nurl = "{self.store.url}"\n'
            f'[api]\ntoken = "{API_TOKEN}"\n' + voice
        )
        path.chmod(0o600)
        return path

    def start(self) -> None:
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voicecall.cli",
                "serve",
                "--config",
                str(self.config()),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "NO_COLOR": "1"},
            cwd=self.workdir,
        )

    async def ready(self, timeout: float = 90.0) -> float:
        began = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() - began < timeout:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}); see "
                        f"{self.workdir / (self.name + '.log')}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(self.url + "/healthz")).status_code == 200:
                        return time.monotonic() - began
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become healthy in {timeout:.0f} s")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ----------------------------------------------------------------------------- drivers


@dataclass
class Stats:
    placed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    api_errors: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, list[str]] = field(default_factory=dict)  # call id -> bot lines (2xx)
    server_of: dict[str, str] = field(default_factory=dict)  # call id -> server name
    turns: int = 0
    resumed: int = 0  # conversations driven on after their server was killed and restarted
    rest_faults: Counter[str] = field(default_factory=Counter)


class Driver:
    def __init__(self, server: Server, stats: Stats, rng: random.Random, deadline: float) -> None:
        self.server = server
        self.stats = stats
        self.rng = rng
        self.deadline = deadline
        self.http = httpx.AsyncClient(
            base_url=server.url,
            headers={"authorization": f"Bearer {API_TOKEN}", "x-voicecall-client": "python"},
            timeout=40,
        )

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """The answer, or None when the server could not be reached (being killed)."""
        try:
            r = await self.http.request(method, path, **kw)
        except httpx.TransportError:
            self.stats.api_errors["unreachable"] += 1
            return None
        if r.status_code >= 400:
            self.stats.api_errors[f"{r.status_code} {method} {path.split('/')[-1]}"] += 1
        return r

    def accept(self, call_id: str, text: str) -> None:
        self.stats.accepted.setdefault(call_id, []).append(text)

    def line(self, n: int = 4) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n)).capitalize() + "."

    async def run(self, numbers: list[str]) -> None:
        try:
            while time.monotonic() < self.deadline:
                await self.one_call(self.rng.choice(numbers))
        finally:
            await self.http.aclose()

    async def one_call(self, number: str) -> None:
        mode = "conversation" if self.rng.random() < 0.6 else "notify"
        first = self.line()
        r = await self.request(
            "POST", "/api/calls", json={"to": number, "message": first, "mode": mode}
        )
        if r is None or r.status_code != 201:
            if r is not None and r.status_code in (403, 429):
                self.stats.refused[r.json().get("rule") or r.json().get("title", "?")] += 1
            await asyncio.sleep(1.0)
            return
        call_id = r.json()["call_id"]
        self.stats.placed += 1
        self.stats.server_of[call_id] = self.server.name
        self.accept(call_id, first)
        if mode == "notify":
            await self.wait(call_id, lambda d: d["state"] in TERMINAL, 40)
            return
        doc = await self.wait(
            call_id, lambda d: d.get("answered_at") is not None or d["state"] in TERMINAL, 30
        )
        if doc is None or doc["state"] in TERMINAL:
            return
        for _ in range(self.rng.randint(2, 6)):
            if time.monotonic() > self.deadline:
                break
            text = self.line()
            if self.rng.random() < 0.25:
                r = await self.request(
                    "POST", f"/api/calls/{call_id}/speak", json={"message": text}
                )
            else:
                r = await self.request(
                    "POST",
                    f"/api/calls/{call_id}/continue",
                    json={"message": text, "timeout_seconds": 20},
                )
            if r is None:
                # the server died mid-request (the line may or may not be stored: not counted);
                # once it is back, go on with this call if it survived the restart
                doc = await self.wait(call_id, lambda d: True, 90)
                if doc is None or doc["state"] in TERMINAL:
                    return
                self.stats.resumed += 1
                continue
            if r.is_success:
                self.accept(call_id, text)
                self.stats.turns += 1
            elif r.status_code in (404, 409):
                return  # the call ended meanwhile
        goodbye = "Thanks, goodbye."
        asked = time.time()
        r = await self.request("POST", f"/api/calls/{call_id}/end", json={"message": goodbye})
        if r is not None and r.is_success:
            ended_at = r.json().get("ended_at")
            # ending a call that was already over answers its record and says nothing
            if ended_at is None or ended_at >= asked:
                self.accept(call_id, goodbye)
        await self.wait(call_id, lambda d: d["state"] in TERMINAL, 30)

    async def wait(self, call_id: str, pred: Any, timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        doc = None
        while time.monotonic() < end:
            r = await self.request("GET", f"/api/calls/{call_id}")
            if r is not None and r.status_code == 200:
                doc = r.json()
                if pred(doc):
                    return doc
            await asyncio.sleep(0.5)
        return doc


# ----------------------------------------------------------------------------- the run


def scripts(emulator: Emulator, rng: random.Random, n: int) -> list[str]:
    numbers = []
    for i in range(n):
        number = f"+1415555{2000 + i:04d}"
        numbers.append(number)
        roll = rng.random()
        script: dict[str, Any] = {
            "answer_after_ms": rng.choice([200, 500, 1500]),
            "reply_delay_ms": 300,
            "replies": [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(6)],
            "say_at": [{"at_ms": 2500, "text": "hello there"}],
            "hangup_after_ms": rng.choice([20_000, 45_000, 90_000]),
        }
        if roll < 0.06:
            script["outcome"] = "busy"
        elif roll < 0.10:
            script["outcome"] = "no-answer"
        elif roll < 0.12:
            script["outcome"] = "failed"
        emulator.set_script(number, script)
    return numbers


async def killer(servers: list[Server], every: float, deadline: float, rng: random.Random) -> None:
    i = 0
    while True:
        await asyncio.sleep(every * rng.uniform(0.8, 1.2))
        if time.monotonic() > deadline - 5:
            return
        server = servers[i % len(servers)]
        i += 1
        server.kill9()
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        began = time.monotonic()
        server.start()
        await server.ready()
        server.restart_seconds.append(time.monotonic() - began)


async def all_calls(server: Server) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, headers={"authorization": f"Bearer {API_TOKEN}"}
    ) as http:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/api/calls", params=params)).json()
            for c in page["calls"]:
                out.append((await http.get(f"/api/calls/{c['call_id']}")).json())
            cursor = page.get("next_cursor")
            if not cursor:
                return out


async def drain(servers: list[Server], timeout: float) -> None:
    """End every call still up and wait until none is (the server's own timers cover the rest)."""
    end = time.monotonic() + timeout
    async with httpx.AsyncClient(
        timeout=30, headers={"authorization": f"Bearer {API_TOKEN}"}
    ) as http:
        while time.monotonic() < end:
            live = 0
            for server in servers:
                try:
                    r = await http.get(
                        server.url + "/api/calls", params={"active": "true", "limit": 500}
                    )
                except httpx.TransportError as exc:  # busy or restarting: ask again
                    console.print(f"drain: {server.name} did not answer ({type(exc).__name__})")
                    live += 1
                    continue
                for c in r.json()["calls"]:
                    live += 1
                    with contextlib.suppress(httpx.TransportError):
                        await http.post(server.url + f"/api/calls/{c['call_id']}/end")
            if live == 0:
                return
            await asyncio.sleep(2.0)


def call_id_of(url: str | None) -> str | None:
    if not url:
        return None
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("callId", [None])[0]


def check(
    servers: list[Server], calls: dict[str, list[dict[str, Any]]], stats: Stats, emulator: Emulator
) -> tuple[list[str], dict[str, Any]]:
    failures: list[str] = []
    figures: Counter[str] = Counter()
    by_id: dict[str, list[Any]] = {}
    for sim in emulator.calls.values():
        cid = call_id_of(sim.spec.url)
        if cid:
            by_id.setdefault(cid, []).append(sim)
    voice_of = {s.name: s.voice for s in servers}
    for name, docs in calls.items():
        for doc in docs:
            cid = doc["call_id"]
            figures["calls"] += 1
            figures[f"end {doc.get('end_reason')}"] += 1
            if doc["state"] not in TERMINAL or not doc.get("end_reason"):
                failures.append(
                    f"{name} {cid}: not terminal ({doc['state']}, reason {doc.get('end_reason')})"
                )
            sims = by_id.get(cid, [])
            if len(sims) > 1:
                failures.append(f"{name} {cid}: dialled {len(sims)} times (re-dial)")
            lines = doc.get("transcript") or []
            bot = Counter(ln["text"] for ln in lines if ln["speaker"] == "bot")
            bot_texts = [
                ln["text"]
                for ln in sorted(lines, key=lambda ln: ln["seq"])
                if ln["speaker"] == "bot"
            ]
            user = Counter(ln["text"] for ln in lines if ln["speaker"] == "user")
            matched, lost = match_accepted(stats.accepted.get(cid, []), bot)
            figures.update(matched)
            for text in lost:
                stored = [(ln["seq"], ln["speaker"], ln["text"][:40]) for ln in lines]
                failures.append(f"{name} {cid}: accepted bot line lost: {text!r}; stored: {stored}")
            # lines held back while the callee talked are said together in one <Say>
            said_together = {
                " ".join(bot_texts[i:j])
                for i in range(len(bot_texts))
                for j in range(i + 2, min(i + 5, len(bot_texts)) + 1)
            }
            for sim in sims:
                for item in sim.heard:
                    if (
                        item.kind == "say"
                        and item.text not in bot
                        and item.text not in said_together
                    ):
                        failures.append(
                            f"{name} {cid}: the callee heard {item.text!r}, "
                            "which is not in the transcript"
                        )
                if voice_of[name] != "gather":
                    continue
                for entry in sim.timeline:
                    if entry.get("kind") != "webhook" or entry.get("purpose") != "gather-action":
                        continue
                    said = (entry.get("params") or {}).get("SpeechResult")
                    code = entry.get("status_code") or 0
                    if said and 200 <= code < 300:
                        figures["callee answers acknowledged"] += 1
                        if said not in user:
                            failures.append(f"{name} {cid}: acknowledged answer {said!r} lost")
                for entry in sim.timeline:
                    if entry.get("kind") == "callee-speech" and entry.get("text") not in user:
                        figures["callee speech never stored (not acknowledged)"] += 1
    for sims in by_id.values():
        for sim in sims:
            for entry in sim.timeline:
                if entry.get("kind") == "fault":
                    figures[f"fault {entry.get('fault') or entry.get('type') or '?'}"] += 1
                if entry.get("kind") == "webhook" and entry.get("duplicate"):
                    figures["webhooks duplicated"] += 1
    unknown = [
        cid for cid in by_id if not any(cid == d["call_id"] for v in calls.values() for d in v)
    ]
    if unknown:
        failures.append(f"{len(unknown)} emulator call(s) name a call id no store has")
    return failures, dict(figures)


def failing_timelines(failures: list[str], emulator: Emulator) -> dict[str, list[Any]]:
    """The emulator's timeline of every call a failure names (for the report: what happened)."""
    named = {w.strip(":,;.") for f in failures for w in f.split() if len(w.strip(":,;.")) == 32}
    out: dict[str, list[Any]] = {}
    for sid, sim in emulator.calls.items():
        cid = call_id_of(sim.spec.url)
        if cid in named:
            out[cid or sid] = emulator.timeline(sid)
    return out


def progress(
    servers: list[Server], stats: Stats, emulator: Emulator, began: float, total: float
) -> Table:
    t = Table(title=f"soak: {time.monotonic() - began:.0f} / {total:.0f} s", show_header=False)
    live = sum(1 for s in emulator.calls.values() if s.end_time is None)
    t.add_row("calls placed (201)", str(stats.placed))
    t.add_row("emulator calls (live)", f"{len(emulator.calls)} ({live})")
    t.add_row("turns (continue/speak)", f"{stats.turns} ({stats.resumed} after a restart)")
    t.add_row("REST faults", ", ".join(f"{k} {v}" for k, v in stats.rest_faults.items()) or "-")
    t.add_row("kills", ", ".join(f"{s.name} {s.kills}" for s in servers))
    t.add_row("API errors", ", ".join(f"{k} {v}" for k, v in stats.api_errors.most_common(4)))
    t.add_row("refused", ", ".join(f"{k} {v}" for k, v in stats.refused.items()) or "-")
    return t


async def soak(args: argparse.Namespace, workdir: Path) -> tuple[int, dict[str, Any]]:
    rng = random.Random(args.seed)
    rest = args.rest_fault_rate
    faults = FaultConfig(
        seed=args.seed,
        rest_429_rate=rest * 0.4,
        rest_500_rate=rest * 0.4,
        rest_timeout_rate=rest * 0.2,
        rest_timeout_seconds=7.0,  # beyond the server's 5 s request timeout
        duplicate_rate=0.2,
        reorder_rate=0.2,
        ws_drop_rate=0.25,
        ws_drop_after_ms=4000,
    )
    voices = ["gather", "stream"] if args.voice == "both" else [args.voice]
    emulator = Emulator(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, port=0, faults=faults, seed=args.seed
    )
    await emulator.start()
    servers = [
        Server(
            f"{voice}-{args.store}",
            voice,
            make_store(args.store, voice, workdir, args.pg),
            workdir,
            emulator.base_url,
            max_calls=args.calls_per_server,
        )
        for voice in voices
    ]
    stats = Stats()
    draw = emulator.faults.rest_fault

    def counted() -> Any:  # count the REST faults the emulator injects
        fault = draw()
        if fault is not None:
            stats.rest_faults[str(getattr(fault, "value", fault))] += 1
        return fault

    emulator.faults.rest_fault = counted  # type: ignore[method-assign]
    began = time.monotonic()
    total = args.minutes * 60
    deadline = began + total
    failures: list[str] = []
    timelines: dict[str, list[Any]] = {}
    figures: dict[str, Any] = {}
    try:
        numbers = scripts(emulator, rng, 40)
        for s in servers:
            s.start()
        await asyncio.gather(*(s.ready() for s in servers))
        drivers = [
            Driver(s, stats, random.Random(rng.random()), deadline)
            for s in servers
            for _ in range(
                args.calls_per_server if s.voice == "gather" else max(1, args.calls_per_server // 2)
            )
        ]
        tasks = [asyncio.create_task(d.run(numbers)) for d in drivers]
        kill_task = asyncio.create_task(killer(servers, args.kill_every, deadline, rng))
        with Live(
            progress(servers, stats, emulator, began, total),
            console=console,
            refresh_per_second=2,
            transient=not console.is_terminal,
        ) as live:
            while not all(t.done() for t in tasks):
                await asyncio.sleep(1.0)
                live.update(progress(servers, stats, emulator, began, total))
        for t in tasks:
            t.result()
        kill_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await kill_task
        for s in servers:  # a kill may have been under way
            if s.proc is None or s.proc.poll() is not None:
                s.start()
                await s.ready()
        console.print("draining: ending the calls still up …")
        await drain(servers, timeout=150)
        await emulator.wait_idle(30)
        calls = {s.name: await all_calls(s) for s in servers}
        failures, figures = check(servers, calls, stats, emulator)
        timelines = failing_timelines(failures, emulator)
        for s in servers:
            s.stop()
        for s in servers:
            failures.extend(f"{s.name}: store: {p}" for p in integrity(s.store))
    finally:
        for s in servers:
            s.stop()
        await emulator.aclose()
        if args.store == "postgres" and not args.keep:
            for s in servers:
                with contextlib.suppress(psycopg.Error):
                    drop_store(s.store)
    elapsed = time.monotonic() - began
    report = {
        "command": " ".join(["bench/soak.py", *sys.argv[1:]]),
        "store": args.store,
        "voices": voices,
        "minutes": round(elapsed / 60, 2),
        "calls_placed": stats.placed,
        "turns": stats.turns,
        "conversations_resumed_after_restart": stats.resumed,
        "rest_faults": dict(stats.rest_faults),
        "kills": {s.name: s.kills for s in servers},
        "restart_to_healthy_s": {s.name: [round(x, 2) for x in s.restart_seconds] for s in servers},
        "api_errors": dict(stats.api_errors),
        "refused": dict(stats.refused),
        "figures": figures,
        "failures": failures,
        "timelines": timelines,
    }
    table = Table(
        title=f"soak {args.store} {'+'.join(voices)}: {'FAILED' if failures else 'clean'}"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("minutes", f"{elapsed / 60:.1f}")
    table.add_row("calls placed", str(stats.placed))
    table.add_row("turns", str(stats.turns))
    table.add_row("conversations resumed after a restart", str(stats.resumed))
    for k, v in sorted(stats.rest_faults.items()):
        table.add_row(f"REST fault {k}", str(v))
    for s in servers:
        restarts = s.restart_seconds
        worst = f", restart ≤ {max(restarts):.1f} s" if restarts else ""
        table.add_row(f"kills {s.name}", f"{s.kills}{worst}")
    for k, v in sorted(figures.items()):
        table.add_row(k, str(v))
    table.add_row("failures", str(len(failures)))
    Console().print(table)
    for line in failures[:40]:
        console.print("[red]FAIL[/red] ", end="")
        console.print(line, highlight=False, markup=False)
    if len(failures) > 40:
        console.print(f"… and {len(failures) - 40} more (--json has them all)")
    console.print(f"reproduce: .venv/bin/python {report['command']}", highlight=False)
    return (1 if failures else 0), report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--voice", choices=["gather", "stream", "both"], default="both")
    p.add_argument(
        "--kill-every",
        type=float,
        default=None,
        help="seconds between kill -9s (default: minutes*60/10, at least 20)",
    )
    p.add_argument("--rest-fault-rate", type=float, default=0.2)
    p.add_argument("--calls-per-server", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--pg",
        default=os.environ.get("VOICECALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    p.add_argument("--workdir")
    p.add_argument("--json")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL schemas")
    args = p.parse_args(argv)
    if args.kill_every is None:
        args.kill_every = max(20.0, args.minutes * 60 / 10)
    workdir = Path(args.workdir or f"/tmp/voicecall-soak-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    code, report = asyncio.run(soak(args, workdir))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
