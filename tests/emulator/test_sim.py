"""The pure call simulator, driven in virtual time (no sockets, no sleeps)."""

from __future__ import annotations

import email.utils
import re

import pytest

from voicecall.emulator.sim import CallStatus, InvalidCallState, Purpose, SimConfig
from voicecall.emulator.vtime import ACCOUNT, T0, make

VOICE_KEYS = {
    "AccountSid",
    "ApiVersion",
    "CallSid",
    "CallStatus",
    "Called",
    "Caller",
    "Direction",
    "From",
    "To",
}
CALLBACK_KEYS = VOICE_KEYS | {"CallbackSource", "SequenceNumber", "Timestamp"}
ALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})


def statuses(d):
    return [e["status"] for e in d.sim.timeline if e["kind"] == "status"]


# ---------------------------------------------------------------- lifecycle per outcome


def test_answered_call_lifecycle_and_every_event():
    d = make("<Response><Say>Hi</Say></Response>", status_callback_events=ALL_EVENTS)
    d.start().run()
    assert statuses(d) == ["initiated", "ringing", "in-progress", "completed"]
    assert [dict(c.params)["CallStatus"] for c in d.callbacks] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert d.sim.status is CallStatus.COMPLETED
    assert d.finished and d.finished[0].status is CallStatus.COMPLETED


def test_only_completed_callback_when_events_absent():
    d = make("<Response><Say>Hi</Say></Response>")
    d.start().run()
    assert [dict(c.params)["CallStatus"] for c in d.callbacks] == ["completed"]
    assert dict(d.callbacks[0].params)["SequenceNumber"] == "0"


def test_no_callbacks_without_status_callback_url():
    d = make("<Response/>", status_callback=None, status_callback_events=ALL_EVENTS)
    d.start().run()
    assert d.callbacks == []
    assert d.sim.status is CallStatus.COMPLETED


@pytest.mark.parametrize(
    ("script", "expected", "events"),
    [
        ({"outcome": "busy", "answer_after_ms": 500}, "busy", ["initiated", "ringing", "busy"]),
        ({"outcome": "failed"}, "failed", ["initiated", "failed"]),
        ({"outcome": "no-answer"}, "no-answer", ["initiated", "ringing", "no-answer"]),
        # Twilio rings ~5 s past Timeout (60): 66 s is too late
        ({"answer_after_ms": 66_000}, "no-answer", ["initiated", "ringing", "no-answer"]),
    ],
)
def test_unanswered_outcomes(script, expected, events):
    d = make("<Response/>", script=script, status_callback_events=ALL_EVENTS)
    d.start().run()
    assert d.sim.status.value == expected
    assert statuses(d) == events
    assert d.fetches == []  # never answered: TwiML never fetched
    last = dict(d.callbacks[-1].params)
    assert last["CallStatus"] == expected
    assert last["CallDuration"] == "0"


def test_ring_timeout_sets_no_answer_time():
    d = make("<Response/>", script={"outcome": "no-answer"}, timeout=7)
    d.start().run()
    ring = next(e for e in d.sim.timeline if e.get("status") == "ringing")
    end = next(e for e in d.sim.timeline if e.get("status") == "no-answer")
    assert end["at"] - ring["at"] == pytest.approx(7.0 + 5.0)  # Twilio's ~5 s buffer


def test_ring_buffer_lets_a_late_answer_in():
    d = make("<Response/>", script={"answer_after_ms": 62_000})
    d.start().run()
    assert "in-progress" in statuses(d)


def test_answer_after_ms_is_respected():
    d = make("<Response/>", script={"answer_after_ms": 2500})
    d.start().run()
    ring = next(e for e in d.sim.timeline if e.get("status") == "ringing")
    ans = next(e for e in d.sim.timeline if e.get("status") == "in-progress")
    assert ans["at"] - ring["at"] == pytest.approx(2.5)


# ---------------------------------------------------------------- golden parameter sets


