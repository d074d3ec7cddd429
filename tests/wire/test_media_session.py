"""MediaSession: golden frames, broken siblings, authentication (1008), limits, fuzzing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.twilio.media import (
    CloseCode,
    Closing,
    Connected,
    Dtmf,
    LocalProtocolError,
    Malformed,
    Mark,
    MarkStatus,
    Media,
    MediaEvent,
    MediaFormat,
    MediaSession,
    SessionState,
    Start,
    Stop,
    _parse_json,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "media"
AC = "AC0123456789abcdef0123456789abcdef"
CA = "CA1111111111111111111111111111aaaa"
MZ = "MZ2222222222222222222222222222bbbb"
TOKEN = "tok.v1.c2VjcmV0LXRva2Vu"


def load(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def streaming(**kwargs: object) -> MediaSession:
    s = MediaSession(**kwargs)  # type: ignore[arg-type]
    assert s.receive_text(load("connected")) == [Connected("Call", "1.0.0")]
    [start] = s.receive_text(load("start"))
    assert isinstance(start, Start)
    return s


def with_field(name: str, path: list[str], value: object) -> str:
    msg = json.loads(load(name))
    d = msg
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value
    return json.dumps(msg)


# -- golden frames ---------------------------------------------------------------------------


def test_golden_stream_in_order() -> None:
    s = MediaSession(expected_call_sid=CA)
    assert s.state is SessionState.AWAITING_START
    events: list[MediaEvent] = []
    for name in ["connected", "start", "media", "dtmf", "mark", "stop"]:
        events.extend(s.receive_text(load(name)))
    connected, start, media, dtmf, mark, stop = events
    assert connected == Connected("Call", "1.0.0")
    assert start == Start(
        stream_sid=MZ,
        call_sid=CA,
        account_sid=AC,
        tracks=("inbound",),
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
        custom_parameters={"token": TOKEN},
        sequence=1,
    )
    assert isinstance(media, Media)
    assert (media.track, media.chunk, media.timestamp_ms, media.sequence) == ("inbound", 1, 5, 2)
    assert media.payload == bytes([0xFF] * 80 + [0x7F, 0x00, 0x80, 0x10] * 20)
    assert len(media.payload) == 160
    assert dtmf == Dtmf("1", "inbound_track", 3)
    assert mark == Mark("utt-1", MarkStatus.UNKNOWN, 4)  # never sent by us
    assert stop == Stop(AC, CA, 5)
    assert s.state is SessionState.STOPPED
    assert s.malformed_count == 0
    assert s.sequence_gaps == 0
    assert s.media_received == 1


def test_outbound_frames_match_golden_exactly() -> None:
    s = streaming()
    media = json.loads(load("media"))["media"]["payload"]
    s.send_media(base64.b64decode(media))
    s.send_mark("utt-1")
    s.send_clear()
    assert s.data_to_send() == [load("out_media"), load("out_mark"), load("out_clear")]
    assert s.data_to_send() == []


def test_start_repr_masks_custom_parameters() -> None:
    s = streaming()
    assert s.start is not None
    assert TOKEN not in repr(s.start)
    assert "token=***" in repr(s.start)
    assert s.start.custom_parameters["token"] == TOKEN
    with pytest.raises(TypeError):
        s.start.custom_parameters["token"] = "x"  # type: ignore[index]


def test_media_repr_has_no_payload() -> None:
    m = Media("inbound", 1, 5, b"\x01" * 160, 2)
    assert "payload" not in repr(m)


# -- broken siblings -------------------------------------------------------------------------

BROKEN_AFTER_START = {
    "media_bad_base64": "payload is not valid base64",
    "media_chunk_not_number": "'chunk' missing or not a decimal number",
    "media_no_sequence": "'sequenceNumber' missing",
    "media_wrong_streamsid": "wrong streamSid",
    "media_payload_null": "'payload' missing",
    "dtmf_bad_digit": "invalid digit",
    "mark_no_name": "'name' missing",
    "unknown_event": "unknown event 'transcription'",
    "not_object": "not a JSON object",
    "no_event": "'event' missing",
    "start_truncated": "not valid JSON",
    "start": "duplicate start",
    "connected": "connected: after start",
}


@pytest.mark.parametrize(("name", "reason"), sorted(BROKEN_AFTER_START.items()))
def test_broken_sibling_is_reported_and_skipped(name: str, reason: str) -> None:
    s = streaming()
    [event] = s.receive_text(load(name))
    assert isinstance(event, Malformed)
    assert reason in event.reason
    assert s.malformed_count == 1
    # the stream goes on: the next good frame still parses
    [media] = s.receive_text(load("media"))
    assert isinstance(media, Media)
    assert s.state is SessionState.STREAMING


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("start_no_callsid", "'callSid' missing"),
        ("start_params_not_strings", "customParameters"),
        ("start_truncated", "not valid JSON"),
        ("media", "before start"),
        ("dtmf", "before start"),
        ("stop", "before start"),
    ],
)
def test_broken_or_early_frames_before_start(name: str, reason: str) -> None:
    s = MediaSession()
    [event] = s.receive_text(load(name))
    assert isinstance(event, Malformed)
    assert reason in event.reason
    assert s.state is SessionState.AWAITING_START
    [start] = s.receive_text(load("start"))
    assert isinstance(start, Start)


def test_binary_frames_are_malformed_not_fatal() -> None:
    s = streaming()
    [event] = s.receive_bytes(b"\x00\x01")
    assert event == Malformed("binary frame (2 bytes)")
    assert s.state is SessionState.STREAMING


def test_messages_after_stop_are_malformed() -> None:
    s = streaming()
    s.receive_text(load("stop"))
    [event] = s.receive_text(load("media"))
    assert isinstance(event, Malformed) and "after stop" in event.reason
    with pytest.raises(LocalProtocolError, match="stopped"):
        s.send_media(b"\xff")


def test_numbers_as_json_ints_are_accepted_but_bools_and_negatives_are_not() -> None:
    s = streaming()
    [ok] = s.receive_text(with_field("media", ["media", "chunk"], 7))
    assert isinstance(ok, Media) and ok.chunk == 7
    for bad in [True, -1, "-1", "1.5", " 1", "", None, "１"]:
        [event] = s.receive_text(with_field("media", ["media", "chunk"], bad))
        assert isinstance(event, Malformed), bad


def test_sequence_gap_is_counted() -> None:
    s = streaming()
    s.receive_text(with_field("media", ["sequenceNumber"], "2"))
    s.receive_text(with_field("media", ["sequenceNumber"], "5"))
    assert s.sequence_gaps == 1


def test_oversized_frame_is_malformed() -> None:
    s = streaming(max_frame_bytes=1024)
    big = with_field("media", ["media", "payload"], base64.b64encode(b"\xff" * 2000).decode())
    [event] = s.receive_text(big)
    assert isinstance(event, Malformed) and "larger than 1024" in event.reason
    # multi-byte characters count in bytes, not characters
    [event] = s.receive_text(with_field("mark", ["mark", "name"], "é" * 600))
    assert isinstance(event, Malformed) and "larger than" in event.reason


# -- authentication: 1008 before any processing ----------------------------------------------


def test_wrong_call_sid_fails_1008_and_discards_later_input() -> None:
    s = MediaSession(expected_call_sid="CA" + "0" * 32)
    s.receive_text(load("connected"))
    events = s.receive_text(load("start"))
    assert events == [Closing(1008, "callSid does not match this stream")]
    assert s.start is None
    assert s.close_expected()
    assert s.close_code == CloseCode.POLICY_VIOLATION
    assert s.failed
    # everything afterwards is discarded, good or bad, text or binary
    for name in ["start", "media", "dtmf", "mark", "stop", "start_truncated"]:
        assert s.receive_text(load(name)) == []
    assert s.receive_bytes(b"x") == []
    assert s.media_received == 0
    with pytest.raises(LocalProtocolError):
        s.send_media(b"\xff")


def test_validate_start_hook_gets_the_token_and_can_reject() -> None:
    seen: list[Start] = []

    def check(start: Start) -> str | None:
        seen.append(start)
        return None if start.custom_parameters.get("token") == "expected" else "bad stream token"

    s = MediaSession(expected_call_sid=CA, validate_start=check)
    assert s.receive_text(load("start")) == [Closing(1008, "bad stream token")]
    assert seen[0].custom_parameters["token"] == TOKEN
    assert s.receive_text(load("media")) == []

    ok = MediaSession(
        validate_start=lambda st: None if st.custom_parameters.get("token") == TOKEN else "no"
    )
    [start] = ok.receive_text(load("start"))
    assert isinstance(start, Start)
    assert not ok.close_expected()


def test_non_mulaw_media_format_is_refused() -> None:
    s = MediaSession()
    text = with_field("start", ["start", "mediaFormat", "sampleRate"], 16000)
    assert s.receive_text(text) == [Closing(1003, "unsupported media format")]


def test_too_many_frames_without_start_fails_1008() -> None:
    s = MediaSession(max_frames_before_start=3)
    assert s.receive_text(load("connected")) == [Connected("Call", "1.0.0")]
    assert len(s.receive_text("garbage")) == 1
    events = s.receive_text(load("media"))
    assert isinstance(events[0], Malformed)
    assert events[1] == Closing(1008, "no valid start within 3 frames")
    assert s.receive_text(load("start")) == []


def test_start_deadline() -> None:
    s = MediaSession(opened_at=100.0)
    assert s.start_deadline == 105.0
    assert not s.start_deadline_passed(104.999)
    assert s.start_deadline_passed(105.0)
    s.receive_text(load("start"))
    assert not s.start_deadline_passed(1000.0)  # started: no longer relevant
    with pytest.raises(LocalProtocolError, match="opened_at"):
        MediaSession().start_deadline_passed(1.0)


def test_fail_and_close() -> None:
    s = streaming()
    s.send_media(b"\xff" * 160)
    s.close()
    assert s.close_expected() and s.close_code == 1000 and not s.failed
    assert len(s.data_to_send()) == 1  # already queued frames still go out
    assert s.receive_text(load("media")) == []
    s.fail(1011, "later")  # no effect once closing
    assert s.close_code == 1000
    with pytest.raises(LocalProtocolError, match="close code"):
        streaming().fail(1005, "reserved")
    t = streaming()
    t.fail(1008, "x" * 500)
    assert len(t.close_reason.encode()) <= 123


def test_connection_lost_discards_everything() -> None:
    s = streaming()
    s.send_media(b"\xff")
    s.connection_lost()
    assert s.state is SessionState.CLOSED
    assert s.data_to_send() == []
    assert s.receive_text(load("media")) == []


# -- outbound and marks ----------------------------------------------------------------------


def test_sending_before_start_is_refused() -> None:
    s = MediaSession()
    s.receive_text(load("connected"))
    for send in (lambda: s.send_media(b"\xff"), lambda: s.send_mark("a"), s.send_clear):
        with pytest.raises(LocalProtocolError, match="before the stream's start"):
            send()
    assert s.data_to_send() == []


def test_send_argument_checks() -> None:
    s = streaming()
    with pytest.raises(LocalProtocolError):
        s.send_media(b"")
    with pytest.raises(LocalProtocolError):
        s.send_mark("")


def echo(name: str, seq: int = 10) -> str:
    return json.dumps(
        {"event": "mark", "sequenceNumber": str(seq), "streamSid": MZ, "mark": {"name": name}}
    )


def test_marks_pending_and_played() -> None:
    s = streaming()
    s.send_media(b"\xff" * 160)
    s.send_mark("a")
    s.send_media(b"\xff" * 160)
    s.send_mark("b")
    assert s.marks_pending == ("a", "b")
    assert s.receive_text(echo("a", 2)) == [Mark("a", MarkStatus.PLAYED, 2)]
    assert s.marks_pending == ("b",)
    [b] = s.receive_text(echo("b", 3))
    assert isinstance(b, Mark) and b.heard
    assert s.marks_pending == ()
    [again] = s.receive_text(echo("b", 4))
    assert again == Mark("b", MarkStatus.UNKNOWN, 4)


def test_clear_turns_pending_marks_into_cleared_echoes() -> None:
    s = streaming()
    s.send_mark("a")
    s.send_mark("b")
    assert s.receive_text(echo("a", 2)) == [Mark("a", MarkStatus.PLAYED, 2)]
    assert s.send_clear() == ["b"]
    assert s.marks_pending == ()
    s.send_mark("c")
    [b] = s.receive_text(echo("b", 3))
    assert b == Mark("b", MarkStatus.CLEARED, 3)
    assert isinstance(b, Mark) and not b.heard
    assert s.receive_text(echo("c", 4)) == [Mark("c", MarkStatus.PLAYED, 4)]


def test_outbound_media_is_base64_of_raw_ulaw() -> None:
    s = streaming()
    audio = bytes(range(256))
    s.send_media(audio)
    [frame] = s.data_to_send()
    msg = json.loads(frame)
    assert msg == {"event": "media", "streamSid": MZ, "media": {"payload": msg["media"]["payload"]}}
    assert base64.b64decode(msg["media"]["payload"]) == audio
    assert (s.media_sent, s.bytes_sent) == (1, 256)


# -- fuzzing: any input yields events, never an exception ------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
keys = ["event", "sequenceNumber", "streamSid", "start", "media", "mark", "dtmf", "stop"]
events = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear", ""])


@st.composite
def mutated_goldens(draw: st.DrawFn) -> str:
    msg = json.loads(load(draw(st.sampled_from(["start", "media", "dtmf", "mark", "stop"]))))
    target = msg
    inner = [k for k in msg if isinstance(msg[k], dict)]
    if inner and draw(st.booleans()):
        target = msg[draw(st.sampled_from(inner))]
    key = draw(st.sampled_from([*target.keys(), *keys]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_values | events)
    return json.dumps(msg)


def check_never_raises(s: MediaSession, text: str) -> None:
    out = s.receive_text(text)
    assert all(
        isinstance(e, Connected | Start | Media | Dtmf | Mark | Stop | Malformed | Closing)
        for e in out
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text_before_and_after_start(text: str) -> None:
    check_never_raises(MediaSession(expected_call_sid=CA), text)
    check_never_raises(streaming(), text)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_any_json(value: object) -> None:
    text = json.dumps(value)
    check_never_raises(MediaSession(), text)
    check_never_raises(streaming(), text)


@settings(max_examples=500, deadline=None)
@given(st.lists(mutated_goldens(), min_size=1, max_size=6))
def test_fuzz_mutated_golden_frames(texts: list[str]) -> None:
    fresh = MediaSession(expected_call_sid=CA, validate_start=lambda st: None)
    started = streaming()
    for text in texts:
        check_never_raises(fresh, text)
        check_never_raises(started, text)
    # whatever happened, a good media frame after it is still understood if streaming
    if started.state is SessionState.STREAMING:
        [media] = started.receive_text(load("media"))
        assert isinstance(media, Media)


# -- fast paths: the common frames take a shortcut that must agree with the generic code -----


def twin_results(
    text: str,
) -> tuple[list[MediaEvent], list[MediaEvent], MediaSession, MediaSession]:
    """``text`` through ``receive_text`` (fast path) and through the generic handler."""
    fast, generic = streaming(), streaming()
    got = fast.receive_text(text)
    generic.frames_received += 1
    msg = json.loads(text)
    if isinstance(msg, dict) and msg.get("event") == "media":
        try:
            want = MediaSession._HANDLERS["media"](generic, msg)
        except Exception as exc:  # _Bad: the generic path's reason
            want = generic._malformed(f"media: {exc}")
    else:
        want = generic.receive_text(text)
        generic.frames_received -= 1
    return got, want, fast, generic


def counters(s: MediaSession) -> tuple[int, ...]:
    return (
        s.frames_received,
        s.media_received,
        s.malformed_count,
        s.sequence_gaps,
        s._last_sequence or -1,
    )


@settings(max_examples=400, deadline=None)
@given(mutated_goldens())
def test_fast_media_path_agrees_with_the_generic_handler(text: str) -> None:
    got, want, fast, generic = twin_results(text)
    assert got == want
    assert counters(fast) == counters(generic)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(max_size=400),
    seq=st.integers(0, 10**12),
    chunk=st.integers(0, 10**9) | st.text(max_size=4),
    padding=st.sampled_from(["", "=", "\n", " ", "A"]),
)
def test_fast_media_path_on_varied_payloads(
    payload: bytes, seq: int, chunk: object, padding: str
) -> None:
    msg = json.loads(load("media"))
    msg["sequenceNumber"] = str(seq)
    msg["media"]["chunk"] = chunk if isinstance(chunk, str) else str(chunk)
    msg["media"]["payload"] = base64.b64encode(payload).decode() + padding
    got, want, fast, generic = twin_results(json.dumps(msg))
    assert got == want
    assert counters(fast) == counters(generic)


def test_fast_media_path_counts_gaps_and_rejects_after_stop() -> None:
    s = streaming()
    [a] = s.receive_text(with_field("media", ["sequenceNumber"], "2"))  # start was 1
    [b] = s.receive_text(with_field("media", ["sequenceNumber"], "9"))
    assert isinstance(a, Media) and isinstance(b, Media)
    assert (a.sequence, b.sequence, s.sequence_gaps, s.media_received) == (2, 9, 1, 2)
    s.receive_text(with_field("stop", ["sequenceNumber"], "10"))
    [bad] = s.receive_text(with_field("media", ["sequenceNumber"], "11"))
    assert bad == Malformed("media: after stop")


@settings(max_examples=200, deadline=None)
@given(audio=st.binary(min_size=1, max_size=500), name=st.text(min_size=1, max_size=40))
def test_outbound_templates_equal_json_dumps(audio: bytes, name: str) -> None:
    s = streaming()
    s.send_media(audio)
    s.send_mark(name)
    s.send_clear()
    media, mark, clear = s.data_to_send()
    dump = MediaSession._dump
    payload = base64.b64encode(audio).decode()
    assert media == dump({"event": "media", "streamSid": MZ, "media": {"payload": payload}})
    assert mark == dump({"event": "mark", "streamSid": MZ, "mark": {"name": name}})
    assert clear == dump({"event": "clear", "streamSid": MZ})


def test_outbound_templates_escape_an_odd_stream_sid() -> None:
    s = MediaSession()
    msg = json.loads(load("start"))
    sid = 'MZ"quote\\slash\u2028é'
    msg["streamSid"] = msg["start"]["streamSid"] = sid
    [start] = s.receive_text(json.dumps(msg))
    assert isinstance(start, Start)
    s.send_media(b"\x00\xff")
    s.send_mark("m")
    media, mark = s.data_to_send()
    assert json.loads(media) == {"event": "media", "streamSid": sid, "media": {"payload": "AP8="}}
    assert json.loads(mark) == {"event": "mark", "streamSid": sid, "mark": {"name": "m"}}


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        json_values.map(json.dumps),
        json_values.map(lambda v: " " + json.dumps(v) + "\n"),
        json_values.map(lambda v: json.dumps(v) + " x"),
        st.text(max_size=40),
        st.sampled_from(["", "\ufeff{}", "{}{}", "[1,]", "NaN", "-Infinity", "1e999", '"\\ud800"']),
    )
)
def test_frame_json_parser_agrees_with_json_loads(text: str) -> None:
    def outcome(parse: object) -> object:
        try:
            return ("ok", repr(parse(text)))  # type: ignore[operator]
        except (ValueError, RecursionError) as exc:
            return ("error", type(exc))

    assert outcome(_parse_json) == outcome(json.loads)


def test_the_messages_split_out_of_the_session_module_are_still_importable_from_it() -> None:
    from voicecall.twilio import media, media_frames

    for name in ("Start", "Media", "Mark", "MarkStatus", "MediaEvent", "Malformed", "StartInfo"):
        assert getattr(media, name) is getattr(media_frames, name)
    assert media._parse_json is media_frames.parse_json
    assert MediaSession._dump is media_frames.dump
