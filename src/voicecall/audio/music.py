"""What is on the line: speech, music, silence, ring-back or another tone. Streaming, cheap.

Feed the inbound audio as 20 ms frames of 8 kHz int16 (or μ-law) in order; :meth:`feed`
returns a :class:`LabelChange` when the label changes, else ``None``::

    disc = MusicDiscriminator()
    for frame in inbound_frames:
        change = disc.feed(frame)             # or feed_ulaw(160 bytes)
        if change is not None and change.label is Label.MUSIC:
            hold_on()                         # stay silent, drop transcripts of this audio

Time is the sample count (8 kHz samples since creation or :meth:`reset`).

How (one FFT per frame, shared with the beep detector: :mod:`voicecall.audio.spectral`): per
frame it measures the level, the spectral similarity to the previous frame (the inverse of
spectral flux), the spectral flatness, whether the strongest peak below 1 kHz *glides* (moves by
0.6–6 %: a voice's pitch) or holds *steady* (within 0.6 %: a held note), and whether the frame
is a tone (one very pure peak, or two peaks that beat or are not one note's harmonics). Every
100 ms it decides from the last second (``window_ms``); when that second began with a silence
of 600 ms or more, only what followed the silence counts, and nothing is decided on less than
300 ms of it. Window features:

- ``low``: the share of frames below half the window's mean power (the pauses and dips of
  syllabic ~4 Hz modulation: speech ≈ 0.45–0.7, music ≈ 0–0.3);
- ``glide`` and ``steady``: the shares of active frames whose pitch glides / holds;
- ``depth``: the spread (std) of frame levels in dB;
- ``similarity`` and ``flatness``: means over active frames.

A window with less than a quarter of its frames above ``silence_dbfs`` is *silence*;
stationary noise (level spread under 2 dB, flat spectrum) is silence too; a window whose active
frames are mostly tones at one or two fixed frequencies is a *tone*, and *ring-back* when those
tones are in 380–500 Hz and beat (US 440+480 Hz, UK 400+450 Hz). Otherwise a linear score of
the six window features decides speech (> 0) or music. Its weights were fitted by logistic
regression on synthetic material and rounded (``bench/detectors.py fit`` refits and prints
them, with the accuracy on a held-out split).

Hysteresis: a new label is reported only after it has been the candidate for ``hold_ms`` of its
own (speech 400 ms, music and silence 600 ms, tones 300 ms); the change carries the sample
where that run began (to within the 100 ms decision step). After a ring-back burst, up to
``ringback_gap_ms`` (4.5 s) of silence keeps the label at ring-back (the cadence's off time).

Speech over music is labelled **speech** (a choice): an announcement over hold music must reach
the model (it may answer with nothing) and a person talking over music must never be dropped.
It is recognised while the voice is clearly above the music (about 10 dB or more); louder music
under speech leans towards music (``speech_bias`` > 0 shifts the balance towards speech).

Limits: singing is not modelled (it may go either way); percussive, decaying music (piano and
drums) is the weakest case, a few percent of it reads as speech; DTMF and other short tones
inside speech are scored with it. Tuned for telephone-band material (300–3,400 Hz, μ-law); the
weights come from synthetic speech (espeak-ng, Piper) and synthetic music, so accuracy on real
calls will be lower than on that material until it is checked on recordings.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE, ulaw_decode
from voicecall.audio.spectral import (
    BIN_HZ,
    FRAME_SAMPLES,
    FrameAnalyzer,
    FrameMeasures,
    check_frame,
    peak_frequency,
)

__all__ = [
    "FEATURES",
    "SPEECH_SCORE",
    "Label",
    "LabelChange",
    "MusicConfig",
    "MusicDiscriminator",
    "SpeechScore",
    "WindowFeatures",
    "gate",
]

_MS: Final = SAMPLE_RATE // 1000
_LO_BIN: Final = math.ceil(90 / BIN_HZ)
_HI_BIN: Final = int(3800 / BIN_HZ)
_PITCH_HI_BIN: Final = int(1000 / BIN_HZ)
_RING_LO_HZ: Final = 380.0
_RING_HI_HZ: Final = 500.0
_TONE_DUAL_PURITY: Final = 0.85
_TONE_CLUSTER_HZ: Final = 25.0
_ONSET_QUIET_FRAMES: Final = 30  # 600 ms of silence: what follows is a new sound
_MIN_FRAMES: Final = 15  # 300 ms of a new sound before the score decides
_DECIDE_EVERY: Final = 5  # frames between two decisions (100 ms)

FEATURES: Final = ("low", "glide", "steady", "depth", "similarity", "flatness")


@dataclass(frozen=True, slots=True)
class SpeechScore:
    """A linear speech-vs-music score over :data:`FEATURES`: the sum of
    ``weight * clip((feature - centre) / scale, ±3)`` plus ``bias``; > 0 is speech."""

    centre: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def __post_init__(self) -> None:
        n = len(FEATURES)
        if not len(self.centre) == len(self.scale) == len(self.weights) == n:
            raise ValueError(f"centre, scale and weights need {n} values each")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scales must be > 0")

    def __call__(self, x: npt.NDArray[np.float64]) -> float:
        z = np.clip((x - np.asarray(self.centre)) / np.asarray(self.scale), -3.0, 3.0)
        return float(np.asarray(self.weights) @ z) + self.bias


SPEECH_SCORE: Final = SpeechScore(
    # fitted by logistic regression on the train split (bench/detectors.py fit), rounded
    centre=(0.36, 0.21, 0.38, 5.85, 0.89, 0.04),
    scale=(0.25, 0.15, 0.33, 4.19, 0.07, 0.08),
    weights=(2.6, 2.0, 0.3, 1.8, -3.2, -3.0),
    bias=-0.5,
)


class Label(enum.Enum):
    SILENCE = "silence"
    SPEECH = "speech"
    MUSIC = "music"
    RINGBACK = "ringback"
    TONE = "tone"

    @property
    def is_person(self) -> bool:
        """Could a person (or a recorded announcement) be talking? Only for speech."""
        return self is Label.SPEECH


@dataclass(frozen=True, slots=True)
class LabelChange:
    label: Label
    previous: Label
    sample: int
    """Where the new label's run began (8 kHz samples since the start)."""
    reported_at: int
    """End of the frame that confirmed it."""

    def __post_init__(self) -> None:
        if self.sample < 0 or self.reported_at < self.sample:
            raise ValueError("need 0 <= sample <= reported_at")
        if self.label is self.previous:
            raise ValueError("a change needs two different labels")


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """The window features behind the last decision (for logs, tests and refitting)."""

    active: float
    """Share of the whole window's frames above ``silence_dbfs``."""
    frames: int
    """Frames the other features cover: the window, or what of it follows a long silence."""
    low: float
    glide: float
    steady: float
    depth: float
    similarity: float
    flatness: float
    tone: float
    ring: float
    score: float

    def vector(self) -> npt.NDArray[np.float64]:
        return np.array([getattr(self, name) for name in FEATURES])


