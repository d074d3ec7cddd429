"""A local fake of the two OpenAI endpoints voicecall uses, speaking their wire protocol.

- ``POST /v1/audio/speech``: bearer auth, JSON body checked like the real one
  (``model``, ``input`` ≤ 4096 chars, ``voice``, ``response_format``); answers 24 kHz 16-bit LE
  mono PCM, streamed in small odd-sized chunks with small delays; an optional ``release`` event
  holds everything after ``hold_after`` bytes so a test can observe streaming without timing.
- ``WS /v1/realtime?intent=transcription``: the socket is accepted even with a bad key, then an
  ``error`` event (``invalid_api_key``) and close 3000 ``invalid_request_error.invalid_api_key``,
  as the real service does. Accepts ``transcription_session.update`` and
  ``input_audio_buffer.append`` (base64 audio in the session's ``input_audio_format``), answers
  malformed input with ``error`` events (the session stays open), and "recognizes" speech with a
  :class:`ScriptedRecognizer`: speech_started / speech_stopped / committed, word deltas, completed.

Error ``code`` values for malformed client events follow the documented ``invalid_event`` /
``invalid_value`` shapes; their exact message text is the fake's own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fake_recognizer import ScriptedRecognizer, SpeechProgress, SpeechStarted, SpeechStopped
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicecall.audio.g711 import ulaw_decode

PCM_RATE = 24_000
VOICES = {
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
}
FORMATS = {"mp3", "opus", "aac", "flac", "wav", "pcm"}
AUDIO_FORMATS = {"pcm16": 24_000, "g711_ulaw": 8000, "g711_alaw": 8000}


def tone_pcm(seconds: float, freq: float = 440.0, rate: int = PCM_RATE) -> bytes:
    """A tone at half scale, 16-bit LE: the fake's "speech"."""
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * math.pi * freq * t) * 16000).astype("<i2").tobytes()


