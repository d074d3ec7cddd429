"""TwiML: one frozen, validated value object per verb, and one writer that escapes everything.

Nothing here builds XML by string interpolation of caller data: every text node and attribute
goes through :func:`_escape_text` / :func:`_escape_attr`, which escape ``& < > " '`` and the
whitespace XML would otherwise normalize away (``\\r`` everywhere; ``\\n`` and ``\\t`` inside
attributes), so what the caller put in is exactly what Twilio parses back.

Characters XML 1.0 cannot carry at all (C0 controls other than tab/newline/CR, lone
surrogates, U+FFFE/U+FFFF) are handled by policy:

* ``<Say>`` text (often produced by a language model): such characters are **stripped** when the
  verb is built; ``Say.text`` holds the cleaned text. Text that is blank afterwards is refused.
* attributes and URLs (ours: voices, languages, tokens, URLs): such characters are **refused**
  with :class:`InvalidTwiML`.

Limits checked when a verb is built: ``<Say>`` 1..4096 characters; ``<Pause length>`` 1..600;
``<Play loop>`` 0..1000; ``<Gather timeout>`` 1..600, ``numDigits`` 1..64,
``speechTimeout`` ``auto`` or 0..600; URLs ≤ 2048 characters, ``http(s)`` or relative;
``<Stream url>`` must be ``ws://``/``wss://`` with **no query string** (Twilio drops it; per-call
data goes in ``<Parameter>``); parameter names ≤ 128 and values ≤ 1024 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "MAX_SAY_CHARS",
    "Connect",
    "Dial",
    "Gather",
    "GatherChild",
    "Hangup",
    "InvalidTwiML",
    "Number",
    "Parameter",
    "Pause",
    "Play",
    "PlayDigits",
    "Redirect",
    "Reject",
    "Response",
    "Say",
    "Start",
    "Stream",
    "Verb",
    "voice_for",
]

MAX_SAY_CHARS = 4096
MAX_URL_CHARS = 2048

_ILLEGAL_XML_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_VOICE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_GATHER_INPUTS = frozenset({"speech", "dtmf", "speech dtmf", "dtmf speech"})
_METHODS = frozenset({"GET", "POST"})
_REJECT_REASONS = frozenset({"rejected", "busy"})
_TRACKS = frozenset({"inbound_track", "outbound_track", "both_tracks"})


class InvalidTwiML(ValueError):
    """A verb was built with a value TwiML cannot carry (a local programming error)."""


# -- checks ---------------------------------------------------------------------------------------


def _check_attr_text(value: str, what: str, *, max_len: int, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidTwiML(f"{what} must be a string")
    if not value and not allow_empty:
        raise InvalidTwiML(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidTwiML(f"{what} longer than {max_len} characters")
    if _ILLEGAL_XML_RE.search(value):
        raise InvalidTwiML(f"{what} contains characters XML cannot carry")


def _check_url(url: str, what: str, *, schemes: frozenset[str], allow_relative: bool) -> None:
    _check_attr_text(url, what, max_len=MAX_URL_CHARS)
    if any(ch.isspace() for ch in url):
        raise InvalidTwiML(f"{what} must not contain whitespace")
    match = _SCHEME_RE.match(url)
    if match is None:
        if not allow_relative:
            raise InvalidTwiML(f"{what} must be an absolute {'/'.join(sorted(schemes))} URL")
        return
    if match.group(1).lower() not in schemes or not url[match.end() :].startswith("//"):
        raise InvalidTwiML(f"{what} must use {'/'.join(sorted(schemes))}")


def _check_int(value: int | None, what: str, lo: int, hi: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidTwiML(f"{what} must be an integer in {lo}..{hi}")


def _check_choice(value: str, what: str, choices: frozenset[str]) -> None:
    if value not in choices:
        raise InvalidTwiML(f"{what} must be one of {', '.join(sorted(choices))}")


def _check_voice(voice: str | None) -> None:
    if voice is not None and not _VOICE_RE.fullmatch(voice):
        raise InvalidTwiML("voice must look like Polly.Joanna or Google.en-US-Standard-C")


def _check_language(language: str | None) -> None:
    if language is not None and not _LANGUAGE_RE.fullmatch(language):
        raise InvalidTwiML("language must be a tag like en-US")


# -- the element model and its writer -------------------------------------------------------------

_Attrs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Element:
    tag: str
    attrs: _Attrs = ()
    text: str | None = None
    children: tuple[_Element, ...] = ()


def _attrs(**values: str | int | None) -> _Attrs:
    return tuple((name, str(value)) for name, value in values.items() if value is not None)


_TEXT_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&apos;",
    "\r": "&#13;",
}
_ATTR_ESCAPES = {**_TEXT_ESCAPES, "\n": "&#10;", "\t": "&#9;"}
_TEXT_RE = re.compile("[&<>\"'\r]")
_ATTR_RE = re.compile("[&<>\"'\r\n\t]")


def _escape_text(value: str) -> str:
    return _TEXT_RE.sub(lambda m: _TEXT_ESCAPES[m.group()], value)


def _escape_attr(value: str) -> str:
    return _ATTR_RE.sub(lambda m: _ATTR_ESCAPES[m.group()], value)


def _write(element: _Element, out: list[str]) -> None:
    out.append(f"<{element.tag}")
    for name, value in element.attrs:
        out.append(f' {name}="{_escape_attr(value)}"')
    if element.text is None and not element.children:
        out.append("/>")
        return
    out.append(">")
    if element.text is not None:
        out.append(_escape_text(element.text))
    for child in element.children:
        _write(child, out)
    out.append(f"</{element.tag}>")


# -- verbs ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """``<Say>``. XML-illegal characters in ``text`` are stripped (see the module docstring)."""

    text: str
    voice: str | None = None
    language: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidTwiML("Say text must be a string")
        cleaned = _ILLEGAL_XML_RE.sub("", self.text)
        if not cleaned.strip():
            raise InvalidTwiML("Say text must not be empty")
        if len(cleaned) > MAX_SAY_CHARS:
            raise InvalidTwiML(f"Say text longer than {MAX_SAY_CHARS} characters")
        object.__setattr__(self, "text", cleaned)
        _check_voice(self.voice)
        _check_language(self.language)

    def _element(self) -> _Element:
        return _Element("Say", _attrs(voice=self.voice, language=self.language), self.text)


@dataclass(frozen=True, slots=True)
class Play:
    """``<Play>`` an audio URL; ``loop=0`` repeats until the call moves on."""

    url: str
    loop: int | None = None

    def __post_init__(self) -> None:
        _check_url(self.url, "Play url", schemes=frozenset({"http", "https"}), allow_relative=True)
        _check_int(self.loop, "Play loop", 0, 1000)

    def _element(self) -> _Element:
        return _Element("Play", _attrs(loop=self.loop), self.url)


_PLAY_DIGITS_RE = re.compile(r"[0-9*#w]{1,256}")
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")


@dataclass(frozen=True, slots=True)
class PlayDigits:
    """``<Play digits="1w23#"/>``: press keys on the call (``w`` = 0.5 s pause)."""

    digits: str

    def __post_init__(self) -> None:
        if not isinstance(self.digits, str) or not _PLAY_DIGITS_RE.fullmatch(self.digits):
            raise InvalidTwiML("Play digits must be 1..256 of 0-9 * # w")

    def _element(self) -> _Element:
        return _Element("Play", _attrs(digits=self.digits))


@dataclass(frozen=True, slots=True)
class Number:
    """``<Number>`` of a ``<Dial>``: an E.164 number; ``url``: TwiML the dialled party hears
    before it is connected (a whisper)."""

    number: str
    url: str | None = None
    method: str = "POST"

    def __post_init__(self) -> None:
        if not isinstance(self.number, str) or not _E164_RE.fullmatch(self.number):
            raise InvalidTwiML("Number must be E.164 (+ and up to 15 digits)")
        if self.url is not None:
            _check_url(
                self.url, "Number url", schemes=frozenset({"http", "https"}), allow_relative=True
            )
        _check_choice(self.method, "Number method", _METHODS)

    def _element(self) -> _Element:
        method = self.method if self.url is not None else None
        return _Element("Number", _attrs(url=self.url, method=method), self.number)


@dataclass(frozen=True, slots=True)
class Dial:
    """``<Dial>`` one ``<Number>``; ``action`` is requested with ``DialCallStatus`` when the
    dial is over (without it the document goes on after ``<Dial>``)."""

    number: Number
    caller_id: str | None = None
    action: str | None = None
    method: str = "POST"
    timeout: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.number, Number):
            raise InvalidTwiML("Dial needs a Number")
        if self.caller_id is not None and not _E164_RE.fullmatch(self.caller_id):
            raise InvalidTwiML("Dial callerId must be E.164")
        if self.action is not None:
            _check_url(
                self.action,
                "Dial action",
                schemes=frozenset({"http", "https"}),
                allow_relative=True,
            )
        _check_choice(self.method, "Dial method", _METHODS)
        _check_int(self.timeout, "Dial timeout", 5, 600)

    def _element(self) -> _Element:
        method = self.method if self.action is not None else None
        attrs = _attrs(
            action=self.action, method=method, callerId=self.caller_id, timeout=self.timeout
        )
        return _Element("Dial", attrs, None, (self.number._element(),))


@dataclass(frozen=True, slots=True)
class Pause:
    length: int = 1

    def __post_init__(self) -> None:
        _check_int(self.length, "Pause length", 1, 600)

    def _element(self) -> _Element:
        return _Element("Pause", _attrs(length=self.length))


GatherChild = Say | Play | Pause


@dataclass(frozen=True, slots=True)
class Gather:
    """``<Gather>``: collect speech and/or digits, then request ``action``."""

    input: str
    action: str
    method: str = "POST"
    speech_timeout: str | int | None = "auto"
    timeout: int | None = None
    language: str | None = None
    num_digits: int | None = None
    children: tuple[GatherChild, ...] = ()
    #: requested with each interim speech result while the caller talks (method POST)
    partial_result_callback: str | None = None

    def __post_init__(self) -> None:
        _check_choice(self.input, "Gather input", _GATHER_INPUTS)
        _check_url(
            self.action, "Gather action", schemes=frozenset({"http", "https"}), allow_relative=True
        )
        if self.partial_result_callback is not None:
            _check_url(
                self.partial_result_callback,
                "Gather partialResultCallback",
                schemes=frozenset({"http", "https"}),
                allow_relative=True,
            )
        _check_choice(self.method, "Gather method", _METHODS)
        st = self.speech_timeout
        if isinstance(st, str):
            if st != "auto":
                raise InvalidTwiML("Gather speech_timeout must be 'auto' or seconds")
        else:
            _check_int(st, "Gather speech_timeout", 0, 600)
        _check_int(self.timeout, "Gather timeout", 1, 600)
        _check_language(self.language)
        _check_int(self.num_digits, "Gather num_digits", 1, 64)
        if not isinstance(self.children, tuple):
            raise InvalidTwiML("Gather children must be a tuple")
        for child in self.children:
            if not isinstance(child, Say | Play | Pause):
                raise InvalidTwiML("Gather may only contain Say, Play and Pause")

    def _element(self) -> _Element:
        attrs = _attrs(
            input=self.input,
            action=self.action,
            method=self.method,
            speechTimeout=self.speech_timeout,
            timeout=self.timeout,
            language=self.language,
            numDigits=self.num_digits,
            partialResultCallback=self.partial_result_callback,
            partialResultCallbackMethod="POST" if self.partial_result_callback else None,
        )
        return _Element("Gather", attrs, None, tuple(c._element() for c in self.children))


@dataclass(frozen=True, slots=True)
class Hangup:
    def _element(self) -> _Element:
        return _Element("Hangup")


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = "rejected"

    def __post_init__(self) -> None:
        _check_choice(self.reason, "Reject reason", _REJECT_REASONS)

    def _element(self) -> _Element:
        return _Element("Reject", _attrs(reason=self.reason))


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str
    method: str = "POST"

    def __post_init__(self) -> None:
        _check_url(
            self.url, "Redirect url", schemes=frozenset({"http", "https"}), allow_relative=True
        )
        _check_choice(self.method, "Redirect method", _METHODS)

    def _element(self) -> _Element:
        return _Element("Redirect", _attrs(method=self.method), self.url)


@dataclass(frozen=True, slots=True)
class Parameter:
    """``<Parameter>`` of a ``<Stream>``: arrives in ``start.customParameters``."""

    name: str
    value: str

    def __post_init__(self) -> None:
        _check_attr_text(self.name, "Parameter name", max_len=128)
        _check_attr_text(self.value, "Parameter value", max_len=1024, allow_empty=True)

    def _element(self) -> _Element:
        return _Element("Parameter", _attrs(name=self.name, value=self.value))


@dataclass(frozen=True, slots=True)
class Stream:
    """``<Stream>``: a Media Stream. ``url`` is ``wss://`` (or ``ws://``) with no query string."""

    url: str
    name: str | None = None
    parameters: tuple[Parameter, ...] = ()
    track: str | None = None

    def __post_init__(self) -> None:
        _check_url(self.url, "Stream url", schemes=frozenset({"ws", "wss"}), allow_relative=False)
        if "?" in self.url or "#" in self.url:
            raise InvalidTwiML(
                "Stream url must not carry a query string or fragment (Twilio drops it); "
                "pass per-call data as Parameter children"
            )
        if self.name is not None:
            _check_attr_text(self.name, "Stream name", max_len=128)
        if self.track is not None:
            _check_choice(self.track, "Stream track", _TRACKS)
        if not isinstance(self.parameters, tuple) or not all(
            isinstance(p, Parameter) for p in self.parameters
        ):
            raise InvalidTwiML("Stream parameters must be a tuple of Parameter")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise InvalidTwiML("Stream parameter names must be unique")

    def _element(self) -> _Element:
        return _Element(
            "Stream",
            _attrs(url=self.url, name=self.name, track=self.track),
            None,
            tuple(p._element() for p in self.parameters),
        )


