"""Real-time voice benchmarks: first audio, barge-in latency, playout, capacity.

Run:  .venv/bin/python bench/realtime.py all            (about 4 minutes)
      .venv/bin/python bench/realtime.py firstaudio [--background 300]
      .venv/bin/python bench/realtime.py bargein   [--streams 100] [--trials 30]
      .venv/bin/python bench/realtime.py playout   [--streams 300] [--seconds 60]
      .venv/bin/python bench/realtime.py capacity  [--streams 100,300,500] [--seconds 20]

Loopback only. The server is a separate process pinned to CPU 0 (uvicorn, its default
websockets-sansio protocol and uvloop, the real :class:`StreamEndpoint` with a synthetic
streaming TTS and a host that keeps every call talking); the load client is this process, pinned
to CPU 1: a minimal raw-socket WebSocket client that plays Twilio (20 ms inbound μ-law frames on
an absolute schedule, a nominal playout buffer per stream, marks echoed when their audio has
played, ``clear`` honoured). Definitions:

- first audio: first TTS bytes yielded → first media frame handed to the socket (in-process,
  with ``--background`` other sessions speaking in the same event loop);
- barge-in: the moment the caller's first speech sample was captured (frame send time minus the
  rest of its 20 ms frame) → ``clear`` received by the client;
- playout: one stream speaks ``--seconds`` of audio while ``--streams`` others run; underruns
  are gaps in the simulated Twilio playout buffer mid-utterance, drift is the spread of
  (arrival time − audio position) over the utterance after the lead;
- capacity: server-side send lateness of every outbound message (vs. the pacer's schedule),
  server CPU (one core = 100 %), RSS per stream; inbound frames processed vs. sent.

Recording's cost: the same run with every stream recorded to a stereo WAV, e.g.
``capacity --settings '{"recording":{"enabled":true,"dir":"/tmp/vc-bench-rec"}}'``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicecall.audio.g711 import FRAME_BYTES, ulaw_encode
from voicecall.twilio.signature import compute_signature

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
STREAM_PATH = "/voice/stream"
ROOT = Path(__file__).resolve().parents[1]
TICK = 0.02
WS_IMPL = ["direct"]  # uvicorn's WebSocket protocol in the server (--ws)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):  # absolute CPU numbers (children inherit affinity)
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def noise_ulaw(seconds: float, amplitude: float, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    n = int(seconds * 8000)
    t = np.arange(n) / 8000
    x = amplitude * (0.6 * np.sin(2 * np.pi * 180 * t) + 0.4 * rng.standard_normal(n))
    return ulaw_encode(np.clip(x, -32767, 32767).astype(np.int16))


# =============================================================================== server process


def run_server(
    port: int,
    cpu: int,
    streaming: dict[str, Any],
    extra: dict[str, Any],
    ws: str,
    lean: bool = False,
) -> None:
    import uvicorn

    from voicecall.calls.channel import SpeechChannel, SpokenResult
    from voicecall.config import load_config
    from voicecall.server.metrics import Metrics
    from voicecall.server.streams import StreamEndpoint, StreamMetrics, StreamObserver
    from voicecall.server.ws_protocol import DirectWebSocketProtocol

    pin(cpu)
    profile = None
    if os.environ.get("BENCH_PROFILE"):  # profile the server; dumped at each /reset
        import cProfile

        profile = cProfile.Profile()
    lateness: list[float] = []
    send_cpu = [0.0, 0]
    counts = {"frames_in": 0, "frames_out": 0, "barge_ins": 0, "underruns": 0}

    class Recording(StreamObserver):
        def frames_in(self, count: int) -> None:
            counts["frames_in"] += count

        def frames_out(self, count: int) -> None:
            counts["frames_out"] += count

        def lateness(self, seconds: float) -> None:
            lateness.append(seconds)

        def barge_in(self) -> None:
            counts["barge_ins"] += 1

        def underrun(self, count: int) -> None:
            counts["underruns"] += count

    class SyntheticTts:
        """Streams ``0.25 s`` per word of speech-like audio in 100 ms chunks at 4x real time."""

        name = "synthetic"
        audio = noise_ulaw(4.0, 3000.0, seed=1)

        async def synthesize(self, text: str) -> AsyncIterator[bytes]:
            total = len(text.split()) * 2000
            for offset in range(0, total, 800):
                await asyncio.sleep(0.025)
                start = offset % (len(self.audio) - 800)
                yield self.audio[start : start + min(800, total - offset)]

        async def aclose(self) -> None:
            return None

    class TalkingHost:
        def __init__(self) -> None:
            self.tasks: dict[str, asyncio.Task[None]] = {}

        async def claim_stream(self, *, token: str, call_sid: str) -> str:
            return call_sid

        async def stream_attached(self, call_id: str, channel: SpeechChannel) -> None:
            words = int(call_id.rsplit("-", 1)[-1].split("w")[-1]) if "w" in call_id else 40
            watch_hold(channel)
            self.tasks[call_id] = asyncio.create_task(self._talk(channel, words))

        async def _talk(self, channel: SpeechChannel, words: int) -> None:
            with contextlib.suppress(Exception):
                while True:
                    result = await channel.say("word " * words)
                    if not result.completed:
                        await asyncio.sleep(0.3)

        async def stream_detached(self, call_id: str, *, reason: str) -> None:
            task = self.tasks.pop(call_id, None)
            if task is not None:
                task.cancel()

        async def caller_said(
            self, call_id: str, text: str, *, final: bool, resumed: bool = False
        ) -> None: ...

        async def caller_pressed(self, call_id: str, digit: str) -> None: ...

        async def bot_interrupted(self, call_id: str, result: SpokenResult) -> None: ...

    settings = load_config(
        env={},
        overrides={
            "public_url": f"http://127.0.0.1:{port}",
            "twilio": {"auth_token": AUTH_TOKEN},
            "streaming": {"enabled": True, **streaming},
            **extra,
        },
    )
    metrics = Metrics()
    endpoint = StreamEndpoint(
        settings,
        TalkingHost(),
        metrics,
        tts=SyntheticTts(),
        stt=None,
        # lean: the server's own observer (metrics), as `voicecall serve` runs it
        observer_factory=None if lean else lambda m: Recording(m),
    )
    _ = StreamMetrics
    if settings.recording.enabled:  # every stream recorded, as `voicecall serve` records calls
        from voicecall.telephony.wavtap import WavTap

        rec_dir = Path(settings.recording.dir).expanduser()
        rec_dir.mkdir(parents=True, exist_ok=True)
        endpoint.taps = lambda call_id: WavTap(rec_dir / f"{call_id}.wav")

    def cpu_seconds() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    loop_lag: list[float] = []
    stall_cpu = [0.0, 0.0]
    import gc

    gc_pause = {"started": 0.0, "gen": 0}
    gc_stats: dict[str, list[float]] = {"0": [], "1": [], "2": []}

    def on_gc(phase: str, info: dict[str, int]) -> None:  # collection pauses, by generation
        if phase == "start":
            gc_pause["started"] = time.perf_counter()
            gc_pause["gen"] = info["generation"]
        else:
            gc_stats[str(gc_pause["gen"])].append(time.perf_counter() - gc_pause["started"])

    if not lean:
        gc.callbacks.append(on_gc)
    probe: list[asyncio.Task[None]] = []

    async def lag_probe() -> None:
        while True:
            target = time.perf_counter() + 0.005
            c0 = time.thread_time()
            await asyncio.sleep(0.005)
            lag = time.perf_counter() - target
            loop_lag.append(lag)
            if lag > 0.02:  # a stall: was the loop computing (CPU) or waiting?
                stall_cpu[0] += time.thread_time() - c0
                stall_cpu[1] += lag + 0.005

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if not probe and not lean:
            probe.append(asyncio.create_task(lag_probe()))
        if scope["type"] == "websocket":
            await endpoint(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/reset" and profile is not None:
            profile.disable()
            profile.dump_stats(os.environ["BENCH_PROFILE"])
            profile.enable()
        if scope["path"] == "/reset":
            lateness.clear()
            loop_lag.clear()
            for pauses in gc_stats.values():
                pauses.clear()
            for key in counts:
                counts[key] = 0
        body = json.dumps(
            {
                "lateness_ms": {
                    q: percentile(lateness, float(q)) * 1000 for q in ("50", "99", "99.9", "100")
                },
                "lateness_n": len(lateness),
                "stall_busy_pct": stall_cpu[0] / max(1e-9, stall_cpu[1]) * 100,
                "loop_lag_ms": {
                    q: percentile(loop_lag, float(q)) * 1000 for q in ("50", "99", "100")
                },
                "gc": {
                    gen: f"{len(p)}x max {max(p, default=0) * 1000:.1f} ms"
                    for gen, p in gc_stats.items()
                },
                **counts,
                "streams": endpoint.open_streams,
                "cpu_s": cpu_seconds(),
                "rss_mb": rss_mb(),
                "send_cpu_us": send_cpu[0] / max(1, send_cpu[1]) * 1e6,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
        backlog=4096,
        ws_per_message_deflate=False,
        ws=DirectWebSocketProtocol if ws == "direct" else ws,  # type: ignore[arg-type]
    )
    if os.environ.get("BENCH_TIMESEND"):  # CPU spent inside uvicorn's websocket send
        from uvicorn.protocols.websockets import websockets_sansio_impl as impl

        original = impl.WebSocketsSansIOProtocol.send

        async def timed_send(self: Any, message: Any) -> None:
            t = time.thread_time()
            await original(self, message)
            send_cpu[0] += time.thread_time() - t
            send_cpu[1] += 1

        impl.WebSocketsSansIOProtocol.send = timed_send  # type: ignore[method-assign]
    if os.environ.get("BENCH_TRACE_VAD"):  # every VAD start/end and the detector's state
        from voicecall.voice.bargein import BargeInDetector

        original_update = BargeInDetector.update

        def traced_update(self: Any, event: Any, **kw: Any) -> Any:
            got = original_update(self, event, **kw)
            if event is not None:
                print(
                    f"vad {id(self) % 10000} {event.kind.value} at {event.sample} "
                    f"guard_until={self._guard_until} -> {got}",
                    file=sys.stderr,
                    flush=True,
                )
            return got

        BargeInDetector.update = traced_update  # type: ignore[method-assign]
    if os.environ.get("BENCH_GC"):
        import gc

        gc.set_threshold(*[int(x) for x in os.environ["BENCH_GC"].split(",")])
    server = uvicorn.Server(config)
    if lean:
        from voicecall.server.runner import settle_gc

        settle_gc()  # as `voicecall serve` does
    if profile is not None:
        profile.enable()
    server.run()


@contextlib.contextmanager
def server_process(
    port: int, streaming: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> Any:
    cmd = [
        sys.executable,
        __file__,
        "server",
        "--port",
        str(port),
        "--streaming",
        json.dumps(streaming or {}),
        "--settings",
        json.dumps(extra or {}),
        "--ws",
        WS_IMPL[0],
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                stats_sync(port)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("bench server did not start") from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def stats_sync(port: int, path: str = "/stats") -> dict[str, Any]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return dict(json.loads(data.split(b"\r\n\r\n", 1)[1]))


async def stats(port: int, path: str = "/stats") -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return dict(json.loads(data.split(b"\r\n\r\n", 1)[1]))


# =============================================================================== load client


def _frame(text: str) -> bytes:
    """A masked client text frame (mask key 0: the payload is unchanged)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


