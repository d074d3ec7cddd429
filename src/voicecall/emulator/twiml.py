"""TwiML parsing for the emulator (pure; its own parser, independent of the service's builder).

``parse_twiml(text)`` turns a document into a tuple of frozen verb objects, or raises
:class:`TwimlError` carrying Twilio's error code:

* **12100** (document parse failure): not well-formed XML, a DOCTYPE/entity declaration, a root
  other than ``<Response>``, an unknown verb, a verb nested where Twilio forbids it, or a verb
  missing what it cannot work without (``<Redirect>`` with no URL, ``<Stream>`` with no ``url``).
  The call fails on these.
* **12200** (schema warning): an attribute value Twilio would not accept (``<Pause length="x">``).
  Not fatal: the attribute's default is used and the warning is returned with the verbs.

Verbs Twilio has but the emulator does not emulate (``<Dial>``, ``<Record>``, ``<Enqueue>`` …)
parse to :class:`Unsupported`; the simulator records and skips them.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MAX_TWIML_BYTES",
    "Connect",
    "Gather",
    "Hangup",
    "ParsedTwiml",
    "Pause",
    "Play",
    "Redirect",
    "Reject",
    "Say",
    "Start",
    "Stop",
    "Stream",
    "StreamTrack",
    "TwimlError",
    "Unsupported",
    "Verb",
    "parse_twiml",
]

MAX_TWIML_BYTES = 256 * 1024
# Twilio treats loop="0" as "repeat until the call ends"; the emulator caps it.
LOOP_FOREVER = 1000

_UNSUPPORTED_VERBS = frozenset(
    {"Dial", "Record", "Enqueue", "Leave", "Sms", "Message", "Pay", "Refer", "Queue", "Echo"}
)
_METHODS = frozenset({"GET", "POST"})


class TwimlError(Exception):
    """The document cannot be executed. ``code`` is Twilio's error code (12100)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StreamTrack(StrEnum):
    INBOUND = "inbound_track"
    OUTBOUND = "outbound_track"
    BOTH = "both_tracks"


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    voice: str | None = None
    language: str | None = None
    loop: int = 1


@dataclass(frozen=True, slots=True)
class Play:
    url: str
    loop: int = 1
    digits: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    length: float = 1.0


@dataclass(frozen=True, slots=True)
class Gather:
    input: frozenset[str] = frozenset({"dtmf"})
    action: str | None = None
    method: str = "POST"
    timeout: float = 5.0
    speech_timeout: float | None = None  # None means "auto"
    num_digits: int | None = None
    finish_on_key: str = "#"
    action_on_empty_result: bool = False
    language: str = "en-US"
    prompts: tuple[Say | Play | Pause, ...] = ()


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = "rejected"


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Stream:
    url: str
    name: str | None = None
    track: StreamTrack = StreamTrack.INBOUND
    parameters: tuple[tuple[str, str], ...] = ()
    status_callback: str | None = None
    status_callback_method: str = "POST"


@dataclass(frozen=True, slots=True)
class Connect:
    stream: Stream | None
    action: str | None = None
    method: str = "POST"
    other: str | None = None  # name of a non-Stream noun (Room, VirtualAgent …), unsupported


@dataclass(frozen=True, slots=True)
class Start:
    stream: Stream


@dataclass(frozen=True, slots=True)
class Stop:
    stream_name: str | None


@dataclass(frozen=True, slots=True)
class Unsupported:
    name: str


Verb = (
    Say | Play | Pause | Gather | Hangup | Reject | Redirect | Connect | Start | Stop | Unsupported
)


@dataclass(frozen=True, slots=True)
class ParsedTwiml:
    verbs: tuple[Verb, ...]
    warnings: tuple[str, ...] = field(default=())


_DECL = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _fail(message: str) -> TwimlError:
    return TwimlError(12100, message)


