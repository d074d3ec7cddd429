"""``<Dial>`` and its nouns, and ``<Record>``, for the emulator's TwiML parser (pure).

``<Dial>`` connects the call to another party: ``<Number>``, ``<Client>``, ``<Sip>`` (up to ten,
rung at once; the first to answer is bridged) or one ``<Conference>`` room. A bare number as
the verb's text is a ``<Number>``. Nouns the emulator cannot play (``<Queue>``, ``<Sim>``,
``<Application>``, ``<WhatsApp>``) fail the document with 12100, like any verb it cannot play.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from voicecall.emulator.twiml_base import Attrs, fail, no_children, text_of

__all__ = ["Conference", "Dial", "DialTarget", "Record", "parse_dial", "parse_record"]

MAX_TARGETS = 10
_UNPLAYABLE_NOUNS = frozenset({"Queue", "Sim", "Application", "WhatsApp"})
_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
_RECORD_MODES = frozenset(
    {
        "do-not-record",
        "record-from-answer",
        "record-from-ringing",
        "record-from-answer-dual",
        "record-from-ringing-dual",
        "true",
        "false",
    }
)
_DIGITS = re.compile(r"[0-9]")


@dataclass(frozen=True, slots=True)
class DialTarget:
    """Who ``<Dial>`` rings: ``to`` is the address as a call's ``To`` shows it."""

    kind: str  # number | client | sip
    to: str  # +E.164 (or the raw text when it is not a number), client:NAME, sip:URI
    url: str | None = None  # whisper TwiML run on the target's leg before bridging
    method: str = "POST"
    send_digits: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})


@dataclass(frozen=True, slots=True)
class Conference:
    name: str
    start_on_enter: bool = True
    end_on_exit: bool = False
    max_participants: int = 250
    muted: bool = False
    beep: str = "true"
    wait_url: str | None = None


@dataclass(frozen=True, slots=True)
class Dial:
    targets: tuple[DialTarget, ...] = ()
    conference: Conference | None = None
    action: str | None = None
    method: str = "POST"
    timeout: int = 30
    time_limit: int = 14_400
    caller_id: str | None = None
    record: str = "do-not-record"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    answer_on_bridge: bool = False
    hangup_on_star: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    action: str | None = None
    method: str = "POST"
    timeout: float = 5.0  # seconds of silence that end the recording (0: never)
    finish_on_key: str = "1234567890*#"
    max_length: int = 3600
    play_beep: bool = True
    trim: str = "trim-silence"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    recording_status_callback_events: frozenset[str] = frozenset({"completed"})


def normalize_number(text: str) -> str:
    """``+14155551212``, or a 10-digit US number written loosely (``(415) 555-1212``) as E.164.

    Anything else is returned stripped (the dial then fails, as Twilio's would).
    """
    raw = text.strip()
    if re.fullmatch(r"\+[1-9][0-9]{6,14}", raw):
        return raw
    digits = "".join(_DIGITS.findall(raw))
    if re.fullmatch(r"[0-9()\-.\s]+", raw) and len(digits) == 10:
        return "+1" + digits
    if re.fullmatch(r"[0-9()\-.\s]+", raw) and len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return raw


def _events(a: Attrs, name: str) -> frozenset[str]:
    raw = a.get(name)
    if raw is None:
        return frozenset({"completed"})
    events = frozenset(raw.replace(",", " ").split())
    if not events or not events <= _EVENTS:
        a.warn(name, raw)
        return frozenset({"completed"})
    return events


def _target(el: ET.Element, warnings: list[str]) -> DialTarget:
    a = Attrs(el, warnings)
    tag = el.tag
    if tag == "Client":
        identity = el.find("Identity")
        name = text_of(identity) if identity is not None else (el.text or "").strip()
        for child in el:
            if child.tag not in {"Identity", "Parameter"}:
                raise fail(f"<Client> cannot contain <{child.tag}>")
        if not name:
            raise fail("<Client> needs an identity")
        to = name if name.startswith("client:") else f"client:{name}"
        kind = "client"
    elif tag == "Sip":
        no_children(el)
        uri = (el.text or "").strip()
        if not uri.lower().startswith(("sip:", "sips:")):
            raise fail("<Sip> needs a sip: URI")
        to, kind = uri, "sip"
    else:  # Number
        no_children(el)
        text = (el.text or "").strip()
        if not text:
            raise fail("<Number> needs a phone number")
        to, kind = normalize_number(text), "number"
    send_digits = a.get("sendDigits")
    if send_digits is not None and not set(send_digits) <= set("0123456789*#wW"):
        a.warn("sendDigits", send_digits)
        send_digits = None
    return DialTarget(
        kind=kind,
        to=to,
        url=a.get("url"),
        method=a.method(),
        send_digits=send_digits,
        status_callback=a.get("statusCallback"),
        status_callback_method=a.method("statusCallbackMethod"),
        status_callback_events=_events(a, "statusCallbackEvent"),
    )


