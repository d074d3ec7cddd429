"""The scripted demo agent (a stand-in for a model): what it says and calls at each state of the
booking, including replies that come late or in pieces, and the outcome it reads off a review."""

from __future__ import annotations

import json
from typing import Any

from voicecall.cli.demo_agent import LABEL, ScriptedBookingAgent
from voicecall.conversation.chat import TextDelta, ToolRequest


def convo(*turns: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "task"}]
    for turn in turns:
        out.extend(turn if isinstance(turn, list) else [turn])
    return out


def bot(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def host(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def asked(answer: str | None) -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "ask_owner", "arguments": "{}"}}
    return [
        {
            "role": "assistant",
            "content": "Let me quickly check that with Sam, one moment.",
            "tool_calls": [call],
        },
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"answer": answer})},
    ]


def test_the_booking_script() -> None:
    agent = ScriptedBookingAgent()
    assert agent.label == LABEL and "scripted" in LABEL
    opening = bot("Hello, this is an AI assistant calling on someone's behalf.")
    text, calls = agent.plan(convo(opening, host("Good evening, how can I help?")))
    assert "table for two tonight at seven" in text and calls == []
    request = bot(text)
    text, calls = agent.plan(convo(opening, host("hi"), request, host("We can do 730.")))
    assert calls[0][0] == "ask_owner" and "19:30" in calls[0][1]["question"]
    base = [opening, host("hi"), request, host("full, 730")]
    text, calls = agent.plan(
        convo(*base, asked("Yes, 7:30 is fine."), host("Sure, take your time."))
    )
    assert text == "Seven thirty is fine, under the name Sam, please." and calls == []
    accept = bot(text)
    done = agent.plan(convo(*base, asked("Yes"), accept, host("Your table is booked. Goodbye!")))
    assert done == ("", [("end_call", {"goodbye": "Thank you very much, goodbye!"})])
    # the host's "take your time" came late: wait politely, then end after the confirmation
    late = agent.plan(convo(*base, asked("Yes"), accept, host("Sure, take your time.")))
    assert late == ("Thank you.", [])
    again = agent.plan(
        convo(*base, asked("Yes"), accept, host("Sure."), bot("Thank you."), host("Hm?"))
    )
    assert again[1][0][0] == "end_call"
    # the host did not catch the name with the acceptance and asks for it ("Wonderful" alone
    # is no confirmation then): give the name, end only after the confirmation
    name = agent.plan(
        convo(*base, asked("Yes"), accept, host("Wonderful, 730 it is. May I have a name?"))
    )
    assert name == ("The name is Sam.", [])
    booked = agent.plan(
        convo(
            *base,
            asked("Yes"),
            accept,
            host("Wonderful, 730 it is. May I have a name?"),
            bot(name[0]),
            host("Thank you. Your table is booked. Goodbye!"),
        )
    )
    assert booked[1][0][0] == "end_call"
    # the owner says no (or never answers): decline politely
    no = agent.plan(convo(*base, asked(None), host("Sure.")))
    assert no[1][0][0] == "end_call" and "doesn't suit" in no[1][0][1]["goodbye"]


async def test_it_streams_text_then_only_offered_tools() -> None:
    agent = ScriptedBookingAgent()
    messages = convo(
        bot("Hello."),
        host("hi"),
        bot("A table for two tonight at seven?"),
        host("Only seven thirty."),
    )
    tools = [{"type": "function", "function": {"name": "end_call"}}]
    events = [e async for e in agent.stream(messages, tools)]
    assert all(isinstance(e, TextDelta) for e in events)  # ask_owner not offered: not called
    offered = [*tools, {"type": "function", "function": {"name": "ask_owner"}}]
    events = [e async for e in agent.stream(messages, offered)]
    assert isinstance(events[-1], ToolRequest) and events[-1].name == "ask_owner"


async def test_the_outcome_is_read_off_the_review() -> None:
    agent = ScriptedBookingAgent()
    review = (
        "The task: ...\n\nQuestions to the owner during the call:\n- asked: 7:30?\n"
        "  owner answered: Yes, 7:30 is fine.\n\nTranscript:\nassistant: Seven thirty is fine, "
        "under the name Sam, please.\nother person: Your table is booked. Goodbye!"
    )
    doc = json.loads(
        await agent.complete_json(
            [{"role": "user", "content": review}], name="x", schema={}, strict=True
        )
    )
    assert doc["outcome"] == {"booked": True, "time": "19:30", "name": "Sam"}
    unconfirmed = review.replace("Your table is booked. Goodbye!", "Sure, take your time.")
    doc = json.loads(
        await agent.complete_json(
            [{"role": "user", "content": unconfirmed}], name="x", schema={}, strict=True
        )
    )
    assert doc["outcome"] == {"booked": False, "time": None, "name": None}


async def test_a_misheard_confirmation_after_the_acceptance_still_counts() -> None:
    # whisper tiny.en at 8 kHz heard the host's "it's booked … seeing you" like this (CI)
    agent = ScriptedBookingAgent()
    before = (
        "owner answered: Yes, 7:30 is fine.\n\nTranscript:\nother person: I'm sorry, seven "
        "o'clock is fully booked tonight. I could offer seven thirty instead.\nassistant: Seven "
        "thirty is fine, under the name Sam, please.\n"
    )
    for reply, booked in [
        ("other person: Wonderful, it's worked.\nother person: We look forward to seeing you.", 1),
        ("other person: Sorry, I didn't quite catch that.", 0),  # "fully booked" came before
    ]:
        doc = json.loads(
            await agent.complete_json(
                [{"role": "user", "content": before + reply}], name="x", schema={}, strict=True
            )
        )
        assert doc["outcome"]["booked"] is bool(booked), reply
