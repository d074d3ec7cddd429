"""Voicemail end to end over <Say>/<Gather>: the emulator's AMD (DetectMessageEnd, AsyncAmd posted
to our signed kind=amd webhook) against a scripted answering machine and a person."""

from __future__ import annotations

import asyncio
from typing import Any

from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, RunningServer, wait_ended

VOICEMAIL = {
    "answer_after_ms": 200,
    "voicemail": {
        "greeting": "Hi, this is Sam. Leave a message after the tone.",
        "greeting_delay_ms": 300,
        "beep": {"frequency_hz": 1000, "duration_ms": 400},
        "max_silence_ms": 4000,
    },
}


async def ended(server: RunningServer, call_id: str, timeout: float = 60) -> dict[str, Any]:
    return await wait_ended(server, call_id, timeout)


async def test_voicemail_message_is_left_after_the_beep(
    server: RunningServer, emulator: Emulator
) -> None:
    emulator.set_script(CALLEE, VOICEMAIL)
    r = await server.http.post(
        "/api/calls",
        json={
            "to": CALLEE,
            "message": "Hello Sam, your parcel is ready.",
            "mode": "notify",
            "machine_detection": "voicemail",
            "voicemail_message": "Hi Sam, this is the depot: your parcel is ready for pickup.",
        },
    )
    assert r.status_code == 201, r.text
    doc = await ended(server, r.json()["call_id"])
    assert doc["end_reason"] == "voicemail", doc
    assert doc["state"] == "voicemail"
    assert doc["answered_by"] == "machine_end_beep"
    assert doc["machine_detection"] == "voicemail"
    sim = emulator.call(doc["provider_call_id"])
    # nothing was said over the greeting: the machine recorded the whole message after its beep
    said = sim.callee.message.text.lower()
    assert "parcel is ready for pickup" in said, said
    assert "hello sam" not in said
    texts = [ln["text"] for ln in doc["transcript"]]
    assert texts[0].startswith("[not spoken]")
    assert texts[-1].startswith("Hi Sam, this is the depot")


async def test_a_person_hears_the_opening_after_detection(
    server: RunningServer, emulator: Emulator
) -> None:
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 200,
            "human": {
                "greeting": "Hello?",
                "rules": [{"heard": ["dinner"], "say": "Yes, seven works.", "then": "hangup"}],
            },
        },
    )
    r = await server.http.post(
        "/api/calls",
        json={
            "to": CALLEE,
            "message": "Hi, can we move dinner to seven?",
            "mode": "conversation",
            "machine_detection": "voicemail",
        },
    )
    assert r.status_code == 201, r.text
    doc = await ended(server, r.json()["call_id"])
    assert doc["answered_by"] == "human", doc
    assert doc["end_reason"] != "voicemail", doc
    user = [ln["text"] for ln in doc["transcript"] if ln["speaker"] == "user"]
    assert any("seven works" in t.lower() for t in user), doc["transcript"]
    assert not doc["transcript"][0]["text"].startswith("[not spoken]")


async def test_detect_only_records_what_answered(server: RunningServer, emulator: Emulator) -> None:
    emulator.set_script(CALLEE, VOICEMAIL)
    r = await server.http.post(
        "/api/calls",
        json={
            "to": CALLEE,
            "message": "Your order shipped.",
            "mode": "conversation",
            "machine_detection": "detect",
        },
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    for _ in range(300):  # the greeting and its beep take a few seconds
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["answered_by"] is not None:
            break
        await asyncio.sleep(0.1)
    assert doc["machine_detection"] == "detect"
    assert doc["answered_by"] == "machine_end_beep", doc
    assert doc["ended_at"] is None  # detect only records: the call goes on
    await server.http.post(f"/api/calls/{call_id}/end", json={})
    doc = await ended(server, call_id)
    assert doc["end_reason"] == "hangup-bot"  # we ended it; detect leaves no message


async def test_bad_telephony_fields_are_refused_naming_the_field(server: RunningServer) -> None:
    bad = [
        ({"machine_detection": "maybe"}, "machine_detection"),
        ({"voicemail_message": "hi"}, "voicemail_message"),
        ({"machine_detection": "detect", "voicemail_message": "hi"}, "voicemail_message"),
        ({"max_hold_seconds": 0}, "max_hold_seconds"),
        ({"hold_detect": "sometimes"}, "hold_detect"),
    ]
    for extra, field in bad:
        r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "Hi", **extra})
        assert 400 <= r.status_code < 500, (extra, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in r.text, (extra, r.text)
    calls = (await server.http.get("/api/calls")).json()["calls"]
    assert calls == []
