"""A lean WebSocket client for Media Streams: websockets' sans-I/O protocol on an asyncio transport.

Sending is a plain method call (no coroutine, no lock, no task per message): the frame is built by
``websockets.client.ClientProtocol`` and written straight to the transport. That is what lets one
ticker task send every stream's 20 ms frame back to back. Incoming messages are delivered to a
callback as they are parsed (fragmented messages reassembled). No extensions are offered, so
there is no compression, as with Twilio.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
import struct
from collections.abc import Callable, Mapping
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in the wheels
    from websockets.utils import apply_mask

__all__ = ["WebSocketClient", "WebSocketConnectError", "open_websocket", "text_frame"]


def text_frame(payload: bytes, mask: bytes) -> bytes:
    """A final, masked client text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + mask + apply_mask(payload, mask)


class WebSocketConnectError(Exception):
    """The WebSocket could not be opened (reason in the message)."""


OnMessage = Callable[[str | bytes], None]


class WebSocketClient(asyncio.Protocol):
    """One client connection. Create with :func:`open_websocket`."""

    def __init__(self, protocol: ClientProtocol, on_message: OnMessage, max_size: int) -> None:
        self._ws = protocol
        self._on_message = on_message
        self._max_size = max_size
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._parts: list[bytes] = []
        self._part_opcode: Opcode | None = None
        self._parts_size = 0
        self._abort_scheduled = False
        self.is_open = False  # True from the handshake until a close/EOF/abort
        self._fast = False  # see _fast_receive
        self._rbuf = bytearray()
        # Masks only need to be unguessable by scripts in a browser (RFC 6455 10.3); a PRNG
        # seeded from the OS is plenty for an emulator and avoids a syscall per frame.
        self._rng = random.Random(os.urandom(16))

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._fast_receive(data)
            return
        if self._rbuf:  # left over from the fast path: a frame's beginning
            data = bytes(self._rbuf) + data
            self._rbuf.clear()
        self._receive(data)

    def _fast_receive(self, data: bytes) -> None:
        """Deliver complete final text frames directly; hand every other frame, whole, to the
        protocol (so its parser stays on a frame boundary). Server frames are unmasked."""
        buf = self._rbuf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b0 != 0x81 or b1 & 0x80 or length > self._max_size:
                # Control, fragmented, binary, masked or oversized: the protocol decides.
                rest = bytes(buf[pos:])
                buf.clear()
                self._receive(rest)
                return
            if end - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            self._deliver(Opcode.TEXT, payload)
            if not self._fast:
                rest = bytes(buf[pos:])
                buf.clear()
                if rest:
                    self._receive(rest)
                return
        del buf[:pos]

    def _receive(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if ws.handshake_exc is not None:
                    self._fail_open(f"{type(ws.handshake_exc).__name__}: {ws.handshake_exc}")
                elif not self.opened.done():
                    self.is_open = True
                    self.opened.set_result(None)
            elif isinstance(event, Frame):
                self._frame(event)
        if ws.state is not State.OPEN:
            self.is_open = False
        # Fast path only on a frame boundary: nothing buffered in the protocol's reader.
        self._fast = self.is_open and not ws.reader.buffer and self._part_opcode is None
        self._flush()

    def eof_received(self) -> bool | None:
        self.is_open = self._fast = False
        if self._rbuf:
            self._ws.receive_data(bytes(self._rbuf))
            self._rbuf.clear()
        self._ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = self._fast = False
        self._fail_open("connection closed during the handshake")
        if not self.closed.done():
            self.closed.set_result(None)

    # ------------------------------------------------------------------ API

    def send_text(self, text: str) -> None:
        """Write one text message to the socket (dropped silently once closing).

        The frame is built here rather than by ``ClientProtocol.send_text`` (same bytes, a
        third of the cost): a data frame in the OPEN state changes no protocol state, and this
        client never fragments.
        """
        if self.is_open:
            assert self._transport is not None
            self._transport.write(text_frame(text.encode(), self._mask()))

    async def close(self, code: int = 1000, timeout: float = 1.0) -> None:
        """Closing handshake; the TCP connection is aborted if it takes longer than ``timeout``."""
        self.is_open = self._fast = False
        if self._ws.state is State.OPEN:
            self._ws.send_close(code)
            self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection with no close frame."""
        self.is_open = self._fast = False
        if self._transport is not None:
            self._transport.abort()

    def _mask(self) -> bytes:
        return self._rng.getrandbits(32).to_bytes(4, "big")

    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    # ------------------------------------------------------------------ internals

    def _fail_open(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(WebSocketConnectError(reason))
            self.opened.exception()  # retrieved: nobody may be waiting any more

    def _frame(self, frame: Frame) -> None:
        opcode, data = frame.opcode, bytes(frame.data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode, data)
                return
            self._part_opcode, self._parts, self._parts_size = opcode, [data], len(data)
        elif opcode is Opcode.CONT and self._part_opcode is not None:
            self._parts.append(data)
            self._parts_size += len(data)
            if self._parts_size > self._max_size:
                self._ws.fail(1009, "message too big")
                self._part_opcode, self._parts = None, []
                return
            if frame.fin:
                opcode, whole = self._part_opcode, b"".join(self._parts)
                self._part_opcode, self._parts, self._parts_size = None, [], 0
                self._deliver(opcode, whole)

    def _deliver(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.BINARY:
            self._on_message(data)
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._on_message(data)  # counted as ignored by the session
            return
        self._on_message(text)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
        if not self._abort_scheduled and (
            self._ws.close_expected() or self._ws.state is State.CLOSED
        ):
            self._abort_scheduled = True
            asyncio.get_running_loop().call_later(1.0, transport.abort)


async def open_websocket(
    url: str,
    *,
    headers: Mapping[str, str],
    on_message: OnMessage,
    max_size: int = 1 << 20,
    timeout: float = 5.0,
) -> WebSocketClient:
    """Connect and complete the opening handshake, or raise :class:`WebSocketConnectError`."""
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        raise WebSocketConnectError(f"InvalidURI: {exc}") from None
    protocol = ClientProtocol(uri, max_size=max_size)
    request = protocol.connect()
    for name, value in headers.items():
        request.headers[name] = value
    protocol.send_request(request)
    loop = asyncio.get_running_loop()
    client = WebSocketClient(protocol, on_message, max_size)
    ssl_context = ssl.create_default_context() if uri.secure else None
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: client,
                uri.host,
                uri.port,
                ssl=ssl_context,
                server_hostname=uri.host if uri.secure else None,
            )
            await client.opened
    except TimeoutError:
        client.abort()
        raise WebSocketConnectError("TimeoutError: opening handshake timed out") from None
    except OSError as exc:
        client.abort()
        raise WebSocketConnectError(f"{type(exc).__name__}: {exc}") from None
    except WebSocketConnectError:
        client.abort()
        raise
    return client
