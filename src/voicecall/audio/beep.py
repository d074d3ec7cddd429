"""Answering-machine beep detector: finds the end of a voicemail greeting, streaming.

Feed 20 ms frames of 8 kHz int16 audio (what the callee's side of the stream carries), in
order, from the moment the call is answered::

    detector = BeepDetector()
    for frame in inbound_frames:
        event = detector.feed(frame)          # or feed_ulaw(160 μ-law bytes)
        if event is not None:                 # BEEP or SILENCE (or TIMEOUT, if configured)
            start_the_message()               # event.reported_at - event.sample: the delay

Time is the sample count: every position is in 8 kHz samples since the detector was created
(or reset). The detector reports once, then returns ``None`` until :meth:`BeepDetector.reset`.

What counts as the end of the greeting (defaults in :class:`BeepConfig`):

- **BEEP**: a steady single tone between ``min_hz`` and ``max_hz`` (380–2,050 Hz) lasting
  ``min_tone_ms`` to ``max_tone_ms`` (130 ms – 4 s: a nominal 150 ms beep measures 140–150 ms
  between its half-amplitude points), that starts after at least ``min_greeting_ms`` (500 ms)
  of non-tone activity (the greeting) and ends into quiet. It is reported once
  ``end_confirm_ms`` (100 ms) after the tone's end were heard quiet, i.e. 100–120 ms after the
  end, with the end position, frequency, duration and level.

  A frame is *tonal* when its strongest spectral peak holds ``min_purity`` (80 %) of the
  energy above 100 Hz in a 40 ms Hann window (this frame and the previous one) and its 5 ms
  sub-block envelope is flat (``min_envelope_flatness``: a pair of close tones, such as
  440+480 Hz ring-back, beats and fails this); a tone starts on an active tonal frame. Inside
  a tone each frame's frequency stays within ``freq_tolerance_hz`` (or ``freq_tolerance`` × f)
  of the tone's mean and its level within ``max_level_drop_db`` of its loudest frame;
  ``max_weak_frames`` (1) frame in a row may fall to 50 % purity (noise over a quiet beep).
  The edges are placed where the 2.5 ms block RMS crosses 6 dB under the tone's level. After
  the tone, from 20 ms past its end (a fade-out) up to ``end_confirm_ms``, the sound must be
  ``min_end_drop_db`` (9 dB) under the tone's last full frames on average, and no 5 ms of it
  within 3 dB of them: a beep ends into the recording's silence, a note in music into the
  next note.
- **SILENCE**: after the greeting was heard, ``silence_ms`` (2 s) with no activity, reported
  at its end with the position where the silence began. A frame is active when its level is at
  least ``activity_dbfs`` (−40 dBFS RMS) and ``activity_margin_db`` (10 dB) above the noise
  floor (a minimum tracker rising ``floor_rise_db_per_s``). Frames whose two strongest peaks
  hold ``min_dual_purity`` of the energy (DTMF, ring-back) are neither greeting nor silence.
- **TIMEOUT** (only with ``timeout_ms``): nothing found within that time.

Why it does not fire on other sounds (measured in ``tests/audio/test_beep.py``): a vowel
holds 80 % of its energy in one harmonic for at most two or three 20 ms frames in a row (its
pitch glides); DTMF splits its energy between two distant tones (purity ≈ 60 %); ring-back
and other close pairs beat; silence, noise, tones and ring-back before any greeting never
count as a greeting.

Limits: a pure, steady whistled or flute-like note of 130 ms or more that ends into quiet
after some speech is a beep by every measure here (a test keeps this known); a beep that runs
straight into loud sound (speech, music) with no quiet after it is not reported; fax CED
(2,100 Hz) is out of band on purpose; the level thresholds assume telephone levels (speech
well above −40 dBFS); below about 10 dB of signal-to-noise ratio (beep RMS over line-noise
RMS) a beep's frames stop looking pure and it is missed (then the silence after it ends the
greeting, 2 s later).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE, ulaw_decode
from voicecall.audio.spectral import (
    FRAME_SAMPLES,
    FULL_SCALE,
    FrameAnalyzer,
    FrameMeasures,
    check_frame,
    power_db,
)

__all__ = [
    "BeepConfig",
    "BeepDetector",
    "BeepEvent",
    "GreetingEnd",
]

_MS: Final = SAMPLE_RATE // 1000
_EDGE_BLOCK: Final = 20  # 2.5 ms blocks to place the tone's edges
_WEAK_PURITY: Final = 0.5
_AFTER_PEAK_MARGIN_DB: Final = 3.0  # no 5 ms after a beep may come within 3 dB of it
_AFTER_BLOCK: Final = 40  # 5 ms blocks to check that what follows a tone is quiet
_AFTER_GUARD: Final = 20 * _MS  # ... from 20 ms after its half-amplitude end (fade-outs)


class GreetingEnd(enum.Enum):
    """Why the greeting is over; ``answered_by`` gives Twilio's word for it."""

    BEEP = "beep"
    SILENCE = "silence"
    TIMEOUT = "timeout"

    @property
    def answered_by(self) -> str:
        return {
            GreetingEnd.BEEP: "machine_end_beep",
            GreetingEnd.SILENCE: "machine_end_silence",
            GreetingEnd.TIMEOUT: "machine_end_other",
        }[self]


