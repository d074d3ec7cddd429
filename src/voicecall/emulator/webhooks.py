"""Sending webhooks the way Twilio does (the I/O edge; signing and encoding are pure elsewhere).

One shared ``httpx.AsyncClient``: 5 s to connect, 15 s for the whole exchange. A delivery is
retried once on connect failure or timeout (Twilio's default); URL fragments tune that per URL
like Twilio's connection overrides: ``#rc=2&rp=all&ct=1000&rt=3000&tt=8000`` (``rc`` retries
0-5, ``rp`` policy from ``4xx,5xx,ct,rt,all``, timeouts in ms). Fragments are never sent or signed.
Every attempt of one delivery carries the same ``I-Twilio-Idempotency-Token`` and signature.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx

from voicecall.emulator.forms import Params, encode_form
from voicecall.emulator.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    new_idempotency_token,
    sign_form_request,
)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "USER_AGENT",
    "Attempt",
    "Delivery",
    "PreparedRequest",
    "RetryPolicy",
    "WebhookSender",
    "prepare_request",
]

USER_AGENT = "TwilioProxy/1.1 (voicecall-emulator)"
MAX_RESPONSE_BYTES = 256 * 1024
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 1
    on: frozenset[str] = frozenset({"ct", "rt"})
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = TOTAL_TIMEOUT
    total_timeout: float = TOTAL_TIMEOUT

    @classmethod
    def from_fragment(cls, fragment: str) -> RetryPolicy:
        """Parse Twilio's connection-override fragment; bad values are ignored."""
        policy = cls()
        retries, on = policy.retries, set(policy.on)
        ct, rt, tt = policy.connect_timeout, policy.read_timeout, policy.total_timeout
        for key, value in parse_qsl(fragment, keep_blank_values=True):
            try:
                if key == "rc":
                    retries = max(0, min(5, int(value)))
                elif key == "rp":
                    parts = {p.strip() for p in value.split(",") if p.strip()}
                    if "all" in parts:
                        parts = {"4xx", "5xx", "ct", "rt"}
                    on = parts & {"4xx", "5xx", "ct", "rt"}
                elif key == "ct":
                    ct = max(0.1, min(10.0, int(value) / 1000.0))
                elif key == "rt":
                    rt = max(0.1, min(15.0, int(value) / 1000.0))
                elif key == "tt":
                    tt = max(0.1, min(15.0, int(value) / 1000.0))
            except ValueError:
                continue
        return cls(retries, frozenset(on), ct, rt, tt)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """Everything that goes on the wire for one delivery (shared by its retries/duplicates)."""

    method: str
    url: str  # as requested (no fragment; GET carries the params in the query)
    body: bytes | None
    headers: tuple[tuple[str, str], ...]
    params: Params
    policy: RetryPolicy

    @property
    def idempotency_token(self) -> str:
        return dict(self.headers)[IDEMPOTENCY_HEADER]

    @property
    def signature(self) -> str:
        return dict(self.headers)[SIGNATURE_HEADER]


def prepare_request(
    auth_token: str, method: str, url: str, params: Params, *, token: str | None = None
) -> PreparedRequest:
    """Encode, sign and add headers (pure apart from drawing a fresh idempotency token)."""
    base, _, fragment = url.partition("#")
    policy = RetryPolicy.from_fragment(fragment)
    method = method.upper()
    headers = [
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
        (IDEMPOTENCY_HEADER, token or new_idempotency_token()),
    ]
    if method == "GET":
        query = encode_form(params)
        request_url = base + (("&" if "?" in base else "?") + query if query else "")
        body = None
        signature = sign_form_request(auth_token, request_url, ())
    else:
        request_url = base
        body = encode_form(params).encode("ascii")
        headers.append(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
        signature = sign_form_request(auth_token, request_url, params)
    headers.append((SIGNATURE_HEADER, signature))
    return PreparedRequest(method, request_url, body, tuple(headers), params, policy)


@dataclass(slots=True)
class Attempt:
    number: int
    status_code: int | None
    latency_ms: float
    error: str | None = None


@dataclass(slots=True)
class Delivery:
    request: PreparedRequest
    attempts: list[Attempt] = field(default_factory=list)
    status_code: int | None = None
    body: bytes = b""
    error: str | None = None  # set when no HTTP response was obtained (after retries)


class WebhookSender:
    """Delivers prepared requests with one shared client."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._own = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
            trust_env=False,
            # no pool cap: a queue of >100 waiting webhooks made httpx's pool scheduling
            # quadratic under load (like Twilio, every webhook gets its own request)
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )

    async def aclose(self) -> None:
        if self._own:
            await self.client.aclose()

    async def _once(self, req: PreparedRequest) -> tuple[int, bytes]:
        p = req.policy
        timeout = httpx.Timeout(p.read_timeout, connect=p.connect_timeout)
        async with asyncio.timeout(p.total_timeout):
            async with self.client.stream(
                req.method, req.url, content=req.body, headers=list(req.headers), timeout=timeout
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        break
                    chunks.append(chunk)
                return resp.status_code, b"".join(chunks)

    async def deliver(self, req: PreparedRequest) -> Delivery:
        result = Delivery(req)
        policy = req.policy
        for number in range(1, policy.retries + 2):
            t0 = time.perf_counter()
            kind: str | None = None
            try:
                status, body = await self._once(req)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                kind, error = "ct", f"connect failure: {type(exc).__name__}"
            except (TimeoutError, httpx.TimeoutException) as exc:
                kind, error = "rt", f"timeout: {type(exc).__name__}"
            except httpx.HTTPError as exc:
                kind, error = "ct", f"connect failure: {type(exc).__name__}: {exc}"
            latency = (time.perf_counter() - t0) * 1000.0
            if kind is not None:
                result.attempts.append(Attempt(number, None, latency, error))
                result.error = error
                result.status_code = None
                if kind in policy.on:
                    continue
                return result
            result.attempts.append(Attempt(number, status, latency))
            result.status_code, result.body, result.error = status, body, None
            retry_class = "4xx" if 400 <= status < 500 else "5xx" if status >= 500 else None
            if retry_class is not None and retry_class in policy.on:
                continue
            return result
        return result
