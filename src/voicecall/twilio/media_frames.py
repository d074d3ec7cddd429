"""Twilio Media Streams messages, read and written (pure; the session is in media.py).

What one WebSocket text frame is on the wire: the typed events a message becomes
(:class:`Start`, :class:`Media`, …), the strict readers of untrusted JSON fields (a bad field
raises :class:`FrameError` with a reason safe to log), the fast readers of the common
``media`` message (~50 a second per call: :class:`FastMediaReader` straight from the text, else
:func:`read_fast_media` on the parsed JSON), and :class:`FrameWriter`, which writes our
``media``, ``mark`` and ``clear`` messages from templates built once per stream. State
(sequence numbers, pending marks, authentication, limits) is
:class:`~voicecall.twilio.media.MediaSession`'s.

Wire facts (``sequenceNumber``, ``chunk``, ``timestamp`` arrive as strings; μ-law 8 kHz mono)
are in ``shared/reference/twilio-protocol.md`` §5–6.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import json.scanner
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "DTMF_DIGITS",
    "Closing",
    "Connected",
    "Dtmf",
    "FastMediaReader",
    "FrameError",
    "FrameWriter",
    "Malformed",
    "Mark",
    "MarkStatus",
    "Media",
    "MediaEvent",
    "MediaFormat",
    "Start",
    "StartInfo",
    "Stop",
    "dump",
    "field_num",
    "field_obj",
    "field_opt_str",
    "field_str",
    "json_str",
    "mark_name_ok",
    "parse_json",
    "read_fast_media",
    "read_media_body",
    "read_start",
]

DTMF_DIGITS: Final = frozenset("0123456789*#")
_MULAW: Final = "audio/x-mulaw"


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
        if self.digit not in DTMF_DIGITS:
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


class FrameError(Exception):
    """A frame is malformed; the message is the reason (safe to log: no payload, no secret)."""


# -- field readers (untrusted JSON) --------------------------------------------------------------


def field_obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = d.get(key)
    if not isinstance(value, dict):
        raise FrameError(f"'{key}' missing or not an object")
    return value


def field_str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise FrameError(f"'{key}' missing or not a non-empty string")
    return value


def field_opt_str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key, "")
    if not isinstance(value, str):
        raise FrameError(f"'{key}' is not a string")
    return value


def field_num(d: Mapping[str, Any], key: str) -> int:
    """A non-negative integer sent as a decimal string (Twilio) or, leniently, a JSON int."""
    value = d.get(key)
    if isinstance(value, bool):
        raise FrameError(f"'{key}' is not a number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise FrameError(f"'{key}' missing or not a decimal number")
    if number < 0:
        raise FrameError(f"'{key}' is negative")
    return number


# the C scanner json.loads runs (typeshed's stub of make_scanner's argument is wrong)
_scan_json: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]
)


def parse_json(text: str) -> Any:
    """``json.loads(text)`` (same result, same errors), skipping its two whitespace regex
    matches when the text is one JSON value with nothing around it, as every Twilio frame is."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return json.loads(text)  # leading whitespace, or invalid: json.loads decides
    if end != len(text):
        return json.loads(text)  # trailing whitespace or extra data
    return value


def json_str(value: str) -> str:
    """``value`` as a JSON string literal, exactly as :func:`dump` writes it."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'  # nothing to escape (a mark name such as "vc-tick-12")
    return json.dumps(value, ensure_ascii=False)


def mark_name_ok(name: str) -> bool:
    return bool(name) and len(name) <= 256


def dump(message: dict[str, Any]) -> str:
    """A message as compact JSON (non-ASCII kept), as every frame we write is."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def read_start(message: Mapping[str, Any], sequence: int) -> Start:
    """The fields of a ``start`` message (checked; authentication is the session's)."""
    body = field_obj(message, "start")
    stream_sid = field_str(message, "streamSid")
    if field_opt_str(body, "streamSid") not in ("", stream_sid):
        raise FrameError("streamSid differs from start.streamSid")
    tracks_raw = body.get("tracks", ["inbound"])
    if (
        not isinstance(tracks_raw, list)
        or not tracks_raw
        or not all(isinstance(t, str) and t for t in tracks_raw)
    ):
        raise FrameError("'tracks' is not a non-empty list of strings")
    fmt = field_obj(body, "mediaFormat")
    media_format = MediaFormat(
        encoding=field_str(fmt, "encoding"),
        sample_rate=field_num(fmt, "sampleRate"),
        channels=field_num(fmt, "channels"),
    )
    params_raw = body.get("customParameters", {})
    if not isinstance(params_raw, dict) or not all(isinstance(v, str) for v in params_raw.values()):
        raise FrameError("'customParameters' is not an object of strings")
    return Start(
        stream_sid=stream_sid,
        call_sid=field_str(body, "callSid"),
        account_sid=field_str(body, "accountSid"),
        tracks=tuple(tracks_raw),
        media_format=media_format,
        custom_parameters=params_raw,
        sequence=sequence,
    )


