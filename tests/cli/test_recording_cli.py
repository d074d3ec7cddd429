"""`voicecall call --record` and `voicecall recording ID -o out.wav` as a person uses them: a
subprocess against a real server (mock provider, which keeps recordings the test gives it)."""

from __future__ import annotations

import json
from pathlib import Path

from voicecall.audio.stereo_wav import wav_header
from voicecall.calls.extras import RecordingRef, RecordingSource, RecordingStatus
from voicecall.providers.mock import MockProvider

from .test_cli import run_cli, server

WAV = wav_header(8) + b"\x01\x00\x02\x00\x03\x00\x04\x00"


async def test_record_a_call_and_save_its_recording(tmp_path: Path) -> None:
    async with server(tmp_path) as (app, url, _):
        code, stdout, err = await run_cli(
            "call", "--to", "+14155550100", "-m", "Hello there.", "--mode", "notify",
            "--record", "--json", url=url,
        )  # fmt: skip
        assert code == 0, err
        call_id = json.loads(stdout)["call_id"]
        assert app.manager is not None
        record = await app.manager.get_call(call_id)
        assert record.message == "This call is recorded. Hello there."
        provider = app.provider
        assert isinstance(provider, MockProvider)
        (dialled,) = provider.calls.values()
        assert dialled.request.record
        # no recording yet: a clear one-line error naming the call, nothing written
        target = tmp_path / "out.wav"
        code, _, err = await run_cli("recording", call_id, "-o", str(target), url=url)
        assert code == 1 and call_id in err and "no recording" in err
        assert not target.exists()
        # the provider's recording arrives
        sid = "RE" + "c" * 32
        provider.recordings[sid] = WAV
        await app.manager.store.put_recording(
            RecordingRef(
                call_id,
                RecordingSource.TWILIO,
                RecordingStatus.COMPLETED,
                1.0,
                1.0,
                sid=sid,
                duration_seconds=1.0,
            )
        )
        code, stdout, err = await run_cli("recording", call_id[:8], "-o", str(target), url=url)
        assert code == 0, err
        assert target.read_bytes() == WAV
        assert "saved" in stdout
        code, _, err = await run_cli("recording", call_id, "-o", str(target), url=url)
        assert code != 0 and "exists" in err
        code, stdout, err = await run_cli(
            "recording", call_id, "-o", str(target), "--force", "--json", url=url
        )
        assert code == 0, err
        doc = json.loads(stdout)
        assert doc["bytes"] == len(WAV) and doc["source"] == "twilio"
