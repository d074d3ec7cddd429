"""What a voice session meets at its edges: the socket it writes to (:class:`Transport`), the
metrics hooks it calls (:class:`VoiceObserver`), and the two errors its callers see. Imported
from :mod:`voicecall.voice.session` as before."""

from __future__ import annotations

from typing import Protocol

from voicecall.errors import VoicecallError

__all__ = ["ChannelClosed", "SpeechQueueFull", "Transport", "VoiceObserver"]


class SpeechQueueFull(VoicecallError):
    """Too many utterances are already queued on this call (``streaming.max_queued_utterances``)."""

    http_status = 429


class ChannelClosed(VoicecallError):
    """The media stream of this call is gone."""

    http_status = 409


class Transport(Protocol):
    """The socket, as the session sees it (the endpoint implements it over ASGI)."""

    async def send_text(self, text: str) -> None: ...

    def send_text_nowait(self, text: str) -> bool:
        """Write ``text`` now if the socket can take it at once; ``False``: use ``send_text``."""
        ...

    def send_texts_nowait(self, texts: list[str]) -> bool:
        """Write all of ``texts`` now, in order (as one write), if the socket can take them at
        once; ``False``: nothing was written, use ``send_text``."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class VoiceObserver:
    """Hooks for metrics; every method is a no-op here (the endpoint overrides them)."""

    def frames_in(self, count: int) -> None:
        """Inbound media frames processed."""

    def frames_out(self, count: int) -> None:
        """Outbound media messages sent."""

    def lateness(self, seconds: float) -> None:
        """How late one outbound message was sent relative to its schedule."""

    def barge_in(self) -> None: ...

    def underrun(self, count: int) -> None: ...

    def malformed(self, reason: str) -> None: ...
