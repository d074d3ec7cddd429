"""A TwilioProvider on test settings (public_url https://voice.example.com), no network."""

from __future__ import annotations

import httpx

from voicecall.config import load_config
from voicecall.providers.twilio import TwilioProvider


def provider() -> TwilioProvider:
    settings = load_config(
        env={},
        overrides={
            "public_url": "https://voice.example.com",
            "twilio": {"account_sid": "AC" + "1" * 32, "auth_token": "t0ken"},
        },
    )
    return TwilioProvider(settings, httpx.AsyncClient())
