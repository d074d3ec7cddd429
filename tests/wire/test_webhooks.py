"""Twilio webhooks: strict form parsing, typed requests, normalized events and dedupe keys."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from voicecall.calls.model import Direction, EndReason
from voicecall.errors import WebhookRejected
from voicecall.events import EventKind
from voicecall.textrules import problem_in
from voicecall.twilio.forms import _parse_segments
from voicecall.twilio.signature import verify_signature
from voicecall.twilio.webhooks import (
    MAX_SPEECH_CHARS,
    CallDirection,
    CallStatus,
    WebhookKind,
    WebhookRequest,
    build_webhook_url,
    parse_form,
    parse_query,
    parse_webhook,
    to_events,
)

ACCOUNT = "AC" + "0123456789abcdef" * 2
CALL = "CA" + "fedcba9876543210" * 2

# Raw bodies exactly as Twilio form-encodes them (`+` for space, %2B for plus, %3A for colon).
ANSWERED_STATUS = (
    f"Called=%2B15558675310&ToState=CA&CallerCountry=US&Direction=outbound-api&Timestamp=Fri%2C"
    f"+08+Jan+2016+17%3A18%3A38+%2B0000&CallbackSource=call-progress-events&SipResponseCode=200"
    f"&CallerState=CA&ToZip=94105&SequenceNumber=2&CallSid={CALL}&To=%2B15558675310"
    f"&CallerZip=&ToCountry=US&CalledZip=94105&ApiVersion=2010-04-01&CalledCity=SAN+FRANCISCO"
    f"&CallStatus=in-progress&From=%2B15017122661&AccountSid={ACCOUNT}&CalledCountry=US"
    f"&CallerCity=&ToCity=SAN+FRANCISCO&FromCountry=US&Caller=%2B15017122661&FromCity="
    f"&CalledState=CA&FromZip=&AnsweredBy=human&FromState=CA"
).encode()

COMPLETED_STATUS = (
    f"AccountSid={ACCOUNT}&ApiVersion=2010-04-01&CallSid={CALL}&CallStatus=completed"
    f"&Called=%2B15558675310&Caller=%2B15017122661&Direction=outbound-api&From=%2B15017122661"
    f"&To=%2B15558675310&CallbackSource=call-progress-events&SequenceNumber=3"
    f"&Timestamp=Fri%2C+08+Jan+2016+17%3A19%3A40+%2B0000&CallDuration=62&Duration=2"
).encode()

INBOUND_VOICE = (
    f"AccountSid={ACCOUNT}&ApiVersion=2010-04-01&CallSid={CALL}&CallStatus=ringing"
    f"&Called=%2B15558675310&CalledCity=&CalledCountry=US&Caller=%2B14155550100"
    f"&CallerName=Jane+Doe&Direction=inbound&From=%2B14155550100&FromCountry=US"
    f"&To=%2B15558675310&ToCountry=US"
).encode()

GATHER_SPEECH = (
    f"AccountSid={ACCOUNT}&ApiVersion=2010-04-01&CallSid={CALL}&CallStatus=in-progress"
    f"&Called=%2B15558675310&Caller=%2B15017122661&Direction=outbound-api"
    f"&From=%2B15017122661&To=%2B15558675310&Language=en-US"
    f"&SpeechResult=Yes%2C+tomorrow+at+3+works+for+me.&Confidence=0.9335587"
).encode()

GATHER_DIGITS = (
    f"AccountSid={ACCOUNT}&CallSid={CALL}&CallStatus=in-progress&Direction=outbound-api"
    f"&From=%2B15017122661&To=%2B15558675310&Digits=1234%23&FinishedOnKey=%23"
).encode()

GATHER_EMPTY = (
    f"AccountSid={ACCOUNT}&CallSid={CALL}&CallStatus=in-progress&Direction=outbound-api"
    f"&From=%2B15017122661&To=%2B15558675310"
).encode()

Q_STATUS = (("callId", "c0ffee"), ("kind", "status"))
Q_GATHER = (("callId", "c0ffee"), ("kind", "gather"), ("tok", "t0k-3n"), ("turn", "4"))


# -- parse_form -----------------------------------------------------------------------------------


def test_parse_form_decodes_plus_percent_and_keeps_order_and_repeats() -> None:
    body = b"b=2&a=1&StatusCallbackEvent=ringing&StatusCallbackEvent=answered&x=a+b%2Bc%C3%A9&e="
    assert parse_form(body) == (
        ("b", "2"),
        ("a", "1"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("x", "a b+cé"),
        ("e", ""),
    )
    assert parse_form(b"") == ()
    assert parse_form(b"a=1&&b") == (("a", "1"), ("b", ""))
    assert parse_form(b"a=1=2") == (("a", "1=2"),)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"a=%zz", "percent"),
        (b"a=%4", "percent"),
        (b"a%=1", "percent"),
        (b"a=%C3%28", "UTF-8"),
        (b"a=\xff", "UTF-8"),
        (b"=1", "empty name"),
        (b"&".join([b"k=v"] * 201), "too many"),
    ],
)
def test_parse_form_rejects_malformed(body: bytes, fragment: str) -> None:
    with pytest.raises(WebhookRejected) as info:
        parse_form(body)
    assert info.value.http_status == 400
    assert fragment in str(info.value)


def test_parse_form_field_cap_configurable() -> None:
    assert len(parse_form(b"a=1&b=2", max_fields=2)) == 2
    with pytest.raises(WebhookRejected):
        parse_form(b"a=1&b=2&c=3", max_fields=2)


@given(st.binary(max_size=300))
def test_parse_form_any_bytes_parse_or_reject(body: bytes) -> None:
    try:
        fields = parse_form(body)
    except WebhookRejected as exc:
        assert exc.http_status == 400
    else:
        assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in fields)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=20)), min_size=0, max_size=20
    )
)
def test_parse_form_roundtrips_stdlib_urlencode(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode()
    assert parse_form(body) == tuple(pairs)


def _reference_parse_form(body: bytes) -> tuple[tuple[str, str], ...]:
    """The plain field-by-field reading of the rules (what the fast path must equal)."""
    segments = [seg for seg in body.split(b"&") if seg]
    return _parse_segments(segments)


_FORM_BYTES = st.lists(
    st.sampled_from(
        [
            b"a",
            b"Z",
            b"0",
            b"9",
            b"f",
            b"F",
            b"=",
            b"&",
            b"+",
            b"%",
            b"%2",
            b"%2B",
            b"%C3",
            b"%A9",
            b"%zz",
            b"%26",
            b"%3D",
            "é".encode(),
            b"\xc3",
            b"\xa9",
            b"\xff",
            b" ",
            b"~",
        ]
    ),
    max_size=40,
).map(b"".join)


@given(_FORM_BYTES)
def test_parse_form_fast_path_equals_the_field_by_field_reading(body: bytes) -> None:
    try:
        expected: tuple[tuple[str, str], ...] | str = _reference_parse_form(body)
    except WebhookRejected as exc:
        expected = exc.message
    try:
        got: tuple[tuple[str, str], ...] | str = parse_form(body)
    except WebhookRejected as exc:
        got = exc.message
    assert got == expected


# -- build_webhook_url ----------------------------------------------------------------------------


def test_build_webhook_url_is_deterministic_and_sorted() -> None:
    url = build_webhook_url(
        "https://h.example/twilio/voice", call_id="c1", kind="gather", turn=3, token="tk"
    )
    assert url == "https://h.example/twilio/voice?callId=c1&kind=gather&tok=tk&turn=3"
    assert build_webhook_url("https://h/x?a=1#rc=3&rp=all", call_id=None, kind="status") == (
        "https://h/x?a=1&kind=status#rc=3&rp=all"
    )
    assert build_webhook_url("https://h/x", call_id="c1", kind="voice") == (
        "https://h/x?callId=c1&kind=voice"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"call_id": "c1", "kind": "nope"},
        {"call_id": "c 1", "kind": "voice"},
        {"call_id": "c1", "kind": "gather"},
        {"call_id": "c1", "kind": "gather", "turn": 1},
        {"call_id": "c1", "kind": "gather", "turn": -1, "token": "t"},
        {"call_id": "c1", "kind": "gather", "turn": 1, "token": "a&b"},
    ],
)
def test_build_webhook_url_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_webhook_url("https://h/x", **kwargs)  # type: ignore[arg-type]


def test_built_url_parses_back() -> None:
    url = build_webhook_url("https://h/x", call_id="abc", kind="gather", turn=7, token="T-1_x.~")
    req = parse_webhook(parse_query(url.partition("?")[2]), parse_form(GATHER_DIGITS))
    assert (req.kind, req.call_id, req.turn, req.turn_token) == (
        WebhookKind.GATHER,
        "abc",
        7,
        "T-1_x.~",
    )


# -- golden parses --------------------------------------------------------------------------------


def test_golden_answered_status_callback() -> None:
    req = parse_webhook(Q_STATUS, parse_form(ANSWERED_STATUS))
    assert req == WebhookRequest(
        kind=WebhookKind.STATUS,
        call_sid=CALL,
        call_status=CallStatus.IN_PROGRESS,
        call_id="c0ffee",
        account_sid=ACCOUNT,
        direction=CallDirection.OUTBOUND_API,
        from_="+15017122661",
        to="+15558675310",
        caller="+15017122661",
        called="+15558675310",
        sequence_number=2,
        timestamp=1452273518.0,
        answered_by="human",
        callback_source="call-progress-events",
    )
    (event,) = to_events(req)
    assert event.kind is EventKind.ANSWERED
    assert event.dedupe_key == f"twilio:{CALL}:status:2:in-progress"
    assert event.direction is Direction.OUTBOUND
    assert (event.call_id, event.provider_call_id, event.sequence) == ("c0ffee", CALL, 2)
    assert event.answered_by == "human"


def test_golden_completed_status_callback() -> None:
    req = parse_webhook(Q_STATUS, parse_form(COMPLETED_STATUS))
    assert (req.call_status, req.call_duration, req.sequence_number) == (
        CallStatus.COMPLETED,
        62,
        3,
    )
    (event,) = to_events(req)
    assert event.kind is EventKind.ENDED
    assert event.end_reason is EndReason.COMPLETED
    assert event.duration_seconds == 62
    assert event.timestamp == 1452273580.0
    assert event.dedupe_key == f"twilio:{CALL}:status:3:completed"


def test_golden_inbound_voice_request() -> None:
    req = parse_webhook((), parse_form(INBOUND_VOICE))
    assert req.kind is WebhookKind.VOICE
    assert req.call_id is None and req.direction is CallDirection.INBOUND
    (event,) = to_events(req)
    assert event.kind is EventKind.RINGING
    assert event.direction is Direction.INBOUND
    assert (event.from_number, event.to_number) == ("+14155550100", "+15558675310")
    assert event.dedupe_key == f"twilio:{CALL}:voice:ringing"


def test_golden_gather_speech() -> None:
    req = parse_webhook(Q_GATHER, parse_form(GATHER_SPEECH))
    assert req.speech_result == "Yes, tomorrow at 3 works for me."
    assert req.confidence == pytest.approx(0.9335587)
    (event,) = to_events(req)
    assert event.kind is EventKind.SPEECH
    assert (event.transcript, event.turn) == ("Yes, tomorrow at 3 works for me.", 4)
    assert event.dedupe_key.startswith(f"twilio:{CALL}:gather:4:t0k-3n:")
    # a redelivery is the same event; another answer to the same <Gather> is not
    (again,) = to_events(parse_webhook(Q_GATHER, parse_form(GATHER_SPEECH)))
    assert again.dedupe_key == event.dedupe_key
    other = GATHER_SPEECH.replace(b"works", b"suits")
    (second,) = to_events(parse_webhook(Q_GATHER, parse_form(other)))
    assert second.transcript != event.transcript and second.dedupe_key != event.dedupe_key


def test_golden_gather_digits_and_empty() -> None:
    (event,) = to_events(parse_webhook(Q_GATHER, parse_form(GATHER_DIGITS)))
    assert (event.kind, event.digits, event.turn) == (EventKind.DTMF, "1234#", 4)
    assert to_events(parse_webhook(Q_GATHER, parse_form(GATHER_EMPTY))) == []
    blank = GATHER_EMPTY + b"&SpeechResult=+++&Digits="
    assert to_events(parse_webhook(Q_GATHER, parse_form(blank))) == []


def test_fixtures_verify_when_signed_by_the_oracle() -> None:
    """The golden bodies, signed as Twilio would, verify through parse_form + verify_signature."""
    url = build_webhook_url(
        "https://voice.example.com/twilio/voice", call_id="c0ffee", kind="status"
    )
    for body in (ANSWERED_STATUS, COMPLETED_STATUS):
        form = parse_form(body)
        validator_params: dict[str, str] = dict(form)
        sig = RequestValidator("tok3n").compute_signature(url, validator_params)
        assert verify_signature(url, form, sig, "tok3n").ok


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        ("queued", None, None),
        ("initiated", EventKind.INITIATED, None),
        ("ringing", EventKind.RINGING, None),
        ("in-progress", EventKind.ANSWERED, None),
        ("completed", EventKind.ENDED, EndReason.COMPLETED),
        ("busy", EventKind.ENDED, EndReason.BUSY),
        ("no-answer", EventKind.ENDED, EndReason.NO_ANSWER),
        ("failed", EventKind.ENDED, EndReason.FAILED),
        ("canceled", EventKind.ENDED, EndReason.CANCELED),
    ],
)
def test_status_mapping(status: str, kind: EventKind | None, reason: EndReason | None) -> None:
    form = (("CallSid", CALL), ("CallStatus", status), ("SequenceNumber", "0"))
    events = to_events(parse_webhook(Q_STATUS, form))
    if kind is None:
        assert events == []
    else:
        (event,) = events
        assert (event.kind, event.end_reason) == (kind, reason)


@pytest.mark.parametrize(
    ("status", "kind"),
    [("ringing", EventKind.RINGING), ("in-progress", EventKind.ANSWERED), ("completed", None)],
)
def test_voice_mapping(status: str, kind: EventKind | None) -> None:
    events = to_events(parse_webhook((), (("CallSid", CALL), ("CallStatus", status))))
    assert [e.kind for e in events] == ([kind] if kind else [])


def test_machine_answer_is_noted() -> None:
    form = (("CallSid", CALL), ("CallStatus", "in-progress"), ("AnsweredBy", "machine_end_beep"))
    (event,) = to_events(parse_webhook(Q_STATUS, form))
    assert event.kind is EventKind.ANSWERED and event.answered_by == "machine_end_beep"


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("inbound", Direction.INBOUND),
        ("outbound-api", Direction.OUTBOUND),
        ("outbound-dial", Direction.OUTBOUND),
    ],
)
def test_direction_mapping(direction: str, expected: Direction) -> None:
    form = (("CallSid", CALL), ("CallStatus", "ringing"), ("Direction", direction))
    (event,) = to_events(parse_webhook(Q_STATUS, form))
    assert event.direction is expected


# -- rejections -----------------------------------------------------------------------------------

BASE_FORM = (("CallSid", CALL), ("CallStatus", "in-progress"))


@pytest.mark.parametrize(
    ("query", "form"),
    [
        ((), (("CallStatus", "ringing"),)),
        ((), (("CallSid", "CA123"), ("CallStatus", "ringing"))),
        ((), (("CallSid", CALL.upper()), ("CallStatus", "ringing"))),
        ((), (("CallSid", CALL), ("CallStatus", "answered"))),
        ((), (("CallSid", CALL),)),
        ((), (*BASE_FORM, ("Direction", "sideways"))),
        ((), (*BASE_FORM, ("SequenceNumber", "two"))),
        ((), (*BASE_FORM, ("SequenceNumber", "-1"))),
        ((), (*BASE_FORM, ("CallDuration", "1.5"))),
        ((), (*BASE_FORM, ("Confidence", "high"))),
        ((), (*BASE_FORM, ("Confidence", "nan"))),
        ((), (*BASE_FORM, ("Confidence", "1.5"))),
        ((), (*BASE_FORM, ("Digits", "12<a>"))),
        ((), (*BASE_FORM, ("AccountSid", "ACnope"))),
        ((), (*BASE_FORM, ("SpeechResult", "x" * (MAX_SPEECH_CHARS + 1)))),
        ((), (*BASE_FORM, ("From", "+1" * 300))),
        ((), (*BASE_FORM, ("CallSid", "CA" + "0" * 32))),  # repeated with another value
        ((("kind", "sms"),), BASE_FORM),
        ((("kind", "gather"),), BASE_FORM),
        ((("kind", "gather"), ("turn", "1")), BASE_FORM),
        ((("kind", "gather"), ("turn", "x"), ("tok", "t")), BASE_FORM),
        ((("kind", "gather"), ("turn", "1"), ("tok", "a b")), BASE_FORM),
        ((("callId", "../etc"),), BASE_FORM),
        ((("kind", "status"), ("kind", "voice")), BASE_FORM),
    ],
)
def test_parse_webhook_rejects(
    query: tuple[tuple[str, str], ...], form: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(WebhookRejected) as info:
        parse_webhook(query, form)
    assert info.value.http_status == 400


def test_identical_repeat_is_accepted_and_limits_are_inclusive() -> None:
    form = (*BASE_FORM, ("CallSid", CALL), ("SpeechResult", "y" * MAX_SPEECH_CHARS))
    assert parse_webhook((), form).speech_result == "y" * MAX_SPEECH_CHARS


@pytest.mark.parametrize(
    "value", ["", "yesterday", "Fri, 99 Jan 2016 17:18:38 +0000", "Fri, 08 Jan 99999 1"]
)
def test_bad_timestamp_is_none(value: str) -> None:
    assert parse_webhook((), (*BASE_FORM, ("Timestamp", value))).timestamp is None


@given(
    st.sampled_from(["Mon", "Fri", "Sun"]),
    st.integers(0, 32),
    st.sampled_from(["Jan", "Feb", "Jun", "Dec"]),
    st.integers(1000, 9999),
    st.integers(0, 61),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["+0000", "-0000", "+0100", "-0830", "GMT"]),
)
def test_timestamp_fast_path_equals_the_rfc2822_parser(
    day_name: str, day: int, month: str, year: int, h: int, m: int, s: int, zone: str
) -> None:
    value = f"{day_name}, {day:02d} {month} {year} {h:02d}:{m:02d}:{s:02d} {zone}"
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        expected: float | None = parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        expected = None
    assert parse_webhook((), (*BASE_FORM, ("Timestamp", value))).timestamp == expected


def test_timestamp_minus_zero_zone_is_utc() -> None:
    req = parse_webhook((), (*BASE_FORM, ("Timestamp", "Fri, 08 Jan 2016 17:18:38 -0000")))
    assert req.timestamp == 1452273518.0


# -- dedupe keys ----------------------------------------------------------------------------------


def test_dedupe_keys_are_deterministic_per_delivery() -> None:
    keys_a = [e.dedupe_key for e in to_events(parse_webhook(Q_STATUS, parse_form(ANSWERED_STATUS)))]
    keys_b = [e.dedupe_key for e in to_events(parse_webhook(Q_STATUS, parse_form(ANSWERED_STATUS)))]
    assert keys_a == keys_b


def test_dedupe_keys_depend_on_signed_fields_only() -> None:
    """Twilio's retry differs only in unsigned headers (I-Twilio-Idempotency-Token), which are
    not even an input; fields that do not identify the delivery do not change the key."""
    base = parse_webhook(Q_STATUS, parse_form(ANSWERED_STATUS))
    (key,) = [e.dedupe_key for e in to_events(base)]
    same = dataclasses.replace(base, timestamp=None, from_="+19999999999", caller=None)
    assert [e.dedupe_key for e in to_events(same)] == [key]
    for changed in (
        dataclasses.replace(base, sequence_number=5),
        dataclasses.replace(base, call_status=CallStatus.RINGING),
        dataclasses.replace(base, call_sid="CA" + "1" * 32),
    ):
        assert [e.dedupe_key for e in to_events(changed)] != [key]


def test_gather_key_binds_turn_and_token() -> None:
    """Field lesson: a late <Gather> result must not satisfy a newer question."""
    form = parse_form(GATHER_SPEECH)
    k4 = to_events(parse_webhook(Q_GATHER, form))[0]
    k5 = to_events(parse_webhook((*Q_GATHER[:2], ("tok", "t0k-3n"), ("turn", "5")), form))[0]
    other_tok = to_events(parse_webhook((*Q_GATHER[:2], ("tok", "other"), ("turn", "4")), form))[0]
    assert len({k4.dedupe_key, k5.dedupe_key, other_tok.dedupe_key}) == 3
    assert (k4.turn, k5.turn) == (4, 5)


# -- fuzz -----------------------------------------------------------------------------------------

field_names = st.sampled_from(
    [
        "CallSid",
        "CallStatus",
        "Direction",
        "SequenceNumber",
        "CallDuration",
        "Confidence",
        "SpeechResult",
        "DialCallStatus",
        "DialCallSid",
        "Digits",
        "Timestamp",
        "AccountSid",
        "AnsweredBy",
        "From",
        "Other",
    ]
)
field_values = st.one_of(
    st.sampled_from(
        [
            CALL,
            ACCOUNT,
            "in-progress",
            "completed",
            "inbound",
            "0",
            "12",
            "0.5",
            "1#",
            "",
            "nan",
            "busy",
            "no-answer",
        ]
    ),
    st.text(max_size=20),
)
query_names = st.sampled_from(["callId", "kind", "turn", "tok", "x"])
query_values = st.one_of(
    st.sampled_from(["voice", "status", "gather", "whisper", "dial", "3", "abc"]),
    st.text(max_size=8),
)


@given(
    query=st.lists(st.tuples(query_names, query_values), max_size=5),
    form=st.lists(st.tuples(field_names, field_values), max_size=14),
)
def test_parse_webhook_only_raises_webhook_rejected(
    query: list[tuple[str, str]], form: list[tuple[str, str]]
) -> None:
    try:
        req = parse_webhook(query, form)
    except WebhookRejected as exc:
        assert exc.http_status == 400
        return
    for event in to_events(req):
        assert event.provider_call_id == req.call_sid
        assert event.dedupe_key.startswith(f"twilio:{req.call_sid}:")


@given(body=st.binary(max_size=200), qs=st.binary(max_size=40))
def test_bytes_to_events_only_raises_webhook_rejected(body: bytes, qs: bytes) -> None:
    with contextlib.suppress(WebhookRejected):
        to_events(parse_webhook(parse_query(qs), parse_form(body)))


# -- control characters in what callers say (issue 11, defect 3) ----------------------------------


def test_controls_in_speech_and_digits_are_stripped_from_the_signed_form() -> None:
    body = urlencode(
        [
            ("CallSid", CALL),
            ("CallStatus", "in-progress"),
            ("SpeechResult", "yes\x00 it\x1b is\x7f me\u0085"),
            ("Confidence", "0.9"),
        ]
    ).encode()
    (event,) = to_events(parse_webhook(Q_GATHER, parse_form(body)))
    assert event.kind is EventKind.SPEECH and event.transcript == "yes it is me"
    digits = urlencode([*BASE_FORM, ("Digits", "12\x00#\x0b")]).encode()
    (event,) = to_events(parse_webhook(Q_GATHER, parse_form(digits)))
    assert event.kind is EventKind.DTMF and event.digits == "12#"
    only_controls = urlencode([*BASE_FORM, ("SpeechResult", "\x00\x01"), ("Digits", "\x00")])
    assert to_events(parse_webhook(Q_GATHER, parse_form(only_controls.encode()))) == []


@pytest.mark.parametrize("name", ["From", "To", "Caller", "Called", "AnsweredBy"])
def test_controls_in_labels_are_refused_with_400(name: str) -> None:
    with pytest.raises(WebhookRejected, match=f"{name} contains a control character") as info:
        parse_webhook((), (*BASE_FORM, (name, "+1415555\x000100")))
    assert info.value.http_status == 400


@given(st.text(max_size=200))
def test_any_speech_result_is_kept_storable(text: str) -> None:
    form = (*BASE_FORM, ("SpeechResult", text))
    events = to_events(parse_webhook(Q_GATHER, form))
    kept = "".join(ch for ch in text if ch.isprintable() or ch in "\t\n\r" or ord(ch) > 0x9F)
    kept = "".join(ch for ch in kept if not 0xD800 <= ord(ch) <= 0xDFFF).strip()
    if not kept:
        assert events == []
        return
    (event,) = events
    assert event.transcript == kept
    assert problem_in(event.transcript) is None


# -- transfers: the whisper and the <Dial action> -----------------------------------------------

LEG = "CA" + "0123456789abcdef" * 2
Q_DIAL = (("callId", "c0ffee"), ("kind", "dial"), ("tok", "tr4nsf3r"), ("turn", "2"))
DIAL_BUSY = (
    b"AccountSid=" + ACCOUNT.encode() + b"&CallSid=" + CALL.encode() + b"&CallStatus=in-progress"
    b"&Direction=outbound-api&DialCallStatus=busy&DialCallSid="
    + LEG.encode()
    + b"&DialCallDuration=0"
)


def test_a_dial_action_carries_its_result_and_no_event() -> None:
    req = parse_webhook(Q_DIAL, parse_form(DIAL_BUSY))
    assert (req.kind.value, req.turn, req.turn_token) == ("dial", 2, "tr4nsf3r")
    assert (req.dial_call_status, req.dial_call_sid) == ("busy", LEG)
    assert to_events(req) == []  # the transfer code answers and deduplicates it


@pytest.mark.parametrize(
    ("query", "body", "why"),
    [
        (Q_DIAL, DIAL_BUSY.replace(b"DialCallStatus=busy", b"DialCallStatus=ringing"), "Dial"),
        (Q_DIAL, DIAL_BUSY.replace(b"DialCallStatus=busy&", b""), "DialCallStatus"),
        (Q_DIAL, DIAL_BUSY.replace(LEG.encode(), b"CAnope"), "DialCallSid"),
        (Q_DIAL[:2], DIAL_BUSY, "turn and tok"),
        ((("callId", "c0ffee"), ("kind", "whisper")), DIAL_BUSY, "turn and tok"),
    ],
)
def test_bad_dial_and_whisper_requests_are_400(
    query: tuple[tuple[str, str], ...], body: bytes, why: str
) -> None:
    with pytest.raises(WebhookRejected, match=why) as err:
        parse_webhook(query, parse_form(body))
    assert err.value.http_status == 400


def test_transfer_urls_are_signed_routing() -> None:
    url = build_webhook_url(
        "https://voice.example.com/twilio/voice",
        call_id="c0ffee",
        kind="whisper",
        turn=2,
        token="tr4nsf3r",
    )
    assert url.endswith("?callId=c0ffee&kind=whisper&tok=tr4nsf3r&turn=2")
    with pytest.raises(ValueError, match="turn and token"):
        build_webhook_url("https://v.example.com/", call_id="c", kind="dial")
