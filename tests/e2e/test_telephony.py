"""Keypad out and transfers end to end: the real server, the emulator's IVR, <Play digits>,
<Dial> with a whisper and its action, on a real SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, FROM, RunningServer, StartServer

TARGET = "+14155550177"

IVR = {
    "answer_after_ms": 100,
    "ivr": {
        "answer_delay_ms": 200,
        "nodes": {
            "main": {
                "say": "For bookings press one, for opening hours press two.",
                "options": {"1": "bookings", "2": "hours"},
                "timeout_ms": 8000,
            },
            "bookings": {"say": "Bookings desk, please hold.", "next": "main"},
            "hours": {"say": "We are open from six to eleven. Goodbye.", "then": "hangup"},
        },
    },
}


@pytest_asyncio.fixture
async def tel_server(start_server: StartServer) -> AsyncIterator[RunningServer]:
    async with start_server(
        transfer={"ring_timeout_seconds": 5}, max_concurrent_calls=10
    ) as running:
        yield running


async def doc_of(server: RunningServer, call_id: str) -> dict[str, Any]:
    r = await server.http.get(f"/api/calls/{call_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_for(server: RunningServer, call_id: str, check: Any, timeout: float = 20) -> dict:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        doc = await doc_of(server, call_id)
        if check(doc):
            return doc
        if loop.time() > end:
            raise AssertionError(f"condition not met: {doc}")
        await asyncio.sleep(0.05)


def user_lines(doc: dict) -> list[str]:
    return [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "user"]


async def conversation(server: RunningServer, emulator: Emulator, script: dict) -> str:
    emulator.set_script(CALLEE, script)
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello.", "mode": "conversation"}
    )
    assert r.status_code == 201, r.text
    call_id = str(r.json()["call_id"])
    await wait_for(server, call_id, lambda d: user_lines(d))
    return call_id


async def test_ivr_menu_navigated_with_play_digits_on_a_gather_call(
    tel_server: RunningServer, emulator: Emulator
) -> None:
    server = tel_server
    call_id = await conversation(server, emulator, IVR)
    doc = await doc_of(server, call_id)
    assert "press one" in user_lines(doc)[0].lower()
    r = await server.http.post(f"/api/calls/{call_id}/dtmf", json={"digits": "1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": call_id, "digits": "1", "via": "play", "seconds": 0.18}
    doc = await wait_for(
        server, call_id, lambda d: any("bookings desk" in t.lower() for t in user_lines(d))
    )
    sid = doc["provider_call_id"]
    keys = [e for e in emulator.timeline(sid) if e["kind"] == "callee-ivr-key"]
    assert [(k["digit"], k["node"], k["to"]) for k in keys] == [("1", "main", "bookings")]
    assert doc["state"] not in ("completed", "hangup-bot")  # still talking after the keys
    await server.http.post(f"/api/calls/{call_id}/end")


async def test_keypad_bad_input_changes_nothing(
    tel_server: RunningServer, emulator: Emulator
) -> None:
    server = tel_server
    call_id = await conversation(server, emulator, IVR)
    before = await doc_of(server, call_id)
    for digits, needle in (("12x", "'x' at position 2"), ("", "empty"), ("1A", "in-band")):
        r = await server.http.post(f"/api/calls/{call_id}/dtmf", json={"digits": digits})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "digits" in r.json()["detail"] and needle in r.json()["detail"], r.json()
    sid = before["provider_call_id"]
    assert not [e for e in emulator.timeline(sid) if e["kind"] == "callee-ivr-key"]
    await server.http.post(f"/api/calls/{call_id}/end")
    await wait_for(server, call_id, lambda d: d["state"] == "hangup-bot")
    r = await server.http.post(f"/api/calls/{call_id}/dtmf", json={"digits": "1"})
    assert r.status_code == 409, r.text
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer", json={"to": TARGET, "mode": "cold"}
    )
    assert r.status_code == 409, r.text


async def test_cold_transfer_hands_the_call_over(
    tel_server: RunningServer, emulator: Emulator
) -> None:
    server = tel_server
    emulator.set_script(TARGET, {"answer_after_ms": 100, "hangup_after_ms": 1500})
    call_id = await conversation(
        server, emulator, {"answer_after_ms": 100, "replies": ["Put me through please"]}
    )
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer", json={"to": TARGET, "mode": "cold"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "transferred" and body["end_reason"] == "transferred"
    assert body["transfer"]["status"] == "handed-over" and body["transfer"]["to"] == TARGET
    assert "token" not in body["transfer"]
    sim = await emulator.wait_for_call_end(body["provider_call_id"], timeout=15)
    dials = [e for e in sim.timeline if e.get("kind") == "verb" and e.get("verb") == "Dial"]
    assert dials and dials[0]["to"] == [TARGET] and dials[0]["caller_id"] == FROM
    assert any(e.get("kind") == "dial-bridged" for e in sim.timeline)
    doc = await doc_of(server, call_id)
    assert doc["state"] == "transferred"  # the later status callback changes nothing


async def test_warm_transfer_whispers_then_connects(
    tel_server: RunningServer, emulator: Emulator
) -> None:
    server = tel_server
    # the number hangs up 2 s after the whisper (3.6 s) ended: a short bridged call
    emulator.set_script(TARGET, {"answer_after_ms": 100, "hangup_after_ms": 6000})
    call_id = await conversation(
        server, emulator, {"answer_after_ms": 100, "replies": ["I want a person"]}
    )
    summary = "Sam wants to book a table for four tonight."
    events: list[dict] = []
    watcher = asyncio.ensure_future(_collect(server, events))
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer",
        json={"to": TARGET, "mode": "warm", "summary": summary},
    )
    assert r.status_code == 200, r.text
    assert r.json()["transfer"]["status"] == "dialing"
    doc = await wait_for(server, call_id, lambda d: d["state"] == "transferred", timeout=25)
    assert doc["end_reason"] == "transferred"
    transfer = doc["transfer"]
    assert transfer["status"] == "completed" and transfer["mode"] == "warm"
    child = transfer["dial_call_sid"]
    assert [h.text for h in emulator.call(child).heard] == [summary]
    watcher.cancel()
    statuses = [e["status"] for e in events if e.get("type") == "call.transfer"]
    assert statuses == ["dialing", "connected", "completed"], events


async def _collect(server: RunningServer, into: list[dict]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        async with server.http.stream("GET", "/api/events", timeout=None) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    into.append(json.loads(line[6:]))


async def test_warm_transfer_to_a_busy_number_comes_back_to_the_agent(
    tel_server: RunningServer, emulator: Emulator
) -> None:
    server = tel_server
    emulator.set_script(TARGET, {"outcome": "busy", "answer_after_ms": 100})
    call_id = await conversation(
        server,
        emulator,
        {"answer_after_ms": 100, "replies": ["Transfer me", "Okay, thanks anyway"]},
    )
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer",
        json={"to": TARGET, "mode": "warm", "summary": "A caller for you."},
    )
    assert r.status_code == 200, r.text
    doc = await wait_for(
        server, call_id, lambda d: (d["transfer"] or {}).get("status") == "busy", timeout=20
    )
    assert doc["state"] not in ("transferred", "completed")
    bot = [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "bot"]
    assert "busy" in bot[-1]
    # the conversation goes on: the caller's next words arrive on the new Gather
    doc = await wait_for(server, call_id, lambda d: "Okay, thanks anyway" in user_lines(d))
    heard = " ".join(h.text for h in emulator.call(doc["provider_call_id"]).heard)
    assert "line is busy" in heard
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Bye."})
    assert r.status_code == 200


async def test_warm_transfer_nobody_answers(tel_server: RunningServer, emulator: Emulator) -> None:
    server = tel_server
    emulator.set_script(TARGET, {"outcome": "no-answer"})
    call_id = await conversation(
        server, emulator, {"answer_after_ms": 100, "replies": ["Transfer me"]}
    )
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer",
        json={"to": TARGET, "mode": "warm", "summary": "A caller for you."},
    )
    assert r.status_code == 200, r.text
    doc = await wait_for(
        server, call_id, lambda d: (d["transfer"] or {}).get("status") == "no-answer", timeout=25
    )
    assert doc["state"] == "listening"
    assert "nobody answered" in doc["transcript"][-1]["text"]
    await server.http.post(f"/api/calls/{call_id}/end")


async def test_transfer_bad_input_is_refused_and_changes_nothing(
    tel_server: RunningServer, emulator: Emulator
) -> None:
    server = tel_server
    call_id = await conversation(
        server, emulator, {"answer_after_ms": 100, "replies": ["Transfer me"]}
    )
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer", json={"to": "+1 415 555 0177", "mode": "cold"}
    )
    assert r.status_code == 422 and "to" in r.json()["detail"], r.text
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer", json={"to": TARGET, "mode": "warm"}
    )
    assert r.status_code == 422 and "summary" in r.json()["detail"], r.text
    r = await server.http.post("/api/blocked/" + TARGET, json={"reason": "asked not to be called"})
    assert r.status_code in (200, 201), r.text
    r = await server.http.post(
        f"/api/calls/{call_id}/transfer", json={"to": TARGET, "mode": "cold"}
    )
    assert r.status_code == 403, r.text
    assert r.json()["rule"] == "do_not_call", r.json()
    doc = await doc_of(server, call_id)
    assert doc["transfer"] is None and doc["state"] not in ("transferred",)
    sid = doc["provider_call_id"]
    assert not [e for e in emulator.timeline(sid) if e.get("verb") == "Dial"]
    await server.http.post(f"/api/calls/{call_id}/end")
