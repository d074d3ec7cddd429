"""The Twilio provider: glue from the manager's provider interface to ``voicecall.twilio.*``.

Pure wire work (signatures, webhook parsing, TwiML) lives in ``voicecall.twilio``; this module
only decides which of those to use and performs REST calls through :class:`TwilioRest`.
"""

from __future__ import annotations

import math

import httpx

from voicecall.calls.model import EndReason
from voicecall.config import Settings
from voicecall.errors import ConfigError, WebhookRejected
from voicecall.providers.base import (
    DialOut,
    DialRequest,
    HttpRequest,
    ParsedWebhook,
    Provider,
    ProviderResponse,
    RecordingInfo,
    RemoteStatus,
    Reply,
    WebhookKind,
)
from voicecall.twilio import twiml
from voicecall.twilio.rest import MAX_TWIML_CHARS, TwilioRest
from voicecall.twilio.signature import SIGNATURE_HEADER, VerifyReason, verify_signature
from voicecall.twilio.webhooks import (
    CallDirection,
    WebhookRequest,
    build_webhook_url,
    parse_form,
    parse_query,
    parse_webhook,
    to_events,
)
from voicecall.twilio.webhooks import WebhookKind as TwilioKind

# Twilio call status → how the call ended (None: still live)
_ENDED: dict[str, EndReason] = {
    "completed": EndReason.COMPLETED,
    "busy": EndReason.BUSY,
    "no-answer": EndReason.NO_ANSWER,
    "failed": EndReason.FAILED,
    "canceled": EndReason.CANCELED,
}

_KIND = {
    TwilioKind.VOICE: WebhookKind.VOICE,
    TwilioKind.STATUS: WebhookKind.STATUS,
    TwilioKind.GATHER: WebhookKind.GATHER,
    TwilioKind.HOLD: WebhookKind.HOLD,
    TwilioKind.PARTIAL: WebhookKind.PARTIAL,
    TwilioKind.LINE: WebhookKind.LINE,
    TwilioKind.AMD: WebhookKind.AMD,
    TwilioKind.RECORDING: WebhookKind.RECORDING,
    TwilioKind.WHISPER: WebhookKind.WHISPER,
    TwilioKind.DIAL: WebhookKind.DIAL,
}

HOLD_PAUSE_SECONDS = 20

_EMPTY_REPLY = Reply()
# what twiml_for(Reply()) renders: an empty <Response/> (pinned by a test)
_EMPTY_RESPONSE = ProviderResponse(200, twiml.Response().to_xml().encode())


