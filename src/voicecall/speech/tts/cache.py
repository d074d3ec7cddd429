"""Fixed phrases synthesized ahead, and every TTS stream cut into small chunks.

The greeting, the AI disclosure, the hold lines and a few acknowledgements are said on many
calls, word for word. :class:`PhraseCache` wraps any :class:`TtsProvider`: :meth:`load` (called
at server start) loads the engine and synthesizes those phrases once; afterwards a text that is
one of them plays from memory at once, and a text that *starts* with one ("<disclosure> I'm
calling about …") plays the phrase from memory while the rest is synthesized. Everything
else streams from the engine as before. Either way audio reaches the pacer in chunks of at most
``chunk_ms`` (a Piper sentence arrives as one block of seconds of audio).

The cache is bounded (``max_bytes``, oldest phrase out first) and holds only the phrases it was
given: free text is never kept.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from typing import Final

from voicecall.audio.g711 import BYTES_PER_SECOND
from voicecall.speech.tts.base import TtsProvider

__all__ = ["PhraseCache", "split_cached_prefix"]

log = logging.getLogger("voicecall.speech")

_BYTES_PER_MS: Final = BYTES_PER_SECOND // 1000


def _key(text: str) -> str:
    return " ".join(text.split())


def split_cached_prefix(text: str, phrases: Iterable[str]) -> tuple[str, str] | None:
    """``(phrase, rest)`` for the longest of ``phrases`` that ``text`` is, or starts with when
    the phrase is a whole sentence (ends in . ? !); ``rest`` may be empty. ``None`` if none.
    Whitespace is normalized. Pure."""
    said = _key(text)
    best: str | None = None
    for phrase in phrases:
        if not phrase:
            continue
        whole_sentence = phrase[-1] in ".?!"
        matches = said == phrase or (whole_sentence and said.startswith(phrase + " "))
        if matches and (best is None or len(phrase) > len(best)):
            best = phrase
    if best is None:
        return None
    return best, said[len(best) :].strip()


class PhraseCache:
    """A :class:`TtsProvider` that plays known phrases from memory (see the module doc)."""

    def __init__(
        self,
        inner: TtsProvider,
        phrases: Iterable[str] = (),
        *,
        chunk_ms: int = 100,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        if chunk_ms < 20 or max_bytes < 0:
            raise ValueError("chunk_ms must be >= 20 and max_bytes >= 0")
        self.inner: Final = inner
        self.phrases: Final = tuple(dict.fromkeys(_key(p) for p in phrases if p.strip()))
        self.chunk_bytes: Final = chunk_ms * _BYTES_PER_MS
        self.max_bytes: Final = max_bytes
        self._audio: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self.hits = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"PhraseCache({self.inner!r}, {len(self.phrases)} phrases)"

    def cached(self, text: str) -> bytes | None:
        return self._audio.get(_key(text))

    async def load(self) -> None:
        """Load the engine (if it loads) and synthesize the phrases not cached yet."""
        load = getattr(self.inner, "load", None)
        if load is not None:
            await load()
        for phrase in self.phrases:
            if phrase in self._audio:
                continue
            try:
                audio = b"".join([chunk async for chunk in self.inner.synthesize(phrase)])
            except Exception as exc:  # a phrase that cannot be made now is made on use
                log.warning("could not synthesize a fixed phrase ahead: %s", exc)
                continue
            self._store(phrase, audio)

    def _store(self, phrase: str, audio: bytes) -> None:
        if not audio or len(audio) > self.max_bytes:
            return
        self._audio[phrase] = audio
        self._size += len(audio)
        while self._size > self.max_bytes:
            _, old = self._audio.popitem(last=False)
            self._size -= len(old)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        split = split_cached_prefix(text, self._audio.keys())
        if split is not None:
            phrase, rest = split
            self.hits += 1
            for chunk in self._chunks(self._audio[phrase]):
                yield chunk
            if not rest:
                return
            text = rest
        async for chunk in self._engine(text):
            yield chunk

    async def _engine(self, text: str) -> AsyncIterator[bytes]:
        audio = self.inner.synthesize(text)
        keep = _key(text) in self.phrases and _key(text) not in self._audio
        made: list[bytes] = []
        try:
            async for block in audio:
                if keep:
                    made.append(block)
                for chunk in self._chunks(block):
                    yield chunk
        finally:
            closer = getattr(audio, "aclose", None)
            if closer is not None:
                await closer()
        if keep:
            self._store(_key(text), b"".join(made))

    def _chunks(self, block: bytes) -> Iterable[bytes]:
        size = self.chunk_bytes
        return (block[i : i + size] for i in range(0, len(block), size))

    async def aclose(self) -> None:
        await self.inner.aclose()
