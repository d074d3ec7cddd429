"""Media Streams: the pure session (messages, marks, clear, underruns) and a live WebSocket."""

from __future__ import annotations

import base64
import json

import pytest
import websockets
from twilio.request_validator import RequestValidator

from voicecall.emulator.media import FRAME_BYTES, MediaSession, wav_bytes

SID = "MZ" + "1" * 32


def session() -> MediaSession:
    return MediaSession(
        account_sid="AC" + "a" * 32,
        call_sid="CA" + "b" * 32,
        stream_sid=SID,
        custom_parameters={"token": "t"},
    )


def app_media(n_bytes: int, sid: str = SID) -> str:
    payload = base64.b64encode(b"\x10" * n_bytes).decode()
    return json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})


def app_mark(name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": name}})


def test_golden_messages():
    s = session()
    connected = json.loads(s.connected())
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = json.loads(s.start())
    assert start["sequenceNumber"] == "1"
    assert start["streamSid"] == SID
    assert start["start"] == {
        "accountSid": "AC" + "a" * 32,
        "streamSid": SID,
        "callSid": "CA" + "b" * 32,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"token": "t"},
    }
    m1, m2 = json.loads(s.media()), json.loads(s.media())
    assert m1["sequenceNumber"] == "2" and m2["sequenceNumber"] == "3"
    assert m1["media"]["chunk"] == "1" and m2["media"]["chunk"] == "2"
    assert m1["media"]["timestamp"] == "0" and m2["media"]["timestamp"] == "20"
    assert m1["media"]["track"] == "inbound"
    assert base64.b64decode(m1["media"]["payload"]) == b"\xff" * FRAME_BYTES
    d = json.loads(s.dtmf("5"))
    assert d["dtmf"] == {"track": "inbound_track", "digit": "5"} and d["sequenceNumber"] == "4"
    stop = json.loads(s.stop())
    assert stop["stop"] == {"accountSid": "AC" + "a" * 32, "callSid": "CA" + "b" * 32}


def test_mark_echoed_when_audio_before_it_has_played():
    s = session()
    assert s.receive(app_media(400), 0) == []
    assert s.receive(app_mark("end"), 0) == []
    assert s.play(0) == [] and s.play(20) == []
    (echo,) = s.play(40)  # 400 bytes = 3 ticks
    assert json.loads(echo)["mark"] == {"name": "end"}
    assert s.stats.underruns == 0


def test_mark_with_empty_buffer_is_echoed_at_once():
    s = session()
    (echo,) = s.receive(app_mark("now"), 0)
    assert json.loads(echo)["event"] == "mark"


def test_clear_drops_audio_and_echoes_pending_marks():
    s = session()
    s.receive(app_media(1600), 0)
    s.receive(app_mark("a"), 0)
    s.receive(app_media(1600), 0)
    s.receive(app_mark("b"), 0)
    s.play(0)
    echoes = s.receive(json.dumps({"event": "clear", "streamSid": SID}), 20)
    assert [json.loads(e)["mark"]["name"] for e in echoes] == ["a", "b"]
    assert not s.app_playing
    assert s.stats.clears == 1


def test_underrun_is_a_gap_inside_an_utterance():
    s = session()
    s.receive(app_media(160), 0)
    s.play(0)
    s.play(20)  # dry while the utterance is open
    s.play(40)
    s.receive(app_media(160), 60)  # more of the same utterance: a 40 ms gap
    assert s.stats.underruns == 1
    assert s.stats.underrun_ms == pytest.approx(40)
    s.receive(app_mark("end"), 60)
    s.play(60)
    s.play(80)
    s.receive(app_media(160), 200)  # a new utterance after a mark: no underrun
    assert s.stats.underruns == 1


def test_bad_input_is_counted_never_fatal():
    s = session()
    assert s.receive("{not json", 0) == []
    assert s.receive(b"\x00\x01", 0) == []
    assert s.receive(app_media(10, sid="MZ" + "9" * 32), 0) == []
    assert (
        s.receive(json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "!!"}}), 0)
        == []
    )
    assert s.receive("[]", 0) == []
    assert s.stats.malformed == 3 and s.stats.ignored == 2


