"""A minimal Media Streams app to put load on the emulator: the far end of ``load``.

One loopback port serves both halves of a streamed call, on raw asyncio with websockets' sans-I/O
server protocol so that the sink costs little next to the emulator it measures:

- HTTP ``POST``/``GET /voice`` (the voice webhook) answers
  ``<Response><Connect><Stream url="ws://HOST/stream"/></Connect></Response>``;
- ``GET /stats`` answers the counters below as JSON;
- WebSocket ``/stream`` counts the emulator's ``media`` frames (recognised by prefix, not parsed),
  and every ``every_ms`` sends an *utterance*: ``utterance_ms`` of audio as 20 ms ``media``
  messages in one burst followed by a ``mark``; it counts the mark echoes that come back.

It neither checks signatures nor keeps audio: it is a load target, not an app.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, cast
from xml.sax.saxutils import escape

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

__all__ = ["SinkStats", "StreamSink", "run_sink", "serve_sink"]

_MEDIA_PREFIX = b'{"event": "media"'
_MAX_HEAD = 16 * 1024
_MAX_BODY = 64 * 1024
_APP_AUDIO = base64.b64encode(bytes(range(0x20, 0x20 + 160))).decode()  # loud, not silence


@dataclass(slots=True)
class SinkStats:
    webhooks: int = 0
    streams_started: int = 0
    streams_stopped: int = 0
    streams_closed: int = 0
    media_in: int = 0
    other_in: int = 0
    media_out: int = 0
    marks_out: int = 0
    mark_echoes_in: int = 0
    cpu_seconds: float = 0.0


class StreamSink:
    """Shared state and settings of one sink server."""

    def __init__(
        self, *, utterance_ms: int = 1000, every_ms: int = 2000, stream_url: str | None = None
    ) -> None:
        if utterance_ms < 0 or every_ms < 0 or (utterance_ms and every_ms < utterance_ms):
            raise ValueError("need 0 <= utterance_ms <= every_ms")
        self.utterance_frames = utterance_ms // 20
        self.every_s = every_ms / 1000.0
        self.stats = SinkStats()
        self.stream_url = stream_url  # default: ws://<Host of the webhook request>/stream
        self._cpu0 = time.process_time()

    def snapshot(self) -> dict[str, Any]:
        self.stats.cpu_seconds = round(time.process_time() - self._cpu0, 3)
        return asdict(self.stats)

    def twiml(self, host: str) -> bytes:
        url = escape(self.stream_url or f"ws://{host}/stream", {'"': "&quot;"})
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="{url}"/></Connect></Response>'
        ).encode()


class _Connection(asyncio.Protocol):
    def __init__(self, sink: StreamSink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ws: ServerProtocol | None = None
        self.stream_sid: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.utterances = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.ws is not None:
            self.sink.stats.streams_closed += 1

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._ws_data(data)
            return
        self.buffer += data
        while self.ws is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._http(400, b"too big", close=True)
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("upgrade", "").lower() == "websocket":
                raw = bytes(self.buffer)
                self.buffer.clear()
                self.ws = ServerProtocol(max_size=1 << 20)
                self._ws_data(raw)
                return
            try:
                length = int(headers.get("content-length", "0") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= _MAX_BODY:
                self._http(413, b"too big", close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            path = path.split("?", 1)[0]
            if path == "/voice" and method in {"GET", "POST"}:
                self.sink.stats.webhooks += 1
                body = self.sink.twiml(headers.get("host", "127.0.0.1"))
                self._http(200, body, content_type="application/xml")
            elif path == "/stats" and method == "GET":
                self._http(200, json.dumps(self.sink.snapshot()).encode())
            else:
                self._http(404, b"not found")

    def _http(
        self, status: int, body: bytes, *, content_type: str = "text/plain", close: bool = False
    ) -> None:
        assert self.transport is not None
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Too Large"}[status]
        connection = "Connection: close\r\n" if close else ""
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{connection}\r\n"
        )
        self.transport.write(head.encode() + body)
        if close:
            self.transport.close()

    # ------------------------------------------------------------------ WebSocket

    def _ws_data(self, data: bytes) -> None:
        ws = self.ws
        assert ws is not None
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                ws.send_response(ws.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._message(bytes(event.data))
        self._flush()

    def _message(self, data: bytes) -> None:
        stats = self.sink.stats
        if data.startswith(_MEDIA_PREFIX):
            stats.media_in += 1
            return
        stats.other_in += 1
        try:
            msg = json.loads(data)
        except ValueError:
            return
        event = msg.get("event") if isinstance(msg, dict) else None
        if event == "start":
            self.stream_sid = str(msg.get("streamSid"))
            stats.streams_started += 1
            if self.sink.utterance_frames:
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(self.sink.every_s / 2, self._utter)
        elif event == "mark":
            stats.mark_echoes_in += 1
        elif event == "stop":
            stats.streams_stopped += 1
            if self.timer is not None:
                self.timer.cancel()

    def _utter(self) -> None:
        ws = self.ws
        if ws is None or ws.state is not State.OPEN or self.stream_sid is None:
            return
        sid = json.dumps(self.stream_sid)
        media = (
            f'{{"event": "media", "streamSid": {sid}, "media": {{"payload": "{_APP_AUDIO}"}}}}'
        ).encode()
        for _ in range(self.sink.utterance_frames):
            ws.send_text(media)
        self.utterances += 1
        mark = f'{{"event": "mark", "streamSid": {sid}, "mark": {{"name": "u{self.utterances}"}}}}'
        ws.send_text(mark.encode())
        stats = self.sink.stats
        stats.media_out += self.sink.utterance_frames
        stats.marks_out += 1
        self._flush()
        self.timer = asyncio.get_running_loop().call_later(self.sink.every_s, self._utter)

    def _flush(self) -> None:
        ws, transport = self.ws, self.transport
        assert ws is not None and transport is not None
        for chunk in ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                transport.close()
                return


async def serve_sink(sink: StreamSink, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start a sink server (``server.sockets[0].getsockname()[1]`` is its port)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(sink), host, port, backlog=2048)


def run_sink(
    host: str = "127.0.0.1",
    port: int = 8780,
    *,
    utterance_ms: int = 1000,
    every_ms: int = 2000,
    use_uvloop: bool = True,
) -> None:
    """Serve a sink until interrupted (``python -m voicecall.emulator sink``)."""
    sink = StreamSink(utterance_ms=utterance_ms, every_ms=every_ms)

    async def main() -> None:
        server = await serve_sink(sink, host, port)
        bound = server.sockets[0].getsockname()[1]
        print(f"sink listening on http://{host}:{bound}/voice", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        _run(main(), use_uvloop)


def _run(coro: Any, use_uvloop: bool) -> None:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvicorn[standard] brings it
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(coro)
            return
    asyncio.run(coro)
