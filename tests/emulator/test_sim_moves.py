"""Telephony moves in virtual time: AMD, scripted callees on TwiML calls, <Dial>, <Conference>,
<Record>, Record=true, <Play> digits and audio, keypad barge-in (no sockets, no sleeps)."""

from __future__ import annotations

import pytest

from voicecall.emulator.scripts import parse_script
from voicecall.emulator.simtypes import CallStatus, Purpose
from voicecall.emulator.tones import dtmf_pcm, to_ulaw
from voicecall.emulator.vtime import T0, make, make_sim

VOICEMAIL = {"voicemail": {"greeting": "Hi, this is Sam, leave a message after the tone."}}
GATHER = "<Gather input='speech' speechTimeout='auto' action='/t'>"
HUMAN = {"human": {"greeting": "Hello?", "rules": [{"heard": ["*"], "say": "Sure."}]}}


def params(req):
    return dict(req.params)


def kinds(sim, kind):
    return [e for e in sim.timeline if e["kind"] == kind]


# ------------------------------------------------------------------ AMD


def test_sync_amd_holds_the_twiml_until_detection_and_carries_the_result():
    d = make(
        "<Response><Say>Hi</Say></Response>", script=VOICEMAIL, machine_detection="DetectMessageEnd"
    )
    d.start().run()
    (fetch,) = d.fetches
    p = params(fetch)
    assert p["AnsweredBy"] == "machine_end_beep"
    answered = next(e["at"] for e in d.sim.timeline if e.get("status") == "in-progress")
    fetched_at = next(t for t, r in d.requests if r is fetch)
    _greeting, beep = d.sim.callee.sounds[:2]
    assert fetched_at == pytest.approx(beep.end)  # detected at the end of the beep
    assert int(p["MachineDetectionDuration"]) == round((beep.end - answered) * 1000)
    assert d.sim.answered_by == "machine_end_beep"


@pytest.mark.parametrize(
    ("script", "mode", "expected"),
    [
        (HUMAN, "Enable", "human"),
        (HUMAN, "DetectMessageEnd", "human"),
        (VOICEMAIL, "Enable", "machine_start"),
        ({"voicemail": {"beep": None}}, "DetectMessageEnd", "machine_end_silence"),
        ({}, "Enable", "human"),  # classic scripts declare their result (default human)
        ({"answered_by": "fax"}, "Enable", "fax"),
        ({"answered_by": "machine_end_beep"}, "Enable", "machine_start"),
        ({"human": {"greeting": None}}, "Enable", "unknown"),  # silence: unknown after 5 s
    ],
)
def test_amd_results(script, mode, expected):
    d = make("<Response/>", script=script, machine_detection=mode)
    d.start().run()
    assert params(d.fetches[0])["AnsweredBy"] == expected
    assert params(d.callbacks[-1])["AnsweredBy"] == expected


def test_human_is_detected_quickly_after_a_short_hello():
    d = make("<Response/>", script=HUMAN, machine_detection="DetectMessageEnd")
    d.start().run()
    hello = d.sim.callee.sounds[0]
    assert d.sim.amd_result.at == pytest.approx(hello.end + 1.2)  # SpeechEndThreshold


def test_amd_timeout_gives_unknown_or_machine_end_other():
    long = {"voicemail": {"greeting": "word " * 200, "beep": None}}
    d = make(
        "<Response/>",
        script=long,
        machine_detection="DetectMessageEnd",
        machine_detection_timeout=10,
    )
    d.start().run()
    assert d.sim.answered_by == "machine_end_other"
    assert d.sim.amd_result.duration_ms == 10_000


def test_async_amd_runs_twiml_at_once_and_posts_the_result():
    d = make(
        "<Response><Pause length='30'/></Response>",
        script=VOICEMAIL,
        machine_detection="DetectMessageEnd",
        async_amd=True,
        async_amd_status_callback="https://app.example.com/amd",
    )
    d.start().run()
    voice = d.fetches[0]
    assert "AnsweredBy" not in params(voice)
    (amd,) = d.of_purpose(Purpose.AMD_STATUS)
    assert amd.url == "https://app.example.com/amd"
    p = params(amd)
    assert set(p) == {"AccountSid", "CallSid", "AnsweredBy", "MachineDetectionDuration"}
    assert p["AnsweredBy"] == "machine_end_beep"
    assert d.sim.answered_by == "machine_end_beep"


def test_async_amd_without_callback_warns_21262():
    d = make("<Response/>", script=VOICEMAIL, machine_detection="Enable", async_amd=True)
    d.start().run(until=T0 + 60)
    assert d.of_purpose(Purpose.AMD_STATUS) == []


