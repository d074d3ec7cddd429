"""OpenAI Realtime and Deepgram live STT against local fakes that speak their wire protocol."""

from __future__ import annotations

import asyncio
import base64
import json
import math

import numpy as np
import pytest
import websockets
from deepgram_server import FakeDeepgram
from openai_server import FakeOpenAI
from websockets.asyncio.client import connect

from voicecall.audio.g711 import FRAME_BYTES, ulaw_encode
from voicecall.speech.errors import SpeechAuthError, SpeechRequestRejected, SpeechUnavailable
from voicecall.speech.stt.base import SttSession, Transcript
from voicecall.speech.stt.deepgram import DeepgramStt
from voicecall.speech.stt.openai_realtime import OpenAiRealtimeStt, ServerVad

GUARD = 10  # seconds: a hang guard, never an assertion about speed


def tone_frames(ms: int, freq: float = 300.0) -> list[bytes]:
    t = np.arange(ms * 8) / 8000
    audio = ulaw_encode((np.sin(2 * math.pi * freq * t) * 8000).astype(np.int16))
    return [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]


def silence_frames(ms: int) -> list[bytes]:
    return [b"\xff" * FRAME_BYTES] * (ms // 20)


def utterance() -> list[bytes]:
    """200 ms quiet, 600 ms "speech", 800 ms quiet: one utterance for the fakes' recognizer."""
    return silence_frames(200) + tone_frames(600) + silence_frames(800)


async def send_all(session: SttSession, frames: list[bytes]) -> None:
    for frame in frames:
        session.send(frame)


async def take(session: SttSession, *, finals: int) -> list[Transcript]:
    got: list[Transcript] = []
    async with asyncio.timeout(GUARD):
        async for t in session.events():
            got.append(t)
            if sum(x.final for x in got) == finals:
                break
    return got


def openai_stt(hostport: str, key: str = "sk-test-openai") -> OpenAiRealtimeStt:
    return OpenAiRealtimeStt(
        key,
        base_url=f"ws://{hostport}/v1/realtime?intent=transcription",
        vad=ServerVad(silence_duration_ms=300),
    )


def deepgram_stt(hostport: str, key: str = "dg-test-key", **kw: object) -> DeepgramStt:
    return DeepgramStt(key, base_url=f"ws://{hostport}/v1/listen", **kw)  # type: ignore[arg-type]


# --- OpenAI Realtime -------------------------------------------------------------------------


async def test_openai_partials_then_final_with_times(fake_openai: tuple[FakeOpenAI, str]) -> None:
    fake, hostport = fake_openai
    session = await openai_stt(hostport).open_session()
    await send_all(session, utterance())
    got = await take(session, finals=1)
    await session.aclose()
    partials = [t for t in got if not t.final]
    assert [t.text for t in partials] == ["hello", "hello there"]
    final = got[-1]
    assert final == Transcript("hello there", True, 200, 800)
    (s,) = fake.sessions
    assert s.headers["authorization"] == "Bearer sk-test-openai"
    assert s.headers["openai-beta"] == "realtime=v1"
    assert s.audio_format == "g711_ulaw"
    assert s.received_types[0] == "transcription_session.update"


async def test_openai_two_utterances_in_order(fake_openai: tuple[FakeOpenAI, str]) -> None:
    _, hostport = fake_openai
    session = await openai_stt(hostport).open_session()
    await send_all(session, utterance() + utterance())
    finals = [t for t in await take(session, finals=2) if t.final]
    await session.aclose()
    assert [t.text for t in finals] == ["hello there", "book a table for two"]
    assert finals[1].started_at_ms == 1600 + 200


async def test_openai_frames_sent_before_connecting_are_not_lost(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    fake, hostport = fake_openai
    fake.accept_gate = asyncio.Event()  # the fake does not accept the socket yet
    session = await openai_stt(hostport).open_session()
    frames = utterance()
    await send_all(session, frames)  # returns at once although nothing is connected
    assert not fake.sessions
    fake.accept_gate.set()
    got = await take(session, finals=1)
    await session.aclose()
    assert got[-1].text == "hello there"
    assert fake.sessions[0].audio_bytes == sum(map(len, frames))


async def test_openai_bad_key_raises_auth_error(fake_openai: tuple[FakeOpenAI, str]) -> None:
    _, hostport = fake_openai
    session = await openai_stt(hostport, key="sk-wrong").open_session()
    await send_all(session, silence_frames(100))
    with pytest.raises(SpeechAuthError, match="openai-realtime"):
        await take(session, finals=1)
    await session.aclose()


async def test_fake_openai_answers_malformed_events_and_stays_open(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    """The fake rejects what the real service rejects, with error events, without closing."""
    _, hostport = fake_openai
    headers = {"Authorization": "Bearer sk-test-openai", "OpenAI-Beta": "realtime=v1"}
    url = f"ws://{hostport}/v1/realtime?intent=transcription"
    async with asyncio.timeout(GUARD), connect(url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "transcription_session.created"
        for bad in ("not json", json.dumps({"no": "type"}), b"\x00\x01"):
            await ws.send(bad)
            event = json.loads(await ws.recv())
            assert event["type"] == "error" and event["error"]["code"] == "invalid_event"
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}))
        event = json.loads(await ws.recv())
        assert event["error"]["param"] == "audio"
        audio = base64.b64encode(b"\xff" * 160).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "session.bogus"}))
        assert json.loads(await ws.recv())["error"]["code"] == "invalid_value"


