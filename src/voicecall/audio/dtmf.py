"""In-band DTMF generation (ITU-T Q.23 keypad tones) as 8 kHz int16 PCM or μ-law bytes.

``dtmf_ulaw("1w23#")`` returns the tones for ``1``, half a second of silence, then ``2``, ``3``
and ``#``, ready to be queued on the outbound stream (through the pacer, in order with speech).

Digits: ``0``–``9``, ``*``, ``#``, ``A``–``D`` (the fourth column) and ``w``, a pause of
:attr:`DtmfSpec.pause_ms` (0.5 s, as Twilio's ``SendDigits``/``<Play digits>``). Letters are
case-insensitive. Anything else is refused by :func:`validate_digits` with
:class:`InvalidDigits`, which names the character and its position (HTTP 422 in the API).

Signal, per digit (``DtmfSpec`` defaults):

- two sines at the Q.23 row and column frequencies, each with continuous phase over the tone;
- levels: low (row) tone at −7 dBm0, high (column) tone 2 dB louder (−5 dBm0), the usual
  "positive twist" of telephone sets; the twist is limited to ±4 dB. The sum peaks at about
  0.70 of full scale (μ-law's +3.17 dBm0 sine), so nothing clips;
- 5 ms raised-cosine ramps at both ends of each tone (no clicks, no splatter out of band);
- ``tone_ms`` (default 100, at least 70) and ``gap_ms`` (default 80, at least 50) are measured
  between the half-amplitude points of the ramps, which is where a detector sees the tone start
  and stop. Each digit occupies exactly ``tone_ms + gap_ms`` milliseconds: its tone starts at
  zero amplitude at the block's first sample (half amplitude ``ramp_ms / 2`` later) and the gap
  follows, so outputs concatenate (with each other or with speech) without shortening a gap.

Limits: tones are generated, never detected here (the emulator has its own detector); the
timing is in whole samples (125 µs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import SAMPLE_RATE, ulaw_encode
from voicecall.errors import InvalidRequest

__all__ = [
    "DTMF_FREQUENCIES",
    "DTMF_KEYS",
    "MAX_DIGITS",
    "DtmfSpec",
    "InvalidDigits",
    "dbm0_to_amplitude",
    "dtmf_pcm",
    "dtmf_samples",
    "dtmf_ulaw",
    "validate_digits",
]

ROWS: Final = (697, 770, 852, 941)
COLUMNS: Final = (1209, 1336, 1477, 1633)
_LAYOUT: Final = ("123A", "456B", "789C", "*0#D")

DTMF_FREQUENCIES: Final[dict[str, tuple[int, int]]] = {
    key: (ROWS[r], COLUMNS[c]) for r, row in enumerate(_LAYOUT) for c, key in enumerate(row)
}
"""Key → (low/row Hz, high/column Hz), ITU-T Q.23."""
DTMF_KEYS: Final = frozenset(DTMF_FREQUENCIES)
PAUSE: Final = "w"
MAX_DIGITS: Final = 256
"""Longest digit string accepted (pauses included)."""

MIN_TONE_MS: Final = 70
MIN_GAP_MS: Final = 50
MAX_TWIST_DB: Final = 4.0
_ZERO_DBM0_PEAK: Final = 32768.0 / 10 ** (3.17 / 20)  # μ-law full-scale sine is +3.17 dBm0
_MS: Final = SAMPLE_RATE // 1000


class InvalidDigits(InvalidRequest, ValueError):
    """A DTMF digit string has a character outside ``0-9 * # A-D w`` or is empty/too long."""


def dbm0_to_amplitude(dbm0: float) -> float:
    """Peak int16 amplitude of a sine at ``dbm0`` (G.711: 0 dBm0 ≈ 22,737)."""
    return _ZERO_DBM0_PEAK * 10 ** (dbm0 / 20)


