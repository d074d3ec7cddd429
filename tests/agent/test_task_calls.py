"""Task calls through a real server (mock provider, SQLite) whose callee is played by signed
webhooks, with the in-call agent and the outcome on the fake OpenAI-compatible server (streamed
tool calls, structured outputs) and the report checked by the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from chat_server import Plan
from task_rig import SECRET, Rig, rig, until
from voicecall_server import CALLEE, TOKEN, loopback_socket

from voicecall.agent.client import Client, ClientError

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "booked": {"type": "boolean"},
        "time": {"type": ["string", "null"], "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "name": {"type": ["string", "null"]},
    },
    "required": ["booked", "time", "name"],
    "additionalProperties": False,
}
TASK = "Book a table for two tonight at 7. 7:30 is fine only if I agree. Name: Sam."


def said(reply: Any) -> str:
    return reply.say or ""


async def test_a_task_call_books_a_table_asks_the_owner_and_reports(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        call = await r.client.call(
            CALLEE, task=TASK, context="Sam Jones, party of two", outcome_schema=SCHEMA
        )
        info = await call.status()
        assert info.mode == "task"
        assert info.raw["task"] == TASK and info.raw["outcome_schema"] == SCHEMA
        assert info.lines("bot") == ["Hello, this is an AI assistant calling on someone's behalf."]
        first = await r.phone.answer(call.call_id)
        assert first["say"].startswith("Hello, this is an AI assistant")  # the disclosure

        r.chat.plan(Plan(text="Hi! I'd like to book a table for two tonight at seven, please."))
        await r.phone.says(call.call_id, "Trattoria Quercia, good evening, how can I help?")
        replies = await r.wait_replies(call.call_id, 1)
        assert "table for two tonight at seven" in said(replies[-1])
        assert replies[-1].listen is not None

        question = "They are full at 7:00 but offer 7:30 tonight. Is 7:30 fine?"
        r.chat.plan(
            Plan(
                text="Let me quickly check that with Sam.",
                tool_call=("ask_owner", {"question": question}),
            )
        )
        await r.phone.says(call.call_id, "Seven is fully booked, but I could do seven thirty.")
        await r.wait_replies(call.call_id, 2)
        # the question is visible at once, and a wait returns for it right away
        waited = await r.client.status(call.call_id, wait=30)
        assert waited.pending_question == question
        assert waited.raw["pending_question"]["seq"] == 0
        assert not waited.ended
        # while the owner thinks, what the callee says does not start the model again
        served_before = len(r.chat.streamed)
        await r.phone.says(call.call_id, "Of course, take your time.")
        await asyncio.sleep(0.3)
        assert len(r.chat.streamed) == served_before

        r.chat.plan(Plan(text="Seven thirty is fine. Please book it under the name Sam."))
        answered = await call.answer("Yes, 7:30 is fine.")
        assert answered["question"] == question and answered["answer"] == "Yes, 7:30 is fine."
        replies = await r.wait_replies(call.call_id, 3)
        assert "under the name Sam" in said(replies[-1])
        # the answer went back to the model as the tool's result, after the assistant's call
        body = r.chat.streamed[-1].body
        tool_msgs = [m for m in body["messages"] if m["role"] == "tool"]
        assert [json.loads(m["content"]) for m in tool_msgs] == [{"answer": "Yes, 7:30 is fine."}]
        calling = next(m for m in body["messages"] if m.get("tool_calls"))
        assert calling["content"] == "Let me quickly check that with Sam."
        assert calling["tool_calls"][0]["function"]["name"] == "ask_owner"
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        assert users[-1] == "Of course, take your time."  # said during the hold: not lost
        # send_dtmf is offered to every task call; transfer_call only with transfer_to
        offered = {t["function"]["name"] for t in body["tools"]}
        assert offered == {"end_call", "ask_owner", "send_dtmf"}
        assert r.chat.rejected == []
        # a second answer has nothing to answer
        with pytest.raises(ClientError) as exc:
            await call.answer("again")
        assert exc.value.status == 409 and exc.value.title == "NoPendingQuestion"

        r.chat.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Thank you, goodbye!"})))
        r.chat.plan_json(
            json.dumps(
                {
                    "summary": "The restaurant had no table at 7:00. The owner agreed to 7:30, "
                    "which was booked for Sam.",
                    "outcome": {"booked": True, "time": "19:30", "name": "Sam"},
                }
            )
        )
        await r.phone.says(call.call_id, "Wonderful, it's booked for seven thirty. Goodbye!")
        replies = await r.wait_replies(call.call_id, 4)
        assert said(replies[-1]) == "Thank you, goodbye!" and replies[-1].hangup
        await r.phone.hangs_up(call.call_id)

        result = await call.result(timeout=30)
        assert result.outcome == {"booked": True, "time": "19:30", "name": "Sam"}
        assert result.summary and "7:30" in result.summary
        assert result.outcome_error is None and result.outcome_final
        assert [q["status"] for q in result.raw["questions"]] == ["answered"]
        assert result.pending_question is None

        # one structured-output request, strict (the schema fits the strict subset)
        (review,) = r.chat.structured
        fmt = review.body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"]["properties"]["outcome"] == SCHEMA
        prompt = review.body["messages"][-1]["content"]
        assert "Of course, take your time." in prompt and "owner answered: Yes, 7:30" in prompt

        # the report: delivered once, signed per Standard Webhooks
        (got,) = await r.receiver.wait_for(1)
        verified = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
        assert verified["type"] == "call.ended"
        data = verified["data"]
        assert data["call_id"] == call.call_id and data["outcome"]["time"] == "19:30"
        assert data["summary"] == result.summary and data["task"] == TASK
        assert [t["speaker"] for t in data["transcript"]][:2] == ["bot", "user"]
        assert data["timings"]["talk_seconds"] is not None
        assert got.headers["webhook-id"] == f"msg_{call.call_id}"

        async def delivered() -> bool:
            info = await call.status()
            return (info.report or {}).get("state") == "delivered"

        await until(delivered, "the delivery recorded")
        report = (await call.status()).report
        assert report is not None
        assert report["attempts"] == 1 and report["last_status"] == 204
        assert report["url"].endswith("/reports")


async def test_the_agent_opens_a_call_without_disclosure_or_message(tmp_path: Path) -> None:
    async with rig(tmp_path, task={"disclosure": False}) as r:
        r.chat.plan(Plan(text="Hello, I'm calling to book a table for two tonight."))
        call = await r.client.call(CALLEE, task=TASK)
        info = await call.status()
        assert info.transcript == []
        reply = await r.phone.answer(call.call_id)
        assert reply["say"] is None and reply["listen"]  # it listens while the model writes
        replies = await r.wait_replies(call.call_id, 1)
        assert "book a table" in said(replies[-1])
        system = r.chat.streamed[0].body["messages"][0]["content"]
        assert TASK in system and "Open the call" in system
        assert "It is now" in system
        assert [m["role"] for m in r.chat.streamed[0].body["messages"]] == ["system"]


async def test_owner_timeout_feeds_the_model_a_note_and_hold_lines_fill_the_wait(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, task={"owner_timeout_seconds": 3, "hold_interval_seconds": 2}) as r:
        call = await r.client.call(CALLEE, task=TASK)
        await r.phone.answer(call.call_id)
        r.chat.plan(Plan(text="", tool_call=("ask_owner", {"question": "Is 8 pm fine?"})))
        await r.phone.says(call.call_id, "We only have eight o'clock.")
        # nothing was said with the tool call: a hold line at once, another ~2 s later
        replies = await r.wait_replies(call.call_id, 2)
        assert said(replies[0]) == "One moment, please, I'm just checking that."
        assert said(replies[1]) == "Thanks for holding, I'm still checking."
        r.chat.plan(Plan(text="I'm sorry, I can't confirm that now. I'll call back."))
        replies = await r.wait_replies(call.call_id, 3)
        assert "call back" in said(replies[-1])
        tool = next(m for m in r.chat.streamed[-1].body["messages"] if m["role"] == "tool")
        result = json.loads(tool["content"])
        assert result["answer"] is None and "did not answer within 3 seconds" in result["note"]
        info = await call.status()
        assert [q["status"] for q in info.raw["questions"]] == ["timeout"]
        assert info.pending_question is None
        with pytest.raises(ClientError) as exc:
            await call.answer("too late")
        assert exc.value.status == 409


async def test_bad_task_requests_are_refused_and_place_nothing(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        http = r.phone.http
        headers = {"authorization": f"Bearer {TOKEN}"}

        async def post(body: dict[str, Any]) -> httpx.Response:
            return await http.post(f"{r.url}/api/calls", json=body, headers=headers)

        cases: list[tuple[dict[str, Any], str]] = [
            ({"mode": "task"}, "task: required"),
            ({"task": "x" * 4001}, "task"),
            ({"task": "ok", "context": "y" * 8001}, "context"),
            ({"task": "ok", "outcome_schema": {"type": "objekt"}}, "outcome_schema"),
            ({"task": "ok", "outcome_schema": {"properties": 5}}, "outcome_schema"),
            ({"task": "ok", "outcome_schema": [1]}, "outcome_schema"),
            (
                {"task": "ok", "outcome_schema": {"$ref": "https://evil.example/s.json"}},
                "outcome_schema",
            ),
            ({"task": "ok", "report_url": "ftp://x.example/r"}, "report_url"),
            ({"task": "ok", "report_url": "http://user:pw@x.example/r"}, "report_url"),
            ({"mode": "conversation", "message": "hi", "task": "no"}, "task: only for mode task"),
            ({"mode": "conversation"}, "message"),
        ]
        for body, needle in cases:
            resp = await post({"to": CALLEE, **body})
            assert resp.status_code == 422, (body, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert needle in resp.json()["detail"], (body, resp.json())
        resp = await post({"to": CALLEE, "task": "ok", "outcome_schema": {"type": "objekt"}})
        assert "outcome_schema: $.type" in resp.json()["detail"]
        assert r.provider.calls == {}
        assert (await r.client.calls())[0] == []


async def test_report_urls_resolving_to_private_addresses_are_refused(tmp_path: Path) -> None:
    async with rig(tmp_path, reports={"allow_private_urls": False}) as r:
        for url in (
            "http://127.0.0.1:9/r",
            "http://localhost/r",
            "http://[::1]/r",
            "http://10.1.2.3/r",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/r",
        ):
            with pytest.raises(ClientError) as exc:
                await r.client.call(CALLEE, "hi", "conversation", report_url=url)
            assert exc.value.status == 422 and "report_url" in (exc.value.detail or ""), url
        assert r.provider.calls == {}


async def test_unknown_call_and_answer_without_question(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(ClientError) as exc:
            await r.client.answer("nope", "hi")
        assert exc.value.status == 404
        call = await r.client.call(CALLEE, "Hello there", "conversation")
        with pytest.raises(ClientError) as exc:
            await call.answer("hi")
        assert exc.value.status == 409
        with pytest.raises(ClientError) as exc:
            await r.client.status("nope", wait=1)
        assert exc.value.status == 404
        with pytest.raises(ClientError) as exc:
            await r.client._request("GET", f"/api/calls/{call.call_id}", params={"wait": "601"})
        assert exc.value.status == 422


async def test_a_task_call_that_is_never_answered_gets_a_plain_summary(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        call = await r.client.call(CALLEE, task=TASK, outcome_schema=SCHEMA)
        record = await r.app.manager.get_call(call.call_id)  # type: ignore[union-attr]
        await r.phone._post(
            {
                "kind": "status",
                "call_sid": record.provider_call_id,
                "call_id": call.call_id,
                "events": [{"kind": "ended", "key": "busy", "reason": "busy", "sequence": 3}],
            }
        )
        result = await call.result(timeout=10)
        assert result.state == "busy" and result.outcome is None
        assert result.summary == "The line was busy; nobody answered the call."
        assert result.outcome_error == "the call never connected (busy)"
        assert r.chat.served == []  # no model request at all
        (got,) = await r.receiver.wait_for(1)
        doc = json.loads(got.body)
        assert doc["data"]["outcome_error"] == "the call never connected (busy)"


async def test_an_invalid_outcome_is_asked_again_then_given_up(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        call = await r.client.call(CALLEE, task=TASK, outcome_schema=SCHEMA)
        await r.phone.answer(call.call_id)
        bad = {"summary": "Booked.", "outcome": {"booked": "yes", "time": "7:30pm", "name": None}}
        r.chat.plan_json(json.dumps(bad))
        r.chat.plan_json("not json at all")
        await r.phone.hangs_up(call.call_id)
        result = await call.result(timeout=10)
        assert result.outcome is None
        assert result.outcome_error and result.outcome_error.startswith(
            "no valid outcome after 2 attempts: the answer is not JSON"
        )
        assert result.summary == "Booked."  # the first answer's summary is still used
        _first, second = r.chat.structured
        retry = second.body["messages"]
        assert retry[-2] == {"role": "assistant", "content": json.dumps(bad)}
        assert "outcome['booked']: 'yes' is not of type 'boolean'" in retry[-1]["content"]


async def test_a_schema_outside_the_strict_subset_is_asked_without_strict(tmp_path: Path) -> None:
    loose = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    async with rig(tmp_path) as r:
        call = await r.client.call(CALLEE, task=TASK, outcome_schema=loose)
        await r.phone.answer(call.call_id)
        r.chat.plan_json(json.dumps({"summary": "Fine.", "outcome": {"ok": True, "extra": 1}}))
        await r.phone.hangs_up(call.call_id)
        result = await call.result(timeout=10)
        assert result.outcome == {"ok": True, "extra": 1}
        (review,) = r.chat.structured
        assert review.body["response_format"]["json_schema"]["strict"] is False
        assert r.chat.rejected == []


# ----------------------------------------------------------------------------- MCP


@contextlib.asynccontextmanager
async def mcp_http(r: Rig) -> AsyncIterator[str]:
    from voicecall.agent.mcp import serve_http

    sock = loopback_socket()
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    async with Client(r.url, TOKEN) as client:
        task = asyncio.create_task(serve_http(client, sock=sock, started=got.set_result))
        try:
            yield await asyncio.wait_for(got, 10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_task_call_from_mcp_with_a_question_and_progress(tmp_path: Path) -> None:
    from mcp.client import Client as McpClient

    async with rig(tmp_path) as r, mcp_http(r) as url, McpClient(url) as mcp:
        placed = await mcp.call_tool(
            "initiate_call",
            {
                "mode": "task",
                "task": TASK,
                "context": "Sam",
                "outcome_schema": SCHEMA,
                "wait_seconds": 0,
            },
        )
        assert not placed.is_error, placed
        doc = placed.structured_content
        assert doc is not None and doc["mode"] == "task" and not doc["outcome_final"]
        call_id = doc["call_id"]
        await r.phone.answer(call_id)
        r.chat.plan(
            Plan(text="One moment.", tool_call=("ask_owner", {"question": "Is 7:30 fine?"}))
        )
        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        bus = r.app.bus
        watching = bus.subscriber_count + 1
        waiting = asyncio.create_task(
            mcp.call_tool(
                "wait_for_call",
                {"call_id": call_id, "wait_seconds": 30},
                progress_callback=on_progress,
            )
        )
        # the tool is waiting, and watching events (one more event-stream subscriber), before
        # they happen (a fixed pause here was too short on a busy machine)
        async def subscribed() -> bool:
            return bus.subscriber_count >= watching

        await until(subscribed, "wait_for_call watching events")
        await r.phone.says(call_id, "Only seven thirty is free.")
        asked = await waiting
        assert not asked.is_error, asked
        got = asked.structured_content
        assert got is not None and got["pending_question"] == "Is 7:30 fine?"
        assert "answer_question" in got["next"]
        assert "them: Only seven thirty is free." in [m for _, m in progress]
        assert "question for you: Is 7:30 fine?" in [m for _, m in progress]
        assert [v for v, _ in progress] == sorted(v for v, _ in progress)

        r.chat.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Great, thank you. Bye!"})))
        r.chat.plan_json(
            json.dumps(
                {
                    "summary": "Booked at 7:30 for Sam.",
                    "outcome": {"booked": True, "time": "19:30", "name": "Sam"},
                }
            )
        )
        answered = await mcp.call_tool(
            "answer_question", {"call_id": call_id, "answer": "Yes, 7:30 works."}
        )
        assert not answered.is_error and answered.structured_content
        assert answered.structured_content["question"] == "Is 7:30 fine?"
        again = await mcp.call_tool("answer_question", {"call_id": call_id, "answer": "Yes."})
        assert again.is_error and "no question" in text(again)
        replies = await r.wait_replies(call_id, 1)
        assert replies[-1].hangup
        await r.phone.hangs_up(call_id)
        final = await mcp.call_tool("wait_for_call", {"call_id": call_id, "wait_seconds": 30})
        out = final.structured_content
        assert out is not None and out["outcome_final"] and out["ended"]
        assert out["outcome"] == {"booked": True, "time": "19:30", "name": "Sam"}
        assert out["summary"] == "Booked at 7:30 for Sam."


def text(result: Any) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
