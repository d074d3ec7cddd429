"""Faults from the emulator: duplicates, reordering, REST 429/500/timeouts. Every call must end in
a terminal state with a reason, and no webhook effect may apply twice."""

from __future__ import annotations

import asyncio

from voicecall.emulator.faults import FaultConfig
from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer, StartServer

TERMINAL = {
    "completed",
    "hangup-user",
    "hangup-bot",
    "timeout",
    "error",
    "failed",
    "no-answer",
    "busy",
    "voicemail",
}


async def wait_terminal(server: RunningServer, call_id: str, timeout: float = 30) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["state"] in TERMINAL:
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} never ended: {doc}")


async def test_duplicate_and_reordered_callbacks(server: RunningServer, emulator: Emulator) -> None:
    emulator.faults.configure(FaultConfig(seed=7, duplicate_rate=1.0, reorder_rate=0.5))
    emulator.set_script(
        CALLEE, {"answer_after_ms": 150, "replies": ["yes"], "hangup_after_ms": 6000}
    )
    notify = (await server.http.post("/api/calls", json={"to": CALLEE, "message": "Ping."})).json()
    conv = (
        await server.http.post(
            "/api/calls", json={"to": CALLEE, "message": "Hello?", "mode": "conversation"}
        )
    ).json()
    a = await wait_terminal(server, notify["call_id"])
    b = await wait_terminal(server, conv["call_id"])
    assert (a["state"], a["end_reason"]) == ("completed", "completed")
    assert (b["state"], b["end_reason"]) == ("hangup-user", "hangup-user")
    # the user's answer appears once even though every webhook was delivered twice
    assert [t["text"] for t in b["transcript"] if t["speaker"] == "user"] == ["yes"]
    assert server.manager.counters["webhook_duplicates"] > 0
    for sid in (a["provider_call_id"], b["provider_call_id"]):
        deliveries = emulator.deliveries(sid)
        assert deliveries and all(d.status_code == 200 for d in deliveries)


async def test_rest_429_is_retried_and_500_on_create_is_not(
    server: RunningServer, emulator: Emulator
) -> None:
    emulator.set_script(CALLEE, {"answer_after_ms": 100})
    emulator.faults.inject_rest("429", count=2)
    r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "after a 429"})
    assert r.status_code == 201, r.text
    doc = await wait_terminal(server, r.json()["call_id"])
    assert doc["state"] == "completed"

    # a 500 may or may not have placed the call: not retried; the webhooks would confirm it
    server.manager.placement.unconfirmed_dial_seconds = 0.5
    emulator.faults.inject_rest("500")
    r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "after a 500"})
    assert r.status_code == 201, r.text
    failed = await wait_terminal(server, r.json()["call_id"])
    assert failed["state"] == "failed" and failed["end_reason"] == "failed"
    assert "not retried" in failed["error"]
    assert len(emulator.calls) == 1  # the 500 create was never repeated
    # an invalid number is refused before anything reaches the provider
    r = await server.http.post("/api/calls", json={"to": "+1555", "message": "x"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert len(emulator.calls) == 1


async def test_rest_timeout_on_create_never_leaves_a_live_call(
    emulator: Emulator, start_server: StartServer
) -> None:
    # the emulator holds the create for 2 s (longer than our 0.5 s client timeout), then places
    # the call anyway, as the real service may
    emulator.faults.configure(FaultConfig(rest_timeout_seconds=2.0))
    emulator.faults.inject_rest("timeout")
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "hangup_after_ms": 20000})
    async with start_server(twilio={"request_timeout_seconds": 0.5}) as server:
        r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "hello?"})
        assert r.status_code == 201, r.text
        # the call the provider placed anyway is recognised from its signed webhooks (they
        # carry our call id): it is not lost, not re-dialled, and runs to its normal end
        doc = await wait_terminal(server, r.json()["call_id"])
        assert (doc["state"], doc["end_reason"]) == ("completed", "completed")
        (sid,) = emulator.calls
        assert doc["provider_call_id"] == sid
        assert [h.text for h in emulator.call(sid).heard] == ["hello?"]