class _Attrs:
    """Attribute reader that turns bad values into 12200 warnings and defaults."""

    def __init__(self, el: ET.Element, warnings: list[str]) -> None:
        self.el = el
        self.warnings = warnings

    def _warn(self, name: str, value: str) -> None:
        self.warnings.append(f"12200: <{self.el.tag}> {name}={value!r} is not valid; default used")

    def get(self, name: str) -> str | None:
        value = self.el.get(name)
        return value if value else None

    def method(self, name: str = "method") -> str:
        value = self.el.get(name)
        if value is None:
            return "POST"
        if value.upper() not in _METHODS:
            self._warn(name, value)
            return "POST"
        return value.upper()

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.el.get(name)
        if value is None:
            return default
        try:
            num = float(value.strip())
        except ValueError:
            self._warn(name, value)
            return default
        if math.isnan(num) or num < minimum or num > 86_400:  # NaN or out of range
            self._warn(name, value)
            return default
        return num

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.el.get(name)
        if value is None:
            return default
        try:
            num = int(value.strip())
        except ValueError:
            self._warn(name, value)
            return default
        if num < minimum or num > 1_000_000:
            self._warn(name, value)
            return default
        return num

    def loop(self) -> int:
        n = self.integer("loop", 1)
        return LOOP_FOREVER if n == 0 else min(n, LOOP_FOREVER)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.el.get(name)
        if value is None:
            return default
        if value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        self._warn(name, value)
        return default