def test_send_digits_disables_amd():
    d = make("<Response/>", machine_detection="Enable", send_digits="1")
    d.start().run()
    assert "AnsweredBy" not in params(d.fetches[0])
    assert kinds(d.sim, "amd-skipped")


# ------------------------------------------------------------------ scripted callees on TwiML


def test_voicemail_records_the_message_said_after_the_beep():
    twiml = "<Response><Say>Hi Sam, it is Alex, call me back.</Say><Hangup/></Response>"
    d = make(twiml, script=VOICEMAIL, machine_detection="DetectMessageEnd")
    d.start().run()
    msg = d.sim.callee.message
    assert msg.text == "Hi Sam, it is Alex, call me back."
    (note,) = kinds(d.sim, "callee-voicemail")
    assert note["text"] == msg.text


def test_voicemail_hangs_up_after_silence():
    d = make(
        "<Response><Pause length='600'/></Response>", script={"voicemail": {"max_silence_ms": 3000}}
    )
    d.start().run()
    assert kinds(d.sim, "callee-hangup")
    assert d.sim.end_time == pytest.approx(d.sim.callee.message.start + 3.0)


def test_human_answers_gathers_by_what_the_say_said():
    turns = iter(
        [
            f"<Response>{GATHER}<Say>Hi, do you have a table?</Say></Gather></Response>",
            f"<Response>{GATHER}<Say>Great, goodbye.</Say></Gather></Response>",
            "<Response><Hangup/></Response>",
        ]
    )
    script = {
        "human": {
            "greeting": "Trattoria, hello.",
            "rules": [
                {"heard": ["table"], "say": "Yes we do."},
                {"heard": ["goodbye"], "say": "Bye!", "then": "hangup"},
            ],
        }
    }
    d = make(lambda req: next(turns), script=script)
    d.start().run()
    posts = [p["params"].get("SpeechResult") for p in d.sim.gather_posts]
    assert posts == ["Yes we do.", "Bye!"]
    assert d.sim.status is CallStatus.COMPLETED


def test_restaurant_over_gather():
    lines = iter(
        [
            "Hello, I'd like to book a table for two tonight at seven.",
            "Yes, seven thirty works, thank you.",
            "The name is Sam.",
        ]
    )

    def answer(req):
        p = params(req)
        if "SpeechResult" in p or req.purpose is Purpose.TWIML:
            line = next(lines, None)
            if line is None:
                return "<Response><Pause length='5'/></Response>"
            return f"<Response>{GATHER}<Say>{line}</Say></Gather></Response>"
        return "<Response/>"

    d = make(answer, script="restaurant")
    d.start().run()
    said = [p["params"].get("SpeechResult") for p in d.sim.gather_posts]
    assert "seven thirty instead" in said[0]
    assert "name" in said[1]
    assert "Goodbye" in said[2]
    assert kinds(d.sim, "callee-hangup")


def test_ivr_hears_play_digits_and_the_bot_reaches_a_human():
    ivr = {
        "ivr": {
            "nodes": {
                "main": {"say": "For bookings press 1.", "options": {"1": "hold"}},
                "hold": {"music": {"seconds": 8}, "next": "agent"},
                "agent": {"human": {"greeting": "Bookings, Anna speaking."}},
            }
        }
    }
    steps = iter(
        [
            "<Response><Gather input='speech' action='/g' timeout='6'/></Response>",
            "<Response><Play digits='w1'/><Gather input='speech' action='/g' timeout='15'/>"
            "</Response>",
            "<Response><Hangup/></Response>",
        ]
    )
    d = make(lambda req: next(steps), script=ivr)
    d.start().run()
    said = [p["params"].get("SpeechResult") for p in d.sim.gather_posts]
    assert said == ["For bookings press 1.", "Bookings, Anna speaking."]
    assert [k["digit"] for k in d.sim.callee.keys] == ["1"]
    nodes = [e["node"] for e in kinds(d.sim, "callee-ivr-node")]
    assert nodes == ["main", "main", "hold", "agent"]  # the menu was said twice


def test_ivr_hears_in_band_keys_in_played_audio():
    ivr = {
        "ivr": {
            "nodes": {
                "m": {"say": "press 2", "options": {"2": "x"}},
                "x": {"say": "two", "then": "hangup"},
            }
        }
    }
    d = make(
        "<Response><Play>https://x/keys.wav</Play><Pause length='20'/></Response>",
        script=ivr,
        media={"https://x/keys.wav": to_ulaw(dtmf_pcm("2"))},
    )
    d.start().run()
    assert [k["digit"] for k in d.sim.callee.keys] == ["2"]
    assert kinds(d.sim, "callee-hangup")


