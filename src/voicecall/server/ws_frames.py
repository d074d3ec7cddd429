"""RFC 6455 frame splitting for the media-stream fast path (pure, no I/O).

A Media Stream is ~50 small text frames a second per call, and at hundreds of calls the generic
WebSocket stack (generator parser, ASGI queue, a task wake-up and a read pause/resume per
message) costs more than the audio work itself. :class:`FrameSplitter` takes the bytes a
connection receives *after the opening handshake* and cuts them at frame boundaries:

- a complete, final, masked, uncompressed **text** frame of at most ``max_size`` bytes comes out
  as its decoded ``str`` (the fast path);
- any other complete frame (binary, ping, pong, close, reserved opcodes, invalid UTF-8) comes out
  as its raw ``bytes``, untouched, for the full WebSocket implementation to handle;
- the first frame the fast path does not own at all (a fragment, RSV bits set, unmasked, larger
  than ``max_size``) switches the splitter to pass-through for good: from that frame's first
  byte on, everything is returned raw.

Because raw output always starts and ends on frame boundaries, the full implementation fed only
the raw parts parses a valid stream and keeps its own state (close handshake, fragmentation,
errors) exactly as if it had seen every frame. Server-to-client frames are built by
:func:`text_frame` (unmasked, as RFC 6455 §5.1 requires of a server).
"""

from __future__ import annotations

import struct
from typing import Final

try:  # websockets' C helper; the pure-Python one is the same function, slower
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["FrameSplitter", "text_frame"]

_TEXT: Final = 0x1
_FIN: Final = 0x80
_RSV: Final = 0x70
_MASKED: Final = 0x80


class FrameSplitter:
    """Client bytes in; decoded text messages (``str``) and raw frames (``bytes``) out, in order."""

    def __init__(self, max_size: int) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be > 0")
        self.max_size: Final = max_size
        self.passthrough = False
        """True once a frame the fast path does not own was seen: all later bytes are raw."""
        self._buf = b""

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back until the rest arrives."""
        return len(self._buf)

    def take_buffered(self) -> bytes:
        """Give up the incomplete frame held back (it starts on a frame boundary)."""
        buf, self._buf = self._buf, b""
        return buf

    def feed(self, data: bytes) -> list[str | bytes]:
        if self.passthrough:
            return [data] if data else []
        buf = self._buf + data if self._buf else data
        out: list[str | bytes] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            if b0 & _RSV or not b0 & _FIN or not b1 & _MASKED or length > self.max_size:
                self.passthrough = True  # not ours: hand this frame and everything after over
                self._buf = b""
                out.append(buf[pos:])
                return out
            body = pos + head + 4
            end = body + length
            if end > n:
                break
            if b0 & 0x0F == _TEXT:
                try:
                    out.append(apply_mask(buf[body:end], buf[body - 4 : body]).decode())
                except UnicodeDecodeError:
                    out.append(buf[pos:end])  # the full implementation closes with 1007
            else:
                out.append(buf[pos:end])
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked server text frame carrying ``payload`` (UTF-8)."""
    n = len(payload)
    if n < 126:
        return bytes((_FIN | _TEXT, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _FIN | _TEXT, 126, n) + payload
    return struct.pack("!BBQ", _FIN | _TEXT, 127, n) + payload