@dataclass(frozen=True, slots=True)
class Connect:
    """``<Connect><Stream/></Connect>``: one bidirectional stream (inbound track only)."""

    stream: Stream

    def __post_init__(self) -> None:
        if not isinstance(self.stream, Stream):
            raise InvalidTwiML("Connect needs a Stream")
        if self.stream.track not in (None, "inbound_track"):
            raise InvalidTwiML("a bidirectional <Connect><Stream> only supports inbound_track")

    def _element(self) -> _Element:
        return _Element("Connect", (), None, (self.stream._element(),))


@dataclass(frozen=True, slots=True)
class Start:
    """``<Start><Stream/></Start>``: a one-way fork of the call audio."""

    stream: Stream

    def __post_init__(self) -> None:
        if not isinstance(self.stream, Stream):
            raise InvalidTwiML("Start needs a Stream")

    def _element(self) -> _Element:
        return _Element("Start", (), None, (self.stream._element(),))


Verb = (
    Say | Play | PlayDigits | Pause | Gather | Hangup | Reject | Redirect | Connect | Start | Dial
)


@dataclass(frozen=True, slots=True, init=False)
class Response:
    """``<Response>`` holding verbs in order. ``Response(Say("Hi"), Hangup()).to_xml()``."""

    verbs: tuple[Verb, ...] = field(default=())

    XML_DECLARATION: ClassVar[str] = '<?xml version="1.0" encoding="UTF-8"?>'

    def __init__(self, *verbs: Verb) -> None:
        for verb in verbs:
            if not isinstance(verb, Verb):
                raise InvalidTwiML(f"not a TwiML verb: {type(verb).__name__}")
        object.__setattr__(self, "verbs", tuple(verbs))

    def to_xml(self) -> str:
        out = [self.XML_DECLARATION]
        _write(_Element("Response", (), None, tuple(v._element() for v in self.verbs)), out)
        return "".join(out)


# -- voices ---------------------------------------------------------------------------------------

# OpenAI TTS voice names → an Amazon Polly voice of similar character (Twilio <Say voice>).
_OPENAI_TO_POLLY = {
    "alloy": "Polly.Joanna",  # neutral, US
    "echo": "Polly.Matthew",  # male, US
    "fable": "Polly.Brian",  # male, British, narrative
    "onyx": "Polly.Joey",  # deep male, US
    "nova": "Polly.Salli",  # bright female, US
    "shimmer": "Polly.Kimberly",  # soft female, US
    "ash": "Polly.Justin",  # young male, US
    "coral": "Polly.Kendra",  # warm female, US
    "sage": "Polly.Amy",  # calm female, British
}


def voice_for(voice: str | None) -> str | None:
    """A Twilio ``<Say voice>`` for ``voice``: OpenAI names are mapped to Polly voices,
    ``Polly.*``/``Google.*`` names pass through, anything else gives ``None`` (Twilio's default).
    """
    if voice is None:
        return None
    name = voice.strip()
    mapped = _OPENAI_TO_POLLY.get(name.lower())
    if mapped is not None:
        return mapped
    if name.startswith(("Polly.", "Google.")) and _VOICE_RE.fullmatch(name):
        return name
    return None
