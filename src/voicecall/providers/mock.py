"""A provider that needs no network: it records what the manager asked for.

Used by unit tests of the manager and by ``provider = "mock"`` for trying the control API
without a telephony account. Its webhooks are JSON documents signed with HMAC-SHA256 of the body
under ``api.token`` (header ``x-mock-signature``), so even the mock refuses forged requests.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field

import httpx

from voicecall.calls.model import Direction, EndReason
from voicecall.config import Settings
from voicecall.errors import CallNotFound, WebhookRejected
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import (
    DialRequest,
    HttpRequest,
    ParsedWebhook,
    Provider,
    ProviderResponse,
    RemoteStatus,
    Reply,
    WebhookKind,
)

_KINDS = {k.value: k for k in EventKind}


@dataclass
class MockCall:
    sid: str
    request: DialRequest
    status: str = "queued"
    replies: list[Reply] = field(default_factory=list)


class MockProvider(Provider):
    name = "mock"
    signature_header = "x-mock-signature"
    webhook_media_type = "application/json"

    def __init__(self, secret: str = "mock-secret") -> None:  # noqa: S107 - a test double
        self._secret = secret.encode()
        self._ids = itertools.count(1)
        self.calls: dict[str, MockCall] = {}
        self.hangups: list[str] = []
        self.fail_next_initiate: Exception | None = None
        #: recordings it keeps (``DialRequest.record``), by sid: tests put WAV bytes here
        self.recordings: dict[str, bytes] = {}

    def sign(self, body: bytes) -> str:
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def verify_webhook(self, request: HttpRequest) -> None:
        given = request.headers.get(self.signature_header)
        if not given:
            raise WebhookRejected("missing x-mock-signature", http_status=401)
        if not hmac.compare_digest(given, self.sign(request.body)):
            raise WebhookRejected("invalid x-mock-signature", http_status=403)

    def parse_webhook(self, request: HttpRequest) -> ParsedWebhook:
        try:
            doc = json.loads(request.body)
            kind = WebhookKind(doc["kind"])
            sid = str(doc["call_sid"])
            events = tuple(
                CallEvent(
                    kind=_KINDS[e["kind"]],
                    dedupe_key=f"mock:{sid}:{e['key']}",
                    provider_call_id=sid,
                    call_id=doc.get("call_id"),
                    direction=Direction(doc.get("direction", "outbound")),
                    end_reason=EndReason(e["reason"]) if e.get("reason") else None,
                    transcript=e.get("transcript"),
                    turn=e.get("turn"),
                    sequence=e.get("sequence"),
                )
                for e in doc.get("events", [])
            )
            return ParsedWebhook(
                kind=kind,
                provider_call_id=sid,
                call_id=doc.get("call_id"),
                events=events,
                inbound=doc.get("direction") == "inbound",
                from_number=doc.get("from"),
                to_number=doc.get("to"),
                turn=doc.get("turn"),
                token=doc.get("token"),
                dial_status=doc.get("dial_status"),
                dial_call_sid=doc.get("dial_call_sid"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"malformed mock webhook ({exc})", http_status=400) from None

    def render(self, reply: Reply) -> ProviderResponse:
        doc = {
            "say": reply.say,
            "listen": None
            if reply.listen is None
            else {"turn": reply.listen.turn, "token": reply.listen.token},
            "hangup": reply.hangup,
            "reject": reply.reject,
            "hold": reply.hold_call_id is not None,
            "digits": reply.digits,
            "dial": None
            if reply.dial is None
            else {"to": reply.dial.to, "warm": reply.dial.whisper is not None},
        }
        return ProviderResponse(200, json.dumps(doc).encode(), "application/json")

    async def initiate(self, request: DialRequest) -> str:
        if self.fail_next_initiate is not None:
            exc, self.fail_next_initiate = self.fail_next_initiate, None
            raise exc
        sid = f"MOCK{next(self._ids):08d}"
        self.calls[sid] = MockCall(sid, request)
        return sid

    async def hangup(self, provider_call_id: str) -> bool:
        self.hangups.append(provider_call_id)
        call = self.calls.get(provider_call_id)
        if call is None or call.status in ("completed", "canceled"):
            return False
        call.status = "completed"
        return True

    async def redirect(self, provider_call_id: str, reply: Reply) -> None:
        call = self.calls.get(provider_call_id)
        if call is None:
            raise CallNotFound(f"no mock call {provider_call_id}", code=20404)
        call.replies.append(reply)

    async def fetch_status(self, provider_call_id: str) -> RemoteStatus:
        call = self.calls.get(provider_call_id)
        if call is None:
            raise CallNotFound(f"no mock call {provider_call_id}", code=20404)
        ended = {"completed": EndReason.COMPLETED, "canceled": EndReason.CANCELED}.get(call.status)
        return RemoteStatus(live=ended is None, end_reason=ended, raw_status=call.status)

    async def recording_audio(self, recording_sid: str) -> bytes:
        audio = self.recordings.get(recording_sid)
        if audio is None:
            raise CallNotFound(f"no mock recording {recording_sid}", code=20404)
        return audio

    async def delete_recording(self, recording_sid: str) -> bool:
        return self.recordings.pop(recording_sid, None) is not None


def build_mock(settings: Settings, http: httpx.AsyncClient) -> MockProvider:
    token = settings.api.token.get_secret_value() if settings.api.token else "mock-secret"
    return MockProvider(token)
