"""End to end on loopback: REST -> signed webhooks -> TwiML, checked by twilio's validator."""

from __future__ import annotations

import socket

import httpx
import pytest

from voicecall.emulator.signing import IDEMPOTENCY_HEADER

pytestmark = pytest.mark.e2e
ALL = ["initiated", "ringing", "answered", "completed"]


async def create(emu, creds, **form):
    async with httpx.AsyncClient(
        base_url=emu.base_url, auth=(creds.account_sid, creds.auth_token)
    ) as c:
        r = await c.post(f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json", data=form)
    assert r.status_code == 201, r.text
    return r.json()["sid"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_outbound_call_full_lifecycle(fast, receiver, emulator_credentials):
    receiver.on("/voice", "<Response><Say>Hello there</Say><Hangup/></Response>")
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice?tenant=7"),
        StatusCallback=receiver.url("/status"),
        StatusCallbackEvent=ALL,
    )
    sim = await fast.wait_for_call_status(sid, "completed", timeout=5)
    await receiver.wait_for(lambda rs: len([r for r in rs if r.path == "/status"]) == 4)
    statuses = sorted(r.form["CallStatus"] for r in receiver.at("/status"))
    assert statuses == sorted(["initiated", "ringing", "in-progress", "completed"])
    (voice,) = receiver.at("/voice")
    assert voice.url.endswith("/voice?tenant=7")  # query string kept and signed
    assert voice.form["CallStatus"] == "in-progress"
    assert all(r.signature_valid for r in receiver.requests)
    assert all(r.headers.get(IDEMPOTENCY_HEADER.lower()) for r in receiver.requests)
    tokens = [r.headers[IDEMPOTENCY_HEADER.lower()] for r in receiver.requests]
    assert len(set(tokens)) == len(tokens)  # one per delivery
    assert [h.text for h in sim.heard] == ["Hello there"]
    await fast.wait_idle()
    webhooks = [e for e in fast.timeline(sid) if e["kind"] == "webhook"]
    assert len(webhooks) == 5
    assert all(e["status_code"] == 200 and e["latency_ms"] >= 0 for e in webhooks)


async def test_get_webhooks_are_signed_over_the_query(fast, receiver, emulator_credentials):
    receiver.on("/voice", "<Response/>")
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice"),
        Method="GET",
        StatusCallback=receiver.url("/status?x=1"),
        StatusCallbackMethod="GET",
    )
    await fast.wait_for_call_end(sid, timeout=5)
    await receiver.wait_for(lambda rs: len(rs) == 2)
    assert {r.method for r in receiver.requests} == {"GET"}
    assert all(r.signature_valid for r in receiver.requests)


async def test_gather_speech_round_trip(fast, receiver, emulator_credentials):
    fast.set_script("+15551230001", {"answer_after_ms": 20, "replies": ["book a table"]})
    receiver.on(
        "/voice",
        "<Response><Gather input='speech' action='/turn' speechTimeout='auto'>"
        "<Say>How can I help?</Say></Gather></Response>",
    )
    receiver.on(
        "/turn", lambda r: f"<Response><Say>You said {r.form['SpeechResult']}</Say></Response>"
    )
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice"),
    )
    sim = await fast.wait_for_call_end(sid, timeout=5)
    (turn,) = receiver.at("/turn")
    assert turn.signature_valid
    assert turn.form["SpeechResult"] == "book a table"
    assert float(turn.form["Confidence"]) > 0
    assert [h.text for h in sim.heard] == ["How can I help?", "You said book a table"]
    assert sim.status.value == "completed"


async def test_inbound_dial_in_anonymous_caller(fast, receiver):
    fast.register_number(
        "+15550001111",
        receiver.url("/incoming"),
        status_callback=receiver.url("/status"),
        status_callback_events=["completed"],
    )
    receiver.on("/incoming", "<Response><Say>Welcome</Say></Response>")
    sid = fast.dial_in(from_="anonymous", to="+15550001111")
    sim = await fast.wait_for_call_end(sid, timeout=5)
    await receiver.wait_for(lambda rs: len(receiver.at("/status")) == 1)
    (incoming,) = receiver.at("/incoming")
    assert incoming.form["Direction"] == "inbound"
    assert incoming.form["From"] == "anonymous"
    assert incoming.form["CallStatus"] == "ringing"
    assert incoming.signature_valid
    assert sim.status.value == "completed"
    with pytest.raises(KeyError):
        fast.dial_in(from_="+15557654321", to="+15559999999")


async def test_unreachable_webhook_is_retried_once_with_the_same_token(fast, emulator_credentials):
    url = f"http://127.0.0.1:{free_port()}/voice"
    sid = await create(fast, emulator_credentials, To="+15551230001", From="+15557654321", Url=url)
    sim = await fast.wait_for_call_end(sid, timeout=10)
    await fast.wait_idle()
    assert sim.status.value == "failed"
    assert sim.error is not None and sim.error[0] == 11205
    attempts = [e for e in fast.timeline(sid) if e["kind"] == "webhook"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["idempotency_token"] == attempts[1]["idempotency_token"]


async def test_retry_fragment_overrides_policy(fast, receiver, emulator_credentials):
    receiver.on("/voice", (503, "busy"))
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice#rc=2&rp=5xx"),
    )
    sim = await fast.wait_for_call_end(sid, timeout=5)
    assert len(receiver.at("/voice")) == 3
    tokens = {r.headers[IDEMPOTENCY_HEADER.lower()] for r in receiver.at("/voice")}
    assert len(tokens) == 1
    assert all(r.signature_valid and "#" not in r.url for r in receiver.at("/voice"))
    assert sim.error is not None and sim.error[0] == 11200


