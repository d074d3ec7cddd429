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

Wire facts (``sequenceNumber``, ``chunk``, ``timestamp`` arrive as strings; μ-law 8 kHz mono;
``mark`` echoed once the audio before it has played; ``clear`` echoes every pending mark at
once) are in ``shared/reference/twilio-protocol.md`` §5–6.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import json.scanner
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from voicecall.errors import VoicecallError

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
_DTMF_DIGITS: Final = frozenset("0123456789*#")
_MULAW: Final = "audio/x-mulaw"


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


class MarkStatus(enum.Enum):
    PLAYED = "played"
    """All audio sent before the mark has played: the caller heard it."""
    CLEARED = "cleared"
    """Echoed because of a ``clear``: audio before it was (at least partly) cut."""
    UNKNOWN = "unknown"
    """Not a mark this session sent (or echoed twice)."""


# -- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class MediaFormat:
    encoding: str
    sample_rate: int
    channels: int

    @property
    def is_mulaw_8k_mono(self) -> bool:
        return self.encoding == _MULAW and self.sample_rate == 8000 and self.channels == 1


@dataclass(frozen=True, slots=True, repr=False)
class Start:
    """The stream started. ``custom_parameters`` (the ``<Parameter>`` values, which include the
    per-call token) are masked in ``repr``."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sequence: int = 0

    def __post_init__(self) -> None:
        for name in ("stream_sid", "call_sid", "account_sid"):
            if not getattr(self, name):
                raise ValueError(f"start: {name} must not be empty")
        if not self.tracks:
            raise ValueError("start: tracks must not be empty")
        object.__setattr__(
            self, "custom_parameters", MappingProxyType(dict(self.custom_parameters))
        )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}=***" for k in self.custom_parameters)
        return (
            f"Start(stream_sid={self.stream_sid!r}, call_sid={self.call_sid!r}, "
            f"account_sid={self.account_sid!r}, tracks={self.tracks!r}, "
            f"media_format={self.media_format!r}, custom_parameters={{{params}}}, "
            f"sequence={self.sequence})"
        )


StartInfo = Start
"""What ``validate_start`` receives."""


@dataclass(frozen=True, slots=True)
class Media:
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes = field(repr=False)
    """Raw μ-law bytes (base64-decoded)."""
    sequence: int

    def __post_init__(self) -> None:
        if self.chunk < 0 or self.timestamp_ms < 0 or self.sequence < 0:
            raise ValueError("media: chunk, timestamp and sequence must be >= 0")


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    track: str = "inbound_track"
    sequence: int = 0

    def __post_init__(self) -> None:
        if self.digit not in _DTMF_DIGITS:
            raise ValueError(f"dtmf: invalid digit {self.digit!r}")


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio echoed a mark; ``status`` says whether the audio before it was heard."""

    name: str
    status: MarkStatus = MarkStatus.PLAYED
    sequence: int = 0

    @property
    def heard(self) -> bool:
        return self.status is MarkStatus.PLAYED


@dataclass(frozen=True, slots=True)
class Stop:
    account_sid: str = ""
    call_sid: str = ""
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that was skipped; ``reason`` is safe to log (no payload, no secrets)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closing:
    """The session decided to close the stream (e.g. ``start`` rejected); close with ``code``."""

    code: int
    reason: str


MediaEvent = Connected | Start | Media | Dtmf | Mark | Stop | Malformed | Closing


class _Bad(Exception):
    """Internal: the frame is malformed; the message is the reason."""


# -- field readers (untrusted JSON) --------------------------------------------------------------


def _obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = d.get(key)
    if not isinstance(value, dict):
        raise _Bad(f"'{key}' missing or not an object")
    return value


def _str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise _Bad(f"'{key}' missing or not a non-empty string")
    return value


def _opt_str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key, "")
    if not isinstance(value, str):
        raise _Bad(f"'{key}' is not a string")
    return value


def _num(d: Mapping[str, Any], key: str) -> int:
    """A non-negative integer sent as a decimal string (Twilio) or, leniently, a JSON int."""
    value = d.get(key)
    if isinstance(value, bool):
        raise _Bad(f"'{key}' is not a number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise _Bad(f"'{key}' missing or not a decimal number")
    if number < 0:
        raise _Bad(f"'{key}' is negative")
    return number


# the C scanner json.loads runs (typeshed's stub of make_scanner's argument is wrong)
_scan_json: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]
)