@dataclass(frozen=True, slots=True)
class BeepEvent:
    """The greeting ended. Positions are 8 kHz samples since the detector started."""

    kind: GreetingEnd
    sample: int
    """BEEP: where the tone ended; SILENCE: where the silence began; TIMEOUT: = reported_at."""
    reported_at: int
    """End of the frame that produced the event (the earliest the message can start)."""
    frequency_hz: float | None = None
    """BEEP: the tone's mean frequency."""
    duration_ms: float | None = None
    """BEEP: the tone's duration; SILENCE: the silence heard so far."""
    level_dbfs: float | None = None
    """BEEP: the tone's RMS level."""

    def __post_init__(self) -> None:
        if self.sample < 0 or self.reported_at < self.sample:
            raise ValueError("need 0 <= sample <= reported_at")

    @property
    def delay_ms(self) -> float:
        """How long after ``sample`` it was reported."""
        return (self.reported_at - self.sample) / _MS


@dataclass(frozen=True, slots=True)
class BeepConfig:
    """Thresholds of :class:`BeepDetector`; validated when built. See the module docs."""

    min_hz: float = 380.0
    max_hz: float = 2050.0
    min_tone_ms: int = 130
    max_tone_ms: int = 4000
    min_purity: float = 0.80
    min_envelope_flatness: float = 0.55
    """Quietest 5 ms block over the loudest one (RMS) within a frame; a steady tone is ~0.9."""
    max_weak_frames: int = 1
    """Frames in a row inside a tone that may miss ``min_purity`` or the envelope test (down
    to 50 % purity) while keeping its frequency and level: noise blurs a quiet beep."""
    freq_tolerance_hz: float = 20.0
    freq_tolerance: float = 0.02
    max_level_drop_db: float = 10.0
    min_end_drop_db: float = 9.0
    """What follows the tone (from 20 ms after its end, past a fade-out, up to
    ``end_confirm_ms``) must be this much quieter than the tone's last full frames on average,
    and no 5 ms of it within 3 dB of them: a beep ends into the silence of the recording, a
    note in music into the next note."""
    end_confirm_ms: int = 100
    """How much of what follows the tone is checked before reporting: the detection delay."""
    min_dual_purity: float = 0.85
    """Frames whose two strongest peaks hold this share of the energy (DTMF, ring-back and
    other dual tones) are tones, not greeting: they neither count as speech nor as silence."""
    min_greeting_ms: int = 500
    silence_ms: int = 2000
    activity_dbfs: float = -40.0
    activity_margin_db: float = 10.0
    floor_rise_db_per_s: float = 2.0
    timeout_ms: int | None = None

    def __post_init__(self) -> None:
        if not 100.0 <= self.min_hz < self.max_hz <= 3800.0:
            raise ValueError("need 100 <= min_hz < max_hz <= 3800")
        if not 40 <= self.min_tone_ms < self.max_tone_ms:
            raise ValueError("need 40 <= min_tone_ms < max_tone_ms")
        if self.max_weak_frames < 0:
            raise ValueError("max_weak_frames must be >= 0")
        if not 0.0 < self.min_purity <= 1.0:
            raise ValueError("min_purity must be in (0, 1]")
        if not 0.0 <= self.min_envelope_flatness <= 1.0:
            raise ValueError("min_envelope_flatness must be in [0, 1]")
        if self.freq_tolerance_hz < 0 or self.freq_tolerance < 0:
            raise ValueError("frequency tolerances must be >= 0")
        if self.max_level_drop_db <= 0 or self.min_end_drop_db < 0:
            raise ValueError("max_level_drop_db must be > 0 and min_end_drop_db >= 0")
        if not 0.0 < self.min_dual_purity <= 1.0:
            raise ValueError("min_dual_purity must be in (0, 1]")
        if self.min_greeting_ms < 0:
            raise ValueError("min_greeting_ms must be >= 0")
        if self.silence_ms <= 0:
            raise ValueError("silence_ms must be > 0")
        if self.activity_margin_db < 0 or self.floor_rise_db_per_s < 0:
            raise ValueError("activity_margin_db and floor_rise_db_per_s must be >= 0")
        if not 0 <= self.end_confirm_ms <= 1000:
            raise ValueError("end_confirm_ms must be within 0..1000")
        if self.timeout_ms is not None and self.timeout_ms <= 0:
            raise ValueError("timeout_ms must be > 0")


