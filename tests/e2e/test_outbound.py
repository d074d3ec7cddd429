"""Outbound calls end to end: control API → manager → Twilio REST (emulator) → signed webhooks."""

from __future__ import annotations

import asyncio
import dataclasses

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


async def _answered_conversation(server: RunningServer, emulator: Emulator, replies: list) -> str:
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": replies})
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello there.", "mode": "conversation"}
    )
    call_id = r.json()["call_id"]
    for _ in range(200):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if any(ln["speaker"] == "user" for ln in doc["transcript"]):
            return call_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"no first answer: {doc}")


def _heard(emulator: Emulator, sid: str) -> str:
    return " ".join(h.text for h in emulator.call(sid).heard)


async def test_long_texts_within_the_limit_are_spoken_not_500(
    server: RunningServer, emulator: Emulator
) -> None:
    # Twilio's inline Twiml parameter holds 4,000 characters: a line whose TwiML is longer
    # (long, or growing when XML-escaped) is fetched from the webhook instead of failing
    emulator.config = dataclasses.replace(emulator.config, words_per_minute=20_000)  # fast talker
    call_id = await _answered_conversation(server, emulator, ["hi", "long answer", None])
    escaped = "Tom & Jerry <3 " * 200  # 3,000 characters, far more once escaped
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": escaped})
    assert r.status_code == 200, r.text
    question = ("Please listen carefully, " * 150).strip()[:3500]
    r = await server.http.post(
        f"/api/calls/{call_id}/continue", json={"message": question, "timeout_seconds": 30}
    )
    assert r.status_code == 200, r.text
    assert r.json()["transcript"] == "long answer"
    goodbye = ("Thank you so much for your time today. " * 120)[:3992].strip()
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": goodbye})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "ending"
    doc = await wait_state(server, call_id, {"hangup-bot"}, timeout=30)
    heard = _heard(emulator, doc["provider_call_id"])
    for text in (escaped.strip(), question, goodbye):
        assert text in heard
    texts = [ln["text"] for ln in doc["transcript"]]
    assert escaped.strip() in texts and goodbye in texts
    assert not any(t.startswith("[not spoken]") for t in texts)


async def test_lines_said_in_a_row_are_each_heard_whole(
    server: RunningServer, emulator: Emulator
) -> None:
    # without a media stream each line is a call update, and an update stops the line before
    # it: /speak then /continue at once must not cut the spoken line (2.4 s of it here)
    call_id = await _answered_conversation(server, emulator, ["hi", "got it", None])
    code = "Your code is four two seven one, again four two seven one."
    question = "Did you get that?"
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": code})
    assert r.status_code == 200, r.text
    r = await server.http.post(
        f"/api/calls/{call_id}/continue", json={"message": question, "timeout_seconds": 30}
    )
    assert r.status_code == 200, r.text
    assert r.json()["transcript"] == "got it"
    more = "One more thing: the code expires in ten minutes."
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": more})
    assert r.status_code == 200, r.text
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Goodbye."})
    assert r.status_code == 200, r.text
    doc = await wait_state(server, call_id, {"hangup-bot"}, timeout=30)
    sim = emulator.call(doc["provider_call_id"])
    said = [h for h in sim.heard if h.kind == "say"]
    assert [h.text for h in said] == ["Hello there.", code, question, more, "Goodbye."]
    for item in said:
        assert item.end - item.start >= sim.say_seconds(item.text) - 0.01, item.text
    assert not any(e["kind"] == "prompt-interrupted" for e in sim.timeline)


async def test_end_is_final_speak_and_continue_get_409(
    server: RunningServer, emulator: Emulator
) -> None:
    call_id = await _answered_conversation(server, emulator, ["hi", None])
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Thanks, goodbye."})
    assert r.json()["state"] == "ending"
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": "One more."})
    assert r.status_code == 409 and "ending" in r.json()["detail"]
    r = await server.http.post(
        f"/api/calls/{call_id}/continue", json={"message": "Still there?", "timeout_seconds": 5}
    )
    assert r.status_code == 409
    # it hangs up right after the goodbye: the call slot is free again within seconds
    doc = await wait_state(server, call_id, {"hangup-bot"}, timeout=10)
    heard = _heard(emulator, doc["provider_call_id"])
    assert "Thanks, goodbye." in heard and "One more." not in heard
    assert [ln["text"] for ln in doc["transcript"]][-1] == "Thanks, goodbye."
    # a second end on an ended call is harmless
    r = await server.http.post(f"/api/calls/{call_id}/end", json={"message": "Bye again"})
    assert r.status_code == 200 and r.json()["state"] == "hangup-bot"