@dataclass
class Stream:
    """One fake Twilio Media Stream: sends caller frames, plays what it receives."""

    index: int
    words: int
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None = None
    sid: str = ""
    seq: int = 1
    chunk: int = 0
    connected: asyncio.Future[None] | None = None
    buffer_end: float = 0.0
    media_bytes: int = 0
    gaps: int = 0
    gap_ms: float = 0.0
    in_utterance: bool = False
    offsets: list[float] = field(default_factory=list)  # arrival - audio position (monitored)
    offset_at: list[int] = field(default_factory=list)  # media bytes before each offset's message
    monitor: bool = False
    clears: list[float] = field(default_factory=list)
    first_media: float | None = None
    close_code: int | None = None
    _buf: bytes = b""
    _handshaken: bool = False

    def media_frame(self, b64: str) -> bytes:
        self.seq += 1
        self.chunk += 1
        return _frame(
            f'{{"event":"media","sequenceNumber":"{self.seq}","streamSid":"{self.sid}",'
            f'"media":{{"track":"inbound","chunk":"{self.chunk}",'
            f'"timestamp":"{self.chunk * 20}","payload":"{b64}"}}}}'
        )

    def mark_frame(self, name: str) -> bytes:
        self.seq += 1
        return _frame(
            f'{{"event":"mark","sequenceNumber":"{self.seq}","streamSid":"{self.sid}",'
            f'"mark":{{"name":"{name}"}}}}'
        )

    # -- incoming bytes
    def feed(self, data: bytes) -> None:
        self._buf += data
        if not self._handshaken:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buf = self._buf[:end], self._buf[end + 4 :]
            self._handshaken = True
            ok = head.startswith(b"HTTP/1.1 101")
            if self.connected is not None and not self.connected.done():
                if ok:
                    self.connected.set_result(None)
                else:
                    self.connected.set_exception(RuntimeError(head.split(b"\r\n", 1)[0].decode()))
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            hdr = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if len(buf) - pos < hdr + n:
                break
            payload = buf[pos + hdr : pos + hdr + n]
            pos += hdr + n
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9 and self.transport is not None:  # ping: answer (uvicorn pings)
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self._buf = buf[pos:]

    def on_text(self, payload: bytes) -> None:
        now = time.monotonic()  # (uvloop's loop.time() is whole milliseconds)
        if payload.startswith(b'{"event":"media"'):
            i = payload.index(b'"payload":"') + 11
            j = payload.index(b'"', i)
            b64 = payload[i:j]
            n = len(b64) * 3 // 4 - b64[-2:].count(b"=")
            if self.first_media is None:
                self.first_media = now
            if self.in_utterance and now > self.buffer_end + 0.001:
                self.gaps += 1
                self.gap_ms += (now - self.buffer_end) * 1000
            if self.monitor and self.in_utterance:
                self.offsets.append(now - self.media_bytes / 8000)
                self.offset_at.append(self.media_bytes)
            self.in_utterance = True
            self.buffer_end = max(now, self.buffer_end) + n / 8000
            self.media_bytes += n
        elif payload.startswith(b'{"event":"mark"'):
            msg = json.loads(payload)
            name = msg["mark"]["name"]
            at = max(now, self.buffer_end)
            if name.endswith("e"):  # utterance end: playout may stop after it
                self.in_utterance = False
                if self.monitor:
                    self.offsets.append(float("nan"))  # utterance boundary
            self.loop.call_later(at - now, self._echo, name)
        elif payload.startswith(b'{"event":"clear"'):
            self.clears.append(now)
            self.buffer_end = now
            self.in_utterance = False
            if self.monitor:
                self.offsets.append(float("nan"))

    def _echo(self, name: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.mark_frame(name))


