"""Scripted callees on live Media Streams (loopback WebSockets): an IVR hearing in-band keys, a
voicemail recording the bot, the restaurant host hearing the bot through faster-whisper, forks
with both tracks."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets

from voicecall.audio.g711 import ulaw_decode
from voicecall.emulator.hearing import whisper_missing
from voicecall.emulator.runtime import Emulator
from voicecall.emulator.tones import dtmf_pcm, to_ulaw
from voicecall.emulator.voices import piper_missing, piper_ulaw

pytestmark = pytest.mark.e2e
TO, FROM = "+15551230001", "+15557654321"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
needs_whisper = pytest.mark.skipif(whisper_missing() is not None, reason="needs faster-whisper")
# The bot speaks with Piper, as the demo's bot does (tiny.en hears espeak-ng poorly at 8 kHz).
needs_piper = pytest.mark.skipif(piper_missing() is not None, reason="needs piper-tts")


def loud(payload: str) -> bool:
    pcm = ulaw_decode(base64.b64decode(payload))
    return bool(len(pcm)) and float(abs(pcm.astype(float)).mean()) > 300


class Bot:
    """A tiny Media Streams app: hears the callee, says lines (μ-law) with a mark after each."""

    def __init__(self) -> None:
        self.ws: Any = None
        self.sid = ""
        self.start: dict[str, Any] = {}
        self.inbound_loud = 0
        self.outbound_loud = 0
        self.last_loud = 0.0
        self.heard_any = asyncio.Event()
        self.tracks: dict[str, int] = {}

    async def say(self, ulaw: bytes, mark: str = "said") -> None:
        for i in range(0, len(ulaw), 8000):
            chunk = base64.b64encode(ulaw[i : i + 8000]).decode()
            await self.ws.send(
                json.dumps({"event": "media", "streamSid": self.sid, "media": {"payload": chunk}})
            )
        await self.ws.send(
            json.dumps({"event": "mark", "streamSid": self.sid, "mark": {"name": mark}})
        )

    async def callee_done(self, quiet: float = 0.9, timeout: float = 30.0) -> None:
        """Wait until the callee said something and then was quiet for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        await asyncio.wait_for(self.heard_any.wait(), timeout)
        while time.monotonic() - self.last_loud < quiet:
            if time.monotonic() > deadline:
                raise TimeoutError("the callee never stopped talking")
            await asyncio.sleep(0.05)

    def feed(self, msg: dict[str, Any]) -> None:
        if msg["event"] == "start":
            self.sid, self.start = msg["streamSid"], msg["start"]
        elif msg["event"] == "media":
            track = msg["media"]["track"]
            self.tracks[track] = self.tracks.get(track, 0) + 1
            if loud(msg["media"]["payload"]):
                if track == "inbound":
                    self.inbound_loud += 1
                    self.last_loud = time.monotonic()
                    self.heard_any.set()
                else:
                    self.outbound_loud += 1


async def run_call(
    emu: Emulator,
    creds: Any,
    receiver: Any,
    script: Any,
    play: Callable[[Bot], Awaitable[None]],
    *,
    twiml: str | None = None,
    timeout: float = 60.0,
) -> tuple[str, Any, Bot]:
    bot = Bot()
    tasks: list[asyncio.Task[None]] = []

    async def handler(ws: Any) -> None:
        bot.ws = ws
        started = asyncio.Event()

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                bot.feed(msg)
                if msg["event"] == "start":
                    started.set()

        read = asyncio.create_task(reader())
        await started.wait()
        tasks.append(asyncio.create_task(play(bot)))
        await read

    server = await websockets.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emu.set_script(TO, script)
    receiver.on(
        "/voice",
        twiml.format(port=port)
        if twiml
        else f"<Response><Connect><Stream url='ws://127.0.0.1:{port}/m'/></Connect></Response>",
    )
    try:
        async with httpx.AsyncClient(
            base_url=emu.base_url, auth=(creds.account_sid, creds.auth_token)
        ) as c:
            r = await c.post(
                f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json",
                data={"To": TO, "From": FROM, "Url": receiver.url("/voice")},
            )
        sid = r.json()["sid"]
        sim = await emu.wait_for_call_end(sid, timeout=timeout)
        await emu.wait_idle(timeout=30)
    finally:
        for t in tasks:
            t.cancel()
        server.close()
        await server.wait_closed()
    return sid, sim, bot


def entries(emu: Emulator, sid: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in emu.timeline(sid) if e["kind"] == kind]


IVR = {
    "answer_after_ms": 50,
    "hangup_after_ms": 40_000,
    "ivr": {
        "answer_delay_ms": 200,
        "nodes": {
            "main": {
                "say": "For bookings press one.",
                "options": {"1": "hold"},
                "timeout_ms": 8000,
            },
            "hold": {"music": {"seconds": 2, "style": "melody"}, "next": "bye"},
            "bye": {"say": "Goodbye.", "then": "hangup"},
        },
    },
}


