"""Recording end to end against the emulator, real store: a <Gather> call recorded by Twilio
(Record=true, signed RecordingStatusCallback, the audio fetched through our API), a Media Streams
call recorded by the server (stereo WAV on the stream's clock, compared with what the emulator
itself sent and heard), and a call without a recording (404, nothing changes)."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer, StartServer
from .test_outbound import wait_state


async def wait_recording(server: RunningServer, call_id: str, timeout: float = 20) -> dict:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        rec = doc.get("recording")
        if rec is not None and rec["status"] not in ("recording",):
            return doc
        if loop.time() > end:
            raise AssertionError(f"no finished recording: {doc}")
        await asyncio.sleep(0.05)


def channels(wav: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return data, data.shape[0]


def onsets(track: np.ndarray, threshold: int = 800, min_gap: int = 2400) -> list[int]:
    """Sample positions where sound starts after at least ``min_gap`` samples of quiet."""
    loud = np.flatnonzero(np.abs(track.astype(np.int32)) > threshold)
    out: list[int] = []
    last = -min_gap - 1
    for i in loud.tolist():
        if i - last > min_gap:
            out.append(i)
        last = i
    return out


async def test_gather_call_is_recorded_by_twilio(server: RunningServer, emulator: Emulator) -> None:
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": ["Yes, this is Sam"]})
    r = await server.http.post(
        "/api/calls",
        json={"to": CALLEE, "message": "Hi, is this Sam?", "mode": "conversation", "record": True},
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    doc = await wait_state(server, call_id, {"listening"})
    assert doc["record"] is True
    sim = emulator.call(doc["provider_call_id"])
    assert sim.spec.record and sim.spec.recording_channels == "dual"
    # the announcement comes before the first line, in the first line
    assert doc["transcript"][0]["text"] == "This call is recorded. Hi, is this Sam?"
    heard = " ".join(h.text for h in sim.heard)
    assert heard.startswith("This call is recorded. Hi, is this Sam?"), heard
    for _ in range(200):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if any(ln["speaker"] == "user" for ln in doc["transcript"]):
            break
        await asyncio.sleep(0.05)
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Thanks, bye!"})
    assert r.status_code == 200, r.text
    await emulator.wait_for_call_end(doc["provider_call_id"], timeout=20)
    doc = await wait_recording(server, call_id)
    (twilio_rec,) = emulator.call_recordings(doc["provider_call_id"])
    rec = doc["recording"]
    assert rec["source"] == "twilio" and rec["status"] == "completed"
    assert rec["recording_sid"] == twilio_rec.sid
    assert rec["recording_url"] == twilio_rec.url
    assert rec["duration_seconds"] == twilio_rec.duration
    # the callback was signed, verified and stored once (its dedupe row, written after the
    # recording's row: a redelivery after a failure in between stores the same values again)
    for _ in range(100):
        kinds = [e.kind for e in await server.manager.store.events(call_id)]
        if "recording" in kinds:
            break
        await asyncio.sleep(0.02)
    assert kinds.count("recording") == 1
    # the audio comes through our API (the server fetches it with the account credentials)
    r = await server.http.get(f"/api/calls/{call_id}/recording")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert r.content == await emulator.recording_wav(twilio_rec.sid)
    channels(r.content)
    # 31 days later (an injected clock) the sweeper deletes it at Twilio, then the reference
    recordings = server.manager.recordings
    recordings.settings = recordings.settings.model_copy(update={"retention_days": 30})
    assert await recordings.sweep_once(now=time.time() + 31 * 86_400) == 1
    assert twilio_rec.sid not in emulator.recordings
    r = await server.http.get(f"/api/calls/{call_id}/recording")
    assert r.status_code == 404 and "deleted" in r.json()["detail"]
    gone = (await server.http.get(f"/api/calls/{call_id}")).json()["recording"]
    assert gone["status"] == "deleted" and gone["recording_url"] is None


async def test_a_call_without_a_recording_is_a_404_naming_it(
    server: RunningServer, emulator: Emulator
) -> None:
    emulator.set_script(CALLEE, {"answer_after_ms": 100})
    r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "Your order shipped."})
    call_id = r.json()["call_id"]
    doc = await wait_state(server, call_id, {"completed"})
    assert doc["record"] is False and doc["recording"] is None
    assert not emulator.call(doc["provider_call_id"]).spec.record
    assert doc["transcript"][0]["text"] == "Your order shipped."  # no announcement
    r = await server.http.get(f"/api/calls/{call_id}/recording")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["title"] == "NoRecording"
    assert call_id in problem["detail"]
    after = (await server.http.get(f"/api/calls/{call_id}")).json()
    assert after == doc  # nothing changed
    r = await server.http.get("/api/calls/nosuchcall000/recording")
    assert r.status_code == 404 and r.json()["title"] == "UnknownCall"


@pytest_asyncio.fixture
async def recording_server(
    tmp_path: Path, start_server: StartServer
) -> AsyncIterator[RunningServer]:
    pytest.importorskip("faster_whisper", reason="optional extra voicecall[whisper] not installed")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    async with start_server(
        streaming=True, recording={"enabled": True, "dir": str(tmp_path / "recordings")}
    ) as running:
        yield running


@pytest.mark.slow
async def test_stream_call_is_recorded_on_the_streams_clock(
    recording_server: RunningServer, emulator: Emulator, tmp_path: Path
) -> None:
    server = recording_server
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 200,
            "reply_delay_ms": 300,
            "replies": ["Hello, yes, I am here."],
            "hangup_after_ms": 60000,
        },
    )
    # recording.enabled: every call records without asking
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello, is this Sam?", "mode": "conversation"}
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    for _ in range(600):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if any(ln["speaker"] == "user" for ln in doc["transcript"]):
            break
        await asyncio.sleep(0.05)
    assert doc["record"] is True
    assert doc["transcript"][0]["text"].startswith("This call is recorded. Hello")
    assert not emulator.call(doc["provider_call_id"]).spec.record  # we record, not Twilio
    # while the call goes on, the file is already on disk with a valid header
    path = tmp_path / "recordings" / f"{call_id}.wav"
    assert path.exists()
    _, so_far = channels(path.read_bytes())
    assert so_far > 8000  # at least a second, flushed as it went
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Goodbye!"})
    assert r.status_code == 200
    await emulator.wait_for_call_end(doc["provider_call_id"], timeout=20)
    doc = await wait_recording(server, call_id)
    rec = doc["recording"]
    assert rec["source"] == "stream" and rec["status"] == "completed" and rec["channels"] == 2
    r = await server.http.get(f"/api/calls/{call_id}/recording")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    ours, frames = channels(r.content)
    assert abs(frames / 8000 - rec["duration_seconds"]) < 0.01
    # compare with what the emulator itself sent (left) and heard (right), in real time
    (stream_sid,) = emulator.streams_of(doc["provider_call_id"])
    theirs, _ = channels(emulator.conversation_wav(stream_sid))
    for side, name in ((0, "caller"), (1, "bot")):
        a, b = onsets(ours[:, side]), onsets(theirs[:, side])
        assert a and b, (name, a, b)
        assert len(a) == len(b), (name, a, b)
        for x, y in zip(a, b, strict=True):
            assert abs(x - y) <= 8 * 80, (name, a, b)  # within 80 ms on the stream's clock
    # silence where nobody spoke: the bot's track is quiet before its first word
    assert np.abs(ours[: onsets(ours[:, 1])[0] - 80, 1]).max() < 800
