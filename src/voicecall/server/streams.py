"""The Media Streams WebSocket endpoint (raw ASGI), matched exactly at ``serve.stream_path``.

Order of checks, cheapest first, all before the upgrade is accepted (refusals are an HTTP
response through the ``websocket.http.response`` extension when the server offers it, else a
close, which ASGI servers turn into HTTP 403):

1. open streams under ``streaming.max_streams`` (503), pending (not yet started) connections
   under ``streaming.max_pending_total`` and ``streaming.max_pending_per_ip`` (429);
2. ``X-Twilio-Signature`` over the ``wss://`` URL built from ``public_url`` (``ws://`` for an
   http origin), with the trailing-slash and port variants (403).

Then the socket is accepted and read at once. ``start`` must arrive within
``streaming.start_timeout_seconds`` (else close 1008); its ``customParameters.token`` and
``callSid`` go to :meth:`StreamHost.claim_stream`; a rejection closes 1008 before any
processing. Frames larger than ``streaming.max_frame_bytes`` and malformed frames are counted
and skipped, never fatal. Once claimed, a :class:`~voicecall.voice.session.VoiceSession` runs
the call's audio and every later event is handed to it; when the socket ends the host hears
:meth:`StreamHost.stream_detached` exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from typing import Final, cast

import httpx
from prometheus_client import Counter

from voicecall.calls.channel import MediaTap, StreamHost, StreamRejected
from voicecall.config import Settings
from voicecall.server.loop_histogram import LoopHistogram
from voicecall.server.metrics import Metrics
from voicecall.server.webhooks import Receive, Scope, Send
from voicecall.server.ws_protocol import DIRECT_EXTENSION, DirectLane
from voicecall.speech.registry import build_stt, build_tts
from voicecall.speech.stt.base import SttProvider, SttSession
from voicecall.speech.tts.base import TtsProvider
from voicecall.speech.tts.cache import PhraseCache
from voicecall.twilio.media import (
    CloseCode,
    Closing,
    Malformed,
    MediaEvent,
    MediaSession,
    SessionState,
    Start,
)
from voicecall.twilio.signature import (
    SIGNATURE_HEADER,
    rebuild_public_url,
    verify_websocket_signature,
    websocket_url,
)
from voicecall.voice.session import VoiceObserver, VoiceSession
from voicecall.voice.settings import (
    VoiceTuning,
    fixed_phrases,
    streaming_problems,
    stt_config,
    tts_config,
)

__all__ = [
    "StreamEndpoint",
    "StreamMetrics",
    "StreamObserver",
    "UpgradeVerifier",
    "build_stream_endpoint",
    "twilio_upgrade_verifier",
]

log = logging.getLogger("voicecall.streams")

UpgradeVerifier = Callable[[str, dict[str, str]], bool]
"""``(url, lower-case headers) -> authentic?`` for a WebSocket upgrade request."""

_LATENESS_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


def twilio_upgrade_verifier(settings: Settings) -> UpgradeVerifier:
    """Twilio's X-Twilio-Signature on the upgrade; refuses everything without an auth token."""
    token = settings.twilio.auth_token

    def verify(url: str, headers: dict[str, str]) -> bool:
        if token is None:
            return False
        return verify_websocket_signature(url, headers.get(SIGNATURE_HEADER), token).ok

    return verify


