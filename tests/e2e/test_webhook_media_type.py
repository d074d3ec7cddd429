"""Webhooks must be form-encoded: anything else is 415 and changes nothing (issue 11, defect 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest_asyncio
from twilio.request_validator import RequestValidator

from voicecall.emulator.pytest_plugin import EmulatorCredentials

from .harness import FROM, RunningServer, StartServer

CALLER = "+14155550123"
SID = "CA" + "0123456789abcdef" * 2


@pytest_asyncio.fixture
async def open_server(start_server: StartServer) -> AsyncIterator[RunningServer]:
    async with start_server(inbound_policy="open") as running:
        yield running


async def test_only_form_encoded_webhooks_are_applied(
    open_server: RunningServer,
    emulator_credentials: EmulatorCredentials,
) -> None:
    server = open_server
    path = "/voice/webhook"
    params = {
        "AccountSid": emulator_credentials.account_sid,
        "CallSid": SID,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": CALLER,
        "To": FROM,
        "Caller": CALLER,
        "Called": FROM,
    }
    # signed by the official library (the oracle), over the public URL
    signature = RequestValidator(emulator_credentials.auth_token).compute_signature(
        server.url + path, params
    )
    body = urlencode(params).encode()
    for content_type in (
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded-x",
        "application/x-www-form-urlencoded; charset=latin-1",
        None,
    ):
        headers = {"X-Twilio-Signature": signature}
        if content_type is not None:
            headers["Content-Type"] = content_type
        r = await server.http.post(path, content=body, headers=headers)
        assert r.status_code == 415, content_type
        calls = (await server.http.get("/api/calls")).json()
        assert calls["calls"] == [], content_type
    metrics = (await server.http.get("/metrics")).text
    assert 'voicecall_webhooks_total{kind="unknown",outcome="rejected_media_type"} 6.0' in metrics

    for content_type in (
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; Charset=UTF-8",
    ):
        r = await server.http.post(
            path,
            content=body,
            headers={"X-Twilio-Signature": signature, "Content-Type": content_type},
        )
        assert r.status_code == 200, content_type
    calls = (await server.http.get("/api/calls")).json()["calls"]
    assert [(c["provider_call_id"], c["direction"]) for c in calls] == [(SID, "inbound")]
