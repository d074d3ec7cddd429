"""How long one bot reply took, from the caller's last word to the bot's first frame (pure).

Two clocks meet here. The **stream clock** is the caller's audio itself: 8 kHz samples counted
from the first media frame after ``start`` (what the VAD and the STT count; a Twilio media
message's ``timestamp`` is the same clock in ms since the stream started, which differs from our
count only when frames were lost). The **monotonic clock** (``time.monotonic()``, the clock of
the asyncio loop) is when things happened in this process.

:class:`ArrivalClock` maps one to the other the only honest way: it remembers, for every
inbound frame of the last :data:`KEEP_FRAMES` frames, the sample range it carried, its media
``timestamp`` and the monotonic time it *arrived* (read when the session handled it). The
caller's speech end is a stream position (the end of the last voiced VAD block, given by
whoever decided the turn); its monotonic time is the arrival of the frame carrying that last
voiced sample, not the (later) moment the turn was declared over. Network delay before our
socket and jitter are not ours to see; on loopback they are ~0.

:class:`TurnStamps` collects the monotonic marks of one reply, each set once by the stage that
owns it, and :meth:`TurnStamps.build` turns them into a :class:`TurnLatency`, the record stored
with the bot's transcript line (JSON, ms relative to the caller's speech end):

=====================  ================================================================
mark                   meaning
=====================  ================================================================
``speech_end``         arrival of the caller's last voiced frame (0 by definition)
``turn_decided``       the end of the turn was decided (the frame that completed the
                       silence arrived)
``transcript_final``   the final transcript reached the session
``responder_first``    the responder's first output (its first speakable text; with an
                       instant responder this is its first token)
``tts_requested``      that text was handed to the speech channel (after it was stored)
``tts_first_audio``    the TTS produced the first audio bytes of it
``first_frame_sent``   the first media frame of it went to the socket
=====================  ================================================================

Stages: ``end_of_turn_ms`` = decided − speech end; ``stt_ms`` = transcript − decided;
``responder_ms`` = responder's first output − transcript; ``tts_ms`` = first audio − requested;
``voice_to_voice_ms`` = first frame sent − speech end; ``overhead_ms`` = what is left of
voice-to-voice: everything of the service's own between the stages (hand-offs, the store
commit of the lines, building the responder's context, queueing for the pacer, the send).
A stage whose marks are out of order (e.g. a responder started speculatively before the final
transcript) counts 0; marks are kept as measured.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "KEEP_FRAMES",
    "MARKS",
    "STAGES",
    "ArrivalClock",
    "TurnLatency",
    "TurnStamps",
    "percentile",
    "summarize",
]

SAMPLES_PER_MS: Final = 8
KEEP_FRAMES: Final = 1500
"""Inbound frames remembered (30 s of 20 ms frames): longer than any turn's decision takes."""

MARKS: Final = (
    "speech_end",
    "turn_decided",
    "transcript_final",
    "responder_first",
    "tts_requested",
    "tts_first_audio",
    "first_frame_sent",
)

STAGES: Final = ("end_of_turn", "stt", "responder", "tts", "overhead", "voice_to_voice")
"""The figures of a :class:`TurnLatency` (each ``<stage>_ms``), in pipeline order."""


class ArrivalClock:
    """Stream position → monotonic arrival time of the frame that carried it.

    Compact (it runs on every inbound frame of every call): the arrival times of the last
    :data:`KEEP_FRAMES` frames are a ring of doubles (8 bytes a frame), and the frames' sample
    ranges and media timestamps are kept as runs: a run is frames of one size whose timestamps
    follow on exactly (every Twilio frame of a call, unless frames were lost), so a call costs
    a few bytes per frame and at most 12 KB, not a Python object per number.
    """

    __slots__ = (
        "_arrived",
        "_frames",
        "_run_frame",
        "_run_size",
        "_run_stamp",
        "_run_start",
        "samples",
    )

    def __init__(self) -> None:
        self._arrived = array("d")  # ring: frame number f is at f % KEEP_FRAMES
        self._frames = 0  # frames received
        # runs, oldest first: first frame number, first sample, first timestamp (ms), size
        self._run_frame = array("q")
        self._run_start = array("q")
        self._run_stamp = array("q")
        self._run_size = array("q")
        self.samples = 0
        """Samples received so far (the stream clock's "now")."""

    def frame(self, n_samples: int, timestamp_ms: int, arrived: float) -> None:
        """One inbound frame of ``n_samples`` arrived at ``arrived`` (monotonic)."""
        if n_samples <= 0:
            return  # carries no sample: nothing can be located in it
        frames = self._frames
        sizes = self._run_size
        if not (
            sizes
            and sizes[-1] == n_samples
            and (timestamp_ms - self._run_stamp[-1]) * SAMPLES_PER_MS
            == (frames - self._run_frame[-1]) * n_samples
        ):
            self._new_run(frames, timestamp_ms, n_samples)
        ring = self._arrived
        if frames < KEEP_FRAMES:
            ring.append(arrived)
        else:
            ring[frames % KEEP_FRAMES] = arrived
        self._frames = frames + 1
        self.samples += n_samples

    def _new_run(self, frames: int, timestamp_ms: int, n_samples: int) -> None:
        starts = self._run_frame
        oldest = frames - KEEP_FRAMES  # frames before this one are forgotten
        if len(starts) > 64 and starts[64] <= oldest:  # drop runs wholly forgotten, in batches
            stale = bisect.bisect_right(starts, oldest) - 1
            del starts[:stale], self._run_start[:stale]
            del self._run_stamp[:stale], self._run_size[:stale]
        starts.append(frames)
        self._run_start.append(self.samples)
        self._run_stamp.append(timestamp_ms)
        self._run_size.append(n_samples)

    def locate(self, end_sample: int) -> tuple[float, int] | None:
        """For a position that ends a stretch of audio (exclusive), the arrival time of the
        frame holding its last sample and that position on the media clock (ms). ``None``
        if the frame is no longer remembered, or not received yet."""
        last = end_sample - 1
        if last < 0 or last >= self.samples:
            return None
        i = bisect.bisect_right(self._run_start, last) - 1
        if i < 0:
            return None
        size = self._run_size[i]
        k = (last - self._run_start[i]) // size
        number = self._run_frame[i] + k
        if number < self._frames - KEEP_FRAMES:
            return None
        frame_start = self._run_start[i] + k * size
        stamp = self._run_stamp[i] + k * size / SAMPLES_PER_MS
        offset_ms = (end_sample - frame_start) / SAMPLES_PER_MS
        return self._arrived[number % KEEP_FRAMES], round(stamp + offset_ms)

    def arrival_at_ms(self, end_ms: int) -> tuple[float, int] | None:
        """:meth:`locate` for a position in ms of received audio."""
        return self.locate(end_ms * SAMPLES_PER_MS)


