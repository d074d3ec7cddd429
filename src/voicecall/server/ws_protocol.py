"""uvicorn's sans-I/O WebSocket protocol with a direct lane for media streams.

Every ASGI WebSocket message normally costs a frame parse in a generator, a dict, a queue put,
a task wake-up and a read pause/resume (two ``epoll_ctl`` calls): per inbound Twilio frame, more
CPU than decoding and VAD-ing its audio. :class:`DirectWebSocketProtocol` keeps uvicorn's
protocol for everything (handshake, ping/pong keepalive, close handshake, errors, all other
WebSocket routes) and adds one ASGI scope extension, ``voicecall.websocket.direct``
(:class:`DirectLane`), which an app may use once it has accepted the connection:

- :meth:`DirectLane.receive_text_directly`: from now on each inbound text message is handed to
  a plain callback inside ``data_received`` (split by :class:`~voicecall.server.ws_frames.
  FrameSplitter`; every other frame still goes through ``websockets`` and the ASGI queue, so
  disconnects and close codes arrive through ``receive()`` as usual). A text that arrives while
  a message waits in the queue is queued behind it, so order holds as long as the app handles
  each received message before it awaits anything;
- :meth:`DirectLane.send_text_nowait`: write one text frame now, without a coroutine; ``False``
  means "not now" (write buffer full, closing) and the app falls back to ASGI ``send``;
  :meth:`DirectLane.send_texts_nowait` writes several frames in one ``write``.

The lane only opens on a plain connection (no extension such as permessage-deflate negotiated)
whose frames the splitter has seen from the first byte after the handshake, and only while no
message is waiting in the ASGI queue, so messages are never reordered. An app that ignores the
extension (or runs under another server) gets standard ASGI behaviour.

``voicecall serve`` (and the demo and benchmarks) run uvicorn with ``ws=DirectWebSocketProtocol``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from voicecall.server.ws_frames import FrameSplitter, text_frame

__all__ = ["DIRECT_EXTENSION", "DirectLane", "DirectWebSocketProtocol"]

DIRECT_EXTENSION: Final = "voicecall.websocket.direct"

log = logging.getLogger("voicecall.server")


class DirectLane:
    """The ASGI scope extension: direct inbound text delivery and synchronous sends."""

    __slots__ = ("_p",)

    def __init__(self, protocol: DirectWebSocketProtocol) -> None:
        self._p = protocol

    def receive_text_directly(self, on_text: Callable[[str], None]) -> bool:
        """Deliver later inbound text messages to ``on_text`` instead of ``receive()``.

        ``False`` when that cannot be done without reordering (messages still queued: call
        again after the next ``receive()``) or at all (compression negotiated, closing).
        """
        p = self._p
        if p._splitter is None or p.close_sent or p.disconnected or not p.handshake_complete:
            return False
        if not p.queue.empty():
            return False
        p._on_text = on_text
        if p.read_paused:
            p.read_paused = False
            p.transport.resume_reading()
        return True

    @property
    def active(self) -> bool:
        return self._p._on_text is not None

    def _can_write(self) -> bool:
        p = self._p
        return not (
            not p._plain
            or p.close_sent
            or p.disconnected
            or not p.handshake_complete
            or not p.writable.is_set()
            or p.conn.state is not State.OPEN
            or p.transport.is_closing()
        )

    def send_text_nowait(self, text: str) -> bool:
        """Write one text frame now; ``False`` (nothing written) when the socket cannot take it."""
        if not self._can_write():
            return False
        self._p.transport.write(text_frame(text.encode()))
        return True

    def send_texts_nowait(self, texts: list[str]) -> bool:
        """Write these text frames now, in order, in one write (one system call for a media
        message and the mark after it); ``False`` (nothing written) as for one frame."""
        if not self._can_write():
            return False
        self._p.transport.write(b"".join([text_frame(text.encode()) for text in texts]))
        return True


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol plus the :class:`DirectLane` extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._splitter: FrameSplitter | None = None
        self._on_text: Callable[[str], None] | None = None
        self._plain = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code != 101:
            return
        # Frames are only split by us if we see them from their first byte: nothing may be
        # buffered behind the request, and nothing may be negotiated that changes the framing.
        self._plain = "Sec-WebSocket-Extensions" not in self.response.headers
        if self._plain and not self.conn.reader.buffer:
            self._splitter = FrameSplitter(self.config.ws_max_size)
        extensions = cast(dict[str, Any], self.scope["extensions"])
        extensions[DIRECT_EXTENSION] = DirectLane(self)

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is None:
            super().data_received(data)
            return
        if not self.handshake_complete or self.conn.state is not State.OPEN:
            # Bytes before the app accepted, or after a close frame: the generic path from now
            # on (the splitter's buffer starts on a frame boundary, so nothing is misparsed).
            self._splitter = None
            self._on_text = None
            super().data_received(splitter.take_buffered() + data)
            return
        for item in splitter.feed(data):
            if type(item) is str:
                self._deliver_text(item)
            else:
                assert isinstance(item, bytes)
                self.conn.receive_data(item)
                if self.conn.parser_exc is not None:
                    self.handle_parser_exception()
                    return
                self.handle_events()
            if self.disconnected:
                return

    def _deliver_text(self, text: str) -> None:
        if self.close_sent or self.conn.state is not State.OPEN:
            return  # past a close (ours or the peer's, earlier in this read): discard
        on_text = self._on_text
        if on_text is None or not self.queue.empty():  # behind a queued message: queue it too
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
            return
        try:
            on_text(text)
        except Exception:
            log.exception("websocket: direct text handler failed; closing with 1011")
            self._on_text = None
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1011})
            self.conn.send_close(1011, "internal error")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)
