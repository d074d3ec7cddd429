"""Per-frame spectral measures shared by the beep detector and the music discriminator.

:class:`FrameAnalyzer` takes 20 ms frames of 8 kHz int16 audio in order and measures each
against a 40 ms window (the previous frame and this one) under a Hann window, zero-padded to a
512-point FFT (15.6 Hz bins; the main lobe of a pure tone spans ±50 Hz). One FFT per frame.

Measures (:class:`FrameMeasures`): the newest frame's RMS and peak level, the flatness of its
envelope over 5 ms blocks (a steady tone ≈ 1, two beating tones or speech pulses lower), the
strongest spectral peak above 100 Hz (log-parabolic interpolation: within ~1 Hz for a clean
tone) and the share of the energy within ±60 Hz of it (*purity*) and of the two strongest peaks
(*dual purity*: ≈ 1 for DTMF and ring-back), and where the second peak is. The power spectrum
of the last frame stays available as :attr:`FrameAnalyzer.power` for further features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE

__all__ = [
    "BIN_HZ",
    "FRAME_SAMPLES",
    "NFFT",
    "FrameAnalyzer",
    "FrameMeasures",
    "check_frame",
    "peak_frequency",
    "power_db",
]

FRAME_SAMPLES: Final = FRAME_BYTES  # 160 samples = 20 ms
WINDOW: Final = 2 * FRAME_SAMPLES  # 40 ms
NFFT: Final = 512
BIN_HZ: Final = SAMPLE_RATE / NFFT
FULL_SCALE: Final = 32768.0
LOW_CUT_BIN: Final = math.ceil(100 / BIN_HZ)  # ignore DC and mains hum
PEAK_HALF_WIDTH: Final = math.ceil(60 / BIN_HZ)
_HANN: Final = np.hanning(WINDOW)
_SUB_BLOCKS: Final = 4  # 5 ms envelope blocks per frame


def power_db(power: float) -> float:
    """10·log10 of a power relative to full scale, floored at −120 dB."""
    return 10.0 * math.log10(power) if power > 1e-12 else -120.0


def check_frame(frame: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """``frame`` if it is 160 int16 samples (20 ms at 8 kHz), else TypeError/ValueError."""
    samples = np.asarray(frame)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise TypeError(f"expected a 1-D int16 frame, got {samples.dtype} {samples.shape}")
    if samples.size != FRAME_SAMPLES:
        raise ValueError(f"expected {FRAME_SAMPLES} samples (20 ms at 8 kHz), got {samples.size}")
    return samples


@dataclass(frozen=True, slots=True)
class FrameMeasures:
    """What :class:`FrameAnalyzer` measured on one frame."""

    level_dbfs: float
    """RMS of the newest 20 ms."""
    peak_dbfs: float
    """Peak sample magnitude of the newest 20 ms."""
    frequency_hz: float
    """Strongest spectral peak above 100 Hz in the 40 ms window (interpolated; 0 if silent)."""
    purity: float
    """Share of the energy above 100 Hz within ±60 Hz of that peak."""
    dual_purity: float
    """Share within ±60 Hz of the two strongest peaks."""
    second_hz: float
    """The second strongest peak (outside the first one's ±60 Hz; 0 if silent)."""
    flatness: float
    """Quietest over loudest 5 ms block RMS of the newest 20 ms."""


class FrameAnalyzer:
    """Measures each 20 ms frame against a 40 ms window (this frame and the previous one)."""

    def __init__(self) -> None:
        self._window = np.zeros(WINDOW, dtype=np.float64)
        self.power: npt.NDArray[np.float64] = np.zeros(NFFT // 2 + 1)
        """Power spectrum of the last window (full scale = 1), bins of :data:`BIN_HZ`."""

    def reset(self) -> None:
        self._window[:] = 0.0
        self.power = np.zeros(NFFT // 2 + 1)

    def analyze(self, frame: npt.NDArray[np.int16]) -> FrameMeasures:
        win = self._window
        win[:FRAME_SAMPLES] = win[FRAME_SAMPLES:]
        newest = win[FRAME_SAMPLES:]
        np.multiply(frame, 1.0 / FULL_SCALE, out=newest)
        sq = newest * newest
        blocks = sq.reshape(_SUB_BLOCKS, -1).sum(axis=1)
        level = power_db(float(blocks.sum()) / FRAME_SAMPLES)
        peak = float(np.abs(newest).max())
        loudest = float(blocks.max())
        flatness = math.sqrt(float(blocks.min()) / loudest) if loudest > 1e-12 else 0.0
        spectrum = np.fft.rfft(win * _HANN, NFFT)
        power: npt.NDArray[np.float64] = spectrum.real**2 + spectrum.imag**2
        self.power = power
        band = power[LOW_CUT_BIN:]
        total = float(band.sum())
        if total <= 1e-12:
            return FrameMeasures(level, power_db(peak * peak), 0.0, 0.0, 0.0, 0.0, flatness)
        i = int(band.argmax()) + LOW_CUT_BIN
        lo, hi = max(LOW_CUT_BIN, i - PEAK_HALF_WIDTH), i + PEAK_HALF_WIDTH + 1
        lobe = power[lo:hi].copy()
        first = float(lobe.sum())
        power[lo:hi] = 0.0  # hide the first peak to find the second one, then put it back
        j = int(band.argmax()) + LOW_CUT_BIN
        second = float(power[max(LOW_CUT_BIN, j - PEAK_HALF_WIDTH) : j + PEAK_HALF_WIDTH + 1].sum())
        power[lo:hi] = lobe
        return FrameMeasures(
            level_dbfs=level,
            peak_dbfs=power_db(peak * peak),
            frequency_hz=peak_frequency(power, i),
            purity=first / total,
            dual_purity=(first + second) / total,
            second_hz=peak_frequency(power, j),
            flatness=flatness,
        )


def peak_frequency(power: npt.NDArray[np.float64], i: int) -> float:
    """Frequency of the peak at bin ``i``, by log-parabolic (Gaussian) interpolation."""
    freq = i * BIN_HZ
    if 0 < i < power.size - 1:
        a = math.log(float(power[i - 1]) + 1e-30)
        b = math.log(float(power[i]) + 1e-30)
        c = math.log(float(power[i + 1]) + 1e-30)
        denom = a - 2 * b + c
        if denom < 0:
            freq += 0.5 * (a - c) / denom * BIN_HZ
    return freq
