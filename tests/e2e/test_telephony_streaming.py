"""Keypad out on a Media Stream end to end: in-band Q.23 tones from the server's voice pipeline,
queued after speech, heard by the emulator's own Goertzel detector, which moves its IVR menu.
Local TTS (espeak-ng) and STT (faster-whisper tiny.en), offline, on loopback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer, StartServer
from .test_telephony import IVR as GATHER_IVR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]
pytest.importorskip("faster_whisper", reason="optional extra voicecall[whisper] not installed")

#: the menu of test_telephony, answering a little later (the stream is set up first)
IVR = {**GATHER_IVR, "ivr": {**GATHER_IVR["ivr"], "answer_delay_ms": 300}}


@pytest_asyncio.fixture
async def streaming_server(start_server: StartServer) -> AsyncIterator[RunningServer]:
    async with start_server(streaming=True) as running:
        yield running


def entries(emulator: Emulator, sid: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in emulator.timeline(sid) if e.get("kind") == kind]


async def test_keys_go_in_band_after_speech_and_move_the_ivr(
    streaming_server: RunningServer, emulator: Emulator
) -> None:
    server = streaming_server
    emulator.set_script(CALLEE, IVR)
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello.", "mode": "conversation"}
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    while loop.time() < end:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["answered_at"] and doc["state"] in ("listening", "speaking", "active"):
            break
        await asyncio.sleep(0.1)
    sid = doc["provider_call_id"]
    await asyncio.sleep(1.0)  # the stream is attached and the menu prompt is playing
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": "One moment."})
    assert r.status_code == 200, r.text
    # the keys are queued behind that line; the menu's prompt talking over them does not cut them
    r = await server.http.post(f"/api/calls/{call_id}/dtmf", json={"digits": "w1"})
    assert r.status_code == 200, r.text
    assert r.json()["via"] == "stream" and r.json()["digits"] == "w1"
    end = loop.time() + 20
    while loop.time() < end and not entries(emulator, sid, "callee-ivr-key"):
        await asyncio.sleep(0.1)
    heard = entries(emulator, sid, "callee-heard-key")
    assert [k["digit"] for k in heard] == ["1"], emulator.timeline(sid)
    keys = entries(emulator, sid, "callee-ivr-key")
    assert [(k["digit"], k["node"], k["to"]) for k in keys] == [("1", "main", "bookings")]
    # in order: the tones (utterance u3) started playing after "One moment." (u2) was played
    # to its end: the emulator echoes each mark when its audio has been played
    (stream_sid,) = emulator.streams_of(sid)
    marks = {m["name"]: m for m in emulator.media_session(stream_sid).marks}
    assert marks["u2e"]["echoed_ms"] is not None and marks["u3s"]["echoed_ms"] is not None
    assert marks["u2e"]["echoed_ms"] <= marks["u3s"]["echoed_ms"], marks
    session = emulator.media_session(stream_sid)
    end = loop.time() + 10
    while loop.time() < end and not any(
        m["name"] == "u3e" and m["echoed_ms"] is not None for m in session.marks
    ):
        await asyncio.sleep(0.05)
    assert any(m["name"] == "u3e" and m["echoed_ms"] for m in session.marks), session.marks
    await server.http.post(f"/api/calls/{call_id}/end")


async def test_a_warm_transfer_that_finds_the_line_busy_resumes_on_a_new_stream(
    streaming_server: RunningServer, emulator: Emulator
) -> None:
    server = streaming_server
    target = "+14155550177"
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "hangup_after_ms": 60000})
    emulator.set_script(target, {"outcome": "busy", "answer_after_ms": 300})
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello.", "mode": "conversation"}
    )
    call_id = r.json()["call_id"]
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    while loop.time() < end:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["answered_at"] and emulator.streams_of(doc["provider_call_id"]):
            break
        await asyncio.sleep(0.1)
    sid = doc["provider_call_id"]
    await asyncio.sleep(1.0)
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer",
        json={"to": target, "mode": "warm", "summary": "A caller for you."},
    )
    assert r.status_code == 200, r.text
    end = loop.time() + 30
    while loop.time() < end:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        bots = [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "bot"]
        if len(emulator.streams_of(sid)) == 2 and any("busy" in t for t in bots):
            break
        await asyncio.sleep(0.1)
    assert doc["transfer"]["status"] == "busy", doc
    assert doc["state"] not in ("error", "transferred"), doc  # the stream's drop was no loss
    assert len(emulator.streams_of(sid)) == 2  # the caller is back on a fresh stream
    # the agent's line reached the caller on it (played to its end mark)
    second = emulator.media_session(emulator.streams_of(sid)[1])
    end = loop.time() + 15
    while loop.time() < end and not any(
        m["name"].endswith("e") and m["echoed_ms"] for m in second.marks
    ):
        await asyncio.sleep(0.1)
    assert any(m["name"].endswith("e") and m["echoed_ms"] for m in second.marks), second.marks
    r = await server.http.post(f"/api/calls/{call_id}/dtmf", json={"digits": "1"})
    assert r.status_code == 200 and r.json()["via"] == "stream", r.text
    await server.http.post(f"/api/calls/{call_id}/end")
