"""G.711 μ-law codec for Twilio Media Streams, with numpy lookup tables.

Bit-exact with CPython's ``audioop.lin2ulaw`` / ``audioop.ulaw2lin`` (width 2), which is gone
in Python 3.13; this module never imports it. Both directions are a single table lookup:

- encode: a 65536-entry ``uint8`` table indexed by the ``uint16`` view of each int16 sample;
- decode: a 256-entry ``int16`` table indexed by the byte.

Twilio streams 8 kHz mono μ-law, 160 bytes (20 ms) per inbound message; silence is ``0xFF``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BYTES_PER_SECOND",
    "FRAME_BYTES",
    "FRAME_MS",
    "SAMPLE_RATE",
    "ULAW_SILENCE",
    "silence",
    "ulaw_decode",
    "ulaw_encode",
]

SAMPLE_RATE: Final = 8000
"""Samples per second of Twilio's μ-law audio."""
FRAME_MS: Final = 20
"""Duration of one Twilio media frame."""
FRAME_BYTES: Final = SAMPLE_RATE * FRAME_MS // 1000  # 160
"""μ-law bytes (= samples) in one 20 ms frame."""
BYTES_PER_SECOND: Final = SAMPLE_RATE
"""One byte per sample."""
ULAW_SILENCE: Final = 0xFF
"""The μ-law code of digital silence (decodes to 0)."""

_BIAS: Final = 0x84
_CLIP: Final = 8159  # 14-bit magnitude clip, as in CPython's audioop (st_14linear2ulaw)
_SEG_UEND: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    """μ-law code of every int16 value, indexed by its uint16 bit pattern."""
    pcm = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)
    val = pcm >> 2  # 16-bit → 14-bit, arithmetic shift (floors negatives), like audioop
    negative = val < 0
    mask = np.where(negative, 0x7F, 0xFF)
    mag = np.minimum(np.where(negative, -val, val), _CLIP) + (_BIAS >> 2)
    # segment = index of the first segment end >= magnitude (8 when above all of them)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    uval = np.where(
        seg >= 8,
        0x7F,
        (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F),
    )
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


def _build_decode_table() -> npt.NDArray[np.int16]:
    """Linear int16 value of every μ-law byte."""
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t = t << ((u & 0x70) >> 4)
    lin = np.where((u & 0x80) != 0, _BIAS - t, t - _BIAS)
    return lin.astype(np.int16)


_ENCODE: Final = _build_encode_table()
_DECODE: Final = _build_decode_table()
_ENCODE.setflags(write=False)
_DECODE.setflags(write=False)


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 PCM samples (any shape, C order) to μ-law bytes, one byte per sample."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"ulaw_encode expects int16 samples, got {samples.dtype}")
    return bytes(_ENCODE[np.ascontiguousarray(samples).view(np.uint16).ravel()].tobytes())


def ulaw_decode(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """Decode μ-law bytes to a new 1-D int16 array (one sample per byte)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _DECODE[codes]


def silence(ms: int) -> bytes:
    """μ-law silence lasting ``ms`` milliseconds (must be a whole number of samples)."""
    if ms < 0:
        raise ValueError("silence duration must be >= 0 ms")
    return bytes([ULAW_SILENCE]) * (SAMPLE_RATE * ms // 1000)
