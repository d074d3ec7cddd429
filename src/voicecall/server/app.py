"""One ASGI app: webhooks, the Media Streams socket, the control API, health and metrics.

The webhook and stream paths are matched exactly (never by prefix) and handled by lean raw-ASGI
code; everything under ``/api`` goes to the FastAPI control API. The lifespan opens the store,
the one shared httpx client and the provider, then reconciles calls left over from a previous
run before the first request is served.
"""

from __future__ import annotations

import asyncio
import logging
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
from voicecall.calls.manager import CallManager
from voicecall.calls.store.base import Store, open_store_from_url
from voicecall.config import Settings
from voicecall.providers.base import Provider
from voicecall.providers.registry import build_provider
from voicecall.server.api import build_api
from voicecall.server.metrics import CONTENT_TYPE_LATEST, Metrics
from voicecall.server.streams import StreamEndpoint, build_stream_endpoint
from voicecall.server.webhooks import Receive, Scope, Send, WebhookEndpoint, _respond

log = logging.getLogger("voicecall.server")

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
HTTP_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


async def _warm(load: Callable[[], Awaitable[None]]) -> None:
    try:
        await load()
    except Exception as exc:  # the first call will report it properly
        log.warning("could not preload a speech model: %s", exc)


def _stream_secret(settings: Settings) -> str | None:
    """Stream tokens are keyed from the provider secret, so they survive a restart."""
    for secret in (settings.twilio.auth_token, settings.api.token):
        if secret is not None:
            return secret.get_secret_value()
    return None  # a random per-process key


def build_responder(
    settings: Settings, http: httpx.AsyncClient
) -> tuple[Responder | None, CallerMemory | None]:
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
    return responder, CallerMemory(cfg.memory_path)


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
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.bus = EventBus()
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

    def _get_manager(self) -> CallManager:
        if self.manager is None:
            raise RuntimeError("the server is not started")
        return self.manager

    # ------------------------------------------------------------------ lifespan

    async def startup(self) -> None:
        if self.started:
            return
        store = self._store or open_store_from_url(self.settings.store.url)
        await store.open()
        self._store = store
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS)
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
        self.streams = build_stream_endpoint(self.settings, self.manager, self.metrics, self._http)
        # speech goes over Media Streams only when a stream endpoint could be built
        self.manager.streaming = self.streams is not None
        self.manager.responder, self.manager.memory = build_responder(self.settings, self._http)
        await self.manager.start()
        self._webhook = WebhookEndpoint(self.settings, self.provider, self.manager, self.metrics)
        if self.streams is not None:
            # load local speech models now, not when the first caller is waiting for an answer
            for engine in (self.streams.tts, self.streams.stt):
                load = getattr(engine, "load", None)
                if load is not None:
                    self._warmups.append(asyncio.create_task(_warm(load)))
        self.started = True

    async def shutdown(self) -> None:
        if not self.started:
            return
        self.started = False
        for task in self._warmups:
            task.cancel()
        if self.streams is not None:
            await self.streams.aclose()
        if self.manager is not None:
            await self.manager.stop()
        if self.provider is not None:
            await self.provider.aclose()
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

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "")
        if kind == "websocket":
            if self.streams is not None and path == self.settings.serve.stream_path:
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