async def test_continue_while_the_callee_talks_keeps_their_answer(
    server: RunningServer, emulator: Emulator
) -> None:
    # the agent's next line arrives while the callee is still in the middle of their answer:
    # redirecting the call now would abandon the <Gather> and lose what they say, so the line
    # is held and said in the answer to that Gather (issue 11, defect 8)
    first = (
        "Hello, Luigi trattoria, how can I help? We are open until eleven tonight and the "
        "kitchen closes at ten thirty"
    )
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": [first, "Yes, Thursday works"]})
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello there.", "mode": "conversation"}
    )
    call_id = r.json()["call_id"]
    doc = await wait_state(server, call_id, {"listening"})
    sid = doc["provider_call_id"]
    for _ in range(300):  # the callee has started talking (an interim result was posted)
        if any(e.get("kind") == "gather-partial" for e in emulator.timeline(sid)):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no interim result")
    r = await server.http.post(
        f"/api/calls/{call_id}/continue",
        json={"message": "Do you have a table on Thursday?", "timeout_seconds": 30},
    )
    assert r.status_code == 200, r.text
    assert r.json()["transcript"] == "Yes, Thursday works"
    doc = (await server.http.get(f"/api/calls/{call_id}")).json()
    assert [(ln["speaker"], ln["text"]) for ln in doc["transcript"]] == [
        ("bot", "Hello there."),
        ("user", first),
        ("bot", "Do you have a table on Thursday?"),
        ("user", "Yes, Thursday works"),
    ]
    kinds = [e.get("kind") for e in emulator.timeline(sid)]
    assert "rest-redirect" not in kinds  # the Gather was never cut
    heard = emulator.call(sid).heard
    question = next(h for h in heard if h.text == "Do you have a table on Thursday?")
    spoke = next(e for e in emulator.timeline(sid) if e.get("kind") == "callee-speech")
    assert question.start >= spoke["end"]  # said after the callee finished, not over them
    await server.http.post(f"/api/calls/{call_id}/end")


async def test_two_lines_held_while_the_callee_talks_keep_their_own_lines(
    server: RunningServer, emulator: Emulator
) -> None:
    first = "Good evening, Luigi trattoria, we are very busy tonight but how can I help you"
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": [first, "Yes, at eight"]})
    r = await server.http.post(
        "/api/calls", json={"to": CALLEE, "message": "Hello there.", "mode": "conversation"}
    )
    call_id = r.json()["call_id"]
    doc = await wait_state(server, call_id, {"listening"})
    sid = doc["provider_call_id"]
    for _ in range(300):
        if any(e.get("kind") == "gather-partial" for e in emulator.timeline(sid)):
            break
        await asyncio.sleep(0.02)
    r = await server.http.post(f"/api/calls/{call_id}/speak", json={"message": "Sorry to bother."})
    assert r.status_code == 200, r.text
    r = await server.http.post(
        f"/api/calls/{call_id}/continue",
        json={"message": "Is there a table for two?", "timeout_seconds": 30},
    )
    assert r.status_code == 200, r.text
    assert r.json()["transcript"] == "Yes, at eight"
    doc = (await server.http.get(f"/api/calls/{call_id}")).json()
    assert [(ln["speaker"], ln["text"]) for ln in doc["transcript"]] == [
        ("bot", "Hello there."),
        ("user", first),
        ("bot", "Sorry to bother."),  # each held line is its own transcript line ...
        ("bot", "Is there a table for two?"),
        ("user", "Yes, at eight"),
    ]
    heard = [h.text for h in emulator.call(sid).heard]
    assert "Sorry to bother. Is there a table for two?" in heard  # ... said in one go
    await server.http.post(f"/api/calls/{call_id}/end")
