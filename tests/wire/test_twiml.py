"""TwiML builder: the `twilio` package's VoiceResponse as oracle, escaping under hypothesis."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.twiml.voice_response import Connect as OConnect
from twilio.twiml.voice_response import Start as OStart
from twilio.twiml.voice_response import VoiceResponse

from voicecall.twilio.twiml import (
    MAX_SAY_CHARS,
    Connect,
    Dial,
    Gather,
    Hangup,
    InvalidTwiML,
    Number,
    Parameter,
    Pause,
    Play,
    PlayDigits,
    Redirect,
    Reject,
    Response,
    Say,
    Start,
    Stream,
    voice_for,
)

DECL = '<?xml version="1.0" encoding="UTF-8"?>'
ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def canon(xml: str) -> tuple[Any, ...]:
    def walk(el: ET.Element) -> tuple[Any, ...]:
        return (el.tag, sorted(el.attrib.items()), el.text or "", [walk(c) for c in el])

    return walk(ET.fromstring(xml.encode("utf-8")))


def same_as_oracle(ours: Response, oracle: VoiceResponse) -> None:
    xml = ours.to_xml()
    assert xml.startswith(DECL + "<Response")
    assert canon(xml) == canon(oracle.to_xml())


# -- every verb against the oracle ----------------------------------------------------------------


def test_say() -> None:
    o = VoiceResponse()
    o.say("Hello <world> & \"friends\" 'ok'", voice="Polly.Joanna", language="en-US")
    same_as_oracle(
        Response(Say("Hello <world> & \"friends\" 'ok'", voice="Polly.Joanna", language="en-US")), o
    )


def test_play_pause_hangup() -> None:
    o = VoiceResponse()
    o.play("https://cdn.example.com/a.mp3?x=1&y=2", loop=2)
    o.pause(length=3)
    o.hangup()
    same_as_oracle(
        Response(Play("https://cdn.example.com/a.mp3?x=1&y=2", loop=2), Pause(3), Hangup()), o
    )


@pytest.mark.parametrize("reason", ["rejected", "busy"])
def test_reject(reason: str) -> None:
    o = VoiceResponse()
    o.reject(reason=reason)
    same_as_oracle(Response(Reject(reason)), o)


def test_redirect() -> None:
    o = VoiceResponse()
    o.redirect("https://h.example/twilio/voice?callId=a&kind=voice", method="POST")
    same_as_oracle(Response(Redirect("https://h.example/twilio/voice?callId=a&kind=voice")), o)


def test_gather_with_children() -> None:
    action = "https://h.example/twilio/voice?callId=c&kind=gather&tok=t&turn=2"
    o = VoiceResponse()
    g = o.gather(
        input="speech dtmf",
        action=action,
        method="POST",
        speech_timeout="auto",
        timeout=7,
        language="en-GB",
        num_digits=4,
    )
    g.say("Press or say", voice="Polly.Amy")
    g.play("https://h/beep.wav")
    g.pause(length=1)
    ours = Gather(
        "speech dtmf",
        action,
        timeout=7,
        language="en-GB",
        num_digits=4,
        children=(Say("Press or say", voice="Polly.Amy"), Play("https://h/beep.wav"), Pause(1)),
    )
    same_as_oracle(Response(ours), o)


def test_gather_numeric_speech_timeout() -> None:
    o = VoiceResponse()
    o.gather(input="speech", action="/g", method="GET", speech_timeout=3)
    same_as_oracle(Response(Gather("speech", "/g", method="GET", speech_timeout=3)), o)


def test_connect_stream_with_parameters() -> None:
    o = VoiceResponse()
    c = OConnect()
    s = c.stream(url="wss://h.example/twilio/stream", name="call-1")
    s.parameter(name="token", value="abc<&>\"'")
    s.parameter(name="callId", value="c1")
    o.append(c)
    ours = Connect(
        Stream(
            "wss://h.example/twilio/stream",
            name="call-1",
            parameters=(Parameter("token", "abc<&>\"'"), Parameter("callId", "c1")),
        )
    )
    same_as_oracle(Response(ours), o)


def test_start_stream() -> None:
    o = VoiceResponse()
    st_ = OStart()
    st_.stream(url="wss://h/fork", track="both_tracks")
    o.append(st_)
    o.say("Recording")
    same_as_oracle(
        Response(Start(Stream("wss://h/fork", track="both_tracks")), Say("Recording")), o
    )


def test_empty_response() -> None:
    assert Response().to_xml() == DECL + "<Response/>"
    same_as_oracle(Response(), VoiceResponse())


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Say(""),
        lambda: Say("   \n"),
        lambda: Say("\x00\x01"),
        lambda: Say("x" * (MAX_SAY_CHARS + 1)),
        lambda: Say("hi", voice='Polly.Joanna" onload="x'),
        lambda: Say("hi", language="en-US><Hangup/"),
        lambda: Pause(0),
        lambda: Pause(601),
        lambda: Pause(True),
        lambda: Play("javascript:alert(1)"),
        lambda: Play("https://h/a b.mp3"),
        lambda: Play("https://h/a.mp3", loop=-1),
        lambda: Gather("voice", "/a"),
        lambda: Gather("speech", "/a", method="PUT"),
        lambda: Gather("speech", "/a", speech_timeout="soon"),
        lambda: Gather("speech", "/a", timeout=0),
        lambda: Gather("speech", "/a", num_digits=0),
        lambda: Gather("speech", "/a", children=(Hangup(),)),  # type: ignore[arg-type]
        lambda: Gather("speech", ""),
        lambda: Reject("declined"),
        lambda: Redirect("ftp://h/x"),
        lambda: Stream("https://h/stream"),
        lambda: Stream("wss://h/stream?token=abc"),
        lambda: Stream("wss://h/stream#frag"),
        lambda: Stream("wss://h/s", track="sideways"),
        lambda: Stream("wss://h/s", parameters=(Parameter("a", "1"), Parameter("a", "2"))),
        lambda: Connect(Stream("wss://h/s", track="both_tracks")),
        lambda: Parameter("", "v"),
        lambda: Parameter("n", "bell\x07"),
        lambda: Response("<Hangup/>"),  # type: ignore[arg-type]
    ],
)
def test_invalid_verbs_refused(build: Any) -> None:
    with pytest.raises(InvalidTwiML):
        build()


def test_stream_query_string_field_lesson() -> None:
    """Field lesson: a token in the <Stream url> query is dropped by Twilio: refuse to build."""
    with pytest.raises(InvalidTwiML, match="Parameter"):
        Stream("wss://voice.example.com/twilio/stream?token=secret")


def test_verbs_are_frozen() -> None:
    say = Say("hi")
    with pytest.raises(AttributeError):
        say.text = "bye"  # type: ignore[misc]


def test_say_strips_xml_illegal_characters() -> None:
    say = Say("a\x00b\x1bc\ufffed")
    assert say.text == "abcd"
    assert ET.fromstring(Response(say).to_xml().encode()).find("Say").text == "abcd"  # type: ignore[union-attr]


def test_injection_attempt_stays_text() -> None:
    evil = "</Say><Redirect>https://evil.example/</Redirect><Say>"
    xml = Response(Say(evil)).to_xml()
    root = ET.fromstring(xml.encode())
    assert [el.tag for el in root] == ["Say"]
    assert root[0].text == evil


# -- hypothesis: escaping round-trips -------------------------------------------------------------


@given(st.text(max_size=200))
def test_any_say_text_is_well_formed_and_round_trips(text: str) -> None:
    try:
        say = Say(text)
    except InvalidTwiML:
        assert not ILLEGAL.sub("", text).strip() or len(ILLEGAL.sub("", text)) > MAX_SAY_CHARS
        return
    root = ET.fromstring(Response(say).to_xml().encode("utf-8"))
    assert root[0].text == ILLEGAL.sub("", text)


@given(name=st.text(max_size=40), value=st.text(max_size=80))
def test_any_parameter_round_trips_or_is_refused(name: str, value: str) -> None:
    try:
        param = Parameter(name, value)
    except InvalidTwiML:
        assert not name or ILLEGAL.search(name + value) or len(name) > 128
        return
    xml = Response(Connect(Stream("wss://h/s", parameters=(param,)))).to_xml()
    el = ET.fromstring(xml.encode("utf-8")).find("Connect/Stream/Parameter")
    assert el is not None
    assert (el.get("name"), el.get("value")) == (name, value)


@given(voice=st.text(max_size=30), language=st.text(max_size=12))
def test_any_voice_or_language_is_safe(voice: str, language: str) -> None:
    try:
        say = Say("hi", voice=voice, language=language)
    except InvalidTwiML:
        return
    el = ET.fromstring(Response(say).to_xml().encode("utf-8"))[0]
    assert (el.get("voice"), el.get("language"), el.text) == (voice, language, "hi")


@given(st.text(alphabet=st.characters(blacklist_characters="\r"), min_size=1, max_size=60))
def test_say_text_matches_oracle(text: str) -> None:
    """For text XML can carry (and without CR, which the oracle lets the parser fold), our tree
    equals the oracle's."""
    try:
        ours = Response(Say(text))
    except InvalidTwiML:
        return
    o = VoiceResponse()
    o.say(ILLEGAL.sub("", text))
    same_as_oracle(ours, o)


