"""The end-of-turn detector: pure, on the stream clock, judged on the partial transcript."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.voice.endturn import (
    Commit,
    Completeness,
    EndOfTurn,
    Transcribe,
    TurnPolicy,
    cut_short,
    judge,
    normalize,
)

POLICY = TurnPolicy(hangover_ms=200, lead_in_ms=700, incomplete_ms=1300)


def run_pause(
    eot: EndOfTurn,
    text: str,
    *,
    end_ms: int,
    stt_ms: int,
    until_ms: int,
    short: bool = False,
) -> Commit | None:
    """Speech ends at ``end_ms``; the transcript of it arrives ``stt_ms`` later; ticks every
    20 ms until ``until_ms``. The first commit, if any."""
    assert eot.pause(end_ms) == Transcribe(end_ms)
    for now in range(end_ms, until_ms + 1, 20):
        if now >= end_ms + stt_ms and eot.text_upto_ms < end_ms:
            eot.heard(text, end_ms, cut_short=short)
        got = eot.tick(now)
        if got is not None:
            return got
    return None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Two people, please.", Completeness.COMPLETE),
        ("Two people please", Completeness.UNSURE),  # unpunctuated: whisper heard no end
        ("My number is time time time", Completeness.UNSURE),
        ("half past Aaron", Completeness.UNSURE),
        ("We need it for Friday and", Completeness.INCOMPLETE),
        ("I'd like to book a table for four at seven, and", Completeness.INCOMPLETE),
        ("Could you check whether", Completeness.INCOMPLETE),
        ("I'd like it for each", Completeness.INCOMPLETE),
        ("Something across", Completeness.INCOMPLETE),
        ("Seven thirty.", Completeness.COMPLETE),
        ("730.", Completeness.COMPLETE),
        ("730", Completeness.COMPLETE),
        ("Yes, I can.", Completeness.COMPLETE),
        ("I think so.", Completeness.COMPLETE),
        ('He said "yes."', Completeness.COMPLETE),
        ("Is that right?", Completeness.COMPLETE),
        ("Yes", Completeness.COMPLETE),
        ("Yes.", Completeness.COMPLETE),
        ("No", Completeness.COMPLETE),
        ("Thank you.", Completeness.COMPLETE),
        ("I'll take that.", Completeness.COMPLETE),
        ("At 7:30.", Completeness.COMPLETE),
        ("Hi, I'd like a table for two.", Completeness.COMPLETE),
        ("I'd like a table for", Completeness.INCOMPLETE),
        ("I'd like a table for.", Completeness.INCOMPLETE),  # whisper adds the period
        ("I'd like a table for...", Completeness.INCOMPLETE),
        ("I'd like a table for…", Completeness.INCOMPLETE),
        ("Could you leave a note for", Completeness.INCOMPLETE),
        ("We need eggs, milk,", Completeness.INCOMPLETE),
        ("Eggs, milk and", Completeness.INCOMPLETE),
        ("It's, um", Completeness.INCOMPLETE),
        ("My number is five five five", Completeness.UNSURE),  # groups: < 1.2 s apart
        ("My number is 555 12", Completeness.UNSURE),
        ("My phone is time time time 1 2 3 4", Completeness.UNSURE),  # a whole one, too
        ("I want the", Completeness.INCOMPLETE),
        ("I'd like a payable for it.", Completeness.INCOMPLETE),  # whisper's invented "it"
        ("Thanks for that.", Completeness.INCOMPLETE),  # the price of the rule above
        ("I'll take it.", Completeness.COMPLETE),
        ("My phone number is.", Completeness.INCOMPLETE),
        ("My number is 5 5 5, 1 2 3 4.", Completeness.COMPLETE),  # read out to the end
        ("Yes, it is.", Completeness.COMPLETE),
        ("Yes, this is she.", Completeness.COMPLETE),  # a linking verb before the pronoun
        ("It was him.", Completeness.COMPLETE),
        ("Then we went home and she", Completeness.INCOMPLETE),
        ("Could you book it under the name?", Completeness.INCOMPLETE),
        ("We will arrive at around.", Completeness.INCOMPLETE),
        ("My name is Sam.", Completeness.COMPLETE),
        ("Hi!", Completeness.LEAD_IN),
        ("Hello.", Completeness.LEAD_IN),
        ("Good morning!", Completeness.LEAD_IN),
        ("Well,", Completeness.INCOMPLETE),
        ("Okay so", Completeness.LEAD_IN),
        ("", Completeness.COMPLETE),
    ],
)
def test_judge(text: str, expected: Completeness) -> None:
    assert judge(text) is expected


def test_a_table_for_pause_is_not_answered_but_two_people_please_is() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    # "I'd like a table for …" then a one-second pause: no commit
    assert run_pause(eot, "I'd like a table for", end_ms=1500, stt_ms=400, until_ms=2500) is None
    eot.voice(2500)  # "… two people, please."
    commit = run_pause(
        eot, "I'd like a table for two people, please.", end_ms=4000, stt_ms=150, until_ms=6000
    )
    assert commit is not None
    assert commit.text == "I'd like a table for two people, please."
    assert commit.speech_end_ms == 4000
    assert commit.decided_ms == 4200  # the hangover, the transcript was ready before it
    assert not eot.open


def test_two_people_please_is_answered_in_300_ms() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    commit = run_pause(eot, "Two people, please.", end_ms=900, stt_ms=100, until_ms=3000)
    assert commit is not None and commit.decided_ms - commit.speech_end_ms <= 300


def test_a_slow_transcript_decides_as_soon_as_it_arrives() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    commit = run_pause(eot, "Two people, please.", end_ms=900, stt_ms=450, until_ms=3000)
    assert commit is not None and commit.decided_ms == 900 + 460  # the next tick after it


def test_hi_then_a_pause_is_not_split() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    assert run_pause(eot, "Hi!", end_ms=400, stt_ms=300, until_ms=900) is None  # 500 ms pause
    eot.voice(900)
    commit = run_pause(eot, "Hi! I would like a table.", end_ms=2400, stt_ms=300, until_ms=4000)
    assert commit is not None and commit.text == "Hi! I would like a table."


def test_an_unfinished_turn_is_committed_at_the_cap() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    commit = run_pause(eot, "I'd like a table for", end_ms=1000, stt_ms=300, until_ms=5000)
    assert commit is not None
    assert commit.decided_ms == 1000 + POLICY.incomplete_ms
    assert commit.completeness is Completeness.INCOMPLETE


def test_words_without_a_sentence_end_wait_between_lead_in_and_cap() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    commit = run_pause(eot, "Two people please", end_ms=1000, stt_ms=300, until_ms=5000)
    assert commit is not None
    assert commit.decided_ms == 1000 + POLICY.unsure_ms
    assert commit.completeness is Completeness.UNSURE


def test_default_policy_leaves_a_thinking_pause_of_a_second_plus_trailing_silence() -> None:
    # the benchmark's "My phone number is" [1.0 s] "five five five …": espeak's own ~0.4 s of
    # trailing silence makes 1.4 s without speech; the old 1.3 s cap answered in the middle
    eot = EndOfTurn()
    eot.voice(0)
    assert run_pause(eot, "My phone is...", end_ms=1200, stt_ms=300, until_ms=2640) is None
    eot.voice(2640)
    commit = run_pause(eot, "My phone is 555-1234.", end_ms=4500, stt_ms=200, until_ms=7000)
    assert commit is not None and commit.decided_ms == 4500 + eot.policy.hangover_ms


@pytest.mark.parametrize(
    ("plain", "verbatim", "expected"),
    [
        # tiny.en's readings of espeak-ng speech (2026-12-04)
        ("We need it for Friday.", "we need it for Friday and...", True),
        ("We will arrive at a round.", "we will arrive at around.", True),
        ("I want the command", "I want the format and", True),
        ("We will arrive at our own.", "we will arrive at around", True),
        # the second reading stops earlier: the plain one heard more
        ("My name is Sam.", "my name is, um...", False),
        ("Yes, please.", "yes, please...", False),
        # another sentence altogether: no evidence about this one
        ("Saturday, 730.", "I'll be back to heaven for the", False),
        ("In its path, I will do.", "it's possible to...", False),
        # the readings agree, or the second one sounds finished too
        ("That sounds great. Thank you.", "that sounds great and you", False),
        ("Just me and my wife.", "just me and my wife.", False),
        ("We need it for Friday and Saturday.", "we need it for Friday and Saturday.", False),
        # the plain one is unfinished already: nothing to add
        ("I would like a table for", "I would like a table for it.", False),
        # fillers are left out of both readings alike
        ("So I'd like a table.", "so, um, I'd like a table for", True),
        ("I'd like that.", "I'd, uh, like that.", False),
        ("", "and", False),
        ("Yes.", "", False),
    ],
)
def test_cut_short(plain: str, verbatim: str, expected: bool) -> None:
    assert cut_short(plain, verbatim) is expected


def test_a_turn_whose_end_was_cut_short_waits_the_cap() -> None:
    # "We need it for Friday and" [0.6 s] "Saturday night, please.": the plain reading sounds
    # finished, the second one kept the "and"
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    commit = run_pause(
        eot, "We need it for Friday.", end_ms=1500, stt_ms=150, until_ms=2600, short=True
    )
    assert commit is None  # 1.1 s of silence: well past the 200 ms hangover
    eot.voice(2600)
    commit = run_pause(
        eot,
        "We need it for Friday and Saturday night, please.",
        end_ms=4500,
        stt_ms=150,
        until_ms=6000,
    )
    assert commit is not None and commit.decided_ms == 4500 + POLICY.hangover_ms
    assert commit.completeness is Completeness.COMPLETE
    # had the caller stopped there, the turn ends at the cap, as an unfinished one
    eot.voice(7000)
    commit = run_pause(
        eot, "We need it for Friday.", end_ms=8000, stt_ms=150, until_ms=10_000, short=True
    )
    assert commit is not None and commit.decided_ms == 8000 + POLICY.incomplete_ms
    assert commit.completeness is Completeness.INCOMPLETE


def test_a_stale_transcript_never_commits() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    eot.pause(1000)
    eot.voice(1100)  # the caller went on before the transcript came back
    eot.heard("Two people.", 1000)
    assert eot.tick(5000) is None  # still speaking
    eot.pause(2000)
    assert eot.tick(5000) is None  # the transcript does not cover the words after 1000 ms
    eot.heard("Two people. And a dog.", 2000)
    commit = eot.tick(5000)
    assert commit is not None and commit.text == "Two people. And a dog."


def test_nothing_happens_without_a_turn() -> None:
    eot = EndOfTurn(POLICY)
    assert eot.pause(100) is None
    eot.heard("ghost", 100)
    assert eot.tick(10_000) is None
    assert eot.force(10_000) is None


def test_force_commits_a_current_transcript_only() -> None:
    eot = EndOfTurn(POLICY)
    eot.voice(0)
    eot.pause(500)
    assert eot.force(600) is None  # no transcript yet: the caller of force transcribes itself
    eot.voice(700)
    eot.pause(900)
    eot.heard("I want the", 900)
    commit = eot.force(950)
    assert commit is not None and commit.text == "I want the"


def test_policy_checks_its_order() -> None:
    with pytest.raises(ValueError):
        TurnPolicy(hangover_ms=800, lead_in_ms=700)
    with pytest.raises(ValueError):
        TurnPolicy(hangover_ms=-1)
    with pytest.raises(ValueError):
        TurnPolicy(unsure_ms=2500)  # beyond the cap


def test_normalize() -> None:
    assert normalize("Two people, please!") == normalize("two people please")
    assert normalize("I’d like…") == "i'd like"


_FUNCTION_ENDINGS = ["for", "the", "and", "a", "to", "um", "with", "my", "because"]
_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@given(
    st.lists(_word, max_size=8),
    st.sampled_from(_FUNCTION_ENDINGS),
    st.sampled_from(["", ".", "..."]),
)
def test_a_function_word_at_the_end_is_never_complete(
    words: list[str], ending: str, punct: str
) -> None:
    assert judge(" ".join([*words, ending]) + punct) is Completeness.INCOMPLETE


@given(st.text(max_size=80))
def test_judge_takes_any_text(text: str) -> None:
    assert isinstance(judge(text), Completeness)


# a random run of events: ("voice", t) / ("pause", t) / ("heard", text, upto) / ("tick", t)
_events = st.lists(
    st.one_of(
        st.tuples(st.just("voice"), st.integers(0, 200)),
        st.tuples(st.just("pause"), st.integers(0, 200)),
        st.tuples(
            st.just("heard"),
            st.sampled_from(["Two people.", "a table for", "Hi!", ""]),
            st.booleans(),
            st.integers(-100, 100),
        ),
        st.tuples(st.just("tick"), st.integers(0, 2000)),
    ),
    max_size=40,
)


@given(_events)
def test_commits_follow_the_rules(events: list[tuple[object, ...]]) -> None:
    """Whatever happens: no commit while the caller speaks, none before the silence suits the
    text, none on a transcript that misses speech, and the text is the newest transcript."""
    eot = EndOfTurn(POLICY)
    clock = 0
    last_voice = -1
    for event in events:
        kind = event[0]
        clock += int(event[-1]) if kind != "heard" else 0  # time only moves forward
        if kind == "voice":
            eot.voice(clock)
            last_voice = clock
        elif kind == "pause":
            eot.pause(clock)
        elif kind == "heard":
            text, short, offset = str(event[1]), bool(event[2]), int(event[3])
            if eot.speech_end_ms is not None:
                eot.heard(text, eot.speech_end_ms + offset, cut_short=short)
        else:
            speaking = eot.speaking
            text, short = eot.text, eot.cut_short
            commit = eot.tick(clock)
            if commit is not None:
                assert not speaking
                assert commit.text == text
                assert commit.speech_end_ms >= last_voice
                judged = Completeness.INCOMPLETE if short else judge(commit.text)
                assert commit.completeness is judged
                wait = POLICY.wait_ms(judged)
                assert commit.decided_ms - commit.speech_end_ms >= wait
                assert not eot.open
