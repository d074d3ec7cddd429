"""``voicecall doctor``: what would stop calls from working, checked one by one."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from rich.console import Console

from voicecall.config import Settings
from voicecall.errors import ProviderAuthError, ProviderError


async def run_doctor(settings: Settings, out: Console) -> bool:
    ok = True

    def report(good: bool, what: str, hint: str = "") -> None:
        nonlocal ok
        ok = ok and good
        mark = "[green]ok[/green]  " if good else "[red]FAIL[/red]"
        out.print(f"{mark} {what}" + (f"\n       {hint}" if hint and not good else ""))

    report(True, f"config loaded (provider {settings.provider})")
    report(
        bool(settings.from_number), "from_number is set", "set from_number to your Twilio number"
    )
    url = settings.public_url
    if not url:
        report(False, "public_url is set", "Twilio must reach your webhooks: set public_url")
    else:
        parts = urlsplit(url)
        report(
            parts.scheme == "https",
            "public_url uses https",
            "Twilio requires https for webhooks and wss for media streams",
        )
        report(
            parts.port is None or parts.port == 443,
            "public_url has no explicit port",
            "Twilio signs https URLs without the port; put the service behind :443",
        )
        report(
            parts.path in ("", "/"),
            "public_url is an origin (no path)",
            "the webhook path comes from serve.webhook_path",
        )
    if settings.provider == "twilio":
        sid, token = settings.twilio.account_sid, settings.twilio.auth_token
        report(
            bool(sid and token),
            "Twilio credentials are set",
            "set twilio.account_sid and twilio.auth_token (or TWILIO_* env vars)",
        )
        if sid and token:
            from voicecall.twilio.rest import TwilioRest

            async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
                rest = TwilioRest(
                    http, account_sid=sid, auth_token=token, base_url=settings.twilio.api_base_url
                )
                try:
                    await rest.list_calls(page_size=1)
                    report(
                        True, f"Twilio accepted the credentials ({settings.twilio.api_base_url})"
                    )
                except ProviderAuthError:
                    report(
                        False,
                        "Twilio accepted the credentials",
                        "the account sid or token is wrong",
                    )
                except ProviderError as exc:
                    report(False, "Twilio API reachable", str(exc))
    if settings.serve.trusted_proxies:
        out.print(
            f"     X-Forwarded-* believed only from {', '.join(settings.serve.trusted_proxies)}"
        )
    report(
        settings.api.token is not None or settings.serve.bind in ("127.0.0.1", "localhost", "::1"),
        "control API is protected",
        "set api.token before binding beyond loopback",
    )
    return ok
