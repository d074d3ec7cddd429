"""OpenAI text-to-speech, streamed: ``POST /audio/speech`` with ``response_format=pcm``.

The body is 24 kHz 16-bit little-endian mono PCM, sent chunk by chunk while the model speaks;
each chunk is resampled to 8 kHz (soxr) and μ-law encoded as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import httpx

from voicecall.speech.tts._http import stream_post
from voicecall.speech.tts.base import PcmToUlaw

__all__ = ["OPENAI_PCM_RATE", "OpenAiTts"]

OPENAI_PCM_RATE: Final = 24_000


class OpenAiTts:
    """Streaming TTS through OpenAI's ``/audio/speech`` endpoint."""

    name: Final = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        instructions: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an OpenAI API key is required")
        self._api_key = api_key
        self.base_url: Final = base_url.rstrip("/")
        self.model: Final = model
        self.voice: Final = voice
        self.instructions: Final = instructions
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()

    def __repr__(self) -> str:
        return f"OpenAiTts(base_url={self.base_url!r}, model={self.model!r}, voice={self.voice!r})"

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        body: dict[str, str] = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": "pcm",
        }
        if self.instructions:
            body["instructions"] = self.instructions
        conv = PcmToUlaw(OPENAI_PCM_RATE)
        async for chunk in stream_post(
            self._http,
            self.name,
            f"{self.base_url}/audio/speech",
            headers={"Authorization": f"Bearer {self._api_key}"},
            json=body,
        ):
            out = conv.feed(chunk)
            if out:
                yield out
        tail = conv.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