def test_status_callback_golden_params():
    d = make("<Response><Pause length='3'/></Response>", status_callback_events=ALL_EVENTS)
    d.start().run()
    cbs = [dict(c.params) for c in d.callbacks]
    for i, cb in enumerate(cbs):
        keys = set(cb)
        expected = CALLBACK_KEYS | ({"CallDuration"} if cb["CallStatus"] == "completed" else set())
        assert keys == expected, cb
        assert cb["AccountSid"] == ACCOUNT
        assert cb["ApiVersion"] == "2010-04-01"
        assert cb["CallbackSource"] == "call-progress-events"
        assert cb["SequenceNumber"] == str(i)
        assert cb["Direction"] == "outbound-api"
        assert cb["Called"] == cb["To"] == "+15551230001"
        assert cb["Caller"] == cb["From"] == "+15557654321"
        assert re.fullmatch(r"CA[0-9a-f]{32}", cb["CallSid"])
        # RFC 2822 with +0000, parseable, equal to the event time (to the second)
        assert re.fullmatch(
            r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000", cb["Timestamp"]
        )
        assert email.utils.parsedate_to_datetime(cb["Timestamp"]).timestamp() >= int(T0)
    assert cbs[-1]["CallDuration"] == "3"
    answered = [c for c in cbs if c["CallStatus"] == "in-progress"]
    assert len(answered) == 1  # the `answered` event carries in-progress


def test_twiml_fetch_carries_voice_params():
    d = make("<Response/>", method="POST")
    d.start().run()
    (fetch,) = d.fetches
    assert fetch.purpose is Purpose.TWIML
    assert fetch.url == "https://app.example.com/voice"
    params = dict(fetch.params)
    assert set(params) == VOICE_KEYS
    assert params["CallStatus"] == "in-progress"
    assert all(isinstance(v, str) for v in params.values())


def test_machine_detection_adds_answered_by():
    d = make(
        "<Response/>",
        machine_detection="Enable",
        script={"answered_by": "machine_start"},
    )
    d.start().run()
    assert dict(d.fetches[0].params)["AnsweredBy"] == "machine_start"
    assert dict(d.callbacks[-1].params)["AnsweredBy"] == "machine_start"


# ---------------------------------------------------------------- TwiML verbs


def test_say_duration_from_words_and_heard_record():
    cfg = SimConfig(words_per_minute=120.0)
    d = make("<Response><Say voice='Polly.Joanna'>one two three four</Say></Response>", config=cfg)
    d.start().run()
    (heard,) = d.sim.heard
    assert heard.text == "one two three four"
    assert heard.voice == "Polly.Joanna"
    assert heard.end - heard.start == pytest.approx(2.0)  # 4 words at 120 wpm
    assert d.sim.end_time == pytest.approx(heard.end)


def test_say_loop_repeats():
    d = make("<Response><Say loop='3'>hey</Say></Response>")
    d.start().run()
    assert [h.text for h in d.sim.heard] == ["hey", "hey", "hey"]


def test_play_and_pause_take_time():
    d = make(
        "<Response><Play>https://x/a.wav</Play><Pause length='2'/><Play digits='12'/></Response>",
        media={"https://x/a.wav": b"\xff" * 12000},  # 1.5 s
    )
    d.start().run()
    kinds = [(h.kind, h.text) for h in d.sim.heard]
    assert kinds == [("play", "https://x/a.wav"), ("digits", "12")]
    assert d.sim.heard[1].start - d.sim.heard[0].start == pytest.approx(3.5)


def test_document_end_completes_the_call():
    d = make("<Response><Pause length='1'/></Response>")
    d.start().run()
    assert d.sim.status is CallStatus.COMPLETED
    assert any(e["kind"] == "document-ended" for e in d.sim.timeline)


def test_hangup_ends_immediately_and_skips_the_rest():
    d = make("<Response><Hangup/><Say>never</Say></Response>")
    d.start().run()
    assert d.sim.status is CallStatus.COMPLETED
    assert d.sim.heard == []


def test_redirect_fetches_relative_url_and_runs_it():
    def answer(req):
        if req.url.endswith("/voice"):
            return "<Response><Redirect method='GET'>next?step=2</Redirect></Response>"
        return "<Response><Say>second</Say></Response>"

    d = make(answer)
    d.start().run()
    redirect = d.fetches[1]
    assert redirect.purpose is Purpose.REDIRECT
    assert redirect.url == "https://app.example.com/next?step=2"
    assert redirect.method == "GET"
    assert [h.text for h in d.sim.heard] == ["second"]