@dataclass(frozen=True, slots=True)
class MusicConfig:
    """Settings of :class:`MusicDiscriminator`; validated when built."""

    window_ms: int = 1000
    silence_dbfs: float = -45.0
    """Frames below this RMS level are silent."""
    min_active: float = 0.25
    """A window with a smaller share of non-silent frames is silence."""
    tone_share: float = 0.7
    """A window whose active frames are at least this share tones is a tone (or ring-back)."""
    speech_hold_ms: int = 400
    music_hold_ms: int = 600
    silence_hold_ms: int = 600
    tone_hold_ms: int = 300
    ringback_gap_ms: int = 4500
    """Silence after a ring-back burst that still counts as ring-back (US cadence: 4 s off)."""
    speech_bias: float = 0.0
    """Added to the speech score: > 0 leans towards speech (fewer voices lost to music)."""
    score: SpeechScore = SPEECH_SCORE
    """The speech-vs-music score (refit with ``bench/detectors.py fit``)."""

    def __post_init__(self) -> None:
        if not 200 <= self.window_ms <= 5000 or self.window_ms % 20:
            raise ValueError("window_ms must be a multiple of 20 within 200..5000")
        if not 0.0 < self.min_active < 1.0 or not 0.0 < self.tone_share <= 1.0:
            raise ValueError("min_active must be in (0, 1) and tone_share in (0, 1]")
        holds = (self.speech_hold_ms, self.music_hold_ms, self.silence_hold_ms, self.tone_hold_ms)
        if any(h < 20 or h % 20 for h in holds):
            raise ValueError("hold times must be positive multiples of 20 ms")
        if self.ringback_gap_ms < 0:
            raise ValueError("ringback_gap_ms must be >= 0")

    def hold_frames(self, label: Label) -> int:
        ms = {
            Label.SPEECH: self.speech_hold_ms,
            Label.MUSIC: self.music_hold_ms,
            Label.SILENCE: self.silence_hold_ms,
            Label.TONE: self.tone_hold_ms,
            Label.RINGBACK: self.tone_hold_ms,
        }[label]
        return ms // 20