def test_send_digits_reach_the_ivr_after_answer():
    ivr = {
        "ivr": {
            "nodes": {
                "m": {"say": "press 3", "options": {"3": "x"}},
                "x": {"say": "three", "then": "hangup"},
            }
        }
    }
    d = make("<Response><Pause length='30'/></Response>", script=ivr, send_digits="ww3")
    d.start().run()
    assert [k["digit"] for k in d.sim.callee.keys] == ["3"]


# ------------------------------------------------------------------ keys and prompts


def test_a_key_pressed_during_a_gather_prompt_stops_it():
    doc = (
        "<Response><Gather numDigits='1' action='/g'><Say>" + "option " * 40 + "</Say>"
        "<Say>never heard</Say></Gather></Response>"
    )
    d = make(
        lambda req: "<Response/>" if req.url.endswith("/g") else doc,
        script={"replies": [{"digits": "4", "at_ms": 1500}]},
    )
    d.start().run()
    say = d.sim.heard[0]
    assert say.end - say.start == pytest.approx(1.5)
    assert [h.text for h in d.sim.heard] == [say.text]
    assert d.sim.gather_posts[0]["params"] == {"Digits": "4"}
    assert kinds(d.sim, "prompt-interrupted")


def test_play_url_that_fails_is_a_warning_and_the_call_goes_on():
    d = make("<Response><Play>https://x/missing.mp3</Play><Say>after</Say></Response>")
    d.start().run()
    warnings = kinds(d.sim, "warning")
    assert warnings and warnings[0]["code"] == 11200
    assert [h.text for h in d.sim.heard] == ["after"]
    assert d.sim.status is CallStatus.COMPLETED


def test_play_url_lasts_as_long_as_its_audio_times_loop():
    d = make(
        "<Response><Play loop='2'>https://x/a.wav</Play></Response>",
        media={"https://x/a.wav": b"\xff" * 4000},
    )
    d.start().run()
    assert [round(h.end - h.start, 3) for h in d.sim.heard] == [0.5, 0.5]


# ------------------------------------------------------------------ <Dial>

TARGET = "+15559990000"


def dial_driver(twiml, target_script, **kw):
    def answer(req):
        if req.url.endswith("/whisper"):
            return "<Response><Say>Call from the bot about a booking.</Say></Response>"
        if req.url.endswith("/declined"):
            return "<Response><Hangup/></Response>"
        if req.url.endswith("/after"):
            return "<Response><Say>back with the bot</Say></Response>"
        return twiml

    return make(answer, scripts={TARGET: target_script}, **kw)


def test_dial_with_whisper_bridges_and_reports_to_action():
    d = dial_driver(
        f"<Response><Dial action='/after' callerId='+15550001111' timeout='20'>"
        f"<Number url='/whisper'>{TARGET}</Number></Dial></Response>",
        {"answer_after_ms": 3000, "hangup_after_ms": 20_000},
    )
    d.start().run()
    (leg,) = d.legs
    assert leg.spec.direction.value == "outbound-dial"
    assert leg.parent_call_sid == d.sim.sid
    assert leg.spec.from_ == "+15550001111"
    assert [h.text for h in leg.heard] == ["Call from the bot about a booking."]
    whisper = next(r for _, r in d.requests if r.url.endswith("/whisper"))
    assert params(whisper)["Direction"] == "outbound-dial"
    assert params(whisper)["ParentCallSid"] == d.sim.sid
    assert d.call_of(whisper) is leg
    action = next(r for _, r in d.requests if r.purpose is Purpose.DIAL_ACTION)
    p = params(action)
    assert p["DialCallStatus"] == "completed"
    assert p["DialCallSid"] == leg.sid
    assert int(p["DialCallDuration"]) == leg.duration == 20
    assert "back with the bot" in [h.text for h in d.sim.heard]
    assert leg.status is CallStatus.COMPLETED


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ({"outcome": "busy", "answer_after_ms": 500}, "busy"),
        ({"outcome": "no-answer"}, "no-answer"),
        ({"answer_after_ms": 60_000}, "no-answer"),
        ({"outcome": "failed"}, "failed"),
    ],
)
def test_dial_outcomes_reach_the_action(target, status):
    d = dial_driver(
        f"<Response><Dial action='/after' timeout='10'>{TARGET}</Dial></Response>", target
    )
    d.start().run()
    action = next(r for _, r in d.requests if r.purpose is Purpose.DIAL_ACTION)
    assert params(action)["DialCallStatus"] == status
    assert params(action)["DialCallDuration"] == "0"
    assert d.sim.status is CallStatus.COMPLETED


