from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.model import TERMINAL_STATES, CallState, EndReason
from voicecall.calls.states import Action, Signal, apply, transition_table

NON_ENDED = [s for s in Signal if s is not Signal.ENDED]


def test_happy_path() -> None:
    s = CallState.INITIATED
    t = apply(s, Signal.RINGING)
    assert t.state is CallState.RINGING and t.changed and t.actions == ()
    t = apply(t.state, Signal.ANSWERED)
    assert t.state is CallState.ANSWERED
    assert t.actions == (Action.CANCEL_RING_TIMER, Action.ARM_MAX_DURATION)
    t = apply(t.state, Signal.ACTIVATED)
    assert t.state is CallState.ACTIVE and t.actions == ()
    t = apply(t.state, Signal.SPEAKING)
    assert t.state is CallState.SPEAKING
    t = apply(t.state, Signal.LISTENING)
    assert t.state is CallState.LISTENING
    t = apply(t.state, Signal.SPEAKING)
    assert t.state is CallState.SPEAKING
    t = apply(t.state, Signal.ENDED, EndReason.HANGUP_USER)
    assert t.state is CallState.HANGUP_USER and t.actions == (Action.FINALIZE,)


def test_out_of_order_never_moves_backwards() -> None:
    t = apply(CallState.ANSWERED, Signal.RINGING)
    assert not t.changed and t.state is CallState.ANSWERED and t.ignored_reason
    t = apply(CallState.LISTENING, Signal.ANSWERED)
    assert not t.changed


def test_skipping_answered_still_runs_answer_actions_once() -> None:
    t = apply(CallState.RINGING, Signal.ACTIVATED)
    assert t.state is CallState.ACTIVE
    assert t.actions == (Action.CANCEL_RING_TIMER, Action.ARM_MAX_DURATION)


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_terminal_absorbs_everything(state: CallState) -> None:
    for signal in NON_ENDED:
        assert apply(state, signal).state is state
    for reason in EndReason:
        t = apply(state, Signal.ENDED, reason)
        assert t.state is state and not t.changed


def test_ended_needs_reason() -> None:
    with pytest.raises(ValueError):
        apply(CallState.RINGING, Signal.ENDED)


@given(st.lists(st.sampled_from(list(Signal)), max_size=30), st.sampled_from(list(EndReason)))
def test_random_sequences_are_monotonic(signals: list[Signal], reason: EndReason) -> None:
    rank = {
        CallState.INITIATED: 0,
        CallState.RINGING: 1,
        CallState.ANSWERED: 2,
        CallState.ACTIVE: 3,
        CallState.SPEAKING: 4,
        CallState.LISTENING: 4,
        CallState.ENDING: 5,
    }
    state = CallState.INITIATED
    answer_actions = 0
    for sig in signals:
        t = apply(state, sig, reason if sig is Signal.ENDED else None)
        answer_actions += t.actions.count(Action.ARM_MAX_DURATION)
        if state.is_terminal:
            assert t.state is state
        elif not t.state.is_terminal:
            assert rank[t.state] >= rank[state]
        state = t.state
    assert answer_actions <= 1


def test_table_edges_cover_every_state() -> None:
    rows = transition_table()
    sources = {r[0] for r in rows}
    assert sources == {s for s in CallState if not s.is_terminal}
    assert all(not a.is_terminal for a, _, _ in rows)
    assert len(list(itertools.chain(rows))) > 10