@dataclass(slots=True)
class _Tone:
    """The tone being followed."""

    start: int
    first_frame: npt.NDArray[np.float64]
    """The frame before the first tonal one, and that one."""
    freq_sum: float
    frames: int
    max_level: float
    level_sum: float
    peaks: list[float]
    levels: list[float]
    tail_start: int
    """Start of the last tonal frame."""
    tail: list[npt.NDArray[np.float64]]
    """The last tonal frame and what followed it."""
    after_greeting: bool
    end: int | None = None
    """Where the tone ended, once it stopped."""
    weak: int = 0
    """Consecutive frames that kept the tone's frequency and level but not its purity."""

    @property
    def frequency(self) -> float:
        return self.freq_sum / self.frames


class BeepDetector:
    """Streaming end-of-greeting detector; see the module docs for what it reports and why."""

    def __init__(self, config: BeepConfig | None = None) -> None:
        self.config: Final = config or BeepConfig()
        self._analyzer = FrameAnalyzer()
        self._rise_per_frame = self.config.floor_rise_db_per_s * FRAME_SAMPLES / SAMPLE_RATE
        self.reset()

    def reset(self) -> None:
        """Forget everything; positions restart at 0."""
        self._analyzer.reset()
        self._pos = 0
        self._floor: float | None = None
        self._greeting = 0  # samples of non-tone activity heard
        self._silence_start: int | None = None
        self._tone: _Tone | None = None
        self._ending: _Tone | None = None
        self._prev_frame = np.zeros(FRAME_SAMPLES)
        self._done = False
        self._last: FrameMeasures | None = None

    @property
    def position(self) -> int:
        """Samples fed so far."""
        return self._pos

    @property
    def done(self) -> bool:
        """An event was reported; :meth:`feed` returns ``None`` until :meth:`reset`."""
        return self._done

    @property
    def greeting_heard_ms(self) -> float:
        """Non-tone activity heard so far."""
        return self._greeting / _MS

    @property
    def last_frame(self) -> FrameMeasures | None:
        """The measures of the last frame fed (for logs and tuning)."""
        return self._last

    def feed_ulaw(self, ulaw_frame: bytes) -> BeepEvent | None:
        """:meth:`feed` on 160 μ-law bytes."""
        if len(ulaw_frame) != FRAME_BYTES:
            raise ValueError(f"expected {FRAME_BYTES} μ-law bytes (20 ms), got {len(ulaw_frame)}")
        return self.feed(ulaw_decode(ulaw_frame))

    def feed(self, frame: npt.NDArray[np.int16]) -> BeepEvent | None:
        """Take the next 20 ms frame (160 int16 samples); returns at most one event, ever."""
        samples = check_frame(frame)
        start = self._pos
        self._pos += FRAME_SAMPLES
        if self._done:
            return None
        cfg = self.config
        m = self._analyzer.analyze(samples)
        self._last = m
        floor = self._update_floor(m.level_dbfs)
        active = m.level_dbfs >= max(cfg.activity_dbfs, floor + cfg.activity_margin_db)
        shaped = (  # a tone's shape; a new tone must also be active, a running one need not
            m.purity >= cfg.min_purity
            and m.flatness >= cfg.min_envelope_flatness
            and cfg.min_hz <= m.frequency_hz <= cfg.max_hz
        )
        tonal = active and shaped
        event: BeepEvent | None = None
        current = samples.astype(np.float64)
        if self._ending is not None:  # a tone stopped: is what follows it quiet enough?
            self._ending.tail.append(current)
            verdict = self._judge(self._ending)
            if verdict != "wait":
                self._ending = None
                event = verdict
        tone = self._tone
        if event is not None:
            pass
        elif tone is not None:
            if shaped and self._continues(tone, m):
                self._extend(tone, m, start, current)
                tone.weak = 0
            elif (
                tone.weak < cfg.max_weak_frames
                and m.purity >= _WEAK_PURITY
                and self._continues(tone, m)
            ):
                self._extend(tone, m, start, current)  # noise blurred it: same tone, same level
                tone.weak += 1
            else:
                self._tone = None
                if self._ending is None:
                    tone.tail.append(current)
                    verdict = self._judge(tone)
                    if verdict == "wait":
                        self._ending = tone
                    else:
                        event = verdict
                if event is None and tonal:
                    self._begin_tone(start, m, current)
        elif tonal:
            self._begin_tone(start, m, current)
        if event is None and self._tone is None and not tonal:
            tone_like = active and m.dual_purity >= cfg.min_dual_purity
            event = self._account_activity(active, tone_like, start)
        if event is None and cfg.timeout_ms is not None and self._pos >= cfg.timeout_ms * _MS:
            event = BeepEvent(GreetingEnd.TIMEOUT, self._pos, self._pos)
        if event is not None:
            self._done = True
        self._prev_frame = current
        return event

    # -- internals -----------------------------------------------------------------------------

    def _update_floor(self, level: float) -> float:
        if self._floor is None or level < self._floor:
            self._floor = level
        else:
            self._floor += self._rise_per_frame
        return self._floor

    def _continues(self, tone: _Tone, m: FrameMeasures) -> bool:
        cfg = self.config
        f = tone.frequency
        tol = max(cfg.freq_tolerance_hz, cfg.freq_tolerance * f)
        return abs(m.frequency_hz - f) <= tol and m.level_dbfs >= tone.max_level - (
            cfg.max_level_drop_db
        )

    def _begin_tone(self, start: int, m: FrameMeasures, frame: npt.NDArray[np.float64]) -> None:
        # a tone before the greeting is followed too (so that it is not counted as greeting),
        # but it can never be reported
        self._tone = _Tone(
            start=start,
            first_frame=np.concatenate([self._prev_frame, frame]),
            freq_sum=m.frequency_hz,
            frames=1,
            max_level=m.level_dbfs,
            level_sum=m.level_dbfs,
            peaks=[m.peak_dbfs],
            levels=[m.level_dbfs],
            tail_start=start,
            tail=[frame],
            after_greeting=self._greeting >= self.config.min_greeting_ms * _MS,
        )
        self._silence_start = None

    def _extend(
        self, tone: _Tone, m: FrameMeasures, start: int, frame: npt.NDArray[np.float64]
    ) -> None:
        tone.freq_sum += m.frequency_hz
        tone.frames += 1
        tone.max_level = max(tone.max_level, m.level_dbfs)
        tone.level_sum += m.level_dbfs
        tone.peaks.append(m.peak_dbfs)
        tone.levels.append(m.level_dbfs)
        tone.tail_start = start
        tone.tail = [frame]

    def _judge(self, tone: _Tone) -> BeepEvent | Literal["wait"] | None:
        """The tone stopped: a beep (an event), not one (None), or too early to say ("wait":
        less than ``end_confirm_ms`` of what follows it was heard, and all of it was quiet)."""
        cfg = self.config
        if not tone.after_greeting:
            return None
        tail = np.concatenate(tone.tail)
        if tone.end is None:  # placed once, in the last tonal frame and the one that stopped it
            # half amplitude: 6 dB under the tone's typical frame level, in 2.5 ms blocks
            threshold = 10 ** ((float(np.median(tone.levels)) - 6.0) / 20) * FULL_SCALE
            tone.start += _rise(tone.first_frame, threshold) - FRAME_SAMPLES
            tone.end = tone.tail_start + _fall(tail, threshold)
        duration = tone.end - tone.start
        if not cfg.min_tone_ms * _MS <= duration <= cfg.max_tone_ms * _MS:
            return None
        after = tail[tone.end - tone.tail_start + _AFTER_GUARD :]  # past the fade-out
        # against the tone's level where it ended (a decaying note ends quieter than it began)
        end_level = max(tone.levels[-3:])
        n = after.size // _AFTER_BLOCK * _AFTER_BLOCK
        if n:
            blocks = (after[:n].reshape(-1, _AFTER_BLOCK) ** 2).mean(axis=1)
            if power_db(float(blocks.max()) / FULL_SCALE**2) > end_level - _AFTER_PEAK_MARGIN_DB:
                return None  # the tone ran into something about as loud as itself
        if after.size + _AFTER_GUARD < cfg.end_confirm_ms * _MS:
            return "wait"
        if n and power_db(float(blocks.mean()) / FULL_SCALE**2) > end_level - cfg.min_end_drop_db:
            return None  # what follows is not quiet enough
        return BeepEvent(
            GreetingEnd.BEEP,
            sample=tone.end,
            reported_at=self._pos,
            frequency_hz=round(tone.frequency, 1),
            duration_ms=duration / _MS,
            level_dbfs=round(tone.level_sum / tone.frames, 1),
        )

    def _account_activity(self, active: bool, tone_like: bool, start: int) -> BeepEvent | None:
        cfg = self.config
        if active:
            if not tone_like:
                self._greeting += FRAME_SAMPLES
            self._silence_start = None
            return None
        if self._silence_start is None:
            self._silence_start = start
        silent = self._pos - self._silence_start
        if self._greeting >= cfg.min_greeting_ms * _MS and silent >= cfg.silence_ms * _MS:
            return BeepEvent(
                GreetingEnd.SILENCE,
                sample=self._silence_start,
                reported_at=self._pos,
                duration_ms=silent / _MS,
            )
        return None


