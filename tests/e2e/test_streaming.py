"""Real-time voice end to end: the emulator's Media Streams ⇄ the server's stream endpoint, with
local TTS (espeak-ng) and local STT (faster-whisper tiny.en) — offline, on loopback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer, StartServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]
pytest.importorskip("faster_whisper", reason="optional extra voicecall[whisper] not installed")


@pytest_asyncio.fixture
async def streaming_server(start_server: StartServer) -> AsyncIterator[RunningServer]:
    async with start_server(streaming=True) as running:
        yield running


async def transcript(server: RunningServer, call_id: str) -> list[dict]:
    return (await server.http.get(f"/api/calls/{call_id}")).json()["transcript"]


async def wait_user_lines(
    server: RunningServer, call_id: str, n: int, timeout: float = 40
) -> list[dict]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        lines = await transcript(server, call_id)
        if sum(1 for ln in lines if ln["speaker"] == "user") >= n:
            return lines
        await asyncio.sleep(0.1)
    raise AssertionError(f"no caller speech transcribed: {await transcript(server, call_id)}")


async def test_streamed_conversation(streaming_server: RunningServer, emulator: Emulator) -> None:
    server = streaming_server
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 200,
            "reply_delay_ms": 300,
            "replies": ["Hello, yes, I am here.", "That sounds great, thank you."],
            "hangup_after_ms": 60000,
        },
    )
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello, is this Sam?", "mode": "conversation"}
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    lines = await wait_user_lines(server, call_id, 1)
    first = next(ln["text"] for ln in lines if ln["speaker"] == "user").lower()
    # tiny.en on 8 kHz espeak is fragile ("Yes, this is Sam speaking" came back as "live in Pam
    # speaking" and "it's in sand beacon"): these phrases were chosen because they come back the
    # same with dither noise, other leading silences and thread counts (checked offline)
    assert "hello" in first and "here" in first, first
    r = await server.http.post(
        f"/api/calls/{call_id}/continue",
        json={"message": "Does Thursday at seven work for dinner?", "timeout_seconds": 40},
    )
    assert r.status_code == 200, r.text
    answer = r.json()["transcript"].lower()
    assert "sounds great" in answer and "thank you" in answer, answer
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Great, goodbye!"})
    assert r.json()["state"] == "ending"  # final at once; the goodbye plays, then it hangs up
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": "One more thing"})
    assert r.status_code == 409, r.text
    doc = (await server.http.get(f"/api/calls/{call_id}")).json()
    sim = await emulator.wait_for_call_end(doc["provider_call_id"], timeout=20)
    for _ in range(100):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["state"] != "ending":
            break
        await asyncio.sleep(0.05)
    assert doc["state"] == "hangup-bot", doc
    stats = [e for e in sim.timeline if e.get("kind") == "stream-stats"]
    assert stats, "no stream ran"
    s = stats[-1]
    # the bot's three utterances reached the callee, marks came back, no gaps inside utterances
    assert s["stats"]["bytes_received"] > 3 * 8000  # over 3 s of the bot's speech (μ-law)
    assert s["stats"]["media_received"] > 15  # in messages of at most 200 ms (pacer.message_ms)
    assert s["stats"]["marks_echoed"] >= 3
    # the emulator, the server and whisper share this one test process (and the CPU with other
    # tests): allow a stray gap, never choppy audio (the playout benchmark measures the server)
    assert s["stats"]["underruns"] <= 2, s["stats"]
    # three utterances at least (opening, question, goodbye); the goodbye was played to its end
    # before the hang-up, because end_call waits for its mark echo (not a timer)
    utterances = s["app_utterances"]
    assert len(utterances) >= 3
    goodbye_ms = utterances[-1]["end_ms"] - utterances[-1]["start_ms"]
    assert goodbye_ms >= 600, utterances[-1]
    # the server read this stream on its direct lane (the production uvicorn protocol)
    metrics = (await server.http.get("/metrics")).text
    assert "voicecall_stream_direct_lane_total 1.0" in metrics
    (stream_sid,) = emulator.streams_of(doc["provider_call_id"])
    wav = emulator.conversation_wav(stream_sid)
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        assert w.getnframes() > 8000 * 5  # several seconds of conversation, both sides
