"""The webhook endpoint: a lean raw-ASGI handler (it is the hot path).

Order of checks, cheapest first, so unauthenticated clients cost almost nothing:
method (POST only) → signature header present (else 401, body never read) → declared size
(413) → body read with a size cap and a deadline (413 / 408) → signature over the public URL
(403) → parse (400) → the manager applies it and persists (a store failure → 503 so the
provider retries) → the provider's markup (200).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from voicecall.calls.manager import CallManager
from voicecall.config import Settings
from voicecall.errors import StoreError, WebhookRejected
from voicecall.providers.base import HttpRequest, Provider, ProviderResponse
from voicecall.server.metrics import Metrics
from voicecall.telephony.service import WEBHOOK_KINDS as TELEPHONY_KINDS
from voicecall.telephony.service import telephony_for
from voicecall.twilio.signature import rebuild_public_url

log = logging.getLogger("voicecall.webhooks")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
BODY_READ_TIMEOUT_SECONDS = 10.0


@dataclass(slots=True)
class WebhookEndpoint:
    settings: Settings
    provider: Provider
    manager: CallManager
    metrics: Metrics
    max_body_bytes: int = MAX_BODY_BYTES
    read_timeout_seconds: float = BODY_READ_TIMEOUT_SECONDS
    # per-request savings on the hot path: the labelled counters looked up once per
    # (kind, outcome), and the response headers of the last (usually the same) provider answer
    _counters: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False)
    _last_response: ProviderResponse | None = field(default=None, init=False, repr=False)
    _last_headers: tuple[tuple[bytes, bytes], ...] = field(default=(), init=False, repr=False)

    def _count(self, kind: str, outcome: str) -> None:
        counter = self._counters.get((kind, outcome))
        if counter is None:
            counter = self._counters[(kind, outcome)] = self.metrics.webhooks.labels(kind, outcome)
        counter.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        kind = "unknown"
        if scope["method"] != "POST":
            await _respond(send, 405, b"method not allowed\n", extra=[(b"allow", b"POST")])
            self._count(kind, "rejected_method")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not headers.get(self.provider.signature_header):
            await _respond(send, 401, b"missing signature\n")
            self._count(kind, "rejected_unsigned")
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _respond(send, 413, b"body too large\n")
            self._count(kind, "rejected_size")
            return
        try:
            async with asyncio.timeout(self.read_timeout_seconds):
                body = await _read_body(receive, self.max_body_bytes)
        except _TooLarge:
            await _respond(send, 413, b"body too large\n")
            self._count(kind, "rejected_size")
            return
        except TimeoutError:
            await _respond(send, 408, b"request body timed out\n")
            self._count(kind, "rejected_timeout")
            return
        except _Disconnected:
            return
        raw_query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        url = rebuild_public_url(
            public_url=self.settings.public_url,
            path=scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0],
            query_string=raw_query,
            headers=headers,
            client_host=client[0] if client else None,
            trusted_proxies=self.settings.serve.trusted_proxies,
            scheme=scope.get("scheme", "http"),
            host_header=headers.get("host"),
        )
        request = HttpRequest(
            method="POST",
            url=url,
            query_string=raw_query,
            headers=headers,
            body=body,
        )
        try:
            parsed = self.provider.read_webhook(request)
        except WebhookRejected as exc:
            outcome = {401: "rejected_unsigned", 403: "rejected_signature"}.get(
                exc.http_status, "rejected_malformed"
            )
            self._count(kind, outcome)
            log.warning("webhook refused (%s): %s", exc.http_status, exc.message)
            await _respond(send, exc.http_status, (exc.message + "\n").encode())
            return
        kind = parsed.kind.value
        try:
            if parsed.kind in TELEPHONY_KINDS:  # a transfer's whisper or dial result
                reply = await telephony_for(self.manager).handle_webhook(parsed)
            else:
                reply = await self.manager.handle_webhook(parsed)
        except StoreError as exc:
            log.error("webhook not persisted, asking the provider to retry: %s", exc)
            self._count(kind, "store_error")
            await _respond(send, 503, b"temporarily unable to store the event\n")
            return
        response = self.provider.render(reply)
        if response is not self._last_response:
            self._last_headers = tuple(_headers(response.body, response.content_type.encode()))
            self._last_response = response
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._last_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        self._count(kind, "ok")
        self.metrics.webhook_seconds.observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = _headers(body, content_type)
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(body: bytes, content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