def _ms(later: float | None, earlier: float | None) -> float:
    if later is None or earlier is None:
        return 0.0
    return max(0.0, (later - earlier) * 1000.0)


@dataclass(slots=True)
class TurnStamps:
    """The monotonic marks of one reply while it is being made (see the module docs).

    ``speech_end`` and ``speech_end_stream_ms`` come from the :class:`ArrivalClock`; the later
    marks are set once each by :meth:`stamp` (a second stamp of a mark is ignored).
    """

    speech_end: float
    speech_end_stream_ms: int
    turn_decided: float
    transcript_final: float
    responder_first: float | None = None
    tts_requested: float | None = None
    tts_first_audio: float | None = None
    first_frame_sent: float | None = None

    def stamp(self, mark: str, at: float) -> None:
        if mark not in MARKS[3:]:
            raise ValueError(f"unknown latency mark {mark!r}")
        if getattr(self, mark) is None:
            setattr(self, mark, at)

    @property
    def complete(self) -> bool:
        return self.first_frame_sent is not None

    def build(self) -> TurnLatency | None:
        """The record, once the first frame was sent; ``None`` before."""
        if self.first_frame_sent is None:
            return None
        start = self.speech_end
        transcript = self.transcript_final
        requested = self.tts_requested
        # an agent's own reply (no responder here): its text is its first output
        responder = self.responder_first if self.responder_first is not None else requested
        stages = {
            "end_of_turn": _ms(self.turn_decided, start),
            "stt": _ms(transcript, self.turn_decided),
            "responder": _ms(responder, transcript),
            "tts": _ms(self.tts_first_audio, requested),
        }
        v2v = _ms(self.first_frame_sent, start)
        overhead = max(0.0, v2v - sum(stages.values()))
        marks = {
            name: round((value - start) * 1000.0, 1)
            for name in MARKS
            if (value := getattr(self, name)) is not None
        }
        return TurnLatency(
            speech_end_stream_ms=self.speech_end_stream_ms,
            end_of_turn_ms=round(stages["end_of_turn"], 1),
            stt_ms=round(stages["stt"], 1),
            responder_ms=round(stages["responder"], 1),
            tts_ms=round(stages["tts"], 1),
            overhead_ms=round(overhead, 1),
            voice_to_voice_ms=round(v2v, 1),
            marks=marks,
        )


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """One bot reply's latency record (ms), stored with its transcript line."""

    speech_end_stream_ms: int
    """The caller's speech end on the media clock (ms since the stream started)."""
    end_of_turn_ms: float
    stt_ms: float
    responder_ms: float
    tts_ms: float
    overhead_ms: float
    voice_to_voice_ms: float
    marks: dict[str, float] = field(default_factory=dict)
    """Each mark's time in ms after the caller's speech end."""

    def stage_ms(self, stage: str) -> float:
        value: float = getattr(self, f"{stage}_ms")
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "speech_end_stream_ms": self.speech_end_stream_ms,
            **{f"{stage}_ms": self.stage_ms(stage) for stage in STAGES},
            "marks": dict(self.marks),
        }

    @classmethod
    def from_json(cls, data: Any) -> TurnLatency:
        """Parse a stored record; ``ValueError`` naming the field when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("latency: expected an object")
        values: dict[str, float] = {}
        for stage in STAGES:
            key = f"{stage}_ms"
            raw = data.get(key)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
                raise ValueError(f"latency.{key}: expected a number >= 0")
            values[key] = float(raw)
        end = data.get("speech_end_stream_ms")
        if isinstance(end, bool) or not isinstance(end, int) or end < 0:
            raise ValueError("latency.speech_end_stream_ms: expected an integer >= 0")
        marks = data.get("marks", {})
        if not isinstance(marks, dict) or not all(
            k in MARKS and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in marks.items()
        ):
            raise ValueError("latency.marks: expected known marks with numbers")
        return cls(
            speech_end_stream_ms=end, marks={k: float(v) for k, v in marks.items()}, **values
        )


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be in [0, 100]")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """p50/p95/max (ms) and count per stage over stored records (``TurnLatency.to_json``);
    stages no record has are left out."""
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        values = [
            float(v)
            for r in records
            if isinstance(v := r.get(f"{stage}_ms"), int | float) and not isinstance(v, bool)
        ]
        if values:
            out[stage] = {
                "count": len(values),
                "p50": round(percentile(values, 50), 1),
                "p95": round(percentile(values, 95), 1),
                "max": round(max(values), 1),
            }
    return out
