"""The load generator: N concurrent inbound calls with Media Streams against a loopback app.

An in-process :class:`~voicecall.emulator.runtime.Emulator` owns a number whose voice URL is the
app's webhook; callers dial it on a ramp (``streams`` calls spread over ``ramp_seconds``). The app
answers ``<Connect><Stream>``; each caller stays ``hold_seconds`` after answering, then hangs up
(the emulator sends ``stop`` and closes the socket). The whole run is bounded by ``max_seconds``:
calls still up then are hung up and the report says so.

The report is what the emulator saw, per stream and in aggregate: how late each 20 ms frame was
sent against its absolute schedule (p50/p99/max), frames each way, underruns, marks, and the CPU
time the emulator process used over the run. Only loopback apps are accepted (the webhook URL,
and the stream URLs it answers with: the run is aborted when one points elsewhere).
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from voicecall.emulator.lateness import LatenessHistogram
from voicecall.emulator.runtime import Emulator
from voicecall.emulator.sim import TERMINAL, CallStatus
from voicecall.emulator.ticker import FrameTicker
from voicecall.netaddr import is_loopback

__all__ = [
    "MAX_STREAMS",
    "LoadConfig",
    "LoadError",
    "LoadProgress",
    "LoadReport",
    "LoadWindow",
    "StreamResult",
    "is_loopback_url",
    "run_load",
]

MAX_STREAMS = 2000
APP_NUMBER = "+15005550006"


class LoadError(ValueError):
    """The load run was asked for something it will not do (caller's fault)."""


def is_loopback_url(url: str) -> bool:
    """True for http(s)/ws(s) URLs whose host is localhost or a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.hostname:
        return False
    return is_loopback(parts.hostname)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One load run. All times in seconds."""

    app_url: str  # the app's voice webhook; must answer <Connect><Stream>
    streams: int = 10
    ramp_seconds: float = 1.0
    hold_seconds: float = 10.0  # each call, from answer to the caller hanging up
    max_seconds: float = 120.0  # hard bound on the whole run
    voice_method: str = "POST"
    speech: str | None = None  # the caller says this 1 s into the stream (espeak-ng)

    def __post_init__(self) -> None:
        if not is_loopback_url(self.app_url) or urlsplit(self.app_url).scheme not in {
            "http",
            "https",
        }:
            raise LoadError("app_url must be an http(s) URL on loopback (127.0.0.0/8, ::1)")
        if not 1 <= self.streams <= MAX_STREAMS:
            raise LoadError(f"streams must be between 1 and {MAX_STREAMS}")
        if self.ramp_seconds < 0 or self.hold_seconds <= 0:
            raise LoadError("ramp_seconds must be >= 0 and hold_seconds > 0")
        if self.max_seconds <= 0 or self.max_seconds > 3600:
            raise LoadError("max_seconds must be in (0, 3600]")
        if self.voice_method not in {"GET", "POST"}:
            raise LoadError("voice_method is GET or POST")

    def script(self) -> dict[str, Any]:
        script: dict[str, Any] = {
            "answer_after_ms": 0,
            "hangup_after_ms": int(self.hold_seconds * 1000),
        }
        if self.speech:
            script["say_at"] = [{"at_ms": 1000, "text": self.speech}]
        return script


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """A snapshot for progress displays."""

    elapsed: float
    dialed: int
    target: int
    streaming: int
    ended: int
    frames_sent: int
    frames_received: int
    lateness_p99_ms: float | None  # over every frame sent so far
    lateness_max_ms: float | None
    underruns: int
    cpu_seconds: float


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """About one second of the run: the lateness of every frame sent in it."""

    start: float  # seconds since the run started
    end: float
    streaming_at_start: int
    streaming_at_end: int
    lateness: LatenessHistogram
    cpu_seconds: float = 0.0  # this process, over the window

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "streaming_at_start": self.streaming_at_start,
            "streaming_at_end": self.streaming_at_end,
            "cpu_share": round(self.cpu_seconds / max(1e-9, self.end - self.start), 3),
            "lateness_ms": self.lateness.summary(),
        }


@dataclass(frozen=True, slots=True)
class StreamResult:
    call_sid: str
    stream_sid: str
    url: str
    reason: str
    open_seconds: float  # from the stream being opened to its end, on the emulator's clock
    frames_sent: int
    media_received: int
    frames_played: int
    underruns: int
    underrun_ms: float
    marks_received: int
    marks_echoed: int
    clears: int
    late_frames: int  # sent more than one frame (20 ms) late
    lateness_p50_ms: float | None
    lateness_p99_ms: float | None
    lateness_max_ms: float | None


