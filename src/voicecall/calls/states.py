"""The call state machine: pure transitions, one table, terminal is final.

This module may hold only the state vocabulary's *rules*: which state a call moves to when a
signal arrives, and which actions that move implies. No I/O, no clocks, no asyncio.

::

    initiated ──► ringing ──► answered ──► active ──► speaking ⇄ listening ──► ending
        │            │            │           │            │         │            │
        └────────────┴────────────┴─────┬─────┴────────────┴─────────┴────────────┘
                                        ▼
            completed | hangup-user | hangup-bot | timeout | error | failed
            | no-answer | busy | voicemail                 (terminal: absorbs everything)

Progress is monotonic: a status signal that would move a call backwards (an out-of-order
``ringing`` after ``answered``) is ignored, and a terminal state never changes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voicecall.calls.model import CallState, EndReason


class Signal(StrEnum):
    """What happened to a call, as the state machine sees it."""

    RINGING = "ringing"
    ANSWERED = "answered"
    ACTIVATED = "activated"  # the first TwiML / media stream of an answered call is running
    SPEAKING = "speaking"  # the bot started an utterance
    LISTENING = "listening"  # the bot is waiting for the caller
    ENDING = "ending"  # an end was asked for (the goodbye, if any, plays first)
    ENDED = "ended"  # with an EndReason


class Action(StrEnum):
    """What the manager must do because of a transition (timers are actions, not tasks)."""

    CANCEL_RING_TIMER = "cancel-ring-timer"
    ARM_MAX_DURATION = "arm-max-duration"
    FINALIZE = "finalize"  # cancel every timer, wake waiters, release the slot (exactly once)


# rank orders the non-terminal states; speaking and listening share a rank (they alternate)
_RANK: dict[CallState, int] = {
    CallState.INITIATED: 0,
    CallState.RINGING: 1,
    CallState.ANSWERED: 2,
    CallState.ACTIVE: 3,
    CallState.SPEAKING: 4,
    CallState.LISTENING: 4,
    CallState.ENDING: 5,
}

# (signal) -> the state it leads to, and the actions entering it implies
_TARGET: dict[Signal, CallState] = {
    Signal.RINGING: CallState.RINGING,
    Signal.ANSWERED: CallState.ANSWERED,
    Signal.ACTIVATED: CallState.ACTIVE,
    Signal.SPEAKING: CallState.SPEAKING,
    Signal.LISTENING: CallState.LISTENING,
    Signal.ENDING: CallState.ENDING,
}

_ON_ENTER: dict[CallState, tuple[Action, ...]] = {
    CallState.ANSWERED: (Action.CANCEL_RING_TIMER, Action.ARM_MAX_DURATION),
}

# EndReason -> terminal state
END_STATE: dict[EndReason, CallState] = {
    EndReason.COMPLETED: CallState.COMPLETED,
    EndReason.HANGUP_USER: CallState.HANGUP_USER,
    EndReason.HANGUP_BOT: CallState.HANGUP_BOT,
    EndReason.BUSY: CallState.BUSY,
    EndReason.NO_ANSWER: CallState.NO_ANSWER,
    EndReason.FAILED: CallState.FAILED,
    EndReason.CANCELED: CallState.HANGUP_BOT,
    EndReason.TIMEOUT: CallState.TIMEOUT,
    EndReason.ERROR: CallState.ERROR,
    EndReason.VOICEMAIL: CallState.VOICEMAIL,
    EndReason.REJECTED: CallState.HANGUP_BOT,
    EndReason.TRANSFERRED: CallState.TRANSFERRED,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of feeding a signal: ``state`` is the new state (``changed`` says whether it
    differs from the old one); ``actions`` lists what the manager must do, in order."""

    state: CallState
    changed: bool
    actions: tuple[Action, ...] = ()
    ignored_reason: str | None = None


def apply(state: CallState, signal: Signal, reason: EndReason | None = None) -> Transition:
    """Feed ``signal`` to a call in ``state``. Pure; never raises for a legal enum input."""
    if state.is_terminal:
        return Transition(state, False, ignored_reason="call already ended")
    if signal is Signal.ENDED:
        if reason is None:
            raise ValueError("an ENDED signal needs an EndReason")
        target = END_STATE[reason]
        return Transition(target, True, (Action.FINALIZE,))
    target = _TARGET[signal]
    if target == state:
        return Transition(state, False, ignored_reason="already in that state")
    old_rank, new_rank = _RANK[state], _RANK[target]
    if new_rank < old_rank:
        return Transition(state, False, ignored_reason=f"{target} would move {state} backwards")
    actions: list[Action] = []
    # entering a state past ANSWERED without ANSWERED itself (e.g. a lost 'answered' callback):
    # the answer actions still have to happen exactly once
    if old_rank < _RANK[CallState.ANSWERED] <= new_rank:
        actions.extend(_ON_ENTER[CallState.ANSWERED])
    return Transition(target, True, tuple(actions))


def transition_table() -> list[tuple[CallState, Signal, CallState]]:
    """Every (state, signal) → state edge that changes the state; used to draw the docs' diagram."""
    rows: list[tuple[CallState, Signal, CallState]] = []
    for state in CallState:
        for signal in Signal:
            if signal is Signal.ENDED:
                if not state.is_terminal:
                    rows.append((state, signal, CallState.COMPLETED))
                continue
            t = apply(state, signal)
            if t.changed:
                rows.append((state, signal, t.state))
    return rows
