"""Outbound calls end to end: control API → manager → Twilio REST (emulator) → signed webhooks."""

from __future__ import annotations

import asyncio

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer


async def wait_state(
    server: RunningServer, call_id: str, states: set[str], timeout: float = 15
) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["state"] in states:
            return doc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"call stuck in {doc['state']}: {doc}")
        await asyncio.sleep(0.05)


async def test_notify_call(server: RunningServer, emulator: Emulator) -> None:
    emulator.set_script(CALLEE, {"answer_after_ms": 200})
    r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "Your order shipped."})
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    doc = await wait_state(server, call_id, {"completed"})
    assert doc["end_reason"] == "completed"
    sim = emulator.call(doc["provider_call_id"])
    assert "Your order shipped." in " ".join([h.text for h in sim.heard])
    assert [ln["speaker"] for ln in doc["transcript"]] == ["bot"]


async def test_conversation_via_gather(server: RunningServer, emulator: Emulator) -> None:
    emulator.set_script(
        CALLEE, {"answer_after_ms": 100, "replies": ["Yes, this is Sam", "Noon works"]}
    )
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hi, is this Sam?", "mode": "conversation"}
    )
    call_id = r.json()["call_id"]
    await wait_state(server, call_id, {"listening"})
    # turn 1's answer arrives through the Gather action
    for _ in range(200):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if any(ln["speaker"] == "user" for ln in doc["transcript"]):
            break
        await asyncio.sleep(0.05)
    assert doc["transcript"][1]["text"] == "Yes, this is Sam"
    r = await server.http.post(
        f"/api/calls/{call_id}/continue", json={"message": "Lunch at noon?", "timeout_seconds": 20}
    )
    assert r.status_code == 200, r.text
    assert r.json()["transcript"] == "Noon works"
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Great, bye!"})
    assert r.status_code == 200
    doc = await wait_state(server, call_id, {"hangup-bot"})
    assert doc["end_reason"] == "hangup-bot"
    heard = " ".join([h.text for h in emulator.call(doc["provider_call_id"]).heard])
    assert "Lunch at noon?" in heard and "Great, bye!" in heard
