"""Task calls end to end through the emulator (real Twilio wire: REST, signed webhooks, TwiML
<Gather>), the in-call model and the outcome on the fake OpenAI-compatible server (streamed tool
calls, structured outputs), the owner's answer through the API, and the signed report checked by
the ``standardwebhooks`` package — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from chat_server import FakeChat, Plan
from fake_serve import serve
from report_receiver import ReportReceiver

from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator
from voicecall.emulator.sim import SimConfig
from voicecall.reports.signing import new_secret

from .harness import CALLEE, RunningServer, running_server

pytestmark = pytest.mark.e2e

# a host who answers each of the bot's turns in order (the service under test hears them with
# whisper; this test is about the task machinery over a stream, not the keyword-driven host)
HOST_LINES = (
    "Good evening, Trattoria Quercia, how can I help?",
    "Seven o'clock is full. We have a table at seven thirty.",
    "Sure, take your time.",
    "Wonderful, your table is booked. See you tonight, goodbye!",
)
KEY = "sk-e2e"
SECRET = new_secret(b"e2e-report-secret-32-bytes-long!")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "booked": {"type": "boolean"},
        "time": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
    },
    "required": ["booked", "time", "name"],
    "additionalProperties": False,
}
#: the callee (a restaurant host), one reply per <Gather>
HOST = {
    "answer_after_ms": 200,
    "reply_delay_ms": 100,
    "replies": [
        "Trattoria Quercia, good evening, how can I help?",
        "I'm sorry, seven is fully booked. I could offer seven thirty instead.",
        "Of course, take your time.",
        "Wonderful, seven thirty tonight under Sam. Goodbye!",
    ],
    "hangup_after_ms": 120_000,
}


@contextlib.asynccontextmanager
async def task_server(
    tmp_path: Path, creds: EmulatorCredentials, store_url: str
) -> AsyncIterator[tuple[RunningServer, Emulator, FakeChat, ReportReceiver]]:
    chat = FakeChat(api_key=KEY)
    receiver = ReportReceiver()
    async with (
        Emulator(
            account_sid=creds.account_sid,
            auth_token=creds.auth_token,
            config=SimConfig(words_per_minute=1200),
        ) as emulator,
        serve(chat.app()) as chat_at,
        serve(receiver.app()) as hook_at,
        running_server(
            tmp_path,
            emulator,
            creds,
            store={"url": store_url},
            responder={"base_url": f"http://{chat_at}/v1", "model": "m", "api_key": KEY},
            reports={
                "url": f"http://{hook_at}/calls",
                "secret": SECRET,
                "allow_private_urls": True,
            },
        ) as running,
    ):
        yield running, emulator, chat, receiver


async def doc_of(server: RunningServer, call_id: str, **params: Any) -> dict[str, Any]:
    r = await server.http.get(f"/api/calls/{call_id}", params=params, timeout=60)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def until_doc(server: RunningServer, call_id: str, pred: Any, what: str) -> dict[str, Any]:
    for _ in range(600):
        doc = await doc_of(server, call_id)
        if pred(doc):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {doc}")


def said_by(doc: dict[str, Any], speaker: str) -> list[str]:
    return [t["text"] for t in doc["transcript"] if t["speaker"] == speaker]


async def test_a_task_call_over_gather_end_to_end(
    tmp_path: Path, emulator_credentials: EmulatorCredentials, store_url: str
) -> None:
    async with task_server(tmp_path, emulator_credentials, store_url) as (
        server,
        emulator,
        chat,
        receiver,
    ):
        emulator.set_script(CALLEE, HOST)
        chat.plan(Plan(text="Hi! I'd like to book a table for two tonight at seven, please."))
        chat.plan(
            Plan(
                text="Let me quickly check that with Sam.",
                tool_call=("ask_owner", {"question": "No table at 7, but 7:30. Is 7:30 fine?"}),
            )
        )
        chat.plan(Plan(text="Seven thirty is fine. Please book it under the name Sam."))
        chat.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Thank you, goodbye!"})))
        chat.plan_json(
            json.dumps(
                {
                    "summary": "Seven was full; the owner agreed to 7:30, booked under Sam.",
                    "outcome": {"booked": True, "time": "19:30", "name": "Sam"},
                }
            )
        )
        r = await server.http.post(
            "/api/calls",
            json={
                "to": CALLEE,
                "mode": "task",
                "task": "Book a table for two tonight at 7. 7:30 only if I agree.",
                "context": "Name: Sam",
                "outcome_schema": SCHEMA,
            },
        )
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]

        # the wait answers as soon as the agent asks the owner
        doc = await doc_of(server, call_id, wait=60)
        assert doc["pending_question"]["question"] == "No table at 7, but 7:30. Is 7:30 fine?"
        assert not doc["outcome_final"]
        # what the host says meanwhile is kept (and does not start the model again)
        doc = await until_doc(
            server,
            call_id,
            lambda d: "Of course, take your time." in said_by(d, "user"),
            "the host's line during the hold",
        )
        assert len(chat.streamed) == 2
        r = await server.http.post(
            f"/api/calls/{call_id}/answer", json={"answer": "Yes, 7:30 is fine."}
        )
        assert r.status_code == 200, r.text

        doc = await doc_of(server, call_id, wait=60, questions="false")
        assert doc["outcome_final"] and doc["state"] == "hangup-bot", doc
        assert doc["outcome"] == {"booked": True, "time": "19:30", "name": "Sam"}
        assert doc["summary"].startswith("Seven was full")
        assert said_by(doc, "bot") == [
            "Hello, this is an AI assistant calling on someone's behalf.",
            "Hi! I'd like to book a table for two tonight at seven, please.",
            "Let me quickly check that with Sam.",
            "Seven thirty is fine. Please book it under the name Sam.",
            "Thank you, goodbye!",
        ]
        assert said_by(doc, "user") == HOST["replies"]
        assert chat.rejected == []

        # the emulator really said those lines (TwiML <Say>), and the call was hung up by us
        sim = await emulator.wait_for_call_end(doc["provider_call_id"], timeout=20)
        heard = [item.text for item in sim.heard if item.kind == "say"]
        assert heard[-1] == "Thank you, goodbye!" and "Of course" not in " ".join(heard)

        (got,) = await receiver.wait_for(1)
        report = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
        assert report["data"]["outcome"] == doc["outcome"]
        assert report["data"]["questions"][0]["answer"] == "Yes, 7:30 is fine."
        assert len(report["data"]["transcript"]) == len(doc["transcript"])
        final = await until_doc(
            server, call_id, lambda d: d["report"]["state"] == "delivered", "the delivery"
        )
        assert final["report"]["attempts"] == 1


async def test_a_plain_call_gets_a_report_too(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    async with task_server(tmp_path, emulator_credentials, f"sqlite:///{tmp_path / 'p.db'}") as (
        server,
        emulator,
        chat,
        receiver,
    ):
        emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": []})
        r = await server.http.post(
            "/api/calls",
            json={"to": CALLEE, "message": "Your parcel arrives today.", "mode": "notify"},
        )
        call_id = r.json()["call_id"]
        doc = await doc_of(server, call_id, wait=30)
        assert doc["outcome_final"] and doc["outcome"] is None and doc["task"] is None
        (got,) = await receiver.wait_for(1)
        report = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
        assert report["type"] == "call.ended" and report["data"]["mode"] == "notify"
        assert report["data"]["transcript"][0]["text"] == "Your parcel arrives today."
        assert chat.served == []


async def test_a_report_url_is_per_call_and_guarded(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    own = ReportReceiver()
    async with (
        task_server(tmp_path, emulator_credentials, f"sqlite:///{tmp_path / 'p.db'}") as (
            server,
            emulator,
            _chat,
            receiver,
        ),
        serve(own.app()) as own_at,
    ):
        emulator.set_script(CALLEE, {"answer_after_ms": 100, "outcome": "busy"})
        r = await server.http.post(
            "/api/calls",
            json={
                "to": CALLEE,
                "message": "Hi",
                "mode": "conversation",
                "report_url": f"http://{own_at}/mine?token=abc",
            },
        )
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]
        (got,) = await own.wait_for(1)
        assert got.path == "/mine" and json.loads(got.body)["data"]["state"] == "busy"
        assert receiver.received == []
        doc = await until_doc(
            server, call_id, lambda d: (d["report"] or {}).get("state") == "delivered", "delivery"
        )
        assert doc["report"]["url"].endswith("/mine?…")  # the query (a token) is not shown
        # the guard: with private addresses refused, the same URL is a 422 and nothing is placed
        server.app.settings.reports.allow_private_urls = False
        try:
            r = await server.http.post(
                "/api/calls",
                json={"to": CALLEE, "message": "Hi", "report_url": f"http://{own_at}/mine"},
            )
        finally:
            server.app.settings.reports.allow_private_urls = True
        assert r.status_code == 422 and "report_url" in r.json()["detail"]
        assert "loopback" in r.json()["detail"]
        assert len(emulator.calls) == 1


async def test_answering_an_unknown_or_plain_call(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    async with task_server(tmp_path, emulator_credentials, f"sqlite:///{tmp_path / 'p.db'}") as (
        server,
        emulator,
        _chat,
        _receiver,
    ):
        r = await server.http.post("/api/calls/nope/answer", json={"answer": "x"})
        assert r.status_code == 404 and r.json()["title"] == "UnknownCall"
        emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": [None]})
        r = await server.http.post(
            "/api/calls", json={"to": CALLEE, "message": "Hi", "mode": "conversation"}
        )
        call_id = r.json()["call_id"]
        r = await server.http.post(f"/api/calls/{call_id}/answer", json={"answer": "x"})
        assert r.status_code == 409 and r.json()["title"] == "NoPendingQuestion"
        r = await server.http.post(f"/api/calls/{call_id}/answer", json={"answer": ""})
        assert r.status_code == 422 and "answer" in r.json()["detail"]
        r = await server.http.get(f"/api/calls/{call_id}", params={"wait": "601"})
        assert r.status_code == 422 and "wait" in r.json()["detail"]
        await server.http.post(f"/api/calls/{call_id}/end")


def _booking_agent(messages: list[dict[str, Any]]) -> Plan:
    """The task's model as a function of the conversation (the host's lines as whisper may
    hear them): what a model would answer, whichever run asks."""
    last = messages[-1] if messages else {}
    heard = str(last.get("content") or "").lower()
    if last.get("role") == "tool":  # the owner's answer, or still waiting for it
        if '"answer"' not in heard:
            return Plan(text="")
        return Plan(text="Seven thirty is fine, under the name Sam, please.")
    if re.search(r"booked|bye|see you", heard):
        return Plan(text="", tool_call=("end_call", {"goodbye": "Thank you, goodbye!"}))
    if re.search(r"full|thirty|7:30|730", heard):
        return Plan(text="", tool_call=("ask_owner", {"question": "Is 7:30 fine?"}))
    return Plan(text="I'd like a table for two tonight at seven, please.")


@pytest.mark.slow
async def test_a_task_call_over_media_streams(
    tmp_path: Path, emulator_credentials: EmulatorCredentials
) -> None:
    """The same task over a Media Stream (local espeak-ng TTS, faster-whisper STT): the owner
    consult's hold line is spoken on the stream, and the model goes on after the answer."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    pytest.importorskip("faster_whisper")
    chat = FakeChat(api_key=KEY)
    receiver = ReportReceiver()
    async with (
        Emulator(
            account_sid=emulator_credentials.account_sid,
            auth_token=emulator_credentials.auth_token,
        ) as emulator,
        serve(chat.app()) as chat_at,
        serve(receiver.app()) as hook_at,
    ):
        emulator.set_script(
            CALLEE,
            {
                "answer_after_ms": 300,
                "reply_delay_ms": 400,
                "replies": list(HOST_LINES),
                "hangup_after_ms": 60_000,
                "voice": "espeak",
            },
        )
        chat.answer_from(_booking_agent)
        chat.plan_json(
            json.dumps(
                {"summary": "Booked.", "outcome": {"booked": True, "time": "19:30", "name": "Sam"}}
            )
        )
        async with running_server(
            tmp_path,
            emulator,
            emulator_credentials,
            streaming=True,
            responder={"base_url": f"http://{chat_at}/v1", "model": "m", "api_key": KEY},
            reports={"url": f"http://{hook_at}/r", "secret": SECRET, "allow_private_urls": True},
            # speculation on: the chat fake answers from the conversation's content, so an
            # early run on a partial and the real one on the final get the same answer
            turn={"speculate": True},
        ) as server:
            assert server.app.streams is not None
            r = await server.http.post(
                "/api/calls",
                json={"to": CALLEE, "task": "Book a table for two at 7.", "outcome_schema": SCHEMA},
            )
            call_id = r.json()["call_id"]
            doc = await doc_of(server, call_id, wait=90)
            assert doc["pending_question"]["question"] == "Is 7:30 fine?", doc
            # nothing was said with the question: a hold line goes out on the stream at once
            doc = await until_doc(
                server,
                call_id,
                lambda d: len(said_by(d, "user")) >= 3,
                "the host's answer to the hold line",
            )
            assert "One moment, please, I'm just checking that." in said_by(doc, "bot")
            r = await server.http.post(f"/api/calls/{call_id}/answer", json={"answer": "Yes."})
            assert r.status_code == 200, r.text
            doc = await doc_of(server, call_id, wait=90, questions="false")
            assert doc["outcome_final"] and doc["state"] == "hangup-bot", doc
            assert len(said_by(doc, "user")) == len(HOST_LINES)
            assert said_by(doc, "bot")[-1] == "Thank you, goodbye!"
            assert doc["outcome"]["booked"] is True
            sim = await emulator.wait_for_call_end(doc["provider_call_id"], timeout=20)
            stats = [e for e in sim.timeline if e.get("kind") == "stream-stats"]
            assert stats and stats[-1]["stats"]["bytes_received"] > 3 * 8000  # 3 s of audio
            (got,) = await receiver.wait_for(1)
            assert standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
            manager = server.app.manager
            assert manager is not None
            spec = manager.autoreply.speculator
            assert spec.started >= 1, (spec.started, spec.adopted, spec.dropped)
        assert chat.rejected == []


