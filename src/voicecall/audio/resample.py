"""Streaming sample-rate conversion over ``soxr`` (windowed-sinc, anti-aliased).

One :class:`StreamResampler` per audio direction of a call. Feed chunks of any size with
:meth:`StreamResampler.process`; at the end of each utterance call :meth:`StreamResampler.flush`,
which returns the tail still held in the filter (the last ~5–20 ms of the utterance, depending on
the rates) and makes the resampler ready for the next utterance. Clearing without flushing is the
field bug where the last 40–50 ms of every sentence were lost; :meth:`StreamResampler.reset` is
only for when the rest of the utterance is being thrown away anyway (barge-in).

Input is int16 PCM or float32 in [-1.0, 1.0); output is always int16 (rounded, clipped).
Linear interpolation is deliberately not offered: 24 kHz → 8 kHz without a low-pass filter
aliases everything above 4 kHz back into the band at full level.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import soxr

__all__ = ["Quality", "StreamResampler"]

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]

_QUALITIES: Final = ("QQ", "LQ", "MQ", "HQ", "VHQ")
_INT16_SCALE: Final = 32768.0
_EMPTY: Final = np.zeros(0, dtype=np.float32)


def _to_float32(chunk: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    samples = np.asarray(chunk)
    if samples.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {samples.shape}")
    if samples.dtype == np.int16:
        converted = samples.astype(np.float32)
        converted *= np.float32(1.0 / _INT16_SCALE)
        return converted
    if samples.dtype == np.float32:
        return np.ascontiguousarray(samples)
    raise TypeError(f"expected int16 or float32 samples, got {samples.dtype}")


def _to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Round and clip soxr's output (a fresh array we own, so in place) to int16."""
    samples *= np.float32(_INT16_SCALE)
    np.rint(samples, out=samples)
    np.clip(samples, -32768.0, 32767.0, out=samples)
    return samples.astype(np.int16)


class StreamResampler:
    """Stateful mono resampler ``in_rate`` → ``out_rate`` keeping filter state across chunks.

    Equal rates pass samples through (converted to int16) with no filter and no delay.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        if quality not in _QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
        self.in_rate: Final = in_rate
        self.out_rate: Final = out_rate
        self.quality: Final = quality
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )
        self._pending = False  # input fed since the last flush/reset
        self.samples_in = 0
        """Input samples fed since construction."""
        self.samples_out = 0
        """Output samples produced since construction (flushed tails included)."""

    @property
    def ratio(self) -> float:
        """Output samples per input sample."""
        return self.out_rate / self.in_rate

    def process(
        self, chunk: npt.NDArray[np.int16] | npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int16]:
        """Resample one chunk of an utterance; may return fewer samples than ``len * ratio``
        while the filter fills (the rest comes out of later chunks or :meth:`flush`)."""
        samples = _to_float32(chunk)
        self.samples_in += samples.size
        if samples.size == 0:
            return np.zeros(0, dtype=np.int16)
        self._pending = True
        out = samples.copy() if self._stream is None else self._stream.resample_chunk(samples)
        result = _to_int16(out)
        self.samples_out += result.size
        return result

    def flush(self) -> npt.NDArray[np.int16]:
        """End the utterance: return the tail held in the filter, then get ready for the next one.

        Calling it with nothing fed since the last flush returns an empty array.
        """
        if self._stream is None or not self._pending:
            self._pending = False
            return np.zeros(0, dtype=np.int16)
        tail = self._stream.resample_chunk(_EMPTY, last=True)
        self._stream.clear()
        self._pending = False
        result = _to_int16(tail)
        self.samples_out += result.size
        return result

    def reset(self) -> None:
        """Drop buffered input without producing it (barge-in: the rest is discarded anyway)."""
        if self._stream is not None:
            self._stream.clear()
        self._pending = False

    def __repr__(self) -> str:
        return (
            f"StreamResampler({self.in_rate} -> {self.out_rate}, quality={self.quality!r}, "
            f"samples_in={self.samples_in}, samples_out={self.samples_out})"
        )