class TwilioProvider(Provider):
    name = "twilio"
    signature_header = SIGNATURE_HEADER
    webhook_media_type = "application/x-www-form-urlencoded"
    reports_lines_heard = True  # <Say> then <Redirect> to kind=hold with the line's seq

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        problems = []
        if not settings.twilio.account_sid:
            problems.append("twilio.account_sid: required (or set TWILIO_ACCOUNT_SID)")
        if settings.twilio.auth_token is None:
            problems.append("twilio.auth_token: required (or set TWILIO_AUTH_TOKEN)")
        if not settings.webhook_url:
            problems.append("public_url: required so the provider can reach the webhooks")
        if problems:
            raise ConfigError(problems)
        assert settings.twilio.account_sid and settings.twilio.auth_token and settings.webhook_url
        self._settings = settings
        self._token = settings.twilio.auth_token
        self._webhook_url = settings.webhook_url
        assert settings.stream_url is not None
        self._stream_url = settings.stream_url
        self.rest = TwilioRest(
            http,
            account_sid=settings.twilio.account_sid,
            auth_token=settings.twilio.auth_token,
            base_url=settings.twilio.api_base_url,
            timeout=httpx.Timeout(settings.twilio.request_timeout_seconds, connect=5.0),
        )

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, request: HttpRequest) -> None:
        self._verify(request, parse_form(request.body))

    def _verify(self, request: HttpRequest, form: tuple[tuple[str, str], ...]) -> None:
        signature = request.headers.get(SIGNATURE_HEADER)
        result = verify_signature(request.url, form, signature, self._token)
        if result.reason is VerifyReason.MISSING:
            raise WebhookRejected("missing X-Twilio-Signature", http_status=401)
        if not result.ok:
            raise WebhookRejected("invalid X-Twilio-Signature", http_status=403)

    def parse_webhook(self, request: HttpRequest) -> ParsedWebhook:
        return self._parse(request, parse_form(request.body))

    def read_webhook(self, request: HttpRequest) -> ParsedWebhook:
        form = parse_form(request.body)  # parsed once, verified, then interpreted
        self._verify(request, form)
        return self._parse(request, form)

    def _parse(self, request: HttpRequest, form: tuple[tuple[str, str], ...]) -> ParsedWebhook:
        parsed = parse_webhook(parse_query(request.query_string), form)
        return ParsedWebhook(
            kind=_KIND[parsed.kind],
            provider_call_id=parsed.call_sid,
            call_id=parsed.call_id,
            events=tuple(to_events(parsed)),
            inbound=parsed.direction is CallDirection.INBOUND,
            from_number=parsed.from_,
            to_number=parsed.to,
            turn=parsed.turn,
            token=parsed.turn_token,
            answered_by=parsed.answered_by,
            line_seq=parsed.line_seq,
            then=parsed.then,
            recording=_recording(parsed),
            dial_status=parsed.dial_call_status,
            dial_call_sid=parsed.dial_call_sid,
        )

    def render(self, reply: Reply) -> ProviderResponse:
        if reply == _EMPTY_REPLY:  # every status callback: render it once
            return _EMPTY_RESPONSE
        return ProviderResponse(200, self.twiml_for(reply).encode())

    def twiml_for(self, reply: Reply) -> str:
        verbs: list[twiml.Verb] = []
        voice = twiml.voice_for(reply.voice)
        if reply.reject:
            return twiml.Response(twiml.Reject()).to_xml()
        if reply.dial is not None:
            return twiml.Response(self._dial(reply.dial)).to_xml()
        if reply.digits:
            verbs.append(twiml.PlayDigits(reply.digits))
        if reply.stream_token is not None and reply.stream_call_id is not None:
            # the token rides in a <Parameter>: Twilio drops query strings from stream URLs.
            # When the stream ends, the <Redirect> asks us what next (a reconnect or hang-up).
            stream = twiml.Stream(
                self._stream_url, parameters=(twiml.Parameter("token", reply.stream_token),)
            )
            return twiml.Response(
                twiml.Connect(stream), self._hold_redirect(reply.stream_call_id)
            ).to_xml()
        if reply.say and not reply.listen:
            verbs.append(twiml.Say(reply.say, voice=voice, language=reply.language))
        if reply.pause_after_seconds >= 1:
            verbs.append(twiml.Pause(min(600, math.ceil(reply.pause_after_seconds))))
        if reply.listen is not None:
            listen = reply.listen
            action = build_webhook_url(
                self._webhook_url,
                call_id=listen.call_id,
                kind="gather",
                turn=listen.turn,
                token=listen.token,
            )
            partial = build_webhook_url(
                self._webhook_url,
                call_id=listen.call_id,
                kind="partial",
                turn=listen.turn,
                token=listen.token,
            )
            children: tuple[twiml.Say, ...] = ()
            if reply.say:
                children = (twiml.Say(reply.say, voice=voice, language=reply.language),)
            verbs.append(
                twiml.Gather(
                    input="speech",
                    action=action,
                    method="POST",
                    speech_timeout="auto",
                    timeout=listen.timeout_seconds,
                    language=reply.language,
                    children=children,
                    partial_result_callback=partial,
                )
            )
            verbs.append(self._hold_redirect(listen.call_id))
        elif reply.hangup:
            verbs.append(twiml.Hangup())
        elif reply.hold_call_id is not None and reply.say and reply.line is not None:
            # a stored line: the call asks for the hold right after it, which tells us it was
            # heard (a line update waiting behind it goes then: calls/lineorder.py)
            verbs.append(self._hold_redirect(reply.hold_call_id, seq=reply.line[1]))
        elif reply.hold_call_id is not None:
            verbs.append(twiml.Pause(HOLD_PAUSE_SECONDS))
            verbs.append(self._hold_redirect(reply.hold_call_id))
        return twiml.Response(*verbs).to_xml()

    def _dial(self, dial: DialOut) -> twiml.Dial:
        """A transfer: cold (just the number) or warm (whisper URL and action, both signed
        routing to this call's transfer)."""
        if dial.whisper is None:
            return twiml.Dial(
                twiml.Number(dial.to), caller_id=dial.caller_id, timeout=dial.timeout_seconds
            )
        call_id, seq, token = dial.whisper
        whisper = build_webhook_url(
            self._webhook_url, call_id=call_id, kind="whisper", turn=seq, token=token
        )
        action = build_webhook_url(
            self._webhook_url, call_id=call_id, kind="dial", turn=seq, token=token
        )
        return twiml.Dial(
            twiml.Number(dial.to, url=whisper),
            caller_id=dial.caller_id,
            action=action,
            timeout=dial.timeout_seconds,
        )

    def _hold_redirect(self, call_id: str, *, seq: int | None = None) -> twiml.Redirect:
        url = build_webhook_url(self._webhook_url, call_id=call_id, kind="hold", seq=seq)
        return twiml.Redirect(url, method="POST")

    # ------------------------------------------------------------------ REST

    async def initiate(self, request: DialRequest) -> str:
        url = build_webhook_url(self._webhook_url, call_id=request.call_id, kind="voice")
        status = build_webhook_url(self._webhook_url, call_id=request.call_id, kind="status")
        amd = None
        if request.machine_detection is not None:
            amd = build_webhook_url(self._webhook_url, call_id=request.call_id, kind="amd")
        recording = (
            build_webhook_url(self._webhook_url, call_id=request.call_id, kind="recording")
            if request.record
            else None
        )
        call = await self.rest.create_call(
            to=request.to,
            from_=request.from_,
            url=url,
            status_callback=status,
            timeout=request.ring_timeout_seconds,
            time_limit=request.time_limit_seconds,
            machine_detection=request.machine_detection,
            async_amd_callback=amd,
            recording_status_callback=recording,
        )
        return call.sid

    async def hangup(self, provider_call_id: str) -> bool:
        return await self.rest.hangup(provider_call_id)

    async def redirect(self, provider_call_id: str, reply: Reply) -> None:
        markup = self.twiml_for(reply)
        if len(markup) <= MAX_TWIML_CHARS:
            await self.rest.redirect(provider_call_id, twiml=markup)
            return
        if reply.line is None:
            raise ValueError(f"TwiML of {len(markup)} characters needs a stored line to fetch")
        # Twilio's Twiml parameter holds 4,000 characters: let the call fetch the line instead
        call_id, seq = reply.line
        then = "listen" if reply.listen else "hangup" if reply.hangup else "hold"
        url = build_webhook_url(self._webhook_url, call_id=call_id, kind="line", seq=seq, then=then)
        await self.rest.redirect(provider_call_id, url=url)

    async def recording_audio(self, recording_sid: str) -> bytes:
        return await self.rest.recording_media(recording_sid)

    async def delete_recording(self, recording_sid: str) -> bool:
        return await self.rest.delete_recording(recording_sid)

    async def fetch_status(self, provider_call_id: str) -> RemoteStatus:
        call = await self.rest.fetch(provider_call_id)
        reason = _ENDED.get(call.status)
        return RemoteStatus(
            live=reason is None,
            end_reason=reason,
            answered=call.status == "in-progress" or (call.duration or 0) > 0,
            raw_status=call.status,
        )


def _recording(parsed: WebhookRequest) -> RecordingInfo | None:
    """A recording status callback's facts, with their dedupe key (signed fields only)."""
    if parsed.kind is not TwilioKind.RECORDING or parsed.recording_sid is None:
        return None
    status = parsed.recording_status or ""
    return RecordingInfo(
        sid=parsed.recording_sid,
        status=status,
        dedupe_key=f"twilio:{parsed.call_sid}:recording:{parsed.recording_sid}:{status}",
        url=parsed.recording_url or None,
        duration_seconds=(
            None if parsed.recording_duration is None else float(parsed.recording_duration)
        ),
        channels=parsed.recording_channels,
    )