class MusicDiscriminator:
    """Streaming speech / music / silence / ring-back / tone labeller; see the module docs."""

    def __init__(self, config: MusicConfig | None = None) -> None:
        self.config: Final = config or MusicConfig()
        self._n = self.config.window_ms // 20
        self._analyzer = FrameAnalyzer()
        self.reset()

    def reset(self) -> None:
        n = self._n
        self._analyzer.reset()
        self._pos = 0
        self._frames = 0
        self._index = np.full(n, -1)  # frame number of each slot (ring buffers of n frames)
        self._power = np.zeros(n)  # linear power of each frame
        self._level = np.full(n, -120.0)
        self._active = np.zeros(n, dtype=bool)
        self._sim = np.zeros(n)
        self._flat = np.zeros(n)
        self._glide = np.zeros(n, dtype=bool)
        self._steady = np.zeros(n, dtype=bool)
        self._tone = np.zeros(n, dtype=bool)
        self._ring = np.zeros(n, dtype=bool)
        self._freq = np.zeros(n)
        self._onset = 0  # frame number where the current sound began (after a long silence)
        self._quiet_run = 0
        self._prev_mag: npt.NDArray[np.float64] | None = None
        self._prev_energy = 0.0
        self._prev_pitch = 0.0
        self._label = Label.SILENCE
        self._candidate = Label.SILENCE
        self._run_start = 0
        self._run_frames = 0
        self._ring_until = -1  # ring-back stays the label through silence until this sample
        self._features: WindowFeatures | None = None

    @property
    def label(self) -> Label:
        """The current (confirmed) label; SILENCE before anything was heard."""
        return self._label

    @property
    def position(self) -> int:
        return self._pos

    @property
    def features(self) -> WindowFeatures | None:
        """The window features of the last frame fed."""
        return self._features

    def feed_ulaw(self, ulaw_frame: bytes) -> LabelChange | None:
        """:meth:`feed` on 160 μ-law bytes."""
        if len(ulaw_frame) != FRAME_BYTES:
            raise ValueError(f"expected {FRAME_BYTES} μ-law bytes (20 ms), got {len(ulaw_frame)}")
        return self.feed(ulaw_decode(ulaw_frame))

    def feed(self, frame: npt.NDArray[np.int16]) -> LabelChange | None:
        """Take the next 20 ms frame; returns the change of label it confirmed, if any."""
        samples = check_frame(frame)
        start = self._pos
        self._pos += FRAME_SAMPLES
        self._measure_frame(samples)
        if self._frames % _DECIDE_EVERY == 1:  # the window moves little in 100 ms
            features = self._window_features()
            self._features = features
            candidate = self._decide(features)
        else:
            candidate = self._candidate
        if candidate is self._candidate:
            self._run_frames += 1
        else:
            self._candidate = candidate
            self._run_start = start
            self._run_frames = 1
        if candidate is not self._label and self._run_frames >= self.config.hold_frames(candidate):
            change = LabelChange(candidate, self._label, self._run_start, self._pos)
            self._label = candidate
            return change
        return None

    # -- internals -----------------------------------------------------------------------------

    def _measure_frame(self, samples: npt.NDArray[np.int16]) -> None:
        m = self._analyzer.analyze(samples)
        power = self._analyzer.power
        k = self._frames % self._n
        number = self._frames
        self._frames += 1
        active = m.level_dbfs >= self.config.silence_dbfs
        if active:
            if self._quiet_run >= _ONSET_QUIET_FRAMES:
                self._onset = number  # sound after a long silence: forget what came before
            self._quiet_run = 0
        else:
            self._quiet_run += 1
        band = power[_LO_BIN:_HI_BIN] + 1e-14
        energy = float(band.sum())
        mag = np.sqrt(band)  # |mag|² = energy: the cosine similarity needs no norm call
        prev = self._prev_mag
        sim = 0.0
        if prev is not None:
            sim = float(mag @ prev) / math.sqrt(energy * self._prev_energy)
        self._prev_mag = mag
        self._prev_energy = energy
        flat = math.exp(float(np.log(band).sum()) / band.size) * band.size / energy
        i = int(power[_LO_BIN:_PITCH_HI_BIN].argmax()) + _LO_BIN
        pitch = peak_frequency(power, i)
        change = abs(pitch - self._prev_pitch) / pitch if pitch > 0 else 1.0
        self._prev_pitch = pitch
        tone = active and _is_tone(m)
        self._index[k] = number
        self._power[k] = 10.0 ** (m.level_dbfs / 10.0)
        self._level[k] = m.level_dbfs
        self._active[k] = active
        self._sim[k] = sim
        self._flat[k] = flat
        self._glide[k] = active and 0.006 < change < 0.06
        self._steady[k] = active and change <= 0.006
        self._tone[k] = tone
        self._freq[k] = m.frequency_hz
        ring = tone and m.flatness < 0.5 and _RING_LO_HZ <= m.frequency_hz <= _RING_HI_HZ
        self._ring[k] = ring
        if ring:
            self._ring_until = self._pos + self.config.ringback_gap_ms * _MS

    def _window_features(self) -> WindowFeatures:
        n_active = int(self._active.sum())
        share = n_active / self._n
        # the frames since the sound began (a silence before it would read as speech pauses)
        valid = self._index >= max(self._onset, self._frames - self._n)
        frames = int(valid.sum())
        active = self._active & valid
        n = int(active.sum())
        if frames == 0 or n == 0:
            return WindowFeatures(share, frames, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        power = self._power[valid]
        level = self._level[valid]
        low = float((power < 0.5 * float(power.sum()) / frames).sum()) / frames
        clipped = np.maximum(level, float(level.max()) - 40.0)
        depth = float(clipped.std())
        glide = float(self._glide[valid].sum()) / n
        steady = float(self._steady[valid].sum()) / n
        sim = float(self._sim[active].sum()) / n
        flat = float(self._flat[active].sum()) / n
        tones = self._tone & valid
        n_tones = int(tones.sum())
        tone = n_tones / n if n_tones and _steady_tones(self._freq[tones]) else 0.0
        ring = float((self._ring & valid).sum()) / n
        score = self.config.score(np.array([low, glide, steady, depth, sim, flat]))
        score += self.config.speech_bias
        return WindowFeatures(
            share, frames, low, glide, steady, depth, sim, flat, tone, ring, score
        )

    def _decide(self, f: WindowFeatures) -> Label:
        cfg = self.config
        gated = gate(f, cfg)
        if (
            gated is Label.SILENCE
            and f.active < cfg.min_active
            and self._pos <= self._ring_until
            and self._label is Label.RINGBACK
        ):
            return Label.RINGBACK  # the cadence's off time
        if gated is not None:
            return gated
        if f.frames < _MIN_FRAMES:
            return self._label  # too little since the sound began to tell
        return Label.SPEECH if f.score > 0.0 else Label.MUSIC


def _is_tone(m: FrameMeasures) -> bool:
    """One very pure tone, or two tones that beat (close pairs: ring-back, dial tone) or that
    are not one note's harmonics (distant pairs: busy tone, DTMF). A note of music holds most
    of its energy in one partial, but rarely 97 %, and its second peak is a harmonic."""
    if m.dual_purity < _TONE_DUAL_PURITY:
        return False
    if m.purity >= 0.97 or m.flatness < 0.6:
        return True
    if m.purity > 0.8 or m.second_hz <= 0.0:
        return False
    ratio = max(m.frequency_hz, m.second_hz) / min(m.frequency_hz, m.second_hz)
    return abs(ratio - round(ratio)) > 0.03 * ratio


def _steady_tones(freqs: npt.NDArray[np.float64]) -> bool:
    """Are these tone frames one or two fixed tones (call progress), not a melody?"""
    if freqs.size == 0:
        return False
    med = float(np.median(freqs))
    near = np.abs(freqs - med) <= _TONE_CLUSTER_HZ
    rest = freqs[~near]
    covered = int(near.sum())
    if rest.size:
        covered += int((np.abs(rest - float(np.median(rest))) <= _TONE_CLUSTER_HZ).sum())
    return covered >= 0.9 * freqs.size


def gate(f: WindowFeatures, config: MusicConfig) -> Label | None:
    """The label a window gets before the speech/music score: silence, noise (as silence),
    tone or ring-back; ``None`` when the score decides."""
    if f.active < config.min_active:
        return Label.SILENCE
    if f.tone >= config.tone_share:
        return Label.RINGBACK if f.ring >= 0.5 * f.tone else Label.TONE
    if f.frames >= _MIN_FRAMES and f.depth < 2.0 and f.flatness > 0.2 and f.low < 0.1:
        return Label.SILENCE  # stationary noise: a line with nobody on it
    return None
