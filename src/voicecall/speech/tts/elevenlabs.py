"""ElevenLabs text-to-speech, streamed as μ-law 8 kHz (``output_format=ulaw_8000``).

The body is already what Twilio plays, so chunks are passed through as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import quote

import httpx

from voicecall.speech.tts._http import stream_post

__all__ = ["ElevenLabsTts"]

DEFAULT_VOICE_ID: Final = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", a premade voice every account has
DEFAULT_MODEL_ID: Final = "eleven_flash_v2_5"


class ElevenLabsTts:
    """Streaming TTS through ElevenLabs' ``/v1/text-to-speech/{voice_id}/stream`` endpoint."""

    name: Final = "elevenlabs"

    def __init__(
        self,
        api_key: str,
        *,
        voice_id: str = DEFAULT_VOICE_ID,
        model_id: str = DEFAULT_MODEL_ID,
        base_url: str = "https://api.elevenlabs.io",
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an ElevenLabs API key is required")
        if not voice_id:
            raise ValueError("an ElevenLabs voice_id is required")
        self._api_key = api_key
        self.voice_id: Final = voice_id
        self.model_id: Final = model_id
        self.base_url: Final = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()

    def __repr__(self) -> str:
        return (
            f"ElevenLabsTts(base_url={self.base_url!r}, voice_id={self.voice_id!r}, "
            f"model_id={self.model_id!r})"
        )

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        url = f"{self.base_url}/v1/text-to-speech/{quote(self.voice_id, safe='')}/stream"
        async for chunk in stream_post(
            self._http,
            self.name,
            url,
            headers={"xi-api-key": self._api_key},
            params={"output_format": "ulaw_8000"},
            json={"text": text, "model_id": self.model_id},
        ):
            yield chunk

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
