"""The webhook endpoint: a lean raw-ASGI handler (it is the hot path).

Order of checks, cheapest first, so unauthenticated clients cost almost nothing:
method (POST only) → signature header present (else 401, body never read) → the provider's
media type (Twilio: ``application/x-www-form-urlencoded``, optionally ``; charset=utf-8``; else
415, body never read, nothing applied) → declared size (413) → body read with a size cap and
a deadline (413 / 408) → signature over the public URL
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
from voicecall.providers.base import HttpRequest, Provider, ProviderResponse, WebhookKind
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
    # the last Content-Type value found acceptable (senders repeat theirs exactly)
    _accepted_type: str | None = field(default=None, init=False, repr=False)

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
        content_type = headers.get("content-type")
        if content_type is None or content_type != self._accepted_type:
            if not media_type_is(content_type, self.provider.webhook_media_type):
                await _respond(send, 415, b"unsupported media type\n")
                self._count(kind, "rejected_media_type")
                return
            self._accepted_type = content_type
        declared = headers.get("content-length")
        if declared is not None and (
            not (declared.isascii() and declared.isdigit()) or int(declared) > self.max_body_bytes
        ):
            await _respond(send, 413, b"body too large\n")
            self._count(kind, "rejected_size")
            return
        # the body deadline: one timer handle (asyncio.timeout's bookkeeping cost more than
        # reading a callback's body, which has almost always arrived with its headers)
        deadline = _Deadline(asyncio.current_task())
        timer = asyncio.get_running_loop().call_later(self.read_timeout_seconds, deadline.fire)
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except _TooLarge:
            await _respond(send, 413, b"body too large\n")
            self._count(kind, "rejected_size")
            return
        except asyncio.CancelledError:
            if not deadline.fired:
                raise
            if deadline.task is not None:
                deadline.task.uncancel()
            await _respond(send, 408, b"request body timed out\n")
            self._count(kind, "rejected_timeout")
            return
        except _Disconnected:
            return
        finally:
            timer.cancel()
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
            if parsed.kind is WebhookKind.RECORDING:  # beside the call's lifecycle
                reply = await self.manager.recordings.handle_webhook(parsed)
            elif parsed.kind in TELEPHONY_KINDS:  # a transfer's whisper or dial result
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


_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})


def media_type_is(content_type: str | None, expected: str) -> bool:
    """``content_type`` names the media type ``expected`` (case-insensitive), with no charset
    but UTF-8 (or its subset US-ASCII); other parameters are ignored. Pure."""
    if content_type is None:
        return False
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != expected:
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _CHARSETS:
            return False
    return True


class _Deadline:
    """Cancels the request's task when the body takes too long (and says it did)."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.fired = False

    def fire(self) -> None:
        if self.task is not None and not self.task.done():
            self.fired = True
            self.task.cancel()


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