@needs_espeak
async def test_ivr_hears_in_band_keys_from_the_stream(emulator, receiver, emulator_credentials):
    async def play(bot: Bot) -> None:
        await bot.callee_done(quiet=0.5)
        await bot.say(to_ulaw(dtmf_pcm("1", tone_ms=120)), "key")

    sid, sim, bot = await run_call(emulator, emulator_credentials, receiver, IVR, play)
    keys = entries(emulator, sid, "callee-heard-key")
    assert [k["digit"] for k in keys] == ["1"]
    nodes = [e["node"] for e in entries(emulator, sid, "callee-ivr-node")]
    assert nodes == ["main", "hold", "bye"]
    assert any(e["kind"] == "callee-hangup" for e in emulator.timeline(sid))
    assert bot.inbound_loud > 100  # prompt + 2 s of music + goodbye reached the app
    assert sim.status.value == "completed"


@needs_espeak
@needs_whisper
@needs_piper
@pytest.mark.slow
async def test_voicemail_records_and_transcribes_the_bots_message(
    emulator, receiver, emulator_credentials
):
    script = {
        "answer_after_ms": 50,
        "voicemail": {
            "greeting": "Please leave a message.",
            "greeting_delay_ms": 200,
            "max_silence_ms": 3000,
        },
    }
    audio = await piper_ulaw("Hello Sam, this is your assistant. Your table is booked for tonight.")

    async def play(bot: Bot) -> None:
        await bot.callee_done(quiet=0.7)  # greeting and beep are over
        await bot.say(audio)

    sid, sim, _bot = await run_call(emulator, emulator_credentials, receiver, script, play)
    msg = sim.callee.message
    assert msg.seconds > 2.0  # the stream's audio after the beep
    (note,) = entries(emulator, sid, "callee-voicemail-transcript")
    assert "table" in note["text"].lower()
    assert "table" in msg.text.lower()


@needs_espeak
@needs_whisper
@needs_piper
@pytest.mark.slow
async def test_restaurant_host_hears_the_bot_through_whisper(
    emulator, receiver, emulator_credentials
):
    lines = [
        "Hello, I am an assistant calling for Sam. "
        "I would like to book a table for two tonight at seven.",
        "Yes, seven thirty works for us.",
        "The name is Sam.",
    ]

    audio = [await piper_ulaw(line) for line in lines]

    async def play(bot: Bot) -> None:
        for line in audio:
            await bot.callee_done(quiet=1.2, timeout=40)
            bot.heard_any.clear()
            await bot.say(line)

    sid, sim, _bot = await run_call(
        emulator, emulator_credentials, receiver, "restaurant", play, timeout=120
    )
    said = [e["why"] for e in entries(emulator, sid, "callee-said")]
    assert said == ["greeting", "rule offer", "rule accepted", "rule name"], entries(
        emulator, sid, "callee-stream-heard"
    )
    assert any(e["kind"] == "callee-hangup" for e in emulator.timeline(sid))
    assert sim.status.value == "completed"


@needs_espeak
async def test_fork_with_both_tracks_carries_what_the_callee_hears(
    emulator, receiver, emulator_credentials
):
    async def play(bot: Bot) -> None:
        await bot.say(b"\x10" * 1600)  # ignored: nothing is played from a fork

    twiml = (
        "<Response><Start><Stream url='ws://127.0.0.1:{port}/f' track='both_tracks'/></Start>"
        "<Say>Hello there, this call is going well today.</Say></Response>"
    )
    sid, _sim, bot = await run_call(
        emulator, emulator_credentials, receiver, {"answer_after_ms": 50}, play, twiml=twiml
    )
    assert bot.start["tracks"] == ["inbound", "outbound"]
    assert bot.tracks["inbound"] == bot.tracks["outbound"] > 50
    assert bot.outbound_loud > 20  # the <Say> as the callee heard it
    stats = entries(emulator, sid, "stream-stats")[0]["stats"]
    assert stats["frames_played"] == 0 and stats["ignored"] >= 2


async def test_a_listening_script_without_speech_recognition_is_a_clear_error(
    emulator, receiver, emulator_credentials, monkeypatch
):
    from voicecall.emulator.callee_stream import CalleeOnStream

    monkeypatch.setattr(
        CalleeOnStream,
        "hearing_missing",
        staticmethod(lambda: "speech recognition needs faster-whisper, which is not installed"),
    )

    async def play(bot: Bot) -> None:
        return None

    sid, sim, _ = await run_call(emulator, emulator_credentials, receiver, "restaurant", play)
    assert sim.status.value == "failed"
    assert sim.script_error is not None
    assert "human script has to hear the bot" in sim.script_error
    assert "faster-whisper" in sim.script_error
    assert entries(emulator, sid, "script-error")
