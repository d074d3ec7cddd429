"""The seam between the call manager and a live media stream (Media Streams) of one call.

The manager implements :class:`StreamHost` (it decides whether a stream may attach to a call and
what transcripts mean); the real-time voice pipeline implements :class:`SpeechChannel` (it turns
text into paced audio and caller audio into transcripts). Neither knows the other's internals.

Flow: a verified voice webhook → the manager mints a single-use stream token (bound to the
CallSid, expiring) and answers ``<Connect><Stream>`` with it in a ``<Parameter>`` → the stream
endpoint verifies the upgrade signature, reads ``start`` and calls :meth:`StreamHost.claim_stream`
→ on success it builds the pipeline and calls :meth:`StreamHost.stream_attached` → transcripts
and DTMF flow back through :meth:`StreamHost.caller_said` / :meth:`StreamHost.caller_pressed` →
when the socket ends, :meth:`StreamHost.stream_detached` (the manager applies the reconnect grace
and ends the call if no stream comes back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from voicecall.errors import VoicecallError

if TYPE_CHECKING:
    from voicecall.voice.latency import TurnLatency


class StreamRejected(VoicecallError):
    """The stream may not attach (bad/expired/used token, wrong CallSid, call over). Close 1008."""


@dataclass(frozen=True, slots=True)
class SpokenResult:
    """What became of one utterance: ``completed`` when its end mark was echoed (the caller heard
    all of it), else interrupted by barge-in or a clear, with ``heard_ms`` of audio played and
    ``heard_text`` the (approximate, proportional) words played before the cut. ``latency``:
    when this utterance answered a caller's turn and its first frame was sent, how long that
    took (voice/latency.py)."""

    completed: bool
    heard_ms: int
    total_ms: int
    heard_text: str
    latency: TurnLatency | None = None


class SpeechChannel(Protocol):
    """One call's live audio path (implemented by the real-time voice pipeline)."""

    async def say(
        self,
        text: str,
        *,
        responder_at: float | None = None,
        on_latency: Callable[[TurnLatency], None] | None = None,
        interruptible: bool = True,
    ) -> SpokenResult:
        """Queue ``text`` (utterances never overlap); return once it was played or cut off.
        ``responder_at``: when a responder produced ``text`` (``time.monotonic()``), for the
        latency record of the reply; ``on_latency``: called with that record as soon as it is
        whole (the first frame went out), before the utterance ends; ``interruptible=False``:
        the caller's speech does not cut it (barge-in), as for a goodbye the call ends after."""
        ...

    async def interrupt(self) -> None:
        """Stop speaking now: cancel synthesis, drop queued audio, send ``clear``."""
        ...

    async def close(self, reason: str) -> None:
        """Close the stream (the provider then runs the TwiML after ``<Connect>``, if any)."""
        ...


class MediaTap(Protocol):
    """Who listens beside a call's stream pipeline: every caller media frame, every bot chunk as
    it is sent, each ``clear``, and the stream's start and end (the recorder hears all of it;
    detectors wrap a callback of caller audio in an :class:`InboundTap`).

    Called on the audio path: implementations must be cheap and must never raise (a failing
    tap stops itself; the call goes on)."""

    def stream_started(self, now: float) -> None:
        """A Media Stream of the call attached, or the tap was added to a running one (``now``:
        the event loop's time)."""

    def inbound(self, timestamp_ms: int, ulaw: bytes, now: float) -> None:
        """A caller frame: μ-law, at ``timestamp_ms`` on the stream's clock."""

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        """A bot chunk sent now; ``position``: the pacer's bytes sent before it."""

    def cleared(self, now: float) -> None:
        """``clear`` was sent (barge-in): queued bot audio will not be played."""

    def stream_ended(self, now: float) -> None:
        """The stream is over (another may attach later)."""


#: called with each inbound μ-law payload, in order, inside the audio path (must be quick)
AudioTap = Callable[[bytes], None]


class InboundTap:
    """A :class:`MediaTap` that hands each caller payload to ``on_audio`` (the detectors: beep,
    hold) and ignores everything else."""

    __slots__ = ("on_audio",)

    def __init__(self, on_audio: AudioTap) -> None:
        self.on_audio = on_audio

    def stream_started(self, now: float) -> None:
        return None

    def inbound(self, timestamp_ms: int, ulaw: bytes, now: float) -> None:
        self.on_audio(ulaw)

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        return None

    def cleared(self, now: float) -> None:
        return None

    def stream_ended(self, now: float) -> None:
        return None


@runtime_checkable
class TappableChannel(Protocol):
    """A channel whose audio can be listened to (detectors: beep, hold; the recorder)."""

    def add_tap(self, tap: MediaTap) -> Callable[[], None]:
        """Tell ``tap`` about the stream from now on (``stream_started`` at once); returns the
        remover (a removed tap hears nothing more, not even the end)."""
        ...

    def hold_stt(self, held: bool, *, replay_frames: int = 0) -> None:
        """Hold (silence) the recogniser's input, or release it replaying the last frames."""
        ...


class StreamHost(Protocol):
    """What the stream endpoint needs from the call manager."""

    async def claim_stream(self, *, token: str, call_sid: str) -> str:
        """Validate and consume ``token`` for ``call_sid``; return voicecall's call id.
        Raise :class:`StreamRejected` with the reason otherwise."""
        ...

    async def stream_attached(self, call_id: str, channel: SpeechChannel) -> None: ...

    async def stream_detached(self, call_id: str, *, reason: str) -> None: ...

    async def caller_said(
        self, call_id: str, text: str, *, final: bool, resumed: bool = False
    ) -> None:
        """A transcript of the caller (partials may be ignored). ``resumed``: a final that
        hears the previous final again with what the caller went on to say (its text repeats
        that final's words first; see ``calls/continuation.py``)."""
        ...

    async def caller_pressed(self, call_id: str, digit: str) -> None: ...

    async def bot_interrupted(self, call_id: str, result: SpokenResult) -> None:
        """Barge-in cut the bot off; ``result`` says what the caller heard."""
        ...
