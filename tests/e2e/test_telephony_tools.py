"""The model tools end to end: a task call's agent (the fake OpenAI-compatible model) presses a
key in the emulator's IVR menu with send_dtmf, and transfers a call with transfer_call (only to
a number the call listed in transfer_to; busy brings the caller back)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from chat_server import FakeChat, Plan
from fake_serve import serve

from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator
from voicecall.emulator.sim import SimConfig

from .harness import CALLEE, RunningServer, running_server
from .test_telephony import IVR, TARGET

KEY = "sk-tel"
OUTCOME = json.dumps({"summary": "done", "outcome": {"done": True, "details": "ok"}})


@contextlib.asynccontextmanager
async def task_server(
    tmp_path: Path, creds: EmulatorCredentials
) -> AsyncIterator[tuple[RunningServer, Emulator, FakeChat]]:
    chat = FakeChat(api_key=KEY)
    async with (
        Emulator(
            account_sid=creds.account_sid,
            auth_token=creds.auth_token,
            config=SimConfig(words_per_minute=1200),
        ) as emulator,
        serve(chat.app()) as chat_at,
        running_server(
            tmp_path,
            emulator,
            creds,
            responder={"base_url": f"http://{chat_at}/v1", "model": "m", "api_key": KEY},
            transfer={"ring_timeout_seconds": 5},
        ) as running,
    ):
        yield running, emulator, chat


async def until(server: RunningServer, call_id: str, pred: Any, what: str) -> dict[str, Any]:
    for _ in range(600):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if pred(doc):
            return dict(doc)
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {doc}")


def tool_names(served_body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in served_body.get("tools", [])]


def tool_results(served_body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in served_body["messages"] if m["role"] == "tool"]


async def test_the_agent_presses_a_menu_key(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    async with task_server(tmp_path, emulator_credentials) as (server, emulator, chat):
        emulator.set_script(CALLEE, IVR)
        chat.plan(Plan(text="", tool_call=("send_dtmf", {"digits": "1"})))
        chat.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Thanks, goodbye."})))
        chat.plan_json(OUTCOME)
        r = await server.http.post(
            "/api/calls",
            json={"to": CALLEE, "mode": "task", "message": "Hello.", "task": "Reach bookings."},
        )
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]
        doc = await until(server, call_id, lambda d: d["outcome_final"], "the end")
        keys = [
            e for e in emulator.timeline(doc["provider_call_id"]) if e["kind"] == "callee-ivr-key"
        ]
        assert [(k["digit"], k["to"]) for k in keys] == [("1", "bookings")]
        first, second = chat.streamed[0].body, chat.streamed[1].body
        assert "send_dtmf" in tool_names(first)
        assert "transfer_call" not in tool_names(first)  # no transfer_to on this call
        (result,) = tool_results(second)
        assert result["status"] == "pressed" and result["digits"] == "1"
        assert result["via"] == "play"


async def test_the_agent_transfers_only_to_listed_numbers_and_comes_back_on_busy(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    async with task_server(tmp_path, emulator_credentials) as (server, emulator, chat):
        emulator.set_script(
            CALLEE,
            {
                "answer_after_ms": 100,
                "replies": ["Can I talk to a person please", "Okay, never mind then"],
            },
        )
        emulator.set_script(TARGET, {"outcome": "busy", "answer_after_ms": 100})
        chat.plan(
            Plan(text="", tool_call=("transfer_call", {"to": "+14155550123", "mode": "cold"}))
        )
        chat.plan(
            Plan(
                text="",
                tool_call=(
                    "transfer_call",
                    {"to": TARGET, "mode": "warm", "summary": "A caller wants a person."},
                ),
            )
        )
        chat.plan(Plan(text="Sorry, they are busy right now."))
        chat.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Goodbye."})))
        chat.plan_json(OUTCOME)
        r = await server.http.post(
            "/api/calls",
            json={
                "to": CALLEE,
                "mode": "task",
                "message": "Hello.",
                "task": "Help the caller; transfer to a person when asked.",
                "transfer_to": [TARGET],
            },
        )
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]
        doc = await until(server, call_id, lambda d: d["outcome_final"], "the end")
        assert doc["transfer"]["status"] == "busy" and doc["transfer"]["to"] == TARGET
        assert doc["transfer"]["agent_answers"] is True
        bots = [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "bot"]
        # the model that asked for the transfer said how it went (not the fixed line)
        assert "Sorry, they are busy right now." in bots and not any(
            "line is busy" in t for t in bots
        )
        assert "Okay, never mind then" in [
            ln["text"] for ln in doc["transcript"] if ln["speaker"] == "user"
        ]
        assert "transfer_call" in tool_names(chat.streamed[0].body)
        # the third request (after the caller came back) carries both results: the refusal of
        # a number not in transfer_to, and the warm transfer's outcome
        results = tool_results(chat.streamed[2].body)
        assert "not a number this call may transfer to" in results[0]["error"]
        assert results[1]["status"] == "busy" and "back with you" in results[1]["note"]
        assert doc["state"] == "hangup-bot"


async def test_transfer_to_is_for_task_calls_and_e164(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    async with task_server(tmp_path, emulator_credentials) as (server, _emulator, _chat):
        r = await server.http.post(
            "/api/calls",
            json={"to": CALLEE, "message": "Hi.", "mode": "conversation", "transfer_to": [TARGET]},
        )
        assert r.status_code == 422 and "transfer_to" in r.json()["detail"], r.text
        r = await server.http.post(
            "/api/calls",
            json={"to": CALLEE, "mode": "task", "task": "x", "transfer_to": ["555 0123"]},
        )
        assert r.status_code == 422 and "transfer_to" in r.json()["detail"], r.text
        r = await server.http.get("/api/calls")
        assert r.json()["calls"] == []