def _conference(el: ET.Element, warnings: list[str]) -> Conference:
    no_children(el)
    a = Attrs(el, warnings)
    name = (el.text or "").strip()
    if not name:
        raise fail("<Conference> needs a room name")
    max_p = a.integer("maxParticipants", 250, minimum=2)
    if max_p > 250:
        a.warn("maxParticipants", str(max_p))
        max_p = 250
    return Conference(
        name=name,
        start_on_enter=a.boolean("startConferenceOnEnter", True),
        end_on_exit=a.boolean("endConferenceOnExit", False),
        max_participants=max_p,
        muted=a.boolean("muted", False),
        beep=a.get("beep") or "true",
        wait_url=a.get("waitUrl"),
    )


def parse_dial(el: ET.Element, warnings: list[str]) -> Dial:
    a = Attrs(el, warnings)
    targets: list[DialTarget] = []
    conference: Conference | None = None
    for child in el:
        if not isinstance(child.tag, str):
            continue
        if child.tag in {"Number", "Client", "Sip"}:
            targets.append(_target(child, warnings))
        elif child.tag == "Conference":
            if conference is not None:
                raise fail("<Dial> can hold one <Conference>")
            conference = _conference(child, warnings)
        elif child.tag in _UNPLAYABLE_NOUNS:
            raise fail(f"<Dial><{child.tag}> is a Twilio noun the emulator cannot play")
        else:
            raise fail(f"<Dial> cannot contain <{child.tag}>")
        if (child.tail or "").strip():
            raise fail("<Dial> mixes text and nouns")
    text = (el.text or "").strip()
    if text:
        if targets or conference is not None:
            raise fail("<Dial> mixes text and nouns")
        targets.append(DialTarget("number", normalize_number(text)))
    if conference is not None and targets:
        raise fail("<Dial> cannot ring numbers and join a <Conference> at once")
    if conference is None and not targets:
        raise fail("<Dial> needs a number or a noun")
    if len(targets) > MAX_TARGETS:
        raise fail(f"<Dial> can ring at most {MAX_TARGETS} nouns at once")
    timeout = a.integer("timeout", 30, minimum=1)
    if not 5 <= timeout <= 600:
        a.warn("timeout", str(timeout))
        timeout = min(600, max(5, timeout))
    record = (a.get("record") or "do-not-record").lower()
    if record not in _RECORD_MODES:
        a.warn("record", record)
        record = "do-not-record"
    if record == "false":
        record = "do-not-record"
    if record == "true":
        record = "record-from-answer"
    return Dial(
        targets=tuple(targets),
        conference=conference,
        action=a.get("action"),
        method=a.method(),
        timeout=timeout,
        time_limit=a.integer("timeLimit", 14_400, minimum=1),
        caller_id=a.get("callerId"),
        record=record,
        recording_status_callback=a.get("recordingStatusCallback"),
        recording_status_callback_method=a.method("recordingStatusCallbackMethod"),
        answer_on_bridge=a.boolean("answerOnBridge", False),
        hangup_on_star=a.boolean("hangupOnStar", False),
    )


def parse_record(el: ET.Element, warnings: list[str]) -> Record:
    no_children(el)
    a = Attrs(el, warnings)
    finish = el.get("finishOnKey")
    if finish is None:
        finish_on_key = "1234567890*#"
    elif set(finish) <= set("0123456789*#"):
        finish_on_key = finish
    else:
        a.warn("finishOnKey", finish)
        finish_on_key = "1234567890*#"
    trim = a.get("trim") or "trim-silence"
    if trim not in {"trim-silence", "do-not-trim"}:
        a.warn("trim", trim)
        trim = "trim-silence"
    if a.boolean("transcribe", False):
        warnings.append("12200: <Record> transcribe is not emulated (no transcription is made)")
    events_raw = a.get("recordingStatusCallbackEvent")
    events = frozenset({"completed"})
    if events_raw is not None:
        parsed = frozenset(events_raw.replace(",", " ").split())
        if parsed and parsed <= {"in-progress", "completed", "absent"}:
            events = parsed
        else:
            a.warn("recordingStatusCallbackEvent", events_raw)
    return Record(
        action=a.get("action"),
        method=a.method(),
        timeout=a.number("timeout", 5.0),
        finish_on_key=finish_on_key,
        max_length=max(1, a.integer("maxLength", 3600, minimum=1)),
        play_beep=a.boolean("playBeep", True),
        trim=trim,
        recording_status_callback=a.get("recordingStatusCallback"),
        recording_status_callback_method=a.method("recordingStatusCallbackMethod"),
        recording_status_callback_events=events,
    )