async def test_fake_openai_closes_3000_on_bad_key(fake_openai: tuple[FakeOpenAI, str]) -> None:
    _, hostport = fake_openai
    url = f"ws://{hostport}/v1/realtime?intent=transcription"
    headers = {"Authorization": "Bearer nope"}
    async with asyncio.timeout(GUARD), connect(url, additional_headers=headers) as ws:
        event = json.loads(await ws.recv())
        assert event["error"]["code"] == "invalid_api_key"
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 3000


# --- Deepgram ------------------------------------------------------------------------------------


async def test_deepgram_interims_then_final(fake_deepgram: tuple[FakeDeepgram, str]) -> None:
    fake, hostport = fake_deepgram
    session = await deepgram_stt(hostport).open_session()
    await send_all(session, utterance())
    got = await take(session, finals=1)
    await session.aclose()
    assert got[-1] == Transcript("hello there", True, 200, 800)
    partials = [t for t in got if not t.final]
    assert partials and all(not t.final and "hello".startswith(t.text[:5]) for t in partials)
    (s,) = fake.sessions
    assert s.headers["authorization"] == "Token dg-test-key"
    assert s.query["encoding"] == "mulaw" and s.query["sample_rate"] == "8000"
    assert s.query["channels"] == "1" and s.query["interim_results"] == "true"
    assert s.query["model"] == "nova-2" and s.query["punctuate"] == "true"
    assert s.audio_bytes == sum(map(len, utterance()))


async def test_deepgram_frames_before_connect_are_not_lost(
    fake_deepgram: tuple[FakeDeepgram, str],
) -> None:
    fake, hostport = fake_deepgram
    fake.accept_gate = asyncio.Event()
    session = await deepgram_stt(hostport).open_session()
    frames = utterance() + utterance()
    await send_all(session, frames)
    fake.accept_gate.set()
    finals = [t for t in await take(session, finals=2) if t.final]
    await session.aclose()
    assert [t.text for t in finals] == ["hello there", "book a table for two"]
    assert fake.sessions[0].audio_bytes == sum(map(len, frames))


async def test_deepgram_close_flushes_speech_in_progress(
    fake_deepgram: tuple[FakeDeepgram, str],
) -> None:
    fake, hostport = fake_deepgram
    session = await deepgram_stt(hostport).open_session()
    await send_all(session, silence_frames(100) + tone_frames(600))  # still speaking
    await session.aclose()  # CloseStream: the service finalizes what it holds
    got = await take(session, finals=1)
    assert got[-1].final and got[-1].text == "hello there"
    (s,) = fake.sessions
    assert s.close_streams == 1 and s.close_code == 1000


async def test_deepgram_bad_key_is_auth_error_from_the_401(
    fake_deepgram: tuple[FakeDeepgram, str],
) -> None:
    fake, hostport = fake_deepgram
    session = await deepgram_stt(hostport, key="wrong").open_session()
    await send_all(session, silence_frames(100))
    with pytest.raises(SpeechAuthError) as info:
        await take(session, finals=1)
    await session.aclose()
    assert info.value.status == 401 and "wrong" not in str(info.value)
    assert not fake.sessions


async def test_deepgram_keepalive_holds_the_session_through_a_pause(
    fake_deepgram: tuple[FakeDeepgram, str],
) -> None:
    fake, hostport = fake_deepgram
    fake.idle_timeout = 0.5  # the real service waits 10 s
    session = await deepgram_stt(hostport, keepalive_interval=0.1).open_session()
    await send_all(session, silence_frames(100))
    await asyncio.sleep(1.2)  # a pause longer than the fake's idle timeout
    await send_all(session, utterance())
    got = await take(session, finals=1)
    await session.aclose()
    assert got[-1].text == "hello there"
    assert fake.sessions[0].keepalives >= 1 and fake.sessions[0].close_code == 1000


async def test_deepgram_idle_close_is_reported_unavailable(
    fake_deepgram: tuple[FakeDeepgram, str],
) -> None:
    fake, hostport = fake_deepgram
    fake.idle_timeout = 0.2
    session = await deepgram_stt(hostport, keepalive_interval=60).open_session()
    with pytest.raises(SpeechUnavailable, match="NET-0001"):
        await take(session, finals=1)
    await session.aclose()


async def test_fake_deepgram_rejects_like_the_service(
    fake_deepgram: tuple[FakeDeepgram, str],
) -> None:
    _, hostport = fake_deepgram
    headers = {"Authorization": "Token dg-test-key"}
    async with asyncio.timeout(GUARD):
        with pytest.raises(websockets.InvalidStatus) as info:
            await connect(f"ws://{hostport}/v1/listen?encoding=mulaw", additional_headers=headers)
        assert info.value.response.status_code == 400
        async with connect(f"ws://{hostport}/v1/listen", additional_headers=headers) as ws:
            await ws.send("{not json")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "DATA-0000")


async def test_deepgram_unreachable_is_unavailable() -> None:
    session = await DeepgramStt("k", base_url="ws://127.0.0.1:9/v1/listen").open_session()
    with pytest.raises(SpeechUnavailable):
        await take(session, finals=1)
    await session.aclose()


async def test_rejected_audio_close_is_request_rejected() -> None:
    from voicecall.speech.stt.deepgram import DeepgramCodec

    error = DeepgramCodec().close_error(1008, "DATA-0000", requested=False)
    assert isinstance(error, SpeechRequestRejected)
