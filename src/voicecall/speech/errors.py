"""Errors of the speech services (TTS and STT), split by who is at fault.

::

    VoicecallError
    └── SpeechError                     a speech engine or service failed (base)
        ├── SpeechAuthError             the service rejected the API key (HTTP 401/403, close 3000)
        ├── SpeechRequestRejected       the service refused the request as malformed (other 4xx)
        ├── SpeechUnavailable           5xx, 429, connection failure, timeout; retryable
        ├── SpeechProtocolError         the service sent something we cannot parse
        └── SpeechEngineMissing         a local engine or optional extra is not installed

Messages never carry API keys: providers build them from status codes and the service's own
error text, which is truncated and never echoes request headers.
"""

from __future__ import annotations

from voicecall.errors import VoicecallError

__all__ = [
    "SpeechAuthError",
    "SpeechEngineMissing",
    "SpeechError",
    "SpeechProtocolError",
    "SpeechRequestRejected",
    "SpeechUnavailable",
]

_MAX_DETAIL = 200


class SpeechError(VoicecallError):
    """A speech engine or service failed. ``provider`` names it (``"openai"``, ``"deepgram"`` …)."""

    http_status = 502
    retryable: bool = False

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status


class SpeechAuthError(SpeechError):
    """The service rejected the credentials: fix the key, retrying will not help."""


class SpeechRequestRejected(SpeechError):
    """The service refused the request (bad model, voice, text too long …)."""


class SpeechUnavailable(SpeechError):
    """The service is down, overloaded or unreachable; retrying later may work."""

    retryable = True


class SpeechProtocolError(SpeechError):
    """The service sent a message we cannot make sense of."""


class SpeechEngineMissing(SpeechError):
    """A local engine or optional extra is not installed; the message says what to install."""

    http_status = 500


def clip_detail(text: str) -> str:
    """A service's error text, shortened to one line for messages and logs."""
    one_line = " ".join(text.split())
    if len(one_line) > _MAX_DETAIL:
        return one_line[: _MAX_DETAIL - 1] + "…"
    return one_line


def error_for_status(provider: str, status: int, detail: str = "") -> SpeechError:
    """The error for a non-2xx HTTP answer (or a refused WebSocket upgrade) from a service."""
    if status in (401, 403):
        # never echo the service's text here: OpenAI's repeats part of the key
        return SpeechAuthError(
            f"API key rejected (HTTP {status})", provider=provider, status=status
        )
    suffix = f": {clip_detail(detail)}" if detail else ""
    if status == 429 or status >= 500:
        return SpeechUnavailable(f"HTTP {status}{suffix}", provider=provider, status=status)
    return SpeechRequestRejected(f"HTTP {status}{suffix}", provider=provider, status=status)
