"""The pure parts of task calls: request validation and the system prompt, the tool box (and
held runs for speculative replies), the message building of the agent, the strict-subset check
and the answer check of the outcome."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from voicecall.agent.responder import EndCall
from voicecall.calls.model import CallMode
from voicecall.conversation.agent import build_messages
from voicecall.conversation.chat import ToolRequest, fold_chunk
from voicecall.conversation.outcome import check_answer, fits_strict, wrapped_schema
from voicecall.conversation.task import (
    DEFAULT_OUTCOME_SCHEMA,
    CallRequest,
    check_outcome_schema,
    check_task_request,
    opening_line,
    system_prompt,
)
from voicecall.conversation.tools import (
    ASK_OWNER,
    END_CALL,
    SEND_DTMF,
    ToolBox,
    ToolCall,
    ToolOutcome,
    end_call_handler,
)
from voicecall.errors import InvalidRequest

# ----------------------------------------------------------------------------- the request


def test_task_requests_are_checked_field_by_field() -> None:
    spec = check_task_request(CallMode.TASK, CallRequest(task="  Book a table.  "))
    assert spec is not None and spec.task == "Book a table."
    assert spec.outcome_schema == DEFAULT_OUTCOME_SCHEMA and spec.context is None
    assert check_task_request(CallMode.CONVERSATION, CallRequest(report_url="http://x")) is None
    for request, message in (
        (CallRequest(), "task: required in task mode"),
        (CallRequest(task=" "), "task: required in task mode"),
        (CallRequest(task="x" * 4001), "task: longer than 4000 characters"),
        (CallRequest(task="ok", context="c" * 8001), "context: longer than 8000 characters"),
        (CallRequest(task="a\x00b"), "task: must not contain NUL"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            check_task_request(CallMode.TASK, request)
    with pytest.raises(InvalidRequest, match="context: only for mode task"):
        check_task_request(CallMode.NOTIFY, CallRequest(context="facts"))


@pytest.mark.parametrize(
    ("schema", "detail"),
    [
        ({"type": "objekt"}, "outcome_schema: $.type: 'objekt' is not valid"),
        ({"required": "done"}, "outcome_schema: $.required: 'done' is not of type 'array'"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "Draft 2020-12"),
        ({"$ref": "https://example.com/s.json"}, "only local references"),
        ({"properties": {"a": {"$ref": "other.json#/x"}}}, "only local references"),
        ("not a dict", "must be a JSON object"),
        ({"enum": [float("nan")]}, "not plain JSON"),
        ({"description": "x" * 20_000}, "larger than 16384"),
    ],
)
def test_bad_outcome_schemas_name_the_field_and_the_problem(schema: Any, detail: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        check_outcome_schema(schema)
    assert str(exc.value).startswith("outcome_schema: ")
    assert detail in str(exc.value)


def test_a_deep_schema_is_refused() -> None:
    deep: dict[str, Any] = {"type": "object"}
    node = deep
    for _ in range(20):
        node["properties"] = {"x": {"type": "object"}}
        node = node["properties"]["x"]
    with pytest.raises(InvalidRequest, match="nested deeper"):
        check_outcome_schema(deep)


def test_opening_line_is_the_disclosure_then_the_message() -> None:
    text = "Hi, this is an AI assistant calling for Sam."
    assert opening_line("Is this the restaurant?", disclosure=True, disclosure_text=text) == (
        f"{text} Is this the restaurant?"
    )
    assert opening_line(None, disclosure=True, disclosure_text=text) == text
    assert opening_line("Hello.", disclosure=False, disclosure_text=text) == "Hello."
    assert opening_line(None, disclosure=False, disclosure_text=text) is None


def test_the_system_prompt_carries_task_facts_time_rules_and_tools() -> None:
    spec = check_task_request(
        CallMode.TASK, CallRequest(task="Book a table at 7.", context="Name: Sam")
    )
    assert spec is not None
    now = datetime(2026, 12, 4, 20, 15, tzinfo=timezone(timedelta(hours=1)))
    prompt = system_prompt(spec, now=now, opening="Hello!", tools=["end_call", "ask_owner"])
    for needle in (
        "Book a table at 7.",
        "Name: Sam",
        "Friday, 04 December 2026, 20:15 (UTC+01:00)",
        "Never invent facts",
        "AI assistant calling on someone's behalf",
        "Never claim to be human",
        'already opened with your words: "Hello!"',
        "Tools you can use: end_call, ask_owner.",
    ):
        assert needle in prompt, needle


# ----------------------------------------------------------------------------- tools


def request(name: str, args: Any, n: int = 1) -> ToolRequest:
    return ToolRequest(f"call_{n}", name, args if isinstance(args, str) else json.dumps(args))


class Recorder:
    def __init__(self, *, pending: bool = False) -> None:
        self.calls: list[ToolCall] = []
        self.pending = pending

    async def __call__(self, call: ToolCall) -> ToolOutcome:
        self.calls.append(call)
        return ToolOutcome({"ok": True}, pending=self.pending)


def box_with(*, dtmf: Recorder | None = None, ask: Recorder | None = None) -> ToolBox:
    box = ToolBox("c1")
    box.register(END_CALL, end_call_handler)
    box.register(ASK_OWNER, ask or Recorder(pending=True))
    if dtmf is not None:
        box.register(SEND_DTMF, dtmf)
    return box


def test_only_registered_tools_are_offered() -> None:
    names = [t["function"]["name"] for t in box_with().offered()]
    assert names == ["end_call", "ask_owner"]  # no send_dtmf / transfer_call without a handler
    names = [t["function"]["name"] for t in box_with(dtmf=Recorder()).offered()]
    assert names == ["end_call", "ask_owner", "send_dtmf"]


async def test_arguments_are_checked_before_a_handler_runs() -> None:
    dtmf = Recorder()
    box = box_with(dtmf=dtmf)
    bad = await box.run(request("send_dtmf", {"digits": "9x"}), anchor=0, round=1, said="")
    assert "digits" in bad.result["error"] and dtmf.calls == []
    broken = await box.run(request("send_dtmf", "{not json"), anchor=0, round=1, said="")
    assert "not valid JSON" in broken.result["error"]
    unknown = await box.run(request("transfer_call", {"to": "+1"}), anchor=0, round=1, said="")
    assert "no tool named 'transfer_call'" in unknown.result["error"]
    ok = await box.run(request("send_dtmf", {"digits": "1w2#"}), anchor=3, round=2, said="Ok.")
    assert ok.result == {"ok": True}
    assert dtmf.calls[0].arguments == {"digits": "1w2#"} and dtmf.calls[0].said == "Ok."
    assert [ex.result for ex in box.exchanges()][-1] == {"ok": True}


async def test_end_call_ends_with_its_goodbye() -> None:
    out = await box_with().run(
        request("end_call", {"goodbye": "  Thanks,   bye! "}), anchor=0, round=1, said=""
    )
    assert out.end == EndCall("Thanks, bye!")


async def test_a_pending_result_is_resolved_later() -> None:
    box = box_with()
    out = await box.run(request("ask_owner", {"question": "7:30?"}), anchor=2, round=1, said="")
    assert out.pending and box.waiting()
    assert box.exchanges()[0].result is None
    assert not box.resolve("call_other", {"answer": "x"})
    assert box.resolve("call_1", {"answer": "yes"})
    assert not box.waiting() and box.exchanges()[0].result == {"answer": "yes"}


async def test_a_held_run_executes_nothing_until_committed() -> None:
    ask = Recorder(pending=True)
    dtmf = Recorder()
    box = box_with(ask=ask, dtmf=dtmf)
    held = box.held()
    out = await held.run(request("send_dtmf", {"digits": "2"}), anchor=1, round=1, said="")
    assert out.pending  # the speculative run stops at a side effect
    end = await held.run(request("end_call", {}, n=2), anchor=1, round=1, said="")
    assert end.end == EndCall(None)  # no side effect: it ran (the run's output carries it)
    assert dtmf.calls == [] and box.exchanges() == []
    assert [ex.request.name for ex in held.exchanges()] == ["end_call"]
    assert [r.name for r in held.holding] == ["send_dtmf"]
    outcomes = await held.commit()
    assert [o.result for o in outcomes] == [{"ok": True}]
    assert [c.arguments for c in dtmf.calls] == [{"digits": "2"}]
    assert [ex.request.name for ex in box.exchanges()] == ["end_call", "send_dtmf"]
    with pytest.raises(RuntimeError):
        await held.commit()


async def test_a_discarded_held_run_leaves_no_trace() -> None:
    ask = Recorder(pending=True)
    box = box_with(ask=ask)
    held = box.held()
    await held.run(request("ask_owner", {"question": "?"}), anchor=0, round=1, said="")
    held.discard()
    assert ask.calls == [] and box.exchanges() == [] and not box.waiting()
    with pytest.raises(RuntimeError):
        await held.run(request("ask_owner", {"question": "?"}), anchor=0, round=1, said="")


# ----------------------------------------------------------------------------- messages


def test_tool_rounds_sit_after_the_lines_before_them_and_are_not_repeated() -> None:
    box = ToolBox("c1")
    transcript = [
        ("bot", "Hello, this is an AI assistant."),
        ("user", "Trattoria Quercia, how can I help?"),
        ("bot", "Let me check that."),  # said in the round that called ask_owner
        ("bot", "One moment, please."),  # a hold line
        ("user", "Take your time."),
    ]
    from voicecall.conversation.tools import Exchange

    ex = Exchange(2, 1, "Let me check that.", request("ask_owner", {"question": "7:30?"}))
    ex.result = {"answer": "yes"}
    box._exchanges.append(ex)
    messages = build_messages("SYSTEM", transcript, box.exchanges())
    assert [(m["role"], m.get("content")) for m in messages] == [
        ("system", "SYSTEM"),
        ("assistant", "Hello, this is an AI assistant."),
        ("user", "Trattoria Quercia, how can I help?"),
        ("assistant", "Let me check that."),
        ("tool", json.dumps({"answer": "yes"})),
        ("assistant", "One moment, please."),
        ("user", "Take your time."),
    ]
    assert messages[3]["tool_calls"][0]["id"] == "call_1"
    assert messages[4]["tool_call_id"] == "call_1"


def test_a_pending_tool_call_still_gets_a_tool_message() -> None:
    from voicecall.conversation.tools import Exchange

    ex = Exchange(0, 1, "", request("ask_owner", {"question": "?"}))
    messages = build_messages("S", [("user", "hi")], [ex])
    assert messages[1]["content"] is None and messages[1]["tool_calls"]
    assert json.loads(messages[2]["content"]) == {"status": "waiting for the result"}


def test_streamed_tool_call_fragments_are_joined_by_index() -> None:
    calls: dict[int, dict[str, str]] = {}
    chunks = [
        {"choices": [{"delta": {"content": "Checking. "}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "ask_"}}]}}
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "owner", "arguments": '{"que'}}
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "b",
                                "function": {"name": "end_call", "arguments": "{}"},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'stion": "?"}'}}]}}
            ]
        },
    ]
    texts = [t for c in chunks for t in fold_chunk(json.dumps(c), calls)]
    assert texts == ["Checking. "]
    assert calls == {
        0: {"id": "a", "name": "ask_owner", "args": '{"question": "?"}'},
        1: {"id": "b", "name": "end_call", "args": "{}"},
    }


# ----------------------------------------------------------------------------- outcome


def test_strict_subset() -> None:
    assert fits_strict(wrapped_schema(DEFAULT_OUTCOME_SCHEMA))
    open_object = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert not fits_strict(wrapped_schema(open_object))  # additionalProperties missing
    optional = {**open_object, "additionalProperties": False, "required": []}
    assert not fits_strict(wrapped_schema(optional))
    unsupported = {
        "type": "object",
        "properties": {"a": {"type": "string", "minLength": 2}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert not fits_strict(wrapped_schema(unsupported))
    assert not fits_strict({"anyOf": [{"type": "object"}]})
    assert not fits_strict({"type": "string"})


def test_wrapping_keeps_local_references_resolvable() -> None:
    schema = {
        "type": "object",
        "$defs": {"slot": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$"}},
        "properties": {
            "time": {"$ref": "#/$defs/slot"},
            "again": {"$ref": "#/properties/time"},
        },
        "required": ["time", "again"],
        "additionalProperties": False,
    }
    wrapped = wrapped_schema(schema)
    assert wrapped["$defs"] == schema["$defs"]
    assert wrapped["properties"]["outcome"]["properties"]["again"] == {
        "$ref": "#/properties/outcome/properties/time"
    }
    validator = Draft202012Validator(wrapped)
    assert validator.is_valid({"summary": "s", "outcome": {"time": "19:30", "again": "07:00"}})
    assert not validator.is_valid({"summary": "s", "outcome": {"time": "7pm", "again": "07:00"}})
    assert fits_strict(wrapped)


def test_check_answer() -> None:
    v = Draft202012Validator(DEFAULT_OUTCOME_SCHEMA)
    good = json.dumps({"summary": " Done.  ", "outcome": {"done": True, "details": "ok"}})
    assert check_answer(good, v) == ("Done.", {"done": True, "details": "ok"}, None)
    summary, outcome, problem = check_answer(
        json.dumps({"summary": "Hm.", "outcome": {"done": "yes"}}), v
    )
    assert summary == "Hm." and outcome is None
    assert problem is not None and problem.startswith("outcome")
    assert check_answer("[]", v)[2] == "the answer is not a JSON object with summary and outcome"
    assert check_answer('{"summary": "x"}', v)[2] == "the answer has no outcome"


@given(st.text(max_size=200))
def test_check_answer_of_untrusted_text_never_passes_an_invalid_outcome(text: str) -> None:
    v = Draft202012Validator(DEFAULT_OUTCOME_SCHEMA)
    _, outcome, problem = check_answer(text, v)
    if problem is None:
        assert v.is_valid(outcome)
    else:
        assert outcome is None


async def test_a_tool_runs_to_its_end_and_is_recorded_when_its_run_is_cancelled() -> None:
    import asyncio

    started = asyncio.Event()
    release = asyncio.Event()
    done: list[str] = []

    async def slow(call: ToolCall) -> ToolOutcome:
        started.set()
        await release.wait()
        done.append(call.id)
        return ToolOutcome({"status": "asked"}, pending=True)

    box = ToolBox("c1")
    box.register(ASK_OWNER, slow)
    run = asyncio.ensure_future(
        box.run(request("ask_owner", {"question": "?"}), anchor=0, round=1, said="")
    )
    await started.wait()
    run.cancel()  # the caller spoke again: the reply is cancelled mid-tool
    await asyncio.sleep(0)
    release.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert run.cancelled()
    assert done == ["call_1"]  # the question was still asked ...
    assert box.waiting() and box.exchanges()[0].request.id == "call_1"  # ... and recorded
