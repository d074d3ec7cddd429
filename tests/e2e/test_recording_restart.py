"""kill -9 of the server in the middle of a recorded Media Streams call: what was said is on
disk with a valid header; the restarted server repairs the file, completes the recording once
the call is over, and serves it."""

from __future__ import annotations

import asyncio
import io
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator

from .harness import CALLEE
from .test_restart import ServerProcess, api, free_port, wait_for, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]
pytest.importorskip("faster_whisper", reason="optional extra voicecall[whisper] not installed")


def _frames(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


async def test_kill9_keeps_the_recording_and_the_restart_serves_it(
    tmp_path: Path, emulator: Emulator, emulator_credentials: EmulatorCredentials
) -> None:
    port = free_port()
    config = write_config(tmp_path, emulator, emulator_credentials, port)
    rec_dir = tmp_path / "recordings"
    config.write_text(
        config.read_text()
        + f"""
[streaming]
enabled = true
[tts]
provider = "espeak"
[stt]
provider = "whisper"
[recording]
enabled = true
dir = "{rec_dir}"
"""
    )
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 100,
            "reply_delay_ms": 300,
            "replies": ["Hello, yes, I am here."],
            "hangup_after_ms": 60000,
        },
    )
    first = ServerProcess(config, port)
    try:
        await first.ready()
        r = await api(
            first.url,
            "POST",
            "/api/calls",
            json={"to": CALLEE, "message": "Hello, is this Sam?", "mode": "conversation"},
        )
        call_id = r.json()["call_id"]
        await wait_for(
            first.url,
            call_id,
            lambda d: any(t["speaker"] == "user" for t in d["transcript"]),
            timeout=60,
        )
        await asyncio.sleep(1.5)  # the caller's words are older than one flush
        first.kill9()
    finally:
        first.stop()
    path = rec_dir / f"{call_id}.wav"
    on_disk = _frames(path.read_bytes())  # a valid header without any repair
    assert on_disk.shape[0] >= 8000
    assert np.abs(on_disk[:, 0]).max() > 1000, "the caller's words are in the file"
    assert np.abs(on_disk[:, 1]).max() > 1000, "the bot's words are in the file"
    second = ServerProcess(config, port)
    try:
        await second.ready()
        # the stream died with the server: the call ends (now or when the provider says so)
        doc = await wait_for(second.url, call_id, lambda d: d["ended_at"] is not None, 60)
        for _ in range(100):
            doc = (await api(second.url, "GET", f"/api/calls/{call_id}")).json()
            if doc["recording"]["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert doc["recording"]["status"] == "completed", doc["recording"]
        r = await api(second.url, "GET", f"/api/calls/{call_id}/recording")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        served = _frames(r.content)
        assert served.shape[0] >= on_disk.shape[0]
        assert np.array_equal(served[: on_disk.shape[0]], on_disk)  # nothing lost or moved
    finally:
        second.stop()