def _text(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _no_children(el: ET.Element) -> None:
    if len(el):
        raise _fail(f"<{el.tag}> cannot contain <{el[0].tag}>")


def _say(el: ET.Element, warnings: list[str]) -> Say:
    a = _Attrs(el, warnings)
    return Say(text=_text(el), voice=a.get("voice"), language=a.get("language"), loop=a.loop())


def _play(el: ET.Element, warnings: list[str]) -> Play:
    _no_children(el)
    a = _Attrs(el, warnings)
    url = (el.text or "").strip()
    digits = a.get("digits")
    if not url and digits is None:
        raise _fail("<Play> needs a URL or digits")
    return Play(url=url, loop=a.loop(), digits=digits)


def _pause(el: ET.Element, warnings: list[str]) -> Pause:
    _no_children(el)
    return Pause(length=_Attrs(el, warnings).number("length", 1.0))


def _gather(el: ET.Element, warnings: list[str]) -> Gather:
    a = _Attrs(el, warnings)
    raw_input = (el.get("input") or "dtmf").split()
    inputs = frozenset(raw_input)
    if not inputs or not inputs <= {"speech", "dtmf"}:
        a._warn("input", el.get("input") or "")
        inputs = frozenset({"dtmf"})
    speech_timeout: float | None
    raw_st = el.get("speechTimeout")
    timeout = a.number("timeout", 5.0)
    if raw_st is None:
        speech_timeout = timeout
    elif raw_st.strip().lower() == "auto":
        speech_timeout = None
    else:
        speech_timeout = a.number("speechTimeout", timeout)
    num_digits_raw = el.get("numDigits")
    num_digits = a.integer("numDigits", 0, minimum=1) if num_digits_raw is not None else 0
    finish = el.get("finishOnKey")
    if finish is None:
        finish_on_key = "#"
    elif finish == "" or (len(finish) == 1 and finish in "0123456789*#"):
        finish_on_key = finish
    else:
        a._warn("finishOnKey", finish)
        finish_on_key = "#"
    prompts: list[Say | Play | Pause] = []
    for child in el:
        if child.tag == "Say":
            prompts.append(_say(child, warnings))
        elif child.tag == "Play":
            prompts.append(_play(child, warnings))
        elif child.tag == "Pause":
            prompts.append(_pause(child, warnings))
        else:
            raise _fail(f"<Gather> cannot contain <{child.tag}>")
    return Gather(
        input=inputs,
        action=a.get("action"),
        method=a.method(),
        timeout=timeout,
        speech_timeout=speech_timeout,
        num_digits=num_digits or None,
        finish_on_key=finish_on_key,
        action_on_empty_result=a.boolean("actionOnEmptyResult", False),
        language=a.get("language") or "en-US",
        prompts=tuple(prompts),
    )


def _stream(el: ET.Element, warnings: list[str], *, bidirectional: bool) -> Stream:
    a = _Attrs(el, warnings)
    url = a.get("url")
    if url is None:
        raise _fail("<Stream> needs a url attribute")
    track_raw = el.get("track")
    track = StreamTrack.INBOUND
    if track_raw is not None:
        try:
            track = StreamTrack(track_raw)
        except ValueError:
            a._warn("track", track_raw)
    if bidirectional and track is not StreamTrack.INBOUND:
        a._warn("track", track_raw or "")
        track = StreamTrack.INBOUND
    params: list[tuple[str, str]] = []
    for child in el:
        if child.tag != "Parameter":
            raise _fail(f"<Stream> cannot contain <{child.tag}>")
        _no_children(child)
        name = child.get("name")
        if not name:
            raise _fail("<Parameter> needs a name")
        params.append((name, child.get("value") or ""))
    return Stream(
        url=url,
        name=a.get("name"),
        track=track,
        parameters=tuple(params),
        status_callback=a.get("statusCallback"),
        status_callback_method=a.method("statusCallbackMethod"),
    )


def _connect(el: ET.Element, warnings: list[str]) -> Connect:
    a = _Attrs(el, warnings)
    children = list(el)
    if len(children) != 1:
        raise _fail("<Connect> needs exactly one noun")
    child = children[0]
    if child.tag == "Stream":
        return Connect(
            stream=_stream(child, warnings, bidirectional=True),
            action=a.get("action"),
            method=a.method(),
        )
    if child.tag in {"Room", "Conversation", "VirtualAgent", "Autopilot", "ConversationRelay"}:
        return Connect(stream=None, action=a.get("action"), method=a.method(), other=child.tag)
    raise _fail(f"<Connect> cannot contain <{child.tag}>")


def _start(el: ET.Element, warnings: list[str]) -> Start:
    children = list(el)
    if len(children) != 1 or children[0].tag != "Stream":
        raise _fail("<Start> needs exactly one <Stream> (the emulator supports Stream only)")
    return Start(stream=_stream(children[0], warnings, bidirectional=False))


def _stop(el: ET.Element) -> Stop:
    children = list(el)
    if len(children) != 1 or children[0].tag != "Stream":
        raise _fail("<Stop> needs exactly one <Stream>")
    _no_children(children[0])
    return Stop(stream_name=children[0].get("name") or None)


def _verb(el: ET.Element, warnings: list[str]) -> Verb:
    tag = el.tag
    if tag == "Say":
        return _say(el, warnings)
    if tag == "Play":
        return _play(el, warnings)
    if tag == "Pause":
        return _pause(el, warnings)
    if tag == "Gather":
        return _gather(el, warnings)
    if tag == "Hangup":
        _no_children(el)
        return Hangup()
    if tag == "Reject":
        _no_children(el)
        reason = el.get("reason") or "rejected"
        if reason not in {"rejected", "busy"}:
            warnings.append(f"12200: <Reject> reason={reason!r} is not valid; default used")
            reason = "rejected"
        return Reject(reason=reason)
    if tag == "Redirect":
        _no_children(el)
        url = (el.text or "").strip()
        if not url:
            raise _fail("<Redirect> needs a URL")
        return Redirect(url=url, method=_Attrs(el, warnings).method())
    if tag == "Connect":
        return _connect(el, warnings)
    if tag == "Start":
        return _start(el, warnings)
    if tag == "Stop":
        return _stop(el)
    if tag in _UNSUPPORTED_VERBS:
        return Unsupported(name=tag)
    raise _fail(f"unknown verb <{tag}>")


def parse_twiml(document: str | bytes) -> ParsedTwiml:
    """Parse a TwiML document. Never raises anything but :class:`TwimlError`."""
    raw = document.encode("utf-8") if isinstance(document, str) else document
    if len(raw) > MAX_TWIML_BYTES:
        raise _fail(f"document larger than {MAX_TWIML_BYTES} bytes")
    if _DECL.search(raw):
        raise _fail("DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = ET.fromstring(raw)  # noqa: S314 - declarations refused above, size capped
    except (ET.ParseError, ValueError, UnicodeError, LookupError) as exc:
        raise _fail(f"not well-formed XML: {exc}") from None
    if root.tag != "Response":
        raise _fail(f"root element is <{root.tag}>, expected <Response>")
    if (root.text or "").strip():
        raise _fail("text directly inside <Response>")
    warnings: list[str] = []
    verbs: list[Verb] = []
    for el in root:
        if not isinstance(el.tag, str):  # comments / processing instructions
            continue
        verbs.append(_verb(el, warnings))
        if (el.tail or "").strip():
            raise _fail("text directly inside <Response>")
    return ParsedTwiml(verbs=tuple(verbs), warnings=tuple(warnings))
