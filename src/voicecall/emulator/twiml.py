"""TwiML parsing for the emulator (pure; its own parser, independent of the service's builder).

``parse_twiml(text)`` turns a document into a tuple of frozen verb objects, or raises
:class:`TwimlError` carrying Twilio's error code:

* **12100** (document parse failure): not well-formed XML, a DOCTYPE/entity declaration, a root
  other than ``<Response>``, an unknown verb, a verb nested where Twilio forbids it, or a verb
  missing what it cannot work without (``<Redirect>`` with no URL, ``<Stream>`` with no ``url``).
  The call fails on these.
* **12200** (schema warning): an attribute value Twilio would not accept (``<Pause length="x">``).
  Not fatal: the attribute's default is used and the warning is returned with the verbs.

Voice verbs (and nouns) Twilio has but the emulator cannot play (``<Enqueue>``, ``<Pay>``,
``<Refer>``, ``<Connect><Room>`` …) fail the document with 12100, naming the verb: a test never
passes because something was silently skipped. ``<Stream url>`` with a query string is refused
the same way (Twilio does not allow one; per-call data goes in ``<Parameter>``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum

from voicecall.emulator.twiml_base import (
    LOOP_FOREVER,
    METHODS,
    Attrs,
    TwimlError,
    fail,
    no_children,
    text_of,
)
from voicecall.emulator.twiml_dial import (
    Conference,
    Dial,
    DialTarget,
    Record,
    parse_dial,
    parse_record,
)

__all__ = [
    "LOOP_FOREVER",
    "MAX_TWIML_BYTES",
    "METHODS",
    "Conference",
    "Connect",
    "Dial",
    "DialTarget",
    "Gather",
    "Hangup",
    "ParsedTwiml",
    "Pause",
    "Play",
    "Record",
    "Redirect",
    "Reject",
    "Say",
    "Start",
    "Stop",
    "Stream",
    "StreamTrack",
    "TwimlError",
    "Verb",
    "parse_twiml",
]

MAX_TWIML_BYTES = 256 * 1024

_PLAY_DIGITS = frozenset("0123456789*#ABCDwW")
# Twilio voice verbs (and TwiML elements) the emulator cannot play: the document fails (12100).
_UNPLAYABLE_VERBS = frozenset({"Enqueue", "Leave", "Sms", "Message", "Pay", "Refer", "Echo"})
_UNPLAYABLE_CONNECT = frozenset(
    {"Room", "Conversation", "VirtualAgent", "Autopilot", "ConversationRelay", "AiSession"}
)


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
    partial_result_callback: str | None = None
    partial_result_callback_method: str = "POST"


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
    stream: Stream
    action: str | None = None
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Start:
    stream: Stream


@dataclass(frozen=True, slots=True)
class Stop:
    stream_name: str | None


Prompt = Say | Play | Pause
Verb = Prompt | Gather | Hangup | Reject | Redirect | Connect | Start | Stop | Dial | Record


@dataclass(frozen=True, slots=True)
class ParsedTwiml:
    verbs: tuple[Verb, ...]
    warnings: tuple[str, ...] = field(default=())


_DECL = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _say(el: ET.Element, warnings: list[str]) -> Say:
    a = Attrs(el, warnings)
    return Say(text=text_of(el), voice=a.get("voice"), language=a.get("language"), loop=a.loop())


def _play(el: ET.Element, warnings: list[str]) -> Play:
    no_children(el)
    a = Attrs(el, warnings)
    url = (el.text or "").strip()
    digits = a.get("digits")
    if digits is not None and not set(digits) <= _PLAY_DIGITS:
        a.warn("digits", digits)
        digits = None
    if not url and digits is None:
        raise fail("<Play> needs a URL or digits")
    return Play(url=url, loop=a.loop(), digits=digits)


def _pause(el: ET.Element, warnings: list[str]) -> Pause:
    no_children(el)
    return Pause(length=Attrs(el, warnings).number("length", 1.0))


def _gather(el: ET.Element, warnings: list[str]) -> Gather:
    a = Attrs(el, warnings)
    raw_input = (el.get("input") or "dtmf").split()
    inputs = frozenset(raw_input)
    if not inputs or not inputs <= {"speech", "dtmf"}:
        a.warn("input", el.get("input") or "")
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
        a.warn("finishOnKey", finish)
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
            raise fail(f"<Gather> cannot contain <{child.tag}>")
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
        partial_result_callback=a.get("partialResultCallback"),
        partial_result_callback_method=a.method("partialResultCallbackMethod"),
    )


def _stream(el: ET.Element, warnings: list[str], *, bidirectional: bool) -> Stream:
    a = Attrs(el, warnings)
    url = a.get("url")
    if url is None:
        raise fail("<Stream> needs a url attribute")
    if "?" in url:
        raise fail(
            f"<Stream url> must not have a query string ({url}); Twilio does not allow one: "
            "pass per-call values as <Parameter>"
        )
    track_raw = el.get("track")
    track = StreamTrack.INBOUND
    if track_raw is not None:
        try:
            track = StreamTrack(track_raw)
        except ValueError:
            a.warn("track", track_raw)
    if bidirectional and track is not StreamTrack.INBOUND:
        a.warn("track", track_raw or "")
        track = StreamTrack.INBOUND
    params: list[tuple[str, str]] = []
    for child in el:
        if child.tag != "Parameter":
            raise fail(f"<Stream> cannot contain <{child.tag}>")
        no_children(child)
        name = child.get("name")
        if not name:
            raise fail("<Parameter> needs a name")
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
    a = Attrs(el, warnings)
    children = list(el)
    if len(children) != 1:
        raise fail("<Connect> needs exactly one noun")
    child = children[0]
    if child.tag == "Stream":
        return Connect(
            stream=_stream(child, warnings, bidirectional=True),
            action=a.get("action"),
            method=a.method(),
        )
    if child.tag in _UNPLAYABLE_CONNECT:
        raise fail(f"<Connect><{child.tag}> is a Twilio noun the emulator cannot play")
    raise fail(f"<Connect> cannot contain <{child.tag}>")


def _start(el: ET.Element, warnings: list[str]) -> Start:
    children = list(el)
    if len(children) != 1 or children[0].tag != "Stream":
        raise fail("<Start> needs exactly one <Stream> (the emulator supports Stream only)")
    return Start(stream=_stream(children[0], warnings, bidirectional=False))


def _stop(el: ET.Element) -> Stop:
    children = list(el)
    if len(children) != 1 or children[0].tag != "Stream":
        raise fail("<Stop> needs exactly one <Stream>")
    no_children(children[0])
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
        no_children(el)
        return Hangup()
    if tag == "Reject":
        no_children(el)
        reason = el.get("reason") or "rejected"
        if reason not in {"rejected", "busy"}:
            warnings.append(f"12200: <Reject> reason={reason!r} is not valid; default used")
            reason = "rejected"
        return Reject(reason=reason)
    if tag == "Redirect":
        no_children(el)
        url = (el.text or "").strip()
        if not url:
            raise fail("<Redirect> needs a URL")
        return Redirect(url=url, method=Attrs(el, warnings).method())
    if tag == "Connect":
        return _connect(el, warnings)
    if tag == "Start":
        return _start(el, warnings)
    if tag == "Stop":
        return _stop(el)
    if tag == "Dial":
        return parse_dial(el, warnings)
    if tag == "Record":
        return parse_record(el, warnings)
    if tag in _UNPLAYABLE_VERBS:
        raise fail(f"<{tag}> is a Twilio voice verb the emulator cannot play")
    raise fail(f"unknown verb <{tag}>")


def parse_twiml(document: str | bytes) -> ParsedTwiml:
    """Parse a TwiML document. Never raises anything but :class:`TwimlError`."""
    raw = document.encode("utf-8") if isinstance(document, str) else document
    if len(raw) > MAX_TWIML_BYTES:
        raise fail(f"document larger than {MAX_TWIML_BYTES} bytes")
    if _DECL.search(raw):
        raise fail("DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = ET.fromstring(raw)  # noqa: S314 - declarations refused above, size capped
    except (ET.ParseError, ValueError, UnicodeError, LookupError) as exc:
        raise fail(f"not well-formed XML: {exc}") from None
    if root.tag != "Response":
        raise fail(f"root element is <{root.tag}>, expected <Response>")
    if (root.text or "").strip():
        raise fail("text directly inside <Response>")
    warnings: list[str] = []
    verbs: list[Verb] = []
    for el in root:
        if not isinstance(el.tag, str):  # comments / processing instructions
            continue
        verbs.append(_verb(el, warnings))
        if (el.tail or "").strip():
            raise fail("text directly inside <Response>")
    return ParsedTwiml(verbs=tuple(verbs), warnings=tuple(warnings))
