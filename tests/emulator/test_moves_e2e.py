"""Telephony moves end to end through the running emulator on loopback (REST, signed webhooks),
checked with the official ``twilio`` package where it helps."""

from __future__ import annotations

import asyncio
import io
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecall.emulator.runtime import Emulator
from voicecall.emulator.sim import SimConfig
from voicecall.emulator.tones import tone

pytestmark = pytest.mark.e2e
TO, FROM = "+15551230001", "+15557654321"


def wav_file(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone(440, seconds * 1000).tobytes())
    return path


async def create(emu, creds, **form):
    async with httpx.AsyncClient(
        base_url=emu.base_url, auth=(creds.account_sid, creds.auth_token)
    ) as c:
        r = await c.post(f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json", data=form)
    assert r.status_code == 201, r.text
    return r.json()["sid"]


async def api(emu, creds, method, path, **kw):
    async with httpx.AsyncClient(
        base_url=emu.base_url, auth=(creds.account_sid, creds.auth_token)
    ) as c:
        return await c.request(method, f"/2010-04-01/Accounts/{creds.account_sid}{path}", **kw)


@pytest.fixture
async def amd_emu(emulator_credentials):
    """Real speech timing at 600 wpm: a 12-word greeting lasts 1.2 s."""
    async with Emulator(
        account_sid=emulator_credentials.account_sid,
        auth_token=emulator_credentials.auth_token,
        config=SimConfig(words_per_minute=600.0, initiate_delay=0.01, ring_delay=0.01),
        seed=3,
    ) as emu:
        yield emu


VOICEMAIL = {
    "answer_after_ms": 50,
    "voicemail": {
        "greeting": "Hi this is Sam, I cannot take your call, leave a message please.",
        "greeting_delay_ms": 100,
        "beep": {"frequency_hz": 1000, "duration_ms": 200},
        "max_silence_ms": 1000,
    },
}
AMD_TUNING = {
    "MachineDetectionSpeechThreshold": "1000",
    "MachineDetectionSpeechEndThreshold": "500",
}


async def test_async_amd_posts_signed_result_to_its_callback(
    amd_emu, receiver, emulator_credentials
):
    amd_emu.set_script(TO, VOICEMAIL)
    receiver.on("/voice", "<Response><Pause length='10'/></Response>")
    sid = await create(
        amd_emu,
        emulator_credentials,
        To=TO,
        From=FROM,
        Url=receiver.url("/voice"),
        MachineDetection="DetectMessageEnd",
        AsyncAmd="true",
        AsyncAmdStatusCallback=receiver.url("/amd"),
        **AMD_TUNING,
    )
    await receiver.wait_for(lambda rs: receiver.at("/amd"), timeout=10)
    (voice,) = receiver.at("/voice")
    assert "AnsweredBy" not in voice.form  # the TwiML ran at once
    (amd,) = receiver.at("/amd")
    assert amd.signature_valid
    assert amd.form["AnsweredBy"] == "machine_end_beep"
    assert amd.form["CallSid"] == sid
    assert 1000 < int(amd.form["MachineDetectionDuration"]) < 3000
    r = await api(amd_emu, emulator_credentials, "GET", f"/Calls/{sid}.json")
    assert r.json()["answered_by"] == "machine_end_beep"
    await api(
        amd_emu, emulator_credentials, "POST", f"/Calls/{sid}.json", data={"Status": "completed"}
    )


async def test_sync_amd_then_a_message_left_on_the_machine(amd_emu, receiver, emulator_credentials):
    amd_emu.set_script(TO, VOICEMAIL)
    receiver.on(
        "/voice", "<Response><Say>Hello Sam, your table is booked.</Say><Hangup/></Response>"
    )
    sid = await create(
        amd_emu,
        emulator_credentials,
        To=TO,
        From=FROM,
        Url=receiver.url("/voice"),
        MachineDetection="DetectMessageEnd",
        **AMD_TUNING,
    )
    sim = await amd_emu.wait_for_call_end(sid, timeout=10)
    (voice,) = receiver.at("/voice")
    assert voice.signature_valid and voice.form["AnsweredBy"] == "machine_end_beep"
    assert int(voice.form["MachineDetectionDuration"]) > 1000
    assert sim.callee.message.text == "Hello Sam, your table is booked."
    note = next(e for e in amd_emu.timeline(sid) if e["kind"] == "callee-voicemail")
    assert note["text"] == "Hello Sam, your table is booked."


async def test_dial_with_whisper_and_action_through_rest(fast, receiver, emulator_credentials):
    target = "+15559990000"
    fast.set_script(target, {"answer_after_ms": 30, "hangup_after_ms": 1500})
    receiver.on(
        "/voice",
        f"<Response><Dial action='/dialed' timeout='10' callerId='+15550001111'>"
        f"<Number url='/whisper'>{target}</Number></Dial></Response>",
    )
    receiver.on("/whisper", "<Response><Say>Transfer: Sam wants a table.</Say></Response>")
    receiver.on("/dialed", "<Response><Say>Back with the assistant.</Say></Response>")
    sid = await create(fast, emulator_credentials, To=TO, From=FROM, Url=receiver.url("/voice"))
    sim = await fast.wait_for_call_end(sid, timeout=10)
    await fast.wait_idle()
    (whisper,) = receiver.at("/whisper")
    (dialed,) = receiver.at("/dialed")
    assert whisper.signature_valid and dialed.signature_valid
    assert whisper.form["Direction"] == "outbound-dial"
    assert whisper.form["ParentCallSid"] == sid
    assert whisper.form["From"] == "+15550001111"
    child = whisper.form["CallSid"]
    assert dialed.form["DialCallStatus"] == "completed"
    assert dialed.form["DialCallSid"] == child
    assert int(dialed.form["DialCallDuration"]) in (1, 2)
    assert "Back with the assistant." in [h.text for h in sim.heard]
    assert [h.text for h in fast.call(child).heard] == ["Transfer: Sam wants a table."]
    r = await api(fast, emulator_credentials, "GET", "/Calls.json", params={"ParentCallSid": sid})
    assert [c["sid"] for c in r.json()["calls"]] == [child]
    assert r.json()["calls"][0]["parent_call_sid"] == sid


async def test_busy_transfer_target_brings_the_caller_back(fast, receiver, emulator_credentials):
    target = "+15559990000"
    fast.set_script(target, {"outcome": "busy", "answer_after_ms": 30})
    receiver.on("/voice", f"<Response><Dial action='/dialed'>{target}</Dial></Response>")
    receiver.on("/dialed", "<Response><Say>They are busy.</Say></Response>")
    sid = await create(fast, emulator_credentials, To=TO, From=FROM, Url=receiver.url("/voice"))
    await fast.wait_for_call_end(sid, timeout=10)
    (dialed,) = receiver.at("/dialed")
    assert dialed.form["DialCallStatus"] == "busy"


async def test_record_verb_and_the_recordings_resource(fast, receiver, emulator_credentials):
    fast.set_script(TO, {"answer_after_ms": 20, "replies": ["Call me back tomorrow please"]})
    receiver.on(
        "/voice",
        "<Response><Record action='/recorded' timeout='1' "
        "recordingStatusCallback='/recstatus'/></Response>",
    )
    receiver.on("/recorded", "<Response><Hangup/></Response>")
    sid = await create(fast, emulator_credentials, To=TO, From=FROM, Url=receiver.url("/voice"))
    await fast.wait_for_call_end(sid, timeout=10)
    await receiver.wait_for(lambda rs: receiver.at("/recstatus"), timeout=5)
    (recorded,) = receiver.at("/recorded")
    (status,) = receiver.at("/recstatus")
    assert recorded.signature_valid and status.signature_valid
    rsid = recorded.form["RecordingSid"]
    assert status.form["RecordingSid"] == rsid and status.form["RecordingStatus"] == "completed"
    assert recorded.form["RecordingUrl"].endswith(f"/Recordings/{rsid}")
    r = await api(fast, emulator_credentials, "GET", f"/Recordings/{rsid}.json")
    assert r.status_code == 200
    assert r.json()["call_sid"] == sid and r.json()["source"] == "RecordVerb"
    r = await api(fast, emulator_credentials, "GET", f"/Calls/{sid}/Recordings.json")
    assert [x["sid"] for x in r.json()["recordings"]] == [rsid]
    async with httpx.AsyncClient(base_url=fast.base_url) as c:  # media needs no credentials
        media = await c.get(
            f"/2010-04-01/Accounts/{emulator_credentials.account_sid}/Recordings/{rsid}.wav"
        )
    assert media.status_code == 200 and media.content[:4] == b"RIFF"
    with wave.open(io.BytesIO(media.content)) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 0
    assert fast.recording(rsid).text == "Call me back tomorrow please"


async def test_record_true_with_the_official_sdk(fast, receiver, emulator_credentials):
    from twilio.rest import Client

    fast.set_script(TO, {"answer_after_ms": 20, "hangup_after_ms": 300})
    creds = emulator_credentials

    def place():
        tw = Client(creds.account_sid, creds.auth_token)
        tw.api.base_url = fast.base_url
        return tw.calls.create(
            to=TO,
            from_=FROM,
            twiml="<Response><Say>This call is recorded.</Say><Pause length='5'/></Response>",
            record=True,
            recording_status_callback=receiver.url("/rec"),
            recording_status_callback_event=["in-progress", "completed"],
            recording_channels="dual",
        ).sid

    sid = await asyncio.to_thread(place)
    await fast.wait_for_call_end(sid, timeout=10)
    await receiver.wait_for(lambda rs: len(receiver.at("/rec")) == 2, timeout=5)
    assert [r.form["RecordingStatus"] for r in receiver.at("/rec")] == ["in-progress", "completed"]
    assert receiver.at("/rec")[1].form["RecordingSource"] == "OutboundAPI"

    def fetch():
        tw = Client(creds.account_sid, creds.auth_token)
        tw.api.base_url = fast.base_url
        (rec,) = tw.calls(sid).recordings.list()
        return tw.recordings(rec.sid).fetch()

    rec = await asyncio.to_thread(fetch)
    assert rec.call_sid == sid and rec.channels == 2 and rec.source == "OutboundAPI"


async def test_play_url_from_http_and_from_a_local_file(
    fast, receiver, emulator_credentials, tmp_path
):
    fast.set_script(TO, {"answer_after_ms": 20})
    data = wav_file(tmp_path / "a.wav", 0.5).read_bytes()
    fast.add_media("https://cdn.example.com/hold.wav", str(wav_file(tmp_path / "b.wav", 0.25)))
    receiver.on(
        "/voice",
        f"<Response><Play>{receiver.url('/a.wav')}</Play>"
        "<Play>https://cdn.example.com/hold.wav</Play><Play>/missing.mp3</Play></Response>",
    )
    receiver.on("/a.wav", data)
    sid = await create(fast, emulator_credentials, To=TO, From=FROM, Url=receiver.url("/voice"))
    sim = await fast.wait_for_call_end(sid, timeout=10)
    plays = [h for h in sim.heard if h.kind == "play"]
    assert [round(h.end - h.start, 2) for h in plays] == [0.5, 0.25]
    warning = next(e for e in sim.timeline if e["kind"] == "warning")
    assert warning["code"] in (11200, 12300) and "missing.mp3" in warning["message"]


async def test_stream_url_with_a_query_string_is_refused(fast, receiver, emulator_credentials):
    receiver.on(
        "/voice",
        "<Response><Connect><Stream url='wss://m.example.com/s?token=x'/></Connect></Response>",
    )
    sid = await create(fast, emulator_credentials, To=TO, From=FROM, Url=receiver.url("/voice"))
    sim = await fast.wait_for_call_end(sid, timeout=10)
    assert sim.error is not None and sim.error[0] == 12100
    assert "query string" in sim.error[1]


@pytest.mark.parametrize("to", ["client:alice", "sip:bob@example.com"])
async def test_client_and_sip_destinations(fast, emulator_credentials, to):
    fast.set_script(to, {"answer_after_ms": 20})
    sid = await create(fast, emulator_credentials, To=to, From=FROM, Twiml="<Response/>")
    sim = await fast.wait_for_call_end(sid, timeout=5)
    assert sim.status.value == "completed" and sim.spec.to == to
    r = await api(
        fast,
        emulator_credentials,
        "POST",
        "/Calls.json",
        data={"To": "client:", "From": FROM, "Twiml": "<Response/>"},
    )
    assert r.json()["code"] == 21211


async def test_status_callback_moved_by_an_update(fast, receiver, emulator_credentials):
    fast.set_script(TO, {"answer_after_ms": 20})
    receiver.on("/voice", "<Response><Pause length='30'/></Response>")
    sid = await create(
        fast,
        emulator_credentials,
        To=TO,
        From=FROM,
        Url=receiver.url("/voice"),
        StatusCallback=receiver.url("/old"),
    )
    await fast.wait_for_call_status(sid, "in-progress", timeout=5)
    r = await api(
        fast,
        emulator_credentials,
        "POST",
        f"/Calls/{sid}.json",
        data={"StatusCallback": receiver.url("/new"), "Status": "completed"},
    )
    assert r.status_code == 200
    await receiver.wait_for(lambda rs: receiver.at("/new"), timeout=5)
    assert receiver.at("/old") == [] and receiver.at("/new")[0].form["CallStatus"] == "completed"


async def test_list_filters_and_page_token_with_the_official_sdk(fast, emulator_credentials):
    from twilio.rest import Client

    fast.set_script(TO, {"answer_after_ms": 10})
    sids = [
        await create(fast, emulator_credentials, To=TO, From=FROM, Twiml="<Response/>")
        for _ in range(5)
    ]
    for sid in sids:
        await fast.wait_for_call_end(sid, timeout=5)
    queued = await create(
        fast, emulator_credentials, To="+15551239999", From=FROM, Twiml="<Response/>"
    )
    creds = emulator_credentials

    def read():
        tw = Client(creds.account_sid, creds.auth_token)
        tw.api.base_url = fast.base_url
        today = datetime.now(UTC)
        paged = [c.sid for c in tw.calls.list(to=TO, page_size=2)]
        after = [c.sid for c in tw.calls.list(start_time_after=today - timedelta(hours=1))]
        before = tw.calls.list(start_time_before=today - timedelta(days=1))
        page = tw.calls.page(page_size=2)
        return paged, after, before, page.next_page_url

    paged, after, before, next_url = await asyncio.to_thread(read)
    assert paged == list(reversed(sids))  # newest first, followed over three pages
    assert set(sids) <= set(after)
    assert before == []
    assert "PageToken=PA" in next_url
    r = await api(fast, emulator_credentials, "GET", "/Calls.json", params={"StartTime>": "bad"})
    assert r.status_code == 400 and r.json()["code"] == 20001
    r = await api(fast, emulator_credentials, "GET", "/Calls.json", params={"PageToken": "PAnope"})
    assert r.status_code == 400
    del queued


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "StartTime",
                    "StartTime>",
                    "StartTime<",
                    "EndTime",
                    "ParentCallSid",
                    "PageToken",
                    "PageSize",
                    "Page",
                    "To",
                    "Status",
                    "DateCreated<=",
                ]
            ),
            st.text(max_size=25),
        ),
        max_size=6,
    )
)
async def test_fuzz_list_queries_never_500(fast, emulator_credentials, query):
    creds = emulator_credentials
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fast.app),
        base_url=f"http://emulator/2010-04-01/Accounts/{creds.account_sid}",
        auth=(creds.account_sid, creds.auth_token),
    ) as c:
        r = await c.get("/Calls.json", params=query)
    assert r.status_code in {200, 400}, r.text
