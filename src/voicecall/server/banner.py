"""The start-up banner: what this server will do, in one log record.

:func:`banner_details` is pure (settings and what start-up built in, an ordered mapping out),
so the banner is tested without a server. The human log shows it as indented lines under
"voicecall ready"; the JSON log carries it as the record's ``details`` object. Secrets never
appear: credentials are not listed, a PostgreSQL URL is reduced to host, port and database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from voicecall.config import Settings
from voicecall.netaddr import is_loopback
from voicecall.voice.settings import streaming_problems

__all__ = ["banner_details", "store_display"]


def store_display(url: str) -> str:
    """The store URL without credentials (``postgresql://host:port/db``)."""
    if url.startswith(("postgresql://", "postgres://")):
        from voicecall.calls.store.postgres import redact_url

        return redact_url(url)
    return url


def _provider(settings: Settings) -> str:
    if settings.provider == "mock":
        return "mock (no network)"
    base = settings.twilio.api_base_url
    host = urlsplit(base).hostname or ""
    where = f"the local emulator at {base}" if is_loopback(host) else base
    sid = settings.twilio.account_sid or "no account sid"
    return f"twilio via {where} (account {sid})"


def _public_url(settings: Settings) -> str:
    if not settings.public_url:
        return "not set: the provider cannot reach the webhooks"
    return (
        f"{settings.public_url} (webhooks {settings.serve.webhook_path}, "
        f"streams {settings.serve.stream_path})"
    )


def _speech(
    settings: Settings, streaming: bool, tts: str | None, stt: str | None, vad: str
) -> dict[str, str]:
    if streaming:
        why = "on (Media Streams)"
        return {
            "streaming": why,
            "tts": tts or "?",
            "stt": stt or "none (the caller is not transcribed)",
            "vad": vad,
        }
    problems = streaming_problems(settings) or ["the stream endpoint could not be built"]
    return {
        "streaming": "off: " + "; ".join(problems),
        "tts": "TwiML <Say>",
        "stt": "TwiML <Gather input=speech>",
    }


def _responder(settings: Settings, active: bool) -> str:
    cfg = settings.responder
    if cfg.kind == "none":
        return "none (agents answer each turn with `continue`)"
    if cfg.kind == "chat":
        text = f"chat: {cfg.model} at {cfg.base_url}"
    elif cfg.kind == "hook":
        text = f"hook: {cfg.hook}"
    else:
        text = "scripted (the built-in demo bot)"
    return text if active else text + " (not started)"


def _inbound(settings: Settings) -> str:
    policy = settings.inbound_policy.value
    if policy == "allowlist":
        n = len(settings.allow_from)
        return f"allowlist ({n} number{'s' if n != 1 else ''})"
    return policy


def _outbound(settings: Settings) -> str:
    parts = [f"from {settings.from_number or 'not set'}"]
    if settings.to_number:
        parts.append(f"default callee {settings.to_number}")
    for key, value in settings.outbound.model_dump(mode="json").items():
        parts.append(f"{key}={value}")
    parts.append(f"max_concurrent_calls={settings.max_concurrent_calls}")
    parts.append(f"max_duration_seconds={settings.max_duration_seconds:g}")
    parts.append(f"ring_timeout_seconds={settings.ring_timeout_seconds}")
    return ", ".join(parts)


def banner_details(
    settings: Settings,
    *,
    control_url: str,
    streaming: bool,
    tts: str | None = None,
    stt: str | None = None,
    responder_active: bool = True,
) -> Mapping[str, Any]:
    """The banner's lines, in order: provider, public URL, control API, store, streaming,
    TTS/STT/VAD, responder, inbound policy, outbound settings."""
    details: dict[str, Any] = {
        "provider": _provider(settings),
        "public_url": _public_url(settings),
        "control_api": control_url
        + (" (bearer token required)" if settings.api.token else " (no token)"),
        "store": store_display(settings.store.url),
    }
    details.update(_speech(settings, streaming, tts, stt, settings.vad.engine))
    details["responder"] = _responder(settings, responder_active)
    details["inbound"] = _inbound(settings)
    details["outbound"] = _outbound(settings)
    return details