class StreamMetrics:
    """Prometheus series of the stream endpoint, in the app's own registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.connections = metrics.stream_connections
        frames = Counter(
            "voicecall_stream_frames_total",
            "Media frames, by direction (in: caller audio processed, out: audio messages sent).",
            ["direction"],
            registry=r,
        )
        self.frames_in = frames.labels("in")
        self.frames_out = frames.labels("out")
        self.malformed = Counter(
            "voicecall_stream_malformed_total",
            "Media Streams frames skipped as malformed.",
            registry=r,
        )
        self.refused = Counter(
            "voicecall_stream_refused_total",
            "Stream connections refused or closed before attaching, by reason.",
            ["reason"],
            registry=r,
        )
        self.barge_ins = Counter(
            "voicecall_barge_ins_total", "Caller speech that cut the bot off.", registry=r
        )
        self.underruns = Counter(
            "voicecall_playout_underruns_total",
            "Outbound audio that ran dry mid-utterance (TTS slower than real time).",
            registry=r,
        )
        self.direct = Counter(
            "voicecall_stream_direct_lane_total",
            "Streams whose frames were read on the server's direct lane (no ASGI queue).",
            registry=r,
        )
        self.lateness = LoopHistogram(  # one observation per outbound message: no lock
            "voicecall_stream_send_lateness_seconds",
            "How late outbound audio messages were sent relative to their schedule.",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )


class _Observer(VoiceObserver):
    """Feeds the Prometheus series; subclass it to see per-call figures too (benchmarks)."""

    def __init__(self, m: StreamMetrics) -> None:
        self._m = m

    def frames_in(self, count: int) -> None:
        self._m.frames_in.inc(count)

    def frames_out(self, count: int) -> None:
        self._m.frames_out.inc(count)

    def lateness(self, seconds: float) -> None:
        self._m.lateness.observe(seconds)

    def barge_in(self) -> None:
        self._m.barge_ins.inc()

    def underrun(self, count: int) -> None:
        self._m.underruns.inc(count)

    def malformed(self, reason: str) -> None:
        self._m.malformed.inc()


StreamObserver = _Observer


def _never(text: str | list[str]) -> bool:
    return False


class _AsgiTransport:
    """ASGI ``send``, plus the server's :class:`DirectLane` when it offers one."""

    def __init__(self, send: Send, lane: DirectLane | None = None) -> None:
        self._send = send
        self.lane = lane
        self.closed = False
        self.send_text_nowait = lane.send_text_nowait if lane is not None else _never
        self.send_texts_nowait = lane.send_texts_nowait if lane is not None else _never

    async def send_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


