"""The RecordingStatusCallback on the wire: strict parsing, the dedupe key from signed fields,
and (hypothesis) nothing but a 400 for any malformed form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.errors import WebhookRejected
from voicecall.twilio.webhooks import WebhookKind, build_webhook_url, parse_webhook, to_events

SID = "CA" + "1" * 32
RE = "RE" + "2" * 32
QUERY = (("callId", "abc123"), ("kind", "recording"))


def form(**over: str | None) -> list[tuple[str, str]]:
    base = {
        "AccountSid": "AC" + "3" * 32,
        "CallSid": SID,
        "RecordingSid": RE,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC{'3' * 32}/Recordings/{RE}",
        "RecordingStatus": "completed",
        "RecordingDuration": "7",
        "RecordingChannels": "2",
        "RecordingSource": "OutboundAPI",
    }
    base.update(over)
    return [(k, v) for k, v in base.items() if v is not None]


def test_a_recording_callback_parses_without_call_status() -> None:
    req = parse_webhook(QUERY, form())
    assert req.kind is WebhookKind.RECORDING
    assert req.call_status is None
    assert (req.recording_sid, req.recording_status) == (RE, "completed")
    assert (req.recording_duration, req.recording_channels) == (7, 2)
    assert to_events(req) == []  # says nothing about the call's state


def test_absent_recordings_say_minus_one() -> None:
    req = parse_webhook(QUERY, form(RecordingStatus="absent", RecordingDuration="-1"))
    assert req.recording_duration is None


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"RecordingSid": None}, "RecordingSid"),
        ({"RecordingSid": "RE123"}, "RecordingSid"),
        ({"RecordingStatus": "done"}, "RecordingStatus"),
        ({"RecordingStatus": None}, "RecordingStatus"),
        ({"RecordingDuration": "seven"}, "RecordingDuration"),
        ({"CallSid": "nope"}, "CallSid"),
    ],
)
def test_malformed_callbacks_are_400s_naming_the_field(over: dict, why: str) -> None:
    with pytest.raises(WebhookRejected) as err:
        parse_webhook(QUERY, form(**over))
    assert err.value.http_status == 400
    assert why in err.value.message


def test_a_recording_callback_needs_our_call_id() -> None:
    with pytest.raises(WebhookRejected, match="callId"):
        parse_webhook((("kind", "recording"),), form())


def test_the_callback_url_is_ours_and_sorted() -> None:
    url = build_webhook_url("https://x.example/voice/webhook", call_id="abc", kind="recording")
    assert url == "https://x.example/voice/webhook?callId=abc&kind=recording"


_TEXT = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "CallSid",
                "RecordingSid",
                "RecordingStatus",
                "RecordingDuration",
                "RecordingChannels",
                "RecordingUrl",
                "CallStatus",
            ]
        ),
        _TEXT,
    )
)
def test_any_recording_form_parses_or_is_a_400(fields: dict[str, str]) -> None:
    try:
        req = parse_webhook(QUERY, list(fields.items()))
    except WebhookRejected as exc:
        assert exc.http_status == 400
        return
    assert req.recording_sid is not None and req.recording_status is not None
