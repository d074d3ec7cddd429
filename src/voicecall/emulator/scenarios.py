"""Ready-made callee scripts (scenarios), usable by name or as a script dict.

    emu.set_script("+15551230000", restaurant_script())      # a dict, edit it if you like
    emu.set_script("+15551230000", "restaurant")              # the same, by name
    emu.set_script("+15551230000", {"scenario": "restaurant", "answer_after_ms": 300})

``restaurant``: the host of Trattoria Quercia (the task-call demo's callee). Only seven thirty is
free tonight. The host answers, offers seven thirty when asked for a table (at seven, or at any
time), confirms when the caller accepts, asks for a name, then thanks, says goodbye and hangs up.
Its phrases are written in words and matched after normalisation, so the transcripts faster-whisper
tiny.en makes of Piper or espeak-ng speech ("7:30", "7.30", "730", "seven-thirty") all match.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from voicecall.emulator.strict import ScriptError

__all__ = ["SCENARIOS", "restaurant_script", "scenario_data"]

RESTAURANT_NAME = "Trattoria Quercia"

_HALF_SEVEN = [
    "seven thirty",
    "half past seven",
    "half seven",
    "nineteen thirty",
    "seven thirty pm",
]
_YES = [
    "yes",
    "yeah",
    "yep",
    "sure",
    "fine",
    "okay",
    "ok",
    "great",
    "perfect",
    "works",
    "that's good",
    "sounds good",
    "we'll take it",
    "take it",
    "agreed",
    "alright",
    "all right",
    "of course",
    "absolutely",
]
_NO = [
    "no thanks",
    "no thank you",
    "doesn't work",
    "does not work",
    "not work",
    "can't",
    "cannot",
    "too late",
]
_BOOKING = ["table", "book", "booking", "reservation", "reserve", "dinner", "seats", "seat"]
_HOLD = [
    "one moment",
    "a moment",
    "just a second",
    "one second",
    "hold on",
    "hang on",
    "bear with me",
    "let me check",
    "check with",
]
_BYE = ["goodbye", "bye", "good bye"]
_HELLO = ["calling", "assistant", "hello", "hi", "good evening", "on behalf"]
_NAME = ["name is", "name's", "under the name", "under", "it's for", "for the name", "my name"]


def restaurant_script() -> dict[str, Any]:
    """The Trattoria Quercia host (a ``human`` script; a fresh dict every call)."""
    return {
        "answer_after_ms": 1500,
        "reply_delay_ms": 500,
        "hangup_after_ms": 600_000,
        "human": {
            "greeting": f"{RESTAURANT_NAME}, good evening, how can I help?",
            "greeting_delay_ms": 400,
            "default": "Sorry, I didn't quite catch that. Could you say it again?",
            "rules": [
                {
                    "name": "bye",
                    "heard": _BYE,
                    "not_heard": _BOOKING,
                    "say": "Goodbye!",
                    "then": "hangup",
                },
                {
                    "name": "direct_half_seven",
                    "heard": _HALF_SEVEN,
                    "also_heard": _BOOKING,
                    "say": "Seven thirty tonight, yes, we have a table then. "
                    "May I have a name for the booking?",
                },
                {
                    "name": "offer",
                    "heard": _BOOKING,
                    "say": "I'm sorry, seven o'clock is fully booked tonight. "
                    "I could offer you a table at seven thirty instead. Would that work?",
                },
                {
                    "name": "declined",
                    "after": ["offer"],
                    "heard": _NO,
                    "say": "I'm sorry, seven thirty is the only time we have left tonight. "
                    "Shall I book it for you?",
                },
                {
                    "name": "hold",
                    "after": ["offer"],
                    "heard": _HOLD,
                    "not_heard": _HALF_SEVEN,
                    "repeat": True,
                    "say": "Of course, take your time.",
                },
                {
                    "name": "accepted_with_name",
                    "after": ["offer", "declined"],
                    "heard": _YES + _HALF_SEVEN,
                    "also_heard": _NAME,
                    "not_heard": _NO,
                    "say": "Wonderful, a table at seven thirty tonight, it's booked. "
                    "Thank you, we look forward to seeing you. Goodbye!",
                    "then": "hangup",
                },
                {
                    "name": "accepted",
                    "after": ["offer", "declined"],
                    "heard": _YES + _HALF_SEVEN,
                    "not_heard": _NO,
                    "say": "Wonderful, seven thirty it is. May I have a name for the booking?",
                },
                {
                    "name": "name",
                    "after": ["accepted", "direct_half_seven"],
                    "heard": ["*"],
                    "say": "Thank you. Your table is booked for seven thirty tonight. "
                    "We look forward to seeing you. Goodbye!",
                    "then": "hangup",
                },
                {
                    "name": "hello",
                    "heard": _HELLO,
                    "say": "Yes, hello! How can I help you?",
                },
            ],
        },
    }


SCENARIOS: Mapping[str, Callable[[], dict[str, Any]]] = {"restaurant": restaurant_script}


def scenario_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A script mapping with ``scenario`` replaced by the scenario's keys (others override)."""
    name = data.get("scenario")
    factory = SCENARIOS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ScriptError(f"scenario: unknown {name!r}; known: {sorted(SCENARIOS)}")
    merged = copy.deepcopy(factory())
    merged.update({k: v for k, v in data.items() if k != "scenario"})
    merged["scenario"] = name
    return merged
