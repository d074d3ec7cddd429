"""Sounds the emulator makes itself: beeps, keypad tones, hold music (pure, numpy).

Everything is 8 kHz mono int16 (``pcm``) or μ-law bytes (``ulaw``), like Media Streams audio.

* :func:`tone` / :func:`beep`: a steady sine with 5 ms ramps (an answering machine's beep is
  typically ~1 kHz for 0.2-1 s).
* :func:`dtmf_pcm`: keypad digits as ITU-T Q.23 tone pairs (``w`` = 0.5 s pause, ``W`` = 1 s).
  The emulator's own frequency table, independent of the service's generator.
* :func:`hold_music`: a deterministic piece of "music" for IVR hold queues: soft chords
  (``chords``) or a pentatonic melody over a bass (``melody``). Its partials are kept away from
  the keypad frequencies, so a DTMF detector never hears keys in it.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import ulaw_encode

__all__ = [
    "DTMF_FREQUENCIES",
    "MUSIC_STYLES",
    "SAMPLE_RATE",
    "beep",
    "dtmf_pcm",
    "hold_music",
    "silence",
    "to_ulaw",
    "tone",
]

SAMPLE_RATE: Final = 8000
PCM = npt.NDArray[np.int16]

# ITU-T Q.23: (row, column) Hz per key.
DTMF_FREQUENCIES: Final[dict[str, tuple[float, float]]] = {
    "1": (697, 1209),
    "2": (697, 1336),
    "3": (697, 1477),
    "A": (697, 1633),
    "4": (770, 1209),
    "5": (770, 1336),
    "6": (770, 1477),
    "B": (770, 1633),
    "7": (852, 1209),
    "8": (852, 1336),
    "9": (852, 1477),
    "C": (852, 1633),
    "*": (941, 1209),
    "0": (941, 1336),
    "#": (941, 1477),
    "D": (941, 1633),
}
MUSIC_STYLES: Final = ("chords", "melody")
_FULL_SCALE = 32767.0


def _samples(ms: float) -> int:
    return max(0, round(ms * SAMPLE_RATE / 1000.0))


def _amplitude(level_dbfs: float) -> float:
    return float(_FULL_SCALE * 10.0 ** (level_dbfs / 20.0))


def _ramp(x: npt.NDArray[np.float64], ms: float = 5.0) -> npt.NDArray[np.float64]:
    n = min(len(x) // 2, _samples(ms))
    if n > 0:
        edge = np.linspace(0.0, 1.0, n, endpoint=False)
        x[:n] *= edge
        x[len(x) - n :] *= edge[::-1]
    return x


def _to_pcm(x: npt.NDArray[np.float64]) -> PCM:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def silence(ms: float) -> PCM:
    return np.zeros(_samples(ms), dtype=np.int16)


def tone(frequency_hz: float, ms: float, level_dbfs: float = -12.0) -> PCM:
    """A steady sine of ``ms`` milliseconds with 5 ms ramps."""
    n = _samples(ms)
    t = np.arange(n) / SAMPLE_RATE
    x = _amplitude(level_dbfs) * np.sin(2 * math.pi * frequency_hz * t)
    return _to_pcm(_ramp(x))


def beep(frequency_hz: float = 1000.0, ms: float = 400.0) -> bytes:
    """An answering machine's beep as μ-law."""
    return to_ulaw(tone(frequency_hz, ms))


def dtmf_pcm(
    digits: str,
    *,
    tone_ms: float = 100.0,
    gap_ms: float = 60.0,
    level_dbfs: float = -10.0,
    twist_db: float = 0.0,
) -> PCM:
    """Keypad tones for ``digits`` (0-9 * # A-D; ``w`` pauses 0.5 s, ``W`` 1 s).

    ``twist_db`` raises the column tone over the row tone (negative: the other way round).
    Every tone is followed by ``gap_ms`` of silence.
    """
    parts: list[PCM] = []
    for d in digits:
        if d == "w":
            parts.append(silence(500))
            continue
        if d == "W":
            parts.append(silence(1000))
            continue
        try:
            row, col = DTMF_FREQUENCIES[d.upper()]
        except KeyError:
            raise ValueError(f"not a keypad digit: {d!r}") from None
        n = _samples(tone_ms)
        t = np.arange(n) / SAMPLE_RATE
        low = _amplitude(level_dbfs - max(0.0, twist_db))
        high = _amplitude(level_dbfs + min(0.0, twist_db))
        x = low * np.sin(2 * math.pi * row * t) + high * np.sin(2 * math.pi * col * t)
        parts.append(_to_pcm(_ramp(x, 3.0)))
        parts.append(silence(gap_ms))
    return np.concatenate(parts) if parts else silence(0)


# Chord roots in Hz, voiced low (partials stay under ~620 Hz, below the keypad's 697 Hz row).
_CHORDS: Final = (
    (130.81, 164.81, 196.00),  # C3 E3 G3
    (110.00, 130.81, 164.81),  # A2 C3 E3
    (87.31, 110.00, 130.81),  # F2 A2 C3
    (98.00, 123.47, 146.83),  # G2 B2 D3
)
_PENTATONIC: Final = (261.63, 293.66, 329.63, 392.00, 440.00, 523.25, 587.33)  # C4..D5


def hold_music(seconds: float, style: str = "chords", *, level_dbfs: float = -18.0) -> PCM:
    """Deterministic hold music: ``chords`` (2 s per chord) or ``melody`` (250 ms notes)."""
    if style not in MUSIC_STYLES:
        raise ValueError(f"music style must be one of {MUSIC_STYLES}, got {style!r}")
    n = _samples(seconds * 1000.0)
    out = np.zeros(n, dtype=np.float64)
    amp = _amplitude(level_dbfs)
    if style == "chords":
        step = 2 * SAMPLE_RATE
        for i, start in enumerate(range(0, n, step)):
            m = min(step, n - start)
            t = np.arange(m) / SAMPLE_RATE
            chord = _CHORDS[i % len(_CHORDS)]
            x = sum(np.sin(2 * math.pi * f * t) + 0.3 * np.sin(4 * math.pi * f * t) for f in chord)
            env = np.minimum(1.0, t / 0.08) * np.exp(-t * 0.6)
            out[start : start + m] = amp / 3.0 * x * env
    else:
        step = SAMPLE_RATE // 4
        rng = np.random.default_rng(7)
        notes = rng.integers(0, len(_PENTATONIC), size=n // step + 1)
        for i, start in enumerate(range(0, n, step)):
            m = min(step, n - start)
            t = np.arange(m) / SAMPLE_RATE
            f = _PENTATONIC[int(notes[i])]
            bass = _CHORDS[(i // 8) % len(_CHORDS)][0]
            env = np.minimum(1.0, t / 0.01) * np.exp(-t * 8.0)
            x = 0.6 * np.sin(2 * math.pi * f * t) * env + 0.4 * np.sin(2 * math.pi * bass * t)
            out[start : start + m] = amp * x
    return _to_pcm(out)


def to_ulaw(pcm: PCM) -> bytes:
    return ulaw_encode(np.ascontiguousarray(pcm, dtype=np.int16))