def test_callee_speech_onset_sample_is_recorded():
    s = session()
    s.media()
    s.media()
    s.say(b"\x00" * 480, "hello")
    frames = [json.loads(s.media()) for _ in range(4)]
    assert s.onsets == [{"text": "hello", "sample": 320, "ms": 40}]
    payloads = [base64.b64decode(f["media"]["payload"]) for f in frames]
    assert payloads[0] == b"\x00" * 160 and payloads[3] == b"\xff" * 160
    clear = json.dumps({"event": "clear", "streamSid": SID})
    s.receive(clear, 130)
    assert s.clear_latencies_ms == [pytest.approx(90)]


def test_turns_as_the_caller_sees_them():
    import numpy as np

    from voicecall.audio.g711 import ulaw_encode
    from voicecall.emulator.media import last_voiced_frame

    t = np.arange(8 * 130) / 8000  # 130 ms of tone: its last voiced frame is the 7th
    loud = ulaw_encode((np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16))
    assert last_voiced_frame(loud + b"\xff" * 800) == 6
    assert last_voiced_frame(b"\xff" * 800) is None and last_voiced_frame(b"") is None
    s = session()
    s.start()
    for i in range(3):
        s.media(now_ms=i * 20.0)
    s.say(loud + b"\xff" * 800, "hello")  # onset at 60 ms; speech ends at 60 + 140 = 200 ms
    for i in range(3, 20):
        s.media(now_ms=i * 20.0 + 0.5)
    (turn,) = s.turns
    assert turn["speech_end_ms"] == 200 and turn["speech_end_sent_ms"] == 180.5
    assert turn["reply_ms"] is None and not turn["overlap"]
    s.receive(app_mark("u1s"), 900.0)
    s.receive(app_media(160), 1000.0)  # the first frame of the bot's answer
    s.receive(app_media(160), 1020.0)
    assert turn["reply_ms"] == 1000.0 and turn["voice_to_voice_ms"] == 819.5
    # a turn that ends while the bot still talks has no reply of its own
    s.say(loud, "again")
    for i in range(20, 30):
        s.media(now_ms=i * 20.0)
    assert s.turns[1]["overlap"]
    s.receive(app_mark("u1e"), 1100.0)
    s.receive(app_media(160), 1200.0)
    assert s.turns[1]["reply_ms"] is None
    assert s.summary()["turns"][0]["voice_to_voice_ms"] == 819.5


def test_heard_audio_as_wav():
    s = session()
    s.receive(app_media(320), 0)
    s.play(0)
    s.play(20)
    s.play(40)
    wav = wav_bytes(bytes(s.heard))
    assert wav[:4] == b"RIFF" and len(wav) == 44 + 3 * 160 * 2


@pytest.mark.e2e
async def test_connect_stream_end_to_end(fast, receiver, emulator_credentials):
    """The emulator opens a signed WebSocket, streams, plays the app's audio, echoes marks."""
    validator = RequestValidator(emulator_credentials.auth_token)
    seen: dict[str, object] = {}

    async def handler(ws):
        path = ws.request.path
        url = f"ws://127.0.0.1:{port}{path}"
        seen["signature_valid"] = validator.validate(
            url, {}, ws.request.headers["X-Twilio-Signature"]
        )
        events = []
        async for raw in ws:
            msg = json.loads(raw)
            events.append(msg["event"])
            if msg["event"] == "start":
                seen["start"] = msg["start"]
                sid = msg["streamSid"]
                payload = base64.b64encode(b"\x20" * 1600).decode()  # 200 ms
                await ws.send(
                    json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
                )
                await ws.send(
                    json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "done"}})
                )
            if msg["event"] == "mark":
                seen["mark"] = msg["mark"]["name"]
                seen["events"] = list(events)
                await ws.close()
                return

    server = await websockets.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        receiver.on(
            "/voice",
            f"<Response><Connect><Stream url='ws://127.0.0.1:{port}/media'>"
            "<Parameter name='token' value='abc'/></Stream></Connect><Say>after</Say></Response>",
        )
        import httpx

        creds = emulator_credentials
        async with httpx.AsyncClient(
            base_url=fast.base_url, auth=(creds.account_sid, creds.auth_token)
        ) as c:
            r = await c.post(
                f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json",
                data={"To": "+15551230001", "From": "+15557654321", "Url": receiver.url("/voice")},
            )
        sid = r.json()["sid"]
        sim = await fast.wait_for_call_end(sid, timeout=10)
        await fast.wait_idle()
    finally:
        server.close()
        await server.wait_closed()
    assert seen["signature_valid"] is True
    assert seen["start"]["customParameters"] == {"token": "abc"}
    assert seen["start"]["callSid"] == sid
    assert seen["mark"] == "done"
    assert seen["events"][:2] == ["connected", "start"]
    assert [h.text for h in sim.heard] == ["after"]
    stats = next(e for e in fast.timeline(sid) if e["kind"] == "stream-stats")
    assert stats["stats"]["frames_played"] == 10
    assert stats["stats"]["marks_echoed"] == 1
    assert stats["stats"]["frames_sent"] >= 10
    stream_sid = stats["stream_sid"]
    assert len(fast.heard_wav(stream_sid)) > 44


