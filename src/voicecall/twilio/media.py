"""Sans-I/O Twilio Media Streams session (bidirectional ``<Connect><Stream>``).

Shaped like ``websockets.protocol.Protocol``: no socket, no clock, no task. The I/O layer feeds
each WebSocket text frame to :meth:`MediaSession.receive_text` (binary ones to
:meth:`MediaSession.receive_bytes`) and acts on the returned events; it queues outbound
messages with :meth:`MediaSession.send_media` / :meth:`MediaSession.send_mark` /
:meth:`MediaSession.send_clear` and writes whatever :meth:`MediaSession.data_to_send` returns.
When :meth:`MediaSession.close_expected` becomes true it closes the socket with
:attr:`MediaSession.close_code` / :attr:`MediaSession.close_reason`::

    session = MediaSession(expected_call_sid=sid, validate_start=check_token, opened_at=now)
    async for text in ws:
        for event in session.receive_text(text):
            ...                                   # Start, Media, Dtmf, Mark, Stop, Malformed
        for frame in session.data_to_send():
            await ws.send(frame)
        if session.close_expected():
            await ws.close(session.close_code, session.close_reason)

Untrusted input never raises: anything that is not a well-formed Twilio message becomes a
:class:`Malformed` event (counted in :attr:`MediaSession.malformed_count`) and is skipped. A bad
frame is never the end of the call; Twilio itself ignores bad frames with a warning.

Authentication: on ``start``, the ``callSid`` must equal ``expected_call_sid`` (when given) and
``validate_start`` (the per-call token check) must return ``None``; otherwise the session fails
with close code 1008 *before* any processing: no :class:`Start` event is produced and every
later input is discarded. Limits (see the constructor): frame size, frames tolerated before
``start``, and a ``start`` deadline the I/O layer polls with
:meth:`MediaSession.start_deadline_passed`.

The messages themselves (typed events, field readers, the fast ``media`` reader, the frame
writer) are in :mod:`voicecall.twilio.media_frames`, re-exported here.

Wire facts (``sequenceNumber``, ``chunk``, ``timestamp`` arrive as strings; μ-law 8 kHz mono;
``mark`` echoed once the audio before it has played; ``clear`` echoes every pending mark at
once) are in ``shared/reference/twilio-protocol.md`` §5–6.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Final

from voicecall.errors import VoicecallError

# the wire's messages live in media_frames.py; re-exported so imports from here keep working
from voicecall.twilio.media_frames import (
    DTMF_DIGITS,
    Closing,
    Connected,
    Dtmf,
    FastMediaReader,
    FrameError,
    FrameWriter,
    Malformed,
    Mark,
    MarkStatus,
    Media,
    MediaEvent,
    MediaFormat,
    Start,
    StartInfo,
    Stop,
    dump,
    field_num,
    field_obj,
    field_opt_str,
    field_str,
    mark_name_ok,
    parse_json,
    read_fast_media,
    read_media_body,
    read_start,
)

__all__ = [
    "CloseCode",
    "Closing",
    "Connected",
    "Dtmf",
    "LocalProtocolError",
    "Malformed",
    "Mark",
    "MarkStatus",
    "Media",
    "MediaEvent",
    "MediaFormat",
    "MediaSession",
    "SessionState",
    "Start",
    "StartInfo",
    "Stop",
]

DEFAULT_MAX_FRAME_BYTES: Final = 64 * 1024
DEFAULT_START_TIMEOUT: Final = 5.0
DEFAULT_MAX_FRAMES_BEFORE_START: Final = 8
_MAX_CLOSE_REASON_BYTES: Final = 123  # RFC 6455: control frame payload 125 - 2 bytes of code
_parse_json = parse_json  # the names before the split (tests import them)
_Bad = FrameError


class LocalProtocolError(VoicecallError):
    """The application misused the session (e.g. sent media before ``start`` or after close)."""


class CloseCode(enum.IntEnum):
    NORMAL_CLOSURE = 1000
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class SessionState(enum.Enum):
    AWAITING_START = "awaiting_start"
    """Socket open, ``start`` not yet received (``connected`` may have been)."""
    STREAMING = "streaming"
    """``start`` accepted: media flows both ways."""
    STOPPED = "stopped"
    """Twilio sent ``stop``; nothing more may be sent."""
    CLOSING = "closing"
    """We decided to close (:meth:`MediaSession.fail` / :meth:`MediaSession.close`); input is
    discarded and the I/O layer should close the socket with ``close_code``."""
    CLOSED = "closed"
    """The transport is gone."""


# -- the session ---------------------------------------------------------------------------------


class MediaSession:
    """One Media Streams WebSocket, server side. See the module docs."""

    def __init__(
        self,
        expected_call_sid: str | None = None,
        validate_start: Callable[[StartInfo], str | None] | None = None,
        *,
        opened_at: float | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_frames_before_start: int = DEFAULT_MAX_FRAMES_BEFORE_START,
    ) -> None:
        if start_timeout <= 0 or max_frame_bytes <= 0 or max_frames_before_start <= 0:
            raise ValueError("start_timeout, max_frame_bytes, max_frames_before_start must be > 0")
        self.expected_call_sid: Final = expected_call_sid
        self._validate_start = validate_start
        self.opened_at: Final = opened_at
        self.start_timeout: Final = start_timeout
        self.max_frame_bytes: Final = max_frame_bytes
        self.max_frames_before_start: Final = max_frames_before_start

        self.state = SessionState.AWAITING_START
        self.start: Start | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.failed = False
        self._out: list[str] = []
        self._pending: list[str] = []  # mark names sent, not yet echoed, in send order
        self._cleared: list[str] = []  # marks pending at a clear, their echo still due
        self._frames_before_start = 0
        self._last_sequence: int | None = None
        self._writer: FrameWriter | None = None  # outbound frames (set on start)
        self._reader: FastMediaReader | None = None  # the common inbound frame (set on start)
        # counters
        self.frames_received = 0
        self.media_received = 0
        self.malformed_count = 0
        self.sequence_gaps = 0
        self.media_sent = 0
        self.bytes_sent = 0

    # -- properties ----------------------------------------------------------------------------

    @property
    def stream_sid(self) -> str | None:
        return None if self.start is None else self.start.stream_sid

    @property
    def marks_pending(self) -> tuple[str, ...]:
        """Marks sent and not yet echoed as played, oldest first."""
        return tuple(self._pending)

    def close_expected(self) -> bool:
        """The session wants the socket closed (with ``close_code``)."""
        return self.state is SessionState.CLOSING

    @property
    def start_deadline(self) -> float | None:
        """When ``start`` must have arrived (``opened_at + start_timeout``), if known."""
        return None if self.opened_at is None else self.opened_at + self.start_timeout

    def start_deadline_passed(self, now: float) -> bool:
        """True when still waiting for ``start`` at or after the deadline; the I/O layer then
        calls ``fail(CloseCode.POLICY_VIOLATION, ...)``."""
        deadline = self.start_deadline
        if deadline is None:
            raise LocalProtocolError("start_deadline_passed() needs opened_at in the constructor")
        return self.state is SessionState.AWAITING_START and now >= deadline

    # -- input ---------------------------------------------------------------------------------

    def receive_text(self, text: str) -> list[MediaEvent]:
        """Parse one text frame; never raises on any input."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return []
        self.frames_received += 1
        if len(text) > self.max_frame_bytes or (
            len(text) * 4 > self.max_frame_bytes
            and len(text.encode("utf-8", "surrogatepass")) > self.max_frame_bytes
        ):
            return self._malformed(f"frame larger than {self.max_frame_bytes} bytes")
        reader = self._reader
        if reader is not None and self.state is SessionState.STREAMING:
            media = reader.read(text)  # the common frame, ~50 a second per call: no JSON parse
            if media is not None:
                return [self._count_media(media)]
            mark = reader.read_mark(text)  # the echoes of our marks, several a second
            if mark is not None:
                return self._mark_event(*mark)
        try:
            message = parse_json(text)
        except (ValueError, RecursionError):
            return self._malformed("not valid JSON")
        if type(message) is dict and self.state is SessionState.STREAMING:
            media = self._fast_media(message)  # the common frame, ~50 a second per call
            if media is not None:
                return [media]
        if not isinstance(message, dict):
            return self._malformed("not a JSON object")
        event = message.get("event")
        if not isinstance(event, str):
            return self._malformed("'event' missing or not a string")
        handler = self._HANDLERS.get(event)
        if handler is None:
            return self._malformed(f"unknown event {event[:32]!r}")
        try:
            return handler(self, message)
        except FrameError as exc:
            return self._malformed(f"{event}: {exc}")

    def _fast_media(self, message: dict[str, Any]) -> Media | None:
        """A well-formed ``media`` message while streaming (:func:`read_fast_media`), counted;
        ``None`` for anything else, which then takes the generic path."""
        start = self.start
        if start is None:
            return None
        event = read_fast_media(message, start.stream_sid)
        if event is None:
            return None
        return self._count_media(event)

    def _count_media(self, event: Media) -> Media:
        seq = event.sequence
        last = self._last_sequence
        if last is not None and seq != last + 1:
            self.sequence_gaps += 1
        self._last_sequence = seq
        self.media_received += 1
        return event

    def receive_bytes(self, data: bytes) -> list[MediaEvent]:
        """Binary frames are not part of the protocol: reported and skipped."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return []
        self.frames_received += 1
        return self._malformed(f"binary frame ({len(data)} bytes)")

    def connection_lost(self) -> None:
        """The transport is gone; everything after this is discarded."""
        self.state = SessionState.CLOSED
        self._out.clear()

    # -- output --------------------------------------------------------------------------------

    def send_media(self, ulaw: bytes) -> None:
        """Queue raw μ-law 8 kHz audio (any length > 0) for Twilio to play."""
        writer = self._writer
        if self.state is not SessionState.STREAMING or writer is None:
            self._require_streaming("send_media")
            raise AssertionError("unreachable")  # pragma: no cover
        if not ulaw:
            raise LocalProtocolError("send_media: empty payload")
        self._out.append(writer.media(ulaw))
        self.media_sent += 1
        self.bytes_sent += len(ulaw)

    def send_mark(self, name: str) -> None:
        """Queue a mark; Twilio echoes it once all audio sent before it has played."""
        writer = self._writer
        if self.state is not SessionState.STREAMING or writer is None:
            self._require_streaming("send_mark")
            raise AssertionError("unreachable")  # pragma: no cover
        if not mark_name_ok(name):
            raise LocalProtocolError("send_mark: name must be 1..256 characters")
        self._out.append(writer.mark(name))
        self._pending.append(name)

    def send_clear(self) -> list[str]:
        """Queue a ``clear`` (drop Twilio's buffered audio). Returns the marks that were pending:
        their echoes will come back with :attr:`MarkStatus.CLEARED`."""
        self._require_streaming("send_clear")
        assert self._writer is not None
        self._out.append(self._writer.clear)
        cut = list(self._pending)
        self._cleared.extend(cut)
        self._pending.clear()
        return cut

    def data_to_send(self) -> list[str]:
        """Text frames to write, in order; the queue is emptied."""
        out, self._out = self._out, []
        return out

    def fail(self, code: int, reason: str) -> None:
        """Close because something is wrong (1008 for a rejected stream); discards input after."""
        self._begin_close(code, reason)
        self.failed = True

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close normally (e.g. the bot hung up: Twilio then runs the TwiML after ``<Connect>``).
        Frames already queued stay in ``data_to_send()``."""
        self._begin_close(code, reason)

    # -- internals -----------------------------------------------------------------------------

    def _begin_close(self, code: int, reason: str) -> None:
        if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
            raise LocalProtocolError(f"invalid WebSocket close code {code}")
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        encoded = reason.encode("utf-8")[:_MAX_CLOSE_REASON_BYTES]
        self.close_reason = encoded.decode("utf-8", "ignore")
        self.close_code = int(code)
        self.state = SessionState.CLOSING

    _dump = staticmethod(dump)

    def _require_streaming(self, what: str) -> str:
        if self.state is SessionState.AWAITING_START:
            raise LocalProtocolError(f"{what} before the stream's start message")
        if self.state is not SessionState.STREAMING or self.start is None:
            raise LocalProtocolError(f"{what} on a session that is {self.state.value}")
        return self.start.stream_sid

    def _malformed(self, reason: str) -> list[MediaEvent]:
        self.malformed_count += 1
        events: list[MediaEvent] = [Malformed(reason)]
        events.extend(self._count_pre_start())
        return events

    def _count_pre_start(self) -> list[MediaEvent]:
        if self.state is not SessionState.AWAITING_START:
            return []
        self._frames_before_start += 1
        if self._frames_before_start >= self.max_frames_before_start:
            return self._reject(
                CloseCode.POLICY_VIOLATION,
                f"no valid start within {self.max_frames_before_start} frames",
            )
        return []

    def _reject(self, code: int, reason: str) -> list[MediaEvent]:
        self.fail(code, reason)
        return [Closing(code, self.close_reason)]

    def _sequence(self, message: Mapping[str, Any]) -> int:
        return field_num(message, "sequenceNumber")

    def _track_sequence(self, seq: int) -> None:
        if self._last_sequence is not None and seq != self._last_sequence + 1:
            self.sequence_gaps += 1
        self._last_sequence = seq

    def _check_stream(self, message: Mapping[str, Any], event: str) -> int:
        """Common checks of post-start messages; returns the sequence number."""
        if self.state is SessionState.AWAITING_START or self.start is None:
            raise FrameError("before start")
        if self.state is SessionState.STOPPED:
            raise FrameError("after stop")
        sid = field_str(message, "streamSid")
        if sid != self.start.stream_sid:
            raise FrameError("wrong streamSid")
        return self._sequence(message)

    # handlers: each returns the events for one well-formed message or raises FrameError

    def _on_connected(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        if self.state is not SessionState.AWAITING_START:
            raise FrameError("after start")
        event = Connected(field_opt_str(message, "protocol"), field_opt_str(message, "version"))
        return [event, *self._count_pre_start()]

    def _on_start(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        if self.state is not SessionState.AWAITING_START:
            raise FrameError("duplicate start")
        start = read_start(message, self._sequence(message))
        # authentication before any processing
        if self.expected_call_sid is not None and start.call_sid != self.expected_call_sid:
            return self._reject(CloseCode.POLICY_VIOLATION, "callSid does not match this stream")
        if self._validate_start is not None:
            problem = self._validate_start(start)
            if problem is not None:
                return self._reject(CloseCode.POLICY_VIOLATION, problem)
        if not start.media_format.is_mulaw_8k_mono:
            return self._reject(CloseCode.UNSUPPORTED_DATA, "unsupported media format")
        self.start = start
        self.state = SessionState.STREAMING
        self._last_sequence = start.sequence
        self._writer = FrameWriter(start.stream_sid)
        self._reader = FastMediaReader(start.stream_sid)
        return [start]

    def _on_media(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "media")
        event = read_media_body(message, seq)
        self._track_sequence(seq)
        self.media_received += 1
        return [event]

    def _on_dtmf(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "dtmf")
        body = field_obj(message, "dtmf")
        digit = field_str(body, "digit")
        if digit not in DTMF_DIGITS:
            raise FrameError("invalid digit")
        self._track_sequence(seq)
        return [Dtmf(digit, field_opt_str(body, "track") or "inbound_track", seq)]

    def _on_mark(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "mark")
        return self._mark_event(seq, field_str(field_obj(message, "mark"), "name"))

    def _mark_event(self, seq: int, name: str) -> list[MediaEvent]:
        if name in self._cleared:
            self._cleared.remove(name)
            status = MarkStatus.CLEARED
        elif name in self._pending:
            status = MarkStatus.PLAYED
            self._pending.remove(name)
        else:
            status = MarkStatus.UNKNOWN
        self._track_sequence(seq)
        return [Mark(name, status, seq)]

    def _on_stop(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "stop")
        body = message.get("stop", {})
        if not isinstance(body, dict):
            raise FrameError("'stop' is not an object")
        self._track_sequence(seq)
        self.state = SessionState.STOPPED
        return [Stop(field_opt_str(body, "accountSid"), field_opt_str(body, "callSid"), seq)]

    _HANDLERS: Final[dict[str, Callable[[MediaSession, Mapping[str, Any]], list[MediaEvent]]]] = {
        "connected": _on_connected,
        "start": _on_start,
        "media": _on_media,
        "dtmf": _on_dtmf,
        "mark": _on_mark,
        "stop": _on_stop,
    }