# -- voices ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("alloy", "Polly.Joanna"),
        ("Nova", "Polly.Salli"),
        ("sage", "Polly.Amy"),
        ("Polly.Brian", "Polly.Brian"),
        ("Google.en-US-Standard-C", "Google.en-US-Standard-C"),
        ('Polly.Joanna" x="', None),
        ("robot", None),
        (None, None),
    ],
)
def test_voice_for(given_: str | None, expected: str | None) -> None:
    assert voice_for(given_) == expected


def test_every_openai_voice_maps_to_a_buildable_say() -> None:
    for name in ("alloy", "echo", "fable", "onyx", "nova", "shimmer", "ash", "coral", "sage"):
        voice = voice_for(name)
        assert voice is not None and voice.startswith("Polly.")
        Say("hi", voice=voice)


# -- keypad and transfers ---------------------------------------------------------------------


def test_play_digits() -> None:
    o = VoiceResponse()
    o.play(digits="1w23#")
    same_as_oracle(Response(PlayDigits("1w23#")), o)
    for bad in ("", "12x", "A", "1" * 257):
        with pytest.raises(InvalidTwiML):
            PlayDigits(bad)


def test_cold_dial() -> None:
    o = VoiceResponse()
    dial = o.dial(caller_id="+14155550199", timeout=30)
    dial.number("+14155550177")
    same_as_oracle(Response(Dial(Number("+14155550177"), caller_id="+14155550199", timeout=30)), o)


def test_warm_dial_with_whisper_and_action() -> None:
    whisper = "https://v.example.com/voice?callId=c&kind=whisper&tok=t&turn=1"
    action = "https://v.example.com/voice?callId=c&kind=dial&tok=t&turn=1"
    o = VoiceResponse()
    dial = o.dial(action=action, method="POST", caller_id="+14155550199", timeout=20)
    dial.number("+14155550177", url=whisper, method="POST")
    ours = Dial(
        Number("+14155550177", url=whisper),
        caller_id="+14155550199",
        action=action,
        timeout=20,
    )
    same_as_oracle(Response(ours), o)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Number("4155550177"),
        lambda: Number("+1 415 555 0177"),
        lambda: Number("+14155550177", url="javascript:alert(1)"),
        lambda: Dial(Number("+14155550177"), caller_id="14155550199"),
        lambda: Dial(Number("+14155550177"), timeout=2),
    ],
)
def test_bad_dials_are_refused(make: Any) -> None:
    with pytest.raises(InvalidTwiML):
        make()