def test_dial_no_answer_respects_the_dial_timeout_without_the_api_buffer():
    d = dial_driver(
        f"<Response><Dial timeout='7'>{TARGET}</Dial></Response>", {"outcome": "no-answer"}
    )
    d.start().run()
    (leg,) = d.legs
    ring = next(e["at"] for e in leg.timeline if e.get("status") == "ringing")
    end = next(e["at"] for e in leg.timeline if e.get("status") == "no-answer")
    assert end - ring == pytest.approx(7.0)


def test_whisper_hangup_declines_and_dial_without_action_goes_on():
    d = make(
        lambda req: (
            "<Response><Hangup/></Response>"
            if req.url.endswith("/declined")
            else f"<Response><Dial><Number url='/declined'>{TARGET}</Number></Dial>"
            "<Say>nobody took it</Say></Response>"
        ),
        scripts={TARGET: {}},
    )
    d.start().run()
    assert kinds(d.sim, "dial-result")[0]["DialCallStatus"] == "no-answer"
    assert "nobody took it" in [h.text for h in d.sim.heard]


def test_caller_hanging_up_ends_the_bridge_and_the_action_is_still_requested():
    d = dial_driver(
        f"<Response><Dial action='/after'>{TARGET}</Dial></Response>",
        {"hangup_after_ms": 600_000},
        script={"hangup_after_ms": 10_000},
    )
    d.start().run()
    (leg,) = d.legs
    assert leg.status is CallStatus.COMPLETED
    action = next(r for _, r in d.requests if r.purpose is Purpose.DIAL_ACTION)
    assert params(action)["DialCallStatus"] == "completed"
    assert params(action)["CallStatus"] == "completed"


def test_first_of_several_numbers_to_answer_wins():
    other = "+15559990001"
    d = dial_driver(
        f"<Response><Dial action='/after'><Number>{TARGET}</Number><Number>{other}</Number>"
        "</Dial></Response>",
        {},
    )
    d.scripts.update(
        {
            TARGET: parse_script({"answer_after_ms": 5000}),
            other: parse_script({"answer_after_ms": 1000, "hangup_after_ms": 3000}),
        }
    )
    d.start().run()
    slow, fast = d.legs
    assert slow.status is CallStatus.CANCELED
    assert fast.status is CallStatus.COMPLETED
    action = next(r for _, r in d.requests if r.purpose is Purpose.DIAL_ACTION)
    assert params(action)["DialCallSid"] == fast.sid


def test_redirect_during_a_bridge_hangs_up_the_leg():
    d = dial_driver(f"<Response><Dial>{TARGET}</Dial></Response>", {"hangup_after_ms": 600_000})
    d.start().run(until=T0 + 10)
    (leg,) = d.legs
    assert leg.bridged
    d.feed(d.sim.redirect(d.now, twiml="<Response><Say>hello again</Say></Response>"))
    d.run()
    assert leg.status is CallStatus.COMPLETED
    assert "hello again" in [h.text for h in d.sim.heard]


def test_client_and_sip_targets_are_dialled_with_their_scripts():
    d = make(
        "<Response><Dial><Client>alice</Client><Sip>sip:bob@example.com</Sip></Dial></Response>",
        scripts={
            "client:alice": {"outcome": "busy", "answer_after_ms": 100},
            "sip:bob@example.com": {"hangup_after_ms": 1000},
        },
    )
    d.start().run()
    assert [leg.spec.to for leg in d.legs] == ["client:alice", "sip:bob@example.com"]
    assert [leg.status.value for leg in d.legs] == ["busy", "completed"]


# ------------------------------------------------------------------ <Conference>


def test_conference_holds_two_legs_until_one_ends_it():
    room = "<Response><Dial action='/left'><Conference endConferenceOnExit='true'>r1</Conference>"
    room += "</Dial></Response>"
    d = make(
        lambda req: (
            "<Response><Say>left the room</Say></Response>" if req.url.endswith("/left") else room
        ),
        script={"hangup_after_ms": 30_000},
    )
    second = make_sim(
        sid="CA" + "0" * 31 + "2", to="+15551230002", script={"hangup_after_ms": 600_000}
    )
    d.start()
    d.add_call(second)
    d.run(until=T0 + 10)
    assert sorted(d.conferences.room("r1").participants) == sorted([d.sim.sid, second.sid])
    d.run()
    assert d.sim.status is CallStatus.COMPLETED
    assert "left the room" in [h.text for h in second.heard]
    assert d.conferences.room("r1") is None
    assert d.conferences.history[0].log[-1]["event"] == "end"