async def _stream_call(fast, receiver, creds, handler, *, script=None):
    import httpx

    server = await websockets.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if script is not None:
        fast.set_script("+15551230001", script)
    receiver.on(
        "/voice",
        f"<Response><Connect><Stream url='ws://127.0.0.1:{port}/m'/></Connect>"
        "<Say>after</Say></Response>",
    )
    try:
        async with httpx.AsyncClient(
            base_url=fast.base_url, auth=(creds.account_sid, creds.auth_token)
        ) as c:
            r = await c.post(
                f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json",
                data={"To": "+15551230001", "From": "+15557654321", "Url": receiver.url("/voice")},
            )
        sid = r.json()["sid"]
        sim = await fast.wait_for_call_end(sid, timeout=15)
        await fast.wait_idle()
    finally:
        server.close()
        await server.wait_closed()
    return sid, sim


@pytest.mark.e2e
async def test_callee_hangup_sends_stop_and_speech_reaches_the_app(
    fast, receiver, emulator_credentials
):
    got: dict[str, object] = {"loud_frames": 0}

    async def handler(ws):
        sid = None
        async for raw in ws:
            msg = json.loads(raw)
            if msg["event"] == "start":
                sid = msg["streamSid"]
                payload = base64.b64encode(b"\x20" * 800).decode()
                await ws.send(
                    json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
                )
                await ws.send(
                    json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "u1"}})
                )
            elif msg["event"] == "media":
                if base64.b64decode(msg["media"]["payload"]) != b"\xff" * 160:
                    got["loud_frames"] = int(got["loud_frames"]) + 1  # type: ignore[call-overload]
            elif msg["event"] == "stop":
                got["stop"] = msg["stop"]

    sid, sim = await _stream_call(
        fast,
        receiver,
        emulator_credentials,
        handler,
        script={
            "answer_after_ms": 10,
            "replies": ["yes"],
            "reply_delay_ms": 50,
            "hangup_after_ms": 2500,
        },
    )
    assert sim.status.value == "completed"
    assert got["stop"] == {"accountSid": emulator_credentials.account_sid, "callSid": sid}
    assert int(got["loud_frames"]) > 5  # type: ignore[call-overload]
    stats = next(e for e in fast.timeline(sid) if e["kind"] == "stream-stats")
    assert stats["reason"] == "call ended"
    assert [o["text"] for o in stats["onsets"]] == ["yes"]
    assert stats["onsets"][0]["sample"] % 160 == 0


@pytest.mark.e2e
async def test_websocket_drop_fault_ends_the_stream_and_twiml_goes_on(
    fast, receiver, emulator_credentials
):
    fast.faults.configure(ws_drop_rate=1.0, ws_drop_after_ms=200)

    async def handler(ws):
        async for _ in ws:
            pass

    sid, sim = await _stream_call(fast, receiver, emulator_credentials, handler)
    assert [h.text for h in sim.heard] == ["after"]
    stats = next(e for e in fast.timeline(sid) if e["kind"] == "stream-stats")
    assert stats["reason"] == "fault: websocket dropped"


@pytest.mark.e2e
async def test_unreachable_stream_url_continues_twiml(fast, receiver, emulator_credentials):
    receiver.on(
        "/voice",
        "<Response><Connect><Stream url='ws://127.0.0.1:9/none'/></Connect><Say>x</Say></Response>",
    )
    import httpx

    creds = emulator_credentials
    async with httpx.AsyncClient(
        base_url=fast.base_url, auth=(creds.account_sid, creds.auth_token)
    ) as c:
        r = await c.post(
            f"/2010-04-01/Accounts/{creds.account_sid}/Calls.json",
            data={"To": "+15551230001", "From": "+15557654321", "Url": receiver.url("/voice")},
        )
    sim = await fast.wait_for_call_end(r.json()["sid"], timeout=10)
    assert [h.text for h in sim.heard] == ["x"]
    ended = next(e for e in sim.timeline if e["kind"] == "stream-ended")
    assert ended["reason"].startswith("connect failed")
