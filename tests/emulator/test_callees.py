"""Scripted callees (human, IVR, voicemail) and the phrase matcher, pure and in virtual time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.emulator.callee import Timing
from voicecall.emulator.phrases import contains, normalize
from voicecall.emulator.scenarios import restaurant_script
from voicecall.emulator.scripts import ScriptError, parse_script

T = Timing(words_per_minute=150.0, reply_delay=0.5)


def callee(script):
    c = parse_script(script).build_callee(T)
    assert c is not None
    return c


def say(c, t, text):
    c.heard_text(t, text, t + 1.0)
    c.turn_ended(t + 1.0)


def last_line(c):
    return [s for s in c.sounds if s.is_speech][-1].text


# ------------------------------------------------------------------ phrases


@pytest.mark.parametrize(
    "text",
    ["7:30", "7.30", "730", "seven thirty", "Seven-thirty", "7:30 p.m.", "7.30pm", "7 30"],
)
def test_half_seven_in_every_spelling(text):
    assert contains(normalize(f"How about {text}?"), "seven thirty")


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        ("seventy people", "seven", False),
        ("at 7 tonight", "seven", True),
        ("book a table", "table", True),
        ("tablet", "table", False),
        ("the name's Sam", "name's", True),
        ("", "*", False),
        ("anything", "*", True),
        ("100 people", "one o'clock", False),
        ("19:30", "nineteen thirty", True),
    ],
)
def test_phrase_matching_on_whole_words(text, phrase, expected):
    assert contains(normalize(text), phrase) is expected


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_normalize_any_text(text):
    tokens = normalize(text)
    assert all(t and all(ch.isalnum() or ch == "'" for ch in t) for t in tokens)
    assert normalize(" ".join(tokens)) == tokens  # canonical: normalising again changes nothing


# ------------------------------------------------------------------ human


def test_human_greets_on_answer_and_answers_by_rules_once_each():
    c = callee(
        {
            "human": {
                "greeting": "Hello, Bob here.",
                "rules": [
                    {"name": "a", "heard": ["table"], "say": "For how many?"},
                    {"heard": ["two", "four"], "after": ["a"], "say": "Done.", "then": "hangup"},
                ],
                "default": "Pardon?",
            }
        }
    )
    c.answered(100.0)
    assert c.sounds[0].text == "Hello, Bob here."
    assert c.sounds[0].start == pytest.approx(100.4)
    say(c, 105, "for two please")  # 'after a' not satisfied yet
    assert last_line(c) == "Pardon?"
    say(c, 110, "I'd like a table")
    assert last_line(c) == "For how many?"
    assert c.sounds[-1].start == pytest.approx(111.5)  # reply_delay after the turn
    say(c, 115, "another table")  # rule a fired already
    assert last_line(c) == "Pardon?"
    assert c.hangup_at is None
    say(c, 120, "for two")
    assert last_line(c) == "Done."
    assert c.hangup_at == pytest.approx(c.sounds[-1].end + 1.0)
    say(c, 130, "hello?")  # hung up: no more lines
    assert last_line(c) == "Done."


def test_human_steps_then_default_and_silence():
    c = callee({"human": {"greeting": None, "steps": ["one", {"say": "two"}], "default": None}})
    c.answered(0.0)
    assert c.sounds == []
    say(c, 1, "x")
    say(c, 5, "y")
    say(c, 9, "z")
    assert [s.text for s in c.sounds] == ["one", "two"]


def test_restaurant_conversation_as_whisper_writes_it():
    c = callee("restaurant")
    c.answered(0.0)
    assert c.sounds[0].text == "Trattoria Quercia, good evening, how can I help?"
    lines = [
        ("Hi, I'm an AI assistant calling on behalf of Sam.", "How can I help"),
        ("I'd like to book a table for two tonight at 7.", "seven thirty instead"),
        ("One moment please, let me check with Sam.", "take your time"),
        ("Yes, 7.30 works for us.", "May I have a name"),
        ("It's Sam.", "Goodbye"),
    ]
    for i, (bot, host) in enumerate(lines):
        say(c, 10.0 * (i + 1), bot)
        assert host in last_line(c), (bot, last_line(c))
    assert c.hangup_at is not None


@pytest.mark.parametrize("accept", ["Seven thirty is fine.", "730 works", "Sure, that works."])
def test_restaurant_accepts_many_ways(accept):
    c = callee(restaurant_script())
    c.answered(0.0)
    say(c, 5, "Could I book a table at seven o'clock?")
    say(c, 10, accept)
    assert "name" in last_line(c)


def test_restaurant_direct_half_seven_and_name_in_one_go():
    c = callee({"scenario": "restaurant", "answer_after_ms": 200})
    c.answered(0.0)
    say(c, 5, "I'd like to book a table at seven thirty please.")
    assert "May I have a name" in last_line(c)
    say(c, 10, "Sam Smith")
    assert "Goodbye" in last_line(c) and c.hangup_at is not None
    assert parse_script({"scenario": "restaurant", "answer_after_ms": 200}).answer_after_ms == 200


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ({"human": {"rules": [{"heard": [], "say": "x"}]}}, r"human.rules\[0\].heard"),
        ({"human": {"rules": [{"heard": ["a"]}]}}, r"human.rules\[0\].say: is required"),
        ({"human": {"rules": [{"heard": ["a"], "say": "x", "after": ["nope"]}]}}, "nope"),
        ({"human": {"rules": [{"heard": ["a"], "say": "x", "then": "leave"}]}}, "then"),
        ({"human": {"rules": [], "steps": []}}, "rules or steps"),
        ({"human": {"greting": "x"}}, r"unknown keys \['greting'\]"),
        ({"human": {}, "replies": ["x"]}, "no replies"),
        ({"human": {}, "voicemail": {}}, "one of human, ivr, voicemail"),
        ({"human": {}, "answered_by": "human"}, "answered_by"),
        ({"scenario": "pizzeria"}, "unknown 'pizzeria'"),
        ("pizzeria", "unknown 'pizzeria'"),
    ],
)
def test_bad_human_scripts_are_refused_with_one_line(script, message):
    with pytest.raises(ScriptError, match=message) as info:
        parse_script(script)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ voicemail


def test_voicemail_greeting_beep_and_recording_window():
    c = callee(
        {
            "voicemail": {
                "greeting": "Leave a message.",
                "beep": {"frequency_hz": 1400, "duration_ms": 250},
                "max_silence_ms": 4000,
            }
        }
    )
    c.answered(10.0)
    greeting, beep = c.sounds
    assert greeting.start == pytest.approx(10.5)
    assert beep.kind == "beep" and beep.frequency_hz == 1400
    assert beep.start == pytest.approx(greeting.end + 0.3)
    assert c.message.start == pytest.approx(beep.end)
    assert c.hangup_at == pytest.approx(beep.end + 4.0)
    c.heard_text(beep.start - 2, "too early", beep.start - 1)  # talked over the greeting
    c.heard_text(beep.end + 1, "Hi Sam, call me back.", beep.end + 3)
    assert c.hangup_at == pytest.approx(beep.end + 3 + 4.0)
    c.finished(c.hangup_at)
    assert c.message.text == "Hi Sam, call me back."
    assert any(n.kind == "callee-voicemail" for n in c.drain_notes(1e9))


def test_voicemail_without_beep_and_max_length():
    c = callee({"voicemail": {"beep": None, "max_message_ms": 5000, "max_silence_ms": 60000}})
    c.answered(0.0)
    assert [s.kind for s in c.sounds] == ["speech"]
    start = c.message.start
    c.heard_text(start, "a very long message", start + 100)
    assert c.hangup_at == pytest.approx(start + 5.0)


def test_voicemail_records_stream_audio_after_the_beep():
    c = callee({"voicemail": {}})
    c.answered(0.0)
    start = c.message.start
    c.heard_audio(start - 0.02, b"\x00" * 160, True)
    c.heard_audio(start + 0.02, b"\x01" * 160, True)
    assert bytes(c.message.audio) == b"\x01" * 160


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ({"voicemail": {"beep": {"frequency_hz": 50}}}, "frequency_hz: must be within"),
        ({"voicemail": {"greeting": ""}}, "greeting"),
        ({"voicemail": {"greeting_wav": "/nonexistent.wav"}}, "greeting_wav: wav"),
        ({"voicemail": {"beeep": 1}}, "unknown keys"),
    ],
)
def test_bad_voicemail_scripts(script, message):
    with pytest.raises(ScriptError, match=message):
        parse_script(script)


# ------------------------------------------------------------------ IVR

IVR = {
    "ivr": {
        "nodes": {
            "main": {
                "say": "For bookings press 1. For hours press 2.",
                "options": {"1": "hold", "2": "hours"},
                "timeout_ms": 3000,
                "repeats": 1,
            },
            "hold": {"music": {"seconds": 10}, "next": "announce"},
            "announce": {"say": "Your call is important to us.", "next": "agent"},
            "hours": {"say": "We open at six. Goodbye.", "then": "hangup"},
            "agent": {"human": {"greeting": "Bookings, Anna speaking.", "default": "Mm?"}},
        }
    }
}


def test_ivr_menu_repeats_then_hangs_up_without_input():
    c = callee(IVR)
    c.answered(0.0)
    prompts = [s for s in c.sounds if s.is_speech]
    assert len(prompts) == 2  # once + 1 repeat
    assert prompts[1].start == pytest.approx(prompts[0].end + 3.0)
    assert c.hangup_at == pytest.approx(prompts[1].end + 3.0)


def test_ivr_key_during_prompt_cuts_it_and_branches_to_hold_then_human():
    c = callee(IVR)
    c.answered(0.0)
    first = c.sounds[0]
    c.heard_digit(first.start + 1.0, "1")
    assert first.cut and first.end == pytest.approx(first.start + 1.0)
    kinds = [(s.kind, s.text) for s in c.sounds]
    assert kinds[1] == ("music", "hold")
    music = c.sounds[1]
    assert music.seconds == pytest.approx(10.0)
    announce = c.sounds[2]
    assert announce.text == "Your call is important to us." and announce.start == music.end
    assert c.speech_for(announce.end, announce.end + 5).text == "Bookings, Anna speaking."
    assert c.hangup_at is None  # the first menu's planned hang-up was cancelled
    c.advance(announce.end + 10)
    assert c.human is not None
    c.heard_digit(announce.end + 11, "2")  # keys mean nothing to the person
    say(c, announce.end + 12, "hi there")
    assert last_line(c) == "Mm?"
    nodes = [n.data["node"] for n in c.drain_notes(1e9) if n.kind == "callee-ivr-node"]
    assert nodes == ["main", "hold", "announce", "agent"]


def test_ivr_wrong_key_repeats_the_menu_and_keys_in_music_are_ignored():
    c = callee(IVR)
    c.answered(0.0)
    c.heard_digit(1.0, "9")
    assert c.node_at(1.5).node == "main"
    assert [s.start for s in c.sounds if s.is_speech][1] == pytest.approx(1.3)
    c.heard_digit(2.0, "1")
    c.heard_digit(3.0, "2")  # during the hold music
    assert c.node_at(3.5).node == "hold"
    assert [k["node"] for k in c.keys] == ["main", "main", "hold"]


def test_ivr_loop_without_end_is_planned_lazily():
    c = callee(
        {"ivr": {"nodes": {"m": {"say": "press 1", "options": {"1": "m"}, "no_input": "m"}}}}
    )
    c.answered(0.0)
    assert c.hangup_at is None
    assert 100 < len(c.sounds) < 3000


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ({"a": {"say": "x", "next": "b"}}, "no node named 'b'"),
        ({"a": {"say": "x", "music": {"seconds": 1}}}, "exactly one of"),
        ({"a": {"music": {"seconds": 1}, "options": {"1": "a"}}}, "only a spoken prompt"),
        ({"a": {"say": "x", "options": {"x": "a"}}}, "is not a key"),
        ({"a": {"say": "x", "options": {"1": "a"}, "next": "a"}}, "cannot also have"),
        ({"a": {"say": "x", "no_input": "a"}}, "need options"),
        ({"a": {"music": {"seconds": 1, "style": "jazz"}}}, "style"),
        ({"a": {"human": {}, "next": "a"}}, "end of the menu"),
        ({}, "non-empty mapping"),
    ],
)
def test_bad_ivr_scripts(nodes, message):
    with pytest.raises(ScriptError, match=message):
        parse_script({"ivr": {"nodes": nodes}})


def test_script_round_trips_through_to_dict():
    for script in (IVR, {"voicemail": {"beep": None}}, "restaurant"):
        parsed = parse_script(script)
        assert parse_script(parsed.to_dict()) == parsed


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "say",
                    "heard",
                    "rules",
                    "steps",
                    "greeting",
                    "default",
                    "then",
                    "after",
                    "name",
                    "nodes",
                    "start",
                    "options",
                    "music",
                    "seconds",
                    "style",
                    "next",
                    "human",
                    "beep",
                    "frequency_hz",
                    "duration_ms",
                    "repeats",
                    "timeout_ms",
                    "no_input",
                    "x",
                    "1",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["human", "ivr", "voicemail"]), body=_json)
def test_fuzz_callee_scripts_load_or_are_refused_with_one_line(kind, body):
    from voicecall.emulator.scripts import CalleeScript

    try:
        script = parse_script({kind: body})
    except ScriptError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(script, CalleeScript)
    c = script.build_callee(T)
    if c is not None:  # a loadable script also plays without raising
        c.answered(0.0)
        c.heard_text(1.0, "hello table seven thirty", 2.0)
        c.turn_ended(2.0)
        c.heard_digit(3.0, "1")
        c.advance(100.0)
        c.finished(100.0)


# ------------------------------------------------------------------ turns (stream listening)


def _frames(pattern):
    """'v' = a voiced 20 ms frame, '.' = a silent one."""
    from voicecall.emulator.tones import to_ulaw, tone

    voiced = to_ulaw(tone(300, 20, -20.0))
    return [voiced if ch == "v" else b"\xff" * 160 for ch in pattern]


def test_turn_cutter_cuts_utterances_on_pauses_and_turns_on_longer_quiet():
    from voicecall.emulator.turns import TurnCutter

    cutter = TurnCutter(pause_ms=200, turn_gap_ms=500)
    events = []
    for i, frame in enumerate(_frames("vvvvv" + "." * 15 + "vvv" + "." * 40)):
        events += cutter.frame(i * 20.0, frame)
    kinds = [(e.kind, e.start_ms, e.end_ms) for e in events]
    assert kinds == [
        ("utterance", 0.0, 100.0),
        ("utterance", 400.0, 460.0),
        ("turn", 0.0, 460.0),
    ]
    assert len(events[0].audio) == 5 * 160  # trailing quiet trimmed


def test_turn_cutter_mark_ends_the_utterance_at_once():
    from voicecall.emulator.turns import TurnCutter

    cutter = TurnCutter(pause_ms=400, turn_gap_ms=300)
    events = []
    for i, frame in enumerate(_frames("vvv")):
        events += cutter.frame(i * 20.0, frame)
    events += cutter.mark(60.0, buffered=True)  # more audio queued: not the end
    assert events == []
    events += cutter.mark(60.0, buffered=False)
    assert [e.kind for e in events] == ["utterance"]
    for i, frame in enumerate(_frames("." * 20)):
        events += cutter.frame(60.0 + i * 20.0, frame)
    assert [e.kind for e in events] == ["utterance", "turn"]


def test_quiet_app_audio_is_not_speech():
    from voicecall.emulator.tones import to_ulaw, tone
    from voicecall.emulator.turns import is_voiced

    assert not is_voiced(b"\xff" * 160)
    assert not is_voiced(to_ulaw(tone(300, 20, -60.0)))
    assert is_voiced(to_ulaw(tone(300, 20, -20.0)))