# ------------------------------------------------------------------ <Record>


def once(doc):
    """A responder: ``doc`` for the call's URL, an empty document for anything else."""
    return lambda req: doc if req.url.endswith("/voice") else "<Response/>"


def test_record_verb_records_the_callees_speech_and_posts_the_action():
    d = make(
        once(
            "<Response><Record action='/rec' timeout='3' recordingStatusCallback='/recstatus'/>"
            "</Response>"
        ),
        script={"replies": ["Please call me back tomorrow."]},
    )
    d.start().run()
    (rec,) = d.recordings
    assert rec.source == "RecordVerb"
    assert rec.text == "Please call me back tomorrow."
    action = next(r for _, r in d.requests if r.purpose is Purpose.RECORD_ACTION)
    p = params(action)
    assert p["RecordingSid"] == rec.sid and p["RecordingUrl"].endswith(rec.sid)
    assert int(p["RecordingDuration"]) == rec.duration > 0
    (status,) = d.of_purpose(Purpose.RECORDING_STATUS)
    assert status.url == "https://app.example.com/recstatus"
    assert params(status)["RecordingStatus"] == "completed"
    assert d.sim.heard[0].kind == "beep"


def test_record_finish_on_key_and_silence():
    d = make(
        once("<Response><Record action='/rec' finishOnKey='#'/></Response>"),
        script={"replies": [{"digits": "12#"}]},
    )
    d.start().run()
    action = next(r for _, r in d.requests if r.purpose is Purpose.RECORD_ACTION)
    assert params(action)["Digits"] == "#"
    d = make("<Response><Record action='/rec'/><Say>next</Say></Response>")
    d.start().run()
    assert not [r for _, r in d.requests if r.purpose is Purpose.RECORD_ACTION]
    assert "next" in [h.text for h in d.sim.heard]


def test_record_max_length_caps_and_voicemail_style_callee():
    d = make(
        once("<Response><Record action='/rec' maxLength='2' playBeep='false'/></Response>"),
        script={"replies": ["word " * 50]},
    )
    d.start().run()
    (rec,) = d.recordings
    assert rec.end - rec.start == pytest.approx(2.0)


def test_record_true_on_the_call_makes_a_recording_with_both_sides():
    d = make(
        "<Response><Gather input='speech' action='/g'><Say>How can I help?</Say></Gather>"
        "</Response>",
        script={"replies": ["I want a table."]},
        record=True,
        recording_status_callback="https://app.example.com/rs",
        recording_status_callback_events=frozenset({"in-progress", "completed"}),
    )
    d.start().run()
    (rec,) = d.recordings
    assert rec.source == "OutboundAPI"
    texts = [(s.channel, s.text) for s in rec.segments]
    assert ("app", "How can I help?") in texts and ("callee", "I want a table.") in texts
    statuses = [params(r)["RecordingStatus"] for r in d.of_purpose(Purpose.RECORDING_STATUS)]
    assert statuses == ["in-progress", "completed"]
    assert rec.duration == d.sim.duration
    completed = params(d.callbacks[-1])  # Twilio: the recording URL goes to the StatusCallback
    assert completed["RecordingSid"] == rec.sid and completed["RecordingUrl"] == rec.url


def test_call_screening_whisper_with_a_gather_accepts_and_bridges():
    def answer(req):
        if req.url.endswith("/screen"):
            return (
                "<Response><Gather numDigits='1' action='/accept'><Say>Press 1 to take the"
                " call</Say></Gather><Hangup/></Response>"
            )
        if req.url.endswith("/accept"):
            return "<Response><Say>Connecting.</Say></Response>"
        if req.url.endswith("/after"):
            return "<Response/>"
        dial = f"<Dial action='/after'><Number url='/screen'>{TARGET}</Number></Dial>"
        return f"<Response>{dial}</Response>"

    d = make(answer, scripts={TARGET: {"replies": [{"digits": "1"}], "hangup_after_ms": 8000}})
    d.start().run()
    (leg,) = d.legs
    assert [h.text for h in leg.heard] == ["Press 1 to take the call", "Connecting."]
    assert leg.bridged
    assert kinds(d.sim, "dial-result")[0]["DialCallStatus"] == "completed"


async def test_a_call_recording_renders_both_sides_to_a_wav():
    import io
    import wave

    from voicecall.emulator.recordings import render_recording

    d = make(
        "<Response><Say>Hello there</Say><Play digits='12'/></Response>",
        record=True,
        recording_channels="dual",
    )
    d.start().run()
    (rec,) = d.recordings
    data = await render_recording(rec)
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        assert w.getnframes() == round(rec.seconds * 8000)
