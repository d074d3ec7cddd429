"""The emulated Calls REST API: shapes, errors, auth, faults, and the official client."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecall.emulator.rest import parse_create

TWIML = "<Response><Pause length='30'/></Response>"
ERROR_KEYS = {"code", "message", "more_info", "status"}


def client(emu, creds, auth=True):
    return httpx.AsyncClient(
        base_url=f"{emu.base_url}/2010-04-01/Accounts/{creds.account_sid}",
        auth=(creds.account_sid, creds.auth_token) if auth else None,
    )


def assert_error(resp, http_status, code):
    assert resp.status_code == http_status, resp.text
    body = resp.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code
    assert body["status"] == http_status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert isinstance(body["message"], str) and body["message"]


async def test_create_returns_twilio_shaped_resource(fast, emulator_credentials):
    async with client(fast, emulator_credentials) as c:
        r = await c.post(
            "/Calls.json", data={"To": "+15551230001", "From": "+14155551212", "Twiml": TWIML}
        )
    assert r.status_code == 201
    call = r.json()
    assert re.fullmatch(r"CA[0-9a-f]{32}", call["sid"])
    assert call["status"] == "queued"
    assert call["direction"] == "outbound-api"
    assert call["from"] == "+14155551212"
    assert call["from_formatted"] == "(415) 555-1212"
    assert call["to"] == "+15551230001"
    assert call["account_sid"] == emulator_credentials.account_sid
    assert call["api_version"] == "2010-04-01"
    assert (
        call["uri"]
        == f"/2010-04-01/Accounts/{emulator_credentials.account_sid}/Calls/{call['sid']}.json"
    )
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000", call["date_created"]
    )
    assert call["end_time"] is None and call["duration"] is None


async def test_fetch_update_and_list(fast, emulator_credentials):
    async with client(fast, emulator_credentials) as c:
        r = await c.post(
            "/Calls.json", data={"To": "+15551230001", "From": "+14155551212", "Twiml": TWIML}
        )
        sid = r.json()["sid"]
        await fast.wait_for_call_status(sid, "in-progress", timeout=5)
        fetched = (await c.get(f"/Calls/{sid}.json")).json()
        assert fetched["status"] == "in-progress"
        assert fetched["start_time"] is not None
        other = await c.post(
            "/Calls.json", data={"To": "+15551230002", "From": "+14155551212", "Twiml": TWIML}
        )
        listed = (await c.get("/Calls.json", params={"To": "+15551230001"})).json()
        assert [x["sid"] for x in listed["calls"]] == [sid]
        assert listed["page"] == 0 and listed["next_page_uri"] is None
        paged = (await c.get("/Calls.json", params={"PageSize": 1})).json()
        assert len(paged["calls"]) == 1 and paged["next_page_uri"] is not None
        done = await c.post(f"/Calls/{sid}.json", data={"Status": "completed"})
        assert done.status_code == 200 and done.json()["status"] == "completed"
        assert done.json()["duration"] is not None and done.json()["end_time"] is not None
        by_status = (await c.get("/Calls.json", params={"Status": "completed"})).json()
        assert [x["sid"] for x in by_status["calls"]] == [sid]
        # updating a finished call: 21220; an unknown one: 20404
        assert_error(await c.post(f"/Calls/{sid}.json", data={"Status": "completed"}), 400, 21220)
        assert_error(await c.post(f"/Calls/{sid}.json", data={"Twiml": TWIML}), 400, 21220)
        unknown = "CA" + "f" * 32
        assert_error(
            await c.post(f"/Calls/{unknown}.json", data={"Status": "completed"}), 404, 20404
        )
        assert_error(await c.get(f"/Calls/{unknown}.json"), 404, 20404)
        await c.post(f"/Calls/{other.json()['sid']}.json", data={"Status": "canceled"})
    kinds = [e["kind"] for e in fast.timeline(sid)]
    assert "rest-request" in kinds and "rest-hangup" in kinds


BASE = {"To": "+15551230001", "From": "+14155551212", "Twiml": TWIML}


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": "+14155551212", "Twiml": TWIML}, 21201),
        ({"To": "12345", "From": "+14155551212", "Twiml": TWIML}, 21211),
        ({"To": "+0123456789", "From": "+14155551212", "Twiml": TWIML}, 21211),
        ({"To": "+15551230001", "Twiml": TWIML}, 21213),
        ({"To": "+15551230001", "From": "not-a-number", "Twiml": TWIML}, 21212),
        ({"To": "+15551230001", "From": "+14155551212"}, 21205),
        (
            {"To": "+15551230001", "From": "+14155551212", "Twiml": TWIML, "Url": "http://h/x"},
            21205,
        ),
        ({"To": "+15551230001", "From": "+14155551212", "Url": "ftp://h/x"}, 21205),
        ({"To": "+15551230001", "From": "+14155551212", "Twiml": "x" * 4001}, 21205),
        ({"To": "+15551230001", "From": "+14155551212", "Twiml": TWIML, "Timeout": "soon"}, 21208),
        (
            {
                "To": "+15551230001",
                "From": "+14155551212",
                "Twiml": TWIML,
                "StatusCallbackEvent": "bogus",
            },
            20001,
        ),
        ({**BASE, "Timeout": "0"}, 21208),
        ({**BASE, "Timeout": "-5"}, 21208),
        ({**BASE, "MachineDetection": "Enable", "MachineDetectionTimeout": "2"}, 20001),
        ({**BASE, "MachineDetectionSpeechThreshold": "7000"}, 20001),
        ({**BASE, "MachineDetectionSilenceTimeout": "x"}, 20001),
        ({**BASE, "AsyncAmd": "maybe"}, 20001),
        ({**BASE, "AsyncAmdStatusCallback": "ftp://x/y"}, 20001),
        ({**BASE, "RecordingChannels": "stereo"}, 20001),
        ({**BASE, "RecordingTrack": "left"}, 20001),
        ({**BASE, "RecordingStatusCallbackEvent": "done"}, 20001),
        ({**BASE, "RecordingStatusCallbackMethod": "PUT"}, 20001),
        ({**BASE, "SendDigits": "12x"}, 20001),
        ({**BASE, "To": "client:bad name"}, 21211),
        ({**BASE, "To": "sip:nohost"}, 21211),
        ({**BASE, "To": "+15551230001", "From": "client:alice"}, 21212),
    ],
)
async def test_create_validation_errors(fast, emulator_credentials, form, code):
    async with client(fast, emulator_credentials) as c:
        assert_error(await c.post("/Calls.json", data=form), 400, code)
    assert fast.calls == {}


async def test_auth_failures_are_20003(fast, emulator_credentials):
    async with client(fast, emulator_credentials, auth=False) as c:
        r = await c.get("/Calls.json")
        assert_error(r, 401, 20003)
        assert r.headers["www-authenticate"].startswith("Basic")
        r = await c.get("/Calls.json", auth=(emulator_credentials.account_sid, "wrong"))
        assert_error(r, 401, 20003)
    async with httpx.AsyncClient(
        base_url=fast.base_url,
        auth=(emulator_credentials.account_sid, emulator_credentials.auth_token),
    ) as c:
        other = "AC" + "9" * 32
        assert_error(await c.get(f"/2010-04-01/Accounts/{other}/Calls.json"), 401, 20003)
        assert_error(await c.get("/_emulator/health", auth=None), 401, 20003)
        assert_error(await c.get("/nope"), 404, 20404)


async def test_timeout_is_clamped_to_600(emulator_credentials):
    spec = parse_create(
        (("To", "+15551230001"), ("From", "+14155551212"), ("Url", "http://h/"), ("Timeout", "900"))
    )
    assert spec.timeout == 600
    spec = parse_create((("To", "+15551230001"), ("From", "+14155551212"), ("Url", "http://h/")))
    assert spec.timeout == 60
    assert spec.status_callback_events == frozenset({"completed"})


async def test_injected_and_rate_faults(fast, emulator_credentials):
    fast.faults.inject_rest("429")
    fast.faults.inject_rest("500")
    async with client(fast, emulator_credentials) as c:
        assert_error(await c.get("/Calls.json"), 429, 20429)
        assert (await c.get("/Calls.json")).status_code == 500
        assert (await c.get("/Calls.json")).status_code == 200
        fast.faults.configure(rest_429_rate=1.0)
        assert_error(await c.get("/Calls.json"), 429, 20429)
        fast.faults.configure(rest_429_rate=0.0, rest_timeout_rate=1.0, rest_timeout_seconds=0.5)
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/Calls.json", timeout=0.1)


async def test_concurrency_cap_gives_20429(fast, emulator_credentials):
    fast.faults.configure(
        max_concurrent_requests=2, rest_timeout_rate=1.0, rest_timeout_seconds=0.3
    )
    async with client(fast, emulator_credentials) as c:
        results = await asyncio.gather(*(c.get("/Calls.json") for _ in range(5)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 429, 429, 429]
    for r in results:
        if r.status_code == 429:
            assert_error(r, 429, 20429)


async def test_official_twilio_client_against_the_emulator(fast, emulator_credentials, receiver):
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    def run():
        tw = Client(emulator_credentials.account_sid, emulator_credentials.auth_token)
        tw.api.base_url = fast.base_url
        call = tw.calls.create(
            to="+15551230001",
            from_="+14155551212",
            twiml=TWIML,
            status_callback=receiver.url("/status"),
            status_callback_event=["initiated", "answered", "completed"],
            timeout=30,
        )
        assert call.sid.startswith("CA") and call.status == "queued"
        fetched = tw.calls(call.sid).fetch()
        assert fetched.to == "+15551230001"
        listed = tw.calls.list(to="+15551230001")
        assert [c.sid for c in listed] == [call.sid]
        try:
            tw.calls.create(to="bad", from_="+14155551212", twiml=TWIML)
        except TwilioRestException as exc:
            assert exc.code == 21211 and exc.status == 400
        else:
            raise AssertionError("expected 21211")
        return call.sid

    sid = await asyncio.to_thread(run)
    sim = fast.call(sid)
    assert sim.spec.status_callback_events == frozenset({"initiated", "answered", "completed"})
    assert sim.spec.timeout == 30

    def hang_up():
        tw = Client(emulator_credentials.account_sid, emulator_credentials.auth_token)
        tw.api.base_url = fast.base_url
        return tw.calls(sid).update(status="completed").status

    await fast.wait_for_call_status(sid, "in-progress", timeout=5)
    assert await asyncio.to_thread(hang_up) == "completed"


_field = st.sampled_from(
    [
        "To",
        "From",
        "Url",
        "Twiml",
        "Method",
        "StatusCallback",
        "StatusCallbackEvent",
        "StatusCallbackMethod",
        "Timeout",
        "TimeLimit",
        "Record",
        "MachineDetection",
        "SendDigits",
        "ApplicationSid",
        "AsyncAmd",
        "AsyncAmdStatusCallback",
        "MachineDetectionTimeout",
        "MachineDetectionSpeechThreshold",
        "RecordingStatusCallback",
        "RecordingStatusCallbackEvent",
        "RecordingChannels",
        "RecordingTrack",
        "x",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.lists(st.tuples(_field, st.text(max_size=30)), max_size=12).map(
            lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
        ),
    )
)
async def test_fuzz_create_never_500s(fast, emulator_credentials, body):
    creds = emulator_credentials
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fast.app),
        base_url=f"http://emulator/2010-04-01/Accounts/{creds.account_sid}",
        auth=(creds.account_sid, creds.auth_token),
    ) as c:
        r = await c.post(
            "/Calls.json",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code in {201, 400, 413}, r.text
    if r.status_code != 201:
        assert set(r.json()) == ERROR_KEYS
