"""Answering machines, pure: the verdict table, a call's options, the AMD webhook's parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.model import CallMode, CallRecord, Direction
from voicecall.config import load_config
from voicecall.errors import InvalidRequest, WebhookRejected
from voicecall.events import EventKind
from voicecall.telephony.machine import ANSWERED_BY, Verdict, decide, message_for, voicemail_pending
from voicecall.telephony.options import TelephonyOptions, call_metadata, hold_settings
from voicecall.twilio.webhooks import parse_form, parse_webhook, to_events

SID = "CA" + "1" * 32
SETTINGS = load_config(env={}, overrides={})


@pytest.mark.parametrize(
    ("answered_by", "greeting", "verdict"),
    [
        (None, None, Verdict.WAIT),
        (None, "silence", Verdict.WAIT),  # a person may be silent: Twilio decides
        (None, "beep", Verdict.LEAVE),  # a beep after a greeting is a machine
        ("human", None, Verdict.HUMAN),
        ("human", "beep", Verdict.HUMAN),
        ("unknown", None, Verdict.HUMAN),
        ("fax", None, Verdict.HANG_UP),
        ("machine_start", None, Verdict.WAIT),
        ("machine_start", "silence", Verdict.LEAVE),
        ("machine_start", "beep", Verdict.LEAVE),
        ("machine_end_beep", None, Verdict.LEAVE),
        ("machine_end_silence", None, Verdict.LEAVE),
        ("machine_end_other", None, Verdict.LEAVE),
    ],
)
def test_the_verdict_table(answered_by: str | None, greeting: str | None, verdict: Verdict) -> None:
    assert decide(answered_by, greeting) is verdict


def record(mode: CallMode = CallMode.NOTIFY, **md: object) -> CallRecord:
    return CallRecord(
        "c1", Direction.OUTBOUND, mode, "+14155550199", "+14155550100", message="Hi", metadata=md
    )


def test_pending_until_a_verdict_and_only_for_voicemail() -> None:
    assert voicemail_pending(record(machine_detection="voicemail"))
    assert not voicemail_pending(record(machine_detection="voicemail", vm_verdict="human"))
    assert not voicemail_pending(record(machine_detection="detect"))
    assert not voicemail_pending(record())


def test_the_message_left() -> None:
    assert message_for(record(voicemail_message="Call me back")) == "Call me back"
    assert message_for(record()) == "Hi"
    assert message_for(record(CallMode.TASK)) is None  # the model writes it


def test_options_become_metadata() -> None:
    md = call_metadata(TelephonyOptions("voicemail", "  Call me back ", "off", 30), SETTINGS)
    assert md == {
        "machine_detection": "voicemail",
        "voicemail_message": "Call me back",
        "hold_detect": "off",
        "max_hold_seconds": 30.0,
    }
    assert call_metadata(None, SETTINGS) == {}
    assert call_metadata(TelephonyOptions("off"), SETTINGS) == {}
    rec = record(**md)
    assert hold_settings(rec, SETTINGS) == (False, 30.0)
    assert hold_settings(record(), SETTINGS) == (True, SETTINGS.hold.max_hold_seconds)


def test_the_configured_default_applies() -> None:
    settings = load_config(env={}, overrides={"voicemail": {"machine_detection": "detect"}})
    assert call_metadata(None, settings) == {"machine_detection": "detect"}
    assert call_metadata(TelephonyOptions("off"), settings) == {}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (TelephonyOptions("maybe"), "machine_detection"),
        (TelephonyOptions(None, "hi"), "voicemail_message"),
        (TelephonyOptions("detect", "hi"), "voicemail_message"),
        (TelephonyOptions("voicemail", "   "), "voicemail_message"),
        (TelephonyOptions("voicemail", "x" * 1001), "voicemail_message"),
        (TelephonyOptions(hold_detect="sometimes"), "hold_detect"),
        (TelephonyOptions(max_hold_seconds=0), "max_hold_seconds"),
        (TelephonyOptions(max_hold_seconds=10**6), "max_hold_seconds"),
    ],
)
def test_bad_options_name_the_field(options: TelephonyOptions, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        call_metadata(options, SETTINGS)


def amd_form(answered_by: str) -> bytes:
    fields = [("AccountSid", "AC" + "2" * 32), ("CallSid", SID), ("AnsweredBy", answered_by)]
    fields.append(("MachineDetectionDuration", "4200"))
    return "&".join(f"{k}={v}" for k, v in fields).encode()


@pytest.mark.parametrize("word", sorted(ANSWERED_BY))
def test_the_amd_callback_is_one_event_per_verdict(word: str) -> None:
    req = parse_webhook(parse_form(b"callId=c1&kind=amd"), parse_form(amd_form(word)))
    (event,) = to_events(req)
    assert event.kind is EventKind.AMD
    assert event.answered_by == word
    assert event.dedupe_key == f"twilio:{SID}:amd:{word}"


def test_an_amd_callback_without_or_with_a_strange_verdict_is_refused() -> None:
    with pytest.raises(WebhookRejected):
        parse_webhook(parse_form(b"kind=amd"), parse_form(f"CallSid={SID}".encode()))
    with pytest.raises(WebhookRejected):
        parse_webhook(parse_form(b"kind=amd"), parse_form(amd_form("robot")))


@given(st.text(max_size=40))
def test_any_answered_by_is_parsed_or_refused(word: str) -> None:
    from urllib.parse import quote

    form = f"CallSid={SID}&AnsweredBy={quote(word)}".encode()
    try:
        req = parse_webhook(parse_form(b"kind=amd"), parse_form(form))
    except WebhookRejected:
        assert word not in ANSWERED_BY
    else:
        assert req.answered_by in ANSWERED_BY


def test_a_status_callback_with_an_unknown_answered_by_is_kept_without_it() -> None:
    form = f"CallSid={SID}&CallStatus=in-progress&AnsweredBy=robot".encode()
    req = parse_webhook(parse_form(b"kind=status"), parse_form(form))
    assert req.answered_by is None
    (event,) = to_events(req)
    assert event.kind is EventKind.ANSWERED
