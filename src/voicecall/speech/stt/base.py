"""The streaming STT interface: a session takes μ-law frames and yields transcripts.

Caller audio must be read from the moment the media socket opens, even while the STT service
is still connecting (the field bug: 1.6 s of caller audio ignored at the start of every call).
So :meth:`SttProvider.open_session` returns at once and connects in the background;
:meth:`SttSession.send` never blocks: frames wait in a bounded buffer (:class:`PendingFrames`)
until the connection is up, then go out in order. Connection failures surface from
:meth:`SttSession.events` as :class:`~voicecall.speech.errors.SpeechError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_MAX_PENDING_FRAMES",
    "PendingFrames",
    "SttNotice",
    "SttProvider",
    "SttSession",
    "Transcript",
    "TurnAware",
]

DEFAULT_MAX_PENDING_FRAMES: Final = 500
"""Frames buffered while connecting: 500 × 20 ms = 10 s of caller audio."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the caller said. Partials (``final=False``) may be revised; a final is the
    complete utterance. Times are ms of session audio (from the first frame sent), when known:
    ``started_at_ms``/``ended_at_ms`` span the audio transcribed; ``speech_end_ms`` is where the
    caller's last voiced audio ended and ``decided_ms`` how much audio had been received when
    the end of the utterance was decided (both for latency records, see voice/latency.py)."""

    text: str
    final: bool
    started_at_ms: int | None = None
    ended_at_ms: int | None = None
    speech_end_ms: int | None = None
    decided_ms: int | None = None
    resumed: bool = False
    """A final that hears the previous final again with what the caller went on to say (local
    Whisper, within ``resume_ms`` of it): its text repeats that final's words first."""

    def __post_init__(self) -> None:
        if self.started_at_ms is not None and self.started_at_ms < 0:
            raise ValueError("started_at_ms must be >= 0")
        if (
            self.started_at_ms is not None
            and self.ended_at_ms is not None
            and self.ended_at_ms < self.started_at_ms
        ):
            raise ValueError("ended_at_ms must be >= started_at_ms")


@dataclass(frozen=True, slots=True)
class SttNotice:
    """Something the service reported that does not end the session (logged, not raised)."""

    code: str
    message: str


@runtime_checkable
class SttSession(Protocol):
    """One caller's audio stream to one STT service connection."""

    def send(self, ulaw_frame: bytes) -> None:
        """Queue one μ-law 8 kHz frame; returns at once, even while still connecting."""
        ...

    def events(self) -> AsyncIterator[Transcript]:
        """Transcripts in order; ends after :meth:`aclose`; raises ``SpeechError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Flush what the service still holds, then close (idempotent)."""
        ...


@runtime_checkable
class TurnAware(Protocol):
    """An STT session that decides turns itself and wants to know when the bot's reply to
    the last one was heard to its end (local Whisper: after that, speech is a new turn,
    not the rest of the last one)."""

    def answered(self) -> None: ...


@runtime_checkable
class SttProvider(Protocol):
    """A factory of sessions for one STT engine or service."""

    @property
    def name(self) -> str: ...

    async def open_session(self) -> SttSession:
        """Start a session; returns before the service connection is established."""
        ...

    async def aclose(self) -> None: ...


class PendingFrames:
    """Bounded FIFO of frames not yet sent; the oldest is dropped when full (counted)."""

    def __init__(self, max_frames: int = DEFAULT_MAX_PENDING_FRAMES) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self._frames: deque[bytes] = deque(maxlen=max_frames)
        self.dropped = 0
        """Frames dropped because the buffer was full."""
        self.total_bytes = 0
        """Bytes accepted since creation (dropped ones included)."""

    def push(self, frame: bytes) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self.total_bytes += len(frame)

    def drain(self) -> list[bytes]:
        out = list(self._frames)
        self._frames.clear()
        return out

    def __len__(self) -> int:
        return len(self._frames)
