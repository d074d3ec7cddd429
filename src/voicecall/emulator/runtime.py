"""The running emulator: calls, timers, webhooks and the HTTP server (the I/O shell).

Everything protocol-shaped happens in pure modules (``sim``, ``twiml``, ``signing``, ``forms``);
this module only moves their actions onto the event loop: timers become ``loop.call_at``,
webhooks go through :class:`~voicecall.emulator.webhooks.WebhookSender`, and the ASGI app from
:mod:`voicecall.emulator.rest` is served by uvicorn on a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp

from voicecall.emulator.conference import Conferences
from voicecall.emulator.faults import FaultConfig, Faults
from voicecall.emulator.forms import is_anonymous_caller, is_e164
from voicecall.emulator.ids import IdSource
from voicecall.emulator.media import MediaSession
from voicecall.emulator.recording import Recording
from voicecall.emulator.runtime_moves import Moves
from voicecall.emulator.scripts import DEFAULT_SCRIPT, CalleeScript, parse_script
from voicecall.emulator.sim import CallSim
from voicecall.emulator.simtypes import (
    TERMINAL,
    CallFinished,
    CallSpec,
    CallStatus,
    CloseStream,
    Direction,
    EndLeg,
    FetchMedia,
    HttpRequest,
    JoinConference,
    LeaveConference,
    LegEvent,
    OpenStream,
    Purpose,
    RecordingReady,
    SimAction,
    SimConfig,
    StartLeg,
    StartTimer,
)
from voicecall.emulator.speech_audio import stereo_wav_bytes, wav_bytes
from voicecall.emulator.stream_hub import StreamHub
from voicecall.emulator.webhooks import Delivery, PreparedRequest, WebhookSender, prepare_request

__all__ = ["Emulator", "NumberConfig", "serve"]

_MOVES = (FetchMedia, StartLeg, EndLeg, LegEvent, RecordingReady, JoinConference, LeaveConference)

log = logging.getLogger("voicecall.emulator")


@dataclass(frozen=True, slots=True)
class NumberConfig:
    """A phone number the emulated account owns, for inbound calls."""

    number: str
    voice_url: str
    voice_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})

    def __post_init__(self) -> None:
        if not is_e164(self.number):
            raise ValueError(f"{self.number!r} is not an E.164 number")
        if self.voice_method not in {"GET", "POST"}:
            raise ValueError("voice_method is GET or POST")
        if self.status_callback_method not in {"GET", "POST"}:
            raise ValueError("status_callback_method is GET or POST")

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "voice_url": self.voice_url,
            "voice_method": self.voice_method,
            "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method,
            "status_callback_events": sorted(self.status_callback_events),
        }


class _Clock:
    """Wall-clock seconds that advance monotonically (and map onto ``loop.time()``)."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)


class _CallIO:
    """Per-call I/O bookkeeping."""

    def __init__(self) -> None:
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.held_callback: HttpRequest | None = None
        self.deliveries: list[Delivery] = []


