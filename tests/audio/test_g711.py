"""G.711 μ-law: bit-exact with CPython's audioop over every input, plus the named constants."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from voicecall.audio.g711 import (
    FRAME_BYTES,
    FRAME_MS,
    SAMPLE_RATE,
    ULAW_SILENCE,
    silence,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # the oracle; removed in Python 3.13
    except ImportError:  # pragma: no cover - depends on the interpreter
        audioop = None  # type: ignore[assignment]

needs_audioop = pytest.mark.skipif(
    audioop is None, reason=f"audioop (the oracle) is not available on Python {sys.version[:4]}"
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))


def test_constants() -> None:
    assert SAMPLE_RATE == 8000
    assert FRAME_MS == 20
    assert FRAME_BYTES == 160
    assert ULAW_SILENCE == 0xFF


@needs_audioop
def test_encode_bit_exact_over_all_int16_values() -> None:
    expected = audioop.lin2ulaw(ALL_INT16.tobytes(), 2)
    got = ulaw_encode(ALL_INT16)
    assert len(got) == 65536
    mismatches = np.flatnonzero(np.frombuffer(expected, np.uint8) != np.frombuffer(got, np.uint8))
    assert mismatches.size == 0, f"first mismatching samples: {ALL_INT16[mismatches[:8]]}"


@needs_audioop
def test_decode_bit_exact_over_all_bytes() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), np.int16)
    got = ulaw_decode(ALL_CODES)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, expected)


@needs_audioop
def test_roundtrip_matches_audioop_roundtrip() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, size=8000, dtype=np.int16)
    ours = ulaw_decode(ulaw_encode(pcm))
    theirs = np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(pcm.tobytes(), 2), 2), np.int16)
    np.testing.assert_array_equal(ours, theirs)


def test_silence_decodes_to_zero_and_zero_encodes_to_silence() -> None:
    assert ulaw_decode(bytes([ULAW_SILENCE]))[0] == 0
    assert ulaw_encode(np.zeros(FRAME_BYTES, np.int16)) == bytes([ULAW_SILENCE]) * FRAME_BYTES
    assert silence(FRAME_MS) == bytes([ULAW_SILENCE]) * FRAME_BYTES
    assert len(silence(1000)) == SAMPLE_RATE


def test_decode_then_encode_is_identity_on_codes() -> None:
    # Every code except 0x7F (negative zero, decodes to 0 which encodes as 0xFF) is a fixed point.
    codes = ulaw_encode(ulaw_decode(ALL_CODES))
    diff = [i for i in range(256) if codes[i] != i]
    assert diff == [0x7F]


def test_encode_is_monotonic_in_magnitude() -> None:
    decoded = ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int32)
    assert np.all(np.diff(decoded) >= 0)
    # quantization error stays within half a step of the coarsest segment
    assert np.max(np.abs(decoded - ALL_INT16.astype(np.int32))) <= 1024


def test_encode_rejects_non_int16() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, np.float32))  # type: ignore[arg-type]


def test_encode_accepts_non_contiguous_input() -> None:
    pcm = ALL_INT16[::3]
    assert ulaw_encode(pcm) == ulaw_encode(np.ascontiguousarray(pcm))


def test_silence_rejects_negative() -> None:
    with pytest.raises(ValueError):
        silence(-1)