@dataclass(slots=True)
class LoadReport:
    config: LoadConfig
    loop: str
    wall_seconds: float
    cpu_seconds: float  # user + system time of this process over the run
    calls: int
    statuses: dict[str, int]
    streams: list[StreamResult]
    lateness: LatenessHistogram
    timed_out: bool = False
    aborted: str | None = None
    ticker_wakeups: int = 0
    errors: list[str] = field(default_factory=list)
    windows: list[LoadWindow] = field(default_factory=list)

    def steady_windows(self) -> list[LoadWindow]:
        """The windows in which every call of the run was streaming throughout (the ramp and
        the hang-ups left out)."""
        full = self.config.streams
        return [
            w for w in self.windows if w.streaming_at_start == full and w.streaming_at_end == full
        ]

    def steady_lateness(self) -> LatenessHistogram:
        return LatenessHistogram.merged(w.lateness for w in self.steady_windows())

    def steady_cpu_share(self) -> float | None:
        windows = self.steady_windows()
        wall = sum(w.end - w.start for w in windows)
        return sum(w.cpu_seconds for w in windows) / wall if wall > 0 else None

    @property
    def cpu_share(self) -> float:
        """CPU time / wall time: the fraction of one core the emulator used."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def connected(self) -> list[StreamResult]:
        return [s for s in self.streams if not s.reason.startswith("connect failed")]

    def totals(self) -> dict[str, Any]:
        ok = self.connected
        lat = self.lateness
        return {
            "calls": self.calls,
            "statuses": dict(self.statuses),
            "streams": len(self.streams),
            "streams_connected": len(ok),
            "frames_sent": sum(s.frames_sent for s in ok),
            "media_received": sum(s.media_received for s in ok),
            "frames_played": sum(s.frames_played for s in ok),
            "underruns": sum(s.underruns for s in ok),
            "marks_received": sum(s.marks_received for s in ok),
            "marks_echoed": sum(s.marks_echoed for s in ok),
            "late_frames": sum(s.late_frames for s in ok),
            "lateness_ms": lat.summary(),
            "steady_lateness_ms": self.steady_lateness().summary(),
            "steady_seconds": round(sum(w.end - w.start for w in self.steady_windows()), 3),
            "steady_cpu_share": _round(self.steady_cpu_share()),
            "wall_seconds": round(self.wall_seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_share": round(self.cpu_share, 3),
            "loop": self.loop,
            "ticker_wakeups": self.ticker_wakeups,
            "timed_out": self.timed_out,
            "aborted": self.aborted,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "totals": self.totals(),
            "streams": [asdict(s) for s in self.streams],
            "windows": [w.to_dict() for w in self.windows],
            "errors": list(self.errors),
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _caller(i: int) -> str:
    return f"+1555{2000000 + i:07d}"


async def run_load(
    config: LoadConfig,
    *,
    on_progress: Callable[[LoadProgress], None] | None = None,
    progress_interval: float = 0.5,
) -> LoadReport:
    """Run ``config`` on the current event loop and report (see the module docstring)."""
    loop = asyncio.get_running_loop()
    loop_name = type(loop).__module__.split(".")[0]
    emu = Emulator(
        account_sid="AC" + secrets.token_hex(16),
        auth_token=secrets.token_urlsafe(24),
        default_script=config.script(),
    )
    emu.register_number(APP_NUMBER, config.app_url, voice_method=config.voice_method)
    sids: list[str] = []
    aborted: str | None = None
    timed_out = False
    seen_streams: dict[str, tuple[str, str, float]] = {}  # stream_sid -> call_sid, url, t

    unscanned: set[str] = set()

    def scan() -> str | None:
        for sid in list(unscanned):
            for entry in emu.call(sid).timeline:
                if entry["kind"] == "stream-opening":
                    seen_streams[entry["stream_sid"]] = (sid, entry["url"], entry["t"])
                    unscanned.discard(sid)  # one <Connect><Stream> per call is what we drive
                    if not is_loopback_url(entry["url"]):
                        return f"the app streamed to a non-loopback URL: {entry['url']}"
        return None

    def progress(t0: float, cpu0: float) -> LoadProgress:
        so_far = LatenessHistogram()
        sent = received = underruns = streaming = 0
        for stream_sid in seen_streams:
            session = emu.media_session(stream_sid)
            st = session.stats
            sent += st.frames_sent
            received += st.media_received
            underruns += st.underruns
            streaming += stream_sid in emu.streams_open
            so_far.merge(session.lateness)
        ended = sum(1 for sid in sids if emu.call(sid).status in TERMINAL)
        return LoadProgress(
            elapsed=time.monotonic() - t0,
            dialed=len(sids),
            target=config.streams,
            streaming=streaming,
            ended=ended,
            frames_sent=sent,
            frames_received=received,
            lateness_p99_ms=so_far.percentile(0.99),
            lateness_max_ms=so_far.max_ms if so_far.count else None,
            underruns=underruns,
            cpu_seconds=_cpu() - cpu0,
        )

    await emu.start()
    cpu0 = _cpu()
    t0 = time.monotonic()
    deadline = t0 + config.max_seconds
    next_progress = t0
    ticker = FrameTicker.for_loop()
    ticker.window = LatenessHistogram()
    window_start, window_streaming, window_cpu = t0, 0, cpu0
    windows: list[LoadWindow] = []

    def close_window(now: float) -> None:
        nonlocal window_start, window_streaming, window_cpu
        hist, ticker.window = ticker.window, LatenessHistogram()
        streaming = len(emu.streams_open)
        cpu_now = _cpu()
        windows.append(
            LoadWindow(
                start=round(window_start - t0, 3),
                end=round(now - t0, 3),
                streaming_at_start=window_streaming,
                streaming_at_end=streaming,
                lateness=hist,
                cpu_seconds=cpu_now - window_cpu,
            )
        )
        window_start, window_streaming, window_cpu = now, streaming, cpu_now

    try:
        step = config.ramp_seconds / config.streams
        while True:
            now = time.monotonic()
            while len(sids) < config.streams and now >= t0 + len(sids) * step:
                sids.append(emu.dial_in(from_=_caller(len(sids)), to=APP_NUMBER))
                unscanned.add(sids[-1])
            aborted = scan()
            if aborted:
                break
            if now - window_start >= 1.0:
                close_window(now)
            if on_progress is not None and now >= next_progress:
                on_progress(progress(t0, cpu0))
                next_progress = now + progress_interval
            if len(sids) == config.streams and all(
                emu.call(sid).status in TERMINAL for sid in sids
            ):
                break
            if now >= deadline:
                timed_out = True
                break
            await asyncio.sleep(min(0.05, max(0.001, step)))
        for sid in sids:
            if emu.call(sid).status not in TERMINAL:
                emu.hangup(sid, CallStatus.COMPLETED)
        await _settle(emu, sids, timeout=5.0)
        scan()
        close_window(time.monotonic())
        wall = time.monotonic() - t0
        cpu = _cpu() - cpu0
        if on_progress is not None:
            on_progress(progress(t0, cpu0))
    finally:
        await emu.aclose()
    report = _report(emu, config, sids, seen_streams, loop_name, wall, cpu, timed_out, aborted)
    report.windows = windows
    return report


async def _settle(emu: Emulator, sids: list[str], timeout: float) -> None:
    """Wait until every stream that opened has reported its stats (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [
            sid
            for sid in sids
            if any(e["kind"] == "stream-opening" for e in emu.call(sid).timeline)
            and not any(e["kind"] == "stream-stats" for e in emu.call(sid).timeline)
        ]
        if not pending:
            return
        await asyncio.sleep(0.02)


def _report(
    emu: Emulator,
    config: LoadConfig,
    sids: list[str],
    seen: dict[str, tuple[str, str, float]],
    loop_name: str,
    wall: float,
    cpu: float,
    timed_out: bool,
    aborted: str | None,
) -> LoadReport:
    statuses: dict[str, int] = {}
    streams: list[StreamResult] = []
    errors: list[str] = []
    histograms: list[LatenessHistogram] = []
    for sid in sids:
        sim = emu.call(sid)
        statuses[sim.status.value] = statuses.get(sim.status.value, 0) + 1
        if sim.error is not None:
            errors.append(f"{sid}: {sim.error}")
        for entry in sim.timeline:
            if entry["kind"] != "stream-stats":
                continue
            stream_sid = entry["stream_sid"]
            _, url, opened_t = seen.get(stream_sid, (sid, "", entry["t"]))
            st = entry["stats"]
            lat = emu.media_session(stream_sid).lateness
            histograms.append(lat)
            streams.append(
                StreamResult(
                    call_sid=sid,
                    stream_sid=stream_sid,
                    url=url,
                    reason=entry["reason"],
                    open_seconds=round(entry["t"] - opened_t, 4),
                    frames_sent=st["frames_sent"],
                    media_received=st["media_received"],
                    frames_played=st["frames_played"],
                    underruns=st["underruns"],
                    underrun_ms=st["underrun_ms"],
                    marks_received=st["marks_received"],
                    marks_echoed=st["marks_echoed"],
                    clears=st["clears"],
                    late_frames=st["late_frames"],
                    lateness_p50_ms=lat.percentile(0.5),
                    lateness_p99_ms=lat.percentile(0.99),
                    lateness_max_ms=lat.max_ms if lat.count else None,
                )
            )
    return LoadReport(
        config=config,
        loop=loop_name,
        wall_seconds=wall,
        cpu_seconds=cpu,
        calls=len(sids),
        statuses=statuses,
        streams=streams,
        lateness=LatenessHistogram.merged(histograms),
        timed_out=timed_out,
        aborted=aborted,
        ticker_wakeups=FrameTicker.for_loop().wakeups,
        errors=errors,
    )
