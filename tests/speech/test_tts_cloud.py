"""OpenAI and ElevenLabs TTS against local fakes that speak their wire protocol."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import httpx
import numpy as np
import pytest
from elevenlabs_server import FakeElevenLabs
from openai_server import FakeOpenAI

from voicecall.audio.g711 import ulaw_decode
from voicecall.speech.errors import SpeechAuthError, SpeechRequestRejected, SpeechUnavailable
from voicecall.speech.tts.elevenlabs import ElevenLabsTts
from voicecall.speech.tts.openai import OpenAiTts

GUARD = 10  # seconds: a hang guard, never an assertion about speed


def openai_tts(hostport: str, key: str = "sk-test-openai", **kw: object) -> OpenAiTts:
    return OpenAiTts(key, base_url=f"http://{hostport}/v1", **kw)  # type: ignore[arg-type]


async def collect(tts: OpenAiTts | ElevenLabsTts, text: str) -> bytes:
    out = b""
    async with asyncio.timeout(GUARD):
        async for chunk in tts.synthesize(text):
            out += chunk
    return out


async def test_openai_request_is_the_documented_shape(fake_openai: tuple[FakeOpenAI, str]) -> None:
    fake, hostport = fake_openai
    tts = openai_tts(hostport, voice="nova", model="gpt-4o-mini-tts")
    await collect(tts, "Hi.")
    await tts.aclose()
    (req,) = fake.speech_requests
    assert req.body == {
        "model": "gpt-4o-mini-tts",
        "input": "Hi.",
        "voice": "nova",
        "response_format": "pcm",
    }


async def test_openai_output_length_matches_duration(fake_openai: tuple[FakeOpenAI, str]) -> None:
    fake, hostport = fake_openai
    tts = openai_tts(hostport)
    ulaw = await collect(tts, "x" * 40)  # 40 chars × 50 ms = 2 s of 24 kHz PCM
    await tts.aclose()
    (req,) = fake.speech_requests
    assert req.finished
    pcm_samples = req.total_bytes // 2
    assert pcm_samples == 48_000
    # 24 kHz → 8 kHz: one third, flushed tail included (odd chunk boundaries carried)
    assert abs(len(ulaw) - pcm_samples / 3) <= 2


async def test_openai_output_is_the_tone_resampled(fake_openai: tuple[FakeOpenAI, str]) -> None:
    _, hostport = fake_openai
    tts = openai_tts(hostport)
    pcm = ulaw_decode(await collect(tts, "x" * 20)).astype(np.float64)
    await tts.aclose()
    spectrum = np.abs(np.fft.rfft(pcm[400:-400]))
    peak_hz = np.argmax(spectrum) * 8000 / (len(pcm) - 800)
    assert abs(peak_hz - 440) < 5


async def test_openai_first_chunk_arrives_before_the_server_finished(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    fake, hostport = fake_openai
    # the fake holds the rest of the body after 0.25 s of audio (soxr needs ~100 ms to fill)
    fake.release = asyncio.Event()
    fake.hold_after = 12_000
    tts = openai_tts(hostport)
    async with asyncio.timeout(GUARD), aclosing(tts.synthesize("x" * 40)) as audio:
        first = await anext(audio)
        assert first
        (req,) = fake.speech_requests
        assert not req.finished and req.sent_bytes < req.total_bytes
        fake.release.set()
        rest = [chunk async for chunk in audio]
    assert rest and req.finished
    await tts.aclose()


async def test_openai_cancellation_closes_the_http_stream(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    fake, hostport = fake_openai
    fake.release = asyncio.Event()
    fake.hold_after = 12_000
    tts = openai_tts(hostport)
    got_first = asyncio.Event()

    async def play() -> None:
        async for _ in tts.synthesize("x" * 200):
            got_first.set()

    task = asyncio.create_task(play())
    async with asyncio.timeout(GUARD):
        await got_first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (req,) = fake.speech_requests
        fake.release.set()
        await req.closed.wait()  # the server saw the client go away
    assert req.aborted and req.sent_bytes < req.total_bytes
    await tts.aclose()


async def test_openai_bad_key_is_an_auth_error_without_the_key(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    _, hostport = fake_openai
    tts = openai_tts(hostport, key="sk-wrong-secret-123456")
    with pytest.raises(SpeechAuthError) as info:
        await collect(tts, "hello")
    await tts.aclose()
    assert info.value.status == 401
    assert "123456" not in str(info.value) and "secret" not in str(info.value)
    assert "secret" not in repr(tts)


async def test_openai_invalid_voice_is_rejected_with_the_service_reason(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    _, hostport = fake_openai
    tts = openai_tts(hostport, voice="nobody")
    with pytest.raises(SpeechRequestRejected, match="voice"):
        await collect(tts, "hello")
    await tts.aclose()


async def test_unreachable_service_is_unavailable() -> None:
    async with httpx.AsyncClient() as http:
        tts = OpenAiTts("sk-x", base_url="http://127.0.0.1:9/v1", http=http)
        with pytest.raises(SpeechUnavailable) as info:
            await collect(tts, "hello")
    assert info.value.retryable


async def test_shared_http_client_is_not_closed(fake_openai: tuple[FakeOpenAI, str]) -> None:
    _, hostport = fake_openai
    async with httpx.AsyncClient() as http:
        tts = OpenAiTts("sk-test-openai", base_url=f"http://{hostport}/v1", http=http)
        await collect(tts, "hi")
        await tts.aclose()
        assert not http.is_closed


# --- ElevenLabs ---------------------------------------------------------------------------------


def eleven(hostport: str, key: str = "xi-test-key", voice_id: str = "voice-test") -> ElevenLabsTts:
    return ElevenLabsTts(key, voice_id=voice_id, base_url=f"http://{hostport}")


async def test_elevenlabs_streams_ulaw_passthrough(
    fake_elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, hostport = fake_elevenlabs
    tts = eleven(hostport)
    audio = await collect(tts, "x" * 30)
    await tts.aclose()
    (req,) = fake.requests
    assert req.query == {"output_format": "ulaw_8000"}
    assert req.body == {"text": "x" * 30, "model_id": "eleven_flash_v2_5"}
    assert len(audio) == req.total_bytes == 12_000  # 1.5 s, byte for byte


async def test_elevenlabs_first_chunk_before_server_finished(
    fake_elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, hostport = fake_elevenlabs
    fake.release = asyncio.Event()
    tts = eleven(hostport)
    async with asyncio.timeout(GUARD), aclosing(tts.synthesize("x" * 40)) as audio:
        first = await anext(audio)
        (req,) = fake.requests
        assert first and not req.finished
        fake.release.set()
        total = len(first) + sum([len(c) async for c in audio])
    assert total == req.total_bytes
    await tts.aclose()


async def test_elevenlabs_cancellation_stops_the_stream(
    fake_elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, hostport = fake_elevenlabs
    fake.release = asyncio.Event()
    tts = eleven(hostport)
    async with asyncio.timeout(GUARD):
        async with aclosing(tts.synthesize("x" * 100)) as audio:
            await anext(audio)
        (req,) = fake.requests
        fake.release.set()
        await req.closed.wait()
    assert req.aborted
    await tts.aclose()


async def test_elevenlabs_bad_key_and_unknown_voice(
    fake_elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    _, hostport = fake_elevenlabs
    bad_key = eleven(hostport, key="xi-nope")
    with pytest.raises(SpeechAuthError):
        await collect(bad_key, "hello")
    await bad_key.aclose()
    bad_voice = eleven(hostport, voice_id="ghost")
    with pytest.raises(SpeechRequestRejected, match="voice_not_found"):
        await collect(bad_voice, "hello")
    await bad_voice.aclose()
