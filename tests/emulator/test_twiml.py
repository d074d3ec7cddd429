"""The emulator's TwiML parser: every verb, errors, and TwiML written by the official library."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.twiml.voice_response import Connect, Gather, Start, VoiceResponse

from voicecall.emulator import twiml as t
from voicecall.emulator.twiml import TwimlError, parse_twiml


def test_every_verb_from_the_official_library():
    r = VoiceResponse()
    r.say("Hello <world> & you", voice="Polly.Joanna", language="en-US", loop=2)
    r.play("https://x/a.mp3", loop=3)
    r.pause(length=2)
    g = Gather(
        input="speech dtmf",
        action="/turn?n=1",
        method="GET",
        speech_timeout="auto",
        timeout=7,
        num_digits=4,
        language="fr-FR",
        action_on_empty_result=True,
    )
    g.say("Question?")
    r.append(g)
    c = Connect(action="/after")
    s = c.stream(url="wss://m.example.com/stream", name="main")
    s.parameter(name="token", value="t0k\"en'<>")
    r.append(c)
    st_ = Start()
    st_.stream(url="wss://m.example.com/fork", track="both_tracks", name="fork")
    r.append(st_)
    r.redirect("/next", method="POST")
    r.hangup()
    r.reject(reason="busy")
    parsed = parse_twiml(str(r))
    assert parsed.warnings == ()
    assert parsed.verbs == (
        t.Say("Hello <world> & you", "Polly.Joanna", "en-US", 2),
        t.Play("https://x/a.mp3", 3),
        t.Pause(2.0),
        t.Gather(
            input=frozenset({"speech", "dtmf"}),
            action="/turn?n=1",
            method="GET",
            timeout=7.0,
            speech_timeout=None,
            num_digits=4,
            action_on_empty_result=True,
            language="fr-FR",
            prompts=(t.Say("Question?"),),
        ),
        t.Connect(
            stream=t.Stream(
                "wss://m.example.com/stream", "main", parameters=(("token", "t0k\"en'<>"),)
            ),
            action="/after",
        ),
        t.Start(t.Stream("wss://m.example.com/fork", "fork", t.StreamTrack.BOTH)),
        t.Redirect("/next", "POST"),
        t.Hangup(),
        t.Reject("busy"),
    )


def test_defaults():
    parsed = parse_twiml("<Response><Gather/><Pause/><Say>x</Say></Response>")
    gather = parsed.verbs[0]
    assert isinstance(gather, t.Gather)
    assert gather.input == frozenset({"dtmf"})
    assert gather.timeout == 5.0
    assert gather.speech_timeout == 5.0  # speechTimeout defaults to timeout
    assert gather.finish_on_key == "#"
    assert gather.method == "POST"
    assert parsed.verbs[1] == t.Pause(1.0)


def test_ssml_inside_say_is_flattened_to_heard_text():
    parsed = parse_twiml(
        "<Response><Say>Hi <break time='1s'/> <emphasis>there</emphasis></Say></Response>"
    )
    assert parsed.verbs == (t.Say("Hi there"),)


def test_bad_attribute_values_are_12200_warnings_not_failures():
    parsed = parse_twiml("<Response><Pause length='abc'/><Say loop='x'>a</Say></Response>")
    assert parsed.verbs == (t.Pause(1.0), t.Say("a"))
    assert len(parsed.warnings) == 2
    assert all(w.startswith("12200") for w in parsed.warnings)


def test_loop_zero_means_repeat_until_hangup():
    assert parse_twiml("<Response><Say loop='0'>a</Say></Response>").verbs[0] == t.Say(
        "a", loop=t.LOOP_FOREVER
    )


def test_dial_and_record_parse():
    parsed = parse_twiml("<Response><Dial>+15550000000</Dial><Record/></Response>")
    assert parsed.verbs == (t.Dial(targets=(t.DialTarget("number", "+15550000000"),)), t.Record())


@pytest.mark.parametrize(
    "doc",
    [
        "<Response><Enqueue>q</Enqueue></Response>",
        "<Response><Pay/></Response>",
        "<Response><Refer/></Response>",
        "<Response><Leave/></Response>",
        "<Response><Connect><Room>r</Room></Connect></Response>",
        "<Response><Connect><ConversationRelay/></Connect></Response>",
        "<Response><Dial><Queue>q</Queue></Dial></Response>",
    ],
)
def test_verbs_the_emulator_cannot_play_are_12100_naming_them(doc):
    with pytest.raises(TwimlError) as info:
        parse_twiml(doc)
    assert info.value.code == 12100
    assert "cannot play" in info.value.message


@pytest.mark.parametrize(
    "doc",
    [
        "",
        "hello",
        "<Response>",
        "<response/>",
        "<Response><Unknown/></Response>",
        "<Response>stray text</Response>",
        "<Response><Gather><Hangup/></Gather></Response>",
        "<Response><Connect/></Response>",
        "<Response><Connect><Stream/></Connect></Response>",
        "<Response><Redirect/></Response>",
        "<Response><Start><Say>x</Say></Start></Response>",
        '<!DOCTYPE x [<!ENTITY a "aaaa">]><Response><Say>&a;</Say></Response>',
        "<Response><Say>x</Say></Response><Extra/>",
    ],
)
def test_invalid_documents_are_12100(doc):
    with pytest.raises(TwimlError) as info:
        parse_twiml(doc)
    assert info.value.code == 12100


def test_oversized_document_is_refused():
    with pytest.raises(TwimlError):
        parse_twiml("<Response>" + "<Pause/>" * 40_000 + "</Response>")


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_fuzz_any_input_parses_or_is_12100(doc):
    try:
        parsed = parse_twiml(doc)
    except TwimlError as exc:
        assert exc.code == 12100
    else:
        assert isinstance(parsed, t.ParsedTwiml)


_tags = st.sampled_from(
    [
        "Say",
        "Play",
        "Pause",
        "Gather",
        "Hangup",
        "Reject",
        "Redirect",
        "Connect",
        "Stream",
        "Start",
        "Stop",
        "Parameter",
        "Dial",
        "Foo",
    ]
)
_attrs = st.dictionaries(
    st.sampled_from(
        [
            "url",
            "length",
            "loop",
            "input",
            "timeout",
            "numDigits",
            "reason",
            "method",
            "speechTimeout",
            "name",
            "value",
            "track",
            "finishOnKey",
            "action",
        ]
    ),
    st.text(max_size=6).map(lambda s: s.replace('"', "").replace("&", "").replace("<", "")),
    max_size=3,
)


@st.composite
def _element(draw, depth=0):
    tag = draw(_tags)
    attrs = "".join(f' {k}="{v}"' for k, v in draw(_attrs).items())
    children = "" if depth > 2 else "".join(draw(st.lists(_element(depth + 1), max_size=3)))
    text = draw(st.sampled_from(["", "x", "https://h/a"]))
    return f"<{tag}{attrs}>{text}{children}</{tag}>"


@settings(max_examples=200, deadline=None)
@given(st.lists(_element(), max_size=5))
def test_fuzz_structured_documents_parse_or_are_12100(elements):
    doc = "<Response>" + "".join(elements) + "</Response>"
    try:
        parse_twiml(doc)
    except TwimlError as exc:
        assert exc.code == 12100
