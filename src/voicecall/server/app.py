"""One ASGI app: webhooks, the Media Streams socket, the control API, health and metrics.

The webhook and stream paths are matched exactly (never by prefix) and handled by lean raw-ASGI
code; everything under ``/api`` goes to the FastAPI control API. The lifespan opens the store,
the one shared httpx client and the provider, then reconciles calls left over from a previous
run before the first request is served.

Only the instance holding the store's lease (:mod:`voicecall.calls.lease`) acts. Another one
started on the same store is a *standby*: ``/healthz`` is 503 ``{"status":"standby"}``, webhooks,
the control API and streams are refused with 503 (1013 on the socket), and it polls the lease
every ``store.standby_poll_seconds``; when it gets it, it starts the manager, which restores and
reconciles every live call. An active instance that loses its lease (its PostgreSQL connection
died) stops acting at once and shuts the process down, so a supervisor restarts it as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from voicecall.agent.responder import (
    CallerMemory,
    Responder,
    ResponderConfig,
    responder_from_settings,
)
from voicecall.calls.bus import EventBus
from voicecall.calls.calllog import CallLog
from voicecall.calls.lease import Lease, lease_for
from voicecall.calls.manager import CallManager
from voicecall.calls.store.base import Store, open_store_from_url
from voicecall.config import Settings
from voicecall.conversation.chat import ChatModel, OpenAIChat
from voicecall.errors import StoreError
from voicecall.providers.base import Provider
from voicecall.providers.registry import build_provider
from voicecall.reports.delivery import ReportDeliverer
from voicecall.server.api import build_api
from voicecall.server.metrics import CONTENT_TYPE_LATEST, Metrics
from voicecall.server.streams import StreamEndpoint, build_stream_endpoint
from voicecall.server.webhooks import Receive, Scope, Send, WebhookEndpoint, _respond
from voicecall.telephony.service import telephony_for

log = logging.getLogger("voicecall.server")

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
HTTP_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


async def _warm(load: Callable[[], Awaitable[None]]) -> None:
    try:
        await load()
    except Exception as exc:  # the first call will report it properly
        log.warning("could not preload a speech model: %s", exc)


def _terminate_process() -> None:
    """Ask the server to shut down gracefully (uvicorn handles SIGTERM)."""
    os.kill(os.getpid(), signal.SIGTERM)


async def _respond_standby(send: Send, path: str) -> None:
    if path == "/healthz":
        await _respond(send, 503, b'{"status":"standby"}', content_type=b"application/json")
    elif path == "/api" or path.startswith("/api/"):
        body = (
            b'{"type":"about:blank","title":"Standby","status":503,"detail":"this voicecall '
            b'instance is a standby: another instance holds the store lease; use that one"}'
        )
        await _respond(send, 503, body, content_type=b"application/problem+json")
    else:
        await _respond(send, 503, b"standby: another voicecall instance is active\n")


def _stream_secret(settings: Settings) -> str | None:
    """Stream tokens are keyed from the provider secret, so they survive a restart."""
    for secret in (settings.twilio.auth_token, settings.api.token):
        if secret is not None:
            return secret.get_secret_value()
    return None  # a random per-process key


def build_responder(
    settings: Settings, http: httpx.AsyncClient, store: Store
) -> tuple[Responder | None, CallerMemory | None]:
    """The configured responder and, with it, the caller memory kept in ``store``."""
    cfg = settings.responder
    kwargs: dict[str, Any] = {}
    if cfg.system_prompt:
        kwargs["system_prompt"] = cfg.system_prompt
    responder = responder_from_settings(
        ResponderConfig(
            kind=cfg.kind,
            base_url=cfg.base_url,
            model=cfg.model,
            api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
            hook=cfg.hook,
            timeout_s=cfg.timeout_seconds,
            **kwargs,
        ),
        http=http,
    )
    if responder is None:
        return None, None
    return responder, CallerMemory(store)


def build_task_model(settings: Settings, http: httpx.AsyncClient) -> ChatModel | None:
    """The model task calls use: the ``[responder]`` chat endpoint (whatever ``responder.kind``
    is); ``None`` when it cannot be used (then task calls are refused with a 422 saying why)."""
    cfg = settings.responder
    key = cfg.api_key.get_secret_value() if cfg.api_key else os.environ.get("OPENAI_API_KEY")
    if not cfg.base_url.startswith(("http://", "https://")) or not cfg.model:
        return None
    if not key and "api.openai.com" in cfg.base_url:
        return None
    return OpenAIChat(
        cfg.base_url,
        cfg.model,
        key or None,
        http,
        timeout_s=cfg.timeout_seconds,
        json_timeout_s=settings.task.outcome_timeout_seconds,
    )


class VoicecallApp:
    """The ASGI application ``voicecall serve`` runs under uvicorn."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        provider_factory: Callable[[Settings, httpx.AsyncClient], Provider] | None = None,
        http: httpx.AsyncClient | None = None,
        reaper_interval_seconds: float = 60.0,
        on_lease_lost: Callable[[], None] | None = None,
        task_model: ChatModel | None = None,
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        # called once the instance is active and its speech models are loaded (``voicecall
        # serve`` moves the start-up heap out of the collector's sight there: see runner.py)
        self._on_settled = on_settled
        self.metrics = Metrics()
        self.bus = EventBus()
        self.bus.add_listener(CallLog())  # one log line per call event that matters
        self._store = store
        self._provider_factory = provider_factory or build_provider
        self._http = http
        self._owns_http = http is None
        self._reaper_interval = reaper_interval_seconds
        self.manager: CallManager | None = None
        self.provider: Provider | None = None
        self._webhook: WebhookEndpoint | None = None
        self.streams: StreamEndpoint | None = None
        self._warmups: list[asyncio.Task[None]] = []
        self.api = build_api(settings, self._get_manager)
        self.started = False
        self.lease: Lease | None = None
        self.active = False
        """Holds the store lease and runs the manager (``False``: standby, or fenced)."""
        self._lease_task: asyncio.Task[None] | None = None
        self._on_lease_lost = on_lease_lost or _terminate_process
        #: the model of task calls when given (the demo's scripted agent); else from settings
        self._task_model = task_model
        self.reports: ReportDeliverer | None = None

    def _get_manager(self) -> CallManager:
        if self.manager is None:
            raise RuntimeError("the server is not started")
        return self.manager

    # ------------------------------------------------------------------ lifespan

    async def startup(self) -> None:
        if self.started:
            return
        store = self._store or open_store_from_url(
            self.settings.store.url, sqlite_synchronous=self.settings.store.sqlite_synchronous
        )
        await store.open()
        self._store = store
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS)
        self.lease = lease_for(store)
        if await self.lease.try_acquire():
            await self._activate()
        else:
            log.warning(
                "standby: another voicecall instance holds the store lease (%s); "
                "taking over when it is free",
                self.lease.where,
            )
            self._lease_task = asyncio.create_task(self._await_lease(), name="voicecall-standby")
        self.metrics.lease_held.set(1 if self.active else 0)
        self.started = True

    async def _activate(self) -> None:
        """Start acting on the store (the lease is ours): provider, manager, endpoints."""
        assert self._store is not None and self._http is not None and self.lease is not None
        store = self._store
        self.provider = self._provider_factory(self.settings, self._http)
        self.manager = CallManager(
            self.settings,
            store,
            self.provider,
            bus=self.bus,
            reaper_interval_seconds=self._reaper_interval,
            stream_secret=_stream_secret(self.settings),
        )
        self.bus.add_listener(self._observe)
        telephony_for(self.manager)  # keypad and transfers, and their tools for task calls
        self.streams = build_stream_endpoint(self.settings, self.manager, self.metrics, self._http)
        # speech goes over Media Streams only when a stream endpoint could be built
        self.manager.streaming = self.streams is not None
        self.manager.responder, self.manager.memory = build_responder(
            self.settings, self._http, store
        )
        await self._import_memory_file()
        model = self._task_model or build_task_model(self.settings, self._http)
        self.manager.tasks.use_model(model)
        self.reports = ReportDeliverer(store, self.settings.reports, bus=self.bus)
        self.manager.tasks.reports = self.reports
        await self.manager.start()
        await self.manager.recordings.start()
        if self.streams is not None:
            self.streams.taps = self.manager.recordings.tap_for
        await self.reports.start()
        self._webhook = WebhookEndpoint(self.settings, self.provider, self.manager, self.metrics)
        if self.streams is not None:
            # load local speech models now, not when the first caller is waiting for an answer
            for engine in (self.streams.tts, self.streams.stt):
                load = getattr(engine, "load", None)
                if load is not None:
                    self._warmups.append(asyncio.create_task(_warm(load)))
        if self._on_settled is not None:
            self._warmups.append(asyncio.create_task(self._settle(list(self._warmups))))
        self.active = True
        self.metrics.lease_held.set(1)
        self._lease_task = asyncio.create_task(self._watch_lease(), name="voicecall-lease")
        self._log_banner()

    async def _settle(self, warmups: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*warmups, return_exceptions=True)
        if self._on_settled is not None:
            self._on_settled()

    def _log_banner(self) -> None:
        from voicecall import __version__
        from voicecall.agent.client import control_url
        from voicecall.server.banner import banner_details
        from voicecall.speech.registry import choose_stt, choose_tts
        from voicecall.voice.settings import stt_config, tts_config

        streaming = self.streams is not None
        details = banner_details(
            self.settings,
            control_url=control_url(self.settings),
            streaming=streaming,
            tts=choose_tts(tts_config(self.settings)) if streaming else None,
            stt=choose_stt(stt_config(self.settings)) if streaming else None,
        )
        log.info("voicecall %s ready", __version__, extra={"details": details})

    async def _import_memory_file(self) -> None:
        """Move a pre-store ``responder.memory_path`` file into the store, once."""
        path = self.settings.responder.memory_path
        memory = self.manager.memory if self.manager is not None else None
        if memory is None or not path:
            return
        try:
            await memory.import_file(path)
        except StoreError as exc:  # the file stays in place: the next start tries again
            log.error("caller memory file %s not imported: %s", path, exc)

    async def _await_lease(self) -> None:
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.settings.store.standby_poll_seconds)
            try:
                if not await self.lease.try_acquire():
                    continue
                log.warning("store lease %s acquired: taking over", self.lease.where)
                await self._activate()
                return
            except Exception as exc:
                log.error("taking over failed, still standby: %s", exc)
                await self._stand_down()
                await self.lease.release()

    async def _watch_lease(self) -> None:
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.settings.store.standby_poll_seconds)
            if await self.lease.held():
                continue
            log.error(
                "store lease %s lost (connection gone): no longer acting on the store; "
                "shutting down so a supervisor restarts this instance as a standby",
                self.lease.where,
            )
            await self._stand_down()
            self._on_lease_lost()
            return

    async def _stand_down(self) -> None:
        """Stop acting at once: no timer, reaper or webhook touches the store after this."""
        self.active = False
        self.metrics.lease_held.set(0)
        for task in self._warmups:
            task.cancel()
        if self.streams is not None:
            with contextlib.suppress(Exception):
                await self.streams.aclose()
        if self.manager is not None:
            with contextlib.suppress(Exception):
                await self.manager.recordings.stop()
            with contextlib.suppress(Exception):
                await self.manager.stop()
        if self.reports is not None:
            with contextlib.suppress(Exception):
                await self.reports.stop()

    async def shutdown(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lease_task
            self._lease_task = None
        for task in self._warmups:
            task.cancel()
        if self.streams is not None:
            await self.streams.aclose()
        if self.manager is not None:
            await self.manager.recordings.stop()
            await self.manager.stop()
        if self.reports is not None:
            await self.reports.stop()
        if self.provider is not None:
            await self.provider.aclose()
        if self.lease is not None:
            await self.lease.release()
        self.active = False
        if self._store is not None:
            await self._store.close()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self.manager is not None:
            self.metrics.calls_active.set(self.manager.live_count)
        if kind == "call.ended":
            call = event["call"]
            self.metrics.calls_ended.labels(call["direction"], call["end_reason"] or "").inc()
        elif kind == "call.created" and event["call"]["direction"] == "outbound":
            self.metrics.calls_placed.inc()
        elif kind == "turn.latency":
            self.metrics.observe_turn(event["latency"])

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "")
        if kind == "websocket":
            if not self.active:
                await receive()  # websocket.connect; 1013: try again later (another instance)
                await send({"type": "websocket.close", "code": 1013, "reason": "standby"})
            elif self.streams is not None and path == self.settings.serve.stream_path:
                await self.streams(scope, receive, send)
            else:
                await receive()  # websocket.connect; refused below with HTTP 403
                await send({"type": "websocket.close", "code": 1008, "reason": "not found"})
            return
        if kind != "http":
            return
        if not self.started:
            await _respond(send, 503, b"starting\n")
            return
        if not self.active and path != "/metrics":
            await _respond_standby(send, path)
            return
        if path == self.settings.serve.webhook_path:
            assert self._webhook is not None
            await self._webhook(scope, receive, send)
        elif path == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}', content_type=b"application/json")
        elif path == "/metrics":
            await _respond(
                send, 200, self.metrics.render(), content_type=CONTENT_TYPE_LATEST.encode()
            )
        elif path == "/api" or path.startswith("/api/"):
            await self.api(scope, receive, send)
        else:
            await _respond(send, 404, b"not found\n")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
