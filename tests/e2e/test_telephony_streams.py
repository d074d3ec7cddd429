"""Voicemail and hold over Media Streams, end to end: the emulator's answering machine (greeting,
beep) and IVR (hold music, then a person) against the server with local TTS/STT, on the real
store."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer, StartServer, wait_ended

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]
pytest.importorskip("faster_whisper", reason="optional extra voicecall[whisper] not installed")


@pytest_asyncio.fixture
async def streaming_server(
    start_server: StartServer, store_url: str
) -> AsyncIterator[RunningServer]:
    async with start_server(streaming=True, store={"url": store_url}) as running:
        yield running


async def ended(server: RunningServer, call_id: str, timeout: float = 90) -> dict[str, Any]:
    return await wait_ended(server, call_id, timeout)


async def test_voicemail_on_a_stream_starts_after_the_beep(
    streaming_server: RunningServer, emulator: Emulator
) -> None:
    server = streaming_server
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 200,
            "voicemail": {
                "greeting": "Hi, this is Sam. Leave a message after the tone.",
                "greeting_delay_ms": 300,
                "beep": {"frequency_hz": 1000, "duration_ms": 400},
                "max_silence_ms": 3000,
            },
        },
    )
    r = await server.http.post(
        "/api/calls",
        json={
            "to": CALLEE,
            "message": "Your parcel is ready.",
            "mode": "notify",
            "machine_detection": "voicemail",
            "voicemail_message": "Hello Sam, your parcel is ready for pickup. Goodbye.",
        },
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    doc = await ended(server, call_id)
    assert doc["end_reason"] == "voicemail", doc
    assert doc["answered_by"] is not None and doc["answered_by"].startswith("machine"), doc
    # our own detector heard the beep and the message started within a second of its end
    sim = emulator.call(doc["provider_call_id"])
    message = sim.callee.message
    assert message.seconds > 2.0, message  # the machine recorded the bot's audio
    texts = [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "bot"]
    assert texts[-1].startswith("Hello Sam, your parcel"), texts
    assert texts[0].startswith("[not spoken]"), texts


def _first_sound_seconds(ulaw: bytes) -> float:
    """Where the first non-silent 20 ms of μ-law audio starts (seconds)."""
    for i in range(0, len(ulaw) - 159, 160):
        if min(b & 0x7F for b in ulaw[i : i + 160]) < 0x70:
            return i / 8000
    raise AssertionError("the message is silent")


async def test_hold_music_is_silence_then_the_person_is_heard(
    streaming_server: RunningServer, emulator: Emulator
) -> None:
    server = streaming_server
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 200,
            "ivr": {
                "start": "hold",
                "nodes": {
                    "hold": {"music": {"seconds": 8, "style": "chords"}, "next": "agent"},
                    "agent": {
                        "human": {
                            "greeting": "Hello, yes, I am here.",
                            "rules": [{"heard": ["*"], "say": "Thank you.", "then": "hangup"}],
                        }
                    },
                },
            },
        },
    )
    r = await server.http.post(
        "/api/calls",
        json={"to": CALLEE, "message": "Hello.", "mode": "conversation"},
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    loop = asyncio.get_running_loop()
    saw_hold = False
    end = loop.time() + 60
    user: list[str] = []
    while loop.time() < end:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        saw_hold = saw_hold or doc["on_hold"]
        user = [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "user"]
        heard = any("here" in t.lower() for t in user)
        # the line can land before the record taken off hold does (a loaded store): both come
        if (heard and not doc["on_hold"]) or doc["ended_at"] is not None:
            break
        await asyncio.sleep(0.1)
    assert saw_hold, "the hold music was never recognised"
    assert not doc["on_hold"]

    # nothing of the music became a line: the first line of the far end is the person's
    assert user and "here" in user[0].lower(), doc["transcript"]
    record = await server.manager.get_call(call_id)
    assert record.metadata.get("held") is True
    await server.http.post(f"/api/calls/{call_id}/end", json={})


async def test_too_long_on_hold_ends_the_call(
    streaming_server: RunningServer, emulator: Emulator
) -> None:
    server = streaming_server
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 200,
            "ivr": {
                "start": "hold",
                "nodes": {"hold": {"music": {"seconds": 60, "style": "melody"}, "next": "hold"}},
            },
        },
    )
    r = await server.http.post(
        "/api/calls",
        json={"to": CALLEE, "message": "Hello.", "mode": "conversation", "max_hold_seconds": 3},
    )
    assert r.status_code == 201, r.text
    doc = await ended(server, r.json()["call_id"], timeout=40)
    assert doc["end_reason"] == "timeout", doc
    assert "max_hold_seconds" in (doc["error"] or ""), doc
    assert [ln for ln in doc["transcript"] if ln["speaker"] == "user"] == []