def _loud_blocks(x: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.bool_]:
    n = x.size // _EDGE_BLOCK * _EDGE_BLOCK
    blocks = x[:n].reshape(-1, _EDGE_BLOCK)
    loud: npt.NDArray[np.bool_] = np.sqrt((blocks * blocks).mean(axis=1)) >= threshold
    return loud


def _rise(x: npt.NDArray[np.float64], threshold: float) -> int:
    """Where the tone starts in ``x`` (the frame before its first tonal frame, then that frame):
    the first loud block of the tonal frame, moved back over the loud blocks just before it."""
    loud = _loud_blocks(x, threshold)
    half = FRAME_SAMPLES // _EDGE_BLOCK
    ahead = np.flatnonzero(loud[half:])
    i = half + (int(ahead[0]) if ahead.size else 0)
    while i > 0 and loud[i - 1]:
        i -= 1
    return i * _EDGE_BLOCK


def _fall(x: npt.NDArray[np.float64], threshold: float) -> int:
    """Where the tone ends in ``x`` (its last tonal frame, then what followed): after the last
    loud block of that frame, moved on over the loud blocks just after it."""
    loud = _loud_blocks(x, threshold)
    half = FRAME_SAMPLES // _EDGE_BLOCK
    within = np.flatnonzero(loud[:half])
    if not within.size:
        return 0
    j = int(within[-1])
    while j + 1 < loud.size and loud[j + 1]:
        j += 1
    return (j + 1) * _EDGE_BLOCK