def test_gather_speech_posts_speech_result_to_action():
    def answer(req):
        if req.purpose is Purpose.GATHER_ACTION:
            return "<Response><Say>got it</Say></Response>"
        return (
            "<Response><Gather input='speech' action='/turn' speechTimeout='auto'>"
            "<Say>What would you like?</Say></Gather><Say>nothing heard</Say></Response>"
        )

    d = make(answer, script={"replies": [{"speech": "a table for two", "confidence": 0.75}]})
    d.start().run()
    post = next(r for r in d.fetches if r.purpose is Purpose.GATHER_ACTION)
    params = dict(post.params)
    assert post.url == "https://app.example.com/turn"
    assert post.method == "POST"
    assert params["SpeechResult"] == "a table for two"
    assert params["Confidence"] == "0.75"
    assert set(params) >= VOICE_KEYS
    assert [h.text for h in d.sim.heard] == ["What would you like?", "got it"]
    assert d.sim.gather_posts[0]["params"]["SpeechResult"] == "a table for two"


def test_gather_default_action_is_the_current_document():
    calls = []

    def answer(req):
        calls.append(req)
        if len(calls) == 1:
            return "<Response><Gather input='dtmf' numDigits='3'/></Response>"
        return "<Response/>"

    d = make(answer, script={"replies": [{"digits": "12345"}]})
    d.start().run()
    post = calls[1]
    assert post.purpose is Purpose.GATHER_ACTION
    assert post.url == "https://app.example.com/voice"
    assert dict(post.params)["Digits"] == "123"


def test_gather_digits_finish_on_key_and_timeout():
    seen = []

    def answer(req):
        seen.append(req)
        if req.purpose is Purpose.TWIML:
            return "<Response><Gather action='/g' timeout='4'/></Response>"
        return "<Response/>"

    d = make(answer, script={"replies": [{"digits": "42#9"}]})
    d.start().run()
    assert dict(seen[-1].params)["Digits"] == "42"

    d2 = make(answer, script={"replies": [{"digits": "42"}], "reply_delay_ms": 0})
    d2.start().run()
    ans = next(e for e in d2.sim.timeline if e.get("status") == "in-progress")
    post_t = next(e for e in d2.sim.timeline if e["kind"] == "gather-result")
    # two digits (0.25 s each) then `timeout` seconds waiting for more
    assert post_t["at"] - ans["at"] == pytest.approx(0.5 + 4.0)


def test_gather_no_input_continues_with_next_verb():
    d = make(
        "<Response><Gather input='speech' timeout='3' action='/g'><Say>Hello?</Say></Gather>"
        "<Say>Goodbye</Say></Response>"
    )
    d.start().run()
    assert not [r for r in d.fetches if r.purpose is Purpose.GATHER_ACTION]
    assert [h.text for h in d.sim.heard] == ["Hello?", "Goodbye"]
    assert any(e["kind"] == "gather-no-input" for e in d.sim.timeline)


def test_gather_action_on_empty_result_posts_anyway():
    def answer(req):
        if req.purpose is Purpose.GATHER_ACTION:
            return "<Response/>"
        return (
            "<Response><Gather input='speech' timeout='1' action='/g' "
            "actionOnEmptyResult='true'/></Response>"
        )

    d = make(answer)
    d.start().run()
    post = next(r for r in d.fetches if r.purpose is Purpose.GATHER_ACTION)
    assert "SpeechResult" not in dict(post.params)


def test_speech_reply_to_dtmf_only_gather_is_not_accepted():
    d = make("<Response><Gather input='dtmf' action='/g'/></Response>", script={"replies": ["hi"]})
    d.start().run()
    assert not [r for r in d.fetches if r.purpose is Purpose.GATHER_ACTION]
    assert any(e["kind"] == "callee-ignored-input" for e in d.sim.timeline)


