"""Text an agent asks the bot to speak: checked once, the same way on every path."""

from __future__ import annotations

from voicecall.errors import InvalidRequest

MAX_MESSAGE_CHARS = 4000


def check_message(message: str | None, *, field: str = "message") -> str:
    """``message`` stripped; :class:`InvalidRequest` (422) if empty or too long."""
    text = (message or "").strip()
    if not text:
        raise InvalidRequest(f"{field}: must not be empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidRequest(f"{field}: longer than {MAX_MESSAGE_CHARS} characters")
    return text