class StreamEndpoint:
    """Raw ASGI handler of ``websocket`` scopes at the stream path; see the module docs."""

    def __init__(
        self,
        settings: Settings,
        host: StreamHost,
        metrics: Metrics,
        *,
        tts: TtsProvider,
        stt: SttProvider | None,
        tuning: VoiceTuning | None = None,
        verify: UpgradeVerifier | None = None,
        vad_enabled: bool = True,
        observer_factory: Callable[[StreamMetrics], VoiceObserver] | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.metrics = StreamMetrics(metrics)
        self.tts = tts
        self.stt = stt
        self.tuning = tuning or VoiceTuning.from_settings(settings)
        self.verify = verify or twilio_upgrade_verifier(settings)
        self.vad_enabled = vad_enabled
        self._observer_factory = observer_factory or _Observer
        self.open_streams = 0
        self.pending_total = 0
        self._pending_by_ip: Tally[str] = Tally()
        self.sessions: dict[str, VoiceSession] = {}
        """Attached sessions by call id."""
        self.taps: Callable[[str], MediaTap | None] | None = None
        """``call_id -> tap``: who hears a claimed call's audio beside the pipeline (the
        recorder), or nobody."""

    async def aclose(self) -> None:
        """Close every live stream (shutdown) and the speech providers."""
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await session.close("server shutting down")
        for provider in (self.tts, self.stt):
            if provider is not None:
                with contextlib.suppress(Exception):
                    await provider.aclose()

    # -- admission -----------------------------------------------------------------------

    def _upgrade_url(self, scope: Scope, headers: dict[str, str]) -> str:
        client = scope.get("client")
        url = rebuild_public_url(
            public_url=self.settings.public_url,
            path=scope.get("root_path", "") + scope.get("path", ""),
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            client_host=client[0] if client else None,
            trusted_proxies=self.settings.serve.trusted_proxies,
            scheme="https" if scope.get("scheme") == "wss" else "http",
            host_header=None,
        )
        return websocket_url(url)

    def _admission_problem(self, ip: str) -> tuple[int, str] | None:
        s = self.settings.streaming
        if self.open_streams >= s.max_streams:
            return 503, "too_many_streams"
        if self.pending_total >= s.max_pending_total:
            return 429, "too_many_pending"
        if self._pending_by_ip[ip] >= s.max_pending_per_ip:
            return 429, "too_many_pending_ip"
        return None

    async def _refuse(self, scope: Scope, send: Send, status: int, reason: str) -> None:
        self.metrics.refused.labels(reason).inc()
        if "websocket.http.response" in (scope.get("extensions") or {}):
            body = f"{reason.replace('_', ' ')}\n".encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        client = scope.get("client")
        ip = str(client[0]) if client else "unknown"
        problem = self._admission_problem(ip)
        if problem is not None:
            await self._refuse(scope, send, *problem)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.verify(self._upgrade_url(scope, headers), headers):
            reason = "unsigned" if not headers.get(SIGNATURE_HEADER) else "bad_signature"
            log.warning("stream upgrade from %s refused: %s", ip, reason)
            await self._refuse(scope, send, 403, reason)
            return
        self.open_streams += 1
        self.pending_total += 1
        self._pending_by_ip[ip] += 1
        pending = True
        self.metrics.connections.inc()
        lane = scope.get("extensions", {}).get(DIRECT_EXTENSION)
        transport = _AsgiTransport(send, lane if isinstance(lane, DirectLane) else None)

        def release() -> None:
            nonlocal pending
            if pending:
                pending = False
                self.pending_total -= 1
                self._pending_by_ip[ip] -= 1
                if self._pending_by_ip[ip] <= 0:
                    del self._pending_by_ip[ip]

        try:
            await send({"type": "websocket.accept"})
            await self._serve(receive, transport, release)
        finally:
            release()
            self.open_streams -= 1
            self.metrics.connections.dec()

    async def _serve(
        self, receive: Receive, transport: _AsgiTransport, release: Callable[[], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings.streaming
        media = MediaSession(
            opened_at=loop.time(),
            start_timeout=s.start_timeout_seconds,
            max_frame_bytes=s.max_frame_bytes,
        )
        deadline = media.start_deadline
        assert deadline is not None
        # Phase 1: until a claimed start. Nothing but parsing happens here.
        claimed: str | None = None
        while claimed is None:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                media.fail(CloseCode.POLICY_VIOLATION, "no start in time")
                self.metrics.refused.labels("start_timeout").inc()
                await transport.close(CloseCode.POLICY_VIOLATION, media.close_reason)
                return
            if message["type"] == "websocket.disconnect":
                media.connection_lost()
                self.metrics.refused.labels("gone_before_start").inc()
                return
            for event in _feed(media, message):
                if isinstance(event, Malformed):
                    self.metrics.malformed.inc()
                    log.info("stream: skipped a malformed frame: %s", event.reason)
                elif isinstance(event, Closing):
                    self.metrics.refused.labels("bad_start").inc()
                elif isinstance(event, Start):
                    claimed = await self._claim(media, event)
            if media.close_expected():
                assert media.close_code is not None
                await transport.close(media.close_code, media.close_reason)
                return
        call_id = claimed
        release()
        session = await self._attach(call_id, media, transport)
        if session is None:
            return
        # Phase 2: the call's audio. With the server's direct lane, text frames are handled
        # right where they are read (no queue, no task switch); receive() then only brings
        # what the lane does not carry (binary frames, the disconnect).
        reason = "disconnected"
        lane = transport.lane
        closing: list[asyncio.Task[None]] = []

        def on_text(text: str) -> None:
            for event in media.receive_text(text):
                session.handle(event)
            if not closing and media.state is not SessionState.STREAMING and media.close_expected():
                assert media.close_code is not None
                closing.append(
                    loop.create_task(transport.close(media.close_code, media.close_reason))
                )

        try:
            while True:
                if (
                    lane is not None
                    and not lane.active
                    and not closing
                    and lane.receive_text_directly(on_text)
                ):
                    self.metrics.direct.inc()
                message = await receive()
                text = message.get("text")
                if type(text) is str:  # the common case: a text frame, most of them media
                    events = media.receive_text(text)
                elif message["type"] == "websocket.disconnect":
                    media.connection_lost()
                    code = message.get("code", 1005)
                    if closing:
                        reason = f"closed ({media.close_code})"
                    elif media.state is SessionState.STOPPED:
                        reason = "stream stopped"
                    else:
                        reason = f"stream disconnected ({code})"
                    break
                else:
                    events = _feed(media, message)
                for event in events:
                    session.handle(event)
                if media.state is not SessionState.STREAMING and media.close_expected():
                    assert media.close_code is not None
                    await transport.close(media.close_code, media.close_reason)
                    reason = f"closed ({media.close_code})"
                    break
        finally:
            for task in closing:
                await task  # transport.close() never raises
            self.sessions.pop(call_id, None)
            reason = await session.shutdown(reason)
            try:
                await self.host.stream_detached(call_id, reason=reason)
            except Exception as exc:
                log.warning("call %s: stream_detached failed: %r", call_id, exc)

    async def _claim(self, media: MediaSession, start: Start) -> str | None:
        token = start.custom_parameters.get("token")
        if not token:
            media.fail(CloseCode.POLICY_VIOLATION, "stream rejected")
            self.metrics.refused.labels("no_token").inc()
            log.warning("stream for %s refused: no token parameter", start.call_sid)
            return None
        try:
            return await self.host.claim_stream(token=token, call_sid=start.call_sid)
        except StreamRejected as exc:
            media.fail(CloseCode.POLICY_VIOLATION, "stream rejected")
            self.metrics.refused.labels("rejected").inc()
            log.warning("stream for %s refused: %s", start.call_sid, exc.message)
        except Exception as exc:
            media.fail(CloseCode.INTERNAL_ERROR, "internal error")
            self.metrics.refused.labels("claim_failed").inc()
            log.error("stream for %s: claim failed: %r", start.call_sid, exc)
        return None

    def _tap(self, call_id: str) -> MediaTap | None:
        if self.taps is None:
            return None
        try:
            return self.taps(call_id)
        except Exception as exc:  # a recorder that cannot start never stops the call
            log.error("call %s: its recording could not start: %r", call_id, exc)
            return None

    async def _attach(
        self, call_id: str, media: MediaSession, transport: _AsgiTransport
    ) -> VoiceSession | None:
        stt_session: SttSession | None = None
        if self.stt is not None:
            try:
                stt_session = await self.stt.open_session()  # connects in the background
            except Exception as exc:
                log.warning("call %s: speech recognition unavailable: %s", call_id, exc)
        session = VoiceSession(
            call_id=call_id,
            media=media,
            transport=transport,
            host=self.host,
            tts=self.tts,
            stt=stt_session,
            tuning=self.tuning,
            observer=self._observer_factory(self.metrics),
            vad_enabled=self.vad_enabled,
            tap=self._tap(call_id),
        )
        session.start()
        self.sessions[call_id] = session
        try:
            await self.host.stream_attached(call_id, session)
        except Exception as exc:
            log.error("call %s: stream_attached failed: %r", call_id, exc)
            self.sessions.pop(call_id, None)
            media.fail(CloseCode.INTERNAL_ERROR, "internal error")
            await transport.close(CloseCode.INTERNAL_ERROR, "internal error")
            reason = await session.shutdown("attach failed")
            with contextlib.suppress(Exception):
                await self.host.stream_detached(call_id, reason=reason)
            return None
        return session


def build_stream_endpoint(
    settings: Settings,
    host: object,
    metrics: Metrics,
    http: httpx.AsyncClient | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> StreamEndpoint | None:
    """The endpoint with the configured TTS/STT, or ``None`` when streaming is not available
    (disabled, no public URL, no TTS/STT, or ``host`` does not implement :class:`StreamHost`)."""
    problems = streaming_problems(settings, env)
    if not all(hasattr(host, name) for name in _HOST_METHODS):
        problems.append("the call manager does not implement StreamHost yet")
    if problems:
        if settings.streaming.enabled:
            log.warning("streaming disabled: %s", "; ".join(problems))
        return None
    engine = build_tts(tts_config(settings), env=env, http=http)
    stt = build_stt(stt_config(settings), env=env)
    if engine is None:
        return None
    tts = PhraseCache(engine, fixed_phrases(settings))
    return StreamEndpoint(settings, cast(StreamHost, host), metrics, tts=tts, stt=stt)


_HOST_METHODS: Final = (
    "claim_stream",
    "stream_attached",
    "stream_detached",
    "caller_said",
    "caller_pressed",
    "bot_interrupted",
)


def _feed(media: MediaSession, message: dict[str, object] | object) -> list[MediaEvent]:
    assert isinstance(message, dict)
    text = message.get("text")
    if isinstance(text, str):
        return media.receive_text(text)
    data = message.get("bytes")
    if isinstance(data, bytes | bytearray):
        return media.receive_bytes(bytes(data))
    return []
