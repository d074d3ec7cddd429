"""voicecall side by side with the seed (clawdbot's voice-call plugin, its own code under Node).

    .venv/bin/python bench/sidebyside.py [--pairs 4] [--stream-pairs 2] [--seconds 8]
        [--streams 100] [--stream-seconds 20] [--only webhooks|streams]

The seed's TypeScript is fetched at run time from its npm package (``npm pack
clawdbot@2026.1.24``) into ``~/.cache/voicecall-seed`` (never committed), bundled with esbuild
and run by ``bench/seed_harness.mjs`` (its HTTP server, signature check, call manager and
calls.jsonl store, Media Streams handler and paced TTS playout; speech recognition is a local
no-op, so the seed runs without VAD). voicecall runs as ``voicecall serve`` (webhooks: SQLite,
every webhook stored before the 200) and as ``bench/realtime.py``'s stream server (the real
StreamEndpoint, VAD on, synthetic TTS). Each server is pinned to CPU 0 with taskset, the load
(this process) to CPU 1; runs are interleaved in pairs (voicecall, seed, then seed, voicecall,
…) and every figure is also given as a ratio within its pair, since the machine is shared.

Figures: signed status callbacks per second at 32 connections (closed loop); latency at a fixed
1,000/s (open loop, from the scheduled send time: p99 and the worst run); at N streams (50
inbound frames/s each, every stream speaking 10 s utterances, paced by the server): server CPU
per stream-second (/proc), RSS per stream, playout gaps in a simulated Twilio buffer, drift
(spread of arrival − audio position within each utterance after a 120 ms lead; p99 over
utterances).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

import realtime as rt
import webhooks as wh

SEED_PACKAGE = "clawdbot@2026.1.24"
SEED_SRC = "package/extensions/voice-call/src"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voicecall-seed"
HARNESS = ROOT / "bench" / "seed_harness.mjs"
ENTRY = f"""
export {{ CallManager }} from "./{SEED_SRC}/manager.js";
export {{ TwilioProvider }} from "./{SEED_SRC}/providers/twilio.js";
export {{ VoiceCallWebhookServer }} from "./{SEED_SRC}/webhook.js";
export {{ VoiceCallConfigSchema }} from "./{SEED_SRC}/config.js";
"""


# ============================================================================ the seed, fetched


def ensure_seed() -> Path:
    """The seed bundle (fetched and built once; ``~/.cache/voicecall-seed``)."""
    bundle = CACHE / "seed.mjs"
    if bundle.exists():
        return bundle
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SEED_PACKAGE.replace('@', '-')}.tgz"
    if not tarball.exists():
        print(f"fetching {SEED_PACKAGE} from npm into {CACHE} ...", flush=True)
        subprocess.run(["npm", "pack", SEED_PACKAGE], cwd=CACHE, check=True, capture_output=True)
    subprocess.run(
        ["tar", "xzf", tarball.name, "package/extensions/voice-call"], cwd=CACHE, check=True
    )
    (CACHE / "package.json").write_text('{"name":"voicecall-seed-bench","private":true}\n')
    deps = json.loads((CACHE / "package/extensions/voice-call/package.json").read_text())
    runtime = {n: v for n, v in deps["dependencies"].items() if n != "@sinclair/typebox"}
    wanted = [f"{n}@{v.lstrip('^~')}" for n, v in runtime.items()]
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", *wanted, "esbuild@0.24.2"],
        cwd=CACHE,
        check=True,
        capture_output=True,
    )
    (CACHE / "entry.ts").write_text(ENTRY)
    subprocess.run(
        [
            str(CACHE / "node_modules/.bin/esbuild"),
            "entry.ts",
            "--bundle",
            "--platform=node",
            "--format=esm",
            "--packages=external",
            f"--outfile={bundle.name}",
        ],
        cwd=CACHE,
        check=True,
        capture_output=True,
    )
    return bundle


def seed_digest() -> str:
    tarball = CACHE / f"{SEED_PACKAGE.replace('@', '-')}.tgz"
    return hashlib.sha256(tarball.read_bytes()).hexdigest()[:16] if tarball.exists() else "?"


# ============================================================================ process helpers


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def running(cmd: list[str], cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        wh.pinned(cmd, 0),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def voicecall_serve_cmd(tmp: Path, port: int, calls: int) -> list[str]:
    cfg = tmp / f"voicecall-{port}.toml"
    cfg.write_text(
        f'provider = "twilio"\nfrom_number = "{wh.OUR_NUMBER}"\n'
        f'public_url = "http://127.0.0.1:{port}"\ninbound_policy = "open"\n'
        f"max_concurrent_calls = {calls + 10}\nmax_duration_seconds = 14400\n"
        f'[twilio]\naccount_sid = "{wh.SID}"\nauth_token = "{wh.TOKEN}"\n'
        f'api_base_url = "http://127.0.0.1:9"\n'
        f"[serve]\nport = {port}\n"
        f'[store]\nurl = "sqlite:///{tmp / f"bench-{port}.db"}"\n'
    )
    return [
        sys.executable,
        "-m",
        "voicecall.cli",
        "serve",
        "--config",
        str(cfg),
        "--log-level",
        "warning",
    ]


def seed_cmd(bundle: Path, tmp: Path, port: int, token: str) -> list[str]:
    store = tmp / f"seed-store-{port}"
    return ["node", str(HARNESS), str(bundle), str(port), str(store), wh.SID, token]


# ============================================================================ webhooks


async def webhook_run(
    name: str, cmd_for: Callable[[int], list[str]], status_query: str, args: argparse.Namespace
) -> dict[str, Any]:
    port = wh.free_port()
    path = "/voice/webhook"
    callers = [f"+1415555{1000 + i:04d}" for i in range(args.calls)]
    sids = [f"CA{i:032x}" for i in range(args.calls)]
    setup = [
        wh.build_request(port, path, wh.voice_params(s, c))
        for s, c in zip(sids, callers, strict=True)
    ]
    budget = int(max(args.seconds * 12_000, 1000 * 5) * 1.2)
    load = [
        wh.build_request(
            port,
            path + status_query,
            wh.status_params(sids[i % args.calls], callers[i % args.calls], i // args.calls + 1),
        )
        for i in range(budget)
    ]
    # the previous run's unsynced writes (the seed's calls.jsonl: it never fsyncs) would be
    # flushed by the next fsync of whoever runs now (ext4 orders data before the journal
    # commit an fsync forces): 40-80 ms stalls billed to the wrong server. Each run starts clean.
    os.sync()
    with running(cmd_for(port)) as proc:
        await wh.wait_up(port, proc)
        _, _, st = await wh.closed_loop(port, setup, 8, 60)
        assert st == {200: args.calls}, (name, st)
        await asyncio.sleep(0.5)
        half = len(load) // 2
        cpu0 = proc_cpu_s(proc.pid)
        rps, _lat, st = await wh.closed_loop(port, load[:half], args.connections, args.seconds)
        cpu_us = (proc_cpu_s(proc.pid) - cpu0) / max(1, sum(st.values())) * 1e6
        assert set(st) == {200}, (name, st)
        await asyncio.sleep(0.5)
        sent = sum(st.values())
        olat, ost = await wh.open_loop(port, load[sent:], 1000.0, 5.0, args.connections)
        assert set(ost) == {200}, (name, ost)
    return {
        "rps": rps,
        "cpu_us": cpu_us,
        "p50": wh.pct(olat, 50),
        "p99": wh.pct(olat, 99),
        "max": max(olat) * 1000,
    }


async def bench_webhooks(bundle: Path, tmp: Path, args: argparse.Namespace) -> None:
    ours = lambda port: voicecall_serve_cmd(tmp, port, args.calls)  # noqa: E731
    theirs = lambda port: seed_cmd(bundle, tmp, port, wh.TOKEN)  # noqa: E731
    print(
        f"\nwebhooks: {args.pairs} interleaved pairs; closed loop {args.connections} connections "
        f"{args.seconds:.0f} s, then open loop 1,000/s for 5 s; {args.calls} calls"
    )
    results: dict[str, list[dict[str, Any]]] = {"voicecall": [], "seed": []}
    for pair in range(args.pairs):
        order = [("voicecall", ours, "?kind=status"), ("seed", theirs, "?type=status")]
        if pair % 2:
            order.reverse()
        got: dict[str, dict[str, Any]] = {}
        for name, cmd_for, query in order:
            got[name] = await webhook_run(name, cmd_for, query, args)
            results[name].append(got[name])
        v, s = got["voicecall"], got["seed"]
        print(
            f"  pair {pair + 1}: voicecall {v['rps']:>6,}/s {v['cpu_us']:5.0f} µs CPU/request, "
            f"p99 {v['p99']:6.2f} ms (max {v['max']:6.1f}) | seed {s['rps']:>6,}/s "
            f"{s['cpu_us']:5.0f} µs, p99 {s['p99']:6.2f} ms (max {s['max']:6.1f}) | "
            f"throughput {v['rps'] / s['rps']:.2f}×, per CPU-second "
            f"{s['cpu_us'] / v['cpu_us']:.2f}×, p99 {v['p99'] / s['p99']:.2f}×  "
            f"(load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    v_all, s_all = results["voicecall"], results["seed"]
    ratios = sorted(a["rps"] / b["rps"] for a, b in zip(v_all, s_all, strict=True))
    print(
        f"  webhooks/s: voicecall median {_median([r['rps'] for r in v_all]):,.0f}, "
        f"seed {_median([r['rps'] for r in s_all]):,.0f}; ratio per pair "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (median {_median(ratios):.2f}×)"
    )
    cpur = sorted(b["cpu_us"] / a["cpu_us"] for a, b in zip(v_all, s_all, strict=True))
    print(
        f"  requests per CPU-second (1e6 / CPU µs per request; what one uncontended core could "
        f"serve): ratio per pair {', '.join(f'{r:.2f}' for r in cpur)} "
        f"(median {_median(cpur):.2f}×)"
    )
    p99r = sorted(a["p99"] / b["p99"] for a, b in zip(v_all, s_all, strict=True))
    print(
        f"  p99 at 1,000/s: voicecall median {_median([r['p99'] for r in v_all]):.2f} ms "
        f"(worst run {max(r['p99'] for r in v_all):.2f}, max single "
        f"{max(r['max'] for r in v_all):.1f}), seed median "
        f"{_median([r['p99'] for r in s_all]):.2f} ms (worst run "
        f"{max(r['p99'] for r in s_all):.2f}); ratio per pair "
        f"{', '.join(f'{r:.2f}' for r in p99r)}"
    )


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return (s[n // 2] + s[(n - 1) // 2]) / 2 if s else float("nan")


# ============================================================================ streams

_orig_on_text = rt.Stream.on_text


def _on_text(self: rt.Stream, payload: bytes) -> None:
    # the seed ends each utterance with a mark named tts-<ms> and needs no echo
    if payload.startswith(b'{"event":"mark"') and b'"name":"tts-' in payload:
        self.in_utterance = False
        if self.monitor:
            self.offsets.append(float("nan"))
        return
    _orig_on_text(self, payload)


rt.Stream.on_text = _on_text  # type: ignore[method-assign]


def drift_p99(streams: list[rt.Stream]) -> tuple[float, int]:
    """p99 over utterances of (max − min) of arrival − audio position, for the messages that
    start 120 ms (the lead) or more into the utterance, over at least a second of audio
    (whatever the message size: the seed sends 20 ms, voicecall 200 ms)."""
    spreads: list[float] = []
    for s in streams:
        seg: list[tuple[int, float]] = []
        at = iter(s.offset_at)
        for x in [*s.offsets, float("nan")]:
            if math.isfinite(x):
                seg.append((next(at), x))
                continue
            if seg:
                first = seg[0][0]
                steady = [(b, o) for b, o in seg if b - first >= 960]  # 120 ms of μ-law
                if steady and steady[-1][0] - steady[0][0] >= 8000:  # a second
                    offsets = [o for _, o in steady]
                    spreads.append((max(offsets) - min(offsets)) * 1000)
            seg = []
    return (rt.percentile(spreads, 99) if spreads else float("nan")), len(spreads)


async def stream_run(
    name: str, cmd_for: Callable[[int], list[str]], args: argparse.Namespace
) -> dict[str, Any]:
    port = wh.free_port()
    with running(cmd_for(port)) as proc:
        await wh.wait_up(port, proc)
        await asyncio.sleep(1.0)
        rss0 = proc_rss_kb(proc.pid)
        opened: list[rt.Stream] = []
        for i in range(args.streams):
            opened.append(await rt.open_stream(port, 1000 + i, 40, monitor=True))
            await asyncio.sleep(1 / 200)
        caller = rt.Caller(opened, rt.line_noise())
        task = asyncio.create_task(caller.run())
        try:
            await asyncio.sleep(3.0)
            for s in opened:
                s.offsets.clear()
                s.offset_at.clear()
                s.offsets.append(float("nan"))
            gaps0 = sum(s.gaps for s in opened)
            c0, t0 = proc_cpu_s(proc.pid), time.monotonic()
            await asyncio.sleep(args.stream_seconds)
            wall = time.monotonic() - t0
            cpu = proc_cpu_s(proc.pid) - c0
            rss1 = proc_rss_kb(proc.pid)
            gaps = sum(s.gaps for s in opened) - gaps0
            lag = caller.lag[-int(args.stream_seconds / rt.TICK * 10) :]
            media = sum(s.media_bytes for s in opened)
            open_now = sum(1 for s in opened if s.transport is not None)
        finally:
            caller.running = False
            await task
            rt.close_all(opened)
    drift, utterances = drift_p99(opened)
    return {
        "cpu_ms_per_stream_s": cpu / wall / args.streams * 1000,
        "cpu_pct": cpu / wall * 100,
        "rss_kb_per_stream": (rss1 - rss0) / args.streams,
        "gaps": gaps,
        "drift_p99_ms": drift,
        "utterances": utterances,
        "audio_s": media / 8000,
        "open": open_now,
        "client_lag_p99_ms": rt.percentile(lag, 99) * 1000,
    }


async def bench_streams(bundle: Path, args: argparse.Namespace) -> None:
    limits = {"max_streams": 5000, "max_pending_total": 5000, "max_pending_per_ip": 5000}

    def ours(port: int) -> list[str]:
        return [
            sys.executable,
            str(ROOT / "bench" / "realtime.py"),
            "server",
            "--port",
            str(port),
            "--streaming",
            json.dumps(limits),
            "--lean",
        ]

    def theirs(port: int) -> list[str]:
        return seed_cmd(bundle, Path(tempfile.mkdtemp(prefix="seed-")), port, rt.AUTH_TOKEN)

    print(
        f"\nstreams: {args.stream_pairs} interleaved pairs; {args.streams} streams, 50 frames/s "
        f"in each, 10 s utterances out, measured over {args.stream_seconds:.0f} s "
        "(voicecall: VAD on; seed: recognition is a no-op, no VAD)"
    )
    for pair in range(args.stream_pairs):
        order = [("voicecall", ours), ("seed", theirs)]
        if pair % 2:
            order.reverse()
        got: dict[str, dict[str, Any]] = {}
        for name, cmd_for in order:
            got[name] = await stream_run(name, cmd_for, args)
        v, s = got["voicecall"], got["seed"]
        for name, r in (("voicecall", v), ("seed", s)):
            print(
                f"  pair {pair + 1} {name:9}: CPU {r['cpu_ms_per_stream_s']:.2f} ms/stream-s "
                f"({r['cpu_pct']:.0f} % of a core), RSS {r['rss_kb_per_stream']:.0f} KB/stream, "
                f"gaps {r['gaps']}, drift p99 {r['drift_p99_ms']:.1f} ms over "
                f"{r['utterances']} utterances, {r['audio_s']:.0f} s audio, {r['open']} open; "
                f"load client's tick lag p99 {r['client_lag_p99_ms']:.1f} ms"
            )
        cpu_ratio = v["cpu_ms_per_stream_s"] / s["cpu_ms_per_stream_s"]
        mem_ratio = v["rss_kb_per_stream"] / max(1e-9, s["rss_kb_per_stream"])
        print(
            f"  pair {pair + 1} ratios: CPU/stream {cpu_ratio:.2f}×, "
            f"memory/stream {mem_ratio:.2f}×  "
            f"(load {os.getloadavg()[0]:.2f})",
            flush=True,
        )


# ============================================================================ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=4, help="interleaved webhook pairs")
    ap.add_argument("--stream-pairs", type=int, default=2, help="interleaved stream pairs")
    ap.add_argument("--seconds", type=float, default=8.0, help="closed-loop seconds per run")
    ap.add_argument("--connections", type=int, default=32, help="closed-loop connections")
    ap.add_argument("--calls", type=int, default=200, help="calls the callbacks are spread over")
    ap.add_argument("--streams", type=int, default=100, help="concurrent media streams")
    ap.add_argument("--stream-seconds", type=float, default=20.0, help="measured seconds")
    ap.add_argument("--only", choices=["webhooks", "streams"], default=None, help="one half")
    args = ap.parse_args()
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("node and npm are needed to run the seed")
    bundle = ensure_seed()
    print(f"$ .venv/bin/python bench/sidebyside.py {' '.join(sys.argv[1:])}")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, node "
        f"{subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}; "
        f"seed {SEED_PACKAGE} (tarball sha256 {seed_digest()}…); servers on CPU 0, load on CPU 1; "
        f"load average before {os.getloadavg()[0]:.2f}"
    )
    rt.pin(1)
    tmp = Path(tempfile.mkdtemp(prefix="vc-sidebyside-"))
    if args.only in (None, "webhooks"):
        rt.client_run(bench_webhooks(bundle, tmp, args))
    if args.only in (None, "streams"):
        rt.client_run(bench_streams(bundle, args))
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
