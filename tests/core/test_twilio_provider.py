"""The Twilio provider's rendering of replies, checked against the official twilio package."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from twilio.twiml.voice_response import Connect, Gather, VoiceResponse

from voicecall.providers.base import Listen, Reply

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from twilio_provider import provider


def tree(xml: str) -> list[tuple[str, dict[str, str], str]]:
    root = ET.fromstring(xml)
    return [(el.tag, dict(el.attrib), (el.text or "").strip()) for el in root.iter()]


def test_stream_reply_matches_oracle() -> None:
    xml = provider().twiml_for(Reply(stream_call_id="abc", stream_token="1.2.ff"))
    oracle = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url="wss://voice.example.com/voice/stream")
    stream.parameter(name="token", value="1.2.ff")
    oracle.append(connect)
    oracle.redirect("https://voice.example.com/voice/webhook?callId=abc&kind=hold", method="POST")
    assert tree(xml) == tree(str(oracle))
    assert "?" not in ET.fromstring(xml).find("Connect/Stream").attrib["url"]  # type: ignore[union-attr]


def test_ask_reply_matches_oracle_and_escapes() -> None:
    text = 'Is 3 < 4 & "yes"?'
    xml = provider().twiml_for(Reply(say=text, listen=Listen("abc", 2, "tok-1")))
    oracle = VoiceResponse()
    gather = Gather(
        input="speech",
        action="https://voice.example.com/voice/webhook?callId=abc&kind=gather&tok=tok-1&turn=2",
        method="POST",
        speech_timeout="auto",
        timeout=10,
        partial_result_callback=(
            "https://voice.example.com/voice/webhook?callId=abc&kind=partial&tok=tok-1&turn=2"
        ),
        partial_result_callback_method="POST",
    )
    gather.say(text)
    oracle.append(gather)
    oracle.redirect("https://voice.example.com/voice/webhook?callId=abc&kind=hold", method="POST")
    assert tree(xml) == tree(str(oracle))


def test_notify_and_reject() -> None:
    xml = provider().twiml_for(Reply(say="Done.", pause_after_seconds=2.2, hangup=True))
    assert [t for t, _, _ in tree(xml)] == ["Response", "Say", "Pause", "Hangup"]
    assert tree(xml)[2][1] == {"length": "3"}
    assert [t for t, _, _ in tree(provider().twiml_for(Reply(reject=True)))] == [
        "Response",
        "Reject",
    ]


def test_a_stored_line_then_hold_asks_for_the_hold_right_after_it_naming_the_line() -> None:
    # the hold request says the line was heard (calls/lineorder.py): no pause before it
    xml = provider().twiml_for(Reply(say="Your code is 4271.", hold_call_id="abc", line=("abc", 7)))
    oracle = VoiceResponse()
    oracle.say("Your code is 4271.")
    oracle.redirect(
        "https://voice.example.com/voice/webhook?callId=abc&kind=hold&seq=7", method="POST"
    )
    assert tree(xml) == tree(str(oracle))
    # a line that is not a stored one (held-back lines said together) keeps the pause
    xml = provider().twiml_for(Reply(say="Two lines.", hold_call_id="abc"))
    assert [t for t, _, _ in tree(xml)] == ["Response", "Say", "Pause", "Redirect"]
    assert "seq=" not in tree(xml)[3][2]