async def test_duplicate_delivery_fault(fast, receiver, emulator_credentials):
    fast.faults.configure(duplicate_rate=1.0)
    receiver.on("/voice", "<Response/>")
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice"),
        StatusCallback=receiver.url("/status"),
    )
    await fast.wait_for_call_end(sid, timeout=5)
    await receiver.wait_for(lambda rs: len(receiver.at("/status")) == 2)
    a, b = receiver.at("/status")
    assert a.params == b.params
    assert a.headers["x-twilio-signature"] == b.headers["x-twilio-signature"]
    assert a.headers[IDEMPOTENCY_HEADER.lower()] == b.headers[IDEMPOTENCY_HEADER.lower()]
    assert a.signature_valid and b.signature_valid


async def test_reorder_fault_delivers_completed_before_answered(
    fast, receiver, emulator_credentials
):
    fast.faults.configure(reorder_rate=1.0)
    receiver.on("/voice", "<Response><Pause length='0.05'/></Response>")
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice"),
        StatusCallback=receiver.url("/status"),
        StatusCallbackEvent=["answered", "completed"],
    )
    await fast.wait_for_call_end(sid, timeout=5)
    await receiver.wait_for(lambda rs: len(receiver.at("/status")) == 2)
    arrived = [(r.form["CallStatus"], r.form["SequenceNumber"]) for r in receiver.at("/status")]
    assert arrived == [("completed", "1"), ("in-progress", "0")]


async def test_control_endpoints(fast, receiver, emulator_credentials):
    creds = emulator_credentials
    async with httpx.AsyncClient(
        base_url=fast.base_url + "/_emulator", auth=(creds.account_sid, creds.auth_token)
    ) as c:
        assert (await c.get("/health")).json()["ok"] is True
        r = await c.put("/scripts/+15551230009", content="answer_after_ms: 10\nreplies: [hi]\n")
        assert r.status_code == 200 and r.json()["script"]["replies"] == [
            {"speech": "hi", "confidence": 0.92}
        ]
        assert (await c.put("/scripts/+1555", content="bogus_key: 1")).json()["code"] == 20001
        r = await c.post(
            "/numbers", json={"number": "+15550002222", "voice_url": receiver.url("/in")}
        )
        assert r.status_code == 201
        r = await c.post("/dial-in", json={"from": "+15551230009", "to": "+15550002222"})
        assert r.status_code == 201
        sid = r.json()["sid"]
        await fast.wait_for_call_end(sid, timeout=5)
        await fast.wait_idle()
        timeline = (await c.get(f"/calls/{sid}/timeline")).json()["timeline"]
        assert timeline[0]["kind"] == "created"
        assert any(e["kind"] == "webhook" for e in timeline)
        summary = (await c.get(f"/calls/{sid}")).json()
        assert summary["status"] == "completed" and summary["direction"] == "inbound"
        r = await c.put("/faults", json={"seed": 3, "duplicate_rate": 0.5})
        assert r.json()["duplicate_rate"] == 0.5
        assert fast.faults.config.seed == 3
        assert (await c.put("/faults", json={"nope": 1})).status_code == 400
        assert (await c.get("/calls/CA" + "0" * 32)).status_code == 404


async def test_webhook_delay_fault_delays_delivery(fast, receiver, emulator_credentials):
    fast.faults.configure(webhook_delay_rate=1.0, webhook_delay_ms=400)
    receiver.on("/voice", "<Response/>")
    sid = await create(
        fast,
        emulator_credentials,
        To="+15551230001",
        From="+15557654321",
        Url=receiver.url("/voice"),
        StatusCallback=receiver.url("/status"),
        StatusCallbackEvent=["initiated"],
    )
    await fast.wait_for_call_end(sid, timeout=10)
    await fast.wait_idle()
    timeline = fast.timeline(sid)
    created = next(e for e in timeline if e["kind"] == "created")["t"]
    initiated = next(
        e for e in timeline if e["kind"] == "status" and e.get("status") == "initiated"
    )
    delays = [e for e in timeline if e["kind"] == "fault" and e["fault"] == "webhook-delay"]
    webhooks = [e for e in timeline if e["kind"] == "webhook"]
    assert len(delays) == len(webhooks) == 2  # the initiated callback and the voice request
    assert all(d["seconds"] == 0.4 for d in delays)
    status_cb = next(w for w in webhooks if w["params"]["CallStatus"] == "initiated")
    # Sent (and so received) no earlier than the delay after the status change (lower bound only).
    assert status_cb["t"] - initiated["t"] >= 0.35
    voice = next(w for w in webhooks if w["purpose"] != "status-callback")
    assert voice["t"] - created >= 0.35
    assert receiver.at("/voice") and all(r.signature_valid for r in receiver.requests)