def test_successive_gathers_consume_successive_replies():
    answers = iter(
        [
            "<Response><Gather input='speech' action='/t1'/></Response>",
            "<Response><Gather input='speech' action='/t2'/></Response>",
            "<Response><Gather input='speech dtmf' action='/t3'/></Response>",
            "<Response/>",
        ]
    )
    d = make(lambda req: next(answers), script={"replies": ["first", "second", {"digits": "7#"}]})
    d.start().run()
    posts = [dict(r.params) for r in d.fetches if r.purpose is Purpose.GATHER_ACTION]
    assert [p.get("SpeechResult") or p.get("Digits") for p in posts] == ["first", "second", "7"]


def test_connect_stream_waits_for_the_socket_then_continues():
    d = make(
        "<Response><Connect><Stream url='wss://media.example.com/s'>"
        "<Parameter name='token' value='abc'/></Stream></Connect><Say>after</Say></Response>"
    )
    d.start().run(until=T0 + 100)
    (opened,) = d.opened
    assert opened.bidirectional
    assert opened.stream.parameters == (("token", "abc"),)
    assert re.fullmatch(r"MZ[0-9a-f]{32}", opened.stream_sid)
    assert d.sim.status is CallStatus.IN_PROGRESS  # blocked on the stream
    d.feed(d.sim.stream_ended(opened.stream_sid, d.now, "app closed"))
    d.run()
    assert [h.text for h in d.sim.heard] == ["after"]
    assert d.sim.status is CallStatus.COMPLETED


def test_start_stream_forks_and_goes_on_and_is_closed_at_the_end():
    d = make(
        "<Response><Start><Stream name='fork' url='wss://m/s' track='both_tracks'/></Start>"
        "<Say>hi</Say></Response>"
    )
    d.start().run()
    assert len(d.opened) == 1 and not d.opened[0].bidirectional
    assert [h.text for h in d.sim.heard] == ["hi"]
    assert [c.stream_sid for c in d.closed] == [d.opened[0].stream_sid]


def test_inline_twiml_needs_no_fetch():
    d = make(twiml="<Response><Say>inline</Say></Response>")
    d.start().run()
    assert d.fetches == []
    assert [h.text for h in d.sim.heard] == ["inline"]


def test_a_verb_the_emulator_cannot_play_fails_the_call_with_12100():
    d = make("<Response><Say>first</Say><Pay/><Say>next</Say></Response>")
    d.start().run()
    assert d.sim.status is CallStatus.FAILED
    assert d.sim.error is not None and d.sim.error[0] == 12100
    assert "<Pay>" in d.sim.error[1]
    assert [h.text for h in d.sim.heard if h.kind == "say"] == []


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "body", ["", "not xml", "<Response><Bogus/></Response>", "<Other/>", "<Response><Say>"]
)
def test_invalid_twiml_fails_the_call_with_12100(body):
    d = make(body, status_callback_events=ALL_EVENTS)
    d.start().run()
    assert d.sim.status is CallStatus.FAILED
    assert d.sim.error is not None and d.sim.error[0] == 12100
    assert any(e["kind"] == "error" and e["code"] == 12100 for e in d.sim.timeline)
    assert d.sim.heard[-1].kind == "app-error"
    assert dict(d.callbacks[-1].params)["CallStatus"] == "failed"


def test_app_error_status_is_configurable():
    d = make("junk", config=SimConfig(app_error_status=CallStatus.COMPLETED))
    d.start().run()
    assert d.sim.status is CallStatus.COMPLETED


def test_http_error_from_webhook_is_11200():
    d = make(lambda req: (500, "oops"))
    d.start().run()
    assert d.sim.error is not None and d.sim.error[0] == 11200
    assert d.sim.status is CallStatus.FAILED


def test_webhook_connect_failure_is_11205():
    d = make(lambda req: None)
    d.start().run(until=T0 + 10)
    (held,) = d.held
    d.feed(d.sim.http_failed(held.request_id, "connect failure: ConnectError", d.now))
    assert d.sim.error is not None and d.sim.error[0] == 11205


# ---------------------------------------------------------------- REST-driven changes