class _Proto(asyncio.Protocol):
    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.stream.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.stream.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stream.transport = None


async def open_stream(port: int, index: int, words: int, *, monitor: bool = False) -> Stream:
    loop = asyncio.get_running_loop()
    stream = Stream(index, words, loop, monitor=monitor)
    stream.sid = f"MZ{index:032d}"
    stream.connected = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Proto(stream), "127.0.0.1", port)
    stream.transport = transport  # (uvloop calls connection_made a loop turn later)
    url = f"ws://127.0.0.1:{port}{STREAM_PATH}"
    key = base64.b64encode(os.urandom(16)).decode()
    sig = compute_signature(url, [], AUTH_TOKEN)
    stream.transport.write(
        (
            f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"X-Twilio-Signature: {sig}\r\n\r\n"
        ).encode()
    )
    await asyncio.wait_for(stream.connected, 30)
    call_sid = f"CA{index:028d}w{words:03d}"
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream.sid,
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream.sid,
            "callSid": f"bench-{call_sid}",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"token": "bench"},
        },
    }
    stream.transport.write(_frame(json.dumps(start)))
    return stream


@dataclass
class Caller:
    """Inbound audio for every stream on one absolute 20 ms clock."""

    streams: list[Stream]
    quiet: list[str]
    lag: list[float] = field(default_factory=list)
    sent: int = 0
    scripts: dict[int, list[str]] = field(default_factory=dict)  # per stream: queued frames
    sent_at: dict[int, list[float]] = field(default_factory=dict)
    running: bool = True

    async def run(self, phases: int = 10) -> None:
        """Each stream sends every 20 ms at its own phase (streams spread over ``phases`` slots of
        the 20 ms period, as independent calls are), on one absolute schedule."""
        t0 = time.monotonic()
        k = 0
        step = TICK / phases
        while self.running:
            k += 1
            target = t0 + k * step
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            self.lag.append(now - target)
            phase = k % phases
            q = self.quiet[(k // phases) % len(self.quiet)]
            for s in self.streams[phase::phases]:
                if s.transport is None or s.transport.is_closing():
                    continue
                script = self.scripts.get(s.index)
                if script:
                    s.transport.write(s.media_frame(script.pop(0)))
                    self.sent_at.setdefault(s.index, []).append(time.monotonic())
                else:
                    s.transport.write(s.media_frame(q))
                self.sent += 1


def b64_frames(ulaw: bytes) -> list[str]:
    out = []
    for i in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES):
        out.append(base64.b64encode(ulaw[i : i + FRAME_BYTES]).decode())
    return out


def line_noise() -> list[str]:
    # VOICECALL_BENCH_INBOUND_AMPLITUDE: the callee's level (40: a quiet line, -58 dBFS;
    # 3000: talking level, every frame active)
    amplitude = float(os.environ.get("VOICECALL_BENCH_INBOUND_AMPLITUDE", "40"))
    return b64_frames(noise_ulaw(2.0, amplitude, seed=7))


def watch_hold(channel: Any) -> None:
    """VOICECALL_BENCH_HOLD (server side): ``off``; ``gated``: the service's hold watcher
    (telephony/holdwatch.py) on every stream; ``always``: a music discriminator on every frame
    of every stream (what an earlier attempt did)."""
    from voicecall.audio.music import MusicDiscriminator
    from voicecall.calls.channel import InboundTap, TappableChannel
    from voicecall.telephony.holdwatch import HoldWatch

    mode = os.environ.get("VOICECALL_BENCH_HOLD", "off")
    if mode == "off" or not isinstance(channel, TappableChannel):
        return
    if mode == "always":
        disc = MusicDiscriminator()
        channel.add_tap(InboundTap(lambda p: disc.feed_ulaw(p) if len(p) == 160 else None))
    else:
        channel.add_tap(InboundTap(HoldWatch().feed))


async def open_many(port: int, count: int, words: int, rate: float = 100.0) -> list[Stream]:
    streams: list[Stream] = []
    for i in range(count):
        streams.append(await open_stream(port, 1000 + i, words))
        await asyncio.sleep(1 / rate)
    return streams


def close_all(streams: list[Stream]) -> None:
    for s in streams:
        if s.transport is not None:
            s.transport.close()


async def espeak_speech() -> tuple[bytes, int]:
    from voicecall.audio.g711 import ulaw_decode
    from voicecall.speech.tts.espeak import EspeakTts

    audio = b"".join([c async for c in EspeakTts().synthesize("Excuse me, can I stop you there?")])
    pcm = ulaw_decode(audio)
    onset = int(np.argmax(np.abs(pcm.astype(np.int32)) > 500))
    return audio, onset


# =============================================================================== benchmarks


async def until(
    predicate: Any,
    interval: float = 0.01,
    timeout: float | None = None,
    watch: Stream | None = None,
) -> bool:
    """Poll the load client's own state (plain counters, no events to wait on)."""
    loop = asyncio.get_running_loop()
    end = None if timeout is None else loop.time() + timeout
    while not predicate():
        if end is not None and loop.time() > end:
            return False
        if watch is not None and watch.close_code is not None:
            raise RuntimeError(f"stream {watch.index} closed by the server ({watch.close_code})")
        await asyncio.sleep(interval)
    return True


async def bench_first_audio(background: int, trials: int) -> dict[str, Any]:
    from voicecall.twilio.media import MediaSession
    from voicecall.voice.session import VoiceSession
    from voicecall.voice.settings import VoiceTuning

    sys.path.insert(0, str(ROOT / "tests" / "voice"))
    from voice_harness import FakeHost, TwilioPeer, start_message

    gaps: list[float] = []

    class TimedTts:
        name = "timed"

        def __init__(self, slow: bool) -> None:
            self.slow = slow
            self.first_yield: float | None = None
            self.audio = noise_ulaw(1.0, 3000.0)

        async def synthesize(self, text: str) -> AsyncIterator[bytes]:
            await asyncio.sleep(0.05 if self.slow else 0)  # the service's latency
            for i in range(0, 8000 * len(text.split()) // 4, 800):
                if self.first_yield is None:
                    self.first_yield = time.perf_counter()
                yield self.audio[i % 7200 : i % 7200 + 800]
                await asyncio.sleep(0.025)

        async def aclose(self) -> None:
            return None

    class TimedPeer(TwilioPeer):
        first_media: float | None = None

        def take(self, text: str) -> None:  # every frame, sent with or without waiting
            if self.first_media is None and text.startswith('{"event":"media"'):
                self.first_media = time.perf_counter()
            super().take(text)

    async def session(tts: Any, peer: TwilioPeer) -> VoiceSession:
        media = MediaSession()
        media.receive_text(start_message())
        s = VoiceSession(
            call_id="c",
            media=media,
            transport=peer,
            host=FakeHost(),
            tts=tts,
            stt=None,
            tuning=VoiceTuning(),
        )
        peer.session, peer.media = s, media
        s.start()
        return s

    # background load: sessions speaking continuously in the same loop
    bg: list[VoiceSession] = []
    talkers: list[asyncio.Task[Any]] = []

    async def talk(s: VoiceSession) -> None:
        with contextlib.suppress(Exception):
            while True:
                await s.say("word " * 40)

    for _ in range(background):
        s = await session(TimedTts(slow=False), TwilioPeer())
        bg.append(s)
        talkers.append(asyncio.create_task(talk(s)))
    await asyncio.sleep(1.0)
    for _ in range(trials):
        tts, peer = TimedTts(slow=True), TimedPeer()
        s = await session(tts, peer)
        say = asyncio.create_task(s.say("hello there caller"))
        await until(lambda peer=peer: peer.first_media is not None, 0.005)
        assert tts.first_yield is not None
        gaps.append((peer.first_media - tts.first_yield) * 1000)
        await s.interrupt()
        await say
        await s.shutdown("done")
    for t in talkers:
        t.cancel()
    for s in bg:
        await s.shutdown("done")
    return {
        "background": background,
        "trials": trials,
        "p50_ms": percentile(gaps, 50),
        "p95_ms": percentile(gaps, 95),
        "max_ms": max(gaps),
    }


async def bench_barge_in(port: int, streams: int, trials: int) -> dict[str, Any]:
    speech, onset = await espeak_speech()
    speech_frames = b64_frames(speech)
    onset_frame, onset_in_frame = divmod(onset, FRAME_BYTES)
    others = await open_many(port, streams, 40)
    probe = await open_stream(port, 1, 400)
    caller = Caller([*others, probe], line_noise())
    task = asyncio.create_task(caller.run())
    latencies: list[float] = []
    try:
        for _ in range(trials):
            # wait until the bot has been audible for a while (past the echo guard)
            await until(lambda: probe.media_bytes >= 8000 and probe.in_utterance, 0.05, watch=probe)
            mark_bytes = probe.media_bytes
            await until(lambda m=mark_bytes: probe.media_bytes - m >= 8000, 0.05, watch=probe)
            clears = len(probe.clears)
            caller.sent_at[probe.index] = []
            caller.scripts[probe.index] = list(speech_frames)
            if not await until(lambda c=clears: len(probe.clears) > c, 0.002, timeout=5):
                latencies.append(float("inf"))
                server = await stats(port)
                print(
                    f"  trial {len(latencies)}: no clear (server barge-ins so far "
                    f"{server['barge_ins']}, bot audio in flight {probe.in_utterance})",
                    file=sys.stderr,
                )
                continue
            sent = caller.sent_at[probe.index][onset_frame]
            captured = sent - (FRAME_BYTES - onset_in_frame) / 8000
            latencies.append((probe.clears[-1] - captured) * 1000)
            print(f"  trial {len(latencies)}: {latencies[-1]:.1f} ms", file=sys.stderr)
            await until(lambda: not caller.scripts.get(probe.index), 0.05)
            await asyncio.sleep(1.0)  # silence: the VAD ends the caller's turn
            probe.media_bytes = 0
            probe.first_media = None
    finally:
        caller.running = False
        await task
        close_all([*others, probe])
    finite = [x for x in latencies if math.isfinite(x)]
    return {
        "background_streams": streams,
        "trials": trials,
        "missed": len(latencies) - len(finite),
        "p50_ms": percentile(finite, 50),
        "p95_ms": percentile(finite, 95),
        "max_ms": max(finite) if finite else float("nan"),
    }


async def bench_playout(port: int, streams: int, seconds: float) -> dict[str, Any]:
    words = int(seconds * 4)  # 0.25 s a word
    others = await open_many(port, streams, 40)
    await asyncio.sleep(1.0)
    probe = await open_stream(port, 2, words, monitor=True)
    caller = Caller([*others, probe], line_noise())
    task = asyncio.create_task(caller.run())
    try:
        await stats(port, "/reset")
        await until(lambda: probe.first_media is not None, 0.05, watch=probe)
        await until(
            lambda: not probe.in_utterance and probe.media_bytes >= seconds * 8000, 0.1, watch=probe
        )
        server = await stats(port)
    finally:
        caller.running = False
        await task
        close_all([*others, probe])
    offsets = probe.offsets
    first = offsets[: offsets.index(float("nan"))] if float("nan") in offsets else offsets
    seg = [x for x in first if math.isfinite(x)]
    # skip the lead (the first 120 ms of audio arrive at once by design)
    lead_msgs = 120 // 20
    steady = np.asarray(seg[lead_msgs:])
    drift_ms = float((steady.max() - steady.min()) * 1000) if steady.size else float("nan")
    end_drift_ms = float((steady[-1] - steady[0]) * 1000) if steady.size else float("nan")
    return {
        "other_streams": streams,
        "seconds": probe.media_bytes / 8000,
        "underruns": probe.gaps,
        "gap_ms_total": probe.gap_ms,
        "drift_spread_ms": drift_ms,
        "drift_end_minus_start_ms": end_drift_ms,
        "server_underruns_all_streams": server["underruns"],
        "server_lateness_ms": server["lateness_ms"],
        "client_tick_lag_p99_ms": percentile(caller.lag, 99) * 1000,
    }


async def bench_capacity(port: int, streams: int, seconds: float) -> dict[str, Any]:
    base = await stats(port)
    opened = await open_many(port, streams, 40, rate=200)
    caller = Caller(opened, line_noise())
    task = asyncio.create_task(caller.run())
    try:
        await asyncio.sleep(3.0)  # everyone talking
        await stats(port, "/reset")
        s0 = await stats(port)
        sent0, t0 = caller.sent, time.monotonic()
        gaps0 = sum(s.gaps for s in opened)
        await asyncio.sleep(seconds)
        s1 = await stats(port)
        wall = time.monotonic() - t0
        sent = caller.sent - sent0
        gaps = sum(s.gaps for s in opened) - gaps0
    finally:
        caller.running = False
        await task
        close_all(opened)
    lag = caller.lag[-int(seconds / TICK * 10) :]
    return {
        "streams": streams,
        "attached": s1["streams"],
        "server_cpu_pct": (s1["cpu_s"] - s0["cpu_s"]) / wall * 100,
        "cpu_ms_per_stream_s": (s1["cpu_s"] - s0["cpu_s"]) / wall / streams * 1000,
        "lateness_ms": s1["lateness_ms"],
        "loop_lag_ms": s1["loop_lag_ms"],
        "stall_busy_pct": s1["stall_busy_pct"],
        "gc": s1["gc"],
        "out_msgs_per_s": s1["frames_out"] / wall,
        "in_frames_per_s": s1["frames_in"] / wall,
        "in_sent_per_s": sent / wall,
        "underruns_server": s1["underruns"],
        "client_playout_gaps": gaps,
        "barge_ins": s1["barge_ins"],
        "rss_mb": s1["rss_mb"],
        "rss_per_stream_kb": (s1["rss_mb"] - base["rss_mb"]) * 1024 / max(1, streams),
        "client_tick_lag_p99_ms": percentile(lag, 99) * 1000,
    }


# =============================================================================== main


def client_run(coro: Any) -> Any:
    """The load client's event loop: uvloop (a pure-Python loop saturates its core at ~250
    streams, 25 000 socket writes and reads a second, and would measure itself)."""
    import uvloop

    return uvloop.run(coro)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def show(title: str, result: dict[str, Any]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.1f}"
        if isinstance(v, dict):
            return "{" + ", ".join(f"p{k}={fmt(x)}" for k, x in v.items()) + "}"
        return str(v)

    print(f"{title}: " + ", ".join(f"{k}={fmt(v)}" for k, v in result.items()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "what", choices=["all", "firstaudio", "bargein", "playout", "capacity", "server"]
    )
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--streaming", default="{}")
    ap.add_argument(
        "--settings",
        default="{}",
        help='server settings overrides, e.g. {"pacer":{"message_ms":100}}',
    )
    ap.add_argument(
        "--ws",
        default="direct",
        choices=["direct", "websockets-sansio", "websockets", "wsproto"],
        help="uvicorn's WebSocket implementation in the server "
        "(direct: voicecall's, as `voicecall serve` runs it)",
    )
    ap.add_argument(
        "--lean",
        action="store_true",
        help="server: no bench instruments (loop-lag probe, GC callbacks, per-message "
        "lateness), the server's own observer and GC settings, as `voicecall serve` runs",
    )
    ap.add_argument("--streams", default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--background", type=int, default=300)
    args = ap.parse_args()
    if args.what == "server":
        run_server(
            args.port,
            0,
            json.loads(args.streaming),
            json.loads(args.settings),
            args.ws,
            lean=args.lean,
        )
        return

    print(f"$ {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}; server pinned to CPU 0, client to CPU 1; "
        f"load average before: {os.getloadavg()[0]:.2f}; server settings {args.settings}"
    )
    pin(1)
    WS_IMPL[0] = args.ws
    limits = {"max_streams": 5000, "max_pending_total": 5000, "max_pending_per_ip": 5000}

    async def with_server(coro_factory: Any) -> Any:
        port = free_port()
        with server_process(port, limits, json.loads(args.settings)):
            return await coro_factory(port)

    if args.what in ("all", "firstaudio"):
        show(
            "first audio (in-process)",
            asyncio.run(bench_first_audio(args.background, max(10, args.trials))),
        )
    if args.what in ("all", "bargein"):
        n = int(args.streams or 100)
        show(
            "barge-in",
            asyncio.run(with_server(lambda p: bench_barge_in(p, n, args.trials))),
        )
    if args.what in ("all", "playout"):
        n = int(args.streams or 300)
        secs = args.seconds or 60.0
        show("playout", client_run(with_server(lambda p: bench_playout(p, n, secs))))
    if args.what in ("all", "capacity"):
        secs = args.seconds or 20.0
        for n in [int(x) for x in (args.streams or "100,300,500").split(",")]:
            show(
                "capacity",
                client_run(with_server(lambda p, n=n: bench_capacity(p, n, secs))),  # type: ignore[misc]
            )


if __name__ == "__main__":
    main()
