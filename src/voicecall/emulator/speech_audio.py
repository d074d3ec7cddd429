"""Audio helpers for Media Streams: WAV packing and the callee's speech, cached (I/O-light).

* :func:`wav_bytes` / :func:`stereo_wav_bytes`: μ-law tracks as 16-bit 8 kHz WAV.
* :class:`Utterance`: one thing the callee says (a WAV file's audio, or text spoken by a voice).
* :func:`utterance_ulaw` / :func:`cached_speech`: its 8 kHz μ-law audio; synthesised speech
  (espeak-ng or Piper) is cached per process; :func:`peek_speech` returns it only if ready.
"""

from __future__ import annotations

import asyncio
import io
import wave
from dataclasses import dataclass

import numpy as np

from voicecall.audio.g711 import ulaw_decode
from voicecall.emulator.voices import Voice, cached_wav, espeak_ulaw, load_wav, piper_ulaw

__all__ = [
    "Utterance",
    "cached_speech",
    "peek_speech",
    "speech_ulaw",
    "stereo_wav_bytes",
    "utterance_ulaw",
    "wav_bytes",
]

SAMPLE_RATE = 8000


def wav_bytes(ulaw: bytes) -> bytes:
    """A 16-bit 8 kHz mono WAV of μ-law audio."""
    pcm = ulaw_decode(ulaw)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def stereo_wav_bytes(left_ulaw: bytes, right_ulaw: bytes) -> bytes:
    """A 16-bit 8 kHz stereo WAV: ``left`` and ``right`` μ-law tracks, padded to one length."""
    left, right = ulaw_decode(left_ulaw), ulaw_decode(right_ulaw)
    n = max(len(left), len(right))
    frames = np.zeros((n, 2), dtype="<i2")
    frames[: len(left), 0] = left
    frames[: len(right), 1] = right
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(frames.tobytes())
    return buf.getvalue()


async def speech_ulaw(text: str, words_per_minute: float = 150.0) -> bytes:
    """Callee speech for ``text``: espeak-ng if installed, else a tone of the same length."""
    return await espeak_ulaw(text, words_per_minute)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One thing the callee says: a WAV file's audio if ``wav`` is set, else ``text`` spoken."""

    text: str
    wav: str | None = None

    @property
    def label(self) -> str:
        """How the utterance is named in ``onsets`` and the timeline."""
        return self.text or f"wav:{self.wav}"


def _utterance(item: Utterance | str) -> Utterance:
    return item if isinstance(item, Utterance) else Utterance(item)


_SPEECH_CACHE: dict[tuple[str, str, float], bytes] = {}
_SPEECH_CACHE_MAX = 256


def _cache_key(u: Utterance, voice: Voice, wpm: float) -> tuple[str, str, float]:
    # espeak's output depends on the rate; Piper's does not (it speaks at its own pace).
    return (str(voice), u.text, wpm if voice == Voice.ESPEAK else 0.0)


def peek_speech(u: Utterance, words_per_minute: float, voice: Voice = Voice.ESPEAK) -> bytes | None:
    """The utterance's audio if it is ready without any work (cached), else None."""
    if u.wav is not None:
        return cached_wav(u.wav)
    return _SPEECH_CACHE.get(_cache_key(u, voice, words_per_minute))


async def utterance_ulaw(
    u: Utterance, words_per_minute: float, voice: Voice = Voice.ESPEAK
) -> bytes:
    """The utterance's 8 kHz μ-law audio; synthesised speech is cached per process."""
    if u.wav is not None:
        audio = cached_wav(u.wav)
        if audio is None:
            audio = (await asyncio.to_thread(load_wav, u.wav)).ulaw
        return audio
    key = _cache_key(u, voice, words_per_minute)
    audio = _SPEECH_CACHE.get(key)
    if audio is None:
        if voice == Voice.PIPER:
            audio = await piper_ulaw(u.text)
        else:
            audio = await espeak_ulaw(u.text, words_per_minute)
        if len(_SPEECH_CACHE) >= _SPEECH_CACHE_MAX:
            _SPEECH_CACHE.pop(next(iter(_SPEECH_CACHE)))
        _SPEECH_CACHE[key] = audio
    return audio


async def cached_speech(text: str, words_per_minute: float, voice: Voice = Voice.ESPEAK) -> bytes:
    """Speech for ``text`` (espeak-ng or Piper), synthesised once per process."""
    return await utterance_ulaw(Utterance(text), words_per_minute, voice)
