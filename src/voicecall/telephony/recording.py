"""Call recording, the pure parts: who records, what is said first, where audio lands, what the
sweeper deletes.

* :func:`wants_recording`: a call records when it asked to (``record: true``), or when
  ``recording.enabled`` and it did not say ``record: false``.
* :func:`announce`: the announcement (``recording.announcement``) goes before the first line, in
  the same opening line (like the task disclosure), so it is said in every mode — ``<Say>``,
  ``<Gather>`` or a Media Stream — and the transcript shows what the callee heard.
* :class:`StreamTape`: the two tracks of a Media Stream on the **stream's clock**. Caller audio
  is placed by its media ``timestamp`` (ms × 8 samples); the bot's audio by where it was played:
  a talk-spurt starts at the stream's "now" when its first chunk is sent (Twilio plays at once
  what reaches an empty buffer), the rest of the spurt follows contiguously (pacer positions);
  a chunk that would land in the past (a new spurt, or the TTS fell behind and Twilio's buffer
  ran dry) starts again at "now". A ``clear`` (barge-in) blanks the bot audio that was queued
  at Twilio but never played. A reconnected stream (its timestamps restart at 0) continues
  after the previous one, with the silence between them. Fed bytes and times, it returns
  interleaved stereo PCM (:meth:`StreamTape.drain`); the file is the I/O layer's.
* :func:`expired`: which stored recordings the retention sweeper deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from voicecall.audio.g711 import SAMPLE_RATE, ulaw_decode
from voicecall.audio.stereo_wav import StereoRecorder
from voicecall.calls.extras import RecordingRef, RecordingStatus
from voicecall.textrules import check_client_text

__all__ = [
    "METADATA_KEY",
    "StreamTape",
    "TapeStats",
    "announce",
    "expired",
    "wants_recording",
]

#: the calls row's metadata key that says a call records (kept with the call, survives restarts)
METADATA_KEY: Final = "record"
DAY_SECONDS: Final = 86_400.0

_LATE_TOLERANCE: Final = SAMPLE_RATE // 50  # 20 ms: one inbound frame of clock jitter
_MAX_EXTRAPOLATE: Final = SAMPLE_RATE // 10  # "now" runs at most 100 ms past the last frame
_MAX_RECONNECT_GAP: Final = 30 * SAMPLE_RATE
_GATHER: Final = SAMPLE_RATE // 5  # caller audio decoded 200 ms at a time
_LATE_WINDOW_MS: Final = 300


def wants_recording(requested: bool | None, *, enabled: bool) -> bool:
    """Whether a call records: what it asked for, else the configured default."""
    return enabled if requested is None else requested


def announce(first_line: str | None, announcement: str) -> str:
    """The opening line of a recorded call: the announcement, then what was to be said first."""
    said = announcement.strip()
    first = (first_line or "").strip()
    text = f"{said} {first}" if first else said
    return check_client_text(text)


@dataclass(frozen=True, slots=True)
class TapeStats:
    caller_frames: int
    bot_chunks: int
    spurts: int
    """Bot talk-spurts placed (each starts at the stream's "now")."""
    erased_samples: int
    """Bot audio blanked by ``clear`` (sent, never played)."""
    refused: int
    """Writes the recorder refused (too far ahead: a broken clock); counted, never raised."""
    streams: int


class StreamTape:
    """Both tracks of one call's Media Streams on one timeline (see the module docs).

    Times (``now``) are the event loop's monotonic seconds; positions are 8 kHz samples."""

    def __init__(self, recorder: StereoRecorder | None = None, *, start: int = 0) -> None:
        # the bot's audio lands at "now" or later (never more than 20 ms before the caller
        # track's end), so a short late window keeps the buffer small (4 s per call)
        self.recorder: Final = recorder or StereoRecorder(late_window_ms=_LATE_WINDOW_MS)
        self._offset = start  # where the current stream's timestamp 0 is on the tape
        self._stream_t0: float | None = None  # loop time of the current stream's first event
        self._last_end = start  # tape position after the last inbound frame
        self._last_at: float | None = None  # loop time it arrived
        self._anchor: int | None = None  # tape position of pacer position ``_anchor_pacer``
        self._anchor_pacer = 0
        self._caller_frames = 0
        self._bot_chunks = 0
        self._spurts = 0
        self._erased = 0
        self._refused = 0
        self._streams = 0
        self._ended_at: float | None = None
        self._pending = bytearray()  # contiguous caller audio not handed to the recorder yet
        self._pending_pos = 0

    # -- streams -----------------------------------------------------------------------------

    def begin_stream(self, now: float) -> None:
        """A (new) Media Stream starts: its timestamp 0 goes after what is on the tape, plus
        the time since the previous one ended (capped at 30 s)."""
        if self._streams:
            gap = 0 if self._ended_at is None else round((now - self._ended_at) * SAMPLE_RATE)
            self._offset = max(self.recorder.end, self._last_end) + min(
                max(gap, 0), _MAX_RECONNECT_GAP
            )
        self._streams += 1
        self._stream_t0 = now
        self._last_end = self._offset
        self._last_at = None
        self._anchor = None

    def end_stream(self, now: float) -> None:
        self._write_pending()
        self._ended_at = now
        self._anchor = None

    # -- audio ---------------------------------------------------------------------------------

    def now_position(self, now: float) -> int:
        """The stream's "now" on the tape: the end of the last caller frame, advanced by the
        time since it arrived (at most 100 ms); before any frame, the time since the start."""
        if self._last_at is None:
            t0 = self._stream_t0 if self._stream_t0 is not None else now
            return self._offset + max(0, round((now - t0) * SAMPLE_RATE))
        ahead = round((now - self._last_at) * SAMPLE_RATE)
        return self._last_end + min(max(ahead, 0), _MAX_EXTRAPOLATE)

    def inbound(self, timestamp_ms: int, ulaw: bytes, now: float) -> None:
        """One caller media frame (``timestamp``: ms since this stream started).

        Contiguous frames are gathered and decoded together (up to 200 ms: one decode and one
        copy instead of ten); a gap or a frame out of order writes what was gathered first."""
        if self._stream_t0 is None:
            self.begin_stream(now)
        pos = self._offset + timestamp_ms * (SAMPLE_RATE // 1000)
        if pos - self._last_end > self.recorder.max_ahead:  # a broken clock: never "now"
            self._refused += 1
            return
        pending = self._pending
        if pending and pos != self._pending_pos + len(pending):
            self._write_pending()
        if not pending:
            self._pending_pos = pos
        pending += ulaw
        self._caller_frames += 1
        end = pos + len(ulaw)
        if end >= self._last_end:
            self._last_end = end
            self._last_at = now
        if len(pending) >= _GATHER:
            self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        try:
            self.recorder.caller(self._pending_pos, ulaw_decode(pending))
        except ValueError:
            self._refused += 1
        pending.clear()

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        """One bot chunk sent now; ``position``: the pacer's bytes sent before it."""
        if self._stream_t0 is None:
            self.begin_stream(now)
        here = self.now_position(now)
        pos = None if self._anchor is None else self._anchor + (position - self._anchor_pacer)
        if pos is None or pos < here - _LATE_TOLERANCE:
            self._anchor, self._anchor_pacer = here, position  # a new spurt starts now
            pos = here
            self._spurts += 1
        try:
            self.recorder.bot(pos, ulaw_decode(ulaw))
        except ValueError:
            self._refused += 1
            return
        self._bot_chunks += 1

    def cleared(self, now: float) -> None:
        """``clear`` was sent: what was queued at Twilio from now on was never played."""
        self._write_pending()
        self._erased += self.recorder.erase_bot(self.now_position(now))
        self._anchor = None

    def drain(self, *, final: bool = False) -> bytes:
        """Interleaved stereo PCM ready to be written (``final``: everything)."""
        self._write_pending()
        return self.recorder.drain(final=final)

    @property
    def stats(self) -> TapeStats:
        return TapeStats(
            caller_frames=self._caller_frames,
            bot_chunks=self._bot_chunks,
            spurts=self._spurts,
            erased_samples=self._erased,
            refused=self._refused,
            streams=self._streams,
        )


def seconds_of(frames: int) -> float:
    """Duration of ``frames`` stereo sample frames."""
    return frames / SAMPLE_RATE


def expired(
    refs: Iterable[RecordingRef], *, now: float, retention_days: float | None
) -> list[RecordingRef]:
    """The recordings the sweeper deletes: older than ``retention_days`` (by their start) and
    not deleted yet; none when retention is off. A recording still being written is kept."""
    if retention_days is None:
        return []
    cut = now - retention_days * DAY_SECONDS
    return [
        r
        for r in refs
        if r.started_at < cut
        and r.status not in (RecordingStatus.DELETED, RecordingStatus.RECORDING)
    ]