async def test_a_task_call_reaching_voicemail_leaves_a_message_the_model_wrote(
    tmp_path: Path, emulator_credentials: EmulatorCredentials, store_url: str
) -> None:
    async with task_server(tmp_path, emulator_credentials, store_url) as (
        server,
        emulator,
        chat,
        _receiver,
    ):
        emulator.set_script(
            CALLEE,
            {
                "answer_after_ms": 200,
                "voicemail": {
                    # long enough for AMD to hear a machine at this emulator's 1,200 words/min
                    "greeting": " ".join(["Hi, this is the Trattoria, we are closed now."] * 8)
                    + " Please leave a message after the tone.",
                    "beep": {"frequency_hz": 1000, "duration_ms": 400},
                    "max_silence_ms": 3000,
                },
            },
        )
        chat.plan(Plan(text="Hello, this is an assistant calling for Sam about a table tonight."))
        chat.plan_json(
            json.dumps(
                {"summary": "Voicemail.", "outcome": {"booked": False, "time": None, "name": None}}
            )
        )
        r = await server.http.post(
            "/api/calls",
            json={
                "to": CALLEE,
                "mode": "task",
                "task": "Book a table for two tonight at 7.",
                "context": "Name: Sam",
                "outcome_schema": SCHEMA,
                "machine_detection": "voicemail",
            },
        )
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]
        doc = await until_doc(server, call_id, lambda d: d["ended_at"] is not None, "the end")
        assert doc["end_reason"] == "voicemail", doc
        # the model was asked for the message from the task (no tools offered), and it was left
        first = chat.streamed[0]
        assert "answering machine" in first.body["messages"][0]["content"]
        assert "Book a table for two tonight at 7." in first.body["messages"][0]["content"]
        assert said_by(doc, "bot")[-1].startswith("Hello, this is an assistant calling for Sam")
        sim = emulator.call(doc["provider_call_id"])
        assert "calling for sam" in sim.callee.message.text.lower()