def _parse_json(text: str) -> Any:
    """``json.loads(text)`` (same result, same errors), skipping its two whitespace regex
    matches when the text is one JSON value with nothing around it, as every Twilio frame is."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return json.loads(text)  # leading whitespace, or invalid: json.loads decides
    if end != len(text):
        return json.loads(text)  # trailing whitespace or extra data
    return value


def _json_str(value: str) -> str:
    """``value`` as a JSON string literal, exactly as :meth:`MediaSession._dump` writes it."""
    return json.dumps(value, ensure_ascii=False)


def _mark_name_ok(name: str) -> bool:
    return bool(name) and len(name) <= 256


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
        # outbound frame templates (set on start): JSON built once, payloads inserted
        self._media_head = ""
        self._mark_head = ""
        self._clear_frame = ""
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
        try:
            message = _parse_json(text)
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
        except _Bad as exc:
            return self._malformed(f"{event}: {exc}")

    def _fast_media(self, message: dict[str, Any]) -> Media | None:
        """A well-formed ``media`` message while streaming, checked inline; ``None`` for
        anything else, which then takes the generic path (same checks, same reasons).

        Accepts exactly what :meth:`_on_media` accepts with Twilio's types (numbers as decimal
        strings, no JSON ints): same fields, same validation, same counters.
        """
        if message.get("event") != "media":
            return None
        start = self.start
        body = message.get("media")
        seq_s = message.get("sequenceNumber")
        if (
            start is None
            or type(body) is not dict
            or message.get("streamSid") != start.stream_sid
            or type(seq_s) is not str
        ):
            return None
        raw = body.get("payload")
        track = body.get("track")
        chunk_s = body.get("chunk")
        ts_s = body.get("timestamp")
        if (
            type(raw) is not str
            or type(track) is not str
            or not track
            or type(chunk_s) is not str
            or type(ts_s) is not str
            or not (0 < len(seq_s) <= 19 and seq_s.isascii() and seq_s.isdigit())
            or not (0 < len(chunk_s) <= 19 and chunk_s.isascii() and chunk_s.isdigit())
            or not (0 < len(ts_s) <= 19 and ts_s.isascii() and ts_s.isdigit())
        ):
            return None
        try:
            payload = binascii.a2b_base64(raw, strict_mode=True)
        except (binascii.Error, ValueError):
            return None
        seq = int(seq_s)
        event = Media(track, int(chunk_s), int(ts_s), payload, seq)
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
        if self.state is not SessionState.STREAMING:
            self._require_streaming("send_media")
        if not ulaw:
            raise LocalProtocolError("send_media: empty payload")
        # == _dump({"event": "media", "streamSid": sid, "media": {"payload": b64}}): base64
        # needs no JSON escaping, so the frame is the template with the payload inserted
        self._out.append(
            self._media_head + binascii.b2a_base64(ulaw, newline=False).decode("ascii") + '"}}'
        )
        self.media_sent += 1
        self.bytes_sent += len(ulaw)

    def send_mark(self, name: str) -> None:
        """Queue a mark; Twilio echoes it once all audio sent before it has played."""
        if self.state is not SessionState.STREAMING:
            self._require_streaming("send_mark")
        if not _mark_name_ok(name):
            raise LocalProtocolError("send_mark: name must be 1..256 characters")
        self._out.append(self._mark_head + _json_str(name) + "}}")
        self._pending.append(name)

    def send_clear(self) -> list[str]:
        """Queue a ``clear`` (drop Twilio's buffered audio). Returns the marks that were pending:
        their echoes will come back with :attr:`MarkStatus.CLEARED`."""
        self._require_streaming("send_clear")
        self._out.append(self._clear_frame)
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

    @staticmethod
    def _dump(message: dict[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)

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
        return _num(message, "sequenceNumber")

    def _track_sequence(self, seq: int) -> None:
        if self._last_sequence is not None and seq != self._last_sequence + 1:
            self.sequence_gaps += 1
        self._last_sequence = seq

    def _check_stream(self, message: Mapping[str, Any], event: str) -> int:
        """Common checks of post-start messages; returns the sequence number."""
        if self.state is SessionState.AWAITING_START or self.start is None:
            raise _Bad("before start")
        if self.state is SessionState.STOPPED:
            raise _Bad("after stop")
        sid = _str(message, "streamSid")
        if sid != self.start.stream_sid:
            raise _Bad("wrong streamSid")
        return self._sequence(message)

    # handlers: each returns the events for one well-formed message or raises _Bad

    def _on_connected(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        if self.state is not SessionState.AWAITING_START:
            raise _Bad("after start")
        event = Connected(_opt_str(message, "protocol"), _opt_str(message, "version"))
        return [event, *self._count_pre_start()]

    def _on_start(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        if self.state is not SessionState.AWAITING_START:
            raise _Bad("duplicate start")
        seq = self._sequence(message)
        body = _obj(message, "start")
        stream_sid = _str(message, "streamSid")
        if _opt_str(body, "streamSid") not in ("", stream_sid):
            raise _Bad("streamSid differs from start.streamSid")
        tracks_raw = body.get("tracks", ["inbound"])
        if (
            not isinstance(tracks_raw, list)
            or not tracks_raw
            or not all(isinstance(t, str) and t for t in tracks_raw)
        ):
            raise _Bad("'tracks' is not a non-empty list of strings")
        fmt = _obj(body, "mediaFormat")
        media_format = MediaFormat(
            encoding=_str(fmt, "encoding"),
            sample_rate=_num(fmt, "sampleRate"),
            channels=_num(fmt, "channels"),
        )
        params_raw = body.get("customParameters", {})
        if not isinstance(params_raw, dict) or not all(
            isinstance(v, str) for v in params_raw.values()
        ):
            raise _Bad("'customParameters' is not an object of strings")
        start = Start(
            stream_sid=stream_sid,
            call_sid=_str(body, "callSid"),
            account_sid=_str(body, "accountSid"),
            tracks=tuple(tracks_raw),
            media_format=media_format,
            custom_parameters=params_raw,
            sequence=seq,
        )
        # authentication before any processing
        if self.expected_call_sid is not None and start.call_sid != self.expected_call_sid:
            return self._reject(CloseCode.POLICY_VIOLATION, "callSid does not match this stream")
        if self._validate_start is not None:
            problem = self._validate_start(start)
            if problem is not None:
                return self._reject(CloseCode.POLICY_VIOLATION, problem)
        if not media_format.is_mulaw_8k_mono:
            return self._reject(CloseCode.UNSUPPORTED_DATA, "unsupported media format")
        self.start = start
        self.state = SessionState.STREAMING
        self._last_sequence = seq
        sid = _json_str(stream_sid)
        self._media_head = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark_head = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self._clear_frame = self._dump({"event": "clear", "streamSid": stream_sid})
        return [start]

    def _on_media(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "media")
        body = _obj(message, "media")
        raw = body.get("payload")
        if not isinstance(raw, str):
            raise _Bad("'payload' missing or not a string")
        try:
            payload = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("payload is not valid base64") from None
        event = Media(
            track=_str(body, "track"),
            chunk=_num(body, "chunk"),
            timestamp_ms=_num(body, "timestamp"),
            payload=payload,
            sequence=seq,
        )
        self._track_sequence(seq)
        self.media_received += 1
        return [event]

    def _on_dtmf(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "dtmf")
        body = _obj(message, "dtmf")
        digit = _str(body, "digit")
        if digit not in _DTMF_DIGITS:
            raise _Bad("invalid digit")
        self._track_sequence(seq)
        return [Dtmf(digit, _opt_str(body, "track") or "inbound_track", seq)]

    def _on_mark(self, message: Mapping[str, Any]) -> list[MediaEvent]:
        seq = self._check_stream(message, "mark")
        name = _str(_obj(message, "mark"), "name")
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
            raise _Bad("'stop' is not an object")
        self._track_sequence(seq)
        self.state = SessionState.STOPPED
        return [Stop(_opt_str(body, "accountSid"), _opt_str(body, "callSid"), seq)]

    _HANDLERS: Final[dict[str, Callable[[MediaSession, Mapping[str, Any]], list[MediaEvent]]]] = {
        "connected": _on_connected,
        "start": _on_start,
        "media": _on_media,
        "dtmf": _on_dtmf,
        "mark": _on_mark,
        "stop": _on_stop,
    }
