"""The I/O edge shared by the WebSocket STT services: connect, pump frames, read transcripts.

Everything service-specific (message shapes, close codes) lives in a sans-I/O codec
(:class:`WsSttCodec`); this module only moves bytes. The session starts connecting when it is
created; frames sent meanwhile wait in :class:`~voicecall.speech.stt.base.PendingFrames` and go
out in order once the socket is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Final, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from voicecall.speech.errors import SpeechError, SpeechUnavailable, error_for_status
from voicecall.speech.stt.base import (
    DEFAULT_MAX_PENDING_FRAMES,
    PendingFrames,
    SttNotice,
    Transcript,
)

__all__ = ["WebSocketSttSession", "WsSttCodec"]

log = logging.getLogger(__name__)

_MAX_MESSAGE: Final = 1 << 20
_END: Final = None


class WsSttCodec(Protocol):
    """Sans-I/O wire format of one STT service (one instance per session: it may keep state)."""

    provider: str

    def opening_messages(self) -> list[str]:
        """Messages to send right after the socket opens (session configuration)."""
        ...

    def audio_message(self, frame: bytes) -> str | bytes:
        """The message carrying one μ-law frame."""
        ...

    def keepalive_message(self) -> str | None:
        """A message to send when no audio went out for a while (``None``: not needed)."""
        ...

    def closing_messages(self) -> list[str]:
        """Messages asking the service to finish; empty when we simply close the socket."""
        ...

    def receive(self, message: str | bytes) -> list[Transcript | SttNotice]:
        """Parse one message; raises ``SpeechError`` only for errors that end the session."""
        ...

    def end_of_stream(self) -> list[Transcript]:
        """Transcripts still owed when the stream ends (e.g. accumulated, never finalized)."""
        ...

    def close_error(self, code: int | None, reason: str, *, requested: bool) -> SpeechError | None:
        """The error a close by the service means (``None``: a normal end)."""
        ...


def _rejection_detail(exc: InvalidStatus) -> str:
    headers = exc.response.headers
    detail = headers.get("dg-error") or ""
    if not detail:
        detail = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
    return detail


class WebSocketSttSession:
    """One STT session over one WebSocket. Create with :meth:`start`."""

    def __init__(
        self,
        codec: WsSttCodec,
        url: str,
        headers: Mapping[str, str],
        *,
        max_pending_frames: int = DEFAULT_MAX_PENDING_FRAMES,
        open_timeout: float = 10.0,
        keepalive_interval: float | None = None,
        close_timeout: float = 3.0,
    ) -> None:
        self._codec = codec
        self._url = url
        self._headers = dict(headers)
        self._pending = PendingFrames(max_pending_frames)
        self._open_timeout = open_timeout
        self._keepalive_interval = keepalive_interval
        self._close_timeout = close_timeout
        self._wake = asyncio.Event()
        self._events: asyncio.Queue[Transcript | BaseException | None] = asyncio.Queue()
        self._closing = False
        self._reader_done = False
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        """Set once the socket is open and the session configured."""
        self.frames_sent = 0

    @property
    def provider(self) -> str:
        return self._codec.provider

    @property
    def frames_dropped(self) -> int:
        """Frames lost because the pending buffer overflowed while connecting."""
        return self._pending.dropped

    def __repr__(self) -> str:
        # the URL carries no secret (keys travel in headers), but keep the repr short anyway
        return (
            f"WebSocketSttSession(provider={self.provider!r}, connected={self.connected.is_set()})"
        )

    def start(self) -> WebSocketSttSession:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"stt-{self.provider}")
        return self

    def send(self, ulaw_frame: bytes) -> None:
        if self._closing or not ulaw_frame:
            return  # an empty binary frame means "close" to some services: never send one
        self._pending.push(ulaw_frame)
        self._wake.set()

    async def events(self) -> AsyncIterator[Transcript]:
        while True:
            item = await self._events.get()
            if item is _END:
                self._events.put_nowait(_END)  # later calls end too
                return
            if isinstance(item, BaseException):
                self._events.put_nowait(_END)
                raise item
            yield item

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is None:
            self._events.put_nowait(_END)
            return
        try:
            await asyncio.wait_for(
                asyncio.shield(self._task), self._open_timeout + self._close_timeout + 1
            )
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- internals ------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            ws = await self._connect()
            async with ws:
                reader = asyncio.create_task(self._read(ws))
                try:
                    try:
                        for message in self._codec.opening_messages():
                            await ws.send(message)
                        self.connected.set()
                        await self._write(ws)
                        if self._closing and not self._reader_done:
                            await self._finish(ws, reader)
                    except ConnectionClosed:
                        pass  # the reader says why
                    await reader
                finally:
                    if not reader.done():
                        reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await reader
        except SpeechError as exc:
            self._events.put_nowait(exc)
        except ConnectionClosed:
            self._events.put_nowait(
                SpeechUnavailable("connection lost while sending", provider=self.provider)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("stt %s session failed", self.provider)
            self._events.put_nowait(
                SpeechUnavailable(f"session failed: {type(exc).__name__}", provider=self.provider)
            )
        finally:
            self._closing = True
            self._events.put_nowait(_END)

    async def _connect(self) -> ClientConnection:
        try:
            return await connect(
                self._url,
                additional_headers=self._headers,
                open_timeout=self._open_timeout,
                max_size=_MAX_MESSAGE,
                compression=None,
                proxy=None,
            )
        except InvalidStatus as exc:
            raise error_for_status(
                self.provider, exc.response.status_code, _rejection_detail(exc)
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise SpeechUnavailable(
                f"cannot connect: {type(exc).__name__}", provider=self.provider
            ) from None

    async def _finish(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        """Ask the service for what it still holds, wait for it a bounded time, then close."""
        closing = self._codec.closing_messages()
        for message in closing:
            await ws.send(message)
        if closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), self._close_timeout)
        await ws.close()

    async def _write(self, ws: ClientConnection) -> None:
        """Send pending frames as they come, until closing is requested or the reader ends."""
        codec = self._codec
        while True:
            self._wake.clear()
            for frame in self._pending.drain():
                await ws.send(codec.audio_message(frame))
                self.frames_sent += 1
            if self._closing or self._reader_done:
                return
            if self._keepalive_interval is None:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(self._keepalive_interval):
                    await self._wake.wait()
            except TimeoutError:
                keepalive = codec.keepalive_message()
                if keepalive is not None:
                    await ws.send(keepalive)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            try:
                async for message in ws:
                    for event in self._codec.receive(message):
                        if isinstance(event, Transcript):
                            self._events.put_nowait(event)
                        else:
                            log.warning("stt %s: %s: %s", self.provider, event.code, event.message)
            except ConnectionClosed:
                pass
            for transcript in self._codec.end_of_stream():
                self._events.put_nowait(transcript)
            error = self._codec.close_error(
                ws.close_code, ws.close_reason or "", requested=self._closing
            )
            if error is not None:
                raise error
        finally:
            self._reader_done = True
            self._wake.set()