def read_media_body(message: Mapping[str, Any], sequence: int) -> Media:
    """The ``media`` object of a media message (the generic, strict path)."""
    body = field_obj(message, "media")
    raw = body.get("payload")
    if not isinstance(raw, str):
        raise FrameError("'payload' missing or not a string")
    try:
        payload = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise FrameError("payload is not valid base64") from None
    return Media(
        track=field_str(body, "track"),
        chunk=field_num(body, "chunk"),
        timestamp_ms=field_num(body, "timestamp"),
        payload=payload,
        sequence=sequence,
    )


def read_fast_media(message: dict[str, Any], stream_sid: str) -> Media | None:
    """A well-formed ``media`` message of stream ``stream_sid``, checked inline; ``None`` for
    anything else, which then takes the generic path (same checks, same reasons).

    Accepts exactly what the generic path accepts with Twilio's types (numbers as decimal
    strings, no JSON ints): same fields, same validation.
    """
    if message.get("event") != "media":
        return None
    body = message.get("media")
    seq_s = message.get("sequenceNumber")
    if type(body) is not dict or message.get("streamSid") != stream_sid or type(seq_s) is not str:
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
    return _media(track, chunk_s, ts_s, raw, seq_s)


def _media(track: str, chunk: str, timestamp: str, raw: str, seq: str) -> Media | None:
    """The checked fields of a media message; ``None`` when the payload is not base64."""
    try:
        payload = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return Media(track, int(chunk), int(timestamp), payload, int(seq))


# the inbound media and mark messages as Twilio writes them, without whitespace or escapes; a
# text that matches parses (json) to exactly these fields, in one of the two orders of streamSid
_SEQ: Final = r'"sequenceNumber":"([0-9]{1,19})",'
_SID: Final = r'"streamSid":"([^"\\\x00-\x1f]*)"'  # any JSON string without escapes
_MEDIA_BODY: Final = (
    r'"media":\{"track":"([a-z_]{1,32})","chunk":"([0-9]{1,19})",'
    r'"timestamp":"([0-9]{1,19})","payload":"([A-Za-z0-9+/=]*)"\}'
)
_MARK_BODY: Final = r'"mark":\{"name":"([^"\\\x00-\x1f]+)"\}'
_MEDIA_HEAD: Final = r'\{"event":"media",' + _SEQ
_MARK_HEAD: Final = r'\{"event":"mark",' + _SEQ
# groups: sequence, then streamSid and the body's fields in the order they appear
_MEDIA_SID_FIRST: Final = re.compile(_MEDIA_HEAD + _SID + "," + _MEDIA_BODY + r"\}").fullmatch
_MEDIA_SID_LAST: Final = re.compile(_MEDIA_HEAD + _MEDIA_BODY + "," + _SID + r"\}").fullmatch
_MARK_SID_FIRST: Final = re.compile(_MARK_HEAD + _SID + "," + _MARK_BODY + r"\}").fullmatch
_MARK_SID_LAST: Final = re.compile(_MARK_HEAD + _MARK_BODY + "," + _SID + r"\}").fullmatch


class FastMediaReader:
    """The common messages of one stream (``media``, ~50 a second, and ``mark`` echoes), read
    from the text without the JSON parser.

    A regular expression per message and field order (``streamSid`` before or after the body;
    compiled once for all streams): a text it matches is a JSON object with exactly those keys
    and plain string values (no escapes), so :meth:`read` gives what :func:`read_fast_media`
    gives for the parsed message. Anything else (other order, whitespace, escapes, another
    stream, invalid base64) is ``None`` and takes the JSON path, which decides and words the
    reason.
    """

    __slots__ = ("stream_sid",)

    def __init__(self, stream_sid: str) -> None:
        self.stream_sid: Final = stream_sid

    def read(self, text: str) -> Media | None:
        m = _MEDIA_SID_FIRST(text)
        if m is not None:
            seq, sid, track, chunk, timestamp, raw = m.groups()
        else:
            m = _MEDIA_SID_LAST(text)
            if m is None:
                return None
            seq, track, chunk, timestamp, raw, sid = m.groups()
        if sid != self.stream_sid:
            return None
        return _media(track, chunk, timestamp, raw, seq)

    def read_mark(self, text: str) -> tuple[int, str] | None:
        """A mark echo's sequence number and name (its status is the session's to decide)."""
        m = _MARK_SID_FIRST(text)
        if m is not None:
            seq, sid, name = m.groups()
        else:
            m = _MARK_SID_LAST(text)
            if m is None:
                return None
            seq, name, sid = m.groups()
        if sid != self.stream_sid:
            return None
        return int(seq), name


class FrameWriter:
    """Our messages on one stream, from templates built once: base64 needs no JSON escaping, so
    a ``media`` frame is its template with the payload inserted (== :func:`dump` of it)."""

    __slots__ = ("_mark_head", "_media_head", "clear")

    def __init__(self, stream_sid: str) -> None:
        sid = json_str(stream_sid)
        self._media_head = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark_head = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self.clear: Final = dump({"event": "clear", "streamSid": stream_sid})
        """The ``clear`` message."""

    def media(self, ulaw: bytes) -> str:
        return self._media_head + binascii.b2a_base64(ulaw, newline=False).decode("ascii") + '"}}'

    def mark(self, name: str) -> str:
        return self._mark_head + json_str(name) + "}}"
