"""Why a server must not start with these settings, found before anything binds or opens.

``voicecall serve`` and ``voicecall dev`` print these one line each and exit 2, instead of
starting, failing in the lifespan and leaving a traceback (a chat responder without a key, a
cloud TTS without one, a public bind without a token). ``voicecall doctor`` goes further
(reachability, models, numbers) and never refuses to run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from voicecall.config import Settings
from voicecall.errors import ConfigError
from voicecall.netaddr import is_loopback

__all__ = ["preflight_problems", "secrets_of", "serve_problems"]


def serve_problems(settings: Settings) -> list[str]:
    """Reasons the server must not start with these settings (no I/O)."""
    problems = []
    if not is_loopback(settings.serve.bind) and settings.api.token is None:
        problems.append(
            f"serve.bind: {settings.serve.bind} is reachable from other machines; "
            "set api.token (VOICECALL_API__TOKEN) first"
        )
    if settings.provider == "twilio":
        if not settings.twilio.account_sid:
            problems.append("twilio.account_sid: required (or set TWILIO_ACCOUNT_SID)")
        if settings.twilio.auth_token is None:
            problems.append("twilio.auth_token: required (or set TWILIO_AUTH_TOKEN)")
        if not settings.public_url:
            problems.append("public_url: required (the https origin Twilio can reach)")
    return problems


async def _build_problems(settings: Settings) -> list[str]:
    from voicecall.agent.responder import ResponderConfig, responder_from_settings
    from voicecall.speech.registry import build_stt, build_tts
    from voicecall.voice.settings import streaming_available, stt_config, tts_config

    problems: list[str] = []
    cfg = settings.responder
    async with httpx.AsyncClient() as http:
        try:
            responder_from_settings(
                ResponderConfig(
                    kind=cfg.kind,
                    base_url=cfg.base_url,
                    model=cfg.model,
                    api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
                    hook=cfg.hook,
                    timeout_s=cfg.timeout_seconds,
                ),
                http=http,
            )
        except ConfigError as exc:
            problems.extend(exc.problems)
        if streaming_available(settings):
            built: list[Any] = []
            try:
                built.append(build_tts(tts_config(settings), http=http))
            except ConfigError as exc:
                problems.extend(exc.problems)
            try:
                built.append(build_stt(stt_config(settings)))
            except ConfigError as exc:
                problems.extend(exc.problems)
            for provider in built:
                close = getattr(provider, "aclose", None)
                if close is not None:
                    await close()
    return problems


def preflight_problems(settings: Settings) -> list[str]:
    """:func:`serve_problems` plus what the server's start-up would fail on: the responder
    (missing key, a hook that does not import) and the speech providers streaming would use."""
    return serve_problems(settings) + asyncio.run(_build_problems(settings))


def secrets_of(value: Any) -> list[str]:
    """Every secret (``SecretStr``) value in a settings model, for log redaction."""
    from pydantic import BaseModel, SecretStr

    found: list[str] = []
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if secret:
            found.append(secret)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found.extend(secrets_of(getattr(value, name)))
    return found
