"""The latency record tells the truth: what the service stores as a reply's voice-to-voice time
matches what the caller measured on its side of the Media Stream.

The emulator's stream client notes, on its own clock, when it sent the last voiced frame of each
utterance and when the first frame of the bot's next audio arrived (``turns`` in its stream
summary); the server stores, with each bot line, the time from the arrival of the caller's last
voiced frame (its VAD's speech end) to its first frame sent. Real loopback sockets, local
faster-whisper, espeak-ng, the scripted responder. No assertion about speed: only agreement.

Tolerance: :data:`TOLERANCE_MS`. The two ends do not decide "voiced" the same way (the service's
VAD works in blocks with its own threshold; the caller looks at 20 ms frame energy), which
moves the speech end by up to a couple of frames; loopback transit and event-loop scheduling of
two processes' worth of work in one test process add a few ms each way.
"""

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

TOLERANCE_MS = 40.0  # two 20 ms frames (measured: within 1 ms with espeak-ng speech)


@pytest_asyncio.fixture
async def measured_server(start_server: StartServer) -> AsyncIterator[RunningServer]:
    async with start_server(streaming=True, responder={"kind": "scripted"}) as running:
        yield running


async def test_recorded_voice_to_voice_matches_the_callers_view(
    measured_server: RunningServer, emulator: Emulator
) -> None:
    server = measured_server
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
    doc = (await server.http.get(f"/api/calls/{call_id}")).json()
    sim = await emulator.wait_for_call_end(doc["provider_call_id"], timeout=90)
    for _ in range(100):  # the stream's summary is recorded once its socket is closed
        done = [e for e in sim.timeline if e.get("kind") == "stream-stats"]
        if done:
            break
        await asyncio.sleep(0.1)
    (stats,) = done
    caller = [t for t in stats["turns"] if t["voice_to_voice_ms"] is not None]
    # the scripted responder answered both of the caller's utterances, then said goodbye
    measured: list[dict] = []
    for _ in range(100):  # the record is stored once the reply was heard
        lines = (await server.http.get(f"/api/calls/{call_id}")).json()["transcript"]
        measured = [ln for ln in lines if ln["speaker"] == "bot" and ln["latency"]]
        if len(measured) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(caller) == 2, stats["turns"]
    assert len(measured) == 2, lines
    for theirs, ours in zip(caller, measured, strict=True):
        rec = ours["latency"]
        # the same moment on both clocks: where the caller's speech ended on the stream
        assert abs(rec["speech_end_stream_ms"] - theirs["speech_end_ms"]) <= TOLERANCE_MS, (
            rec,
            theirs,
        )
        assert abs(rec["voice_to_voice_ms"] - theirs["voice_to_voice_ms"]) <= TOLERANCE_MS, (
            rec,
            theirs,
        )
        stages = ("end_of_turn", "stt", "responder", "tts", "overhead")
        assert sum(rec[f"{s}_ms"] for s in stages) == pytest.approx(
            rec["voice_to_voice_ms"], abs=1.0
        )
    # the same records on the other surfaces
    report = (await server.http.get("/api/latency", params={"call_id": call_id[:8]})).json()
    assert [t["seq"] for t in report["turns"]] == sorted(
        (ln["seq"] for ln in measured), reverse=True
    )
    assert report["stages"]["voice_to_voice"]["count"] == 2
    metrics = (await server.http.get("/metrics")).text
    assert 'voicecall_turn_latency_seconds_count{stage="voice_to_voice"} 2.0' in metrics