@dataclass
class SpeechRequest:
    body: dict[str, Any]
    total_bytes: int
    sent_bytes: int = 0
    chunks_sent: int = 0
    finished: bool = False
    aborted: bool = False
    held: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RealtimeSession:
    headers: dict[str, str]
    audio_format: str = "pcm16"
    audio_bytes: int = 0
    received_types: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test-openai"
    seconds_per_char: float = 0.05
    chunk_bytes: int = 2401  # odd on purpose: clients must carry half samples
    chunk_delay: float = 0.005
    release: asyncio.Event | None = None
    hold_after: int = 1  # bytes sent before waiting for ``release`` (1: after the first chunk)
    script: list[str] = field(default_factory=list)
    accept_gate: asyncio.Event | None = None
    speech_requests: list[SpeechRequest] = field(default_factory=list)
    sessions: list[RealtimeSession] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/audio/speech", self.speech, methods=["POST"]),
                WebSocketRoute("/v1/realtime", self.realtime),
            ]
        )

    # --- TTS ------------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, message: str, code: str | None, param: str | None = None) -> Response:
        return JSONResponse(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": param,
                    "code": code,
                }
            },
            status_code=status,
        )

    def _authorized(self, header: str | None) -> bool:
        return header == f"Bearer {self.api_key}"

    async def speech(self, request: Request) -> Response:
        if not self._authorized(request.headers.get("authorization")):
            given = (request.headers.get("authorization") or "").removeprefix("Bearer ")
            masked = f"{given[:3]}***{given[-4:]}" if len(given) > 8 else "***"
            return self._error(401, f"Incorrect API key provided: {masked}.", "invalid_api_key")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.", None)
        if not isinstance(body, dict):
            return self._error(400, "Invalid type for request body.", "invalid_type")
        for key in ("model", "input", "voice"):
            if not isinstance(body.get(key), str) or not body[key]:
                return self._error(
                    400, f"Missing required parameter: '{key}'.", "missing_required_parameter", key
                )
        if len(body["input"]) > 4096:
            return self._error(
                400, "input is longer than 4096 characters", "string_above_max_length", "input"
            )
        if body["voice"] not in VOICES:
            return self._error(
                400, f"Invalid value for 'voice': {body['voice']!r}", "invalid_value", "voice"
            )
        fmt = body.get("response_format", "mp3")
        if fmt not in FORMATS:
            return self._error(
                400,
                f"Invalid value for 'response_format': {fmt!r}",
                "invalid_value",
                "response_format",
            )
        if fmt != "pcm":
            return self._error(
                400, "this fake only produces pcm", "invalid_value", "response_format"
            )
        audio = tone_pcm(len(body["input"]) * self.seconds_per_char)
        record = SpeechRequest(body=body, total_bytes=len(audio))
        self.speech_requests.append(record)

        async def chunks() -> Any:
            held = False
            try:
                for offset in range(0, len(audio), self.chunk_bytes):
                    piece = audio[offset : offset + self.chunk_bytes]
                    yield piece
                    record.sent_bytes += len(piece)
                    record.chunks_sent += 1
                    if (
                        self.release is not None
                        and not held
                        and record.sent_bytes >= self.hold_after
                    ):
                        held = True
                        record.held = True
                        await self.release.wait()
                    await asyncio.sleep(self.chunk_delay)
                record.finished = True
            finally:
                record.aborted = not record.finished
                record.closed.set()

        return StreamingResponse(chunks(), media_type="audio/pcm")

    # --- Realtime transcription -------------------------------------------------------------
    async def realtime(self, ws: WebSocket) -> None:
        if self.accept_gate is not None:
            await self.accept_gate.wait()
        session = RealtimeSession(headers=dict(ws.headers))
        self.sessions.append(session)
        await ws.accept()
        try:
            await self._realtime(ws, session)
        except WebSocketDisconnect:
            pass
        finally:
            session.closed.set()

    async def _send(self, ws: WebSocket, session: RealtimeSession, event: dict[str, Any]) -> None:
        event.setdefault("event_id", f"event_{len(session.sent)}")
        session.sent.append(event)
        await ws.send_text(json.dumps(event))

    async def _error_event(
        self,
        ws: WebSocket,
        session: RealtimeSession,
        code: str,
        message: str,
        param: str | None = None,
    ) -> None:
        await self._send(
            ws,
            session,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": None,
                },
            },
        )

    async def _realtime(self, ws: WebSocket, session: RealtimeSession) -> None:
        if not self._authorized(ws.headers.get("authorization")):
            await self._error_event(ws, session, "invalid_api_key", "Incorrect API key provided.")
            await ws.close(3000, "invalid_request_error.invalid_api_key")
            return
        if ws.query_params.get("intent") != "transcription":
            await self._error_event(
                ws, session, "invalid_value", "this fake serves transcription only", "intent"
            )
            await ws.close(3000, "invalid_request_error.invalid_value")
            return
        await self._send(
            ws,
            session,
            {
                "type": "transcription_session.created",
                "session": {
                    "object": "realtime.transcription_session",
                    "input_audio_format": "pcm16",
                },
            },
        )
        recognizer = ScriptedRecognizer(list(self.script), sample_rate=24_000)
        items = 0
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self._error_event(
                    ws, session, "invalid_event", "binary messages are not supported"
                )
                continue
            try:
                event = json.loads(message.get("text") or "")
            except ValueError:
                await self._error_event(ws, session, "invalid_event", "message is not valid JSON")
                continue
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                await self._error_event(
                    ws, session, "invalid_event", "The 'type' field is missing."
                )
                continue
            kind = event["type"]
            session.received_types.append(kind)
            if kind == "transcription_session.update":
                config = event.get("session")
                fmt = (
                    config.get("input_audio_format", session.audio_format)
                    if isinstance(config, dict)
                    else None
                )
                if fmt not in AUDIO_FORMATS:
                    await self._error_event(
                        ws,
                        session,
                        "invalid_value",
                        f"Invalid input_audio_format {fmt!r}",
                        "session.input_audio_format",
                    )
                    continue
                session.audio_format = fmt
                turn = config.get("turn_detection") or {}
                silence = turn.get("silence_duration_ms", 500) if isinstance(turn, dict) else 500
                recognizer = ScriptedRecognizer(
                    list(self.script), sample_rate=AUDIO_FORMATS[fmt], silence_ms=int(silence)
                )
                await self._send(
                    ws, session, {"type": "transcription_session.updated", "session": config}
                )
            elif kind == "input_audio_buffer.append":
                audio = event.get("audio")
                try:
                    raw = base64.b64decode(audio, validate=True) if isinstance(audio, str) else None
                except (binascii.Error, ValueError):
                    raw = None
                if raw is None:
                    await self._error_event(
                        ws, session, "invalid_value", "audio must be base64", "audio"
                    )
                    continue
                session.audio_bytes += len(raw)
                samples = (
                    ulaw_decode(raw)
                    if session.audio_format == "g711_ulaw"
                    else np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.int16)
                )
                for rec in recognizer.feed(samples):
                    if isinstance(rec, SpeechStarted):
                        items += 1
                        await self._send(
                            ws,
                            session,
                            {
                                "type": "input_audio_buffer.speech_started",
                                "audio_start_ms": rec.start_ms,
                                "item_id": f"item_{items}",
                            },
                        )
                    elif isinstance(rec, SpeechStopped):
                        await self._finish_item(ws, session, f"item_{items}", rec)
                    elif isinstance(rec, SpeechProgress):
                        pass  # gpt-4o-transcribe streams deltas after the commit, not during speech
            elif kind in ("input_audio_buffer.commit", "input_audio_buffer.clear"):
                continue
            else:
                await self._error_event(
                    ws, session, "invalid_value", f"Invalid value: '{kind}'.", "type"
                )

    async def _finish_item(
        self, ws: WebSocket, session: RealtimeSession, item_id: str, rec: SpeechStopped
    ) -> None:
        await self._send(
            ws,
            session,
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": rec.end_ms,
                "item_id": item_id,
            },
        )
        await self._send(
            ws,
            session,
            {"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": item_id},
        )
        words = rec.text.split()
        for i, word in enumerate(words):
            await self._send(
                ws,
                session,
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": word if i == 0 else f" {word}",
                },
            )
        await self._send(
            ws,
            session,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": rec.text,
            },
        )