def test_rest_hangup_mid_twiml():
    d = make("<Response><Say>" + "word " * 100 + "</Say><Say>later</Say></Response>")
    d.start()
    d.run(until=T0 + 3)
    assert d.sim.status is CallStatus.IN_PROGRESS
    d.feed(d.sim.hangup(d.now, CallStatus.COMPLETED))
    d.run()
    assert d.sim.status is CallStatus.COMPLETED
    assert [h.text for h in d.sim.heard] == [("word " * 100).strip()]
    with pytest.raises(InvalidCallState):
        d.sim.hangup(d.now, CallStatus.COMPLETED)


def test_cancel_while_ringing_and_cancel_ignored_when_answered():
    d = make("<Response><Pause length='60'/></Response>", script={"answer_after_ms": 5000})
    d.start().run(until=T0 + 1)
    assert d.sim.status is CallStatus.RINGING
    d.feed(d.sim.hangup(d.now, CallStatus.CANCELED))
    assert d.sim.status is CallStatus.CANCELED
    assert d.fetches == []

    d2 = make("<Response><Pause length='60'/></Response>")
    d2.start().run(until=T0 + 5)
    assert d2.sim.hangup(d2.now, CallStatus.CANCELED) == []
    assert d2.sim.status is CallStatus.IN_PROGRESS


def test_rest_redirect_replaces_the_document():
    d = make("<Response><Pause length='60'/><Say>never</Say></Response>")
    d.start().run(until=T0 + 5)
    d.feed(d.sim.redirect(d.now, twiml="<Response><Say>new</Say></Response>"))
    d.run()
    assert [h.text for h in d.sim.heard] == ["new"]


def test_a_rest_redirect_stops_what_is_being_said():
    d = make("<Response><Say loop='3'>one two three four five six</Say></Response>")
    d.start().run(until=T0 + 1.5)  # answered after a second
    said_from = d.sim.heard[0].start
    d.run(until=said_from + 0.5)
    d.feed(d.sim.redirect(d.now, twiml="<Response><Say>new</Say></Response>"))
    d.run()
    first, new = d.sim.heard
    assert first.text == "one two three four five six" and new.text == "new"
    assert first.end == pytest.approx(said_from + 0.5)  # cut, and its two other loops never heard
    assert new.start >= first.end
    assert any(
        e["kind"] == "prompt-interrupted" and e["by"] == "redirected" for e in d.sim.timeline
    )


def test_callee_hangup_after_ms():
    d = make("<Response><Pause length='60'/></Response>", script={"hangup_after_ms": 4000})
    d.start().run()
    assert d.sim.status is CallStatus.COMPLETED
    assert d.sim.duration == 4
    assert any(e["kind"] == "callee-hangup" for e in d.sim.timeline)


def test_time_limit_ends_the_call():
    d = make("<Response><Pause length='600'/></Response>", time_limit=10)
    d.start().run()
    assert d.sim.duration == 10


def test_stale_timer_and_response_are_ignored():
    d = make("<Response><Pause length='5'/></Response>")
    d.start().run()
    assert d.sim.timer_fired("verb", 1, d.now) == []
    assert d.sim.http_response(999, 200, "<Response/>", d.now) == []


# ---------------------------------------------------------------- inbound


def test_inbound_call_fetches_with_ringing_and_answers():
    from voicecall.emulator.sim import Direction

    d = make("<Response><Say>welcome</Say></Response>", direction=Direction.INBOUND)
    d.start().run()
    params = dict(d.fetches[0].params)
    assert params["Direction"] == "inbound"
    assert params["CallStatus"] == "ringing"
    assert statuses(d) == ["in-progress", "completed"]


@pytest.mark.parametrize(("reason", "status"), [("busy", "busy"), ("rejected", "no-answer")])
def test_inbound_reject_first_verb(reason, status):
    from voicecall.emulator.sim import Direction

    d = make(f"<Response><Reject reason='{reason}'/></Response>", direction=Direction.INBOUND)
    d.start().run()
    assert d.sim.status.value == status
    assert d.sim.answer_time is None
    assert dict(d.callbacks[-1].params)["CallDuration"] == "0"