class Emulator:
    """A local Twilio: REST API, call simulator, signed webhooks.

    Use as ``async with Emulator(account_sid=..., auth_token=...) as emu:``; ``emu.base_url`` is
    the value for the service's Twilio API base URL. :attr:`app` is the ASGI app, usable without
    a socket too (then call :meth:`start_background` / :meth:`aclose` yourself).
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SimConfig | None = None,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        default_script: CalleeScript | Mapping[str, Any] | str | None = None,
    ) -> None:
        if not account_sid.startswith("AC") or len(account_sid) != 34:
            raise ValueError("account_sid must look like AC + 32 hex digits")
        if not auth_token:
            raise ValueError("auth_token must not be empty")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.host = host
        self.port = port
        self.config = config or SimConfig()
        self.faults = Faults(faults)
        self._ids = IdSource(seed)
        self._clock = _Clock()
        self._default_script = parse_script(default_script) if default_script else DEFAULT_SCRIPT
        self._scripts: dict[str, CalleeScript] = {}
        self._numbers: dict[str, NumberConfig] = {}
        self._calls: dict[str, CallSim] = {}
        self._io: dict[str, _CallIO] = {}
        self._tick = asyncio.Event()
        self._sender: WebhookSender | None = None
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self.rest_in_flight = 0
        self._streams = StreamHub(self)
        self._moves = Moves(self)
        from voicecall.emulator.rest import build_app

        self._app = build_app(self)

    def __repr__(self) -> str:
        return f"Emulator(account_sid={self.account_sid!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ properties

    @property
    def app(self) -> ASGIApp:
        return self._app

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def check_credentials(self, account_sid: str, auth_token: str) -> bool:
        import hmac

        ok_sid = hmac.compare_digest(account_sid.encode(), self.account_sid.encode())
        ok_token = hmac.compare_digest(auth_token.encode(), self._auth_token.encode())
        return ok_sid and ok_token

    @property
    def auth_token(self) -> str:
        """The Auth Token (needed by tests to validate signatures). Never logged."""
        return self._auth_token

    def now(self) -> float:
        return self._clock.now()

    @property
    def calls(self) -> Mapping[str, CallSim]:
        return dict(self._calls)

    def call(self, sid: str) -> CallSim:
        return self._calls[sid]

    def timeline(self, sid: str) -> list[dict[str, Any]]:
        return list(self._calls[sid].timeline)

    def deliveries(self, sid: str) -> list[Delivery]:
        return list(self._io[sid].deliveries)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start_background(self) -> None:
        """Start the webhook client without a server (for in-process ASGI use)."""
        if self._sender is None:
            self._sender = WebhookSender()
        self._tick = asyncio.Event()

    async def start(self) -> None:
        """Bind the socket (port 0 picks a free one) and serve the app with uvicorn."""
        await self.start_background()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        cfg = uvicorn.Config(
            self._app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(cfg)
        self._server_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError("emulator server stopped during start-up")
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        tasks: list[asyncio.Task[Any]] = []
        for sid in list(self._io):
            tasks += self._cancel_io(sid)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._server_task
            self._server = None
            self._server_task = None
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None

    async def serve_forever(self) -> None:
        await self.start()
        try:
            assert self._server_task is not None
            await self._server_task
        finally:
            await self.aclose()

    # ------------------------------------------------------------------ configuration

    def set_script(
        self, number: str, script: CalleeScript | Mapping[str, Any] | str | None
    ) -> None:
        """The script the person at ``number`` follows (callee of outbound, caller of inbound)."""
        if script is None:
            self._scripts.pop(number, None)
        else:
            self._scripts[number] = parse_script(script)

    def set_default_script(self, script: CalleeScript | Mapping[str, Any] | str | None) -> None:
        self._default_script = parse_script(script)

    def script_for(self, number: str) -> CalleeScript:
        return self._scripts.get(number, self._default_script)

    def register_number(
        self,
        number: str,
        voice_url: str,
        *,
        voice_method: str = "POST",
        status_callback: str | None = None,
        status_callback_method: str = "POST",
        status_callback_events: Iterable[str] = ("completed",),
    ) -> NumberConfig:
        cfg = NumberConfig(
            number,
            voice_url,
            voice_method.upper(),
            status_callback,
            status_callback_method.upper(),
            frozenset(status_callback_events),
        )
        self._numbers[number] = cfg
        return cfg

    @property
    def numbers(self) -> Mapping[str, NumberConfig]:
        return dict(self._numbers)

    # ------------------------------------------------------------------ calls

    def create_call(self, spec: CallSpec) -> CallSim:
        """Create an outbound-api call (status ``queued``) and start it on the loop."""
        sid = self._ids.sid("CA")
        sim = CallSim(
            sid=sid,
            account_sid=self.account_sid,
            spec=spec,
            script=self.script_for(spec.to),
            now=self.now(),
            config=self.config,
            ids=self._ids,
        )
        self._calls[sid] = sim
        self._io[sid] = _CallIO()
        asyncio.get_running_loop().call_soon(self._start_call, sid)
        return sim

    def dial_in(self, *, from_: str, to: str) -> str:
        """A caller dials ``to`` (a registered number). Returns the new call's sid."""
        number = self._numbers.get(to)
        if number is None:
            raise KeyError(f"{to} is not a registered number")
        if not (is_e164(from_) or is_anonymous_caller(from_)):
            raise ValueError(f"{from_!r} is not an E.164 number or an anonymous caller id")
        spec = CallSpec(
            to=to,
            from_=from_,
            direction=Direction.INBOUND,
            url=number.voice_url,
            method=number.voice_method,
            status_callback=number.status_callback,
            status_callback_method=number.status_callback_method,
            status_callback_events=number.status_callback_events,
        )
        sid = self._ids.sid("CA")
        sim = CallSim(
            sid=sid,
            account_sid=self.account_sid,
            spec=spec,
            script=self.script_for(from_),
            now=self.now(),
            config=self.config,
            ids=self._ids,
        )
        self._calls[sid] = sim
        self._io[sid] = _CallIO()
        self.apply(sim, sim.start(self.now()))
        return sid

    def _start_call(self, sid: str) -> None:
        sim = self._calls[sid]
        self.apply(sim, sim.start(self.now()))

    def hangup(self, sid: str, status: CallStatus) -> None:
        sim = self._calls[sid]
        self.apply(sim, sim.hangup(self.now(), status))

    def redirect(
        self, sid: str, *, url: str | None = None, method: str = "POST", twiml: str | None = None
    ) -> None:
        sim = self._calls[sid]
        self.apply(sim, sim.redirect(self.now(), url=url, method=method, twiml=twiml))

    async def wait_for_call_status(
        self, sid: str, status: str | CallStatus | Iterable[str], timeout: float = 10.0
    ) -> CallSim:
        """Wait until the call has reached ``status`` (now or earlier in its life).

        ``status`` may be one status, several, or ``"terminal"`` for any final status.
        Raises ``TimeoutError`` with the call's current status after ``timeout`` seconds.
        """
        if isinstance(status, str):
            wanted = {s.value for s in TERMINAL} if status == "terminal" else {str(status)}
        else:
            wanted = {str(s) for s in status}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            sim = self._calls.get(sid)
            if sim is not None:
                reached = {e["status"] for e in sim.timeline if e["kind"] == "status"}
                reached.add(sim.status.value)
                if reached & wanted:
                    return sim
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                current = sim.status.value if sim is not None else "unknown call"
                raise TimeoutError(f"call {sid} did not reach {sorted(wanted)}; it is {current}")
            tick = self._tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), remaining)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no webhook delivery is in flight (every response is in the timeline)."""
        async with asyncio.timeout(timeout):
            while True:
                tasks = [t for io in self._io.values() for t in io.tasks]
                if not tasks:
                    return
                await asyncio.wait(tasks)

    async def wait_for_call_end(self, sid: str, timeout: float = 10.0) -> CallSim:
        return await self.wait_for_call_status(sid, "terminal", timeout)

    # ------------------------------------------------------------------ action plumbing

    def notify(self) -> None:
        tick = self._tick
        self._tick = asyncio.Event()
        tick.set()

    def apply(self, sim: CallSim, actions: list[SimAction]) -> None:
        """Perform a call's actions on the event loop."""
        io = self._io.get(sim.sid)
        if io is None:
            return
        loop = asyncio.get_running_loop()
        for action in actions:
            if isinstance(action, StartTimer):
                old = io.timers.pop(action.name, None)
                if old is not None:
                    old.cancel()
                delay = max(0.0, action.at - self.now())
                io.timers[action.name] = loop.call_later(
                    delay, self._fire_timer, sim.sid, action.name, action.token
                )
            elif isinstance(action, HttpRequest):
                self._dispatch_http(sim, io, action)
            elif isinstance(action, OpenStream):
                failed = self._streams.open_stream(sim, action)
                if failed:
                    loop.call_soon(self.apply, sim, failed)
            elif isinstance(action, CloseStream):
                self._streams.close_stream(sim, action)
            elif isinstance(action, _MOVES):
                self._moves.perform(sim, action)
            elif isinstance(action, CallFinished):
                for handle in io.timers.values():
                    handle.cancel()
                io.timers.clear()
                if io.held_callback is not None:
                    held, io.held_callback = io.held_callback, None
                    self._spawn(io, self._send(sim, io, held))
        self.notify()

    # ------------------------------------------------------------------ rooms, media, recordings

    def conference(self, name: str) -> dict[str, Any] | None:
        """A room (live, else the last one of that name that ended), as a dict."""
        return self._moves.conference(name)

    def add_media(self, url: str, path: str) -> None:
        """Serve ``<Play>url</Play>`` from a local WAV file (checked now) instead of HTTP."""
        self._moves.add_media(url, path)

    @property
    def recordings(self) -> Mapping[str, Recording]:
        return dict(self._moves.recordings)

    def recording(self, sid: str) -> Recording:
        return self._moves.recordings[sid]

    def delete_recording(self, sid: str) -> bool:
        """``DELETE /Recordings/{Sid}.json``: the resource and its media are gone."""
        return self._moves.recordings.pop(sid, None) is not None

    def call_recordings(self, call_sid: str) -> list[Recording]:
        return [r for r in self._moves.recordings.values() if r.call_sid == call_sid]

    async def recording_wav(self, sid: str) -> bytes:
        """The recording's audio as a WAV (speech synthesised, stream audio as carried)."""
        return await self._moves.recording_wav(sid)

    def _fire_timer(self, sid: str, name: str, token: int) -> None:
        sim = self._calls.get(sid)
        io = self._io.get(sid)
        if sim is None or io is None:
            return
        io.timers.pop(name, None)
        self.apply(sim, sim.timer_fired(name, token, self.now()))

    def spawn(self, sid: str, coro: Any) -> None:
        """Run ``coro`` as one of call ``sid``'s tasks (cancelled with it, awaited by
        :meth:`wait_idle`)."""
        self._spawn(self._io[sid], coro)

    def _spawn(self, io: _CallIO, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        io.tasks.add(task)
        task.add_done_callback(io.tasks.discard)

    def _dispatch_http(self, sim: CallSim, io: _CallIO, req: HttpRequest) -> None:
        if req.purpose is Purpose.STATUS_CALLBACK:
            held = io.held_callback
            if held is not None:
                io.held_callback = None
                self._spawn(io, self._send_in_order(sim, io, [req, held]))
                return
            if not sim.is_over and self.faults.reorder():
                io.held_callback = req
                sim.record(self.now(), "fault", fault="reorder-hold", request_id=req.request_id)
                return
        self._spawn(io, self._send(sim, io, req))

    async def _send_in_order(self, sim: CallSim, io: _CallIO, reqs: list[HttpRequest]) -> None:
        for req in reqs:
            await self._send(sim, io, req)

    async def _send(self, sim: CallSim, io: _CallIO, req: HttpRequest) -> None:
        sender = self._sender
        if sender is None:
            return
        delay = self.faults.webhook_delay()
        if delay > 0:
            sim.record(self.now(), "fault", fault="webhook-delay", seconds=delay)
            await asyncio.sleep(delay)
        prepared = prepare_request(self._auth_token, req.method, req.url, req.params)
        duplicate = self.faults.duplicate()
        delivery = await self._deliver_logged(sim, io, req, prepared, duplicate=False)
        if duplicate:
            sim.record(self.now(), "fault", fault="duplicate", request_id=req.request_id)
            await self._deliver_logged(sim, io, req, prepared, duplicate=True)
        if req.purpose.expects_twiml:
            now = self.now()
            if delivery.status_code is None:
                actions = sim.http_failed(req.request_id, delivery.error or "no response", now)
            else:
                actions = sim.http_response(
                    req.request_id, delivery.status_code, delivery.body, now
                )
            self.apply(sim, actions)

    async def _deliver_logged(
        self,
        sim: CallSim,
        io: _CallIO,
        req: HttpRequest,
        prepared: PreparedRequest,
        *,
        duplicate: bool,
    ) -> Delivery:
        assert self._sender is not None
        sent_at = self.now()
        delivery = await self._sender.deliver(prepared)
        io.deliveries.append(delivery)
        for attempt in delivery.attempts:
            sim.record(
                sent_at,
                "webhook",
                purpose=req.purpose.value,
                request_id=req.request_id,
                method=prepared.method,
                url=prepared.url,
                params=dict(req.params),
                attempt=attempt.number,
                duplicate=duplicate,
                idempotency_token=prepared.idempotency_token,
                status_code=attempt.status_code,
                latency_ms=round(attempt.latency_ms, 3),
                error=attempt.error,
            )
        self.notify()
        return delivery

    # ------------------------------------------------------------------ Media Streams

    @property
    def conferences(self) -> Conferences:
        return self._moves.conferences

    @property
    def audio_cache(self) -> Mapping[str, bytes]:
        """Downloaded ``<Play>`` audio by URL (μ-law)."""
        return self._moves.audio_cache

    @property
    def sender(self) -> WebhookSender | None:
        return self._sender

    def add_call(self, sim: CallSim) -> None:
        """Register a call created outside :meth:`create_call` (a ``<Dial>`` leg)."""
        self._calls[sim.sid] = sim
        self._io[sim.sid] = _CallIO()

    @property
    def ids(self) -> IdSource:
        return self._ids

    @property
    def streams_open(self) -> Mapping[str, OpenStream]:
        return self._streams.open

    def media_session(self, stream_sid: str) -> MediaSession:
        """The Media Streams session of a stream (stats, onsets, marks, heard audio)."""
        return self._streams.session(stream_sid)

    def streams_of(self, call_sid: str) -> list[str]:
        """The stream sids a call has opened, oldest first."""
        return self._streams.of_call(call_sid)

    def heard_wav(self, stream_sid: str) -> bytes:
        """What the callee heard on a stream (the app's audio, real time), as WAV."""
        return wav_bytes(bytes(self.media_session(stream_sid).heard))

    def conversation_wav(self, stream_sid: str) -> bytes:
        """Both sides of a stream as a stereo WAV: left the callee, right the app (real time)."""
        session = self.media_session(stream_sid)
        return stereo_wav_bytes(bytes(session.spoken), bytes(session.heard))

    def _cancel_io(self, sid: str) -> list[asyncio.Task[Any]]:
        io = self._io.get(sid)
        if io is None:
            return []
        for handle in io.timers.values():
            handle.cancel()
        io.timers.clear()
        tasks = list(io.tasks)
        for task in tasks:
            task.cancel()
        return tasks


def serve(port: int, account_sid: str, auth_token: str, host: str = "127.0.0.1") -> None:
    """Run the emulator as a server process until interrupted."""
    emu = Emulator(account_sid=account_sid, auth_token=auth_token, host=host, port=port)

    async def main() -> None:
        await emu.start()
        print(f"voicecall emulator listening on {emu.base_url}", flush=True)
        assert emu._server_task is not None
        try:
            await emu._server_task
        finally:
            await emu.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
