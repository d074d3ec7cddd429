"""Inbound policy and webhook security end to end (real sockets, emulator-signed requests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator

from .harness import FROM, RunningServer, StartServer

ALLOWED = "+14155550123"


async def calls(server: RunningServer) -> list[dict]:
    return (await server.http.get("/api/calls", params={"limit": 100})).json()["calls"]


async def end_of(emulator: Emulator, sid: str) -> str:
    sim = await emulator.wait_for_call_end(sid, timeout=20)
    return str(sim.status)


@pytest.mark.parametrize(
    ("policy", "caller", "accepted"),
    [
        ("allowlist", ALLOWED, True),
        ("allowlist", "+14155550999", False),
        ("allowlist", "anonymous", False),
        ("disabled", ALLOWED, False),
        ("open", "anonymous", True),
    ],
)
async def test_inbound_policy(
    emulator: Emulator,
    start_server: StartServer,
    policy: str,
    caller: str,
    accepted: bool,
) -> None:
    emulator.set_script(
        caller, {"replies": ["I need help with my booking"], "hangup_after_ms": 9000}
    )
    async with start_server(
        inbound_policy=policy,
        allow_from=[ALLOWED] if policy == "allowlist" else [],
    ) as server:
        emulator.register_number(
            FROM,
            server.url + "/voice/webhook",
            status_callback=server.url + "/voice/webhook?kind=status",
            status_callback_events=("completed",),
        )
        sid = emulator.dial_in(from_=caller, to=FROM)
        status = await end_of(emulator, sid)
        sim = emulator.call(sid)
        rows = await calls(server)
        assert len(rows) == 1
        row = rows[0]
        assert row["direction"] == "inbound"
        if accepted:
            heard = " ".join(h.text for h in sim.heard)
            assert server.app.settings.inbound_greeting in heard
            doc = (await server.http.get(f"/api/calls/{row['call_id']}")).json()
            assert any(t["text"] == "I need help with my booking" for t in doc["transcript"])
            for _ in range(100):
                doc = (await server.http.get(f"/api/calls/{row['call_id']}")).json()
                if doc["state"] == "hangup-user":
                    break
                await asyncio.sleep(0.05)
            assert doc["state"] == "hangup-user"
        else:
            assert status in ("busy", "failed", "no-answer", "canceled"), status
            assert row["end_reason"] == "rejected"
            assert sim.heard == []


async def test_forged_tampered_and_replayed_webhooks(
    server: RunningServer, emulator: Emulator, emulator_credentials: EmulatorCredentials
) -> None:
    from .harness import CALLEE

    emulator.set_script(CALLEE, {"answer_after_ms": 100})
    r = await server.http.post("/api/calls", json={"to": CALLEE, "message": "Reminder: 3pm."})
    call_id = r.json()["call_id"]
    for _ in range(300):
        doc = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["state"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert doc["state"] == "completed"
    sid = doc["provider_call_id"]
    before = (await server.http.get(f"/api/calls/{call_id}")).json()
    delivery = next(
        d for d in emulator.deliveries(sid) if b"CallStatus=completed" in (d.request.body or b"")
    )
    req = delivery.request
    headers = dict(req.headers)
    path = req.url.removeprefix(server.url)

    # a replay with a fresh (unsigned) idempotency token: acknowledged, changes nothing
    replay_headers = {**headers, "I-Twilio-Idempotency-Token": "fresh-token-from-attacker"}
    r = await server.http.post(path, content=req.body, headers=replay_headers)
    assert r.status_code == 200
    # tampered body with the original signature
    tampered = req.body.replace(b"CallStatus=completed", b"CallStatus=busy")
    r = await server.http.post(path, content=tampered, headers=headers)
    assert r.status_code == 403
    # tampered URL (another call id) with the original signature
    r = await server.http.post(path.replace(call_id, "0" * 32), content=req.body, headers=headers)
    assert r.status_code == 403
    # forged: signed with the wrong token (valid per the oracle for that token)
    forged_sig = RequestValidator("not-the-token").compute_signature(
        req.url, dict(req.params) if not isinstance(req.params, dict) else req.params
    )
    r = await server.http.post(
        path, content=req.body, headers={**headers, "X-Twilio-Signature": forged_sig}
    )
    assert r.status_code == 403
    # missing signature: refused before the body is read
    no_sig = {k: v for k, v in headers.items() if k.lower() != "x-twilio-signature"}
    r = await server.http.post(path, content=req.body, headers=no_sig)
    assert r.status_code == 401
    # look-alike paths never reach the handler
    for bad in ("/voice/webhook/", "/voice/webhookX", "/voice/webhook/../webhook2"):
        r = await server.http.post(
            bad + "?" + path.split("?", 1)[1], content=req.body, headers=headers
        )
        assert r.status_code == 404, bad
    r = await server.http.get(path, headers=headers)
    assert r.status_code == 405
    # oversized body
    r = await server.http.post(path, content=b"a=" + b"x" * 70_000, headers=headers)
    assert r.status_code == 413
    after = (await server.http.get(f"/api/calls/{call_id}")).json()
    assert after == before
    metrics = (await server.http.get("/metrics")).text
    assert 'voicecall_webhooks_total{kind="unknown",outcome="rejected_signature"} 3.0' in metrics
    assert emulator_credentials.auth_token not in metrics


async def test_slow_body_times_out_and_openapi_is_served(server: RunningServer) -> None:
    assert server.app._webhook is not None
    server.app._webhook.read_timeout_seconds = 0.3
    port = int(server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /voice/webhook HTTP/1.1\r\nHost: x\r\nX-Twilio-Signature: abc\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nCallSid=CA"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert b" 408 " in status_line
    writer.close()
    doc = (await server.http.get("/api/openapi.json")).json()
    assert "/api/calls/{call_id}/continue" in doc["paths"]
    r = await server.http.get("/api/calls/does-not-exist")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "UnknownCall"


async def test_doctor_checks_credentials_against_the_provider(
    tmp_path: Path, emulator: Emulator, emulator_credentials: EmulatorCredentials
) -> None:
    import os
    import sys

    for token, expect in ((emulator_credentials.auth_token, 0), ("wrong-token", 1)):
        cfg = tmp_path / "doctor.toml"
        cfg.write_text(
            f'from_number = "{FROM}"\npublic_url = "https://voice.example.com"\n'
            f'[twilio]\naccount_sid = "{emulator_credentials.account_sid}"\n'
            f'auth_token = "{token}"\napi_base_url = "{emulator.base_url}"\n'
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voicecall.cli",
            "doctor",
            "--config",
            str(cfg),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )
        out, _ = await proc.communicate()
        text = out.decode()
        assert proc.returncode == expect, text
        if expect == 0:
            assert "ok   Twilio accepted the credentials" in text
        else:
            assert "FAIL Twilio accepted the credentials" in text
        assert token not in text
