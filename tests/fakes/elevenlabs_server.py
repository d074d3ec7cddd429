"""A local fake of ElevenLabs' streaming TTS endpoint, speaking its wire protocol.

``POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`` with the ``xi-api-key``
header and a JSON body (``text`` required, ``model_id`` optional). A bad key answers 401 with
``{"detail": {"status": "invalid_api_key", "message": …}}``; an unknown voice 404
(``voice_not_found``); a bad body or format 422/400. The audio is a μ-law 8 kHz tone streamed in
small chunks with small delays; ``release`` holds everything after the first chunk.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from voicecall.audio.g711 import ulaw_encode

FORMATS = {"ulaw_8000", "pcm_16000", "pcm_22050", "pcm_24000", "mp3_44100_128"}


def tone_ulaw(seconds: float, freq: float = 523.0) -> bytes:
    t = np.arange(round(seconds * 8000)) / 8000
    return ulaw_encode((np.sin(2 * math.pi * freq * t) * 12000).astype(np.int16))


@dataclass
class StreamRequest:
    voice_id: str
    body: dict[str, Any]
    query: dict[str, str]
    total_bytes: int
    sent_bytes: int = 0
    finished: bool = False
    aborted: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeElevenLabs:
    api_key: str = "xi-test-key"
    voices: set[str] = field(default_factory=lambda: {"21m00Tcm4TlvDq8ikWAM", "voice-test"})
    seconds_per_char: float = 0.05
    chunk_bytes: int = 800
    chunk_delay: float = 0.005
    release: asyncio.Event | None = None
    requests: list[StreamRequest] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/v1/text-to-speech/{voice_id}/stream", self.stream, methods=["POST"])]
        )

    @staticmethod
    def _detail(status: int, code: str, message: str) -> Response:
        return JSONResponse({"detail": {"status": code, "message": message}}, status_code=status)

    async def stream(self, request: Request) -> Response:
        if request.headers.get("xi-api-key") != self.api_key:
            return self._detail(401, "invalid_api_key", "Invalid API key")
        voice_id = request.path_params["voice_id"]
        if voice_id not in self.voices:
            return self._detail(
                404, "voice_not_found", f"A voice with voice_id {voice_id} was not found."
            )
        fmt = request.query_params.get("output_format", "mp3_44100_128")
        if fmt not in FORMATS:
            return self._detail(400, "invalid_output_format", f"Invalid output format {fmt}")
        if fmt != "ulaw_8000":
            return self._detail(400, "invalid_output_format", "this fake only produces ulaw_8000")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(
                {"detail": [{"type": "json_invalid", "loc": ["body"]}]}, status_code=422
            )
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse(
                {"detail": [{"type": "missing", "loc": ["body", "text"]}]}, status_code=422
            )
        audio = tone_ulaw(len(body["text"]) * self.seconds_per_char)
        record = StreamRequest(voice_id, body, dict(request.query_params), len(audio))
        self.requests.append(record)

        async def chunks() -> Any:
            try:
                for offset in range(0, len(audio), self.chunk_bytes):
                    piece = audio[offset : offset + self.chunk_bytes]
                    yield piece
                    record.sent_bytes += len(piece)
                    if record.sent_bytes == len(piece) and self.release is not None:
                        await self.release.wait()
                    await asyncio.sleep(self.chunk_delay)
                record.finished = True
            finally:
                record.aborted = not record.finished
                record.closed.set()

        return StreamingResponse(chunks(), media_type="audio/basic")
