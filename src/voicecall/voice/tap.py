"""What a call's stream pipeline tells a listener beside it (the recorder): every caller media
frame, every bot chunk as it is sent, each ``clear``, and the stream's start and end.

Called on the audio path: implementations must be cheap and must never raise (a failing tap
stops itself; the call goes on)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["MediaTap"]


class MediaTap(Protocol):
    def stream_started(self, now: float) -> None:
        """A Media Stream of the call attached (``now``: the event loop's time)."""

    def inbound(self, timestamp_ms: int, ulaw: bytes, now: float) -> None:
        """A caller frame: μ-law, at ``timestamp_ms`` on the stream's clock."""

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        """A bot chunk sent now; ``position``: the pacer's bytes sent before it."""

    def cleared(self, now: float) -> None:
        """``clear`` was sent (barge-in): queued bot audio will not be played."""

    def stream_ended(self, now: float) -> None:
        """The stream is over (another may attach later)."""