@dataclass(frozen=True, slots=True)
class DtmfSpec:
    """Timing and levels of generated DTMF; validated when built."""

    tone_ms: int = 100
    """Tone duration between the half-amplitude points of its ramps (≥ 70)."""
    gap_ms: int = 80
    """Silence after each tone, between half-amplitude points (≥ 50)."""
    pause_ms: int = 500
    """Silence for each ``w``."""
    low_dbm0: float = -7.0
    """Level of the row (low-group) tone."""
    twist_db: float = 2.0
    """High-group level minus low-group level (within ±4 dB)."""
    ramp_ms: float = 5.0
    """Raised-cosine rise and fall time of each tone."""

    def __post_init__(self) -> None:
        if self.tone_ms < MIN_TONE_MS:
            raise ValueError(f"tone_ms must be >= {MIN_TONE_MS} (ITU-T Q.24 minimum)")
        if self.gap_ms < MIN_GAP_MS:
            raise ValueError(f"gap_ms must be >= {MIN_GAP_MS}")
        if self.pause_ms < 0:
            raise ValueError("pause_ms must be >= 0")
        if abs(self.twist_db) > MAX_TWIST_DB:
            raise ValueError(f"twist_db must be within ±{MAX_TWIST_DB:g} dB")
        if not 0.0 < self.ramp_ms <= min(self.tone_ms, self.gap_ms) / 2:
            raise ValueError("ramp_ms must be > 0 and at most half of tone_ms and of gap_ms")
        high = self.low_dbm0 + self.twist_db
        peak = dbm0_to_amplitude(self.low_dbm0) + dbm0_to_amplitude(high)
        if peak > 32767:
            raise ValueError(
                f"levels too high: low {self.low_dbm0:g} dBm0 and high {high:g} dBm0 would clip"
            )

    @property
    def digit_samples(self) -> int:
        """Samples one digit occupies (tone + gap)."""
        return (self.tone_ms + self.gap_ms) * _MS

    @property
    def pause_samples(self) -> int:
        return self.pause_ms * _MS


DEFAULT_SPEC: Final = DtmfSpec()


def validate_digits(digits: str) -> str:
    """Return ``digits`` normalized (letters ``A-D`` upper case, ``w`` lower case).

    Raises :class:`InvalidDigits` naming the first bad character and its position, or when the
    string is empty, longer than :data:`MAX_DIGITS` or holds only pauses.
    """
    if not isinstance(digits, str):
        raise InvalidDigits(f"digits must be a string, got {type(digits).__name__}")
    if not digits:
        raise InvalidDigits("digits must not be empty")
    if len(digits) > MAX_DIGITS:
        raise InvalidDigits(f"digits: at most {MAX_DIGITS} characters, got {len(digits)}")
    out: list[str] = []
    for i, ch in enumerate(digits):
        if ch in DTMF_KEYS:
            out.append(ch)
        elif ch in "abcd":
            out.append(ch.upper())
        elif ch in "wW":
            out.append(PAUSE)
        else:
            raise InvalidDigits(
                f"digits: invalid character {ch!r} at position {i} "
                "(allowed: 0-9, *, #, A-D and w for a 0.5 s pause)"
            )
    if all(ch == PAUSE for ch in out):
        raise InvalidDigits("digits: nothing to press (only pauses)")
    return "".join(out)


def dtmf_samples(digits: str, spec: DtmfSpec = DEFAULT_SPEC) -> int:
    """Length in samples of ``dtmf_pcm(digits, spec)`` (validates ``digits``)."""
    norm = validate_digits(digits)
    pauses = norm.count(PAUSE)
    return (len(norm) - pauses) * spec.digit_samples + pauses * spec.pause_samples


def _envelope(spec: DtmfSpec) -> npt.NDArray[np.float64]:
    """Amplitude envelope of one tone, rising and falling by raised cosines."""
    ramp = round(spec.ramp_ms * _MS)
    total = spec.tone_ms * _MS + ramp  # half-amplitude points are ramp/2 in from both ends
    env = np.ones(total)
    if ramp:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        env[:ramp] = rise
        env[-ramp:] = rise[::-1]
    return env


def _tone(key: str, spec: DtmfSpec, env: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    low, high = DTMF_FREQUENCIES[key]
    n = np.arange(env.size)
    a_low = dbm0_to_amplitude(spec.low_dbm0)
    a_high = dbm0_to_amplitude(spec.low_dbm0 + spec.twist_db)
    w = 2 * math.pi / SAMPLE_RATE
    tone: npt.NDArray[np.float64] = env * (
        a_low * np.sin(w * low * n) + a_high * np.sin(w * high * n)
    )
    return tone


def dtmf_pcm(digits: str, spec: DtmfSpec = DEFAULT_SPEC) -> npt.NDArray[np.int16]:
    """8 kHz int16 PCM for ``digits`` (validated first; see the module docs for the timing)."""
    norm = validate_digits(digits)
    out = np.zeros(dtmf_samples(norm, spec), dtype=np.float64)
    env = _envelope(spec)
    cache: dict[str, npt.NDArray[np.float64]] = {}
    pos = 0
    for ch in norm:
        if ch == PAUSE:
            pos += spec.pause_samples
            continue
        tone = cache.get(ch)
        if tone is None:
            tone = cache[ch] = _tone(ch, spec, env)
        out[pos : pos + tone.size] = tone  # fits: the gap holds at least two ramps
        pos += spec.digit_samples
    return np.rint(out).astype(np.int16)


def dtmf_ulaw(digits: str, spec: DtmfSpec = DEFAULT_SPEC) -> bytes:
    """8 kHz μ-law bytes for ``digits``, ready for a Media Stream (160 bytes = 20 ms)."""
    return ulaw_encode(dtmf_pcm(digits, spec))
