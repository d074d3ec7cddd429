"""The emulator's own keypad-tone (DTMF) detector: a Goertzel filter bank, streaming, pure.

An IVR callee hears the keys a bot presses *in-band* (tones in its Media Stream audio) with this
detector; it is independent of the service's DTMF generator, so one misunderstanding of Q.23
cannot pass both sides.

How it decides (8 kHz audio):

* Blocks of :data:`BLOCK` = 205 samples (25.6 ms, bin spacing ~39 Hz, the classic choice for
  the 697-1633 Hz grid), every :data:`HOP` = 102 samples (50 % overlap). For each block the power
  at the eight Q.23 frequencies is computed with the Goertzel algorithm; it is evaluated as the
  equivalent single-bin DFT (a precomputed 8 x 205 complex matrix times the block), which gives
  the same numbers as the recursive form, vectorised.
* A block holds key ``k`` when: the block is loud enough (above about -45 dBFS); the strongest
  row and the strongest column each beat the runner-up of their group by 6 dB; the two differ by
  at most 8 dB (twist); and together they carry at least 70 % of the block's energy (speech and
  music spread their energy elsewhere).
* A key is reported when two consecutive blocks hold it (the tone lasted >= ~38 ms) and then
  not again until two consecutive blocks do not hold it (a gap of >= ~25 ms). Q.24 asks for
  >= 40 ms tones and >= 40 ms gaps, so every conforming key is seen once.

:meth:`DtmfDetector.feed_ulaw` / :meth:`DtmfDetector.feed_pcm` accept any chunking; the result
does not depend on how the audio was split (tested with hypothesis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import ulaw_decode

__all__ = ["BLOCK", "HOP", "KEYS", "DtmfDetector", "KeyPress", "detect_digits"]

SAMPLE_RATE: Final = 8000
BLOCK: Final = 205
HOP: Final = 102
_ROWS: Final = (697.0, 770.0, 852.0, 941.0)
_COLS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_LAYOUT: Final = ("123A", "456B", "789C", "*0#D")
KEYS: Final = frozenset("0123456789*#ABCD")

_PEAK_RATIO: Final = 10.0 ** (6.0 / 10.0)  # best vs runner-up of its group
_MAX_TWIST: Final = 10.0 ** (8.0 / 10.0)  # row vs column power
_MIN_SHARE: Final = 0.70  # of the block's energy in the two tones
_MIN_ENERGY: Final = BLOCK * (32767.0 * 10.0 ** (-45.0 / 20.0)) ** 2 / 2.0
_CONFIRM: Final = 2  # blocks holding a key before it is reported
_RELEASE: Final = 2  # blocks without it before it may be reported again


def _bank() -> npt.NDArray[np.complex128]:
    n = np.arange(BLOCK)
    freqs = np.array(_ROWS + _COLS)
    return np.exp(-2j * math.pi * np.outer(freqs, n) / SAMPLE_RATE)


_BANK: Final = _bank()


@dataclass(frozen=True, slots=True)
class KeyPress:
    digit: str
    sample: int  # first sample of the block where the key was confirmed


def _classify(block: npt.NDArray[np.float64]) -> str | None:
    energy = float(np.dot(block, block))
    if energy < _MIN_ENERGY:
        return None
    power = np.abs(_BANK @ block) ** 2 * (2.0 / BLOCK)  # a full-block sine: its energy
    rows, cols = power[:4], power[4:]
    r, c = int(np.argmax(rows)), int(np.argmax(cols))
    row_p, col_p = float(rows[r]), float(cols[c])
    if row_p <= 0.0 or col_p <= 0.0:
        return None
    if row_p < _PEAK_RATIO * float(np.partition(rows, -2)[-2]):
        return None
    if col_p < _PEAK_RATIO * float(np.partition(cols, -2)[-2]):
        return None
    if row_p > _MAX_TWIST * col_p or col_p > _MAX_TWIST * row_p:
        return None
    if row_p + col_p < _MIN_SHARE * energy:
        return None
    return _LAYOUT[r][c]


class DtmfDetector:
    """Streaming detector: feed audio in any chunks, get each key press once."""

    def __init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.float64)
        self._base = 0  # absolute sample index of _buf[0]
        self._current: str | None = None  # key being held (reported)
        self._candidate: str | None = None
        self._seen = 0
        self._missing = 0

    def feed_ulaw(self, data: bytes) -> list[KeyPress]:
        return self.feed_pcm(ulaw_decode(data))

    def feed_pcm(self, pcm: npt.NDArray[np.int16]) -> list[KeyPress]:
        samples = np.asarray(pcm, dtype=np.float64).ravel()
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples.copy()
        out: list[KeyPress] = []
        start = 0
        while start + BLOCK <= len(self._buf):
            key = _classify(self._buf[start : start + BLOCK])
            press = self._step(key, self._base + start)
            if press is not None:
                out.append(press)
            start += HOP
        self._buf = self._buf[start:]
        self._base += start
        return out

    def _step(self, key: str | None, sample: int) -> KeyPress | None:
        if self._current is not None:
            if key == self._current:
                self._missing = 0
                return None
            self._missing += 1
            if self._missing < _RELEASE:
                return None
            self._current = None
            self._missing = 0
        if key is None:
            self._candidate, self._seen = None, 0
            return None
        if key == self._candidate:
            self._seen += 1
        else:
            self._candidate, self._seen = key, 1
        if self._seen >= _CONFIRM:
            self._current, self._candidate, self._seen, self._missing = key, None, 0, 0
            return KeyPress(key, sample)
        return None


def detect_digits(ulaw: bytes) -> str:
    """All keys pressed in a piece of μ-law audio, in order."""
    return "".join(p.digit for p in DtmfDetector().feed_ulaw(ulaw))
