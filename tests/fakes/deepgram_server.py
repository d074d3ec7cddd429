"""A local fake of Deepgram's live transcription WebSocket, speaking its wire protocol.

``WS /v1/listen?encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&…`` with
``Authorization: Token <key>``:

- a bad key refuses the upgrade with HTTP 401, a ``dg-error`` header and a JSON body
  (``err_code: INVALID_AUTH``); raw encodings without ``sample_rate`` are refused with 400;
- binary frames are raw audio in the declared encoding; ``{"type":"KeepAlive"}`` is silently
  accepted; ``{"type":"CloseStream"}`` (or the legacy empty binary frame) finalizes: the last
  ``Results``, a ``Metadata`` message, then close 1000;
- a text frame that is not a known control message closes with 1008 ``DATA-0000`` (approximation:
  Deepgram's documented close for data it cannot use); no data for ``idle_timeout`` seconds
  closes with 1011 ``NET-0001``;
- ``Results``: interim ones (``is_final: false``) every 200 ms of speech when
  ``interim_results=true``, then ``is_final: true, speech_final: true`` with the scripted text
  after ``endpointing`` ms (default 300 here) of silence.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fake_recognizer import ScriptedRecognizer, SpeechProgress, SpeechStarted, SpeechStopped
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicecall.audio.g711 import ulaw_decode

ENCODINGS = {"linear16", "mulaw", "alaw", "opus", "flac"}


@dataclass
class ListenSession:
    query: dict[str, str]
    headers: dict[str, str]
    audio_bytes: int = 0
    keepalives: int = 0
    close_streams: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeDeepgram:
    api_key: str = "dg-test-key"
    script: list[str] = field(default_factory=list)
    idle_timeout: float = 10.0
    accept_gate: asyncio.Event | None = None
    sessions: list[ListenSession] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute("/v1/listen", self.listen)])

    async def listen(self, ws: WebSocket) -> None:
        request_id = str(uuid.uuid4())
        if ws.headers.get("authorization") != f"Token {self.api_key}":
            await ws.send_denial_response(
                JSONResponse(
                    {
                        "err_code": "INVALID_AUTH",
                        "err_msg": "Invalid credentials.",
                        "request_id": request_id,
                    },
                    status_code=401,
                    headers={"dg-error": "Invalid credentials.", "dg-request-id": request_id},
                )
            )
            return
        query = dict(ws.query_params)
        encoding = query.get("encoding")
        if encoding is not None and (encoding not in ENCODINGS or "sample_rate" not in query):
            await ws.send_denial_response(
                JSONResponse(
                    {
                        "err_code": "Bad Request",
                        "err_msg": "encoding requires a valid sample_rate",
                        "request_id": request_id,
                    },
                    status_code=400,
                    headers={
                        "dg-error": "encoding requires a valid sample_rate",
                        "dg-request-id": request_id,
                    },
                )
            )
            return
        if self.accept_gate is not None:
            await self.accept_gate.wait()
        session = ListenSession(query=query, headers=dict(ws.headers))
        self.sessions.append(session)
        await ws.accept()
        try:
            await self._run(ws, session, request_id)
        except WebSocketDisconnect:
            pass
        finally:
            session.closed.set()

    async def _send(self, ws: WebSocket, session: ListenSession, message: dict[str, Any]) -> None:
        session.sent.append(message)
        await ws.send_text(json.dumps(message))

    async def _close(self, ws: WebSocket, session: ListenSession, code: int, reason: str) -> None:
        session.close_code = code
        await ws.close(code, reason)

    def _results(
        self,
        request_id: str,
        start_ms: int,
        end_ms: int,
        text: str,
        *,
        is_final: bool,
        speech_final: bool,
    ) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": (end_ms - start_ms) / 1000,
            "start": start_ms / 1000,
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.98,
                        "words": [
                            {
                                "word": w.strip(".,?!").lower(),
                                "start": start_ms / 1000,
                                "end": end_ms / 1000,
                                "confidence": 0.98,
                                "punctuated_word": w,
                            }
                            for w in text.split()
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": request_id,
                "model_info": {"name": "fake", "version": "0", "arch": "fake"},
            },
            "from_finalize": False,
        }

    async def _run(self, ws: WebSocket, session: ListenSession, request_id: str) -> None:
        query = session.query
        rate = int(query.get("sample_rate", "8000"))
        interim = query.get("interim_results") == "true"
        endpointing = query.get("endpointing", "300")
        silence_ms = 300 if endpointing == "false" else int(endpointing)
        recognizer = ScriptedRecognizer(list(self.script), sample_rate=rate, silence_ms=silence_ms)
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    message = await ws.receive()
            except TimeoutError:
                await self._close(ws, session, 1011, "NET-0001")
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is not None and len(data) > 0:
                session.audio_bytes += len(data)
                if query.get("encoding") == "mulaw":
                    samples = ulaw_decode(data)
                else:
                    samples = np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.int16)
                for rec in recognizer.feed(samples):
                    if isinstance(rec, SpeechProgress) and interim:
                        await self._send(
                            ws,
                            session,
                            self._results(
                                request_id,
                                rec.start_ms,
                                rec.now_ms,
                                " ".join(rec.words),
                                is_final=False,
                                speech_final=False,
                            ),
                        )
                    elif isinstance(rec, SpeechStopped):
                        await self._send(
                            ws,
                            session,
                            self._results(
                                request_id,
                                rec.start_ms,
                                rec.end_ms,
                                rec.text,
                                is_final=True,
                                speech_final=True,
                            ),
                        )
                    elif isinstance(rec, SpeechStarted):
                        pass  # SpeechStarted messages only with vad_events=true
                continue
            if data is not None:  # legacy: an empty binary frame closes the stream
                kind = "CloseStream"
            else:
                try:
                    control = json.loads(message.get("text") or "")
                    kind = control.get("type") if isinstance(control, dict) else None
                except ValueError:
                    kind = None
            if kind == "KeepAlive":
                session.keepalives += 1
            elif kind == "Finalize":
                if recognizer.in_speech:
                    rec = recognizer.stop()
                    await self._send(
                        ws,
                        session,
                        self._results(
                            request_id,
                            rec.start_ms,
                            rec.end_ms,
                            rec.text,
                            is_final=True,
                            speech_final=False,
                        ),
                    )
            elif kind == "CloseStream":
                session.close_streams += 1
                if recognizer.in_speech:
                    rec = recognizer.stop()
                    await self._send(
                        ws,
                        session,
                        self._results(
                            request_id,
                            rec.start_ms,
                            rec.end_ms,
                            rec.text,
                            is_final=True,
                            speech_final=False,
                        ),
                    )
                await self._send(
                    ws,
                    session,
                    {
                        "type": "Metadata",
                        "transaction_key": "deprecated",
                        "request_id": request_id,
                        "sha256": "0" * 64,
                        "created": "2025-01-01T00:00:00.000Z",
                        "duration": recognizer.audio_ms / 1000,
                        "channels": 1,
                    },
                )
                await self._close(ws, session, 1000, "")
                return
            else:
                await self._close(ws, session, 1008, "DATA-0000")
                return
