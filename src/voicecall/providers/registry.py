"""Provider names → factories. Adding Telnyx or Plivo is one entry here, no if/elif chains."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from voicecall.config import Settings
from voicecall.providers.base import Provider

ProviderFactory = Callable[[Settings, httpx.AsyncClient], Provider]


def _twilio(settings: Settings, http: httpx.AsyncClient) -> Provider:
    from voicecall.providers.twilio import TwilioProvider

    return TwilioProvider(settings, http)


def _mock(settings: Settings, http: httpx.AsyncClient) -> Provider:
    from voicecall.providers.mock import build_mock

    return build_mock(settings, http)


PROVIDERS: dict[str, ProviderFactory] = {"twilio": _twilio, "mock": _mock}


def build_provider(settings: Settings, http: httpx.AsyncClient) -> Provider:
    return PROVIDERS[settings.provider](settings, http)
